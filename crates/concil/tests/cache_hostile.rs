//! Adversarial review of records, holds, the budget and verify, through the `concil` binary:
//! what a hostile record, a hostile registry or a neighbour in a shared cache can do to `cache
//! ls/clean/verify` and `pull --hold`. Each failed when it was written; all pass since the
//! fixes that followed.
//!
//! The neighbour tests need root (to make another user's files and to run concil as
//! `nobody`); they pass vacuously otherwise.

use concil_test_support as support;

use std::error::Error;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

use concil::cache::{Cache, ImageRecord, RecordedLayer};
use concil::digest::Digest;
use serde_json::{json, Value};
use support::pull::{concil_binary, config_for, expect_failure, run, sha256_digest, ConcilHome};
use support::registry::{hello_layer, Format, Registry};

type TestResult = Result<(), Box<dyn Error>>;

const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
const PLAIN_TAR_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";

/// The user concil runs as in the neighbour tests, and the neighbour.
const NOBODY: u32 = 65534;
const NEIGHBOUR: u32 = 65533;

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// `concil cache <args…> --config <home's>`.
fn cache_command(home: &ConcilHome, args: &[&str]) -> Command {
    let mut command = home.concil();
    command
        .arg("cache")
        .args(args)
        .arg("--config")
        .arg(home.config_path());
    command
}

/// Runs `command` (stdout and stderr piped); `None` if it was still running after `limit`
/// (then it is killed).
fn finishes_within(command: &mut Command, limit: Duration) -> Option<Output> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start concil");
    let deadline = Instant::now() + limit;
    loop {
        if child.try_wait().expect("wait").is_some() {
            return Some(child.wait_with_output().expect("output"));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn describe(output: &Output) -> String {
    format!(
        "{}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A record of ours whose `pulled_at` is the largest number JSON gives: `cache ls --json`
/// turns it into a time with `UNIX_EPOCH + Duration`, which panics on overflow (exit 101, a
/// panic message instead of one `error:` line). README: "no input panics".
#[test]
fn ls_json_survives_a_record_from_the_far_future() -> TestResult {
    let home = ConcilHome::new(json!({}));
    let cache = Cache::open(home.cache_dir())?;
    let digest = Digest::of(b"anything");
    cache.record_image(&ImageRecord {
        reference: "r.example/far:future".into(),
        requested_platform: "linux/amd64".into(),
        platform: "linux/amd64".into(),
        resolved_digest: digest.clone(),
        manifest_digest: digest.clone(),
        config_digest: digest.clone(),
        layers: vec![RecordedLayer {
            digest: digest.clone(),
            diff_id: digest,
            media_type: PLAIN_TAR_LAYER.into(),
            size: 1,
        }],
        verified: "none".into(),
        pulled_at: u64::MAX,
    })?;
    let output = run(&mut cache_command(&home, &["ls", "--json"]));
    assert!(output.status.success(), "{}", describe(&output));
    Ok(())
}

/// A symlink in `locks/` (a group member can plant one in a sticky group-writable cache) is
/// followed with O_CREAT, creating a file outside the cache, and the lock loop never ends:
/// `cache clean` spins at 100% CPU forever.
#[test]
fn clean_neither_follows_nor_spins_on_a_symlink_in_locks() -> TestResult {
    let home = ConcilHome::new(json!({}));
    let cache = Cache::open(home.cache_dir())?;
    let outside = tempfile::tempdir()?;
    let target = outside.path().join("made-by-concil");
    let name = format!("sha256:{}", "ab".repeat(32));
    symlink(&target, cache.root().join("locks").join(name))?;

    let output = finishes_within(
        &mut cache_command(&home, &["clean"]),
        Duration::from_secs(20),
    );
    assert!(
        !target.exists(),
        "concil created {} through the planted symlink",
        target.display()
    );
    let output = output.expect("cache clean did not finish within 20 s");
    assert!(output.status.success(), "{}", describe(&output));
    Ok(())
}

/// `pull --hold A B` keeps A held (a shared flock per name) while it pulls B. When B names a
/// digest A holds for something B must fetch (here its config is A's manifest digest), the
/// pull takes that digest's exclusive lock in the same process and waits for itself forever.
/// A registry can thus hang `pull --hold` for good, although its config would be refused at
/// once (it is not an image config).
#[test]
fn pull_hold_does_not_deadlock_on_its_own_hold() -> TestResult {
    let registry = Registry::plain();
    let first = registry.push_test_image("held/first", "v1", Format::DockerV2, "first\n");
    // The second image's config is the first one's manifest (same digest, same bytes).
    let config_digest = registry.push_blob("held/second", &first.manifest);
    let layer_digest = registry.push_blob("held/second", &first.layer);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": DOCKER_CONFIG, "size": first.manifest.len(), "digest": config_digest},
        "layers": [{
            "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
            "size": first.layer.len(), "digest": layer_digest,
        }],
    }))?;
    registry.push_manifest("held/second", "v1", DOCKER_MANIFEST, &manifest);
    let home = ConcilHome::new(config_for(&registry));
    let image = |repository: &str| format!("docker://{}/{repository}:v1", registry.host());

    let mut command = home.concil();
    command
        .args(["pull", "--config"])
        .arg(home.config_path())
        .args([
            "--hold",
            &image("held/first"),
            &image("held/second"),
            "--",
            "true",
        ]);
    let output = finishes_within(&mut command, Duration::from_secs(60))
        .expect("pull --hold did not finish within 60 s: it waits on its own hold");
    // The first image's layer path was printed before the second failed.
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|line| line.starts_with("error: "))
        .collect();
    assert!(
        matches!(errors[..], [error] if error.contains("config")),
        "{stderr}"
    );
    Ok(())
}

