//! `concil pull` and the cache: a warm pull downloads nothing again, concurrent processes
//! share one cold cache and fetch each blob once, a pull killed mid-download leaves nothing
//! final behind and the next one succeeds, and `concil cache clean` removes what it should.

use concil_test_support as support;

use std::collections::BTreeMap;
use std::error::Error;
use std::process::Stdio;
use std::time::{Duration, Instant};

use concil::store::Platform;
use serde_json::json;
use support::images::{Format, Images, PushedImage};
use support::proxy::{BlobFault, Fault, Proxy};
use support::pull::{config_for, wait_with_limit, CacheEntry, ConcilHome, Pulled, COMMAND_LIMIT};
use support::registry::Registry;

type TestResult = Result<(), Box<dyn Error>>;

/// Every blob of `image`, labelled (`config sha256:…`, `layer 2 sha256:…`), with its digest.
fn blobs(image: &PushedImage) -> Vec<(String, &str)> {
    std::iter::once((
        format!("config {}", image.config_digest),
        image.config_digest.as_str(),
    ))
    .chain(image.layers.iter().enumerate().map(|(index, layer)| {
        (
            format!("layer {index} {}", layer.digest),
            layer.digest.as_str(),
        )
    }))
    .collect()
}

/// How many times the registry served each blob of `image`.
fn blob_fetches(registry: &Registry, image: &PushedImage) -> BTreeMap<String, usize> {
    blobs(image)
        .into_iter()
        .map(|(label, digest)| (label, registry.count_blob_fetches(digest)))
        .collect()
}

/// Every blob of `image` served exactly `times` times.
fn each_blob(image: &PushedImage, times: usize) -> BTreeMap<String, usize> {
    blobs(image)
        .into_iter()
        .map(|(label, _)| (label, times))
        .collect()
}

#[test]
fn warm_pull_downloads_nothing_again() -> TestResult {
    let registry = Registry::plain();
    let images = Images::new(&registry)?;
    let image = images.push_layered("cache/warm", "v1", Format::Oci)?;
    let home = ConcilHome::new(config_for(&registry));
    let platform = Platform::new("linux", "amd64", None);

    let cold = home.store(&image.reference).pull(&platform)?;
    assert_eq!(blob_fetches(&registry, &image), each_blob(&image, 1));
    home.assert_holds_image(&image);

    // A new store (as a new process would make) over the same cache.
    let warm = home.store(&image.reference).pull(&platform)?;

    assert_eq!(blob_fetches(&registry, &image), each_blob(&image, 1));
    assert_eq!(Pulled::from_library(&warm), Pulled::from_library(&cold));
    assert_eq!(
        Pulled::from_library(&warm),
        Pulled::expected(&image, "linux/amd64", &home)
    );
    home.assert_holds_image(&image);
    Ok(())
}

