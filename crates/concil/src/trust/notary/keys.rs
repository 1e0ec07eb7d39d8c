//! Notary's key types and signature methods, on the public keys of [`crate::trust::keys`].
//!
//! | keytype | `keyval.public` (base64 of) |
//! |---|---|
//! | `ecdsa`, `rsa` | DER SubjectPublicKeyInfo |
//! | `ecdsa-x509`, `rsa-x509` | a PEM certificate (chain: leaf first) |
//! | `ed25519` | the 32 raw key bytes |
//!
//! | method | signature |
//! |---|---|
//! | `ecdsa` | raw `r ‖ s` over SHA-256 of the message, whatever the curve |
//! | `eddsa` | Ed25519 |
//! | `rsapss` (and PyCrypto's `pycrypto-pkcs#1 pss`) | RSASSA-PSS, SHA-256 |
//! | `rsapkcs1v15` | RSASSA-PKCS1-v1_5, SHA-256 |
//!
//! A key's ID is the hex SHA-256 of its canonical JSON
//! `{"keytype":…,"keyval":{"private":null,"public":…}}`; a key listed under another ID is
//! not used, so one key can never be counted twice towards a threshold.
//!
//! Written here rather than taken from a crate: no maintained Rust crate speaks Notary's TUF
//! dialect (`tough` and `tuf` implement the TUF specification's key formats and canonical
//! JSON, not Notary's x509 keys, raw ECDSA signatures and base64 hashes).

use p256::ecdsa::signature::hazmat::PrehashVerifier as _;
use p256::ecdsa::signature::Verifier as _;
use sha2::{Digest as _, Sha256};
use x509_cert::der::Encode as _;
use x509_cert::Certificate;

use super::metadata::Key;
use crate::trust::base64;
use crate::trust::keys::PublicKey;
use crate::trust::x509::{check_ca, signed_by};

/// A usable TUF key: its ID, the public key, and for `-x509` types the certificates.
#[derive(Debug, Clone)]
pub struct TufKey {
    /// The key ID (the SHA-256 of its canonical JSON).
    pub id: String,
    /// The public key signatures are checked with.
    pub key: PublicKey,
    /// The public key's bytes (DER SubjectPublicKeyInfo, raw for Ed25519): one key listed
    /// under two IDs (bare and as a certificate) counts once towards a threshold.
    pub key_bytes: Vec<u8>,
    /// Leaf first; empty for bare keys.
    pub certificates: Vec<Certificate>,
}

/// Notary accepts certificates whose validity starts up to a day after the local clock.
const NOT_BEFORE_SKEW_SECS: i64 = 24 * 60 * 60;

/// The ID Notary gives a key.
pub fn key_id(key: &Key) -> String {
    let canonical = serde_json::json!({
        "keytype": key.keytype,
        "keyval": {"private": null, "public": key.keyval.public},
    });
    // serde_json writes maps with sorted keys and no whitespace: canonical JSON for these
    // ASCII strings.
    hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
}

/// Parses the key listed under `id`; the error says why it cannot be used.
pub fn parse_key(id: &str, key: &Key) -> Result<TufKey, String> {
    if key_id(key) != id {
        return Err(format!(
            "key {id} is listed under an ID that is not its own"
        ));
    }
    let raw = base64::decode(&key.keyval.public)
        .map_err(|e| format!("key {id}: public key is not base64: {e}"))?;
    let bad = |reason: String| format!("key {id} ({}): {reason}", key.keytype);
    let (public, key_bytes, certificates) = match key.keytype.as_str() {
        "ecdsa" | "rsa" => (
            PublicKey::from_der(&raw).map_err(|e| bad(e.to_string()))?,
            raw,
            Vec::new(),
        ),
        "ecdsa-x509" | "rsa-x509" => {
            let certificates =
                Certificate::load_pem_chain(&raw).map_err(|e| bad(format!("certificate: {e}")))?;
            let leaf = certificates
                .first()
                .ok_or_else(|| bad("no certificate".to_owned()))?;
            let spki = leaf
                .tbs_certificate()
                .subject_public_key_info()
                .to_der()
                .map_err(|e| bad(e.to_string()))?;
            (
                PublicKey::from_der(&spki).map_err(|e| bad(e.to_string()))?,
                spki,
                certificates,
            )
        }
        "ed25519" => {
            let bytes: [u8; 32] = raw
                .as_slice()
                .try_into()
                .map_err(|_| bad(format!("{} bytes, expected 32", raw.len())))?;
            let key =
                ed25519_dalek::VerifyingKey::from_bytes(&bytes).map_err(|e| bad(e.to_string()))?;
            (PublicKey::Ed25519(key), bytes.to_vec(), Vec::new())
        }
        other => return Err(format!("key {id}: unsupported key type {other:?}")),
    };
    let expected_family = match key.keytype.as_str() {
        "ecdsa" | "ecdsa-x509" => {
            matches!(public, PublicKey::EcdsaP256(_) | PublicKey::EcdsaP384(_))
        }
        "rsa" | "rsa-x509" => matches!(public, PublicKey::Rsa(_)),
        _ => true,
    };
    if !expected_family {
        return Err(bad(format!("holds a {} key", public.algorithm())));
    }
    Ok(TufKey {
        id: id.to_owned(),
        key: public,
        key_bytes,
        certificates,
    })
}

