//! Auth against a real `docker-registry`: htpasswd basic auth, and bearer tokens from the
//! registry's `auth: token:` with the in-suite token issuer; blob redirects keep credentials
//! at home.

use concil_test_support as support;

use std::io::Read;
use std::time::Duration;

use concil::config::Credentials;
use concil::registry::{Client, RegistryError, TlsSettings};
use support::registry::{Auth, Format, Registry, PASSWORD, USER};

fn client(registry: &Registry, repository: &str, credentials: Option<Credentials>) -> Client {
    Client::new(
        registry.url(),
        repository,
        credentials,
        &TlsSettings::default(),
        false,
    )
    .unwrap()
}

fn wrong_credentials() -> Credentials {
    Credentials {
        username: USER.to_owned(),
        password: "wrong-password-123".to_owned(),
    }
}

/// Asserts an Unauthorized error naming registry and repository and never a password.
fn assert_unauthorized(
    result: Result<impl std::fmt::Debug, RegistryError>,
    registry: &Registry,
    credentials_sent: bool,
) {
    match result {
        Err(error @ RegistryError::Unauthorized { .. }) => {
            let message = error.to_string();
            let debug = format!("{error:?}");
            assert!(message.contains(&registry.host()), "{message}");
            assert!(message.contains("test/private"), "{message}");
            for shown in [&message, &debug] {
                assert!(
                    !shown.contains(PASSWORD) && !shown.contains("wrong-password-123"),
                    "{shown}"
                );
            }
            let RegistryError::Unauthorized {
                credentials_sent: sent,
                ..
            } = error
            else {
                unreachable!()
            };
            assert_eq!(sent, credentials_sent, "{message}");
        }
        other => panic!("expected Unauthorized, got {other:?}"),
    }
}

#[test]
fn htpasswd_right_wrong_and_missing_credentials() {
    let registry = Registry::builder().auth(Auth::Htpasswd).start();
    let image = registry.push_test_image("test/private", "v1", Format::DockerV2, "basic");

    let good = client(&registry, "test/private", registry.credentials());
    assert_eq!(good.manifest("v1").unwrap().digest, image.manifest_digest);
    let mut layer = Vec::new();
    good.blob(&support::digest(&image.layer_digest))
        .unwrap()
        .read_to_end(&mut layer)
        .unwrap();
    assert_eq!(layer, image.layer);

    assert_unauthorized(
        client(&registry, "test/private", Some(wrong_credentials())).manifest("v1"),
        &registry,
        true,
    );
    assert_unauthorized(
        client(&registry, "test/private", None).manifest("v1"),
        &registry,
        false,
    );
}

#[test]
fn bearer_token_with_credentials_and_reused() {
    let registry = Registry::builder()
        .auth(Auth::Token {
            anonymous_pull: false,
            expires_in: 300,
        })
        .start();
    let image = registry.push_test_image("test/private", "v1", Format::Oci, "bearer");
    let pushing = registry.token_requests();

    let client = client(&registry, "test/private", registry.credentials());
    assert_eq!(client.manifest("v1").unwrap().digest, image.manifest_digest);
    assert_eq!(
        client.manifest(&image.manifest_digest).unwrap().bytes,
        image.manifest
    );
    assert_eq!(
        client
            .blob_bytes(&support::digest(&image.config_digest), 1 << 20)
            .unwrap(),
        image.config
    );
    // Clones share the token, also when they start in parallel.
    std::thread::scope(|scope| {
        for _ in 0..4 {
            let client = client.clone();
            let image = &image;
            scope.spawn(move || {
                let mut layer = Vec::new();
                client
                    .blob(&support::digest(&image.layer_digest))
                    .unwrap()
                    .read_to_end(&mut layer)
                    .unwrap();
                assert_eq!(layer, image.layer);
            });
        }
    });
    assert_eq!(
        registry.token_requests() - pushing,
        1,
        "one token for everything"
    );
    assert_eq!(registry.count_blob_fetches(&image.layer_digest), 4);
}

#[test]
fn parallel_first_requests_share_one_token() {
    let registry = Registry::builder()
        .auth(Auth::Token {
            anonymous_pull: false,
            expires_in: 300,
        })
        .start();
    let image = registry.push_test_image("test/private", "v1", Format::Oci, "parallel");
    let pushing = registry.token_requests();
    let client = client(&registry, "test/private", registry.credentials());
    std::thread::scope(|scope| {
        for _ in 0..4 {
            let client = client.clone();
            let digest = &image.manifest_digest;
            scope.spawn(move || assert_eq!(&client.manifest(digest).unwrap().digest, digest));
        }
    });
    assert_eq!(registry.token_requests() - pushing, 1);
}

