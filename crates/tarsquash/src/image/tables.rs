//! The metadata written by [`ImageWriter::finish`](super::ImageWriter::finish): inodes,
//! directories, fragment, id and xattr tables, and the superblock.
//!
//! Two walks over the tree from its root, in the same order: the first numbers the inodes and
//! counts links, the second writes. Each directory's entries are visited in name order,
//! subdirectories first in full, and a directory's inode is written after its listing, which
//! comes after the inodes it names (so the root comes last, as in mksquashfs images). A node
//! reached through several entries (a hard link) gets one inode, written on first sight.
//!
//! Layout after the data blocks: inode table, directory table, fragment table, id table,
//! xattr tables, each ending where the next begins (the kernel checks that), then zeros to a
//! 4 KiB boundary. No export table: NFS export of a layer image is not needed.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};

use super::compressor::BlockCompressor;
use super::directory::{push_component, write_listing, DirEntry, Listing as DirListing};
use super::layout::{
    encode_device, InodeType, MetaRef, Superblock, DEVICE_BLOCK, FLAG_ALWAYS_FRAGMENTS,
    FLAG_COMPRESSOR_OPTIONS, FLAG_DUPLICATES, FLAG_NO_XATTRS, NONE_U32, NO_TABLE,
};
use super::metadata::{lookup_table, MetadataWriter};
use super::pipeline::DataLayout;
use super::xattr::XattrTable;
use super::{FileData, ImageError};
use crate::tree::{Children, Kind, Listed, Node, NodeId, Tree, Xattr};

/// Settings the tables need.
pub(crate) struct TableOptions {
    pub block_size: u32,
    pub level: i32,
}

