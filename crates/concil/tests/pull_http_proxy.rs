//! `concil pull` through a real HTTP proxy (tinyproxy) chosen by the environment as curl
//! chooses it: `https_proxy`/`HTTPS_PROXY` for an https:// registry, `http_proxy`/`HTTP_PROXY`
//! for an http:// one, `no_proxy`/`NO_PROXY` to bypass it; credentials in the proxy URL are
//! sent and never shown, and a proxy refusing them (`407`; tinyproxy answers a wrong password
//! `401`) is a network error (status 7) that names the proxy. tinyproxy's log tells whether a
//! pull went through it.
//!
//! Every `concil` run gets a clean environment ([`ConcilHome::concil`] clears it): no proxy
//! variable reaches it but those a case sets.

use concil_test_support as support;

use std::error::Error;
use std::process::Output;

use base64::Engine as _;
use support::http_proxy::HttpProxy;
use support::images::{Format, Images, PushedImage};
use support::pull::{config_for, expect_failure, run, ConcilHome, Pulled};
use support::registry::Registry;

type TestResult = Result<(), Box<dyn Error>>;

/// Every variable curl (and ureq) read a proxy setting from.
const PROXY_VARIABLES: [&str; 8] = [
    "ALL_PROXY",
    "all_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "NO_PROXY",
    "no_proxy",
];

/// The proxy's user and password for the basic-auth cases.
const PROXY_USER: &str = "proxy-user";
const PROXY_PASSWORD: &str = "secret-pw";
const WRONG_PASSWORD: &str = "wrong-pw";

/// `concil pull --json <extra…> <image>` with `home`'s configuration and, of the proxy
/// variables, only `proxy_env`; run to its end.
fn pull_with_env(
    home: &ConcilHome,
    image: &str,
    extra: &[&str],
    proxy_env: &[(&str, &str)],
) -> Output {
    let mut command = home.pull_command(image, extra);
    for name in PROXY_VARIABLES {
        command.env_remove(name);
    }
    for (name, value) in proxy_env {
        assert!(PROXY_VARIABLES.contains(name), "{name} is a proxy variable");
        command.env(name, value);
    }
    run(&mut command)
}

/// The pull succeeded and left `image` in `home`'s cache, each layer with its tar's content.
fn assert_pulled(home: &ConcilHome, image: &PushedImage, output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what}: concil pull failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "{what}: concil pull --json printed no JSON ({e}):\n{}",
            String::from_utf8_lossy(&output.stdout)
        )
    });
    assert_eq!(
        Pulled::from_json(&json, &image.reference),
        Pulled::expected(image, "linux/amd64", home),
        "{what}"
    );
    home.assert_holds_image(image);
}

/// Neither the password nor the `Proxy-Authorization` value made of it is in `output`.
fn assert_no_proxy_secret(output: &Output, password: &str, what: &str) {
    let pair = base64::engine::general_purpose::STANDARD.encode(format!("{PROXY_USER}:{password}"));
    for (stream, bytes) in [("stdout", &output.stdout), ("stderr", &output.stderr)] {
        let text = String::from_utf8_lossy(bytes);
        for secret in [password, pair.as_str()] {
            assert!(
                !text.contains(secret),
                "{what}: the proxy's secret {secret:?} on {stream}:\n{text}"
            );
        }
    }
}

/// The proxy saw no connection at all (its log shows no client).
fn assert_proxy_unused(proxy: &HttpProxy, what: &str) {
    assert_eq!(
        proxy.connections(),
        0,
        "{what}: the pull went through the proxy; its log:\n{}",
        proxy.log()
    );
    assert_eq!(proxy.requests(), Vec::new(), "{what}");
}

