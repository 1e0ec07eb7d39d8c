//! The Notary client: the TUF update workflow the module documentation describes, the cached
//! chain, and the lookup of a tag's target.

#[cfg(test)]
mod vector_tests;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use url::Url;

use super::error::NotaryError;
use super::metadata::{
    FileMeta, Key, Role, RoleKeys, Root, SignedFile, Snapshot, Targets, Timestamp, RELEASES, ROOT,
    SNAPSHOT, TARGETS, TIMESTAMP,
};
use super::pinning::{self, Anchor, TrustPinning};
use super::{keys, metadata};
use crate::config::Credentials;
use crate::digest::Digest;
use crate::registry::{Client, NetworkSettings, RegistryError, TlsSettings};
use crate::trust::base64;

/// Root and timestamp have no signed length; larger files than this are refused.
const MAX_UNLISTED_METADATA_SIZE: u64 = 8 * 1024 * 1024;
/// A listed length is believed up to this (Notary's own download limit).
const MAX_LISTED_METADATA_SIZE: u64 = 100 * 1024 * 1024;

/// Where and how to ask.
#[derive(Debug, Clone)]
pub struct NotarySettings {
    /// The Notary server (`Config::notary_url`).
    pub server: Url,
    /// `host[:port]/repository`.
    pub gun: String,
    /// Credentials for the Notary server, if it asks.
    pub credentials: Option<Credentials>,
    /// TLS settings for the Notary server.
    pub tls: TlsSettings,
    /// Retries and timeouts (the configuration's `retries` and `timeouts`).
    pub network: NetworkSettings,
    /// The trust directory (`Config::notary_trust_dir`).
    pub trust_dir: PathBuf,
    /// How the first root is trusted ([`pinning`]).
    pub pinning: TrustPinning,
}

/// What to look up, as an image reference names it: a tag (whose signed digest must be
/// `digest` too, when both are given), or only a `sha256:` digest that some signed tag must
/// have. Neither means `latest`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Wanted<'a> {
    /// The tag, if the reference names one.
    pub tag: Option<&'a str>,
    /// The digest, if the reference names one.
    pub digest: Option<&'a Digest>,
}

impl Wanted<'_> {
    /// The tag looked up, if the lookup is by tag.
    fn tag(&self) -> Option<&str> {
        match (self.tag, self.digest) {
            (Some(tag), _) => Some(tag),
            (None, Some(_)) => None,
            (None, None) => Some("latest"),
        }
    }
}

/// A signed target: the digest a tag must have, with what was signed about it.
#[derive(Debug, Clone)]
pub struct NotaryTarget {
    /// The trust collection (`host[:port]/repository`).
    pub gun: String,
    /// The tag (target name).
    pub name: String,
    /// The role that signed it (`targets/releases` or `targets`).
    pub role: String,
    /// The digest the tag must have.
    pub digest: Digest,
    meta: FileMeta,
}

impl NotaryTarget {
    /// Checks the manifest fetched by [`Self::digest`] against every signed hash and the
    /// signed length.
    pub fn check_manifest(&self, bytes: &[u8]) -> Result<(), NotaryError> {
        metadata::check_file(bytes, &self.meta).map_err(|detail| NotaryError::ManifestMismatch {
            gun: self.gun.clone(),
            target: self.name.clone(),
            digest: self.digest.clone(),
            detail,
        })
    }
}

/// A Notary client for one trust collection.
#[derive(Debug)]
pub struct NotaryClient {
    gun: String,
    server: String,
    client: Client,
    metadata_dir: PathBuf,
    pinning: TrustPinning,
}

/// A verified chain of metadata.
struct Trusted {
    root: SignedFile<Root>,
    timestamp: SignedFile<Timestamp>,
    snapshot: SignedFile<Snapshot>,
    targets: SignedFile<Targets>,
    releases: Option<SignedFile<Targets>>,
}

