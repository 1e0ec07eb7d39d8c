//! The directory tree of the image being built, with tar semantics.
//!
//! Nodes live in an arena (`Vec<Node>`) and are referred to by [`NodeId`]. A hard link is a
//! second directory entry naming the same `NodeId`. A node that was replaced by a later tar
//! entry simply becomes unreachable from the root; the image writer only emits reachable
//! nodes, counting links as it walks.

use std::collections::BTreeMap;

use crate::image::FileData;

/// Index of a node in [`Tree::nodes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub u32);

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
    pub xattrs: Vec<(Box<[u8]>, Box<[u8]>)>,
}

#[derive(Debug, Clone)]
pub enum NodeKind {
    /// Children by name (a single path component, never empty, `.` or `..`, no `/`).
    Dir(BTreeMap<Box<[u8]>, NodeId>),
    /// A regular file whose data is already in the image.
    File(FileData),
    Symlink(Box<[u8]>),
    CharDevice { major: u32, minor: u32 },
    BlockDevice { major: u32, minor: u32 },
    Fifo,
    Socket,
}

#[derive(Debug, Clone)]
pub struct Node {
    pub kind: NodeKind,
    pub meta: Meta,
}

/// The whole tree. `nodes[root]` is always a directory.
#[derive(Debug, Clone)]
pub struct Tree {
    pub nodes: Vec<Node>,
    pub root: NodeId,
}

impl Tree {
    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id.0 as usize]
    }
}
