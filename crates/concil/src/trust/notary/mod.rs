//! Notary v1 (Docker Content Trust): which digest a tag must have, from TUF metadata.
//!
//! # The update, as Notary's client does it
//! For the trust collection (GUN) `host[:port]/repository`, from
//! `<server>/v2/<gun>/_trust/tuf/`:
//! 1. `root.json`: trusted if a threshold of its own root keys signed it and, the first time
//!    (nothing cached), if `trust_pinning` allows it ([`pinning`]): pinned root certificate
//!    IDs, a CA the root certificate must chain to, or trust on first use. Pinning is checked
//!    on every root, not only the first. A root that differs from the cached one must be a
//!    higher version signed by a threshold of the cached root's keys as well as its own
//!    (rotation).
//! 2. `timestamp.json`, signed by the root's timestamp keys.
//! 3. `snapshot.<sha256>.json`, the length and hashes the timestamp lists, signed by the
//!    snapshot keys; the root must be the one it lists.
//! 4. `targets.<sha256>.json` as the snapshot lists it, signed by the targets keys, and the
//!    `targets/releases` delegation (Docker's signers) the same way, signed by the keys the
//!    targets role delegates to. A tag is looked up in `targets/releases`, then `targets`.
//!
//! Every file must be unexpired, signed by its role's threshold (signatures over the
//! `signed` member exactly as served; key types and methods in [`keys`]) and not older than
//! the version cached before (rollback), unless the role's keys changed since (fast-forward
//! recovery: new keys start their own count). Files are fetched by checksum (Notary's consistent
//! names) so a publish between two requests cannot mix versions, and not at all when the cache
//! holds them with the listed hashes. Only after the whole chain
//! verifies is it written to the cache, `<trust dir>/tuf/<gun>/metadata/<role>.json`
//! (Docker's layout). When the server cannot be reached, the cached chain is verified the
//! same way and used if it has not expired, with a warning.
//!
//! The store then fetches the manifest by the trusted digest and checks it against the
//! target's length and hashes ([`NotaryTarget::check_manifest`]).

mod client;
mod error;
pub mod keys;
pub mod metadata;
pub mod pinning;

pub use client::{NotaryClient, NotarySettings, NotaryTarget, Wanted};
pub use error::NotaryError;
