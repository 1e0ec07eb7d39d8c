//! Layer compression: from an OCI/Docker layer media type or the stream's magic bytes to a
//! decompressing reader.

/// How a tar stream is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}
