//! The content-addressed cache directory: layout, atomic commit, per-blob locks, clean-up.
//!
//! The layout is concil 1.0's, so either version reads what the other wrote:
//!
//! ```text
//! <root>/manifest/sha256:<hex>         manifest bytes as served
//! <root>/config/sha256:<hex>           config blob
//! <root>/layers/sha256:<diff_id>       squashfs file, named by the uncompressed tar's digest
//! <root>/layers/sha256:<blob>          relative symlink -> sha256:<diff_id>
//! ```
//!
//! Working files live in `<root>/tmp/` (ingest files, temporary symlinks) and
//! `<root>/locks/` (one lock file per digest). concil 1.0 only ever looks into
//! `manifest/`, `config/` and `layers/`, so it never sees them; and they are on the same
//! file system as the entries, so a commit is a `rename`.
//!
//! This part knows nothing of registries or trust: the caller verifies digests before it
//! commits; the cache only makes sure that a final name never holds partial content and that
//! no input can name a path outside the cache.
//!
//! A name is only ever given to bytes that hashed to it: `layers/<blob>` links to a diff_id
//! only after that blob was downloaded and its tar hashed to the diff_id (the store's rule; this
//! part only offers `commit_layer`). Entries are never followed through symlinks planted in
//! their place, and the directories must be safe from other users ([`Cache::open`]).
//!
//! The store's pattern for one blob:
//! ```text
//! let _lock = cache.lock(blob)?;                       // waits for another process
//! if let Some(layer) = cache.layer_by_blob(blob)? { return Ok(layer) }  // it may have finished
//! let mut ingest = cache.ingest()?;                    // download + convert into ingest.file()
//! ingest.commit_layer(diff_id, Some(blob))?;           // atomic; the lock drops afterwards
//! ```

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustix::fs::{AtFlags, FlockOperation, Mode, OFlags, Timestamps, CWD, UTIME_NOW};
use rustix::io::Errno;

use crate::digest::Digest;

mod checksum;
mod hold;
mod records;
mod usage;
mod verify;

use checksum::LayerChecksum;
pub use hold::Hold;
pub use records::{ImageRecord, RecordedImage, RecordedLayer, Records};
pub use usage::{CacheUsage, EvictionReport, ImageUsage, LayerUsage, RemovedImage};
pub use verify::{Problem, ProblemKind, VerifyReport};

const MANIFEST_DIR: &str = "manifest";
const CONFIG_DIR: &str = "config";
const LAYERS_DIR: &str = "layers";
/// Ingest files and temporary symlinks.
const TMP_DIR: &str = "tmp";
/// One lock file per digest.
const LOCKS_DIR: &str = "locks";
/// `checksums/<diff_id>`: the sha256 of each squashfs file concil converted, recorded when
/// it was committed ([`verify`]).
const CHECKSUMS_DIR: &str = "checksums";
/// `images/<digest of the key>`: what each pull resolved ([`records`]).
const IMAGES_DIR: &str = "images";

/// The mode of the directories the cache creates (before the umask).
const CACHE_DIR_MODE: u32 = 0o755;

/// concil 1.0's working files beside its entries: `<digest>.out` (the download, which is also
/// its lock) and `<digest>.sq` (tar2sqfs output, left behind when a conversion failed).
const LEGACY_WORKING_SUFFIXES: [&str; 2] = [".out", ".sq"];

/// Errors of the cache; each names the file or digest that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// Creating a cache directory failed.
    #[error("cannot create directory {path}")]
    CreateDir {
        /// The directory that could not be created.
        path: PathBuf,
        /// What the file system said.
        source: std::io::Error,
    },
    /// Creating a working file (ingest or lock file) failed.
    #[error("cannot create {path}")]
    Create {
        /// The working file that could not be created.
        path: PathBuf,
        /// What the file system said.
        source: std::io::Error,
    },
    /// Reading a cache entry or a directory listing failed.
    #[error("cannot read {path}")]
    Read {
        /// The entry or directory that could not be read.
        path: PathBuf,
        /// What the file system said.
        source: std::io::Error,
    },
    /// Writing a working file failed.
    #[error("cannot write {path}")]
    Write {
        /// The working file that could not be written.
        path: PathBuf,
        /// What the file system said.
        source: std::io::Error,
    },
    /// `fsync` of a file or a directory failed.
    #[error("cannot fsync {path}")]
    Sync {
        /// The file or directory that could not be synced.
        path: PathBuf,
        /// What the file system said.
        source: std::io::Error,
    },
    /// Renaming a working file to its final name failed.
    #[error("cannot rename {from} to {to}")]
    Rename {
        /// The working file (or temporary symlink) in `tmp/`.
        from: PathBuf,
        /// The entry's final name.
        to: PathBuf,
        /// What the file system said.
        source: std::io::Error,
    },
    /// Creating the blob -> diff_id symlink failed.
    #[error("cannot create symlink {path} -> {target}")]
    Symlink {
        /// The temporary symlink in `tmp/` that could not be created.
        path: PathBuf,
        /// What it was to point to: the diff_id, a file name in `layers/`.
        target: String,
        /// What the file system said.
        source: std::io::Error,
    },
    /// Taking or probing a lock failed (not: the lock is held).
    #[error("cannot lock {path}")]
    Lock {
        /// The lock file, or the working file whose `flock` was probed.
        path: PathBuf,
        /// What the file system said.
        source: std::io::Error,
    },
    /// Another user's file holds the name this entry must take (possible in a sticky cache
    /// directory shared on purpose): it cannot be replaced, so the entry cannot be stored.
    #[error("{path} belongs to uid {uid}: cannot store the entry under its name; ask them to remove it, or use a cache_dir of your own")]
    ForeignEntry {
        /// The name another user's file holds.
        path: PathBuf,
        /// Its owner.
        uid: u32,
    },
    /// The file system of the cache does not support `flock` (NFSv3 without lockd, some
    /// FUSE file systems): concil refuses to share a cache it cannot lock.
    #[error(
        "cannot lock {path}: its file system does not support flock; \
         a shared cache_dir needs whole-file locks that work across hosts (see ARCHITECTURE.md)"
    )]
    LocksUnavailable {
        /// The lock file (or working file) that could not be locked.
        path: PathBuf,
    },
    /// Removing an entry or a working file during clean-up failed.
    #[error("cannot remove {path}")]
    Remove {
        /// The entry, symlink or working file that could not be removed.
        path: PathBuf,
        /// What the file system said.
        source: std::io::Error,
    },
    /// A cache name holds something that is not a regular file (a directory, a device…).
    #[error("{path} is not a regular file")]
    NotAFile {
        /// The cache name that holds it.
        path: PathBuf,
    },
    /// A cache directory that another user could change under us: refused, as ssh refuses
    /// such a `~/.ssh`, because everything the cache holds is trusted once its name is right.
    #[error("refusing to use cache directory {path}: {problem}")]
    UnsafeDirectory {
        /// The cache directory or the subdirectory that is unsafe.
        path: PathBuf,
        /// What is wrong with it.
        problem: UnsafeDirectory,
    },
}

