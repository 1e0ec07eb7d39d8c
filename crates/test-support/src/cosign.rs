//! Cosign signatures for the tests, made by sigstore-rs (an independent cosign implementation;
//! its keys and signatures come from OpenSSL) and pushed in cosign's classic registry format:
//! the tag `sha256-<hex>.sig` holding an OCI manifest with one `simplesigning` layer per
//! signature, the signed payload as the layer blob and the base64 signature in its annotation.

use std::path::Path;

use base64::Engine as _;
use serde_json::json;
use sigstore::crypto::signing_key::SigStoreKeyPair;
use sigstore::crypto::{SigStoreSigner, SigningScheme};

use crate::images::{OCI_CONFIG, OCI_MANIFEST};
use crate::registry::Registry;

/// The media type of a signature layer.
pub const SIMPLESIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The layer annotation holding the base64 signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";

/// A cosign key pair held by sigstore-rs.
pub struct Signer {
    signer: SigStoreSigner,
}

impl Signer {
    /// A fresh key pair of `scheme`.
    pub fn new(scheme: SigningScheme) -> Signer {
        Signer {
            signer: scheme
                .create_signer()
                .expect("sigstore-rs makes a key pair"),
        }
    }

    pub fn p256() -> Signer {
        Signer::new(SigningScheme::ECDSA_P256_SHA256_ASN1)
    }

    /// The ECDSA P-256 key of a private key file in cosign's encrypted format
    /// (`ENCRYPTED SIGSTORE PRIVATE KEY`), decrypted by sigstore-rs with `password`.
    pub fn from_encrypted_pem(pem: &[u8], password: &[u8]) -> Signer {
        let pair =
            SigStoreKeyPair::from_encrypted_pem(pem, password).expect("sigstore-rs decrypts");
        Signer {
            signer: pair
                .to_sigstore_signer(&SigningScheme::ECDSA_P256_SHA256_ASN1)
                .expect("signer"),
        }
    }

    pub fn public_pem(&self) -> String {
        self.signer
            .to_sigstore_keypair()
            .and_then(|pair| pair.public_key_to_pem())
            .expect("public key PEM")
    }

    /// The raw signature of `message` with this key's scheme.
    pub fn sign_raw(&self, message: &[u8]) -> Vec<u8> {
        self.signer.sign(message).expect("sign")
    }

    /// The base64 signature cosign puts in the layer annotation.
    pub fn sign(&self, payload: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.sign_raw(payload))
    }

    /// Writes the public key as `<dir>/<name>.pub`.
    pub fn trust_in(&self, dir: &Path, name: &str) {
        std::fs::create_dir_all(dir).expect("key dir");
        std::fs::write(dir.join(format!("{name}.pub")), self.public_pem()).expect("write key");
    }
}

/// cosign's simple-signing payload for `digest` pushed as `reference` (its exact layout:
/// cosign marshals these fields in this order, `optional` null when no annotations).
pub fn payload(reference: &str, digest: &str) -> Vec<u8> {
    format!(
        r#"{{"critical":{{"identity":{{"docker-reference":"{reference}"}},"image":{{"docker-manifest-digest":"{digest}"}},"type":"cosign container image signature"}},"optional":null}}"#
    )
    .into_bytes()
}

/// The tag cosign stores the signatures of `digest` under: `sha256-<hex>.sig`. Written out
/// here rather than taken from the library, so a mistake there cannot hide in the tests.
pub fn signature_tag(digest: &str) -> String {
    format!("{}.sig", digest.replacen(':', "-", 1))
}

/// One signature layer: the payload and the annotation value (None: no annotation).
pub struct SignatureLayer {
    pub payload: Vec<u8>,
    pub signature: Option<String>,
}

impl SignatureLayer {
    pub fn signed(signer: &Signer, payload: Vec<u8>) -> SignatureLayer {
        SignatureLayer {
            signature: Some(signer.sign(&payload)),
            payload,
        }
    }
}

/// Pushes a signature manifest under the tag of `digest`, as cosign does (an OCI manifest,
/// a config listing the payloads as diff_ids, one layer per signature); returns its digest.
pub fn push_signatures(
    registry: &Registry,
    repository: &str,
    digest: &str,
    layers: &[SignatureLayer],
) -> String {
    let annotated: Vec<(Vec<u8>, serde_json::Value)> = layers
        .iter()
        .map(|layer| {
            let annotations = match &layer.signature {
                Some(signature) => json!({SIGNATURE_ANNOTATION: signature}),
                None => json!({}),
            };
            (layer.payload.clone(), annotations)
        })
        .collect();
    push_signature_manifest(registry, repository, digest, &annotated)
}

