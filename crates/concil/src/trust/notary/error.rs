//! What can go wrong when Notary is asked which digest a tag must have.

use std::path::PathBuf;

use crate::digest::Digest;
use crate::registry::RegistryError;

/// Why Notary trust data does not vouch for a tag, or could not be checked. Every variant names
/// the trust collection (GUN) and, where one is involved, the TUF role.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NotaryError {
    /// The server has no trust data for the collection (404 for its metadata).
    #[error(
        "{gun}: the Notary server {server} has no trust data for this repository (not signed)"
    )]
    NotPublished {
        /// The trust collection (`host[:port]/repository`).
        gun: String,
        /// The Notary server.
        server: String,
    },

    /// The trust data exists but signs no such tag (or no tag with this digest).
    #[error("{gun}: {what} is not signed (looked in {})", .roles.join(", "))]
    TargetNotSigned {
        /// The trust collection (`host[:port]/repository`).
        gun: String,
        /// The tag (or digest) looked up.
        what: String,
        /// The roles looked in.
        roles: Vec<String>,
    },

    /// Fewer valid signatures by the role's keys than its threshold.
    #[error("{gun}: {role} metadata has {valid} valid signature(s) by its keys, {threshold} required ({})", .problems.join("; "))]
    Threshold {
        /// The trust collection (`host[:port]/repository`).
        gun: String,
        /// The TUF role.
        role: String,
        /// Valid signatures by the role's keys.
        valid: usize,
        /// Signatures required.
        threshold: u32,
        /// Why each signature that did not count was refused.
        problems: Vec<String>,
    },

    /// Metadata past its `expires` time.
    #[error("{gun}: {role} metadata expired at {expires}")]
    Expired {
        /// The trust collection (`host[:port]/repository`).
        gun: String,
        /// The TUF role.
        role: String,
        /// The signed expiry time.
        expires: String,
    },

    /// The server offered a version older than one already trusted.
    #[error("{gun}: {role} metadata version {served} is older than the trusted version {trusted} (rollback)")]
    Rollback {
        /// The trust collection (`host[:port]/repository`).
        gun: String,
        /// The TUF role.
        role: String,
        /// The version already trusted.
        trusted: u64,
        /// The version the server offered.
        served: u64,
    },

    /// A metadata file does not have the length or hash the role above it signed.
    #[error("{gun}: {role} metadata does not match what {signed_by} signed: {detail}")]
    MetadataMismatch {
        /// The trust collection (`host[:port]/repository`).
        gun: String,
        /// The TUF role.
        role: String,
        /// The role that lists the file.
        signed_by: String,
        /// What does not match.
        detail: String,
    },

    /// The manifest fetched by the trusted digest does not have the signed length or hashes.
    #[error("{gun}: manifest {digest} does not match the signed target {target}: {detail}")]
    ManifestMismatch {
        /// The trust collection (`host[:port]/repository`).
        gun: String,
        /// The signed target (tag).
        target: String,
        /// The digest the manifest was fetched by.
        digest: Digest,
        /// What does not match.
        detail: String,
    },

    /// The root does not satisfy the configured `trust_pinning`.
    #[error("{gun}: root of trust refused by trust_pinning: {reason}")]
    Pinning {
        /// The trust collection (`host[:port]/repository`).
        gun: String,
        /// Why.
        reason: String,
    },

    /// Metadata that is not TUF as Notary writes it.
    #[error("{gun}: malformed {role} metadata: {reason}")]
    Malformed {
        /// The trust collection (`host[:port]/repository`).
        gun: String,
        /// The TUF role.
        role: String,
        /// Why.
        reason: String,
    },

    /// The server could not be reached and the cache could not stand in; `cache` says why.
    #[error("{gun}: the Notary server {server} cannot be reached, and {cache}")]
    Unreachable {
        /// The trust collection (`host[:port]/repository`).
        gun: String,
        /// The Notary server.
        server: String,
        /// Why the cached metadata cannot be used instead.
        cache: String,
        /// The underlying error.
        #[source]
        source: Box<RegistryError>,
    },

    /// A file another role lists (or a root version between the trusted and the served root)
    /// is not on the server.
    #[error("{gun}: the Notary server {server} does not have {file}, which {listed_by} calls for")]
    MissingMetadata {
        /// The trust collection (`host[:port]/repository`).
        gun: String,
        /// The Notary server.
        server: String,
        /// The metadata file missing.
        file: String,
        /// The role that calls for it.
        listed_by: String,
    },

    /// The server URL, GUN or TLS settings are unusable.
    #[error("{gun}: cannot talk to the Notary server {server}")]
    Settings {
        /// The trust collection (`host[:port]/repository`).
        gun: String,
        /// The Notary server.
        server: String,
        /// The underlying error.
        #[source]
        source: Box<RegistryError>,
    },

    /// The server answered, but not with metadata.
    #[error("{gun}: fetching {role} metadata from the Notary server failed")]
    Server {
        /// The trust collection (`host[:port]/repository`).
        gun: String,
        /// The TUF role.
        role: String,
        /// The underlying error.
        #[source]
        source: Box<RegistryError>,
    },

    /// The local metadata cache could not be read or written.
    #[error("Notary metadata cache {}", path.display())]
    Cache {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A CA file named by `trust_pinning.ca` could not be read or holds no certificate.
    #[error("trust_pinning CA file {}: {reason}", path.display())]
    CaFile {
        /// The file concerned.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}