/// Why a cache directory is not safe to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum UnsafeDirectory {
    /// It is a symlink (only the cache directory itself may be one).
    Symlink,
    /// Something other than a directory has its name.
    NotADirectory,
    /// Owned by another user (uid) than the one running concil, and not by root.
    ForeignOwner {
        /// The owner's uid.
        uid: u32,
    },
    /// Writable by group or others without the sticky bit, so they could swap its entries.
    WritableByOthers {
        /// The directory's permission bits (`mode & 0o7777`).
        mode: u32,
    },
}

impl std::fmt::Display for UnsafeDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UnsafeDirectory::Symlink => {
                f.write_str("it is a symlink; remove it, concil creates the directory itself")
            }
            UnsafeDirectory::NotADirectory => f.write_str("it is not a directory"),
            UnsafeDirectory::ForeignOwner { uid } => write!(
                f,
                "it is owned by uid {uid}, not by this user or root; use a cache_dir of your own"
            ),
            UnsafeDirectory::WritableByOthers { mode } => write!(
                f,
                "its mode {mode:04o} lets other users replace its entries; \
                 `chmod go-w` it (or `chmod +t` for a cache shared on purpose)"
            ),
        }
    }
}

/// A cache directory. `Sync`: share one between threads.
#[derive(Debug)]
pub struct Cache {
    root: PathBuf,
    /// Makes ingest names unique within this process (with the pid, across processes; it
    /// starts at random, for processes of the same pid on other hosts).
    next_ingest: AtomicU64,
}

/// A layer found in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedLayer {
    /// Absolute path of the squashfs file (`<root>/layers/<diff_id>`).
    pub path: PathBuf,
    /// Digest of the uncompressed tar, the name of the squashfs file.
    pub diff_id: Digest,
}

/// A working file being written; it becomes a cache entry only by a `commit_*`.
///
/// Dropping it uncommitted deletes the file. While it lives, it holds an exclusive `flock`
/// on its own file, which tells [`Cache::clean`] that its writer is alive.
#[derive(Debug)]
pub struct Ingest {
    file: File,
    path: PathBuf,
    root: PathBuf,
    committed: bool,
}

/// An exclusive per-digest lock across processes (`flock(LOCK_EX)` on
/// `<root>/locks/<digest>`). Released on drop, and by the kernel if the holder dies.
#[derive(Debug)]
pub struct LockGuard {
    /// Held open only: closing it releases the lock.
    _file: File,
    path: PathBuf,
    /// The lock file's owner: a lock file another user made can be swapped by them.
    owner: u32,
    /// A removal's lock also holds the entry's hold file (`locks/<digest>.hold`).
    hold: Option<Box<LockGuard>>,
}

/// What [`Cache::clean`] removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CleanReport {
    /// Entries (manifests, configs, layers), their symlinks and stale working files removed.
    pub removed_files: u64,
    /// Bytes of the regular files removed (symlinks count as 0).
    pub removed_bytes: u64,
}

impl Cache {
    /// Opens the cache at `dir` (made absolute), creating it and its subdirectories.
    ///
    /// The cache directory may be a symlink (`~/.concil` → `/scratch/…`); it and each of its
    /// subdirectories must belong to this user (or root) and must not be writable by others
    /// unless sticky, and the subdirectories must not be symlinks: otherwise another user could
    /// plant entries, or point `tmp/` elsewhere for clean-up to empty.
    pub fn open(dir: impl AsRef<Path>) -> Result<Cache, CacheError> {
        let dir = dir.as_ref();
        let absolute = std::path::absolute(dir).map_err(|source| CacheError::CreateDir {
            path: dir.to_owned(),
            source,
        })?;
        // 0755, whatever the umask adds: a group-writable directory would be refused below
        // (users with umask 002 would otherwise be refused their own new cache).
        fs::DirBuilder::new()
            .recursive(true)
            .mode(CACHE_DIR_MODE)
            .create(&absolute)
            .map_err(|source| CacheError::CreateDir {
                path: absolute.clone(),
                source,
            })?;
        let root = fs::canonicalize(&absolute).map_err(|source| CacheError::Read {
            path: absolute.clone(),
            source,
        })?;
        check_directory(&root)?;
        for sub in [
            MANIFEST_DIR,
            CONFIG_DIR,
            LAYERS_DIR,
            TMP_DIR,
            LOCKS_DIR,
            CHECKSUMS_DIR,
            IMAGES_DIR,
        ] {
            let path = root.join(sub);
            match fs::DirBuilder::new().mode(CACHE_DIR_MODE).create(&path) {
                Ok(()) => {}
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
                Err(source) => return Err(CacheError::CreateDir { path, source }),
            }
            check_directory(&path)?;
        }
        Ok(Cache {
            root,
            // Random: processes on other hosts sharing the cache (or in other pid namespaces)
            // may have our pid, and the temporary names of a commit derive from this one.
            next_ingest: AtomicU64::new(fastrand::u64(..u64::MAX / 2)),
        })
    }