/// A plain (uncompressed) tar layer: blob digest == diff_id, so `commit_layer` records no
/// checksum for its squashfs file, and `cache verify` judges it by its superblock only. A
/// byte rotted in the middle of a freshly pulled layer goes unnoticed (exit 0); the same rot
/// in a gzip layer is exit 24 (cache_admin.rs).
#[test]
fn verify_finds_rot_in_an_uncompressed_tar_layer() -> TestResult {
    let registry = Registry::plain();
    let (gzip, diff_id) = hello_layer("plain tar layer\n");
    let mut gunzip = Command::new("gzip")
        .arg("-dc")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    gunzip.stdin.take().expect("stdin").write_all(&gzip)?;
    let tar = gunzip.wait_with_output()?.stdout;
    assert_eq!(sha256_digest(&tar), diff_id);
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }))?;
    let config_digest = registry.push_blob("plain/tar", &config);
    let blob_digest = registry.push_blob("plain/tar", &tar);
    assert_eq!(
        blob_digest, diff_id,
        "an uncompressed layer's blob is its tar"
    );
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": DOCKER_CONFIG, "size": config.len(), "digest": config_digest},
        "layers": [{"mediaType": PLAIN_TAR_LAYER, "size": tar.len(), "digest": blob_digest}],
    }))?;
    registry.push_manifest("plain/tar", "v1", DOCKER_MANIFEST, &manifest);
    let home = ConcilHome::new(config_for(&registry));
    let pulled: Value = home.pull_json(&format!("docker://{}/plain/tar:v1", registry.host()), &[]);
    let layer = Path::new(pulled["layers"][0]["path"].as_str().expect("path")).to_owned();
    assert!(cache_command(&home, &["verify"]).status()?.success());

    // Rot: one byte in the middle, in place.
    let mut file = fs::OpenOptions::new().read(true).write(true).open(&layer)?;
    let middle = file.metadata()?.len() / 2;
    let mut byte = [0u8];
    file.seek(SeekFrom::Start(middle))?;
    file.read_exact(&mut byte)?;
    file.seek(SeekFrom::Start(middle))?;
    file.write_all(&[byte[0] ^ 0xff])?;
    drop(file);

    let output = run(&mut cache_command(&home, &["verify"]));
    assert_eq!(
        output.status.code(),
        Some(i32::from(concil::exit_status::CACHE_DAMAGED)),
        "{}",
        describe(&output)
    );
    Ok(())
}

/// `Store::hold` ("holds what `image` uses … and refreshes its last use") refreshes the
/// entries it looks up but not the image's record, whose mtime *is* the image's last use
/// (records.rs; `cache ls`, the LRU order of the budget, the age rule for records). A runtime
/// that pulls once and then re-holds the image for every job keeps it looking unused: the
/// budget evicts it first whenever it is momentarily not held, the age rule drops its record.
#[test]
fn store_hold_refreshes_the_images_last_use() -> TestResult {
    let registry = Registry::plain();
    registry.push_test_image("hold/refresh", "v1", Format::DockerV2, "refresh\n");
    let home = ConcilHome::new(config_for(&registry));
    let store = home.store(&format!("docker://{}/hold/refresh:v1", registry.host()));
    let pulled = store.pull(&concil::store::Platform::new("linux", "amd64", None))?;
    let record = fs::read_dir(home.cache_dir().join("images"))?
        .next()
        .expect("the pull's record")?
        .path();
    let long_ago = SystemTime::now() - Duration::from_secs(30 * 86_400);
    fs::File::options()
        .write(true)
        .open(&record)?
        .set_modified(long_ago)?;

    let _hold = store.store.hold(&pulled)?;
    let last_use = fs::metadata(&record)?.modified()?;
    assert!(
        last_use > long_ago + Duration::from_secs(86_400),
        "the image's last use is still {:?} ago after a hold",
        SystemTime::now()
            .duration_since(last_use)
            .unwrap_or_default()
    );
    Ok(())
}

// ---- a cache shared by several users --------------------------------------------------------

