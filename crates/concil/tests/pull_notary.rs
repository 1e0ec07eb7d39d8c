//! Notary v1 content trust end to end: the real `concil` binary against the real registry and
//! the real `notary-server` (HTTPS with a test CA), trust data published by the real `notary`
//! client. A pull asks Notary for the tag's digest before anything else, fetches the manifest
//! by that digest and checks it against the signed length and hashes; every refusal exits with
//! its own status, prints one `error:` line naming the image, and leaves no layer in the cache.
//! Faults the real server cannot be made to commit (stale or tampered metadata, expired
//! signatures) come from the fault proxy in front of a plain-HTTP notary-server, or from
//! metadata signed by the test's own TUF signer (`support::tuf`).

use concil_test_support as support;

use std::error::Error;
use std::fs;
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use support::images::{Format, Images, PushedImage};
use support::notary::{KeyAlgorithm, NotaryPublisher, NotaryServer, SigningCa};
use support::proxy::{PathAction, PathFault, PathMatch, Proxy};
use support::pull::ConcilHome;
use support::registry::Registry;
use support::tuf::{Role, TufRepo};

type TestResult = Result<(), Box<dyn Error>>;

/// Exit statuses of `concil pull` when Notary does not vouch for the image.
const NOT_SIGNED: i32 = 10;
const SIGNATURE_INVALID: i32 = 12;
const WRONG_CONTENT: i32 = 13;
const EXPIRED: i32 = 19;
const ROLLBACK: i32 = 20;
const PINNING: i32 = 21;

/// A registry, a Notary server, and a publisher for it.
struct Setup {
    registry: Registry,
    notary: NotaryServer,
    publisher: NotaryPublisher,
}

impl Setup {
    fn new() -> Result<Setup, Box<dyn Error>> {
        Setup::with_notary(NotaryServer::start())
    }

    fn with_notary(notary: NotaryServer) -> Result<Setup, Box<dyn Error>> {
        let registry = Registry::plain();
        let publisher = NotaryPublisher::new(&notary);
        Ok(Setup {
            registry,
            notary,
            publisher,
        })
    }

    /// The trust collection of a repository of the registry: `host:port/repo`.
    fn gun(&self, image: &PushedImage) -> String {
        format!("{}/{}", self.registry.host(), image.repo)
    }

    /// Signs `tag` of the image's repository as `image`'s manifest (length and sha256).
    fn sign(&self, image: &PushedImage, tag: &str) -> TestResult {
        let gun = self.gun(image);
        let hex = image
            .manifest_digest
            .strip_prefix("sha256:")
            .ok_or("sha256 digest")?;
        self.publisher
            .add_hash(&gun, tag, image.manifest.len() as u64, hex)?;
        self.publisher.publish(&gun)?;
        Ok(())
    }

    /// A concil home with Notary content trust for the registry, at `notary_url`.
    fn home_with(&self, notary_url: &str, extra: Value) -> ConcilHome {
        let mut config = json!({
            "content_trust": "notary",
            "remote_servers": {self.registry.host(): {
                "registry": self.registry.url().as_str(),
                "notary": notary_url,
            }},
        });
        if let (Some(config), Some(extra)) = (config.as_object_mut(), extra.as_object()) {
            config.extend(extra.clone());
        }
        let home = ConcilHome::new(config.clone());
        // A copy of the server's CA beside the config: it outlives the server.
        if let Some(ca) = self.notary.ca_file() {
            let copy = home.config_path().with_file_name("notary-ca.pem");
            fs::copy(ca, &copy).expect("copy the Notary CA");
            config["cafile"] = json!(copy);
            home.rewrite_config(config);
        }
        home
    }

    fn home(&self) -> ConcilHome {
        self.home_with(self.notary.url().as_str(), json!({}))
    }
}

/// `concil pull` must fail with `code`, naming the image, with no layer cached.
fn expect_refusal(home: &ConcilHome, image: &PushedImage, code: i32, says: &str) -> String {
    let error = expect_exit(home, image, code, says);
    home.assert_no_layers();
    error
}

