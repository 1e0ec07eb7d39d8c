//! One [`super::Verifier::verify`] call: what it asks about, what it found so far, and the
//! decisions every signature format shares — who signed (a trusted key, else the keyless
//! signer: [`Attempt::signer`]), whether what they signed vouches for the digest asked about
//! ([`Attempt::accepts`]), and which error tells best why nothing did
//! ([`Attempt::into_error`]).
//!
//! The bottom of the cosign module: the formats ([`super::simple_signing`],
//! [`super::bundle`]) find signatures and hand them here; this file knows none of them.

use std::path::PathBuf;

use super::source::{SignatureSource, SourceError};
use crate::config::CosignIdentity;
use crate::digest::Digest;
use crate::registry::Descriptor;
use crate::trust::error::{
    KeylessGap, SignatureRejection, TrustError, MAX_PAYLOAD_SIZE, MAX_SIGNATURES,
};
use crate::trust::keyless::{
    self, CertificateSigner, KeylessRejection, KeylessSignature, LogEntry, LoggedArtifact,
};
use crate::trust::keys::TrustedKey;
use crate::trust::trusted_root::TrustedRoot;

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
    Key {
        /// The key's name (its file name without `.pub`).
        name: String,
        /// The key file.
        path: PathBuf,
    },
    /// A Fulcio certificate for the configured identity, logged in a trusted Rekor log.
    Certificate(CertificateSigner),
}

impl SignedBy {
    fn key(key: &TrustedKey) -> SignedBy {
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
    /// The trusted key or keyless signer that signed it.
    pub signed_by: SignedBy,
    /// Where the signature was: the `.sig` tag or a bundle.
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

/// What a signer signed: the manifest digest and the repository it names.
pub(crate) struct SignedClaim {
    pub(super) digest: String,
    pub(super) repository: Option<String>,
}

/// What a signature carries for keyless verification, as its format found it.
pub(crate) enum KeylessMaterial {
    /// No certificate: only a trusted key can have made the signature.
    None,
    /// A certificate (or its log entry) that cannot be used as found; why, should no trusted
    /// key verify the signature.
    Rejected(SignatureRejection),
    /// The leaf certificate (DER) and the transparency-log entries to check it with.
    Certificate {
        certificate: Vec<u8>,
        log_entries: Vec<LogEntry>,
    },
}

/// The bytes a signature is over, and how a log entry records them.
pub(super) struct SignedContent<'s> {
    /// What the signatures are over (a payload, a DSSE PAE, manifest bytes).
    pub(super) bytes: &'s [u8],
    /// What a log entry of a keyless signature must record about it.
    pub(super) artifact: LoggedArtifact<'s>,
}

/// One verification: what it asks about, and what it found so far.
pub(super) struct Attempt<'a> {
    /// Where the signatures are read from.
    pub(super) source: &'a dyn SignatureSource,
    /// The keys that make a signature trusted.
    keys: &'a [TrustedKey],
    /// Whether the signed repository must be ours.
    check_docker_reference: bool,
    image: &'a str,
    repository: &'a str,
    /// What keyless signatures are checked against, or why they cannot be.
    keyless: Result<(&'a TrustedRoot, &'a CosignIdentity), KeylessGap>,
    /// The manifest digest to be vouched for.
    pub(super) digest: &'a Digest,
    /// Where signatures were looked for and not found, for [`TrustError::NotSigned`].
    looked_at: Vec<String>,
    rejected: Vec<SignatureRejection>,
    /// The first digest a trusted signature named instead of ours.
    wrong_image: Option<String>,
    wrong_repository: Option<String>,
}