/// Writes every table after the data in `data.out` and the superblock; returns the file.
pub(crate) fn write_tables(
    data: DataLayout,
    tree: Tree,
    options: &TableOptions,
) -> Result<File, ImageError> {
    let listed = tree.into_listed();
    let plan = number_inodes(&listed);
    let mut compressor = BlockCompressor::new(options.level)?;
    let mut inodes = InodeWriter {
        data: &data,
        block_size: options.block_size,
        plan: &plan,
        inodes: MetadataWriter::default(),
        directories: MetadataWriter::default(),
        xattrs: XattrTable::default(),
        ids: IdTable::default(),
        refs: vec![UNWRITTEN; listed.tree().node_count()],
        compressor: &mut compressor,
    };
    let root = inodes.write_all(&listed)?;
    drop(listed);
    let InodeWriter {
        inodes: inode_writer,
        directories,
        xattrs,
        ids,
        ..
    } = inodes;

    let inode_table = inode_writer.finish(&mut compressor)?;
    let directory_table = directories.finish(&mut compressor)?;
    let mut superblock = Superblock {
        inode_count: plan.inode_count,
        block_size: options.block_size,
        fragment_count: u32::try_from(data.fragments.len())
            .map_err(|_| ImageError::TableTooLarge { table: "fragment" })?,
        flags: FLAG_COMPRESSOR_OPTIONS | FLAG_DUPLICATES | FLAG_ALWAYS_FRAGMENTS,
        // At most 65535 (checked as ids were added).
        id_count: ids.ids.len() as u16,
        root_inode: root.packed(),
        bytes_used: 0,
        id_table_start: 0,
        xattr_id_table_start: NO_TABLE,
        inode_table_start: data.end,
        directory_table_start: data.end + inode_table.len() as u64,
        fragment_table_start: 0,
    };
    let mut offset = superblock.directory_table_start + directory_table.len() as u64;

    let mut fragment_entries = Vec::with_capacity(data.fragments.len() * 16);
    for &(start, size_word) in &data.fragments {
        fragment_entries.extend_from_slice(&start.to_le_bytes());
        fragment_entries.extend_from_slice(&size_word.to_le_bytes());
        fragment_entries.extend_from_slice(&0u32.to_le_bytes());
    }
    let fragment_table = lookup_table(&fragment_entries, offset, &mut compressor)?;
    superblock.fragment_table_start = offset + fragment_table.lookup_offset;
    offset += fragment_table.bytes.len() as u64;

    let id_entries: Vec<u8> = ids.ids.iter().flat_map(|id| id.to_le_bytes()).collect();
    let id_table = lookup_table(&id_entries, offset, &mut compressor)?;
    superblock.id_table_start = offset + id_table.lookup_offset;
    offset += id_table.bytes.len() as u64;

    let xattr_tables = xattrs.finish(offset, &mut compressor)?;
    match &xattr_tables {
        Some(tables) => {
            superblock.xattr_id_table_start = offset + tables.header_offset;
            offset += tables.bytes.len() as u64;
        }
        None => superblock.flags |= FLAG_NO_XATTRS,
    }
    superblock.bytes_used = offset;
    let padded = offset.next_multiple_of(DEVICE_BLOCK);

    let mut out = BufWriter::new(data.out);
    let seek = |out: &mut BufWriter<File>, to: u64| {
        out.seek(SeekFrom::Start(to))
            .map(drop)
            .map_err(|source| ImageError::Write {
                what: "metadata tables",
                source,
            })
    };
    seek(&mut out, data.end)?;
    let pieces: [(&[u8], &'static str); 6] = [
        (&inode_table, "inode table"),
        (&directory_table, "directory table"),
        (&fragment_table.bytes, "fragment table"),
        (&id_table.bytes, "id table"),
        (
            xattr_tables.as_ref().map_or(&[], |t| &t.bytes),
            "xattr tables",
        ),
        (&vec![0; (padded - offset) as usize], "padding"),
    ];
    for (bytes, what) in pieces {
        out.write_all(bytes)
            .map_err(|source| ImageError::Write { what, source })?;
    }
    seek(&mut out, 0)?;
    out.write_all(&superblock.to_bytes())
        .map_err(|source| ImageError::Write {
            what: "superblock",
            source,
        })?;
    let file = out.into_inner().map_err(|error| ImageError::Write {
        what: "superblock",
        source: error.into_error(),
    })?;
    // A dropped duplicate may have left bytes past the end.
    file.set_len(padded).map_err(|source| ImageError::Write {
        what: "image size",
        source,
    })?;
    Ok(file)
}

/// What the first walk found: inode numbers by node (0 = unreachable) and the link counts of
/// nodes named more than once (hard links: few, so not an array by node).
struct Plan {
    numbers: Vec<u32>,
    hard_links: HashMap<NodeId, u32>,
    inode_count: u32,
}

impl Plan {
    /// The link count of a node other than a directory.
    fn links(&self, id: NodeId) -> u32 {
        self.hard_links.get(&id).copied().unwrap_or(1)
    }
}

fn number_inodes(listed: &Listed) -> Plan {
    let mut plan = Plan {
        numbers: vec![0; listed.tree().node_count()],
        hard_links: HashMap::new(),
        inode_count: 0,
    };
    let mut walker = Walker::new(listed);
    while let Some(step) = walker.next() {
        let id = match step {
            Step::Leaf { id, .. } => {
                if plan.numbers[index(id)] != 0 {
                    let links = plan.hard_links.entry(id).or_insert(1);
                    *links = links.saturating_add(1);
                }
                id
            }
            Step::DirDone { id, .. } => id,
        };
        if plan.numbers[index(id)] == 0 {
            plan.inode_count += 1;
            plan.numbers[index(id)] = plan.inode_count;
        }
    }
    plan
}

/// The link count of a directory: its entry in its parent, its own `.`, and each
/// subdirectory's `..`.
fn dir_links(tree: &Tree, children: Children<'_>) -> u32 {
    let subdirs = children.filter(|&(_, child)| tree.is_dir(child)).count();
    u32::try_from(subdirs).unwrap_or(u32::MAX).saturating_add(2)
}

/// `refs` value of a node whose inode is not written yet.
const UNWRITTEN: u64 = u64::MAX;

struct InodeWriter<'a> {
    data: &'a DataLayout,
    block_size: u32,
    plan: &'a Plan,
    inodes: MetadataWriter,
    directories: MetadataWriter,
    xattrs: XattrTable,
    ids: IdTable,
    /// Packed inode reference by node, once written.
    refs: Vec<u64>,
    compressor: &'a mut BlockCompressor,
}

