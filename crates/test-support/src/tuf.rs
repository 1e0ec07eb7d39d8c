//! A TUF signer writing Notary v1 metadata, for tests that need repositories the real `notary`
//! client would never publish: expired, rolled back, under-signed, rotated, or with keys of
//! another type. It is written apart from concil's verifier and shares no code with it.
//!
//! The format, as notary-server 0.7 serves it (checked field by field against a repository the
//! `notary` CLI published, and by that CLI listing what this module signs):
//!
//! - Each file is `{"signed":{…},"signatures":[{"keyid","method","sig"}]}`; `signed` is
//!   canonical JSON (keys sorted, no whitespace) and the signatures cover exactly those bytes.
//! - `_type` is `Root`, `Targets`, `Snapshot` or `Timestamp`; `expires` is RFC 3339 (UTC);
//!   hashes are base64: sha256 of targets, sha256 and sha512 of the whole files in snapshot
//!   and timestamp `meta`, with their `length`.
//! - A key is `{"keytype":…,"keyval":{"private":null,"public":base64}}` and its ID the hex
//!   sha256 of that object's canonical JSON. `ecdsa-x509`: the public value is a PEM
//!   certificate (root keys: self-signed, CN = GUN, not a CA — notary ignores CA certificates as
//!   root leaves); `ecdsa`: DER SubjectPublicKeyInfo; `ed25519`: the raw 32 bytes. Both ECDSA
//!   types sign with method `ecdsa` (P-256, SHA-256, raw r‖s), ed25519 with `eddsa`.
//! - The delegation `targets/releases` (what `docker trust signer add` makes) is listed in
//!   `targets.json` with `paths: [""]` (all paths) and its own keys, and in the snapshot.
//!
//! [`TufRepo`] holds the keys and settings; [`TufRepo::build`] signs the files anew each time,
//! so a test changes versions, expiry or keys and builds again with the same keys (rollback
//! and rotation tests). [`Files::replacing_faults`] serves a build through the fault proxy.
//! Setup failures (openssl_parts, the system RNG) panic, like the other test peers.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Map, Value};
use sha2::{Digest as _, Sha256, Sha512};

use crate::proxy::{PathAction, PathFault, PathMatch};
use crate::registry::openssl_parts;

/// DER of a P-256 SubjectPublicKeyInfo up to its uncompressed point (65 bytes follow).
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];
/// Validity of the certificates of `ecdsa-x509` keys (notary makes root certificates for 10
/// years).
const CERTIFICATE_DAYS: &str = "3650";
const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// A TUF role of a Notary repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Root,
    Targets,
    Snapshot,
    Timestamp,
    /// The delegation `targets/releases`.
    Releases,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Root,
        Role::Targets,
        Role::Snapshot,
        Role::Timestamp,
        Role::Releases,
    ];

    /// The role's name in metadata and in its URL (`…/_trust/tuf/<name>.json`).
    pub fn name(self) -> &'static str {
        match self {
            Role::Root => "root",
            Role::Targets => "targets",
            Role::Snapshot => "snapshot",
            Role::Timestamp => "timestamp",
            Role::Releases => "targets/releases",
        }
    }

    /// How long notary makes a role's metadata valid (root 10 years, targets and snapshot 3,
    /// timestamp 14 days; a delegation like targets).
    fn default_lifetime(self) -> Duration {
        match self {
            Role::Root => 3650 * DAY,
            Role::Targets | Role::Snapshot | Role::Releases => 3 * 365 * DAY,
            Role::Timestamp => 14 * DAY,
        }
    }

    /// The key type notary gives the role: certificates for root and delegations, `ecdsa` for
    /// targets and snapshot, `ed25519` for the server-held timestamp key.
    fn default_key_type(self) -> KeyType {
        match self {
            Role::Root | Role::Releases => KeyType::EcdsaX509,
            Role::Targets | Role::Snapshot => KeyType::Ecdsa,
            Role::Timestamp => KeyType::Ed25519,
        }
    }
}

/// The type of a role's keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    /// `ecdsa-x509`: a self-signed P-256 certificate (CN = GUN for root, else the role name).
    EcdsaX509,
    /// `ecdsa`: a P-256 public key.
    Ecdsa,
    /// `ed25519`.
    Ed25519,
}

/// One signing key and its public form in metadata.
struct Key {
    /// `{"keytype":…,"keyval":{"private":null,"public":…}}`.
    public: Value,
    /// Hex sha256 of `public`'s canonical JSON.
    id: String,
    /// The certificate of an `ecdsa-x509` key.
    certificate_pem: Option<String>,
    signer: Signer,
}

