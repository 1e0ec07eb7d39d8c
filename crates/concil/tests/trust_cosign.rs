//! Cosign verification against a real `docker-registry`, with signatures made by sigstore-rs
//! (an independent cosign implementation; its keys and signatures come from OpenSSL) and
//! pushed in cosign's registry formats: the tag `sha256-<hex>.sig` holding an OCI manifest
//! with one `simplesigning` layer per signature, and sigstore bundles as OCI 1.1 referrers.
//! Then the key management functions, checked against sigstore-rs and openssl.

use concil_test_support as support;

use std::path::Path;

use base64::Engine as _;
use concil::registry::{Client, TlsSettings};
use concil::trust::cosign::{signature_tag, SignatureFormat, SignedBy, Verifier};
use concil::trust::{SignatureRejection, TrustError};
use serde_json::json;
use sha2::Digest as _;
use sigstore::crypto::SigningScheme;
use support::cosign::{payload, push_signatures, SignatureLayer, Signer};
use support::images::{self, Images, OCI_MANIFEST};
use support::proxy::{PathAction, PathFault, PathMatch, Proxy};
use support::registry::{Format, PushedImage, Registry};

/// A test image in `repository` and the name cosign signs it under.
fn push_image(registry: &Registry, repository: &str, tag: &str) -> (PushedImage, String) {
    let image = registry.push_test_image(repository, tag, Format::Oci, tag);
    (image, format!("{}/{repository}", registry.host()))
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

fn verifier(keys: &Path) -> Verifier {
    Verifier::from_key_dir(keys).expect("keys load")
}

#[test]
fn busybox_signed_with_p256_passes() {
    let registry = Registry::plain();
    let images = Images::new(&registry).expect("images");
    let image = images
        .push_busybox("trust/busybox", "v1", images::Format::Docker)
        .expect("push busybox");
    let repository = format!("{}/trust/busybox", registry.host());
    let signer = Signer::p256();
    let signature_manifest = push_signatures(
        &registry,
        "trust/busybox",
        &image.manifest_digest,
        &[SignatureLayer::signed(
            &signer,
            payload(&repository, &image.manifest_digest),
        )],
    );
    let keys = tempfile::tempdir().unwrap();
    signer.trust_in(keys.path(), "release");

    let verified = verifier(keys.path())
        .check_docker_reference(true)
        .verify(
            &client(&registry, "trust/busybox"),
            &image.reference,
            &repository,
            &support::digest(&image.manifest_digest),
        )
        .expect("signed image is trusted");
    assert_eq!(verified.digest, image.manifest_digest);
    assert_eq!(
        verified.signed_by,
        SignedBy::Key {
            name: "release".to_owned(),
            path: keys.path().join("release.pub")
        }
    );
    assert_eq!(verified.signature_manifest, signature_manifest);
    assert_eq!(
        verified.docker_reference.as_deref(),
        Some(repository.as_str())
    );
}

#[test]
fn each_key_type_verifies() {
    let registry = Registry::plain();
    let schemes = [
        ("p256", SigningScheme::ECDSA_P256_SHA256_ASN1),
        ("p384", SigningScheme::ECDSA_P384_SHA384_ASN1),
        ("rsa-pkcs1", SigningScheme::RSA_PKCS1_SHA256(2048)),
        ("rsa-pss", SigningScheme::RSA_PSS_SHA256(3072)),
        ("ed25519", SigningScheme::ED25519),
    ];
    for (name, scheme) in schemes {
        let (image, repository) = push_image(&registry, "trust/keys", name);
        let signer = Signer::new(scheme);
        push_signatures(
            &registry,
            "trust/keys",
            &image.manifest_digest,
            &[SignatureLayer::signed(
                &signer,
                payload(&repository, &image.manifest_digest),
            )],
        );
        let keys = tempfile::tempdir().unwrap();
        signer.trust_in(keys.path(), name);
        let verified = verifier(keys.path())
            .verify(
                &client(&registry, "trust/keys"),
                name,
                &repository,
                &support::digest(&image.manifest_digest),
            )
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(verified.key_name(), Some(name));
    }
}

#[test]
fn signature_by_an_untrusted_key_is_invalid() {
    let registry = Registry::plain();
    let (image, repository) = push_image(&registry, "trust/wrong-key", "v1");
    let signer = Signer::p256();
    push_signatures(
        &registry,
        "trust/wrong-key",
        &image.manifest_digest,
        &[SignatureLayer::signed(
            &signer,
            payload(&repository, &image.manifest_digest),
        )],
    );
    let keys = tempfile::tempdir().unwrap();
    Signer::p256().trust_in(keys.path(), "other");
    Signer::new(SigningScheme::ED25519).trust_in(keys.path(), "other-ed25519");

    let error = verifier(keys.path())
        .verify(
            &client(&registry, "trust/wrong-key"),
            "wrong-key",
            &repository,
            &support::digest(&image.manifest_digest),
        )
        .unwrap_err();
    match &error {
        TrustError::SignatureInvalid {
            digest, rejected, ..
        } => {
            assert_eq!(digest, &image.manifest_digest);
            assert!(
                matches!(
                    rejected.as_slice(),
                    [SignatureRejection::NoKeyVerifies { keys: 2, .. }]
                ),
                "{rejected:?}"
            );
        }
        other => panic!("expected SignatureInvalid, got {other}"),
    }
    assert_eq!(concil::exit_status::of(&error), 12);
}

#[test]
fn unsigned_image_is_not_signed() {
    let registry = Registry::plain();
    let (image, repository) = push_image(&registry, "trust/unsigned", "v1");
    let keys = tempfile::tempdir().unwrap();
    Signer::p256().trust_in(keys.path(), "release");
    let error = verifier(keys.path())
        .verify(
            &client(&registry, "trust/unsigned"),
            "unsigned",
            &repository,
            &support::digest(&image.manifest_digest),
        )
        .unwrap_err();
    assert!(
        matches!(&error, TrustError::NotSigned { digest, .. } if digest == &image.manifest_digest),
        "{error}"
    );
    assert_eq!(concil::exit_status::of(&error), 10);
    assert!(error
        .to_string()
        .contains(&signature_tag(&support::digest(&image.manifest_digest))));

    // A signature manifest without signature layers signs nothing either.
    push_signatures(&registry, "trust/unsigned", &image.manifest_digest, &[]);
    let error = verifier(keys.path())
        .verify(
            &client(&registry, "trust/unsigned"),
            "unsigned",
            &repository,
            &support::digest(&image.manifest_digest),
        )
        .unwrap_err();
    assert!(matches!(error, TrustError::NotSigned { .. }), "{error}");
}

#[test]
fn signature_tag_that_is_no_signature_manifest_is_invalid() {
    let registry = Registry::plain();
    let (image, repository) = push_image(&registry, "trust/not-a-manifest", "v1");
    // An index under the signature tag.
    let (_, index_digest) = registry.push_index(
        "trust/not-a-manifest",
        &signature_tag(&support::digest(&image.manifest_digest)),
        Format::Oci,
        &[(&image, "linux/amd64")],
    );
    let keys = tempfile::tempdir().unwrap();
    Signer::p256().trust_in(keys.path(), "release");
    let error = verifier(keys.path())
        .verify(
            &client(&registry, "trust/not-a-manifest"),
            "not-a-manifest",
            &repository,
            &support::digest(&image.manifest_digest),
        )
        .unwrap_err();
    assert!(
        matches!(&error, TrustError::SignatureInvalid { rejected, .. }
            if matches!(rejected.as_slice(), [SignatureRejection::Manifest { manifest, .. }] if manifest == &index_digest)),
        "{error}"
    );
}

#[test]
fn tampered_payload_is_invalid() {
    let registry = Registry::plain();
    let (image, repository) = push_image(&registry, "trust/tampered", "v1");
    let signer = Signer::p256();
    let original = payload(&repository, &image.manifest_digest);
    let signature = signer.sign(&original);
    // The same signature over a payload changed after signing (still naming the right digest).
    let tampered = String::from_utf8(original)
        .unwrap()
        .replace(r#""optional":null"#, r#""optional":{"tampered":"yes"}"#)
        .into_bytes();
    push_signatures(
        &registry,
        "trust/tampered",
        &image.manifest_digest,
        &[SignatureLayer {
            payload: tampered,
            signature: Some(signature),
        }],
    );
    let keys = tempfile::tempdir().unwrap();
    signer.trust_in(keys.path(), "release");
    let error = verifier(keys.path())
        .verify(
            &client(&registry, "trust/tampered"),
            "tampered",
            &repository,
            &support::digest(&image.manifest_digest),
        )
        .unwrap_err();
    assert!(
        matches!(&error, TrustError::SignatureInvalid { rejected, .. }
            if matches!(rejected.as_slice(), [SignatureRejection::NoKeyVerifies { .. }])),
        "{error}"
    );
}

#[test]
fn signature_copied_from_another_image_is_the_wrong_image() {
    let registry = Registry::plain();
    let (signed, repository) = push_image(&registry, "trust/copied", "signed");
    let (other, _) = push_image(&registry, "trust/copied", "other");
    let signer = Signer::p256();
    let layers = [SignatureLayer::signed(
        &signer,
        payload(&repository, &signed.manifest_digest),
    )];
    push_signatures(&registry, "trust/copied", &signed.manifest_digest, &layers);
    // The attacker's move: the same signature manifest under the other image's tag.
    push_signatures(&registry, "trust/copied", &other.manifest_digest, &layers);
    let keys = tempfile::tempdir().unwrap();
    signer.trust_in(keys.path(), "release");
    let verifier = verifier(keys.path());
    let client = client(&registry, "trust/copied");

    verifier
        .verify(
            &client,
            "signed",
            &repository,
            &support::digest(&signed.manifest_digest),
        )
        .expect("the signed image itself passes");
    let error = verifier
        .verify(
            &client,
            "other",
            &repository,
            &support::digest(&other.manifest_digest),
        )
        .unwrap_err();
    match &error {
        TrustError::WrongImage {
            digest,
            signed_digest,
            ..
        } => {
            assert_eq!(digest, &other.manifest_digest);
            assert_eq!(signed_digest, &signed.manifest_digest);
        }
        other => panic!("expected WrongImage, got {other}"),
    }
    assert_eq!(concil::exit_status::of(&error), 13);
}

#[test]
fn any_trusted_signature_counts_not_only_the_last() {
    let registry = Registry::plain();
    let (image, repository) = push_image(&registry, "trust/two", "v1");
    let unknown = Signer::p256();
    let trusted = Signer::new(SigningScheme::ECDSA_P384_SHA384_ASN1);
    let digest = &image.manifest_digest;
    let keys = tempfile::tempdir().unwrap();
    trusted.trust_in(keys.path(), "trusted");
    let client = client(&registry, "trust/two");

    // Unknown key first, trusted second.
    let trusted_layer = SignatureLayer::signed(&trusted, payload(&repository, digest));
    let trusted_blob = images::sha256_digest(&trusted_layer.payload);
    push_signatures(
        &registry,
        "trust/two",
        digest,
        &[
            SignatureLayer::signed(&unknown, payload(&repository, digest)),
            trusted_layer,
        ],
    );
    let verified = verifier(keys.path())
        .verify(&client, "two", &repository, &support::digest(digest))
        .expect("the second signature is trusted");
    assert_eq!(verified.key_name(), Some("trusted"));
    assert_eq!(verified.signature_blob, trusted_blob);

    // Trusted first, then a layer without a signature: concil 1.0 looked at the last layer
    // only.
    push_signatures(
        &registry,
        "trust/two",
        digest,
        &[
            SignatureLayer::signed(&trusted, payload(&repository, digest)),
            SignatureLayer {
                payload: payload(&repository, digest),
                signature: None,
            },
        ],
    );
    verifier(keys.path())
        .verify(&client, "two", &repository, &support::digest(digest))
        .expect("the first signature is trusted");
}

#[test]
fn signed_index_verifies_and_covers_only_its_own_digest() {
    let registry = Registry::plain();
    let amd64 = registry.push_test_image("trust/index", "amd64", Format::Oci, "amd64");
    let arm64 = registry.push_test_image("trust/index", "arm64", Format::Oci, "arm64");
    let (_, index_digest) = registry.push_index(
        "trust/index",
        "latest",
        Format::Oci,
        &[(&amd64, "linux/amd64"), (&arm64, "linux/arm64")],
    );
    let repository = format!("{}/trust/index", registry.host());
    let signer = Signer::p256();
    push_signatures(
        &registry,
        "trust/index",
        &index_digest,
        &[SignatureLayer::signed(
            &signer,
            payload(&repository, &index_digest),
        )],
    );
    let keys = tempfile::tempdir().unwrap();
    signer.trust_in(keys.path(), "release");
    let verifier = verifier(keys.path());
    let client = client(&registry, "trust/index");

    let verified = verifier
        .verify(
            &client,
            "index",
            &repository,
            &support::digest(&index_digest),
        )
        .expect("the signed index is trusted");
    assert_eq!(verified.digest, index_digest);
    // The children are trusted through the index that lists them, not by signatures of
    // their own.
    let error = verifier
        .verify(
            &client,
            "index",
            &repository,
            &support::digest(&amd64.manifest_digest),
        )
        .unwrap_err();
    assert!(matches!(error, TrustError::NotSigned { .. }), "{error}");
}

#[test]
fn no_keys_means_no_trusted_key() {
    let registry = Registry::plain();
    let (image, repository) = push_image(&registry, "trust/nokeys", "v1");
    let signer = Signer::p256();
    push_signatures(
        &registry,
        "trust/nokeys",
        &image.manifest_digest,
        &[SignatureLayer::signed(
            &signer,
            payload(&repository, &image.manifest_digest),
        )],
    );
    let dir = tempfile::tempdir().unwrap();
    // The private key beside them is no trusted key.
    std::fs::write(dir.path().join("cosign.key"), "not a public key").unwrap();
    for keys in [dir.path().to_path_buf(), dir.path().join("missing")] {
        let error = verifier(&keys)
            .verify(
                &client(&registry, "trust/nokeys"),
                "nokeys",
                &repository,
                &support::digest(&image.manifest_digest),
            )
            .unwrap_err();
        assert!(
            matches!(&error, TrustError::NoTrustedKey { key_dir: Some(dir), .. } if dir == &keys),
            "{error}"
        );
        assert_eq!(concil::exit_status::of(&error), 11);
    }
}

#[test]
fn signed_payload_that_is_not_an_image_signature_is_invalid() {
    let registry = Registry::plain();
    let (image, repository) = push_image(&registry, "trust/type", "v1");
    let signer = Signer::p256();
    let other_type = String::from_utf8(payload(&repository, &image.manifest_digest))
        .unwrap()
        .replace(
            "cosign container image signature",
            "atomic container signature",
        )
        .into_bytes();
    push_signatures(
        &registry,
        "trust/type",
        &image.manifest_digest,
        &[SignatureLayer::signed(&signer, other_type)],
    );
    let keys = tempfile::tempdir().unwrap();
    signer.trust_in(keys.path(), "release");
    let error = verifier(keys.path())
        .verify(
            &client(&registry, "trust/type"),
            "type",
            &repository,
            &support::digest(&image.manifest_digest),
        )
        .unwrap_err();
    assert!(
        matches!(&error, TrustError::SignatureInvalid { rejected, .. }
            if matches!(rejected.as_slice(), [SignatureRejection::NotImageSignature { .. }])),
        "{error}"
    );
}

#[test]
fn docker_reference_is_checked_when_asked() {
    let registry = Registry::plain();
    let (image, repository) = push_image(&registry, "trust/identity", "v1");
    let signer = Signer::p256();
    let elsewhere = format!("{}/trust/elsewhere", registry.host());
    push_signatures(
        &registry,
        "trust/identity",
        &image.manifest_digest,
        &[SignatureLayer::signed(
            &signer,
            payload(&elsewhere, &image.manifest_digest),
        )],
    );
    let keys = tempfile::tempdir().unwrap();
    signer.trust_in(keys.path(), "release");
    let client = client(&registry, "trust/identity");

    verifier(keys.path())
        .verify(
            &client,
            "identity",
            &repository,
            &support::digest(&image.manifest_digest),
        )
        .expect("the identity is not checked by default");
    let error = verifier(keys.path())
        .check_docker_reference(true)
        .verify(
            &client,
            "identity",
            &repository,
            &support::digest(&image.manifest_digest),
        )
        .unwrap_err();
    match &error {
        TrustError::WrongRepository {
            repository: wanted,
            signed_reference,
            ..
        } => {
            assert_eq!(wanted, &repository);
            assert_eq!(signed_reference, &elsewhere);
        }
        other => panic!("expected WrongRepository, got {other}"),
    }
    assert_eq!(concil::exit_status::of(&error), 14);
}

#[test]
fn corrupt_payload_blob_is_rejected_but_another_signature_still_counts() {
    let registry = Registry::plain();
    let (image, repository) = push_image(&registry, "trust/corrupt", "v1");
    let signer = Signer::p256();
    let digest = &image.manifest_digest;
    // Two payloads that differ (cosign's `optional` annotations), both signed.
    let first = payload(&repository, digest);
    let second = String::from_utf8(first.clone())
        .unwrap()
        .replace(r#""optional":null"#, r#""optional":{"run":"2"}"#)
        .into_bytes();
    let first_blob = images::sha256_digest(&first);
    push_signatures(
        &registry,
        "trust/corrupt",
        digest,
        &[
            SignatureLayer::signed(&signer, first),
            SignatureLayer::signed(&signer, second),
        ],
    );
    // Flip a byte of the first payload in the registry's storage: it no longer matches its
    // digest, and the client refuses it.
    let path = registry.blob_data_path(&first_blob);
    let mut bytes = std::fs::read(&path).expect("blob data");
    bytes[0] ^= 0x20;
    std::fs::write(&path, bytes).expect("corrupt blob");

    let keys = tempfile::tempdir().unwrap();
    signer.trust_in(keys.path(), "release");
    let verified = verifier(keys.path())
        .verify(
            &client(&registry, "trust/corrupt"),
            "corrupt",
            &repository,
            &support::digest(digest),
        )
        .expect("the intact second signature is trusted");
    assert_ne!(verified.signature_blob, first_blob);
}

/// Sigstore bundles attached as OCI 1.1 referrers. Debian's registry has no referrers API,
/// so they are found through the `sha256-<hex>` tag schema, as cosign writes them there.
mod bundles {
    use super::*;

    use support::cosign::{dsse_bundle, push_bundles, statement, BUNDLE_V03, COSIGN_SIGN};

    fn base64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    /// A v0.3 bundle with a message signature over `artifact`.
    fn message_bundle(signer: &Signer, artifact: &[u8]) -> Vec<u8> {
        let signature = signer.sign_raw(artifact);
        serde_json::to_vec(&json!({
            "mediaType": BUNDLE_V03,
            "verificationMaterial": {"publicKey": {"hint": "test"}, "tlogEntries": []},
            "messageSignature": {
                "messageDigest": {"algorithm": "SHA2_256",
                                  "digest": base64(&sha2::Sha256::digest(artifact))},
                "signature": base64(&signature),
            },
        }))
        .expect("bundle JSON")
    }

    fn trusted(signer: &Signer) -> tempfile::TempDir {
        let keys = tempfile::tempdir().unwrap();
        signer.trust_in(keys.path(), "release");
        keys
    }

    /// A registry with the referrers API (OCI 1.1): the bundle is found through
    /// `GET /v2/<name>/referrers/<digest>`, with no fallback tag left to find it by. Debian's
    /// registry has no such API, so the fault proxy in front of it answers that one path
    /// with the referrers index cosign wrote (the registry keeps serving everything else).
    #[test]
    fn bundle_found_through_the_referrers_api() {
        let registry = Registry::plain();
        let repo = "bundle/api";
        let (image, repository) = push_image(&registry, repo, "v1");
        let signer = Signer::new(SigningScheme::ECDSA_P256_SHA256_ASN1);
        push_bundles(
            &registry,
            repo,
            &image.manifest_digest,
            OCI_MANIFEST,
            &[message_bundle(&signer, &image.manifest)],
            &[],
        );
        let tag = concil::trust::bundle::referrers_tag(&support::digest(&image.manifest_digest));
        let index = client(&registry, repo)
            .manifest(&tag)
            .expect("the fallback tag");
        registry.delete_manifest(repo, index.digest.as_str());
        let index = index.bytes;

        let upstream = registry.url();
        let proxy = Proxy::start(
            "127.0.0.1:0",
            &format!(
                "{}:{}",
                upstream.host_str().unwrap(),
                upstream.port().unwrap()
            ),
        )
        .expect("proxy");
        proxy.set_path_faults(vec![PathFault::always(
            PathMatch::Suffix(format!("/referrers/{}", image.manifest_digest)),
            PathAction::Replace { body: index },
        )]);
        let through_proxy = Client::new(
            format!("http://{}", proxy.addr()).parse().unwrap(),
            repo,
            None,
            &TlsSettings::default(),
            false,
        )
        .expect("client");
        let keys = trusted(&signer);
        let verified = verifier(keys.path())
            .verify(
                &through_proxy,
                "api",
                &repository,
                &support::digest(&image.manifest_digest),
            )
            .expect("the bundle is trusted");
        assert_eq!(verified.format, SignatureFormat::Bundle);
        assert_eq!(
            proxy.path_faulted_responses(),
            1,
            "the referrers API answered"
        );

        // Without the API answer and without the tag, nothing is found.
        proxy.set_path_faults(Vec::new());
        let error = verifier(keys.path())
            .verify(
                &through_proxy,
                "api",
                &repository,
                &support::digest(&image.manifest_digest),
            )
            .expect_err("no signature left to find");
        assert!(matches!(error, TrustError::NotSigned { .. }), "{error}");
    }

    #[test]
    fn dsse_bundle_by_a_trusted_key_passes() {
        let registry = Registry::plain();
        let (image, repository) = push_image(&registry, "bundle/dsse", "v1");
        let signer = Signer::new(SigningScheme::ECDSA_P384_SHA384_ASN1);
        let statement = statement(COSIGN_SIGN, &repository, &image.manifest_digest);
        push_bundles(
            &registry,
            "bundle/dsse",
            &image.manifest_digest,
            OCI_MANIFEST,
            &[dsse_bundle(&signer, &statement)],
            &[],
        );
        let keys = trusted(&signer);
        let verified = verifier(keys.path())
            .check_docker_reference(true)
            .verify(
                &client(&registry, "bundle/dsse"),
                "dsse",
                &repository,
                &support::digest(&image.manifest_digest),
            )
            .expect("the bundle is trusted");
        assert_eq!(verified.format, SignatureFormat::Bundle);
        assert_eq!(verified.key_name(), Some("release"));
        assert_eq!(
            verified.docker_reference.as_deref(),
            Some(repository.as_str())
        );
    }

    #[test]
    fn message_signature_bundle_over_the_manifest_passes() {
        let registry = Registry::plain();
        let (image, repository) = push_image(&registry, "bundle/message", "v1");
        let signer = Signer::new(SigningScheme::ED25519);
        let other = Signer::p256();
        // An untrusted bundle first, then the trusted one; a legacy signature by the
        // untrusted key too.
        push_signatures(
            &registry,
            "bundle/message",
            &image.manifest_digest,
            &[SignatureLayer::signed(
                &other,
                payload(&repository, &image.manifest_digest),
            )],
        );
        push_bundles(
            &registry,
            "bundle/message",
            &image.manifest_digest,
            OCI_MANIFEST,
            &[
                message_bundle(&other, &image.manifest),
                message_bundle(&signer, &image.manifest),
            ],
            &[],
        );
        let keys = trusted(&signer);
        let verified = verifier(keys.path())
            .verify(
                &client(&registry, "bundle/message"),
                "message",
                &repository,
                &support::digest(&image.manifest_digest),
            )
            .expect("the second bundle is trusted");
        assert_eq!(verified.format, SignatureFormat::Bundle);
    }

    #[test]
    fn untrusted_copied_and_attestation_bundles_are_refused() {
        let registry = Registry::plain();
        let (image, repository) = push_image(&registry, "bundle/refused", "v1");
        let (other, _) = push_image(&registry, "bundle/refused", "other");
        let signer = Signer::p256();
        let keys = trusted(&signer);
        let client = client(&registry, "bundle/refused");
        let digest = &image.manifest_digest;

        // By an unknown key.
        let unknown = Signer::p256();
        let signed_by_unknown = dsse_bundle(&unknown, &statement(COSIGN_SIGN, &repository, digest));
        push_bundles(
            &registry,
            "bundle/refused",
            digest,
            OCI_MANIFEST,
            &[signed_by_unknown],
            &[],
        );
        let error = verifier(keys.path())
            .verify(&client, "refused", &repository, &support::digest(digest))
            .unwrap_err();
        assert!(
            matches!(&error, TrustError::SignatureInvalid { rejected, .. }
                if matches!(rejected.as_slice(), [SignatureRejection::NoKeyVerifies { .. }])),
            "{error}"
        );

        // A provenance attestation by the trusted key says something about the image; it
        // is not a signature of it.
        let provenance = dsse_bundle(
            &signer,
            &statement("https://slsa.dev/provenance/v1", &repository, digest),
        );
        push_bundles(
            &registry,
            "bundle/refused",
            digest,
            OCI_MANIFEST,
            &[provenance],
            &[],
        );
        let error = verifier(keys.path())
            .verify(&client, "refused", &repository, &support::digest(digest))
            .unwrap_err();
        assert!(
            matches!(&error, TrustError::SignatureInvalid { rejected, .. }
                if matches!(rejected.as_slice(), [SignatureRejection::NotImageSignature { .. }])),
            "{error}"
        );

        // The other image's signature, listed as a referrer of ours.
        let copied = dsse_bundle(
            &signer,
            &statement(COSIGN_SIGN, &repository, &other.manifest_digest),
        );
        push_bundles(
            &registry,
            "bundle/refused",
            digest,
            OCI_MANIFEST,
            &[copied],
            &[],
        );
        let error = verifier(keys.path())
            .verify(&client, "refused", &repository, &support::digest(digest))
            .unwrap_err();
        assert!(
            matches!(&error, TrustError::WrongImage { signed_digest, .. }
                if signed_digest == &other.manifest_digest),
            "{error}"
        );

        // Referrers that are no bundles sign nothing.
        let sbom = json!({
            "mediaType": OCI_MANIFEST, "digest": other.manifest_digest,
            "size": other.manifest.len(), "artifactType": "application/spdx+json",
        });
        push_bundles(
            &registry,
            "bundle/refused",
            digest,
            OCI_MANIFEST,
            &[],
            &[sbom],
        );
        let error = verifier(keys.path())
            .verify(&client, "refused", &repository, &support::digest(digest))
            .unwrap_err();
        assert!(matches!(error, TrustError::NotSigned { .. }), "{error}");
    }
}

/// Listing, importing and generating keys.
mod key_management {
    use std::os::unix::fs::PermissionsExt as _;

    use concil::trust::key_management::{
        generate_key_pair, import_key, list_keys, KeyManagementError,
    };
    use concil::trust::keys::KeyAlgorithm;
    use sigstore::crypto::signing_key::SigStoreKeyPair;

    use super::*;

    const PASSWORD: &[u8] = b"correct horse battery staple";

    #[test]
    fn generated_key_signs_with_sigstore_and_verifies() {
        let registry = Registry::plain();
        let (image, repository) = push_image(&registry, "keys/generated", "v1");
        let home = tempfile::tempdir().unwrap();
        let key_dir = home.path().join("cosign");
        let private_key = home.path().join("release.key");

        let generated = generate_key_pair(&key_dir, "release", &private_key, PASSWORD)
            .expect("generate a key pair");
        assert_eq!(generated.public_key.path, key_dir.join("release.pub"));
        assert_eq!(generated.public_key.algorithm(), KeyAlgorithm::EcdsaP256);
        let mode = std::fs::metadata(&private_key)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);

        // sigstore-rs reads cosign's encrypted format: decrypt, sign, push.
        let pem = std::fs::read(&private_key).unwrap();
        assert!(String::from_utf8_lossy(&pem)
            .starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----"));
        assert!(SigStoreKeyPair::from_encrypted_pem(&pem, b"wrong password").is_err());
        let signer = Signer::from_encrypted_pem(&pem, PASSWORD);
        push_signatures(
            &registry,
            "keys/generated",
            &image.manifest_digest,
            &[SignatureLayer::signed(
                &signer,
                payload(&repository, &image.manifest_digest),
            )],
        );
        let verified = verifier(&key_dir)
            .verify(
                &client(&registry, "keys/generated"),
                "generated",
                &repository,
                &support::digest(&image.manifest_digest),
            )
            .expect("signed with the generated key");
        assert_eq!(verified.key_name(), Some("release"));

        // Nothing is overwritten.
        let again = generate_key_pair(
            &key_dir,
            "release",
            &home.path().join("other.key"),
            PASSWORD,
        )
        .unwrap_err();
        assert!(
            matches!(again, KeyManagementError::KeyExists { .. }),
            "{again}"
        );
        let again = generate_key_pair(&key_dir, "second", &private_key, PASSWORD).unwrap_err();
        assert!(
            matches!(again, KeyManagementError::KeyExists { .. }),
            "{again}"
        );
        assert!(!key_dir.join("second.pub").exists());
        assert_eq!(std::fs::read(&private_key).unwrap(), pem);
    }

    #[test]
    fn import_and_list() {
        let work = tempfile::tempdir().unwrap();
        let key_dir = work.path().join("cosign");
        assert!(list_keys(&key_dir).unwrap().is_empty());
        let openssl = |args: &[&str]| support::openssl(work.path(), args);
        openssl(&[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-384",
            "-out",
            "team.key",
        ]);
        openssl(&["pkey", "-in", "team.key", "-pubout", "-out", "team.pem"]);
        openssl(&["genpkey", "-algorithm", "ED25519", "-out", "ed.key"]);
        openssl(&["pkey", "-in", "ed.key", "-pubout", "-out", "ed.pem"]);

        let team = import_key(&key_dir, &work.path().join("team.pem"), None).expect("import");
        assert_eq!(
            (team.name.as_str(), team.algorithm()),
            ("team", KeyAlgorithm::EcdsaP384)
        );
        import_key(&key_dir, &work.path().join("ed.pem"), Some("build-bot")).expect("import");
        let listed: Vec<(String, KeyAlgorithm)> = list_keys(&key_dir)
            .unwrap()
            .into_iter()
            .map(|key| (key.algorithm(), key.name))
            .map(|(algorithm, name)| (name, algorithm))
            .collect();
        assert_eq!(
            listed,
            [
                ("build-bot".to_owned(), KeyAlgorithm::Ed25519),
                ("team".to_owned(), KeyAlgorithm::EcdsaP384)
            ]
        );

        let error = import_key(&key_dir, &work.path().join("ed.pem"), Some("team")).unwrap_err();
        assert!(
            matches!(error, KeyManagementError::KeyExists { .. }),
            "{error}"
        );
        let error = import_key(&key_dir, &work.path().join("ed.key"), Some("secret")).unwrap_err();
        assert!(
            matches!(&error, KeyManagementError::NotAKey { path, .. } if path.ends_with("ed.key")),
            "{error}"
        );
        let error =
            import_key(&key_dir, &work.path().join("ed.pem"), Some("../escape")).unwrap_err();
        assert!(
            matches!(error, KeyManagementError::InvalidKeyName { .. }),
            "{error}"
        );
        // Nothing but the two keys is left in the directory.
        let mut names: Vec<String> = std::fs::read_dir(&key_dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["build-bot.pub", "team.pub"]);
    }
}