/// An HTTPS registry behind `HTTPS_PROXY`: the pull tunnels through it (`CONNECT` to the
/// registry's port; the proxy sees no URL, TLS runs end to end with the test CA).
#[test]
fn https_registry_through_https_proxy() -> TestResult {
    let registry = Registry::builder().tls().start();
    let images = Images::new(&registry)?;
    let image = images.push_busybox("proxy/https", "v1", Format::Docker)?;
    let proxy = HttpProxy::start();
    let home = ConcilHome::new(config_for(&registry));

    let output = pull_with_env(
        &home,
        &image.reference,
        &[],
        &[("HTTPS_PROXY", &proxy.url())],
    );

    assert_pulled(&home, &image, &output, "HTTPS_PROXY");
    assert!(
        proxy.count_connects_to(&registry.host()) >= 1,
        "a CONNECT to {} in the proxy's log:\n{}",
        registry.host(),
        proxy.log()
    );
    let requests = proxy.requests();
    assert!(
        requests
            .iter()
            .all(|request| request.is_connect_to(&registry.host())),
        "only CONNECTs to the registry: {requests:?}"
    );
    Ok(())
}

/// A plain-HTTP registry behind `HTTP_PROXY`, and behind `http_proxy`: every request the proxy
/// sees is for the registry, tunnelled (`CONNECT`) or forwarded (`GET http://…`).
#[test]
fn plain_registry_through_http_proxy() -> TestResult {
    let registry = Registry::plain();
    let images = Images::new(&registry)?;
    let image = images.push_busybox("proxy/plain", "v1", Format::Docker)?;

    for variable in ["HTTP_PROXY", "http_proxy"] {
        let proxy = HttpProxy::start();
        let home = ConcilHome::new(config_for(&registry));

        let output = pull_with_env(&home, &image.reference, &[], &[(variable, &proxy.url())]);

        assert_pulled(&home, &image, &output, variable);
        let requests = proxy.requests();
        assert!(
            !requests.is_empty(),
            "{variable}: the pull went through the proxy; its log:\n{}",
            proxy.log()
        );
        assert!(
            requests
                .iter()
                .all(|request| request.is_connect_to(&registry.host())
                    || request.is_forwarded_get_to(&registry.host())),
            "{variable}: every request is for the registry: {requests:?}"
        );
    }
    Ok(())
}

/// `NO_PROXY=127.0.0.1` (and `no_proxy`) with a proxy set: the registry is reached directly.
#[test]
fn no_proxy_bypasses_the_proxy() -> TestResult {
    let registry = Registry::plain();
    let images = Images::new(&registry)?;
    let image = images.push_busybox("proxy/bypassed", "v1", Format::Docker)?;

    for (proxy_variable, no_proxy_variable) in
        [("HTTP_PROXY", "NO_PROXY"), ("http_proxy", "no_proxy")]
    {
        let what = format!("{proxy_variable} with {no_proxy_variable}=127.0.0.1");
        let proxy = HttpProxy::start();
        let home = ConcilHome::new(config_for(&registry));

        let output = pull_with_env(
            &home,
            &image.reference,
            &[],
            &[
                (proxy_variable, &proxy.url()),
                (no_proxy_variable, "127.0.0.1"),
            ],
        );

        assert_pulled(&home, &image, &output, &what);
        assert_proxy_unused(&proxy, &what);
    }
    Ok(())
}

/// curl's rule: `HTTPS_PROXY` is for https:// URLs only. A plain-HTTP registry with only
/// `HTTPS_PROXY` (or `https_proxy`) set is reached directly.
#[test]
fn https_proxy_is_not_used_for_a_plain_http_registry() -> TestResult {
    let registry = Registry::plain();
    let images = Images::new(&registry)?;
    let image = images.push_busybox("proxy/https-only", "v1", Format::Docker)?;

    for variable in ["HTTPS_PROXY", "https_proxy"] {
        let what = format!("http:// registry with only {variable}");
        let proxy = HttpProxy::start();
        let home = ConcilHome::new(config_for(&registry));

        let output = pull_with_env(&home, &image.reference, &[], &[(variable, &proxy.url())]);

        assert_pulled(&home, &image, &output, &what);
        assert_proxy_unused(&proxy, &what);
    }
    Ok(())
}

