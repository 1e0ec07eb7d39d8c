//! concil 1.0's JSON configuration file, its defaults, and where credentials come from.
//!
//! Semantics follow concil 1.0 (`concil/store.py`: `ConcilConfig`, `complete_url_with_auth`,
//! `get_full_url`, `get_notary_url`), except where 1.0 was inconsistent or broken:
//! - `content_trust` defaults to `cosign` always; 1.0 used `cosign` without a file but `notary`
//!   when a file existed and lacked the key. A file without `cache_dir` crashed 1.0; here it
//!   means the default.
//! - An explicit `--config FILE` that does not exist is an error (1.0 silently used the
//!   defaults); a missing `~/.concil/config.json` still means the defaults, a missing named file
//!   (`--config`, `$CONCIL_CONFIG`) is an error.
//! - Docker Hub's registry is `https://registry-1.docker.io` (1.0's built-in default named
//!   `registry.hub.docker.com`, which redirects there).
//! - `remote_servers` and `auths` are looked up under `host:port` first, then under the bare
//!   host; 1.0 used only the bare host, so its files keep working.
//! - An exact `auths` key is compared with `host/repository`; 1.0 compared it with the URL path
//!   including `:tag`, so exact keys without a tag never matched there.
//! - Notary's default port replaces the registry's port (`host:4443`); 1.0 appended it a second
//!   time (`host:5000:4443`).
//! - Credentials are decoded when the file is loaded, so a bad `auths` entry fails early and
//!   names its key (never the value); Docker's `config.json` is a further fallback.
//! - `~` is expanded as `~` and `~/…` (not `~user`). Unknown keys are ignored, as in 1.0.
//! - New keys for keyless cosign verification: `cosign_trusted_root` (a sigstore
//!   `trusted_root.json`) and `cosign_identities` (the certificate identity and issuer to
//!   require, keyed like `auths`); concil 1.0 ignores them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use serde::Deserialize;
use serde_json::Value;
use url::Url;

use crate::reference::{registry_host, DOCKER_HUB};

const CONFIG_FILE_NAME: &str = "config.json";
/// Relative to the home directory.
const DEFAULT_CONFIG_DIR: &str = ".concil";
const DEFAULT_CACHE_DIR: &str = "~/.concil";
const DEFAULT_CACHE_TIMEOUT: Duration = Duration::from_secs(604_800);
const DOCKER_HUB_REGISTRY_URL: &str = "https://registry-1.docker.io/";
const DOCKER_HUB_NOTARY_URL: &str = "https://notary.docker.io/";
/// Where Notary listens when `remote_servers` does not say.
const DEFAULT_NOTARY_PORT: u16 = 4443;
/// Docker's names for Docker Hub in its `config.json` (`https://index.docker.io/v1/` usually).
const DOCKER_HUB_AUTH_HOSTS: [&str; 3] = ["index.docker.io", "registry-1.docker.io", DOCKER_HUB];
const ENV_CONFIG: &str = "CONCIL_CONFIG";
const ENV_DOCKER_CONFIG: &str = "DOCKER_CONFIG";
/// Auth pairs from the environment: `CONCIL_<NAME>_REPO` holds the key, `CONCIL_<NAME>_AUTH`
/// the base64 `user:password`.
const ENV_AUTH_PREFIX: &str = "CONCIL_";
const ENV_AUTH_REPO_SUFFIX: &str = "_REPO";
const ENV_AUTH_AUTH_SUFFIX: &str = "_AUTH";

/// A user name and password for a registry. `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Errors loading the configuration. None of them contains a credential.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration file {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid configuration file {} (line {line}, column {column})", path.display())]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        #[source]
        source: serde_json::Error,
    },
    #[error("configuration file {}: {key} {reason}", path.display())]
    InvalidValue {
        path: PathBuf,
        key: &'static str,
        reason: &'static str,
    },
    #[error("configuration file {}: remote_servers entry {server:?}: {field} URL {problem}", path.display())]
    InvalidServerUrl {
        path: PathBuf,
        server: String,
        field: &'static str,
        problem: UrlProblem,
    },
    /// `origin` is the file or the environment variable the entry came from.
    #[error("auths entry {key:?} from {origin}: {problem}")]
    InvalidAuth {
        origin: String,
        key: String,
        problem: AuthProblem,
    },
    /// A `cosign_identities` entry that cannot be used (`key` is its repository pattern).
    #[error("configuration file {}: cosign_identities entry {key:?}: {reason}", path.display())]
    InvalidCosignIdentity {
        path: PathBuf,
        key: String,
        reason: String,
    },
    #[error("cannot expand `~` in {what}: the home directory is unknown (HOME is not set)")]
    NoHomeDirectory { what: &'static str },
    #[error("registry name {registry:?} does not form a URL")]
    InvalidRegistryName { registry: String },
}

/// What is wrong with a `remote_servers` URL (the URL itself is not repeated: it may hold
/// secrets).
#[derive(Debug, thiserror::Error)]
pub enum UrlProblem {
    #[error("cannot be parsed")]
    Unparsable(#[source] url::ParseError),
    #[error("has scheme {0:?}, expected http or https")]
    Scheme(String),
    #[error("contains a user name or password (put credentials in auths)")]
    Credentials,
}

/// What is wrong with an `auths` value (the value itself is never shown).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthProblem {
    #[error("is not a string")]
    NotAString,
    #[error("is not valid base64")]
    NotBase64,
    #[error("does not decode to UTF-8 text")]
    NotUtf8,
    #[error("does not decode to \"user:password\" (no ':')")]
    NoColon,
}

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
    fn var(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|value| !value.is_empty())
    }

    /// `~` and `~/…` → the home directory; other paths unchanged. `what` names the setting.
    fn expand_home(&self, path: &Path, what: &'static str) -> Result<PathBuf, ConfigError> {
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

/// Which content-trust engine verifies images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContentTrust {
    Cosign,
    Notary,
}

/// A `remote_servers` entry: where a registry name really lives. URLs are origins
/// (`scheme://host[:port]/`), as concil 1.0 used only their scheme and host.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RemoteServer {
    pub registry: Option<Url>,
    pub notary: Option<Url>,
}

/// Where to reach a registry, and whether the user configured it in `remote_servers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryEndpoint {
    pub url: Url,
    /// `true` when the URL came from `remote_servers` (then no plain-HTTP fallback is tried).
    pub explicit: bool,
}

