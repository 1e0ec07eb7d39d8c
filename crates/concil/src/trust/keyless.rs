//! Keyless cosign signatures: a Fulcio certificate for a short-lived key, and a Rekor
//! transparency-log entry proving when the signature was made, checked offline against a
//! sigstore `trusted_root.json` (`cosign_trusted_root`) and the signer identity configured
//! for the repository (`cosign_identities`).
//!
//! # What makes a keyless signature trusted
//! 1. The signature verifies with the key of its leaf certificate.
//! 2. A log entry of a log in the trusted root vouches for it: its signed entry timestamp
//!    (SET, Rekor's "inclusion promise") verifies with that log's key over the canonical
//!    `{"body","integratedTime","logID","logIndex"}` JSON, the log was valid then, and the
//!    entry body (`hashedrekord`, cosign 1's `rekord`, or `dsse`) records this signature, this
//!    certificate and the hash of what was signed. The SET is what makes `integratedTime` a
//!    signed time; an inclusion proof alone proves membership but no time (sigstore then needs
//!    a timestamp authority), so entries without a SET are refused. An inclusion proof given
//!    beside the SET must hold too: the entry's leaf hash leads through the proof's hashes to
//!    the root hash of a checkpoint the log signed (RFC 9162 audit path, signed note).
//! 3. At `integratedTime`, the leaf certificate was valid (Fulcio's live ten minutes: an
//!    expired certificate is fine as long as the log saw the signature in time) and was issued
//!    by a Fulcio CA of the trusted root valid then: the leaf is signed by the first
//!    certificate of the CA's chain, each chain certificate is signed by the next and valid
//!    then. The leaf allows code signing, is no CA, and has no critical extension we do not
//!    understand. When the trusted root names certificate transparency logs (`ctlogs`, as
//!    sigstore's public one does), the leaf embeds a signed certificate timestamp of one of
//!    them, valid for it and its issuing CA (the `sct` module), as cosign requires by default;
//!    a trusted root without `ctlogs` (a private sigstore without CT) requires none.
//! 4. Its subject alternative name (email or URI) and its OIDC issuer extension
//!    (`1.3.6.1.4.1.57264.1.8`, else the older `…1.1`) match the configured identity.
//!
//! Then the payload is checked as a key-signed one is (type, digest, repository when asked).
//! Certificate chains shipped beside a signature (`dev.sigstore.cosign/chain`, a bundle's
//! `x509CertificateChain` past the leaf) are not used: only the trusted root's CAs count.
//!
//! # Why by hand, not with the `sigstore` crate
//! sigstore-rs 0.15 verifies bundles only (not cosign's `.sig` tag with its certificate and
//! SET annotations), its `verify` feature pulls in its Fulcio and Rekor HTTP clients (reqwest,
//! OpenID Connect) and tokio unconditionally, its crypto goes through OpenSSL or aws-lc, and
//! loading a trusted root from a file needs its TUF client. concil's library stays on rustls
//! and the RustCrypto crates it already uses: `x509-cert` parses certificates, the signature
//! checks are [`PublicKey`]'s, and the rest (trusted root JSON, SET payload, entry bodies,
//! identity extensions) is the few hundred lines below. sigstore-rs still signs the test
//! images of the key-based tests; the keyless tests sign with the `openssl` command.

use std::fmt;

use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use x509_cert::der::asn1::Utf8StringRef;
use x509_cert::der::{Decode as _, Encode as _};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAltName};
use x509_cert::spki::ObjectIdentifier;
use x509_cert::Certificate;

use crate::config::CosignIdentity;
use crate::trust::base64;
use crate::trust::keys::PublicKey;
use crate::trust::sct;
use crate::trust::trusted_root::{format_time, TransparencyLog, TrustedRoot};
use crate::trust::x509::{parse_certificate, valid_at};

/// Fulcio's OIDC issuer extension, the value as raw bytes (deprecated, still written).
const OID_FULCIO_ISSUER_V1: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.1");
/// Fulcio's OIDC issuer extension, the value a DER UTF8String.
const OID_FULCIO_ISSUER_V2: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.8");
const OID_CODE_SIGNING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.3");
/// The critical extensions a leaf may carry: key usage, subject alternative name, basic
/// constraints, extended key usage (all checked below).
const UNDERSTOOD_CRITICAL: [ObjectIdentifier; 4] = [
    ObjectIdentifier::new_unwrap("2.5.29.15"),
    ObjectIdentifier::new_unwrap("2.5.29.17"),
    ObjectIdentifier::new_unwrap("2.5.29.19"),
    ObjectIdentifier::new_unwrap("2.5.29.37"),
];

