use super::*;
use std::io::Write;

pub(super) fn digest(byte: u8) -> Digest {
    Digest::parse(&format!("sha256:{}", format!("{byte:02x}").repeat(32))).unwrap()
}

pub(super) fn open_cache() -> (tempfile::TempDir, Cache) {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path().join("cache")).unwrap();
    (dir, cache)
}

fn set_age(path: &Path, age: Duration) {
    let file = File::options().write(true).open(path).unwrap();
    file.set_modified(SystemTime::now() - age).unwrap();
}

fn age_of(path: &Path) -> Duration {
    let modified = fs::metadata(path).unwrap().modified().unwrap();
    SystemTime::now()
        .duration_since(modified)
        .unwrap_or_default()
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

pub(super) fn commit_layer(
    cache: &Cache,
    content: &[u8],
    diff_id: &Digest,
    blob: Option<&Digest>,
) -> PathBuf {
    let mut ingest = cache.ingest().unwrap();
    ingest.file().write_all(content).unwrap();
    ingest.commit_layer(diff_id, blob).unwrap()
}

const DAY: Duration = Duration::from_secs(86_400);

#[test]
fn put_then_lookup_returns_the_bytes_under_the_digest_name() {
    let (_dir, cache) = open_cache();
    let manifest = digest(1);
    let config = digest(2);
    assert_eq!(cache.manifest(&manifest).unwrap(), None);
    let path = cache.put_manifest(&manifest, b"{\"manifest\":1}").unwrap();
    assert_eq!(path, cache.root().join("manifest").join(&manifest));
    assert!(path.is_absolute());
    let config_path = cache.put_config(&config, b"{\"config\":2}").unwrap();
    assert_eq!(config_path, cache.root().join("config").join(&config));
    assert_eq!(
        cache.manifest(&manifest).unwrap().as_deref(),
        Some(&b"{\"manifest\":1}"[..])
    );
    assert_eq!(
        cache.config(&config).unwrap().as_deref(),
        Some(&b"{\"config\":2}"[..])
    );
    // Kinds are separate directories.
    assert_eq!(cache.config(&manifest).unwrap(), None);
    assert!(names_in(&cache.root().join(TMP_DIR)).is_empty());
}

#[test]
fn dropped_ingest_leaves_no_file() {
    let (_dir, cache) = open_cache();
    let mut ingest = cache.ingest().unwrap();
    ingest.file().write_all(b"partial").unwrap();
    let path = ingest.path().to_owned();
    assert!(path.starts_with(cache.root().join(TMP_DIR)));
    assert!(path.is_file());
    drop(ingest);
    assert!(!path.exists());
    assert!(names_in(&cache.root().join(TMP_DIR)).is_empty());
}

#[test]
fn failed_commit_removes_the_ingest_file() {
    let (_dir, cache) = open_cache();
    let manifest = digest(3);
    fs::create_dir(cache.root().join(MANIFEST_DIR).join(&manifest)).unwrap();
    let mut ingest = cache.ingest().unwrap();
    ingest.file().write_all(b"{}").unwrap();
    let error = ingest.commit_manifest(&manifest).unwrap_err();
    assert!(matches!(error, CacheError::Rename { ref to, .. } if to.ends_with(&manifest)));
    assert!(names_in(&cache.root().join(TMP_DIR)).is_empty());
    assert!(matches!(
        cache.manifest(&manifest),
        Err(CacheError::NotAFile { path }) if path.ends_with(&manifest)
    ));
}

#[test]
fn committed_layer_is_found_by_diff_id_and_through_the_relative_blob_symlink() {
    let (_dir, cache) = open_cache();
    let (diff_id, blob) = (digest(0x10), digest(0x11));
    let path = commit_layer(&cache, b"squashfs", &diff_id, Some(&blob));
    let layers = cache.root().join(LAYERS_DIR);
    assert_eq!(path, layers.join(&diff_id));
    assert_eq!(
        fs::read_link(layers.join(&blob)).unwrap(),
        PathBuf::from(diff_id.as_str())
    );
    assert_eq!(
        cache.layer_by_diff_id(&diff_id).unwrap(),
        Some(path.clone())
    );
    assert_eq!(
        cache.layer_by_blob(&blob).unwrap(),
        Some(CachedLayer {
            path: path.clone(),
            diff_id: diff_id.clone()
        })
    );
    assert_eq!(cache.layer_by_blob(&digest(0x12)).unwrap(), None);
    assert_eq!(names_in(&layers), [diff_id, blob]);
    assert!(names_in(&cache.root().join(TMP_DIR)).is_empty());
}

#[test]
fn a_new_cache_is_not_group_writable_whatever_the_umask() {
    let dir = tempfile::tempdir().unwrap();
    // The umask is the process's: set and restored at once. Other tests running meanwhile
    // assert nothing about the modes of what they create.
    let previous = rustix::process::umask(Mode::from_bits_truncate(0o002));
    let opened = Cache::open(dir.path().join("shared/cache"));
    rustix::process::umask(previous);
    let cache = opened.unwrap();
    for sub in ["", MANIFEST_DIR, LAYERS_DIR, TMP_DIR] {
        let mode = fs::metadata(cache.root().join(sub))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755, "{sub}");
    }
}

