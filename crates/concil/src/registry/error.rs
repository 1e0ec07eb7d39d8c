//! The registry part's error type.

use std::fmt;
use std::path::PathBuf;

use crate::digest::{Digest, DigestError};

/// One entry of a registry's `{"errors": [{"code", "message", "detail"}]}` body, kept as the
/// registry wrote it (`MANIFEST_UNKNOWN`, `NAME_UNKNOWN`, `BLOB_UNKNOWN`, `DENIED`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorDetail {
    /// The error code (`MANIFEST_UNKNOWN`, `DENIED`), or empty when the registry sent none.
    pub code: String,
    /// The registry's human-readable message, or empty when it sent none.
    pub message: String,
}

/// What went wrong talking to a registry. URLs in these errors never carry credentials or
/// query strings (signed blob-storage URLs hide credentials there).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The base URL cannot address a registry.
    #[error("invalid registry URL {url}: {reason}")]
    InvalidUrl {
        /// The URL as configured, without credentials or query.
        url: String,
        /// What is wrong with it (`no host`, a scheme other than http/https).
        reason: &'static str,
    },

    /// A repository name, tag or digest that cannot be put into a request path.
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidName {
        /// What kind of name it is (`repository`, `tag`, `trust collection`).
        what: &'static str,
        /// The name as given.
        value: String,
        /// The grammar it should have followed.
        reason: &'static str,
    },

    /// The client certificate or its key could not be read or used.
    #[error("client certificate {}: {reason}", path.display())]
    ClientCertificate {
        /// The certificate or key file.
        path: PathBuf,
        /// Why it is unusable.
        reason: String,
    },

    /// The CA file could not be read or holds no usable certificate.
    #[error("CA file {}: {reason}", path.display())]
    CaFile {
        /// The CA file as configured.
        path: PathBuf,
        /// Why it is unusable: a read or PEM error, or no certificate in it.
        reason: String,
    },

    /// The registry (or its token service) refused us: no credentials, wrong ones, or no
    /// access to the repository.
    #[error(
        "unauthorized: {registry} refused access to repository {repository} ({}){}",
        if *.credentials_sent { "credentials were sent" } else { "no credentials configured" },
        DisplayDetails(.errors)
    )]
    Unauthorized {
        /// The registry's `host[:port]` as concil reaches it (`registry-1.docker.io`).
        registry: String,
        /// The repository access was asked for.
        repository: String,
        /// Whether credentials from the configuration were sent: if not, configuring some may
        /// help; if so, they are wrong or lack access.
        credentials_sent: bool,
        /// The registry's error body, if it sent one.
        errors: Vec<ErrorDetail>,
    },

    /// The registry sends us for a token to a plain-HTTP realm although it is itself reached
    /// over HTTPS (or on another host): the credentials would travel in clear text.
    #[error(
        "{registry} asks for credentials at {realm}, a plain-HTTP address that is not the \
         registry's own plain-HTTP host; they are not sent there"
    )]
    InsecureRealm {
        /// The registry's `host[:port]` as concil reaches it.
        registry: String,
        /// The token realm its challenge names, without query.
        realm: String,
    },

    /// 404: manifest, repository or blob unknown, with the registry's own error codes.
    #[error("not found: {url}{}", DisplayDetails(.errors))]
    NotFound {
        /// The URL that answered 404.
        url: String,
        /// The registry's error body, if it sent one.
        errors: Vec<ErrorDetail>,
    },

    /// Content that does not hash to the digest it was asked for or announced with.
    #[error("digest mismatch for {url}: expected {expected}, got {actual}")]
    DigestMismatch {
        /// The URL the content came from.
        url: String,
        /// The digest asked for, or the one the `Docker-Content-Digest` header announced.
        expected: Digest,
        /// The digest of the bytes received.
        actual: Digest,
    },

    /// A digest we were asked to fetch by that is not one concil can verify.
    #[error("invalid {what}")]
    InvalidDigest {
        /// Where the digest was given (`manifest reference`).
        what: &'static str,
        /// Why it is not a usable digest.
        source: DigestError,
    },

    /// A body larger than we are willing to read into memory.
    #[error("{url}: body larger than {limit} bytes")]
    TooLarge {
        /// The URL whose body is too large.
        url: String,
        /// The most bytes that would have been read.
        limit: u64,
    },

    /// A Docker schema 1 manifest (signed or not): deprecated, unverifiable, unsupported.
    #[error("{url}: Docker schema 1 manifests are not supported (re-push the image with a current client)")]
    Schema1 {
        /// The URL of the manifest.
        url: String,
    },

    /// Manifest bytes that do not parse as their media type says.
    #[error("manifest {digest} is invalid: {reason}")]
    InvalidManifest {
        /// The digest of the manifest bytes.
        digest: Digest,
        /// What the parser said.
        reason: String,
    },

    /// A manifest of a media type we do not handle.
    #[error("{url}: unsupported manifest media type {media_type:?}")]
    UnsupportedMediaType {
        /// The URL of the manifest.
        url: String,
        /// Its media type, from its `mediaType` field or the `Content-Type` header.
        media_type: String,
    },

    /// A response that does not follow the protocol (bad JSON, missing header, bad challenge).
    #[error("{url}: malformed response: {reason}")]
    Malformed {
        /// The URL that answered.
        url: String,
        /// What in the response breaks the protocol.
        reason: String,
    },

    /// TLS handshake failed (unknown CA, wrong host name, not TLS at all, a client
    /// certificate refused or missing, …).
    #[error("TLS error with {host}{}", .client_cert.as_ref().map(|path| format!(" (client certificate {})", path.display())).unwrap_or_default())]
    Tls {
        /// The `host[:port]` the handshake was with.
        host: String,
        /// The client certificate shown, if one was (boxed: errors stay small).
        client_cert: Option<Box<PathBuf>>,
        /// The TLS failure as the HTTP client reports it.
        #[source]
        source: ureq::Error,
    },

    /// The connection could not be made or broke (refused, reset, timed out, DNS).
    #[error("connection to {url} failed")]
    Connection {
        /// The URL being requested.
        url: String,
        /// The failure as the HTTP client reports it.
        #[source]
        source: ureq::Error,
    },

    /// The registry answered 429 Too Many Requests and asked for a longer pause than a pull
    /// waits, or kept answering it.
    #[error(
        "rate limited by {registry}{}{}",
        .retry_after.map(|s| format!(": retry after {s} s")).unwrap_or_default(),
        match (.limit, .remaining) {
            (None, None) => String::new(),
            (limit, remaining) => format!(" (limit {}, remaining {})",
                limit.as_deref().unwrap_or("?"), remaining.as_deref().unwrap_or("?")),
        }
    )]
    RateLimited {
        /// The `host[:port]` that answered 429.
        registry: String,
        /// Its `Retry-After`, in seconds, when it gave one.
        retry_after: Option<u64>,
        /// Its `ratelimit-limit` header (Docker Hub: `100;w=21600`), when sent.
        limit: Option<String>,
        /// Its `ratelimit-remaining` header, when sent.
        remaining: Option<String>,
    },

    /// The HTTP proxy refused the request (407: credentials missing or wrong; or another
    /// answer to `CONNECT`).
    #[error("proxy {proxy} refused the request: {reason}")]
    ProxyRefused {
        /// `scheme://host:port` of the proxy, without credentials.
        proxy: String,
        /// What it answered.
        reason: String,
    },

    /// A proxy variable (`HTTPS_PROXY`, …) that does not name a usable proxy. Its value is not
    /// quoted: it may hold the proxy's password.
    #[error("proxy variable {variable}: {reason}")]
    InvalidProxy {
        /// The environment variable.
        variable: String,
        /// What is wrong with its value.
        reason: &'static str,
    },

    /// A request for the rest of a blob (`Range: bytes=N-`) that the server answered with
    /// something else than that rest: the blob must start over.
    #[error("{url}: cannot resume at byte {offset}: {reason}")]
    RangeRefused {
        /// The URL that answered.
        url: String,
        /// The byte asked for.
        offset: u64,
        /// What it answered instead.
        reason: String,
    },

    /// A body (manifest, config, metadata, token) broke off while it was read, on every try.
    #[error("{url}: reading the response")]
    BodyBroken {
        /// The URL whose body broke.
        url: String,
        /// The read error.
        source: std::io::Error,
    },

    /// Any other unexpected HTTP status.
    #[error("{url}: HTTP status {status}{}", DisplayDetails(.errors))]
    Status {
        /// The URL that answered.
        url: String,
        /// The HTTP status code (429 is rate limiting, 5xx a failing server).
        status: u16,
        /// The registry's error body, if it sent one.
        errors: Vec<ErrorDetail>,
    },
}

impl RegistryError {
    /// Whether the failure is the network's or a failing server's, so that trying again may
    /// help: no connection, a body that broke off, a 408 or a 5xx.
    pub fn is_transient(&self) -> bool {
        match self {
            RegistryError::Connection { .. } | RegistryError::BodyBroken { .. } => true,
            RegistryError::Status { status, .. } => *status == 408 || *status >= 500,
            _ => false,
        }
    }
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
