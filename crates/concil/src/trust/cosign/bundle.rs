//! Sigstore bundles attached to an image as OCI 1.1 referrers (what `cosign sign
//! --new-bundle-format` writes), verified with the trusted keys.
//!
//! # Where they are
//! The referrers of a manifest digest are listed by `GET /v2/<name>/referrers/<digest>`, or,
//! on registries without that API (distribution 2.8), by the index tagged `sha256-<hex>`
//! (the referrers tag schema). Each referrer whose `artifactType` is a bundle media type
//! (`application/vnd.dev.sigstore.bundle.v0.3+json`, or `…bundle+json;version=0.x` before)
//! is a manifest whose first layer is the bundle JSON.
//!
//! # What makes an image trusted
//! A bundle signed by a trusted key that vouches for exactly our digest:
//! - a DSSE envelope (cosign's choice for images): a trusted key's signature over the DSSE
//!   pre-authentication encoding of an in-toto statement whose predicate type is cosign's
//!   image signature (`https://sigstore.dev/cosign/sign/v1`) and whose subject has our
//!   digest (attestations such as SBOMs or provenance are statements about the image, not
//!   signatures of it, and do not count);
//! - or a message signature: a trusted key's signature over the manifest bytes themselves.
//!
//! With a trusted key, only the key-based part of a bundle is checked (its log entries are
//! not, as with `cosign verify --key … --insecure-ignore-tlog`). A bundle no trusted key
//! verifies and whose `verificationMaterial` holds a certificate (`certificate`, or the first
//! of `x509CertificateChain`) is checked keyless ([`crate::trust::keyless`]) with its `tlogEntries`
//! (`inclusionPromise` is the signed entry timestamp; `canonicalizedBody` the entry body).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::attempt::{
    Attempt, CosignVerified, KeylessMaterial, SignatureFormat, SignedBy, SignedClaim, SignedContent,
};
use crate::digest::Digest;
use crate::registry::{Descriptor, Manifest, ParsedManifest};
use crate::trust::base64;
use crate::trust::error::{SignatureRejection, TrustError, MAX_SIGNATURES};
use crate::trust::keyless::{InclusionProof, LogEntry, LoggedArtifact};
use crate::trust::trusted_root::RawBytesFile;

/// Every bundle media type starts so (v0.1 and v0.2 add `+json;version=…`, v0.3 `.v0.3+json`).
pub const BUNDLE_MEDIA_TYPE_PREFIX: &str = "application/vnd.dev.sigstore.bundle";
/// The DSSE payload type of an in-toto statement.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// The predicate type of cosign's image signature statement.
pub const COSIGN_SIGN_PREDICATE_TYPE: &str = "https://sigstore.dev/cosign/sign/v1";
const IN_TOTO_STATEMENT_TYPES: [&str; 2] = [
    "https://in-toto.io/Statement/v1",
    "https://in-toto.io/Statement/v0.1",
];

/// The tag of the referrers index for registries without the referrers API: `sha256-<hex>`.
pub fn referrers_tag(digest: &Digest) -> String {
    digest.as_tag()
}