impl TufKey {
    /// Whether `signature` (raw bytes) by `method` is this key's signature of `message`.
    pub fn verifies(&self, method: &str, message: &[u8], signature: &[u8]) -> bool {
        match (method, &self.key) {
            ("ecdsa", PublicKey::EcdsaP256(key)) => p256::ecdsa::Signature::from_slice(signature)
                .is_ok_and(|s| key.verify(message, &s).is_ok()),
            ("ecdsa", PublicKey::EcdsaP384(key)) => p384::ecdsa::Signature::from_slice(signature)
                .is_ok_and(|s| key.verify_prehash(&Sha256::digest(message), &s).is_ok()),
            ("eddsa", PublicKey::Ed25519(key)) => ed25519_dalek::Signature::from_slice(signature)
                .is_ok_and(|s| key.verify(message, &s).is_ok()),
            ("rsapss" | "pycrypto-pkcs#1 pss", PublicKey::Rsa(key)) => {
                rsa::pss::Signature::try_from(signature).is_ok_and(|s| {
                    rsa::pss::VerifyingKey::<Sha256>::new_with_auto_salt_len(key.clone())
                        .verify(message, &s)
                        .is_ok()
                })
            }
            ("rsapkcs1v15", PublicKey::Rsa(key)) => rsa::pkcs1v15::Signature::try_from(signature)
                .is_ok_and(|s| {
                    rsa::pkcs1v15::VerifyingKey::<Sha256>::new(key.clone())
                        .verify(message, &s)
                        .is_ok()
                }),
            _ => false,
        }
    }

    /// For `-x509` keys: whether the leaf certificate is valid at `now` (seconds since the
    /// epoch). Notary does not count signatures by keys whose certificate has expired.
    pub fn certificate_valid_at(&self, now: i64) -> Result<(), String> {
        let Some(leaf) = self.certificates.first() else {
            return Ok(());
        };
        check_validity(leaf, now).map_err(|reason| format!("key {}: {reason}", self.id))
    }

    /// The common name of the leaf certificate (Notary names a root certificate after its GUN).
    pub fn common_name(&self) -> Option<String> {
        let leaf = self.certificates.first()?;
        let name = leaf.tbs_certificate().subject().common_name().ok()??;
        Some(name.value().into_owned())
    }

    /// Whether the key's certificate chains (through the intermediates sent with it) to one of
    /// `anchors`, every certificate on the way valid at `now`.
    pub fn chains_to(&self, anchors: &[Certificate], now: i64) -> Result<(), String> {
        let Some(leaf) = self.certificates.first() else {
            return Err(format!("key {} is not a certificate", self.id));
        };
        let mut current = leaf;
        // Leaf, then at most a few intermediates.
        for _ in 0..=self.certificates.len() {
            check_validity(current, now)?;
            if let Some(anchor) = anchors.iter().find(|a| signed_by(current, a)) {
                return check_validity(anchor, now);
            }
            match self.certificates.iter().find(|c| {
                !std::ptr::eq(*c, current) && check_ca(c, 0).is_ok() && signed_by(current, c)
            }) {
                Some(intermediate) => current = intermediate,
                None => break,
            }
        }
        Err(format!(
            "the certificate of key {} ({}) is not issued by a pinned CA",
            self.id,
            leaf.tbs_certificate().subject()
        ))
    }
}

fn check_validity(certificate: &Certificate, now: i64) -> Result<(), String> {
    let validity = certificate.tbs_certificate().validity();
    let secs = |t: &x509_cert::time::Time| {
        i64::try_from(t.to_unix_duration().as_secs()).unwrap_or(i64::MAX)
    };
    if now + NOT_BEFORE_SKEW_SECS < secs(&validity.not_before) || now > secs(&validity.not_after) {
        return Err(format!(
            "certificate {} is valid from {} to {}",
            certificate.tbs_certificate().subject(),
            validity.not_before,
            validity.not_after
        ));
    }
    Ok(())
}

