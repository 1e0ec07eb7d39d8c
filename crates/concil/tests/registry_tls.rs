//! Transport against a real `docker-registry`: HTTPS with a private CA given as `cafile`,
//! TLS errors, plain HTTP and the loopback fallback from HTTPS to HTTP.

use concil_test_support as support;

use concil::registry::{Client, RegistryError, TlsSettings};
use support::registry::{Format, Registry};
use url::Url;

fn https_url(registry: &Registry) -> Url {
    Url::parse(&format!("https://{}/", registry.host())).unwrap()
}

/// `GET /v2/` requests the registry answered.
fn pings(registry: &Registry) -> usize {
    registry
        .log_lines()
        .iter()
        .filter(|line| line.contains("http.request.uri=/v2/ "))
        .count()
}

#[test]
fn https_with_the_private_ca_as_cafile() {
    let registry = Registry::builder().tls().start();
    let image = registry.push_test_image("test/tls", "v1", Format::Oci, "tls");
    let tls = TlsSettings {
        ca_file: Some(registry.ca_file().to_owned()),
        ..TlsSettings::default()
    };
    let client = Client::new(registry.url(), "test/tls", None, &tls, false).unwrap();
    assert_eq!(registry.url().scheme(), "https");
    let manifest = client.manifest("v1").unwrap();
    assert_eq!(manifest.digest, image.manifest_digest);
    assert_eq!(
        client
            .blob_bytes(&support::digest(&image.config_digest), 1 << 20)
            .unwrap(),
        image.config
    );
}

#[test]
fn https_without_the_ca_is_a_tls_error_naming_the_host() {
    let registry = Registry::builder().tls().start();
    registry.push_test_image("test/tls", "v1", Format::Oci, "tls");
    // Even with the HTTP fallback allowed: an HTTPS server that we do not trust is not
    // downgraded to plain HTTP (that attempt fails and the TLS error is what is reported).
    for allow_http_fallback in [false, true] {
        let client = Client::new(
            registry.url(),
            "test/tls",
            None,
            &TlsSettings::default(),
            allow_http_fallback,
        )
        .unwrap();
        match client.manifest("v1") {
            Err(error @ RegistryError::Tls { .. }) => {
                let message = error.to_string();
                assert!(message.contains(&registry.host()), "{message}");
                // The cause is the error's source (printed once by the CLI's cause chain).
                let cause = std::error::Error::source(&error)
                    .map(|c| c.to_string())
                    .unwrap_or_default();
                assert!(
                    cause.to_lowercase().contains("certificate"),
                    "{message}: {cause}"
                );
            }
            other => panic!("expected a TLS error, got {other:?}"),
        }
    }
    // No manifest download reached the registry.
    let pulls = registry
        .log_lines()
        .into_iter()
        .filter(|line| line.contains("http.request.method=GET") && line.contains("/manifests/"))
        .count();
    assert_eq!(pulls, 0);
}

#[test]
fn a_cafile_with_another_ca_does_not_help() {
    let registry = Registry::builder().tls().start();
    let other = Registry::builder().tls().start();
    let tls = TlsSettings {
        ca_file: Some(other.ca_file().to_owned()),
        ..TlsSettings::default()
    };
    let client = Client::new(registry.url(), "test/tls", None, &tls, false).unwrap();
    assert!(matches!(
        client.manifest("v1"),
        Err(RegistryError::Tls { .. })
    ));
}

#[test]
fn plain_http_when_the_url_says_so() {
    let registry = Registry::plain();
    let image = registry.push_test_image("test/http", "v1", Format::DockerV2, "http");
    assert_eq!(registry.url().scheme(), "http");
    let client = Client::new(
        registry.url(),
        "test/http",
        None,
        &TlsSettings::default(),
        false,
    )
    .unwrap();
    assert_eq!(client.manifest("v1").unwrap().digest, image.manifest_digest);
}

#[test]
fn loopback_fallback_from_https_to_http() {
    let registry = Registry::plain();
    let image = registry.push_test_image("test/fallback", "v1", Format::DockerV2, "fallback");

    // Not allowed: the TLS handshake with a plain-HTTP server fails.
    let strict = Client::new(
        https_url(&registry),
        "test/fallback",
        None,
        &TlsSettings::default(),
        false,
    )
    .unwrap();
    assert!(matches!(
        strict.manifest("v1"),
        Err(RegistryError::Tls { .. })
    ));

    let pings_before = pings(&registry);
    // Allowed: HTTPS fails to handshake, plain HTTP works, and the client stays on it.
    let lenient = Client::new(
        https_url(&registry),
        "test/fallback",
        None,
        &TlsSettings::default(),
        true,
    )
    .unwrap();
    assert_eq!(
        lenient.manifest("v1").unwrap().digest,
        image.manifest_digest
    );
    assert_eq!(
        lenient.manifest(&image.manifest_digest).unwrap().bytes,
        image.manifest
    );
    assert_eq!(
        pings(&registry) - pings_before,
        1,
        "one ping for the whole client"
    );
}

#[test]
fn nothing_listening_is_a_connection_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
    let client = Client::new(url, "test/none", None, &TlsSettings::default(), false).unwrap();
    match client.manifest("v1") {
        Err(error @ RegistryError::Connection { .. }) => {
            assert!(
                error.to_string().contains(&format!("127.0.0.1:{port}")),
                "{error}"
            );
        }
        other => panic!("expected a connection error, got {other:?}"),
    }
}