/// The chain cached for the collection, parsed once (any file may be missing).
#[derive(Default)]
struct Cached {
    root: Option<SignedFile<Root>>,
    timestamp: Option<SignedFile<Timestamp>>,
    snapshot: Option<SignedFile<Snapshot>>,
    targets: Option<SignedFile<Targets>>,
    releases: Option<SignedFile<Targets>>,
}

impl Cached {
    /// A role's file as it was served.
    fn bytes(&self, role: &str) -> Option<&Vec<u8>> {
        match role {
            ROOT => self.root.as_ref().map(|file| &file.bytes),
            TIMESTAMP => self.timestamp.as_ref().map(|file| &file.bytes),
            SNAPSHOT => self.snapshot.as_ref().map(|file| &file.bytes),
            TARGETS => self.targets.as_ref().map(|file| &file.bytes),
            RELEASES => self.releases.as_ref().map(|file| &file.bytes),
            _ => None,
        }
    }
}

fn version<T: Role>(file: Option<&SignedFile<T>>) -> Option<u64> {
    file.map(|file| file.signed.common().version)
}

/// Where a role's file comes from: the server (by checksum when it is listed) or the cache.
type Fetch<'a> = dyn FnMut(&str, Option<&FileMeta>) -> Result<Option<Vec<u8>>, NotaryError> + 'a;

/// Root versions walked through at most in one update (each one a request).
const MAX_ROOT_ROTATIONS: u64 = 1024;
/// The largest `trust_pinning.ca` PEM file read.
const MAX_CA_FILE_SIZE: u64 = 16 * 1024 * 1024;

impl NotaryClient {
    /// A client for the trust collection `settings.gun` on `settings.server`; fails when the
    /// server URL or TLS settings are unusable ([`NotaryError::Settings`]).
    pub fn new(settings: NotarySettings) -> Result<NotaryClient, NotaryError> {
        let server = settings.server.to_string();
        let client = Client::notary(
            settings.server,
            &settings.gun,
            settings.credentials,
            &settings.tls,
            &settings.network,
        )
        .map_err(|source| NotaryError::Settings {
            gun: settings.gun.clone(),
            server: server.clone(),
            source: Box::new(source),
        })?;
        Ok(NotaryClient {
            metadata_dir: settings
                .trust_dir
                .join("tuf")
                .join(&settings.gun)
                .join("metadata"),
            gun: settings.gun,
            server,
            client,
            pinning: settings.pinning,
        })
    }

    /// The signed target for `wanted`, after updating the trust data.
    pub fn target(&self, wanted: Wanted<'_>) -> Result<NotaryTarget, NotaryError> {
        let trusted = self.update()?;
        self.find(&trusted, wanted)
    }

    /// The chain from the server, verified and then cached; from the cache when the server
    /// cannot be reached at any step.
    fn update(&self) -> Result<Trusted, NotaryError> {
        // One update of a collection at a time across processes and nodes sharing the cache:
        // interleaved saves could mix two chains or lower the rollback floor.
        let _lock = self.lock()?;
        let cached = self.load_cached()?;
        // A listed file already cached with the listed length and hashes is not asked for
        // again: the listing vouches for those bytes (a warm pull asks for root and timestamp).
        let mut fetch = |role: &str, meta: Option<&FileMeta>| {
            if let (Some(meta), Some(bytes)) = (meta, cached.bytes(role)) {
                if metadata::check_file(bytes, meta).is_ok() {
                    return Ok(Some(bytes.clone()));
                }
            }
            self.fetch(role, meta)
        };
        let online = self
            .fetch(ROOT, None)
            .and_then(|root| {
                root.ok_or_else(|| NotaryError::NotPublished {
                    gun: self.gun.clone(),
                    server: self.server.clone(),
                })
            })
            .and_then(|root| self.verify_chain(root, &cached, &mut fetch, metadata::now()));
        match online {
            Ok(trusted) => {
                self.save(&trusted, &cached)?;
                Ok(trusted)
            }
            Err(NotaryError::Unreachable { source, .. }) => self.offline(&cached, *source),
            Err(error) => Err(error),
        }
    }