/// A keyless signature as found in the registry, before any check.
pub(super) struct KeylessSignature<'a> {
    /// The leaf certificate, DER.
    pub(super) certificate: Vec<u8>,
    pub(super) signature: &'a [u8],
    /// The bytes the signature is over.
    pub(super) signed: &'a [u8],
    /// What the log entry must record about it.
    pub(super) artifact: LoggedArtifact<'a>,
    pub(super) log_entries: Vec<LogEntry>,
}

/// How a signature appears in a log entry body.
pub(super) enum LoggedArtifact<'a> {
    /// `hashedrekord` (or cosign 1's `rekord`): the SHA-256 of the signed bytes.
    Message,
    /// `dsse`: the SHA-256 of the envelope's payload (the signature is over its PAE).
    Dsse { payload: &'a [u8] },
}

/// One transparency-log entry, as a `.sig` layer's `dev.sigstore.cosign/bundle` annotation
/// or a bundle's `tlogEntries[]` holds it.
#[derive(Debug, Clone)]
pub(crate) struct LogEntry {
    pub(super) body: Vec<u8>,
    pub(super) integrated_time: i64,
    pub(super) log_index: i64,
    pub(super) log_id: Vec<u8>,
    /// The signed entry timestamp, if the entry has one.
    pub(super) signed_entry_timestamp: Option<Vec<u8>>,
    pub(super) inclusion_proof: Option<InclusionProof>,
}

/// A Merkle audit path from an entry to a signed checkpoint of the log.
#[derive(Debug, Clone)]
pub(super) struct InclusionProof {
    /// The entry's index in this log shard's tree (not the global log index).
    pub(super) index: u64,
    pub(super) tree_size: u64,
    pub(super) root_hash: Vec<u8>,
    pub(super) hashes: Vec<Vec<u8>>,
    /// The signed note: `origin\nsize\nbase64 root\n[…]\n\n— name base64(key hint ‖ signature)\n`.
    pub(super) checkpoint: String,
}

impl LogEntry {
    /// cosign's `dev.sigstore.cosign/bundle` annotation: `{"SignedEntryTimestamp": base64,
    /// "Payload": {"body": base64, "integratedTime", "logIndex", "logID": hex}}`.
    pub(super) fn from_cosign_annotation(text: &str) -> Result<LogEntry, String> {
        let annotation: RekorBundleAnnotation =
            serde_json::from_str(text).map_err(|e| format!("not a Rekor bundle: {e}"))?;
        Ok(LogEntry {
            body: base64::decode(&annotation.payload.body)
                .map_err(|_| "Payload.body is not base64".to_owned())?,
            integrated_time: annotation.payload.integrated_time,
            log_index: annotation.payload.log_index,
            log_id: hex::decode(&annotation.payload.log_id)
                .map_err(|_| "Payload.logID is not hex".to_owned())?,
            signed_entry_timestamp: Some(
                base64::decode(&annotation.signed_entry_timestamp)
                    .map_err(|_| "SignedEntryTimestamp is not base64".to_owned())?,
            ),
            inclusion_proof: None,
        })
    }

    /// What the SET signs: RFC 8785 canonical JSON of the entry (keys sorted; the values
    /// here need no escaping).
    fn canonical_payload(&self) -> String {
        format!(
            r#"{{"body":"{}","integratedTime":{},"logID":"{}","logIndex":{}}}"#,
            base64::encode(&self.body),
            self.integrated_time,
            hex::encode(&self.log_id),
            self.log_index
        )
    }
}

/// Who signed, once everything checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateSigner {
    /// The certificate's subject alternative name that matched.
    pub subject: String,
    /// The certificate's OIDC issuer.
    pub issuer: String,
    /// The log entry that vouched for the signature, and its time (Unix seconds).
    pub log_index: i64,
    /// When the log integrated the entry (Unix seconds).
    pub integrated_time: i64,
}

