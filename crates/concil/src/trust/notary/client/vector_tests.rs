//! The verifier against real metadata made by the `notary` client 0.7 and `notary-server`
//! (`vectors/`, see its README): every key type and signature method Notary uses, accepted as
//! signed and refused once a byte of what was signed changes. Verified at a fixed time (the
//! vectors' timestamps expire 14 days after they were made).

use std::path::PathBuf;

use super::*;

/// When `scripts/notary-vectors.sh` made the vectors (their README says).
const MADE_AT: &str = "2026-11-28T02:55:03Z";
/// sha256 of the bytes every set signs as tag `v1`.
const V1_SHA256: &str = "fb79b100743cf29fe9d97692fd42ec2869245462bcbaadd4add0dae0d47237d6";
const HOUR: i64 = 3600;

/// A role whose served bytes a test changes, and how.
type Change<'a> = Option<(&'a str, &'a dyn Fn(Vec<u8>) -> Vec<u8>)>;

fn made_at() -> i64 {
    metadata::parse_time(MADE_AT).unwrap() + HOUR
}

fn vector(set: &str, file: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("src/trust/notary/vectors")
        .join(set)
        .join(file);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn gun_of(set: &str) -> String {
    format!("registry.example:5000/vectors/{set}")
}

fn client(set: &str, pinning: serde_json::Value) -> NotaryClient {
    client_for(&gun_of(set), pinning)
}

fn client_for(gun: &str, pinning: serde_json::Value) -> NotaryClient {
    NotaryClient::new(NotarySettings {
        server: Url::parse("https://notary.invalid/").unwrap(),
        gun: gun.to_owned(),
        credentials: None,
        tls: TlsSettings::default(),
        network: NetworkSettings::default(),
        trust_dir: PathBuf::from("/nonexistent"),
        pinning: TrustPinning::from_value(&pinning, std::path::Path::new("test.json")).unwrap(),
    })
    .unwrap()
}

/// Serves a set's files by role name (checksummed names map to the plain file), with
/// `change` applied to the bytes of one role.
fn verify(
    set: &str,
    root_file: &str,
    cached_root: Option<&str>,
    pinning: serde_json::Value,
    now: i64,
    change: Change<'_>,
) -> Result<NotaryTarget, NotaryError> {
    verify_as(
        &gun_of(set),
        set,
        root_file,
        cached_root,
        pinning,
        now,
        change,
    )
}

/// [`verify`] with a set's files served for the collection `gun`.
fn verify_as(
    gun: &str,
    set: &str,
    root_file: &str,
    cached_root: Option<&str>,
    pinning: serde_json::Value,
    now: i64,
    change: Change<'_>,
) -> Result<NotaryTarget, NotaryError> {
    let client = client_for(gun, pinning);
    let mut cached = Cached::default();
    if let Some(file) = cached_root {
        cached.root = Some(metadata::parse(vector(set, file)).unwrap());
    }
    let serve = |role: &str, bytes: Vec<u8>| match change {
        Some((changed, f)) if changed == role => f(bytes),
        _ => bytes,
    };
    let mut fetch = |name: &str, _: Option<&FileMeta>| {
        let role = name.split_once('.').map_or(name, |(role, _)| role);
        let file = match role {
            RELEASES => "targets/releases.json".to_owned(),
            role => format!("{role}.json"),
        };
        Ok(Some(serve(role, vector(set, &file))))
    };
    let root = serve(ROOT, vector(set, root_file));
    let trusted = client.verify_chain(root, &cached, &mut fetch, now)?;
    client.find(
        &trusted,
        Wanted {
            tag: Some("v1"),
            digest: None,
        },
    )
}

/// Changes one character inside `signed` (the first `"version":`'s digit), so the bytes no
/// longer carry the signature.
fn bump_version(bytes: Vec<u8>) -> Vec<u8> {
    let text = String::from_utf8(bytes).unwrap();
    let at = text.find("\"version\":").unwrap() + "\"version\":".len();
    let mut text = text.into_bytes();
    text[at] = if text[at] == b'9' { b'8' } else { text[at] + 1 };
    text
}

#[test]
fn every_set_verifies_and_signs_v1() {
    for set in ["ecdsa-root", "rsa-root", "ecdsa-timestamp", "delegation"] {
        let target = verify(
            set,
            "root.json",
            None,
            serde_json::json!({}),
            made_at(),
            None,
        )
        .unwrap_or_else(|e| panic!("{set}: {e}"));
        assert_eq!(target.digest, format!("sha256:{V1_SHA256}"), "{set}");
        let expected_role = if set == "delegation" {
            RELEASES
        } else {
            TARGETS
        };
        assert_eq!(target.role, expected_role, "{set}");
        assert!(target
            .check_manifest(b"concil notary test vector target")
            .is_ok());
        assert!(target
            .check_manifest(b"concil notary test vector targeT")
            .is_err());
    }
}

/// Each role of each set, changed by one byte inside `signed`: ecdsa-x509 and rsa-x509 roots
/// (methods ecdsa and rsapss), ecdsa targets and snapshot, eddsa and ecdsa timestamps, and a
/// delegation signed by an ecdsa-x509 and an rsa-x509 key.
#[test]
fn a_changed_byte_breaks_every_key_type_and_method() {
    let cases = [
        ("ecdsa-root", ROOT),
        ("ecdsa-root", TIMESTAMP),
        ("rsa-root", ROOT),
        ("ecdsa-timestamp", TIMESTAMP),
    ];
    for (set, role) in cases {
        let error = verify(
            set,
            "root.json",
            None,
            serde_json::json!({}),
            made_at(),
            Some((role, &bump_version)),
        )
        .expect_err(set);
        assert!(
            matches!(&error, NotaryError::Threshold { role: r, valid: 0, .. } if r == role),
            "{set} {role}: {error}"
        );
    }
    // Snapshot, targets and delegations are listed by hash: a changed byte is a mismatch
    // before any signature is checked; their signatures are covered by the tests below.
    for (set, role) in [
        ("ecdsa-root", SNAPSHOT),
        ("ecdsa-root", TARGETS),
        ("delegation", RELEASES),
    ] {
        let error = verify(
            set,
            "root.json",
            None,
            serde_json::json!({}),
            made_at(),
            Some((role, &bump_version)),
        )
        .expect_err(role);
        assert!(
            matches!(&error, NotaryError::MetadataMismatch { role: r, .. } if r == role),
            "{role}: {error}"
        );
    }
}

/// The ecdsa (raw r‖s) signatures of snapshot and targets, checked directly: valid as made,
/// invalid over other bytes.
#[test]
fn raw_ecdsa_signatures_of_snapshot_and_targets() {
    fn check<T: Role + Clone>(client: &NotaryClient, root: &SignedFile<Root>, role: &str) {
        let file = metadata::parse::<T>(vector("ecdsa-root", &format!("{role}.json"))).unwrap();
        let keys = client.role_keys(root, role).unwrap();
        let signers = client
            .check_role(&file, role, &root.signed.keys, keys, &|_| Ok(()))
            .unwrap();
        assert_eq!(signers.len(), 1, "{role}");
        let mut tampered = file.clone();
        tampered.signed_bytes.push(b' ');
        assert!(client
            .check_role(&tampered, role, &root.signed.keys, keys, &|_| Ok(()))
            .is_err());
    }
    let client = client("ecdsa-root", serde_json::json!({}));
    let root = metadata::parse::<Root>(vector("ecdsa-root", "root.json")).unwrap();
    check::<Snapshot>(&client, &root, SNAPSHOT);
    check::<Targets>(&client, &root, TARGETS);
}

/// `targets/releases` is signed by an rsa-x509 key (rsapss) and an ecdsa-x509 key (ecdsa):
/// each signature verifies with the key the targets role delegates to, and with no other.
#[test]
fn delegation_signatures_by_x509_keys() {
    let client = client("delegation", serde_json::json!({}));
    let targets = metadata::parse::<Targets>(vector("delegation", "targets.json")).unwrap();
    let releases =
        metadata::parse::<Targets>(vector("delegation", "targets/releases.json")).unwrap();
    let (keys, role) = delegation(&targets.signed, RELEASES).unwrap();
    let signers = client
        .check_role(&releases, RELEASES, keys, &role.keys, &|_| Ok(()))
        .unwrap();
    assert_eq!(signers.len(), 2);
    let methods: BTreeSet<&str> = releases
        .signatures
        .iter()
        .map(|s| s.method.as_str())
        .collect();
    assert_eq!(methods, BTreeSet::from(["ecdsa", "rsapss"]));
    for signature in &releases.signatures {
        let alone = SignedFile {
            signatures: vec![signature.clone()],
            ..releases.clone()
        };
        let both = RoleKeys {
            keyids: role.keys.keyids.clone(),
            threshold: 2,
        };
        assert!(client
            .check_role(&alone, RELEASES, keys, &both, &|_| Ok(()))
            .is_err());
        let mut other_method = alone.clone();
        other_method.signatures[0].method = if signature.method == "ecdsa" {
            "rsapss"
        } else {
            "ecdsa"
        }
        .to_owned();
        assert!(client
            .check_role(&other_method, RELEASES, keys, &role.keys, &|_| Ok(()))
            .is_err());
    }
}

#[test]
fn expired_timestamp_is_refused() {
    let later = made_at() + 15 * 24 * HOUR;
    let error = verify(
        "ecdsa-root",
        "root.json",
        None,
        serde_json::json!({}),
        later,
        None,
    )
    .unwrap_err();
    assert!(
        matches!(&error, NotaryError::Expired { role, .. } if role == TIMESTAMP),
        "{error}"
    );
}

#[test]
fn root_rotation_needs_the_old_roots_signature() {
    let rotated = verify(
        "root-rotation",
        "2.root.json",
        Some("1.root.json"),
        serde_json::json!({}),
        made_at(),
        None,
    );
    assert!(rotated.is_ok(), "{rotated:?}");

    // The new root without the old root key's signature: its own threshold is met, the old
    // root's is not.
    let drop_old_signature = |bytes: Vec<u8>| {
        let mut file: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        let old = "4910750570ff78e1914caf5415b0c3f1c1b454c05c09984b9e1e525015255589";
        file["signatures"]
            .as_array_mut()
            .unwrap()
            .retain(|signature| signature["keyid"] != old);
        // Re-serialising keeps `signed` byte-identical: it is canonical JSON already.
        serde_json::to_vec(&file).unwrap()
    };
    let error = verify(
        "root-rotation",
        "2.root.json",
        Some("1.root.json"),
        serde_json::json!({}),
        made_at(),
        Some((ROOT, &drop_old_signature)),
    )
    .unwrap_err();
    assert!(
        matches!(&error, NotaryError::Threshold { role, valid: 0, .. } if role.contains("rotation")),
        "{error}"
    );

    // The old root served after the new one was trusted: rollback.
    let error = verify(
        "root-rotation",
        "1.root.json",
        Some("2.root.json"),
        serde_json::json!({}),
        made_at(),
        None,
    )
    .unwrap_err();
    assert!(
        matches!(
            error,
            NotaryError::Rollback {
                trusted: 2,
                served: 1,
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn pinning_by_certificate_id_and_by_ca() {
    let gun = "registry.example:5000/vectors/rsa-root";
    let root_id = "b44700d9836248aa34b365e67c2c910f8a4be6462f360164af93f3af0ceab35d";
    let pinned = |pinning| verify("rsa-root", "root.json", None, pinning, made_at(), None);
    assert!(pinned(serde_json::json!({"certs": {gun: [root_id]}})).is_ok());
    let error =
        pinned(serde_json::json!({"certs": {"registry.example:5000/*": ["00"]}})).unwrap_err();
    assert!(matches!(error, NotaryError::Pinning { .. }), "{error}");

    let ca =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/trust/notary/vectors/rsa-root/ca.crt");
    assert!(pinned(serde_json::json!({"ca": {"registry.example:5000/": ca}})).is_ok());
    // The ecdsa-root set's root is self-signed: no CA issued it.
    let error = verify(
        "ecdsa-root",
        "root.json",
        None,
        serde_json::json!({"ca": {"registry.example:5000/": ca}}),
        made_at(),
        None,
    )
    .unwrap_err();
    assert!(
        matches!(&error, NotaryError::Pinning { reason, .. } if reason.contains("not issued by a pinned CA")),
        "{error}"
    );
    let error = pinned(serde_json::json!({"disable_tofu": true})).unwrap_err();
    assert!(matches!(error, NotaryError::Pinning { .. }), "{error}");
}

#[test]
fn key_ids_are_notarys() {
    let root = metadata::parse::<Root>(vector("delegation", "root.json")).unwrap();
    for (id, key) in &root.signed.keys {
        assert_eq!(&keys::key_id(key), id);
        assert!(keys::parse_key(id, key).is_ok(), "{id}");
        assert!(keys::parse_key(&"0".repeat(64), key).is_err());
    }
}

/// Another repository's trust data (root certificate named after it) is not this one's, even
/// when its root certificate comes from the pinned CA or would be trusted on first use.
#[test]
fn root_certificates_must_name_the_collection() {
    let ca =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/trust/notary/vectors/rsa-root/ca.crt");
    let victim = "registry.example:5000/victim/app";
    for pinning in [
        serde_json::json!({"ca": {"registry.example:5000/": ca}}),
        serde_json::json!({}),
    ] {
        let error = verify_as(
            victim,
            "rsa-root",
            "root.json",
            None,
            pinning,
            made_at(),
            None,
        )
        .unwrap_err();
        let text = error.to_string();
        assert!(text.contains("not for this repository"), "{text}");
    }
}

/// A cached root that does not parse is an error naming the file, not a first use.
#[test]
fn damaged_cache_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let client = NotaryClient::new(NotarySettings {
        server: Url::parse("https://notary.invalid/").unwrap(),
        gun: gun_of("ecdsa-root"),
        credentials: None,
        tls: TlsSettings::default(),
        network: NetworkSettings::default(),
        trust_dir: dir.path().to_owned(),
        pinning: TrustPinning::default(),
    })
    .unwrap();
    let path = client.cache_path(ROOT);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, b"{\"signed\": trunc").unwrap();
    let error = client.load_cached().err().expect("refused");
    assert!(
        matches!(&error, NotaryError::Malformed { role, .. } if role.contains(&*path.to_string_lossy())),
        "{error}"
    );
}

/// `name:tag@digest`: the tag's signed digest must be the one named.
#[test]
fn tag_and_digest_must_agree() {
    let client = client("ecdsa-root", serde_json::json!({}));
    let root = vector("ecdsa-root", "root.json");
    let mut fetch = |name: &str, _: Option<&FileMeta>| {
        let role = name.split_once('.').map_or(name, |(role, _)| role);
        Ok(Some(vector("ecdsa-root", &format!("{role}.json"))))
    };
    let trusted = client
        .verify_chain(root, &Cached::default(), &mut fetch, made_at())
        .unwrap();
    let signed = Digest::parse(&format!("sha256:{V1_SHA256}")).unwrap();
    let other = Digest::parse(&format!("sha256:{}", "0".repeat(64))).unwrap();
    let wanted = |digest| Wanted {
        tag: Some("v1"),
        digest: Some(digest),
    };
    assert!(client.find(&trusted, wanted(&signed)).is_ok());
    let error = client.find(&trusted, wanted(&other)).unwrap_err();
    assert!(
        matches!(&error, NotaryError::TargetNotSigned { what, .. } if what.contains("is signed as")),
        "{error}"
    );
    let by_digest = Wanted {
        tag: None,
        digest: Some(&signed),
    };
    assert_eq!(client.find(&trusted, by_digest).unwrap().name, "v1");
}