    /// The cached chain, verified as if served, when the server cannot be reached.
    fn offline(&self, cached: &Cached, error: RegistryError) -> Result<Trusted, NotaryError> {
        let unreachable = |cache: String, error| NotaryError::Unreachable {
            gun: self.gun.clone(),
            server: self.server.clone(),
            cache,
            source: Box::new(error),
        };
        let Some(root) = cached.bytes(ROOT).cloned() else {
            return Err(unreachable("no trust data is cached".to_owned(), error));
        };
        let mut from_cache = |role: &str, _: Option<&FileMeta>| Ok(cached.bytes(role).cloned());
        match self.verify_chain(root, cached, &mut from_cache, metadata::now()) {
            Ok(trusted) => {
                tracing::warn!(gun = %self.gun, server = %self.server, %error,
                    "Notary server unreachable; using cached trust data that has not expired");
                Ok(trusted)
            }
            Err(problem) => Err(unreachable(
                format!("the cached trust data cannot stand in: {problem}"),
                error,
            )),
        }
    }

    /// Verifies root → timestamp → snapshot → targets (→ releases), each file from `fetch`.
    fn verify_chain(
        &self,
        root: Vec<u8>,
        cached: &Cached,
        fetch: &mut Fetch<'_>,
        now: i64,
    ) -> Result<Trusted, NotaryError> {
        let root = self.trusted_root(root, cached, fetch, now)?;
        let any_key = |_: &keys::TufKey| Ok(());
        // The version floors: what was trusted before, unless the role's keys changed since
        // (TUF's fast-forward recovery: after a key rotation the new keys start their own count,
        // and a version pushed high with a compromised key must not lock clients out).
        let floor = |role: &str, version: Option<u64>| {
            let same_keys = cached.root.as_ref().is_some_and(|previous| {
                key_set(previous.signed.roles.get(role)) == key_set(root.signed.roles.get(role))
            });
            version.filter(|_| same_keys)
        };

        let timestamp = self.required(fetch, TIMESTAMP, None, ROOT)?;
        let timestamp = self.parse::<Timestamp>(TIMESTAMP, timestamp)?;
        let timestamp_keys = self.role_keys(&root, TIMESTAMP)?;
        self.check_role(
            &timestamp,
            TIMESTAMP,
            &root.signed.keys,
            timestamp_keys,
            &any_key,
        )?;
        self.check_fresh(
            &timestamp,
            TIMESTAMP,
            floor(TIMESTAMP, version(cached.timestamp.as_ref())),
            now,
        )?;

        let snapshot_meta = self.listed(&timestamp.signed.meta, SNAPSHOT, TIMESTAMP)?;
        let snapshot = self.required(fetch, SNAPSHOT, Some(snapshot_meta), TIMESTAMP)?;
        self.check_listed(&snapshot, snapshot_meta, SNAPSHOT, TIMESTAMP)?;
        let snapshot = self.parse::<Snapshot>(SNAPSHOT, snapshot)?;
        let snapshot_keys = self.role_keys(&root, SNAPSHOT)?;
        self.check_role(
            &snapshot,
            SNAPSHOT,
            &root.signed.keys,
            snapshot_keys,
            &any_key,
        )?;
        self.check_fresh(
            &snapshot,
            SNAPSHOT,
            floor(SNAPSHOT, version(cached.snapshot.as_ref())),
            now,
        )?;
        if let Some(root_meta) = snapshot.signed.meta.get(ROOT) {
            self.check_listed(&root.bytes, root_meta, ROOT, SNAPSHOT)?;
        }

        let targets_meta = self.listed(&snapshot.signed.meta, TARGETS, SNAPSHOT)?;
        let targets = self.required(fetch, TARGETS, Some(targets_meta), SNAPSHOT)?;
        self.check_listed(&targets, targets_meta, TARGETS, SNAPSHOT)?;
        let targets = self.parse::<Targets>(TARGETS, targets)?;
        let targets_keys = self.role_keys(&root, TARGETS)?;
        self.check_role(&targets, TARGETS, &root.signed.keys, targets_keys, &any_key)?;
        self.check_fresh(
            &targets,
            TARGETS,
            floor(TARGETS, version(cached.targets.as_ref())),
            now,
        )?;

        let releases = match (
            delegation(&targets.signed, RELEASES),
            snapshot.signed.meta.get(RELEASES),
        ) {
            (Some((keys, role)), Some(meta)) => {
                let releases = self.required(fetch, RELEASES, Some(meta), SNAPSHOT)?;
                self.check_listed(&releases, meta, RELEASES, SNAPSHOT)?;
                let releases = self.parse::<Targets>(RELEASES, releases)?;
                // Delegation certificates are not checked for expiry (as in Notary).
                self.check_role(&releases, RELEASES, keys, &role.keys, &any_key)?;
                self.check_fresh(&releases, RELEASES, releases_floor(cached, &role.keys), now)?;
                Some(releases)
            }
            _ => None,
        };
        Ok(Trusted {
            root,
            timestamp,
            snapshot,
            targets,
            releases,
        })
    }

