//! Arbitrary bytes as Docker's `config.json` (first byte even) or containers' `auth.json`
//! (odd), loaded by `Config::load_from` from `$DOCKER_CONFIG` or `$REGISTRY_AUTH_FILE`;
//! the credentials they give are then looked up for the registries they name and others.
//! Credential helpers a `config.json` names are never run (they would be programs named by
//! the input): `auth.json` is read with no `config.json` beside it, so `resolve_credentials`
//! runs none.
#![no_main]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use concil::config::Environment;
use concil::Config;
use libfuzzer_sys::fuzz_target;

fn dir() -> &'static tempfile::TempDir {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary directory");
        std::fs::create_dir(dir.path().join("docker")).expect("a directory for config.json");
        std::fs::create_dir(dir.path().join("empty")).expect("an empty directory");
        dir
    })
}

/// The top-level keys of the input's `auths`, if it is JSON with one.
fn auth_keys(bytes: &[u8]) -> Vec<String> {
    serde_json::from_slice::<serde_json::Value>(bytes)
        .ok()
        .and_then(|document| {
            let auths = document.get("auths")?.as_object()?;
            Some(auths.keys().cloned().collect())
        })
        .unwrap_or_default()
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, file)) = data.split_first() else {
        return;
    };
    let dir = dir().path();
    let docker = mode % 2 == 0;
    let mut vars = BTreeMap::new();
    if docker {
        std::fs::write(dir.join("docker/config.json"), file).expect("writing config.json");
        vars.insert(
            "DOCKER_CONFIG".to_owned(),
            dir.join("docker").display().to_string(),
        );
    } else {
        std::fs::write(dir.join("auth.json"), file).expect("writing auth.json");
        vars.insert(
            "DOCKER_CONFIG".to_owned(),
            dir.join("empty").display().to_string(),
        );
        vars.insert(
            "REGISTRY_AUTH_FILE".to_owned(),
            dir.join("auth.json").display().to_string(),
        );
    }
    let env = Environment {
        home: Some(dir.join("home")),
        vars,
    };
    let config = match Config::load_from(None, &env) {
        Ok(config) => config,
        Err(error) => return drop(error.to_string()),
    };
    let mut names = auth_keys(file);
    names.extend(["docker.io", "registry.example:5000", "quay.io/team"].map(str::to_owned));
    for name in &names {
        let (registry, repository) = name.split_once('/').unwrap_or((name, "library/alpine"));
        if docker {
            let _ = config.credentials(registry, repository);
        } else {
            let _ = config
                .resolve_credentials(registry, repository)
                .map_err(|e| e.to_string());
        }
    }
});
