//! Directory listings: runs of entries under headers, and the index of large directories.
//!
//! A header covers up to 256 entries whose inodes share one inode-table block and whose inode
//! numbers lie within ±32767 of the header's. A run also ends where its entries would spill
//! into the next directory-table block, so every block begins a new header; the first header
//! of each further block gets an index entry (its name, its offset in the listing and its block)
//! that the kernel uses to skip straight to the right block when looking a name up.

use super::compressor::BlockCompressor;
use super::layout::{MetaRef, MAX_HEADER_ENTRIES, METADATA_SIZE};
use super::metadata::MetadataWriter;
use super::ImageError;

const HEADER_SIZE: usize = 12;
const ENTRY_SIZE: usize = 8;
/// Largest inode number difference an entry can store relative to its header.
const MAX_NUMBER_DELTA: i64 = 32767;

/// One name in a directory, with the inode it names.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DirEntry<'t> {
    pub name: &'t [u8],
    pub inode: MetaRef,
    pub number: u32,
    /// The basic inode type (directory entries never name extended types).
    pub kind: u16,
}

/// Where a header begins, for the directory inode's index.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IndexEntry<'t> {
    /// Offset of the header from the start of the listing.
    pub offset: u32,
    /// Directory-table-relative start of the block holding the header.
    pub block: u64,
    /// Name of the header's first entry.
    pub name: &'t [u8],
}

/// A written listing.
#[derive(Debug)]
pub(crate) struct Listing<'t> {
    pub start: MetaRef,
    /// Bytes of headers and entries (the inode's size field adds 3).
    pub size: u64,
    pub index: Vec<IndexEntry<'t>>,
}

/// Appends the listing of one directory to the directory table. `entries` must be sorted by
/// name bytes, each name 1 to 255 bytes (as a [`Tree`](crate::tree::Tree) holds them).
pub(crate) fn write_listing<'t>(
    entries: impl IntoIterator<Item = DirEntry<'t>>,
    table: &mut MetadataWriter,
    compressor: &mut BlockCompressor,
) -> Result<Listing<'t>, ImageError> {
    let mut listing = Listing {
        start: table.position(),
        size: 0,
        index: Vec::new(),
    };
    let mut last_indexed_block = listing.start.block;
    let mut run: Vec<DirEntry<'t>> = Vec::with_capacity(MAX_HEADER_ENTRIES);
    // Bytes the run would reach in its block, counted from the block's start.
    let mut run_end = 0;
    for entry in entries {
        let entry_len = ENTRY_SIZE + entry.name.len();
        if let Some(first) = run.first() {
            let delta = i64::from(entry.number) - i64::from(first.number);
            if run.len() == MAX_HEADER_ENTRIES
                || entry.inode.block != first.inode.block
                || delta.abs() > MAX_NUMBER_DELTA
                || run_end + entry_len > METADATA_SIZE
            {
                write_run(
                    &run,
                    &mut listing,
                    &mut last_indexed_block,
                    table,
                    compressor,
                )?;
                run.clear();
            }
        }
        if run.is_empty() {
            run_end = (usize::from(table.position().offset) + HEADER_SIZE) % METADATA_SIZE;
        }
        run.push(entry);
        run_end += entry_len;
    }
    if !run.is_empty() {
        write_run(
            &run,
            &mut listing,
            &mut last_indexed_block,
            table,
            compressor,
        )?;
    }
    Ok(listing)
}

fn write_run<'t>(
    run: &[DirEntry<'t>],
    listing: &mut Listing<'t>,
    last_indexed_block: &mut u64,
    table: &mut MetadataWriter,
    compressor: &mut BlockCompressor,
) -> Result<(), ImageError> {
    let Some(first) = run.first() else {
        return Ok(());
    };
    let here = table.position();
    if here.block != *last_indexed_block {
        listing.index.push(IndexEntry {
            offset: u32::try_from(listing.size).map_err(|_| ImageError::TableTooLarge {
                table: "directory listing",
            })?,
            block: here.block,
            name: first.name,
        });
        *last_indexed_block = here.block;
    }
    let inode_block = u32::try_from(first.inode.block)
        .map_err(|_| ImageError::TableTooLarge { table: "inode" })?;
    let mut bytes = Vec::with_capacity(HEADER_SIZE + run.len() * (ENTRY_SIZE + 16));
    // Runs hold 1 to 256 entries.
    bytes.extend_from_slice(&(run.len() as u32 - 1).to_le_bytes());
    bytes.extend_from_slice(&inode_block.to_le_bytes());
    bytes.extend_from_slice(&first.number.to_le_bytes());
    for entry in run {
        // Within ±32767 (checked when the run was formed); names are 1 to 256 bytes.
        let delta = (i64::from(entry.number) - i64::from(first.number)) as i16;
        bytes.extend_from_slice(&entry.inode.offset.to_le_bytes());
        bytes.extend_from_slice(&delta.to_le_bytes());
        bytes.extend_from_slice(&entry.kind.to_le_bytes());
        bytes.extend_from_slice(&(entry.name.len() as u16 - 1).to_le_bytes());
        bytes.extend_from_slice(entry.name);
    }
    table.append(&bytes, compressor)?;
    listing.size += bytes.len() as u64;
    Ok(())
}