    /// The cache directory (absolute).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Starts writing a new entry: a fresh, exclusively created file in `<root>/tmp/`.
    pub fn ingest(&self) -> Result<Ingest, CacheError> {
        let tmp = self.root.join(TMP_DIR);
        loop {
            let number = self.next_ingest.fetch_add(1, Ordering::Relaxed);
            let path = tmp.join(ingest_name(number));
            let file = match OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(file) => file,
                // Left by a dead process that had our pid: take the next number.
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(source) => return Err(CacheError::Create { path, source }),
            };
            // Blocking: `clean` holds it only while it removes a dead writer's file, and then
            // the name is gone: start over.
            if flock_at(&path, &file, FlockOperation::LockExclusive)? == Flock::Held {
                return Ok(Ingest {
                    file,
                    path,
                    root: self.root.clone(),
                    committed: false,
                });
            }
        }
    }

    /// Writes a manifest (bytes as served) under `manifest/<digest>` atomically.
    /// The caller has verified that `digest` is the digest of `bytes`.
    pub fn put_manifest(&self, digest: &Digest, bytes: &[u8]) -> Result<PathBuf, CacheError> {
        self.put(EntryKind::Manifest, digest, bytes)
    }

    /// Writes a config blob under `config/<digest>` atomically (digest verified by the caller).
    pub fn put_config(&self, digest: &Digest, bytes: &[u8]) -> Result<PathBuf, CacheError> {
        self.put(EntryKind::Config, digest, bytes)
    }

    /// The cached manifest `digest`, refreshing its mtime; `None` if absent.
    pub fn manifest(&self, digest: &Digest) -> Result<Option<Vec<u8>>, CacheError> {
        self.read_entry(EntryKind::Manifest, digest)
    }

    /// The cached config blob `digest`, refreshing its mtime; `None` if absent.
    pub fn config(&self, digest: &Digest) -> Result<Option<Vec<u8>>, CacheError> {
        self.read_entry(EntryKind::Config, digest)
    }

    /// The squashfs file named `diff_id`, refreshing its mtime; `None` if absent.
    pub fn layer_by_diff_id(&self, diff_id: &Digest) -> Result<Option<PathBuf>, CacheError> {
        let path = entry_path(&self.root, EntryKind::Layer, diff_id);
        // Not followed: a squashfs file is never a symlink, and one planted here may point
        // anywhere outside the cache.
        match fs::symlink_metadata(&path) {
            Ok(metadata) if metadata.is_file() && !made_by_us(&metadata, &path) => Ok(None),
            Ok(metadata) if metadata.is_file() => {
                touch(&path);
                Ok(Some(path))
            }
            Ok(metadata) if metadata.is_symlink() => {
                tracing::warn!(path = %path.display(), "ignoring a symlink where a layer file belongs");
                Ok(None)
            }
            Ok(_) => Err(CacheError::NotAFile { path }),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(CacheError::Read { path, source }),
        }
    }

    /// The squashfs file for the registry blob `blob_digest`: `layers/<blob>` is a symlink to
    /// the diff_id's file (or the file itself when the blob was stored as it is, diff_id ==
    /// blob). Refreshes the file's mtime. A dangling symlink, or one that does not point to
    /// a digest name in `layers/`, counts as absent.
    pub fn layer_by_blob(&self, blob_digest: &Digest) -> Result<Option<CachedLayer>, CacheError> {
        let path = entry_path(&self.root, EntryKind::Layer, blob_digest);
        let metadata = match fs::symlink_metadata(&path) {
            Ok(metadata) => metadata,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(CacheError::Read { path, source }),
        };
        if !made_by_us(&metadata, &path) {
            return Ok(None);
        }
        if metadata.is_file() {
            touch(&path);
            return Ok(Some(CachedLayer {
                path,
                diff_id: blob_digest.clone(),
            }));
        }
        if !metadata.is_symlink() {
            return Err(CacheError::NotAFile { path });
        }
        let Some(diff_id) = read_digest_link(&path)? else {
            return Ok(None);
        };
        Ok(self
            .layer_by_diff_id(&diff_id)?
            .map(|path| CachedLayer { path, diff_id }))
    }

    /// Fails if another user's file holds one of the layer names `names` (the squashfs file's,
    /// a blob link's): a commit could not replace it, so a download would be wasted.
    pub fn refuse_foreign_layer_names<'a>(
        &self,
        names: impl IntoIterator<Item = &'a Digest>,
    ) -> Result<(), CacheError> {
        // A rename replaces another user's file unless the directory is sticky and neither it
        // nor the file is ours (root may always).
        let dir = self.root.join(LAYERS_DIR);
        let euid = rustix::process::geteuid().as_raw();
        let sticky_for_us = fs::symlink_metadata(&dir).is_ok_and(|metadata| {
            metadata.mode() & 0o1000 != 0 && metadata.uid() != euid && euid != 0
        });
        if !sticky_for_us {
            return Ok(());
        }
        for name in names {
            let path = entry_path(&self.root, EntryKind::Layer, name);
            if let Ok(metadata) = fs::symlink_metadata(&path) {
                if !is_ours(&metadata) {
                    return Err(CacheError::ForeignEntry {
                        path,
                        uid: metadata.uid(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Waits (blocking in the kernel, no polling) until this process holds the exclusive
    /// lock for `digest`.
    pub fn lock(&self, digest: &Digest) -> Result<LockGuard, CacheError> {
        let path = entry_lock_path(&self.root, digest);
        // A blocking flock is never refused, so this returns at the first round.
        loop {
            if let Some(guard) = acquire(&path, FlockOperation::LockExclusive)? {
                return Ok(guard);
            }
        }
    }

    /// Takes the lock for `digest` as a removal does, if no one holds it (nor holds the entry
    /// with a [`Hold`]); `None` if someone does, or if the lock file is not ours to trust.
    pub fn try_lock(&self, digest: &Digest) -> Result<Option<LockGuard>, CacheError> {
        try_lock_unheld(&self.root, digest)
    }

    /// Removes manifests, configs and layers whose mtime is older than `older_than` (with
    /// their blob symlinks), dangling symlinks, working files of dead writers and unused
    /// lock files. An entry whose lock someone holds is kept.
    ///
    /// A writer is dead when the `flock` that every live [`Ingest`] holds on its file can be
    /// taken, so no age limit is needed for ingest files; concil 1.0's working files carry no
    /// lock and go by age, as concil 1.0 itself removes them.
    pub fn clean(&self, older_than: Duration) -> Result<CleanReport, CacheError> {
        self.clean_older_than(older_than, false)
    }

    /// [`clean`](Cache::clean), or on a dry run only what it would remove.
    pub fn clean_older_than(
        &self,
        older_than: Duration,
        dry_run: bool,
    ) -> Result<CleanReport, CacheError> {
        let now = SystemTime::now();
        let cutoff = now.checked_sub(older_than).unwrap_or(UNIX_EPOCH);
        let mut sweep = Sweep {
            dry_run,
            report: CleanReport::default(),
        };
        // Records first: one killed in between leaves entries no record names (removed
        // later), never a record naming entries that are gone.
        self.clean_records(cutoff, &mut sweep)?;
        self.clean_blobs(EntryKind::Manifest, cutoff, &mut sweep)?;
        self.clean_blobs(EntryKind::Config, cutoff, &mut sweep)?;
        self.clean_layers(cutoff, &mut sweep)?;
        self.clean_orphan_checksums(&mut sweep)?;
        self.clean_working_files(&mut sweep)?;
        if !dry_run {
            self.clean_lock_files()?;
        }
        Ok(sweep.report)
    }

    fn put(&self, kind: EntryKind, digest: &Digest, bytes: &[u8]) -> Result<PathBuf, CacheError> {
        let mut ingest = self.ingest()?;
        io::Write::write_all(ingest.file(), bytes).map_err(|source| CacheError::Write {
            path: ingest.path.clone(),
            source,
        })?;
        ingest.commit(kind, digest)
    }

    fn read_entry(&self, kind: EntryKind, digest: &Digest) -> Result<Option<Vec<u8>>, CacheError> {
        let path = entry_path(&self.root, kind, digest);
        let Some(mut file) = open_entry(&path)? else {
            return Ok(None);
        };
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(|source| CacheError::Read {
                path: path.clone(),
                source,
            })?;
        touch(&path);
        Ok(Some(bytes))
    }

    /// Old manifests or configs, and concil 1.0's old working files beside them.
    fn clean_blobs(
        &self,
        kind: EntryKind,
        cutoff: SystemTime,
        sweep: &mut Sweep,
    ) -> Result<(), CacheError> {
        let dir = self.root.join(kind.dir());
        for (name, metadata) in list_dir(&dir)? {
            let path = dir.join(&name);
            if is_legacy_working_file(&name) {
                if metadata.is_file() && is_older(&metadata, cutoff) {
                    remove(&path, metadata.len(), sweep)?;
                }
                continue;
            }
            let Some(digest) = digest_name(&name) else {
                continue;
            };
            if !metadata.is_file() || !is_older(&metadata, cutoff) {
                continue;
            }
            let Some(_guard) = self.try_lock(&digest)? else {
                continue;
            };
            // A lookup may have refreshed it since the listing.
            if let Some(metadata) = still_older(&path, cutoff)? {
                remove(&path, metadata.len(), sweep)?;
            }
        }
        Ok(())
    }

    /// Old squashfs files with the blob symlinks that point to them, and dangling symlinks.
    fn clean_layers(&self, cutoff: SystemTime, sweep: &mut Sweep) -> Result<(), CacheError> {
        let dir = self.root.join(LAYERS_DIR);
        let mut layers = Vec::new();
        let mut links_to: HashMap<Digest, Vec<Digest>> = HashMap::new();
        let mut broken_links = Vec::new();
        for (name, metadata) in list_dir(&dir)? {
            let path = dir.join(&name);
            if is_legacy_working_file(&name) {
                if metadata.is_file() && is_older(&metadata, cutoff) {
                    remove(&path, metadata.len(), sweep)?;
                }
                continue;
            }
            let Some(digest) = digest_name(&name) else {
                continue;
            };
            if metadata.is_symlink() {
                match read_digest_link(&path)? {
                    Some(diff_id) => links_to.entry(diff_id).or_default().push(digest),
                    None => broken_links.push(digest),
                }
            } else if metadata.is_file() {
                layers.push((digest, metadata));
            }
        }
        let layer_names: HashSet<&Digest> = layers.iter().map(|(name, _)| name).collect();
        for (diff_id, blobs) in &links_to {
            if !layer_names.contains(diff_id) {
                broken_links.extend(blobs.iter().cloned());
            }
        }

        'layers: for (diff_id, metadata) in &layers {
            if !is_older(metadata, cutoff) {
                continue;
            }
            let blobs = links_to.get(diff_id).map(Vec::as_slice).unwrap_or_default();
            // The store locks a layer by its blob digest (or by its diff_id): every name of
            // the layer must be free.
            let mut guards = Vec::with_capacity(blobs.len() + 1);
            for name in std::iter::once(diff_id).chain(blobs) {
                match self.try_lock(name)? {
                    Some(guard) => guards.push(guard),
                    None => continue 'layers,
                }
            }
            let path = dir.join(diff_id);
            let Some(metadata) = still_older(&path, cutoff)? else {
                continue;
            };
            // Symlinks first, so that no dangling one is ever seen: concil 1.0's clean-up
            // stops with an error on a dangling symlink.
            for blob in blobs {
                remove(&dir.join(blob), 0, sweep)?;
            }
            remove(&path, metadata.len(), sweep)?;
            // Its checksum is part of the entry.
            if !sweep.dry_run {
                remove_if_present(&entry_path(&self.root, EntryKind::Checksum, diff_id))?;
            }
        }

        for blob in broken_links {
            let Some(_guard) = self.try_lock(&blob)? else {
                continue;
            };
            let path = dir.join(&blob);
            // A writer may have committed the target since the listing. A link in a loop of
            // links (ELOOP) leads nowhere either.
            match fs::metadata(&path) {
                Err(error)
                    if error.kind() == io::ErrorKind::NotFound
                        || error.raw_os_error() == Some(Errno::LOOP.raw_os_error()) =>
                {
                    remove(&path, 0, sweep)?
                }
                Ok(_) => {}
                Err(source) => return Err(CacheError::Read { path, source }),
            }
        }
        Ok(())
    }

    /// Ingest files whose writer died (their `flock` is free) and stale temporary symlinks.
    fn clean_working_files(&self, sweep: &mut Sweep) -> Result<(), CacheError> {
        self.dead_working_files(|path, bytes| remove(path, bytes, sweep))
    }

    /// Calls `found` for each working file of a dead writer (path, size): ingest files and
    /// temporary checksums whose `flock` is free (held by us during the call), and temporary
    /// symlinks whose sibling temporary checksum is gone or free (a symlink cannot be locked:
    /// its writer makes it while it holds that checksum's lock).
    fn dead_working_files(
        &self,
        mut found: impl FnMut(&Path, u64) -> Result<(), CacheError>,
    ) -> Result<(), CacheError> {
        let dir = self.root.join(TMP_DIR);
        for (name, metadata) in list_dir(&dir)? {
            let path = dir.join(&name);
            // Only what `ingest` and `commit_layer` name; anything else is not ours to remove.
            let Some(working_file) = WorkingFile::from_name(&name) else {
                continue;
            };
            if working_file == WorkingFile::TempLink {
                let base = name.strip_suffix(TEMP_LINK_SUFFIX).unwrap_or(&name);
                let sibling = dir.join(format!("{base}{TEMP_SUM_SUFFIX}"));
                if metadata.is_symlink() && !is_locked_by_a_writer(&sibling)? {
                    found(&path, 0)?;
                }
                continue;
            }
            if !metadata.is_file() {
                continue;
            }
            let file = match OpenOptions::new()
                .read(true)
                .custom_flags(OFlags::NOFOLLOW.bits() as i32)
                .open(&path)
            {
                Ok(file) => file,
                Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
                Err(source) => return Err(CacheError::Read { path, source }),
            };
            // We get the lock only once the writer is dead (Busy: alive; Gone: it
            // committed since the listing).
            if flock_at(&path, &file, FlockOperation::NonBlockingLockExclusive)? == Flock::Held {
                found(&path, metadata.len())?;
            }
        }
        Ok(())
    }

    /// Image records not used (pulled or held) for longer than the cutoff.
    fn clean_records(&self, cutoff: SystemTime, sweep: &mut Sweep) -> Result<(), CacheError> {
        let dir = self.root.join(IMAGES_DIR);
        for (name, metadata) in list_dir(&dir)? {
            let Some(key) = digest_name(&name) else {
                continue;
            };
            if !metadata.is_file() || !is_older(&metadata, cutoff) {
                continue;
            }
            // A held image's record stays with it.
            let Some(_guard) = self.try_lock(&key)? else {
                continue;
            };
            remove(&dir.join(&name), metadata.len(), sweep)?;
        }
        Ok(())
    }

    /// Checksums of layers that are gone.
    fn clean_orphan_checksums(&self, sweep: &mut Sweep) -> Result<(), CacheError> {
        let dir = self.root.join(CHECKSUMS_DIR);
        for (name, metadata) in list_dir(&dir)? {
            let Some(diff_id) = digest_name(&name) else {
                continue;
            };
            let Some(_guard) = self.try_lock(&diff_id)? else {
                continue;
            };
            let layer = entry_path(&self.root, EntryKind::Layer, &diff_id);
            match fs::symlink_metadata(&layer) {
                Err(error) if error.kind() == io::ErrorKind::NotFound => {
                    remove(&dir.join(&name), metadata.len(), sweep)?
                }
                Ok(_) => {}
                Err(source) => {
                    return Err(CacheError::Read {
                        path: layer,
                        source,
                    })
                }
            }
        }
        Ok(())
    }

    /// Lock files nobody holds (they are harmless, but would pile up).
    fn clean_lock_files(&self) -> Result<(), CacheError> {
        let dir = self.root.join(LOCKS_DIR);
        for (name, metadata) in list_dir(&dir)? {
            let digest = name.strip_suffix(HOLD_SUFFIX).unwrap_or(&name);
            if digest_name(digest).is_none() || !metadata.is_file() {
                continue;
            }
            match acquire(&dir.join(&name), FlockOperation::NonBlockingLockExclusive) {
                Ok(Some(guard)) if guard.is_ours() => guard.remove_file()?,
                Ok(_) | Err(CacheError::NotAFile { .. }) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }
}

impl Ingest {
    /// The file to write to (opened read-write). Flush any buffering writer on top of it
    /// before committing.
    pub fn file(&mut self) -> &mut File {
        &mut self.file
    }

    /// The working file's path, in the cache's file system.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// fsyncs the file and renames it to `manifest/<digest>`; returns the final path.
    pub fn commit_manifest(self, digest: &Digest) -> Result<PathBuf, CacheError> {
        self.commit(EntryKind::Manifest, digest)
    }

    /// fsyncs the file and renames it to `config/<digest>`; returns the final path.
    pub fn commit_config(self, digest: &Digest) -> Result<PathBuf, CacheError> {
        self.commit(EntryKind::Config, digest)
    }

    /// fsyncs the squashfs file and renames it to `layers/<diff_id>`. A converted layer
    /// (`blob_digest` given) gets its checksum in `checksums/<diff_id>` (for `verify`), and
    /// unless the blob is the diff_id (an uncompressed tar) `layers/<blob>` atomically points
    /// at it. `blob_digest` `None`: a layer stored as it is, named by its own digest. Returns
    /// the final path of the squashfs file.
    pub fn commit_layer(
        mut self,
        diff_id: &Digest,
        blob_digest: Option<&Digest>,
    ) -> Result<PathBuf, CacheError> {
        let root = self.root.clone();
        // Unique as long as the ingest file's name is: that name is ours until the rename.
        let temp_name = |suffix: &str| {
            let mut name = self.path.clone().into_os_string();
            name.push(suffix);
            PathBuf::from(name)
        };
        let (temp_link, temp_checksum) = (temp_name(TEMP_LINK_SUFFIX), temp_name(TEMP_SUM_SUFFIX));
        // A layer stored as it is (no blob: its name is its own hash) needs none; a converted
        // one does, even from an uncompressed tar, whose blob digest is its diff_id: the name
        // is the tar's hash, not the squashfs file's.
        let checksum = match blob_digest {
            None => None,
            Some(_) => Some(self.checksum()?),
        };

        let layer = self.commit(EntryKind::Layer, diff_id)?;
        // Only a converted layer has a checksum, and only a converted layer of a compressed
        // blob a link: made while the temporary checksum is locked, which tells `clean` its
        // writer is alive.
        if let Some(checksum) = checksum {
            checksum.commit(&root, &temp_checksum, diff_id, || {
                match blob_digest.filter(|blob| *blob != diff_id) {
                    Some(blob) => link_blob_to_layer(&root, &temp_link, blob, diff_id),
                    None => Ok(()),
                }
            })?;
        }
        Ok(layer)
    }

    /// The checksum of the working file as written so far.
    fn checksum(&mut self) -> Result<LayerChecksum, CacheError> {
        let read_error = |source| CacheError::Read {
            path: self.path.clone(),
            source,
        };
        io::Seek::rewind(&mut self.file).map_err(read_error)?;
        let (sha256, size) = Digest::of_reader(&mut self.file).map_err(read_error)?;
        let inode = self.file.metadata().map_err(read_error)?.ino();
        Ok(LayerChecksum {
            sha256,
            size,
            inode,
        })
    }

    fn commit(mut self, kind: EntryKind, digest: &Digest) -> Result<PathBuf, CacheError> {
        let dir = self.root.join(kind.dir());
        let target = entry_path(&self.root, kind, digest);
        self.file.sync_all().map_err(|source| CacheError::Sync {
            path: self.path.clone(),
            source,
        })?;
        fs::rename(&self.path, &target).map_err(|source| CacheError::Rename {
            from: self.path.clone(),
            to: target.clone(),
            source,
        })?;
        self.committed = true;
        sync_dir(&dir)?;
        Ok(target)
    }
}

impl Drop for Ingest {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        if let Err(error) = fs::remove_file(&self.path) {
            // Drop cannot fail; `clean` removes it later, as its flock is gone with us.
            tracing::warn!(path = %self.path.display(), %error, "cannot remove uncommitted ingest file");
        }
    }
}

impl LockGuard {
    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Unlinks the lock file (and the hold file it holds) while holding them; a process
    /// waiting on an old file sees the name gone once it gets the lock, and starts over.
    fn remove_file(self) -> Result<(), CacheError> {
        if let Some(hold) = self.hold {
            remove_if_present(&hold.path)?;
        }
        remove_if_present(&self.path)
    }

    fn is_ours(&self) -> bool {
        self.owner == 0 || self.owner == rustix::process::geteuid().as_raw()
    }
}

/// The kinds of entry and their directories; each is named by a digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum EntryKind {
    Manifest,
    Config,
    Layer,
    /// `checksums/<diff_id>`.
    Checksum,
    /// `images/<digest of the record's key>`.
    Record,
}

impl EntryKind {
    fn dir(self) -> &'static str {
        match self {
            EntryKind::Manifest => MANIFEST_DIR,
            EntryKind::Config => CONFIG_DIR,
            EntryKind::Layer => LAYERS_DIR,
            EntryKind::Checksum => CHECKSUMS_DIR,
            EntryKind::Record => IMAGES_DIR,
        }
    }
}

/// The name of this process's ingest file number `number` in `tmp/`.
fn ingest_name(number: u64) -> String {
    format!("{INGEST_PREFIX}{}-{number}", std::process::id())
}

const INGEST_PREFIX: &str = "ingest-";
const TEMP_LINK_SUFFIX: &str = ".link";
const TEMP_SUM_SUFFIX: &str = ".sum";

/// The working files in `tmp/`, known by their names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WorkingFile {
    /// `ingest-<pid>-<n>`: an entry being written (flocked by its live writer).
    Ingest,
    /// `ingest-<pid>-<n>.sum`: a layer's checksum about to be renamed into `checksums/`
    /// (flocked by its live writer, as an ingest file).
    TempChecksum,
    /// `ingest-<pid>-<n>.link`: a blob symlink about to be renamed into `layers/` (a symlink
    /// cannot be locked: it lives for two system calls, and goes by age).
    TempLink,
}

impl WorkingFile {
    fn from_name(name: &str) -> Option<WorkingFile> {
        let numbers_only = |rest: &str| {
            rest.split_once('-').is_some_and(|(pid, number)| {
                [pid, number]
                    .iter()
                    .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
            })
        };
        let rest = name.strip_prefix(INGEST_PREFIX)?;
        let (rest, kind) = if let Some(rest) = rest.strip_suffix(TEMP_LINK_SUFFIX) {
            (rest, WorkingFile::TempLink)
        } else if let Some(rest) = rest.strip_suffix(TEMP_SUM_SUFFIX) {
            (rest, WorkingFile::TempChecksum)
        } else {
            (rest, WorkingFile::Ingest)
        };
        numbers_only(rest).then_some(kind)
    }
}

/// The digest a cache file name is, if it is one.
fn digest_name(name: &str) -> Option<Digest> {
    Digest::parse(name).ok()
}

fn entry_path(root: &Path, kind: EntryKind, digest: &Digest) -> PathBuf {
    root.join(kind.dir()).join(digest)
}

/// `locks/<digest>.hold`: what a [`Hold`] flocks (shared). Apart from `locks/<digest>`, which
/// downloads lock exclusively, so that a process holding an entry never blocks its own download
/// of something of the same digest; removals take both.
const HOLD_SUFFIX: &str = ".hold";

fn entry_hold_path(root: &Path, digest: &Digest) -> PathBuf {
    root.join(LOCKS_DIR).join(format!("{digest}{HOLD_SUFFIX}"))
}

fn entry_lock_path(root: &Path, digest: &Digest) -> PathBuf {
    root.join(LOCKS_DIR).join(digest)
}

fn is_legacy_working_file(name: &str) -> bool {
    LEGACY_WORKING_SUFFIXES
        .iter()
        .any(|suffix| name.strip_suffix(suffix).and_then(digest_name).is_some())
}

/// How often a lock file may vanish under us (clean removes the lock files it holds) before
/// we give up: one that keeps being replaced is someone's doing, and must not spin us.
const MAX_LOCK_ATTEMPTS: u32 = 1000;

/// Opens (creating) the lock file at `path` and flocks it with `operation`; `None` if the
/// operation is non-blocking and someone holds the lock. Anything but a regular file at
/// `path` (a symlink, which is not followed; a directory; a FIFO) is `NotAFile`.
fn acquire(path: &Path, operation: FlockOperation) -> Result<Option<LockGuard>, CacheError> {
    for _ in 0..MAX_LOCK_ATTEMPTS {
        // Read-write where we may: NFS emulates flock with byte-range locks, and an exclusive
        // one needs a file open for writing. Read-only otherwise (a lock file another user of
        // a shared cache made), which is enough for flock on local file systems.
        let open = |access: OFlags| {
            rustix::fs::open(
                path,
                access | OFlags::CREATE | OFlags::CLOEXEC | OFlags::NOFOLLOW | OFlags::NONBLOCK,
                Mode::from_bits_truncate(0o666),
            )
        };
        let fd = match open(OFlags::RDWR) {
            Err(Errno::ACCESS | Errno::ROFS | Errno::ISDIR) => open(OFlags::RDONLY),
            opened => opened,
        };
        let fd = match fd {
            Ok(fd) => fd,
            Err(Errno::LOOP) => {
                return Err(CacheError::NotAFile {
                    path: path.to_owned(),
                })
            }
            Err(errno) => {
                return Err(CacheError::Create {
                    path: path.to_owned(),
                    source: errno.into(),
                })
            }
        };
        let file = File::from(fd);
        let metadata = file.metadata().map_err(|source| CacheError::Read {
            path: path.to_owned(),
            source,
        })?;
        if !metadata.is_file() {
            return Err(CacheError::NotAFile {
                path: path.to_owned(),
            });
        }
        match flock_at(path, &file, operation)? {
            Flock::Held => {
                return Ok(Some(LockGuard {
                    _file: file,
                    path: path.to_owned(),
                    owner: metadata.uid(),
                    hold: None,
                }))
            }
            Flock::Busy => return Ok(None),
            Flock::Gone => continue,
        }
    }
    Err(CacheError::Lock {
        path: path.to_owned(),
        source: io::Error::other("the lock file keeps being replaced"),
    })
}

/// A removal's lock on one name: `locks/<name>` and `locks/<name>.hold`, both exclusively and
/// without waiting; `None` if either is busy, is not a regular file, or
/// belongs to another user (who could swap it under our lock).
fn try_lock_unheld(root: &Path, name: &Digest) -> Result<Option<LockGuard>, CacheError> {
    let mut guard = match acquire(
        &entry_lock_path(root, name),
        FlockOperation::NonBlockingLockExclusive,
    ) {
        Ok(Some(guard)) if guard.is_ours() => guard,
        Ok(_) | Err(CacheError::NotAFile { .. }) => return Ok(None),
        Err(error) => return Err(error),
    };
    // Taken even when no one holds the entry: while it is ours, no hold can begin, so the
    // entry cannot be handed out (nor named by a new record) while it is being removed.
    match acquire(
        &entry_hold_path(root, name),
        FlockOperation::NonBlockingLockExclusive,
    ) {
        Ok(Some(hold)) if hold.is_ours() => {
            guard.hold = Some(Box::new(hold));
            Ok(Some(guard))
        }
        Ok(_) | Err(CacheError::NotAFile { .. }) => Ok(None),
        Err(error) => Err(error),
    }
}

/// What [`flock_at`] got.
#[derive(Debug, PartialEq, Eq)]
enum Flock {
    /// We hold the lock on the file that `path` names.
    Held,
    /// A non-blocking operation found it held by someone else.
    Busy,
    /// Locked, but `path` no longer names the file: `clean` unlinks working files and lock
    /// files while it holds them, and a lock on an unlinked file guards nothing.
    Gone,
}

/// `flock` on `file`, opened at `path`, retried when a signal interrupts the wait.
fn flock_at(path: &Path, file: &File, operation: FlockOperation) -> Result<Flock, CacheError> {
    let lock_error = |source| CacheError::Lock {
        path: path.to_owned(),
        source,
    };
    loop {
        match rustix::fs::flock(file, operation) {
            Ok(()) => break,
            Err(Errno::WOULDBLOCK) => return Ok(Flock::Busy),
            Err(Errno::INTR) => continue,
            // Never proceed unlocked: two nodes would download into the same names.
            Err(Errno::NOLCK | Errno::OPNOTSUPP) => {
                return Err(CacheError::LocksUnavailable {
                    path: path.to_owned(),
                })
            }
            Err(errno) => return Err(lock_error(errno.into())),
        }
    }
    if names_file(path, file).map_err(lock_error)? {
        Ok(Flock::Held)
    } else {
        Ok(Flock::Gone)
    }
}

/// Whether a live writer holds the lock of the working file at `path` (false if it is gone).
fn is_locked_by_a_writer(path: &Path) -> Result<bool, CacheError> {
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags((OFlags::NOFOLLOW | OFlags::NONBLOCK).bits() as i32)
        .open(path)
    {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(error) if error.raw_os_error() == Some(Errno::LOOP.raw_os_error()) => return Ok(false),
        Err(source) => {
            return Err(CacheError::Read {
                path: path.to_owned(),
                source,
            })
        }
    };
    Ok(flock_at(path, &file, FlockOperation::NonBlockingLockShared)? == Flock::Busy)
}

/// Whether `path` still names the open `file` (not unlinked, not replaced).
fn names_file(path: &Path, file: &File) -> io::Result<bool> {
    let open = file.metadata()?;
    match fs::symlink_metadata(path) {
        Ok(named) => Ok(named.dev() == open.dev() && named.ino() == open.ino()),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(error) => Err(error),
    }
}

/// Opens the regular file `path` names for reading; `None` if there is none or another user
/// made it. A symlink planted in its place is refused (ELOOP) instead of followed to wherever
/// it points.
fn open_entry(path: &Path) -> Result<Option<File>, CacheError> {
    // Non-blocking: a FIFO planted here would block a plain open for ever (regular files
    // ignore the flag).
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags((OFlags::NOFOLLOW | OFlags::NONBLOCK).bits() as i32)
        .open(path)
    {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) if error.raw_os_error() == Some(Errno::LOOP.raw_os_error()) => {
            return Err(CacheError::NotAFile {
                path: path.to_owned(),
            })
        }
        Err(source) => {
            return Err(CacheError::Read {
                path: path.to_owned(),
                source,
            })
        }
    };
    let metadata = file.metadata().map_err(|source| CacheError::Read {
        path: path.to_owned(),
        source,
    })?;
    if !metadata.is_file() {
        return Err(CacheError::NotAFile {
            path: path.to_owned(),
        });
    }
    Ok(made_by_us(&metadata, path).then_some(file))
}

/// Sets atime and mtime to now, as concil 1.0's `Path.touch()` does, so that clean-up keeps
/// what is in use (callers pass the resolved file, not a blob's symlink). A failure (a
/// read-only shared cache) only costs an earlier clean-up, so it is logged, not returned.
fn touch(path: &Path) {
    let now = rustix::fs::Timespec {
        tv_sec: 0,
        tv_nsec: UTIME_NOW,
    };
    let times = Timestamps {
        last_access: now,
        last_modification: now,
    };
    // The entry itself, never what a symlink planted in its place points to.
    if let Err(errno) = rustix::fs::utimensat(CWD, path, &times, AtFlags::SYMLINK_NOFOLLOW) {
        tracing::warn!(path = %path.display(), error = %errno, "cannot refresh mtime of cache entry");
    }
}

/// The diff_id a blob symlink points to; `None` if it is gone or points elsewhere than to a
/// digest name beside it.
fn read_digest_link(path: &Path) -> Result<Option<Digest>, CacheError> {
    let target = match fs::read_link(path) {
        Ok(target) => target,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(CacheError::Read {
                path: path.to_owned(),
                source,
            })
        }
    };
    match target.to_str() {
        Some(target) => match digest_name(target) {
            Some(diff_id) => Ok(Some(diff_id)),
            None => {
                tracing::warn!(path = %path.display(), target, "ignoring symlink that does not point to a layer");
                Ok(None)
            }
        },
        None => {
            tracing::warn!(path = %path.display(), target = %target.display(), "ignoring symlink that does not point to a layer");
            Ok(None)
        }
    }
}

/// Whether a cache entry was written by this user (or root). In a sticky directory shared on
/// purpose another user can still create names; such an entry counts as absent, so nobody
/// else's bytes are ever taken for ours.
fn made_by_us(metadata: &Metadata, path: &Path) -> bool {
    let uid = metadata.uid();
    let ours = is_ours(metadata);
    if !ours {
        tracing::warn!(path = %path.display(), uid, "ignoring a cache entry of another user");
    }
    ours
}

/// Whether this user (or root) made it.
fn is_ours(metadata: &Metadata) -> bool {
    let uid = metadata.uid();
    uid == 0 || uid == rustix::process::geteuid().as_raw()
}

/// Refuses a directory that someone else could change: see [`Cache::open`].
fn check_directory(path: &Path) -> Result<(), CacheError> {
    let unsafe_directory = |problem| CacheError::UnsafeDirectory {
        path: path.to_owned(),
        problem,
    };
    let metadata = fs::symlink_metadata(path).map_err(|source| CacheError::Read {
        path: path.to_owned(),
        source,
    })?;
    if metadata.is_symlink() {
        return Err(unsafe_directory(UnsafeDirectory::Symlink));
    }
    if !metadata.is_dir() {
        return Err(unsafe_directory(UnsafeDirectory::NotADirectory));
    }
    let uid = metadata.uid();
    if uid != 0 && uid != rustix::process::geteuid().as_raw() {
        return Err(unsafe_directory(UnsafeDirectory::ForeignOwner { uid }));
    }
    let mode = metadata.permissions().mode() & 0o7777;
    const STICKY: u32 = 0o1000;
    if mode & 0o022 != 0 && mode & STICKY == 0 {
        return Err(unsafe_directory(UnsafeDirectory::WritableByOthers { mode }));
    }
    Ok(())
}

/// The UTF-8 names in `dir` with their `lstat`; entries that vanish meanwhile are skipped, and
/// so are another user's (other names are not the cache's). `dir` itself is opened without following a symlink, so a
/// directory swapped for one since [`Cache::open`] is never listed (nor emptied by `clean`).
fn list_dir(dir: &Path) -> Result<Vec<(String, Metadata)>, CacheError> {
    let read_error = |source| CacheError::Read {
        path: dir.to_owned(),
        source,
    };
    let fd = rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|errno| read_error(errno.into()))?;
    let mut entries = Vec::new();
    for entry in rustix::fs::Dir::read_from(&fd).map_err(|errno| read_error(errno.into()))? {
        let entry = entry.map_err(|errno| read_error(errno.into()))?;
        let Ok(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if name == "." || name == ".." {
            continue;
        }
        match fs::symlink_metadata(dir.join(&name)) {
            // Another user's names (possible in a sticky directory shared on purpose) are not
            // the cache's: never counted, judged or removed.
            Ok(metadata) if !is_ours(&metadata) => {
                tracing::debug!(
                    name,
                    uid = metadata.uid(),
                    "skipping another user's file in the cache"
                );
            }
            Ok(metadata) => entries.push((name, metadata)),
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(CacheError::Read {
                    path: dir.join(name),
                    source,
                })
            }
        }
    }
    Ok(entries)
}

