//! What the cache holds and what uses it (`cache ls`), removing images (`cache rm`) and
//! keeping the cache under a size (`cache clean --max-size`, `cache_max_size`).
//!
//! An image is its record and the entries the record names. Removing an image removes its
//! record and the entries no other record names; an entry a hold (or a pull in progress)
//! covers is never removed: every name of every entry to go is locked exclusively first,
//! without waiting, and an image with one busy name is kept whole. The record goes first, so
//! a crash in the middle leaves entries that no record names (which the budget and the age
//! rule remove later), never a record naming missing entries.

use std::collections::HashMap;
use std::fs;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use super::records::Records;
use super::{
    list_dir, read_digest_link, remove_if_present, CacheError, EntryKind, LockGuard, CONFIG_DIR,
    LAYERS_DIR, MANIFEST_DIR,
};
use super::{Cache, ImageRecord, RecordedImage};
use crate::digest::Digest;

/// What the cache holds: images by their records, every layer with the images that use it.
#[derive(Debug, Clone)]
pub struct CacheUsage {
    /// Every recorded image, by reference.
    pub images: Vec<ImageUsage>,
    /// Every layer file, by diff_id.
    pub layers: Vec<LayerUsage>,
    /// Bytes of the manifests, configs and layers no record names (pulled by concil 1.0, or
    /// left by an interrupted removal).
    pub unrecorded_bytes: u64,
    /// Bytes of every manifest, config and layer, each counted once.
    pub total_bytes: u64,
}

/// One recorded image.
#[derive(Debug, Clone)]
pub struct ImageUsage {
    /// What its pull resolved, its record's file and its last use.
    pub image: RecordedImage,
    /// Bytes of its manifests, config and layers in the cache.
    pub size: u64,
    /// Of those, the bytes no other image uses: what removing it frees.
    pub unique_size: u64,
    /// Entries the record names that the cache no longer holds (an age clean removed them).
    pub missing: Vec<Digest>,
}

/// One layer file.
#[derive(Debug, Clone)]
pub struct LayerUsage {
    /// Its name: the uncompressed tar's digest (the blob's, for a layer stored as it is).
    pub diff_id: Digest,
    /// The blob digests linked to it.
    pub blobs: Vec<Digest>,
    /// The squashfs file's size.
    pub size: u64,
    /// Its mtime: its last use.
    pub last_used: SystemTime,
    /// The references of the images that use it; empty: no record names it.
    pub images: Vec<String>,
    /// The squashfs file.
    pub path: PathBuf,
}

/// An image (or an unrecorded entry) that an eviction or `rm` removed, or would remove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemovedImage {
    /// The image's reference and platform, or the unrecorded entry's path.
    pub name: String,
    /// The bytes it freed (would free).
    pub freed: u64,
}

/// What a removal did (or, on a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EvictionReport {
    /// What went, in the order it went.
    pub removed: Vec<RemovedImage>,
    /// Images kept because something holds them (a runtime, a pull in progress).
    pub in_use: Vec<String>,
    /// The cache's size before.
    pub size_before: u64,
    /// The cache's size after (on a dry run: what it would be).
    pub size_after: u64,
}

/// One entry: where it is, how big, when last used, and its names (a layer's blob links).
#[derive(Debug, Clone)]
struct Entry {
    kind: EntryKind,
    name: Digest,
    size: u64,
    modified: SystemTime,
    /// Blob digests whose symlinks point to this layer file.
    links: Vec<Digest>,
}

/// Every manifest, config and layer file in the cache, by kind and name.
#[derive(Debug, Default)]
struct Inventory {
    entries: HashMap<(EntryKind, Digest), Entry>,
    /// Blob digest → the diff_id its symlink names.
    links: HashMap<Digest, Digest>,
}

