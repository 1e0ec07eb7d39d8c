//! Managing the key directory for the CLI: list the trusted keys, import a public key,
//! generate a key pair as `cosign generate-key-pair` does.
//!
//! A generated private key is written in cosign's encrypted format, so cosign (and
//! sigstore-rs) can sign with it: PEM `ENCRYPTED SIGSTORE PRIVATE KEY` around the JSON
//!
//! ```json
//! {"kdf": {"name": "scrypt", "params": {"N": 65536, "r": 8, "p": 1}, "salt": "<base64, 32 bytes>"},
//!  "cipher": {"name": "nacl/secretbox", "nonce": "<base64, 24 bytes>"},
//!  "ciphertext": "<base64: secretbox of the PKCS#8 DER private key>"}
//! ```
//!
//! with the secretbox key derived from the password by scrypt. Files are never overwritten;
//! a public key reaches its final name only when complete.

use std::fs;
use std::io::{Read as _, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use crypto_secretbox::aead::{Aead as _, KeyInit as _};
use p256::elliptic_curve::Generate as _;
use p256::pkcs8::{EncodePrivateKey as _, EncodePublicKey as _};
use serde::Serialize;
use spki::der::pem::{self, LineEnding};

use crate::trust::base64;
use crate::trust::cosign::Verifier;
use crate::trust::error::TrustError;
use crate::trust::keys::{KeyProblem, PublicKey, TrustedKey, PUBLIC_KEY_EXTENSION};

/// The PEM label cosign 2 writes encrypted private keys with.
pub const ENCRYPTED_PRIVATE_KEY_PEM_LABEL: &str = "ENCRYPTED SIGSTORE PRIVATE KEY";
/// scrypt cost as cosign uses it (go-securesystemslib's default): N = 2^16, r = 8, p = 1.
const SCRYPT_LOG_N: u8 = 16;
const SCRYPT_R: u32 = 8;
const SCRYPT_P: u32 = 1;
const SALT_LEN: usize = 32;
/// A public key file to import is a few KiB at most.
const MAX_IMPORT_SIZE: u64 = 64 * 1024;
const MAX_NAME_LEN: usize = 64;

/// What can go wrong managing the key directory.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyManagementError {
    /// The trusted keys could not be read.
    #[error(transparent)]
    Keys(#[from] TrustError),

    /// A key file to import could not be read.
    #[error("cannot read {}", path.display())]
    ReadKey {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A key file to import is not a usable public key.
    #[error("{}: {problem}", path.display())]
    NotAKey {
        /// The file concerned.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        problem: KeyProblem,
    },

    /// A key name that cannot be a file name in the key directory.
    #[error("invalid key name {name:?}: use letters, digits, '.', '_' and '-', not starting with '.' or '-'")]
    InvalidKeyName {
        /// The name given.
        name: String,
    },

    /// Importing or generating a key would overwrite this file.
    #[error("{} exists already", path.display())]
    KeyExists {
        /// The file concerned.
        path: PathBuf,
    },

    /// Writing a key file failed.
    #[error("cannot write key file {}", path.display())]
    WriteKey {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// Making a key pair failed (no randomness, encoding).
    #[error("cannot generate a key pair: {reason}")]
    KeyGeneration {
        /// What failed.
        reason: String,
    },
}

/// A key pair made by [`generate_key_pair`].
#[derive(Debug, Clone)]
pub struct GeneratedKey {
    /// The public key, now trusted (in the key directory).
    pub public_key: TrustedKey,
    /// The encrypted private key, for `cosign sign --key`.
    pub private_key_path: PathBuf,
}

/// The trusted keys of `dir`, in name order (none if it does not exist).
pub fn list_keys(dir: &Path) -> Result<Vec<TrustedKey>, KeyManagementError> {
    Ok(Verifier::from_key_dir(dir).map(|verifier| verifier.keys().to_vec())?)
}

/// Copies the PEM public key `file` into `dir` as `<name>.pub`; `name` defaults to the file
/// name without its extension. Refuses a file that is not a supported public key and an
/// existing name.
pub fn import_key(
    dir: &Path,
    file: &Path,
    name: Option<&str>,
) -> Result<TrustedKey, KeyManagementError> {
    let name = match name {
        Some(name) => name.to_owned(),
        None => file
            .file_stem()
            .map(|stem| stem.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    check_name(&name)?;
    let mut text = Vec::new();
    fs::File::open(file)
        .and_then(|opened| opened.take(MAX_IMPORT_SIZE + 1).read_to_end(&mut text))
        .map_err(|source| KeyManagementError::ReadKey {
            path: file.to_path_buf(),
            source,
        })?;
    let key_file_error = |problem| KeyManagementError::NotAKey {
        path: file.to_path_buf(),
        problem,
    };
    if text.len() as u64 > MAX_IMPORT_SIZE {
        return Err(key_file_error(KeyProblem::NotPem(format!(
            "larger than {MAX_IMPORT_SIZE} bytes"
        ))));
    }
    let key = PublicKey::from_pem(&text).map_err(key_file_error)?;
    let path = dir.join(format!("{name}.{PUBLIC_KEY_EXTENSION}"));
    write_public_key(dir, &path, &text)?;
    Ok(TrustedKey { name, path, key })
}

/// Generates an ECDSA P-256 key pair (cosign's default): the private key encrypted with
/// `password` into `private_key_path` (mode 0600), the public key into `dir` as
/// `<name>.pub`. Neither file may exist yet.
pub fn generate_key_pair(
    dir: &Path,
    name: &str,
    private_key_path: &Path,
    password: &[u8],
) -> Result<GeneratedKey, KeyManagementError> {
    check_name(name)?;
    let public_path = dir.join(format!("{name}.{PUBLIC_KEY_EXTENSION}"));
    if public_path.exists() {
        return Err(KeyManagementError::KeyExists { path: public_path });
    }
    let generation_error = |reason: String| KeyManagementError::KeyGeneration { reason };
    let secret = p256::SecretKey::try_generate()
        .map_err(|e| generation_error(format!("no randomness: {e}")))?;
    let private_der = secret
        .to_pkcs8_der()
        .map_err(|e| generation_error(e.to_string()))?;
    let public_pem = secret
        .public_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| generation_error(e.to_string()))?;
    let encrypted = encrypt_private_key(private_der.as_bytes(), password)?;

    write_new_file(private_key_path, encrypted.as_bytes(), 0o600)
        .map_err(|source| write_error(private_key_path, source))?;
    if let Err(error) = write_public_key(dir, &public_path, public_pem.as_bytes()) {
        // Half a key pair is no use: the private key goes too.
        let _ = fs::remove_file(private_key_path);
        return Err(error);
    }
    Ok(GeneratedKey {
        public_key: TrustedKey {
            name: name.to_owned(),
            path: public_path,
            key: PublicKey::EcdsaP256(p256::ecdsa::VerifyingKey::from(secret.public_key())),
        },
        private_key_path: private_key_path.to_path_buf(),
    })
}

#[derive(Serialize)]
struct EncryptedKey {
    kdf: Kdf,
    cipher: Cipher,
    ciphertext: String,
}

#[derive(Serialize)]
struct Kdf {
    name: &'static str,
    params: ScryptParams,
    salt: String,
}

#[derive(Serialize)]
struct ScryptParams {
    #[serde(rename = "N")]
    n: u32,
    r: u32,
    p: u32,
}

#[derive(Serialize)]
struct Cipher {
    name: &'static str,
    nonce: String,
}

/// cosign's encrypted PEM of a PKCS#8 DER private key.
fn encrypt_private_key(private_der: &[u8], password: &[u8]) -> Result<String, KeyManagementError> {
    let generation_error = |reason: String| KeyManagementError::KeyGeneration { reason };
    let salt = <[u8; SALT_LEN]>::try_generate()
        .map_err(|e| generation_error(format!("no randomness: {e}")))?;
    let nonce =
        <[u8; 24]>::try_generate().map_err(|e| generation_error(format!("no randomness: {e}")))?;
    let params = scrypt::Params::new(SCRYPT_LOG_N, SCRYPT_R, SCRYPT_P)
        .map_err(|e| generation_error(format!("scrypt parameters: {e}")))?;
    let mut box_key = [0u8; 32];
    scrypt::scrypt(password, &salt, &params, &mut box_key)
        .map_err(|e| generation_error(format!("scrypt: {e}")))?;
    let ciphertext = crypto_secretbox::XSalsa20Poly1305::new(&box_key.into())
        .encrypt(&nonce.into(), private_der)
        .map_err(|e| generation_error(format!("secretbox: {e}")))?;
    let document = EncryptedKey {
        kdf: Kdf {
            name: "scrypt",
            params: ScryptParams {
                n: 1 << SCRYPT_LOG_N,
                r: SCRYPT_R,
                p: SCRYPT_P,
            },
            salt: base64::encode(salt),
        },
        cipher: Cipher {
            name: "nacl/secretbox",
            nonce: base64::encode(nonce),
        },
        ciphertext: base64::encode(ciphertext),
    };
    let json = serde_json::to_vec(&document).map_err(|e| generation_error(e.to_string()))?;
    pem::encode_string(ENCRYPTED_PRIVATE_KEY_PEM_LABEL, LineEnding::LF, &json)
        .map_err(|e| generation_error(e.to_string()))
}

/// Key names become file names: letters, digits, `.`, `_`, `-`, not starting with `.`/`-`.
fn check_name(name: &str) -> Result<(), KeyManagementError> {
    let valid = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.starts_with(['.', '-'])
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if valid {
        Ok(())
    } else {
        Err(KeyManagementError::InvalidKeyName {
            name: name.to_owned(),
        })
    }
}

/// Writes `bytes` as the new file `path` in `dir`: complete in a temporary file first, then
/// hard-linked to its name, which fails if the name exists.
fn write_public_key(dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), KeyManagementError> {
    fs::create_dir_all(dir).map_err(|source| write_error(dir, source))?;
    let file_name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = dir.join(format!(".{file_name}.{}.tmp", std::process::id()));
    write_new_file(&temporary, bytes, 0o644).map_err(|source| write_error(&temporary, source))?;
    let linked = fs::hard_link(&temporary, path);
    let _ = fs::remove_file(&temporary);
    match linked {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            Err(KeyManagementError::KeyExists {
                path: path.to_path_buf(),
            })
        }
        Err(source) => Err(write_error(path, source)),
    }
}

fn write_new_file(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

fn write_error(path: &Path, source: std::io::Error) -> KeyManagementError {
    if source.kind() == std::io::ErrorKind::AlreadyExists {
        return KeyManagementError::KeyExists {
            path: path.to_path_buf(),
        };
    }
    KeyManagementError::WriteKey {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_names_are_file_names() {
        for good in ["release", "team.key-2024_a"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        let long = "x".repeat(MAX_NAME_LEN + 1);
        for bad in ["", ".hidden", "-x", "a/b", "../up", "a b", long.as_str()] {
            assert!(
                matches!(
                    check_name(bad),
                    Err(KeyManagementError::InvalidKeyName { .. })
                ),
                "{bad}"
            );
        }
    }
}
