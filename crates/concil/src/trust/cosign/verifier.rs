//! [`Verifier`]: the trusted keys and keyless set-up signatures are checked against, and
//! the search for a trusted signature — the `sha256-<hex>.sig` tag
//! ([`super::simple_signing`]) first, then sigstore bundles among the digest's referrers
//! ([`super::bundle`]).

use std::fs;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use super::attempt::{Attempt, CosignVerified};
use super::source::SignatureSource;
use super::{bundle, simple_signing};
use crate::config::{Config, CosignIdentities, CosignIdentity};
use crate::digest::Digest;
use crate::trust::error::{KeylessGap, TrustError};
use crate::trust::keys::{KeyProblem, PublicKey, TrustedKey, PUBLIC_KEY_EXTENSION};
use crate::trust::trusted_root::TrustedRoot;

/// A PEM public key is at most a few KiB (RSA 4096: 800 bytes).
const MAX_KEY_FILE_SIZE: u64 = 64 * 1024;

/// Checks cosign signatures against a set of trusted keys and, keyless, a trusted root and
/// signer identities. Cheap to keep; every [`Verifier::verify`] asks the registry afresh.
#[derive(Debug, Clone)]
pub struct Verifier {
    keys: Vec<TrustedKey>,
    key_dir: Option<PathBuf>,
    check_docker_reference: bool,
    trusted_root: Option<TrustedRoot>,
    identities: CosignIdentities,
}

impl Verifier {
    /// The keys of the configuration's key directory ([`Config::cosign_key_dir`]), and the
    /// keyless set-up ([`Config::cosign_trusted_root`], [`Config::cosign_identities`]).
    pub fn from_config(config: &Config) -> Result<Verifier, TrustError> {
        let verifier = match config.cosign_key_dir() {
            Some(dir) => Verifier::from_key_dir(&dir)?,
            None => Verifier {
                keys: Vec::new(),
                key_dir: None,
                check_docker_reference: false,
                trusted_root: None,
                identities: CosignIdentities::default(),
            },
        };
        let trusted_root = config
            .cosign_trusted_root
            .as_deref()
            .map(|path| {
                TrustedRoot::from_file(path).map_err(|problem| TrustError::TrustedRoot {
                    path: path.to_path_buf(),
                    problem,
                })
            })
            .transpose()?;
        Ok(verifier.keyless(trusted_root, config.cosign_identities.clone()))
    }

    /// Accepts keyless signatures checked against `trusted_root` whose certificate names
    /// the identity `identities` holds for the repository (none: keyless signatures do not
    /// count).
    pub fn keyless(
        mut self,
        trusted_root: Option<TrustedRoot>,
        identities: CosignIdentities,
    ) -> Verifier {
        self.trusted_root = trusted_root;
        self.identities = identities;
        self
    }

