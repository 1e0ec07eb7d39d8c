//! Cosign signatures, checked with the public keys of the configuration's key directory.
//!
//! # Where cosign puts a signature
//! For a manifest `sha256:<hex>`, cosign pushes the tag `sha256-<hex>.sig` in the same
//! repository: an image manifest whose every layer of media type [`SIMPLESIGNING_MEDIA_TYPE`]
//! is one signature. The layer blob is the signed payload, a "simple signing" JSON document:
//!
//! ```json
//! {"critical": {"identity": {"docker-reference": "registry/repository"},
//!               "image": {"docker-manifest-digest": "sha256:<hex>"},
//!               "type": "cosign container image signature"},
//!  "optional": {…}}
//! ```
//!
//! and the layer's annotation [`SIGNATURE_ANNOTATION`] holds the base64 signature over the
//! blob bytes. Signing again appends a layer.
//!
//! # What makes an image trusted
//! Any one signature layer that verifies with any trusted key and whose payload is a cosign
//! image signature naming exactly the manifest digest asked about. concil 1.0 checked only the
//! last layer and never compared the digest, so a signature copied from another image passed;
//! here a trusted signature of another digest is [`TrustError::WrongImage`]. The signed
//! `docker-reference` is compared with the repository only when asked
//! ([`Verifier::check_docker_reference`]): cosign signs the name an image was pushed under,
//! and images copied between registries keep their signatures, so it is off by default, as
//! in `cosign verify`, which does not compare it.
//!
//! Without a trusted signature there, [`Verifier::verify`] looks for sigstore bundles among
//! the digest's OCI 1.1 referrers ([`super::bundle`]).
//!
//! # Keyless signatures
//! `cosign sign` without a key puts the signer's Fulcio certificate (PEM) in the layer's
//! [`CERTIFICATE_ANNOTATION`], its chain in `dev.sigstore.cosign/chain` (not used: only the
//! trusted root's CAs count) and the Rekor entry with its signed entry timestamp in
//! [`REKOR_BUNDLE_ANNOTATION`]. A signature no trusted key verifies is checked that way when
//! it has a certificate ([`super::keyless`]), against [`Config::cosign_trusted_root`] and the
//! [`Config::cosign_identities`] entry of the repository.

use std::fs;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::Deserialize;

use super::keyless::{self, CertificateSigner, KeylessRejection, KeylessSignature, TrustedRoot};
use super::keys::{KeyAlgorithm, PublicKey};
use super::{KeylessGap, TrustError};
use crate::config::{Config, CosignIdentities, CosignIdentity};
use crate::digest::Digest;
use crate::registry::{Client, Descriptor, ParsedManifest, RegistryError};

/// The media type of a signature layer.
pub const SIMPLESIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The layer annotation holding the base64 signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// The layer annotation holding a keyless signature's certificate (PEM).
pub const CERTIFICATE_ANNOTATION: &str = "dev.sigstore.cosign/certificate";
/// The layer annotation holding a keyless signature's Rekor entry and signed entry timestamp.
pub const REKOR_BUNDLE_ANNOTATION: &str = "dev.sigstore.cosign/bundle";
/// `critical.type` of a signature of a container image.
pub const IMAGE_SIGNATURE_TYPE: &str = "cosign container image signature";
/// The extension of public key files in the key directory.
pub const PUBLIC_KEY_EXTENSION: &str = "pub";

/// A signed payload is a few hundred bytes, a bundle a few KiB; anything past this is neither.
pub(super) const MAX_PAYLOAD_SIZE: u64 = 1024 * 1024;
/// A PEM public key is at most a few KiB (RSA 4096: 800 bytes).
const MAX_KEY_FILE_SIZE: u64 = 64 * 1024;
/// Signature layers checked per image at most, each one a blob download.
pub(super) const MAX_SIGNATURES: usize = 128;

/// One trusted public key, from `<key dir>/<name>.pub`.
#[derive(Debug, Clone)]
pub struct TrustedKey {
    /// The file name without `.pub`.
    pub name: String,
    pub path: PathBuf,
    pub key: PublicKey,
}

impl TrustedKey {
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.key.algorithm()
    }
}