/// `concil pull` must fail with `code` and an error naming the image and saying `says`.
fn expect_exit(home: &ConcilHome, image: &PushedImage, code: i32, says: &str) -> String {
    let failure = home.pull_failure(&image.reference, &[]);
    assert_eq!(failure.code, Some(code), "{}", failure.stderr);
    assert!(
        failure.error.contains(&image.repo),
        "names the image: {}",
        failure.error
    );
    assert!(
        failure.error.contains(says),
        "expected {says:?} in: {}",
        failure.error
    );
    failure.error
}

use support::sha256_hex;

#[test]
fn published_tag_pulls_and_reports_notary() -> TestResult {
    let setup = Setup::new()?;
    let images = Images::new(&setup.registry)?;
    let image = images.push_busybox("notary/app", "v1", Format::Docker)?;
    let gun = setup.gun(&image);
    setup.publisher.init(&gun)?;
    setup.sign(&image, "v1")?;

    let home = setup.home();
    let pulled = home.pull_json(&image.reference, &[]);
    assert_eq!(pulled["verified"], "notary", "{pulled}");
    assert_eq!(
        pulled["manifest_digest"],
        image.manifest_digest.as_str(),
        "{pulled}"
    );
    home.assert_holds_image(&image);
    // The verified chain is cached where Docker keeps it.
    let metadata = home
        .cache_dir()
        .join("notary/tuf")
        .join(&gun)
        .join("metadata");
    for role in ["root", "timestamp", "snapshot", "targets"] {
        let cached = fs::read(metadata.join(format!("{role}.json")))?;
        assert_eq!(
            cached,
            setup.notary.metadata(&gun, role),
            "{role} cached as served"
        );
    }
    Ok(())
}

#[test]
fn unsigned_tag_and_unknown_repository_are_refused() -> TestResult {
    let setup = Setup::new()?;
    let images = Images::new(&setup.registry)?;
    let v1 = images.push_busybox("notary/partly", "v1", Format::Docker)?;
    let v2 = images.push_busybox("notary/partly", "v2", Format::Docker)?;
    let never = images.push_busybox("notary/never", "v1", Format::Docker)?;
    setup.publisher.init(&setup.gun(&v1))?;
    setup.sign(&v1, "v1")?;
    let home = setup.home();
    let pushed_lines = setup.registry.log_lines().len();

    expect_refusal(&home, &v2, NOT_SIGNED, "tag v2 is not signed");
    expect_refusal(&home, &never, NOT_SIGNED, "has no trust data");
    let manifest_requests = setup.registry.log_lines()[pushed_lines..]
        .iter()
        .filter(|line| line.contains("/manifests/"))
        .count();
    assert_eq!(
        manifest_requests, 0,
        "refused before any manifest was fetched"
    );
    Ok(())
}

#[test]
fn signed_digest_that_is_not_the_manifest_is_refused() -> TestResult {
    let setup = Setup::new()?;
    let images = Images::new(&setup.registry)?;
    let image = images.push_busybox("notary/wrong", "v1", Format::Docker)?;
    let gun = setup.gun(&image);
    setup.publisher.init(&gun)?;
    let hex = image.manifest_digest.trim_start_matches("sha256:");

    // The right digest with a wrong signed length: the manifest does not match the target.
    setup
        .publisher
        .add_hash(&gun, "badlength", image.manifest.len() as u64 + 1, hex)?;
    // A digest of content the registry does not have.
    setup
        .publisher
        .add_hash(&gun, "v1", 100, &sha256_hex(b"not a manifest"))?;
    setup.publisher.publish(&gun)?;
    let home = setup.home();

    let bad_length = PushedImage {
        reference: image.reference.replace(":v1", ":badlength"),
        ..image.clone()
    };
    expect_refusal(
        &home,
        &bad_length,
        WRONG_CONTENT,
        "does not match the signed target",
    );
    let failure = home.pull_failure(&image.reference, &[]);
    assert_ne!(failure.code, Some(0));
    assert!(failure.error.contains("sha256:"), "{}", failure.error);
    home.assert_no_layers();
    Ok(())
}