enum Signer {
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

impl Key {
    fn generate(key_type: KeyType, common_name: &str, rng: &SystemRandom) -> Key {
        match key_type {
            KeyType::Ecdsa => {
                let (_, pair) = ecdsa_pair(rng);
                let mut spki = P256_SPKI_PREFIX.to_vec();
                spki.extend_from_slice(pair.public_key().as_ref());
                Key::new("ecdsa", BASE64.encode(spki), None, Signer::Ecdsa(pair))
            }
            KeyType::EcdsaX509 => {
                let (pkcs8, pair) = ecdsa_pair(rng);
                let pem = self_signed_certificate(&pkcs8, common_name);
                Key::new(
                    "ecdsa-x509",
                    BASE64.encode(&pem),
                    Some(pem),
                    Signer::Ecdsa(pair),
                )
            }
            KeyType::Ed25519 => {
                let pkcs8 = Ed25519KeyPair::generate_pkcs8(rng).expect("generate an ed25519 key");
                let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
                    .expect("ring reads its own ed25519 key");
                let public = BASE64.encode(pair.public_key().as_ref());
                Key::new("ed25519", public, None, Signer::Ed25519(pair))
            }
        }
    }

    fn new(key_type: &str, public: String, certificate_pem: Option<String>, signer: Signer) -> Key {
        let public = json!({"keytype": key_type, "keyval": {"private": null, "public": public}});
        let id = hex::encode(Sha256::digest(canonical_json(&public)));
        Key {
            public,
            id,
            certificate_pem,
            signer,
        }
    }

    /// `{"keyid","method","sig"}` over `message`.
    fn sign(&self, message: &[u8], rng: &SystemRandom) -> Value {
        let (method, signature) = match &self.signer {
            Signer::Ecdsa(pair) => (
                "ecdsa",
                pair.sign(rng, message)
                    .expect("ECDSA signing")
                    .as_ref()
                    .to_vec(),
            ),
            Signer::Ed25519(pair) => ("eddsa", pair.sign(message).as_ref().to_vec()),
        };
        json!({"keyid": self.id, "method": method, "sig": BASE64.encode(signature)})
    }
}

/// A fresh P-256 key: its PKCS#8 DER and ring's key pair.
fn ecdsa_pair(rng: &SystemRandom) -> (Vec<u8>, EcdsaKeyPair) {
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, rng)
        .expect("generate a P-256 key");
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), rng)
        .expect("ring reads its own P-256 key");
    (pkcs8.as_ref().to_vec(), pair)
}

/// A self-signed certificate for the key (PKCS#8 DER), made by `openssl` with the extensions
/// notary gives its own: a code-signing leaf, not a CA.
fn self_signed_certificate(pkcs8: &[u8], common_name: &str) -> String {
    let dir = tempfile::tempdir().expect("temp dir for a certificate");
    let path = |name: &str| dir.path().join(name);
    std::fs::write(path("key.der"), pkcs8).expect("write the certificate key");
    // A config file, not `-subj`: a GUN's `/` would split the subject there.
    std::fs::write(
        path("req.cnf"),
        format!(
            "[req]\ndistinguished_name = dn\nx509_extensions = ext\nprompt = no\n\
             [dn]\nCN = {common_name}\n\
             [ext]\nbasicConstraints = critical,CA:FALSE\n\
             keyUsage = critical,digitalSignature,keyEncipherment\n\
             extendedKeyUsage = codeSigning\n"
        ),
    )
    .expect("write the certificate request config");
    openssl_parts(
        dir.path(),
        &[&[
            "req",
            "-x509",
            "-new",
            "-key",
            "key.der",
            "-keyform",
            "DER",
            "-config",
            "req.cnf",
            "-days",
            CERTIFICATE_DAYS,
            "-out",
            "cert.pem",
        ]],
    );
    std::fs::read_to_string(path("cert.pem")).expect("read the certificate")
}

/// A role's keys and the settings of its next build.
struct RoleState {
    key_type: KeyType,
    keys: Vec<Key>,
    /// Keys the role had before [`TufRepo::rotate_keys`]; for root they sign on (a new root
    /// must carry the old root's signatures), for other roles they are gone.
    retired_root_keys: Vec<Key>,
    threshold: u32,
    /// How many of `keys` sign; `None`: all.
    signers: Option<usize>,
    version: u64,
    expires: SystemTime,
}

