//! Shared by the end-to-end tests: one comparable model of a file system tree, read from a tar
//! (the input, or `sqfs2tar`'s read-back of an image), from a directory (a staged tree, or a
//! kernel mount of an image) or built by hand; a tar writer that puts names and numbers in the
//! headers verbatim; and the real squashfs tools.
// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::CString;
use std::fmt;
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};
use tar::{EntryType, Header};

/// Bytes shown as an escaped string in assertion messages (paths, link targets, xattrs).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bytes(pub Vec<u8>);

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", self.0.escape_ascii())
    }
}

impl From<&str> for Bytes {
    fn from(s: &str) -> Self {
        Bytes(s.as_bytes().to_vec())
    }
}

impl From<&[u8]> for Bytes {
    fn from(s: &[u8]) -> Self {
        Bytes(s.to_vec())
    }
}

/// What an inode is; a regular file is known by its size and sha256.
#[derive(Clone, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File { size: u64, sha256: [u8; 32] },
    Symlink(Bytes),
    CharDevice { major: u32, minor: u32 },
    BlockDevice { major: u32, minor: u32 },
    Fifo,
}

impl Kind {
    pub fn file(data: &[u8]) -> Kind {
        Kind::File {
            size: data.len() as u64,
            sha256: Sha256::digest(data).into(),
        }
    }
}

impl fmt::Debug for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Kind::Dir => write!(f, "dir"),
            Kind::File { size, sha256 } => {
                write!(f, "file({size} bytes, sha256 ")?;
                sha256
                    .iter()
                    .take(6)
                    .try_for_each(|b| write!(f, "{b:02x}"))?;
                write!(f, "…)")
            }
            Kind::Symlink(target) => write!(f, "symlink → {target:?}"),
            Kind::CharDevice { major, minor } => write!(f, "char {major}:{minor}"),
            Kind::BlockDevice { major, minor } => write!(f, "block {major}:{minor}"),
            Kind::Fifo => write!(f, "fifo"),
        }
    }
}

/// One inode as seen through one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: Kind,
    /// Permission bits with setuid/setgid/sticky (`mode & 0o7777`).
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: i64,
    /// For a tar: what the link count must be (hard link group size, 2 + subdirectories).
    pub nlink: u64,
    pub xattrs: BTreeMap<Bytes, Bytes>,
}

impl Node {
    pub fn new(kind: Kind, mode: u32, uid: u64, gid: u64, mtime: i64) -> Node {
        Node {
            kind,
            mode,
            uid,
            gid,
            mtime,
            nlink: 0,
            xattrs: BTreeMap::new(),
        }
    }
}

/// A whole tree. Paths have no leading `/` or `./` and no trailing `/`; the root is `""`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tree {
    pub nodes: BTreeMap<Bytes, Node>,
    /// Groups of two or more paths naming one inode.
    pub hard_links: BTreeSet<BTreeSet<Bytes>>,
}

/// `a/b/` and `./a/b` and `/a/b` → `a/b`; `./` and `.` → `` (the root).
pub fn normalize(path: &[u8]) -> Bytes {
    let mut p = path;
    loop {
        if let Some(rest) = p.strip_prefix(b"./") {
            p = rest;
        } else if let Some(rest) = p.strip_prefix(b"/") {
            p = rest;
        } else {
            break;
        }
    }
    while let Some(rest) = p.strip_suffix(b"/") {
        p = rest;
    }
    if p == b"." {
        p = b"";
    }
    Bytes(p.to_vec())
}

fn parent(path: &Bytes) -> Option<Bytes> {
    if path.0.is_empty() {
        return None;
    }
    Some(match path.0.iter().rposition(|&b| b == b'/') {
        Some(i) => Bytes(path.0[..i].to_vec()),
        None => Bytes(Vec::new()),
    })
}

impl Tree {
    /// Adds a node that the tree does not have yet.
    pub fn insert(&mut self, path: &str, node: Node) {
        self.insert_bytes(Bytes::from(path), node);
    }

    pub fn insert_bytes(&mut self, path: Bytes, node: Node) {
        let previous = self.nodes.insert(path.clone(), node);
        assert!(previous.is_none(), "test tree: {path:?} given twice");
    }

    /// Adds `path` as a second name of the inode at `target`.
    pub fn hard_link(&mut self, path: &str, target: &str) {
        self.hard_link_bytes(Bytes::from(path), Bytes::from(target));
    }