/// Why a keyless signature does not count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum KeylessRejection {
    /// The certificate is malformed, unfit for code signing, not valid at the signing time,
    /// or not issued by a trusted Fulcio CA.
    Certificate(String),
    /// The trusted root names CT logs, and no SCT of one is embedded in the certificate.
    CertificateTransparency(String),
    /// The signature does not verify with the certificate's key.
    Signature,
    /// No log entry vouches for this signature.
    TransparencyLog(String),
    /// Everything verified, but for another signer.
    Identity { expected: String, found: String },
}

/// Checks a keyless signature (see the module documentation for the steps).
pub(super) fn verify(
    root: &TrustedRoot,
    identity: &CosignIdentity,
    signature: &KeylessSignature<'_>,
) -> Result<CertificateSigner, KeylessRejection> {
    let leaf = parse_certificate(&signature.certificate).map_err(KeylessRejection::Certificate)?;
    let key = PublicKey::from_der(
        &leaf
            .tbs_certificate()
            .subject_public_key_info()
            .to_der()
            .map_err(|e| KeylessRejection::Certificate(e.to_string()))?,
    )
    .map_err(|problem| KeylessRejection::Certificate(format!("its key: {problem}")))?;
    if !key.verifies(signature.signed, signature.signature) {
        return Err(KeylessRejection::Signature);
    }
    let entry = logged(root, signature).map_err(KeylessRejection::TransparencyLog)?;
    let time = u64::try_from(entry.integrated_time).map_err(|_| {
        KeylessRejection::TransparencyLog(format!(
            "integratedTime {} is negative",
            entry.integrated_time
        ))
    })?;
    check_leaf(&leaf, time).map_err(KeylessRejection::Certificate)?;
    let issuer = root
        .authorities
        .iter()
        .find_map(|authority| authority.issuer_of(&leaf, time))
        .ok_or_else(|| {
            KeylessRejection::Certificate(format!(
                "not issued by a Fulcio CA of the trusted root valid at the log's time {}",
                format_time(time)
            ))
        })?;
    if !root.ct_logs.is_empty() {
        sct::check_embedded(&root.ct_logs, &leaf, issuer)
            .map_err(KeylessRejection::CertificateTransparency)?;
    }
    let (subjects, issuer) = identity_of(&leaf).map_err(KeylessRejection::Certificate)?;
    let subject = subjects
        .iter()
        .find(|subject| identity.subject.matches(subject));
    match subject {
        Some(subject) if identity.issuer.matches(&issuer) => Ok(CertificateSigner {
            subject: subject.clone(),
            issuer,
            log_index: entry.log_index,
            integrated_time: entry.integrated_time,
        }),
        _ => Err(KeylessRejection::Identity {
            expected: format!("subject {} issued by {}", identity.subject, identity.issuer),
            found: format!(
                "subject {} issued by {issuer:?}",
                DisplaySubjects(&subjects)
            ),
        }),
    }
}

/// The first log entry that vouches for `signature`; else why none does.
fn logged<'e>(
    root: &TrustedRoot,
    signature: &'e KeylessSignature<'_>,
) -> Result<&'e LogEntry, String> {
    let mut reasons = Vec::new();
    for entry in &signature.log_entries {
        match check_entry(root, signature, entry) {
            Ok(()) => return Ok(entry),
            Err(reason) => reasons.push(format!("entry {}: {reason}", entry.log_index)),
        }
    }
    if reasons.is_empty() {
        return Err("the signature carries no transparency-log entry".to_owned());
    }
    Err(reasons.join("; "))
}

fn check_entry(
    root: &TrustedRoot,
    signature: &KeylessSignature<'_>,
    entry: &LogEntry,
) -> Result<(), String> {
    let log = root
        .logs
        .iter()
        .find(|log| log.id == entry.log_id)
        .ok_or_else(|| {
            format!(
                "log {} is not in the trusted root",
                hex::encode(&entry.log_id)
            )
        })?;
    let Some(set) = &entry.signed_entry_timestamp else {
        return Err("no signed entry timestamp (an inclusion proof alone carries no signed time, which needs a timestamp authority)".to_owned());
    };
    if !log.key.verifies(entry.canonical_payload().as_bytes(), set) {
        return Err("the signed entry timestamp does not verify with the log's key".to_owned());
    }
    let time = u64::try_from(entry.integrated_time)
        .map_err(|_| format!("integratedTime {} is negative", entry.integrated_time))?;
    if !log.valid.contains(time) {
        return Err(format!(
            "the log's key was not valid at {}",
            format_time(time)
        ));
    }
    body_records(&entry.body, signature)?;
    match &entry.inclusion_proof {
        Some(proof) => check_inclusion(log, &entry.body, proof),
        None => Ok(()),
    }
}

