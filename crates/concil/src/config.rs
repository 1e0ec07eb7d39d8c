//! concil 1.0's JSON configuration file, its defaults, and where credentials come from.

use std::path::PathBuf;

/// A user name and password for a registry. `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("username", &self.username).finish_non_exhaustive()
    }
}

/// Errors loading the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    // filled in by the config implementation
}

/// The loaded configuration (see DESIGN.md for keys and defaults).
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was loaded from, if any (cosign keys live in `cosign/` beside it).
    pub path: Option<PathBuf>,
    pub cache_dir: PathBuf,
    pub cache_timeout: std::time::Duration,
    pub cafile: Option<PathBuf>,
    pub disable_content_trust: bool,
    // further keys: filled in by the config implementation
}
