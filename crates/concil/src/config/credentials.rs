//! Where credentials come from: concil's `auths` (file, then `CONCIL_<NAME>_REPO` and
//! `_AUTH` environment pairs), then Docker's `config.json`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::Value;

use super::environment::Environment;
use super::error::{AuthProblem, ConfigError};
use super::file::read_json;
use super::repository_map::RepositoryMap;
use crate::reference::DOCKER_HUB;

/// containers' (podman, skopeo, buildah) auth file, when set: the only one read then.
const ENV_REGISTRY_AUTH_FILE: &str = "REGISTRY_AUTH_FILE";
const ENV_XDG_RUNTIME_DIR: &str = "XDG_RUNTIME_DIR";

/// Docker's names for Docker Hub in its `config.json` (`https://index.docker.io/v1/` usually).
const DOCKER_HUB_AUTH_HOSTS: [&str; 3] = ["index.docker.io", "registry-1.docker.io", DOCKER_HUB];
const ENV_DOCKER_CONFIG: &str = "DOCKER_CONFIG";
/// Docker's configuration file, in `$DOCKER_CONFIG` or `~/.docker`.
const DOCKER_CONFIG_FILE_NAME: &str = "config.json";
/// Auth pairs from the environment: `CONCIL_<NAME>_REPO` holds the key, `CONCIL_<NAME>_AUTH`
/// the base64 `user:password`.
const ENV_AUTH_PREFIX: &str = "CONCIL_";
const ENV_AUTH_REPO_SUFFIX: &str = "_REPO";
const ENV_AUTH_AUTH_SUFFIX: &str = "_AUTH";

/// The user name that marks a password as an identity token (an OAuth2 refresh token, traded
/// at the registry's token realm), as Docker's `config.json` (`identitytoken`) and credential
/// helpers hand it over.
pub const IDENTITY_TOKEN_USER: &str = "<token>";

/// A user name and password for a registry. `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name.
    pub username: String,
    /// The password (or token), never shown.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// The file's `auths` object, decoded.
pub(super) fn file_auths(
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
pub(super) fn add_environment_auths(
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

/// containers' `auth.json` credentials (podman and skopeo write them): `$REGISTRY_AUTH_FILE`
/// alone when set, else `$XDG_RUNTIME_DIR/containers/auth.json` then
/// `~/.config/containers/auth.json` (the first file naming a key wins), as containers/image
/// reads them. Keys are `host`, or `host/path` for a repository and everything under it
/// (`quay.io/team` covers `quay.io/team/app`).
pub(super) fn load_containers_auths(
    env: &Environment,
) -> Result<RepositoryMap<Credentials>, ConfigError> {
    let files: Vec<PathBuf> = match env.var(ENV_REGISTRY_AUTH_FILE) {
        Some(file) => vec![env.expand_home(Path::new(file), ENV_REGISTRY_AUTH_FILE)?],
        None => env
            .var(ENV_XDG_RUNTIME_DIR)
            .map(|dir| Path::new(dir).join("containers/auth.json"))
            .into_iter()
            .chain(
                env.home
                    .as_ref()
                    .map(|home| home.join(".config/containers/auth.json")),
            )
            .collect(),
    };
    let mut auths = RepositoryMap::default();
    let mut seen = std::collections::BTreeSet::new();
    for path in files {
        let Some(document) = read_json::<Value>(&path, false)? else {
            continue;
        };
        let origin = path.display().to_string();
        let entries = document.get("auths").and_then(Value::as_object);
        for (key, entry) in entries.into_iter().flatten() {
            let Some(credentials) = auth_field(entry, &origin, key)? else {
                continue;
            };
            let name = containers_auth_key(key);
            if !seen.insert(name.clone()) {
                continue;
            }
            if name.contains('/') {
                auths.insert(format!("{name}/*"), credentials.clone());
            }
            auths.insert(name, credentials);
        }
    }
    Ok(auths)
}

/// A containers `auth.json` key (`host[/path]`, possibly with a scheme or Docker Hub's old
/// names) as the key of a [`RepositoryMap`].
fn containers_auth_key(key: &str) -> String {
    let without_scheme = key.split_once("://").map_or(key, |(_, rest)| rest);
    let (host, path) = without_scheme
        .split_once('/')
        .map_or((without_scheme, ""), |(host, path)| (host, path));
    let host = docker_auth_registry(host);
    let path = path.trim_end_matches('/');
    // Docker Hub's `https://index.docker.io/v1/` names the registry, not a repository `v1`.
    if path.is_empty() || (host == DOCKER_HUB && path == "v1") {
        host
    } else {
        format!("{host}/{path}")
    }
}

#[cfg(test)]
#[test]
fn containers_keys_become_repository_keys() {
    assert_eq!(containers_auth_key("quay.io"), "quay.io");
    assert_eq!(containers_auth_key("quay.io/team/app/"), "quay.io/team/app");
    assert_eq!(
        containers_auth_key("https://index.docker.io/v1/"),
        DOCKER_HUB
    );
    assert_eq!(
        containers_auth_key("docker.io/library"),
        "docker.io/library"
    );
    assert_eq!(
        containers_auth_key("http://127.0.0.1:5000"),
        "127.0.0.1:5000"
    );
}

/// Sets (`Some`) or removes (`None`) `auths[registry]` in the configuration file at `path`
/// (`concil login` / `logout`), keeping every other key, unknown ones included (their order
/// becomes alphabetical). The file is written whole to a temporary file of mode 0600 beside
/// it, synced, then renamed over it: it holds secrets, and a crash leaves the old or the new
/// one. Returns whether `auths[registry]` existed before.
pub(super) fn update_auths(
    path: &Path,
    registry: &str,
    credentials: Option<&Credentials>,
) -> Result<bool, ConfigError> {
    use base64::Engine as _;
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;

    let not_object = |key: &'static str| ConfigError::InvalidValue {
        path: path.to_owned(),
        key,
        reason: "must be a JSON object to hold credentials",
    };
    let mut document =
        read_json::<Value>(path, false)?.unwrap_or_else(|| Value::Object(serde_json::Map::new()));
    let auths = document
        .as_object_mut()
        .ok_or_else(|| not_object("(the file)"))?
        .entry("auths")
        .or_insert_with(|| Value::Object(serde_json::Map::new()));
    if auths.is_null() {
        *auths = Value::Object(serde_json::Map::new());
    }
    let auths = auths.as_object_mut().ok_or_else(|| not_object("auths"))?;
    let existed = match credentials {
        Some(credentials) => {
            let pair = format!("{}:{}", credentials.username, credentials.password);
            let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
            auths
                .insert(registry.to_owned(), Value::String(encoded))
                .is_some()
        }
        None => auths.remove(registry).is_some(),
    };
    if credentials.is_none() && !existed {
        return Ok(false);
    }
    let write_error = |source| ConfigError::Write {
        path: path.to_owned(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(write_error)?;
    }
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temporary)?;
        let mut bytes = serde_json::to_vec_pretty(&document).map_err(std::io::Error::other)?;
        bytes.push(b'\n');
        file.write_all(&bytes)?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)
    })();
    if let Err(source) = written {
        let _ = std::fs::remove_file(&temporary);
        return Err(write_error(source));
    }
    Ok(existed)
}

