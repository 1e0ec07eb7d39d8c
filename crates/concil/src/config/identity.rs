//! `cosign_identities`: who must have signed keylessly, per repository pattern.

use super::file::CosignIdentityFile;
use super::repository_map::RepositoryMap;

/// `cosign_identities`: the keyless signer required per repository pattern, keyed as `auths`
/// (`host/repo`, `host/prefix*`, `host`; exact, else longest prefix, else host).
pub type CosignIdentities = RepositoryMap<CosignIdentity>;

/// Who must have signed keylessly: the Fulcio certificate's subject (its email or URI
/// subject alternative name) and the OIDC issuer recorded in it, as `cosign verify
/// --certificate-identity[-regexp] --certificate-oidc-issuer[-regexp]` takes them.
#[derive(Debug, Clone)]
pub struct CosignIdentity {
    /// The certificate's email or URI subject alternative name.
    pub subject: IdentityMatch,
    /// The OIDC issuer the certificate records.
    pub issuer: IdentityMatch,
}

impl CosignIdentity {
    pub(super) fn from_file(entry: CosignIdentityFile) -> Result<CosignIdentity, String> {
        Ok(CosignIdentity {
            subject: IdentityMatch::one_of("subject", entry.subject, entry.subject_regexp)?,
            issuer: IdentityMatch::one_of("issuer", entry.issuer, entry.issuer_regexp)?,
        })
    }
}

/// An exact value, or a regular expression the whole value must match.
#[derive(Debug, Clone)]
pub enum IdentityMatch {
    /// This value exactly.
    Exact(String),
    /// Anchored at both ends (cosign's `-regexp` flags are not: there `github.com/org` also
    /// matches `github.com/organisation-of-someone-else`).
    Regexp {
        /// The pattern as configured.
        pattern: String,
        /// The pattern anchored at both ends, compiled.
        regex: regex::Regex,
    },
}

impl IdentityMatch {
    /// A match of exactly `value`.
    pub fn exact(value: &str) -> IdentityMatch {
        IdentityMatch::Exact(value.to_owned())
    }

    /// A match of the whole value against `pattern` (Rust `regex` syntax).
    pub fn regexp(pattern: &str) -> Result<IdentityMatch, regex::Error> {
        // The pattern must be a regular expression on its own: `a)|(.*` is not, yet wrapped
        // it would compile to an unanchored alternative that matches anything.
        regex::Regex::new(pattern)?;
        let regex = regex::Regex::new(&format!("^(?:{pattern})$"))?;
        Ok(IdentityMatch::Regexp {
            pattern: pattern.to_owned(),
            regex,
        })
    }

    /// Whether `value` is matched.
    pub fn matches(&self, value: &str) -> bool {
        match self {
            IdentityMatch::Exact(expected) => expected == value,
            IdentityMatch::Regexp { regex, .. } => regex.is_match(value),
        }
    }

    /// `name` or `name_regexp`, exactly one of them.
    fn one_of(
        name: &str,
        exact: Option<String>,
        pattern: Option<String>,
    ) -> Result<IdentityMatch, String> {
        match (exact, pattern) {
            (Some(exact), None) => Ok(IdentityMatch::Exact(exact)),
            (None, Some(pattern)) => IdentityMatch::regexp(&pattern)
                .map_err(|error| format!("{name}_regexp does not compile: {error}")),
            (Some(_), Some(_)) => Err(format!("give {name} or {name}_regexp, not both")),
            (None, None) => Err(format!("{name} or {name}_regexp is required")),
        }
    }
}

impl std::fmt::Display for IdentityMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IdentityMatch::Exact(value) => write!(f, "{value:?}"),
            IdentityMatch::Regexp { pattern, .. } => write!(f, "matching /{pattern}/"),
        }
    }
}
