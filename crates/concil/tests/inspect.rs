//! `concil inspect` against the real registry: the digest and media type a reference resolves
//! to, an index's platforms, the layers and config summary, `--raw` and `--image-config` byte
//! for byte; no layer blob is downloaded.

use concil_test_support as support;

use std::error::Error;
use std::process::Output;

use serde_json::{json, Value};
use support::images::{Format, Images, ListKind};
use support::pull::{config_for, expect_failure, run, ConcilHome};
use support::registry::Registry;

type TestResult = Result<(), Box<dyn Error>>;

fn inspect(home: &ConcilHome, image: &str, extra: &[&str]) -> Output {
    run(home
        .concil()
        .args(["inspect", "--config"])
        .arg(home.config_path())
        .args(extra)
        .arg(image))
}

fn inspect_ok(home: &ConcilHome, image: &str, extra: &[&str]) -> Vec<u8> {
    let output = inspect(home, image, extra);
    assert!(
        output.status.success(),
        "concil inspect {extra:?} failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

#[test]
fn an_image_is_described_without_downloading_a_layer() -> TestResult {
    let registry = Registry::plain();
    let images = Images::new(&registry)?;
    let image = images.push_layered("inspect/layered", "v1", Format::Docker)?;
    let home = ConcilHome::new(config_for(&registry));

    let summary: Value = serde_json::from_slice(&inspect_ok(&home, &image.reference, &["--json"]))?;
    assert_eq!(summary["digest"], json!(image.manifest_digest));
    assert_eq!(summary["manifest_digest"], json!(image.manifest_digest));
    assert_eq!(summary["media_type"], json!(image.manifest_media_type));
    assert_eq!(summary["config_digest"], json!(image.config_digest));
    assert_eq!(summary["platform"], "linux/amd64");
    assert_eq!(summary["platforms"], json!([]));
    assert_eq!(summary["verified"], "none");
    let layers: Vec<(String, String, u64)> = summary["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|layer| {
            (
                layer["digest"].as_str().unwrap_or_default().to_owned(),
                layer["diff_id"].as_str().unwrap_or_default().to_owned(),
                layer["size"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    let pushed: Vec<(String, String, u64)> = image
        .layers
        .iter()
        .map(|layer| (layer.digest.clone(), layer.diff_id.clone(), layer.size))
        .collect();
    assert_eq!(layers, pushed);
    assert!(summary["created"].is_string(), "{summary}");

    let raw = inspect_ok(&home, &image.reference, &["--raw"]);
    assert_eq!(raw, image.manifest, "the manifest exactly as served");
    let config = inspect_ok(&home, &image.reference, &["--image-config"]);
    assert_eq!(support::sha256_digest(&config), image.config_digest);

    let text = String::from_utf8(inspect_ok(&home, &image.reference, &[]))?;
    assert_eq!(
        text.lines()
            .filter(|line| line.starts_with("layer:"))
            .count(),
        3,
        "{text}"
    );
    assert!(text.contains(&image.manifest_digest), "{text}");

    for layer in &image.layers {
        assert_eq!(
            registry.count_blob_fetches(&layer.digest),
            0,
            "no layer downloaded"
        );
    }
    assert!(home.listing("layers").is_empty());
    Ok(())
}

#[test]
fn an_index_lists_its_platforms_and_shows_the_one_asked_for() -> TestResult {
    let registry = Registry::plain();
    let images = Images::new(&registry)?;
    let index = images.push_multi_platform("inspect/multi", "v1", ListKind::OciIndex)?;
    let home = ConcilHome::new(config_for(&registry));
    let arm = index.child("linux/arm64/v8").expect("arm64 child");

    let summary: Value = serde_json::from_slice(&inspect_ok(
        &home,
        &index.reference,
        &["--json", "--platform", "linux/arm64/v8"],
    ))?;
    assert_eq!(summary["digest"], json!(index.manifest_digest));
    assert_eq!(summary["media_type"], json!(index.media_type));
    assert_eq!(summary["manifest_digest"], json!(arm.image.manifest_digest));
    // From the child's config, which (as umoci writes it) names no variant.
    assert_eq!(summary["platform"], "linux/arm64");
    let platforms: Vec<&str> = summary["platforms"]
        .as_array()
        .expect("platforms")
        .iter()
        .filter_map(|entry| entry["platform"].as_str())
        .collect();
    // In the index's order, normalised as --platform matches them (arm64/v8 is arm64), the
    // attestation manifest included as the index lists it.
    assert_eq!(
        platforms,
        ["linux/arm64", "linux/amd64", "unknown/unknown"],
        "{summary}"
    );
    assert_eq!(
        inspect_ok(&home, &index.reference, &["--raw"]),
        index.manifest,
        "--raw prints the index as served"
    );

    let failure = expect_failure(
        &inspect(&home, &index.reference, &["--platform", "linux/s390x"]),
        "inspect for a platform the index lacks",
    );
    assert_eq!(failure.code, Some(4), "{}", failure.stderr);
    assert!(failure.error.contains("linux/s390x"), "{}", failure.error);
    Ok(())
}