#[test]
fn working_files_are_known_by_their_names_only() {
    assert_eq!(
        WorkingFile::from_name("ingest-12-0"),
        Some(WorkingFile::Ingest)
    );
    assert_eq!(
        WorkingFile::from_name("ingest-12-345.link"),
        Some(WorkingFile::TempLink)
    );
    assert_eq!(
        WorkingFile::from_name("ingest-12-345.sum"),
        Some(WorkingFile::TempChecksum)
    );
    assert!(WorkingFile::from_name(&ingest_name(7)).is_some());
    for stranger in [
        "ingest-12",
        "ingest--1",
        "ingest-1-x",
        "ingest-1-2.tmp",
        "ingest-1-2.link.link",
        "ingest-1-2.sum.link",
        "notes.txt",
        "xingest-1-2",
    ] {
        assert_eq!(WorkingFile::from_name(stranger), None, "{stranger}");
    }
}

#[test]
fn layer_stored_as_it_is_has_no_symlink() {
    let (_dir, cache) = open_cache();
    let same = digest(0x20);
    commit_layer(&cache, b"already squashfs", &same, Some(&same));
    let other = digest(0x21);
    commit_layer(&cache, b"no blob", &other, None);
    let layers = cache.root().join(LAYERS_DIR);
    assert_eq!(names_in(&layers), [same.clone(), other]);
    assert!(fs::symlink_metadata(layers.join(&same)).unwrap().is_file());
    assert_eq!(
        cache.layer_by_blob(&same).unwrap(),
        Some(CachedLayer {
            path: layers.join(&same),
            diff_id: same
        })
    );
}

#[test]
fn recommit_replaces_the_entry_and_the_symlink() {
    let (_dir, cache) = open_cache();
    let (diff_id, blob) = (digest(0x30), digest(0x31));
    commit_layer(&cache, b"first", &diff_id, Some(&blob));
    let path = commit_layer(&cache, b"second", &diff_id, Some(&blob));
    assert_eq!(fs::read(&path).unwrap(), b"second");
    assert_eq!(
        cache.layer_by_blob(&blob).unwrap().map(|layer| layer.path),
        Some(path)
    );
    assert!(names_in(&cache.root().join(TMP_DIR)).is_empty());
}

#[test]
fn dangling_or_foreign_symlink_counts_as_absent() {
    let (_dir, cache) = open_cache();
    let layers = cache.root().join(LAYERS_DIR);
    let dangling = digest(0x40);
    std::os::unix::fs::symlink(digest(0x41), layers.join(&dangling)).unwrap();
    assert_eq!(cache.layer_by_blob(&dangling).unwrap(), None);
    let foreign = digest(0x42);
    let outside = cache.root().join("outside");
    fs::write(&outside, b"not a layer").unwrap();
    std::os::unix::fs::symlink(&outside, layers.join(&foreign)).unwrap();
    assert_eq!(cache.layer_by_blob(&foreign).unwrap(), None);
    // A commit heals the dangling symlink.
    let path = commit_layer(&cache, b"layer", &digest(0x43), Some(&dangling));
    assert_eq!(
        cache
            .layer_by_blob(&dangling)
            .unwrap()
            .map(|layer| layer.path),
        Some(path)
    );
}

