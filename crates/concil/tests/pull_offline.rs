//! `concil pull --offline`: pulled online, then with the registry stopped, an image comes from
//! the cache alone, by tag (as the last online pull resolved it, which a warning says) and by
//! digest; what the cache lacks is an error naming it (exit 4); content trust is what the online
//! pull established (its record says), so a signed pull stays verified offline and an unsigned
//! one is refused where the configuration wants signatures (exit 10).

use concil_test_support as support;

use std::error::Error;

use serde_json::json;
use support::cosign::{payload, push_signatures, SignatureLayer, Signer};
use support::images::{Format, Images};
use support::pull::{config_for, expect_failure, run, without_sources, ConcilHome};
use support::registry::Registry;

type TestResult = Result<(), Box<dyn Error>>;

const NOT_FOUND: i32 = 4;
const NOT_SIGNED: i32 = 10;

#[test]
fn an_image_pulled_online_comes_from_the_cache_by_tag_and_by_digest() -> TestResult {
    let registry = Registry::plain();
    let images = Images::new(&registry)?;
    let image = images.push_layered("offline/layered", "v1", Format::Oci)?;
    let other = images.push_busybox("offline/other", "v1", Format::Oci)?;
    let home = ConcilHome::new(config_for(&registry));
    let online = home.pull_json(&image.reference, &[]);
    let by_digest = format!(
        "docker://{}/{}@{}",
        registry.host(),
        image.repo,
        image.manifest_digest
    );
    drop(images);
    drop(registry);
    let failure = expect_failure(
        &run(&mut home.pull_command(&image.reference, &[])),
        "online pull with the registry stopped",
    );
    assert_eq!(
        failure.code,
        Some(7),
        "the registry is gone: {}",
        failure.stderr
    );

    let output = run(&mut home.pull_command(&image.reference, &["--offline"]));
    assert!(output.status.success(), "{output:?}");
    let offline: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    assert_eq!(without_sources(&offline), without_sources(&online));
    for layer in offline["layers"].as_array().expect("layers") {
        assert_eq!(layer["source"], "cache");
    }
    let stderr = String::from_utf8(output.stderr)?;
    assert!(
        stderr.contains("offline:") && stderr.contains(&image.manifest_digest),
        "the warning names the digest the tag resolved to: {stderr}"
    );

    let by_digest_output = home.pull_json(&by_digest, &["--offline"]);
    assert_eq!(by_digest_output["layers"], offline["layers"]);

    // A tag never pulled, another platform: nothing recorded, exit 4 naming what is missing.
    let failure = expect_failure(
        &run(&mut home.pull_command(&other.reference, &["--offline"])),
        "offline pull of an image never pulled",
    );
    assert_eq!(failure.code, Some(NOT_FOUND), "{}", failure.stderr);
    assert!(
        failure.error.contains("offline") && failure.error.contains("record of a pull"),
        "{}",
        failure.error
    );
    let failure = expect_failure(
        &run(&mut home.pull_command(
            &image.reference,
            &["--offline", "--platform", "linux/arm64"],
        )),
        "offline pull for another platform",
    );
    assert_eq!(failure.code, Some(NOT_FOUND));
    assert!(failure.error.contains("linux/arm64"), "{}", failure.error);

    // A layer gone from the cache: exit 4 naming it, and nothing else changes.
    let missing = &image.layers[2];
    std::fs::remove_file(home.cache_dir().join("layers").join(&missing.digest))?;
    std::fs::remove_file(home.cache_dir().join("layers").join(&missing.diff_id))?;
    let failure = expect_failure(
        &run(&mut home.pull_command(&by_digest, &["--offline"])),
        "offline pull with a layer missing",
    );
    assert_eq!(failure.code, Some(NOT_FOUND));
    assert!(failure.error.contains(&missing.digest), "{}", failure.error);
    home.assert_no_working_files();
    Ok(())
}

/// A configuration that wants cosign signatures for everything (the default), reaching
/// `registry`.
fn trusting_home(registry: &Registry) -> ConcilHome {
    ConcilHome::new(json!({
        "remote_servers": {registry.host(): {"registry": registry.url().as_str()}},
    }))
}

#[test]
fn offline_trust_is_what_the_online_pull_established() -> TestResult {
    let registry = Registry::plain();
    let images = Images::new(&registry)?;
    let signed = images.push_busybox("offline/signed", "v1", Format::Docker)?;
    let unsigned = images.push_layered("offline/unsigned", "v1", Format::Oci)?;
    let signer = Signer::p256();
    push_signatures(
        &registry,
        &signed.repo,
        &signed.manifest_digest,
        &[SignatureLayer::signed(
            &signer,
            payload(
                &format!("{}/{}", registry.host(), signed.repo),
                &signed.manifest_digest,
            ),
        )],
    );
    let home = trusting_home(&registry);
    signer.trust_in(&home.cosign_key_dir(), "release");
    assert_eq!(home.pull_json(&signed.reference, &[])["verified"], "cosign");
    assert_eq!(
        home.pull_json(&unsigned.reference, &["--no-verify"])["verified"],
        "none"
    );
    let host = registry.host();
    drop(images);
    drop(registry);

    let output = home.pull_json(&signed.reference, &["--offline"]);
    assert_eq!(
        output["verified"], "cosign",
        "the record says it was verified"
    );
    // The same digest named in another repository: that repository's policy (its keys) was
    // never checked, so the signed pull's record does not vouch for it.
    let elsewhere = format!(
        "docker://{host}/offline/elsewhere@{}",
        signed.manifest_digest
    );
    let failure = expect_failure(
        &run(&mut home.pull_command(&elsewhere, &["--offline"])),
        "offline pull of a verified digest under another repository",
    );
    assert_eq!(failure.code, Some(NOT_SIGNED), "{}", failure.stderr);

    let failure = expect_failure(
        &run(&mut home.pull_command(&unsigned.reference, &["--offline"])),
        "offline pull of an image pulled unverified",
    );
    assert_eq!(failure.code, Some(NOT_SIGNED), "{}", failure.stderr);
    assert!(
        failure.error.contains("its last pull was not verified"),
        "{}",
        failure.error
    );
    let output = home.pull_json(&unsigned.reference, &["--offline", "--no-verify"]);
    assert_eq!(output["verified"], "none");
    Ok(())
}
