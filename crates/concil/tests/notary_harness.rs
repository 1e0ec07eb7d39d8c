//! Self-tests of the Notary v1 harness: the real notary-server serves what the real `notary`
//! client published, with the key types and signature methods the trust code must handle.

use concil_test_support as support;

use std::collections::BTreeSet;
use std::process::Command;

use base64::Engine as _;
use serde_json::Value;
use support::notary::{KeyAlgorithm, NotaryPublisher, NotaryServer, SigningCa, TimestampKey};

/// A GUN as Docker forms it for a registry at 127.0.0.1:5000.
const GUN: &str = "127.0.0.1:5000/harness/app";

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("metadata is JSON")
}

use support::sha256_hex;

/// A `hashes.sha256` value of TUF metadata (base64) as hex.
fn hash_hex(hashes: &Value) -> String {
    let encoded = hashes["sha256"].as_str().expect("sha256 hash");
    hex::encode(
        base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .expect("base64 hash"),
    )
}

/// The `method` of each signature, sorted.
fn methods(document: &Value) -> Vec<String> {
    let mut methods: Vec<String> = document["signatures"]
        .as_array()
        .expect("signatures")
        .iter()
        .map(|signature| signature["method"].as_str().expect("method").to_owned())
        .collect();
    methods.sort();
    methods
}

fn signer_ids(document: &Value) -> BTreeSet<String> {
    document["signatures"]
        .as_array()
        .expect("signatures")
        .iter()
        .map(|signature| signature["keyid"].as_str().expect("keyid").to_owned())
        .collect()
}

/// The key type of every key `root.json` names for `role`.
fn role_key_types(root: &Value, role: &str) -> Vec<String> {
    root["signed"]["roles"][role]["keyids"]
        .as_array()
        .expect("role key IDs")
        .iter()
        .map(|id| {
            let id = id.as_str().expect("key ID");
            root["signed"]["keys"][id]["keytype"]
                .as_str()
                .expect("listed key")
                .to_owned()
        })
        .collect()
}

fn role_key_ids(root: &Value, role: &str) -> BTreeSet<String> {
    root["signed"]["roles"][role]["keyids"]
        .as_array()
        .expect("role key IDs")
        .iter()
        .map(|id| id.as_str().expect("key ID").to_owned())
        .collect()
}

fn version(document: &Value) -> u64 {
    document["signed"]["version"].as_u64().expect("version")
}

#[test]
fn published_tag_is_served_in_signed_metadata() {
    let server = NotaryServer::start();
    assert_eq!(server.url().scheme(), "https");
    assert!(server.ca_file().is_some());
    let publisher = NotaryPublisher::new(&server);
    let content = b"the manifest the tag points to";
    let digest = sha256_hex(content);
    publisher.init(GUN).unwrap();
    publisher
        .add_hash(GUN, "v1", content.len() as u64, &digest)
        .unwrap();
    publisher.publish(GUN).unwrap();

    let root = json(&server.metadata(GUN, "root"));
    let targets_bytes = server.metadata(GUN, "targets");
    let snapshot_bytes = server.metadata(GUN, "snapshot");
    let timestamp = json(&server.metadata(GUN, "timestamp"));
    let targets = json(&targets_bytes);
    let snapshot = json(&snapshot_bytes);

    let target = &targets["signed"]["targets"]["v1"];
    assert_eq!(hash_hex(&target["hashes"]), digest);
    assert_eq!(target["length"], content.len());

    assert_eq!(role_key_types(&root, "root"), ["ecdsa-x509"]);
    assert_eq!(role_key_types(&root, "targets"), ["ecdsa"]);
    assert_eq!(role_key_types(&root, "snapshot"), ["ecdsa"]);
    assert_eq!(role_key_types(&root, "timestamp"), ["ed25519"]);
    assert_eq!(methods(&root), ["ecdsa"]);
    assert_eq!(methods(&targets), ["ecdsa"]);
    assert_eq!(methods(&snapshot), ["ecdsa"]);
    assert_eq!(methods(&timestamp), ["eddsa"]);
    assert_eq!(signer_ids(&targets), role_key_ids(&root, "targets"));
    assert_eq!(signer_ids(&timestamp), role_key_ids(&root, "timestamp"));

    // Each role's bytes as served are what the role above it pins.
    let pinned_snapshot = &timestamp["signed"]["meta"]["snapshot"];
    assert_eq!(pinned_snapshot["length"], snapshot_bytes.len());
    assert_eq!(
        hash_hex(&pinned_snapshot["hashes"]),
        sha256_hex(&snapshot_bytes)
    );
    let pinned_targets = &snapshot["signed"]["meta"]["targets"];
    assert_eq!(pinned_targets["length"], targets_bytes.len());
    assert_eq!(
        hash_hex(&pinned_targets["hashes"]),
        sha256_hex(&targets_bytes)
    );

    // A second publish moves targets, snapshot and timestamp on; root stays.
    publisher
        .add_hash(GUN, "v2", 7, &sha256_hex(b"another"))
        .unwrap();
    publisher.remove(GUN, "v1").unwrap();
    publisher.publish(GUN).unwrap();
    let root_again = json(&server.metadata(GUN, "root"));
    let targets_again = json(&server.metadata(GUN, "targets"));
    assert_eq!(version(&root_again), version(&root));
    assert!(version(&targets_again) > version(&targets));
    assert!(version(&json(&server.metadata(GUN, "snapshot"))) > version(&snapshot));
    assert!(version(&json(&server.metadata(GUN, "timestamp"))) > version(&timestamp));
    assert!(targets_again["signed"]["targets"]["v1"].is_null());
    assert_eq!(targets_again["signed"]["targets"]["v2"]["length"], 7);

    // The real client verifies and lists what the server holds.
    let listed = publisher.list(GUN).unwrap();
    assert!(listed.contains("v2") && !listed.contains("v1"), "{listed}");
}