/// A target: the length and sha256 of what its name stands for (an image manifest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Target {
    length: u64,
    sha256: [u8; 32],
}

impl Target {
    fn to_json(self) -> Value {
        json!({"hashes": {"sha256": BASE64.encode(self.sha256)}, "length": self.length})
    }
}

/// A Notary repository (one GUN) that signs its metadata itself. Defaults are notary's: one key
/// per role, threshold 1, version 1, notary's lifetimes and key types, no delegation.
pub struct TufRepo {
    gun: String,
    rng: SystemRandom,
    roles: BTreeMap<Role, RoleState>,
    targets: BTreeMap<String, Target>,
    /// Targets of `targets/releases`; the delegation exists once it has one.
    release_targets: BTreeMap<String, Target>,
}

/// The signed files of one build, each exactly as a server would serve it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Files {
    pub root: Vec<u8>,
    pub targets: Vec<u8>,
    pub snapshot: Vec<u8>,
    pub timestamp: Vec<u8>,
    /// `targets/releases.json`, if the repository delegates.
    pub releases: Option<Vec<u8>>,
    /// Root's version: a server also serves root as `<version>.root.json`.
    root_version: u64,
}

impl Files {
    /// The file of `role`, if this build has one.
    pub fn get(&self, role: Role) -> Option<&[u8]> {
        match role {
            Role::Root => Some(&self.root),
            Role::Targets => Some(&self.targets),
            Role::Snapshot => Some(&self.snapshot),
            Role::Timestamp => Some(&self.timestamp),
            Role::Releases => self.releases.as_deref(),
        }
    }

    /// Proxy faults that answer every request for these files with them (by plain and
    /// consistent name, and root by its versioned name), so a client sees this build instead
    /// of the upstream's metadata.
    pub fn replacing_faults(&self) -> Vec<PathFault> {
        let versioned_root = PathFault::always(
            PathMatch::TufRole(format!("{}.root", self.root_version)),
            PathAction::Replace {
                body: self.root.clone(),
            },
        );
        let faults = Role::ALL.into_iter().filter_map(|role| {
            let body = self.get(role)?.to_vec();
            Some(PathFault::always(
                PathMatch::TufRole(role.name().to_owned()),
                PathAction::Replace { body },
            ))
        });
        faults.chain([versioned_root]).collect()
    }
}

impl TufRepo {
    /// A repository for `gun` with fresh keys for every role.
    pub fn new(gun: &str) -> TufRepo {
        let rng = SystemRandom::new();
        let now = SystemTime::now();
        let roles = Role::ALL
            .into_iter()
            .map(|role| {
                let key_type = role.default_key_type();
                let state = RoleState {
                    key_type,
                    keys: vec![Key::generate(key_type, &common_name(gun, role), &rng)],
                    retired_root_keys: Vec::new(),
                    threshold: 1,
                    signers: None,
                    version: 1,
                    expires: now + role.default_lifetime(),
                };
                (role, state)
            })
            .collect();
        TufRepo {
            gun: gun.to_owned(),
            rng,
            roles,
            targets: BTreeMap::new(),
            release_targets: BTreeMap::new(),
        }
    }

    pub fn gun(&self) -> &str {
        &self.gun
    }

    /// Signs `name` (a tag) in `targets.json`: `length` bytes with this sha256.
    pub fn target(&mut self, name: &str, length: u64, sha256: [u8; 32]) -> &mut Self {
        self.targets
            .insert(name.to_owned(), Target { length, sha256 });
        self
    }

    /// Signs `name` in the delegation `targets/releases` (which then exists).
    pub fn release_target(&mut self, name: &str, length: u64, sha256: [u8; 32]) -> &mut Self {
        self.release_targets
            .insert(name.to_owned(), Target { length, sha256 });
        self
    }

    /// When `role`'s metadata expires (in the past: expired metadata).
    pub fn expires(&mut self, role: Role, at: SystemTime) -> &mut Self {
        self.role_mut(role).expires = at;
        self
    }

    /// `role`'s version in the next build.
    pub fn version(&mut self, role: Role, version: u64) -> &mut Self {
        self.role_mut(role).version = version;
        self
    }

    /// The version `role` will have in the next build.
    pub fn version_of(&self, role: Role) -> u64 {
        self.role(role).version
    }

