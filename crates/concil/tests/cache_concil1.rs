//! Compatibility of the cache directory with concil 1.0 (Python), both ways.
//!
//! concil 1.0 itself (PyPI `concil==1.0.0`, plus `python-dateutil`, which it imports without
//! declaring it) reads and cleans what we write: its `Store` cache methods run on our cache
//! directory. `CONCIL1_PYTHON` names the Python that has it (default: the venv that
//! `scripts/install-deps.sh` makes, `$CONCIL1_VENV` or `/var/tmp/concil1-venv`).

use std::fs::{self, File};
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use concil::cache::{Cache, CachedLayer};
use concil::digest::Digest;

const DAY: Duration = Duration::from_secs(86_400);
const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// Drives concil 1.0's own cache code. Only its cache methods are called, so the `Store` is
/// made without a registry.
const CONCIL1_SCRIPT: &str = r#"
import json, sys
from pathlib import Path
from concil.store import Store

store = Store.__new__(Store)
store._cache_dir = Path(sys.argv[1])
store._cache_timeout = int(sys.argv[2])
command = sys.argv[3]
if command == "read":
    manifest, config, blob, media_type = sys.argv[4:8]
    print(json.dumps({
        "manifest": store.get_cache("manifest", manifest).decode(),
        "config": store.get_config({"digest": config}),
        "layer": str(store.get_layer({"digest": blob, "mediaType": media_type})),
    }))
elif command == "clean":
    store.cache_cleanup()
elif command == "store_manifest":
    store.store_cache("manifest", sys.argv[5].encode(), sys.argv[4])
else:
    sys.exit("unknown command " + command)
"#;

