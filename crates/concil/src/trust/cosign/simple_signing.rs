//! The `sha256-<hex>.sig` tag: cosign's classic signature format.
//!
//! For a manifest `sha256:<hex>`, cosign pushes the tag `sha256-<hex>.sig` in the same
//! repository: an image manifest whose every layer of media type [`SIMPLESIGNING_MEDIA_TYPE`]
//! is one signature. The layer blob is the signed payload, a "simple signing" JSON document:
//!
//! ```json
//! {"critical": {"identity": {"docker-reference": "registry/repository"},
//!               "image": {"docker-manifest-digest": "sha256:<hex>"},
//!               "type": "cosign container image signature"},
//!  "optional": {…}}
//! ```
//!
//! and the layer's annotation [`SIGNATURE_ANNOTATION`] holds the base64 signature over the
//! blob bytes. Signing again appends a layer.
//!
//! # Keyless signatures
//! `cosign sign` without a key puts the signer's Fulcio certificate (PEM) in the layer's
//! [`CERTIFICATE_ANNOTATION`], its chain in `dev.sigstore.cosign/chain` (not used: only the
//! trusted root's CAs count) and the Rekor entry with its signed entry timestamp in
//! [`REKOR_BUNDLE_ANNOTATION`]. A signature no trusted key verifies is checked that way when
//! it has a certificate ([`crate::trust::keyless`]).

use serde::Deserialize;

use super::attempt::{
    Attempt, CosignVerified, KeylessMaterial, SignatureFormat, SignedBy, SignedClaim, SignedContent,
};
use crate::digest::Digest;
use crate::registry::{Descriptor, ParsedManifest};
use crate::trust::base64;
use crate::trust::error::{SignatureRejection, TrustError, MAX_SIGNATURES};
use crate::trust::keyless::{LogEntry, LoggedArtifact};

/// The media type of a signature layer.
pub const SIMPLESIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The layer annotation holding the base64 signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// The layer annotation holding a keyless signature's certificate (PEM).
pub const CERTIFICATE_ANNOTATION: &str = "dev.sigstore.cosign/certificate";
/// The layer annotation holding a keyless signature's Rekor entry and signed entry timestamp.
pub const REKOR_BUNDLE_ANNOTATION: &str = "dev.sigstore.cosign/bundle";
/// `critical.type` of a signature of a container image.
pub const IMAGE_SIGNATURE_TYPE: &str = "cosign container image signature";

/// The tag cosign stores the signatures of `digest` under: `sha256-<hex>.sig`.
pub fn signature_tag(digest: &Digest) -> String {
    format!("{}.sig", digest.as_tag())
}

/// Looks for a trusted signature of the attempt's digest among the layers of its
/// `sha256-<hex>.sig` tag.
pub(super) fn verify(attempt: &mut Attempt<'_>) -> Result<Option<CosignVerified>, TrustError> {
    let signature_tag = signature_tag(attempt.digest);
    let signatures = match attempt.source.manifest(&signature_tag) {
        Ok(manifest) => manifest,
        Err(error) if error.is_not_found() => {
            attempt.nothing_at(format!("no tag {signature_tag}"));
            return Ok(None);
        }
        Err(error) if error.is_bad_content() => {
            attempt.reject(SignatureRejection::Manifest {
                manifest: signature_tag,
                reason: error.to_string(),
            });
            return Ok(None);
        }
        Err(error) => return Err(attempt.source_error(error)),
    };
    let layers = match signatures.parse() {
        Ok(ParsedManifest::Image(manifest)) => manifest.layers().clone(),
        Ok(ParsedManifest::Index(_)) => {
            attempt.reject(SignatureRejection::Manifest {
                manifest: signatures.digest.to_string(),
                reason: "an index, not an image manifest".to_owned(),
            });
            return Ok(None);
        }
        Err(error) => {
            attempt.reject(SignatureRejection::Manifest {
                manifest: signatures.digest.to_string(),
                reason: error.to_string(),
            });
            return Ok(None);
        }
    };
    let candidates: Vec<_> = layers
        .iter()
        .filter(|layer| layer.media_type().to_string() == SIMPLESIGNING_MEDIA_TYPE)
        .collect();
    if candidates.is_empty() {
        attempt.nothing_at(format!("tag {signature_tag} holds no signature layers"));
        return Ok(None);
    }
    for layer in candidates.iter().take(MAX_SIGNATURES) {
        let Some((signed_by, claim)) = check_layer(attempt, layer)? else {
            continue;
        };
        if attempt.accepts(&claim) {
            return Ok(Some(CosignVerified {
                digest: attempt.digest.clone(),
                signed_by,
                format: SignatureFormat::SimpleSigning,
                signature_manifest: signatures.digest.to_string(),
                signature_blob: layer.digest().to_string(),
                docker_reference: claim.repository,
            }));
        }
    }
    attempt.skipped_past_limit(candidates.len());
    Ok(None)
}

