//! The registry part's error type.

use std::fmt;
use std::path::PathBuf;

use crate::digest::{Digest, DigestError};

/// One entry of a registry's `{"errors": [{"code", "message", "detail"}]}` body, kept as the
/// registry wrote it (`MANIFEST_UNKNOWN`, `NAME_UNKNOWN`, `BLOB_UNKNOWN`, `DENIED`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
}

/// What went wrong talking to a registry. URLs in these errors never carry credentials or
/// query strings (signed blob-storage URLs hide credentials there).
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The base URL cannot address a registry.
    #[error("invalid registry URL {url}: {reason}")]
    InvalidUrl { url: String, reason: &'static str },

    /// A repository name, tag or digest that cannot be put into a request path.
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidName {
        what: &'static str,
        value: String,
        reason: &'static str,
    },

    /// The CA file could not be read or holds no usable certificate.
    #[error("CA file {}: {reason}", path.display())]
    CaFile { path: PathBuf, reason: String },

    /// The registry (or its token service) refused us: no credentials, wrong ones, or no
    /// access to the repository.
    #[error(
        "unauthorized: {registry} refused access to repository {repository} ({}){}",
        if *.credentials_sent { "credentials were sent" } else { "no credentials configured" },
        DisplayDetails(.errors)
    )]
    Unauthorized {
        registry: String,
        repository: String,
        credentials_sent: bool,
        errors: Vec<ErrorDetail>,
    },

    /// The registry sends us for a token to a plain-HTTP realm although it is itself reached
    /// over HTTPS (or on another host): the credentials would travel in clear text.
    #[error(
        "{registry} asks for credentials at {realm}, a plain-HTTP address that is not the \
         registry's own plain-HTTP host; they are not sent there"
    )]
    InsecureRealm { registry: String, realm: String },

    /// 404: manifest, repository or blob unknown, with the registry's own error codes.
    #[error("not found: {url}{}", DisplayDetails(.errors))]
    NotFound {
        url: String,
        errors: Vec<ErrorDetail>,
    },

    /// Content that does not hash to the digest it was asked for or announced with.
    #[error("digest mismatch for {url}: expected {expected}, got {actual}")]
    DigestMismatch {
        url: String,
        expected: Digest,
        actual: Digest,
    },

    /// A digest we were asked to fetch by that is not one concil can verify.
    #[error("invalid {what}")]
    InvalidDigest {
        what: &'static str,
        source: DigestError,
    },

    /// A body larger than we are willing to read into memory.
    #[error("{url}: body larger than {limit} bytes")]
    TooLarge { url: String, limit: u64 },

    /// A Docker schema 1 manifest (signed or not): deprecated, unverifiable, unsupported.
    #[error("{url}: Docker schema 1 manifests are not supported (re-push the image with a current client)")]
    Schema1 { url: String },

    /// Manifest bytes that do not parse as their media type says.
    #[error("manifest {digest} is invalid: {reason}")]
    InvalidManifest { digest: Digest, reason: String },

    /// A manifest of a media type we do not handle.
    #[error("{url}: unsupported manifest media type {media_type:?}")]
    UnsupportedMediaType { url: String, media_type: String },

    /// A response that does not follow the protocol (bad JSON, missing header, bad challenge).
    #[error("{url}: malformed response: {reason}")]
    Malformed { url: String, reason: String },

    /// TLS handshake failed (unknown CA, wrong host name, not TLS at all, …).
    #[error("TLS error with {host}")]
    Tls {
        host: String,
        #[source]
        source: ureq::Error,
    },

    /// The connection could not be made or broke (refused, reset, timed out, DNS).
    #[error("connection to {url} failed")]
    Connection {
        url: String,
        #[source]
        source: ureq::Error,
    },

    /// Any other unexpected HTTP status.
    #[error("{url}: HTTP status {status}{}", DisplayDetails(.errors))]
    Status {
        url: String,
        status: u16,
        errors: Vec<ErrorDetail>,
    },
}

/// `": CODE: message; CODE: message"`, or nothing when the registry sent no error body.
struct DisplayDetails<'a>(&'a [ErrorDetail]);

impl fmt::Display for DisplayDetails<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, detail) in self.0.iter().enumerate() {
            f.write_str(if i == 0 { ": " } else { "; " })?;
            write!(f, "{}: {}", detail.code, detail.message)?;
        }
        Ok(())
    }
}