    pub fn hard_link_bytes(&mut self, path: Bytes, target: Bytes) {
        let node = self
            .nodes
            .get(&target)
            .unwrap_or_else(|| panic!("test tree: hard link {path:?} to missing {target:?}"))
            .clone();
        self.insert_bytes(path.clone(), node);
        let group = match self
            .hard_links
            .iter()
            .find(|g| g.contains(&target))
            .cloned()
        {
            Some(group) => {
                self.hard_links.remove(&group);
                group
            }
            None => BTreeSet::from([target]),
        };
        let mut group = group;
        group.insert(path);
        self.hard_links.insert(group);
    }

    /// Sets every `nlink` to what the structure implies: the group size for hard links,
    /// 2 + subdirectories for a directory, 1 otherwise.
    pub fn count_links(&mut self) {
        let mut subdirs: HashMap<Bytes, u64> = HashMap::new();
        for (path, node) in &self.nodes {
            if node.kind == Kind::Dir {
                if let Some(parent) = parent(path) {
                    *subdirs.entry(parent).or_default() += 1;
                }
            }
        }
        for (path, node) in self.nodes.iter_mut() {
            node.nlink = match node.kind {
                Kind::Dir => 2 + subdirs.get(path).copied().unwrap_or(0),
                _ => 1,
            };
        }
        for group in &self.hard_links {
            for path in group {
                if let Some(node) = self.nodes.get_mut(path) {
                    node.nlink = group.len() as u64;
                }
            }
        }
    }