#[test]
fn a_new_publish_is_followed() -> TestResult {
    let setup = Setup::new()?;
    let images = Images::new(&setup.registry)?;
    let first = images.push_busybox("notary/moving", "v1", Format::Docker)?;
    let second = images.push_layered("notary/moving", "next", Format::Oci)?;
    let gun = setup.gun(&first);
    setup.publisher.init(&gun)?;
    setup.sign(&first, "v1")?;
    let home = setup.home();
    let pulled = home.pull_json(&first.reference, &[]);
    assert_eq!(pulled["manifest_digest"], first.manifest_digest.as_str());

    // Tag v1 is re-signed as the other image: the pull follows the signed digest, not the
    // registry's tag (which still points to the first image).
    setup.sign(&second, "v1")?;
    let pulled = home.pull_json(&first.reference, &[]);
    assert_eq!(
        pulled["manifest_digest"],
        second.manifest_digest.as_str(),
        "{pulled}"
    );
    assert_eq!(pulled["verified"], "notary");
    Ok(())
}

#[test]
fn digest_references_must_be_signed_under_some_tag() -> TestResult {
    let setup = Setup::new()?;
    let images = Images::new(&setup.registry)?;
    let image = images.push_busybox("notary/bydigest", "v1", Format::Docker)?;
    let other = images.push_layered("notary/bydigest", "other", Format::Oci)?;
    setup.publisher.init(&setup.gun(&image))?;
    setup.sign(&image, "v1")?;
    let home = setup.home();

    let by_digest = format!(
        "docker://{}/{}@{}",
        setup.registry.host(),
        image.repo,
        image.manifest_digest
    );
    let pulled = home.pull_json(&by_digest, &[]);
    assert_eq!(pulled["verified"], "notary");

    let unsigned = PushedImage {
        reference: format!(
            "docker://{}/{}@{}",
            setup.registry.host(),
            other.repo,
            other.manifest_digest
        ),
        ..other.clone()
    };
    let home = setup.home();
    expect_refusal(&home, &unsigned, NOT_SIGNED, "no tag with digest");
    Ok(())
}

#[test]
fn releases_delegation_is_preferred_and_verified() -> TestResult {
    let setup = Setup::new()?;
    let images = Images::new(&setup.registry)?;
    let image = images.push_busybox("notary/releases", "v1", Format::Docker)?;
    let other = images.push_layered("notary/releases", "other", Format::Oci)?;
    let gun = setup.gun(&image);
    setup.publisher.init(&gun)?;
    // `targets` says v1 is the other image; Docker's signers in targets/releases say v1.
    setup.sign(&other, "v1")?;
    let ca = SigningCa::new();
    let signer = ca.delegation_key("alice", KeyAlgorithm::Ecdsa);
    setup.publisher.delegation_add(
        &gun,
        "targets/releases",
        &signer.cert_file,
        &signer.key_file,
    )?;
    let hex = image.manifest_digest.trim_start_matches("sha256:");
    setup.publisher.add_hash_to_role(
        &gun,
        "targets/releases",
        "v1",
        image.manifest.len() as u64,
        hex,
    )?;
    setup.publisher.publish(&gun)?;

    let home = setup.home();
    let pulled = home.pull_json(&image.reference, &[]);
    assert_eq!(
        pulled["manifest_digest"],
        image.manifest_digest.as_str(),
        "{pulled}"
    );
    Ok(())
}

#[test]
fn root_rotation_is_followed() -> TestResult {
    let setup = Setup::new()?;
    let images = Images::new(&setup.registry)?;
    let image = images.push_busybox("notary/rotate", "v1", Format::Docker)?;
    let gun = setup.gun(&image);
    setup.publisher.init(&gun)?;
    setup.sign(&image, "v1")?;
    let home = setup.home();
    home.pull_json(&image.reference, &[]);
    let before = setup.publisher.root_cert_ids(&gun)?;

    setup.publisher.rotate_key(&gun, "root")?;
    setup.publisher.rotate_key(&gun, "targets")?;
    setup.sign(&image, "v1")?;
    let after = setup.publisher.root_cert_ids(&gun)?;
    assert_ne!(before, after, "the root key changed");
    let pulled = home.pull_json(&image.reference, &[]);
    assert_eq!(pulled["verified"], "notary");
    let cached = fs::read(
        home.cache_dir()
            .join("notary/tuf")
            .join(&gun)
            .join("metadata/root.json"),
    )?;
    assert_eq!(
        cached,
        setup.notary.metadata(&gun, "root"),
        "the new root is cached"
    );
    Ok(())
}