/// Why one signature did not make the image trusted. `blob` is the digest of the signature
/// layer (simple signing) or of the bundle.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureRejection {
    /// A signature manifest (the `.sig` tag or a bundle's) that cannot hold a signature.
    #[error("signature manifest {manifest}: {reason}")]
    Manifest { manifest: String, reason: String },
    #[error("signature {blob}: no {SIGNATURE_ANNOTATION} annotation")]
    NoSignature { blob: String },
    #[error("signature {blob}: the signature is not base64")]
    SignatureNotBase64 { blob: String },
    #[error("signature {blob}: {size} bytes, larger than {MAX_PAYLOAD_SIZE} bytes")]
    TooLarge { blob: String, size: u64 },
    /// The blob is missing or does not match its digest.
    #[error("signature {blob}: unavailable: {reason}")]
    Unavailable { blob: String, reason: String },
    /// A bundle that does not parse or holds no key-verifiable signature.
    #[error("bundle {blob}: {reason}")]
    InvalidBundle { blob: String, reason: String },
    #[error("signature {blob}: verifies with none of the {keys} trusted keys")]
    NoKeyVerifies { blob: String, keys: usize },
    /// A keyless signature, but keyless verification is not set up for the repository.
    #[error("signature {blob}: keyless, but there is {gap}")]
    KeylessNotConfigured { blob: String, gap: KeylessGap },
    /// The certificate of a keyless signature is unusable, not valid when the log saw the
    /// signature, or not issued by a trusted Fulcio CA.
    #[error("signature {blob}: certificate rejected: {reason}")]
    CertificateUntrusted { blob: String, reason: String },
    /// The trusted root names certificate transparency logs, and the certificate embeds no
    /// valid signed certificate timestamp of one (it may have been issued in secret).
    #[error(
        "signature {blob}: certificate not in a trusted certificate transparency log: {reason}"
    )]
    CertificateNotLogged { blob: String, reason: String },
    #[error("signature {blob}: does not verify with the key of its certificate")]
    CertificateKeyMismatch { blob: String },
    /// No transparency-log entry of a trusted log vouches for the keyless signature.
    #[error("signature {blob}: no valid transparency-log entry: {reason}")]
    TransparencyLog { blob: String, reason: String },
    /// A valid keyless signature by someone else than the configured signer.
    #[error("signature {blob}: signed by {found}, not by {expected}")]
    IdentityMismatch {
        blob: String,
        expected: String,
        found: String,
    },
    /// Signed by a trusted key, but not a cosign signature of a container image.
    #[error("signature {blob}: the signed payload is not a cosign image signature: {reason}")]
    NotImageSignature { blob: String, reason: String },
    #[error("{skipped} more signatures were not checked (at most {MAX_SIGNATURES} are)")]
    TooMany { skipped: usize },
}

/// The two ways cosign stores a signature in a registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureFormat {
    /// A layer of the `sha256-<hex>.sig` tag (cosign's classic format).
    SimpleSigning,
    /// A sigstore bundle attached as an OCI 1.1 referrer (`cosign sign --new-bundle-format`).
    Bundle,
}

/// Who made a trusted signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignedBy {
    /// A trusted key ([`TrustedKey::name`] and file).
    Key { name: String, path: PathBuf },
    /// A Fulcio certificate for the configured identity, logged in a trusted Rekor log.
    Certificate(CertificateSigner),
}

impl SignedBy {
    pub(super) fn key(key: &TrustedKey) -> SignedBy {
        SignedBy::Key {
            name: key.name.clone(),
            path: key.path.clone(),
        }
    }
}

impl std::fmt::Display for SignedBy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SignedBy::Key { name, .. } => write!(f, "key {name}"),
            SignedBy::Certificate(signer) => write!(
                f,
                "{} (issuer {}, log index {})",
                signer.subject, signer.issuer, signer.log_index
            ),
        }
    }
}

/// What vouched for a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CosignVerified {
    /// The manifest digest that is trusted.
    pub digest: Digest,
    pub signed_by: SignedBy,
    pub format: SignatureFormat,
    /// The digest of the manifest holding the signature (the `sha256-<hex>.sig` tag's, or
    /// the bundle's referrer manifest).
    pub signature_manifest: String,
    /// The digest of the blob holding it (the signed payload, or the bundle).
    pub signature_blob: String,
    /// The repository the signature names (simple signing's
    /// `critical.identity.docker-reference`, a bundle statement's subject name), if any.
    pub docker_reference: Option<String>,
}

impl CosignVerified {
    /// The name of the trusted key that signed, if a key did.
    pub fn key_name(&self) -> Option<&str> {
        match &self.signed_by {
            SignedBy::Key { name, .. } => Some(name),
            SignedBy::Certificate(_) => None,
        }
    }
}

