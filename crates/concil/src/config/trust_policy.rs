//! `trust_policy`: which content trust each repository needs, so that a site can require
//! cosign for its own registry while pulling Docker Hub's unsigned official images.

use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use super::error::ConfigError;
use super::repository_map::RepositoryMap;

/// Which content-trust engine verifies images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContentTrust {
    /// Cosign signatures (keys or keyless), concil 1.0's default.
    Cosign,
    /// Notary v1 (Docker Content Trust).
    Notary,
}

/// The verification a policy entry asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Verified with this engine.
    Verify(ContentTrust),
    /// Not verified.
    None,
}

/// `trust_policy` as loaded: keys matched as `auths` (`host/repo`, `host/prefix*`, `host`),
/// and `*` for every other repository.
#[derive(Debug, Clone, Default)]
pub struct TrustPolicy {
    entries: RepositoryMap<Policy>,
    default: Option<Policy>,
}

impl TrustPolicy {
    /// The policy from the file's `trust_policy` value; an entry that is not `"cosign"`,
    /// `"notary"` or `"none"` is an error naming its key.
    pub(super) fn from_value(value: &Value, path: &Path) -> Result<TrustPolicy, ConfigError> {
        let invalid = |key: &str| ConfigError::InvalidTrustPolicy {
            path: path.to_owned(),
            key: key.to_owned(),
        };
        let Value::Object(entries) = value else {
            return Err(invalid("trust_policy"));
        };
        let mut policy = TrustPolicy::default();
        for (key, value) in entries {
            let entry = match value.as_str() {
                Some("cosign") => Policy::Verify(ContentTrust::Cosign),
                Some("notary") => Policy::Verify(ContentTrust::Notary),
                Some("none") => Policy::None,
                _ => return Err(invalid(key)),
            };
            policy.insert(key.clone(), entry);
        }
        Ok(policy)
    }

    /// Adds an entry (`*`: the default).
    pub fn insert(&mut self, key: String, policy: Policy) {
        if key == "*" {
            self.default = Some(policy);
        } else {
            self.entries.insert(key, policy);
        }
    }

    /// The entry for `repository` on `registry`, else the `*` entry; `None` when the policy
    /// says nothing about it.
    pub fn for_repository(&self, registry: &str, repository: &str) -> Option<Policy> {
        self.entries
            .for_repository(registry, repository)
            .copied()
            .or(self.default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_match_as_auths_and_star_is_the_rest() {
        let value = serde_json::json!({
            "registry.example/team/app": "notary",
            "registry.example/team*": "none",
            "registry.example": "cosign",
            "*": "none",
        });
        let policy = TrustPolicy::from_value(&value, Path::new("c.json")).unwrap();
        let cosign = Some(Policy::Verify(ContentTrust::Cosign));
        assert_eq!(
            policy.for_repository("registry.example", "team/app"),
            Some(Policy::Verify(ContentTrust::Notary))
        );
        assert_eq!(
            policy.for_repository("registry.example", "team/x"),
            Some(Policy::None)
        );
        assert_eq!(policy.for_repository("registry.example", "other"), cosign);
        assert_eq!(
            policy.for_repository("docker.io", "library/alpine"),
            Some(Policy::None)
        );
        assert_eq!(
            TrustPolicy::default().for_repository("docker.io", "library/alpine"),
            None
        );
    }

    #[test]
    fn unknown_values_are_named_by_key() {
        for value in [
            serde_json::json!({"docker.io": "cosgin"}),
            serde_json::json!({"docker.io": true}),
            serde_json::json!(["cosign"]),
        ] {
            let error = TrustPolicy::from_value(&value, Path::new("c.json")).unwrap_err();
            assert!(
                matches!(error, ConfigError::InvalidTrustPolicy { .. }),
                "{error}"
            );
        }
    }
}
