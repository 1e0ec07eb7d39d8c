//! One comparable model of a file system tree, for the tests of tarsquash and concil: read from
//! a tar (the input, a layer, or `sqfs2tar`'s read-back of an image), from a directory (a staged
//! tree, or a kernel mount of an image) or built by hand; and its comparisons:
//! [`assert_same_tree`] (every field, link counts included: tarsquash's images against their
//! input) and [`differences`] (a layer's squashfs against its tar: no link counts, the root
//! left out, implied parent directories allowed).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::CString;
use std::fmt;
use std::fs::File;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
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
        let mut tree = Tree::read_tar(input, Repeats::Fail);
        tree.count_links();
        tree
    }

    fn read_tar(input: impl Read, repeats: Repeats) -> Tree {
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
                    if repeats == Repeats::Replace {
                        tree.unlink(&path);
                    }
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
            tree.put(path, node, repeats);
        }
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
        .expect("starting sqfs2tar (apt-get install squashfs-tools-ng)");
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

/// Whether a tar may name a path twice.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Repeats {
    /// No (GNU tar's output, `sqfs2tar`'s read-back): a repeated path fails the test.
    Fail,
    /// Yes, as in a layer: a later entry replaces the earlier one (and leaves its hard-link
    /// group).
    Replace,
}

impl Tree {
    /// The tree a layer's tar describes, as concil's tests compare it with the squashfs made
    /// from it: a later entry for a path replaces an earlier one, the root is left out
    /// (`sqfs2tar` without `--root-becomes` leaves it out too) and link counts are not set.
    pub fn from_layer(input: impl Read) -> Tree {
        let mut tree = Tree::read_tar(input, Repeats::Replace);
        tree.nodes.remove(&Bytes(Vec::new()));
        tree
    }

    /// [`Tree::from_layer`] of a tar file.
    pub fn from_tar_file(path: &Path) -> Tree {
        Tree::from_layer(File::open(path).expect("open the layer tar"))
    }

    /// A squashfs image read back with `sqfs2tar` ([`read_back`]), the root left out.
    pub fn from_squashfs(image: &Path) -> Tree {
        let mut tree = read_back(image);
        tree.nodes.remove(&Bytes(Vec::new()));
        tree
    }

    /// The node at `path`, if any.
    pub fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(&Bytes::from(path))
    }

    /// Adds `node` at `path` (`Repeats::Fail`), or replaces what is there (`Repeats::Replace`,
    /// taking the path out of its hard-link group).
    fn put(&mut self, path: Bytes, node: Node, repeats: Repeats) {
        if repeats == Repeats::Replace {
            self.unlink(&path);
        }
        self.insert_bytes(path, node);
    }

    /// Removes `path` and takes it out of its hard-link group (a group of one is no group).
    fn unlink(&mut self, path: &Bytes) {
        self.nodes.remove(path);
        let Some(group) = self.hard_links.iter().find(|g| g.contains(path)).cloned() else {
            return;
        };
        self.hard_links.remove(&group);
        let mut group = group;
        group.remove(path);
        if group.len() > 1 {
            self.hard_links.insert(group);
        }
    }
}

/// The squashfs image holds what the tar holds: every entry with its type, mode, owner,
/// mtime, xattrs, link target and contents, and the same hard-link groups. Directories the
/// tar does not list (parents it implies) may be added, as `0755 root:root`. Returns the
/// image's tree for further checks.
pub fn assert_squashfs_matches_tar(squashfs: &Path, tar: &Path) -> Tree {
    let actual = Tree::from_squashfs(squashfs);
    let differences = differences(&Tree::from_tar_file(tar), &actual);
    assert!(
        differences.is_empty(),
        "{} differs from {} in {} ways:\n{}",
        squashfs.display(),
        tar.display(),
        differences.len(),
        differences.join("\n")
    );
    actual
}

/// How `actual` (a squashfs read back, [`Tree::from_squashfs`]) differs from `expected` (the
/// tar it was made from, [`Tree::from_layer`]), one line per path (`<path>: …`), and
/// `hard links: …` if the groups differ. Link counts are not compared (a layer need not list
/// the parents that count), every other field is.
pub fn differences(expected: &Tree, actual: &Tree) -> Vec<String> {
    let without_nlink = |node: &Node| Node {
        nlink: 0,
        ..node.clone()
    };
    let mut differences = Vec::new();
    for (path, node) in &expected.nodes {
        match actual.nodes.get(path) {
            None => differences.push(format!("{}: missing", shown(path))),
            Some(got) if without_nlink(got) != without_nlink(node) => {
                differences.push(format!("{}: expected {node:?}, got {got:?}", shown(path)))
            }
            Some(_) => {}
        }
    }
    for (path, node) in &actual.nodes {
        if expected.nodes.contains_key(path) {
            continue;
        }
        let mut prefix = path.0.clone();
        prefix.push(b'/');
        let implied = expected
            .nodes
            .keys()
            .any(|name| name.0.starts_with(&prefix));
        let implied_dir =
            node.kind == Kind::Dir && node.mode == 0o755 && node.uid == 0 && node.gid == 0;
        if !(implied && implied_dir) {
            differences.push(format!("{}: not in the tar: {node:?}", shown(path)));
        }
    }
    if actual.hard_links != expected.hard_links {
        differences.push(format!(
            "hard links: expected {:?}, got {:?}",
            expected.hard_links, actual.hard_links
        ));
    }
    differences
}

/// A path as text (lossy), as [`differences`] names it.
fn shown(path: &Bytes) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(&path.0)
}
