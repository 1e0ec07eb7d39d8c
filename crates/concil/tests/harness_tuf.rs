//! Self-tests of the Notary fault-injection support: the proxy's path faults alter exactly the
//! responses they match (in front of a real registry and a real notary-server), and the real
//! `notary` client accepts what the test signer (`support::tuf`) signs, and refuses it expired,
//! under-signed, or rolled back.

use concil_test_support as support;

use std::error::Error;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, SystemTime};

use serde_json::Value;
use sha2::Digest as _;
use support::notary::{KeyAlgorithm, NotaryPublisher, NotaryServer, SigningCa};
use support::proxy::{PathAction, PathFault, PathMatch, Proxy};
use support::registry::{Format, Registry};
use support::tuf::{Files, KeyType, Role, TufRepo};

type TestResult = Result<(), Box<dyn Error>>;

const GUN: &str = "127.0.0.1:5000/harness/tuf";

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .build()
        .into()
}

/// `GET url` with `accept`: the status and the whole body.
fn get(url: &str, accept: &str) -> Result<(u16, Vec<u8>), Box<dyn Error>> {
    let mut response = agent().get(url).header("Accept", accept).call()?;
    let body = response.body_mut().read_to_vec()?;
    Ok((response.status().as_u16(), body))
}

/// The positions where `a` and `b` differ (they have the same length).
fn differing(a: &[u8], b: &[u8]) -> Vec<usize> {
    assert_eq!(a.len(), b.len(), "lengths differ");
    (0..a.len()).filter(|&i| a.get(i) != b.get(i)).collect()
}

#[test]
fn proxy_path_faults_alter_only_the_matching_responses() -> TestResult {
    let registry = Registry::plain();
    let v1 = registry.push_test_image("test/paths", "v1", Format::Oci, "one");
    let v2 = registry.push_test_image("test/paths", "v2", Format::Oci, "two");
    let proxy = Proxy::start("127.0.0.1:0", &registry.host())?;
    let base = format!("http://{}/v2/test/paths", proxy.addr());
    let manifest = |tag: &str| get(&format!("{base}/manifests/{tag}"), v1.media_type);
    let v1_matcher = || PathMatch::Suffix("/manifests/v1".to_owned());

    proxy.set_path_faults(vec![PathFault {
        path: v1_matcher(),
        action: PathAction::FlipByte { offset: 5 },
        times: Some(1),
    }]);
    assert_eq!(manifest("v2")?, (200, v2.manifest.clone()));
    let blob = get(&format!("{base}/blobs/{}", v1.layer_digest), "*/*")?;
    assert_eq!(blob, (200, v1.layer.clone()));
    let (status, flipped) = manifest("v1")?;
    assert_eq!(status, 200);
    assert_eq!(differing(&flipped, &v1.manifest), [5]);
    assert_eq!(
        flipped.get(5).copied(),
        v1.manifest.get(5).map(|byte| !byte)
    );
    // `times: Some(1)`: used up
    assert_eq!(manifest("v1")?, (200, v1.manifest.clone()));
    assert_eq!(proxy.path_faulted_responses(), 1);

    proxy.set_path_faults(vec![PathFault::always(
        v1_matcher(),
        PathAction::Replace {
            body: b"canned".to_vec(),
        },
    )]);
    assert_eq!(manifest("v1")?, (200, b"canned".to_vec()));
    assert_eq!(manifest("v2")?, (200, v2.manifest.clone()));

    proxy.set_path_faults(vec![PathFault::always(
        v1_matcher(),
        PathAction::Status { code: 503 },
    )]);
    assert_eq!(manifest("v1")?, (503, Vec::new()));
    assert_eq!(manifest("v2")?, (200, v2.manifest.clone()));

    proxy.set_path_faults(vec![PathFault::always(v1_matcher(), PathAction::Drop)]);
    assert!(manifest("v1").is_err(), "a dropped connection is an error");
    assert_eq!(manifest("v2")?, (200, v2.manifest.clone()));

    proxy.set_path_faults(Vec::new());
    assert_eq!(manifest("v1")?, (200, v1.manifest.clone()));
    assert_eq!(proxy.path_faulted_responses(), 4);
    assert_eq!(proxy.faulted_responses(), 0, "no blob fault was set");
    Ok(())
}

