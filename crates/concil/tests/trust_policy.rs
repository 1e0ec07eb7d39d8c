//! `trust_policy`: per-repository content trust through the CLI against the real registry,
//! with cosign signatures made by sigstore-rs: a site requires cosign for its own repositories
//! while pulling others unsigned; `--no-verify` still overrides and says so; `verified` in the
//! JSON tells what was checked; a bad policy is a configuration error.

use concil_test_support as support;

use std::error::Error;

use serde_json::{json, Value};
use support::cosign::{payload, push_signatures, SignatureLayer, Signer};
use support::images::{Format, Images, PushedImage};
use support::pull::{config_for, expect_failure, run, ConcilHome};
use support::registry::Registry;

type TestResult = Result<(), Box<dyn Error>>;

struct Site {
    registry: Registry,
    signed: PushedImage,
    unsigned: PushedImage,
    signer: Signer,
}

impl Site {
    /// `site/signed` signed with a P-256 key, `other/unsigned` not signed.
    fn start() -> Result<Site, Box<dyn Error>> {
        let registry = Registry::plain();
        let images = Images::new(&registry)?;
        let signed = images.push_busybox("site/signed", "v1", Format::Docker)?;
        let unsigned = images.push_busybox("other/unsigned", "v1", Format::Docker)?;
        drop(images);
        let signer = Signer::p256();
        let repository = format!("{}/site/signed", registry.host());
        push_signatures(
            &registry,
            "site/signed",
            &signed.manifest_digest,
            &[SignatureLayer::signed(
                &signer,
                payload(&repository, &signed.manifest_digest),
            )],
        );
        Ok(Site {
            registry,
            signed,
            unsigned,
            signer,
        })
    }

    /// A home with `settings` merged over the registry's configuration (content trust on
    /// unless they say otherwise), trusting the signer's key.
    fn home(&self, settings: Value) -> ConcilHome {
        let mut config = config_for(&self.registry);
        config["disable_content_trust"] = json!(false);
        for (key, value) in settings.as_object().into_iter().flatten() {
            config[key] = value.clone();
        }
        let home = ConcilHome::new(config);
        let keys = home.config_path().with_file_name("cosign");
        std::fs::create_dir_all(&keys).expect("cosign key dir");
        self.signer.trust_in(&keys, "release");
        home
    }
}

/// Pulls `image`; its JSON and stderr.
fn pulled(home: &ConcilHome, image: &str, extra: &[&str]) -> (Value, String) {
    let output = run(&mut home.pull_command(image, extra));
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "pull {image}: {stderr}");
    (
        serde_json::from_slice(&output.stdout).expect("JSON"),
        stderr,
    )
}

#[test]
fn cosign_for_the_site_none_for_the_rest() -> TestResult {
    let site = Site::start()?;
    let host = site.registry.host();
    let home = site.home(json!({"trust_policy": {format!("{host}/site*"): "cosign", "*": "none"}}));

    let (signed, stderr) = pulled(&home, &site.signed.reference, &[]);
    assert_eq!(signed["verified"], "cosign", "{signed}");
    assert!(!stderr.contains("not checked"), "{stderr}");

    let (unsigned, stderr) = pulled(&home, &site.unsigned.reference, &[]);
    assert_eq!(unsigned["verified"], "none", "{unsigned}");
    assert!(
        stderr.contains("trust_policy says \"none\" for it: content trust is not checked"),
        "{stderr}"
    );
    Ok(())
}

#[test]
fn a_repository_the_policy_requires_cosign_for_must_be_signed() -> TestResult {
    let site = Site::start()?;
    let host = site.registry.host();
    // disable_content_trust applies only where the policy says nothing.
    let home = site.home(json!({
        "disable_content_trust": true,
        "trust_policy": {host.clone(): "cosign"},
    }));

    let failure = expect_failure(
        &run(&mut home.pull_command(&site.unsigned.reference, &[])),
        "unsigned pull the policy requires cosign for",
    );
    assert_eq!(failure.code, Some(10), "not signed: {}", failure.stderr);
    home.assert_no_layers();

    let (signed, _) = pulled(&home, &site.signed.reference, &[]);
    assert_eq!(signed["verified"], "cosign");

    // Where the policy says nothing, disable_content_trust still decides.
    let home = site.home(json!({
        "disable_content_trust": true,
        "trust_policy": {format!("{host}/site/signed"): "cosign"},
    }));
    let (unsigned, stderr) = pulled(&home, &site.unsigned.reference, &[]);
    assert_eq!(unsigned["verified"], "none");
    assert!(stderr.contains("disable_content_trust is set"), "{stderr}");
    Ok(())
}

#[test]
fn no_verify_overrides_the_policy_and_says_so() -> TestResult {
    let site = Site::start()?;
    let home = site.home(json!({"trust_policy": {"*": "cosign"}}));

    let (unsigned, stderr) = pulled(&home, &site.unsigned.reference, &["--no-verify"]);

    assert_eq!(unsigned["verified"], "none");
    assert!(
        stderr.contains("--no-verify: content trust is not checked"),
        "{stderr}"
    );
    Ok(())
}

#[test]
fn a_policy_value_that_is_no_engine_is_a_configuration_error() -> TestResult {
    let site = Site::start()?;
    let home = site.home(json!({"trust_policy": {"docker.io/library*": "cosgin"}}));

    let failure = expect_failure(
        &run(&mut home.pull_command(&site.signed.reference, &[])),
        "pull with a bad trust_policy",
    );

    assert_eq!(failure.code, Some(3), "{}", failure.stderr);
    assert!(
        failure.error.contains("docker.io/library*"),
        "{}",
        failure.error
    );
    assert!(failure.error.contains("trust_policy"), "{}", failure.error);
    Ok(())
}