/// Whether `proof` leads from the entry `body` to a checkpoint `log` signed.
fn check_inclusion(
    log: &TransparencyLog,
    body: &[u8],
    proof: &InclusionProof,
) -> Result<(), String> {
    let leaf = Sha256::new()
        .chain_update([0])
        .chain_update(body)
        .finalize();
    let root = audit_path_root(proof.index, proof.tree_size, leaf.to_vec(), &proof.hashes)
        .ok_or_else(|| "the inclusion proof does not fit its tree size".to_owned())?;
    if root != proof.root_hash {
        return Err("the inclusion proof leads to another root hash".to_owned());
    }
    let (size, checkpoint_root) = signed_checkpoint(log, &proof.checkpoint)?;
    if size != proof.tree_size || checkpoint_root != root {
        return Err("the checkpoint is of another tree than the inclusion proof".to_owned());
    }
    Ok(())
}

/// The root an RFC 9162 (2.1.3.2) audit path leads to from leaf `index` of a tree of `size`.
fn audit_path_root(index: u64, size: u64, leaf: Vec<u8>, path: &[Vec<u8>]) -> Option<Vec<u8>> {
    if index >= size {
        return None;
    }
    let node = |left: &[u8], right: &[u8]| {
        Sha256::new()
            .chain_update([1])
            .chain_update(left)
            .chain_update(right)
            .finalize()
            .to_vec()
    };
    let (mut position, mut last, mut hash) = (index, size - 1, leaf);
    for sibling in path {
        if last == 0 {
            return None;
        }
        if position & 1 == 1 || position == last {
            hash = node(sibling, &hash);
            while position & 1 == 0 && position != 0 {
                position >>= 1;
                last >>= 1;
            }
        } else {
            hash = node(&hash, sibling);
        }
        position >>= 1;
        last >>= 1;
    }
    (last == 0).then_some(hash)
}

/// The tree size and root hash of a checkpoint with a signature by `log`'s key over its
/// text (everything before the blank line, final newline included).
fn signed_checkpoint(log: &TransparencyLog, envelope: &str) -> Result<(u64, Vec<u8>), String> {
    let (text, signatures) = envelope
        .split_once("\n\n")
        .ok_or_else(|| "the checkpoint has no signature".to_owned())?;
    let signed = format!("{text}\n");
    let verified = signatures
        .lines()
        .filter_map(|line| line.strip_prefix("\u{2014} "))
        .filter_map(|line| line.rsplit_once(' '))
        .filter_map(|(_, signature)| base64::decode(signature).ok())
        .any(|hinted| {
            // A 4-byte key hint precedes the signature.
            hinted
                .get(4..)
                .is_some_and(|signature| log.key.verifies(signed.as_bytes(), signature))
        });
    if !verified {
        return Err("the checkpoint is not signed by the log's key".to_owned());
    }
    let mut lines = text.lines().skip(1);
    let size = lines.next().and_then(|size| size.parse().ok());
    let root = lines.next().and_then(|root| base64::decode(root).ok());
    size.zip(root)
        .ok_or_else(|| "the checkpoint names no tree size and root hash".to_owned())
}

