//! Metadata tables: streams of 8 KiB blocks, each compressed on its own when that helps.

use super::compressor::BlockCompressor;
use super::layout::{MetaRef, METADATA_SIZE};
use super::ImageError;

/// Builds one metadata table (inode, directory, xattr key/value) in memory, compressed.
#[derive(Default)]
pub(crate) struct MetadataWriter {
    /// Uncompressed payload of the block being filled; never full (a full one is flushed).
    pending: Vec<u8>,
    /// The finished blocks, headers included.
    table: Vec<u8>,
}

impl MetadataWriter {
    /// Where the next appended byte will be.
    pub(crate) fn position(&self) -> MetaRef {
        MetaRef {
            block: self.table.len() as u64,
            // `pending` stays below 8192 bytes.
            offset: self.pending.len() as u16,
        }
    }

    pub(crate) fn append(
        &mut self,
        mut bytes: &[u8],
        compressor: &mut BlockCompressor,
    ) -> Result<(), ImageError> {
        while !bytes.is_empty() {
            let room = METADATA_SIZE - self.pending.len();
            let (now, later) = bytes.split_at(room.min(bytes.len()));
            self.pending.extend_from_slice(now);
            bytes = later;
            if self.pending.len() == METADATA_SIZE {
                compressor.metadata_block(&self.pending, &mut self.table)?;
                self.pending.clear();
            }
        }
        Ok(())
    }

    /// The table, its last partial block flushed.
    pub(crate) fn finish(
        mut self,
        compressor: &mut BlockCompressor,
    ) -> Result<Vec<u8>, ImageError> {
        if !self.pending.is_empty() {
            compressor.metadata_block(&self.pending, &mut self.table)?;
        }
        Ok(self.table)
    }
}

/// A table of fixed-size entries (fragment, id, xattr id) as it is stored: metadata blocks,
/// then the array of their absolute positions that the superblock points to.
pub(crate) struct LookupTable {
    pub bytes: Vec<u8>,
    /// Offset of the position array inside `bytes`.
    pub lookup_offset: u64,
}

/// Lays out `entries` as a [`LookupTable`] that will be written at absolute offset `start`.
pub(crate) fn lookup_table(
    entries: &[u8],
    start: u64,
    compressor: &mut BlockCompressor,
) -> Result<LookupTable, ImageError> {
    let mut bytes = Vec::new();
    let mut positions = Vec::new();
    for chunk in entries.chunks(METADATA_SIZE) {
        positions.push(start + bytes.len() as u64);
        compressor.metadata_block(chunk, &mut bytes)?;
    }
    let lookup_offset = bytes.len() as u64;
    for position in positions {
        bytes.extend_from_slice(&position.to_le_bytes());
    }
    Ok(LookupTable {
        bytes,
        lookup_offset,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::layout::METADATA_UNCOMPRESSED;

    /// Splits a table back into its uncompressed payloads.
    fn payloads(table: &[u8]) -> Vec<Vec<u8>> {
        let mut blocks = Vec::new();
        let mut rest = table;
        while rest.len() >= 2 {
            let header = u16::from_le_bytes([rest[0], rest[1]]);
            let size = usize::from(header & !METADATA_UNCOMPRESSED);
            let body = &rest[2..2 + size];
            blocks.push(if header & METADATA_UNCOMPRESSED != 0 {
                body.to_vec()
            } else {
                zstd::bulk::decompress(body, METADATA_SIZE).unwrap()
            });
            rest = &rest[2 + size..];
        }
        blocks
    }

    #[test]
    fn positions_name_the_block_and_offset_of_each_byte() {
        let mut compressor = BlockCompressor::new(10).unwrap();
        let mut writer = MetadataWriter::default();
        let record: Vec<u8> = (0..100u8).collect();
        let mut refs = Vec::new();
        for _ in 0..200 {
            refs.push(writer.position());
            writer.append(&record, &mut compressor).unwrap();
        }
        let table = writer.finish(&mut compressor).unwrap();
        let blocks = payloads(&table);
        assert_eq!(blocks.len(), 3);
        assert_eq!(blocks[0].len(), METADATA_SIZE);
        assert_eq!(blocks[2].len(), 200 * 100 - 2 * METADATA_SIZE);

        let mut block_starts = vec![0u64];
        let mut rest = &table[..];
        while rest.len() >= 2 {
            let size = usize::from(u16::from_le_bytes([rest[0], rest[1]]) & !METADATA_UNCOMPRESSED);
            rest = &rest[2 + size..];
            block_starts.push((table.len() - rest.len()) as u64);
        }
        let whole: Vec<u8> = blocks.concat();
        for (i, meta_ref) in refs.iter().enumerate() {
            let block = block_starts
                .iter()
                .position(|&s| s == meta_ref.block)
                .unwrap();
            let at = block * METADATA_SIZE + usize::from(meta_ref.offset);
            assert_eq!(at, i * 100);
            assert_eq!(whole[at], 0);
        }
    }

    #[test]
    fn lookup_tables_point_at_each_block() {
        let mut compressor = BlockCompressor::new(10).unwrap();
        let entries = vec![0x55u8; METADATA_SIZE + 16];
        let table = lookup_table(&entries, 1000, &mut compressor).unwrap();
        let lookup = &table.bytes[table.lookup_offset as usize..];
        assert_eq!(lookup.len(), 16);
        let first = u64::from_le_bytes(lookup[0..8].try_into().unwrap());
        let second = u64::from_le_bytes(lookup[8..16].try_into().unwrap());
        assert_eq!(first, 1000);
        let first_size =
            u16::from_le_bytes([table.bytes[0], table.bytes[1]]) & !METADATA_UNCOMPRESSED;
        assert_eq!(second, 1000 + 2 + u64::from(first_size));
        assert_eq!(
            payloads(&table.bytes[..table.lookup_offset as usize]).concat(),
            entries
        );
    }
}