impl InodeWriter<'_> {
    /// Writes every reachable inode and directory; returns the root inode's reference.
    fn write_all(&mut self, listed: &Listed) -> Result<MetaRef, ImageError> {
        let tree = listed.tree();
        let mut walker = Walker::new(listed);
        while let Some(step) = walker.next() {
            match step {
                Step::Leaf { id, node, name } => {
                    if self.refs[index(id)] == UNWRITTEN {
                        let path = || walker.path(name);
                        let inode = self.write_leaf(tree, id, node, path)?;
                        self.refs[index(id)] = inode.packed();
                    }
                }
                Step::DirDone {
                    id,
                    node,
                    name,
                    children,
                    parent,
                } => {
                    let path = || walker.path(name);
                    let links = dir_links(tree, children.clone());
                    let entries = children.map(|(name, child)| {
                        let packed = self.refs.get(index(child)).copied().unwrap_or(UNWRITTEN);
                        let kind = basic_type(&tree.node(child).kind);
                        DirEntry {
                            name,
                            inode: MetaRef::unpack(packed),
                            number: self.plan.numbers.get(index(child)).copied().unwrap_or(0),
                            kind,
                        }
                    });
                    let listing = write_listing(entries, &mut self.directories, self.compressor)?;
                    let parent_number = match parent {
                        Some(parent) => self.plan.numbers[index(parent)],
                        // The root's parent is one past the last inode, as mksquashfs writes it.
                        None => self.plan.inode_count + 1,
                    };
                    let xattrs = tree.xattrs(node);
                    let inode = DirInode {
                        id,
                        node,
                        xattrs,
                        links,
                        parent: parent_number,
                    };
                    let inode = self.write_dir(&inode, &listing, &path)?;
                    self.refs[index(id)] = inode.packed();
                }
            }
        }
        // The walk ends with the root (a directory: the tree has no other kind of root).
        Ok(MetaRef::unpack(self.refs[index(tree.root())]))
    }

    /// Starts an inode: its type, then the common header.
    fn header(&mut self, kind: u16, node: &Node, id: NodeId) -> Result<Vec<u8>, ImageError> {
        let uid = self.ids.index(node.uid)?;
        let gid = self.ids.index(node.gid)?;
        let mut bytes = Vec::with_capacity(64);
        bytes.extend_from_slice(&kind.to_le_bytes());
        bytes.extend_from_slice(&(node.mode & 0o7777).to_le_bytes());
        bytes.extend_from_slice(&uid.to_le_bytes());
        bytes.extend_from_slice(&gid.to_le_bytes());
        bytes.extend_from_slice(&node.mtime.to_le_bytes());
        bytes.extend_from_slice(&self.plan.numbers[index(id)].to_le_bytes());
        Ok(bytes)
    }

    fn append(&mut self, bytes: &[u8]) -> Result<MetaRef, ImageError> {
        let position = self.inodes.position();
        self.inodes.append(bytes, self.compressor)?;
        Ok(position)
    }

    fn write_leaf(
        &mut self,
        tree: &Tree,
        id: NodeId,
        node: &Node,
        path: impl Fn() -> String,
    ) -> Result<MetaRef, ImageError> {
        let xattr = self.xattrs.id(tree.xattrs(node), &path, self.compressor)?;
        let links = self.plan.links(id);
        let extended = xattr != NONE_U32;
        let mut bytes;
        match node.kind {
            Kind::File(file) => return self.write_file(id, node, &file, xattr, &path),
            Kind::Symlink(target) => {
                let target = tree.symlink_target(target);
                let kind = InodeType::Symlink;
                bytes = self.header(type_number(kind, extended), node, id)?;
                let size = u32::try_from(target.len()).map_err(|_| ImageError::EntryTooLarge {
                    path: path(),
                    what: "symlink target",
                })?;
                bytes.extend_from_slice(&links.to_le_bytes());
                bytes.extend_from_slice(&size.to_le_bytes());
                bytes.extend_from_slice(target);
            }
            Kind::CharDevice { major, minor } | Kind::BlockDevice { major, minor } => {
                let kind = match node.kind {
                    Kind::CharDevice { .. } => InodeType::CharDevice,
                    _ => InodeType::BlockDevice,
                };
                let device =
                    encode_device(major, minor).ok_or_else(|| ImageError::DeviceNumber {
                        path: path(),
                        major,
                        minor,
                    })?;
                bytes = self.header(type_number(kind, extended), node, id)?;
                bytes.extend_from_slice(&links.to_le_bytes());
                bytes.extend_from_slice(&device.to_le_bytes());
            }
            Kind::Fifo | Kind::Socket => {
                let kind = match node.kind {
                    Kind::Fifo => InodeType::Fifo,
                    _ => InodeType::Socket,
                };
                bytes = self.header(type_number(kind, extended), node, id)?;
                bytes.extend_from_slice(&links.to_le_bytes());
            }
            Kind::Dir { .. } => unreachable!("the walker steps into directories"),
        }
        if extended {
            bytes.extend_from_slice(&xattr.to_le_bytes());
        }
        self.append(&bytes)
    }

    fn write_file(
        &mut self,
        id: NodeId,
        node: &Node,
        file: &FileData,
        xattr: u32,
        path: &dyn Fn() -> String,
    ) -> Result<MetaRef, ImageError> {
        let foreign = || ImageError::ForeignFileData { path: path() };
        let block_size = u64::from(self.block_size);
        let size = file.size();
        let full_blocks = usize::try_from(size / block_size).map_err(|_| foreign())?;
        let (start, words) = match file.block_list() {
            Some(list) => {
                let list = self
                    .data
                    .block_lists
                    .get(list as usize)
                    .ok_or_else(foreign)?;
                let words = list
                    .first_word
                    .checked_add(full_blocks)
                    .and_then(|end| self.data.words.get(list.first_word..end))
                    .ok_or_else(foreign)?;
                (list.start, words)
            }
            None if full_blocks == 0 => (0, &[][..]),
            None => return Err(foreign()),
        };
        let (fragment, fragment_offset) = match file.fragment() {
            Some(fragment) if (fragment.index as usize) < self.data.fragments.len() => {
                (fragment.index, fragment.offset)
            }
            None if size.is_multiple_of(block_size) => (NONE_U32, 0),
            _ => return Err(foreign()),
        };
        let sparse = words.iter().filter(|&&word| word == 0).count() as u64 * block_size;
        let links = self.plan.links(id);
        let extended = xattr != NONE_U32
            || links > 1
            || sparse > 0
            || size > u64::from(u32::MAX)
            || start > u64::from(u32::MAX);
        let mut bytes = self.header(type_number(InodeType::File, extended), node, id)?;
        if extended {
            bytes.extend_from_slice(&start.to_le_bytes());
            bytes.extend_from_slice(&size.to_le_bytes());
            bytes.extend_from_slice(&sparse.to_le_bytes());
            bytes.extend_from_slice(&links.to_le_bytes());
            bytes.extend_from_slice(&fragment.to_le_bytes());
            bytes.extend_from_slice(&fragment_offset.to_le_bytes());
            bytes.extend_from_slice(&xattr.to_le_bytes());
        } else {
            // Both fit in 32 bits, or the inode would be extended.
            bytes.extend_from_slice(&(start as u32).to_le_bytes());
            bytes.extend_from_slice(&fragment.to_le_bytes());
            bytes.extend_from_slice(&fragment_offset.to_le_bytes());
            bytes.extend_from_slice(&(size as u32).to_le_bytes());
        }
        for word in words {
            bytes.extend_from_slice(&word.to_le_bytes());
        }
        self.append(&bytes)
    }

    fn write_dir(
        &mut self,
        inode: &DirInode<'_>,
        listing: &DirListing<'_>,
        path: &dyn Fn() -> String,
    ) -> Result<MetaRef, ImageError> {
        let DirInode {
            id,
            node,
            xattrs,
            links,
            parent,
        } = *inode;
        let xattr = self.xattrs.id(xattrs, path, self.compressor)?;
        let too_large = || ImageError::EntryTooLarge {
            path: path(),
            what: "directory",
        };
        // Readers count the "." and ".." entries as 3 bytes.
        let size = u32::try_from(listing.size + 3).map_err(|_| too_large())?;
        let block = u32::try_from(listing.start.block)
            .map_err(|_| ImageError::TableTooLarge { table: "directory" })?;
        let index_count = u16::try_from(listing.index.len()).map_err(|_| too_large())?;
        let extended = xattr != NONE_U32 || index_count > 0 || size > u32::from(u16::MAX);
        let mut bytes = self.header(type_number(InodeType::Dir, extended), node, id)?;
        if extended {
            bytes.extend_from_slice(&links.to_le_bytes());
            bytes.extend_from_slice(&size.to_le_bytes());
            bytes.extend_from_slice(&block.to_le_bytes());
            bytes.extend_from_slice(&parent.to_le_bytes());
            bytes.extend_from_slice(&index_count.to_le_bytes());
            bytes.extend_from_slice(&listing.start.offset.to_le_bytes());
            bytes.extend_from_slice(&xattr.to_le_bytes());
            for entry in &listing.index {
                let block = u32::try_from(entry.block)
                    .map_err(|_| ImageError::TableTooLarge { table: "directory" })?;
                bytes.extend_from_slice(&entry.offset.to_le_bytes());
                bytes.extend_from_slice(&block.to_le_bytes());
                // Listed names are 1 to 256 bytes.
                bytes.extend_from_slice(&(entry.name.len() as u32 - 1).to_le_bytes());
                bytes.extend_from_slice(entry.name);
            }
        } else {
            bytes.extend_from_slice(&block.to_le_bytes());
            bytes.extend_from_slice(&links.to_le_bytes());
            bytes.extend_from_slice(&(size as u16).to_le_bytes());
            bytes.extend_from_slice(&listing.start.offset.to_le_bytes());
            bytes.extend_from_slice(&parent.to_le_bytes());
        }
        self.append(&bytes)
    }
}

