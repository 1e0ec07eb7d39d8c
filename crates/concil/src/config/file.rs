//! The configuration file as written (every key optional), and reading files the
//! configuration names without trusting their size.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use super::error::ConfigError;
use super::trust_policy::ContentTrust;

/// The file as written; every key optional.
#[derive(Deserialize, Default)]
pub(super) struct ConfigFile {
    pub(super) cache_dir: Option<PathBuf>,
    pub(super) cache_timeout: Option<f64>,
    pub(super) cache_max_size: Option<Value>,
    pub(super) cache_auto_clean: Option<bool>,
    pub(super) cafile: Option<PathBuf>,
    pub(super) disable_content_trust: Option<bool>,
    pub(super) content_trust: Option<ContentTrust>,
    pub(super) cosign_check_identity: Option<bool>,
    pub(super) cosign_trusted_root: Option<PathBuf>,
    pub(super) cosign_identities: Option<BTreeMap<String, CosignIdentityFile>>,
    pub(super) remote_servers: Option<BTreeMap<String, RemoteServerFile>>,
    /// Checked by hand: serde's type errors quote the value, which here is a secret.
    pub(super) auths: Option<Value>,
    pub(super) trust_pinning: Option<Value>,
    pub(super) trust_policy: Option<Value>,
    pub(super) layer_max_size: Option<Value>,
    pub(super) layer_max_entries: Option<u64>,
    pub(super) retries: Option<u32>,
    pub(super) timeouts: Option<TimeoutsFile>,
}

/// `timeouts` as written: seconds (fractions allowed) and bytes per second.
#[derive(Deserialize, Default)]
pub(super) struct TimeoutsFile {
    pub(super) connect: Option<f64>,
    pub(super) idle: Option<f64>,
    pub(super) min_rate: Option<u64>,
}

/// A `cosign_identities` value as written: one of `subject`/`subject_regexp` and one of
/// `issuer`/`issuer_regexp`.
#[derive(Deserialize)]
pub(super) struct CosignIdentityFile {
    pub(super) subject: Option<String>,
    pub(super) subject_regexp: Option<String>,
    pub(super) issuer: Option<String>,
    pub(super) issuer_regexp: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct RemoteServerFile {
    pub(super) registry: Option<String>,
    pub(super) notary: Option<String>,
    #[serde(default)]
    pub(super) mirrors: Vec<String>,
    #[serde(default)]
    pub(super) mirror_digest_only: bool,
    pub(super) cafile: Option<PathBuf>,
    pub(super) client_cert: Option<PathBuf>,
    pub(super) client_key: Option<PathBuf>,
}

/// Default `layer_max_size`: far above real layers (the largest in use, CUDA and model images,
/// hold tens of GiB), so that only hostile ones meet it.
pub const DEFAULT_LAYER_MAX_SIZE: u64 = 256 << 30;
/// Default `layer_max_entries`: real layers hold up to a few million files.
pub const DEFAULT_LAYER_MAX_ENTRIES: u64 = 20_000_000;

/// A size as written in the configuration: a whole number of bytes, or a number followed by
/// `K`, `M`, `G` or `T` (powers of 1024; `KiB`, `KB` and lower case too). `None` when it is
/// neither, or overflows.
pub fn parse_size(value: &Value) -> Option<u64> {
    if let Some(bytes) = value.as_u64() {
        return Some(bytes);
    }
    let text = value.as_str()?.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let number: u64 = number.parse().ok()?;
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        _ => return None,
    };
    number.checked_mul(1u64 << shift)
}

/// The largest configuration file (concil's or Docker's `config.json`) read.
const MAX_CONFIG_FILE_SIZE: u64 = 16 * 1024 * 1024;

/// The whole file at `path`, or an error if it holds more than `limit` bytes: files named
/// by configuration may be anything (`/dev/zero`, a huge file), and are read into memory.
pub(crate) fn read_capped(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(std::io::Error::new(
            std::io::ErrorKind::FileTooLarge,
            format!("larger than {limit} bytes"),
        ));
    }
    Ok(bytes)
}

/// Reads and parses a JSON file; `Ok(None)` if it does not exist and need not.
pub(super) fn read_json<T: serde::de::DeserializeOwned>(
    path: &Path,
    must_exist: bool,
) -> Result<Option<T>, ConfigError> {
    let bytes = match read_capped(path, MAX_CONFIG_FILE_SIZE) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound && !must_exist => {
            return Ok(None)
        }
        Err(source) => {
            return Err(ConfigError::Read {
                path: path.to_owned(),
                source,
            })
        }
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            line: source.line(),
            column: source.column(),
            source,
        })
}
