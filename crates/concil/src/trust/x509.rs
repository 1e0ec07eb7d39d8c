//! X.509 certificate checks shared by keyless cosign (Fulcio chains) and Notary (root
//! certificates pinned to a CA): signatures through [`PublicKey::verifies_x509`].

use x509_cert::der::{Decode as _, Encode as _};
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage};
use x509_cert::Certificate;

use crate::trust::keys::PublicKey;

/// Whether `cert` may issue certificates with `below` CA certificates of the chain between
/// it and the leaf (RFC 5280 basic constraints, path length, key usage), as Go's chain
/// building (cosign, sigstore-go) demands of a trusted root's certificates.
pub(crate) fn check_ca(cert: &Certificate, below: usize) -> Result<(), String> {
    let tbs = cert.tbs_certificate();
    let constraints = tbs
        .get_extension::<BasicConstraints>()
        .map_err(|e| format!("basic constraints: {e}"))?
        .map(|(_, constraints)| constraints);
    let Some(constraints) = constraints.filter(|constraints| constraints.ca) else {
        return Err("not a CA certificate (basic constraints)".to_owned());
    };
    if let Some(path_length) = constraints.path_len_constraint {
        if usize::from(path_length) < below {
            return Err(format!(
                "its path length constraint {path_length} allows fewer than the {below} CA certificates below it"
            ));
        }
    }
    let key_usage = tbs
        .get_extension::<KeyUsage>()
        .map_err(|e| format!("key usage: {e}"))?;
    if key_usage.is_some_and(|(_, usage)| !usage.key_cert_sign()) {
        return Err("key usage does not allow signing certificates".to_owned());
    }
    Ok(())
}

/// Whether `issuer` names and signed `cert`.
pub(crate) fn signed_by(cert: &Certificate, issuer: &Certificate) -> bool {
    if cert.tbs_certificate().issuer() != issuer.tbs_certificate().subject() {
        return false;
    }
    let (Ok(tbs), Ok(spki), Some(signature)) = (
        cert.tbs_certificate().to_der(),
        issuer.tbs_certificate().subject_public_key_info().to_der(),
        cert.signature().as_bytes(),
    ) else {
        return false;
    };
    PublicKey::from_der(&spki)
        .is_ok_and(|key| key.verifies_x509(cert.signature_algorithm().oid, &tbs, signature))
}

/// Whether `time` (seconds since the epoch) lies in the certificate's validity.
pub(super) fn valid_at(cert: &Certificate, time: u64) -> bool {
    let validity = cert.tbs_certificate().validity();
    validity.not_before.to_unix_duration().as_secs() <= time
        && time <= validity.not_after.to_unix_duration().as_secs()
}

/// A DER certificate; re-encoding must give the same bytes, so the TBS bytes signatures
/// are checked over are the ones received.
pub(crate) fn parse_certificate(der: &[u8]) -> Result<Certificate, String> {
    let certificate =
        Certificate::from_der(der).map_err(|e| format!("not an X.509 certificate: {e}"))?;
    if certificate.to_der().ok().as_deref() != Some(der) {
        return Err("not in canonical DER".to_owned());
    }
    Ok(certificate)
}
