//! `concil pull` of every kind of image a real registry serves, through the library and the
//! CLI: Docker schema 2, OCI, tar+zstd layers, a three-layer image with whiteouts, hard links
//! and symlinks, and multi-platform OCI indexes and Docker manifest lists. Each pull is checked
//! against what was pushed: the result field by field, the cache layout, and every layer's
//! squashfs read back with `sqfs2tar` against the layer's tar.

use concil_test_support as support;

use std::error::Error;

use concil::store::Platform;
use support::images::{
    Format, Images, ListKind, PushedIndex, DOCKER_LAYER_GZIP, OCI_LAYER_GZIP, OCI_LAYER_ZSTD,
    PLATFORM_MARKER,
};
use support::pull::{config_for, differences, Bytes, ConcilHome, Kind, Pulled, Tree};
use support::registry::Registry;

type TestResult = Result<(), Box<dyn Error>>;

/// The platform every single-platform test image is built for (umoci's default).
const IMAGE_PLATFORM: &str = "linux/amd64";

#[test]
fn cli_pulls_docker_schema2_image() -> TestResult {
    let registry = Registry::plain();
    let images = Images::new(&registry)?;
    let image = images.push_busybox("demo/busybox", "v1", Format::Docker)?;
    assert!(image
        .layers
        .iter()
        .all(|l| l.media_type == DOCKER_LAYER_GZIP));
    let home = ConcilHome::new(config_for(&registry));

    let output = home.pull_json(&image.reference, &[]);

    assert_eq!(
        Pulled::from_json(&output, &image.reference),
        Pulled::expected(&image, IMAGE_PLATFORM, &home)
    );
    home.assert_holds_image(&image);
    Ok(())
}

#[test]
fn library_pulls_oci_image() -> TestResult {
    let registry = Registry::plain();
    let images = Images::new(&registry)?;
    let image = images.push_busybox("demo/busybox-oci", "v1", Format::Oci)?;
    assert!(image.layers.iter().all(|l| l.media_type == OCI_LAYER_GZIP));
    let home = ConcilHome::new(config_for(&registry));
    let store = home.store(&image.reference);

    let pulled = store.pull(&Platform::new("linux", "amd64", None))?;

    assert_eq!(
        Pulled::from_library(&pulled),
        Pulled::expected(&image, IMAGE_PLATFORM, &home)
    );
    home.assert_holds_image(&image);
    Ok(())
}

/// The pipeline's steps one by one: `manifest`, `config`, `layer` give what `pull` would.
#[test]
fn library_steps_resolve_manifest_config_and_layer() -> TestResult {
    let registry = Registry::plain();
    let images = Images::new(&registry)?;
    let image = images.push_busybox("demo/steps", "v1", Format::Oci)?;
    let home = ConcilHome::new(config_for(&registry));
    let store = home.store(&image.reference);

    let resolved = store.manifest(&Platform::host())?;
    assert_eq!(resolved.digest, image.manifest_digest);
    assert_eq!(resolved.media_type, image.manifest_media_type);
    assert_eq!(
        resolved.manifest.config().digest().to_string(),
        image.config_digest
    );

    let config = store.config(&resolved)?;
    let diff_ids: Vec<&str> = image.layers.iter().map(|l| l.diff_id.as_str()).collect();
    assert_eq!(config.rootfs.diff_ids, diff_ids);
    assert_eq!(
        (config.os.as_str(), config.architecture.as_str()),
        ("linux", "amd64")
    );

    let [descriptor] = resolved.manifest.layers().as_slice() else {
        panic!("busybox has one layer: {:?}", resolved.manifest.layers());
    };
    let path = store.layer(&resolved, descriptor, &config.rootfs.diff_ids[0])?;
    assert_eq!(
        path,
        home.cache_dir()
            .join("layers")
            .join(&image.layers[0].diff_id)
    );
    home.assert_holds_image(&image);
    Ok(())
}

