//! The squashfs 4.0 format writer.
//!
//! File contents are streamed in with [`ImageWriter::add_file_data`] as the tar is read: full
//! blocks go to a pool of compressor threads through a bounded queue and are written back in
//! order by one writer thread (module `pipeline`); tails are packed into fragment blocks.
//! [`ImageWriter::finish`] then writes the inode, directory, fragment, id and xattr tables for
//! the final [`Tree`] and the superblock (module `tables`).
//!
//! What the image holds: zstd at the configured level with the compressor options block (so
//! `unsquashfs -s` shows the level), the configured block size, all-zero full blocks as sparse
//! blocks, blocks that zstd cannot shrink stored raw, every tail in a fragment, identical
//! files and identical tails stored once (matched by sha256), mkfs time 0, no export table,
//! and the end padded to 4 KiB. It depends only on its input, not on the number of threads.
//!
//! Memory: file data passes through a few blocks per compressor thread (two queued and two
//! waiting per thread, plus the one each compresses). Per entry, besides the caller's
//! [`Tree`] and its 20-byte [`FileData`] handles, the writer keeps (measured with a counting
//! allocator, 300,000 small files and 20,000 files of one block and a tail): about 75 bytes
//! per file smaller than a block (the sha256 and place of its tail), about 200 bytes per
//! larger file (also its whole-file sha256, handle and block list) plus 4 bytes per block.
//! `finish` needs about 16 bytes per entry more at its peak (the entries sorted by directory
//! and name, inode numbers and references by node, and the compressed inode and directory
//! tables), less the 4 to 8 of the tree's hash index, which it frees first.
//!
//! Extended attributes outside `user.`, `trusted.` and `security.` cannot be stored in
//! squashfs: `finish` refuses them ([`ImageError::XattrNamespace`]); filter with
//! [`xattr_name_supported`] to skip them instead, as tar2sqfs does.

mod compressor;
mod directory;
mod layout;
mod metadata;
mod pipeline;
mod tables;
mod xattr;

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};

use sha2::{Digest, Sha256};

pub use crate::file_data::FileData;
use crate::file_data::FragmentRef;
use crate::tree::Tree;
use compressor::BlockCompressor;
use layout::{zstd_options, SUPERBLOCK_SIZE};
use pipeline::{Job, Pipeline};
pub use xattr::xattr_name_supported;

/// A block of zeros to compare blocks with (a `memcmp`, fast even in unoptimized builds).
static ZEROS: [u8; MAX_BLOCK_SIZE as usize] = [0; MAX_BLOCK_SIZE as usize];
const MAX_BLOCK_SIZE: u32 = 1 << 20;

/// Settings of the image.
#[derive(Debug, Clone)]
pub struct ImageOptions {
    /// zstd level, 1 to 22 (default 10, as concil 1.0 ran tar2sqfs).
    pub level: i32,
    /// Block size, a power of two from 4 KiB to 1 MiB (default 128 KiB).
    pub block_size: u32,
    /// Compressor threads; 0 means one per core.
    pub threads: usize,
}

impl Default for ImageOptions {
    fn default() -> Self {
        ImageOptions {
            level: 10,
            block_size: 128 * 1024,
            threads: 0,
        }
    }
}