#[test]
fn lookups_refresh_the_mtime_of_what_they_find() {
    let (_dir, cache) = open_cache();
    let manifest_path = cache.put_manifest(&digest(0x50), b"m").unwrap();
    let config_path = cache.put_config(&digest(0x51), b"c").unwrap();
    let (diff_id, blob) = (digest(0x52), digest(0x53));
    let layer_path = commit_layer(&cache, b"l", &diff_id, Some(&blob));
    for path in [&manifest_path, &config_path, &layer_path] {
        set_age(path, DAY);
        assert!(age_of(path) >= DAY);
    }
    cache.manifest(&digest(0x50)).unwrap();
    cache.config(&digest(0x51)).unwrap();
    cache.layer_by_blob(&blob).unwrap();
    for path in [&manifest_path, &config_path, &layer_path] {
        assert!(
            age_of(path) < Duration::from_secs(60),
            "{} not refreshed",
            path.display()
        );
    }
    set_age(&layer_path, DAY);
    cache.layer_by_diff_id(&diff_id).unwrap();
    assert!(age_of(&layer_path) < Duration::from_secs(60));
}

#[test]
fn lock_excludes_other_holders_until_dropped() {
    let (_dir, cache) = open_cache();
    let blob = digest(0x60);
    let guard = cache.lock(&blob).unwrap();
    assert_eq!(guard.path(), cache.root().join(LOCKS_DIR).join(&blob));
    // flock locks open file descriptions, so a second open in this process conflicts too.
    assert!(cache.try_lock(&blob).unwrap().is_none());
    assert!(cache.try_lock(&digest(0x61)).unwrap().is_some());
    drop(guard);
    assert!(cache.try_lock(&blob).unwrap().is_some());
}

#[test]
fn lock_file_removed_by_clean_is_not_taken_as_a_lock() {
    let (_dir, cache) = open_cache();
    let blob = digest(0x62);
    drop(cache.lock(&blob).unwrap());
    let path = cache.root().join(LOCKS_DIR).join(&blob);
    // A process that opened the lock file just before clean removed it.
    let opened_before_clean = File::open(&path).unwrap();
    cache.clean(DAY).unwrap();
    assert!(!path.exists());
    assert_eq!(
        flock_at(
            &path,
            &opened_before_clean,
            FlockOperation::NonBlockingLockExclusive
        )
        .unwrap(),
        Flock::Gone
    );
    // `lock` takes the file now at the path, which excludes others again.
    let _guard = cache.lock(&blob).unwrap();
    assert!(cache.try_lock(&blob).unwrap().is_none());
}

#[test]
fn open_error_names_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    fs::write(&file, b"").unwrap();
    let error = Cache::open(file.join("cache")).unwrap_err();
    assert!(
        matches!(&error, CacheError::CreateDir { path, .. } if path.starts_with(file.join("cache"))),
        "{error:?}"
    );
    assert!(error.to_string().contains(&file.display().to_string()));
}