/// Whether the entry body records this signature, certificate and signed content.
fn body_records(body: &[u8], signature: &KeylessSignature<'_>) -> Result<(), String> {
    let body: EntryBody =
        serde_json::from_slice(body).map_err(|e| format!("body is not a Rekor entry: {e}"))?;
    let same_certificate = |encoded: &str| {
        base64::decode(encoded).is_ok_and(|pem| {
            x509_cert::der::pem::decode_vec(&pem).is_ok_and(|(_, der)| der == signature.certificate)
        })
    };
    let same_signature =
        |encoded: &str| base64::decode(encoded).is_ok_and(|bytes| bytes == signature.signature);
    let hash_of = |bytes: &[u8]| hex::encode(Sha256::digest(bytes));
    match (body.kind.as_str(), &signature.artifact) {
        ("hashedrekord" | "rekord", LoggedArtifact::Message) => {
            let spec: RekordSpec = serde_json::from_value(body.spec)
                .map_err(|e| format!("{} body: {e}", body.kind))?;
            if spec.data.hash.algorithm != "sha256"
                || spec.data.hash.value != hash_of(signature.signed)
            {
                return Err("the entry records another artifact hash".to_owned());
            }
            if !same_signature(&spec.signature.content) {
                return Err("the entry records another signature".to_owned());
            }
            if !same_certificate(&spec.signature.public_key.content) {
                return Err("the entry records another certificate".to_owned());
            }
            Ok(())
        }
        ("dsse", LoggedArtifact::Dsse { payload }) => {
            let spec: DsseSpec =
                serde_json::from_value(body.spec).map_err(|e| format!("dsse body: {e}"))?;
            if spec.payload_hash.algorithm != "sha256"
                || spec.payload_hash.value != hash_of(payload)
            {
                return Err("the entry records another payload hash".to_owned());
            }
            let recorded = spec.signatures.iter().any(|recorded| {
                same_signature(&recorded.signature) && same_certificate(&recorded.verifier)
            });
            if !recorded {
                return Err("the entry records another signature or certificate".to_owned());
            }
            Ok(())
        }
        (kind, _) => Err(format!("entry kind {kind:?} does not fit this signature")),
    }
}

/// The checks on the leaf itself at the signing time.
pub(crate) fn check_leaf(leaf: &Certificate, time: u64) -> Result<(), String> {
    let tbs = leaf.tbs_certificate();
    if !valid_at(leaf, time) {
        let validity = tbs.validity();
        return Err(format!(
            "valid from {} to {}, but the log's time is {}",
            format_time(validity.not_before.to_unix_duration().as_secs()),
            format_time(validity.not_after.to_unix_duration().as_secs()),
            format_time(time)
        ));
    }
    if let Some(extension) =
        tbs.extensions().into_iter().flatten().find(|extension| {
            extension.critical && !UNDERSTOOD_CRITICAL.contains(&extension.extn_id)
        })
    {
        return Err(format!(
            "unhandled critical extension {}",
            extension.extn_id
        ));
    }
    let code_signing = tbs
        .get_extension::<ExtendedKeyUsage>()
        .map_err(|e| format!("extended key usage: {e}"))?
        .is_some_and(|(_, usage)| usage.0.contains(&OID_CODE_SIGNING));
    if !code_signing {
        return Err(
            "not a code-signing certificate (no extended key usage codeSigning)".to_owned(),
        );
    }
    let key_usage = tbs
        .get_extension::<KeyUsage>()
        .map_err(|e| format!("key usage: {e}"))?;
    if key_usage.is_some_and(|(_, usage)| !usage.digital_signature()) {
        return Err("key usage does not allow digital signatures".to_owned());
    }
    let constraints = tbs
        .get_extension::<BasicConstraints>()
        .map_err(|e| format!("basic constraints: {e}"))?;
    if constraints.is_some_and(|(_, constraints)| constraints.ca) {
        return Err("a CA certificate, not a signing certificate".to_owned());
    }
    Ok(())
}

/// The subject alternative names (email, URI) and the OIDC issuer of a Fulcio certificate.
pub(crate) fn identity_of(leaf: &Certificate) -> Result<(Vec<String>, String), String> {
    let tbs = leaf.tbs_certificate();
    let subjects = tbs
        .get_extension::<SubjectAltName>()
        .map_err(|e| format!("subject alternative name: {e}"))?
        .map(|(_, names)| {
            names
                .0
                .iter()
                .filter_map(|name| match name {
                    GeneralName::Rfc822Name(value)
                    | GeneralName::UniformResourceIdentifier(value) => Some(value.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let extension = |oid| {
        tbs.extensions()
            .into_iter()
            .flatten()
            .find(|extension| extension.extn_id == oid)
            .map(|extension| extension.extn_value.as_bytes())
    };
    let issuer = match (
        extension(OID_FULCIO_ISSUER_V2),
        extension(OID_FULCIO_ISSUER_V1),
    ) {
        (Some(value), _) => Utf8StringRef::from_der(value)
            .map(|text| text.as_str().to_owned())
            .map_err(|e| format!("issuer extension {OID_FULCIO_ISSUER_V2}: {e}"))?,
        (None, Some(value)) => String::from_utf8(value.to_vec())
            .map_err(|_| format!("issuer extension {OID_FULCIO_ISSUER_V1} is not UTF-8"))?,
        (None, None) => return Err("no Fulcio OIDC issuer extension".to_owned()),
    };
    Ok((subjects, issuer))
}

/// `"a", "b"` or `none`.
struct DisplaySubjects<'a>(&'a [String]);

impl fmt::Display for DisplaySubjects<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(none)");
        }
        for (i, subject) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{subject:?}")?;
        }
        Ok(())
    }
}