#[test]
fn proxy_flips_notary_metadata_by_body_offset_and_matches_consistent_names() -> TestResult {
    let server = NotaryServer::builder().plain_http().start();
    let publisher = NotaryPublisher::new(&server);
    publisher.init(GUN)?;
    publisher.add_hash(GUN, "v1", 1234, &"ab".repeat(32))?;
    publisher.publish(GUN)?;
    let root = server.metadata(GUN, "root");
    let targets = server.metadata(GUN, "targets");
    // notary-server sends metadata over 2 KiB chunked; the offset must count body bytes
    assert!(root.len() > 2048, "root.json is {} bytes", root.len());
    let server_host = server.url().authority().to_owned();
    let proxy = Proxy::start("127.0.0.1:0", &server_host)?;
    let tuf = format!("http://{}/v2/{GUN}/_trust/tuf", proxy.addr());

    let offset = 2100;
    proxy.set_path_faults(vec![PathFault::always(
        PathMatch::TufRole("root".to_owned()),
        PathAction::FlipByte { offset },
    )]);
    let (status, flipped) = get(&format!("{tuf}/root.json"), "*/*")?;
    assert_eq!(status, 200);
    assert_eq!(differing(&flipped, &root), [offset as usize]);
    assert_eq!(get(&format!("{tuf}/targets.json"), "*/*")?, (200, targets));

    // the notary client asks for snapshot and targets by consistent name
    proxy.set_path_faults(vec![PathFault::always(
        PathMatch::TufRole("targets".to_owned()),
        PathAction::Replace {
            body: b"replaced".to_vec(),
        },
    )]);
    let consistent = format!("{tuf}/targets.{}.json", "0f".repeat(32));
    assert_eq!(get(&consistent, "*/*")?, (200, b"replaced".to_vec()));
    let (status, _) = get(&format!("{tuf}/targets/releases.json"), "*/*")?;
    assert_eq!(status, 404, "a delegation is not its parent role");
    let (status, _) = get(&format!("{tuf}/targets.0f.json"), "*/*")?;
    assert_eq!(
        status, 404,
        "only a sha256 checksum makes a consistent name"
    );
    assert_eq!(proxy.path_faulted_responses(), 2);
    Ok(())
}

/// A notary-server to answer the client's `GET /v2/` and a proxy that serves `files` for GUN.
struct SignedRepoServer {
    _server: NotaryServer,
    proxy: Proxy,
}

impl SignedRepoServer {
    fn start() -> Result<SignedRepoServer, Box<dyn Error>> {
        let server = NotaryServer::builder().plain_http().start();
        let proxy = Proxy::start("127.0.0.1:0", server.url().authority())?;
        Ok(SignedRepoServer {
            _server: server,
            proxy,
        })
    }

    fn serve(&self, files: &Files) {
        self.proxy.set_path_faults(files.replacing_faults());
    }

    /// `notary -s PROXY -d TRUST_DIR list GUN`.
    fn list(&self, trust_dir: &Path) -> Result<Output, Box<dyn Error>> {
        Ok(Command::new("notary")
            .arg("-s")
            .arg(format!("http://{}", self.proxy.addr()))
            .arg("-d")
            .arg(trust_dir)
            .args(["list", GUN])
            .stdin(Stdio::null())
            .output()?)
    }
}

/// The rows `notary list` printed: name, digest, size, role.
fn listed(output: &Output) -> Vec<Vec<String>> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .skip(2) // the header and its underline
        .map(|line| line.split_whitespace().map(str::to_owned).collect())
        .collect()
}

fn row(name: &str, sha256: [u8; 32], size: u64, role: &str) -> Vec<String> {
    vec![
        name.to_owned(),
        hex::encode(sha256),
        size.to_string(),
        role.to_owned(),
    ]
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts that `notary list` failed, saying `reason` (it prints `* fatal: …` on stdout).
fn assert_refused(output: &Output, reason: &str) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        !output.status.success() && stdout.contains(reason),
        "expected notary list to fail with {reason:?}; it said:\n{stdout}{}",
        stderr(output)
    );
}

fn sha256(text: &str) -> [u8; 32] {
    sha2::Sha256::digest(text.as_bytes()).into()
}

