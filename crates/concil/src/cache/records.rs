//! Image records: `images/<key digest>`, one small JSON file per image pulled, saying what
//! the pull resolved (the reference, the digests it led to, the platform, the layers) and
//! when. They name what each layer belongs to (`cache ls`, `cache rm`, the size budget), and
//! let a pull by tag without network find the digest the last online pull saw.
//!
//! A record's name is the digest of its key (the reference and the platform asked for), not
//! of its bytes: a later pull of the same reference replaces it. Its mtime is the image's last
//! use (a pull or a hold refreshes it). concil 1.0 never looks into `images/`.

use std::fs;
use std::io::Read;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::{entry_path, list_dir, open_entry, touch, Cache, CacheError, EntryKind, IMAGES_DIR};
use crate::digest::Digest;

/// A record is a few KiB; a file much larger is not one of ours.
const MAX_RECORD_SIZE: u64 = 1024 * 1024;

/// What one pull of a reference resolved to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// The reference, normalised (`docker.io/library/alpine:latest`).
    pub reference: String,
    /// The platform the pull asked for (part of the record's key).
    pub requested_platform: String,
    /// The platform of the image pulled (from its config).
    pub platform: String,
    /// The digest the reference resolved to: the index, or the image manifest itself.
    pub resolved_digest: Digest,
    /// The image manifest's digest.
    pub manifest_digest: Digest,
    /// The image config's digest.
    pub config_digest: Digest,
    /// The layers in `rootfs.diff_ids` order.
    pub layers: Vec<RecordedLayer>,
    /// How the pull established trust (`cosign`, `notary`, `none`).
    pub verified: String,
    /// When the reference was last resolved (seconds since the epoch, UTC).
    pub pulled_at: u64,
}

/// One layer of a recorded image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedLayer {
    /// The blob's digest as in the manifest.
    pub digest: Digest,
    /// The uncompressed tar's digest: the squashfs file's name.
    pub diff_id: Digest,
    /// The blob's media type.
    pub media_type: String,
    /// The blob's size in bytes.
    pub size: u64,
}

/// A record as found in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedImage {
    /// What the pull resolved.
    pub record: ImageRecord,
    /// The record's file.
    pub path: PathBuf,
    /// Its last use: the last pull or hold of the image.
    pub last_used: SystemTime,
}

impl ImageRecord {
    /// The name of the record for `reference` pulled for `requested_platform`.
    pub fn key(reference: &str, requested_platform: &str) -> Digest {
        Digest::of(format!("{reference}\n{requested_platform}").as_bytes())
    }

    /// The name of this record (what [`key`](ImageRecord::key) gives for it), which a hold
    /// of the image holds too: no clean-up removes a held image's record.
    pub fn name(&self) -> Digest {
        ImageRecord::key(&self.reference, &self.requested_platform)
    }

    /// Every entry name the image uses: its manifests, its config, and each layer by diff_id
    /// and by blob digest.
    pub fn entry_names(&self) -> impl Iterator<Item = &Digest> {
        [
            &self.resolved_digest,
            &self.manifest_digest,
            &self.config_digest,
        ]
        .into_iter()
        .chain(
            self.layers
                .iter()
                .flat_map(|layer| [&layer.diff_id, &layer.digest]),
        )
    }

    /// Now, as `pulled_at` counts time.
    pub fn now() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| elapsed.as_secs())
            .unwrap_or(0)
    }
}

impl Cache {
    /// Writes (replaces) the record of `record.reference` for its requested platform,
    /// atomically; returns its path.
    pub fn record_image(&self, record: &ImageRecord) -> Result<PathBuf, CacheError> {
        let json = serde_json::to_vec_pretty(record).expect("a record serialises");
        self.put(EntryKind::Record, &record.name(), &json)
    }

    /// The record of `reference` pulled for `requested_platform`, refreshing its last use;
    /// `None` if there is none (or it is unreadable: a pull then resolves the reference again).
    pub fn image_record(
        &self,
        reference: &str,
        requested_platform: &str,
    ) -> Result<Option<RecordedImage>, CacheError> {
        let key = ImageRecord::key(reference, requested_platform);
        let path = entry_path(&self.root, EntryKind::Record, &key);
        let record = match read_record(&path)? {
            Some(Ok(recorded)) => recorded,
            Some(Err(reason)) => {
                tracing::warn!(path = %path.display(), %reason, "ignoring an unreadable image record");
                return Ok(None);
            }
            None => return Ok(None),
        };
        touch(&path);
        Ok(Some(RecordedImage {
            last_used: SystemTime::now(),
            ..record
        }))
    }