/// Looks for a trusted bundle among the referrers of the attempt's digest.
pub(super) fn verify_bundles(
    attempt: &mut Attempt<'_>,
) -> Result<Option<CosignVerified>, TrustError> {
    let Some(referrers) = referrers(attempt)? else {
        return Ok(None);
    };
    let index = match referrers.parse() {
        Ok(ParsedManifest::Index(index)) => index,
        Ok(ParsedManifest::Image(_)) => {
            attempt.reject(SignatureRejection::Manifest {
                manifest: referrers.digest.to_string(),
                reason: "the referrers list is an image manifest, not an index".to_owned(),
            });
            return Ok(None);
        }
        Err(error) => {
            attempt.reject(SignatureRejection::Manifest {
                manifest: referrers.digest.to_string(),
                reason: error.to_string(),
            });
            return Ok(None);
        }
    };
    let bundles: Vec<&Descriptor> = index
        .manifests()
        .iter()
        .filter(|descriptor| {
            descriptor
                .artifact_type()
                .as_ref()
                .is_some_and(|kind| kind.to_string().starts_with(BUNDLE_MEDIA_TYPE_PREFIX))
        })
        .collect();
    if bundles.is_empty() {
        attempt.nothing_at(format!(
            "no sigstore bundle among the referrers of {}",
            attempt.digest
        ));
        return Ok(None);
    }
    let mut subject_manifest = None;
    for descriptor in bundles.iter().take(MAX_SIGNATURES) {
        let Some((manifest_digest, layer, bundle)) = bundle_blob(attempt, descriptor)? else {
            continue;
        };
        let Some((signed_by, claim)) =
            check_bundle(attempt, &layer, &bundle, &mut subject_manifest)?
        else {
            continue;
        };
        if attempt.accepts(&claim) {
            return Ok(Some(CosignVerified {
                digest: attempt.digest.clone(),
                signed_by,
                format: SignatureFormat::Bundle,
                signature_manifest: manifest_digest,
                signature_blob: layer.digest().to_string(),
                docker_reference: claim.repository,
            }));
        }
    }
    attempt.skipped_past_limit(bundles.len());
    Ok(None)
}

/// The referrers index: from the referrers API, else from the `sha256-<hex>` tag; `None`
/// (noted) when there is neither.
fn referrers(attempt: &mut Attempt<'_>) -> Result<Option<Manifest>, TrustError> {
    match attempt.source.referrers(attempt.digest) {
        Ok(Some(index)) => return Ok(Some(index)),
        Ok(None) => {}
        Err(error) => return Err(attempt.source_error(error)),
    }
    let tag = referrers_tag(attempt.digest);
    match attempt.source.manifest(&tag) {
        Ok(index) => Ok(Some(index)),
        Err(error) if error.is_not_found() => {
            attempt.nothing_at(format!("no referrers (no referrers API, no tag {tag})"));
            Ok(None)
        }
        Err(error) if error.is_bad_content() => {
            attempt.reject(SignatureRejection::Manifest {
                manifest: tag,
                reason: error.to_string(),
            });
            Ok(None)
        }
        Err(error) => Err(attempt.source_error(error)),
    }
}

/// A bundle referrer's manifest digest, bundle layer and bundle bytes; `None` (noted) when
/// the referrer is missing, corrupt or holds no bundle.
fn bundle_blob(
    attempt: &mut Attempt<'_>,
    descriptor: &Descriptor,
) -> Result<Option<(String, Descriptor, Vec<u8>)>, TrustError> {
    let digest = descriptor.digest().to_string();
    let manifest = match attempt.source.manifest(&digest) {
        Ok(manifest) => manifest,
        Err(error) if error.is_bad_content() => {
            attempt.reject(SignatureRejection::Unavailable {
                blob: digest,
                reason: error.to_string(),
            });
            return Ok(None);
        }
        Err(error) => return Err(attempt.source_error(error)),
    };
    let layer = match manifest.parse() {
        Ok(ParsedManifest::Image(image)) => image
            .layers()
            .iter()
            .find(|layer| {
                layer
                    .media_type()
                    .to_string()
                    .starts_with(BUNDLE_MEDIA_TYPE_PREFIX)
            })
            .cloned(),
        Ok(ParsedManifest::Index(_)) | Err(_) => None,
    };
    let Some(layer) = layer else {
        attempt.reject(SignatureRejection::Manifest {
            manifest: digest,
            reason: "no bundle layer".to_owned(),
        });
        return Ok(None);
    };
    let Some(bundle) = attempt.small_blob(&layer)? else {
        return Ok(None);
    };
    Ok(Some((digest, layer, bundle)))
}

