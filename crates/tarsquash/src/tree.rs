//! The directory tree of the image being built, with tar semantics.
//!
//! Nodes live in an arena (`Vec<Node>`) and are referred to by [`NodeId`]. Directory entries
//! (directory, name, node) live in a second arena, found by a hash index on (directory, name);
//! a hard link is a second entry naming the same node. A node that was replaced by a later tar
//! entry simply becomes unreachable from the root; the image writer only emits reachable
//! nodes, counting links as it walks, each directory's entries sorted by name
//! (`Tree::into_listed`).
//!
//! Tar semantics, as [`Tree::insert`] and [`Tree::insert_hard_link`] apply them:
//! - a later entry for a path replaces the earlier one; a directory over a directory keeps the
//!   children and takes the new attributes (so a directory entry that comes after its children
//!   still sets the directory's attributes, and the root's attributes come from a `./` entry);
//! - parents the tar does not list are created as [`Meta::implicit_dir`] (0755, root:root,
//!   mtime 0, as tar2sqfs makes them), whatever the order of the entries;
//! - an entry below a non-directory is an error, not a replacement of that non-directory.
//!
//! Only these operations build a tree, so every tree the image writer gets is well formed: the
//! root is a directory, every entry names a node of the tree, no directory is listed twice (a
//! hard link to a directory is refused), names are valid path components of 1 to 255 bytes.
//!
//! Memory: a layer may hold millions of entries, and the whole tree stays in memory until the
//! image is finished, so its structures are flat arrays without a heap allocation per entry.
//! An entry of a file or directory takes a 44-byte `Node` (attributes, kind, file data
//! handle), a 20-byte directory entry, its name's bytes, and 4 to 8 bytes of hash index:
//! about 75 bytes for names of 8 bytes. Symlink targets (16 bytes and their own allocation)
//! and sets of extended attributes (each distinct set once) are kept aside.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};

use crate::file_data::FileData;

/// Errors of building a [`Tree`]: an entry the tree cannot hold. Entries are named by their
/// path as the tar lists it; a conversion reports each as its own error's variant of the same
/// name, with the same message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TreeError {
    #[error("tar entry {entry:?}: {reason}")]
    InvalidPath { entry: String, reason: &'static str },
    #[error("tar entry {entry:?} leads out of the root")]
    PathEscapesRoot { entry: String },
    #[error("tar entry {entry:?} is below {parent:?}, which is not a directory")]
    NotADirectory { entry: String, parent: String },
    #[error("tar entry {entry:?} names the root, but is not a directory")]
    RootNotDirectory { entry: String },
    #[error("tar entry {entry:?} is a hard link to {target:?}, which is not in the tar before it")]
    HardLinkTargetMissing { entry: String, target: String },
    #[error("tar entry {entry:?} is a hard link to the directory {target:?}")]
    HardLinkToDirectory { entry: String, target: String },
    #[error("tar entry {entry:?}: the image cannot hold more than 2^32 inodes")]
    TooManyNodes { entry: String },
}

/// A node of a [`Tree`] (only a tree hands them out).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(u32);

impl NodeId {
    pub(crate) fn index(self) -> usize {
        self.0 as usize
    }
}

/// One extended attribute: (full name with namespace prefix, value).
pub type Xattr = (Box<[u8]>, Box<[u8]>);

/// Ownership, permissions, time and extended attributes of one inode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    /// Permission bits including setuid/setgid/sticky (`mode & 0o7777`); the type is in `NodeKind`.
    pub mode: u16,
    pub uid: u32,
    pub gid: u32,
    /// Seconds since the epoch, already clamped to the 32 bits squashfs can hold.
    pub mtime: u32,
    /// Extended attributes as (full name with namespace prefix, value), sorted by name.
    pub xattrs: Vec<Xattr>,
}

impl Meta {
    /// The attributes of a directory that the tar does not list (and of a root without `./`).
    pub fn implicit_dir() -> Meta {
        Meta {
            mode: 0o755,
            uid: 0,
            gid: 0,
            mtime: 0,
            xattrs: Vec::new(),
        }
    }

    /// Sets `name` to `value`, keeping the attributes sorted by name.
    pub fn set_xattr(&mut self, name: &[u8], value: &[u8]) {
        match self
            .xattrs
            .binary_search_by(|(existing, _)| existing.as_ref().cmp(name))
        {
            Ok(index) => {
                if let Some(slot) = self.xattrs.get_mut(index) {
                    slot.1 = value.into();
                }
            }
            Err(index) => self.xattrs.insert(index, (name.into(), value.into())),
        }
    }
}