    /// The tree a tar stream describes. Meant for tars without repeated paths (GNU tar's
    /// output, `sqfs2tar`'s read-back): a repeated path fails the test. The `tar` crate only
    /// frames the stream (raw entries): PAX records and GNU long names are read here, because
    /// tar 0.4.46 splits PAX records at newlines, which breaks binary xattr values.
    pub fn from_tar(input: impl Read) -> Tree {
        let mut archive = tar::Archive::new(input);
        let mut tree = Tree::default();
        let mut pax: HashMap<String, Vec<u8>> = HashMap::new();
        let mut long_name: Option<Vec<u8>> = None;
        let mut long_link: Option<Vec<u8>> = None;
        for entry in archive.entries().expect("reading tar").raw(true) {
            let mut entry = entry.expect("reading tar entry");
            let header = entry.header().clone();
            let read_data = |entry: &mut tar::Entry<'_, _>| {
                let mut data = Vec::new();
                entry
                    .read_to_end(&mut data)
                    .expect("reading tar entry data");
                data
            };
            match header.entry_type() {
                EntryType::XHeader => {
                    pax = parse_pax(&read_data(&mut entry));
                    continue;
                }
                EntryType::XGlobalHeader => continue,
                EntryType::GNULongName => {
                    long_name = Some(until_nul(read_data(&mut entry)));
                    continue;
                }
                EntryType::GNULongLink => {
                    long_link = Some(until_nul(read_data(&mut entry)));
                    continue;
                }
                _ => {}
            }
            let pax = std::mem::take(&mut pax);
            let raw_path = pax
                .get("path")
                .cloned()
                .or(long_name.take())
                .unwrap_or_else(|| header.path_bytes().into_owned());
            let path = normalize(&raw_path);
            let link = pax
                .get("linkpath")
                .cloned()
                .or(long_link.take())
                .or_else(|| header.link_name_bytes().map(|l| l.into_owned()));
            let number = |key: &str, header_value: u64| -> i64 {
                match pax.get(key) {
                    Some(v) => {
                        let s = std::str::from_utf8(v).expect("PAX number");
                        let whole = s.split('.').next().unwrap_or(s);
                        whole.parse().unwrap_or_else(|_| panic!("PAX {key}={s}"))
                    }
                    None => header_value as i64,
                }
            };
            let mode = header.mode().expect("mode") & 0o7777;
            let uid = number("uid", header.uid().expect("uid")) as u64;
            let gid = number("gid", header.gid().expect("gid")) as u64;
            let mtime = number("mtime", header.mtime().expect("mtime"));
            let mut xattrs = BTreeMap::new();
            for (key, value) in &pax {
                if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                    xattrs.insert(Bytes::from(name), Bytes(value.clone()));
                }
            }
            let device = |header: &Header| {
                (
                    header
                        .device_major()
                        .expect("major")
                        .expect("device without major"),
                    header
                        .device_minor()
                        .expect("minor")
                        .expect("device without minor"),
                )
            };
            let kind = match header.entry_type() {
                EntryType::Link => {
                    let target = normalize(&link.expect("hard link without target"));
                    tree.hard_link_bytes(path, target);
                    continue;
                }
                EntryType::Regular | EntryType::Continuous => {
                    let (size, sha256) = hash_reader(&mut entry)
                        .unwrap_or_else(|e| panic!("tar entry {path:?}: reading data: {e}"));
                    Kind::File { size, sha256 }
                }
                EntryType::Directory => Kind::Dir,
                EntryType::Symlink => Kind::Symlink(Bytes(link.expect("symlink without target"))),
                EntryType::Char => {
                    let (major, minor) = device(&header);
                    Kind::CharDevice { major, minor }
                }
                EntryType::Block => {
                    let (major, minor) = device(&header);
                    Kind::BlockDevice { major, minor }
                }
                EntryType::Fifo => Kind::Fifo,
                other => panic!("tar entry {path:?}: unexpected type {other:?}"),
            };
            let mut node = Node::new(kind, mode, uid, gid, mtime);
            node.xattrs = xattrs;
            tree.insert_bytes(path, node);
        }
        tree.count_links();
        tree
    }

    /// The tree under `root` as the kernel shows it (`lstat`, `llistxattr`, file contents).
    pub fn from_dir(root: &Path) -> Tree {
        let mut tree = Tree::default();
        let mut inodes: BTreeMap<u64, BTreeSet<Bytes>> = BTreeMap::new();
        let mut pending = vec![(root.to_path_buf(), Bytes(Vec::new()))];
        while let Some((path, name)) = pending.pop() {
            let md = std::fs::symlink_metadata(&path)
                .unwrap_or_else(|e| panic!("lstat {}: {e}", path.display()));
            let ft = md.file_type();
            let kind = if ft.is_dir() {
                for child in std::fs::read_dir(&path).expect("read_dir") {
                    let child = child.expect("read_dir entry");
                    let child_name = child.file_name();
                    let mut full = name.0.clone();
                    if !full.is_empty() {
                        full.push(b'/');
                    }
                    full.extend_from_slice(child_name.as_bytes());
                    pending.push((child.path(), Bytes(full)));
                }
                Kind::Dir
            } else if ft.is_file() {
                let mut file = File::open(&path).expect("open file");
                let (size, sha256) = hash_reader(&mut file)
                    .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
                Kind::File { size, sha256 }
            } else if ft.is_symlink() {
                let target = std::fs::read_link(&path).expect("readlink");
                Kind::Symlink(Bytes(target.as_os_str().as_bytes().to_vec()))
            } else if ft.is_char_device() {
                Kind::CharDevice {
                    major: libc::major(md.rdev()),
                    minor: libc::minor(md.rdev()),
                }
            } else if ft.is_block_device() {
                Kind::BlockDevice {
                    major: libc::major(md.rdev()),
                    minor: libc::minor(md.rdev()),
                }
            } else if ft.is_fifo() {
                Kind::Fifo
            } else {
                panic!("{}: unexpected file type {ft:?}", path.display());
            };
            if kind != Kind::Dir {
                inodes.entry(md.ino()).or_default().insert(name.clone());
            }
            let mut node = Node::new(
                kind,
                md.mode() & 0o7777,
                md.uid().into(),
                md.gid().into(),
                md.mtime(),
            );
            node.nlink = md.nlink();
            node.xattrs = xattrs_of(&path);
            tree.insert_bytes(name, node);
        }
        tree.hard_links = inodes.into_values().filter(|g| g.len() > 1).collect();
        tree
    }

    /// Drops the extended attributes whose names start with `prefix`.
    pub fn drop_xattrs(&mut self, prefix: &str) {
        for node in self.nodes.values_mut() {
            node.xattrs
                .retain(|name, _| !name.0.starts_with(prefix.as_bytes()));
        }
    }

    /// Clamps mtimes to what squashfs holds (an unsigned 32-bit number of seconds).
    pub fn clamp_mtimes(&mut self) {
        for node in self.nodes.values_mut() {
            node.mtime = node.mtime.clamp(0, u32::MAX as i64);
        }
    }

    pub fn node(&self, path: &str) -> &Node {
        self.nodes
            .get(&Bytes::from(path))
            .unwrap_or_else(|| panic!("no {path:?} in tree"))
    }
}

