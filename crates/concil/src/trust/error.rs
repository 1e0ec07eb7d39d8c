//! Why an image is not trusted ([`TrustError`]), and why each signature did not count
//! ([`SignatureRejection`]).
//!
//! Below every check (cosign's attempt, Notary's client), so the checks can return these
//! errors without this module knowing them.

use std::path::PathBuf;

use crate::digest::Digest;
use crate::registry::RegistryError;
use crate::trust::keys::KeyProblem;
use crate::trust::notary::NotaryError;
use crate::trust::trusted_root::TrustedRootProblem;

/// A signed payload is a few hundred bytes, a bundle a few KiB; anything past this is neither.
pub(crate) const MAX_PAYLOAD_SIZE: u64 = 1024 * 1024;
/// Signature layers (or bundles) checked per image at most, each one a blob download.
pub(crate) const MAX_SIGNATURES: usize = 128;
/// The layer annotation of a `.sig` signature layer that holds the base64 signature
/// (`cosign::simple_signing::SIGNATURE_ANNOTATION`, spelled out here for the message of
/// [`SignatureRejection::NoSignature`]; a test there checks they agree).
const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";

/// Why an image is not trusted, or could not be checked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrustError {
    /// No signature at all: no `sha256-<hex>.sig` tag (or one without signature layers) and
    /// no sigstore bundle among the digest's referrers. `detail` says where it looked.
    #[error("{image}: no cosign signature for {digest} ({detail})")]
    NotSigned {
        image: String,
        digest: Digest,
        detail: String,
    },

    /// Content trust is on but neither a public key nor a keyless signer (trusted root and
    /// identity) is configured to check signatures with.
    #[error(
        "{image}: cannot verify {digest}: no trusted cosign keys: {} (put PEM public keys named *.pub there, configure keyless verification, or disable content trust), and {keyless}",
        match .key_dir { Some(dir) => format!("{} holds no *.pub file", dir.display()), None => "the key directory is unknown (no configuration file and no home directory)".to_owned() }
    )]
    NoTrustedKey {
        image: String,
        digest: Digest,
        key_dir: Option<PathBuf>,
        keyless: KeylessGap,
    },

    /// A keyless signature verified (trusted CA, log entry, signature) but its certificate
    /// names another signer than the one configured for the repository.
    #[error("{image}: the keyless cosign signature of {digest} is by {found}, not by the configured {expected}")]
    IdentityMismatch {
        image: String,
        digest: Digest,
        expected: String,
        found: String,
    },

    /// Every signature was keyless and no certificate was issued by a trusted Fulcio CA (or
    /// valid when it signed).
    #[error(
        "{image}: no cosign signature of {digest} has a certificate from a trusted CA ({} checked: {})",
        .rejected.len(),
        DisplayList(.rejected)
    )]
    CertificateUntrusted {
        image: String,
        digest: Digest,
        rejected: Vec<SignatureRejection>,
    },

    /// Every signature was keyless, and no certificate (from a trusted CA) embeds a valid
    /// signed certificate timestamp of a CT log the trusted root names.
    #[error(
        "{image}: no cosign signature of {digest} has a certificate logged in a trusted certificate transparency log ({} checked: {})",
        .rejected.len(),
        DisplayList(.rejected)
    )]
    CertificateNotLogged {
        image: String,
        digest: Digest,
        rejected: Vec<SignatureRejection>,
    },

    /// Every signature was keyless and none has a valid transparency-log entry.
    #[error(
        "{image}: no cosign signature of {digest} has a valid transparency-log entry ({} checked: {})",
        .rejected.len(),
        DisplayList(.rejected)
    )]
    NoTransparencyLogEntry {
        image: String,
        digest: Digest,
        rejected: Vec<SignatureRejection>,
    },

    /// `cosign_trusted_root` names a file that is not a usable trusted root.
    #[error("cosign trusted root {}: {problem}", path.display())]
    TrustedRoot {
        path: PathBuf,
        #[source]
        problem: TrustedRootProblem,
    },

    /// Signatures exist, but none verifies with a trusted key (or the ones that do are not
    /// cosign image signatures). `rejected` says why each one was refused.
    #[error(
        "{image}: no cosign signature of {digest} verifies with a trusted key ({} checked: {})",
        .rejected.len(),
        DisplayList(.rejected)
    )]
    SignatureInvalid {
        image: String,
        digest: Digest,
        rejected: Vec<SignatureRejection>,
    },

    /// A trusted key signed a payload for another manifest (a signature copied from another
    /// image, or a tag moved to other content).
    #[error(
        "{image}: the trusted cosign signature is for manifest {signed_digest}, not for {digest}"
    )]
    WrongImage {
        image: String,
        digest: Digest,
        signed_digest: String,
    },

    /// A trusted key signed this digest for another repository, and the verifier was told to
    /// check the signed `docker-reference`.
    #[error(
        "{image}: the trusted cosign signature of {digest} names repository {signed_reference}, not {repository}"
    )]
    WrongRepository {
        image: String,
        digest: Digest,
        repository: String,
        signed_reference: String,
    },

    /// A `*.pub` file in the key directory that is not a usable public key.
    #[error("cosign key file {}: {problem}", path.display())]
    KeyFile {
        path: PathBuf,
        #[source]
        problem: KeyProblem,
    },

    /// The key directory (or a file in it) could not be read.
    #[error("cannot read cosign key {}", path.display())]
    KeyDirectory {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// Notary does not vouch for the tag (or could not be asked); `source` says how.
    #[error("{image}: Notary content trust")]
    Notary {
        image: String,
        #[source]
        source: Box<NotaryError>,
    },

    /// Talking to the registry failed (other than the signature tag being absent).
    #[error("{image}: fetching cosign signatures failed")]
    Registry {
        image: String,
        #[source]
        source: RegistryError,
    },
}

/// Why keyless signatures cannot be accepted for a repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeylessGap {
    /// No `cosign_trusted_root`.
    NoTrustedRoot,
    /// A trusted root, but no `cosign_identities` entry for the repository.
    NoIdentity { repository: String },
}

impl std::fmt::Display for KeylessGap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeylessGap::NoTrustedRoot => {
                f.write_str("no keyless verification (no cosign_trusted_root is configured)")
            }
            KeylessGap::NoIdentity { repository } => write!(
                f,
                "no keyless signer for {repository} (no cosign_identities entry matches it)"
            ),
        }
    }
}

/// `a; b; c`
struct DisplayList<'a, T>(&'a [T]);

impl<T: std::fmt::Display> std::fmt::Display for DisplayList<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, item) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{item}")?;
        }
        Ok(())
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