    /// The root, trusted by a threshold of its own root keys that are certificates named after
    /// the GUN, valid now and allowed by `trust_pinning` (or, the first time without a pin,
    /// trusted on first use); a root other than the cached one must also be reached from it
    /// through every version in between (`<version>.root.json`), each signed by a threshold of
    /// the previous version's root keys (rotation), as TUF's client workflow and Notary's do.
    fn trusted_root(
        &self,
        served: Vec<u8>,
        cached: &Cached,
        fetch: &mut Fetch<'_>,
        now: i64,
    ) -> Result<SignedFile<Root>, NotaryError> {
        let root = self.parse::<Root>(ROOT, served)?;
        let previous = cached.root.as_ref();
        let first_use = previous.is_none();
        let anchor = pinning::anchor(&self.pinning, &self.gun);
        let refuse = |reason: String| NotaryError::Pinning {
            gun: self.gun.clone(),
            reason,
        };
        if first_use && anchor == Anchor::Refused {
            return Err(refuse(
                "nothing is pinned for this repository, no root is cached, and disable_tofu is set"
                    .to_owned(),
            ));
        }
        let ca_certificates = match &anchor {
            Anchor::Ca(path) => {
                let pem = crate::config::read_capped(path, MAX_CA_FILE_SIZE).map_err(|e| {
                    NotaryError::CaFile {
                        path: path.clone(),
                        reason: e.to_string(),
                    }
                })?;
                keys::load_certificates(&pem).map_err(|reason| NotaryError::CaFile {
                    path: path.clone(),
                    reason,
                })?
            }
            _ => Vec::new(),
        };
        let admit = |key: &keys::TufKey| {
            self.names_this_collection(key)?;
            key.certificate_valid_at(now)?;
            match &anchor {
                Anchor::Certs(ids) if !ids.contains(&key.id) => {
                    Err(format!("key {} is not a pinned root certificate", key.id))
                }
                Anchor::Ca(_) => key.chains_to(&ca_certificates, now),
                _ => Ok(()),
            }
        };
        let own_keys = self.role_keys(&root, ROOT)?;
        match self.check_role(&root, ROOT, &root.signed.keys, own_keys, &admit) {
            Ok(_) => {}
            Err(NotaryError::Threshold { problems, .. }) if anchor != Anchor::FirstUse => {
                let pinned = match &anchor {
                    Anchor::Certs(ids) => format!("the pinned certificates {}", ids.join(", ")),
                    Anchor::Ca(path) => {
                        format!("certificates issued by the CA in {}", path.display())
                    }
                    Anchor::FirstUse | Anchor::Refused => "trusted keys".to_owned(),
                };
                return Err(refuse(format!(
                    "the root is not signed by a threshold of {pinned}: none of the pinned certificates counts ({})",
                    problems.join("; ")
                )));
            }
            Err(error) => return Err(error),
        }
        match previous {
            Some(previous) if previous.bytes != root.bytes => {
                self.check_rotation(previous, &root, fetch)?;
            }
            Some(_) => {}
            None => {
                tracing::info!(gun = %self.gun, pinned = ?anchor, "trusting the root on first use")
            }
        }
        self.check_fresh(&root, ROOT, None, now)?;
        Ok(root)
    }

