//! Adversarial review of the cache's records, holds, budget and verify: each test demonstrates
//! a hole in a promise of ARCHITECTURE.md ("Invariants", "A cache shared by many hosts") or
//! README.md ("The cache over months", "Security"). Each failed when it was written; all pass
//! since the fixes that followed.
//!
//! Tests that need another user's files (`chown`) run only as root and pass vacuously
//! otherwise.

use super::tests::{commit_layer, digest, open_cache, pulled_image};
use super::*;
use std::io::Write;
use std::os::unix::fs::symlink;
use std::sync::atomic::AtomicBool;

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Another user's uid (the neighbour in a sticky shared cache).
const NEIGHBOUR: u32 = 4242;

fn record_path(cache: &Cache, record: &ImageRecord) -> PathBuf {
    cache.root().join(IMAGES_DIR).join(record.name())
}

/// `len` bytes that pass `verify`'s squashfs superblock read-back (magic, 4.0, block size,
/// bytes_used = len, every table inside).
fn fake_squashfs(len: usize) -> Vec<u8> {
    let mut bytes = vec![0x5au8; len];
    bytes[..96].fill(0);
    bytes[0..4].copy_from_slice(&0x7371_7368u32.to_le_bytes());
    bytes[12..16].copy_from_slice(&131_072u32.to_le_bytes());
    bytes[22..24].copy_from_slice(&17u16.to_le_bytes());
    bytes[28..30].copy_from_slice(&4u16.to_le_bytes());
    bytes[40..48].copy_from_slice(&(len as u64).to_le_bytes());
    for at in [48, 56, 64, 72, 80, 88] {
        bytes[at..at + 8].copy_from_slice(&(len as u64 - 10).to_le_bytes());
    }
    bytes
}

/// Flips one byte of `path` in place (same inode: rot on disk).
fn flip_byte(path: &Path, at: u64) {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut byte = [0u8];
    io::Seek::seek(&mut file, io::SeekFrom::Start(at)).unwrap();
    file.read_exact(&mut byte).unwrap();
    io::Seek::seek(&mut file, io::SeekFrom::Start(at)).unwrap();
    file.write_all(&[byte[0] ^ 0xff]).unwrap();
}

/// Runs `work` on a thread; whether it finished within `limit`. `release` runs afterwards
/// either way (it must let a stuck `work` finish, so that the scope can end); what it returns
/// is kept until `work` has finished.
fn finishes_within<T: Send, R>(
    limit: Duration,
    work: impl FnOnce() -> T + Send,
    release: impl FnOnce() -> R,
) -> (bool, T) {
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let worker = scope.spawn(|| {
            let result = work();
            done.store(true, Ordering::SeqCst);
            result
        });
        let deadline = std::time::Instant::now() + limit;
        while !done.load(Ordering::SeqCst) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let in_time = done.load(Ordering::SeqCst);
        let kept = release();
        let result = worker.join().unwrap();
        drop(kept);
        (in_time, result)
    })
}

// ---- (4) a neighbour's files in locks/ -----------------------------------------------------

/// `acquire` opens `locks/<digest>` with O_CREAT and without O_NOFOLLOW: a symlink planted
/// there (a group member can, in a sticky group-writable `locks/`; `protected_symlinks`
/// covers only world-writable sticky directories) is followed, the file it names is created
/// outside the cache, and since the path then never "names the file" (`Flock::Gone`) the
/// lock loop spins forever: `try_lock`, `lock`, `hold`, and `clean` (`clean_lock_files`).
#[test]
fn a_symlink_planted_in_locks_is_neither_followed_nor_spun_on() {
    let (dir, cache) = open_cache();
    let outside = dir.path().join("outside-created-by-concil");
    let lock = cache.root().join(LOCKS_DIR).join(digest(0x42));
    symlink(&outside, &lock).unwrap();

    let (in_time, _) = finishes_within(
        Duration::from_secs(2),
        || cache.try_lock(&digest(0x42)).map(|guard| guard.is_some()),
        // Let a spinning loop end: the next round opens a regular file.
        || {
            let _ = fs::remove_file(&lock);
        },
    );
    assert!(
        !outside.exists(),
        "a file outside the cache was created through the planted lock symlink"
    );
    assert!(in_time, "try_lock spun on the planted symlink");
}

/// The same symlink hangs `clean` (which tries every lock file in `locks/`), even when no
/// entry has that name.
#[test]
fn clean_does_not_spin_on_a_symlink_in_locks() {
    let (dir, cache) = open_cache();
    let lock = cache.root().join(LOCKS_DIR).join(digest(0x43));
    symlink(dir.path().join("elsewhere"), &lock).unwrap();
    let (in_time, result) = finishes_within(
        Duration::from_secs(3),
        || cache.clean(Duration::from_secs(86_400)).map(|_| ()),
        || {
            let _ = fs::remove_file(&lock);
        },
    );
    assert!(in_time, "clean spun on the planted symlink");
    result.unwrap();
}

