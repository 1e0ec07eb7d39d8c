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
//!
//! Parts (private modules, their types re-exported here): `file` (the schema and bounded
//! reading), `credentials`, `endpoints` (`remote_servers`), `identity` (`cosign_identities`),
//! `pinning` (`trust_pinning`), `repository_map` (the one `host/repo`, `host/prefix*`, `host`
//! matcher they share), `environment`, `error`.

mod credentials;
mod endpoints;
mod environment;
mod error;
mod file;
mod helpers;
mod identity;
mod pinning;
mod repository_map;
#[cfg(test)]
mod tests;
mod trust_policy;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use url::Url;

use crate::reference::{registry_host, DOCKER_HUB};
use credentials::{add_environment_auths, file_auths, load_containers_auths, load_docker_config};
pub use credentials::{Credentials, IDENTITY_TOKEN_USER};
use endpoints::{
    parse_builtin_url, remote_server, DEFAULT_NOTARY_PORT, DOCKER_HUB_NOTARY_URL,
    DOCKER_HUB_REGISTRY_URL,
};
pub use endpoints::{RegistryEndpoint, RegistryTls, RemoteServer, DEFAULT_CERTS_DIRS};
pub use environment::Environment;
pub use error::{AuthProblem, ConfigError, HelperProblem, UrlProblem};
pub(crate) use file::read_capped;
pub use file::{parse_size, DEFAULT_LAYER_MAX_ENTRIES, DEFAULT_LAYER_MAX_SIZE};
pub use trust_policy::{ContentTrust, Policy, TrustPolicy};

/// Where `concil login` stored credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SavedIn {
    /// A Docker credential helper (`docker-credential-<name>`).
    Helper(String),
    /// concil's configuration file.
    ConfigFile(PathBuf),
}

/// Default `retries`.
pub const DEFAULT_RETRIES: u32 = 5;

/// The configuration's `timeouts`. There is no overall timeout: a big layer on a slow link may
/// take hours, as long as bytes keep coming.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// `connect`: connecting (DNS, TCP, TLS, proxy) may take this long.
    pub connect: Duration,
    /// `idle`: no byte for this long (waiting for an answer, or inside a body) is a break.
    pub idle: Duration,
    /// `min_rate`: a body slower than this many bytes per second over an `idle` period is
    /// stalled (a break); 0 turns the check off.
    pub min_rate: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(30),
            idle: Duration::from_secs(30),
            min_rate: 1024,
        }
    }
}
use file::{read_json, ConfigFile};
pub use identity::{CosignIdentities, CosignIdentity, IdentityMatch};
pub use pinning::TrustPinning;
pub use repository_map::RepositoryMap;

const CONFIG_FILE_NAME: &str = "config.json";
/// Relative to the home directory.
const DEFAULT_CONFIG_DIR: &str = ".concil";
const DEFAULT_CACHE_DIR: &str = "~/.concil";
const DEFAULT_CACHE_TIMEOUT: Duration = Duration::from_secs(604_800);
const ENV_CONFIG: &str = "CONCIL_CONFIG";

