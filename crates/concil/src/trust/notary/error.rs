//! What can go wrong when Notary is asked which digest a tag must have.

use std::path::PathBuf;

use crate::digest::Digest;
use crate::registry::RegistryError;

/// Why Notary trust data does not vouch for a tag, or could not be checked. Every variant names
/// the trust collection (GUN) and, where one is involved, the TUF role.
#[derive(Debug, thiserror::Error)]
pub enum NotaryError {
    /// The server has no trust data for the collection (404 for its metadata).
    #[error(
        "{gun}: the Notary server {server} has no trust data for this repository (not signed)"
    )]
    NotPublished { gun: String, server: String },

    /// The trust data exists but signs no such tag (or no tag with this digest).
    #[error("{gun}: {what} is not signed (looked in {})", .roles.join(", "))]
    TargetNotSigned {
        gun: String,
        what: String,
        roles: Vec<String>,
    },

    /// Fewer valid signatures by the role's keys than its threshold.
    #[error("{gun}: {role} metadata has {valid} valid signature(s) by its keys, {threshold} required ({})", .problems.join("; "))]
    Threshold {
        gun: String,
        role: String,
        valid: usize,
        threshold: u32,
        /// Why each signature that did not count was refused.
        problems: Vec<String>,
    },

    /// Metadata past its `expires` time.
    #[error("{gun}: {role} metadata expired at {expires}")]
    Expired {
        gun: String,
        role: String,
        expires: String,
    },

    /// The server offered a version older than one already trusted.
    #[error("{gun}: {role} metadata version {served} is older than the trusted version {trusted} (rollback)")]
    Rollback {
        gun: String,
        role: String,
        trusted: u64,
        served: u64,
    },

    /// A metadata file does not have the length or hash the role above it signed.
    #[error("{gun}: {role} metadata does not match what {signed_by} signed: {detail}")]
    MetadataMismatch {
        gun: String,
        role: String,
        signed_by: String,
        detail: String,
    },

    /// The manifest fetched by the trusted digest does not have the signed length or hashes.
    #[error("{gun}: manifest {digest} does not match the signed target {target}: {detail}")]
    ManifestMismatch {
        gun: String,
        target: String,
        digest: Digest,
        detail: String,
    },

    /// The root does not satisfy the configured `trust_pinning`.
    #[error("{gun}: root of trust refused by trust_pinning: {reason}")]
    Pinning { gun: String, reason: String },

    /// `trust_pinning` in the configuration is not as Docker and concil 1.0 write it.
    #[error("invalid trust_pinning in the configuration: {reason}")]
    InvalidPinning { reason: String },

    /// Metadata that is not TUF as Notary writes it.
    #[error("{gun}: malformed {role} metadata: {reason}")]
    Malformed {
        gun: String,
        role: String,
        reason: String,
    },

    /// The server could not be reached and the cache could not stand in; `cache` says why.
    #[error("{gun}: the Notary server {server} cannot be reached, and {cache}")]
    Unreachable {
        gun: String,
        server: String,
        cache: String,
        #[source]
        source: Box<RegistryError>,
    },

    /// A file another role lists (or a root version between the trusted and the served root)
    /// is not on the server.
    #[error("{gun}: the Notary server {server} does not have {file}, which {listed_by} calls for")]
    MissingMetadata {
        gun: String,
        server: String,
        file: String,
        listed_by: String,
    },

    /// The server URL, GUN or TLS settings are unusable.
    #[error("{gun}: cannot talk to the Notary server {server}")]
    Settings {
        gun: String,
        server: String,
        #[source]
        source: Box<RegistryError>,
    },

    /// The server answered, but not with metadata.
    #[error("{gun}: fetching {role} metadata from the Notary server failed")]
    Server {
        gun: String,
        role: String,
        #[source]
        source: Box<RegistryError>,
    },

    /// The local metadata cache could not be read or written.
    #[error("Notary metadata cache {}", path.display())]
    Cache {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A CA file named by `trust_pinning.ca` could not be read or holds no certificate.
    #[error("trust_pinning CA file {}: {reason}", path.display())]
    CaFile { path: PathBuf, reason: String },
}
