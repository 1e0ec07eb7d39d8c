//! `concil pull` over every transport and auth scheme the real registry offers: plain HTTP
//! (configured, and the loopback fallback), HTTPS trusting the test CA through `cafile`,
//! htpasswd basic auth and bearer tokens; and the errors when credentials or trust are missing
//! or wrong, which must never show a password.

use concil_test_support as support;

use std::error::Error;

use base64::Engine as _;
use serde_json::json;
use support::images::{Format, Images, PushedImage};
use support::pull::{basic_auth, config_for, ConcilHome, Failure, Pulled};
use support::registry::{Auth, Registry, PASSWORD, USER};

type TestResult = Result<(), Box<dyn Error>>;

/// Pulls `image` with `home`'s configuration through the CLI and checks all it must leave.
fn assert_cli_pull_works(home: &ConcilHome, image: &PushedImage) {
    let output = home.pull_json(&image.reference, &[]);
    assert_eq!(
        Pulled::from_json(&output, &image.reference),
        Pulled::expected(image, "linux/amd64", home)
    );
    home.assert_holds_image(image);
}

/// A failed pull shows no secret on stderr: neither password, nor their base64 forms.
fn assert_no_secret(failure: &Failure, passwords: &[&str]) {
    for password in passwords {
        let pair = basic_auth(USER, password);
        let alone = base64::engine::general_purpose::STANDARD.encode(password);
        for secret in [*password, &pair, &alone] {
            assert!(
                !failure.stderr.contains(secret),
                "a secret on stderr:\n{}",
                failure.stderr
            );
        }
    }
}

#[test]
fn pulls_over_plain_http_from_remote_servers() -> TestResult {
    let registry = Registry::plain();
    let images = Images::new(&registry)?;
    let image = images.push_busybox("transport/plain", "v1", Format::Docker)?;
    let config = config_for(&registry);
    assert!(config["remote_servers"][registry.host()]["registry"]
        .as_str()
        .is_some_and(|url| url.starts_with("http://")));
    assert_cli_pull_works(&ConcilHome::new(config), &image);
    Ok(())
}

/// Without `remote_servers`, a loopback registry is tried with HTTPS and then plain HTTP, as
/// Docker does.
#[test]
fn pulls_from_loopback_registry_without_remote_servers() -> TestResult {
    let registry = Registry::plain();
    let images = Images::new(&registry)?;
    let image = images.push_busybox("transport/fallback", "v1", Format::Oci)?;
    let home = ConcilHome::new(json!({"disable_content_trust": true}));
    let pulled = home
        .store(&image.reference)
        .pull(&concil::store::Platform::host())?;
    assert_eq!(
        Pulled::from_library(&pulled),
        Pulled::expected(&image, "linux/amd64", &home)
    );
    home.assert_holds_image(&image);
    Ok(())
}

#[test]
fn pulls_over_https_trusting_cafile() -> TestResult {
    let registry = Registry::builder().tls().start();
    let images = Images::new(&registry)?;
    let image = images.push_busybox("transport/tls", "v1", Format::Docker)?;
    let config = config_for(&registry);
    assert_eq!(config["cafile"], json!(registry.ca_file()));
    assert_cli_pull_works(&ConcilHome::new(config), &image);
    Ok(())
}

/// The test CA is no public one: without `cafile` the handshake must fail, and say so.
#[test]
fn https_without_cafile_fails_on_the_certificate() -> TestResult {
    let registry = Registry::builder().tls().start();
    let images = Images::new(&registry)?;
    let image = images.push_busybox("transport/untrusted", "v1", Format::Docker)?;
    let mut config = config_for(&registry);
    config
        .as_object_mut()
        .and_then(|object| object.remove("cafile"))
        .expect("an HTTPS config has a cafile");
    let home = ConcilHome::new(config);

    let failure = home.pull_failure(&image.reference, &[]);
    let error = &failure.error;

    assert!(error.contains("TLS"), "a TLS error: {error}");
    // Why, once: each cause appears once in the chain the CLI prints.
    assert_eq!(error.matches("UnknownIssuer").count(), 1, "{error}");
    assert!(
        error.contains(&registry.host()) || error.contains("127.0.0.1"),
        "names the host: {error}"
    );
    home.assert_no_layers();
    assert!(home.listing("manifest").is_empty());
    Ok(())
}

