//! Signed certificate timestamps (RFC 6962) embedded in Fulcio certificates: a certificate
//! transparency log's promise that it logged the certificate, so a certificate a
//! compromised Fulcio issued in secret would lack one. cosign requires one by default
//! (`--insecure-ignore-sct` turns that off); so does [`super::keyless`] whenever the trusted
//! root names CT logs.
//!
//! Fulcio asks the log to sign a precertificate, then issues the certificate with the SCTs
//! in the extension `1.3.6.1.4.1.11129.2.4.2`. What the log signed is rebuilt from the
//! certificate: its TBS without that extension (the precertificate's, whose poison
//! extension Fulcio leaves out of the final certificate), and the SHA-256 of the issuing
//! CA's SubjectPublicKeyInfo. x509-cert's `sct` feature parses the TLS encoding of the list.

use sha2::{Digest as _, Sha256};
use x509_cert::der::asn1::Any;
use x509_cert::der::oid::AssociatedOid as _;
use x509_cert::der::{Decode as _, Encode as _, Tag, TagNumber, Tagged as _};
use x509_cert::ext::pkix::sct::{
    self, HashAlgorithm, SignatureAlgorithm, SignatureAndHashAlgorithm, SignedCertificateTimestamp,
    SignedCertificateTimestampList,
};
use x509_cert::ext::Extensions;
use x509_cert::spki::ObjectIdentifier;
use x509_cert::Certificate;

use crate::trust::keys;
use crate::trust::trusted_root::{format_time, TransparencyLog};

/// `extensions [3] EXPLICIT Extensions` in a TBSCertificate.
const EXTENSIONS_TAG: Tag = Tag::ContextSpecific {
    constructed: true,
    number: TagNumber(3),
};

/// Whether one SCT embedded in `leaf`, by a CT log of `ct_logs` valid at the SCT's time,
/// verifies for `leaf` as issued by `issuer`; else why none does.
pub(crate) fn check_embedded(
    ct_logs: &[TransparencyLog],
    leaf: &Certificate,
    issuer: &Certificate,
) -> Result<(), String> {
    let (_, list) = leaf
        .tbs_certificate()
        .get_extension::<SignedCertificateTimestampList>()
        .map_err(|e| format!("SCT list extension: {e}"))?
        .ok_or_else(|| "it embeds no signed certificate timestamp (SCT)".to_owned())?;
    let scts = list
        .parse_timestamps()
        .map_err(|e| format!("SCT list: {}", describe(e)))?;
    if scts.is_empty() {
        return Err("its SCT list is empty".to_owned());
    }
    let tbs = precertificate_tbs(leaf)?;
    let issuer_spki = issuer
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .map_err(|e| format!("issuer key: {e}"))?;
    let issuer_key_hash = Sha256::digest(issuer_spki);
    let mut reasons = Vec::new();
    for (index, serialized) in scts.iter().enumerate() {
        let checked = serialized
            .parse_timestamp()
            .map_err(describe)
            .and_then(|sct| check(ct_logs, &sct, &issuer_key_hash, &tbs));
        match checked {
            Ok(()) => return Ok(()),
            Err(reason) => reasons.push(format!("SCT {index}: {reason}")),
        }
    }
    Err(reasons.join("; "))
}

fn check(
    ct_logs: &[TransparencyLog],
    sct: &SignedCertificateTimestamp,
    issuer_key_hash: &[u8],
    tbs: &[u8],
) -> Result<(), String> {
    let log = ct_logs
        .iter()
        .find(|log| log.id == sct.log_id.key_id)
        .ok_or_else(|| {
            format!(
                "by CT log {}, which the trusted root does not name",
                hex::encode(sct.log_id.key_id)
            )
        })?;
    let seconds = sct.timestamp / 1000;
    if !log.valid.contains(seconds) {
        return Err(format!(
            "made at {}, when its CT log's key was not valid",
            format_time(seconds)
        ));
    }
    let algorithm = x509_algorithm(&sct.signature.algorithm).ok_or_else(|| {
        format!(
            "unsupported signature algorithm {:?}",
            sct.signature.algorithm
        )
    })?;
    let signed = signed_data(sct, issuer_key_hash, tbs)?;
    if !log
        .key
        .verifies_x509(algorithm, &signed, sct.signature.signature.as_slice())
    {
        return Err("its signature does not verify with its CT log's key".to_owned());
    }
    Ok(())
}

