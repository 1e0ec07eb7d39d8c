//! Content trust: does a trusted key vouch for this manifest digest?
//!
//! - [`cosign`]: cosign signatures in the registry (the `sha256-<hex>.sig` tag, and sigstore
//!   bundles attached as OCI 1.1 referrers), checked against the public keys in the
//!   configuration's key directory or, keyless, against a sigstore trusted root and the
//!   configured signer identity ([`cosign::Verifier`]); [`bundle`]: the bundle half;
//!   [`keyless`]: Fulcio certificates and Rekor entries.
//! - [`keys`]: the public keys and signature schemes cosign uses.
//! - [`key_management`]: listing, importing and generating keys (for the CLI).
//! - [`notary`]: Notary v1 (Docker Content Trust), a TUF client that answers which digest a
//!   tag must have ([`notary::NotaryClient`]).
//!
//! Each check answers "this digest is trusted" or a [`TrustError`] saying why not. The part
//! talks to the registry through [`crate::registry::Client`] and knows nothing of the cache:
//! the store verifies the digest a reference resolved to (an index's digest when the tag
//! names an index, whose signature covers the children it lists by digest) before it fetches
//! anything else.

pub mod bundle;
pub mod cosign;
pub mod key_management;
pub mod keyless;
pub mod keys;
pub mod notary;
mod sct;
mod x509;

use std::path::PathBuf;

use crate::digest::Digest;
use crate::registry::RegistryError;
pub use cosign::SignatureRejection;
pub use keyless::TrustedRootProblem;
pub use keys::KeyProblem;

/// Why an image is not trusted, or could not be checked.
#[derive(Debug, thiserror::Error)]
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
        source: Box<notary::NotaryError>,
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