/// Appends `/name` to a path for error messages.
pub(crate) fn push_component(path: &mut String, name: &[u8]) {
    path.push('/');
    path.push_str(&String::from_utf8_lossy(name));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &[u8], block: u64, number: u32) -> DirEntry<'_> {
        DirEntry {
            name,
            inode: MetaRef { block, offset: 0 },
            number,
            kind: 2,
        }
    }

    /// Parses an uncompressed listing into (header count, inode block, base number) runs.
    fn runs(bytes: &[u8]) -> Vec<(u32, u32, u32)> {
        let mut out = Vec::new();
        let mut rest = bytes;
        while !rest.is_empty() {
            let word = |i: usize| u32::from_le_bytes(rest[i..i + 4].try_into().unwrap());
            let (count, block, number) = (word(0) + 1, word(4), word(8));
            out.push((count, block, number));
            rest = &rest[HEADER_SIZE..];
            for _ in 0..count {
                let name_len = usize::from(u16::from_le_bytes([rest[6], rest[7]])) + 1;
                rest = &rest[ENTRY_SIZE + name_len..];
            }
        }
        out
    }

    fn uncompressed(listing_start: usize, table: Vec<u8>) -> Vec<u8> {
        let mut payload = Vec::new();
        let mut rest = &table[..];
        while rest.len() >= 2 {
            let header = u16::from_le_bytes([rest[0], rest[1]]);
            let size = usize::from(header & 0x7fff);
            if header & 0x8000 != 0 {
                payload.extend_from_slice(&rest[2..2 + size]);
            } else {
                payload.extend(zstd::bulk::decompress(&rest[2..2 + size], METADATA_SIZE).unwrap());
            }
            rest = &rest[2 + size..];
        }
        payload.split_off(listing_start)
    }

    #[test]
    fn runs_split_on_count_inode_block_and_number_distance() {
        let names: Vec<Vec<u8>> = (0..600).map(|i| format!("n{i:04}").into_bytes()).collect();
        let mut entries: Vec<DirEntry> = names.iter().map(|n| entry(n, 0, 1)).collect();
        for (i, e) in entries.iter_mut().enumerate() {
            e.number = 10 + i as u32;
        }
        entries[300].inode.block = 500;
        entries[301].inode.block = 500;
        entries[302].inode.block = 500;
        entries[302].number = 40_000;
        let mut compressor = BlockCompressor::new(3).unwrap();
        let mut table = MetadataWriter::default();
        let listing = write_listing(entries, &mut table, &mut compressor).unwrap();
        let bytes = uncompressed(0, table.finish(&mut compressor).unwrap());
        assert_eq!(bytes.len() as u64, listing.size);
        assert_eq!(
            runs(&bytes),
            vec![
                (256, 0, 10),
                (44, 0, 266),
                (2, 500, 310),
                (1, 500, 40_000),
                (297, 0, 313)
            ]
            .into_iter()
            .flat_map(|(count, block, number)| {
                // The last run has more than 256 entries: it splits at 256.
                if count > 256 {
                    vec![(256, block, number), (count - 256, block, number + 256)]
                } else {
                    vec![(count, block, number)]
                }
            })
            .collect::<Vec<_>>()
        );
        assert!(listing.index.is_empty(), "600 short names fit one block");
    }

    #[test]
    fn large_directories_get_one_index_entry_per_block() {
        let names: Vec<Vec<u8>> = (0..3000)
            .map(|i| format!("entry-with-a-longish-name-{i:05}").into_bytes())
            .collect();
        let entries = names
            .iter()
            .enumerate()
            .map(|(i, n)| entry(n, 0, 1 + i as u32));
        let mut compressor = BlockCompressor::new(3).unwrap();
        let mut table = MetadataWriter::default();
        table.append(&[0u8; 100], &mut compressor).unwrap();
        let listing = write_listing(entries, &mut table, &mut compressor).unwrap();
        assert_eq!(listing.start.offset, 100);
        let bytes = uncompressed(100, table.finish(&mut compressor).unwrap());
        let blocks = (100 + bytes.len()).div_ceil(METADATA_SIZE);
        assert_eq!(listing.index.len(), blocks - 1);
        for index in &listing.index {
            // The header an index entry names starts in the block it names, and its first
            // entry carries the indexed name.
            let at = index.offset as usize;
            let absolute = 100 + at;
            assert_eq!(
                absolute / METADATA_SIZE,
                listing
                    .index
                    .iter()
                    .position(|i| i.offset == index.offset)
                    .unwrap()
                    + 1
            );
            let name_len = usize::from(u16::from_le_bytes([bytes[at + 18], bytes[at + 19]])) + 1;
            assert_eq!(&bytes[at + 20..at + 20 + name_len], index.name);
        }
    }
}