/// What a log signs for a precertificate (RFC 6962 3.2): version, signature type
/// `certificate_timestamp`, timestamp, entry type `precert_entry`, issuer key hash,
/// `tbs_certificate<1..2^24-1>`, `extensions<0..2^16-1>`.
fn signed_data(
    sct: &SignedCertificateTimestamp,
    issuer_key_hash: &[u8],
    tbs: &[u8],
) -> Result<Vec<u8>, String> {
    let tbs_length = u32::try_from(tbs.len())
        .ok()
        .filter(|length| *length < 1 << 24)
        .ok_or_else(|| "the certificate is too large for an SCT".to_owned())?;
    let extensions = sct.extensions.as_slice();
    let extensions_length = u16::try_from(extensions.len())
        .map_err(|_| "SCT extensions longer than 65535 bytes".to_owned())?;
    let mut signed = Vec::with_capacity(tbs.len() + extensions.len() + 48);
    signed.extend_from_slice(&[0, 0]); // v1, certificate_timestamp
    signed.extend_from_slice(&sct.timestamp.to_be_bytes());
    signed.extend_from_slice(&[0, 1]); // precert_entry
    signed.extend_from_slice(issuer_key_hash);
    signed.extend_from_slice(&tbs_length.to_be_bytes()[1..]);
    signed.extend_from_slice(tbs);
    signed.extend_from_slice(&extensions_length.to_be_bytes());
    signed.extend_from_slice(extensions);
    Ok(signed)
}

/// The leaf's TBSCertificate without its SCT list extension, DER: the precertificate's.
fn precertificate_tbs(leaf: &Certificate) -> Result<Vec<u8>, String> {
    let malformed = |e: x509_cert::der::Error| format!("cannot rebuild its precertificate: {e}");
    let der = leaf.tbs_certificate().to_der().map_err(malformed)?;
    let mut fields = Vec::<Any>::from_der(&der).map_err(malformed)?;
    let Some(field) = fields
        .iter_mut()
        .find(|field| field.tag() == EXTENSIONS_TAG)
    else {
        return Err("cannot rebuild its precertificate: no extensions".to_owned());
    };
    let kept: Extensions = Extensions::from_der(field.value())
        .map_err(malformed)?
        .into_iter()
        .filter(|extension| extension.extn_id != SignedCertificateTimestampList::OID)
        .collect();
    *field = Any::new(EXTENSIONS_TAG, kept.to_der().map_err(malformed)?).map_err(malformed)?;
    fields.to_der().map_err(malformed)
}

/// The X.509 signature algorithm of a TLS `SignatureAndHashAlgorithm`.
fn x509_algorithm(algorithm: &SignatureAndHashAlgorithm) -> Option<ObjectIdentifier> {
    match (&algorithm.hash, &algorithm.signature) {
        (HashAlgorithm::Sha256, SignatureAlgorithm::Ecdsa) => Some(keys::OID_ECDSA_WITH_SHA256),
        (HashAlgorithm::Sha384, SignatureAlgorithm::Ecdsa) => Some(keys::OID_ECDSA_WITH_SHA384),
        (HashAlgorithm::Sha256, SignatureAlgorithm::Rsa) => Some(keys::OID_SHA256_WITH_RSA),
        (HashAlgorithm::Sha384, SignatureAlgorithm::Rsa) => Some(keys::OID_SHA384_WITH_RSA),
        (HashAlgorithm::Sha512, SignatureAlgorithm::Rsa) => Some(keys::OID_SHA512_WITH_RSA),
        (HashAlgorithm::Intrinsic, SignatureAlgorithm::Ed25519) => Some(keys::OID_ED25519),
        _ => None,
    }
}

