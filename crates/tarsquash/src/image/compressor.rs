//! zstd compression of data, fragment and metadata blocks.

use super::layout::{DATA_UNCOMPRESSED, METADATA_SIZE, METADATA_UNCOMPRESSED};
use super::ImageError;

/// One reusable zstd context at the image's level (each compressor thread owns one).
pub(crate) struct BlockCompressor {
    zstd: zstd::bulk::Compressor<'static>,
}

/// A block as it goes into the image.
#[derive(Debug)]
pub(crate) enum StoredBlock {
    Compressed(Vec<u8>),
    /// Compression did not make it smaller.
    Raw(Vec<u8>),
}

impl StoredBlock {
    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            StoredBlock::Compressed(bytes) | StoredBlock::Raw(bytes) => bytes,
        }
    }

    /// The size word of data block lists and fragment entries. Blocks are at most 1 MiB, so
    /// the length never reaches the flag bit.
    pub(crate) fn size_word(&self) -> u32 {
        match self {
            StoredBlock::Compressed(bytes) => bytes.len() as u32,
            StoredBlock::Raw(bytes) => bytes.len() as u32 | DATA_UNCOMPRESSED,
        }
    }
}

impl BlockCompressor {
    pub(crate) fn new(level: i32) -> Result<Self, ImageError> {
        let zstd =
            zstd::bulk::Compressor::new(level).map_err(|source| ImageError::Compress { source })?;
        Ok(BlockCompressor { zstd })
    }

    /// Compresses one data or fragment block, keeping it raw unless that saves space.
    pub(crate) fn compress(&mut self, data: Vec<u8>) -> Result<StoredBlock, ImageError> {
        let compressed = self
            .zstd
            .compress(&data)
            .map_err(|source| ImageError::Compress { source })?;
        if compressed.len() < data.len() {
            Ok(StoredBlock::Compressed(compressed))
        } else {
            Ok(StoredBlock::Raw(data))
        }
    }

    /// Appends one metadata block (a 16-bit header, then the payload) holding `payload`, at
    /// most [`METADATA_SIZE`] bytes, compressed when that makes it smaller.
    pub(crate) fn metadata_block(
        &mut self,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), ImageError> {
        debug_assert!(payload.len() <= METADATA_SIZE);
        let compressed = self
            .zstd
            .compress(payload)
            .map_err(|source| ImageError::Compress { source })?;
        // Both lengths are at most 8192, far below the 0x8000 flag bit.
        if compressed.len() < payload.len() {
            out.extend_from_slice(&(compressed.len() as u16).to_le_bytes());
            out.extend_from_slice(&compressed);
        } else {
            let header = payload.len() as u16 | METADATA_UNCOMPRESSED;
            out.extend_from_slice(&header.to_le_bytes());
            out.extend_from_slice(payload);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compressible_blocks_shrink_and_random_ones_stay_raw() {
        let mut compressor = BlockCompressor::new(10).unwrap();
        let text = b"squashfs ".repeat(1000);
        let stored = compressor.compress(text.clone()).unwrap();
        assert!(matches!(stored, StoredBlock::Compressed(_)));
        assert!(stored.size_word() < text.len() as u32);
        assert_eq!(
            zstd::bulk::decompress(stored.bytes(), text.len()).unwrap(),
            text
        );

        // xorshift32 output: nothing for zstd to find.
        let mut state = 0x1234_5678u32;
        let noise: Vec<u8> = (0..65536)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                state as u8
            })
            .collect();
        let stored = compressor.compress(noise.clone()).unwrap();
        assert!(matches!(stored, StoredBlock::Raw(_)));
        assert_eq!(stored.size_word(), noise.len() as u32 | DATA_UNCOMPRESSED);
    }

    #[test]
    fn metadata_blocks_carry_their_stored_size() {
        let mut compressor = BlockCompressor::new(10).unwrap();
        let mut out = Vec::new();
        compressor.metadata_block(&[7u8; 4096], &mut out).unwrap();
        let header = u16::from_le_bytes([out[0], out[1]]);
        assert_eq!(header & METADATA_UNCOMPRESSED, 0);
        assert_eq!(usize::from(header), out.len() - 2);

        let mut out = Vec::new();
        compressor.metadata_block(&[1, 2, 3, 4], &mut out).unwrap();
        assert_eq!(out, [4, 0x80, 1, 2, 3, 4]);
    }
}
