//! Images as files: `skopeo copy` writes an image of the real registry as an OCI layout
//! (`oci:`), an OCI archive (`oci-archive:`) and `docker save` output (`docker-archive:`);
//! concil pulls each into the same cache entries a registry pull makes (a later registry pull
//! downloads no layer), checks every blob against its digest, and refuses files that lie:
//! a blob that is not its digest, a missing blob, a path that leaves the archive, a truncated
//! archive, an oversized index.json. Signed files: `pull_files_signed.rs`.

use concil_test_support as support;

use std::error::Error;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};
use support::images::{skopeo_copy, Format, Images, ListKind, PushedImage};
use support::pull::{config_for, run, ConcilHome};
use support::registry::Registry;

type TestResult = Result<(), Box<dyn Error>>;

const NOT_FOUND: i32 = 4;
const CONTENT_INVALID: i32 = 9;

/// The diff_ids `concil pull --json` printed, in order.
fn diff_ids(output: &Value) -> Vec<String> {
    output["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|layer| layer["diff_id"].as_str().expect("diff_id").to_owned())
        .collect()
}

fn expected_diff_ids(image: &PushedImage) -> Vec<String> {
    image
        .layers
        .iter()
        .map(|layer| layer.diff_id.clone())
        .collect()
}

#[test]
fn layouts_and_archives_skopeo_wrote_pull_into_the_registry_pulls_entries() -> TestResult {
    let registry = Registry::plain();
    let images = Images::new(&registry)?;
    let image = images.push_layered("files/layered", "v1", Format::Oci)?;
    let work = tempfile::tempdir()?;
    let layout = work.path().join("layout");
    let archive = work.path().join("image.tar");
    let docker = work.path().join("docker.tar");
    skopeo_copy(
        &image.reference,
        &format!("oci:{}:v1", layout.display()),
        false,
    );
    skopeo_copy(
        &image.reference,
        &format!("oci-archive:{}:v1", archive.display()),
        false,
    );
    skopeo_copy(
        &image.reference,
        &format!("docker-archive:{}:files/layered:v1", docker.display()),
        false,
    );

    for source in [
        format!("oci:{}:v1", layout.display()),
        format!("oci:{}", layout.display()), // the only image: no tag needed
        format!("oci-archive:{}:v1", archive.display()),
        format!("docker-archive:{}", docker.display()),
        format!("docker-archive:{}:files/layered:v1", docker.display()),
        format!("docker-archive:{}:@0", docker.display()),
    ] {
        let home = ConcilHome::new(config_for(&registry));
        let output = home.pull_json(&source, &[]);
        assert_eq!(output["image"], json!(source));
        assert_eq!(diff_ids(&output), expected_diff_ids(&image), "{source}");
        home.assert_layers_match(&image);
        for layer in output["layers"].as_array().expect("layers") {
            let path = layer["path"].as_str().expect("path");
            assert!(path.ends_with(layer["diff_id"].as_str().expect("diff_id")));
        }
        // The same entries a registry pull makes: it downloads no layer.
        let before: Vec<usize> = image
            .layers
            .iter()
            .map(|layer| registry.count_blob_fetches(&layer.digest))
            .collect();
        let from_registry = home.pull_json(&image.reference, &[]);
        assert_eq!(diff_ids(&from_registry), expected_diff_ids(&image));
        let after: Vec<usize> = image
            .layers
            .iter()
            .map(|layer| registry.count_blob_fetches(&layer.digest))
            .collect();
        assert_eq!(
            after, before,
            "{source}: the registry pull found every layer"
        );
        home.assert_no_working_files();
    }
    Ok(())
}

#[test]
fn a_multi_platform_layout_is_pulled_for_the_platform_asked_for() -> TestResult {
    let registry = Registry::plain();
    let images = Images::new(&registry)?;
    let index = images.push_multi_platform("files/multi", "v1", ListKind::OciIndex)?;
    let work = tempfile::tempdir()?;
    let layout = work.path().join("layout");
    skopeo_copy(
        &index.reference,
        &format!("oci:{}:v1", layout.display()),
        true,
    );
    let arm = index.child("linux/arm64/v8").expect("arm64 child");
    let home = ConcilHome::new(config_for(&registry));
    let output = home.pull_json(
        &format!("oci:{}:v1", layout.display()),
        &["--platform", "linux/arm64/v8"],
    );
    assert_eq!(output["manifest_digest"], json!(arm.image.manifest_digest));
    assert_eq!(diff_ids(&output), expected_diff_ids(&arm.image));
    home.assert_layers_match(&arm.image);
    Ok(())
}

/// A copy of `layout` under `dir`, to damage.
fn copy_layout(layout: &Path, dir: &Path) -> PathBuf {
    fs::create_dir_all(dir).expect("a directory for the copy");
    let copy = dir.join("copy");
    let status = Command::new("cp")
        .arg("-a")
        .arg(layout)
        .arg(&copy)
        .status()
        .expect("cp");
    assert!(status.success());
    copy
}

#[test]
fn files_that_lie_are_refused_naming_the_file_and_entry_and_nothing_is_cached() -> TestResult {
    let registry = Registry::plain();
    let images = Images::new(&registry)?;
    let image = images.push_layered("files/hostile", "v1", Format::Oci)?;
    let work = tempfile::tempdir()?;
    let layout = work.path().join("layout");
    skopeo_copy(
        &image.reference,
        &format!("oci:{}:v1", layout.display()),
        false,
    );
    let layer_blob = |layout: &Path| {
        layout
            .join("blobs/sha256")
            .join(image.layers[1].digest.trim_start_matches("sha256:"))
    };

    // A layer blob whose bytes are not its digest.
    let damaged = copy_layout(&layout, &work.path().join("damaged"));
    let mut bytes = fs::read(layer_blob(&damaged))?;
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    fs::write(layer_blob(&damaged), bytes)?;
    let home = ConcilHome::new(config_for(&registry));
    let failure = home.pull_failure(&format!("oci:{}:v1", damaged.display()), &[]);
    assert_eq!(failure.code, Some(CONTENT_INVALID), "{}", failure.stderr);
    assert!(
        failure.error.contains(&image.layers[1].digest),
        "{}",
        failure.error
    );
    assert!(!home
        .cache_dir()
        .join("layers")
        .join(&image.layers[1].diff_id)
        .exists());
    home.assert_no_working_files();

    // A missing blob, a tag the layout lacks.
    let missing = copy_layout(&layout, &work.path().join("missing"));
    fs::remove_file(layer_blob(&missing))?;
    let failure = home.pull_failure(&format!("oci:{}:v1", missing.display()), &[]);
    assert_eq!(failure.code, Some(NOT_FOUND), "{}", failure.stderr);
    assert!(
        failure.error.contains("no blobs/sha256/"),
        "{}",
        failure.error
    );
    let failure = home.pull_failure(&format!("oci:{}:v2", layout.display()), &[]);
    assert_eq!(failure.code, Some(NOT_FOUND));
    assert!(
        failure.error.contains("tagged v2") && failure.error.contains("v1"),
        "{}",
        failure.error
    );

    // An index.json of 5 MB.
    let huge = copy_layout(&layout, &work.path().join("huge"));
    let index = fs::read_to_string(huge.join("index.json"))?;
    fs::write(
        huge.join("index.json"),
        format!("{index}{}", " ".repeat(5 << 20)),
    )?;
    let failure = home.pull_failure(&format!("oci:{}:v1", huge.display()), &[]);
    assert_eq!(failure.code, Some(CONTENT_INVALID));
    assert!(failure.error.contains("index.json"), "{}", failure.error);

    // A truncated archive.
    let archive = work.path().join("image.tar");
    skopeo_copy(
        &image.reference,
        &format!("oci-archive:{}:v1", archive.display()),
        false,
    );
    let length = fs::metadata(&archive)?.len();
    fs::OpenOptions::new()
        .write(true)
        .open(&archive)?
        .set_len(length / 2)?;
    let failure = home.pull_failure(&format!("oci-archive:{}:v1", archive.display()), &[]);
    assert_eq!(failure.code, Some(CONTENT_INVALID), "{}", failure.stderr);
    assert!(failure.error.contains("image.tar"), "{}", failure.error);

    // A docker-archive whose manifest.json names a path outside the archive, or a layer twice.
    for (layers, problem) in [
        (json!(["../../etc/passwd"]), "leaves the archive"),
        (json!(["/etc/passwd"]), "absolute"),
        (json!(["layer.tar", "./layer.tar"]), "named twice"),
    ] {
        let evil = work.path().join("evil.tar");
        let mut builder = tar::Builder::new(fs::File::create(&evil)?);
        let diff_ids = vec![image.layers[0].diff_id.clone(); layers.as_array().map_or(1, Vec::len)];
        let config = serde_json::to_vec(&json!({"rootfs": {"type": "layers",
            "diff_ids": diff_ids}}))?;
        let manifest = serde_json::to_vec(&json!([{"Config": "config.json",
            "RepoTags": ["evil:v1"], "Layers": layers}]))?;
        let layer = fs::read(&image.layers[0].tar)?;
        for (name, bytes) in [
            ("config.json", &config),
            ("manifest.json", &manifest),
            ("layer.tar", &layer),
        ] {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder.append_data(&mut header, name, bytes.as_slice())?;
        }
        builder.finish()?;
        drop(builder);
        let failure = home.pull_failure(&format!("docker-archive:{}", evil.display()), &[]);
        assert_eq!(failure.code, Some(CONTENT_INVALID), "{}", failure.stderr);
        assert!(
            failure.error.contains("manifest.json") && failure.error.contains(problem),
            "{}",
            failure.error
        );
    }
    // The intact layers of the damaged layout were kept (each checked out); nothing else.
    assert!(!home
        .cache_dir()
        .join("layers")
        .join(&image.layers[1].diff_id)
        .exists());
    home.assert_no_working_files();
    Ok(())
}

#[test]
fn inspect_reads_a_layout_without_converting_a_layer() -> TestResult {
    let registry = Registry::plain();
    let images = Images::new(&registry)?;
    let image = images.push_layered("files/inspect", "v1", Format::Oci)?;
    let work = tempfile::tempdir()?;
    let archive = work.path().join("image.tar");
    skopeo_copy(
        &image.reference,
        &format!("oci-archive:{}:v1", archive.display()),
        false,
    );
    let home = ConcilHome::new(config_for(&registry));
    let output = run(home
        .concil()
        .args(["inspect", "--json", "--config"])
        .arg(home.config_path())
        .arg(format!("oci-archive:{}:v1", archive.display())));
    assert!(output.status.success(), "{output:?}");
    let summary: Value = serde_json::from_slice(&output.stdout)?;
    let layers: Vec<&str> = summary["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .filter_map(|layer| layer["diff_id"].as_str())
        .collect();
    assert_eq!(layers, expected_diff_ids(&image));
    assert!(home.listing("layers").is_empty());
    Ok(())
}

/// Runs a command that must succeed.
fn must(command: &mut Command) {
    let output = command.output().expect("run a tool");
    assert!(
        output.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn a_layout_umoci_built_and_zstd_layers_pull() -> TestResult {
    // umoci: a layout of its own making, one layer with a file the test knows.
    let work = tempfile::tempdir()?;
    let layout = work.path().join("umoci");
    let bundle = work.path().join("bundle");
    must(
        Command::new("umoci")
            .args(["init", "--layout"])
            .arg(&layout),
    );
    must(
        Command::new("umoci")
            .args(["new", "--image"])
            .arg(format!("{}:v1", layout.display())),
    );
    must(
        Command::new("umoci")
            .args(["unpack", "--rootless", "--image"])
            .arg(format!("{}:v1", layout.display()))
            .arg(&bundle),
    );
    fs::create_dir_all(bundle.join("rootfs/etc"))?;
    fs::write(bundle.join("rootfs/etc/made-by"), "umoci\n")?;
    must(
        Command::new("umoci")
            .args(["repack", "--image"])
            .arg(format!("{}:v1", layout.display()))
            .arg(&bundle),
    );
    let registry = Registry::plain();
    let home = ConcilHome::new(config_for(&registry));
    let output = home.pull_json(&format!("oci:{}:v1", layout.display()), &[]);
    let squashfs = output["layers"][0]["path"].as_str().expect("a layer");
    let listing = Command::new("unsquashfs")
        .args(["-lc"])
        .arg(squashfs)
        .output()?;
    assert!(
        String::from_utf8_lossy(&listing.stdout).contains("etc/made-by"),
        "{}",
        String::from_utf8_lossy(&listing.stdout)
    );

    // zstd layers, as skopeo copies them.
    let images = Images::new(&registry)?;
    let zstd = images.push_layered_zstd("files/zstd", "v1")?;
    let zstd_layout = work.path().join("zstd");
    skopeo_copy(
        &zstd.reference,
        &format!("oci:{}:v1", zstd_layout.display()),
        false,
    );
    let output = home.pull_json(&format!("oci:{}:v1", zstd_layout.display()), &[]);
    assert_eq!(diff_ids(&output), expected_diff_ids(&zstd));
    home.assert_layers_match(&zstd);
    Ok(())
}

/// What `docker save` writes since Docker 25: an OCI layout (uncompressed layer blobs) and the
/// classic manifest.json naming those blobs, in one tar. Built here from skopeo's layout.
#[test]
fn a_docker_25_archive_pulls_as_docker_archive_and_as_oci_archive() -> TestResult {
    let registry = Registry::plain();
    let images = Images::new(&registry)?;
    let image = images.push_layered("files/docker25", "v1", Format::Oci)?;
    let work = tempfile::tempdir()?;
    let root = work.path().join("docker25");
    let blobs = root.join("blobs/sha256");
    fs::create_dir_all(&blobs)?;
    let config_bytes = {
        let layout = work.path().join("layout");
        skopeo_copy(
            &image.reference,
            &format!("oci:{}:v1", layout.display()),
            false,
        );
        fs::read(
            layout
                .join("blobs/sha256")
                .join(image.config_digest.trim_start_matches("sha256:")),
        )?
    };
    let hex = |digest: &str| digest.trim_start_matches("sha256:").to_owned();
    fs::write(blobs.join(hex(&image.config_digest)), &config_bytes)?;
    let mut layer_paths = Vec::new();
    let mut descriptors = Vec::new();
    for layer in &image.layers {
        // Uncompressed: the blob digest is the diff_id.
        fs::copy(&layer.tar, blobs.join(hex(&layer.diff_id)))?;
        layer_paths.push(format!("blobs/sha256/{}", hex(&layer.diff_id)));
        descriptors.push(
            json!({"mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": layer.diff_id, "size": fs::metadata(&layer.tar)?.len()}),
        );
    }
    let manifest = serde_json::to_vec(&json!({"schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": image.config_digest, "size": config_bytes.len()},
        "layers": descriptors}))?;
    let manifest_digest = support::sha256_digest(&manifest);
    fs::write(blobs.join(hex(&manifest_digest)), &manifest)?;
    fs::write(
        root.join("index.json"),
        serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest, "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": "v1",
                            "io.containerd.image.name": "docker.io/files/docker25:v1"}}]}))?,
    )?;
    fs::write(
        root.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;
    fs::write(
        root.join("manifest.json"),
        serde_json::to_vec(
            &json!([{"Config": format!("blobs/sha256/{}", hex(&image.config_digest)),
            "RepoTags": ["files/docker25:v1"], "Layers": layer_paths}]),
        )?,
    )?;
    let archive = work.path().join("docker25.tar");
    must(
        Command::new("tar")
            .arg("-cf")
            .arg(&archive)
            .arg("-C")
            .arg(&root)
            .arg("."),
    );

    for source in [
        format!("docker-archive:{}:files/docker25:v1", archive.display()),
        format!("oci-archive:{}:v1", archive.display()),
    ] {
        let home = ConcilHome::new(config_for(&registry));
        let output = home.pull_json(&source, &[]);
        assert_eq!(diff_ids(&output), expected_diff_ids(&image), "{source}");
        home.assert_layers_match(&image);
    }
    Ok(())
}