/// PAX records `LEN key=value\n`, walked by their length (values may hold newlines).
fn parse_pax(mut data: &[u8]) -> HashMap<String, Vec<u8>> {
    let mut records = HashMap::new();
    while !data.is_empty() {
        let space = data
            .iter()
            .position(|&b| b == b' ')
            .expect("PAX record length");
        let len: usize = std::str::from_utf8(&data[..space])
            .expect("PAX length")
            .parse()
            .expect("PAX length");
        let record = &data[space + 1..len];
        let record = record
            .strip_suffix(b"\n")
            .expect("PAX record ends with a newline");
        let eq = record
            .iter()
            .position(|&b| b == b'=')
            .expect("PAX key=value");
        let key = String::from_utf8(record[..eq].to_vec()).expect("PAX key");
        records.insert(key, record[eq + 1..].to_vec());
        data = &data[len..];
    }
    records
}

fn until_nul(mut data: Vec<u8>) -> Vec<u8> {
    if let Some(nul) = data.iter().position(|&b| b == 0) {
        data.truncate(nul);
    }
    data
}

/// Length and sha256 of everything `reader` gives.
fn hash_reader(reader: &mut dyn Read) -> std::io::Result<(u64, [u8; 32])> {
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        match reader.read(&mut buffer) {
            Ok(0) => return Ok((size, hasher.finalize().into())),
            Ok(n) => {
                hasher.update(&buffer[..n]);
                size += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Every extended attribute of `path` (not following a symlink).
pub fn xattrs_of(path: &Path) -> BTreeMap<Bytes, Bytes> {
    let c_path = CString::new(path.as_os_str().as_bytes()).expect("path with NUL");
    // SAFETY: a valid C string and a null buffer of length 0 (asks for the size).
    let size = unsafe { libc::llistxattr(c_path.as_ptr(), std::ptr::null_mut(), 0) };
    // A squashfs image without an xattr table (as tar2sqfs also makes them) answers ENOTSUP.
    if size < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EOPNOTSUPP) {
        return BTreeMap::new();
    }
    assert!(
        size >= 0,
        "llistxattr {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
    let mut names = vec![0u8; size as usize];
    // SAFETY: the buffer is `names.len()` bytes long.
    let size = unsafe { libc::llistxattr(c_path.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    assert!(
        size >= 0,
        "llistxattr {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
    names.truncate(size as usize);
    let mut xattrs = BTreeMap::new();
    for name in names.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let c_name = CString::new(name).expect("xattr name");
        // SAFETY: valid C strings, null buffer of length 0 (asks for the size).
        let len =
            unsafe { libc::lgetxattr(c_path.as_ptr(), c_name.as_ptr(), std::ptr::null_mut(), 0) };
        assert!(
            len >= 0,
            "lgetxattr {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        );
        let mut value = vec![0u8; len as usize];
        // SAFETY: the buffer is `value.len()` bytes long.
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
        xattrs.insert(Bytes(name.to_vec()), Bytes(value));
    }
    xattrs
}

/// Fails the test with every difference between `expected` and `got` (up to 60 lines).
pub fn assert_same_tree(context: &str, expected: &Tree, got: &Tree) {
    let mut diffs = Vec::new();
    for (path, want) in &expected.nodes {
        match got.nodes.get(path) {
            None => diffs.push(format!("missing {path:?} ({:?})", want.kind)),
            Some(have) => {
                let mut field = |name: &str, w: String, h: String| {
                    if w != h {
                        diffs.push(format!("{path:?}: {name}: expected {w}, got {h}"));
                    }
                };
                field(
                    "kind",
                    format!("{:?}", want.kind),
                    format!("{:?}", have.kind),
                );
                field(
                    "mode",
                    format!("{:04o}", want.mode),
                    format!("{:04o}", have.mode),
                );
                field("uid", want.uid.to_string(), have.uid.to_string());
                field("gid", want.gid.to_string(), have.gid.to_string());
                field("mtime", want.mtime.to_string(), have.mtime.to_string());
                field("nlink", want.nlink.to_string(), have.nlink.to_string());
                field(
                    "xattrs",
                    format!("{:?}", want.xattrs),
                    format!("{:?}", have.xattrs),
                );
            }
        }
    }
    for (path, have) in &got.nodes {
        if !expected.nodes.contains_key(path) {
            diffs.push(format!("unexpected {path:?} ({:?})", have.kind));
        }
    }
    for group in expected.hard_links.difference(&got.hard_links) {
        diffs.push(format!("hard link group {group:?} expected, not found"));
    }
    for group in got.hard_links.difference(&expected.hard_links) {
        diffs.push(format!("hard link group {group:?} found, not expected"));
    }
    if !diffs.is_empty() {
        let total = diffs.len();
        diffs.truncate(60);
        panic!(
            "{context}: {total} difference(s):\n  {}",
            diffs.join("\n  ")
        );
    }
}

/// Runs a command to completion; fails the test (with its stderr) unless it succeeds.
pub fn run(command: &mut Command) -> Vec<u8> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("starting {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

pub fn run_text(command: &mut Command) -> String {
    String::from_utf8(run(command)).expect("tool output is UTF-8")
}

/// The image read back with `sqfs2tar` (squashfs-tools-ng), root inode included; a file that
/// cannot be put into a tar fails the read-back instead of being skipped.
pub fn read_back(image: &Path) -> Tree {
    let mut child = Command::new("sqfs2tar")
        .args(["--no-skip", "--root-becomes", "."])
        .arg(image)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting sqfs2tar");
    let stdout = child.stdout.take().expect("sqfs2tar stdout");
    let tree = Tree::from_tar(stdout);
    let output = child.wait_with_output().expect("waiting for sqfs2tar");
    assert!(
        output.status.success(),
        "sqfs2tar {} failed ({}):\n{}",
        image.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    tree
}

/// `unsquashfs -s`: the superblock as squashfs-tools describes it.
fn superblock(image: &Path) -> String {
    run_text(Command::new("unsquashfs").arg("-s").arg(image))
}

/// Asserts the superblock says squashfs 4.0, zstd at `level`, `block_size`-byte blocks.
pub fn assert_superblock(image: &Path, level: i32, block_size: u32) {
    let text = superblock(image);
    for want in [
        "Found a valid SQUASHFS 4:0 superblock".to_string(),
        "Compression zstd".to_string(),
        format!("compression-level {level}\n"),
        format!("Block size {block_size}\n"),
    ] {
        assert!(
            text.contains(&want),
            "unsquashfs -s {}: no {want:?} in:\n{text}",
            image.display()
        );
    }
}

/// `sha256sum FILE` as `sha256:<hex>`.
pub fn sha256sum(path: &Path) -> String {
    let out = run_text(Command::new("sha256sum").arg(path));
    let hex = out.split_whitespace().next().expect("sha256sum output");
    format!("sha256:{hex}")
}

pub fn sha256_hex(data: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(data)))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A squashfs image mounted read-only by the kernel; unmounted when dropped.
pub struct Mount {
    dir: tempfile::TempDir,
}

impl Mount {
    pub fn new(image: &Path) -> Mount {
        let dir = tempfile::tempdir().expect("mount point");
        run(Command::new("mount")
            .args(["-o", "loop,ro", "-t", "squashfs"])
            .arg(image)
            .arg(dir.path()));
        Mount { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        // Lazy, so that a test failing with a file still open does not leave the mount behind.
        let status = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
        if !matches!(status, Ok(s) if s.success()) {
            eprintln!("umount {} failed: {status:?}", self.dir.path().display());
        }
    }
}

/// `getfattr -d -m - -h --absolute-names PATH` lines `name="value"` (text values only).
pub fn getfattr(path: &Path) -> BTreeSet<String> {
    let text = run_text(
        Command::new("getfattr")
            .args(["-d", "-m", "-", "-h", "--absolute-names"])
            .arg(path),
    );
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// Converts the plain tar file `input` into `image` with `tarsquash::convert`.
pub fn convert_file(
    input: &Path,
    image: &Path,
    options: &tarsquash::Options,
) -> tarsquash::Conversion {
    let mut tar = File::open(input).unwrap_or_else(|e| panic!("{}: {e}", input.display()));
    let out = File::create(image).unwrap_or_else(|e| panic!("{}: {e}", image.display()));
    let conversion = tarsquash::convert(&mut tar, out, options)
        .unwrap_or_else(|e| panic!("converting {}: {e}", input.display()));
    check_conversion(
        &conversion,
        &std::fs::read(input).expect("reading tar"),
        image,
    );
    conversion
}

/// Converts tar bytes into `image`.
pub fn convert_bytes(
    tar: &[u8],
    image: &Path,
    options: &tarsquash::Options,
) -> tarsquash::Conversion {
    let out = File::create(image).unwrap_or_else(|e| panic!("{}: {e}", image.display()));
    let conversion = tarsquash::convert(&mut &tar[..], out, options)
        .unwrap_or_else(|e| panic!("converting: {e}"));
    check_conversion(&conversion, tar, image);
    conversion
}

/// diff_id is the sha256 of the whole tar, tar_size its length, image_size the image's.
fn check_conversion(conversion: &tarsquash::Conversion, tar: &[u8], image: &Path) {
    assert_eq!(conversion.diff_id, sha256_hex(tar), "diff_id");
    assert_eq!(conversion.tar_size, tar.len() as u64, "tar_size");
    let len = std::fs::metadata(image).expect("image").len();
    assert_eq!(
        conversion.image_size, len,
        "image_size vs the file's length"
    );
}

pub fn options(threads: usize) -> tarsquash::Options {
    let mut options = tarsquash::Options::default();
    options.image.threads = threads;
    options
}

/// Where the large fixtures live (built by scripts/fixtures.sh).
pub fn fixtures_dir() -> PathBuf {
    std::env::var_os("CONCIL_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/concil-fixtures"))
}

/// `fixtures_dir()/relative`, running `scripts/fixtures.sh set` first when it is missing.
pub fn fixture(set: &str, relative: &str) -> PathBuf {
    let path = fixtures_dir().join(relative);
    if !path.exists() {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/fixtures.sh");
        eprintln!(
            "{} missing: running {} {set}",
            path.display(),
            script.display()
        );
        let status = Command::new("bash")
            .arg(&script)
            .arg(set)
            .env("CONCIL_FIXTURES", fixtures_dir())
            .status()
            .expect("starting scripts/fixtures.sh");
        assert!(status.success(), "scripts/fixtures.sh {set}: {status}");
    }
    assert!(
        path.exists(),
        "{} still missing after scripts/fixtures.sh",
        path.display()
    );
    path
}

/// Metadata of a hand-written tar entry.
#[derive(Debug, Clone, Copy)]
pub struct Meta {
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
}

pub const FILE: Meta = Meta {
    mode: 0o644,
    uid: 0,
    gid: 0,
    mtime: 1_700_000_000,
};
pub const DIR: Meta = Meta {
    mode: 0o755,
    uid: 0,
    gid: 0,
    mtime: 1_700_000_000,
};
/// Symlinks as GNU tar writes them (their mode means nothing to Linux).
pub const LINK: Meta = Meta {
    mode: 0o777,
    uid: 0,
    gid: 0,
    mtime: 1_700_000_000,
};

impl Meta {
    pub fn node(&self, kind: Kind) -> Node {
        Node::new(kind, self.mode, self.uid, self.gid, self.mtime as i64)
    }
}

/// Writes tars entry by entry with names and link targets exactly as given (the `tar` crate's
/// Builder rewrites `./`, `/` and refuses `..`, which these tests need verbatim). Names and
/// targets over 100 bytes get GNU long name / long link entries.
pub struct TarWriter {
    out: Vec<u8>,
}

impl Default for TarWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl TarWriter {
    pub fn new() -> TarWriter {
        TarWriter { out: Vec::new() }
    }

    /// A GNU header with `name` and `link` (each up to 100 bytes) and a valid checksum.
    pub fn header(kind: EntryType, name: &[u8], link: &[u8], meta: Meta, size: u64) -> Header {
        let mut header = Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(meta.mode);
        header.set_uid(meta.uid);
        header.set_gid(meta.gid);
        header.set_mtime(meta.mtime);
        header.set_size(size);
        let old = header.as_old_mut();
        old.name[..name.len()].copy_from_slice(name);
        old.linkname[..link.len()].copy_from_slice(link);
        header.set_cksum();
        header
    }

    /// Appends a header and its data, padded to 512 bytes, all verbatim.
    pub fn raw(&mut self, header: &Header, data: &[u8]) -> &mut Self {
        self.out.extend_from_slice(header.as_bytes());
        self.data(data)
    }

    /// Appends bytes padded to a multiple of 512.
    pub fn data(&mut self, data: &[u8]) -> &mut Self {
        self.out.extend_from_slice(data);
        let padded = self.out.len().next_multiple_of(512);
        self.out.resize(padded, 0);
        self
    }

    fn long(&mut self, kind: EntryType, value: &[u8]) {
        let mut data = value.to_vec();
        data.push(0);
        let header = Self::header(kind, b"././@LongLink", b"", FILE, data.len() as u64);
        self.raw(&header, &data);
    }

    /// Any entry; long names and targets go through GNU `L`/`K` entries.
    pub fn entry(
        &mut self,
        kind: EntryType,
        name: &[u8],
        link: &[u8],
        meta: Meta,
        data: &[u8],
    ) -> &mut Self {
        let header = self.long_header(kind, name, link, meta, data.len() as u64);
        self.raw(&header, data)
    }

    /// Writes the GNU long name/link entries `name` and `link` need; returns the header.
    fn long_header(
        &mut self,
        kind: EntryType,
        name: &[u8],
        link: &[u8],
        meta: Meta,
        size: u64,
    ) -> Header {
        let short_name = if name.len() > 100 {
            self.long(EntryType::GNULongName, name);
            &name[..100]
        } else {
            name
        };
        let short_link = if link.len() > 100 {
            self.long(EntryType::GNULongLink, link);
            &link[..100]
        } else {
            link
        };
        Self::header(kind, short_name, short_link, meta, size)
    }

    pub fn file(&mut self, name: &str, meta: Meta, data: &[u8]) -> &mut Self {
        self.entry(EntryType::Regular, name.as_bytes(), b"", meta, data)
    }

    pub fn dir(&mut self, name: &str, meta: Meta) -> &mut Self {
        self.entry(EntryType::Directory, name.as_bytes(), b"", meta, b"")
    }

    pub fn symlink(&mut self, name: &str, meta: Meta, target: &str) -> &mut Self {
        self.entry(
            EntryType::Symlink,
            name.as_bytes(),
            target.as_bytes(),
            meta,
            b"",
        )
    }

    pub fn hard_link(&mut self, name: &str, target: &str) -> &mut Self {
        self.entry(
            EntryType::Link,
            name.as_bytes(),
            target.as_bytes(),
            FILE,
            b"",
        )
    }

    pub fn device(
        &mut self,
        kind: EntryType,
        name: &str,
        meta: Meta,
        major: u32,
        minor: u32,
    ) -> &mut Self {
        let mut header = self.long_header(kind, name.as_bytes(), b"", meta, 0);
        header.set_device_major(major).expect("device major");
        header.set_device_minor(minor).expect("device minor");
        header.set_cksum();
        self.raw(&header, b"")
    }

    /// A PAX extended header applying to the next entry.
    pub fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
        let mut data = Vec::new();
        for (key, value) in records {
            // The length counts itself: find the number of digits that makes it consistent.
            let rest = 3 + key.len() + value.len();
            let mut len = rest + 1;
            while len != rest + len.to_string().len() {
                len = rest + len.to_string().len();
            }
            data.extend_from_slice(format!("{len} {key}=").as_bytes());
            data.extend_from_slice(value);
            data.push(b'\n');
        }
        let header = Self::header(
            EntryType::XHeader,
            b"PaxHeaders/entry",
            b"",
            FILE,
            data.len() as u64,
        );
        self.raw(&header, &data)
    }

    /// The archive with its two zero end blocks.
    pub fn finish(&mut self) -> Vec<u8> {
        let mut out = std::mem::take(&mut self.out);
        out.resize(out.len() + 1024, 0);
        out
    }
}

/// A directory for staging trees and images under /var/tmp, which is on a disk file system here
/// (xattrs in every namespace, device nodes), not a tmpfs.
pub fn staging_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("tarsquash-e2e-")
        .tempdir_in("/var/tmp")
        .expect("staging dir")
}

/// Writes `data` to `path`, creating parent directories.
pub fn write_file(path: &Path, data: &[u8]) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("create_dir_all");
    }
    let mut file = File::create(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    file.write_all(data).expect("write");
}

/// Deterministic data: `len` bytes from a xorshift generator seeded with `seed`; `text` makes
/// it compressible (letters and newlines), otherwise it is incompressible noise.
pub fn pseudo_random(seed: u64, len: usize, text: bool) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            if text {
                b"etaoin shrdlu\n"[(state % 14) as usize]
            } else {
                (state >> 24) as u8
            }
        })
        .collect()
}
