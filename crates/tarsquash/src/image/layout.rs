//! On-disk constants and encodings of squashfs 4.0 (all integers little-endian).
//!
//! Source: the kernel's Documentation/filesystems/squashfs.rst and fs/squashfs/squashfs_fs.h.

/// Size of the superblock at offset 0.
pub(crate) const SUPERBLOCK_SIZE: u64 = 96;
/// Uncompressed payload of one metadata block.
pub(crate) const METADATA_SIZE: usize = 8192;
/// Metadata block header bit: the block is stored uncompressed.
pub(crate) const METADATA_UNCOMPRESSED: u16 = 0x8000;
/// Data/fragment block size word bit: the block is stored uncompressed.
pub(crate) const DATA_UNCOMPRESSED: u32 = 1 << 24;
/// Inode fields meaning "no fragment" / "no xattrs".
pub(crate) const NONE_U32: u32 = u32::MAX;
/// Superblock table offset meaning "no such table".
pub(crate) const NO_TABLE: u64 = u64::MAX;
/// The image end is padded to this multiple (loop devices need whole 4 KiB sectors).
pub(crate) const DEVICE_BLOCK: u64 = 4096;

const MAGIC: u32 = 0x7371_7368;
const COMPRESSION_ZSTD: u16 = 6;

/// Superblock flags.
pub(crate) const FLAG_ALWAYS_FRAGMENTS: u16 = 0x0020;
pub(crate) const FLAG_DUPLICATES: u16 = 0x0040;
pub(crate) const FLAG_NO_XATTRS: u16 = 0x0200;
pub(crate) const FLAG_COMPRESSOR_OPTIONS: u16 = 0x0400;

/// Most entries one directory header may cover.
pub(crate) const MAX_HEADER_ENTRIES: usize = 256;

/// Inode types; the extended variant of each basic type is `basic + 7`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InodeType {
    Dir = 1,
    File = 2,
    Symlink = 3,
    BlockDevice = 4,
    CharDevice = 5,
    Fifo = 6,
    Socket = 7,
}

impl InodeType {
    /// The type number of the basic inode (also what directory entries store).
    pub(crate) fn basic(self) -> u16 {
        self as u16
    }

    pub(crate) fn extended(self) -> u16 {
        self as u16 + 7
    }
}

/// The superblock; table offsets are absolute.
#[derive(Debug, Clone)]
pub(crate) struct Superblock {
    pub inode_count: u32,
    pub block_size: u32,
    pub fragment_count: u32,
    pub flags: u16,
    pub id_count: u16,
    pub root_inode: u64,
    pub bytes_used: u64,
    pub id_table_start: u64,
    pub xattr_id_table_start: u64,
    pub inode_table_start: u64,
    pub directory_table_start: u64,
    pub fragment_table_start: u64,
}

impl Superblock {
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(SUPERBLOCK_SIZE as usize);
        bytes.extend_from_slice(&MAGIC.to_le_bytes());
        bytes.extend_from_slice(&self.inode_count.to_le_bytes());
        // mkfs time is fixed at 0 (as tar2sqfs does) so the image depends only on its input.
        bytes.extend_from_slice(&0u32.to_le_bytes());
        bytes.extend_from_slice(&self.block_size.to_le_bytes());
        bytes.extend_from_slice(&self.fragment_count.to_le_bytes());
        bytes.extend_from_slice(&COMPRESSION_ZSTD.to_le_bytes());
        let block_log = self.block_size.trailing_zeros() as u16;
        bytes.extend_from_slice(&block_log.to_le_bytes());
        bytes.extend_from_slice(&self.flags.to_le_bytes());
        bytes.extend_from_slice(&self.id_count.to_le_bytes());
        bytes.extend_from_slice(&4u16.to_le_bytes());
        bytes.extend_from_slice(&0u16.to_le_bytes());
        for value in [
            self.root_inode,
            self.bytes_used,
            self.id_table_start,
            self.xattr_id_table_start,
            self.inode_table_start,
            self.directory_table_start,
            self.fragment_table_start,
            // No export table: NFS export of a layer image is not needed.
            NO_TABLE,
        ] {
            bytes.extend_from_slice(&value.to_le_bytes());
        }
        bytes
    }
}

/// The zstd compressor options that follow the superblock: the level.
pub(crate) fn zstd_options(level: i32) -> [u8; 4] {
    level.to_le_bytes()
}

/// Encodes a device number as the kernel's `new_encode_dev` does (what squashfs stores):
/// 12 bits of major, 20 bits of minor. `None` when either does not fit.
pub(crate) fn encode_device(major: u32, minor: u32) -> Option<u32> {
    if major > 0xfff || minor > 0xf_ffff {
        return None;
    }
    Some((minor & 0xff) | (major << 8) | ((minor & !0xff) << 12))
}

/// A reference to a position in a metadata table: the table-relative start of the compressed
/// block and the offset inside its uncompressed payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MetaRef {
    pub block: u64,
    pub offset: u16,
}

impl MetaRef {
    /// The packed 64-bit form inodes references and xattr references use.
    pub(crate) fn packed(self) -> u64 {
        (self.block << 16) | u64::from(self.offset)
    }

    pub(crate) fn unpack(packed: u64) -> MetaRef {
        MetaRef {
            block: packed >> 16,
            offset: packed as u16,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_numbers_use_the_kernel_encoding() {
        assert_eq!(encode_device(1, 3), Some(0x103));
        assert_eq!(encode_device(8, 0x12345), Some(0x1230_0845));
        assert_eq!(encode_device(0xfff, 0xf_ffff), Some(0xffff_ffff));
        assert_eq!(encode_device(0x1000, 0), None);
        assert_eq!(encode_device(0, 0x10_0000), None);
    }

    #[test]
    fn superblock_has_the_fields_where_readers_expect_them() {
        let superblock = Superblock {
            inode_count: 3,
            block_size: 1 << 17,
            fragment_count: 2,
            flags: FLAG_COMPRESSOR_OPTIONS,
            id_count: 1,
            root_inode: 0x1234_0056,
            bytes_used: 1000,
            id_table_start: 900,
            xattr_id_table_start: NO_TABLE,
            inode_table_start: 500,
            directory_table_start: 600,
            fragment_table_start: 800,
        };
        let bytes = superblock.to_bytes();
        assert_eq!(bytes.len() as u64, SUPERBLOCK_SIZE);
        assert_eq!(&bytes[0..4], b"hsqs");
        assert_eq!(&bytes[20..22], &6u16.to_le_bytes());
        assert_eq!(&bytes[22..24], &17u16.to_le_bytes());
        assert_eq!(&bytes[28..30], &4u16.to_le_bytes());
        assert_eq!(&bytes[32..40], &0x1234_0056u64.to_le_bytes());
        assert_eq!(&bytes[88..96], &u64::MAX.to_le_bytes());
    }
}