#[test]
fn clean_removes_old_entries_with_their_symlinks_and_keeps_fresh_ones() {
    let (_dir, cache) = open_cache();
    let layers = cache.root().join(LAYERS_DIR);
    let old_manifest = cache.put_manifest(&digest(1), b"old manifest").unwrap();
    let new_manifest = cache.put_manifest(&digest(2), b"new").unwrap();
    let old_config = cache.put_config(&digest(3), b"old config").unwrap();
    let (old_diff, old_blob, old_blob2) = (digest(4), digest(5), digest(6));
    let old_layer = commit_layer(&cache, b"old layer", &old_diff, Some(&old_blob));
    // A second blob (say gzip and zstd) of the same layer.
    commit_layer(&cache, b"old layer", &old_diff, Some(&old_blob2));
    let (new_diff, new_blob) = (digest(7), digest(8));
    commit_layer(&cache, b"new layer", &new_diff, Some(&new_blob));
    let dangling = digest(9);
    std::os::unix::fs::symlink(digest(10), layers.join(&dangling)).unwrap();
    for path in [&old_manifest, &old_config, &old_layer] {
        set_age(path, 2 * DAY);
    }
    // The symlink of the fresh layer is old itself: what counts is its target's mtime.
    let report = cache.clean(DAY).unwrap();
    assert_eq!(
        report,
        CleanReport {
            removed_files: 6,
            removed_bytes: (b"old manifest".len() + b"old config".len() + b"old layer".len())
                as u64,
        }
    );
    assert!(!old_manifest.exists() && !old_config.exists());
    assert!(new_manifest.exists());
    assert_eq!(names_in(&layers), [new_diff, new_blob.clone()]);
    assert!(cache.layer_by_blob(&new_blob).unwrap().is_some());
    assert!(names_in(&cache.root().join(LOCKS_DIR)).is_empty());
    assert_eq!(cache.clean(DAY).unwrap(), CleanReport::default());
}

#[test]
fn clean_keeps_entries_whose_lock_is_held() {
    let (_dir, cache) = open_cache();
    let manifest = cache.put_manifest(&digest(1), b"m").unwrap();
    let (diff_id, blob) = (digest(2), digest(3));
    let layer = commit_layer(&cache, b"l", &diff_id, Some(&blob));
    set_age(&manifest, 2 * DAY);
    set_age(&layer, 2 * DAY);
    let manifest_lock = cache.lock(&digest(1)).unwrap();
    let blob_lock = cache.lock(&blob).unwrap();
    assert_eq!(cache.clean(DAY).unwrap(), CleanReport::default());
    assert!(manifest.exists() && layer.exists());
    assert!(cache.root().join(LAYERS_DIR).join(&blob).exists());
    // Held lock files stay; the ones clean took for itself are gone.
    assert_eq!(
        names_in(&cache.root().join(LOCKS_DIR)),
        [digest(1), blob.clone()]
    );
    drop(manifest_lock);
    drop(blob_lock);
    assert_eq!(cache.clean(DAY).unwrap().removed_files, 3);
    assert!(names_in(&cache.root().join(LAYERS_DIR)).is_empty());
    assert!(names_in(&cache.root().join(LOCKS_DIR)).is_empty());
}

#[test]
fn clean_removes_working_files_of_dead_writers_only() {
    let (_dir, cache) = open_cache();
    let tmp = cache.root().join(TMP_DIR);
    let mut live = cache.ingest().unwrap();
    live.file().write_all(b"in progress").unwrap();
    // A dead writer's ingest file: no process holds its flock.
    fs::write(tmp.join("ingest-999999-0"), b"dead writer").unwrap();
    // Temporary symlinks: one whose writer still holds its sibling temporary checksum is
    // mid-commit; one without (its writer died) is stale, however fresh.
    std::os::unix::fs::symlink(digest(1), tmp.join("ingest-999999-1.link")).unwrap();
    let sibling_path = tmp.join("ingest-999999-1.sum");
    let sibling = File::create(&sibling_path).unwrap();
    assert_eq!(
        flock_at(&sibling_path, &sibling, FlockOperation::LockExclusive).unwrap(),
        Flock::Held
    );
    std::os::unix::fs::symlink(digest(1), tmp.join("ingest-999999-2.link")).unwrap();
    let report = cache.clean(DAY).unwrap();
    assert_eq!(
        report,
        CleanReport {
            removed_files: 2,
            removed_bytes: b"dead writer".len() as u64
        }
    );
    let live_name = live
        .path()
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let mut expected = vec![
        "ingest-999999-1.link".to_owned(),
        "ingest-999999-1.sum".to_owned(),
        live_name,
    ];
    expected.sort();
    assert_eq!(names_in(&tmp), expected);
    drop(sibling);
    // The live ingest still commits.
    live.commit_config(&digest(2)).unwrap();
    assert_eq!(
        cache.config(&digest(2)).unwrap().as_deref(),
        Some(&b"in progress"[..])
    );
}