/// The loaded configuration (see DESIGN.md for keys and defaults).
#[derive(Debug, Clone)]
pub struct Config {
    /// The configuration file consulted, whether or not it existed (cosign keys live in
    /// `cosign/` beside it); `None` when there was no file name to consult (no home directory).
    pub path: Option<PathBuf>,
    pub cache_dir: PathBuf,
    pub cache_timeout: Duration,
    pub cafile: Option<PathBuf>,
    pub disable_content_trust: bool,
    pub content_trust: ContentTrust,
    /// `cosign_check_identity`: a cosign signature counts only when its signed
    /// `docker-reference` names the repository being pulled (default false, as cosign).
    pub cosign_check_identity: bool,
    /// `cosign_trusted_root`: a sigstore `trusted_root.json` (Fulcio CAs, Rekor keys) that
    /// keyless signatures are checked against; `None`: keyless signatures are not accepted.
    pub cosign_trusted_root: Option<PathBuf>,
    /// `cosign_identities`: who must have signed keylessly, per repository pattern.
    pub cosign_identities: CosignIdentities,
    /// Keyed by registry name, `host` or `host:port`.
    pub remote_servers: BTreeMap<String, RemoteServer>,
    /// Notary trust pinning, kept as written for the Notary engine.
    pub trust_pinning: Option<Value>,
    /// `layer_max_size`: the most bytes of uncompressed tar one layer may hold ("256G", or a
    /// number of bytes); a larger layer is refused while it converts.
    pub layer_max_size: u64,
    /// `layer_max_entries`: the most tar entries one layer may hold.
    pub layer_max_entries: u64,
    /// concil's own `auths` (file, then environment pairs), keyed as written.
    auths: BTreeMap<String, Credentials>,
    /// Docker's `config.json` auths, keyed by registry name (`docker.io`, `host:port`).
    docker_auths: BTreeMap<String, Credentials>,
}

/// The file as written; every key optional.
#[derive(Deserialize, Default)]
struct ConfigFile {
    cache_dir: Option<PathBuf>,
    cache_timeout: Option<f64>,
    cafile: Option<PathBuf>,
    disable_content_trust: Option<bool>,
    content_trust: Option<ContentTrust>,
    cosign_check_identity: Option<bool>,
    cosign_trusted_root: Option<PathBuf>,
    cosign_identities: Option<BTreeMap<String, CosignIdentityFile>>,
    remote_servers: Option<BTreeMap<String, RemoteServerFile>>,
    /// Checked by hand: serde's type errors quote the value, which here is a secret.
    auths: Option<Value>,
    trust_pinning: Option<Value>,
    layer_max_size: Option<Value>,
    layer_max_entries: Option<u64>,
}

/// A `cosign_identities` value as written: one of `subject`/`subject_regexp` and one of
/// `issuer`/`issuer_regexp`.
#[derive(Deserialize)]
struct CosignIdentityFile {
    subject: Option<String>,
    subject_regexp: Option<String>,
    issuer: Option<String>,
    issuer_regexp: Option<String>,
}

#[derive(Deserialize)]
struct RemoteServerFile {
    registry: Option<String>,
    notary: Option<String>,
}

impl Config {
    /// Loads `explicit`, else `$CONCIL_CONFIG`, else `~/.concil/config.json` (defaults if that
    /// does not exist), reading the process environment.
    pub fn load(explicit: Option<&Path>) -> Result<Config, ConfigError> {
        Self::load_from(explicit, &Environment::from_process())
    }

    /// As [`Config::load`], with the environment given.
    pub fn load_from(explicit: Option<&Path>, env: &Environment) -> Result<Config, ConfigError> {
        let path = match (explicit, env.var(ENV_CONFIG)) {
            (Some(explicit), _) => Some(env.expand_home(explicit, "--config")?),
            (None, Some(from_env)) => Some(env.expand_home(Path::new(from_env), ENV_CONFIG)?),
            (None, None) => env
                .home
                .as_ref()
                .map(|home| home.join(DEFAULT_CONFIG_DIR).join(CONFIG_FILE_NAME)),
        };
        // A file someone named (--config or $CONCIL_CONFIG) must exist; only the default one
        // may be missing.
        let named = explicit.is_some() || env.var(ENV_CONFIG).is_some();
        let file: ConfigFile = match &path {
            Some(path) => read_json(path, named)?.unwrap_or_default(),
            None => ConfigFile::default(),
        };
        // Errors about values name the file; with no file, values are defaults and cannot fail.
        let file_path = || path.clone().unwrap_or_default();

        let cache_dir = env.expand_home(
            file.cache_dir
                .as_deref()
                .unwrap_or(Path::new(DEFAULT_CACHE_DIR)),
            "cache_dir",
        )?;
        let cache_timeout = match file.cache_timeout {
            Some(seconds) => {
                Duration::try_from_secs_f64(seconds).map_err(|_| ConfigError::InvalidValue {
                    path: file_path(),
                    key: "cache_timeout",
                    reason: "must be a non-negative number of seconds",
                })?
            }
            None => DEFAULT_CACHE_TIMEOUT,
        };
        let cafile = file
            .cafile
            .map(|cafile| env.expand_home(&cafile, "cafile"))
            .transpose()?;

        let remote_servers = file
            .remote_servers
            .unwrap_or_default()
            .into_iter()
            .map(|(server, entry)| {
                let remote = remote_server(&file_path(), &server, entry)?;
                Ok((server, remote))
            })
            .collect::<Result<_, ConfigError>>()?;
        let mut auths = file_auths(file.auths.as_ref(), &file_path())?;
        add_environment_auths(env, &mut auths)?;
        let cosign_trusted_root = file
            .cosign_trusted_root
            .map(|root| env.expand_home(&root, "cosign_trusted_root"))
            .transpose()?;
        let cosign_identities = file
            .cosign_identities
            .unwrap_or_default()
            .into_iter()
            .map(|(key, entry)| {
                let identity = CosignIdentity::from_file(entry).map_err(|reason| {
                    ConfigError::InvalidCosignIdentity {
                        path: file_path(),
                        key: key.clone(),
                        reason,
                    }
                })?;
                Ok((key, identity))
            })
            .collect::<Result<_, ConfigError>>()?;

        let layer_max_size = match &file.layer_max_size {
            Some(value) => parse_size(value).ok_or_else(|| ConfigError::InvalidValue {
                path: file_path(),
                key: "layer_max_size",
                reason: "must be a number of bytes or a size such as \"256G\" (K, M, G, T: powers of 1024)",
            })?,
            None => DEFAULT_LAYER_MAX_SIZE,
        };
        Ok(Config {
            path,
            cache_dir,
            cache_timeout,
            cafile,
            disable_content_trust: file.disable_content_trust.unwrap_or(false),
            content_trust: file.content_trust.unwrap_or(ContentTrust::Cosign),
            cosign_check_identity: file.cosign_check_identity.unwrap_or(false),
            cosign_trusted_root,
            cosign_identities: CosignIdentities(cosign_identities),
            remote_servers,
            trust_pinning: file.trust_pinning.filter(|pinning| !pinning.is_null()),
            layer_max_size,
            layer_max_entries: file.layer_max_entries.unwrap_or(DEFAULT_LAYER_MAX_ENTRIES),
            auths,
            docker_auths: load_docker_auths(env)?,
        })
    }