/// cosign's `dev.sigstore.cosign/bundle` annotation.
#[derive(Deserialize)]
struct RekorBundleAnnotation {
    #[serde(rename = "SignedEntryTimestamp")]
    signed_entry_timestamp: String,
    #[serde(rename = "Payload")]
    payload: RekorPayload,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RekorPayload {
    body: String,
    integrated_time: i64,
    log_index: i64,
    #[serde(rename = "logID")]
    log_id: String,
}

/// A Rekor entry body: `{"apiVersion", "kind", "spec"}`.
#[derive(Deserialize)]
struct EntryBody {
    kind: String,
    spec: serde_json::Value,
}

/// The spec of `hashedrekord` v0.0.1 and of cosign 1's `rekord` v0.0.1.
#[derive(Deserialize)]
struct RekordSpec {
    data: RekordData,
    signature: RekordSignature,
}

#[derive(Deserialize)]
struct RekordData {
    hash: EntryHash,
}

#[derive(Deserialize)]
struct EntryHash {
    algorithm: String,
    value: String,
}

#[derive(Deserialize)]
struct RekordSignature {
    content: String,
    #[serde(rename = "publicKey")]
    public_key: RekordPublicKey,
}

#[derive(Deserialize)]
struct RekordPublicKey {
    content: String,
}

/// The spec of `dsse` v0.0.1.
#[derive(Deserialize)]
struct DsseSpec {
    #[serde(rename = "payloadHash")]
    payload_hash: EntryHash,
    signatures: Vec<DsseSignature>,
}

#[derive(Deserialize)]
struct DsseSignature {
    signature: String,
    verifier: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_payload_is_canonical_json() {
        let entry = LogEntry {
            body: b"{}".to_vec(),
            integrated_time: 1_700_000_000,
            log_index: 42,
            log_id: vec![0xab, 0x01],
            signed_entry_timestamp: None,
            inclusion_proof: None,
        };
        assert_eq!(
            entry.canonical_payload(),
            r#"{"body":"e30=","integratedTime":1700000000,"logID":"ab01","logIndex":42}"#
        );
    }

    #[test]
    fn audit_paths_of_a_small_tree() {
        let leaf = |n: u8| Sha256::digest([0, n]).to_vec();
        let node = |l: &[u8], r: &[u8]| {
            Sha256::new()
                .chain_update([1])
                .chain_update(l)
                .chain_update(r)
                .finalize()
                .to_vec()
        };
        // Five leaves: root = node(node(node(0,1), node(2,3)), 4).
        let (l0, l1, l2, l3, l4) = (leaf(0), leaf(1), leaf(2), leaf(3), leaf(4));
        let left = node(&node(&l0, &l1), &node(&l2, &l3));
        let root = node(&left, &l4);
        let path_2 = vec![l3.clone(), node(&l0, &l1), l4.clone()];
        assert_eq!(
            audit_path_root(2, 5, l2.clone(), &path_2),
            Some(root.clone())
        );
        assert_eq!(
            audit_path_root(4, 5, l4.clone(), std::slice::from_ref(&left)),
            Some(root.clone())
        );
        assert_ne!(
            audit_path_root(3, 5, l2.clone(), &path_2),
            Some(root.clone())
        );
        assert_eq!(
            audit_path_root(5, 5, l4.clone(), std::slice::from_ref(&left)),
            None
        );
        assert_eq!(audit_path_root(4, 5, l4, &[left, l0]), None);
    }
}