#[test]
fn clean_removes_old_working_files_of_concil_1_by_age() {
    let (_dir, cache) = open_cache();
    let layers = cache.root().join(LAYERS_DIR);
    let old_out = layers.join(format!("{}.out", digest(1)));
    let old_sq = layers.join(format!("{}.sq", digest(1)));
    let new_out = cache
        .root()
        .join(CONFIG_DIR)
        .join(format!("{}.out", digest(2)));
    let unknown = layers.join("README");
    for path in [&old_out, &old_sq, &new_out, &unknown] {
        fs::write(path, b"x").unwrap();
    }
    for path in [&old_out, &old_sq, &unknown] {
        set_age(path, 2 * DAY);
    }
    assert_eq!(cache.clean(DAY).unwrap().removed_files, 2);
    assert!(!old_out.exists() && !old_sq.exists());
    assert!(new_out.exists() && unknown.exists());
}

/// A record of `reference` whose layers are `(blob, diff_id)` pairs, with a manifest and a
/// config of its own, committed into the cache (entries of `size` bytes each).
pub(super) fn pulled_image(
    cache: &Cache,
    reference: &str,
    layers: &[(u8, u8)],
    seed: u8,
) -> ImageRecord {
    // Entries whose names are their bytes' digests, as `verify` checks.
    let manifest_bytes = format!("manifest {seed:03}");
    let config_bytes = format!("config {seed:03}");
    let (manifest, config) = (
        Digest::of(manifest_bytes.as_bytes()),
        Digest::of(config_bytes.as_bytes()),
    );
    cache
        .put_manifest(&manifest, manifest_bytes.as_bytes())
        .unwrap();
    cache.put_config(&config, config_bytes.as_bytes()).unwrap();
    let layers = layers
        .iter()
        .map(|(blob, diff_id)| {
            let (blob, diff_id) = (digest(*blob), digest(*diff_id));
            if cache.layer_by_diff_id(&diff_id).unwrap().is_none() {
                commit_layer(cache, &[7u8; 1000], &diff_id, Some(&blob));
            }
            RecordedLayer {
                digest: blob,
                diff_id,
                media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
                size: 500,
            }
        })
        .collect();
    let record = ImageRecord {
        reference: reference.into(),
        requested_platform: "linux/amd64".into(),
        platform: "linux/amd64".into(),
        resolved_digest: manifest.clone(),
        manifest_digest: manifest,
        config_digest: config,
        layers,
        verified: "none".into(),
        pulled_at: ImageRecord::now(),
    };
    cache.record_image(&record).unwrap();
    record
}

fn set_record_age(cache: &Cache, record: &ImageRecord, age: Duration) {
    let key = ImageRecord::key(&record.reference, &record.requested_platform);
    set_age(&cache.root().join(IMAGES_DIR).join(key), age);
}

#[test]
fn a_record_is_found_by_reference_and_platform_and_a_later_pull_replaces_it() {
    let (_dir, cache) = open_cache();
    let first = pulled_image(&cache, "r.example/a:1", &[(0x10, 0x11)], 0x01);
    let found = cache
        .image_record("r.example/a:1", "linux/amd64")
        .unwrap()
        .unwrap();
    assert_eq!(found.record, first);
    assert_eq!(
        cache.image_record("r.example/a:1", "linux/arm64").unwrap(),
        None
    );
    let second = pulled_image(&cache, "r.example/a:1", &[(0x20, 0x21)], 0x03);
    let records = cache.image_records().unwrap();
    assert_eq!(records.images.len(), 1);
    assert_eq!(records.images[0].record, second);
}

#[test]
fn a_record_under_another_key_or_unparsable_is_not_taken() {
    let (_dir, cache) = open_cache();
    let record = pulled_image(&cache, "r.example/a:1", &[(0x10, 0x11)], 0x01);
    let images = cache.root().join(IMAGES_DIR);
    // A neighbour copies a record under the key of another reference.
    let planted = ImageRecord::key("r.example/b:1", "linux/amd64");
    fs::copy(
        images.join(ImageRecord::key(
            &record.reference,
            &record.requested_platform,
        )),
        images.join(&planted),
    )
    .unwrap();
    assert_eq!(
        cache.image_record("r.example/b:1", "linux/amd64").unwrap(),
        None
    );
    fs::write(images.join(digest(0x77)), b"{not json").unwrap();
    let records = cache.image_records().unwrap();
    assert_eq!(records.images.len(), 1);
    assert_eq!(records.unreadable.len(), 2);
}

