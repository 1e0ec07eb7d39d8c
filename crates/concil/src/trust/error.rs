//! Why an image is not trusted ([`TrustError`]), and why each signature did not count
//! ([`SignatureRejection`]).
//!
//! Below every check (cosign's attempt, Notary's client), so the checks can return these
//! errors without this module knowing them.

use std::path::PathBuf;

use crate::digest::Digest;
use crate::image_file::FileError;
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
        /// The image as the user named it.
        image: String,
        /// The manifest digest that was to be verified.
        digest: Digest,
        /// Where signatures were looked for and not found.
        detail: String,
    },

    /// Content trust is on but neither a public key nor a keyless signer (trusted root and
    /// identity) is configured to check signatures with.
    #[error(
        "{image}: cannot verify {digest}: no trusted cosign keys: {} (put PEM public keys named *.pub there, configure keyless verification, or disable content trust), and {keyless}",
        match .key_dir { Some(dir) => format!("{} holds no *.pub file", dir.display()), None => "the key directory is unknown (no configuration file and no home directory)".to_owned() }
    )]
    NoTrustedKey {
        /// The image as the user named it.
        image: String,
        /// The manifest digest that was to be verified.
        digest: Digest,
        /// The key directory, if one is known.
        key_dir: Option<PathBuf>,
        /// Why keyless signatures cannot be checked either.
        keyless: KeylessGap,
    },

    /// A keyless signature verified (trusted CA, log entry, signature) but its certificate
    /// names another signer than the one configured for the repository.
    #[error("{image}: the keyless cosign signature of {digest} is by {found}, not by the configured {expected}")]
    IdentityMismatch {
        /// The image as the user named it.
        image: String,
        /// The manifest digest that was to be verified.
        digest: Digest,
        /// The configured signer (subject and issuer).
        expected: String,
        /// The signer the certificate names.
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
        /// The image as the user named it.
        image: String,
        /// The manifest digest that was to be verified.
        digest: Digest,
        /// Why each signature was refused.
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
        /// The image as the user named it.
        image: String,
        /// The manifest digest that was to be verified.
        digest: Digest,
        /// Why each signature was refused.
        rejected: Vec<SignatureRejection>,
    },

    /// Every signature was keyless and none has a valid transparency-log entry.
    #[error(
        "{image}: no cosign signature of {digest} has a valid transparency-log entry ({} checked: {})",
        .rejected.len(),
        DisplayList(.rejected)
    )]
    NoTransparencyLogEntry {
        /// The image as the user named it.
        image: String,
        /// The manifest digest that was to be verified.
        digest: Digest,
        /// Why each signature was refused.
        rejected: Vec<SignatureRejection>,
    },

    /// `cosign_trusted_root` names a file that is not a usable trusted root.
    #[error("cosign trusted root {}: {problem}", path.display())]
    TrustedRoot {
        /// The file (or directory) concerned.
        path: PathBuf,
        /// What is wrong with it.
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
        /// The image as the user named it.
        image: String,
        /// The manifest digest that was to be verified.
        digest: Digest,
        /// Why each signature was refused.
        rejected: Vec<SignatureRejection>,
    },

    /// A trusted key signed a payload for another manifest (a signature copied from another
    /// image, or a tag moved to other content).
    #[error(
        "{image}: the trusted cosign signature is for manifest {signed_digest}, not for {digest}"
    )]
    WrongImage {
        /// The image as the user named it.
        image: String,
        /// The manifest digest that was to be verified.
        digest: Digest,
        /// The manifest digest the trusted signature names.
        signed_digest: String,
    },

    /// A trusted key signed this digest for another repository, and the verifier was told to
    /// check the signed `docker-reference`.
    #[error(
        "{image}: the trusted cosign signature of {digest} names repository {signed_reference}, not {repository}"
    )]
    WrongRepository {
        /// The image as the user named it.
        image: String,
        /// The manifest digest that was to be verified.
        digest: Digest,
        /// The repository the image was verified for (`registry/path`).
        repository: String,
        /// The repository the trusted signature names.
        signed_reference: String,
    },

    /// A `*.pub` file in the key directory that is not a usable public key.
    #[error("cosign key file {}: {problem}", path.display())]
    KeyFile {
        /// The file (or directory) concerned.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        problem: KeyProblem,
    },

    /// The key directory (or a file in it) could not be read.
    #[error("cannot read cosign key {}", path.display())]
    KeyDirectory {
        /// The file (or directory) concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// Notary does not vouch for the tag (or could not be asked); `source` says how.
    #[error("{image}: Notary content trust")]
    Notary {
        /// The image as the user named it.
        image: String,
        /// The underlying error.
        #[source]
        source: Box<NotaryError>,
    },

    /// Talking to the registry failed (other than the signature tag being absent).
    #[error("{image}: fetching cosign signatures failed")]
    Registry {
        /// The image as the user named it.
        image: String,
        /// The underlying error.
        #[source]
        source: RegistryError,
    },

    /// The image file could not be read for its cosign signatures (other than it holding none).
    #[error("{image}: reading cosign signatures from the image file failed")]
    ImageFile {
        /// The image file as the user named it.
        image: String,
        /// The underlying error.
        #[source]
        source: FileError,
    },
}

