//! `checksums/<diff_id>`: the sha256 of a squashfs file concil converted, recorded when the
//! layer was committed, so that `verify` can tell a layer file that rotted on disk (or was
//! cut short by a crash of the file system) from a good one.
//!
//! A layer's name is the digest of the tar it was made from, not of the squashfs file, so
//! without this only a read-back could judge it. The record carries the file's inode number
//! too: two processes converting the same tar from two blobs (gzip and zstd) may commit one
//! after the other, each with its own checksum; a checksum whose inode is not the layer
//! file's belongs to the other commit and is not used to judge it.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::Path;

use rustix::fs::FlockOperation;

use super::{entry_path, flock_at, sync_dir, CacheError, EntryKind, Flock, CHECKSUMS_DIR};
use crate::digest::Digest;

/// A checksum record is one short line; anything longer is not one.
const MAX_CHECKSUM_FILE: u64 = 256;

/// What `checksums/<diff_id>` says about the squashfs file `layers/<diff_id>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct LayerChecksum {
    /// The sha256 of the whole file.
    pub(super) sha256: Digest,
    /// Its length in bytes.
    pub(super) size: u64,
    /// Its inode number when it was committed (a rename keeps it).
    pub(super) inode: u64,
}

impl LayerChecksum {
    /// Writes the record for `diff_id` under the working name `temp` (flocked), runs
    /// `meanwhile` (the commit's blob link: a temporary link is alive exactly while its
    /// sibling temporary checksum is locked), then renames the record into `checksums/`.
    pub(super) fn commit(
        &self,
        root: &Path,
        temp: &Path,
        diff_id: &Digest,
        meanwhile: impl FnOnce() -> Result<(), CacheError>,
    ) -> Result<(), CacheError> {
        let line = format!("{} {} {}\n", self.sha256, self.size, self.inode);
        // Locked while it lives, as an ingest file is, so that `clean` tells a dead writer's
        // leftover from one being written.
        let file = loop {
            let file = File::create(temp).map_err(|source| CacheError::Create {
                path: temp.to_owned(),
                source,
            })?;
            if flock_at(temp, &file, FlockOperation::LockExclusive)? == Flock::Held {
                break file;
            }
        };
        let write = |mut file: &File| -> io::Result<()> {
            file.write_all(line.as_bytes())?;
            file.sync_all()
        };
        if let Err(source) = write(&file) {
            let _ = fs::remove_file(temp);
            return Err(CacheError::Write {
                path: temp.to_owned(),
                source,
            });
        }
        if let Err(error) = meanwhile() {
            let _ = fs::remove_file(temp);
            return Err(error);
        }
        let target = entry_path(root, EntryKind::Checksum, diff_id);
        if let Err(source) = fs::rename(temp, &target) {
            let _ = fs::remove_file(temp);
            return Err(CacheError::Rename {
                from: temp.to_owned(),
                to: target,
                source,
            });
        }
        sync_dir(&root.join(CHECKSUMS_DIR))
    }

    /// The record for `diff_id`; `None` if there is none or it is not one (a record that does
    /// not parse judges nothing, `verify` reports it).
    pub(super) fn read(root: &Path, diff_id: &Digest) -> Result<Option<LayerChecksum>, CacheError> {
        let path = entry_path(root, EntryKind::Checksum, diff_id);
        // A symlink or directory planted here judges nothing either.
        let file = match super::open_entry(&path) {
            Ok(Some(file)) => file,
            Ok(None) | Err(CacheError::NotAFile { .. }) => return Ok(None),
            Err(error) => return Err(error),
        };
        let mut text = String::new();
        if file
            .take(MAX_CHECKSUM_FILE)
            .read_to_string(&mut text)
            .is_err()
        {
            return Ok(None);
        }
        Ok(LayerChecksum::parse(&text))
    }

    fn parse(text: &str) -> Option<LayerChecksum> {
        let mut fields = text.strip_suffix('\n')?.split(' ');
        let sha256 = Digest::parse(fields.next()?).ok()?;
        let size = fields.next()?.parse().ok()?;
        let inode = fields.next()?.parse().ok()?;
        fields.next().is_none().then_some(LayerChecksum {
            sha256,
            size,
            inode,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_parses_only_in_its_exact_form() {
        let digest = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(
            LayerChecksum::parse(&format!("{digest} 12 34\n")),
            Some(LayerChecksum {
                sha256: Digest::parse(&digest).unwrap(),
                size: 12,
                inode: 34
            })
        );
        for bad in [
            format!("{digest} 12 34"),
            format!("{digest} 12\n"),
            format!("{digest} 12 34 5\n"),
            format!("{digest} -1 34\n"),
            "sha256:xyz 1 2\n".to_owned(),
            String::new(),
        ] {
            assert_eq!(LayerChecksum::parse(&bad), None, "{bad:?}");
        }
    }
}
