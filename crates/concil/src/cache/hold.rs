//! Holds: what a runtime that has an image's layers mounted (and a pull about to return them)
//! keeps from being removed.
//!
//! A hold is a shared `flock` on `locks/<name>.hold` for each name of the entries it covers.
//! Every removal (`clean`, `rm`, the size budget, `verify --repair`) first takes the exclusive
//! locks of every name of an entry without waiting (`locks/<name>` and `locks/<name>.hold`), so
//! it skips a held entry; the kernel releases the locks when the
//! holder exits or dies, so a crashed runtime never pins the cache. On a file system shared by
//! several hosts the locks work across hosts where flock does (NFSv4, Lustre with `flock`).

use std::collections::BTreeSet;

use rustix::fs::FlockOperation;

use super::{acquire, entry_hold_path, Cache, CacheError, LockGuard};
use crate::digest::Digest;

/// Entries held against removal until dropped. `Send`: hand it to whoever keeps them mounted.
#[derive(Debug, Default)]
pub struct Hold {
    guards: Vec<LockGuard>,
}

impl Hold {
    /// A hold on nothing, to [`extend`](Hold::extend).
    pub fn empty() -> Hold {
        Hold::default()
    }

    /// Adds what `other` holds to this hold.
    pub fn extend(&mut self, other: Hold) {
        self.guards.extend(other.guards);
    }

    /// How many names are held.
    pub fn len(&self) -> usize {
        self.guards.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.guards.is_empty()
    }
}

impl Cache {
    /// Holds the entries named `names` (manifests, configs, layers by diff_id or blob digest)
    /// until the returned [`Hold`] is dropped; waits while a removal holds one of them.
    ///
    /// A hold does not check that the entries exist: take it, then look them up (an entry
    /// removed between a lookup and the hold would be missed otherwise).
    pub fn hold<'a>(
        &self,
        names: impl IntoIterator<Item = &'a Digest>,
    ) -> Result<Hold, CacheError> {
        let names: BTreeSet<&Digest> = names.into_iter().collect();
        let mut guards = Vec::with_capacity(names.len());
        for name in names {
            let path = entry_hold_path(&self.root, name);
            // Blocking: a removal holds the lock only while it unlinks.
            loop {
                if let Some(guard) = acquire(&path, FlockOperation::LockShared)? {
                    guards.push(guard);
                    break;
                }
            }
        }
        Ok(Hold { guards })
    }
}