fn is_older(metadata: &Metadata, cutoff: SystemTime) -> bool {
    metadata.modified().is_ok_and(|modified| modified < cutoff)
}

/// The entry's metadata if it still exists and is still older than `cutoff`.
fn still_older(path: &Path, cutoff: SystemTime) -> Result<Option<Metadata>, CacheError> {
    match fs::symlink_metadata(path) {
        Ok(metadata) => Ok(is_older(&metadata, cutoff).then_some(metadata)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CacheError::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

/// A clean-up in progress: what it removed, and whether it only counts (a dry run).
struct Sweep {
    dry_run: bool,
    report: CleanReport,
}

/// Removes a file or symlink found by `clean`, counting it unless it was already gone; on a
/// dry run only counts it.
fn remove(path: &Path, bytes: u64, sweep: &mut Sweep) -> Result<(), CacheError> {
    if sweep.dry_run {
        tracing::info!(path = %path.display(), bytes, "would remove from cache");
        sweep.report.removed_files += 1;
        sweep.report.removed_bytes += bytes;
        return Ok(());
    }
    match fs::remove_file(path) {
        Ok(()) => {
            tracing::debug!(path = %path.display(), bytes, "removed from cache");
            sweep.report.removed_files += 1;
            sweep.report.removed_bytes += bytes;
            Ok(())
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(CacheError::Remove {
            path: path.to_owned(),
            source,
        }),
    }
}

fn remove_if_present(path: &Path) -> Result<(), CacheError> {
    match fs::remove_file(path) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => Err(CacheError::Remove {
            path: path.to_owned(),
            source: error,
        }),
        _ => Ok(()),
    }
}

fn sync_dir(dir: &Path) -> Result<(), CacheError> {
    File::open(dir)
        .and_then(|dir| dir.sync_all())
        .map_err(|source| CacheError::Sync {
            path: dir.to_owned(),
            source,
        })
}

/// Points `layers/<blob_digest>` at `layers/<diff_id>` atomically: a symlink made under the
/// working name `temp_link` (in the cache's file system), then renamed over the final name, so
/// readers see the old link or the new one, never none.
fn link_blob_to_layer(
    root: &Path,
    temp_link: &Path,
    blob_digest: &Digest,
    diff_id: &Digest,
) -> Result<(), CacheError> {
    let layers = root.join(LAYERS_DIR);
    let link = layers.join(blob_digest);
    // Left by a dead process that had our pid and number.
    remove_if_present(temp_link)?;
    std::os::unix::fs::symlink(diff_id, temp_link).map_err(|source| CacheError::Symlink {
        path: temp_link.to_owned(),
        target: diff_id.to_string(),
        source,
    })?;
    if let Err(source) = fs::rename(temp_link, &link) {
        // Best effort: clean removes a stale temporary symlink too.
        let _ = fs::remove_file(temp_link);
        return Err(CacheError::Rename {
            from: temp_link.to_owned(),
            to: link,
            source,
        });
    }
    sync_dir(&layers)
}

#[cfg(test)]
mod review_tests;
#[cfg(test)]
mod tests;
