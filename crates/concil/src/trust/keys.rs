//! Public keys as cosign keeps them (PEM `PUBLIC KEY`, a DER SubjectPublicKeyInfo) and the
//! signature schemes cosign signs with.
//!
//! | key | signature over the payload |
//! |---|---|
//! | ECDSA P-256 | ASN.1 DER, SHA-256 |
//! | ECDSA P-384 | ASN.1 DER, SHA-384 (sigstore's default) or SHA-256 (cosign before 2.5 hashed every key with SHA-256) |
//! | RSA ≥ 2048 bits | SHA-256, PKCS#1 v1.5 (cosign's `LoadVerifier`) or PSS with any salt length (sigstore's RSA-PSS keys) |
//! | Ed25519 | pure Ed25519 over the message |
//!
//! Accepting two hashes (or two paddings) for one key is as safe as accepting one: a forger
//! would still have to forge a signature under that key for one of them.

use std::fmt;
use std::path::PathBuf;

use ed25519_dalek::pkcs8::DecodePublicKey as _;
use p256::ecdsa::signature::hazmat::PrehashVerifier as _;
use p256::ecdsa::signature::Verifier as _;
use rsa::traits::PublicKeyParts as _;
use sha2::{Digest as _, Sha256, Sha384, Sha512};
use spki::der::{pem, Decode as _};
use spki::{ObjectIdentifier, SubjectPublicKeyInfoRef};

/// The extension of public key files in the key directory.
pub const PUBLIC_KEY_EXTENSION: &str = "pub";
/// The PEM label of a public key file.
pub const PUBLIC_KEY_PEM_LABEL: &str = "PUBLIC KEY";

/// Smaller RSA keys are refused, as sigstore does.
const MIN_RSA_BITS: u32 = 2048;

const OID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const OID_RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
pub(super) const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
pub(super) const OID_ECDSA_WITH_SHA256: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
pub(super) const OID_ECDSA_WITH_SHA384: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
pub(super) const OID_SHA256_WITH_RSA: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
pub(super) const OID_SHA384_WITH_RSA: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
pub(super) const OID_SHA512_WITH_RSA: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");

/// Why a file does not hold a usable public key. Never repeats key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyProblem {
    /// Not PEM at all.
    #[error("not a PEM file: {0}")]
    NotPem(String),
    /// PEM, but not a `PUBLIC KEY`.
    #[error("PEM label is {0:?}, expected \"PUBLIC KEY\"")]
    WrongLabel(String),
    /// A `PUBLIC KEY` whose DER is not a SubjectPublicKeyInfo.
    #[error("not a DER SubjectPublicKeyInfo: {0}")]
    NotSubjectPublicKeyInfo(String),
    /// A key algorithm cosign verification does not support.
    #[error("unsupported key algorithm {0} (ECDSA P-256/P-384, RSA and Ed25519 are supported)")]
    UnsupportedAlgorithm(ObjectIdentifier),
    /// An elliptic curve other than P-256 and P-384.
    #[error("unsupported elliptic curve {0} (P-256 and P-384 are supported)")]
    UnsupportedCurve(String),
    /// Key bytes the algorithm refuses.
    #[error("invalid {algorithm} key: {reason}")]
    Invalid {
        /// The kind of key.
        algorithm: KeyAlgorithm,
        /// Why it is invalid.
        reason: String,
    },
    /// An RSA key of fewer than 2048 bits.
    #[error("RSA key of {0} bits; at least {MIN_RSA_BITS} are required")]
    RsaTooSmall(u32),
}

/// The kind of a trusted key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyAlgorithm {
    /// ECDSA on P-256.
    EcdsaP256,
    /// ECDSA on P-384.
    EcdsaP384,
    /// RSA (PKCS#1 v1.5 or PSS signatures).
    Rsa,
    /// Ed25519.
    Ed25519,
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyAlgorithm::EcdsaP256 => "ECDSA P-256",
            KeyAlgorithm::EcdsaP384 => "ECDSA P-384",
            KeyAlgorithm::Rsa => "RSA",
            KeyAlgorithm::Ed25519 => "Ed25519",
        })
    }
}