/// What a new node is.
#[derive(Debug, Clone)]
pub enum NodeKind {
    Dir,
    /// A regular file whose data is already in the image.
    File(FileData),
    Symlink(Box<[u8]>),
    CharDevice {
        major: u32,
        minor: u32,
    },
    BlockDevice {
        major: u32,
        minor: u32,
    },
    Fifo,
    Socket,
}

/// What a node is, as the tree keeps it: [`NodeKind`] with the symlink target aside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Where the directory's entries are in [`Listed`]'s order, once the tree is listed.
    Dir {
        first: u32,
        count: u32,
    },
    File(FileData),
    /// Index of the target in `Tree::symlinks`.
    Symlink(u32),
    CharDevice {
        major: u32,
        minor: u32,
    },
    BlockDevice {
        major: u32,
        minor: u32,
    },
    Fifo,
    Socket,
}

/// One inode: [`Meta`] without the allocation of its attribute list.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Node {
    pub kind: Kind,
    pub mode: u16,
    pub uid: u32,
    pub gid: u32,
    pub mtime: u32,
    /// Index of the node's set of extended attributes in `Tree::xattr_sets` (0: none).
    pub xattrs: u32,
}

/// One name in a directory.
#[derive(Debug, Clone, Copy)]
struct Entry {
    dir: NodeId,
    node: NodeId,
    /// The next entry in the same bucket of the hash index (`NO_ENTRY` ends the chain).
    next: u32,
    /// Where the name is in `Tree::names`: its start in the low and middle bits, its length in
    /// the low byte, as two halves so that an entry takes 20 bytes, not 24.
    name: [u32; 2],
}

impl Entry {
    fn name_range(&self) -> std::ops::Range<usize> {
        let packed = u64::from(self.name[0]) | u64::from(self.name[1]) << 32;
        let start = (packed >> 8) as usize;
        start..start + (packed & 0xff) as usize
    }
}

const NO_ENTRY: u32 = u32::MAX;

/// The whole tree; the root (always a directory) is [`Tree::root`].
#[derive(Debug, Clone)]
pub struct Tree {
    nodes: Vec<Node>,
    entries: Vec<Entry>,
    /// The bytes of every name, one after the other.
    names: Vec<u8>,
    /// Hash index of `entries` by (directory, name): the first entry of each bucket, chained
    /// by `Entry::next`. A power of two long, at least as long as `entries`.
    buckets: Vec<u32>,
    /// Keyed at random, so that a hostile layer cannot choose names that all share a bucket.
    hasher: RandomState,
    symlinks: Vec<Box<[u8]>>,
    /// Each distinct set of extended attributes once; index 0 is the empty set.
    xattr_sets: Vec<Box<[Xattr]>>,
    xattr_ids: HashMap<Box<[Xattr]>, u32>,
}

/// The entries of one directory: (name, node), in name order.
#[derive(Clone)]
pub(crate) struct Children<'t> {
    tree: &'t Tree,
    rest: std::slice::Iter<'t, u32>,
}

impl<'t> Iterator for Children<'t> {
    type Item = (&'t [u8], NodeId);

    fn next(&mut self) -> Option<Self::Item> {
        let entry = self.tree.entries.get(*self.rest.next()? as usize)?;
        Some((self.tree.entry_name(entry), entry.node))
    }
}

/// The finished tree with each directory's entries in name order (byte order, as squashfs
/// wants them), for the image writer.
pub(crate) struct Listed {
    tree: Tree,
    /// Entry indices grouped by directory (each group where its `Kind::Dir` says), each group
    /// sorted by name.
    order: Vec<u32>,
}

impl Listed {
    pub(crate) fn tree(&self) -> &Tree {
        &self.tree
    }

    /// The entries of `dir`, in name order.
    pub(crate) fn children(&self, dir: NodeId) -> Children<'_> {
        let group = match self.tree.node(dir).kind {
            Kind::Dir { first, count } => {
                let (first, count) = (first as usize, count as usize);
                self.order.get(first..first + count).unwrap_or_default()
            }
            _ => &[],
        };
        Children {
            tree: &self.tree,
            rest: group.iter(),
        }
    }
}

/// Longest path component Linux accepts (`NAME_MAX`).
const MAX_NAME_LEN: usize = 255;

/// A tar entry's path, normalised the way tar extracts it: a leading `/` and `./`, empty and
/// `.` components are dropped and `..` is resolved lexically (symlinks are never followed, so
/// nothing else can lead out of the root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryPath {
    entry: String,
    components: Vec<Box<[u8]>>,
}

