//! `cache verify`: every entry checked against its name, every layer against the checksum
//! recorded when it was committed, every link and record against what it names, and the
//! working files of dead writers found; `--repair` removes what is broken, so that the next
//! pull fetches it again.
//!
//! A layer concil 1.0 converted has no checksum: it is read back as far as a squashfs
//! superblock tells (magic, version, sizes), which finds a truncated or overwritten file but
//! not a flipped bit inside it.

use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{
    entry_path, list_dir, read_digest_link, remove_if_present, Cache, CacheError, EntryKind,
    LayerChecksum, LockGuard, CHECKSUMS_DIR, LAYERS_DIR,
};
use crate::digest::{Digest, DigestReader};

/// What `verify` found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    /// How many entries of each kind were checked.
    pub checked: Checked,
    /// Bytes read to check them.
    pub bytes_read: u64,
    /// Everything wrong, in the order found.
    pub problems: Vec<Problem>,
}

/// How many entries of each kind `verify` checked.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Checked {
    /// Manifests hashed.
    pub manifests: u64,
    /// Configs hashed.
    pub configs: u64,
    /// Layer files checked.
    pub layers: u64,
    /// Blob symlinks followed.
    pub links: u64,
    /// Image records read.
    pub records: u64,
}

/// One thing wrong in the cache.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// The file (or symlink) that is wrong.
    pub path: PathBuf,
    /// What is wrong with it.
    #[serde(flatten)]
    pub kind: ProblemKind,
    /// Whether `--repair` removed it (false without `--repair`, or when it is held).
    pub repaired: bool,
}

/// What is wrong with a cache file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ProblemKind {
    /// A manifest, config or stored-as-is layer whose bytes hash to another digest.
    DigestMismatch {
        /// What its bytes hash to.
        actual: Digest,
    },
    /// A layer file that is not what was committed: its checksum (or size) differs.
    ChecksumMismatch {
        /// The sha256 recorded at commit.
        expected: Digest,
        /// The sha256 of the file now.
        actual: Digest,
    },
    /// A layer without a checksum that does not read back as a squashfs image.
    NotSquashfs {
        /// What is wrong with it.
        reason: String,
    },
    /// Something other than a regular file (or a blob's symlink) under an entry's name.
    NotAFile,
    /// A blob symlink whose target is not there.
    DanglingLink,
    /// A blob symlink that points elsewhere than to a layer beside it.
    LinkOutside,
    /// A checksum file that does not parse.
    UnreadableChecksum,
    /// A checksum whose layer is gone.
    OrphanChecksum,
    /// An image record that does not parse.
    UnreadableRecord {
        /// What the parser said.
        reason: String,
    },
    /// An image record naming entries the cache no longer holds.
    IncompleteRecord {
        /// The missing manifests, config and layers.
        missing: Vec<Digest>,
    },
    /// A working file whose writer died.
    DeadWriter,
}

impl std::fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProblemKind::DigestMismatch { actual } => write!(f, "content hashes to {actual}"),
            ProblemKind::ChecksumMismatch { expected, actual } => write!(
                f,
                "squashfs file hashes to {actual}, {expected} when it was committed"
            ),
            ProblemKind::NotSquashfs { reason } => write!(f, "not a squashfs image: {reason}"),
            ProblemKind::NotAFile => f.write_str("not a regular file"),
            ProblemKind::DanglingLink => f.write_str("symlink to a layer that is not there"),
            ProblemKind::LinkOutside => f.write_str("symlink that does not point to a layer"),
            ProblemKind::UnreadableChecksum => f.write_str("checksum file does not parse"),
            ProblemKind::OrphanChecksum => f.write_str("checksum of a layer that is gone"),
            ProblemKind::UnreadableRecord { reason } => write!(f, "image record: {reason}"),
            ProblemKind::IncompleteRecord { missing } => {
                write!(f, "image record names {} missing entries", missing.len())
            }
            ProblemKind::DeadWriter => f.write_str("working file of a writer that died"),
        }
    }
}

impl VerifyReport {
    /// Whether nothing was wrong.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

impl Cache {
    /// Checks every entry; with `repair`, removes what is broken (unless held).
    pub fn verify(&self, repair: bool) -> Result<VerifyReport, CacheError> {
        let mut run = Verification {
            cache: self,
            repair,
            report: VerifyReport::default(),
        };
        run.blobs(EntryKind::Manifest)?;
        run.blobs(EntryKind::Config)?;
        run.layers()?;
        run.checksums()?;
        run.records()?;
        let mut dead = Vec::new();
        self.dead_working_files(|path, _| {
            // Removed while the dead writer's lock is ours.
            if repair {
                remove_if_present(path)?;
            }
            dead.push(path.to_owned());
            Ok(())
        })?;
        for path in dead {
            run.report.problems.push(Problem {
                path,
                kind: ProblemKind::DeadWriter,
                repaired: repair,
            });
        }
        Ok(run.report)
    }
}

struct Verification<'c> {
    cache: &'c Cache,
    repair: bool,
    report: VerifyReport,
}

