//! `trust_pinning`, as Docker's Notary client and concil 1.0 read it:
//!
//! ```json
//! "trust_pinning": {
//!   "certs": {"registry.example/app": ["<root certificate key ID>"], "registry.example/team/*": ["…"]},
//!   "ca": {"registry.example/": "/etc/concil/notary-root-ca.pem"},
//!   "disable_tofu": true
//! }
//! ```
//!
//! For a GUN the first that applies wins: `certs` (the exact GUN, else the longest `prefix*`),
//! then `ca` (the longest GUN prefix), then trust on first use unless `disable_tofu`.

use std::path::PathBuf;

pub use crate::config::TrustPinning;

/// What a root must satisfy before it is trusted for the first time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Anchor {
    /// A root certificate with one of these key IDs must sign the root.
    Certs(Vec<String>),
    /// A root certificate issued by a CA in this file must sign the root.
    Ca(PathBuf),
    /// Trust on first use.
    FirstUse,
    /// Nothing pinned and first use not allowed.
    Refused,
}

/// The anchor for `gun` under `pinning`: `certs` (the exact GUN, else the longest
/// `prefix*`), then `ca` (the longest GUN prefix), then trust on first use unless
/// `disable_tofu`.
pub fn anchor(pinning: &TrustPinning, gun: &str) -> Anchor {
    if let Some(ids) = pinning.certs.for_name(gun) {
        return Anchor::Certs(ids.clone());
    }
    if let Some(path) = pinning.ca.longest_prefix(gun) {
        return Anchor::Ca(path.clone());
    }
    if pinning.disable_tofu {
        Anchor::Refused
    } else {
        Anchor::FirstUse
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pinning(value: serde_json::Value) -> TrustPinning {
        TrustPinning::from_value(&value, std::path::Path::new("config.json")).unwrap()
    }

    #[test]
    fn certs_then_ca_then_first_use() {
        let pinning_of = pinning(serde_json::json!({
            "certs": {"r.io/app": ["a"], "r.io/*": ["b"], "r.io/team/*": ["c"]},
            "ca": {"q.io/": "/ca.pem", "q.io/x": "/x.pem"},
            "disable_tofu": false
        }));
        let certs = |id: &str| Anchor::Certs(vec![id.to_owned()]);
        assert_eq!(anchor(&pinning_of, "r.io/app"), certs("a"));
        assert_eq!(anchor(&pinning_of, "r.io/other"), certs("b"));
        assert_eq!(anchor(&pinning_of, "r.io/team/x"), certs("c"));
        assert_eq!(anchor(&pinning_of, "q.io/y"), Anchor::Ca("/ca.pem".into()));
        assert_eq!(anchor(&pinning_of, "q.io/xy"), Anchor::Ca("/x.pem".into()));
        assert_eq!(anchor(&pinning_of, "s.io/y"), Anchor::FirstUse);
        let strict = pinning(serde_json::json!({"disable_tofu": true}));
        assert_eq!(anchor(&strict, "s.io/y"), Anchor::Refused);
        assert_eq!(anchor(&TrustPinning::default(), "s.io/y"), Anchor::FirstUse);
    }
}