    /// Where the registry named `registry` (`host` or `host:port`, as in a
    /// [`Reference`](crate::reference::Reference)) is reached: its `remote_servers` URL
    /// (under `host:port`, else `host`), else `https://registry-1.docker.io` for Docker Hub,
    /// else `https://<registry>/`.
    pub fn registry_endpoint(&self, registry: &str) -> Result<RegistryEndpoint, ConfigError> {
        if let Some(url) = self.remote_server_url(registry, |server| server.registry.as_ref()) {
            return Ok(RegistryEndpoint {
                url: url.clone(),
                explicit: true,
            });
        }
        let url = if registry == DOCKER_HUB {
            parse_builtin_url(DOCKER_HUB_REGISTRY_URL, registry)?
        } else {
            parse_builtin_url(&format!("https://{registry}/"), registry)?
        };
        Ok(RegistryEndpoint {
            url,
            explicit: false,
        })
    }

    /// The registry's base URL (see [`Config::registry_endpoint`]).
    pub fn registry_url(&self, registry: &str) -> Result<Url, ConfigError> {
        self.registry_endpoint(registry)
            .map(|endpoint| endpoint.url)
    }

    /// Whether `remote_servers` names this registry's URL.
    pub fn registry_is_explicit(&self, registry: &str) -> bool {
        self.remote_server_url(registry, |server| server.registry.as_ref())
            .is_some()
    }

    /// The Notary server for `registry`: its `remote_servers` notary URL; else, as in concil
    /// 1.0, the configured registry URL's host on port 4443; else `https://notary.docker.io`
    /// for Docker Hub; else `https://<registry host without port>:4443/`.
    pub fn notary_url(&self, registry: &str) -> Result<Url, ConfigError> {
        if let Some(url) = self.remote_server_url(registry, |server| server.notary.as_ref()) {
            return Ok(url.clone());
        }
        if let Some(url) = self.remote_server_url(registry, |server| server.registry.as_ref()) {
            let host = url
                .host_str()
                .ok_or_else(|| ConfigError::InvalidRegistryName {
                    registry: registry.to_owned(),
                })?;
            return parse_builtin_url(
                &format!("{}://{host}:{DEFAULT_NOTARY_PORT}/", url.scheme()),
                registry,
            );
        }
        if registry == DOCKER_HUB {
            return parse_builtin_url(DOCKER_HUB_NOTARY_URL, registry);
        }
        parse_builtin_url(
            &format!("https://{}:{DEFAULT_NOTARY_PORT}/", registry_host(registry)),
            registry,
        )
    }

    /// Credentials for `repository` on `registry`, from concil's `auths` and environment pairs
    /// (an exact `host/repository` key, else the longest matching `host/prefix*` key, else a
    /// `host` key; tried with `host:port`, then with the bare host as concil 1.0 did), else
    /// from Docker's `config.json`.
    pub fn credentials(&self, registry: &str, repository: &str) -> Option<Credentials> {
        match_repository(&self.auths, registry, repository)
            .or_else(|| self.docker_auths.get(registry))
            .cloned()
    }

    /// The directory of Cosign public keys (`*.pub`): `cosign/` beside the config file.
    pub fn cosign_key_dir(&self) -> Option<PathBuf> {
        let parent = self.path.as_deref()?.parent()?;
        Some(parent.join("cosign"))
    }

    /// Notary's trust directory (TUF metadata already seen): `notary/` in the cache directory.
    pub fn notary_trust_dir(&self) -> PathBuf {
        self.cache_dir.join("notary")
    }

    /// The `remote_servers` URL `field` for `host:port`, else for the bare host.
    fn remote_server_url(
        &self,
        registry: &str,
        field: impl Fn(&RemoteServer) -> Option<&Url>,
    ) -> Option<&Url> {
        let host = registry_host(registry);
        self.remote_servers
            .get(registry)
            .and_then(&field)
            .or_else(|| self.remote_servers.get(host).and_then(&field))
    }
}

/// A `remote_servers` entry with its URLs checked.
fn remote_server(
    path: &Path,
    server: &str,
    entry: RemoteServerFile,
) -> Result<RemoteServer, ConfigError> {
    let parse = |field: &'static str, url: Option<String>| {
        url.map(|url| {
            server_origin(&url).map_err(|problem| ConfigError::InvalidServerUrl {
                path: path.to_owned(),
                server: server.to_owned(),
                field,
                problem,
            })
        })
        .transpose()
    };
    Ok(RemoteServer {
        registry: parse("registry", entry.registry)?,
        notary: parse("notary", entry.notary)?,
    })
}

/// The file's `auths` object, decoded.
fn file_auths(
    auths: Option<&Value>,
    path: &Path,
) -> Result<BTreeMap<String, Credentials>, ConfigError> {
    let entries = match auths {
        Some(Value::Null) | None => return Ok(BTreeMap::new()),
        Some(Value::Object(entries)) => entries,
        Some(_) => {
            return Err(ConfigError::InvalidValue {
                path: path.to_owned(),
                key: "auths",
                reason: "must be an object mapping \"host/repository\" to base64 \"user:password\"",
            })
        }
    };
    let origin = path.display().to_string();
    entries
        .iter()
        .map(|(key, value)| {
            let encoded = value.as_str().ok_or(AuthProblem::NotAString);
            let credentials = encoded
                .and_then(decode_auth)
                .map_err(|problem| auth_error(&origin, key, problem))?;
            Ok((key.clone(), credentials))
        })
        .collect()
}

/// `CONCIL_<NAME>_REPO` + `CONCIL_<NAME>_AUTH` pairs; they override file entries with the same
/// key, as in concil 1.0. A REPO without its AUTH adds nothing.
fn add_environment_auths(
    env: &Environment,
    auths: &mut BTreeMap<String, Credentials>,
) -> Result<(), ConfigError> {
    for (name, repository) in &env.vars {
        let Some(pair_name) = name
            .strip_prefix(ENV_AUTH_PREFIX)
            .and_then(|rest| rest.strip_suffix(ENV_AUTH_REPO_SUFFIX))
            .filter(|pair_name| !pair_name.is_empty())
        else {
            continue;
        };
        let auth_name = format!("{ENV_AUTH_PREFIX}{pair_name}{ENV_AUTH_AUTH_SUFFIX}");
        if let (false, Some(encoded)) = (repository.is_empty(), env.var(&auth_name)) {
            let origin = format!("environment variable {auth_name}");
            let credentials =
                decode_auth(encoded).map_err(|problem| auth_error(&origin, repository, problem))?;
            auths.insert(repository.clone(), credentials);
        }
    }
    Ok(())
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
fn read_json<T: serde::de::DeserializeOwned>(
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

/// A `remote_servers` URL reduced to its origin.
fn server_origin(text: &str) -> Result<Url, UrlProblem> {
    let mut url = Url::parse(text).map_err(UrlProblem::Unparsable)?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(UrlProblem::Scheme(url.scheme().to_owned()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UrlProblem::Credentials);
    }
    url.set_path("/");
    url.set_query(None);
    url.set_fragment(None);
    Ok(url)
}

/// A URL built from a registry name; fails if the name is not a `host[:port]`.
fn parse_builtin_url(text: &str, registry: &str) -> Result<Url, ConfigError> {
    let invalid = || ConfigError::InvalidRegistryName {
        registry: registry.to_owned(),
    };
    let url = Url::parse(text).map_err(|_| invalid())?;
    let is_origin = url.path() == "/"
        && url.query().is_none()
        && url.fragment().is_none()
        && url.username().is_empty();
    if is_origin {
        Ok(url)
    } else {
        Err(invalid())
    }
}

/// base64 of `user:password`, as Docker writes it (padding optional).
fn decode_auth(encoded: &str) -> Result<Credentials, AuthProblem> {
    let bytes = base64::engine::general_purpose::STANDARD_PAD_INDIFFERENT
        .decode(encoded)
        .map_err(|_| AuthProblem::NotBase64)?;
    let text = String::from_utf8(bytes).map_err(|_| AuthProblem::NotUtf8)?;
    let (username, password) = text.split_once(':').ok_or(AuthProblem::NoColon)?;
    Ok(Credentials {
        username: username.to_owned(),
        password: password.to_owned(),
    })
}

fn auth_error(origin: &str, key: &str, problem: AuthProblem) -> ConfigError {
    ConfigError::InvalidAuth {
        origin: origin.to_owned(),
        key: key.to_owned(),
        problem,
    }
}

/// The entry for `repository` on `registry` in a map keyed as `auths` is: tried with
/// `host:port`, then with the bare host as concil 1.0 did.
fn match_repository<'a, T>(
    entries: &'a BTreeMap<String, T>,
    registry: &str,
    repository: &str,
) -> Option<&'a T> {
    let host = registry_host(registry);
    let names: &[&str] = if host == registry {
        &[registry]
    } else {
        &[registry, host]
    };
    names
        .iter()
        .find_map(|name| match_repository_under(entries, name, repository))
}