impl Inventory {
    fn read(cache: &Cache) -> Result<Inventory, CacheError> {
        let mut inventory = Inventory::default();
        for (kind, dir) in [
            (EntryKind::Manifest, MANIFEST_DIR),
            (EntryKind::Config, CONFIG_DIR),
            (EntryKind::Layer, LAYERS_DIR),
        ] {
            let dir = cache.root.join(dir);
            for (name, metadata) in list_dir(&dir)? {
                let Ok(digest) = Digest::parse(&name) else {
                    continue;
                };
                if metadata.is_symlink() && kind == EntryKind::Layer {
                    if let Some(diff_id) = read_digest_link(&dir.join(&name))? {
                        inventory.links.insert(digest, diff_id);
                    }
                } else if metadata.is_file() {
                    let entry = Entry {
                        kind,
                        name: digest.clone(),
                        size: metadata.len(),
                        modified: metadata.modified().unwrap_or(UNIX_EPOCH),
                        links: Vec::new(),
                    };
                    inventory.entries.insert((kind, digest), entry);
                }
            }
        }
        for (blob, diff_id) in &inventory.links {
            if let Some(entry) = inventory
                .entries
                .get_mut(&(EntryKind::Layer, diff_id.clone()))
            {
                entry.links.push(blob.clone());
            }
        }
        Ok(inventory)
    }

    fn total(&self) -> u64 {
        self.entries.values().map(|entry| entry.size).sum()
    }

    /// The entries `record` names that are in the cache (a layer by its diff_id), and the
    /// names it gives that are not.
    fn of_record(&self, record: &ImageRecord) -> (Vec<(EntryKind, Digest)>, Vec<Digest>) {
        let mut present = Vec::new();
        let mut missing = Vec::new();
        let mut wanted = vec![
            (EntryKind::Manifest, &record.resolved_digest),
            (EntryKind::Manifest, &record.manifest_digest),
            (EntryKind::Config, &record.config_digest),
        ];
        wanted.extend(
            record
                .layers
                .iter()
                .map(|layer| (EntryKind::Layer, &layer.diff_id)),
        );
        for (kind, name) in wanted {
            let key = (kind, name.clone());
            if present.contains(&key) {
                continue;
            }
            if self.entries.contains_key(&key) {
                present.push(key);
            } else {
                missing.push(name.clone());
            }
        }
        (present, missing)
    }
}

impl Cache {
    /// What the cache holds and what uses it.
    pub fn usage(&self) -> Result<CacheUsage, CacheError> {
        let inventory = Inventory::read(self)?;
        let records = self.image_records()?;
        let mut users: HashMap<(EntryKind, Digest), Vec<usize>> = HashMap::new();
        let mut per_image = Vec::with_capacity(records.images.len());
        for (index, image) in records.images.iter().enumerate() {
            let (present, missing) = inventory.of_record(&image.record);
            for key in &present {
                users.entry(key.clone()).or_default().push(index);
            }
            per_image.push((present, missing));
        }
        let images = records
            .images
            .iter()
            .zip(per_image)
            .map(|(image, (present, missing))| {
                let size_of = |key: &(EntryKind, Digest)| inventory.entries[key].size;
                ImageUsage {
                    image: image.clone(),
                    size: present.iter().map(size_of).sum(),
                    unique_size: present
                        .iter()
                        .filter(|key| users[*key].len() == 1)
                        .map(size_of)
                        .sum(),
                    missing,
                }
            })
            .collect();
        let mut layers: Vec<LayerUsage> = inventory
            .entries
            .values()
            .filter(|entry| entry.kind == EntryKind::Layer)
            .map(|entry| {
                let mut blobs = entry.links.clone();
                blobs.sort();
                LayerUsage {
                    diff_id: entry.name.clone(),
                    blobs,
                    size: entry.size,
                    last_used: entry.modified,
                    images: users
                        .get(&(EntryKind::Layer, entry.name.clone()))
                        .map(|indexes| {
                            indexes
                                .iter()
                                .map(|index| records.images[*index].record.reference.clone())
                                .collect()
                        })
                        .unwrap_or_default(),
                    path: self.root.join(LAYERS_DIR).join(&entry.name),
                }
            })
            .collect();
        layers.sort_by(|a, b| a.diff_id.cmp(&b.diff_id));
        let unrecorded_bytes = inventory
            .entries
            .iter()
            .filter(|(key, _)| !users.contains_key(*key))
            .map(|(_, entry)| entry.size)
            .sum();
        Ok(CacheUsage {
            images,
            layers,
            unrecorded_bytes,
            total_bytes: inventory.total(),
        })
    }