/// The helpers Docker's `config.json` names.
#[derive(Debug, Clone, Default)]
pub(super) struct CredentialHelpers {
    /// `credHelpers`, keyed by registry name as a reference has it.
    pub(super) per_registry: BTreeMap<String, String>,
    /// `credsStore`: for every registry without its own.
    pub(super) default: Option<String>,
}

impl CredentialHelpers {
    /// The helpers to ask for `registry`, in order: its own, then the default store.
    pub(super) fn for_registry(&self, registry: &str) -> Vec<&str> {
        self.per_registry
            .get(registry)
            .into_iter()
            .chain(self.default.as_ref())
            .map(String::as_str)
            .collect()
    }
}

/// Docker's `config.json` auths (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`),
/// keyed by registry name, and the credential helpers it names (`credHelpers`, `credsStore`;
/// run only when credentials are needed, see `helpers`). Entries without `auth` (identity
/// tokens) are skipped.
pub(super) fn load_docker_config(
    env: &Environment,
) -> Result<(BTreeMap<String, Credentials>, CredentialHelpers), ConfigError> {
    let path = match (env.var(ENV_DOCKER_CONFIG), &env.home) {
        (Some(dir), _) => env
            .expand_home(Path::new(dir), ENV_DOCKER_CONFIG)?
            .join(DOCKER_CONFIG_FILE_NAME),
        (None, Some(home)) => home.join(".docker").join(DOCKER_CONFIG_FILE_NAME),
        (None, None) => return Ok(Default::default()),
    };
    // Parsed as a bare Value so that type errors cannot quote a credential.
    let Some(document) = read_json::<Value>(&path, false)? else {
        return Ok(Default::default());
    };
    let origin = path.display().to_string();
    let helpers = CredentialHelpers {
        per_registry: document
            .get("credHelpers")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .filter_map(|(key, name)| Some((docker_auth_registry(key), name.as_str()?.to_owned())))
            .collect(),
        default: document
            .get("credsStore")
            .and_then(Value::as_str)
            .filter(|name| !name.is_empty())
            .map(str::to_owned),
    };
    let mut auths = BTreeMap::new();
    let Some(entries) = document.get("auths").and_then(Value::as_object) else {
        return Ok((auths, helpers));
    };
    for (key, entry) in entries {
        let identity_token = entry
            .get("identitytoken")
            .and_then(Value::as_str)
            .filter(|token| !token.is_empty());
        if let Some(token) = identity_token {
            let credentials = Credentials {
                username: IDENTITY_TOKEN_USER.to_owned(),
                password: token.to_owned(),
            };
            auths.insert(docker_auth_registry(key), credentials);
            continue;
        }
        if let Some(credentials) = auth_field(entry, &origin, key)? {
            auths.insert(docker_auth_registry(key), credentials);
        }
    }
    Ok((auths, helpers))
}

/// The credentials in an `auths` entry's `"auth"` (base64 `user:password`) of Docker's
/// `config.json` or containers' `auth.json`; `None` when it has none (or an empty one).
fn auth_field(entry: &Value, origin: &str, key: &str) -> Result<Option<Credentials>, ConfigError> {
    entry
        .get("auth")
        .and_then(Value::as_str)
        .filter(|auth| !auth.is_empty())
        .map(|encoded| decode_auth(encoded).map_err(|problem| auth_error(origin, key, problem)))
        .transpose()
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

    #[test]
    fn registries_ask_their_own_helper_first() {
        let helpers = CredentialHelpers {
            per_registry: BTreeMap::from([("r.example".to_owned(), "ecr-login".to_owned())]),
            default: Some("pass".to_owned()),
        };
        assert_eq!(helpers.for_registry("r.example"), ["ecr-login", "pass"]);
        assert_eq!(helpers.for_registry("other.example"), ["pass"]);
    }
}