/// The configuration: loaded from concil 1.0's file ([`Config::load`]) or built in code
/// ([`Config::builder`]). README.md's table lists the keys and defaults.
#[derive(Debug, Clone)]
pub struct Config {
    /// The configuration file consulted, whether or not it existed (cosign keys live in
    /// `cosign/` beside it); `None` when there was no file name to consult (no home directory).
    pub path: Option<PathBuf>,
    /// `cache_dir`: the cache directory (`~` expanded).
    pub cache_dir: PathBuf,
    /// `cache_timeout`: how long an unused cache entry lives.
    pub cache_timeout: Duration,
    /// `cache_max_size`: the size the cache is kept under (least recently used images go
    /// first); `None`: no limit.
    pub cache_max_size: Option<u64>,
    /// `cache_auto_clean`: whether a pull that leaves the cache over `cache_max_size` cleans
    /// it (default true).
    pub cache_auto_clean: bool,
    /// `cafile`: extra CA certificates (PEM) trusted for registries.
    pub cafile: Option<PathBuf>,
    /// `disable_content_trust`: pull without verifying signatures.
    pub disable_content_trust: bool,
    /// `content_trust`: which engine verifies images.
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
    /// `trust_pinning`: Notary root keys pinned per trust collection (checked on load).
    pub trust_pinning: TrustPinning,
    /// `trust_policy`: the content trust each repository needs; where it says nothing,
    /// `content_trust` and `disable_content_trust` decide.
    pub trust_policy: TrustPolicy,
    /// `layer_max_size`: the most bytes of uncompressed tar one layer may hold ("256G", or a
    /// number of bytes); a larger layer is refused while it converts.
    pub layer_max_size: u64,
    /// `layer_max_entries`: the most tar entries one layer may hold.
    pub layer_max_entries: u64,
    /// `retries`: how often a failed request, or a blob download that breaks off without
    /// progress, is tried again.
    pub retries: u32,
    /// `timeouts`: connecting, silence, and the slowest body waited for.
    pub timeouts: Timeouts,
    /// Where per-registry certificates live (`HOST[:PORT]/` below each; not a file key:
    /// [`DEFAULT_CERTS_DIRS`], or [`ConfigBuilder::certs_dirs`]).
    pub certs_dirs: Vec<PathBuf>,
    /// concil's own `auths` (file, then environment pairs), keyed as written.
    auths: RepositoryMap<Credentials>,
    /// Docker's `config.json` auths, keyed by registry name (`docker.io`, `host:port`).
    docker_auths: BTreeMap<String, Credentials>,
    /// Docker's `config.json` `credHelpers` and `credsStore`.
    docker_helpers: credentials::CredentialHelpers,
    /// containers' `auth.json` (podman, skopeo).
    containers_auths: RepositoryMap<Credentials>,
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

        let remote_servers: Vec<(String, RemoteServer)> = file
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
        let cosign_identities: Vec<(String, CosignIdentity)> = file
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