/// One trusted public key, from `<key dir>/<name>.pub`.
#[derive(Debug, Clone)]
pub struct TrustedKey {
    /// The file name without `.pub`.
    pub name: String,
    /// The key file.
    pub path: PathBuf,
    /// The key it holds.
    pub key: PublicKey,
}

impl TrustedKey {
    /// The kind of key.
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.key.algorithm()
    }
}

/// A public key cosign signatures can be checked with.
#[derive(Clone)]
pub enum PublicKey {
    /// ECDSA on P-256.
    EcdsaP256(p256::ecdsa::VerifyingKey),
    /// ECDSA on P-384.
    EcdsaP384(p384::ecdsa::VerifyingKey),
    /// RSA (PKCS#1 v1.5 or PSS signatures).
    Rsa(rsa::PublicKey),
    /// Ed25519.
    Ed25519(ed25519_dalek::VerifyingKey),
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.algorithm())
    }
}

impl PublicKey {
    /// Parses a PEM `PUBLIC KEY` (what `cosign generate-key-pair` and `openssl pkey -pubout`
    /// write).
    pub fn from_pem(text: &[u8]) -> Result<PublicKey, KeyProblem> {
        let (label, der) = pem::decode_vec(text).map_err(|e| KeyProblem::NotPem(e.to_string()))?;
        if label != PUBLIC_KEY_PEM_LABEL {
            return Err(KeyProblem::WrongLabel(label.to_owned()));
        }
        PublicKey::from_der(&der)
    }

    /// Parses a DER SubjectPublicKeyInfo.
    pub fn from_der(der: &[u8]) -> Result<PublicKey, KeyProblem> {
        let spki = SubjectPublicKeyInfoRef::from_der(der)
            .map_err(|e| KeyProblem::NotSubjectPublicKeyInfo(e.to_string()))?;
        let invalid = |algorithm| {
            move |e: spki::Error| KeyProblem::Invalid {
                algorithm,
                reason: e.to_string(),
            }
        };
        let algorithm = spki.algorithm.oid;
        if algorithm == OID_EC_PUBLIC_KEY {
            let curve = spki
                .algorithm
                .parameters_oid()
                .map_err(|e| KeyProblem::UnsupportedCurve(format!("(no named curve: {e})")))?;
            if curve == OID_P256 {
                p256::ecdsa::VerifyingKey::from_public_key_der(der)
                    .map(PublicKey::EcdsaP256)
                    .map_err(invalid(KeyAlgorithm::EcdsaP256))
            } else if curve == OID_P384 {
                p384::ecdsa::VerifyingKey::from_public_key_der(der)
                    .map(PublicKey::EcdsaP384)
                    .map_err(invalid(KeyAlgorithm::EcdsaP384))
            } else {
                Err(KeyProblem::UnsupportedCurve(curve.to_string()))
            }
        } else if algorithm == OID_RSA_ENCRYPTION {
            let key =
                rsa::PublicKey::from_public_key_der(der).map_err(invalid(KeyAlgorithm::Rsa))?;
            let bits = key.n().bit_width();
            if bits < MIN_RSA_BITS {
                return Err(KeyProblem::RsaTooSmall(bits));
            }
            Ok(PublicKey::Rsa(key))
        } else if algorithm == OID_ED25519 {
            ed25519_dalek::VerifyingKey::from_public_key_der(der)
                .map(PublicKey::Ed25519)
                .map_err(invalid(KeyAlgorithm::Ed25519))
        } else {
            Err(KeyProblem::UnsupportedAlgorithm(algorithm))
        }
    }

