//! Arbitrary bytes as concil's configuration file (`Config::load_from` with the file named,
//! no environment variables, a home directory without Docker's or containers' files); a
//! configuration that loads is then asked what a pull asks of it, for the registries it
//! names and a few others.
#![no_main]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use concil::config::Environment;
use concil::Config;
use libfuzzer_sys::fuzz_target;

fn dir() -> &'static tempfile::TempDir {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("a temporary directory"))
}

fuzz_target!(|data: &[u8]| {
    let path = dir().path().join("config.json");
    std::fs::write(&path, data).expect("writing the configuration file");
    let env = Environment {
        home: Some(dir().path().join("home")),
        vars: BTreeMap::new(),
    };
    let config = match Config::load_from(Some(&path), &env) {
        Ok(config) => config,
        Err(error) => return drop(error.to_string()),
    };
    let mut registries: Vec<String> = config.remote_servers.keys().cloned().collect();
    registries.extend(
        [
            "docker.io",
            "registry.example:5000",
            "[::1]:5000",
            "localhost",
        ]
        .map(str::to_owned),
    );
    for registry in &registries {
        let _ = config
            .registry_endpoint(registry)
            .map_err(|e| e.to_string());
        let _ = config.notary_url(registry).map_err(|e| e.to_string());
        let _ = config.registry_mirrors(registry);
        let _: PathBuf = config.notary_trust_dir();
        for repository in ["library/alpine", "team/app/sub"] {
            let _ = config.credentials(registry, repository);
            let _ = config.content_trust_for(registry, repository);
            if let Some(identity) = config
                .cosign_identities
                .for_repository(registry, repository)
            {
                let _ = identity.subject.matches(
                    "https://github.com/team/app/.github/workflows/release.yml@refs/heads/main",
                );
                let _ = identity
                    .issuer
                    .matches("https://token.actions.githubusercontent.com");
            }
            let _ = config
                .trust_pinning
                .certs
                .for_repository(registry, repository);
            let _ = config.trust_pinning.ca.for_repository(registry, repository);
        }
    }
});
