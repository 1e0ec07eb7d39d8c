//! TUF metadata as Notary serves it: `{"signed": {...}, "signatures": [...]}`.
//!
//! Signatures cover the `signed` member exactly as served (Notary writes it as canonical JSON
//! and signs those bytes), so the envelope is parsed with the member kept as raw text and the
//! role parsed from that text. Hashes are base64, as Go marshals byte slices.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::value::RawValue;
use sha2::{Digest as _, Sha256, Sha512};

use crate::trust::base64;

/// The root role (the keys of every other top-level role).
pub const ROOT: &str = "root";
/// The timestamp role (the current snapshot).
pub const TIMESTAMP: &str = "timestamp";
/// The snapshot role (the current version of every other file).
pub const SNAPSHOT: &str = "snapshot";
/// The targets role (the signed tags, and its delegations).
pub const TARGETS: &str = "targets";
/// Docker's signers (`docker trust signer add`) sign in this delegation.
pub const RELEASES: &str = "targets/releases";

/// One signature of an envelope.
#[derive(Debug, Clone, Deserialize)]
pub struct Signature {
    /// The ID of the key that signed.
    pub keyid: String,
    /// The signature method (`ecdsa`, `rsapss`, `ed25519`).
    pub method: String,
    /// Base64.
    pub sig: String,
}

/// A metadata file split into the exact signed bytes, its signatures and the parsed role.
#[derive(Debug, Clone)]
pub struct SignedFile<T> {
    /// The whole file as served (what snapshot and timestamp hash).
    pub bytes: Vec<u8>,
    /// The `signed` member, byte for byte.
    pub signed_bytes: Vec<u8>,
    /// The signatures over the `signed` member.
    pub signatures: Vec<Signature>,
    /// The parsed `signed` member.
    pub signed: T,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    signed: &'a RawValue,
    signatures: Vec<Signature>,
}

/// What every role has.
#[derive(Debug, Clone, Deserialize)]
pub struct Common {
    /// `_type`: the role the file says it is.
    #[serde(rename = "_type")]
    pub kind: String,
    /// The version, increasing with every change.
    pub version: u64,
    /// When the file expires (RFC 3339).
    pub expires: String,
}

/// A role's metadata type: the `_type` it must carry.
pub trait Role: DeserializeOwned {
    /// The `_type` of the role's files (`Root`, `Timestamp`, …).
    const TYPE: &'static str;
    /// The members every role has.
    fn common(&self) -> &Common;
}

/// A public key as TUF lists it.
#[derive(Debug, Clone, Deserialize)]
pub struct Key {
    /// The key type (`ecdsa`, `ecdsa-x509`, `rsa`, `rsa-x509`, `ed25519`).
    pub keytype: String,
    /// The key material.
    pub keyval: KeyValue,
}

/// A key's material (`keyval`).
#[derive(Debug, Clone, Deserialize)]
pub struct KeyValue {
    /// Base64: DER SubjectPublicKeyInfo, a PEM certificate, or raw Ed25519 bytes.
    pub public: String,
}

/// Which keys sign for a role, and how many must.
#[derive(Debug, Clone, Deserialize)]
pub struct RoleKeys {
    /// The IDs of the keys that may sign for the role.
    pub keyids: Vec<String>,
    /// How many of them must sign.
    pub threshold: u32,
}

/// `root.json`: the keys of every top-level role.
#[derive(Debug, Clone, Deserialize)]
pub struct Root {
    /// The members every role has.
    #[serde(flatten)]
    pub common: Common,
    /// The keys, by key ID.
    pub keys: BTreeMap<String, Key>,
    /// Which keys sign for each top-level role, by role name.
    pub roles: BTreeMap<String, RoleKeys>,
}

/// The length and hashes of another metadata file (or of a target).
#[derive(Debug, Clone, Deserialize)]
pub struct FileMeta {
    /// The file's length in bytes.
    pub length: u64,
    /// Algorithm (`sha256`, `sha512`) → base64 digest.
    pub hashes: BTreeMap<String, String>,
}