/// Three layers: deletions as `.wh.` files, an opaque directory, hard links, symlinks, setuid
/// and an xattr, each kept in its own layer's squashfs.
#[test]
fn cli_pulls_three_layer_image_with_whiteouts_and_links() -> TestResult {
    let registry = Registry::plain();
    let images = Images::new(&registry)?;
    let image = images.push_layered("demo/layered", "v1", Format::Docker)?;
    assert_eq!(image.layers.len(), 3);
    let home = ConcilHome::new(config_for(&registry));

    let output = home.pull_json(&image.reference, &[]);

    assert_eq!(
        Pulled::from_json(&output, &image.reference),
        Pulled::expected(&image, IMAGE_PLATFORM, &home)
    );
    home.assert_holds_image(&image);

    // What the generic comparison covers, named: these are what the layers exist for.
    let layer = |index: usize| {
        let diff_id = &image.layers[index].diff_id;
        Tree::from_squashfs(&home.cache_dir().join("layers").join(diff_id))
    };
    let second = layer(1);
    for whiteout in ["data/.wh.remove-me", "data/.wh.removed-dir"] {
        let node = second.get(whiteout);
        assert!(
            matches!(node.map(|n| &n.kind), Some(Kind::File { size: 0, .. })),
            "{whiteout} is kept as an empty file: {node:?}"
        );
    }
    assert!(second
        .hard_links
        .contains(&["data/hard-a", "data/hard-b"].map(Bytes::from).into()));
    assert_eq!(
        second.get("data/relative-link").map(|n| &n.kind),
        Some(&Kind::Symlink("keep".into()))
    );
    assert_eq!(
        second.get("data/dangling-link").map(|n| &n.kind),
        Some(&Kind::Symlink("/does/not/exist".into()))
    );
    assert_eq!(second.get("bin/suid-tool").map(|n| n.mode), Some(0o4755));
    assert_eq!(
        second
            .get("data/xattr-file")
            .and_then(|n| n.xattrs.get(&Bytes::from("user.concil.test"))),
        Some(&Bytes(b"layer 2".to_vec()))
    );
    let third = layer(2);
    assert!(
        matches!(
            third.get("opq/.wh..wh..opq").map(|n| &n.kind),
            Some(Kind::File { size: 0, .. })
        ),
        "the opaque marker is kept as an empty file"
    );
    assert!(third.get("opq/old").is_none());
    Ok(())
}

/// The same three layers compressed with zstd: same diff_ids, same squashfs content.
#[test]
fn cli_pulls_tar_zstd_layers() -> TestResult {
    let registry = Registry::plain();
    let images = Images::new(&registry)?;
    let image = images.push_layered_zstd("demo/zstd", "v1")?;
    assert!(image.layers.iter().all(|l| l.media_type == OCI_LAYER_ZSTD));
    let home = ConcilHome::new(config_for(&registry));

    let output = home.pull_json(&image.reference, &[]);

    assert_eq!(
        Pulled::from_json(&output, &image.reference),
        Pulled::expected(&image, IMAGE_PLATFORM, &home)
    );
    home.assert_holds_image(&image);
    Ok(())
}

#[test]
fn cli_selects_platform_from_oci_index() -> TestResult {
    let registry = Registry::plain();
    let images = Images::new(&registry)?;
    let index = images.push_multi_platform("demo/multi", "v1", ListKind::OciIndex)?;
    assert!(index.attestation_digest.is_some());
    check_platform_selection(&registry, &index);
    Ok(())
}

#[test]
fn cli_selects_platform_from_docker_manifest_list() -> TestResult {
    let registry = Registry::plain();
    let images = Images::new(&registry)?;
    let index = images.push_multi_platform("demo/multi", "v1", ListKind::DockerList)?;
    check_platform_selection(&registry, &index);
    Ok(())
}