/// Whether `text` is a key ID (64 hex digits).
fn is_key_id(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `value` with every scalar replaced by its JSON type, key IDs by `<keyid>`, and a map from
/// key IDs by `{"<keyid>": [its values' shapes, sorted]}`; names (`_type`, key types, methods,
/// role names) stay. Two repositories in the same format have the same shape.
fn shape(value: &Value) -> Value {
    match value {
        Value::Object(fields)
            if !fields.is_empty() && fields.keys().all(|name| is_key_id(name)) =>
        {
            let mut keys: Vec<Value> = fields.values().map(shape).collect();
            keys.sort_by_key(Value::to_string);
            serde_json::json!({ "<keyid>": keys })
        }
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(name, field)| (name.clone(), shape(field)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(shape).collect()),
        Value::String(text) if is_key_id(text) => "<keyid>".into(),
        Value::String(text)
            if [
                "Root",
                "Targets",
                "Snapshot",
                "Timestamp",
                "ecdsa",
                "ecdsa-x509",
                "ed25519",
                "eddsa",
                "targets/releases",
                "",
            ]
            .contains(&text.as_str()) =>
        {
            value.clone()
        }
        Value::String(_) => "<string>".into(),
        Value::Number(_) => "<number>".into(),
        Value::Bool(_) => "<bool>".into(),
        Value::Null => Value::Null,
    }
}

#[test]
fn signer_writes_what_notary_publishes() -> TestResult {
    let server = NotaryServer::builder().plain_http().start();
    let publisher = NotaryPublisher::new(&server);
    let ca = SigningCa::new();
    let releaser = ca.delegation_key("releaser", KeyAlgorithm::Ecdsa);
    publisher.init(GUN)?;
    publisher.add_hash(GUN, "v1", 1234, &hex::encode(sha256("one")))?;
    publisher.publish(GUN)?;
    publisher.delegation_add(
        GUN,
        "targets/releases",
        &releaser.cert_file,
        &releaser.key_file,
    )?;
    publisher.add_hash_to_role(
        GUN,
        "targets/releases",
        "v2",
        99,
        &hex::encode(sha256("two")),
    )?;
    publisher.publish(GUN)?;

    let mut repo = TufRepo::new(GUN);
    repo.target("v1", 1234, sha256("one"))
        .release_target("v2", 99, sha256("two"));
    let files = repo.build();
    for role in [
        Role::Root,
        Role::Targets,
        Role::Snapshot,
        Role::Timestamp,
        Role::Releases,
    ] {
        let published = server.metadata(GUN, role.name());
        let signed = files.get(role).ok_or("no delegation file")?;
        let published_json: Value = serde_json::from_slice(&published)?;
        let signed_json: Value = serde_json::from_slice(signed)?;
        assert_eq!(
            shape(&signed_json),
            shape(&published_json),
            "{}",
            role.name()
        );
        // the same layout: `signed` first, no whitespace
        assert_eq!(signed.get(..20), published.get(..20), "{}", role.name());
        assert!(!signed.contains(&b' ') && !signed.contains(&b'\n'));
    }
    Ok(())
}

#[test]
fn notary_cli_lists_what_the_signer_signed() -> TestResult {
    let mut repo = TufRepo::new(GUN);
    repo.target("v1", 1234, sha256("one"))
        .release_target("v2", 99, sha256("two"));
    let files = repo.build();
    let server = SignedRepoServer::start()?;
    server.serve(&files);
    let trust = tempfile::tempdir()?;
    let output = server.list(trust.path())?;
    assert!(output.status.success(), "notary list: {}", stderr(&output));
    assert_eq!(
        listed(&output),
        [
            row("v1", sha256("one"), 1234, "targets"),
            row("v2", sha256("two"), 99, "targets/releases"),
        ]
    );
    assert!(server.proxy.path_faulted_responses() >= 5);
    // the client pinned our root on first use
    let cached = std::fs::read(
        trust
            .path()
            .join("tuf")
            .join(GUN)
            .join("metadata/root.json"),
    )?;
    assert_eq!(cached, files.root);
    let root: serde_json::Value = serde_json::from_slice(&files.root)?;
    assert_eq!(
        root["signed"]["roles"]["root"]["keyids"][0].as_str(),
        Some(repo.root_key_id())
    );
    Ok(())
}

#[test]
fn notary_cli_accepts_other_key_types_and_thresholds() -> TestResult {
    let mut repo = TufRepo::new(GUN);
    repo.target("v1", 1, sha256("one"))
        .key_type(Role::Timestamp, KeyType::Ecdsa)
        .key_type(Role::Targets, KeyType::Ed25519)
        .threshold(Role::Snapshot, 2)
        .threshold(Role::Root, 2);
    let server = SignedRepoServer::start()?;
    server.serve(&repo.build());
    let output = server.list(tempfile::tempdir()?.path())?;
    assert!(output.status.success(), "notary list: {}", stderr(&output));
    assert_eq!(listed(&output), [row("v1", sha256("one"), 1, "targets")]);
    Ok(())
}

#[test]
fn notary_cli_refuses_expired_metadata() -> TestResult {
    let server = SignedRepoServer::start()?;
    let yesterday = SystemTime::now() - Duration::from_secs(24 * 60 * 60);
    for role in [Role::Root, Role::Targets, Role::Snapshot, Role::Timestamp] {
        let mut repo = TufRepo::new(GUN);
        repo.target("v1", 1, sha256("one")).expires(role, yesterday);
        server.serve(&repo.build());
        let output = server.list(tempfile::tempdir()?.path())?;
        assert_refused(&output, &format!("fatal: {} expired at", role.name()));
    }
    Ok(())
}

#[test]
fn notary_cli_refuses_too_few_signatures() -> TestResult {
    let server = SignedRepoServer::start()?;
    for (role, threshold, signers, reason) in [
        (Role::Targets, 1, 0, "data has no signatures"),
        (
            Role::Snapshot,
            2,
            1,
            "valid signatures did not meet threshold for snapshot",
        ),
    ] {
        let mut repo = TufRepo::new(GUN);
        repo.target("v1", 1, sha256("one"))
            .threshold(role, threshold)
            .signers(role, signers);
        server.serve(&repo.build());
        let output = server.list(tempfile::tempdir()?.path())?;
        assert_refused(&output, reason);
    }
    Ok(())
}

#[test]
fn notary_cli_follows_a_resigned_repo_and_refuses_its_rollback() -> TestResult {
    let server = SignedRepoServer::start()?;
    let trust = tempfile::tempdir()?;
    let mut repo = TufRepo::new(GUN);
    repo.target("v1", 1, sha256("one"));
    let first = repo.build();
    server.serve(&first);
    let output = server.list(trust.path())?;
    assert!(output.status.success(), "first: {}", stderr(&output));

    repo.target("v2", 2, sha256("two")).bump_versions();
    server.serve(&repo.build());
    let output = server.list(trust.path())?;
    assert!(output.status.success(), "re-signed: {}", stderr(&output));
    assert_eq!(
        listed(&output),
        [
            row("v1", sha256("one"), 1, "targets"),
            row("v2", sha256("two"), 2, "targets"),
        ]
    );

    server.serve(&first);
    let output = server.list(trust.path())?;
    assert_refused(&output, "version 1 is lower than current version 2");
    Ok(())
}

#[test]
fn notary_cli_follows_a_root_rotation_only_when_the_old_root_signed_it() -> TestResult {
    let server = SignedRepoServer::start()?;
    let trust = tempfile::tempdir()?;
    let mut repo = TufRepo::new(GUN);
    repo.target("v1", 1, sha256("one"));
    server.serve(&repo.build());
    let output = server.list(trust.path())?;
    assert!(output.status.success(), "first: {}", stderr(&output));
    let first_root_key = repo.root_key_id().to_owned();

    repo.bump_versions()
        .rotate_keys(Role::Root)
        .rotate_keys(Role::Targets);
    assert_ne!(repo.root_key_id(), first_root_key);
    let rotated = repo.build();
    server.serve(&repo.forget_retired_root_keys().build());
    let output = server.list(trust.path())?;
    assert_refused(&output, "could not rotate trust to a new trusted root");

    server.serve(&rotated);
    let output = server.list(trust.path())?;
    assert!(output.status.success(), "rotated: {}", stderr(&output));
    assert_eq!(listed(&output), [row("v1", sha256("one"), 1, "targets")]);
    Ok(())
}