/// A directory where a lock file belongs: `acquire` opens it O_RDWR (EISDIR) and every
/// `clean` fails for good ("cannot create …/locks/…"), as do rm, verify --repair and pulls of
/// that digest.
#[test]
fn a_directory_in_locks_does_not_make_clean_fail() {
    let (_dir, cache) = open_cache();
    fs::create_dir(cache.root().join(LOCKS_DIR).join(digest(0x44))).unwrap();
    cache.clean(Duration::from_secs(86_400)).unwrap();
}

/// A neighbour owns `locks/<diff_id>` (made before we first locked it; our open falls back to
/// read-only and takes it). A hold is a shared flock on that inode; the neighbour, owner of
/// the name, unlinks and recreates it, and our own budget/rm then locks the new inode and
/// removes the held layer.
#[test]
fn a_neighbour_swapping_its_lock_file_does_not_defeat_a_hold() {
    if !is_root() {
        eprintln!("skipped: needs root to make another user's lock file");
        return;
    }
    let (_dir, cache) = open_cache();
    let locks = cache.root().join(LOCKS_DIR);
    let diff_id = digest(0x11);
    let image = pulled_image(&cache, "r.example/held:1", &[(0x10, 0x11)], 0x01);
    // Every name is public (digests; a record's key is the digest of reference and
    // platform): the neighbour made the lock files before anyone locked them.
    let names: Vec<Digest> = image.entry_names().cloned().chain([image.name()]).collect();
    let neighbours = |name: &Digest| {
        let path = locks.join(name);
        let _ = fs::remove_file(&path);
        fs::write(&path, b"").unwrap();
        std::os::unix::fs::chown(&path, Some(NEIGHBOUR), Some(NEIGHBOUR)).unwrap();
    };
    names.iter().for_each(neighbours);
    let hold = cache.hold(&names).unwrap();
    // The neighbour swaps the names (allowed in a sticky directory: they are theirs).
    names.iter().for_each(neighbours);

    let report = cache.remove_images(|_| true, false).unwrap();
    assert!(
        cache.layer_by_diff_id(&diff_id).unwrap().is_some(),
        "the held layer was removed: {report:?}"
    );
    drop(hold);
}

// ---- (4) a neighbour's entries --------------------------------------------------------------

/// README: "entries another user made … count as absent". The inventory of `usage`/`fit`
/// counts them anyway: a neighbour's big file (sparse; mtime in the future so it is evicted
/// last) pushes the cache over budget and `fit` evicts our images to make room for it (then,
/// as a non-root user, fails with EPERM removing it from the sticky directory).
#[test]
fn a_neighbours_file_does_not_count_against_the_budget() {
    if !is_root() {
        eprintln!("skipped: needs root to make another user's file");
        return;
    }
    let (_dir, cache) = open_cache();
    let ours = pulled_image(&cache, "r.example/ours:1", &[(0x10, 0x11)], 0x01);
    let our_size = cache.usage().unwrap().total_bytes;
    let planted = cache.root().join(LAYERS_DIR).join(digest(0xee));
    let file = File::create(&planted).unwrap();
    file.set_len(1 << 30).unwrap();
    file.set_modified(SystemTime::now() + Duration::from_secs(10 * 365 * 86_400))
        .unwrap();
    drop(file);
    std::os::unix::fs::chown(&planted, Some(NEIGHBOUR), Some(NEIGHBOUR)).unwrap();

    let counted = cache.usage().unwrap().total_bytes;
    let report = cache.fit(our_size, false);
    assert!(
        record_path(&cache, &ours).exists(),
        "our image was evicted for the neighbour's bytes: {report:?}"
    );
    assert_eq!(counted, our_size, "a neighbour's file is counted as ours");
    assert!(planted.exists(), "the neighbour's file was removed");
}