/// Checks cosign signatures against a set of trusted keys and, keyless, a trusted root and
/// signer identities. Cheap to keep; every [`Verifier::verify`] asks the registry afresh.
#[derive(Debug, Clone)]
pub struct Verifier {
    keys: Vec<TrustedKey>,
    key_dir: Option<PathBuf>,
    check_docker_reference: bool,
    trusted_root: Option<TrustedRoot>,
    identities: CosignIdentities,
}

impl Verifier {
    /// The keys of the configuration's key directory ([`Config::cosign_key_dir`]), and the
    /// keyless set-up ([`Config::cosign_trusted_root`], [`Config::cosign_identities`]).
    pub fn from_config(config: &Config) -> Result<Verifier, TrustError> {
        let verifier = match config.cosign_key_dir() {
            Some(dir) => Verifier::from_key_dir(&dir)?,
            None => Verifier {
                keys: Vec::new(),
                key_dir: None,
                check_docker_reference: false,
                trusted_root: None,
                identities: CosignIdentities::default(),
            },
        };
        let trusted_root = config
            .cosign_trusted_root
            .as_deref()
            .map(|path| {
                TrustedRoot::from_file(path).map_err(|problem| TrustError::TrustedRoot {
                    path: path.to_path_buf(),
                    problem,
                })
            })
            .transpose()?;
        Ok(verifier.keyless(trusted_root, config.cosign_identities.clone()))
    }

    /// Accepts keyless signatures checked against `trusted_root` whose certificate names
    /// the identity `identities` holds for the repository (none: keyless signatures do not
    /// count).
    pub fn keyless(
        mut self,
        trusted_root: Option<TrustedRoot>,
        identities: CosignIdentities,
    ) -> Verifier {
        self.trusted_root = trusted_root;
        self.identities = identities;
        self
    }

    /// Loads every `*.pub` file of `dir` (in name order). A missing directory holds no keys
    /// (then [`Verifier::verify`] fails with [`TrustError::NoTrustedKey`]); a file that is not
    /// a supported public key is an error naming it.
    pub fn from_key_dir(dir: &Path) -> Result<Verifier, TrustError> {
        let directory_error = |source| TrustError::KeyDirectory {
            path: dir.to_path_buf(),
            source,
        };
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Verifier {
                    keys: Vec::new(),
                    key_dir: Some(dir.to_path_buf()),
                    check_docker_reference: false,
                    trusted_root: None,
                    identities: CosignIdentities::default(),
                })
            }
            Err(error) => return Err(directory_error(error)),
        };
        let mut paths = Vec::new();
        for entry in entries {
            let path = entry.map_err(directory_error)?.path();
            if path.extension().is_some_and(|e| e == PUBLIC_KEY_EXTENSION) {
                paths.push(path);
            }
        }
        paths.sort();
        let keys = paths
            .into_iter()
            .map(|path| load_key(&path))
            .collect::<Result<Vec<_>, _>>()?;
        tracing::debug!(dir = %dir.display(), keys = keys.len(), "loaded cosign keys");
        Ok(Verifier {
            keys,
            key_dir: Some(dir.to_path_buf()),
            check_docker_reference: false,
            trusted_root: None,
            identities: CosignIdentities::default(),
        })
    }

    /// Also requires the signed repository to be the one passed to [`Verifier::verify`]:
    /// simple signing's `critical.identity.docker-reference`, a bundle statement's subject
    /// `name` (Docker Hub's aliases `index.docker.io` and `registry-1.docker.io` count as
    /// `docker.io`; a tag or digest in it is ignored). Message-signature bundles name no
    /// repository and then never pass.
    pub fn check_docker_reference(mut self, check: bool) -> Verifier {
        self.check_docker_reference = check;
        self
    }

    /// The trusted keys, in file name order.
    pub fn keys(&self) -> &[TrustedKey] {
        &self.keys
    }

    /// Whether a trusted key (or the configured keyless signer) signed `manifest_digest`
    /// (the digest the reference resolved to: an index's when the tag names an index) in the
    /// repository `client` reads: first the `sha256-<hex>.sig` tag, then sigstore bundles
    /// among the digest's referrers.
    ///
    /// `image` is the reference as the user gave it, for messages; `repository` is
    /// `registry/repository` as in references (`docker.io/library/alpine`,
    /// `127.0.0.1:5000/test/busybox`), compared with the signed identity only when
    /// [`Verifier::check_docker_reference`] is on.
    pub fn verify(
        &self,
        client: &Client,
        image: &str,
        repository: &str,
        manifest_digest: &Digest,
    ) -> Result<CosignVerified, TrustError> {
        let keyless = self.keyless_for(repository);
        if let (true, Err(gap)) = (self.keys.is_empty(), &keyless) {
            return Err(TrustError::NoTrustedKey {
                image: image.to_owned(),
                digest: manifest_digest.clone(),
                key_dir: self.key_dir.clone(),
                keyless: gap.clone(),
            });
        }
        let mut attempt = Attempt {
            verifier: self,
            client,
            image,
            repository,
            keyless,
            digest: manifest_digest,
            looked_at: Vec::new(),
            rejected: Vec::new(),
            wrong_image: None,
            wrong_repository: None,
        };
        if let Some(verified) = attempt.simple_signing()? {
            return Ok(verified);
        }
        if let Some(verified) = super::bundle::verify_bundles(&mut attempt)? {
            return Ok(verified);
        }
        Err(attempt.into_error())
    }

    /// The trusted root and the signer identity keyless signatures in `repository`
    /// (`registry/path`) are checked against, or why there are none.
    fn keyless_for(&self, repository: &str) -> Result<(&TrustedRoot, &CosignIdentity), KeylessGap> {
        let root = self
            .trusted_root
            .as_ref()
            .ok_or(KeylessGap::NoTrustedRoot)?;
        let (registry, path) = repository.split_once('/').unwrap_or((repository, ""));
        let identity = self
            .identities
            .for_repository(registry, path)
            .ok_or_else(|| KeylessGap::NoIdentity {
                repository: repository.to_owned(),
            })?;
        Ok((root, identity))
    }

    /// The first trusted key `signature` of `message` verifies with.
    pub(super) fn key_for(&self, message: &[u8], signature: &[u8]) -> Option<&TrustedKey> {
        self.keys
            .iter()
            .find(|key| key.key.verifies(message, signature))
    }
}