/// Parses the certificates of a PEM file (a `trust_pinning.ca` file).
pub fn load_certificates(pem: &[u8]) -> Result<Vec<Certificate>, String> {
    let certificates = Certificate::load_pem_chain(pem).map_err(|e| e.to_string())?;
    if certificates.is_empty() {
        return Err("no certificate".to_owned());
    }
    Ok(certificates)
}

#[cfg(test)]
mod tests {
    //! Key types and methods the real Notary vectors (`vector_tests`) cannot show: bare `rsa`
    //! keys, PKCS#1 v1.5, and P-384; keys and signatures made by the `openssl` command.

    use std::path::Path;

    use super::*;
    use crate::trust::keys::tests::openssl;

    const MESSAGE: &[u8] = b"{\"_type\":\"Targets\",\"version\":1}";

    /// A TUF key of `keytype` for `key.pem` (public part as DER SubjectPublicKeyInfo).
    fn tuf_key(dir: &Path, genpkey: &[&str], keytype: &str) -> TufKey {
        let mut args = vec!["genpkey", "-out", "key.pem"];
        args.extend_from_slice(genpkey);
        openssl(&args, dir);
        let der = openssl(
            &["pkey", "-in", "key.pem", "-pubout", "-outform", "DER"],
            dir,
        );
        let key = Key {
            keytype: keytype.to_owned(),
            keyval: super::super::metadata::KeyValue {
                public: base64::encode(der),
            },
        };
        parse_key(&key_id(&key), &key).expect("key parses")
    }

    fn sign(dir: &Path, options: &[&str]) -> Vec<u8> {
        std::fs::write(dir.join("message"), MESSAGE).unwrap();
        let mut args = vec!["dgst", "-sha256", "-sign", "key.pem"];
        args.extend_from_slice(options);
        args.push("message");
        openssl(&args, dir)
    }

    #[test]
    fn bare_rsa_keys_with_pss_and_pkcs1() {
        let dir = tempfile::tempdir().unwrap();
        let key = tuf_key(
            dir.path(),
            &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
            "rsa",
        );
        let pss = sign(
            dir.path(),
            &[
                "-sigopt",
                "rsa_padding_mode:pss",
                "-sigopt",
                "rsa_pss_saltlen:32",
            ],
        );
        assert!(key.verifies("rsapss", MESSAGE, &pss));
        assert!(!key.verifies("rsapkcs1v15", MESSAGE, &pss));
        assert!(!key.verifies("rsapss", b"{}", &pss));
        let pkcs1 = sign(dir.path(), &[]);
        assert!(key.verifies("rsapkcs1v15", MESSAGE, &pkcs1));
        assert!(!key.verifies("rsapss", MESSAGE, &pkcs1));
        assert!(!key.verifies("ecdsa", MESSAGE, &pkcs1));
    }

    /// Notary's `ecdsa` method is raw r‖s over SHA-256 whatever the curve; openssl writes DER.
    #[test]
    fn p384_raw_signature_over_sha256() {
        let dir = tempfile::tempdir().unwrap();
        let key = tuf_key(
            dir.path(),
            &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"],
            "ecdsa",
        );
        let der = sign(dir.path(), &[]);
        let raw = p384::ecdsa::Signature::from_der(&der).unwrap().to_bytes();
        assert!(key.verifies("ecdsa", MESSAGE, &raw));
        assert!(
            !key.verifies("ecdsa", MESSAGE, &der),
            "DER is not Notary's encoding"
        );
        assert!(!key.verifies("ecdsa", b"{}", &raw));
    }

    #[test]
    fn key_type_must_match_the_key() {
        let dir = tempfile::tempdir().unwrap();
        openssl(
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
                "key.pem",
            ],
            dir.path(),
        );
        let der = openssl(
            &["pkey", "-in", "key.pem", "-pubout", "-outform", "DER"],
            dir.path(),
        );
        let key = Key {
            keytype: "rsa".to_owned(),
            keyval: super::super::metadata::KeyValue {
                public: base64::encode(der),
            },
        };
        let error = parse_key(&key_id(&key), &key).unwrap_err();
        assert!(error.contains("holds a ECDSA P-256 key"), "{error}");
        let unknown = Key {
            keytype: "dsa".to_owned(),
            ..key
        };
        assert!(parse_key(&key_id(&unknown), &unknown)
            .unwrap_err()
            .contains("unsupported key type"));
    }
}