impl Verification<'_> {
    /// Manifests or configs: each hashed against its name.
    fn blobs(&mut self, kind: EntryKind) -> Result<(), CacheError> {
        let dir = self.cache.root.join(kind.dir());
        for (name, metadata) in list_dir(&dir)? {
            let Ok(digest) = Digest::parse(&name) else {
                continue;
            };
            let path = dir.join(&name);
            match kind {
                EntryKind::Manifest => self.report.checked.manifests += 1,
                _ => self.report.checked.configs += 1,
            }
            if !metadata.is_file() {
                self.found(&path, ProblemKind::NotAFile, &[&digest])?;
                continue;
            }
            let Some((actual, _, _)) = self.hash(&path)? else {
                continue;
            };
            if actual != digest {
                self.found(&path, ProblemKind::DigestMismatch { actual }, &[&digest])?;
            }
        }
        Ok(())
    }

    /// Layer files against their checksums (or their names, or a squashfs read-back), and
    /// blob symlinks against their targets.
    fn layers(&mut self) -> Result<(), CacheError> {
        let dir = self.cache.root.join(LAYERS_DIR);
        let listing = list_dir(&dir)?;
        let mut links_to: std::collections::HashMap<Digest, Vec<Digest>> = Default::default();
        for (name, metadata) in &listing {
            if let (Ok(blob), true) = (Digest::parse(name), metadata.is_symlink()) {
                if let Some(diff_id) = read_digest_link(&dir.join(name))? {
                    links_to.entry(diff_id).or_default().push(blob);
                }
            }
        }
        for (name, metadata) in &listing {
            let Ok(digest) = Digest::parse(name) else {
                continue;
            };
            let path = dir.join(name);
            if metadata.is_symlink() {
                self.report.checked.links += 1;
                match read_digest_link(&path)? {
                    None => self.found(&path, ProblemKind::LinkOutside, &[&digest])?,
                    Some(diff_id) => {
                        let target = dir.join(&diff_id);
                        if !fs::symlink_metadata(&target).is_ok_and(|target| target.is_file()) {
                            self.found(&path, ProblemKind::DanglingLink, &[&digest])?;
                        }
                    }
                }
                continue;
            }
            self.report.checked.layers += 1;
            let links = links_to.remove(&digest).unwrap_or_default();
            let names: Vec<&Digest> = std::iter::once(&digest).chain(&links).collect();
            if !metadata.is_file() {
                self.found(&path, ProblemKind::NotAFile, &names)?;
                continue;
            }
            let Some((actual, size, head)) = self.hash(&path)? else {
                continue;
            };
            let recorded = LayerChecksum::read(&self.cache.root, &digest)?
                .filter(|checksum| checksum.inode == metadata.ino());
            let problem = match recorded {
                Some(checksum) if checksum.sha256 != actual || checksum.size != size => {
                    Some(ProblemKind::ChecksumMismatch {
                        expected: checksum.sha256,
                        actual,
                    })
                }
                Some(_) => None,
                // Stored as it is: named by its own hash.
                None if actual == digest => None,
                None => {
                    squashfs_problem(&head, size).map(|reason| ProblemKind::NotSquashfs { reason })
                }
            };
            if let Some(problem) = problem {
                self.found(&path, problem, &names)?;
                // Its links and checksum go with it (the links would dangle).
                if self
                    .report
                    .problems
                    .last()
                    .is_some_and(|found| found.repaired)
                {
                    for blob in &links {
                        remove_if_present(&dir.join(blob))?;
                    }
                    remove_if_present(&entry_path(&self.cache.root, EntryKind::Checksum, &digest))?;
                }
            }
        }
        Ok(())
    }

    /// Checksum files: each must parse and belong to a layer that is there.
    fn checksums(&mut self) -> Result<(), CacheError> {
        let dir = self.cache.root.join(CHECKSUMS_DIR);
        for (name, _) in list_dir(&dir)? {
            let Ok(diff_id) = Digest::parse(&name) else {
                continue;
            };
            let path = dir.join(&name);
            let layer = entry_path(&self.cache.root, EntryKind::Layer, &diff_id);
            if fs::symlink_metadata(&layer).is_err() {
                self.found(&path, ProblemKind::OrphanChecksum, &[&diff_id])?;
            } else if LayerChecksum::read(&self.cache.root, &diff_id)?.is_none() {
                self.found(&path, ProblemKind::UnreadableChecksum, &[&diff_id])?;
            }
        }
        Ok(())
    }

    /// Image records: each must parse and name only entries the cache holds.
    fn records(&mut self) -> Result<(), CacheError> {
        let records = self.cache.image_records()?;
        for (path, reason) in records.unreadable {
            self.report.checked.records += 1;
            self.found_record(path, ProblemKind::UnreadableRecord { reason })?;
        }
        let layers = self.cache.root.join(LAYERS_DIR);
        for image in records.images {
            self.report.checked.records += 1;
            let record = &image.record;
            let present = |kind: EntryKind, name: &Digest| {
                fs::symlink_metadata(entry_path(&self.cache.root, kind, name))
                    .is_ok_and(|metadata| metadata.is_file())
            };
            let mut missing: Vec<Digest> = [
                (EntryKind::Manifest, &record.resolved_digest),
                (EntryKind::Manifest, &record.manifest_digest),
                (EntryKind::Config, &record.config_digest),
            ]
            .into_iter()
            .filter(|(kind, name)| !present(*kind, name))
            .map(|(_, name)| name.clone())
            .collect();
            missing.extend(
                record
                    .layers
                    .iter()
                    .filter(|layer| !layers.join(&layer.diff_id).is_file())
                    .map(|layer| layer.diff_id.clone()),
            );
            missing.dedup();
            if !missing.is_empty() {
                self.found_record(image.path, ProblemKind::IncompleteRecord { missing })?;
            }
        }
        Ok(())
    }

    /// A broken record; with `repair`, removed unless its image is held.
    fn found_record(&mut self, path: PathBuf, kind: ProblemKind) -> Result<(), CacheError> {
        let name = path
            .file_name()
            .and_then(|name| name.to_str())
            .and_then(|name| Digest::parse(name).ok());
        let mut repaired = false;
        if let (true, Some(name)) = (self.repair, name) {
            if let Some(_guard) = self.cache.try_lock(&name)? {
                repaired = remove_repairable(&path)?;
            }
        }
        self.report.problems.push(Problem {
            path,
            kind,
            repaired,
        });
        Ok(())
    }

    /// Notes a problem with `path`; with `repair`, removes it if every name in `names` can
    /// be locked (nobody holds or writes it).
    fn found(
        &mut self,
        path: &Path,
        kind: ProblemKind,
        names: &[&Digest],
    ) -> Result<(), CacheError> {
        tracing::warn!(path = %path.display(), problem = %kind, "broken cache entry");
        let mut repaired = false;
        if self.repair {
            if let Some(_guards) = self.lock_all(names)? {
                repaired = remove_repairable(path)?;
            }
        }
        self.report.problems.push(Problem {
            path: path.to_owned(),
            kind,
            repaired,
        });
        Ok(())
    }

    fn lock_all(&self, names: &[&Digest]) -> Result<Option<Vec<LockGuard>>, CacheError> {
        let mut guards = Vec::with_capacity(names.len());
        for name in names {
            match self.cache.try_lock(name)? {
                Some(guard) => guards.push(guard),
                None => return Ok(None),
            }
        }
        Ok(Some(guards))
    }

    /// The sha256, length and first bytes (a squashfs superblock's worth) of the file at
    /// `path`, read without following a symlink; `None` if it vanished meanwhile.
    fn hash(&mut self, path: &Path) -> Result<Option<(Digest, u64, Vec<u8>)>, CacheError> {
        let read_error = |source| CacheError::Read {
            path: path.to_owned(),
            source,
        };
        let mut file = match super::open_entry(path) {
            Ok(Some(file)) => file,
            Ok(None) => return Ok(None),
            Err(error) => return Err(error),
        };
        let mut head = vec![0; SUPERBLOCK_SIZE];
        let got = read_up_to(&mut file, &mut head).map_err(read_error)?;
        head.truncate(got);
        let mut hashing = DigestReader::new(io::Cursor::new(&head).chain(file));
        io::copy(&mut hashing, &mut io::sink()).map_err(read_error)?;
        self.report.bytes_read += hashing.bytes_read();
        Ok(Some((hashing.digest(), hashing.bytes_read(), head)))
    }
}

