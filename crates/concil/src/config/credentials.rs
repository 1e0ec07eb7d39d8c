//! Where credentials come from: concil's `auths` (file, then `CONCIL_<NAME>_REPO` and
//! `_AUTH` environment pairs), then Docker's `config.json`.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine as _;
use serde_json::Value;

use super::environment::Environment;
use super::error::{AuthProblem, ConfigError};
use super::file::read_json;
use super::helpers::CredentialHelpers;
use super::CONFIG_FILE_NAME;
use crate::reference::DOCKER_HUB;

/// Docker's names for Docker Hub in its `config.json` (`https://index.docker.io/v1/` usually).
const DOCKER_HUB_AUTH_HOSTS: [&str; 3] = ["index.docker.io", "registry-1.docker.io", DOCKER_HUB];
const ENV_DOCKER_CONFIG: &str = "DOCKER_CONFIG";
/// Auth pairs from the environment: `CONCIL_<NAME>_REPO` holds the key, `CONCIL_<NAME>_AUTH`
/// the base64 `user:password`.
const ENV_AUTH_PREFIX: &str = "CONCIL_";
const ENV_AUTH_REPO_SUFFIX: &str = "_REPO";
const ENV_AUTH_AUTH_SUFFIX: &str = "_AUTH";

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
            .join(CONFIG_FILE_NAME),
        (None, Some(home)) => home.join(".docker").join(CONFIG_FILE_NAME),
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
    Ok((auths, helpers))
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