fn concil1(cache_dir: &Path, timeout: Duration, args: &[&str]) -> String {
    let python = std::env::var("CONCIL1_PYTHON").unwrap_or_else(|_| {
        // Where scripts/install-deps.sh puts it (CONCIL1_VENV, default /var/tmp/concil1-venv).
        let venv =
            std::env::var("CONCIL1_VENV").unwrap_or_else(|_| "/var/tmp/concil1-venv".to_owned());
        format!("{venv}/bin/python")
    });
    let output = Command::new(&python)
        .arg("-c")
        .arg(CONCIL1_SCRIPT)
        .arg(cache_dir)
        .arg(timeout.as_secs().to_string())
        .args(args)
        .output()
        .unwrap_or_else(|error| panic!("cannot run {python}: {error}"));
    assert!(
        output.status.success(),
        "concil 1.0 ({python}; needs `pip install concil==1.0.0 python-dateutil`) failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn digest(byte: u8) -> Digest {
    Digest::parse(&format!("sha256:{}", format!("{byte:02x}").repeat(32))).expect("a digest")
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

#[test]
fn reads_a_cache_that_concil_1_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("cache");
    // As concil 1.0 leaves it: only the three entry directories, its blob symlink (relative,
    // made by `Path.symlink_to(name)`), a layer stored unconverted under its blob digest, and
    // working files of a killed download (`.out`) and of a failed conversion (`.sq`).
    for sub in ["manifest", "config", "layers"] {
        fs::create_dir_all(root.join(sub)).unwrap();
    }
    let (manifest, config) = (digest(0x01), digest(0x02));
    let (diff_id, blob, unconverted) = (digest(0x03), digest(0x04), digest(0x05));
    fs::write(
        root.join("manifest").join(&manifest),
        b"{\"schemaVersion\":2}",
    )
    .unwrap();
    fs::write(root.join("config").join(&config), b"{\"rootfs\":{}}").unwrap();
    let layers = root.join("layers");
    fs::write(layers.join(&diff_id), b"hsqs converted").unwrap();
    symlink(&diff_id, layers.join(&blob)).unwrap();
    fs::write(layers.join(&unconverted), b"encrypted layer").unwrap();
    fs::write(layers.join(format!("{}.out", digest(0x06))), b"partial").unwrap();
    fs::write(layers.join(format!("{}.sq", digest(0x06))), b"partial").unwrap();
    set_age(&layers.join(&diff_id), DAY);

    let cache = Cache::open(&root).unwrap();
    assert_eq!(
        cache.manifest(&manifest).unwrap().as_deref(),
        Some(&b"{\"schemaVersion\":2}"[..])
    );
    assert_eq!(
        cache.config(&config).unwrap().as_deref(),
        Some(&b"{\"rootfs\":{}}"[..])
    );
    assert_eq!(
        cache.layer_by_blob(&blob).unwrap(),
        Some(CachedLayer {
            path: layers.join(&diff_id),
            diff_id: diff_id.clone()
        })
    );
    // Like concil 1.0, a hit through the symlink refreshes the layer file.
    assert!(age_of(&layers.join(&diff_id)) < Duration::from_secs(60));
    assert_eq!(
        cache.layer_by_diff_id(&diff_id).unwrap(),
        Some(layers.join(&diff_id))
    );
    assert_eq!(
        cache.layer_by_blob(&unconverted).unwrap(),
        Some(CachedLayer {
            path: layers.join(&unconverted),
            diff_id: unconverted.clone()
        })
    );
    // A working file is no entry.
    assert_eq!(cache.layer_by_blob(&digest(0x06)).unwrap(), None);
    assert_eq!(cache.layer_by_diff_id(&digest(0x06)).unwrap(), None);

    // What concil 1.0's own code stores is read too.
    let stored = digest(0x07);
    concil1(
        &root,
        DAY,
        &[
            "store_manifest",
            stored.as_str(),
            "{\"from\":\"concil 1.0\"}",
        ],
    );
    assert_eq!(
        cache.manifest(&stored).unwrap().as_deref(),
        Some(&b"{\"from\":\"concil 1.0\"}"[..])
    );
}

#[test]
fn concil_1_reads_and_cleans_what_we_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("cache");
    let cache = Cache::open(&root).unwrap();
    let (manifest, config) = (digest(0x11), digest(0x12));
    let (diff_id, blob) = (digest(0x13), digest(0x14));
    let manifest_path = cache
        .put_manifest(&manifest, b"{\"manifest\":true}")
        .unwrap();
    let config_path = cache
        .put_config(&config, b"{\"architecture\":\"amd64\"}")
        .unwrap();
    let mut ingest = cache.ingest().unwrap();
    std::io::Write::write_all(ingest.file(), b"hsqs layer").unwrap();
    let layer_path = ingest.commit_layer(&diff_id, Some(&blob)).unwrap();
    // Our working files exist while concil 1.0 runs: it must not trip over them.
    let _lock = cache.lock(&digest(0x15)).unwrap();
    let _live_ingest = cache.ingest().unwrap();
    for path in [&manifest_path, &layer_path] {
        set_age(path, 2 * DAY);
    }

    let read = concil1(
        &root,
        DAY,
        &[
            "read",
            manifest.as_str(),
            config.as_str(),
            blob.as_str(),
            LAYER_MEDIA_TYPE,
        ],
    );
    let read: serde_json::Value = serde_json::from_str(&read).unwrap();
    assert_eq!(read["manifest"], "{\"manifest\":true}");
    assert_eq!(read["config"]["architecture"], "amd64");
    assert_eq!(
        Path::new(read["layer"].as_str().unwrap()),
        layer_path.canonicalize().unwrap()
    );
    // concil 1.0 refreshed what it read, as we do.
    assert!(age_of(&manifest_path) < Duration::from_secs(60));
    assert!(age_of(&layer_path) < Duration::from_secs(60));

    // concil 1.0's clean-up removes the old entries and the symlink with its target.
    for path in [&manifest_path, &layer_path] {
        set_age(path, 2 * DAY);
    }
    concil1(&root, DAY, &["clean"]);
    assert!(!manifest_path.exists() && !layer_path.exists());
    assert_eq!(fs::read_dir(root.join("layers")).unwrap().count(), 0);
    assert_eq!(cache.layer_by_blob(&blob).unwrap(), None);
    // The fresh config stays.
    assert!(config_path.is_file());
    assert_eq!(fs::read_dir(root.join("tmp")).unwrap().count(), 1);
    assert_eq!(fs::read_dir(root.join("locks")).unwrap().count(), 1);
}
