//! `trust_pinning`, as Docker's Notary client and concil 1.0 read it, parsed and checked when
//! the configuration loads:
//!
//! ```json
//! "trust_pinning": {
//!   "certs": {"registry.example/app": ["<root certificate key ID>"], "registry.example/team/*": ["…"]},
//!   "ca": {"registry.example/": "/etc/concil/notary-root-ca.pem"},
//!   "disable_tofu": true
//! }
//! ```

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::error::ConfigError;
use super::repository_map::RepositoryMap;

/// The configured pinning of Notary root keys; empty (trust on first use) by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustPinning {
    /// `certs`: root certificate key IDs per GUN (exact, else longest `prefix*`).
    pub certs: RepositoryMap<Vec<String>>,
    /// `ca`: a PEM file of CAs per GUN prefix (longest prefix wins).
    pub ca: RepositoryMap<PathBuf>,
    /// `disable_tofu`: refuse a first root that nothing pins.
    pub disable_tofu: bool,
}

impl TrustPinning {
    /// Parses a `trust_pinning` value of the file `path`; errors name the file and the key.
    pub fn from_value(value: &Value, path: &Path) -> Result<TrustPinning, ConfigError> {
        let invalid = |key: &str, reason: &str| ConfigError::InvalidTrustPinning {
            path: path.to_owned(),
            key: format!("trust_pinning{key}"),
            reason: reason.to_owned(),
        };
        let Value::Object(entries) = value else {
            return Err(invalid(
                "",
                "must be an object with certs, ca and disable_tofu",
            ));
        };
        let mut pinning = TrustPinning::default();
        for (key, value) in entries {
            match (key.as_str(), value) {
                ("certs", Value::Object(certs)) => {
                    for (gun, ids) in certs {
                        let ids = ids
                            .as_array()
                            .and_then(|ids| {
                                ids.iter()
                                    .map(|id| id.as_str().map(str::to_owned))
                                    .collect::<Option<Vec<_>>>()
                            })
                            .ok_or_else(|| {
                                invalid(
                                    &format!(".certs[{gun:?}]"),
                                    "must be a list of root certificate key IDs",
                                )
                            })?;
                        pinning.certs.insert(gun.clone(), ids);
                    }
                }
                ("ca", Value::Object(cas)) => {
                    for (prefix, file) in cas {
                        let file = file.as_str().ok_or_else(|| {
                            invalid(
                                &format!(".ca[{prefix:?}]"),
                                "must be the path of a PEM file",
                            )
                        })?;
                        pinning.ca.insert(prefix.clone(), PathBuf::from(file));
                    }
                }
                ("disable_tofu", Value::Bool(disable)) => pinning.disable_tofu = *disable,
                ("certs" | "ca", _) => {
                    return Err(invalid(&format!(".{key}"), "must be an object"));
                }
                ("disable_tofu", _) => {
                    return Err(invalid(".disable_tofu", "must be true or false"));
                }
                _ => {
                    return Err(invalid(
                        &format!(".{key}"),
                        "is not a pinning setting (certs, ca, disable_tofu)",
                    ))
                }
            }
        }
        Ok(pinning)
    }
}
