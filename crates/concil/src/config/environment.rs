//! The process environment the configuration depends on (`$HOME`, variables), passed
//! explicitly so that tests need not change the real one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::error::ConfigError;

/// The process environment the configuration depends on, passed explicitly so that tests need
/// not change the real one. `Debug` shows variable names only (`CONCIL_*_AUTH` hold secrets).
#[derive(Clone, Default)]
pub struct Environment {
    /// The home directory (`~`); `None` when unknown.
    pub home: Option<PathBuf>,
    /// Environment variables (`CONCIL_CONFIG`, `DOCKER_CONFIG`, `CONCIL_<NAME>_REPO`/`_AUTH`).
    pub vars: BTreeMap<String, String>,
}

impl std::fmt::Debug for Environment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Environment")
            .field("home", &self.home)
            .field("vars", &self.vars.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Environment {
    /// The current process's environment and home directory (`$HOME`). Variables that are
    /// not UTF-8 are left out.
    pub fn from_process() -> Self {
        Environment {
            home: std::env::var_os("HOME")
                .filter(|home| !home.is_empty())
                .map(PathBuf::from),
            vars: std::env::vars_os()
                .filter_map(|(name, value)| {
                    Some((name.into_string().ok()?, value.into_string().ok()?))
                })
                .collect(),
        }
    }

    /// A variable's value, treating an empty one as unset.
    pub(super) fn var(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|value| !value.is_empty())
    }

    /// `~` and `~/…` → the home directory; other paths unchanged. `what` names the setting.
    pub(super) fn expand_home(
        &self,
        path: &Path,
        what: &'static str,
    ) -> Result<PathBuf, ConfigError> {
        match path.strip_prefix("~") {
            Ok(rest) => {
                let home = self
                    .home
                    .as_ref()
                    .ok_or(ConfigError::NoHomeDirectory { what })?;
                Ok(if rest.as_os_str().is_empty() {
                    home.clone()
                } else {
                    home.join(rest)
                })
            }
            Err(_) => Ok(path.to_owned()),
        }
    }
}
