//! Docker credential helpers: the real `docker-credential-pass` (Debian's
//! golang-docker-credential-helpers, over `pass` and GnuPG) holds the registry's password,
//! named by `credsStore` or `credHelpers` in Docker's `config.json`; helpers that fail, hang or
//! hold nothing (scripts, for fault injection) give the named error or an anonymous pull; a
//! helper's output never reaches stderr.

use concil_test_support as support;

use std::error::Error;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};
use support::images::{Format, Images, PushedImage};
use support::pass::PassStore;
use support::pull::{config_for, expect_failure, run, ConcilHome};
use support::registry::{Auth, Registry, PASSWORD, REFRESH_TOKEN, USER};

type TestResult = Result<(), Box<dyn Error>>;

/// A registry that wants `USER`/`PASSWORD` (htpasswd) with an image, and a home whose own
/// configuration names no credentials.
fn guarded() -> Result<(Registry, PushedImage, ConcilHome), Box<dyn Error>> {
    guarded_by(Auth::Htpasswd)
}

/// [`guarded`] with another kind of registry authentication.
fn guarded_by(auth: Auth) -> Result<(Registry, PushedImage, ConcilHome), Box<dyn Error>> {
    let registry = Registry::builder().auth(auth).start();
    let image = Images::new(&registry)?.push_busybox("helpers/app", "v1", Format::Docker)?;
    let mut config = config_for(&registry);
    config
        .as_object_mut()
        .ok_or("config object")?
        .remove("auths");
    let home = ConcilHome::new(config);
    Ok((registry, image, home))
}

fn home_dir(home: &ConcilHome) -> PathBuf {
    home.config_path()
        .parent()
        .expect("the config file is in the home directory")
        .to_owned()
}

fn write_docker_config(home: &ConcilHome, config: Value) -> TestResult {
    let dir = home_dir(home).join(".docker");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("config.json"), serde_json::to_vec(&config)?)?;
    Ok(())
}

/// `concil pull --json IMAGE` in `home`, with `PATH` = `extra_path` first, then the test's own.
fn pull(
    home: &ConcilHome,
    image: &str,
    extra_path: Option<&Path>,
    verbose: bool,
) -> std::process::Output {
    let path = std::env::var("PATH").unwrap_or_default();
    let path = match extra_path {
        Some(extra) => format!("{}:{path}", extra.display()),
        None => path,
    };
    let mut command = home.pull_command(image, if verbose { &["-vv"] } else { &[] });
    command.env("PATH", path);
    run(&mut command)
}

/// A helper script `docker-credential-NAME` in a new directory (for `PATH`).
fn script_helper(name: &str, body: &str) -> Result<tempfile::TempDir, Box<dyn Error>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join(format!("docker-credential-{name}"));
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n"))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    Ok(dir)
}

#[test]
fn docker_credential_pass_holds_the_password() -> TestResult {
    let (registry, image, home) = guarded()?;
    let pass = PassStore::init(&home_dir(&home));
    pass.store(&registry.host(), USER, PASSWORD);

    for docker_config in [
        json!({"credsStore": "pass"}),
        json!({"credHelpers": {registry.host(): "pass"}, "credsStore": "no-such-store"}),
    ] {
        write_docker_config(&home, docker_config.clone())?;
        let output = pull(&home, &image.reference, None, true);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{docker_config}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "credentials for {} from docker-credential-pass",
                registry.host()
            )),
            "-v names the source: {stderr}"
        );
        assert!(
            !stderr.contains(PASSWORD),
            "the password is never shown: {stderr}"
        );
        std::fs::remove_dir_all(home.cache_dir())?;
    }
    drop(pass);
    Ok(())
}

#[test]
fn a_failing_helper_is_named_and_its_output_never_shown() -> TestResult {
    let (_registry, image, home) = guarded()?;
    let helper = script_helper(
        "broken",
        "echo 'Secret: hunter2-leaked'; echo hunter2-leaked >&2; exit 3",
    )?;
    write_docker_config(&home, json!({"credsStore": "broken"}))?;

    let output = pull(&home, &image.reference, Some(helper.path()), true);

    let failure = expect_failure(&output, "pull with a failing helper");
    assert_eq!(failure.code, Some(5), "{}", failure.stderr);
    assert!(
        failure.error.contains("docker-credential-broken"),
        "{}",
        failure.error
    );
    assert!(failure.error.contains("exit status 3"), "{}", failure.error);
    assert!(!failure.stderr.contains("hunter2"), "{}", failure.stderr);
    home.assert_no_layers();
    Ok(())
}

#[test]
fn a_hanging_helper_times_out() -> TestResult {
    let (registry, image, home) = guarded()?;
    let helper = script_helper("slow", "sleep 30")?;
    write_docker_config(&home, json!({"credHelpers": {registry.host(): "slow"}}))?;
    let mut config: Value = serde_json::from_slice(&std::fs::read(home.config_path())?)?;
    config["timeouts"] = json!({"idle": 1});
    home.rewrite_config(config);

    let started = std::time::Instant::now();
    let output = pull(&home, &image.reference, Some(helper.path()), false);

    let failure = expect_failure(&output, "pull with a hanging helper");
    assert!(started.elapsed() < std::time::Duration::from_secs(15));
    assert_eq!(failure.code, Some(5), "{}", failure.stderr);
    assert!(
        failure.error.contains("docker-credential-slow"),
        "{}",
        failure.error
    );
    assert!(
        failure.error.contains("no answer within 1 s"),
        "{}",
        failure.error
    );
    Ok(())
}

