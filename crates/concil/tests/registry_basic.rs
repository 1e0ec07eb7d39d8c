//! The registry client against a real `docker-registry` over plain HTTP: manifests by tag and
//! digest, media types, indexes, blobs, errors with the registry's codes, digest checks.

use concil_test_support as support;

use std::io::Read;

use concil::digest::Digest;
use concil::registry::{self, Client, ParsedManifest, RegistryError, TlsSettings};
use support::registry::{Format, Registry};

fn digest(text: &str) -> Digest {
    Digest::parse(text).expect("a sha256 digest")
}

fn client(registry: &Registry, repository: &str) -> Client {
    Client::new(
        registry.url(),
        repository,
        registry.credentials(),
        &TlsSettings::default(),
        false,
    )
    .expect("client")
}

#[test]
fn docker_v2_manifest_by_tag_and_by_digest() {
    let registry = Registry::plain();
    let image = registry.push_test_image("test/docker", "v1", Format::DockerV2, "docker");
    let client = client(&registry, "test/docker");

    let by_tag = client.manifest("v1").unwrap();
    assert_eq!(by_tag.media_type, registry::DOCKER_MANIFEST_V2);
    assert_eq!(by_tag.digest, image.manifest_digest);
    assert_eq!(by_tag.bytes, image.manifest);

    let by_digest = client.manifest(&image.manifest_digest).unwrap();
    assert_eq!(by_digest, by_tag);

    let ParsedManifest::Image(parsed) = by_tag.parse().unwrap() else {
        panic!("not an image")
    };
    assert_eq!(parsed.config().digest().to_string(), image.config_digest);
    assert_eq!(parsed.layers()[0].digest().to_string(), image.layer_digest);
    assert_eq!(parsed.layers()[0].size(), image.layer.len() as u64);
}

#[test]
fn oci_manifest_index_and_docker_manifest_list() {
    let registry = Registry::plain();
    let amd64 = registry.push_test_image("test/multi", "amd64", Format::Oci, "amd64");
    let arm64 = registry.push_test_image("test/multi", "arm64", Format::Oci, "arm64");
    let (index, index_digest) = registry.push_index(
        "test/multi",
        "latest",
        Format::Oci,
        &[(&amd64, "linux/amd64"), (&arm64, "linux/arm64")],
    );
    let client = client(&registry, "test/multi");

    // The registry serves OCI types only to clients that accept them: the full Accept list.
    let manifest = client.manifest("amd64").unwrap();
    assert_eq!(manifest.media_type, registry::OCI_MANIFEST);
    assert_eq!(manifest.digest, amd64.manifest_digest);

    let fetched = client.manifest("latest").unwrap();
    assert_eq!(fetched.media_type, registry::OCI_INDEX);
    assert_eq!(
        (fetched.bytes.as_slice(), fetched.digest.as_str()),
        (index.as_slice(), index_digest.as_str())
    );
    let ParsedManifest::Index(parsed) = fetched.parse().unwrap() else {
        panic!("not an index")
    };
    let digests: Vec<String> = parsed
        .manifests()
        .iter()
        .map(|m| m.digest().to_string())
        .collect();
    assert_eq!(
        digests,
        [amd64.manifest_digest.clone(), arm64.manifest_digest.clone()]
    );

    // A Docker manifest list by tag comes back as the list, not as one of its children.
    let docker = registry.push_test_image("test/multi", "docker-amd64", Format::DockerV2, "d");
    let (_, list_digest) = registry.push_index(
        "test/multi",
        "list",
        Format::DockerV2,
        &[(&docker, "linux/amd64")],
    );
    let list = client.manifest("list").unwrap();
    assert_eq!(list.media_type, registry::DOCKER_MANIFEST_LIST_V2);
    assert_eq!(list.digest, list_digest);
}

#[test]
fn blobs_stream_with_their_length_and_configs_are_verified() {
    let registry = Registry::plain();
    let image = registry.push_test_image("test/blobs", "v1", Format::Oci, "blob content");
    let client = client(&registry, "test/blobs");

    let mut reader = client.blob(&digest(&image.layer_digest)).unwrap();
    assert_eq!(reader.content_length(), Some(image.layer.len() as u64));
    assert!(
        reader
            .url()
            .ends_with(&format!("/v2/test/blobs/blobs/{}", image.layer_digest)),
        "{}",
        reader.url()
    );
    let mut body = Vec::new();
    reader.read_to_end(&mut body).unwrap();
    assert_eq!(body, image.layer);

    let config = client
        .blob_bytes(&digest(&image.config_digest), 1024 * 1024)
        .unwrap();
    assert_eq!(config, image.config);

    let limit = image.config.len() as u64 - 1;
    match client.blob_bytes(&digest(&image.config_digest), limit) {
        Err(RegistryError::TooLarge { limit: l, .. }) => assert_eq!(l, limit),
        other => panic!("expected TooLarge, got {other:?}"),
    }

    // One GET per call, as the registry's own log counts them.
    assert_eq!(registry.count_blob_fetches(&image.layer_digest), 1);
    assert_eq!(registry.count_blob_fetches(&image.config_digest), 2);
}