/// Who signed the bundle (a trusted key or the keyless signer) and what it vouches for;
/// `None` (noted) if no trusted signer signed a cosign image signature in it.
/// `subject_manifest` caches the bytes of the manifest being verified, which message
/// signatures are over.
fn check_bundle(
    attempt: &mut Attempt<'_>,
    layer: &Descriptor,
    bundle: &[u8],
    subject_manifest: &mut Option<Vec<u8>>,
) -> Result<Option<(SignedBy, SignedClaim)>, TrustError> {
    let blob = layer.digest().to_string();
    let invalid = |reason: String| SignatureRejection::InvalidBundle {
        blob: layer.digest().to_string(),
        reason,
    };
    let parsed: Bundle = match serde_json::from_slice(bundle) {
        Ok(parsed) => parsed,
        Err(error) => {
            attempt.reject(invalid(format!("not bundle JSON: {error}")));
            return Ok(None);
        }
    };
    let keyless = match parsed.verification_material.keyless() {
        Ok(keyless) => keyless,
        Err(reason) => {
            attempt.reject(invalid(reason));
            return Ok(None);
        }
    };
    match (parsed.dsse_envelope, parsed.message_signature) {
        (Some(envelope), _) => {
            let Ok(payload) = base64::decode(&envelope.payload) else {
                attempt.reject(invalid("DSSE payload is not base64".to_owned()));
                return Ok(None);
            };
            let pae = pre_authentication_encoding(&envelope.payload_type, &payload);
            let signatures: Vec<Vec<u8>> = envelope
                .signatures
                .iter()
                .filter_map(|signature| base64::decode(&signature.sig).ok())
                .collect();
            let signed = SignedContent {
                bytes: &pae,
                artifact: LoggedArtifact::Dsse { payload: &payload },
            };
            let Some(signed_by) = attempt.signer(&blob, signed, &signatures, keyless) else {
                return Ok(None);
            };
            match statement_claim(&envelope.payload_type, &payload, attempt.digest) {
                Ok(claim) => Ok(Some((signed_by, claim))),
                Err(reason) => {
                    attempt.reject(SignatureRejection::NotImageSignature { blob, reason });
                    Ok(None)
                }
            }
        }
        (None, Some(message)) => {
            let Ok(signature) = base64::decode(&message.signature) else {
                attempt.reject(invalid("message signature is not base64".to_owned()));
                return Ok(None);
            };
            let manifest = match subject_manifest {
                Some(bytes) => bytes,
                None => {
                    let fetched = attempt
                        .source
                        .manifest(attempt.digest.as_str())
                        .map_err(|error| attempt.source_error(error))?;
                    subject_manifest.insert(fetched.bytes)
                }
            };
            // The manifest bytes hash to our digest (the client checked), so a signature
            // over them vouches for exactly this digest.
            let signed = SignedContent {
                bytes: manifest,
                artifact: LoggedArtifact::Message,
            };
            let signatures = [signature];
            let Some(signed_by) = attempt.signer(&blob, signed, &signatures, keyless) else {
                return Ok(None);
            };
            Ok(Some((
                signed_by,
                SignedClaim {
                    digest: attempt.digest.to_string(),
                    repository: None,
                },
            )))
        }
        (None, None) => {
            attempt.reject(invalid(
                "neither a DSSE envelope nor a message signature".to_owned(),
            ));
            Ok(None)
        }
    }
}

/// DSSE's PAE: `DSSEv1 <len(type)> <type> <len(payload)> <payload>`, the bytes signed.
pub(crate) fn pre_authentication_encoding(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut encoded = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    encoded.extend_from_slice(payload);
    encoded
}

/// What a verified in-toto statement claims: our digest if one of its subjects has it,
/// else the first sha256 subject it names.
pub(crate) fn statement_claim(
    payload_type: &str,
    payload: &[u8],
    digest: &Digest,
) -> Result<SignedClaim, String> {
    if payload_type != IN_TOTO_PAYLOAD_TYPE {
        return Err(format!("DSSE payload type {payload_type:?}"));
    }
    let statement: Statement =
        serde_json::from_slice(payload).map_err(|e| format!("not an in-toto statement: {e}"))?;
    if !IN_TOTO_STATEMENT_TYPES.contains(&statement.kind.as_str()) {
        return Err(format!("statement _type {:?}", statement.kind));
    }
    if statement.predicate_type != COSIGN_SIGN_PREDICATE_TYPE {
        return Err(format!(
            "predicate type {:?} (an attestation, not a signature)",
            statement.predicate_type
        ));
    }
    let wanted_hex = digest.hex();
    let claims = statement.subject.into_iter().filter_map(|subject| {
        let hex = subject.digest.get("sha256")?;
        Some(SignedClaim {
            digest: format!("sha256:{hex}"),
            repository: subject.name,
        })
    });
    let mut first = None;
    for claim in claims {
        if claim.digest.strip_prefix("sha256:") == Some(wanted_hex) {
            return Ok(claim);
        }
        first.get_or_insert(claim);
    }
    first.ok_or_else(|| "the statement names no sha256 subject".to_owned())
}