/// What a directory inode holds besides its listing.
#[derive(Clone, Copy)]
struct DirInode<'t> {
    id: NodeId,
    node: &'t Node,
    xattrs: &'t [Xattr],
    links: u32,
    /// The parent's inode number.
    parent: u32,
}

fn type_number(kind: InodeType, extended: bool) -> u16 {
    if extended {
        kind.extended()
    } else {
        kind.basic()
    }
}

fn basic_type(kind: &Kind) -> u16 {
    match kind {
        Kind::Dir { .. } => InodeType::Dir,
        Kind::File(_) => InodeType::File,
        Kind::Symlink(_) => InodeType::Symlink,
        Kind::CharDevice { .. } => InodeType::CharDevice,
        Kind::BlockDevice { .. } => InodeType::BlockDevice,
        Kind::Fifo => InodeType::Fifo,
        Kind::Socket => InodeType::Socket,
    }
    .basic()
}

fn index(id: NodeId) -> usize {
    id.index()
}

/// The uid/gid table: each distinct id once, in order of first use.
#[derive(Default)]
struct IdTable {
    ids: Vec<u32>,
    index: HashMap<u32, u16>,
}

impl IdTable {
    fn index(&mut self, id: u32) -> Result<u16, ImageError> {
        if let Some(&index) = self.index.get(&id) {
            return Ok(index);
        }
        // The superblock counts ids in 16 bits.
        let index = u16::try_from(self.ids.len())
            .ok()
            .filter(|&index| index != u16::MAX)
            .ok_or(ImageError::TooManyIds)?;
        self.ids.push(id);
        self.index.insert(id, index);
        Ok(index)
    }
}