#[test]
fn bearer_token_is_renewed_after_it_expires() {
    // expires_in 6 s: usable for 1 s (a token is dropped 5 s before it expires).
    let registry = Registry::builder()
        .auth(Auth::Token {
            anonymous_pull: false,
            expires_in: 6,
        })
        .start();
    let image = registry.push_test_image("test/private", "v1", Format::Oci, "expiry");
    let pushing = registry.token_requests();
    let client = client(&registry, "test/private", registry.credentials());
    client.manifest("v1").unwrap();
    client.manifest("v1").unwrap();
    assert_eq!(registry.token_requests() - pushing, 1);
    std::thread::sleep(Duration::from_millis(1300));
    assert_eq!(client.manifest("v1").unwrap().digest, image.manifest_digest);
    assert_eq!(registry.token_requests() - pushing, 2);
}

#[test]
fn bearer_token_anonymous_denied_and_wrong_credentials() {
    let registry = Registry::builder()
        .auth(Auth::Token {
            anonymous_pull: false,
            expires_in: 300,
        })
        .start();
    registry.push_test_image("test/private", "v1", Format::Oci, "denied");
    assert_unauthorized(
        client(&registry, "test/private", None).manifest("v1"),
        &registry,
        false,
    );
    assert_unauthorized(
        client(&registry, "test/private", Some(wrong_credentials())).manifest("v1"),
        &registry,
        true,
    );
    // The issuer refused; the registry let no manifest download through.
    let pulls = registry
        .log_lines()
        .into_iter()
        .filter(|line| line.contains("http.request.method=GET") && line.contains("/manifests/"))
        .count();
    assert_eq!(pulls, 0);
}

#[test]
fn bearer_token_anonymous_pull() {
    let registry = Registry::builder()
        .auth(Auth::Token {
            anonymous_pull: true,
            expires_in: 300,
        })
        .start();
    let image = registry.push_test_image("test/public", "v1", Format::DockerV2, "public");
    let client = client(&registry, "test/public", None);
    assert_eq!(client.manifest("v1").unwrap().digest, image.manifest_digest);
}

#[test]
fn blob_redirects_to_storage_without_authorization() {
    let registry = Registry::builder()
        .auth(Auth::Htpasswd)
        .redirect_blobs()
        .start();
    let image = registry.push_test_image("test/private", "v1", Format::Oci, "redirected");
    let client = client(&registry, "test/private", registry.credentials());

    let mut reader = client.blob(&support::digest(&image.layer_digest)).unwrap();
    let storage = registry.blob_storage().unwrap();
    assert!(
        !reader.url().contains(&registry.host()),
        "served from storage: {}",
        reader.url()
    );
    let mut layer = Vec::new();
    reader.read_to_end(&mut layer).unwrap();
    assert_eq!(layer, image.layer);
    assert_eq!(
        client
            .blob_bytes(&support::digest(&image.config_digest), 1 << 20)
            .unwrap(),
        image.config
    );

    let requests = storage.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert!(
        requests.iter().all(|(_, authorization)| !authorization),
        "{requests:?}"
    );
    // The registry itself saw the credentials (it answered 307, not 401).
    assert_eq!(registry.count_blob_fetches(&image.layer_digest), 1);
}

#[test]
fn a_refused_token_is_replaced_once() {
    let registry = Registry::builder()
        .auth(Auth::Token {
            anonymous_pull: false,
            expires_in: 300,
        })
        .start();
    let image = registry.push_test_image("test/private", "v1", Format::Oci, "refused");
    let pushing = registry.token_requests();
    let client = client(&registry, "test/private", registry.credentials());

    // The first token is refused by the registry (401); the client gets a fresh one and retries.
    registry.expire_next_token();
    assert_eq!(client.manifest("v1").unwrap().digest, image.manifest_digest);
    assert_eq!(registry.token_requests() - pushing, 2);
    // The fresh token is cached as usual.
    assert_eq!(
        client
            .blob_bytes(&support::digest(&image.config_digest), 1 << 20)
            .unwrap(),
        image.config
    );
    assert_eq!(registry.token_requests() - pushing, 2);
}