/// Errors of the image writer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImageError {
    #[error("block size {0} is not a power of two from 4096 to 1048576")]
    BlockSize(u32),
    #[error("zstd level {0} is not from 1 to 22")]
    Level(i32),
    #[error("writing the image's {what}")]
    Write {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("reading file data")]
    Read {
        #[source]
        source: std::io::Error,
    },
    #[error("file data ended after {got} of {expected} bytes")]
    ShortInput { expected: u64, got: u64 },
    #[error("zstd compression failed")]
    Compress {
        #[source]
        source: std::io::Error,
    },
    #[error("starting an image writer thread")]
    Spawn {
        #[source]
        source: std::io::Error,
    },
    #[error("an image writer thread panicked")]
    ThreadPanicked,
    #[error("the image writer stopped after an earlier error")]
    Stopped,
    #[error("{path}: the file data was not added by this image writer")]
    ForeignFileData { path: String },
    #[error(
        "extended attribute {name} of {path}: squashfs stores only user., trusted. and security. names"
    )]
    XattrNamespace { path: String, name: String },
    #[error("{path}: {what} too large for squashfs")]
    EntryTooLarge { path: String, what: &'static str },
    #[error("device {major}:{minor} at {path}: squashfs stores majors below 4096 and minors below 1048576")]
    DeviceNumber {
        path: String,
        major: u32,
        minor: u32,
    },
    #[error("more than 65535 distinct uids and gids")]
    TooManyIds,
    #[error("the {table} table is too large for squashfs")]
    TableTooLarge { table: &'static str },
}

/// Writes one squashfs image into `out`, a file opened for writing at offset 0.
///
/// Dropping it without [`finish`](ImageWriter::finish) stops its threads and leaves `out`
/// incomplete.
pub struct ImageWriter {
    block_size: u32,
    level: i32,
    pipeline: Pipeline,
    /// Block lists opened so far; the next file of a full block or more gets this index.
    block_lists: u32,
    /// The fragment block being filled, and its index.
    fragment: Vec<u8>,
    fragment_index: u32,
    /// (sha256, size) of each file of a full block or more → where it is.
    files: HashMap<([u8; 32], u64), FileData>,
    /// sha256 of each stored tail → where it is.
    tails: HashMap<[u8; 32], FragmentRef>,
}

impl ImageWriter {
    pub fn new(mut out: File, options: &ImageOptions) -> Result<Self, ImageError> {
        let block_size = options.block_size;
        if !block_size.is_power_of_two() || !(4096..=MAX_BLOCK_SIZE).contains(&block_size) {
            return Err(ImageError::BlockSize(block_size));
        }
        if !(1..=22).contains(&options.level) {
            return Err(ImageError::Level(options.level));
        }
        let threads = match options.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        // The superblock is written last, over these zeros; the compressor options follow it.
        let mut head = vec![0u8; SUPERBLOCK_SIZE as usize];
        BlockCompressor::new(options.level)?
            .metadata_block(&zstd_options(options.level), &mut head)?;
        out.write_all(&head).map_err(|source| ImageError::Write {
            what: "superblock",
            source,
        })?;
        let pipeline = Pipeline::start(out, head.len() as u64, threads, options.level)?;
        Ok(ImageWriter {
            block_size,
            level: options.level,
            pipeline,
            block_lists: 0,
            fragment: Vec::with_capacity(block_size as usize),
            fragment_index: 0,
            files: HashMap::new(),
            tails: HashMap::new(),
        })
    }

    /// Streams exactly `size` bytes of one regular file from `data` into the image.
    ///
    /// A failing `data` gives [`ImageError::Read`], one that ends early
    /// [`ImageError::ShortInput`]; either way nothing of the file stays in the image, and the
    /// writer can go on with other files.
    pub fn add_file_data(
        &mut self,
        data: &mut dyn Read,
        size: u64,
    ) -> Result<FileData, ImageError> {
        let block_size = u64::from(self.block_size);
        let full_blocks = size / block_size;
        let mut hash = Sha256::new();
        for block in 0..full_blocks {
            let first = block == 0;
            let chunk = match read_chunk(data, block_size, block * block_size, size) {
                Ok(chunk) => chunk,
                Err(error) => {
                    if !first {
                        self.pipeline.submit(Job::DropFile)?;
                    }
                    return Err(error);
                }
            };
            hash.update(&chunk);
            let job = if chunk[..] == ZEROS[..chunk.len()] {
                Job::SparseBlock { first }
            } else {
                Job::FileBlock { first, data: chunk }
            };
            self.pipeline.submit(job)?;
        }
        let tail = match read_chunk(data, size % block_size, full_blocks * block_size, size) {
            Ok(tail) => tail,
            Err(error) => {
                if full_blocks > 0 {
                    self.pipeline.submit(Job::DropFile)?;
                }
                return Err(error);
            }
        };
        let block_list = if full_blocks > 0 {
            hash.update(&tail);
            let key = (hash.finalize().into(), size);
            if let Some(&earlier) = self.files.get(&key) {
                self.pipeline.submit(Job::DropFile)?;
                return Ok(earlier);
            }
            let list = self.block_lists;
            self.block_lists += 1;
            Some((list, key))
        } else {
            None
        };
        let fragment = if tail.is_empty() {
            None
        } else {
            Some(self.add_tail(tail)?)
        };
        let file = FileData::new(size, block_list.map(|(list, _)| list), fragment);
        if let Some((_, key)) = block_list {
            self.files.insert(key, file);
        }
        Ok(file)
    }

    /// Places a tail in the fragment block being filled, or finds an identical one.
    fn add_tail(&mut self, tail: Vec<u8>) -> Result<FragmentRef, ImageError> {
        let key: [u8; 32] = Sha256::digest(&tail).into();
        if let Some(&earlier) = self.tails.get(&key) {
            return Ok(earlier);
        }
        if self.fragment.len() + tail.len() > self.block_size as usize {
            self.flush_fragment()?;
        }
        let place = FragmentRef {
            index: self.fragment_index,
            // Below the block size.
            offset: self.fragment.len() as u32,
        };
        self.fragment.extend_from_slice(&tail);
        self.tails.insert(key, place);
        Ok(place)
    }

    fn flush_fragment(&mut self) -> Result<(), ImageError> {
        let data = std::mem::replace(
            &mut self.fragment,
            Vec::with_capacity(self.block_size as usize),
        );
        self.pipeline.submit(Job::Fragment { data })?;
        self.fragment_index += 1;
        Ok(())
    }

    /// Writes all tables for `tree` and the superblock; returns the file, flushed (not synced).
    /// The tree is consumed, so that its hash index (no use once the tree is complete) is
    /// freed before the tables are built.
    pub fn finish(mut self, tree: Tree) -> Result<File, ImageError> {
        if !self.fragment.is_empty() {
            self.flush_fragment()?;
        }
        let data = self.pipeline.finish()?;
        tables::write_tables(
            data,
            tree,
            &tables::TableOptions {
                block_size: self.block_size,
                level: self.level,
            },
        )
    }
}

/// Reads the `len` bytes at `offset` of a file of `size` bytes.
fn read_chunk(
    data: &mut dyn Read,
    len: u64,
    offset: u64,
    size: u64,
) -> Result<Vec<u8>, ImageError> {
    // `len` is at most one block (1 MiB).
    let mut chunk = Vec::with_capacity(len as usize);
    let got = (&mut *data)
        .take(len)
        .read_to_end(&mut chunk)
        .map_err(|source| ImageError::Read { source })?;
    if (got as u64) < len {
        return Err(ImageError::ShortInput {
            expected: size,
            got: offset + got as u64,
        });
    }
    Ok(chunk)
}