/// The entry for `repository` on `registry`: exact key, else longest `*` prefix, else host.
fn match_repository_under<'a, T>(
    entries: &'a BTreeMap<String, T>,
    registry: &str,
    repository: &str,
) -> Option<&'a T> {
    let name = format!("{registry}/{repository}");
    entries
        .get(&name)
        .or_else(|| {
            entries
                .iter()
                .filter_map(|(key, entry)| {
                    let prefix = key.strip_suffix('*')?;
                    name.starts_with(prefix).then_some((prefix.len(), entry))
                })
                .max_by_key(|&(prefix_len, _)| prefix_len)
                .map(|(_, entry)| entry)
        })
        .or_else(|| entries.get(registry))
}

/// `cosign_identities`: the keyless signer required per repository pattern, keyed as `auths`
/// (`host/repo`, `host/prefix*`, `host`; exact, else longest prefix, else host).
#[derive(Debug, Clone, Default)]
pub struct CosignIdentities(BTreeMap<String, CosignIdentity>);

impl CosignIdentities {
    /// The identity required for `repository` on `registry`, if any is configured.
    pub fn for_repository(&self, registry: &str, repository: &str) -> Option<&CosignIdentity> {
        match_repository(&self.0, registry, repository)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromIterator<(String, CosignIdentity)> for CosignIdentities {
    fn from_iter<I: IntoIterator<Item = (String, CosignIdentity)>>(entries: I) -> Self {
        CosignIdentities(entries.into_iter().collect())
    }
}

/// Who must have signed keylessly: the Fulcio certificate's subject (its email or URI
/// subject alternative name) and the OIDC issuer recorded in it, as `cosign verify
/// --certificate-identity[-regexp] --certificate-oidc-issuer[-regexp]` takes them.
#[derive(Debug, Clone)]
pub struct CosignIdentity {
    pub subject: IdentityMatch,
    pub issuer: IdentityMatch,
}

impl CosignIdentity {
    fn from_file(entry: CosignIdentityFile) -> Result<CosignIdentity, String> {
        Ok(CosignIdentity {
            subject: IdentityMatch::one_of("subject", entry.subject, entry.subject_regexp)?,
            issuer: IdentityMatch::one_of("issuer", entry.issuer, entry.issuer_regexp)?,
        })
    }
}

/// An exact value, or a regular expression the whole value must match.
#[derive(Debug, Clone)]
pub enum IdentityMatch {
    Exact(String),
    /// Anchored at both ends (cosign's `-regexp` flags are not: there `github.com/org` also
    /// matches `github.com/organisation-of-someone-else`).
    Regexp {
        pattern: String,
        regex: regex::Regex,
    },
}

impl IdentityMatch {
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

/// Docker's `config.json` auths (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`),
/// keyed by registry name. Entries without `auth` (credential helpers, identity tokens) are
/// skipped: concil does not run credential helpers.
fn load_docker_auths(env: &Environment) -> Result<BTreeMap<String, Credentials>, ConfigError> {
    let path = match (env.var(ENV_DOCKER_CONFIG), &env.home) {
        (Some(dir), _) => env
            .expand_home(Path::new(dir), ENV_DOCKER_CONFIG)?
            .join(CONFIG_FILE_NAME),
        (None, Some(home)) => home.join(".docker").join(CONFIG_FILE_NAME),
        (None, None) => return Ok(BTreeMap::new()),
    };
    // Parsed as a bare Value so that type errors cannot quote a credential.
    let Some(document) = read_json::<Value>(&path, false)? else {
        return Ok(BTreeMap::new());
    };
    let origin = path.display().to_string();
    let mut auths = BTreeMap::new();
    let Some(entries) = document.get("auths").and_then(Value::as_object) else {
        return Ok(auths);
    };
    for (key, entry) in entries {
        let Some(encoded) = entry
            .get("auth")
            .and_then(Value::as_str)
            .filter(|auth| !auth.is_empty())
        else {
            continue;
        };
        let credentials =
            decode_auth(encoded).map_err(|problem| auth_error(&origin, key, problem))?;
        auths.insert(docker_auth_registry(key), credentials);
    }
    Ok(auths)
}

/// Docker's auths key (`https://index.docker.io/v1/`, `host:port`, `http://host/`) → registry
/// name as a [`Reference`](crate::reference::Reference) has it.
fn docker_auth_registry(key: &str) -> String {
    let without_scheme = key.split_once("://").map_or(key, |(_, rest)| rest);
    let host = without_scheme.split('/').next().unwrap_or(without_scheme);
    if DOCKER_HUB_AUTH_HOSTS.contains(&host) {
        DOCKER_HUB.to_owned()
    } else {
        host.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use tempfile::TempDir;

    /// base64("user:pass") etc.
    fn encode(text: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(text)
    }

    fn credentials(username: &str, password: &str) -> Credentials {
        Credentials {
            username: username.into(),
            password: password.into(),
        }
    }

    /// A home directory with nothing in it, and an environment pointing at it.
    fn home() -> (TempDir, Environment) {
        let dir = TempDir::new().unwrap();
        let env = Environment {
            home: Some(dir.path().to_owned()),
            vars: BTreeMap::new(),
        };
        (dir, env)
    }

    fn write(path: &Path, text: &str) -> PathBuf {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
        path.to_owned()
    }

    fn load(dir: &TempDir, env: &Environment, json: &str) -> Result<Config, ConfigError> {
        let path = write(&dir.path().join("etc/concil.json"), json);
        Config::load_from(Some(&path), env)
    }

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    #[test]
    fn no_file_means_defaults() {
        let (dir, env) = home();
        let config = Config::load_from(None, &env).unwrap();
        let home = dir.path();
        assert_eq!(
            config.path.as_deref(),
            Some(&*home.join(".concil/config.json"))
        );
        assert_eq!(config.cache_dir, home.join(".concil"));
        assert_eq!(config.cache_timeout, Duration::from_secs(604_800));
        assert_eq!(config.cafile, None);
        assert!(!config.disable_content_trust);
        assert_eq!(config.content_trust, ContentTrust::Cosign);
        assert!(config.remote_servers.is_empty());
        assert_eq!(config.trust_pinning, None);
        assert_eq!(config.cosign_key_dir(), Some(home.join(".concil/cosign")));
        assert_eq!(config.notary_trust_dir(), home.join(".concil/notary"));
        assert_eq!(config.credentials("docker.io", "library/alpine"), None);
    }

    #[test]
    fn empty_object_means_defaults() {
        let (dir, env) = home();
        let config = load(&dir, &env, "{}").unwrap();
        assert_eq!(config.cache_dir, dir.path().join(".concil"));
        assert_eq!(config.cache_timeout, Duration::from_secs(604_800));
        assert_eq!(config.content_trust, ContentTrust::Cosign);
        assert_eq!(config.cosign_key_dir(), Some(dir.path().join("etc/cosign")));
    }

    #[test]
    fn every_key_is_read() {
        let (dir, env) = home();
        let json = format!(
            r#"{{
                "cache_dir": "~/cache",
                "cache_timeout": 3600,
                "cafile": "~/ca.pem",
                "disable_content_trust": true,
                "content_trust": "notary",
                "remote_servers": {{
                    "127.0.0.1:5000": {{"registry": "http://127.0.0.1:5000/ignored/path?q=1", "notary": "https://127.0.0.1:4444"}},
                    "example.org": {{"notary": "https://notary.example.org"}}
                }},
                "auths": {{"127.0.0.1:5000": "{auth}"}},
                "trust_pinning": {{"certs": {{"example.org/*": ["abc"]}}, "disable_tofu": true}},
                "some_future_key": [1, 2, 3]
            }}"#,
            auth = encode("u:p")
        );
        let config = load(&dir, &env, &json).unwrap();
        assert_eq!(
            config.path.as_deref(),
            Some(&*dir.path().join("etc/concil.json"))
        );
        assert_eq!(config.cache_dir, dir.path().join("cache"));
        assert_eq!(config.cache_timeout, Duration::from_secs(3600));
        assert_eq!(config.cafile, Some(dir.path().join("ca.pem")));
        assert!(config.disable_content_trust);
        assert_eq!(config.content_trust, ContentTrust::Notary);
        assert_eq!(
            config.remote_servers.get("127.0.0.1:5000"),
            Some(&RemoteServer {
                registry: Some(url("http://127.0.0.1:5000/")),
                notary: Some(url("https://127.0.0.1:4444/")),
            })
        );
        assert_eq!(
            config.remote_servers.get("example.org"),
            Some(&RemoteServer {
                registry: None,
                notary: Some(url("https://notary.example.org/"))
            })
        );
        assert_eq!(
            config.credentials("127.0.0.1:5000", "any/repo"),
            Some(credentials("u", "p"))
        );
        assert_eq!(
            config.trust_pinning,
            Some(serde_json::json!({"certs": {"example.org/*": ["abc"]}, "disable_tofu": true}))
        );
        assert_eq!(config.cosign_key_dir(), Some(dir.path().join("etc/cosign")));
    }

    #[test]
    fn absolute_paths_and_fractional_timeout_are_kept() {
        let (dir, env) = home();
        let config = load(&dir, &env, r#"{"cache_dir": "/srv/concil", "cafile": "ca.pem", "cache_timeout": 1.5, "content_trust": "cosign"}"#).unwrap();
        assert_eq!(config.cache_dir, Path::new("/srv/concil"));
        assert_eq!(config.cafile.as_deref(), Some(Path::new("ca.pem")));
        assert_eq!(config.cache_timeout, Duration::from_millis(1500));
        assert_eq!(config.content_trust, ContentTrust::Cosign);
    }

    #[test]
    fn file_precedence_explicit_then_env_then_home() {
        let (dir, mut env) = home();
        write(
            &dir.path().join(".concil/config.json"),
            r#"{"cache_timeout": 1}"#,
        );
        let from_env = write(&dir.path().join("env.json"), r#"{"cache_timeout": 2}"#);
        let explicit = write(&dir.path().join("explicit.json"), r#"{"cache_timeout": 3}"#);

        let timeout = |explicit: Option<&Path>, env: &Environment| {
            Config::load_from(explicit, env)
                .unwrap()
                .cache_timeout
                .as_secs()
        };
        assert_eq!(timeout(None, &env), 1);
        env.vars
            .insert("CONCIL_CONFIG".into(), from_env.display().to_string());
        assert_eq!(timeout(None, &env), 2);
        assert_eq!(timeout(Some(&explicit), &env), 3);

        // `~` in $CONCIL_CONFIG is expanded.
        env.vars.insert("CONCIL_CONFIG".into(), "~/env.json".into());
        assert_eq!(timeout(None, &env), 2);
        assert_eq!(Config::load_from(None, &env).unwrap().path, Some(from_env));

        // A missing $CONCIL_CONFIG file is an error, as a missing --config is: someone named
        // it. (Only the default ~/.concil/config.json may be missing.)
        let missing = dir.path().join("missing.json");
        env.vars
            .insert("CONCIL_CONFIG".into(), missing.display().to_string());
        let error = Config::load_from(None, &env).unwrap_err();
        assert!(
            matches!(&error, ConfigError::Read { path, source } if *path == missing && source.kind() == std::io::ErrorKind::NotFound),
            "{error:?}"
        );
    }

    #[test]
    fn sizes_with_units() {
        let size = |text: serde_json::Value| parse_size(&text);
        assert_eq!(size(serde_json::json!(1234)), Some(1234));
        assert_eq!(size(serde_json::json!("256G")), Some(256 << 30));
        assert_eq!(size(serde_json::json!("10 MiB")), Some(10 << 20));
        assert_eq!(size(serde_json::json!("3k")), Some(3 << 10));
        for bad in ["", "G", "1.5G", "-1", "1P", "99999999999T"] {
            assert_eq!(size(serde_json::json!(bad)), None, "{bad}");
        }
        assert_eq!(size(serde_json::json!(-1)), None);
        let (dir, env) = home();
        let config = load(
            &dir,
            &env,
            r#"{"layer_max_size": "1M", "layer_max_entries": 7}"#,
        )
        .unwrap();
        assert_eq!(
            (config.layer_max_size, config.layer_max_entries),
            (1 << 20, 7)
        );
        let defaults = load(&dir, &env, "{}").unwrap();
        assert_eq!(defaults.layer_max_size, DEFAULT_LAYER_MAX_SIZE);
        let error = load(&dir, &env, r#"{"layer_max_size": "lots"}"#).unwrap_err();
        assert!(error.to_string().contains("layer_max_size"), "{error}");
    }

    #[test]
    fn reads_of_named_files_are_capped() {
        let (_dir, env) = home();
        let error = Config::load_from(Some(Path::new("/dev/zero")), &env).unwrap_err();
        assert!(
            matches!(&error, ConfigError::Read { path, source } if path == Path::new("/dev/zero") && source.kind() == std::io::ErrorKind::FileTooLarge),
            "{error:?}"
        );
    }

    #[test]
    fn missing_explicit_file_is_an_error() {
        let (dir, env) = home();
        let missing = dir.path().join("missing.json");
        let error = Config::load_from(Some(&missing), &env).unwrap_err();
        assert!(
            matches!(&error, ConfigError::Read { path, source } if *path == missing && source.kind() == std::io::ErrorKind::NotFound)
        );
        assert!(
            error.to_string().contains(&*missing.display().to_string()),
            "{error}"
        );
    }

    #[test]
    fn malformed_file_names_path_and_position() {
        let (dir, env) = home();
        let error = load(
            &dir,
            &env,
            "{\n  \"cache_dir\": \"/x\",\n  \"cache_timeout\": ,\n}",
        )
        .unwrap_err();
        let ConfigError::Parse {
            path, line, column, ..
        } = &error
        else {
            panic!("{error:?}")
        };
        assert_eq!(path, &dir.path().join("etc/concil.json"));
        assert_eq!((*line, *column), (3, 20));
        let message = error.to_string();
        assert!(message.contains(&*path.display().to_string()), "{message}");
        assert!(message.contains("line 3"), "{message}");
    }

    #[test]
    fn wrongly_typed_values_name_the_position() {
        let (dir, env) = home();
        for (json, line) in [
            ("{\n\"cache_timeout\": \"soon\"}", 2),
            ("{\"a\": 1,\n\n\"content_trust\": \"gpg\"}", 3),
            ("{\"disable_content_trust\": \"yes\"}", 1),
            ("[]", 1),
        ] {
            match load(&dir, &env, json) {
                Err(ConfigError::Parse { line: got, .. }) => assert_eq!(got, line, "{json}"),
                other => panic!("{json}: {other:?}"),
            }
        }
        let error = load(&dir, &env, r#"{"cache_timeout": -1}"#).unwrap_err();
        assert!(
            matches!(
                error,
                ConfigError::InvalidValue {
                    key: "cache_timeout",
                    ..
                }
            ),
            "{error:?}"
        );
    }

    #[test]
    fn home_is_needed_only_for_tilde() {
        let env = Environment::default();
        let error = Config::load_from(None, &env).unwrap_err();
        assert!(
            matches!(error, ConfigError::NoHomeDirectory { what: "cache_dir" }),
            "{error:?}"
        );

        let dir = TempDir::new().unwrap();
        let path = write(&dir.path().join("c.json"), r#"{"cache_dir": "/srv/cache"}"#);
        let config = Config::load_from(Some(&path), &env).unwrap();
        assert_eq!(config.cache_dir, Path::new("/srv/cache"));
    }

    #[test]
    fn auths_exact_then_longest_prefix_then_host() {
        let (dir, env) = home();
        let json = format!(
            r#"{{"auths": {{
                "reg.example/team/app": "{exact}",
                "reg.example/team/*": "{team}",
                "reg.example/team/app-*": "{longer}",
                "reg.example/*": "{short}",
                "other.example": "{host}",
                "localhost/priv*": "{portless}"
            }}}}"#,
            exact = encode("exact:1"),
            team = encode("team:2"),
            longer = encode("longer:3"),
            short = encode("short:4"),
            host = encode("host:5"),
            portless = encode("portless:6"),
        );
        let config = load(&dir, &env, &json).unwrap();
        let user = |registry: &str, repository: &str| {
            config.credentials(registry, repository).map(|c| c.username)
        };
        assert_eq!(user("reg.example", "team/app").as_deref(), Some("exact"));
        assert_eq!(user("reg.example", "team/app-x").as_deref(), Some("longer"));
        assert_eq!(user("reg.example", "team/other").as_deref(), Some("team"));
        assert_eq!(user("reg.example", "solo").as_deref(), Some("short"));
        assert_eq!(
            user("other.example", "anything/at/all").as_deref(),
            Some("host")
        );
        // concil 1.0 keyed by host without port: such keys still apply to host:port.
        assert_eq!(
            user("localhost:5000", "private").as_deref(),
            Some("portless")
        );
        assert_eq!(user("localhost:5000", "public"), None);
        assert_eq!(user("third.example", "x"), None);
        // Prefix keys compare strings: "reg.example/*" does not match "reg.examples".
        assert_eq!(user("reg.examples", "x"), None);
    }

    #[test]
    fn cosign_identities_match_like_auths_and_regexps_are_anchored() {
        let (dir, env) = home();
        let json = r#"{
            "cosign_trusted_root": "~/sigstore/trusted_root.json",
            "cosign_identities": {
                "ghcr.io/org/*": {"subject_regexp": "https://github.com/org/[^/]+/.*", "issuer": "https://token.actions.githubusercontent.com"},
                "ghcr.io/org/app": {"subject": "dev@example.org", "issuer_regexp": "https://accounts\\.example\\.org"},
                "localhost": {"subject": "ops@example.org", "issuer": "https://issuer.example"}
            }
        }"#;
        let config = load(&dir, &env, json).unwrap();
        assert_eq!(
            config.cosign_trusted_root,
            Some(dir.path().join("sigstore/trusted_root.json"))
        );
        let identities = &config.cosign_identities;
        let app = identities.for_repository("ghcr.io", "org/app").unwrap();
        assert!(app.subject.matches("dev@example.org"));
        assert!(app.issuer.matches("https://accounts.example.org"));
        assert!(!app.issuer.matches("https://accountsXexample.org"));
        let other = identities.for_repository("ghcr.io", "org/other").unwrap();
        let workflow = "https://github.com/org/other/.github/workflows/release.yml@refs/tags/v1";
        assert!(other.subject.matches(workflow));
        // Anchored: a longer value containing a match is not one.
        assert!(!other
            .subject
            .matches(&format!("https://evil.example/{workflow}")));
        assert!(identities
            .for_repository("ghcr.io", "someone/else")
            .is_none());
        let local = identities.for_repository("localhost:5000", "any").unwrap();
        assert_eq!(local.issuer.to_string(), "\"https://issuer.example\"");
        assert_eq!(
            other.subject.to_string(),
            "matching /https://github.com/org/[^/]+/.*/"
        );
        assert!(load(&dir, &env, "{}").unwrap().cosign_identities.is_empty());
    }

    #[test]
    fn a_regexp_cannot_close_the_anchoring_group() {
        // Wrapped as `^(?:…)$`, this would be `^(?:https://github\.com/org/.*)|(.*)$`, whose
        // second branch is unanchored and matches every subject.
        let escape = r"https://github\.com/org/.*)|(.*";
        assert!(IdentityMatch::regexp(escape).is_err());
        let grouped = IdentityMatch::regexp("(a|b)c").unwrap();
        assert!(grouped.matches("ac") && !grouped.matches("xac"));
    }

    #[test]
    fn unusable_cosign_identities_name_their_key() {
        let (dir, env) = home();
        for (entry, reason) in [
            (
                r#"{"issuer": "i"}"#,
                "subject or subject_regexp is required",
            ),
            (r#"{"subject": "s"}"#, "issuer or issuer_regexp is required"),
            (
                r#"{"subject": "s", "subject_regexp": "s", "issuer": "i"}"#,
                "not both",
            ),
            (
                r#"{"subject_regexp": "(", "issuer": "i"}"#,
                "does not compile",
            ),
        ] {
            let json = format!(r#"{{"cosign_identities": {{"reg.example/app": {entry}}}}}"#);
            let error = load(&dir, &env, &json).unwrap_err();
            let message = error.to_string();
            assert!(
                matches!(&error, ConfigError::InvalidCosignIdentity { key, .. } if key == "reg.example/app")
                    && message.contains(reason),
                "{entry}: {message}"
            );
        }
    }

    #[test]
    fn port_specific_auths_win_over_portless() {
        let (dir, env) = home();
        let json = format!(
            r#"{{"auths": {{"127.0.0.1:5000": "{with_port}", "127.0.0.1/a": "{portless}"}}}}"#,
            with_port = encode("port:1"),
            portless = encode("plain:2"),
        );
        let config = load(&dir, &env, &json).unwrap();
        assert_eq!(
            config.credentials("127.0.0.1:5000", "a"),
            Some(credentials("port", "1"))
        );
        assert_eq!(
            config.credentials("127.0.0.1", "a"),
            Some(credentials("plain", "2"))
        );
        assert_eq!(
            config.credentials("127.0.0.1:6000", "a"),
            Some(credentials("plain", "2"))
        );
    }

    #[test]
    fn passwords_may_contain_colons_and_padding_is_optional() {
        let (dir, env) = home();
        let unpadded = encode("ab:c:de").trim_end_matches('=').to_owned();
        assert_ne!(unpadded, encode("ab:c:de"));
        let config = load(
            &dir,
            &env,
            &format!(r#"{{"auths": {{"h.example": "{unpadded}"}}}}"#),
        )
        .unwrap();
        assert_eq!(
            config.credentials("h.example", "r"),
            Some(credentials("ab", "c:de"))
        );
    }

    #[test]
    fn bad_auths_name_the_key_never_the_secret() {
        let (dir, env) = home();
        let secret = "hunter2-secret";
        for (value, problem) in [
            (
                format!("\"{}\"", encode(&format!("nocolon{secret}"))),
                AuthProblem::NoColon,
            ),
            (format!("\"{secret}!!\""), AuthProblem::NotBase64),
            (
                format!(
                    "\"{}\"",
                    base64::engine::general_purpose::STANDARD.encode([0xff, b':', 0xfe])
                ),
                AuthProblem::NotUtf8,
            ),
            ("42".to_owned(), AuthProblem::NotAString),
        ] {
            let error = load(
                &dir,
                &env,
                &format!(r#"{{"auths": {{"reg.example/app": {value}}}}}"#),
            )
            .unwrap_err();
            let ConfigError::InvalidAuth {
                key,
                problem: got,
                origin,
            } = &error
            else {
                panic!("{error:?}")
            };
            assert_eq!((key.as_str(), *got), ("reg.example/app", problem));
            assert!(origin.contains("concil.json"), "{origin}");
            let message = format!("{error} {error:?}");
            assert!(
                !message.contains(secret) && !message.contains("nocolon"),
                "{message}"
            );
        }
        let error = load(
            &dir,
            &env,
            &format!(r#"{{"auths": "{}"}}"#, encode(&format!("u:{secret}"))),
        )
        .unwrap_err();
        assert!(
            matches!(error, ConfigError::InvalidValue { key: "auths", .. }),
            "{error:?}"
        );
        assert!(!format!("{error} {error:?}").contains(&encode(&format!("u:{secret}"))));
    }

    #[test]
    fn environment_pairs_add_and_override_auths() {
        let (dir, mut env) = home();
        let json = format!(
            r#"{{"auths": {{"reg.example/app": "{file}", "reg.example/other": "{kept}"}}}}"#,
            file = encode("file:1"),
            kept = encode("kept:2"),
        );
        env.vars.extend([
            ("CONCIL_PROD_REPO".to_owned(), "reg.example/app".to_owned()),
            ("CONCIL_PROD_AUTH".to_owned(), encode("env:3")),
            ("CONCIL_CI_BOT_REPO".to_owned(), "ci.example/*".to_owned()),
            ("CONCIL_CI_BOT_AUTH".to_owned(), encode("bot:4")),
            // A REPO without its AUTH adds nothing.
            ("CONCIL_LONELY_REPO".to_owned(), "lonely.example".to_owned()),
        ]);
        let config = load(&dir, &env, &json).unwrap();
        assert_eq!(
            config.credentials("reg.example", "app"),
            Some(credentials("env", "3"))
        );
        assert_eq!(
            config.credentials("reg.example", "other"),
            Some(credentials("kept", "2"))
        );
        assert_eq!(
            config.credentials("ci.example", "x/y"),
            Some(credentials("bot", "4"))
        );
        assert_eq!(config.credentials("lonely.example", "x"), None);

        env.vars.insert("CONCIL_PROD_AUTH".into(), "%%%".into());
        let error = load(&dir, &env, "{}").unwrap_err();
        let ConfigError::InvalidAuth {
            origin,
            key,
            problem,
        } = &error
        else {
            panic!("{error:?}")
        };
        assert_eq!(
            (origin.as_str(), key.as_str(), *problem),
            (
                "environment variable CONCIL_PROD_AUTH",
                "reg.example/app",
                AuthProblem::NotBase64
            )
        );
    }

    #[test]
    fn docker_config_is_the_fallback() {
        let (dir, mut env) = home();
        write(
            &dir.path().join(".docker/config.json"),
            &format!(
                r#"{{"auths": {{
                    "https://index.docker.io/v1/": {{"auth": "{hub}"}},
                    "127.0.0.1:5000": {{"auth": "{local}"}},
                    "http://plain.example/": {{"auth": "{plain}"}},
                    "helper.example": {{"identitytoken": "t"}},
                    "empty.example": {{"auth": ""}}
                }}, "credsStore": "desktop"}}"#,
                hub = encode("hub:1"),
                local = encode("local:2"),
                plain = encode("plain:3"),
            ),
        );
        let json = format!(
            r#"{{"auths": {{"127.0.0.1:5000/mine": "{own}"}}}}"#,
            own = encode("own:4")
        );
        let config = load(&dir, &env, &json).unwrap();
        assert_eq!(
            config.credentials("docker.io", "library/alpine"),
            Some(credentials("hub", "1"))
        );
        assert_eq!(
            config.credentials("127.0.0.1:5000", "other"),
            Some(credentials("local", "2"))
        );
        assert_eq!(
            config.credentials("127.0.0.1:5000", "mine"),
            Some(credentials("own", "4"))
        );
        assert_eq!(
            config.credentials("plain.example", "x"),
            Some(credentials("plain", "3"))
        );
        assert_eq!(config.credentials("helper.example", "x"), None);
        assert_eq!(config.credentials("empty.example", "x"), None);

        // $DOCKER_CONFIG replaces ~/.docker.
        let docker_dir = dir.path().join("docker-elsewhere");
        write(
            &docker_dir.join("config.json"),
            &format!(
                r#"{{"auths": {{"docker.io": {{"auth": "{}"}}}}}}"#,
                encode("moved:5")
            ),
        );
        env.vars
            .insert("DOCKER_CONFIG".into(), docker_dir.display().to_string());
        let config = load(&dir, &env, "{}").unwrap();
        assert_eq!(
            config.credentials("docker.io", "library/alpine"),
            Some(credentials("moved", "5"))
        );
        assert_eq!(config.credentials("127.0.0.1:5000", "other"), None);
    }

    #[test]
    fn broken_docker_config_names_its_file_and_key() {
        let (dir, env) = home();
        let docker = write(&dir.path().join(".docker/config.json"), "{\"auths\": {\n");
        let error = load(&dir, &env, "{}").unwrap_err();
        assert!(
            matches!(&error, ConfigError::Parse { path, line: 2, .. } if *path == docker),
            "{error:?}"
        );

        write(
            &docker,
            r#"{"auths": {"reg.example": {"auth": "bm9jb2xvbg=="}}}"#,
        );
        let error = load(&dir, &env, "{}").unwrap_err();
        let ConfigError::InvalidAuth {
            origin,
            key,
            problem,
        } = &error
        else {
            panic!("{error:?}")
        };
        assert_eq!(
            (key.as_str(), *problem),
            ("reg.example", AuthProblem::NoColon)
        );
        assert_eq!(origin, &docker.display().to_string());
    }

    #[test]
    fn registry_endpoints() {
        let (dir, env) = home();
        let json = r#"{"remote_servers": {
            "127.0.0.1:5000": {"registry": "http://127.0.0.1:5000"},
            "mirror.example": {"registry": "https://mirror.internal:8443/v2/"},
            "docker.io": {"notary": "https://notary.internal"}
        }}"#;
        let config = load(&dir, &env, json).unwrap();
        let endpoint = |registry: &str| config.registry_endpoint(registry).unwrap();
        assert_eq!(
            endpoint("127.0.0.1:5000"),
            RegistryEndpoint {
                url: url("http://127.0.0.1:5000/"),
                explicit: true
            }
        );
        // A bare-host entry applies to every port of that host.
        assert_eq!(
            endpoint("mirror.example:9000"),
            RegistryEndpoint {
                url: url("https://mirror.internal:8443/"),
                explicit: true
            }
        );
        assert_eq!(
            endpoint("docker.io"),
            RegistryEndpoint {
                url: url("https://registry-1.docker.io/"),
                explicit: false
            }
        );
        assert_eq!(
            endpoint("127.0.0.1:6000"),
            RegistryEndpoint {
                url: url("https://127.0.0.1:6000/"),
                explicit: false
            }
        );
        assert_eq!(
            endpoint("[::1]:5000"),
            RegistryEndpoint {
                url: url("https://[::1]:5000/"),
                explicit: false
            }
        );
        assert_eq!(
            config.registry_url("ghcr.io").unwrap(),
            url("https://ghcr.io/")
        );
        assert!(config.registry_is_explicit("127.0.0.1:5000"));
        assert!(!config.registry_is_explicit("127.0.0.1:6000"));
        assert!(!config.registry_is_explicit("docker.io"));
        for bad in ["a/b", "a b", "user@host", ""] {
            assert!(
                matches!(
                    config.registry_url(bad),
                    Err(ConfigError::InvalidRegistryName { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn notary_urls() {
        let (dir, env) = home();
        let json = r#"{"remote_servers": {
            "127.0.0.1:5000": {"registry": "http://127.0.0.1:5000", "notary": "https://127.0.0.1:4444"},
            "mirror.example": {"registry": "https://mirror.internal:8443"}
        }}"#;
        let config = load(&dir, &env, json).unwrap();
        let notary = |registry: &str| config.notary_url(registry).unwrap();
        assert_eq!(notary("127.0.0.1:5000"), url("https://127.0.0.1:4444/"));
        assert_eq!(
            notary("mirror.example"),
            url("https://mirror.internal:4443/")
        );
        assert_eq!(notary("docker.io"), url("https://notary.docker.io/"));
        // The registry's port is replaced, not followed, by 4443.
        assert_eq!(notary("127.0.0.1:6000"), url("https://127.0.0.1:4443/"));
        assert_eq!(notary("ghcr.io"), url("https://ghcr.io:4443/"));
    }

    #[test]
    fn bad_remote_server_urls_name_the_entry() {
        let (dir, env) = home();
        let cases = [
            (
                r#"{"remote_servers": {"r.example": {"registry": "not a url"}}}"#,
                "registry",
            ),
            (
                r#"{"remote_servers": {"r.example": {"notary": "ftp://r.example"}}}"#,
                "notary",
            ),
            (
                r#"{"remote_servers": {"r.example": {"registry": "https://user:hunter2@r.example"}}}"#,
                "registry",
            ),
        ];
        for (json, expected_field) in cases {
            let error = load(&dir, &env, json).unwrap_err();
            let ConfigError::InvalidServerUrl { server, field, .. } = &error else {
                panic!("{error:?}")
            };
            assert_eq!((server.as_str(), *field), ("r.example", expected_field));
            assert!(!format!("{error} {error:?}").contains("hunter2"));
        }
    }

    #[test]
    fn debug_output_hides_passwords() {
        let (dir, env) = home();
        let json = format!(
            r#"{{"auths": {{"r.example": "{}"}}}}"#,
            encode("alice:hunter2")
        );
        let config = load(&dir, &env, &json).unwrap();
        let mut env = env;
        env.vars
            .insert("CONCIL_X_AUTH".into(), encode("bob:hunter2"));
        let debug = format!(
            "{config:?} {:?} {env:?}",
            config.credentials("r.example", "x")
        );
        assert!(debug.contains("CONCIL_X_AUTH"), "{debug}");
        assert!(!debug.contains(&encode("bob:hunter2")), "{debug}");
        assert!(debug.contains("alice"), "{debug}");
        assert!(!debug.contains("hunter2"), "{debug}");
    }
}
