//! Shared by the `image_*` tests: trees built by hand, images written from them, and the real
//! readers (squashfs-tools, squashfs-tools-ng, the kernel) to look at the result.
// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::collections::HashMap;
use std::ffi::CString;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use tarsquash::image::{FileData, ImageOptions, ImageWriter};
use tarsquash::tree::{EntryPath, Meta, NodeId, NodeKind, Tree};

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

    /// Mounts the image read-only through the kernel's squashfs driver.
    pub fn mount(&self) -> Mount {
        let dir = tempfile::tempdir().unwrap();
        run(
            "mount",
            &[
                "-o".as_ref(),
                "loop,ro".as_ref(),
                "-t".as_ref(),
                "squashfs".as_ref(),
                self.path.as_os_str(),
                dir.path().as_os_str(),
            ],
        );
        Mount { dir }
    }
}

pub struct Mount {
    dir: tempfile::TempDir,
}

impl Mount {
    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let status = Command::new("umount").arg(self.dir.path()).status();
        if !matches!(status, Ok(s) if s.success()) && !std::thread::panicking() {
            panic!("umount {} failed: {status:?}", self.dir.path().display());
        }
    }
}

/// Runs a program, asserts it succeeded, returns its standard output.
pub fn run(program: &str, args: &[&std::ffi::OsStr]) -> String {
    // Listings print times in the local zone.
    let output = Command::new(program)
        .args(args)
        .env("TZ", "UTC")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

pub fn run_on(program: &str, before: &[&str], image: &Path) -> String {
    let mut args: Vec<&std::ffi::OsStr> = before.iter().map(|a| a.as_ref()).collect();
    args.push(image.as_os_str());
    run(program, &args)
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

/// All extended attributes of `path` (not following a final symlink), sorted by name.
pub fn xattrs(path: &Path) -> Vec<(String, Vec<u8>)> {
    let c_path = CString::new(path.as_os_str().as_bytes()).unwrap();
    let mut names = vec![0u8; 65536];
    // SAFETY: c_path is NUL-terminated and names is a writable buffer of the given length.
    let len = unsafe { libc::llistxattr(c_path.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    assert!(
        len >= 0,
        "llistxattr {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
    names.truncate(len as usize);
    let mut out = Vec::new();
    for name in names.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let c_name = CString::new(name).unwrap();
        let mut value = vec![0u8; 65536];
        // SAFETY: both strings are NUL-terminated and value is a writable buffer of its length.
        let len = unsafe {
            libc::lgetxattr(
                c_path.as_ptr(),
                c_name.as_ptr(),
                value.as_mut_ptr().cast(),
                value.len(),
            )
        };
        assert!(
            len >= 0,
            "lgetxattr {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        );
        value.truncate(len as usize);
        out.push((String::from_utf8(name.to_vec()).unwrap(), value));
    }
    out.sort();
    out
}
