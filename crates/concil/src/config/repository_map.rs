//! The one matcher of repository patterns that `auths`, `cosign_identities` and
//! `trust_pinning` share.

use std::collections::BTreeMap;

use crate::reference::registry_host;

/// Values keyed by repository patterns as concil 1.0's `auths` are: `host/repository`
/// (exact), `host/prefix*` (every repository whose `host/name` starts with `host/prefix`), or
/// `host` alone. Keys are kept as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryMap<T> {
    entries: BTreeMap<String, T>,
}

impl<T> Default for RepositoryMap<T> {
    fn default() -> Self {
        RepositoryMap {
            entries: BTreeMap::new(),
        }
    }
}

impl<T> RepositoryMap<T> {
    /// The value for `repository` on `registry` (`host` or `host:port`): the exact
    /// `registry/repository` key, else the longest matching `prefix*` key, else the `registry`
    /// key; tried with `host:port`, then with the bare host, as concil 1.0 did.
    pub fn for_repository(&self, registry: &str, repository: &str) -> Option<&T> {
        let host = registry_host(registry);
        let names: &[&str] = if host == registry {
            &[registry]
        } else {
            &[registry, host]
        };
        names.iter().find_map(|name| {
            self.for_name(&format!("{name}/{repository}"))
                .or_else(|| self.entries.get(*name))
        })
    }

    /// The value for a full name (`host/repository`, a Notary GUN): its exact key, else the
    /// longest `prefix*` key it starts with.
    pub fn for_name(&self, name: &str) -> Option<&T> {
        self.entries.get(name).or_else(|| {
            self.entries
                .iter()
                .filter_map(|(key, value)| Some((key.strip_suffix('*')?, value)))
                .filter(|(prefix, _)| name.starts_with(prefix))
                .max_by_key(|(prefix, _)| prefix.len())
                .map(|(_, value)| value)
        })
    }

    /// The value of the longest key that `name` starts with, every key being a prefix (as
    /// Notary's `trust_pinning.ca` is keyed).
    pub fn longest_prefix(&self, name: &str) -> Option<&T> {
        self.entries
            .iter()
            .filter(|(prefix, _)| name.starts_with(prefix.as_str()))
            .max_by_key(|(prefix, _)| prefix.len())
            .map(|(_, value)| value)
    }

    /// Adds or replaces the value of `key`.
    pub fn insert(&mut self, key: String, value: T) {
        self.entries.insert(key, value);
    }

    /// Whether no key is configured.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The keys as written, with their values.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &T)> {
        self.entries.iter()
    }
}

impl<T> FromIterator<(String, T)> for RepositoryMap<T> {
    fn from_iter<I: IntoIterator<Item = (String, T)>>(entries: I) -> Self {
        RepositoryMap {
            entries: entries.into_iter().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(keys: &[&str]) -> RepositoryMap<String> {
        keys.iter()
            .map(|key| (key.to_string(), key.to_string()))
            .collect()
    }

    #[test]
    fn exact_then_longest_prefix_then_host() {
        let auths = map(&[
            "r.io",
            "r.io/*",
            "r.io/team/*",
            "r.io/team/app",
            "q.io:5000",
        ]);
        let get = |registry, repository| auths.for_repository(registry, repository).cloned();
        assert_eq!(get("r.io", "team/app"), Some("r.io/team/app".into()));
        assert_eq!(get("r.io", "team/other"), Some("r.io/team/*".into()));
        assert_eq!(get("r.io", "lib"), Some("r.io/*".into()));
        assert_eq!(
            get("r.io:443", "lib"),
            Some("r.io/*".into()),
            "bare host as 1.0"
        );
        assert_eq!(get("q.io:5000", "x"), Some("q.io:5000".into()));
        assert_eq!(get("q.io", "x"), None);
        let only_host = map(&["s.io"]);
        assert_eq!(
            only_host.for_repository("s.io", "x").cloned(),
            Some("s.io".into())
        );
    }

    #[test]
    fn names_and_plain_prefixes() {
        let certs = map(&["r.io/app", "r.io/*", "r.io/team/*"]);
        assert_eq!(certs.for_name("r.io/app").cloned(), Some("r.io/app".into()));
        assert_eq!(
            certs.for_name("r.io/team/x").cloned(),
            Some("r.io/team/*".into())
        );
        assert_eq!(certs.for_name("s.io/x"), None);
        let ca = map(&["q.io/", "q.io/x"]);
        assert_eq!(ca.longest_prefix("q.io/xy").cloned(), Some("q.io/x".into()));
        assert_eq!(ca.longest_prefix("q.io/y").cloned(), Some("q.io/".into()));
        assert_eq!(ca.longest_prefix("p.io/y"), None);
    }
}