/// A neighbour's file at `checksums/<diff_id>` of a good layer of ours: read as absent (so
/// the layer is judged by its superblock), yet reported as an unreadable checksum: `verify`
/// exits 24 on a good cache (and `--repair`, as non-root, fails with EPERM removing it).
#[test]
fn a_neighbours_checksum_file_is_not_a_problem_of_ours() {
    if !is_root() {
        eprintln!("skipped: needs root to make another user's file");
        return;
    }
    let (_dir, cache) = open_cache();
    let diff_id = digest(0x11);
    commit_layer(&cache, &fake_squashfs(4096), &diff_id, Some(&digest(0x10)));
    let checksum = cache.root().join(CHECKSUMS_DIR).join(&diff_id);
    // As if the neighbour's file had been there first (our rename over it fails in a sticky
    // directory as non-root, so the commit above would have failed outright).
    fs::remove_file(&checksum).unwrap();
    fs::write(&checksum, b"whatever\n").unwrap();
    std::os::unix::fs::chown(&checksum, Some(NEIGHBOUR), Some(NEIGHBOUR)).unwrap();
    let report = cache.verify(false).unwrap();
    assert!(report.is_clean(), "{report:?}");
}

// ---- (4) planted non-regular files ----------------------------------------------------------

/// `open_entry` opens without O_NONBLOCK before it checks the file type: a FIFO at
/// `checksums/<diff_id>` (or `manifest/<d>`, `config/<d>`, `images/<key>`, which pulls open
/// the same way) blocks `verify` forever.
#[test]
fn a_fifo_where_a_checksum_belongs_does_not_hang_verify() {
    let (_dir, cache) = open_cache();
    let diff_id = digest(0x11);
    commit_layer(&cache, &fake_squashfs(4096), &diff_id, Some(&digest(0x10)));
    let checksum = cache.root().join(CHECKSUMS_DIR).join(&diff_id);
    fs::remove_file(&checksum).unwrap();
    rustix::fs::mknodat(
        CWD,
        &checksum,
        rustix::fs::FileType::Fifo,
        Mode::from_bits_truncate(0o644),
        0,
    )
    .unwrap();
    let (in_time, result) = finishes_within(
        Duration::from_secs(3),
        || cache.verify(false),
        // Unblock a reader stuck in open(): a writer that stays until verify is done (O_RDWR
        // never blocks on a FIFO), and the name gone for later opens.
        || {
            let writer = OpenOptions::new().read(true).write(true).open(&checksum);
            let _ = fs::remove_file(&checksum);
            writer
        },
    );
    assert!(in_time, "verify blocked opening a FIFO");
    result.unwrap();
}

/// A self-referencing blob link (`layers/X -> X`; a neighbour's, or any corruption): clean
/// sees a "broken link", checks it with `fs::metadata` (follows: ELOOP) and returns an error,
/// so every `cache clean` fails until someone removes it by hand.
#[test]
fn a_symlink_loop_in_layers_does_not_make_clean_fail() {
    let (_dir, cache) = open_cache();
    let name = digest(0x51);
    symlink(name.as_str(), cache.root().join(LAYERS_DIR).join(&name)).unwrap();
    cache.clean(Duration::from_secs(86_400)).unwrap();
}

/// `verify --repair` removes a NotAFile entry with `remove_file`: a directory planted under a
/// manifest (or layer) name makes the whole verify fail with EISDIR instead of reporting it.
#[test]
fn verify_repair_reports_a_directory_under_an_entry_name() {
    let (_dir, cache) = open_cache();
    fs::create_dir(cache.root().join(MANIFEST_DIR).join(digest(0x61))).unwrap();
    let report = cache.verify(true).unwrap();
    assert!(
        matches!(
            report.problems[..],
            [Problem {
                kind: ProblemKind::NotAFile,
                ..
            }]
        ),
        "{report:?}"
    );
}

// ---- (2) held records -----------------------------------------------------------------------

/// `found_record` removes a record with no lock at all: `verify --repair` removes the record
/// of a held image (the hold covers the record's name: "a held image's record is held too"),
/// and, racing a pull that rewrites the record under its hold, the record that pull just
/// wrote.
#[test]
fn verify_repair_keeps_a_held_record() {
    let (_dir, cache) = open_cache();
    let image = pulled_image(&cache, "r.example/held:1", &[(0x10, 0x11)], 0x01);
    let hold = cache
        .hold(image.entry_names().chain([&image.name()]))
        .unwrap();
    // The record names something not in the cache (an age clean removed it earlier; a pull
    // holding the image is about to rewrite the record).
    fs::remove_file(cache.root().join(CONFIG_DIR).join(&image.config_digest)).unwrap();
    let report = cache.verify(true).unwrap();
    assert!(
        record_path(&cache, &image).exists(),
        "a held record was removed: {report:?}"
    );
    drop(hold);
}

// ---- (2)/(3) a record written while a removal runs ------------------------------------------