/// Depth-first walk from the root without recursion (paths can be arbitrarily deep). The
/// tree is well formed (see [`crate::tree`]): every directory is entered once.
struct Walker<'t> {
    listed: &'t Listed,
    stack: Vec<Frame<'t>>,
}

struct Frame<'t> {
    id: NodeId,
    name: &'t [u8],
    rest: Children<'t>,
}

enum Step<'t> {
    /// An entry naming anything but a directory.
    Leaf {
        id: NodeId,
        node: &'t Node,
        name: &'t [u8],
    },
    /// A directory all of whose entries were stepped through (subdirectories in full).
    DirDone {
        id: NodeId,
        node: &'t Node,
        name: &'t [u8],
        children: Children<'t>,
        parent: Option<NodeId>,
    },
}

impl<'t> Walker<'t> {
    fn new(listed: &'t Listed) -> Self {
        let root = listed.tree().root();
        Walker {
            listed,
            stack: vec![Frame {
                id: root,
                name: b"",
                rest: listed.children(root),
            }],
        }
    }

    fn next(&mut self) -> Option<Step<'t>> {
        let tree = self.listed.tree();
        loop {
            let frame = self.stack.last_mut()?;
            let Some((name, id)) = frame.rest.next() else {
                let done = self.stack.pop()?;
                return Some(Step::DirDone {
                    id: done.id,
                    node: tree.node(done.id),
                    name: done.name,
                    children: self.listed.children(done.id),
                    parent: self.stack.last().map(|frame| frame.id),
                });
            };
            let node = tree.node(id);
            if !matches!(node.kind, Kind::Dir { .. }) {
                return Some(Step::Leaf { id, node, name });
            }
            self.stack.push(Frame {
                id,
                name,
                rest: self.listed.children(id),
            });
        }
    }

    /// The path of entry `name` in the directory being walked (of the directory just done,
    /// for [`Step::DirDone`]), for error messages.
    fn path(&self, name: &[u8]) -> String {
        let mut path = String::new();
        for frame in self.stack.iter().skip(1) {
            push_component(&mut path, frame.name);
        }
        if !name.is_empty() {
            push_component(&mut path, name);
        }
        if path.is_empty() {
            path.push('/');
        }
        path
    }
}
