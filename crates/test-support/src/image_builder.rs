//! Squashfs images written by tarsquash's image writer from trees built by hand, for the
//! `image_*` tests; they look at them with the real readers ([`crate::process::run_on`],
//! [`Mount`]).

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use tarsquash::image::{FileData, ImageOptions, ImageWriter};
use tarsquash::tree::{EntryPath, Meta, NodeId, NodeKind, Tree};

pub use crate::process::{run_on, run_program};
pub use crate::squashfs::Mount;
use crate::tree::xattrs_of;

pub fn meta(mode: u16, uid: u32, gid: u32, mtime: u32) -> Meta {
    Meta {
        mode,
        uid,
        gid,
        mtime,
        xattrs: Vec::new(),
    }
}

pub fn with_xattrs(mut meta: Meta, xattrs: &[(&str, &[u8])]) -> Meta {
    meta.xattrs = xattrs
        .iter()
        .map(|(name, value)| (name.as_bytes().into(), (*value).into()))
        .collect();
    meta.xattrs.sort();
    meta
}

/// A tree under construction, with the image writer its files go to.
pub struct Builder {
    pub tree: Tree,
    /// The path of each node added, to name it to the tree.
    paths: HashMap<NodeId, String>,
    pub writer: ImageWriter,
    pub image: PathBuf,
    _dir: tempfile::TempDir,
}

impl Builder {
    pub fn new(options: &ImageOptions) -> Builder {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("image.sqfs");
        let out = File::create(&image).unwrap();
        let tree = Tree::new(meta(0o755, 0, 0, 1_600_000_000));
        Builder {
            paths: HashMap::from([(tree.root(), String::new())]),
            tree,
            writer: ImageWriter::new(out, options).unwrap(),
            image,
            _dir: dir,
        }
    }

    pub fn root(&self) -> NodeId {
        self.tree.root()
    }

    /// Sets the attributes of the root.
    pub fn root_meta(&mut self, meta: Meta) {
        self.tree
            .insert(&EntryPath::parse(b"./").unwrap(), NodeKind::Dir, meta)
            .unwrap();
    }

    fn path(&self, parent: NodeId, name: &str) -> String {
        format!("{}/{name}", self.paths[&parent])
    }

    /// Adds a node named `name` under the directory `parent`.
    pub fn add(&mut self, parent: NodeId, name: &str, kind: NodeKind, meta: Meta) -> NodeId {
        let path = self.path(parent, name);
        let id = self
            .tree
            .insert(&EntryPath::parse(path.as_bytes()).unwrap(), kind, meta)
            .unwrap();
        self.paths.insert(id, path);
        id
    }

    /// A further entry naming an existing node (a hard link).
    pub fn link(&mut self, parent: NodeId, name: &str, id: NodeId) {
        let path = EntryPath::parse(self.path(parent, name).as_bytes()).unwrap();
        let target = EntryPath::parse(self.paths[&id].as_bytes()).unwrap();
        self.tree.insert_hard_link(&path, &target).unwrap();
    }

    pub fn dir(&mut self, parent: NodeId, name: &str, meta: Meta) -> NodeId {
        self.add(parent, name, NodeKind::Dir, meta)
    }

    pub fn data(&mut self, content: &[u8]) -> FileData {
        self.writer
            .add_file_data(&mut &content[..], content.len() as u64)
            .unwrap()
    }

    pub fn file(&mut self, parent: NodeId, name: &str, content: &[u8], meta: Meta) -> NodeId {
        let data = self.data(content);
        self.add(parent, name, NodeKind::File(data), meta)
    }

    /// Finishes the image; returns its path and the directory that holds it.
    pub fn finish(self) -> Image {
        let file = self.writer.finish(self.tree).unwrap();
        drop(file);
        Image {
            path: self.image,
            _dir: self._dir,
        }
    }

    /// Drops the writer without finishing; returns what it left.
    pub fn abandon(self) -> Image {
        drop(self.writer);
        Image {
            path: self.image,
            _dir: self._dir,
        }
    }
}

pub struct Image {
    pub path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Image {
    pub fn bytes(&self) -> Vec<u8> {
        std::fs::read(&self.path).unwrap()
    }

    /// Mounts the image read-only through the kernel's squashfs driver (see
    /// [`Mount::strict`]).
    pub fn mount(&self) -> Mount {
        Mount::strict(&self.path)
    }
}

/// Bytes zstd cannot compress (xorshift output).
pub fn noise(len: usize, seed: u32) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect()
}

/// Compressible bytes that differ with `seed`.
pub fn text(len: usize, seed: u32) -> Vec<u8> {
    let line = format!("line of text number {seed} for the squashfs writer\n");
    line.bytes().cycle().take(len).collect()
}

/// All extended attributes of `path` (not following a final symlink), sorted by name (see
/// [`xattrs_of`]).
pub fn xattrs(path: &Path) -> Vec<(String, Vec<u8>)> {
    xattrs_of(path)
        .into_iter()
        .map(|(name, value)| (String::from_utf8(name.0).unwrap(), value.0))
        .collect()
}