/// `Eviction` decides what an image uses alone from a snapshot of the records taken at its
/// start and never looks again after locking: a pull that finishes in between (finds the
/// shared layer, holds, records, returns and lets go, as every `concil pull` without --hold
/// does) is left with a record naming a layer the removal then takes. The `selected`
/// callback of `remove_images` runs exactly in that window.
#[test]
fn a_record_written_during_a_removal_keeps_its_entries() {
    let (_dir, cache) = open_cache();
    let a = pulled_image(&cache, "r.example/a:1", &[(0x10, 0x11)], 0x01);
    // b's manifest and config are in (its pull fetched them); its record is not yet.
    let (manifest_bytes, config_bytes) = (b"manifest b", b"config b");
    let b = ImageRecord {
        reference: "r.example/b:1".into(),
        resolved_digest: Digest::of(manifest_bytes),
        manifest_digest: Digest::of(manifest_bytes),
        config_digest: Digest::of(config_bytes),
        ..a.clone()
    };
    cache
        .put_manifest(&b.manifest_digest, manifest_bytes)
        .unwrap();
    cache.put_config(&b.config_digest, config_bytes).unwrap();

    let written = AtomicBool::new(false);
    cache
        .remove_images(
            |record| {
                if !written.swap(true, Ordering::SeqCst) {
                    // b's pull: holds its entries, writes its record, refreshes its entries
                    // (as `ImagePull::pull` does), returns, lets go.
                    let hold = cache.hold(b.entry_names().chain([&b.name()])).unwrap();
                    cache.record_image(&b).unwrap();
                    cache.touch_image(&b);
                    drop(hold);
                }
                record.reference == a.reference
            },
            false,
        )
        .unwrap();
    let usage = cache.usage().unwrap();
    let b_usage = usage
        .images
        .iter()
        .find(|image| image.image.record.reference == b.reference)
        .unwrap();
    assert!(
        b_usage.missing.is_empty(),
        "b's record names removed entries: {:?}",
        b_usage.missing
    );
}

// ---- records of layers stored as they are ---------------------------------------------------

/// A squashfs-typed layer lives under its blob digest, but the record keeps the config's
/// diff_id for it and `usage`/`verify` look the layer up by that diff_id only (the hold uses
/// the right name, `PulledLayer::file_name`). So a freshly pulled, intact image whose config
/// gives another diff_id (any but concil 1.0's own pushes) is "incomplete" in `ls`, fails
/// `verify` (exit 24), loses its record to `verify --repair`, and its layer counts as
/// unrecorded: `fit` evicts it while the image stays, `rm` of the image leaves it behind.
#[test]
fn a_squashfs_typed_layer_belongs_to_its_record() {
    let (_dir, cache) = open_cache();
    let mut image = pulled_image(&cache, "r.example/sq:1", &[], 0x01);
    let squashfs = fake_squashfs(4096);
    let blob = Digest::of(&squashfs);
    commit_layer(&cache, &squashfs, &blob, None);
    image.layers.push(RecordedLayer {
        digest: blob.clone(),
        // The store records the file's name (`PulledLayer::file_name`), not what the config
        // says (tests/hostile.rs checks it on a real pull).
        diff_id: blob.clone(),
        media_type: "application/vnd.docker.image.rootfs.diff.squashfs".into(),
        size: squashfs.len() as u64,
    });
    cache.record_image(&image).unwrap();

    let usage = cache.usage().unwrap();
    assert!(
        usage.images[0].missing.is_empty(),
        "missing: {:?}",
        usage.images[0].missing
    );
    let report = cache.verify(false).unwrap();
    assert!(report.is_clean(), "{report:?}");
}

// ---- (1)/(4) what verify can judge ----------------------------------------------------------

/// An uncompressed tar layer (`…layer.v1.tar`, `…rootfs.diff.tar`) has blob digest ==
/// diff_id, and `commit_layer` then writes no checksum ("named by its own hash already"),
/// although the squashfs file is not what hashes to that name. `verify` falls back to the
/// superblock read-back and calls a rotted layer good. The same rot in a gzip layer's file
/// is found.
#[test]
fn rot_in_an_uncompressed_tar_layer_is_found() {
    let (_dir, cache) = open_cache();
    let (gzip, plain) = (digest(0x11), digest(0x21));
    commit_layer(&cache, &fake_squashfs(4096), &gzip, Some(&digest(0x10)));
    commit_layer(&cache, &fake_squashfs(4096), &plain, Some(&plain));
    let layers = cache.root().join(LAYERS_DIR);
    flip_byte(&layers.join(&gzip), 2000);
    flip_byte(&layers.join(&plain), 2000);
    let report = cache.verify(false).unwrap();
    let judged: Vec<_> = report
        .problems
        .iter()
        .map(|problem| {
            problem
                .path
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert!(judged.contains(&gzip.to_string()), "{report:?}");
    assert!(
        judged.contains(&plain.to_string()),
        "rot in the uncompressed tar's layer went unnoticed: {report:?}"
    );
}