#[test]
fn plain_http_server_serves_metadata() {
    let server = NotaryServer::builder().plain_http().start();
    assert_eq!(server.url().scheme(), "http");
    assert!(server.ca_file().is_none());
    let publisher = NotaryPublisher::new(&server);
    publisher.init(GUN).unwrap();
    publisher
        .add_hash(GUN, "latest", 3, &sha256_hex(b"abc"))
        .unwrap();
    publisher.publish(GUN).unwrap();
    let targets = json(&server.metadata(GUN, "targets"));
    assert_eq!(
        hash_hex(&targets["signed"]["targets"]["latest"]["hashes"]),
        sha256_hex(b"abc")
    );
}

#[test]
fn signer_makes_ecdsa_timestamps() {
    let server = NotaryServer::builder()
        .timestamp_key(TimestampKey::Ecdsa)
        .start();
    let publisher = NotaryPublisher::new(&server);
    publisher.init(GUN).unwrap();
    publisher.publish(GUN).unwrap();
    let root = json(&server.metadata(GUN, "root"));
    let timestamp = json(&server.metadata(GUN, "timestamp"));
    assert_eq!(role_key_types(&root, "timestamp"), ["ecdsa"]);
    assert_eq!(methods(&timestamp), ["ecdsa"]);
    assert_eq!(signer_ids(&timestamp), role_key_ids(&root, "timestamp"));
}

#[test]
fn delegation_targets_are_signed_by_its_keys() {
    let server = NotaryServer::start();
    let publisher = NotaryPublisher::new(&server);
    let ca = SigningCa::new();
    let ecdsa = ca.delegation_key("alice", KeyAlgorithm::Ecdsa);
    let rsa = ca.delegation_key("bob", KeyAlgorithm::Rsa);
    publisher.init(GUN).unwrap();
    publisher.publish(GUN).unwrap();
    for key in [&ecdsa, &rsa] {
        publisher
            .delegation_add(GUN, "targets/releases", &key.cert_file, &key.key_file)
            .unwrap();
    }
    let digest = sha256_hex(b"released");
    publisher
        .add_hash_to_role(GUN, "targets/releases", "1.0", 8, &digest)
        .unwrap();
    publisher.publish(GUN).unwrap();

    let targets = json(&server.metadata(GUN, "targets"));
    let delegations = &targets["signed"]["delegations"];
    let releases = &delegations["roles"][0];
    assert_eq!(releases["name"], "targets/releases");
    let mut key_types: Vec<&str> = releases["keyids"]
        .as_array()
        .expect("delegation key IDs")
        .iter()
        .map(|id| {
            delegations["keys"][id.as_str().expect("key ID")]["keytype"]
                .as_str()
                .expect("delegation key")
        })
        .collect();
    key_types.sort();
    assert_eq!(key_types, ["ecdsa-x509", "rsa-x509"]);
    assert!(targets["signed"]["targets"]["1.0"].is_null());

    let release_bytes = server.metadata(GUN, "targets/releases");
    let release = json(&release_bytes);
    assert_eq!(
        hash_hex(&release["signed"]["targets"]["1.0"]["hashes"]),
        digest
    );
    assert_eq!(methods(&release), ["ecdsa", "rsapss"]);
    let snapshot = json(&server.metadata(GUN, "snapshot"));
    assert_eq!(
        hash_hex(&snapshot["signed"]["meta"]["targets/releases"]["hashes"]),
        sha256_hex(&release_bytes)
    );
}