/// One [`Verifier::verify`] call: what it asks about, and what it found so far.
pub(super) struct Attempt<'a> {
    pub(super) verifier: &'a Verifier,
    pub(super) client: &'a Client,
    image: &'a str,
    repository: &'a str,
    /// What keyless signatures are checked against, or why they cannot be.
    keyless: Result<(&'a TrustedRoot, &'a CosignIdentity), KeylessGap>,
    /// The manifest digest to be vouched for.
    pub(super) digest: &'a Digest,
    /// Where signatures were looked for and not found, for [`TrustError::NotSigned`].
    looked_at: Vec<String>,
    pub(super) rejected: Vec<SignatureRejection>,
    /// The first digest a trusted signature named instead of ours.
    wrong_image: Option<String>,
    wrong_repository: Option<String>,
}

/// What a trusted key signed: the manifest digest and the repository it names.
pub(super) struct SignedClaim {
    pub(super) digest: String,
    pub(super) repository: Option<String>,
}

impl<'a> Attempt<'a> {
    pub(super) fn registry_error(&self, source: RegistryError) -> TrustError {
        TrustError::Registry {
            image: self.image.to_owned(),
            source,
        }
    }

    /// Who made a keyless signature, if it is trusted; notes why not otherwise.
    pub(super) fn keyless_signer(
        &mut self,
        blob: &str,
        signature: &KeylessSignature<'_>,
    ) -> Option<SignedBy> {
        let blob = blob.to_owned();
        let (root, identity) = match &self.keyless {
            Ok(pair) => *pair,
            Err(gap) => {
                let gap = gap.clone();
                self.rejected
                    .push(SignatureRejection::KeylessNotConfigured { blob, gap });
                return None;
            }
        };
        match keyless::verify(root, identity, signature) {
            Ok(signer) => Some(SignedBy::Certificate(signer)),
            Err(rejection) => {
                self.rejected.push(match rejection {
                    KeylessRejection::Certificate(reason) => {
                        SignatureRejection::CertificateUntrusted { blob, reason }
                    }
                    KeylessRejection::CertificateTransparency(reason) => {
                        SignatureRejection::CertificateNotLogged { blob, reason }
                    }
                    KeylessRejection::Signature => {
                        SignatureRejection::CertificateKeyMismatch { blob }
                    }
                    KeylessRejection::TransparencyLog(reason) => {
                        SignatureRejection::TransparencyLog { blob, reason }
                    }
                    KeylessRejection::Identity { expected, found } => {
                        SignatureRejection::IdentityMismatch {
                            blob,
                            expected,
                            found,
                        }
                    }
                });
                None
            }
        }
    }

