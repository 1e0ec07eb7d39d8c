//! Unit tests of the configuration: loading, defaults, credentials, endpoints, pinning.

use super::*;
use base64::Engine as _;
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
    assert_eq!(config.trust_pinning, TrustPinning::default());
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
            ..RemoteServer::default()
        })
    );
    assert_eq!(
        config.remote_servers.get("example.org"),
        Some(&RemoteServer {
            registry: None,
            notary: Some(url("https://notary.example.org/")),
            ..RemoteServer::default()
        })
    );
    assert_eq!(
        config.credentials("127.0.0.1:5000", "any/repo"),
        Some(credentials("u", "p"))
    );
    assert_eq!(
        config.trust_pinning.certs.for_name("example.org/app"),
        Some(&vec!["abc".to_owned()])
    );
    assert!(config.trust_pinning.disable_tofu);
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
    // An identity token is an OAuth2 refresh token, carried as Docker's helpers do.
    assert_eq!(
        config.credentials("helper.example", "x"),
        Some(credentials("<token>", "t"))
    );
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

#[test]
fn malformed_trust_pinning_names_the_key() {
    let (dir, env) = home();
    for (bad, key) in [
        (
            r#"{"trust_pinning": {"certs": {"a/b": "not a list"}}}"#,
            r#"trust_pinning.certs["a/b"]"#,
        ),
        (
            r#"{"trust_pinning": {"disable_tofu": "yes"}}"#,
            "trust_pinning.disable_tofu",
        ),
        (r#"{"trust_pinning": {"cert": {}}}"#, "trust_pinning.cert"),
        (
            r#"{"trust_pinning": {"ca": {"a/": 3}}}"#,
            r#"trust_pinning.ca["a/"]"#,
        ),
        (r#"{"trust_pinning": []}"#, "trust_pinning"),
    ] {
        let error = load(&dir, &env, bad).unwrap_err();
        assert!(
            matches!(&error, ConfigError::InvalidTrustPinning { key: found, .. } if found == key),
            "{bad}: {error}"
        );
        assert!(error.to_string().contains(key), "{error}");
    }
}