    /// Root keys must be certificates whose common name is the GUN (or a `prefix*` of it).
    fn names_this_collection(&self, key: &keys::TufKey) -> Result<(), String> {
        let name = key.common_name().ok_or_else(|| {
            format!(
                "root key {} is not a certificate with a common name",
                key.id
            )
        })?;
        let matches = match name.strip_suffix('*') {
            Some(prefix) => self.gun.starts_with(prefix),
            None => name == self.gun,
        };
        if !matches {
            return Err(format!(
                "root certificate {} is for {name:?}, not for this repository",
                key.id
            ));
        }
        Ok(())
    }

    fn check_rotation(
        &self,
        previous: &SignedFile<Root>,
        root: &SignedFile<Root>,
        fetch: &mut Fetch<'_>,
    ) -> Result<(), NotaryError> {
        let trusted = previous.signed.common.version;
        let served = root.signed.common.version;
        if served <= trusted {
            return Err(NotaryError::Rollback {
                gun: self.gun.clone(),
                role: ROOT.to_owned(),
                trusted,
                served,
            });
        }
        if served - trusted > MAX_ROOT_ROTATIONS {
            return Err(self.malformed(
                ROOT,
                format!("version {served} is more than {MAX_ROOT_ROTATIONS} rotations past the trusted {trusted}"),
            ));
        }
        // Earlier roots' certificates may have expired since (that is why roots rotate): only
        // the name is required of them.
        let named = |key: &keys::TufKey| self.names_this_collection(key);
        let mut current = previous.clone();
        for version in trusted + 1..=served {
            let next = if version == served {
                root.clone()
            } else {
                let name = format!("{version}.{ROOT}");
                let bytes = self.required(fetch, &name, None, &format!("root version {served}"))?;
                let next = self.parse::<Root>(&name, bytes)?;
                if next.signed.common.version != version {
                    return Err(self.malformed(
                        &name,
                        format!("holds version {}", next.signed.common.version),
                    ));
                }
                self.check_role(
                    &next,
                    &name,
                    &next.signed.keys,
                    self.role_keys(&next, ROOT)?,
                    &named,
                )?;
                next
            };
            let role = format!(
                "root version {version} (rotation: by the keys of root version {})",
                version - 1
            );
            self.check_role(
                &next,
                &role,
                &current.signed.keys,
                self.role_keys(&current, ROOT)?,
                &named,
            )?;
            current = next;
        }
        tracing::info!(gun = %self.gun, trusted, served, "root of trust rotated");
        Ok(())
    }

    /// Checks that a threshold of `role_keys` signed `file`, counting only keys `admit` lets
    /// through, each public key once; returns the keys that did.
    fn check_role<T>(
        &self,
        file: &SignedFile<T>,
        role: &str,
        keys: &BTreeMap<String, Key>,
        role_keys: &RoleKeys,
        admit: &dyn Fn(&keys::TufKey) -> Result<(), String>,
    ) -> Result<BTreeMap<String, keys::TufKey>, NotaryError> {
        if role_keys.threshold == 0 {
            return Err(self.malformed(role, "threshold 0".to_owned()));
        }
        let mut signers = BTreeMap::new();
        let mut counted_keys = BTreeSet::new();
        let mut problems = Vec::new();
        for signature in &file.signatures {
            let id = &signature.keyid;
            if signers.contains_key(id) {
                continue;
            }
            if !role_keys.keyids.contains(id) {
                problems.push(format!("key {id} is not one of the keys"));
                continue;
            }
            let Some(key) = keys.get(id) else {
                problems.push(format!("key {id} is not listed"));
                continue;
            };
            let key = match keys::parse_key(id, key).and_then(|key| admit(&key).map(|()| key)) {
                Ok(key) => key,
                Err(problem) => {
                    problems.push(problem);
                    continue;
                }
            };
            let Ok(bytes) = base64::decode(&signature.sig) else {
                problems.push(format!("signature by key {id} is not base64"));
                continue;
            };
            if !key.verifies(&signature.method, &file.signed_bytes, &bytes) {
                problems.push(format!(
                    "signature by key {id} (method {}) does not verify",
                    signature.method
                ));
            } else if !counted_keys.insert(key.key_bytes.clone()) {
                problems.push(format!(
                    "key {id} is a key already counted under another ID"
                ));
            } else {
                signers.insert(id.clone(), key);
            }
        }
        if signers.len() < role_keys.threshold as usize {
            return Err(NotaryError::Threshold {
                gun: self.gun.clone(),
                role: role.to_owned(),
                valid: signers.len(),
                threshold: role_keys.threshold,
                problems,
            });
        }
        Ok(signers)
    }