#[test]
fn trust_pinning_certs_ca_and_disable_tofu() -> TestResult {
    let setup = Setup::new()?;
    let images = Images::new(&setup.registry)?;
    let image = images.push_busybox("notary/pinned", "v1", Format::Docker)?;
    let gun = setup.gun(&image);
    let ca = SigningCa::new();
    let root = ca.root_key(&gun, KeyAlgorithm::Ecdsa);
    setup.publisher.init_with_root_key(&gun, &root)?;
    setup.sign(&image, "v1")?;
    let ids = setup.publisher.root_cert_ids(&gun)?;
    let notary_url = setup.notary.url().to_string();

    // Pinned to the published root's certificate: pulls. Pinned by wildcard to another: no.
    let home = setup.home_with(
        &notary_url,
        json!({"trust_pinning": {"certs": {gun.clone(): ids}}}),
    );
    home.pull_json(&image.reference, &[]);
    let prefix = format!("{}/notary/*", setup.registry.host());
    let home = setup.home_with(
        &notary_url,
        json!({"trust_pinning": {"certs": {prefix: ["0".repeat(64)]}}}),
    );
    expect_refusal(&home, &image, PINNING, "none of the pinned certificates");

    // The CA that issued the root certificate: pulls; another CA: refused.
    let home = setup.home_with(
        &notary_url,
        json!({"trust_pinning": {"ca": {setup.registry.host(): ca.ca_file()}}}),
    );
    home.pull_json(&image.reference, &[]);
    let stranger = SigningCa::new();
    let home = setup.home_with(
        &notary_url,
        json!({"trust_pinning": {"ca": {gun.clone(): stranger.ca_file()}}}),
    );
    expect_refusal(&home, &image, PINNING, "not issued by a pinned CA");

    // Nothing pinned and no first use allowed: refused until a root is cached.
    let home = setup.home_with(
        &notary_url,
        json!({"trust_pinning": {"disable_tofu": true}}),
    );
    expect_refusal(&home, &image, PINNING, "disable_tofu");
    Ok(())
}

#[test]
fn unreachable_server_uses_unexpired_cached_trust_data() -> TestResult {
    let mut setup = Setup::new()?;
    let images = Images::new(&setup.registry)?;
    let image = images.push_busybox("notary/offline", "v1", Format::Docker)?;
    let gun = setup.gun(&image);
    setup.publisher.init(&gun)?;
    setup.sign(&image, "v1")?;
    let home = setup.home();
    home.pull_json(&image.reference, &[]);

    // The server goes away: the cached chain still vouches for v1, with a warning.
    drop(std::mem::replace(
        &mut setup.notary,
        NotaryServer::builder().plain_http().start(),
    ));
    let output = support::pull::run(&mut home.pull_command(&image.reference, &[]));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("Notary server unreachable"), "{stderr}");
    let pulled: Value = serde_json::from_slice(&output.stdout)?;
    assert_eq!(pulled["verified"], "notary");
    Ok(())
}

/// A plain-HTTP notary-server behind the fault proxy, with `image` signed as tag `v1`.
struct Proxied {
    setup: Setup,
    proxy: Proxy,
    image: PushedImage,
    gun: String,
}

impl Proxied {
    fn new(repo: &str) -> Result<Proxied, Box<dyn Error>> {
        let setup = Setup::with_notary(NotaryServer::builder().plain_http().start())?;
        let upstream = setup.notary.url();
        let upstream = format!(
            "{}:{}",
            upstream.host_str().ok_or("host")?,
            upstream.port().ok_or("port")?
        );
        let proxy = Proxy::start("127.0.0.1:0", &upstream)?;
        let image = Images::new(&setup.registry)?.push_busybox(repo, "v1", Format::Docker)?;
        let gun = setup.gun(&image);
        setup.publisher.init(&gun)?;
        setup.sign(&image, "v1")?;
        Ok(Proxied {
            setup,
            proxy,
            image,
            gun,
        })
    }

    fn home(&self) -> ConcilHome {
        self.setup
            .home_with(&format!("http://{}", self.proxy.addr()), json!({}))
    }
}