#[test]
fn usage_counts_shared_layers_once_and_names_their_images() {
    let (_dir, cache) = open_cache();
    pulled_image(&cache, "r.example/a:1", &[(0x10, 0x11), (0x12, 0x13)], 0x01);
    pulled_image(&cache, "r.example/b:1", &[(0x10, 0x11), (0x14, 0x15)], 0x03);
    let usage = cache.usage().unwrap();
    let entry = b"manifest 001".len() as u64 + b"config 001".len() as u64;
    assert_eq!(usage.total_bytes, 2 * entry + 3 * 1000);
    assert_eq!(usage.images.len(), 2);
    for image in &usage.images {
        assert_eq!(image.size, entry + 2000);
        assert_eq!(image.unique_size, entry + 1000);
        assert!(image.missing.is_empty());
    }
    let shared = usage
        .layers
        .iter()
        .find(|layer| layer.diff_id == digest(0x11))
        .unwrap();
    assert_eq!(shared.images, ["r.example/a:1", "r.example/b:1"]);
    assert_eq!(shared.blobs, [digest(0x10)]);
}

#[test]
fn removing_an_image_keeps_what_another_image_uses() {
    let (_dir, cache) = open_cache();
    let a = pulled_image(&cache, "r.example/a:1", &[(0x10, 0x11), (0x12, 0x13)], 0x01);
    let b = pulled_image(&cache, "r.example/b:1", &[(0x10, 0x11)], 0x03);
    let report = cache
        .remove_images(|record| record.reference == a.reference, false)
        .unwrap();
    assert_eq!(report.removed.len(), 1);
    assert!(report.in_use.is_empty());
    let layers = cache.root().join(LAYERS_DIR);
    assert_eq!(
        names_in(&layers),
        [digest(0x10), digest(0x11)],
        "the shared layer and its link stay, a's own layer goes"
    );
    assert_eq!(cache.manifest(&a.manifest_digest).unwrap(), None);
    assert!(cache.manifest(&b.manifest_digest).unwrap().is_some());
    assert_eq!(names_in(&cache.root().join(CHECKSUMS_DIR)), [digest(0x11)]);
    assert_eq!(cache.image_records().unwrap().images.len(), 1);
    assert!(
        names_in(&cache.root().join(LOCKS_DIR)).is_empty(),
        "a removal leaves no lock file"
    );
    assert!(cache.verify(false).unwrap().is_clean());
}

#[test]
fn a_held_image_is_neither_removed_nor_evicted_and_its_hold_ends_with_the_holder() {
    let (_dir, cache) = open_cache();
    let a = pulled_image(&cache, "r.example/a:1", &[(0x10, 0x11)], 0x01);
    let hold = cache.hold(a.entry_names()).unwrap();
    let report = cache.remove_images(|_| true, false).unwrap();
    assert_eq!(report.in_use, ["r.example/a:1 (linux/amd64)"]);
    assert!(cache.layer_by_diff_id(&digest(0x11)).unwrap().is_some());
    let report = cache.fit(0, false).unwrap();
    assert!(report.removed.is_empty(), "{report:?}");
    // Age clean-up respects holds too.
    set_age(&cache.root().join(LAYERS_DIR).join(digest(0x11)), 2 * DAY);
    cache.clean(DAY).unwrap();
    assert!(cache.layer_by_diff_id(&digest(0x11)).unwrap().is_some());
    drop(hold);
    let report = cache.fit(0, false).unwrap();
    assert_eq!(report.removed.len(), 1);
    assert_eq!(report.size_after, 0);
    assert!(names_in(&cache.root().join(LAYERS_DIR)).is_empty());
}