    /// Unexpired, and not older than the version trusted before.
    fn check_fresh<T: Role>(
        &self,
        file: &SignedFile<T>,
        role: &str,
        trusted: Option<u64>,
        now: i64,
    ) -> Result<(), NotaryError> {
        let common = file.signed.common();
        let expires = metadata::parse_time(&common.expires).map_err(|r| self.malformed(role, r))?;
        if expires <= now {
            return Err(NotaryError::Expired {
                gun: self.gun.clone(),
                role: role.to_owned(),
                expires: common.expires.clone(),
            });
        }
        if let Some(trusted) = trusted.filter(|&trusted| common.version < trusted) {
            return Err(NotaryError::Rollback {
                gun: self.gun.clone(),
                role: role.to_owned(),
                trusted,
                served: common.version,
            });
        }
        Ok(())
    }

    fn role_keys<'a>(
        &self,
        root: &'a SignedFile<Root>,
        role: &str,
    ) -> Result<&'a RoleKeys, NotaryError> {
        root.signed
            .roles
            .get(role)
            .ok_or_else(|| self.malformed(ROOT, format!("no {role} role")))
    }

    fn listed<'a>(
        &self,
        meta: &'a BTreeMap<String, FileMeta>,
        role: &str,
        listed_by: &str,
    ) -> Result<&'a FileMeta, NotaryError> {
        meta.get(role)
            .ok_or_else(|| self.malformed(listed_by, format!("does not list {role}")))
    }

    fn check_listed(
        &self,
        bytes: &[u8],
        meta: &FileMeta,
        role: &str,
        listed_by: &str,
    ) -> Result<(), NotaryError> {
        metadata::check_file(bytes, meta).map_err(|detail| NotaryError::MetadataMismatch {
            gun: self.gun.clone(),
            role: role.to_owned(),
            signed_by: listed_by.to_owned(),
            detail,
        })
    }

    /// A file `listed_by` calls for; missing is an error naming both.
    fn required(
        &self,
        fetch: &mut Fetch<'_>,
        name: &str,
        meta: Option<&FileMeta>,
        listed_by: &str,
    ) -> Result<Vec<u8>, NotaryError> {
        fetch(name, meta)?.ok_or_else(|| NotaryError::MissingMetadata {
            gun: self.gun.clone(),
            server: self.server.clone(),
            file: format!("{name}.json"),
            listed_by: listed_by.to_owned(),
        })
    }

    fn parse<T: Role>(&self, role: &str, bytes: Vec<u8>) -> Result<SignedFile<T>, NotaryError> {
        metadata::parse(bytes).map_err(|reason| self.malformed(role, reason))
    }

    /// A role's file from the server: by checksum when its listing gives one, never more than
    /// the listed length (itself capped) or, unlisted, [`MAX_UNLISTED_METADATA_SIZE`].
    fn fetch(&self, role: &str, meta: Option<&FileMeta>) -> Result<Option<Vec<u8>>, NotaryError> {
        let checksum = meta
            .map(metadata::sha256_hex)
            .transpose()
            .map_err(|reason| self.malformed(role, reason))?
            .flatten();
        let name = match &checksum {
            Some(hex) => format!("{role}.{hex}"),
            None => role.to_owned(),
        };
        let max_size = meta.map_or(MAX_UNLISTED_METADATA_SIZE, |meta| {
            meta.length.min(MAX_LISTED_METADATA_SIZE)
        });
        self.client
            .trust_metadata(&name, max_size)
            .map_err(|source| self.server_error(role, source))
    }

    fn find(&self, trusted: &Trusted, wanted: Wanted<'_>) -> Result<NotaryTarget, NotaryError> {
        let releases = trusted.releases.as_ref().and_then(|releases| {
            let (_, role) = delegation(&trusted.targets.signed, RELEASES)?;
            Some((RELEASES, &releases.signed, Some(role)))
        });
        let roles = releases
            .into_iter()
            .chain([(TARGETS, &trusted.targets.signed, None)]);
        let mut looked_in = Vec::new();
        for (role, targets, delegated) in roles {
            looked_in.push(role.to_owned());
            let found = targets.targets.iter().find(|(name, meta)| {
                let matches = match (wanted.tag(), wanted.digest) {
                    (Some(tag), _) => name.as_str() == tag,
                    (None, digest) => metadata::sha256_hex(meta)
                        .ok()
                        .flatten()
                        .is_some_and(|hex| digest.map(Digest::hex) == Some(hex.as_str())),
                };
                matches && delegated.is_none_or(|d: &metadata::DelegatedRole| d.covers(name))
            });
            if let Some((name, meta)) = found {
                let hex = metadata::sha256_hex(meta)
                    .map_err(|reason| self.malformed(role, reason))?
                    .ok_or_else(|| self.malformed(role, format!("target {name} has no sha256")))?;
                let digest = Digest::from_hex(&hex)
                    .map_err(|error| self.malformed(role, format!("target {name}: {error}")))?;
                if let Some(pinned) = wanted.digest.filter(|pinned| **pinned != digest) {
                    return Err(NotaryError::TargetNotSigned {
                        gun: self.gun.clone(),
                        what: format!("digest {pinned} (tag {name} is signed as {digest})"),
                        roles: vec![role.to_owned()],
                    });
                }
                tracing::info!(gun = %self.gun, target = %name, role, %digest, "Notary target trusted");
                return Ok(NotaryTarget {
                    gun: self.gun.clone(),
                    name: name.clone(),
                    role: role.to_owned(),
                    digest,
                    meta: meta.clone(),
                });
            }
        }
        Err(NotaryError::TargetNotSigned {
            gun: self.gun.clone(),
            what: match (wanted.tag(), wanted.digest) {
                (Some(tag), _) => format!("tag {tag}"),
                (None, digest) => format!(
                    "no tag with digest {}",
                    digest.map(Digest::as_str).unwrap_or_default()
                ),
            },
            roles: looked_in,
        })
    }

    fn load_cached(&self) -> Result<Cached, NotaryError> {
        Ok(Cached {
            root: self.load_cached_file(ROOT)?,
            timestamp: self.load_cached_file(TIMESTAMP)?,
            snapshot: self.load_cached_file(SNAPSHOT)?,
            targets: self.load_cached_file(TARGETS)?,
            releases: self.load_cached_file(RELEASES)?,
        })
    }

    /// A cached file, parsed. One that does not parse is an error, not "nothing cached": that
    /// would turn a damaged cache into trust on first use and drop the rollback floor.
    fn load_cached_file<T: Role>(&self, role: &str) -> Result<Option<SignedFile<T>>, NotaryError> {
        let path = self.cache_path(role);
        // Capped as a download is: the cache may be shared, its files are outside input too.
        match crate::config::read_capped(&path, MAX_LISTED_METADATA_SIZE) {
            Ok(bytes) => metadata::parse(bytes).map(Some).map_err(|reason| {
                self.malformed(&format!("cached {role} ({})", path.display()), reason)
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(NotaryError::Cache { path, source }),
        }
    }

    /// Writes the files of the verified chain that changed, each atomically (several nodes may
    /// share the cache).
    fn save(&self, trusted: &Trusted, cached: &Cached) -> Result<(), NotaryError> {
        let files = [
            (ROOT, &trusted.root.bytes),
            (TIMESTAMP, &trusted.timestamp.bytes),
            (SNAPSHOT, &trusted.snapshot.bytes),
            (TARGETS, &trusted.targets.bytes),
        ]
        .into_iter()
        .chain(trusted.releases.as_ref().map(|r| (RELEASES, &r.bytes)));
        for (role, bytes) in files {
            if cached.bytes(role) == Some(bytes) {
                continue; // unchanged: no rewrite, no fsync on a warm pull
            }
            let path = self.cache_path(role);
            write_atomically(&path, bytes).map_err(|source| NotaryError::Cache { path, source })?;
        }
        if trusted.releases.is_none() && cached.releases.is_some() {
            // The delegation is gone: its old file must not outlive it as a version floor.
            let path = self.cache_path(RELEASES);
            match fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(NotaryError::Cache { path, source: e })
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// An exclusive `flock` on `<metadata dir>/.lock`, released when the file is dropped.
    fn lock(&self) -> Result<fs::File, NotaryError> {
        let path = self.metadata_dir.join(".lock");
        let cache_error = |source| NotaryError::Cache {
            path: path.clone(),
            source,
        };
        fs::create_dir_all(&self.metadata_dir).map_err(cache_error)?;
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(cache_error)?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|errno| cache_error(errno.into()))?;
        Ok(file)
    }

    fn cache_path(&self, role: &str) -> PathBuf {
        self.metadata_dir.join(format!("{role}.json"))
    }

    fn malformed(&self, role: &str, reason: String) -> NotaryError {
        NotaryError::Malformed {
            gun: self.gun.clone(),
            role: role.to_owned(),
            reason,
        }
    }

    fn server_error(&self, role: &str, source: RegistryError) -> NotaryError {
        if is_unreachable(&source) {
            return NotaryError::Unreachable {
                gun: self.gun.clone(),
                server: self.server.clone(),
                cache: "the cache was not consulted".to_owned(),
                source: Box::new(source),
            };
        }
        NotaryError::Server {
            gun: self.gun.clone(),
            role: role.to_owned(),
            source: Box::new(source),
        }
    }
}

/// The keys and role of a delegation the targets role makes.
fn delegation<'a>(
    targets: &'a Targets,
    name: &str,
) -> Option<(&'a BTreeMap<String, Key>, &'a metadata::DelegatedRole)> {
    let delegations = targets.delegations.as_ref()?;
    let role = delegations.roles.iter().find(|role| role.name == name)?;
    Some((&delegations.keys, role))
}

/// The key IDs of a role, as a set.
fn key_set(role: Option<&RoleKeys>) -> Option<BTreeSet<&str>> {
    role.map(|role| role.keyids.iter().map(String::as_str).collect())
}

/// The cached `targets/releases` version, unless the cached targets delegated it to other keys.
fn releases_floor(cached: &Cached, delegated: &RoleKeys) -> Option<u64> {
    let (_, cached_role) = delegation(&cached.targets.as_ref()?.signed, RELEASES)?;
    (key_set(Some(&cached_role.keys)) == key_set(Some(delegated)))
        .then(|| version(cached.releases.as_ref()))
        .flatten()
}

/// Connection failures and server-side outages: the cases where cached data may stand in.
fn is_unreachable(error: &RegistryError) -> bool {
    match error {
        RegistryError::Connection { .. } => true,
        RegistryError::Status { status, .. } => *status >= 500,
        _ => false,
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let file_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("metadata");
    // Unique per process and thread: stores in other threads may update the same collection.
    let temporary = dir.join(format!(
        ".{file_name}.{}.{:?}.tmp",
        std::process::id(),
        std::thread::current().id()
    ));
    let mut file = fs::File::create(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&temporary, path)
}