#[test]
fn tampered_metadata_is_refused() -> TestResult {
    let proxied = Proxied::new("notary/tampered")?;
    let home = proxied.home();

    // A byte of targets.json changed: its hash no longer matches what the snapshot signed.
    proxied.proxy.set_path_faults(vec![PathFault::always(
        PathMatch::TufRole("targets".into()),
        PathAction::FlipByte { offset: 40 },
    )]);
    expect_refusal(
        &home,
        &proxied.image,
        WRONG_CONTENT,
        "does not match what snapshot signed",
    );
    assert!(proxied.proxy.path_faulted_responses() > 0);

    // A byte of timestamp.json (which nothing hashes) changed: its signature fails.
    proxied.proxy.set_path_faults(vec![PathFault::always(
        PathMatch::TufRole("timestamp".into()),
        PathAction::FlipByte { offset: 60 },
    )]);
    let error = expect_refusal(&home, &proxied.image, SIGNATURE_INVALID, "timestamp");
    assert!(
        error.contains("signature") || error.contains("malformed"),
        "{error}"
    );

    // Nothing was cached by the refused pulls; without faults the pull goes through.
    proxied.proxy.set_path_faults(Vec::new());
    home.pull_json(&proxied.image.reference, &[]);
    Ok(())
}

#[test]
fn older_metadata_after_newer_is_a_rollback() -> TestResult {
    let proxied = Proxied::new("notary/rollback")?;
    let setup = &proxied.setup;
    let old_timestamp = setup.notary.metadata(&proxied.gun, "timestamp");
    let old_snapshot = setup.notary.metadata(&proxied.gun, "snapshot");
    let old_targets = setup.notary.metadata(&proxied.gun, "targets");
    // A second publish (v2 added): every role but root gets a new version.
    let v2 = Images::new(&setup.registry)?.push_layered("notary/rollback", "v2", Format::Oci)?;
    setup.sign(&v2, "v2")?;
    let home = proxied.home();
    home.pull_json(&proxied.image.reference, &[]);

    // The server (or a mirror, or an attacker) serves the first publish again.
    let replay = |role: &str, body: &[u8]| {
        PathFault::always(
            PathMatch::TufRole(role.into()),
            PathAction::Replace {
                body: body.to_vec(),
            },
        )
    };
    proxied.proxy.set_path_faults(vec![
        replay("timestamp", &old_timestamp),
        replay("snapshot", &old_snapshot),
        replay("targets", &old_targets),
    ]);
    // Pulled before: the layers stay, but the old trust data is not accepted.
    expect_exit(&home, &proxied.image, ROLLBACK, "rollback");
    Ok(())
}

#[test]
fn expired_metadata_is_refused() -> TestResult {
    let proxied = Proxied::new("notary/expired")?;
    let image = &proxied.image;
    let sha256: [u8; 32] = Sha256::digest(&image.manifest).into();
    let build = |expires_in: Duration, role: Role| {
        let mut repo = TufRepo::new(&proxied.gun);
        repo.target("v1", image.manifest.len() as u64, sha256);
        let now = SystemTime::now();
        repo.expires(role, now.checked_sub(expires_in).unwrap_or(now));
        repo.build()
    };

    // Metadata written by the test's own signer, served instead of the server's: valid
    // first (so the signer's format is accepted), then with an expired targets role.
    let fresh = {
        let mut repo = TufRepo::new(&proxied.gun);
        repo.target("v1", image.manifest.len() as u64, sha256);
        repo.build()
    };
    proxied.proxy.set_path_faults(fresh.replacing_faults());
    let home = proxied.home();
    home.pull_json(&image.reference, &[]);

    for role in [Role::Targets, Role::Timestamp] {
        let home = proxied.home();
        proxied
            .proxy
            .set_path_faults(build(Duration::from_secs(3600), role).replacing_faults());
        expect_refusal(&home, image, EXPIRED, "expired at");
    }
    Ok(())
}