#[test]
fn fit_removes_least_recently_used_images_whole_until_the_cache_fits() {
    let (_dir, cache) = open_cache();
    let old = pulled_image(
        &cache,
        "r.example/old:1",
        &[(0x10, 0x11), (0x12, 0x13)],
        0x01,
    );
    let middle = pulled_image(&cache, "r.example/middle:1", &[(0x14, 0x15)], 0x03);
    let new = pulled_image(
        &cache,
        "r.example/new:1",
        &[(0x10, 0x11), (0x16, 0x17)],
        0x05,
    );
    set_record_age(&cache, &old, 3 * DAY);
    set_record_age(&cache, &middle, 2 * DAY);
    set_record_age(&cache, &new, DAY);
    let before = cache.usage().unwrap().total_bytes;
    // Removing `old` frees its own layer only (the first is `new`'s too): not enough.
    let budget = before - 1500;
    let dry = cache.fit(budget, true).unwrap();
    assert_eq!(
        dry.removed
            .iter()
            .map(|r| r.name.as_str())
            .collect::<Vec<_>>(),
        [
            "r.example/old:1 (linux/amd64)",
            "r.example/middle:1 (linux/amd64)"
        ]
    );
    assert_eq!(
        cache.usage().unwrap().total_bytes,
        before,
        "a dry run removes nothing"
    );
    let report = cache.fit(budget, false).unwrap();
    assert_eq!(report.removed, dry.removed);
    assert!(report.size_after <= budget);
    let usage = cache.usage().unwrap();
    assert_eq!(usage.total_bytes, report.size_after);
    assert_eq!(usage.images.len(), 1);
    assert!(
        usage.images[0].missing.is_empty(),
        "the kept image is whole"
    );
    assert!(cache.verify(false).unwrap().is_clean());
}

#[test]
fn verify_finds_rot_truncation_dangling_links_and_dead_writers_and_repair_removes_them() {
    let (_dir, cache) = open_cache();
    let a = pulled_image(&cache, "r.example/a:1", &[(0x10, 0x11), (0x12, 0x13)], 0x01);
    assert!(cache.verify(false).unwrap().is_clean());
    let layers = cache.root().join(LAYERS_DIR);
    // A flipped byte in a layer (same inode: written in place).
    let mut file = OpenOptions::new()
        .write(true)
        .open(layers.join(digest(0x11)))
        .unwrap();
    io::Seek::seek(&mut file, io::SeekFrom::Start(10)).unwrap();
    file.write_all(b"X").unwrap();
    drop(file);
    // A config that does not hash to its name.
    fs::write(
        cache.root().join(CONFIG_DIR).join(&a.config_digest),
        b"other",
    )
    .unwrap();
    // A dangling link, and a dead writer's ingest file.
    std::os::unix::fs::symlink(digest(0x99), layers.join(digest(0x98))).unwrap();
    fs::write(cache.root().join(TMP_DIR).join("ingest-999999-0"), b"dead").unwrap();

    let report = cache.verify(false).unwrap();
    let kinds: Vec<_> = report.problems.iter().map(|p| &p.kind).collect();
    assert!(
        matches!(
            kinds[..],
            [
                ProblemKind::DigestMismatch { .. },
                ProblemKind::ChecksumMismatch { .. },
                ProblemKind::DanglingLink,
                ProblemKind::DeadWriter,
            ] | [
                ProblemKind::DigestMismatch { .. },
                ProblemKind::DanglingLink,
                ProblemKind::ChecksumMismatch { .. },
                ProblemKind::DeadWriter,
            ]
        ),
        "{kinds:?}"
    );
    assert!(report.problems.iter().all(|p| !p.repaired));

    let repaired = cache.verify(true).unwrap();
    assert!(repaired.problems.iter().all(|p| p.repaired), "{repaired:?}");
    // The broken layer went with its link and checksum, so the record, checked last, is
    // incomplete and goes too: the next pull resolves the image again.
    assert_eq!(repaired.problems.len(), 5, "{repaired:?}");
    assert!(matches!(
        repaired.problems[3].kind,
        ProblemKind::IncompleteRecord { ref missing } if missing.contains(&a.config_digest)
    ));
    assert_eq!(cache.layer_by_blob(&digest(0x10)).unwrap(), None);
    assert_eq!(cache.image_records().unwrap().images, []);
    assert!(cache.verify(false).unwrap().is_clean());
    assert!(cache.layer_by_diff_id(&digest(0x13)).unwrap().is_some());
}

