//! The cache at cluster scale, against the real registry: what `cache ls` lists, `cache rm`
//! removing one image and keeping what others use, the size budget (`cache clean
//! --max-size`, `cache_max_size` after a pull) going least recently used first, holds
//! (`pull --hold -- COMMAND`) that no clean-up crosses, and `cache verify` finding a damaged
//! layer that `--repair` removes for the next pull to fetch again.

use concil_test_support as support;

use std::error::Error;
use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::process::Output;

use serde_json::{json, Value};
use support::images::{Format, Images, PushedImage};
use support::pull::{config_for, expect_failure, run, ConcilHome};
use support::registry::Registry;

type TestResult = Result<(), Box<dyn Error>>;

/// `concil cache <args…> --config <home's>`, run.
fn cache(home: &ConcilHome, args: &[&str]) -> Output {
    run(home
        .concil()
        .arg("cache")
        .args(args)
        .arg("--config")
        .arg(home.config_path()))
}

/// `concil cache <args…>`, which must succeed; its stdout.
fn cache_ok(home: &ConcilHome, args: &[&str]) -> String {
    let output = cache(home, args);
    assert!(
        output.status.success(),
        "concil cache {args:?} failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

fn ls_json(home: &ConcilHome) -> Value {
    serde_json::from_str(&cache_ok(home, &["ls", "--layers", "--json"])).expect("ls --json")
}

/// The references `cache ls --json` lists.
fn listed(home: &ConcilHome) -> Vec<String> {
    ls_json(home)["images"]
        .as_array()
        .expect("images")
        .iter()
        .map(|image| image["reference"].as_str().expect("reference").to_owned())
        .collect()
}

/// `docker://host/repo:tag` as records keep it: `host/repo:tag`.
fn recorded(image: &PushedImage) -> String {
    image
        .reference
        .strip_prefix("docker://")
        .unwrap_or(&image.reference)
        .to_owned()
}

fn blob_fetches(registry: &Registry, image: &PushedImage) -> Vec<usize> {
    image
        .layers
        .iter()
        .map(|layer| registry.count_blob_fetches(&layer.digest))
        .collect()
}

#[test]
fn ls_names_each_layers_images_and_rm_keeps_what_another_image_uses() -> TestResult {
    let registry = Registry::plain();
    let images = Images::new(&registry)?;
    // The same three tars, gzip and zstd: shared layers (by diff_id), blobs of their own.
    let gzip = images.push_layered("admin/gzip", "v1", Format::Oci)?;
    let zstd = images.push_layered_zstd("admin/zstd", "v1")?;
    let busybox = images.push_busybox("admin/busybox", "v1", Format::Oci)?;
    let home = ConcilHome::new(config_for(&registry));
    for image in [&gzip, &zstd, &busybox] {
        home.pull_json(&image.reference, &[]);
    }

    let listing = ls_json(&home);
    let mut references = listed(&home);
    references.sort();
    let mut expected = vec![recorded(&gzip), recorded(&zstd), recorded(&busybox)];
    expected.sort();
    assert_eq!(references, expected);
    let layer_bytes = |image: &PushedImage| -> u64 {
        image
            .layers
            .iter()
            .map(|layer| {
                fs::metadata(home.cache_dir().join("layers").join(&layer.diff_id))
                    .expect("layer file")
                    .len()
            })
            .sum()
    };
    for image in listing["images"].as_array().expect("images") {
        let (size, unique) = (image["size"].as_u64(), image["unique_size"].as_u64());
        if image["reference"] == json!(recorded(&busybox)) {
            assert_eq!(size, unique, "busybox shares nothing: {image}");
        } else {
            // Sharing every layer (and the config: the same tars make the same config),
            // each layered image frees only its manifest.
            assert_eq!(gzip.config_digest, zstd.config_digest);
            let config =
                fs::metadata(home.cache_dir().join("config").join(&gzip.config_digest))?.len();
            assert_eq!(
                size.zip(unique).map(|(size, unique)| size - unique),
                Some(layer_bytes(&gzip) + config),
                "{image}"
            );
        }
    }
    for layer in &gzip.layers {
        let entry = listing["layers"]
            .as_array()
            .expect("layers")
            .iter()
            .find(|entry| entry["diff_id"] == json!(layer.diff_id))
            .expect("the layer is listed");
        assert_eq!(
            entry["images"],
            json!([recorded(&gzip), recorded(&zstd)]),
            "both images name the shared layer"
        );
        // Only the blob that was downloaded links to it: the zstd pull found the layer by
        // its diff_id, and a manifest's word never writes a link.
        assert_eq!(entry["blobs"], json!([layer.digest]), "{entry}");
    }
    let text = cache_ok(&home, &["ls"]);
    assert!(text.contains(&recorded(&busybox)), "{text}");
    assert!(
        text.lines()
            .last()
            .is_some_and(|line| line.starts_with("total: 3 images, 4 layers")),
        "{text}"
    );

    // rm: the gzip image goes; the layers stay for the zstd one.
    let removed = cache_ok(&home, &["rm", &gzip.reference]);
    assert!(removed.contains("removed 1 images"), "{removed}");
    assert_eq!(listed(&home).len(), 2);
    home.assert_layers_match(&zstd);
    assert!(!home
        .cache_dir()
        .join("manifest")
        .join(&gzip.manifest_digest)
        .exists());
    let output = cache(&home, &["verify"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    // Pulled again, it downloads no layer: they are in the cache.
    let before = blob_fetches(&registry, &gzip);
    home.pull_json(&gzip.reference, &[]);
    assert_eq!(blob_fetches(&registry, &gzip), before);

    // rm by manifest digest: busybox's own layer goes, and a pull fetches it again.
    cache_ok(&home, &["rm", &busybox.manifest_digest[..19]]);
    assert!(!home
        .cache_dir()
        .join("layers")
        .join(&busybox.layers[0].diff_id)
        .exists());
    let before = blob_fetches(&registry, &busybox);
    home.pull_json(&busybox.reference, &[]);
    assert_eq!(
        blob_fetches(&registry, &busybox),
        before.iter().map(|fetches| fetches + 1).collect::<Vec<_>>()
    );
    home.assert_layers_match(&busybox);

    // An image the cache does not hold: exit 4, naming it.
    let failure = expect_failure(
        &cache(&home, &["rm", "docker://127.0.0.1:1/not/there:v1"]),
        "cache rm of an image not in the cache",
    );
    assert_eq!(failure.code, Some(4), "{}", failure.stderr);
    assert!(
        failure.error.contains("127.0.0.1:1/not/there:v1"),
        "{}",
        failure.error
    );
    Ok(())
}

#[test]
fn a_size_budget_removes_least_recently_used_images_whole() -> TestResult {
    let registry = Registry::plain();
    let images = Images::new(&registry)?;
    let old = images.push_busybox("budget/old", "v1", Format::Oci)?;
    let new = images.push_layered("budget/new", "v1", Format::Docker)?;
    let home = ConcilHome::new(config_for(&registry));
    home.pull_json(&old.reference, &[]);
    home.pull_json(&new.reference, &[]);
    let total = ls_json(&home)["total_bytes"].as_u64().expect("total");
    let budget = (total - 1).to_string();

    let dry = cache_ok(&home, &["clean", "--max-size", &budget, "--dry-run"]);
    assert!(
        dry.contains(&format!("would remove {}", recorded(&old))),
        "{dry}"
    );
    assert!(!dry.contains(&recorded(&new)), "{dry}");
    assert_eq!(listed(&home).len(), 2, "a dry run removes nothing");

    let cleaned = cache_ok(&home, &["clean", "--max-size", &budget]);
    assert!(cleaned.contains("removed 1 images"), "{cleaned}");
    assert_eq!(listed(&home), [recorded(&new)]);
    assert!(ls_json(&home)["total_bytes"].as_u64().expect("total") < total);
    home.assert_holds_image(&new);

    // A size that is not one: a usage error naming it.
    let failure = expect_failure(
        &cache(&home, &["clean", "--max-size", "lots"]),
        "clean --max-size lots",
    );
    assert_eq!(failure.code, Some(2));
    assert!(failure.error.contains("lots"), "{}", failure.error);
    Ok(())
}

#[test]
fn a_pull_over_cache_max_size_cleans_unless_told_not_to() -> TestResult {
    let registry = Registry::plain();
    let images = Images::new(&registry)?;
    let first = images.push_busybox("auto/first", "v1", Format::Oci)?;
    let second = images.push_layered("auto/second", "v1", Format::Oci)?;

    let mut config = config_for(&registry);
    config["cache_auto_clean"] = json!(false);
    config["cache_max_size"] = json!("1K");
    let home = ConcilHome::new(config.clone());
    home.pull_json(&first.reference, &[]);
    home.pull_json(&second.reference, &[]);
    assert_eq!(listed(&home).len(), 2, "cache_auto_clean: false keeps both");

    config["cache_auto_clean"] = json!(true);
    let home = ConcilHome::new(config);
    home.pull_json(&first.reference, &[]);
    let output = home.pull_json(&second.reference, &[]);
    // The image just pulled is held: it stays however small the budget.
    assert_eq!(listed(&home), [recorded(&second)]);
    home.assert_holds_image(&second);
    for layer in output["layers"].as_array().expect("layers") {
        assert!(fs::metadata(layer["path"].as_str().expect("path"))?.is_file());
    }
    Ok(())
}

#[test]
fn a_held_image_survives_every_clean_up_until_its_command_ends() -> TestResult {
    let registry = Registry::plain();
    let images = Images::new(&registry)?;
    let image = images.push_layered("hold/layered", "v1", Format::Oci)?;
    let home = ConcilHome::new(config_for(&registry));
    let config = home.config_path();
    let concil = support::pull::concil_binary();
    let seen = home.cache_dir().join("../seen-while-held");
    // While held: clean by age and by size, and rm; record what is left, and exit 3.
    let script = format!(
        "{concil} cache clean --older-than 0 --max-size 0 --config {config} >/dev/null; \
         {concil} cache rm --config {config} {image} >/dev/null 2>&1; echo rm=$? >{seen}; \
         ls {layers} >>{seen}; exit 3",
        concil = concil.display(),
        config = config.display(),
        image = image.reference,
        seen = seen.display(),
        layers = home.cache_dir().join("layers").display(),
    );
    let output = run(home
        .concil()
        .args(["pull", "--hold", "--config"])
        .arg(&config)
        .arg(&image.reference)
        .args(["--", "sh", "-c", &script]));
    assert_eq!(
        output.status.code(),
        Some(3),
        "the command's status: {output:?}"
    );
    let printed = String::from_utf8(output.stdout)?;
    assert_eq!(
        printed.lines().count(),
        3,
        "the layer paths first: {printed}"
    );
    let seen = fs::read_to_string(&seen)?;
    assert!(
        seen.starts_with("rm=1\n"),
        "rm of a held image fails: {seen}"
    );
    for layer in &image.layers {
        assert!(
            seen.contains(&layer.diff_id),
            "{} removed while held: {seen}",
            layer.diff_id
        );
    }
    home.assert_holds_image(&image);

    // Once the command ended, nothing holds it.
    cache_ok(&home, &["clean", "--max-size", "0"]);
    assert_eq!(listed(&home), Vec::<String>::new());
    assert!(home.listing("layers").is_empty());

    // A command that cannot be found: 127, as a shell says.
    let output = run(home
        .concil()
        .args(["pull", "--hold", "--config"])
        .arg(&config)
        .arg(&image.reference)
        .args(["--", "/nonexistent/command"]));
    assert_eq!(output.status.code(), Some(127));
    Ok(())
}

#[test]
fn verify_finds_a_damaged_layer_and_repair_makes_the_next_pull_fetch_it_again() -> TestResult {
    let registry = Registry::plain();
    let images = Images::new(&registry)?;
    let image = images.push_layered("verify/layered", "v1", Format::Oci)?;
    let home = ConcilHome::new(config_for(&registry));
    home.pull_json(&image.reference, &[]);
    let clean = cache(&home, &["verify"]);
    assert!(clean.status.success(), "{clean:?}");
    let text = String::from_utf8(clean.stdout)?;
    assert!(text.contains("3 layers, 3 links, 1 records"), "{text}");

    // A bit flips inside the middle layer's squashfs file (written in place).
    let damaged = home
        .cache_dir()
        .join("layers")
        .join(&image.layers[1].diff_id);
    let mut file = fs::OpenOptions::new().write(true).open(&damaged)?;
    let middle = file.metadata()?.len() / 2;
    file.seek(SeekFrom::Start(middle))?;
    file.write_all(b"\xff\x00")?;
    drop(file);

    let found = cache(&home, &["verify", "--json"]);
    assert_eq!(found.status.code(), Some(24));
    let report: Value = serde_json::from_slice(&found.stdout)?;
    assert_eq!(
        report["problems"],
        json!([{"path": damaged, "problem": "checksum_mismatch", "repaired": false,
                "expected": report["problems"][0]["expected"], "actual": report["problems"][0]["actual"]}]),
        "{report}"
    );
    assert!(damaged.exists(), "verify alone removes nothing");

    let repaired = cache(&home, &["verify", "--repair"]);
    assert_eq!(repaired.status.code(), Some(24), "damage was found");
    assert!(!damaged.exists());
    assert!(
        !home
            .cache_dir()
            .join("layers")
            .join(&image.layers[1].digest)
            .exists(),
        "its link went with it"
    );
    assert!(
        cache(&home, &["verify"]).status.success(),
        "nothing left to repair"
    );

    let before = blob_fetches(&registry, &image);
    home.pull_json(&image.reference, &[]);
    assert_eq!(
        blob_fetches(&registry, &image),
        [before[0], before[1] + 1, before[2]],
        "only the damaged layer is fetched again"
    );
    home.assert_holds_image(&image);

    // A layer cut short without a checksum (as concil 1.0 leaves them): read back, refused.
    let cut = home
        .cache_dir()
        .join("layers")
        .join(&image.layers[0].diff_id);
    fs::remove_file(
        home.cache_dir()
            .join("checksums")
            .join(&image.layers[0].diff_id),
    )?;
    let length = fs::metadata(&cut)?.len();
    fs::OpenOptions::new()
        .write(true)
        .open(&cut)?
        .set_len(length / 2)?;
    let found = cache(&home, &["verify", "--json"]);
    assert_eq!(found.status.code(), Some(24));
    let report: Value = serde_json::from_slice(&found.stdout)?;
    assert_eq!(report["problems"][0]["problem"], "not_squashfs", "{report}");
    assert_eq!(report["problems"][0]["path"], json!(cut));
    Ok(())
}

#[test]
fn a_layer_concil_1_made_is_listed_unrecorded_passes_verify_and_goes_by_budget() -> TestResult {
    let registry = Registry::plain();
    let images = Images::new(&registry)?;
    let image = images.push_busybox("legacy/busybox", "v1", Format::Oci)?;
    let home = ConcilHome::new(config_for(&registry));
    home.pull_json(&image.reference, &[]);
    // As concil 1.0 leaves a layer: tar2sqfs's output under the diff_id, the blob's symlink,
    // no checksum, no record.
    let layer = &image.layers[0];
    let layers = home.cache_dir().join("layers");
    let legacy = "sha256:".to_owned() + &"ab".repeat(32);
    let status = std::process::Command::new("tar2sqfs")
        .args(["--quiet", "--no-skip", "--force", "--compressor", "zstd"])
        .arg(layers.join(&legacy))
        .stdin(fs::File::open(&layer.tar)?)
        .status()?;
    assert!(status.success(), "tar2sqfs");
    std::os::unix::fs::symlink(
        &legacy,
        layers.join("sha256:".to_owned() + &"cd".repeat(32)),
    )?;

    let listing = ls_json(&home);
    let entry = listing["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .find(|entry| entry["diff_id"] == json!(legacy))
        .expect("the legacy layer is listed");
    assert_eq!(entry["images"], json!([]), "no record names it");
    assert_eq!(
        listing["unrecorded_bytes"].as_u64(),
        Some(fs::metadata(layers.join(&legacy))?.len())
    );
    let text = cache_ok(&home, &["ls"]);
    assert!(text.contains("not recorded: 1 layers"), "{text}");
    let verify = cache(&home, &["verify"]);
    assert!(
        verify.status.success(),
        "tar2sqfs's image reads back: {}",
        String::from_utf8_lossy(&verify.stdout)
    );

    // The budget goes by last use: the legacy layer, last used a day ago, goes before the
    // image pulled just now.
    fs::File::options()
        .write(true)
        .open(layers.join(&legacy))?
        .set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(86_400))?;
    let total = listing["total_bytes"].as_u64().expect("total");
    let cleaned = cache_ok(&home, &["clean", "--max-size", &(total - 1).to_string()]);
    assert!(!layers.join(&legacy).exists(), "{cleaned}");
    assert_eq!(listed(&home), [recorded(&image)]);
    home.assert_holds_image(&image);
    Ok(())
}