    /// Notes a place without signatures (`no tag sha256-….sig`).
    pub(super) fn nothing_at(&mut self, place: String) {
        self.looked_at.push(place);
    }

    /// Whether a claim a trusted key signed vouches for our digest (and repository, when
    /// asked); notes why not otherwise.
    pub(super) fn accepts(&mut self, claim: &SignedClaim) -> bool {
        if *self.digest != claim.digest {
            self.wrong_image.get_or_insert_with(|| claim.digest.clone());
            return false;
        }
        let repository_ok = claim
            .repository
            .as_deref()
            .is_some_and(|signed| same_repository(signed, self.repository));
        if self.verifier.check_docker_reference && !repository_ok {
            self.wrong_repository
                .get_or_insert_with(|| claim.repository.clone().unwrap_or_default());
            return false;
        }
        tracing::debug!(image = %self.image, digest = %self.digest, "cosign signature verified");
        true
    }

    /// The most telling reason the image is not trusted: a trusted signature of something
    /// else beats a valid keyless signature by another signer, which beats signatures that
    /// do not verify (with their own status when all failed at the same keyless step), which
    /// beat no signature at all.
    fn into_error(self) -> TrustError {
        let identity_mismatch = self.rejected.iter().find_map(|rejection| match rejection {
            SignatureRejection::IdentityMismatch {
                expected, found, ..
            } => Some((expected.clone(), found.clone())),
            _ => None,
        });
        let all = |test: fn(&SignatureRejection) -> bool| {
            !self.rejected.is_empty() && self.rejected.iter().all(test)
        };
        let untrusted_certificates =
            all(|r| matches!(r, SignatureRejection::CertificateUntrusted { .. }));
        let no_log_entries = all(|r| matches!(r, SignatureRejection::TransparencyLog { .. }));
        let unlogged_certificates =
            all(|r| matches!(r, SignatureRejection::CertificateNotLogged { .. }));
        let image = self.image.to_owned();
        let digest = self.digest.clone();
        if let Some(signed_digest) = self.wrong_image {
            TrustError::WrongImage {
                image,
                digest,
                signed_digest,
            }
        } else if let Some(signed_reference) = self.wrong_repository {
            TrustError::WrongRepository {
                image,
                digest,
                repository: self.repository.to_owned(),
                signed_reference,
            }
        } else if let Some((expected, found)) = identity_mismatch {
            TrustError::IdentityMismatch {
                image,
                digest,
                expected,
                found,
            }
        } else if untrusted_certificates {
            TrustError::CertificateUntrusted {
                image,
                digest,
                rejected: self.rejected,
            }
        } else if unlogged_certificates {
            TrustError::CertificateNotLogged {
                image,
                digest,
                rejected: self.rejected,
            }
        } else if no_log_entries {
            TrustError::NoTransparencyLogEntry {
                image,
                digest,
                rejected: self.rejected,
            }
        } else if !self.rejected.is_empty() {
            TrustError::SignatureInvalid {
                image,
                digest,
                rejected: self.rejected,
            }
        } else {
            TrustError::NotSigned {
                image,
                digest,
                detail: self.looked_at.join("; "),
            }
        }
    }