/// Removes a broken file or symlink; `false` (not repaired) for what only a person should
/// remove (a directory under an entry's name) or what cannot be removed.
fn remove_repairable(path: &Path) -> Result<bool, CacheError> {
    if fs::symlink_metadata(path).is_ok_and(|metadata| metadata.is_dir()) {
        return Ok(false);
    }
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(true),
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "cannot remove a broken cache entry");
            Ok(false)
        }
    }
}

/// A squashfs 4.0 superblock is 96 bytes.
const SUPERBLOCK_SIZE: usize = 96;
const SQUASHFS_MAGIC: u32 = 0x7371_7368;

/// What is wrong with a squashfs image whose first bytes are `head` and length `size`, as far
/// as its superblock tells; `None` if nothing.
fn squashfs_problem(head: &[u8], size: u64) -> Option<String> {
    let Some(superblock) = head.get(..SUPERBLOCK_SIZE) else {
        return Some(format!("{size} bytes, shorter than a superblock"));
    };
    let u16_at = |at: usize| u16::from_le_bytes([superblock[at], superblock[at + 1]]);
    let u32_at = |at: usize| {
        u32::from_le_bytes([
            superblock[at],
            superblock[at + 1],
            superblock[at + 2],
            superblock[at + 3],
        ])
    };
    let u64_at = |at: usize| {
        let mut bytes = [0; 8];
        bytes.copy_from_slice(&superblock[at..at + 8]);
        u64::from_le_bytes(bytes)
    };
    if u32_at(0) != SQUASHFS_MAGIC {
        return Some("no squashfs magic".to_owned());
    }
    let (major, minor) = (u16_at(28), u16_at(30));
    if (major, minor) != (4, 0) {
        return Some(format!("version {major}.{minor}, not 4.0"));
    }
    let block_size = u32_at(12);
    let block_log = u16_at(22);
    if !block_size.is_power_of_two() || u32::from(block_log) >= 32 || 1 << block_log != block_size {
        return Some(format!(
            "block size {block_size} does not match its log {block_log}"
        ));
    }
    let bytes_used = u64_at(40);
    if bytes_used > size {
        return Some(format!(
            "{size} bytes, the superblock says {bytes_used}: truncated"
        ));
    }
    // Every table the superblock points to lies within the image (or is absent: all ones).
    for (table, at) in [
        ("inode table", 64),
        ("directory table", 72),
        ("fragment table", 80),
        ("export table", 88),
        ("id table", 48),
        ("xattr table", 56),
    ] {
        let start = u64_at(at);
        if start != u64::MAX && start > bytes_used {
            return Some(format!(
                "its {table} starts at {start}, past its end {bytes_used}"
            ));
        }
    }
    None
}

