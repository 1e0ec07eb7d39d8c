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

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use serde_json::Value;

use super::error::NotaryError;

/// The configured pinning.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustPinning {
    #[serde(default)]
    certs: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    ca: BTreeMap<String, PathBuf>,
    #[serde(default)]
    disable_tofu: bool,
}

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

impl TrustPinning {
    /// Reads the configuration's `trust_pinning` value (absent: trust on first use).
    pub fn from_config(value: Option<&Value>) -> Result<TrustPinning, NotaryError> {
        match value {
            None => Ok(TrustPinning::default()),
            Some(value) if !value.is_object() => Err(NotaryError::InvalidPinning {
                reason: "expected an object with certs, ca and disable_tofu".to_owned(),
            }),
            Some(value) => {
                TrustPinning::deserialize(value).map_err(|e| NotaryError::InvalidPinning {
                    reason: e.to_string(),
                })
            }
        }
    }

    /// The anchor for `gun`.
    pub fn anchor(&self, gun: &str) -> Anchor {
        if let Some(ids) = self.certs.get(gun) {
            return Anchor::Certs(ids.clone());
        }
        let wildcard = self
            .certs
            .iter()
            .filter_map(|(pattern, ids)| Some((pattern.strip_suffix('*')?, ids)))
            .filter(|(prefix, _)| gun.starts_with(prefix))
            .max_by_key(|(prefix, _)| prefix.len());
        if let Some((_, ids)) = wildcard {
            return Anchor::Certs(ids.clone());
        }
        let ca = self
            .ca
            .iter()
            .filter(|(prefix, _)| gun.starts_with(prefix.as_str()))
            .max_by_key(|(prefix, _)| prefix.len());
        if let Some((_, path)) = ca {
            return Anchor::Ca(path.clone());
        }
        if self.disable_tofu {
            Anchor::Refused
        } else {
            Anchor::FirstUse
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certs_then_ca_then_first_use() {
        let pinning = TrustPinning::from_config(Some(&serde_json::json!({
            "certs": {"r.io/app": ["a"], "r.io/*": ["b"], "r.io/team/*": ["c"]},
            "ca": {"q.io/": "/ca.pem", "q.io/x": "/x.pem"},
            "disable_tofu": false
        })))
        .unwrap();
        let certs = |id: &str| Anchor::Certs(vec![id.to_owned()]);
        assert_eq!(pinning.anchor("r.io/app"), certs("a"));
        assert_eq!(pinning.anchor("r.io/other"), certs("b"));
        assert_eq!(pinning.anchor("r.io/team/x"), certs("c"));
        assert_eq!(pinning.anchor("q.io/y"), Anchor::Ca("/ca.pem".into()));
        assert_eq!(pinning.anchor("q.io/xy"), Anchor::Ca("/x.pem".into()));
        assert_eq!(pinning.anchor("s.io/y"), Anchor::FirstUse);
        let strict =
            TrustPinning::from_config(Some(&serde_json::json!({"disable_tofu": true}))).unwrap();
        assert_eq!(strict.anchor("s.io/y"), Anchor::Refused);
        assert_eq!(
            TrustPinning::from_config(None).unwrap().anchor("s.io/y"),
            Anchor::FirstUse
        );
    }

    #[test]
    fn malformed_pinning_is_an_error() {
        for bad in [
            serde_json::json!({"certs": {"a": "not a list"}}),
            serde_json::json!({"disable_tofu": "yes"}),
            serde_json::json!({"cert": {}}),
            serde_json::json!([]),
        ] {
            assert!(matches!(
                TrustPinning::from_config(Some(&bad)),
                Err(NotaryError::InvalidPinning { .. })
            ));
        }
    }
}