#[test]
fn root_rotation_is_signed_by_old_and_new_root() {
    let server = NotaryServer::start();
    let publisher = NotaryPublisher::new(&server);
    publisher.init(GUN).unwrap();
    publisher.publish(GUN).unwrap();
    let first_bytes = server.metadata(GUN, "root");
    let first = json(&first_bytes);
    let old_ids = role_key_ids(&first, "root");
    assert_eq!(
        publisher.root_cert_ids(GUN).unwrap(),
        old_ids.iter().cloned().collect::<Vec<_>>()
    );

    publisher.rotate_key(GUN, "root").unwrap();
    let rotated = json(&server.metadata(GUN, "root"));
    let new_ids = role_key_ids(&rotated, "root");
    assert_eq!(version(&rotated), version(&first) + 1);
    assert!(new_ids.is_disjoint(&old_ids), "{new_ids:?} vs {old_ids:?}");
    let signers = signer_ids(&rotated);
    assert!(signers.len() >= 2, "{signers:?}");
    assert!(signers.is_superset(&old_ids) && signers.is_superset(&new_ids));
    // The old root stays available by version, as a client walking the chain needs it.
    assert_eq!(server.metadata(GUN, "1.root"), first_bytes);
}

#[test]
fn root_key_certified_by_own_ca() {
    let server = NotaryServer::start();
    let publisher = NotaryPublisher::new(&server);
    let ca = SigningCa::new();
    let root_key = ca.root_key(GUN, KeyAlgorithm::Rsa);
    publisher.init_with_root_key(GUN, &root_key).unwrap();
    publisher.publish(GUN).unwrap();

    let root = json(&server.metadata(GUN, "root"));
    assert_eq!(role_key_types(&root, "root"), ["rsa-x509"]);
    assert_eq!(methods(&root), ["rsapss"]);
    let ids = publisher.root_cert_ids(GUN).unwrap();
    assert_eq!(ids.len(), 1);
    assert_eq!(
        ids.iter().cloned().collect::<BTreeSet<_>>(),
        role_key_ids(&root, "root")
    );

    // root.json carries the certificate the CA issued (base64 of its PEM).
    let public = root["signed"]["keys"][&ids[0]]["keyval"]["public"]
        .as_str()
        .expect("root certificate");
    let pem = base64::engine::general_purpose::STANDARD
        .decode(public)
        .expect("base64 PEM");
    assert_eq!(pem, std::fs::read(&root_key.cert_file).unwrap());
    let output = Command::new("openssl")
        .arg("verify")
        .arg("-CAfile")
        .arg(ca.ca_file())
        .arg(&root_key.cert_file)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn restart_forgets_every_gun() {
    let mut server = NotaryServer::start();
    let publisher = NotaryPublisher::new(&server);
    publisher.init(GUN).unwrap();
    publisher.publish(GUN).unwrap();
    let (status, _) = server.fetch_metadata(GUN, "root");
    assert_eq!(status, 200);
    let url = server.url();

    server.restart();
    assert_eq!(server.url(), url);
    let (status, body) = server.fetch_metadata(GUN, "root");
    assert_eq!(status, 404, "{}", String::from_utf8_lossy(&body));
    // The client still holds its keys: re-initialising publishes the GUN again.
    publisher.init(GUN).unwrap();
    publisher.publish(GUN).unwrap();
    assert_eq!(server.fetch_metadata(GUN, "root").0, 200);
}