/// "credentials not found" is no error: the pull goes on without credentials, and the registry
/// refuses it (authentication, exit 5, "no credentials configured").
#[test]
fn a_helper_holding_nothing_means_anonymous() -> TestResult {
    let (_registry, image, home) = guarded()?;
    let helper = script_helper(
        "empty",
        "echo 'credentials not found in native keychain'; exit 1",
    )?;
    write_docker_config(&home, json!({"credsStore": "empty"}))?;

    let output = pull(&home, &image.reference, Some(helper.path()), false);

    let failure = expect_failure(&output, "pull without credentials");
    assert_eq!(failure.code, Some(5), "{}", failure.stderr);
    assert!(
        failure.error.contains("no credentials configured"),
        "{}",
        failure.error
    );
    Ok(())
}

/// concil's own `auths` come first: the helper is not even run.
#[test]
fn concil_auths_come_before_helpers() -> TestResult {
    let (registry, image, home) = guarded()?;
    let marker = tempfile::tempdir()?;
    let ran = marker.path().join("ran");
    let helper = script_helper("spy", &format!("touch {}; exit 3", ran.display()))?;
    write_docker_config(&home, json!({"credsStore": "spy"}))?;
    home.rewrite_config(config_for(&registry));

    let output = pull(&home, &image.reference, Some(helper.path()), false);

    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!ran.exists(), "the helper was not run");
    Ok(())
}

/// `skopeo login` writes containers' `auth.json`; concil reads it from `$REGISTRY_AUTH_FILE`,
/// else from `~/.config/containers/auth.json`, and a repository-scoped key serves only that
/// repository (and the ones under it).
#[test]
fn containers_auth_json_written_by_skopeo_login() -> TestResult {
    let (registry, image, home) = guarded()?;
    let auth_dir = tempfile::tempdir()?;
    let auth_file = auth_dir.path().join("auth.json");
    let login = Command::new("skopeo")
        .args(["login", "--tls-verify=false", "--authfile"])
        .arg(&auth_file)
        .args(["-u", USER, "-p", PASSWORD])
        .arg(registry.host())
        .output()?;
    assert!(
        login.status.success(),
        "skopeo login: {}",
        String::from_utf8_lossy(&login.stderr)
    );

    let mut command = home.pull_command(&image.reference, &["-vv"]);
    command.env("REGISTRY_AUTH_FILE", &auth_file);
    let output = run(&mut command);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "credentials for {} from containers' auth.json",
            registry.host()
        )),
        "{stderr}"
    );
    assert!(!stderr.contains(PASSWORD), "{stderr}");

    // The same file in $XDG_RUNTIME_DIR/containers/ (where podman login writes it).
    let runtime = tempfile::tempdir()?;
    std::fs::create_dir_all(runtime.path().join("containers"))?;
    std::fs::copy(&auth_file, runtime.path().join("containers/auth.json"))?;
    let _ = std::fs::remove_dir_all(home.cache_dir());
    let mut command = home.pull_command(&image.reference, &[]);
    command.env("XDG_RUNTIME_DIR", runtime.path());
    let output = run(&mut command);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    // The same file as ~/.config/containers/auth.json, its key narrowed to another repository:
    // it no longer serves helpers/app.
    let written: Value = serde_json::from_slice(&std::fs::read(&auth_file)?)?;
    let auth = written["auths"][registry.host()]["auth"].clone();
    let config_dir = home_dir(&home).join(".config/containers");
    std::fs::create_dir_all(&config_dir)?;
    for (key, works) in [
        (format!("{}/helpers", registry.host()), true),
        (format!("{}/helpers/app", registry.host()), true),
        (format!("{}/other", registry.host()), false),
    ] {
        std::fs::write(
            config_dir.join("auth.json"),
            json!({"auths": {&key: {"auth": auth}}}).to_string(),
        )?;
        let _ = std::fs::remove_dir_all(home.cache_dir());
        let output = run(&mut home.pull_command(&image.reference, &[]));
        assert_eq!(
            output.status.success(),
            works,
            "key {key}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// An identity token (Docker's `identitytoken`, a helper's user name `<token>`) is an OAuth2
/// refresh token: traded at the token realm for an access token (the in-suite token service
/// takes `grant_type=refresh_token`); a wrong one is refused (exit 5) without being shown.
#[test]
fn identity_tokens_are_traded_for_access_tokens() -> TestResult {
    let (registry, image, home) = guarded_by(Auth::Token {
        anonymous_pull: false,
        expires_in: 60,
    })?;

    write_docker_config(
        &home,
        json!({"auths": {registry.host(): {"identitytoken": REFRESH_TOKEN}}}),
    )?;
    let output = pull(&home, &image.reference, None, true);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(!stderr.contains(REFRESH_TOKEN), "never shown: {stderr}");

    let helper = script_helper(
        "tokens",
        &format!("echo '{{\"Username\":\"<token>\",\"Secret\":\"{REFRESH_TOKEN}\"}}'"),
    )?;
    write_docker_config(&home, json!({"credsStore": "tokens"}))?;
    std::fs::remove_dir_all(home.cache_dir())?;
    let output = pull(&home, &image.reference, Some(helper.path()), false);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    write_docker_config(
        &home,
        json!({"auths": {registry.host(): {"identitytoken": "not-the-refresh-token"}}}),
    )?;
    std::fs::remove_dir_all(home.cache_dir())?;
    let output = pull(&home, &image.reference, None, true);
    let failure = expect_failure(&output, "pull with a wrong identity token");
    assert_eq!(failure.code, Some(5), "{}", failure.stderr);
    assert!(
        !failure.stderr.contains("not-the-refresh-token"),
        "{}",
        failure.stderr
    );
    Ok(())
}