    /// Raises every role's version by one: the next build is a newer repository.
    pub fn bump_versions(&mut self) -> &mut Self {
        for state in self.roles.values_mut() {
            state.version += 1;
        }
        self
    }

    /// `role` needs `threshold` signatures; it gets fresh keys until it has that many.
    pub fn threshold(&mut self, role: Role, threshold: u32) -> &mut Self {
        let name = common_name(&self.gun, role);
        let state = self.roles.get_mut(&role).expect("every role has a state");
        state.threshold = threshold;
        while state.keys.len() < threshold as usize {
            state
                .keys
                .push(Key::generate(state.key_type, &name, &self.rng));
        }
        self
    }

    /// Only the first `count` of `role`'s keys sign (fewer than the threshold: too few
    /// signatures).
    pub fn signers(&mut self, role: Role, count: usize) -> &mut Self {
        self.role_mut(role).signers = Some(count);
        self
    }

    /// Replaces `role`'s keys by as many fresh ones of `key_type` (see [`TufRepo::rotate_keys`]).
    pub fn key_type(&mut self, role: Role, key_type: KeyType) -> &mut Self {
        self.role_mut(role).key_type = key_type;
        self.rotate_keys(role)
    }

    /// Replaces `role`'s keys by as many fresh ones. Old root keys keep signing root, as a
    /// rotated root must carry the signatures of both. Versions stay: raise the version of the
    /// role that lists the keys (root; targets for the delegation) for a proper rotation.
    pub fn rotate_keys(&mut self, role: Role) -> &mut Self {
        let name = common_name(&self.gun, role);
        let state = self.roles.get_mut(&role).expect("every role has a state");
        let fresh = (0..state.keys.len())
            .map(|_| Key::generate(state.key_type, &name, &self.rng))
            .collect();
        let old = std::mem::replace(&mut state.keys, fresh);
        if role == Role::Root {
            state.retired_root_keys.extend(old);
        }
        self
    }

    /// Stops the root keys [`TufRepo::rotate_keys`] replaced from signing root: a rotation the
    /// old root did not approve.
    pub fn forget_retired_root_keys(&mut self) -> &mut Self {
        self.role_mut(Role::Root).retired_root_keys.clear();
        self
    }

    /// The ID of root's first key (the ID of its certificate key), as `root.json` and
    /// Docker's trust pinning (`certs`) name it.
    pub fn root_key_id(&self) -> &str {
        self.root_key_ids().first().copied().unwrap_or_default()
    }

    /// The IDs of root's current keys.
    pub fn root_key_ids(&self) -> Vec<&str> {
        self.role(Role::Root)
            .keys
            .iter()
            .map(|key| key.id.as_str())
            .collect()
    }

    /// The PEM certificate of root's first key (if root keys are certificates).
    pub fn root_certificate_pem(&self) -> Option<&str> {
        self.role(Role::Root)
            .keys
            .first()
            .and_then(|key| key.certificate_pem.as_deref())
    }

    /// Signs every file with the current keys and settings.
    pub fn build(&self) -> Files {
        let root = self.sign(
            Role::Root,
            json!({
                "_type": "Root",
                "consistent_snapshot": false,
                "keys": self.keys_json(&[Role::Root, Role::Targets, Role::Snapshot, Role::Timestamp]),
                "roles": {
                    "root": self.role_json(Role::Root),
                    "snapshot": self.role_json(Role::Snapshot),
                    "targets": self.role_json(Role::Targets),
                    "timestamp": self.role_json(Role::Timestamp),
                },
            }),
        );
        let releases = (!self.release_targets.is_empty()).then(|| {
            self.sign(
                Role::Releases,
                targets_json(&self.release_targets, json!({"keys": {}, "roles": []})),
            )
        });
        let delegations = match releases {
            Some(_) => {
                let mut role = self.role_json(Role::Releases);
                if let Some(role) = role.as_object_mut() {
                    role.insert("name".into(), Role::Releases.name().into());
                    role.insert("paths".into(), json!([""]));
                }
                json!({"keys": self.keys_json(&[Role::Releases]), "roles": [role]})
            }
            None => json!({"keys": {}, "roles": []}),
        };
        let targets = self.sign(Role::Targets, targets_json(&self.targets, delegations));
        let mut snapshot_meta = Map::new();
        snapshot_meta.insert(Role::Root.name().into(), file_meta(&root));
        snapshot_meta.insert(Role::Targets.name().into(), file_meta(&targets));
        if let Some(releases) = &releases {
            snapshot_meta.insert(Role::Releases.name().into(), file_meta(releases));
        }
        let snapshot = self.sign(
            Role::Snapshot,
            json!({"_type": "Snapshot", "meta": Value::Object(snapshot_meta)}),
        );
        let timestamp = self.sign(
            Role::Timestamp,
            json!({"_type": "Timestamp", "meta": {"snapshot": file_meta(&snapshot)}}),
        );
        Files {
            root,
            targets,
            snapshot,
            timestamp,
            releases,
            root_version: self.role(Role::Root).version,
        }
    }

