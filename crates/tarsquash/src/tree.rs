//! The directory tree of the image being built, with tar semantics.
//!
//! Nodes live in an arena (`Vec<Node>`) and are referred to by [`NodeId`]. A hard link is a
//! second directory entry naming the same `NodeId`. A node that was replaced by a later tar
//! entry simply becomes unreachable from the root; the image writer only emits reachable
//! nodes, counting links as it walks.
//!
//! Tar semantics, as [`Tree::insert`] and [`Tree::insert_hard_link`] apply them:
//! - a later entry for a path replaces the earlier one; a directory over a directory keeps the
//!   children and takes the new attributes (so a directory entry that comes after its children
//!   still sets the directory's attributes, and the root's attributes come from a `./` entry);
//! - parents the tar does not list are created as [`Meta::implicit_dir`] (0755, root:root,
//!   mtime 0, as tar2sqfs makes them), whatever the order of the entries;
//! - an entry below a non-directory is an error, not a replacement of that non-directory.

use std::collections::BTreeMap;

use crate::image::FileData;
use crate::Error;

/// Index of a node in [`Tree::nodes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub u32);

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

#[derive(Debug, Clone)]
pub enum NodeKind {
    /// Children by name (a single path component, never empty, `.` or `..`, no `/`).
    Dir(BTreeMap<Box<[u8]>, NodeId>),
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
    pub fn parse(raw: &[u8]) -> Result<EntryPath, Error> {
        let entry = String::from_utf8_lossy(raw).into_owned();
        let mut components: Vec<Box<[u8]>> = Vec::new();
        for component in raw.split(|&byte| byte == b'/') {
            match component {
                b"" | b"." => {}
                b".." => {
                    if components.pop().is_none() {
                        return Err(Error::PathEscapesRoot { entry });
                    }
                }
                name => {
                    if let Some(reason) = invalid_name_reason(name) {
                        return Err(Error::InvalidPath { entry, reason });
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
    pub fn with_file_name(&self, name: &[u8]) -> Result<EntryPath, Error> {
        if let Some(reason) = invalid_name_reason(name) {
            return Err(Error::InvalidPath {
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
        Tree {
            nodes: vec![Node {
                kind: NodeKind::Dir(BTreeMap::new()),
                meta: root,
            }],
            root: NodeId(0),
        }
    }

    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id.0 as usize]
    }

    pub fn node_mut(&mut self, id: NodeId) -> &mut Node {
        &mut self.nodes[id.0 as usize]
    }

    /// The node at `path`, if there is one (without creating anything).
    pub fn lookup(&self, path: &EntryPath) -> Option<NodeId> {
        path.components.iter().try_fold(self.root, |dir, name| {
            self.children(dir)
                .and_then(|children| children.get(name).copied())
        })
    }

    /// Puts a node of `kind` with `meta` at `path`, replacing what was there. A directory over
    /// a directory keeps the existing node and its children (adding any in `kind`) and takes
    /// `meta`. Missing parents are created as implicit directories.
    pub fn insert(
        &mut self,
        path: &EntryPath,
        kind: NodeKind,
        meta: Meta,
    ) -> Result<NodeId, Error> {
        let Some(name) = path.file_name() else {
            return match kind {
                NodeKind::Dir(children) => {
                    self.merge_dir(self.root, children, meta);
                    Ok(self.root)
                }
                _ => Err(Error::RootNotDirectory {
                    entry: path.entry.clone(),
                }),
            };
        };
        let parent = self.parent_dir(path)?;
        let existing = self
            .children(parent)
            .and_then(|children| children.get(name).copied());
        let kind = match (kind, existing) {
            (NodeKind::Dir(children), Some(existing)) if self.children(existing).is_some() => {
                self.merge_dir(existing, children, meta);
                return Ok(existing);
            }
            (kind, _) => kind,
        };
        let id = self.push(Node { kind, meta }, path)?;
        self.link(parent, name, id, path)?;
        Ok(id)
    }

    /// Makes `path` a second name of the node at `target` (a hard link), replacing what was
    /// at `path`. The target must exist and must not be a directory.
    pub fn insert_hard_link(
        &mut self,
        path: &EntryPath,
        target: &EntryPath,
    ) -> Result<NodeId, Error> {
        let Some(id) = self.lookup(target) else {
            return Err(Error::HardLinkTargetMissing {
                entry: path.entry.clone(),
                target: target.entry.clone(),
            });
        };
        if self.children(id).is_some() {
            return Err(Error::HardLinkToDirectory {
                entry: path.entry.clone(),
                target: target.entry.clone(),
            });
        }
        let Some(name) = path.file_name() else {
            return Err(Error::RootNotDirectory {
                entry: path.entry.clone(),
            });
        };
        let parent = self.parent_dir(path)?;
        self.link(parent, name, id, path)?;
        Ok(id)
    }

    /// The directory at `path`, created (with its parents) as an implicit directory if
    /// missing.
    pub fn ensure_dir(&mut self, path: &EntryPath) -> Result<NodeId, Error> {
        self.walk_dirs(path, path.components.len())
    }

    /// The directory that holds `path`, creating missing parents.
    fn parent_dir(&mut self, path: &EntryPath) -> Result<NodeId, Error> {
        self.walk_dirs(path, path.components.len().saturating_sub(1))
    }

    /// Walks the first `depth` components of `path` from the root, creating missing
    /// directories; a non-directory on the way is an error.
    fn walk_dirs(&mut self, path: &EntryPath, depth: usize) -> Result<NodeId, Error> {
        let mut dir = self.root;
        for (index, name) in path.components.iter().take(depth).enumerate() {
            let existing = self
                .children(dir)
                .and_then(|children| children.get(name).copied());
            dir = match existing {
                Some(child) if self.children(child).is_some() => child,
                Some(_) => {
                    return Err(Error::NotADirectory {
                        entry: path.entry.clone(),
                        parent: path.display_prefix(index + 1),
                    })
                }
                None => {
                    let child = self.push(
                        Node {
                            kind: NodeKind::Dir(BTreeMap::new()),
                            meta: Meta::implicit_dir(),
                        },
                        path,
                    )?;
                    self.link(dir, name, child, path)?;
                    child
                }
            };
        }
        Ok(dir)
    }

    fn merge_dir(&mut self, dir: NodeId, children: BTreeMap<Box<[u8]>, NodeId>, meta: Meta) {
        let node = self.node_mut(dir);
        node.meta = meta;
        if let NodeKind::Dir(existing) = &mut node.kind {
            existing.extend(children);
        }
    }

    fn children(&self, id: NodeId) -> Option<&BTreeMap<Box<[u8]>, NodeId>> {
        match &self.nodes.get(id.0 as usize)?.kind {
            NodeKind::Dir(children) => Some(children),
            _ => None,
        }
    }

    /// Enters `child` as `name` in the directory `dir`.
    fn link(
        &mut self,
        dir: NodeId,
        name: &[u8],
        child: NodeId,
        path: &EntryPath,
    ) -> Result<(), Error> {
        match self
            .nodes
            .get_mut(dir.0 as usize)
            .map(|node| &mut node.kind)
        {
            Some(NodeKind::Dir(children)) => {
                children.insert(name.into(), child);
                Ok(())
            }
            // Callers only pass directories; say so rather than panic if that ever changes.
            _ => Err(Error::NotADirectory {
                entry: path.entry.clone(),
                parent: path.parent().display_prefix(usize::MAX),
            }),
        }
    }

    fn push(&mut self, node: Node, path: &EntryPath) -> Result<NodeId, Error> {
        let id = u32::try_from(self.nodes.len()).map_err(|_| Error::TooManyNodes {
            entry: path.entry.clone(),
        })?;
        self.nodes.push(node);
        Ok(NodeId(id))
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
        NodeKind::Dir(BTreeMap::new())
    }

    fn symlink(target: &str) -> NodeKind {
        NodeKind::Symlink(target.as_bytes().into())
    }

    fn names(tree: &Tree, dir: &str) -> Vec<String> {
        let id = tree.lookup(&path(dir)).unwrap();
        match &tree.node(id).kind {
            NodeKind::Dir(children) => children.keys().map(|name| lossy(name)).collect(),
            other => panic!("{dir} is not a directory: {other:?}"),
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
                Err(Error::PathEscapesRoot { entry }) => assert_eq!(entry, raw),
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
                matches!(EntryPath::parse(raw), Err(Error::InvalidPath { .. })),
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
            assert!(matches!(tree.node(id).kind, NodeKind::Dir(_)), "{dir}");
            assert_eq!(tree.node(id).meta, Meta::implicit_dir(), "{dir}");
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
        assert_eq!(tree.node(after).meta, meta(0o750, 42));
        assert_eq!(names(&tree, "etc"), ["a", "b"]);
    }

    #[test]
    fn the_root_takes_the_attributes_of_dot_slash() {
        let mut tree = Tree::new(Meta::implicit_dir());
        tree.insert(&path("a"), NodeKind::Fifo, meta(0o644, 1))
            .unwrap();
        let root = tree.insert(&path("./"), dir(), meta(0o700, 9)).unwrap();
        assert_eq!(root, tree.root);
        assert_eq!(tree.node(tree.root).meta, meta(0o700, 9));
        assert_eq!(names(&tree, ""), ["a"]);
        match tree.insert(&path("."), NodeKind::Fifo, meta(0o644, 1)) {
            Err(Error::RootNotDirectory { entry }) => assert_eq!(entry, "."),
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
        assert!(matches!(tree.node(x).kind, NodeKind::Dir(_)));
        tree.insert(&path("d/child"), NodeKind::Fifo, meta(0o644, 1))
            .unwrap();
        let d = tree
            .insert(&path("d"), symlink("new"), meta(0o777, 3))
            .unwrap();
        assert!(matches!(&tree.node(d).kind, NodeKind::Symlink(target) if &target[..] == b"new"));
        assert_eq!(tree.lookup(&path("d/child")), None);
        // A file replaced by a file.
        tree.insert(&path("f"), symlink("one"), meta(0o777, 1))
            .unwrap();
        let f = tree
            .insert(&path("f"), symlink("two"), meta(0o777, 2))
            .unwrap();
        assert_eq!(tree.lookup(&path("f")), Some(f));
        assert!(matches!(&tree.node(f).kind, NodeKind::Symlink(target) if &target[..] == b"two"));
        assert_eq!(names(&tree, ""), ["d", "f", "x"]);
    }

    #[test]
    fn entries_below_a_non_directory_are_refused() {
        let mut tree = Tree::new(Meta::implicit_dir());
        tree.insert(&path("a/link"), symlink("/etc"), meta(0o777, 1))
            .unwrap();
        match tree.insert(&path("a/link/passwd"), NodeKind::Fifo, meta(0o644, 1)) {
            Err(Error::NotADirectory { entry, parent }) => {
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
            Err(Error::HardLinkTargetMissing { entry, target }) => {
                assert_eq!((entry.as_str(), target.as_str()), ("link", "d/missing"));
            }
            other => panic!("{other:?}"),
        }
        match tree.insert_hard_link(&path("link"), &path("d/f/below")) {
            Err(Error::HardLinkTargetMissing { .. }) => {}
            other => panic!("{other:?}"),
        }
        match tree.insert_hard_link(&path("link"), &path("d")) {
            Err(Error::HardLinkToDirectory { entry, target }) => {
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
        assert_eq!(tree.ensure_dir(&path("")).unwrap(), tree.root);
        tree.insert(&path("a/f"), NodeKind::Fifo, meta(0o644, 1))
            .unwrap();
        assert!(matches!(
            tree.ensure_dir(&path("a/f")),
            Err(Error::NotADirectory { .. })
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
}