/// Why keyless signatures cannot be accepted for a repository.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeylessGap {
    /// No `cosign_trusted_root`.
    NoTrustedRoot,
    /// A trusted root, but no `cosign_identities` entry for the repository.
    NoIdentity {
        /// The repository the image was verified for (`registry/path`; empty for an image
        /// file).
        repository: String,
    },
}

impl std::fmt::Display for KeylessGap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeylessGap::NoTrustedRoot => {
                f.write_str("no keyless verification (no cosign_trusted_root is configured)")
            }
            KeylessGap::NoIdentity { repository } if repository.is_empty() => f.write_str(
                "no keyless signer for image files (of cosign_identities, only the key \"*\" \
                 applies to them)",
            ),
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
#[non_exhaustive]
pub enum SignatureRejection {
    /// A signature manifest (the `.sig` tag or a bundle's) that cannot hold a signature.
    #[error("signature manifest {manifest}: {reason}")]
    Manifest {
        /// The digest of the manifest, or the tag that names it.
        manifest: String,
        /// Why.
        reason: String,
    },
    /// A signature layer without its signature annotation.
    #[error("signature {blob}: no {SIGNATURE_ANNOTATION} annotation")]
    NoSignature {
        /// The digest of the signature layer or bundle.
        blob: String,
    },
    /// A signature annotation that is not base64.
    #[error("signature {blob}: the signature is not base64")]
    SignatureNotBase64 {
        /// The digest of the signature layer or bundle.
        blob: String,
    },
    /// A signature blob larger than any signature is.
    #[error("signature {blob}: {size} bytes, larger than {MAX_PAYLOAD_SIZE} bytes")]
    TooLarge {
        /// The digest of the signature layer or bundle.
        blob: String,
        /// The size its descriptor gives, in bytes.
        size: u64,
    },
    /// The blob is missing or does not match its digest.
    #[error("signature {blob}: unavailable: {reason}")]
    Unavailable {
        /// The digest of the signature layer or bundle.
        blob: String,
        /// Why.
        reason: String,
    },
    /// A bundle that does not parse or holds no key-verifiable signature.
    #[error("bundle {blob}: {reason}")]
    InvalidBundle {
        /// The digest of the signature layer or bundle.
        blob: String,
        /// Why.
        reason: String,
    },
    /// No trusted key verifies the signature, and it is not keyless.
    #[error("signature {blob}: verifies with none of the {keys} trusted keys")]
    NoKeyVerifies {
        /// The digest of the signature layer or bundle.
        blob: String,
        /// How many trusted keys were tried.
        keys: usize,
    },
    /// A keyless signature, but keyless verification is not set up for the repository.
    #[error("signature {blob}: keyless, but there is {gap}")]
    KeylessNotConfigured {
        /// The digest of the signature layer or bundle.
        blob: String,
        /// What keyless verification lacks for the repository.
        gap: KeylessGap,
    },
    /// The certificate of a keyless signature is unusable, not valid when the log saw the
    /// signature, or not issued by a trusted Fulcio CA.
    #[error("signature {blob}: certificate rejected: {reason}")]
    CertificateUntrusted {
        /// The digest of the signature layer or bundle.
        blob: String,
        /// Why.
        reason: String,
    },
    /// The trusted root names certificate transparency logs, and the certificate embeds no
    /// valid signed certificate timestamp of one (it may have been issued in secret).
    #[error(
        "signature {blob}: certificate not in a trusted certificate transparency log: {reason}"
    )]
    CertificateNotLogged {
        /// The digest of the signature layer or bundle.
        blob: String,
        /// Why.
        reason: String,
    },
    /// A keyless signature that does not verify with its certificate's key.
    #[error("signature {blob}: does not verify with the key of its certificate")]
    CertificateKeyMismatch {
        /// The digest of the signature layer or bundle.
        blob: String,
    },
    /// No transparency-log entry of a trusted log vouches for the keyless signature.
    #[error("signature {blob}: no valid transparency-log entry: {reason}")]
    TransparencyLog {
        /// The digest of the signature layer or bundle.
        blob: String,
        /// Why.
        reason: String,
    },
    /// A valid keyless signature by someone else than the configured signer.
    #[error("signature {blob}: signed by {found}, not by {expected}")]
    IdentityMismatch {
        /// The digest of the signature layer or bundle.
        blob: String,
        /// The configured signer (subject and issuer).
        expected: String,
        /// The signer the certificate names.
        found: String,
    },
    /// Signed by a trusted key, but not a cosign signature of a container image.
    #[error("signature {blob}: the signed payload is not a cosign image signature: {reason}")]
    NotImageSignature {
        /// The digest of the signature layer or bundle.
        blob: String,
        /// Why.
        reason: String,
    },
    /// More signatures than are checked; the rest were skipped.
    #[error("{skipped} more signatures were not checked (at most {MAX_SIGNATURES} are)")]
    TooMany {
        /// How many were not checked.
        skipped: usize,
    },
}