    fn role(&self, role: Role) -> &RoleState {
        self.roles.get(&role).expect("every role has a state")
    }

    fn role_mut(&mut self, role: Role) -> &mut RoleState {
        self.roles.get_mut(&role).expect("every role has a state")
    }

    /// `{keyid: key}` of the current keys of `roles`.
    fn keys_json(&self, roles: &[Role]) -> Value {
        let keys: Map<String, Value> = roles
            .iter()
            .flat_map(|&role| &self.role(role).keys)
            .map(|key| (key.id.clone(), key.public.clone()))
            .collect();
        Value::Object(keys)
    }

    /// `{"keyids": […], "threshold": n}`.
    fn role_json(&self, role: Role) -> Value {
        let state = self.role(role);
        let ids: Vec<&str> = state.keys.iter().map(|key| key.id.as_str()).collect();
        json!({"keyids": ids, "threshold": state.threshold})
    }

    /// The file of `role`: `signed` (with the role's `expires` and `version` added) in the
    /// envelope, signed by its signing keys (and for root, its retired keys).
    fn sign(&self, role: Role, mut signed: Value) -> Vec<u8> {
        let state = self.role(role);
        if let Some(fields) = signed.as_object_mut() {
            fields.insert("expires".into(), rfc3339(state.expires).into());
            fields.insert("version".into(), state.version.into());
        }
        let signed = canonical_json(&signed);
        let signing = state.signers.unwrap_or(state.keys.len());
        let signatures: Vec<Value> = state
            .keys
            .iter()
            .take(signing)
            .chain(&state.retired_root_keys)
            .map(|key| key.sign(&signed, &self.rng))
            .collect();
        // notary writes `signed` first (its struct order), not in canonical order.
        let mut file = b"{\"signed\":".to_vec();
        file.extend_from_slice(&signed);
        file.extend_from_slice(b",\"signatures\":");
        file.extend_from_slice(&canonical_json(&Value::Array(signatures)));
        file.push(b'}');
        file
    }
}

/// Root certificates must name the GUN; other roles' certificates name the role.
fn common_name(gun: &str, role: Role) -> String {
    match role {
        Role::Root => gun.to_owned(),
        other => other.name().to_owned(),
    }
}

/// The `signed` part of a targets role (without `expires` and `version`).
fn targets_json(targets: &BTreeMap<String, Target>, delegations: Value) -> Value {
    let targets: Map<String, Value> = targets
        .iter()
        .map(|(name, target)| (name.clone(), target.to_json()))
        .collect();
    json!({"_type": "Targets", "delegations": delegations, "targets": targets})
}

/// `{"hashes": {"sha256", "sha512"}, "length"}` of a whole file, as snapshot and timestamp
/// list them.
fn file_meta(file: &[u8]) -> Value {
    json!({
        "hashes": {
            "sha256": BASE64.encode(Sha256::digest(file)),
            "sha512": BASE64.encode(Sha512::digest(file)),
        },
        "length": file.len(),
    })
}

/// `2029-11-27T02:38:01Z` (whole seconds; times before 1970 become 1970).
fn rfc3339(time: SystemTime) -> String {
    let seconds = time
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    i64::try_from(seconds)
        .ok()
        .and_then(|seconds| chrono::DateTime::from_timestamp(seconds, 0))
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Canonical JSON: object keys sorted (by bytes), no whitespace. (Go's encoder would also
/// escape `<`, `>` and `&`; nothing written here contains them.)
fn canonical_json(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(fields) => {
            let mut fields: Vec<(&String, &Value)> = fields.iter().collect();
            fields.sort_by(|(a, _), (b, _)| a.as_bytes().cmp(b.as_bytes()));
            out.push(b'{');
            for (index, (name, field)) in fields.into_iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(Value::from(name.as_str()).to_string().as_bytes());
                out.push(b':');
                write_canonical(field, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        scalar => out.extend_from_slice(scalar.to_string().as_bytes()),
    }
}