    /// Removes the recorded images `selected` picks, each with the entries no other record
    /// names; a held image is kept (and listed in `in_use`).
    pub fn remove_images(
        &self,
        selected: impl Fn(&ImageRecord) -> bool,
        dry_run: bool,
    ) -> Result<EvictionReport, CacheError> {
        let mut eviction = Eviction::start(self, dry_run)?;
        let chosen: Vec<usize> = (0..eviction.records.images.len())
            .filter(|index| selected(&eviction.records.images[*index].record))
            .collect();
        for index in chosen {
            eviction.remove_image(index)?;
        }
        Ok(eviction.finish())
    }

    /// Removes least-recently-used images, whole, and entries no record names (oldest first),
    /// until the cache holds at most `max_bytes`; what an image that stays uses stays, and
    /// so does everything held.
    pub fn fit(&self, max_bytes: u64, dry_run: bool) -> Result<EvictionReport, CacheError> {
        let mut eviction = Eviction::start(self, dry_run)?;
        if eviction.size <= max_bytes {
            return Ok(eviction.finish());
        }
        // Images by last use, and entries no record names by their mtime, on one time line.
        let mut candidates: Vec<(SystemTime, Candidate)> = eviction
            .records
            .images
            .iter()
            .enumerate()
            .map(|(index, image)| (image.last_used, Candidate::Image(index)))
            .collect();
        candidates.extend(
            eviction
                .inventory
                .entries
                .iter()
                .filter(|(key, _)| !eviction.users.contains_key(*key))
                .map(|(key, entry)| (entry.modified, Candidate::Unrecorded(key.clone()))),
        );
        candidates.sort_by_key(|(last_used, _)| *last_used);
        for (_, candidate) in candidates {
            if eviction.size <= max_bytes {
                break;
            }
            match candidate {
                Candidate::Image(index) => eviction.remove_image(index)?,
                Candidate::Unrecorded(key) => eviction.remove_unrecorded(&key)?,
            }
        }
        Ok(eviction.finish())
    }
}

enum Candidate {
    Image(usize),
    Unrecorded((EntryKind, Digest)),
}

/// One removal run: the inventory, the records, which records use which entry.
struct Eviction<'c> {
    cache: &'c Cache,
    dry_run: bool,
    /// When this run began, before it read the records: an entry used since (a pull that
    /// wrote a record this run has not read refreshes its entries after writing it) is kept.
    started: SystemTime,
    inventory: Inventory,
    records: Records,
    /// Entry → the records (indexes) that still use it.
    users: HashMap<(EntryKind, Digest), Vec<usize>>,
    size: u64,
    report: EvictionReport,
}