/// A proxy asking for basic auth, given `http://user:password@…`: the pull goes through it, and
/// even the debug log (`-vv`) never shows the password.
#[test]
fn proxy_credentials_from_the_url_are_sent_and_never_shown() -> TestResult {
    let registry = Registry::builder().tls().start();
    let images = Images::new(&registry)?;
    let image = images.push_busybox("proxy/auth", "v1", Format::Docker)?;
    let proxy = HttpProxy::with_basic_auth(PROXY_USER, PROXY_PASSWORD);

    for extra in [&[][..], &["-vv"][..]] {
        let what = format!("HTTPS_PROXY with credentials, {extra:?}");
        let home = ConcilHome::new(config_for(&registry));
        let before = proxy.count_connects_to(&registry.host());

        let output = pull_with_env(
            &home,
            &image.reference,
            extra,
            &[("HTTPS_PROXY", &proxy.url_with_credentials())],
        );

        assert_pulled(&home, &image, &output, &what);
        assert!(
            proxy.count_connects_to(&registry.host()) > before,
            "{what}: a CONNECT to {} in the proxy's log:\n{}",
            registry.host(),
            proxy.log()
        );
        assert_no_proxy_secret(&output, PROXY_PASSWORD, &what);
    }
    Ok(())
}

/// The same proxy given no credentials, or a wrong password, refuses the tunnel: concil fails
/// with the network status (7), its error names the proxy (`127.0.0.1:PORT`, without the
/// URL's user or password) and the refusal, and no password appears on stdout or stderr, with
/// `-vv` neither. tinyproxy answers a missing `Proxy-Authorization` with `407 Proxy
/// Authentication Required` and a wrong one with `401 Unauthorized`: the error must show the
/// refusal the proxy gave.
#[test]
fn proxy_refusing_the_credentials_is_a_network_error_naming_the_proxy() -> TestResult {
    let registry = Registry::builder().tls().start();
    let images = Images::new(&registry)?;
    let image = images.push_busybox("proxy/refused", "v1", Format::Docker)?;
    let proxy = HttpProxy::with_basic_auth(PROXY_USER, PROXY_PASSWORD);

    // (case, proxy URL, the password given, what the error must say: one of these)
    let cases = [
        (
            "without credentials",
            proxy.url(),
            PROXY_PASSWORD,
            &["407", "proxy authentication"][..],
        ),
        (
            "with a wrong password",
            proxy.url_with(PROXY_USER, WRONG_PASSWORD),
            WRONG_PASSWORD,
            &["401"][..],
        ),
    ];
    for (how, proxy_url, password, refusal) in &cases {
        for extra in [&[][..], &["-vv"][..]] {
            let what = format!("HTTPS_PROXY {how}, {extra:?}");
            let home = ConcilHome::new(config_for(&registry));
            let before = proxy.count_connects_to(&registry.host());

            let output = pull_with_env(
                &home,
                &image.reference,
                extra,
                &[("HTTPS_PROXY", proxy_url)],
            );

            assert_no_proxy_secret(&output, password, &what);
            assert_no_proxy_secret(&output, PROXY_PASSWORD, &what);
            let failure = expect_failure(&output, &what);
            let error = &failure.error;
            assert_eq!(
                failure.code,
                Some(7),
                "{what}: the network status; stderr:\n{}",
                failure.stderr
            );
            assert!(
                error.contains(&proxy.host()),
                "{what}: names the proxy {}; stderr:\n{}",
                proxy.host(),
                failure.stderr
            );
            let lower = error.to_lowercase();
            assert!(
                refusal.iter().any(|words| lower.contains(words)),
                "{what}: says how the proxy refused ({refusal:?}); stderr:\n{}",
                failure.stderr
            );
            assert!(
                !error.contains(PROXY_USER) && !error.contains(&format!("@{}", proxy.host())),
                "{what}: the error shows no userinfo of the proxy URL: {error}"
            );
            assert!(
                proxy.count_connects_to(&registry.host()) > before,
                "{what}: the proxy was asked; its log:\n{}",
                proxy.log()
            );
            home.assert_no_layers();
        }
    }
    Ok(())
}
