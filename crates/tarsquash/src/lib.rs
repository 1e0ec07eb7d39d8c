//! tarsquash: a streaming tar → squashfs 4.0 writer.
//!
//! One pass over a tar stream (plain, gzip or zstd: see [`decode`]) produces a squashfs image
//! and the sha256 of the uncompressed tar (an OCI layer's diff_id). File data is compressed in
//! blocks on a pool of threads while the tar keeps streaming; only metadata is held in memory.
//!
//! Parts:
//! - [`decode`]: layer media types and magic bytes → decompressing reader.
//! - [`tree`]: the in-memory directory tree with tar semantics (replace, implicit parents,
//!   hard links).
//! - [`image`]: the squashfs format writer (data blocks, fragments, dedup, metadata tables).
//! - [`convert`](crate::convert()): the entry point joining them.

mod convert;
pub mod decode;
mod file_data;
pub mod image;
mod sparse;
mod tar_input;
pub mod tree;

pub use convert::{convert, convert_to_path, Conversion, Error, Limits, Options, Whiteouts};