/// Who signed this layer and what; `None` (with the reason noted) if no trusted key or
/// keyless signer signed a cosign image signature here.
fn check_layer(
    attempt: &mut Attempt<'_>,
    layer: &Descriptor,
) -> Result<Option<(SignedBy, SignedClaim)>, TrustError> {
    let blob = layer.digest().to_string();
    let annotation = |name: &str| {
        layer
            .annotations()
            .as_ref()
            .and_then(|annotations| annotations.get(name))
    };
    let Some(signature) = annotation(SIGNATURE_ANNOTATION) else {
        attempt.reject(SignatureRejection::NoSignature { blob });
        return Ok(None);
    };
    let Ok(signature) = base64::decode(signature) else {
        attempt.reject(SignatureRejection::SignatureNotBase64 { blob });
        return Ok(None);
    };
    let Some(payload) = attempt.small_blob(layer)? else {
        return Ok(None);
    };
    let keyless = match annotation(CERTIFICATE_ANNOTATION) {
        None => KeylessMaterial::None,
        Some(certificate) => {
            match legacy_keyless_material(&blob, certificate, annotation(REKOR_BUNDLE_ANNOTATION)) {
                Ok((certificate, log_entry)) => KeylessMaterial::Certificate {
                    certificate,
                    log_entries: vec![log_entry],
                },
                Err(rejection) => KeylessMaterial::Rejected(rejection),
            }
        }
    };
    let signed = SignedContent {
        bytes: &payload,
        artifact: LoggedArtifact::Message,
    };
    let Some(signed_by) = attempt.signer(&blob, signed, std::slice::from_ref(&signature), keyless)
    else {
        return Ok(None);
    };
    // Only a verified payload is parsed: what it says counts only once a signer vouched
    // for it.
    match parse_simple_signing(&payload) {
        Ok(claim) => Ok(Some((signed_by, claim))),
        Err(reason) => {
            attempt.reject(SignatureRejection::NotImageSignature { blob, reason });
            Ok(None)
        }
    }
}

/// The certificate (DER) and Rekor entry of a keyless `.sig` layer, from its annotations.
pub(crate) fn legacy_keyless_material(
    blob: &str,
    certificate: &str,
    rekor_bundle: Option<&String>,
) -> Result<(Vec<u8>, LogEntry), SignatureRejection> {
    let certificate = match x509_cert::der::pem::decode_vec(certificate.as_bytes()) {
        Ok(("CERTIFICATE", der)) => der,
        _ => {
            return Err(SignatureRejection::CertificateUntrusted {
                blob: blob.to_owned(),
                reason: format!("{CERTIFICATE_ANNOTATION} is not a PEM certificate"),
            })
        }
    };
    let transparency_log = |reason| SignatureRejection::TransparencyLog {
        blob: blob.to_owned(),
        reason,
    };
    let Some(rekor_bundle) = rekor_bundle else {
        return Err(transparency_log(format!(
            "no {REKOR_BUNDLE_ANNOTATION} annotation (signed without a transparency log)"
        )));
    };
    let entry = LogEntry::from_cosign_annotation(rekor_bundle)
        .map_err(|reason| transparency_log(format!("{REKOR_BUNDLE_ANNOTATION}: {reason}")))?;
    Ok((certificate, entry))
}

/// The claim of a cosign simple-signing payload, or why it is not one.
pub(crate) fn parse_simple_signing(payload: &[u8]) -> Result<SignedClaim, String> {
    let parsed: SimpleSigning = serde_json::from_slice(payload).map_err(|e| e.to_string())?;
    let critical = parsed.critical;
    if critical.kind != IMAGE_SIGNATURE_TYPE {
        return Err(format!("critical.type is {:?}", critical.kind));
    }
    Ok(SignedClaim {
        digest: critical.image.docker_manifest_digest,
        repository: critical.identity.and_then(|i| i.docker_reference),
    })
}

/// The simple-signing payload, as far as verification reads it.
#[derive(Debug, Deserialize)]
struct SimpleSigning {
    critical: Critical,
}

#[derive(Debug, Deserialize)]
struct Critical {
    #[serde(rename = "type")]
    kind: String,
    image: SignedImage,
    #[serde(default)]
    identity: Option<Identity>,
}

#[derive(Debug, Deserialize)]
struct SignedImage {
    #[serde(rename = "docker-manifest-digest")]
    docker_manifest_digest: String,
}

#[derive(Debug, Deserialize)]
struct Identity {
    #[serde(rename = "docker-reference", default)]
    docker_reference: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_tag_of_a_digest() {
        let digest = Digest::parse(&format!("sha256:{}", "ab".repeat(32))).unwrap();
        assert_eq!(
            signature_tag(&digest),
            format!("sha256-{}.sig", "ab".repeat(32))
        );
    }

    #[test]
    fn payloads_parse_as_cosign_writes_them() {
        let payload = br#"{"critical":{"identity":{"docker-reference":"r/x"},"image":{"docker-manifest-digest":"sha256:00"},"type":"cosign container image signature"},"optional":null}"#;
        let parsed: SimpleSigning = serde_json::from_slice(payload).unwrap();
        assert_eq!(parsed.critical.kind, IMAGE_SIGNATURE_TYPE);
        assert_eq!(parsed.critical.image.docker_manifest_digest, "sha256:00");
        assert_eq!(
            parsed.critical.identity.and_then(|i| i.docker_reference),
            Some("r/x".to_owned())
        );
    }

    #[test]
    fn the_missing_signature_message_names_the_annotation() {
        let rejection = SignatureRejection::NoSignature {
            blob: "sha256:00".to_owned(),
        };
        assert!(rejection.to_string().contains(SIGNATURE_ANNOTATION));
    }
}