#[test]
fn a_checksum_of_another_commit_does_not_judge_the_layer() {
    let (_dir, cache) = open_cache();
    let diff_id = digest(0x11);
    commit_layer(&cache, b"from gzip", &diff_id, Some(&digest(0x10)));
    let checksum = fs::read(cache.root().join(CHECKSUMS_DIR).join(&diff_id)).unwrap();
    // Another process committed the same tar from another blob after us; our checksum
    // landed last.
    commit_layer(&cache, b"from zstd", &diff_id, Some(&digest(0x12)));
    fs::write(cache.root().join(CHECKSUMS_DIR).join(&diff_id), checksum).unwrap();
    let report = cache.verify(false).unwrap();
    // Judged by a squashfs read-back instead: these test bytes are no squashfs image.
    assert!(
        matches!(
            &report.problems[..],
            [Problem {
                kind: ProblemKind::NotSquashfs { .. },
                ..
            }]
        ),
        "{report:?}"
    );
}

#[test]
fn planted_records_and_checksums_are_reported_never_followed() {
    let (dir, cache) = open_cache();
    let record = pulled_image(&cache, "r.example/a:1", &[(0x10, 0x11)], 0x01);
    let outside = dir.path().join("outside");
    fs::write(&outside, b"secret").unwrap();
    // A symlink where a record belongs, one where a checksum belongs, a huge record.
    let images = cache.root().join(IMAGES_DIR);
    std::os::unix::fs::symlink(&outside, images.join(digest(0x70))).unwrap();
    let checksums = cache.root().join(CHECKSUMS_DIR);
    fs::remove_file(checksums.join(digest(0x11))).unwrap();
    std::os::unix::fs::symlink(&outside, checksums.join(digest(0x11))).unwrap();
    let huge = File::create(images.join(digest(0x71))).unwrap();
    huge.set_len(2 * 1024 * 1024).unwrap();

    let records = cache.image_records().unwrap();
    assert_eq!(records.images.len(), 1);
    assert_eq!(records.images[0].record, record);
    assert_eq!(records.unreadable.len(), 1, "{:?}", records.unreadable);
    assert!(records.unreadable[0].1.contains("more than a record"));
    let usage = cache.usage().unwrap();
    assert_eq!(usage.images.len(), 1);

    let report = cache.verify(true).unwrap();
    let kinds: Vec<_> = report.problems.iter().map(|p| &p.kind).collect();
    // The layer (test bytes, its checksum unusable) is judged by a read-back; the planted
    // checksum does not parse; the huge record does not either. The symlinked record is not
    // a record file at all and is left alone.
    assert!(
        kinds
            .iter()
            .any(|kind| matches!(kind, ProblemKind::NotSquashfs { .. })),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&&ProblemKind::UnreadableChecksum) || !checksums.join(digest(0x11)).exists(),
        "{kinds:?}"
    );
    assert!(
        kinds
            .iter()
            .any(|kind| matches!(kind, ProblemKind::UnreadableRecord { .. })),
        "{kinds:?}"
    );
    assert_eq!(
        fs::read(&outside).unwrap(),
        b"secret",
        "nothing outside the cache touched"
    );
}

#[test]
fn a_dead_writers_temporary_checksum_goes_at_the_next_clean_a_live_ones_stays() {
    let (_dir, cache) = open_cache();
    let tmp = cache.root().join(TMP_DIR);
    fs::write(tmp.join("ingest-999999-7.sum"), b"dead").unwrap();
    let live_path = tmp.join("ingest-999999-8.sum");
    let live = File::create(&live_path).unwrap();
    assert_eq!(
        flock_at(&live_path, &live, FlockOperation::LockExclusive).unwrap(),
        Flock::Held
    );
    assert_eq!(cache.clean(DAY).unwrap().removed_files, 1);
    assert_eq!(names_in(&tmp), ["ingest-999999-8.sum"]);
}