impl<'c> Eviction<'c> {
    fn start(cache: &'c Cache, dry_run: bool) -> Result<Eviction<'c>, CacheError> {
        let started = SystemTime::now();
        let inventory = Inventory::read(cache)?;
        let records = cache.image_records()?;
        let mut users: HashMap<(EntryKind, Digest), Vec<usize>> = HashMap::new();
        for (index, image) in records.images.iter().enumerate() {
            for key in inventory.of_record(&image.record).0 {
                users.entry(key).or_default().push(index);
            }
        }
        let size = inventory.total();
        Ok(Eviction {
            cache,
            dry_run,
            started,
            inventory,
            records,
            users,
            size,
            report: EvictionReport {
                size_before: size,
                ..EvictionReport::default()
            },
        })
    }

    fn finish(mut self) -> EvictionReport {
        self.report.size_after = self.size;
        self.report
    }

    /// Removes record `index` and the entries only it uses, unless one of them is held.
    fn remove_image(&mut self, index: usize) -> Result<(), CacheError> {
        let image = &self.records.images[index];
        let name = format!(
            "{} ({})",
            image.record.reference, image.record.requested_platform
        );
        let (present, _) = self.inventory.of_record(&image.record);
        let only_ours: Vec<(EntryKind, Digest)> = present
            .iter()
            .filter(|key| self.users.get(*key).is_some_and(|users| users == &[index]))
            .cloned()
            .collect();
        let Some(record_guard) = self.cache.try_lock(&image.record.name())? else {
            tracing::info!(image = %name, "kept: in use");
            self.report.in_use.push(name);
            return Ok(());
        };
        let Some(mut guards) = self.lock_all(&only_ours)? else {
            tracing::info!(image = %name, "kept: in use");
            self.report.in_use.push(name);
            return Ok(());
        };
        if self.used_since_start(&only_ours) {
            tracing::info!(image = %name, "kept: used since the removal began");
            self.report.in_use.push(name);
            return Ok(());
        }
        let path = image.path.clone();
        if !self.dry_run {
            remove_if_present(&path)?;
        }
        let mut freed = 0;
        for key in &only_ours {
            freed += self.remove_entry(key)?;
        }
        for key in present {
            if let Some(users) = self.users.get_mut(&key) {
                users.retain(|user| *user != index);
            }
        }
        guards.push(record_guard);
        self.release(guards)?;
        self.size -= freed;
        tracing::info!(image = %name, freed, dry_run = self.dry_run, "image removed");
        self.report.removed.push(RemovedImage { name, freed });
        Ok(())
    }

    fn remove_unrecorded(&mut self, key: &(EntryKind, Digest)) -> Result<(), CacheError> {
        let Some(guards) = self.lock_all(std::slice::from_ref(key))? else {
            return Ok(());
        };
        if self.used_since_start(std::slice::from_ref(key)) {
            return Ok(());
        }
        let freed = self.remove_entry(key)?;
        self.release(guards)?;
        self.size -= freed;
        let path = self.cache.root.join(key.0.dir()).join(&key.1);
        self.report.removed.push(RemovedImage {
            name: path.display().to_string(),
            freed,
        });
        Ok(())
    }

    /// Whether an entry of `keys` was used (its mtime refreshed) since this run began: a pull
    /// found it, and may have recorded it in a record this run has not read. Checked under
    /// the entries' locks, so no pull can begin using them meanwhile.
    fn used_since_start(&self, keys: &[(EntryKind, Digest)]) -> bool {
        keys.iter().any(|(kind, name)| {
            fs::symlink_metadata(self.cache.root.join(kind.dir()).join(name))
                .and_then(|metadata| metadata.modified())
                .is_ok_and(|modified| modified >= self.started)
        })
    }

    /// Lets go of the locks of removed entries, removing their lock files (held, so that a
    /// waiter sees them gone and starts over): an eviction leaves no lock file behind.
    fn release(&self, guards: Vec<LockGuard>) -> Result<(), CacheError> {
        if self.dry_run {
            return Ok(());
        }
        for guard in guards {
            guard.remove_file()?;
        }
        Ok(())
    }

    /// The exclusive locks of every name of `keys` (a layer's diff_id and its blob links),
    /// taken without waiting; `None` if one is busy.
    fn lock_all(&self, keys: &[(EntryKind, Digest)]) -> Result<Option<Vec<LockGuard>>, CacheError> {
        let mut guards = Vec::new();
        for key in keys {
            let entry = &self.inventory.entries[key];
            for name in std::iter::once(&entry.name).chain(&entry.links) {
                match self.cache.try_lock(name)? {
                    Some(guard) => guards.push(guard),
                    None => return Ok(None),
                }
            }
        }
        Ok(Some(guards))
    }

    /// Removes one entry (a layer's blob links first, then its file and checksum); returns its
    /// size. The caller holds its locks.
    fn remove_entry(&mut self, key: &(EntryKind, Digest)) -> Result<u64, CacheError> {
        let Some(entry) = self.inventory.entries.remove(key) else {
            return Ok(0);
        };
        self.users.remove(key);
        if self.dry_run {
            return Ok(entry.size);
        }
        let dir = self.cache.root.join(entry.kind.dir());
        // Links first, so that no dangling one is ever seen (concil 1.0 stops on one).
        for blob in &entry.links {
            remove_if_present(&dir.join(blob))?;
        }
        remove_if_present(&dir.join(&entry.name))?;
        if entry.kind == EntryKind::Layer {
            remove_if_present(&super::entry_path(
                &self.cache.root,
                EntryKind::Checksum,
                &entry.name,
            ))?;
        }
        Ok(entry.size)
    }
}