    /// The signatures of the `sha256-<hex>.sig` tag.
    fn simple_signing(&mut self) -> Result<Option<CosignVerified>, TrustError> {
        let signature_tag = signature_tag(self.digest);
        let signatures = match self.client.manifest(&signature_tag) {
            Ok(manifest) => manifest,
            Err(RegistryError::NotFound { .. }) => {
                self.nothing_at(format!("no tag {signature_tag}"));
                return Ok(None);
            }
            Err(error) if is_bad_content(&error) => {
                self.rejected.push(SignatureRejection::Manifest {
                    manifest: signature_tag,
                    reason: error.to_string(),
                });
                return Ok(None);
            }
            Err(error) => return Err(self.registry_error(error)),
        };
        let layers = match signatures.parse() {
            Ok(ParsedManifest::Image(manifest)) => manifest.layers().clone(),
            Ok(ParsedManifest::Index(_)) => {
                self.rejected.push(SignatureRejection::Manifest {
                    manifest: signatures.digest.to_string(),
                    reason: "an index, not an image manifest".to_owned(),
                });
                return Ok(None);
            }
            Err(error) => {
                self.rejected.push(SignatureRejection::Manifest {
                    manifest: signatures.digest.to_string(),
                    reason: error.to_string(),
                });
                return Ok(None);
            }
        };
        let candidates: Vec<_> = layers
            .iter()
            .filter(|layer| layer.media_type().to_string() == SIMPLESIGNING_MEDIA_TYPE)
            .collect();
        if candidates.is_empty() {
            self.nothing_at(format!("tag {signature_tag} holds no signature layers"));
            return Ok(None);
        }
        for layer in candidates.iter().take(MAX_SIGNATURES) {
            let Some((signed_by, claim)) = self.check_layer(layer)? else {
                continue;
            };
            if self.accepts(&claim) {
                return Ok(Some(CosignVerified {
                    digest: self.digest.clone(),
                    signed_by,
                    format: SignatureFormat::SimpleSigning,
                    signature_manifest: signatures.digest.to_string(),
                    signature_blob: layer.digest().to_string(),
                    docker_reference: claim.repository,
                }));
            }
        }
        if let Some(skipped) = candidates
            .len()
            .checked_sub(MAX_SIGNATURES)
            .filter(|n| *n > 0)
        {
            self.rejected.push(SignatureRejection::TooMany { skipped });
        }
        Ok(None)
    }

    /// Who signed this layer and what; `None` (with the reason noted) if no trusted key or
    /// keyless signer signed a cosign image signature here.
    fn check_layer(
        &mut self,
        layer: &Descriptor,
    ) -> Result<Option<(SignedBy, SignedClaim)>, TrustError> {
        let blob = layer.digest().to_string();
        let annotation = |name: &str| {
            layer
                .annotations()
                .as_ref()
                .and_then(|annotations| annotations.get(name))
        };
        let Some(signature) = annotation(SIGNATURE_ANNOTATION) else {
            self.rejected.push(SignatureRejection::NoSignature { blob });
            return Ok(None);
        };
        let Some(signature) = decode_base64(signature) else {
            self.rejected
                .push(SignatureRejection::SignatureNotBase64 { blob });
            return Ok(None);
        };
        let Some(payload) = self.small_blob(layer)? else {
            return Ok(None);
        };
        let verifier = self.verifier;
        let signed_by = match (
            verifier.key_for(&payload, &signature),
            annotation(CERTIFICATE_ANNOTATION),
        ) {
            (Some(key), _) => SignedBy::key(key),
            (None, Some(certificate)) => {
                let material = legacy_keyless_material(
                    &blob,
                    certificate,
                    annotation(REKOR_BUNDLE_ANNOTATION),
                );
                let (certificate, log_entry) = match material {
                    Ok(material) => material,
                    Err(rejection) => {
                        self.rejected.push(rejection);
                        return Ok(None);
                    }
                };
                let keyless_signature = KeylessSignature {
                    certificate,
                    signature: &signature,
                    signed: &payload,
                    artifact: keyless::LoggedArtifact::Message,
                    log_entries: vec![log_entry],
                };
                match self.keyless_signer(&blob, &keyless_signature) {
                    Some(signed_by) => signed_by,
                    None => return Ok(None),
                }
            }
            (None, None) => {
                self.rejected.push(SignatureRejection::NoKeyVerifies {
                    blob,
                    keys: verifier.keys.len(),
                });
                return Ok(None);
            }
        };
        // Only a verified payload is parsed: what it says counts only once a signer vouched
        // for it.
        match parse_simple_signing(&payload) {
            Ok(claim) => Ok(Some((signed_by, claim))),
            Err(reason) => {
                self.rejected
                    .push(SignatureRejection::NotImageSignature { blob, reason });
                Ok(None)
            }
        }
    }

