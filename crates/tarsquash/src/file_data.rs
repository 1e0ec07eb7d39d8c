//! The handle of a regular file's data in the image ([`FileData`]): made by the image writer,
//! kept by the tree, resolved by the image writer when it writes the tables. Its own module so
//! that the tree and the image writer both use it without using each other's insides.

/// "None" in a packed field (the image format's own `NONE_U32` too).
const NONE: u32 = u32::MAX;

/// Where a regular file's content lives in the image: a handle that the image writer's
/// `finish` resolves (compressed block sizes are known only once the blocks are written).
///
/// The tree keeps one per file, so it is packed into 20 bytes of 4-byte alignment: the size in
/// two halves, "none" as `u32::MAX` rather than an `Option`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileData {
    /// File size in bytes: low and high 32 bits.
    size: [u32; 2],
    /// Index of the file's block list in the writer (files of at least one full block), or
    /// `NONE`.
    block_list: u32,
    /// Where the tail is, when the size is not a multiple of the block size; the index is
    /// `NONE` when there is none.
    fragment: FragmentRef,
}

impl FileData {
    pub(crate) fn new(
        size: u64,
        block_list: Option<u32>,
        fragment: Option<FragmentRef>,
    ) -> FileData {
        FileData {
            size: [size as u32, (size >> 32) as u32],
            block_list: block_list.unwrap_or(NONE),
            fragment: fragment.unwrap_or(FragmentRef {
                index: NONE,
                offset: 0,
            }),
        }
    }

    /// File size in bytes.
    pub fn size(&self) -> u64 {
        u64::from(self.size[0]) | u64::from(self.size[1]) << 32
    }

    pub(crate) fn block_list(&self) -> Option<u32> {
        Some(self.block_list).filter(|&list| list != NONE)
    }

    pub(crate) fn fragment(&self) -> Option<FragmentRef> {
        Some(self.fragment).filter(|fragment| fragment.index != NONE)
    }
}

/// A tail inside a fragment block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FragmentRef {
    pub(crate) index: u32,
    pub(crate) offset: u32,
}