#[test]
fn clones_download_in_parallel() {
    let registry = Registry::plain();
    let images: Vec<_> = (0..4)
        .map(|i| {
            registry.push_test_image(
                "test/parallel",
                &format!("v{i}"),
                Format::DockerV2,
                &format!("layer {i}"),
            )
        })
        .collect();
    let client = client(&registry, "test/parallel");
    std::thread::scope(|scope| {
        for image in &images {
            let client = client.clone();
            scope.spawn(move || {
                let mut body = Vec::new();
                client
                    .blob(&digest(&image.layer_digest))
                    .unwrap()
                    .read_to_end(&mut body)
                    .unwrap();
                assert_eq!(body, image.layer);
            });
        }
    });
    for image in &images {
        assert_eq!(registry.count_blob_fetches(&image.layer_digest), 1);
    }
}

fn error_codes(error: &RegistryError) -> Vec<String> {
    match error {
        RegistryError::NotFound { errors, .. } => errors.iter().map(|e| e.code.clone()).collect(),
        other => panic!("expected NotFound, got {other:?}"),
    }
}

#[test]
fn unknown_tag_repository_and_blob_carry_the_registry_codes() {
    let registry = Registry::plain();
    let image = registry.push_test_image("test/known", "v1", Format::DockerV2, "known");

    let error = client(&registry, "test/known")
        .manifest("no-such-tag")
        .unwrap_err();
    assert_eq!(error_codes(&error), ["MANIFEST_UNKNOWN"]);
    let message = error.to_string();
    assert!(
        message.contains("/v2/test/known/manifests/no-such-tag"),
        "{message}"
    );
    assert!(
        message.contains("MANIFEST_UNKNOWN: manifest unknown"),
        "{message}"
    );

    // distribution 2.8 says MANIFEST_UNKNOWN for a manifest of an unknown repository too
    // (NAME_UNKNOWN only for its tag list); the code is passed on as the registry sent it.
    let error = client(&registry, "test/unknown")
        .manifest("v1")
        .unwrap_err();
    assert_eq!(error_codes(&error), ["MANIFEST_UNKNOWN"]);
    assert!(
        error.to_string().contains("/v2/test/unknown/manifests/v1"),
        "{error}"
    );

    let missing = format!("sha256:{}", "0".repeat(64));
    let error = client(&registry, "test/known")
        .blob(&digest(&missing))
        .unwrap_err();
    assert_eq!(error_codes(&error), ["BLOB_UNKNOWN"]);
    let error = client(&registry, "test/known")
        .manifest(&missing)
        .unwrap_err();
    assert_eq!(error_codes(&error), ["MANIFEST_UNKNOWN"]);

    // After a delete by digest, the tag is gone too.
    registry.delete_manifest("test/known", &image.manifest_digest);
    let error = client(&registry, "test/known").manifest("v1").unwrap_err();
    assert_eq!(error_codes(&error), ["MANIFEST_UNKNOWN"]);
}

/// Flips one byte of a stored blob in the registry's storage: the registry then serves bytes
/// that do not match the digest it serves them under, as a faulty mirror or disk would.
fn corrupt_stored_blob(registry: &Registry, digest: &str, from: &[u8], to: &[u8]) {
    let path = registry.blob_data_path(digest);
    let stored = std::fs::read(&path).unwrap();
    let at = stored
        .windows(from.len())
        .position(|w| w == from)
        .expect("pattern in the stored blob");
    let mut corrupted = stored.clone();
    corrupted[at..at + to.len()].copy_from_slice(to);
    std::fs::write(&path, corrupted).unwrap();
}

#[test]
fn corrupted_content_is_a_digest_mismatch() {
    let registry = Registry::plain();
    let image = registry.push_test_image("test/corrupt", "v1", Format::DockerV2, "corrupt");
    corrupt_stored_blob(&registry, &image.manifest_digest, b"\"aaaa\"", b"\"aaab\"");
    corrupt_stored_blob(&registry, &image.config_digest, b"amd64", b"amd65");
    let client = client(&registry, "test/corrupt");

    for reference in [image.manifest_digest.as_str(), "v1"] {
        match client.manifest(reference) {
            // By digest: the digest asked for; by tag: the registry's Docker-Content-Digest.
            Err(RegistryError::DigestMismatch {
                expected,
                actual,
                url,
            }) => {
                assert_eq!(expected, image.manifest_digest);
                assert_ne!(actual, image.manifest_digest);
                assert!(url.contains("/v2/test/corrupt/manifests/"), "{url}");
            }
            other => panic!("{reference}: expected DigestMismatch, got {other:?}"),
        }
    }
    match client.blob_bytes(&digest(&image.config_digest), 1024 * 1024) {
        Err(RegistryError::DigestMismatch { expected, .. }) => {
            assert_eq!(expected, image.config_digest)
        }
        other => panic!("expected DigestMismatch, got {other:?}"),
    }
}

#[test]
fn names_that_would_escape_the_request_path_are_refused() {
    let registry = Registry::plain();
    let error = Client::new(
        registry.url(),
        "../../etc",
        None,
        &TlsSettings::default(),
        false,
    )
    .unwrap_err();
    assert!(
        matches!(
            error,
            RegistryError::InvalidName {
                what: "repository",
                ..
            }
        ),
        "{error}"
    );
    let client = client(&registry, "test/names");
    assert!(matches!(
        client.manifest("../v1"),
        Err(RegistryError::InvalidName { what: "tag", .. })
    ));
    assert!(matches!(
        client.manifest("sha256:../../x"),
        Err(RegistryError::InvalidDigest { .. })
    ));
    // Refused before any request went out.
    assert!(registry
        .log_lines()
        .iter()
        .all(|line| !line.contains("test/names")));
}