#[test]
fn same_layers_compressed_another_way_are_not_downloaded_again() -> TestResult {
    let registry = Registry::plain();
    let images = Images::new(&registry)?;
    let gzip = images.push_layered("cache/gzip", "v1", Format::Oci)?;
    let zstd = images.push_layered_zstd("cache/zstd", "v1")?;
    let diff_ids = |image: &PushedImage| {
        image
            .layers
            .iter()
            .map(|l| l.diff_id.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        diff_ids(&gzip),
        diff_ids(&zstd),
        "the same tars, compressed two ways"
    );
    let home = ConcilHome::new(config_for(&registry));
    let platform = Platform::new("linux", "amd64", None);

    let first = home.store(&gzip.reference).pull(&platform)?;
    let second = home.store(&zstd.reference).pull(&platform)?;

    for layer in &zstd.layers {
        assert_eq!(
            registry.count_blob_fetches(&layer.digest),
            0,
            "{} fetched",
            layer.digest
        );
    }
    let paths = |pulled: &concil::store::PulledImage| {
        pulled
            .layers
            .iter()
            .map(|l| l.path.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(paths(&first), paths(&second));
    // One squashfs file per diff_id, linked from the blob that was downloaded; the zstd
    // blobs were never downloaded, so nothing in the cache claims what they hash to.
    let layers = home.cache_dir().join("layers");
    for layer in &gzip.layers {
        let target = std::fs::read_link(layers.join(&layer.digest))?;
        assert_eq!(
            target,
            std::path::PathBuf::from(&layer.diff_id),
            "{}",
            layer.digest
        );
        assert!(layers.join(&layer.diff_id).is_file());
    }
    for layer in &zstd.layers {
        assert!(
            std::fs::symlink_metadata(layers.join(&layer.digest)).is_err(),
            "{} linked without a download",
            layer.digest
        );
    }
    Ok(())
}

#[test]
fn two_concurrent_pulls_share_a_cold_cache() -> TestResult {
    concurrent_pulls(2)
}

#[test]
fn eight_concurrent_pulls_share_a_cold_cache() -> TestResult {
    concurrent_pulls(8)
}

/// `processes` `concil pull` processes started together on one cold cache all succeed with
/// the same output, and the registry serves each blob once.
fn concurrent_pulls(processes: usize) -> TestResult {
    let registry = Registry::plain();
    let repo = format!("cache/concurrent-{processes}");
    let images = Images::new(&registry)?;
    let image = images.push_layered(&repo, "v1", Format::Docker)?;
    let home = ConcilHome::new(config_for(&registry));

    let children = (0..processes)
        .map(|_| {
            home.pull_command(&image.reference, &[])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
        })
        .collect::<Result<Vec<_>, _>>()?;
    let outputs: Vec<_> = children
        .into_iter()
        .map(|child| wait_with_limit(child, COMMAND_LIMIT))
        .collect();

    for output in &outputs {
        assert!(
            output.status.success(),
            "a concurrent pull failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    // The same, but for each layer's `source` ("cache" for the pulls that waited on another's
    // download).
    let parsed: Vec<serde_json::Value> = outputs
        .iter()
        .map(|output| serde_json::from_slice(&output.stdout))
        .collect::<Result<_, _>>()?;
    for output in &parsed {
        assert_eq!(
            support::pull::without_sources(output),
            support::pull::without_sources(&parsed[0]),
            "all outputs are the same"
        );
    }
    let first: serde_json::Value = serde_json::from_slice(&outputs[0].stdout)?;
    assert_eq!(
        Pulled::from_json(&first, &image.reference),
        Pulled::expected(&image, "linux/amd64", &home)
    );
    assert_eq!(blob_fetches(&registry, &image), each_blob(&image, 1));
    home.assert_holds_image(&image);
    Ok(())
}

/// SIGKILL while the layer is mid-download (a throttling proxy makes it slow): nothing final
/// appears, the next pull succeeds with the right content, and `cache clean` removes the dead
/// process's working file while keeping the fresh layer.
#[test]
fn pull_killed_mid_download_leaves_nothing_and_next_pull_succeeds() -> TestResult {
    let registry = Registry::plain();
    let images = Images::new(&registry)?;
    let image = images.push_busybox("cache/killed", "v1", Format::Docker)?;
    let layer = &image.layers[0];
    let proxy = Proxy::start("127.0.0.1:0", &registry.host())?;
    // Slow enough that the download cannot finish before the kill (~1 MB at 64 KiB/s).
    proxy.set_fault(Some(BlobFault {
        fault: Fault::Throttle {
            bytes_per_sec: 64 * 1024,
        },
        digest: Some(layer.digest.clone()),
        times: Some(1),
    }));
    let mut config = config_for(&registry);
    config["remote_servers"] =
        json!({registry.host(): {"registry": format!("http://{}", proxy.addr())}});
    let home = ConcilHome::new(config);

    let mut child = home
        .pull_command(&image.reference, &[])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while proxy.faulted_responses() == 0 || home.listing("tmp").is_empty() {
        assert!(Instant::now() < deadline, "the download did not start");
        assert!(child.try_wait()?.is_none(), "concil ended before the kill");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(1));
    assert!(child.try_wait()?.is_none(), "concil ended before the kill");
    child.kill()?; // SIGKILL: no destructor, no clean-up runs
    child.wait()?;

    assert_eq!(
        home.listing("layers"),
        BTreeMap::new(),
        "nothing final in layers/"
    );
    let leftovers = home.listing("tmp");
    assert!(
        !leftovers.is_empty() && leftovers.values().all(|entry| *entry == CacheEntry::File),
        "the killed pull's working file stays in tmp/: {leftovers:?}"
    );

    proxy.set_fault(None);
    let output = home.pull_json(&image.reference, &[]);
    assert_eq!(
        Pulled::from_json(&output, &image.reference),
        Pulled::expected(&image, "linux/amd64", &home)
    );
    assert_eq!(
        home.listing("tmp"),
        leftovers,
        "a pull leaves others' files alone"
    );

    // Not old enough to go by age: only the dead writer's file goes.
    let report = home.clean(Duration::from_secs(3600));
    assert!(
        report.starts_with(&format!("removed {} files", leftovers.len())),
        "{report}"
    );
    home.assert_holds_image(&image);
    Ok(())
}

#[test]
fn cache_clean_removes_layers_and_their_symlinks() -> TestResult {
    let registry = Registry::plain();
    let images = Images::new(&registry)?;
    let image = images.push_busybox("cache/clean", "v1", Format::Docker)?;
    let home = ConcilHome::new(config_for(&registry));
    home.pull_json(&image.reference, &[]);
    home.assert_holds_image(&image);
    let squashfs = home
        .cache_dir()
        .join("layers")
        .join(&image.layers[0].diff_id);
    let bytes: u64 = [
        home.cache_dir()
            .join("manifest")
            .join(&image.manifest_digest),
        home.cache_dir().join("config").join(&image.config_digest),
        squashfs,
    ]
    .into_iter()
    // and the image's record
    .chain(
        std::fs::read_dir(home.cache_dir().join("images"))?
            .map(|entry| entry.expect("record").path()),
    )
    .map(|path| std::fs::metadata(path).map(|m| m.len()))
    .sum::<Result<u64, _>>()?;

    let report = home.clean(Duration::ZERO);

    // the record, manifest, config, squashfs file and its blob symlink
    assert_eq!(report.trim(), format!("removed 5 files, {bytes} bytes"));
    for subdir in ["manifest", "config", "layers", "images", "checksums", "tmp"] {
        assert_eq!(
            home.listing(subdir),
            BTreeMap::new(),
            "{subdir}/ after clean"
        );
    }

    let output = home.pull_json(&image.reference, &[]);
    assert_eq!(
        Pulled::from_json(&output, &image.reference),
        Pulled::expected(&image, "linux/amd64", &home)
    );
    home.assert_holds_image(&image);
    assert_eq!(registry.count_blob_fetches(&image.layers[0].digest), 2);
    Ok(())
}

/// The library's clean-up goes by the configured `cache_timeout`.
#[test]
fn store_cache_cleanup_follows_cache_timeout() -> TestResult {
    let registry = Registry::plain();
    let images = Images::new(&registry)?;
    let image = images.push_busybox("cache/timeout", "v1", Format::Oci)?;
    let mut config = config_for(&registry);
    config["cache_timeout"] = json!(3600);
    let home = ConcilHome::new(config.clone());
    let store = home.store(&image.reference);
    store.pull(&Platform::host())?;

    let kept = store.cache_cleanup()?;
    assert_eq!(kept.removed_files, 0);
    home.assert_holds_image(&image);

    config["cache_timeout"] = json!(0);
    home.rewrite_config(config);
    let removed = home.store(&image.reference).cache_cleanup()?;
    assert_eq!(
        removed.removed_files, 5,
        "record, manifest, config, layer, symlink"
    );
    for subdir in ["manifest", "config", "layers", "images", "checksums"] {
        assert_eq!(
            home.listing(subdir),
            BTreeMap::new(),
            "{subdir}/ after clean-up"
        );
    }
    Ok(())
}