/// [`push_signatures`] with each layer's annotations given whole (a JSON object; empty: none).
pub fn push_signature_manifest(
    registry: &Registry,
    repository: &str,
    digest: &str,
    layers: &[(Vec<u8>, serde_json::Value)],
) -> String {
    let mut descriptors = Vec::new();
    let mut diff_ids = Vec::new();
    for (payload, annotations) in layers {
        let blob = registry.push_blob(repository, payload);
        let mut descriptor =
            json!({"mediaType": SIMPLESIGNING, "size": payload.len(), "digest": blob});
        if annotations.as_object().is_some_and(|map| !map.is_empty()) {
            descriptor["annotations"] = annotations.clone();
        }
        descriptors.push(descriptor);
        diff_ids.push(blob);
    }
    let config = serde_json::to_vec(&json!({
        "architecture": "", "created": "0001-01-01T00:00:00Z",
        "history": [{"created": "0001-01-01T00:00:00Z"}], "os": "",
        "rootfs": {"type": "layers", "diff_ids": diff_ids}, "config": {},
    }))
    .expect("config JSON");
    let config_digest = registry.push_blob(repository, &config);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "size": config.len(), "digest": config_digest},
        "layers": descriptors,
    }))
    .expect("manifest JSON");
    registry.push_manifest(repository, &signature_tag(digest), OCI_MANIFEST, &manifest)
}

/// The media type of a v0.3 sigstore bundle.
pub const BUNDLE_V03: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// Pushes each bundle as a referrer of `digest` (cosign's artifact manifest) and the
/// referrers index under the tag `sha256-<hex>` (the referrers tag schema, for registries
/// without the referrers API), with `extra` entries first.
pub fn push_bundles(
    registry: &Registry,
    repository: &str,
    digest: &str,
    subject_type: &str,
    bundles: &[Vec<u8>],
    extra: &[serde_json::Value],
) {
    let empty = registry.push_blob(repository, b"{}");
    let mut entries = extra.to_vec();
    for bundle in bundles {
        let blob = registry.push_blob(repository, bundle);
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": BUNDLE_V03,
            "config": {"mediaType": OCI_EMPTY, "digest": empty, "size": 2},
            "layers": [{"mediaType": BUNDLE_V03, "digest": blob, "size": bundle.len()}],
            "subject": {"mediaType": subject_type, "digest": digest, "size": 0},
        }))
        .expect("manifest JSON");
        let manifest_digest = crate::images::sha256_digest(&manifest);
        registry.push_manifest(repository, &manifest_digest, OCI_MANIFEST, &manifest);
        entries.push(json!({
            "mediaType": OCI_MANIFEST, "digest": manifest_digest, "size": manifest.len(),
            "artifactType": BUNDLE_V03,
            "annotations": {"dev.sigstore.bundle.content": "dsse-envelope"},
        }));
    }
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries,
    }))
    .expect("index JSON");
    let tag = digest.replacen(':', "-", 1);
    registry.push_manifest(repository, &tag, OCI_INDEX, &index);
}

/// The DSSE payload type of an in-toto statement.
pub const IN_TOTO: &str = "application/vnd.in-toto+json";
/// The predicate type of cosign's image signature statement.
pub const COSIGN_SIGN: &str = "https://sigstore.dev/cosign/sign/v1";

/// An in-toto statement of `predicate_type` about `digest` (pushed as `reference`).
pub fn statement(predicate_type: &str, reference: &str, digest: &str) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
    serde_json::to_vec(&json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": reference, "digest": {"sha256": hex}}],
        "predicateType": predicate_type,
        "predicate": {},
    }))
    .expect("statement JSON")
}

/// A v0.3 bundle with a DSSE envelope around `payload`, signed by `signer` over DSSE's
/// pre-authentication encoding.
pub fn dsse_bundle(signer: &Signer, payload: &[u8]) -> Vec<u8> {
    let base64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let mut pae = format!("DSSEv1 {} {IN_TOTO} {} ", IN_TOTO.len(), payload.len()).into_bytes();
    pae.extend_from_slice(payload);
    let signature = signer.sign_raw(&pae);
    serde_json::to_vec(&json!({
        "mediaType": BUNDLE_V03,
        "verificationMaterial": {"publicKey": {"hint": "test"}, "tlogEntries": []},
        "dsseEnvelope": {
            "payload": base64(payload), "payloadType": IN_TOTO,
            "signatures": [{"sig": base64(&signature), "keyid": ""}],
        },
    }))
    .expect("bundle JSON")
}