        let trust_pinning = match file.trust_pinning.as_ref().filter(|value| !value.is_null()) {
            Some(value) => TrustPinning::from_value(value, &file_path())?,
            None => TrustPinning::default(),
        };
        let trust_policy = match file.trust_policy.as_ref().filter(|value| !value.is_null()) {
            Some(value) => TrustPolicy::from_value(value, &file_path())?,
            None => TrustPolicy::default(),
        };
        let layer_max_size = match &file.layer_max_size {
            Some(value) => parse_size(value).ok_or_else(|| ConfigError::InvalidValue {
                path: file_path(),
                key: "layer_max_size",
                reason: "must be a number of bytes or a size such as \"256G\" (K, M, G, T: powers of 1024)",
            })?,
            None => DEFAULT_LAYER_MAX_SIZE,
        };
        let cache_max_size = match file.cache_max_size.as_ref().filter(|value| !value.is_null()) {
            Some(value) => Some(parse_size(value).ok_or_else(|| ConfigError::InvalidValue {
                path: file_path(),
                key: "cache_max_size",
                reason: "must be a number of bytes or a size such as \"50G\" (K, M, G, T: powers of 1024)",
            })?),
            None => None,
        };
        let timeouts_file = file.timeouts.unwrap_or_default();
        let seconds = |value: Option<f64>, key: &'static str, default: Duration| match value {
            None => Ok(default),
            Some(seconds) => Duration::try_from_secs_f64(seconds)
                .ok()
                .filter(|duration| !duration.is_zero())
                .ok_or_else(|| ConfigError::InvalidValue {
                    path: file_path(),
                    key,
                    reason: "must be a positive number of seconds",
                }),
        };
        let defaults = Timeouts::default();
        let timeouts = Timeouts {
            connect: seconds(timeouts_file.connect, "timeouts.connect", defaults.connect)?,
            idle: seconds(timeouts_file.idle, "timeouts.idle", defaults.idle)?,
            min_rate: timeouts_file.min_rate.unwrap_or(defaults.min_rate),
        };
        let mut builder = Config::builder(cache_dir)
            .retries(file.retries.unwrap_or(DEFAULT_RETRIES))
            .timeouts(timeouts)
            .cache_timeout(cache_timeout)
            .cache_max_size(cache_max_size)
            .cache_auto_clean(file.cache_auto_clean.unwrap_or(true))
            .disable_content_trust(file.disable_content_trust.unwrap_or(false))
            .content_trust(file.content_trust.unwrap_or(ContentTrust::Cosign))
            .cosign_check_identity(file.cosign_check_identity.unwrap_or(false))
            .trust_pinning(trust_pinning)
            .trust_policy(trust_policy)
            .layer_max_size(layer_max_size)
            .layer_max_entries(file.layer_max_entries.unwrap_or(DEFAULT_LAYER_MAX_ENTRIES));
        if let Some(path) = path {
            builder = builder.path(path);
        }
        if let Some(cafile) = cafile {
            builder = builder.cafile(cafile);
        }
        if let Some(root) = cosign_trusted_root {
            builder = builder.cosign_trusted_root(root);
        }
        for (pattern, identity) in cosign_identities {
            builder = builder.cosign_identity(pattern, identity);
        }
        for (server, remote) in remote_servers {
            builder = builder.remote_server(server, remote);
        }
        for (pattern, credentials) in auths {
            builder = builder.auth(pattern, credentials);
        }
        (builder.config.docker_auths, builder.config.docker_helpers) = load_docker_config(env)?;
        builder.config.containers_auths = load_containers_auths(env)?;
        Ok(builder.build())
    }

    /// A configuration built in code, from the defaults that no file means and `cache_dir`;
    /// [`Config::load`] builds its result this way too.
    pub fn builder(cache_dir: impl Into<PathBuf>) -> ConfigBuilder {
        ConfigBuilder {
            config: Config {
                path: None,
                cache_dir: cache_dir.into(),
                cache_timeout: DEFAULT_CACHE_TIMEOUT,
                cache_max_size: None,
                cache_auto_clean: true,
                cafile: None,
                disable_content_trust: false,
                content_trust: ContentTrust::Cosign,
                cosign_check_identity: false,
                cosign_trusted_root: None,
                cosign_identities: CosignIdentities::default(),
                remote_servers: BTreeMap::new(),
                trust_pinning: TrustPinning::default(),
                trust_policy: TrustPolicy::default(),
                layer_max_size: DEFAULT_LAYER_MAX_SIZE,
                layer_max_entries: DEFAULT_LAYER_MAX_ENTRIES,
                retries: DEFAULT_RETRIES,
                timeouts: Timeouts::default(),
                certs_dirs: DEFAULT_CERTS_DIRS.iter().map(PathBuf::from).collect(),
                auths: RepositoryMap::default(),
                docker_auths: BTreeMap::new(),
                docker_helpers: credentials::CredentialHelpers::default(),
                containers_auths: RepositoryMap::default(),
            },
        }
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

    /// The TLS files for `registry` (`host[:port]`): its `remote_servers` `cafile`,
    /// `client_cert` and `client_key` (under `host:port`, else `host`), then its `certs.d`
    /// directories.
    pub fn registry_tls(&self, registry: &str) -> RegistryTls {
        let host = registry_host(registry);
        let remote = self
            .remote_servers
            .get(registry)
            .or_else(|| self.remote_servers.get(host));
        endpoints::registry_tls(remote, &self.certs_dirs, registry)
    }

    /// The mirrors configured for `registry` (under `host:port`, else `host`), in the order to
    /// try them, and whether they serve only references by digest.
    pub fn registry_mirrors(&self, registry: &str) -> (&[Url], bool) {
        let host = registry_host(registry);
        self.remote_servers
            .get(registry)
            .filter(|server| !server.mirrors.is_empty())
            .or_else(|| self.remote_servers.get(host))
            .map_or((&[], false), |server| {
                (server.mirrors.as_slice(), server.mirror_digest_only)
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
    /// from Docker's `config.json` `auths`; without running credential helpers (see
    /// [`Config::resolve_credentials`]).
    pub fn credentials(&self, registry: &str, repository: &str) -> Option<Credentials> {
        self.auths
            .for_repository(registry, repository)
            .or_else(|| self.docker_auths.get(registry))
            .cloned()
    }

    /// The content trust `repository` on `registry` needs: its `trust_policy` entry (matched
    /// as `auths`, then `*`), else `content_trust` unless `disable_content_trust`. `None`:
    /// not verified.
    pub fn content_trust_for(&self, registry: &str, repository: &str) -> Option<ContentTrust> {
        match self.trust_policy.for_repository(registry, repository) {
            Some(Policy::Verify(engine)) => Some(engine),
            Some(Policy::None) => None,
            None => (!self.disable_content_trust).then_some(self.content_trust),
        }
    }

    /// Credentials for `repository` on `registry` from every source, in this order: concil's
    /// `auths` and environment pairs (as [`Config::credentials`]); containers' `auth.json`
    /// (podman, skopeo: `$REGISTRY_AUTH_FILE`, else `$XDG_RUNTIME_DIR/containers/auth.json` and
    /// `~/.config/containers/auth.json`); Docker's credential helper
    /// for the registry (`credHelpers`), then its `credsStore`; Docker's plain `auths`. A helper
    /// runs only here, only when the sources before it have nothing, and is given
    /// `timeouts.idle` to answer. Logs (`-v`) which source answered, never the secret.
    pub fn resolve_credentials(
        &self,
        registry: &str,
        repository: &str,
    ) -> Result<Option<Credentials>, ConfigError> {
        if let Some(own) = self.auths.for_repository(registry, repository) {
            tracing::info!("credentials for {registry} from concil's auths");
            return Ok(Some(own.clone()));
        }
        if let Some(podman) = self.containers_auths.for_repository(registry, repository) {
            tracing::info!("credentials for {registry} from containers' auth.json");
            return Ok(Some(podman.clone()));
        }
        for helper in self.docker_helpers.for_registry(registry) {
            if let Some(found) = helpers::get(helper, registry, self.timeouts.idle)? {
                tracing::info!("credentials for {registry} from docker-credential-{helper}");
                return Ok(Some(found));
            }
        }
        let docker = self.docker_auths.get(registry).cloned();
        if docker.is_some() {
            tracing::info!("credentials for {registry} from Docker's config.json auths");
        }
        Ok(docker)
    }

    /// Stores `credentials` for `registry` (`concil login`, after checking them): in the
    /// credential helper Docker's `config.json` names for it (`credHelpers`, else
    /// `credsStore`) when it is installed, else in this configuration file's `auths`
    /// ([`update_auths`](credentials::update_auths): mode 0600, atomic, other keys kept).
    pub fn save_credentials(
        &self,
        registry: &str,
        credentials: &Credentials,
    ) -> Result<SavedIn, ConfigError> {
        if let Some(helper) = self.docker_helpers.for_registry(registry).first() {
            if helpers::store(helper, registry, credentials, self.timeouts.idle)? {
                return Ok(SavedIn::Helper(format!("docker-credential-{helper}")));
            }
        }
        let path = self.path.as_ref().ok_or(ConfigError::NoHomeDirectory {
            what: "the configuration file",
        })?;
        credentials::update_auths(path, registry, Some(credentials))?;
        Ok(SavedIn::ConfigFile(path.clone()))
    }

    /// Removes `registry`'s credentials (`concil logout`) from the credential helper Docker's
    /// `config.json` names for it and from this configuration file's `auths`; `false` when
    /// neither held any.
    pub fn remove_credentials(&self, registry: &str) -> Result<bool, ConfigError> {
        let mut removed = false;
        if let Some(helper) = self.docker_helpers.for_registry(registry).first() {
            removed |= helpers::erase(helper, registry, self.timeouts.idle)?;
        }
        if let Some(path) = self.path.as_ref().filter(|path| path.exists()) {
            removed |= credentials::update_auths(path, registry, None)?;
        }
        Ok(removed)
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

/// Builds a [`Config`] in code ([`Config::builder`]); each setter is a configuration key.
#[derive(Debug, Clone)]
pub struct ConfigBuilder {
    config: Config,
}

impl ConfigBuilder {
    /// The configuration file this stands for (cosign keys are read from `cosign/` beside it).
    pub fn path(mut self, path: impl Into<PathBuf>) -> Self {
        self.config.path = Some(path.into());
        self
    }

    /// `cache_timeout`: how long an unused cache entry lives.
    pub fn cache_timeout(mut self, timeout: Duration) -> Self {
        self.config.cache_timeout = timeout;
        self
    }

    /// `cafile`: extra CA certificates (PEM) for registries with a private CA.
    pub fn cafile(mut self, cafile: impl Into<PathBuf>) -> Self {
        self.config.cafile = Some(cafile.into());
        self
    }

    /// `disable_content_trust`: pull without verifying signatures.
    pub fn disable_content_trust(mut self, disable: bool) -> Self {
        self.config.disable_content_trust = disable;
        self
    }

    /// `content_trust`: which engine verifies images.
    pub fn content_trust(mut self, engine: ContentTrust) -> Self {
        self.config.content_trust = engine;
        self
    }

    /// `cosign_check_identity`: a signature counts only for the repository it names.
    pub fn cosign_check_identity(mut self, check: bool) -> Self {
        self.config.cosign_check_identity = check;
        self
    }

    /// `cosign_trusted_root`: the sigstore `trusted_root.json` for keyless signatures.
    pub fn cosign_trusted_root(mut self, root: impl Into<PathBuf>) -> Self {
        self.config.cosign_trusted_root = Some(root.into());
        self
    }

    /// A `cosign_identities` entry: the keyless signer required for `pattern`.
    pub fn cosign_identity(mut self, pattern: impl Into<String>, identity: CosignIdentity) -> Self {
        self.config
            .cosign_identities
            .insert(pattern.into(), identity);
        self
    }

    /// A `remote_servers` entry: where the registry `name` (`host` or `host:port`) lives.
    pub fn remote_server(mut self, name: impl Into<String>, server: RemoteServer) -> Self {
        self.config.remote_servers.insert(name.into(), server);
        self
    }

    /// An `auths` entry: credentials for `pattern` (`host/repo`, `host/prefix*` or `host`).
    pub fn auth(mut self, pattern: impl Into<String>, credentials: Credentials) -> Self {
        self.config.auths.insert(pattern.into(), credentials);
        self
    }

    /// `trust_pinning`: Notary root keys pinned per trust collection.
    pub fn trust_pinning(mut self, pinning: TrustPinning) -> Self {
        self.config.trust_pinning = pinning;
        self
    }

    /// `trust_policy`: the content trust each repository needs.
    pub fn trust_policy(mut self, policy: TrustPolicy) -> Self {
        self.config.trust_policy = policy;
        self
    }

    /// `cache_max_size`: the size the cache is kept under; `None`: no limit.
    pub fn cache_max_size(mut self, bytes: Option<u64>) -> Self {
        self.config.cache_max_size = bytes;
        self
    }

    /// `cache_auto_clean`: whether a pull cleans a cache it leaves over `cache_max_size`.
    pub fn cache_auto_clean(mut self, clean: bool) -> Self {
        self.config.cache_auto_clean = clean;
        self
    }

    /// `layer_max_size`: the most uncompressed bytes one layer may hold.
    pub fn layer_max_size(mut self, bytes: u64) -> Self {
        self.config.layer_max_size = bytes;
        self
    }

    /// `layer_max_entries`: the most tar entries one layer may hold.
    pub fn layer_max_entries(mut self, entries: u64) -> Self {
        self.config.layer_max_entries = entries;
        self
    }

    /// `retries`: how often a failed request or a broken-off download is tried again.
    pub fn retries(mut self, retries: u32) -> Self {
        self.config.retries = retries;
        self
    }

    /// Where per-registry certificate directories (`HOST[:PORT]/`) are looked for.
    pub fn certs_dirs(mut self, dirs: Vec<PathBuf>) -> Self {
        self.config.certs_dirs = dirs;
        self
    }

    /// `timeouts`: connect, idle, min_rate.
    pub fn timeouts(mut self, timeouts: Timeouts) -> Self {
        self.config.timeouts = timeouts;
        self
    }

    /// The configuration.
    pub fn build(self) -> Config {
        self.config
    }
}