/// `timestamp.json`: the current snapshot's length and hashes.
#[derive(Debug, Clone, Deserialize)]
pub struct Timestamp {
    /// The members every role has.
    #[serde(flatten)]
    pub common: Common,
    /// The files it lists, by role name.
    pub meta: BTreeMap<String, FileMeta>,
}

/// `snapshot.json`: the length and hashes of every other file.
#[derive(Debug, Clone, Deserialize)]
pub struct Snapshot {
    /// The members every role has.
    #[serde(flatten)]
    pub common: Common,
    /// The files it lists, by role name.
    pub meta: BTreeMap<String, FileMeta>,
}

/// `targets.json` or a delegation's file: the signed targets.
#[derive(Debug, Clone, Deserialize)]
pub struct Targets {
    /// The members every role has.
    #[serde(flatten)]
    pub common: Common,
    /// The signed targets: tag → manifest length and hashes.
    pub targets: BTreeMap<String, FileMeta>,
    /// The roles it delegates to (`targets/releases`), if any.
    #[serde(default)]
    pub delegations: Option<Delegations>,
}

/// A targets file's `delegations`.
#[derive(Debug, Clone, Deserialize)]
pub struct Delegations {
    /// The delegated roles' keys, by key ID.
    #[serde(default)]
    pub keys: BTreeMap<String, Key>,
    /// The delegated roles.
    #[serde(default)]
    pub roles: Vec<DelegatedRole>,
}

/// A role the targets role delegates to.
#[derive(Debug, Clone, Deserialize)]
pub struct DelegatedRole {
    /// The delegated role's name (`targets/releases`).
    pub name: String,
    /// Which keys sign for it, and how many must.
    #[serde(flatten)]
    pub keys: RoleKeys,
    /// Target name prefixes the role may sign (`[""]`: any).
    #[serde(default)]
    pub paths: Vec<String>,
    /// Hex prefixes of the SHA-256 of target names the role may sign.
    #[serde(default)]
    pub path_hash_prefixes: Vec<String>,
}

impl DelegatedRole {
    /// Whether this delegation may sign a target called `name`.
    pub fn covers(&self, name: &str) -> bool {
        self.paths
            .iter()
            .any(|prefix| name.starts_with(prefix.as_str()))
            || self.path_hash_prefixes.iter().any(|prefix| {
                hex::encode(Sha256::digest(name.as_bytes())).starts_with(prefix.as_str())
            })
    }
}

macro_rules! role {
    ($ty:ty, $name:literal) => {
        impl Role for $ty {
            const TYPE: &'static str = $name;
            fn common(&self) -> &Common {
                &self.common
            }
        }
    };
}
role!(Root, "Root");
role!(Timestamp, "Timestamp");
role!(Snapshot, "Snapshot");
role!(Targets, "Targets");

/// Parses a file of role `T`; the error is a reason for [`super::NotaryError::Malformed`].
pub fn parse<T: Role>(bytes: Vec<u8>) -> Result<SignedFile<T>, String> {
    let envelope: Envelope<'_> =
        serde_json::from_slice(&bytes).map_err(|e| format!("not a signed TUF envelope: {e}"))?;
    let signed_bytes = envelope.signed.get().as_bytes().to_vec();
    let signatures = envelope.signatures;
    let signed: T = serde_json::from_slice(&signed_bytes).map_err(|e| e.to_string())?;
    if signed.common().kind != T::TYPE {
        return Err(format!(
            "_type is {:?}, expected {:?}",
            signed.common().kind,
            T::TYPE
        ));
    }
    Ok(SignedFile {
        bytes,
        signed_bytes,
        signatures,
        signed,
    })
}

/// Seconds since the epoch of an RFC 3339 time, as Go writes `expires`.
pub fn parse_time(text: &str) -> Result<i64, String> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|time| time.timestamp())
        .map_err(|e| format!("expires {text:?} is not an RFC 3339 time: {e}"))
}