#[test]
fn htpasswd_registry_with_right_credentials() -> TestResult {
    let registry = Registry::builder().auth(Auth::Htpasswd).start();
    let images = Images::new(&registry)?;
    let image = images.push_busybox("transport/basic", "v1", Format::Docker)?;
    assert_cli_pull_works(&ConcilHome::new(config_for(&registry)), &image);
    Ok(())
}

#[test]
fn htpasswd_registry_refuses_wrong_credentials() -> TestResult {
    const WRONG: &str = "not the password";
    let registry = Registry::builder().auth(Auth::Htpasswd).start();
    let images = Images::new(&registry)?;
    let image = images.push_busybox("transport/basic-wrong", "v1", Format::Docker)?;
    let mut config = config_for(&registry);
    config["auths"] = json!({registry.host(): basic_auth(USER, WRONG)});
    let home = ConcilHome::new(config);

    let failure = home.pull_failure(&image.reference, &[]);
    let error = &failure.error;

    assert!(error.contains("unauthorized"), "{error}");
    assert!(error.contains("credentials were sent"), "{error}");
    assert!(
        error.contains("transport/basic-wrong"),
        "names the repository: {error}"
    );
    assert_no_secret(&failure, &[WRONG, PASSWORD]);
    home.assert_no_layers();
    Ok(())
}

#[test]
fn htpasswd_registry_refuses_missing_credentials() -> TestResult {
    let registry = Registry::builder().auth(Auth::Htpasswd).start();
    let images = Images::new(&registry)?;
    let image = images.push_busybox("transport/basic-none", "v1", Format::Docker)?;
    let mut config = config_for(&registry);
    config
        .as_object_mut()
        .and_then(|object| object.remove("auths"))
        .expect("an htpasswd config has auths");
    let home = ConcilHome::new(config);

    let failure = home.pull_failure(&image.reference, &[]);
    let error = &failure.error;

    assert!(error.contains("unauthorized"), "{error}");
    assert!(error.contains("no credentials configured"), "{error}");
    assert_no_secret(&failure, &[PASSWORD]);
    home.assert_no_layers();
    Ok(())
}

/// The real challenge flow: 401 with a `Bearer` challenge, a token from the issuer for the
/// configured credentials, then the pull with it.
#[test]
fn token_registry_with_credentials() -> TestResult {
    let registry = Registry::builder()
        .auth(Auth::Token {
            anonymous_pull: false,
            expires_in: 300,
        })
        .start();
    let images = Images::new(&registry)?;
    let image = images.push_busybox("transport/token", "v1", Format::Oci)?;
    let requests_before = registry.token_requests();
    assert_cli_pull_works(&ConcilHome::new(config_for(&registry)), &image);
    assert!(
        registry.token_requests() > requests_before,
        "the pull asked the issuer for a token"
    );
    Ok(())
}

#[test]
fn token_registry_refuses_missing_credentials() -> TestResult {
    let registry = Registry::builder()
        .auth(Auth::Token {
            anonymous_pull: false,
            expires_in: 300,
        })
        .start();
    let images = Images::new(&registry)?;
    let image = images.push_busybox("transport/token-none", "v1", Format::Oci)?;
    let mut config = config_for(&registry);
    config
        .as_object_mut()
        .and_then(|object| object.remove("auths"))
        .expect("a token config has auths");
    let home = ConcilHome::new(config);

    let failure = home.pull_failure(&image.reference, &[]);
    let error = &failure.error;

    assert!(error.contains("unauthorized"), "{error}");
    assert_no_secret(&failure, &[PASSWORD]);
    home.assert_no_layers();
    Ok(())
}