impl EntryPath {
    /// Normalises `raw`, the path as the tar lists it. Fails when it leads out of the root
    /// (`a/../../etc`) or has a component no file system can hold (a NUL byte, over 255 bytes).
    pub fn parse(raw: &[u8]) -> Result<EntryPath, TreeError> {
        let entry = String::from_utf8_lossy(raw).into_owned();
        let mut components: Vec<Box<[u8]>> = Vec::new();
        for component in raw.split(|&byte| byte == b'/') {
            match component {
                b"" | b"." => {}
                b".." => {
                    if components.pop().is_none() {
                        return Err(TreeError::PathEscapesRoot { entry });
                    }
                }
                name => {
                    if let Some(reason) = invalid_name_reason(name) {
                        return Err(TreeError::InvalidPath { entry, reason });
                    }
                    components.push(name.into());
                }
            }
        }
        Ok(EntryPath { entry, components })
    }

    /// The path as the tar lists it (lossy UTF-8), for messages.
    pub fn entry(&self) -> &str {
        &self.entry
    }

    /// The normalised components; empty for the root.
    pub fn components(&self) -> &[Box<[u8]>] {
        &self.components
    }

    /// The last component; `None` for the root.
    pub fn file_name(&self) -> Option<&[u8]> {
        self.components.last().map(|name| name.as_ref())
    }

    /// The directory holding this path (the root holds itself); same entry name.
    pub fn parent(&self) -> EntryPath {
        let parents = self
            .components
            .split_last()
            .map_or(&[][..], |(_, parents)| parents);
        EntryPath {
            entry: self.entry.clone(),
            components: parents.to_vec(),
        }
    }

    /// This path with its last component replaced by `name` (or `name` itself for the root);
    /// same entry name.
    pub fn with_file_name(&self, name: &[u8]) -> Result<EntryPath, TreeError> {
        if let Some(reason) = invalid_name_reason(name) {
            return Err(TreeError::InvalidPath {
                entry: self.entry.clone(),
                reason,
            });
        }
        let mut path = self.parent();
        path.components.push(name.into());
        Ok(path)
    }

    fn display_prefix(&self, len: usize) -> String {
        let prefix = self.components.get(..len).unwrap_or(&self.components);
        String::from_utf8_lossy(&prefix.join(&b'/')).into_owned()
    }
}

fn invalid_name_reason(name: &[u8]) -> Option<&'static str> {
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') {
        Some("a path component is empty, `.`, `..` or holds `/`")
    } else if name.contains(&0) {
        Some("a path component holds a NUL byte")
    } else if name.len() > MAX_NAME_LEN {
        Some("a path component is longer than 255 bytes")
    } else {
        None
    }
}

impl Tree {
    /// A tree holding only the root directory, with attributes `root`.
    pub fn new(root: Meta) -> Tree {
        let mut tree = Tree {
            nodes: Vec::new(),
            entries: Vec::new(),
            names: Vec::new(),
            buckets: vec![NO_ENTRY; 64],
            hasher: RandomState::new(),
            symlinks: Vec::new(),
            xattr_sets: vec![Box::default()],
            xattr_ids: HashMap::new(),
        };
        let xattrs = tree.xattr_set(root.xattrs);
        tree.nodes.push(Node {
            kind: Kind::Dir { first: 0, count: 0 },
            mode: root.mode,
            uid: root.uid,
            gid: root.gid,
            mtime: root.mtime,
            xattrs,
        });
        tree
    }

    pub fn root(&self) -> NodeId {
        NodeId(0)
    }

    /// The number of nodes, reachable or not (node indices are below it).
    pub(crate) fn node_count(&self) -> usize {
        self.nodes.len()
    }