fn describe(error: sct::Error) -> String {
    match error {
        sct::Error::Der(error) => error.to_string(),
        sct::Error::Tls(error) => error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trust::base64;
    use crate::trust::trusted_root::tests::real_root_and_leaf;
    use crate::trust::trusted_root::TrustedRoot;
    use crate::trust::x509::parse_certificate;

    /// Checks the SCTs of `leaf` against the CT logs of `root`, as [`verify`] does once the
    /// chain is checked.
    fn check_scts(root: &serde_json::Value, leaf: &[u8]) -> Result<(), String> {
        let root = TrustedRoot::from_json(&serde_json::to_vec(root).unwrap()).unwrap();
        let leaf = parse_certificate(leaf).unwrap();
        let issued = leaf
            .tbs_certificate()
            .validity()
            .not_before
            .to_unix_duration()
            .as_secs();
        // By name and time only: the tampered leaf below no longer verifies with it.
        let issuer = root
            .authorities
            .iter()
            .filter(|authority| authority.valid.contains(issued))
            .filter_map(|authority| authority.chain.first())
            .find(|ca| ca.tbs_certificate().subject() == leaf.tbs_certificate().issuer())
            .expect("a Fulcio CA of the trusted root issued the real leaf");
        check_embedded(&root.ct_logs, &leaf, issuer)
    }

    #[test]
    fn real_fulcio_certificate_has_a_valid_sct() {
        let (root, leaf) = real_root_and_leaf();
        assert_eq!(check_scts(&root, &leaf), Ok(()));

        // Only the 2021 test log is named: the SCT is by a log the root does not name.
        let mut without_log = root.clone();
        without_log["ctlogs"].as_array_mut().unwrap().truncate(1);
        let reason = check_scts(&without_log, &leaf).unwrap_err();
        assert!(
            reason.contains("which the trusted root does not name"),
            "{reason}"
        );

        // The 2022 log's ID with another key (Rekor's): the signature does not verify.
        let mut other_key = root.clone();
        other_key["ctlogs"][1]["publicKey"]["rawBytes"] =
            root["tlogs"][0]["publicKey"]["rawBytes"].clone();
        let reason = check_scts(&other_key, &leaf).unwrap_err();
        assert!(
            reason.contains("does not verify with its CT log's key"),
            "{reason}"
        );

        // The log's key had expired by the SCT's time.
        let mut expired = root.clone();
        expired["ctlogs"][1]["publicKey"]["validFor"]["end"] = "2023-01-01T00:00:00Z".into();
        let reason = check_scts(&expired, &leaf).unwrap_err();
        assert!(
            reason.contains("when its CT log's key was not valid"),
            "{reason}"
        );

        // One bit of the SCT's timestamp changed (it follows the 32-byte log ID).
        let log_id = base64::decode("3T0wasbHETJjGR4cmWc3AqJKXrjePK3/h4pygC8p7o4=").unwrap();
        let at = leaf
            .windows(log_id.len())
            .position(|window| window == log_id)
            .expect("the SCT names the 2022 log");
        let mut tampered = leaf.clone();
        tampered[at + log_id.len() + 7] ^= 1;
        let reason = check_scts(&root, &tampered).unwrap_err();
        assert!(
            reason.contains("does not verify with its CT log's key"),
            "{reason}"
        );
    }

    #[test]
    fn certificates_without_an_sct_are_refused_when_the_root_names_ct_logs() {
        let (root, _) = real_root_and_leaf();
        // A Fulcio CA certificate carries no SCT list.
        let ca = root["certificateAuthorities"][1]["certChain"]["certificates"][0]["rawBytes"]
            .as_str()
            .and_then(|text| base64::decode(text).ok())
            .unwrap();
        let ca = parse_certificate(&ca).unwrap();
        let root = TrustedRoot::from_json(&serde_json::to_vec(&root).unwrap()).unwrap();
        let reason = check_embedded(&root.ct_logs, &ca, &ca).unwrap_err();
        assert!(
            reason.contains("embeds no signed certificate timestamp"),
            "{reason}"
        );
    }
}