    /// Loads every `*.pub` file of `dir` (in name order). A missing directory holds no keys
    /// (then [`Verifier::verify`] fails with [`TrustError::NoTrustedKey`]); a file that is not
    /// a supported public key is an error naming it.
    pub fn from_key_dir(dir: &Path) -> Result<Verifier, TrustError> {
        let directory_error = |source| TrustError::KeyDirectory {
            path: dir.to_path_buf(),
            source,
        };
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Verifier {
                    keys: Vec::new(),
                    key_dir: Some(dir.to_path_buf()),
                    check_docker_reference: false,
                    trusted_root: None,
                    identities: CosignIdentities::default(),
                })
            }
            Err(error) => return Err(directory_error(error)),
        };
        let mut paths = Vec::new();
        for entry in entries {
            let path = entry.map_err(directory_error)?.path();
            if path.extension().is_some_and(|e| e == PUBLIC_KEY_EXTENSION) {
                paths.push(path);
            }
        }
        paths.sort();
        let keys = paths
            .into_iter()
            .map(|path| load_key(&path))
            .collect::<Result<Vec<_>, _>>()?;
        tracing::debug!(dir = %dir.display(), keys = keys.len(), "loaded cosign keys");
        Ok(Verifier {
            keys,
            key_dir: Some(dir.to_path_buf()),
            check_docker_reference: false,
            trusted_root: None,
            identities: CosignIdentities::default(),
        })
    }

    /// Also requires the signed repository to be the one passed to [`Verifier::verify`]:
    /// simple signing's `critical.identity.docker-reference`, a bundle statement's subject
    /// `name` (Docker Hub's aliases `index.docker.io` and `registry-1.docker.io` count as
    /// `docker.io`; a tag or digest in it is ignored). Message-signature bundles name no
    /// repository and then never pass.
    pub fn check_docker_reference(mut self, check: bool) -> Verifier {
        self.check_docker_reference = check;
        self
    }

    /// The trusted keys, in file name order.
    pub fn keys(&self) -> &[TrustedKey] {
        &self.keys
    }

    /// Whether a trusted key (or the configured keyless signer) signed `manifest_digest`
    /// (the digest the reference resolved to: an index's when the tag names an index) in the
    /// repository (or image file) `source` reads: first the `sha256-<hex>.sig` tag, then
    /// sigstore bundles among the digest's referrers.
    ///
    /// `image` is the reference as the user gave it, for messages; `repository` is
    /// `registry/repository` as in references (`docker.io/library/alpine`,
    /// `127.0.0.1:5000/test/busybox`; empty for an image file), which picks the keyless
    /// identity and is compared with the signed identity when
    /// [`Verifier::check_docker_reference`] is on.
    pub fn verify(
        &self,
        source: &dyn SignatureSource,
        image: &str,
        repository: &str,
        manifest_digest: &Digest,
    ) -> Result<CosignVerified, TrustError> {
        let keyless = self.keyless_for(repository);
        if let (true, Err(gap)) = (self.keys.is_empty(), &keyless) {
            return Err(TrustError::NoTrustedKey {
                image: image.to_owned(),
                digest: manifest_digest.clone(),
                key_dir: self.key_dir.clone(),
                keyless: gap.clone(),
            });
        }
        let mut attempt = Attempt::new(
            source,
            image,
            repository,
            manifest_digest,
            &self.keys,
            self.check_docker_reference,
            keyless,
        );
        if let Some(verified) = simple_signing::verify(&mut attempt)? {
            return Ok(verified);
        }
        if let Some(verified) = bundle::verify_bundles(&mut attempt)? {
            return Ok(verified);
        }
        Err(attempt.into_error())
    }

    /// The trusted root and the signer identity keyless signatures in `repository`
    /// (`registry/path`) are checked against, or why there are none.
    fn keyless_for(&self, repository: &str) -> Result<(&TrustedRoot, &CosignIdentity), KeylessGap> {
        let root = self
            .trusted_root
            .as_ref()
            .ok_or(KeylessGap::NoTrustedRoot)?;
        let (registry, path) = repository.split_once('/').unwrap_or((repository, ""));
        let identity = self
            .identities
            .for_repository(registry, path)
            .ok_or_else(|| KeylessGap::NoIdentity {
                repository: repository.to_owned(),
            })?;
        Ok((root, identity))
    }
}

fn load_key(path: &Path) -> Result<TrustedKey, TrustError> {
    let read_error = |source| TrustError::KeyDirectory {
        path: path.to_path_buf(),
        source,
    };
    let mut text = Vec::new();
    fs::File::open(path)
        .and_then(|file| file.take(MAX_KEY_FILE_SIZE + 1).read_to_end(&mut text))
        .map_err(read_error)?;
    if text.len() as u64 > MAX_KEY_FILE_SIZE {
        return Err(TrustError::KeyFile {
            path: path.to_path_buf(),
            problem: KeyProblem::NotPem(format!("larger than {MAX_KEY_FILE_SIZE} bytes")),
        });
    }
    let key = PublicKey::from_pem(&text).map_err(|problem| TrustError::KeyFile {
        path: path.to_path_buf(),
        problem,
    })?;
    let name = path
        .file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(TrustedKey {
        name,
        path: path.to_path_buf(),
        key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_directory_loading() {
        let dir = tempfile::tempdir().unwrap();
        let missing = Verifier::from_key_dir(&dir.path().join("missing")).unwrap();
        assert!(missing.keys().is_empty());
        std::fs::write(dir.path().join("notes.txt"), "not a key").unwrap();
        std::fs::write(dir.path().join("cosign.key"), "not a key either").unwrap();
        assert!(Verifier::from_key_dir(dir.path())
            .unwrap()
            .keys()
            .is_empty());
        let bad = dir.path().join("broken.pub");
        std::fs::write(
            &bad,
            "-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n",
        )
        .unwrap();
        let error = Verifier::from_key_dir(dir.path()).unwrap_err();
        assert!(
            matches!(&error, TrustError::KeyFile { path, .. } if path == &bad),
            "{error}"
        );
    }
}