/// A cache shared on purpose: the cache directory and its subdirectories belong to root and
/// are sticky and writable by all (as `Cache::open` accepts); concil runs as `nobody`. `None`
/// unless the test runs as root.
fn shared_home(config: Value) -> Option<ConcilHome> {
    if !is_root() {
        eprintln!("skipped: needs root to run concil as another user");
        return None;
    }
    let home = ConcilHome::new(config);
    let dir = home.config_path().parent().expect("home").to_owned();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("chmod home");
    let cache = Cache::open(home.cache_dir()).expect("open the cache");
    for sub in [
        "",
        "manifest",
        "config",
        "layers",
        "tmp",
        "locks",
        "checksums",
        "images",
    ] {
        fs::set_permissions(cache.root().join(sub), fs::Permissions::from_mode(0o1777))
            .expect("chmod 1777");
    }
    Some(home)
}

/// A file of the neighbour's at `path`.
fn plant(path: &Path, content: &[u8], age: Duration) {
    fs::write(path, content).expect("plant");
    let file = fs::File::options().write(true).open(path).expect("open");
    file.set_modified(SystemTime::now() - age).expect("mtime");
    std::os::unix::fs::chown(path, Some(NEIGHBOUR), Some(NEIGHBOUR)).expect("chown");
}

/// `concil <args…>` as `nobody`, from a copy of the binary in the (world-readable) home: the
/// build's own may lie where only its owner can enter (a clone under `/root`, a `mktemp -d`
/// directory).
fn as_nobody(home: &ConcilHome, args: &[&str]) -> Output {
    let binary = home.config_path().parent().expect("home").join("concil");
    if !binary.exists() {
        fs::copy(concil_binary(), &binary).expect("copy concil into the home");
    }
    let mut command = home.concil_from(&binary);
    command.uid(NOBODY).gid(NOBODY).args(args);
    run(&mut command)
}

fn clean_as_nobody(home: &ConcilHome) -> Output {
    let config = home.config_path();
    let config = config.to_str().expect("UTF-8 path");
    as_nobody(
        home,
        &["cache", "clean", "--older-than", "60", "--config", config],
    )
}

const DAY: Duration = Duration::from_secs(86_400);

/// The neighbour's old manifest (they pulled an image a while ago): our age clean tries to
/// unlink it, the sticky directory refuses (EPERM), and `cache clean` fails as a whole,
/// every time, until the neighbour cleans. README: entries of another user count as absent.
#[test]
fn clean_skips_a_neighbours_old_entry() {
    let Some(home) = shared_home(json!({})) else {
        return;
    };
    let bytes = b"{\"their\":\"manifest\"}";
    let name = sha256_digest(bytes);
    plant(
        &home.cache_dir().join("manifest").join(&name),
        bytes,
        2 * DAY,
    );
    let output = clean_as_nobody(&home);
    assert!(output.status.success(), "{}", describe(&output));
}

/// The neighbour's lock file (their concil made it while pulling): `clean_lock_files` takes
/// it (read-only open), then cannot unlink it: `cache clean` fails.
#[test]
fn clean_skips_a_neighbours_lock_file() {
    let Some(home) = shared_home(json!({})) else {
        return;
    };
    let name = format!("sha256:{}", "cd".repeat(32));
    plant(
        &home.cache_dir().join("locks").join(name),
        b"",
        Duration::ZERO,
    );
    let output = clean_as_nobody(&home);
    assert!(output.status.success(), "{}", describe(&output));
}

/// The working file of the neighbour's killed pull: its flock is free, so our clean takes it
/// for a dead writer's, cannot unlink it, and fails.
#[test]
fn clean_skips_a_neighbours_dead_working_file() {
    let Some(home) = shared_home(json!({})) else {
        return;
    };
    plant(
        &home.cache_dir().join("tmp").join("ingest-12345-6"),
        b"partial",
        Duration::ZERO,
    );
    let output = clean_as_nobody(&home);
    assert!(output.status.success(), "{}", describe(&output));
}

/// The neighbour has the layer already (`layers/<diff_id>` is theirs: they pulled the same
/// image, or planted any file under that public name). It counts as absent for us, and the
/// commit's rename over their file would fail (EPERM in the sticky directory): the pull fails
/// before downloading, naming the file and its owner (exit 8), instead of after.
#[test]
fn a_neighbours_layer_stops_our_pull_at_once_naming_its_owner() {
    let registry = Registry::plain();
    let Some(home) = shared_home(config_for(&registry)) else {
        return;
    };
    let image = registry.push_test_image("shared/app", "v1", Format::DockerV2, "shared\n");
    let config: Value = serde_json::from_slice(&image.config).expect("config");
    let diff_id = config["rootfs"]["diff_ids"][0].as_str().expect("diff_id");
    plant(
        &home.cache_dir().join("layers").join(diff_id),
        b"their squashfs",
        Duration::ZERO,
    );
    let config_path = home.config_path();
    let output = as_nobody(
        &home,
        &[
            "pull",
            "--config",
            config_path.to_str().expect("UTF-8 path"),
            &format!("docker://{}/shared/app:v1", registry.host()),
        ],
    );
    let failure = expect_failure(&output, "pull over a neighbour's layer");
    assert_eq!(failure.code, Some(8), "{}", failure.stderr);
    assert!(
        failure.error.contains(diff_id) && failure.error.contains("belongs to uid"),
        "{}",
        failure.error
    );
}