/// A sigstore bundle, as far as verification reads it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Bundle {
    #[serde(default)]
    pub(crate) verification_material: VerificationMaterial,
    #[serde(default)]
    pub(crate) message_signature: Option<MessageSignature>,
    #[serde(default)]
    pub(crate) dsse_envelope: Option<Envelope>,
}

/// A bundle's `verificationMaterial`: the certificate (v0.3) or chain (v0.1, v0.2) of a
/// keyless signature and its log entries (a `publicKey` hint is not needed).
#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct VerificationMaterial {
    #[serde(default)]
    certificate: Option<RawBytesFile>,
    #[serde(default)]
    x509_certificate_chain: Option<CertificateChain>,
    #[serde(default)]
    tlog_entries: Vec<TransparencyLogEntry>,
}

impl VerificationMaterial {
    /// The leaf certificate (DER) and the log entries of a keyless bundle;
    /// [`KeylessMaterial::None`] without a certificate.
    pub(crate) fn keyless(&self) -> Result<KeylessMaterial, String> {
        let leaf = match (&self.certificate, &self.x509_certificate_chain) {
            (Some(certificate), _) => certificate,
            (None, Some(chain)) => match chain.certificates.first() {
                Some(leaf) => leaf,
                None => return Err("x509CertificateChain holds no certificate".to_owned()),
            },
            (None, None) => return Ok(KeylessMaterial::None),
        };
        let certificate = base64::decode(&leaf.raw_bytes)
            .map_err(|_| "the certificate's rawBytes is not base64".to_owned())?;
        let log_entries = self
            .tlog_entries
            .iter()
            .map(TransparencyLogEntry::log_entry)
            .collect::<Result<_, _>>()?;
        Ok(KeylessMaterial::Certificate {
            certificate,
            log_entries,
        })
    }
}

#[derive(Deserialize)]
struct CertificateChain {
    certificates: Vec<RawBytesFile>,
}

/// A bundle's `tlogEntries[]` (protobuf JSON: int64 as strings, bytes as base64).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TransparencyLogEntry {
    #[serde(deserialize_with = "protobuf_int64")]
    log_index: i64,
    log_id: LogId,
    #[serde(deserialize_with = "protobuf_int64")]
    integrated_time: i64,
    #[serde(default)]
    inclusion_promise: Option<InclusionPromise>,
    #[serde(default)]
    inclusion_proof: Option<InclusionProofFile>,
    canonicalized_body: String,
}