    /// The kind of key.
    pub fn algorithm(&self) -> KeyAlgorithm {
        match self {
            PublicKey::EcdsaP256(_) => KeyAlgorithm::EcdsaP256,
            PublicKey::EcdsaP384(_) => KeyAlgorithm::EcdsaP384,
            PublicKey::Rsa(_) => KeyAlgorithm::Rsa,
            PublicKey::Ed25519(_) => KeyAlgorithm::Ed25519,
        }
    }

    /// Whether `signature` is this key's signature of `message` in one of the schemes the
    /// module documentation lists.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        match self {
            PublicKey::EcdsaP256(key) => p256::ecdsa::Signature::from_der(signature)
                .is_ok_and(|signature| key.verify(message, &signature).is_ok()),
            PublicKey::EcdsaP384(key) => {
                p384::ecdsa::Signature::from_der(signature).is_ok_and(|signature| {
                    key.verify(message, &signature).is_ok()
                        || key
                            .verify_prehash(&Sha256::digest(message), &signature)
                            .is_ok()
                })
            }
            PublicKey::Rsa(key) => {
                let pkcs1 = || {
                    rsa::pkcs1v15::Signature::try_from(signature).is_ok_and(|signature| {
                        rsa::pkcs1v15::VerifyingKey::<Sha256>::new(key.clone())
                            .verify(message, &signature)
                            .is_ok()
                    })
                };
                let pss = || {
                    rsa::pss::Signature::try_from(signature).is_ok_and(|signature| {
                        rsa::pss::VerifyingKey::<Sha256>::new_with_auto_salt_len(key.clone())
                            .verify(message, &signature)
                            .is_ok()
                    })
                };
                pkcs1() || pss()
            }
            PublicKey::Ed25519(key) => ed25519_dalek::Signature::from_slice(signature)
                .is_ok_and(|signature| key.verify(message, &signature).is_ok()),
        }
    }

    /// Whether `signature` is this key's signature of `message` under the X.509 signature
    /// `algorithm` (a certificate's `signatureAlgorithm`): exactly that scheme, unlike
    /// [`PublicKey::verifies`]. ECDSA with SHA-256 or SHA-384 on either curve, RSA PKCS#1
    /// v1.5 with SHA-256/384/512, Ed25519; anything else does not verify.
    pub fn verifies_x509(
        &self,
        algorithm: ObjectIdentifier,
        message: &[u8],
        signature: &[u8],
    ) -> bool {
        let ecdsa_digest = || {
            if algorithm == OID_ECDSA_WITH_SHA256 {
                Some(Sha256::digest(message).to_vec())
            } else if algorithm == OID_ECDSA_WITH_SHA384 {
                Some(Sha384::digest(message).to_vec())
            } else {
                None
            }
        };
        match self {
            PublicKey::EcdsaP256(key) => ecdsa_digest().is_some_and(|digest| {
                p256::ecdsa::Signature::from_der(signature)
                    .is_ok_and(|signature| key.verify_prehash(&digest, &signature).is_ok())
            }),
            PublicKey::EcdsaP384(key) => ecdsa_digest().is_some_and(|digest| {
                p384::ecdsa::Signature::from_der(signature)
                    .is_ok_and(|signature| key.verify_prehash(&digest, &signature).is_ok())
            }),
            PublicKey::Rsa(key) => {
                let Ok(signature) = rsa::pkcs1v15::Signature::try_from(signature) else {
                    return false;
                };
                let key = key.clone();
                if algorithm == OID_SHA256_WITH_RSA {
                    rsa::pkcs1v15::VerifyingKey::<Sha256>::new(key)
                        .verify(message, &signature)
                        .is_ok()
                } else if algorithm == OID_SHA384_WITH_RSA {
                    rsa::pkcs1v15::VerifyingKey::<Sha384>::new(key)
                        .verify(message, &signature)
                        .is_ok()
                } else if algorithm == OID_SHA512_WITH_RSA {
                    rsa::pkcs1v15::VerifyingKey::<Sha512>::new(key)
                        .verify(message, &signature)
                        .is_ok()
                } else {
                    false
                }
            }
            PublicKey::Ed25519(_) => algorithm == OID_ED25519 && self.verifies(message, signature),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    //! Keys and signatures made by the `openssl` command, independently of this code (the
    //! helpers serve Notary's key tests too).

    use std::path::Path;
    use std::process::Command;

    use super::*;

    const MESSAGE: &[u8] = b"{\"critical\":{\"type\":\"cosign container image signature\"}}";

    pub(crate) fn openssl(args: &[&str], dir: &Path) -> Vec<u8> {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("run openssl");
        assert!(
            output.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        output.stdout
    }

    /// A private key (`key.pem`) from `genpkey` arguments, and its public key as PEM.
    fn key_pair(dir: &Path, genpkey: &[&str]) -> PublicKey {
        let mut args = vec!["genpkey", "-out", "key.pem"];
        args.extend_from_slice(genpkey);
        openssl(&args, dir);
        let public = openssl(&["pkey", "-in", "key.pem", "-pubout"], dir);
        PublicKey::from_pem(&public).expect("public key parses")
    }

    /// `openssl dgst`/`pkeyutl` signature of [`MESSAGE`] with `key.pem`.
    fn sign(dir: &Path, args: &[&str]) -> Vec<u8> {
        std::fs::write(dir.join("message"), MESSAGE).unwrap();
        let mut all = vec!["dgst", "-sign", "key.pem"];
        all.extend_from_slice(args);
        all.push("message");
        openssl(&all, dir)
    }

    fn check(key: &PublicKey, signature: &[u8]) {
        assert!(
            key.verifies(MESSAGE, signature),
            "{key:?} rejects its own signature"
        );
        assert!(!key.verifies(b"another message", signature));
        let mut flipped = signature.to_vec();
        if let Some(byte) = flipped.last_mut() {
            *byte ^= 1;
        }
        assert!(!key.verifies(MESSAGE, &flipped));
        assert!(!key.verifies(MESSAGE, b""));
    }

    #[test]
    fn ecdsa_p256_sha256() {
        let dir = tempfile::tempdir().unwrap();
        let key = key_pair(
            dir.path(),
            &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
        );
        assert_eq!(key.algorithm(), KeyAlgorithm::EcdsaP256);
        check(&key, &sign(dir.path(), &["-sha256"]));
        // SHA-384 is not a P-256 scheme.
        assert!(!key.verifies(MESSAGE, &sign(dir.path(), &["-sha384"])));
    }

    #[test]
    fn ecdsa_p384_sha384_and_sha256() {
        let dir = tempfile::tempdir().unwrap();
        let key = key_pair(
            dir.path(),
            &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"],
        );
        assert_eq!(key.algorithm(), KeyAlgorithm::EcdsaP384);
        check(&key, &sign(dir.path(), &["-sha384"]));
        check(&key, &sign(dir.path(), &["-sha256"]));
        assert!(!key.verifies(MESSAGE, &sign(dir.path(), &["-sha512"])));
    }

    #[test]
    fn rsa_pkcs1_and_pss() {
        let dir = tempfile::tempdir().unwrap();
        let key = key_pair(
            dir.path(),
            &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
        );
        assert_eq!(key.algorithm(), KeyAlgorithm::Rsa);
        check(&key, &sign(dir.path(), &["-sha256"]));
        for salt in ["digest", "max", "0"] {
            let pss = sign(
                dir.path(),
                &[
                    "-sha256",
                    "-sigopt",
                    "rsa_padding_mode:pss",
                    "-sigopt",
                    &format!("rsa_pss_saltlen:{salt}"),
                ],
            );
            check(&key, &pss);
        }
        assert!(!key.verifies(MESSAGE, &sign(dir.path(), &["-sha512"])));
    }

    #[test]
    fn x509_algorithms_are_exact() {
        let oid = |text| ObjectIdentifier::new_unwrap(text);
        let dir = tempfile::tempdir().unwrap();
        let p384 = key_pair(
            dir.path(),
            &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"],
        );
        let sha384 = sign(dir.path(), &["-sha384"]);
        let sha256 = sign(dir.path(), &["-sha256"]);
        assert!(p384.verifies_x509(oid("1.2.840.10045.4.3.3"), MESSAGE, &sha384));
        assert!(p384.verifies_x509(oid("1.2.840.10045.4.3.2"), MESSAGE, &sha256));
        assert!(!p384.verifies_x509(oid("1.2.840.10045.4.3.2"), MESSAGE, &sha384));
        assert!(!p384.verifies_x509(oid("1.2.840.10045.4.3.3"), b"other", &sha384));
        let p256 = key_pair(
            dir.path(),
            &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
        );
        let sha256 = sign(dir.path(), &["-sha256"]);
        assert!(p256.verifies_x509(oid("1.2.840.10045.4.3.2"), MESSAGE, &sha256));
        assert!(!p256.verifies_x509(oid("1.2.840.113549.1.1.11"), MESSAGE, &sha256));
        let rsa = key_pair(
            dir.path(),
            &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
        );
        let sha512 = sign(dir.path(), &["-sha512"]);
        assert!(rsa.verifies_x509(oid("1.2.840.113549.1.1.13"), MESSAGE, &sha512));
        assert!(!rsa.verifies_x509(oid("1.2.840.113549.1.1.11"), MESSAGE, &sha512));
    }

    #[test]
    fn ed25519() {
        let dir = tempfile::tempdir().unwrap();
        let key = key_pair(dir.path(), &["-algorithm", "ED25519"]);
        assert_eq!(key.algorithm(), KeyAlgorithm::Ed25519);
        std::fs::write(dir.path().join("message"), MESSAGE).unwrap();
        let signature = openssl(
            &[
                "pkeyutl", "-sign", "-inkey", "key.pem", "-rawin", "-in", "message",
            ],
            dir.path(),
        );
        check(&key, &signature);
    }

    #[test]
    fn unusable_keys_are_refused_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path();
        let public_of = |genpkey: &[&str]| {
            let mut args = vec!["genpkey", "-out", "other.pem"];
            args.extend_from_slice(genpkey);
            openssl(&args, path);
            openssl(&["pkey", "-in", "other.pem", "-pubout"], path)
        };
        let k256 = public_of(&[
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:secp256k1",
        ]);
        assert_eq!(
            PublicKey::from_pem(&k256).unwrap_err(),
            KeyProblem::UnsupportedCurve("1.3.132.0.10".to_owned())
        );
        let small_rsa = public_of(&["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"]);
        assert_eq!(
            PublicKey::from_pem(&small_rsa).unwrap_err(),
            KeyProblem::RsaTooSmall(1024)
        );
        let x448 = public_of(&["-algorithm", "X448"]);
        assert!(matches!(
            PublicKey::from_pem(&x448).unwrap_err(),
            KeyProblem::UnsupportedAlgorithm(oid) if oid.to_string() == "1.3.101.111"
        ));
        let private = std::fs::read(path.join("other.pem")).unwrap();
        assert_eq!(
            PublicKey::from_pem(&private).unwrap_err(),
            KeyProblem::WrongLabel("PRIVATE KEY".to_owned())
        );
        assert!(matches!(
            PublicKey::from_pem(b"ssh-ed25519 AAAA"),
            Err(KeyProblem::NotPem(_))
        ));
        let garbage = pem::encode_string(
            PUBLIC_KEY_PEM_LABEL,
            pem::LineEnding::LF,
            b"\x30\x03\x02\x01\x01",
        )
        .unwrap();
        assert!(matches!(
            PublicKey::from_pem(garbage.as_bytes()),
            Err(KeyProblem::NotSubjectPublicKeyInfo(_))
        ));
    }
}
