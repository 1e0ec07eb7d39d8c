//! The squashfs 4.0 format writer.
//!
//! File contents are streamed in with [`ImageWriter::add_file_data`] as the tar is read: full
//! blocks go to a pool of compressor threads through a bounded queue and are written back in
//! order; tails are packed into fragment blocks. [`ImageWriter::finish`] then writes the inode,
//! directory, fragment, id and xattr tables for the final [`Tree`](crate::tree::Tree) and the
//! superblock.

/// Where a regular file's content lives in the image (filled in by the writer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileData {
    /// File size in bytes.
    pub size: u64,
    /// Offset of the first data block in the image (meaningless when there are no blocks).
    pub blocks_start: u64,
    /// Squashfs block size words: on-disk size, bit 24 set when stored uncompressed; 0 for a
    /// sparse (all-zero) block.
    pub block_sizes: Vec<u32>,
    /// Tail packed in a fragment: (fragment index, offset inside the fragment block).
    pub fragment: Option<(u32, u32)>,
    /// Bytes of the file that are in sparse (all-zero, not stored) blocks.
    pub sparse_bytes: u64,
}

/// Settings of the image.
#[derive(Debug, Clone)]
pub struct ImageOptions {
    /// zstd level (default 10, as concil 1.0 ran tar2sqfs).
    pub level: i32,
    /// Block size, a power of two from 4 KiB to 1 MiB (default 128 KiB).
    pub block_size: u32,
    /// Compressor threads; 0 means one per core.
    pub threads: usize,
}

impl Default for ImageOptions {
    fn default() -> Self {
        ImageOptions { level: 10, block_size: 128 * 1024, threads: 0 }
    }
}

/// Errors of the image writer.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("writing the image: {0}")]
    Io(#[from] std::io::Error),
    // The image helper adds precise variants here.
}

/// Writes one squashfs image into `out`, a file opened for writing at offset 0.
pub struct ImageWriter {
    // filled in by the image implementation
}

impl ImageWriter {
    pub fn new(out: std::fs::File, options: &ImageOptions) -> Result<Self, ImageError> {
        let _ = (out, options);
        todo!("image writer")
    }

    /// Streams exactly `size` bytes of one regular file from `data` into the image. An error
    /// reading `data` (or fewer than `size` bytes) is returned as `ImageError::Io` from the reader.
    pub fn add_file_data(
        &mut self,
        data: &mut dyn std::io::Read,
        size: u64,
    ) -> Result<FileData, ImageError> {
        let _ = (data, size);
        todo!("image writer")
    }

    /// Writes all tables for `tree` and the superblock; returns the file, flushed (not synced).
    pub fn finish(self, tree: &crate::tree::Tree) -> Result<std::fs::File, ImageError> {
        let _ = tree;
        todo!("image writer")
    }
}