/// `--platform linux/arm64` and `linux/arm64/v8` get the arm64 child, no `--platform` the
/// host's, `linux/amd64` the amd64 child; `linux/s390x` fails naming what the list offers
/// (images only: not the attestation's `unknown/unknown`).
fn check_platform_selection(registry: &Registry, index: &PushedIndex) {
    let child = |platform: &str| {
        &index
            .child(platform)
            .unwrap_or_else(|| panic!("the list has a {platform} child"))
            .image
    };
    let arm64 = child("linux/arm64/v8");
    let amd64 = child("linux/amd64");
    let host = match Platform::host().architecture.as_str() {
        "arm64" => arm64,
        _ => amd64,
    };

    let home = ConcilHome::new(config_for(registry));
    let output = home.pull_json(&index.reference, &["--platform", "linux/arm64"]);
    // The child's config names no variant: linux/arm64.
    assert_eq!(
        Pulled::from_json(&output, &index.reference),
        Pulled::expected(arm64, "linux/arm64", &home)
    );
    home.assert_cache_holds(
        &[&index.manifest_digest, &arm64.manifest_digest],
        &[&arm64.config_digest],
        &[(&arm64.layers[0].digest, &arm64.layers[0].diff_id)],
    );
    home.assert_layers_match(arm64);
    // The content says arm64 too, and the comparison would have told the amd64 child apart.
    let squashfs = Tree::from_squashfs(
        &home
            .cache_dir()
            .join("layers")
            .join(&arm64.layers[0].diff_id),
    );
    let marker = b"linux/arm64/v8\n";
    assert_eq!(
        squashfs.get(PLATFORM_MARKER).map(|n| &n.kind),
        Some(&Kind::file(marker))
    );
    let against_amd64 = differences(&Tree::from_tar_file(&amd64.layers[0].tar), &squashfs);
    assert!(
        against_amd64
            .iter()
            .any(|line| line.starts_with(&format!("{PLATFORM_MARKER}:"))),
        "the arm64 layer differs from the amd64 tar in {PLATFORM_MARKER}: {against_amd64:?}"
    );
    let again = home.pull_json(&index.reference, &["--platform", "linux/arm64/v8"]);
    assert_eq!(
        support::pull::without_sources(&again),
        support::pull::without_sources(&output),
        "linux/arm64/v8 is linux/arm64"
    );

    for (arguments, expected, platform) in [
        (
            &[][..],
            host,
            if std::ptr::eq(host, arm64) {
                "linux/arm64"
            } else {
                "linux/amd64"
            },
        ),
        (&["--platform", "linux/amd64"][..], amd64, "linux/amd64"),
    ] {
        let home = ConcilHome::new(config_for(registry));
        let output = home.pull_json(&index.reference, arguments);
        assert_eq!(
            Pulled::from_json(&output, &index.reference),
            Pulled::expected(expected, platform, &home),
            "pull {arguments:?}"
        );
        home.assert_cache_holds(
            &[&index.manifest_digest, &expected.manifest_digest],
            &[&expected.config_digest],
            &[(&expected.layers[0].digest, &expected.layers[0].diff_id)],
        );
        home.assert_layers_match(expected);
    }

    let home = ConcilHome::new(config_for(registry));
    let error = home
        .pull_failure(&index.reference, &["--platform", "linux/s390x"])
        .error;
    for wanted in ["linux/s390x", "linux/arm64", "linux/amd64"] {
        assert!(error.contains(wanted), "{wanted} in: {error}");
    }
    assert!(
        !error.contains("unknown"),
        "the attestation is no image: {error}"
    );
    home.assert_no_layers();
    assert!(home.listing("config").is_empty(), "no config was needed");
}

#[test]
fn single_platform_image_for_another_platform_pulls_with_a_warning() -> TestResult {
    let registry = Registry::plain();
    let images = Images::new(&registry)?;
    let image = images.push_busybox("demo/amd64-only", "v1", Format::Docker)?;
    let home = ConcilHome::new(config_for(&registry));

    let matching = support::pull::run(
        &mut home.pull_command(&image.reference, &["--platform", IMAGE_PLATFORM]),
    );
    assert!(matching.status.success());
    assert!(!String::from_utf8_lossy(&matching.stderr).contains("WARN"));

    let other = support::pull::run(
        &mut home.pull_command(&image.reference, &["--platform", "linux/arm64"]),
    );
    let stderr = String::from_utf8_lossy(&other.stderr);
    assert!(other.status.success(), "{stderr}");
    assert!(
        stderr.contains("WARN") && stderr.contains("linux/amd64") && stderr.contains("linux/arm64"),
        "{stderr}"
    );
    let output: serde_json::Value = serde_json::from_slice(&other.stdout)?;
    assert_eq!(output["platform"], IMAGE_PLATFORM);
    Ok(())
}

/// The library example (`examples/pull.rs`, built by `cargo test`) pulls two images through
/// one store and prints each one's layer paths.
#[test]
fn the_library_example_pulls_images() -> TestResult {
    let registry = Registry::plain();
    let images = Images::new(&registry)?;
    let first = images.push_busybox("example/first", "v1", Format::Docker)?;
    let second = images.push_layered("example/second", "v1", Format::Oci)?;
    let home = ConcilHome::new(config_for(&registry));
    let example = std::env::current_exe()?
        .parent()
        .and_then(|deps| deps.parent())
        .ok_or("target directory")?
        .join("examples/pull");
    assert!(
        example.exists(),
        "{} is missing: `cargo test` builds the examples, `cargo test --test pull_images` alone \
         does not (run `cargo build --examples` first)",
        example.display()
    );
    let output = support::pull::run(
        std::process::Command::new(&example)
            .arg("--config")
            .arg(home.config_path())
            .arg(&first.reference)
            .arg(&second.reference),
    );
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout)?;
    for image in [&first, &second] {
        assert!(stdout.contains(&image.manifest_digest), "{stdout}");
        for layer in &image.layers {
            let path = home.cache_dir().join("layers").join(&layer.diff_id);
            assert!(stdout.contains(&*path.display().to_string()), "{stdout}");
        }
    }
    home.assert_layers_match(&first);
    home.assert_layers_match(&second);
    Ok(())
}
