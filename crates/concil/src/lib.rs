//! concil: verified, cached, mount-ready squashfs layers from OCI/Docker registries.
//!
//! Open a [`Store`] once with a [`Config`] (from concil's JSON file or built in code) and pull
//! any number of [`Reference`]s through it; each pull verifies the image as configured
//! (cosign or Notary), brings every layer into the cache as a squashfs file, and returns their
//! paths in layer order ([`PulledImage`]).
//!
//! The parts, from the top down (dependencies point one way; ARCHITECTURE.md draws them):
//! - [`exit_status`]: the exit statuses of the `concil` command, one table.
//! - [`store`]: the pull pipeline and the public API ([`Store`]).
//! - [`trust`]: content trust for a manifest digest: cosign (keys, keyless) and Notary v1.
//! - [`cache`]: the content-addressed cache directory (locks, atomic commit, clean-up).
//! - [`image_file`]: images as files (`oci:`, `oci-archive:`, `docker-archive:`).
//! - [`registry`]: the Distribution API client (auth, manifests, blobs).
//! - [`config`]: concil's JSON configuration and where credentials come from.
//! - [`reference`](mod@reference): image references (`docker://host/repo:tag@sha256:…`, `alpine`).
//! - [`digest`]: the `sha256:` digest type, and hashing readers and writers.
//!
//! The squashfs writer is the separate `tarsquash` crate.

#![warn(missing_docs)]

pub mod cache;
pub mod config;
pub mod digest;
pub mod exit_status;
#[doc(hidden)]
pub mod fuzzing;
pub mod image_file;
pub mod reference;
pub mod registry;
pub mod store;
pub mod trust;

pub use cache::{Cache, CacheError};
pub use config::{Config, ConfigError};
pub use digest::{Digest, DigestError};
pub use reference::{Reference, ReferenceError};
pub use registry::RegistryError;
pub use store::{
    ImageConfig, Platform, Progress, PulledImage, PulledLayer, ResolvedManifest, Store, StoreError,
    Verification,
};
pub use trust::TrustError;