    /// A signature blob (payload or bundle) of at most [`MAX_PAYLOAD_SIZE`] bytes, checked
    /// against its digest; `None` (with the reason noted) if it is missing, corrupt or too
    /// large. Other registry failures are errors.
    pub(super) fn small_blob(
        &mut self,
        descriptor: &Descriptor,
    ) -> Result<Option<Vec<u8>>, TrustError> {
        let blob = descriptor.digest().to_string();
        if descriptor.size() > MAX_PAYLOAD_SIZE {
            self.rejected.push(SignatureRejection::TooLarge {
                blob,
                size: descriptor.size(),
            });
            return Ok(None);
        }
        let digest = match Digest::parse(&blob) {
            Ok(digest) => digest,
            Err(error) => {
                self.rejected.push(SignatureRejection::Unavailable {
                    blob,
                    reason: error.to_string(),
                });
                return Ok(None);
            }
        };
        match self.client.blob_bytes(&digest, MAX_PAYLOAD_SIZE) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(error) if is_bad_content(&error) => {
                self.rejected.push(SignatureRejection::Unavailable {
                    blob,
                    reason: error.to_string(),
                });
                Ok(None)
            }
            Err(error) => Err(self.registry_error(error)),
        }
    }
}

/// Whether a registry error means the signature content is bad (missing, corrupt, too large,
/// not a manifest we read), which rejects that signature, rather than that the registry
/// could not be asked, which fails the verification.
pub(super) fn is_bad_content(error: &RegistryError) -> bool {
    matches!(
        error,
        RegistryError::NotFound { .. }
            | RegistryError::DigestMismatch { .. }
            | RegistryError::TooLarge { .. }
            | RegistryError::InvalidManifest { .. }
            | RegistryError::UnsupportedMediaType { .. }
            | RegistryError::Schema1 { .. }
            | RegistryError::Malformed { .. }
    )
}

/// The certificate (DER) and Rekor entry of a keyless `.sig` layer, from its annotations.
fn legacy_keyless_material(
    blob: &str,
    certificate: &str,
    rekor_bundle: Option<&String>,
) -> Result<(Vec<u8>, keyless::LogEntry), SignatureRejection> {
    let certificate = match x509_cert::der::pem::decode_vec(certificate.as_bytes()) {
        Ok(("CERTIFICATE", der)) => der,
        _ => {
            return Err(SignatureRejection::CertificateUntrusted {
                blob: blob.to_owned(),
                reason: format!("{CERTIFICATE_ANNOTATION} is not a PEM certificate"),
            })
        }
    };
    let transparency_log = |reason| SignatureRejection::TransparencyLog {
        blob: blob.to_owned(),
        reason,
    };
    let Some(rekor_bundle) = rekor_bundle else {
        return Err(transparency_log(format!(
            "no {REKOR_BUNDLE_ANNOTATION} annotation (signed without a transparency log)"
        )));
    };
    let entry = keyless::LogEntry::from_cosign_annotation(rekor_bundle)
        .map_err(|reason| transparency_log(format!("{REKOR_BUNDLE_ANNOTATION}: {reason}")))?;
    Ok((certificate, entry))
}

/// The claim of a cosign simple-signing payload, or why it is not one.
fn parse_simple_signing(payload: &[u8]) -> Result<SignedClaim, String> {
    let parsed: SimpleSigning = serde_json::from_slice(payload).map_err(|e| e.to_string())?;
    let critical = parsed.critical;
    if critical.kind != IMAGE_SIGNATURE_TYPE {
        return Err(format!("critical.type is {:?}", critical.kind));
    }
    Ok(SignedClaim {
        digest: critical.image.docker_manifest_digest,
        repository: critical.identity.and_then(|i| i.docker_reference),
    })
}

/// The tag cosign stores the signatures of `digest` under: `sha256-<hex>.sig`.
pub fn signature_tag(digest: &Digest) -> String {
    format!("{}.sig", digest.as_tag())
}

/// The simple-signing payload, as far as verification reads it.
#[derive(Debug, Deserialize)]
struct SimpleSigning {
    critical: Critical,
}

#[derive(Debug, Deserialize)]
struct Critical {
    #[serde(rename = "type")]
    kind: String,
    image: SignedImage,
    #[serde(default)]
    identity: Option<Identity>,
}

#[derive(Debug, Deserialize)]
struct SignedImage {
    #[serde(rename = "docker-manifest-digest")]
    docker_manifest_digest: String,
}

#[derive(Debug, Deserialize)]
struct Identity {
    #[serde(rename = "docker-reference", default)]
    docker_reference: Option<String>,
}

/// Standard base64; line breaks are ignored, as Go's decoder (cosign's) does.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let compact: String = text.chars().filter(|c| !matches!(c, '\r' | '\n')).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact)
        .ok()
}