/// Reads until `buf` is full or the file ends; returns how much was read.
fn read_up_to(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(read) => got += read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        }
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn superblock(bytes_used: u64) -> Vec<u8> {
        let mut head = vec![0u8; SUPERBLOCK_SIZE];
        head[0..4].copy_from_slice(&SQUASHFS_MAGIC.to_le_bytes());
        head[12..16].copy_from_slice(&131_072u32.to_le_bytes());
        head[22..24].copy_from_slice(&17u16.to_le_bytes());
        head[28..30].copy_from_slice(&4u16.to_le_bytes());
        head[40..48].copy_from_slice(&bytes_used.to_le_bytes());
        for at in [48, 56, 64, 72, 80, 88] {
            head[at..at + 8].copy_from_slice(&(bytes_used - 10).to_le_bytes());
        }
        head
    }

    #[test]
    fn a_superblock_is_judged_by_magic_version_block_size_and_sizes() {
        assert_eq!(squashfs_problem(&superblock(4000), 4096), None);
        assert!(squashfs_problem(&superblock(4000), 3000)
            .unwrap()
            .contains("truncated"));
        assert!(squashfs_problem(&superblock(4000)[..50], 50)
            .unwrap()
            .contains("shorter"));
        let mut wrong_magic = superblock(4000);
        wrong_magic[0] = b'x';
        assert_eq!(
            squashfs_problem(&wrong_magic, 4096).as_deref(),
            Some("no squashfs magic")
        );
        let mut wrong_log = superblock(4000);
        wrong_log[22] = 16;
        assert!(squashfs_problem(&wrong_log, 4096)
            .unwrap()
            .contains("block size"));
        let mut table_past_end = superblock(4000);
        table_past_end[64..72].copy_from_slice(&5000u64.to_le_bytes());
        assert!(squashfs_problem(&table_past_end, 4096)
            .unwrap()
            .contains("inode table"));
    }
}