#[test]
fn outage_after_the_root_uses_the_cache_and_missing_files_are_named() -> TestResult {
    let proxied = Proxied::new("notary/outage")?;
    let home = proxied.home();
    home.pull_json(&proxied.image.reference, &[]);

    // Warm: snapshot and targets are cached with the hashes the timestamp and snapshot list,
    // so they are not asked for again (a broken server for them goes unnoticed).
    proxied.proxy.set_path_faults(vec![
        PathFault::always(
            PathMatch::TufRole("snapshot".into()),
            PathAction::Status { code: 500 },
        ),
        PathFault::always(
            PathMatch::TufRole("targets".into()),
            PathAction::Status { code: 500 },
        ),
    ]);
    let output = support::pull::run(&mut home.pull_command(&proxied.image.reference, &[]));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(!stderr.contains("unreachable"), "{stderr}");
    assert_eq!(proxied.proxy.path_faulted_responses(), 0);

    // The server answers root.json but fails on the timestamp: the cached chain stands in.
    proxied.proxy.set_path_faults(vec![PathFault::always(
        PathMatch::TufRole("timestamp".into()),
        PathAction::Status { code: 503 },
    )]);
    let output = support::pull::run(&mut home.pull_command(&proxied.image.reference, &[]));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("Notary server unreachable"), "{stderr}");

    // A file the snapshot lists is gone (and not cached): named as missing, not "not signed".
    proxied.proxy.set_path_faults(vec![PathFault::always(
        PathMatch::TufRole("targets".into()),
        PathAction::Status { code: 404 },
    )]);
    let home = proxied.home();
    let failure = home.pull_failure(&proxied.image.reference, &[]);
    assert_eq!(failure.code, Some(1), "{}", failure.stderr);
    assert!(
        failure.error.contains("does not have targets.") && failure.error.contains("snapshot"),
        "{}",
        failure.error
    );
    Ok(())
}

/// Pulls on nodes sharing one cache update the same trust data at once: each verifies, and
/// the cache ends up holding the served chain (updates take a lock on the collection).
#[test]
fn concurrent_pulls_share_the_trust_cache() -> TestResult {
    let setup = Setup::new()?;
    let images = Images::new(&setup.registry)?;
    let image = images.push_busybox("notary/shared", "v1", Format::Docker)?;
    let gun = setup.gun(&image);
    setup.publisher.init(&gun)?;
    setup.sign(&image, "v1")?;
    let home = setup.home();

    let children: Vec<_> = (0..4)
        .map(|_| {
            home.pull_command(&image.reference, &[])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
        })
        .collect::<Result<_, _>>()?;
    for child in children {
        let output = child.wait_with_output()?;
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let pulled: Value = serde_json::from_slice(&output.stdout)?;
        assert_eq!(pulled["verified"], "notary");
    }
    let metadata = home
        .cache_dir()
        .join("notary/tuf")
        .join(&gun)
        .join("metadata");
    for role in ["root", "timestamp", "snapshot", "targets"] {
        let cached = fs::read(metadata.join(format!("{role}.json")))?;
        assert_eq!(cached, setup.notary.metadata(&gun, role), "{role}");
    }
    let leftovers: Vec<_> = fs::read_dir(&metadata)?
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    Ok(())
}

/// After the timestamp key is rotated (a new root lists the new key), the new key's versions
/// start afresh: a timestamp version below the one trusted before is accepted (TUF's
/// fast-forward recovery); with the old key it would be a rollback.
#[test]
fn a_rotated_timestamp_key_starts_its_own_versions() -> TestResult {
    let proxied = Proxied::new("notary/fastforward")?;
    let image = &proxied.image;
    let sha256: [u8; 32] = Sha256::digest(&image.manifest).into();
    let mut repo = TufRepo::new(&proxied.gun);
    repo.target("v1", image.manifest.len() as u64, sha256)
        .version(Role::Timestamp, 100);
    proxied
        .proxy
        .set_path_faults(repo.build().replacing_faults());
    let home = proxied.home();
    home.pull_json(&image.reference, &[]);

    // Same keys, lower version: rollback.
    repo.version(Role::Timestamp, 50);
    proxied
        .proxy
        .set_path_faults(repo.build().replacing_faults());
    expect_exit(&home, image, ROLLBACK, "rollback");

    // New timestamp key in root version 2: version 1 of the new key is accepted.
    repo.rotate_keys(Role::Timestamp)
        .version(Role::Root, 2)
        .version(Role::Timestamp, 1);
    proxied
        .proxy
        .set_path_faults(repo.build().replacing_faults());
    let pulled = home.pull_json(&image.reference, &[]);
    assert_eq!(pulled["verified"], "notary");
    Ok(())
}