impl<'a> Attempt<'a> {
    /// An attempt to find a signature of `digest` in `source`, the repository `repository`
    /// (`registry/path`) or an image file (`image` as the user named it, for messages).
    pub(super) fn new(
        source: &'a dyn SignatureSource,
        image: &'a str,
        repository: &'a str,
        digest: &'a Digest,
        keys: &'a [TrustedKey],
        check_docker_reference: bool,
        keyless: Result<(&'a TrustedRoot, &'a CosignIdentity), KeylessGap>,
    ) -> Attempt<'a> {
        Attempt {
            source,
            keys,
            check_docker_reference,
            image,
            repository,
            keyless,
            digest,
            looked_at: Vec::new(),
            rejected: Vec::new(),
            wrong_image: None,
            wrong_repository: None,
        }
    }

    /// The source failed (not the signature content): the verification fails.
    pub(super) fn source_error(&self, source: SourceError) -> TrustError {
        let image = self.image.to_owned();
        match source {
            SourceError::Registry(source) => TrustError::Registry { image, source },
            SourceError::File(source) => TrustError::ImageFile { image, source },
        }
    }

    /// Notes why a signature (or a place that should hold some) did not count.
    pub(super) fn reject(&mut self, rejection: SignatureRejection) {
        self.rejected.push(rejection);
    }

    /// Notes a place without signatures (`no tag sha256-….sig`).
    pub(super) fn nothing_at(&mut self, place: String) {
        self.looked_at.push(place);
    }

    /// Notes that `found` more signatures than [`MAX_SIGNATURES`] were not checked.
    pub(super) fn skipped_past_limit(&mut self, found: usize) {
        if let Some(skipped) = found.checked_sub(MAX_SIGNATURES).filter(|n| *n > 0) {
            self.reject(SignatureRejection::TooMany { skipped });
        }
    }

    /// Who made `signatures` over `signed`, if a trusted signer did; notes why not otherwise.
    ///
    /// The one decision for every format: a trusted key that verifies any of the signatures
    /// wins; else, when the signature carries a certificate, the first signature is checked
    /// keyless (cosign writes one signature per keyless envelope or layer); else no trusted
    /// key verifies it ([`SignatureRejection::NoKeyVerifies`]). A keyless rejection found by
    /// the format ([`KeylessMaterial::Rejected`]) counts only when no key verifies.
    pub(super) fn signer(
        &mut self,
        blob: &str,
        signed: SignedContent<'_>,
        signatures: &[Vec<u8>],
        keyless: KeylessMaterial,
    ) -> Option<SignedBy> {
        let keys = self.keys;
        let key = signatures.iter().find_map(|signature| {
            keys.iter()
                .find(|key| key.key.verifies(signed.bytes, signature))
        });
        if let Some(key) = key {
            return Some(SignedBy::key(key));
        }
        match (keyless, signatures.first()) {
            (KeylessMaterial::Rejected(rejection), _) => {
                self.reject(rejection);
                None
            }
            (
                KeylessMaterial::Certificate {
                    certificate,
                    log_entries,
                },
                Some(signature),
            ) => self.keyless_signer(
                blob,
                &KeylessSignature {
                    certificate,
                    signature,
                    signed: signed.bytes,
                    artifact: signed.artifact,
                    log_entries,
                },
            ),
            (KeylessMaterial::None, _) | (KeylessMaterial::Certificate { .. }, None) => {
                self.reject(SignatureRejection::NoKeyVerifies {
                    blob: blob.to_owned(),
                    keys: self.keys.len(),
                });
                None
            }
        }
    }

    /// Who made a keyless signature, if it is trusted; notes why not otherwise.
    fn keyless_signer(&mut self, blob: &str, signature: &KeylessSignature<'_>) -> Option<SignedBy> {
        let blob = blob.to_owned();
        let (root, identity) = match &self.keyless {
            Ok(pair) => *pair,
            Err(gap) => {
                let gap = gap.clone();
                self.reject(SignatureRejection::KeylessNotConfigured { blob, gap });
                return None;
            }
        };
        match keyless::verify(root, identity, signature) {
            Ok(signer) => Some(SignedBy::Certificate(signer)),
            Err(rejection) => {
                self.reject(match rejection {
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

    /// Whether a claim a trusted signer signed vouches for our digest (and repository, when
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
        if self.check_docker_reference && !repository_ok {
            self.wrong_repository
                .get_or_insert_with(|| claim.repository.clone().unwrap_or_default());
            return false;
        }
        tracing::debug!(image = %self.image, digest = %self.digest, "cosign signature verified");
        true
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
            self.reject(SignatureRejection::TooLarge {
                blob,
                size: descriptor.size(),
            });
            return Ok(None);
        }
        let digest = match Digest::parse(&blob) {
            Ok(digest) => digest,
            Err(error) => {
                self.reject(SignatureRejection::Unavailable {
                    blob,
                    reason: error.to_string(),
                });
                return Ok(None);
            }
        };
        match self.source.blob_bytes(&digest, MAX_PAYLOAD_SIZE) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(error) if error.is_bad_content() => {
                self.reject(SignatureRejection::Unavailable {
                    blob,
                    reason: error.to_string(),
                });
                Ok(None)
            }
            Err(error) => Err(self.source_error(error)),
        }
    }

    /// The most telling reason the image is not trusted: a trusted signature of something
    /// else beats a valid keyless signature by another signer, which beats signatures that
    /// do not verify (with their own status when all failed at the same keyless step), which
    /// beat no signature at all.
    pub(super) fn into_error(self) -> TrustError {
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
}
