//! `concil login` / `logout` against the real registry (htpasswd and token auth): credentials
//! are checked before anything is stored; they go to the configuration file (mode 0600, every
//! other key kept) or to the real docker-credential-pass when Docker's config.json names it; a
//! wrong password stores nothing and exits with the authentication status.

use concil_test_support as support;

use std::error::Error;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::{Output, Stdio};

use base64::Engine as _;
use serde_json::{json, Value};
use support::images::{Format, Images, PushedImage};
use support::pass::PassStore;
use support::pull::{config_for, expect_failure, run, ConcilHome};
use support::registry::{Auth, Registry, PASSWORD, USER};

type TestResult = Result<(), Box<dyn Error>>;

/// A registry wanting credentials, an image in it, and a home whose file has no credentials
/// for it but another key and an unknown one, which a login must keep.
fn guarded(auth: Auth) -> Result<(Registry, PushedImage, ConcilHome), Box<dyn Error>> {
    let registry = Registry::builder().auth(auth).start();
    let image = Images::new(&registry)?.push_busybox("login/app", "v1", Format::Docker)?;
    let mut config = config_for(&registry);
    config["auths"] = json!({"other.example": "b3RoZXI6c2VjcmV0"});
    config["x-site-note"] = json!({"kept": true});
    let home = ConcilHome::new(config);
    Ok((registry, image, home))
}

/// `concil login HOST -u USER --password-stdin` with `password` on stdin.
fn login(
    home: &ConcilHome,
    host: &str,
    user: &str,
    password: &str,
) -> Result<Output, Box<dyn Error>> {
    let config = home.config_path();
    let mut child = home
        .concil()
        .args(["login", host, "-u", user, "--password-stdin", "--config"])
        .arg(&config)
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .ok_or("stdin")?
        .write_all(format!("{password}\n").as_bytes())?;
    Ok(child.wait_with_output()?)
}

fn logout(home: &ConcilHome, host: &str) -> Output {
    run(home
        .concil()
        .args(["logout", host, "--config"])
        .arg(home.config_path())
        .env("PATH", std::env::var("PATH").unwrap_or_default()))
}

fn config_file(home: &ConcilHome) -> Result<Value, Box<dyn Error>> {
    Ok(serde_json::from_slice(&std::fs::read(home.config_path())?)?)
}

#[test]
fn login_checks_then_stores_in_the_configuration_file_and_logout_removes() -> TestResult {
    for auth in [
        Auth::Htpasswd,
        Auth::Token {
            anonymous_pull: false,
            expires_in: 60,
        },
    ] {
        let (registry, image, home) = guarded(auth)?;
        let host = registry.host();
        let before = std::fs::read(home.config_path())?;

        // A wrong password: refused by the registry, nothing stored.
        let output = login(&home, &host, USER, "wrong password")?;
        let failure = expect_failure(&output, "login with a wrong password");
        assert_eq!(failure.code, Some(5), "{auth:?}: {}", failure.stderr);
        assert!(
            !failure.stderr.contains("wrong password"),
            "{}",
            failure.stderr
        );
        assert_eq!(
            std::fs::read(home.config_path())?,
            before,
            "{auth:?}: nothing stored"
        );

        let output = login(&home, &host, USER, PASSWORD)?;
        assert!(
            output.status.success(),
            "{auth:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let file = config_file(&home)?;
        let stored = file["auths"][&host].as_str().ok_or("auths entry")?;
        let decoded = base64::engine::general_purpose::STANDARD.decode(stored)?;
        assert_eq!(decoded, format!("{USER}:{PASSWORD}").as_bytes());
        assert_eq!(
            file["auths"]["other.example"],
            json!("b3RoZXI6c2VjcmV0"),
            "kept"
        );
        assert_eq!(
            file["x-site-note"],
            json!({"kept": true}),
            "unknown keys kept"
        );
        let mode = std::fs::metadata(home.config_path())?.permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{auth:?}: the file holds a secret");

        let pulled = run(&mut home.pull_command(&image.reference, &[]));
        assert!(
            pulled.status.success(),
            "{auth:?}: {}",
            String::from_utf8_lossy(&pulled.stderr)
        );

        let output = logout(&home, &host);
        assert!(output.status.success());
        let file = config_file(&home)?;
        assert!(file["auths"].get(&host).is_none(), "{auth:?}: removed");
        assert_eq!(file["auths"]["other.example"], json!("b3RoZXI6c2VjcmV0"));
        std::fs::remove_dir_all(home.cache_dir())?;
        let failure = expect_failure(
            &run(&mut home.pull_command(&image.reference, &[])),
            "pull after logout",
        );
        assert_eq!(failure.code, Some(5), "{auth:?}: {}", failure.stderr);
    }
    Ok(())
}

#[test]
fn login_stores_in_the_credential_helper_docker_names() -> TestResult {
    let (registry, image, home) = guarded(Auth::Htpasswd)?;
    let host = registry.host();
    let home_dir = home.config_path().parent().ok_or("home")?.to_owned();
    // A pass store of our own, and Docker's config.json naming it.
    let pass = PassStore::init(&home_dir);
    std::fs::create_dir_all(home_dir.join(".docker"))?;
    std::fs::write(
        home_dir.join(".docker/config.json"),
        json!({"credsStore": "pass"}).to_string(),
    )?;
    let before = std::fs::read(home.config_path())?;

    let output = login(&home, &host, USER, PASSWORD)?;

    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("docker-credential-pass"), "{stdout}");
    assert_eq!(
        std::fs::read(home.config_path())?,
        before,
        "concil's file untouched"
    );
    let answer = pass.get(&host);
    assert_eq!(answer["Username"], json!(USER));
    assert_eq!(answer["Secret"], json!(PASSWORD));
    let pulled = run(home
        .pull_command(&image.reference, &[])
        .env("PATH", std::env::var("PATH").unwrap_or_default()));
    assert!(
        pulled.status.success(),
        "{}",
        String::from_utf8_lossy(&pulled.stderr)
    );

    let output = logout(&home, &host);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("removed"));
    Ok(())
}

#[test]
fn login_without_a_user_name_and_no_terminal_is_a_usage_error() -> TestResult {
    let (registry, _image, home) = guarded(Auth::Htpasswd)?;
    let output = run(home
        .concil()
        .args(["login", &registry.host(), "--password-stdin", "--config"])
        .arg(home.config_path()));
    let failure = expect_failure(&output, "login without -u");
    assert_eq!(failure.code, Some(2), "{}", failure.stderr);
    assert!(failure.error.contains("-u USER"), "{}", failure.error);
    Ok(())
}