fn load_key(path: &Path) -> Result<TrustedKey, TrustError> {
    let read_error = |source| TrustError::KeyDirectory {
        path: path.to_path_buf(),
        source,
    };
    let mut text = Vec::new();
    fs::File::open(path)
        .and_then(|file| file.take(MAX_KEY_FILE_SIZE + 1).read_to_end(&mut text))
        .map_err(read_error)?;
    if text.len() as u64 > MAX_KEY_FILE_SIZE {
        return Err(TrustError::KeyFile {
            path: path.to_path_buf(),
            problem: super::KeyProblem::NotPem(format!("larger than {MAX_KEY_FILE_SIZE} bytes")),
        });
    }
    let key = PublicKey::from_pem(&text).map_err(|problem| TrustError::KeyFile {
        path: path.to_path_buf(),
        problem,
    })?;
    let name = path
        .file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(TrustedKey {
        name,
        path: path.to_path_buf(),
        key,
    })
}

/// Whether a signed `docker-reference` names `repository` (`registry/path`).
fn same_repository(signed: &str, repository: &str) -> bool {
    normalize_repository(signed) == normalize_repository(repository)
}

/// `registry/path` without tag or digest, Docker Hub's aliases as `docker.io`.
fn normalize_repository(name: &str) -> String {
    let name = name.split_once('@').map_or(name, |(name, _)| name);
    let name = match name.rsplit_once(':') {
        // A colon after the last slash starts a tag; before it, it is the registry's port.
        Some((before, tag)) if !tag.contains('/') => before,
        _ => name,
    };
    match name.split_once('/') {
        Some(("index.docker.io" | "registry-1.docker.io", path)) => format!("docker.io/{path}"),
        _ => name.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_tag_of_a_digest() {
        let digest = Digest::parse(&format!("sha256:{}", "ab".repeat(32))).unwrap();
        assert_eq!(
            signature_tag(&digest),
            format!("sha256-{}.sig", "ab".repeat(32))
        );
    }

    #[test]
    fn repositories_compare_without_tags_and_docker_hub_aliases() {
        assert!(same_repository(
            "index.docker.io/library/alpine",
            "docker.io/library/alpine"
        ));
        assert!(same_repository(
            "127.0.0.1:5000/test/busybox:v1",
            "127.0.0.1:5000/test/busybox"
        ));
        assert!(same_repository(
            "127.0.0.1:5000/test/busybox@sha256:00",
            "127.0.0.1:5000/test/busybox"
        ));
        assert!(!same_repository(
            "127.0.0.1:5000/test/other",
            "127.0.0.1:5000/test/busybox"
        ));
        assert!(!same_repository(
            "127.0.0.1:5001/test/busybox",
            "127.0.0.1:5000/test/busybox"
        ));
    }

    #[test]
    fn base64_signatures_may_be_wrapped() {
        assert_eq!(decode_base64("aGVs\nbG8=\r\n"), Some(b"hello".to_vec()));
        assert_eq!(decode_base64("not base64!"), None);
    }

    #[test]
    fn payloads_parse_as_cosign_writes_them() {
        let payload = br#"{"critical":{"identity":{"docker-reference":"r/x"},"image":{"docker-manifest-digest":"sha256:00"},"type":"cosign container image signature"},"optional":null}"#;
        let parsed: SimpleSigning = serde_json::from_slice(payload).unwrap();
        assert_eq!(parsed.critical.kind, IMAGE_SIGNATURE_TYPE);
        assert_eq!(parsed.critical.image.docker_manifest_digest, "sha256:00");
        assert_eq!(
            parsed.critical.identity.and_then(|i| i.docker_reference),
            Some("r/x".to_owned())
        );
    }

    #[test]
    fn key_directory_loading() {
        let dir = tempfile::tempdir().unwrap();
        let missing = Verifier::from_key_dir(&dir.path().join("missing")).unwrap();
        assert!(missing.keys().is_empty());
        std::fs::write(dir.path().join("notes.txt"), "not a key").unwrap();
        std::fs::write(dir.path().join("cosign.key"), "not a key either").unwrap();
        assert!(Verifier::from_key_dir(dir.path())
            .unwrap()
            .keys()
            .is_empty());
        let bad = dir.path().join("broken.pub");
        std::fs::write(
            &bad,
            "-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n",
        )
        .unwrap();
        let error = Verifier::from_key_dir(dir.path()).unwrap_err();
        assert!(
            matches!(&error, TrustError::KeyFile { path, .. } if path == &bad),
            "{error}"
        );
    }
}