    /// Refreshes the last use of the record named `name` (a hold of its image is a use).
    pub fn touch_record(&self, name: &Digest) {
        let path = entry_path(&self.root, EntryKind::Record, name);
        if fs::symlink_metadata(&path).is_ok_and(|metadata| metadata.is_file()) {
            touch(&path);
        }
    }

    /// Refreshes the last use of every entry `record` names. A pull does it after it wrote
    /// the record, while it holds the image: a removal that took its locks since sees entries
    /// used after it started, and keeps them (its snapshot of the records may predate this
    /// one).
    pub fn touch_image(&self, record: &ImageRecord) {
        let entries = [
            (EntryKind::Manifest, &record.resolved_digest),
            (EntryKind::Manifest, &record.manifest_digest),
            (EntryKind::Config, &record.config_digest),
        ]
        .into_iter()
        .chain(
            record
                .layers
                .iter()
                .map(|layer| (EntryKind::Layer, &layer.diff_id)),
        );
        for (kind, name) in entries {
            let path = entry_path(&self.root, kind, name);
            if fs::symlink_metadata(&path).is_ok_and(|metadata| metadata.is_file()) {
                touch(&path);
            }
        }
    }

    /// Every image record, and the record files that do not parse (with why).
    pub fn image_records(&self) -> Result<Records, CacheError> {
        let dir = self.root.join(IMAGES_DIR);
        let mut records = Records::default();
        for (name, metadata) in list_dir(&dir)? {
            if Digest::parse(&name).is_err() || !metadata.is_file() {
                continue;
            }
            let path = dir.join(&name);
            match read_record(&path)? {
                Some(Ok(recorded)) => records.images.push(recorded),
                Some(Err(reason)) => records.unreadable.push((path, reason)),
                None => {}
            }
        }
        records
            .images
            .sort_by(|a, b| a.record.reference.cmp(&b.record.reference));
        Ok(records)
    }
}

/// The image records of a cache ([`Cache::image_records`]).
#[derive(Debug, Default)]
pub struct Records {
    /// The records that parse, by reference.
    pub images: Vec<RecordedImage>,
    /// Record files that do not, with what the parser said.
    pub unreadable: Vec<(PathBuf, String)>,
}

/// The record at `path`: `None` if absent (or another user's), `Some(Err(why))` if it is not
/// a record of ours.
fn read_record(
    path: &std::path::Path,
) -> Result<Option<Result<RecordedImage, String>>, CacheError> {
    let Some(file) = open_entry(path)? else {
        return Ok(None);
    };
    let metadata = file.metadata().map_err(|source| CacheError::Read {
        path: path.to_owned(),
        source,
    })?;
    if metadata.len() > MAX_RECORD_SIZE {
        return Ok(Some(Err(format!(
            "{} bytes, more than a record's {MAX_RECORD_SIZE}",
            metadata.len()
        ))));
    }
    let mut bytes = Vec::new();
    file.take(MAX_RECORD_SIZE)
        .read_to_end(&mut bytes)
        .map_err(|source| CacheError::Read {
            path: path.to_owned(),
            source,
        })?;
    let record: ImageRecord = match serde_json::from_slice(&bytes) {
        Ok(record) => record,
        Err(error) => return Ok(Some(Err(error.to_string()))),
    };
    // A record is found by its key: one whose content names another key is not the file
    // the pull wrote under that name.
    let key = ImageRecord::key(&record.reference, &record.requested_platform);
    if path.file_name().and_then(|name| name.to_str()) != Some(key.as_str()) {
        return Ok(Some(Err(format!(
            "it records {} for {}, which belongs under {key}",
            record.reference, record.requested_platform
        ))));
    }
    let last_used = metadata.modified().unwrap_or(UNIX_EPOCH);
    Ok(Some(Ok(RecordedImage {
        record,
        path: path.to_owned(),
        last_used,
    })))
}