impl TransparencyLogEntry {
    fn log_entry(&self) -> Result<LogEntry, String> {
        let field = |name: &str, text: &str| {
            base64::decode(text).map_err(|_| format!("tlogEntries: {name} is not base64"))
        };
        Ok(LogEntry {
            body: field("canonicalizedBody", &self.canonicalized_body)?,
            integrated_time: self.integrated_time,
            log_index: self.log_index,
            log_id: field("logId.keyId", &self.log_id.key_id)?,
            signed_entry_timestamp: self
                .inclusion_promise
                .as_ref()
                .map(|promise| field("signedEntryTimestamp", &promise.signed_entry_timestamp))
                .transpose()?,
            inclusion_proof: self
                .inclusion_proof
                .as_ref()
                .map(|proof| {
                    Ok::<_, String>(InclusionProof {
                        index: u64::try_from(proof.log_index)
                            .map_err(|_| "tlogEntries: negative inclusionProof.logIndex")?,
                        tree_size: u64::try_from(proof.tree_size)
                            .map_err(|_| "tlogEntries: negative inclusionProof.treeSize")?,
                        root_hash: field("inclusionProof.rootHash", &proof.root_hash)?,
                        hashes: proof
                            .hashes
                            .iter()
                            .map(|hash| field("inclusionProof.hashes", hash))
                            .collect::<Result<_, _>>()?,
                        checkpoint: proof.checkpoint.envelope.clone(),
                    })
                })
                .transpose()?,
        })
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogId {
    key_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InclusionProofFile {
    #[serde(deserialize_with = "protobuf_int64")]
    log_index: i64,
    root_hash: String,
    #[serde(deserialize_with = "protobuf_int64")]
    tree_size: i64,
    #[serde(default)]
    hashes: Vec<String>,
    checkpoint: Checkpoint,
}

#[derive(Deserialize)]
struct Checkpoint {
    envelope: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InclusionPromise {
    signed_entry_timestamp: String,
}

/// An int64 as protobuf's JSON mapping writes it (a string), or as a plain number.
fn protobuf_int64<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Int64 {
        Number(i64),
        Text(String),
    }
    match Int64::deserialize(deserializer)? {
        Int64::Number(number) => Ok(number),
        Int64::Text(text) => text.parse().map_err(serde::de::Error::custom),
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct MessageSignature {
    pub(crate) signature: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Envelope {
    pub(crate) payload: String,
    pub(crate) payload_type: String,
    pub(crate) signatures: Vec<EnvelopeSignature>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct EnvelopeSignature {
    pub(crate) sig: String,
}

#[derive(Debug, Deserialize)]
struct Statement {
    #[serde(rename = "_type")]
    kind: String,
    #[serde(default)]
    subject: Vec<Subject>,
    #[serde(rename = "predicateType")]
    predicate_type: String,
}

#[derive(Debug, Deserialize)]
struct Subject {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    digest: BTreeMap<String, String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_is_dsse_v1() {
        assert_eq!(
            pre_authentication_encoding("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }

    #[test]
    fn statements_claim_the_subject_with_our_digest() {
        let ours = Digest::parse(&format!("sha256:{}", "a".repeat(64))).unwrap();
        let statement = |predicate: &str, subjects: &str| {
            format!(
                r#"{{"_type":"https://in-toto.io/Statement/v1","subject":[{subjects}],"predicateType":"{predicate}","predicate":{{}}}}"#
            )
        };
        let two = format!(
            r#"{{"name":"r/other","digest":{{"sha256":"{}"}}}},{{"name":"r/x","digest":{{"sha256":"{}"}}}}"#,
            "b".repeat(64),
            "a".repeat(64)
        );
        let claim = statement_claim(
            IN_TOTO_PAYLOAD_TYPE,
            statement(COSIGN_SIGN_PREDICATE_TYPE, &two).as_bytes(),
            &ours,
        )
        .unwrap();
        assert_eq!(
            (claim.digest.as_str(), claim.repository.as_deref()),
            (ours.as_str(), Some("r/x"))
        );

        let other = format!(r#"{{"digest":{{"sha256":"{}"}}}}"#, "b".repeat(64));
        let claim = statement_claim(
            IN_TOTO_PAYLOAD_TYPE,
            statement(COSIGN_SIGN_PREDICATE_TYPE, &other).as_bytes(),
            &ours,
        )
        .unwrap();
        assert_eq!(claim.digest, format!("sha256:{}", "b".repeat(64)));

        let provenance = statement("https://slsa.dev/provenance/v1", &two);
        assert!(statement_claim(IN_TOTO_PAYLOAD_TYPE, provenance.as_bytes(), &ours).is_err());
        let signature = statement(COSIGN_SIGN_PREDICATE_TYPE, &two);
        assert!(statement_claim("text/plain", signature.as_bytes(), &ours).is_err());
        let no_sha256 = statement(COSIGN_SIGN_PREDICATE_TYPE, r#"{"digest":{"sha512":"00"}}"#);
        assert!(statement_claim(IN_TOTO_PAYLOAD_TYPE, no_sha256.as_bytes(), &ours).is_err());
    }
}