    pub(crate) fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id.index()]
    }

    pub(crate) fn symlink_target(&self, index: u32) -> &[u8] {
        self.symlinks
            .get(index as usize)
            .map_or(&[], |target| target)
    }

    pub(crate) fn xattrs(&self, node: &Node) -> &[Xattr] {
        self.xattr_sets
            .get(node.xattrs as usize)
            .map_or(&[], |set| set)
    }

    pub(crate) fn is_dir(&self, id: NodeId) -> bool {
        matches!(self.node(id).kind, Kind::Dir { .. })
    }

    /// Sets the extended attribute `name` of `id` to `value`.
    pub fn set_xattr(&mut self, id: NodeId, name: &[u8], value: &[u8]) {
        let mut meta = self.meta(id);
        meta.set_xattr(name, value);
        self.nodes[id.index()].xattrs = self.xattr_set(meta.xattrs);
    }

    /// The attributes of `id`.
    pub fn meta(&self, id: NodeId) -> Meta {
        let node = self.node(id);
        Meta {
            mode: node.mode,
            uid: node.uid,
            gid: node.gid,
            mtime: node.mtime,
            xattrs: self.xattrs(node).to_vec(),
        }
    }

    /// The node at `path`, if there is one (without creating anything).
    pub fn lookup(&self, path: &EntryPath) -> Option<NodeId> {
        path.components.iter().try_fold(self.root(), |dir, name| {
            let entry = self.find(dir, name)?;
            Some(self.entries[entry as usize].node)
        })
    }

    /// Puts a node of `kind` with `meta` at `path`, replacing what was there. A directory over
    /// a directory keeps the existing node and its children and takes `meta`. Missing parents
    /// are created as implicit directories.
    pub fn insert(
        &mut self,
        path: &EntryPath,
        kind: NodeKind,
        meta: Meta,
    ) -> Result<NodeId, TreeError> {
        let Some(name) = path.file_name() else {
            return match kind {
                NodeKind::Dir => {
                    self.set_meta(self.root(), meta);
                    Ok(self.root())
                }
                _ => Err(TreeError::RootNotDirectory {
                    entry: path.entry.clone(),
                }),
            };
        };
        let parent = self.parent_dir(path)?;
        let existing = self.find(parent, name);
        if let (NodeKind::Dir, Some(entry)) = (&kind, existing) {
            let node = self.entries[entry as usize].node;
            if self.is_dir(node) {
                self.set_meta(node, meta);
                return Ok(node);
            }
        }
        let id = self.push(kind, meta, path)?;
        self.link(parent, name, existing, id, path)?;
        Ok(id)
    }

    /// Makes `path` a second name of the node at `target` (a hard link), replacing what was
    /// at `path`. The target must exist and must not be a directory.
    pub fn insert_hard_link(
        &mut self,
        path: &EntryPath,
        target: &EntryPath,
    ) -> Result<NodeId, TreeError> {
        let Some(id) = self.lookup(target) else {
            return Err(TreeError::HardLinkTargetMissing {
                entry: path.entry.clone(),
                target: target.entry.clone(),
            });
        };
        if self.is_dir(id) {
            return Err(TreeError::HardLinkToDirectory {
                entry: path.entry.clone(),
                target: target.entry.clone(),
            });
        }
        let Some(name) = path.file_name() else {
            return Err(TreeError::RootNotDirectory {
                entry: path.entry.clone(),
            });
        };
        let parent = self.parent_dir(path)?;
        let existing = self.find(parent, name);
        self.link(parent, name, existing, id, path)?;
        Ok(id)
    }

    /// The directory at `path`, created (with its parents) as an implicit directory if
    /// missing.
    pub fn ensure_dir(&mut self, path: &EntryPath) -> Result<NodeId, TreeError> {
        self.walk_dirs(path, path.components.len())
    }

    /// The directory that holds `path`, creating missing parents.
    fn parent_dir(&mut self, path: &EntryPath) -> Result<NodeId, TreeError> {
        self.walk_dirs(path, path.components.len().saturating_sub(1))
    }

    /// Walks the first `depth` components of `path` from the root, creating missing
    /// directories; a non-directory on the way is an error.
    fn walk_dirs(&mut self, path: &EntryPath, depth: usize) -> Result<NodeId, TreeError> {
        let mut dir = self.root();
        for (index, name) in path.components.iter().take(depth).enumerate() {
            let existing = self.find(dir, name);
            dir = match existing.map(|entry| self.entries[entry as usize].node) {
                Some(child) if self.is_dir(child) => child,
                Some(_) => {
                    return Err(TreeError::NotADirectory {
                        entry: path.entry.clone(),
                        parent: path.display_prefix(index + 1),
                    })
                }
                None => {
                    let child = self.push(NodeKind::Dir, Meta::implicit_dir(), path)?;
                    self.link(dir, name, None, child, path)?;
                    child
                }
            };
        }
        Ok(dir)
    }

    fn set_meta(&mut self, id: NodeId, meta: Meta) {
        let xattrs = self.xattr_set(meta.xattrs);
        let node = &mut self.nodes[id.index()];
        node.mode = meta.mode;
        node.uid = meta.uid;
        node.gid = meta.gid;
        node.mtime = meta.mtime;
        node.xattrs = xattrs;
    }

    /// The index of `xattrs` in `xattr_sets`, added if new.
    fn xattr_set(&mut self, xattrs: Vec<Xattr>) -> u32 {
        if xattrs.is_empty() {
            return 0;
        }
        let set = xattrs.into_boxed_slice();
        if let Some(&index) = self.xattr_ids.get(&set) {
            return index;
        }
        // Each set comes from a different tar entry, of which there are fewer than 2^32
        // (`push` checks the node count, which grows with every entry).
        let index = self.xattr_sets.len() as u32;
        self.xattr_sets.push(set.clone());
        self.xattr_ids.insert(set, index);
        index
    }

    fn hash(&self, dir: NodeId, name: &[u8]) -> usize {
        self.hasher.hash_one((dir.0, name)) as usize
    }

    fn entry_name(&self, entry: &Entry) -> &[u8] {
        self.names.get(entry.name_range()).unwrap_or_default()
    }

    /// The entry named `name` in `dir`.
    fn find(&self, dir: NodeId, name: &[u8]) -> Option<u32> {
        // No buckets: the index was dropped for listing (`into_listed`), nothing is looked up.
        let bucket = self.hash(dir, name) & self.buckets.len().checked_sub(1)?;
        let mut at = self.buckets[bucket];
        while let Some(entry) = self.entries.get(at as usize) {
            if entry.dir == dir && self.entry_name(entry) == name {
                return Some(at);
            }
            at = entry.next;
        }
        None
    }

    /// Makes `name` in `dir` name `node`: `existing` is the entry that has that name, if any.
    fn link(
        &mut self,
        dir: NodeId,
        name: &[u8],
        existing: Option<u32>,
        node: NodeId,
        path: &EntryPath,
    ) -> Result<(), TreeError> {
        if let Some(entry) = existing {
            self.entries[entry as usize].node = node;
            return Ok(());
        }
        // Fewer entries than 2^32 - 1, so that `NO_ENTRY` names none.
        let index = u32::try_from(self.entries.len())
            .ok()
            .filter(|&index| index != NO_ENTRY)
            .ok_or_else(|| TreeError::TooManyNodes {
                entry: path.entry.clone(),
            })?;
        // Names are path components of 1 to 255 bytes (`EntryPath` checks).
        let packed = (self.names.len() as u64) << 8 | name.len() as u64;
        self.names.extend_from_slice(name);
        let bucket = self.hash(dir, name) & (self.buckets.len() - 1);
        self.entries.push(Entry {
            dir,
            node,
            next: self.buckets[bucket],
            name: [packed as u32, (packed >> 32) as u32],
        });
        self.buckets[bucket] = index;
        if self.entries.len() > self.buckets.len() {
            self.grow_index();
        }
        Ok(())
    }

    /// Doubles the hash index, so that chains stay about one entry long.
    fn grow_index(&mut self) {
        let mut buckets = vec![NO_ENTRY; self.buckets.len() * 2];
        let mask = buckets.len() - 1;
        for index in 0..self.entries.len() {
            let entry = self.entries[index];
            let bucket = self.hash(entry.dir, self.entry_name(&entry)) & mask;
            self.entries[index].next = buckets[bucket];
            buckets[bucket] = index as u32;
        }
        self.buckets = buckets;
    }

    fn push(&mut self, kind: NodeKind, meta: Meta, path: &EntryPath) -> Result<NodeId, TreeError> {
        let too_many = || TreeError::TooManyNodes {
            entry: path.entry.clone(),
        };
        let id = u32::try_from(self.nodes.len()).map_err(|_| too_many())?;
        let kind = match kind {
            NodeKind::Dir => Kind::Dir { first: 0, count: 0 },
            NodeKind::File(data) => Kind::File(data),
            NodeKind::Symlink(target) => {
                let index = u32::try_from(self.symlinks.len()).map_err(|_| too_many())?;
                self.symlinks.push(target);
                Kind::Symlink(index)
            }
            NodeKind::CharDevice { major, minor } => Kind::CharDevice { major, minor },
            NodeKind::BlockDevice { major, minor } => Kind::BlockDevice { major, minor },
            NodeKind::Fifo => Kind::Fifo,
            NodeKind::Socket => Kind::Socket,
        };
        let xattrs = self.xattr_set(meta.xattrs);
        self.nodes.push(Node {
            kind,
            mode: meta.mode,
            uid: meta.uid,
            gid: meta.gid,
            mtime: meta.mtime,
            xattrs,
        });
        Ok(NodeId(id))
    }

    /// The tree as the image writer reads it: each directory's entries sorted by name. The
    /// hash index goes first, so that its memory is free for the writer's tables.
    pub(crate) fn into_listed(mut self) -> Listed {
        self.buckets = Vec::new();
        // A counting sort by directory, the counts and then the starts kept in the directories'
        // nodes (which have room for them) rather than in an array by node.
        for entry in &self.entries {
            if let Kind::Dir { count, .. } = &mut self.nodes[entry.dir.index()].kind {
                *count += 1;
            }
        }
        let mut start = 0u32;
        for node in &mut self.nodes {
            if let Kind::Dir { first, count } = &mut node.kind {
                *first = start;
                // There are fewer than 2^32 entries (`link` checks).
                start += *count;
                *count = 0;
            }
        }
        let mut order = vec![0u32; self.entries.len()];
        for (index, entry) in self.entries.iter().enumerate() {
            if let Kind::Dir { first, count } = &mut self.nodes[entry.dir.index()].kind {
                order[(*first + *count) as usize] = index as u32;
                *count += 1;
            }
        }
        for node in &self.nodes {
            if let Kind::Dir { first, count } = node.kind {
                let group = &mut order[first as usize..(first + count) as usize];
                // Names in a directory are distinct, so the unstable sort has one result.
                group.sort_unstable_by(|a, b| {
                    let name = |entry: &u32| self.entry_name(&self.entries[*entry as usize]);
                    name(a).cmp(name(b))
                });
            }
        }
        Listed { tree: self, order }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(raw: &str) -> EntryPath {
        EntryPath::parse(raw.as_bytes()).unwrap()
    }

    fn meta(mode: u16, mtime: u32) -> Meta {
        Meta {
            mode,
            uid: 1000,
            gid: 100,
            mtime,
            xattrs: Vec::new(),
        }
    }

    fn dir() -> NodeKind {
        NodeKind::Dir
    }

    fn symlink(target: &str) -> NodeKind {
        NodeKind::Symlink(target.as_bytes().into())
    }

    fn names(tree: &Tree, dir: &str) -> Vec<String> {
        let id = tree.lookup(&path(dir)).unwrap();
        assert!(tree.is_dir(id), "{dir} is not a directory");
        let listed = tree.clone().into_listed();
        listed.children(id).map(|(name, _)| lossy(name)).collect()
    }

    fn target(tree: &Tree, id: NodeId) -> String {
        match tree.node(id).kind {
            Kind::Symlink(index) => lossy(tree.symlink_target(index)),
            other => panic!("not a symlink: {other:?}"),
        }
    }

    fn lossy(bytes: &[u8]) -> String {
        String::from_utf8_lossy(bytes).into_owned()
    }

    #[test]
    fn paths_are_normalised_like_tar_extracts_them() {
        let cases = [
            ("a/b", vec!["a", "b"]),
            ("/a/b/", vec!["a", "b"]),
            ("./a//./b", vec!["a", "b"]),
            ("a/../b", vec!["b"]),
            ("a/b/../../c", vec!["c"]),
            ("./", vec![]),
            ("/", vec![]),
            (".", vec![]),
            ("", vec![]),
            ("a/..", vec![]),
        ];
        for (raw, expected) in cases {
            let components: Vec<String> = path(raw)
                .components()
                .iter()
                .map(|name| lossy(name))
                .collect();
            assert_eq!(components, expected, "{raw}");
        }
    }

    #[test]
    fn paths_leaving_the_root_name_the_entry() {
        for raw in [
            "..",
            "../etc/passwd",
            "a/../../etc/passwd",
            "/../x",
            "./a/b/../../../c",
        ] {
            match EntryPath::parse(raw.as_bytes()) {
                Err(TreeError::PathEscapesRoot { entry }) => assert_eq!(entry, raw),
                other => panic!("{raw}: {other:?}"),
            }
        }
        let error = EntryPath::parse(b"a/../../etc/passwd").unwrap_err();
        assert!(error.to_string().contains("a/../../etc/passwd"), "{error}");
    }

    #[test]
    fn impossible_names_are_refused() {
        let long = format!("d/{}", "x".repeat(256));
        for raw in [&b"a/b\0c"[..], long.as_bytes()] {
            assert!(
                matches!(EntryPath::parse(raw), Err(TreeError::InvalidPath { .. })),
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
        assert!(EntryPath::parse("x".repeat(255).as_bytes()).is_ok());
        let base = path("a/b");
        assert!(base.with_file_name(b"").is_err());
        assert!(base.with_file_name(b"..").is_err());
        assert!(base.with_file_name(b"c/d").is_err());
        let renamed = base.with_file_name(b"c").unwrap();
        assert_eq!(renamed.components(), path("a/c").components());
        assert_eq!(renamed.entry(), "a/b", "errors still name the entry");
    }

    #[test]
    fn missing_parents_are_implicit_directories() {
        let mut tree = Tree::new(Meta::implicit_dir());
        let file = tree
            .insert(&path("usr/lib/x/f"), symlink("t"), meta(0o777, 5))
            .unwrap();
        for dir in ["usr", "usr/lib", "usr/lib/x"] {
            let id = tree.lookup(&path(dir)).unwrap();
            assert!(tree.is_dir(id), "{dir}");
            assert_eq!(tree.meta(id), Meta::implicit_dir(), "{dir}");
        }
        assert_eq!(Meta::implicit_dir().mode, 0o755);
        assert_eq!(Meta::implicit_dir().mtime, 0);
        assert_eq!(tree.lookup(&path("/usr/lib/x/f")), Some(file));
        assert_eq!(tree.lookup(&path("usr/lib/y")), None);
        assert_eq!(tree.lookup(&path("usr/lib/x/f/g")), None);
    }

    #[test]
    fn a_directory_entry_after_its_children_sets_its_attributes() {
        let mut tree = Tree::new(Meta::implicit_dir());
        tree.insert(&path("etc/a"), NodeKind::Fifo, meta(0o600, 1))
            .unwrap();
        tree.insert(&path("etc/b"), NodeKind::Fifo, meta(0o600, 1))
            .unwrap();
        let before = tree.lookup(&path("etc")).unwrap();
        let after = tree.insert(&path("etc/"), dir(), meta(0o750, 42)).unwrap();
        assert_eq!(before, after);
        assert_eq!(tree.meta(after), meta(0o750, 42));
        assert_eq!(names(&tree, "etc"), ["a", "b"]);
    }

    #[test]
    fn the_root_takes_the_attributes_of_dot_slash() {
        let mut tree = Tree::new(Meta::implicit_dir());
        tree.insert(&path("a"), NodeKind::Fifo, meta(0o644, 1))
            .unwrap();
        let root = tree.insert(&path("./"), dir(), meta(0o700, 9)).unwrap();
        assert_eq!(root, tree.root());
        assert_eq!(tree.meta(tree.root()), meta(0o700, 9));
        assert_eq!(names(&tree, ""), ["a"]);
        match tree.insert(&path("."), NodeKind::Fifo, meta(0o644, 1)) {
            Err(TreeError::RootNotDirectory { entry }) => assert_eq!(entry, "."),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn later_entries_replace_earlier_ones() {
        let mut tree = Tree::new(Meta::implicit_dir());
        // A file replaced by a directory, a directory (with children) by a file.
        tree.insert(&path("x"), symlink("old"), meta(0o777, 1))
            .unwrap();
        let x = tree.insert(&path("x"), dir(), meta(0o755, 2)).unwrap();
        assert!(tree.is_dir(x));
        tree.insert(&path("d/child"), NodeKind::Fifo, meta(0o644, 1))
            .unwrap();
        let d = tree
            .insert(&path("d"), symlink("new"), meta(0o777, 3))
            .unwrap();
        assert_eq!(target(&tree, d), "new");
        assert_eq!(tree.lookup(&path("d/child")), None);
        // A file replaced by a file.
        tree.insert(&path("f"), symlink("one"), meta(0o777, 1))
            .unwrap();
        let f = tree
            .insert(&path("f"), symlink("two"), meta(0o777, 2))
            .unwrap();
        assert_eq!(tree.lookup(&path("f")), Some(f));
        assert_eq!(target(&tree, f), "two");
        assert_eq!(names(&tree, ""), ["d", "f", "x"]);
    }

    #[test]
    fn entries_below_a_non_directory_are_refused() {
        let mut tree = Tree::new(Meta::implicit_dir());
        tree.insert(&path("a/link"), symlink("/etc"), meta(0o777, 1))
            .unwrap();
        match tree.insert(&path("a/link/passwd"), NodeKind::Fifo, meta(0o644, 1)) {
            Err(TreeError::NotADirectory { entry, parent }) => {
                assert_eq!(entry, "a/link/passwd");
                assert_eq!(parent, "a/link");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn hard_links_share_the_node() {
        let mut tree = Tree::new(Meta::implicit_dir());
        let target = tree
            .insert(&path("bin/busybox"), symlink("x"), meta(0o755, 1))
            .unwrap();
        let link = tree
            .insert_hard_link(&path("sbin/init"), &path("./bin/busybox"))
            .unwrap();
        assert_eq!(link, target);
        assert_eq!(tree.lookup(&path("sbin/init")), Some(target));
        // Replacing one name leaves the other with the old node.
        let new = tree
            .insert(&path("bin/busybox"), NodeKind::Fifo, meta(0o644, 2))
            .unwrap();
        assert_ne!(new, target);
        assert_eq!(tree.lookup(&path("sbin/init")), Some(target));
    }

    #[test]
    fn hard_links_to_missing_targets_or_directories_fail() {
        let mut tree = Tree::new(Meta::implicit_dir());
        tree.insert(&path("d/f"), NodeKind::Fifo, meta(0o644, 1))
            .unwrap();
        match tree.insert_hard_link(&path("link"), &path("d/missing")) {
            Err(TreeError::HardLinkTargetMissing { entry, target }) => {
                assert_eq!((entry.as_str(), target.as_str()), ("link", "d/missing"));
            }
            other => panic!("{other:?}"),
        }
        match tree.insert_hard_link(&path("link"), &path("d/f/below")) {
            Err(TreeError::HardLinkTargetMissing { .. }) => {}
            other => panic!("{other:?}"),
        }
        match tree.insert_hard_link(&path("link"), &path("d")) {
            Err(TreeError::HardLinkToDirectory { entry, target }) => {
                assert_eq!((entry.as_str(), target.as_str()), ("link", "d"));
            }
            other => panic!("{other:?}"),
        }
        assert!(tree.insert_hard_link(&path("./"), &path("d/f")).is_err());
        assert_eq!(tree.lookup(&path("link")), None);
    }

    #[test]
    fn ensure_dir_creates_or_finds_directories() {
        let mut tree = Tree::new(Meta::implicit_dir());
        let made = tree.ensure_dir(&path("a/b")).unwrap();
        assert_eq!(tree.lookup(&path("a/b")), Some(made));
        assert_eq!(tree.ensure_dir(&path("a/b")).unwrap(), made);
        assert_eq!(tree.ensure_dir(&path("")).unwrap(), tree.root());
        tree.insert(&path("a/f"), NodeKind::Fifo, meta(0o644, 1))
            .unwrap();
        assert!(matches!(
            tree.ensure_dir(&path("a/f")),
            Err(TreeError::NotADirectory { .. })
        ));
    }

    #[test]
    fn xattrs_stay_sorted() {
        let mut meta = meta(0o644, 0);
        meta.set_xattr(b"user.b", b"2");
        meta.set_xattr(b"trusted.overlay.opaque", b"y");
        meta.set_xattr(b"user.a", b"1");
        meta.set_xattr(b"user.b", b"3");
        let names: Vec<&[u8]> = meta.xattrs.iter().map(|(name, _)| &name[..]).collect();
        assert_eq!(
            names,
            [&b"trusted.overlay.opaque"[..], b"user.a", b"user.b"]
        );
        assert_eq!(&meta.xattrs.last().unwrap().1[..], b"3");
    }

    #[test]
    fn many_entries_are_found_and_listed_in_byte_order() {
        let mut tree = Tree::new(Meta::implicit_dir());
        // Enough to grow the hash index several times; names of every length from 5 to 255,
        // bytes above 0x7f (sorted as bytes, not as text), in an order unlike the sorted one.
        let name = |i: u32| {
            let mut name = format!("{:05}", (i * 7919) % 5000).into_bytes();
            name.resize(5 + (i as usize % 251), 0xe9);
            name
        };
        let mut ids = Vec::new();
        for i in 0..5000 {
            let mut raw = b"dir/".to_vec();
            raw.extend(name(i));
            let path = EntryPath::parse(&raw).unwrap();
            ids.push(tree.insert(&path, NodeKind::Fifo, meta(0o644, i)).unwrap());
        }
        for (i, id) in ids.iter().enumerate() {
            let mut raw = b"dir/".to_vec();
            raw.extend(name(i as u32));
            assert_eq!(tree.lookup(&EntryPath::parse(&raw).unwrap()), Some(*id));
        }
        let dir = tree.lookup(&path("dir")).unwrap();
        let root = tree.root();
        let listed = tree.into_listed();
        let names: Vec<&[u8]> = listed.children(dir).map(|(name, _)| name).collect();
        let mut expected: Vec<Vec<u8>> = (0..5000).map(name).collect();
        expected.sort();
        assert_eq!(names, expected);
        let root: Vec<_> = listed.children(root).collect();
        assert_eq!(root, [(&b"dir"[..], dir)]);
    }

    /// What one entry costs (see the module documentation); a layer may hold millions.
    #[test]
    fn nodes_and_entries_stay_small() {
        assert_eq!(std::mem::size_of::<FileData>(), 20);
        assert_eq!(std::mem::size_of::<Node>(), 44);
        assert_eq!(std::mem::size_of::<Entry>(), 20);
    }
}
