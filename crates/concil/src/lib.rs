//! concil: verified, cached, mount-ready squashfs layers from OCI/Docker registries.
//!
//! The parts, from the top down (dependencies point one way, see DESIGN.md):
//! - [`store`]: the pull pipeline and the public API ([`store::Store`]).
//! - [`cache`]: the content-addressed cache directory (locks, atomic commit, clean-up).
//! - [`trust`]: content trust (cosign signatures) for a manifest digest.
//! - [`registry`]: the Distribution API client (auth, manifests, blobs).
//! - [`config`]: concil's JSON configuration and where credentials come from.
//! - [`exit_status`]: the exit statuses of the command, one table.
//! - [`digest`]: the `sha256:` digest type, and hashing readers and writers.
//! - [`reference`]: image references (`docker://host/repo:tag@sha256:…`, `alpine`).
//!
//! The squashfs writer is the separate `tarsquash` crate.

pub mod cache;
pub mod config;
pub mod digest;
pub mod exit_status;
pub mod reference;
pub mod registry;
pub mod store;
pub mod trust;