/// Now, in seconds since the epoch.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Whether `bytes` have the length and every hash `meta` lists (at least one of sha256 and
/// sha512 must be listed); otherwise what differs.
pub fn check_file(bytes: &[u8], meta: &FileMeta) -> Result<(), String> {
    if bytes.len() as u64 != meta.length {
        return Err(format!("{} bytes, {} signed", bytes.len(), meta.length));
    }
    let mut checked = 0;
    for (algorithm, expected) in &meta.hashes {
        let actual = match algorithm.as_str() {
            "sha256" => Sha256::digest(bytes).to_vec(),
            "sha512" => Sha512::digest(bytes).to_vec(),
            _ => continue,
        };
        let expected = decode_hash(expected)?;
        if actual != expected {
            return Err(format!(
                "{algorithm} is {}, {} signed",
                hex::encode(actual),
                hex::encode(expected)
            ));
        }
        checked += 1;
    }
    if checked == 0 {
        return Err("no sha256 or sha512 hash is signed".to_owned());
    }
    Ok(())
}

/// The SHA-256 of a file as `meta` lists it, in hex.
pub fn sha256_hex(meta: &FileMeta) -> Result<Option<String>, String> {
    meta.hashes
        .get("sha256")
        .map(|b64| decode_hash(b64).map(hex::encode))
        .transpose()
}

fn decode_hash(b64: &str) -> Result<Vec<u8>, String> {
    base64::decode(b64).map_err(|e| format!("hash {b64:?} is not base64: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_bytes_are_kept_exactly() {
        let file = br#"{"signed": {"_type":"Timestamp","expires":"2030-01-01T00:00:00Z","meta":{},"version":3} , "signatures":[]}"#;
        let parsed = parse::<Timestamp>(file.to_vec()).unwrap();
        assert_eq!(
            parsed.signed_bytes,
            br#"{"_type":"Timestamp","expires":"2030-01-01T00:00:00Z","meta":{},"version":3}"#
        );
        assert_eq!(parsed.signed.common.version, 3);
        let wrong = parse::<Snapshot>(file.to_vec()).unwrap_err();
        assert!(wrong.contains("\"Timestamp\""), "{wrong}");
    }

    #[test]
    fn times_as_go_writes_them() {
        assert_eq!(parse_time("1970-01-01T00:01:00Z"), Ok(60));
        assert_eq!(
            parse_time("2036-11-28T02:40:00.123456789+01:00"),
            Ok(2_111_449_200)
        );
        assert!(parse_time("tomorrow").is_err());
    }

    #[test]
    fn file_checks() {
        let bytes = b"abc";
        let b64 = |d: &[u8]| base64::encode(d);
        let meta = |length, hashes: &[(&str, String)]| FileMeta {
            length,
            hashes: hashes
                .iter()
                .map(|(a, h)| ((*a).to_owned(), h.clone()))
                .collect(),
        };
        let sha256 = b64(&Sha256::digest(bytes));
        let sha512 = b64(&Sha512::digest(bytes));
        assert!(check_file(bytes, &meta(3, &[("sha256", sha256.clone())])).is_ok());
        assert!(check_file(
            bytes,
            &meta(3, &[("sha256", sha256.clone()), ("sha512", sha512)])
        )
        .is_ok());
        assert!(check_file(bytes, &meta(4, &[("sha256", sha256.clone())])).is_err());
        assert!(check_file(b"abd", &meta(3, &[("sha256", sha256)])).is_err());
        assert!(check_file(bytes, &meta(3, &[("md5", "x".to_owned())])).is_err());
    }

    #[test]
    fn delegation_paths() {
        let role = |paths: &[&str], prefixes: &[&str]| DelegatedRole {
            name: RELEASES.to_owned(),
            keys: RoleKeys {
                keyids: Vec::new(),
                threshold: 1,
            },
            paths: paths.iter().map(|p| (*p).to_owned()).collect(),
            path_hash_prefixes: prefixes.iter().map(|p| (*p).to_owned()).collect(),
        };
        assert!(role(&[""], &[]).covers("latest"));
        assert!(role(&["v1"], &[]).covers("v1.2"));
        assert!(!role(&["v1"], &[]).covers("latest"));
        assert!(!role(&[], &[]).covers("latest"));
        let hash = hex::encode(Sha256::digest(b"latest"));
        assert!(role(&[], &[&hash[..2]]).covers("latest"));
    }
}
