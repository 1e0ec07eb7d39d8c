//! The exit statuses of the `concil` command, in one table, and the one function that maps an
//! error to its status. Scripts branch on these numbers: a status never changes meaning, and
//! README.md lists exactly [`TABLE`] (a test checks it).

use std::error::Error;

use crate::cache::CacheError;
use crate::config::ConfigError;
use crate::image_file::FileError;
use crate::reference::ReferenceError;
use crate::registry::RegistryError;
use crate::store::StoreError;
use crate::trust::key_management::KeyManagementError;
use crate::trust::notary::NotaryError;
use crate::trust::TrustError;

/// Success.
pub const SUCCESS: u8 = 0;
/// Any failure without a status of its own.
pub const FAILURE: u8 = 1;
/// The command line is wrong: an unknown option (clap's own status), an invalid image
/// reference, platform or tag.
pub const USAGE: u8 = 2;
/// The configuration file (or a file it names) is missing, unreadable or invalid.
pub const CONFIG_INVALID: u8 = 3;
/// The image, tag, repository or platform does not exist in the registry (with `--offline`:
/// the cache lacks it).
pub const NOT_FOUND: u8 = 4;
/// The registry or its token service refused the credentials (or their absence).
pub const UNAUTHORIZED: u8 = 5;
/// The registry kept answering 429 Too Many Requests.
pub const RATE_LIMITED: u8 = 6;
/// The registry could not be reached or kept failing: connection refused or reset, timed
/// out, TLS failed, 5xx after the retries, a download broken off.
pub const NETWORK: u8 = 7;
/// The cache directory could not be read or written (disk full, permissions, unsafe).
pub const CACHE_IO: u8 = 8;
/// What the registry served is wrong or unusable: a digest or size mismatch, a malformed or
/// unsupported manifest or config, a layer that does not convert or exceeds a limit.
pub const CONTENT_INVALID: u8 = 9;
/// Content trust: nothing signed the image (cosign) or the tag (Notary).
pub const NOT_SIGNED: u8 = 10;
/// Content trust: no trusted cosign key (nor keyless signer) is configured.
pub const NO_TRUSTED_KEY: u8 = 11;
/// Content trust: no signature verifies (cosign), or too few (Notary threshold).
pub const SIGNATURE_INVALID: u8 = 12;
/// Content trust: the signature is for another image, or the manifest does not match what
/// Notary signed.
pub const WRONG_IMAGE: u8 = 13;
/// Content trust: the trusted signature names another repository (`cosign_check_identity`).
pub const WRONG_REPOSITORY: u8 = 14;
/// Content trust: a key file, the trusted root or a `trust_pinning` CA file is unusable.
pub const TRUST_MATERIAL_UNUSABLE: u8 = 15;
/// Keyless cosign: signed by another identity than the configured one.
pub const IDENTITY_MISMATCH: u8 = 16;
/// Keyless cosign: no certificate from a trusted CA (or valid when it signed).
pub const CERTIFICATE_UNTRUSTED: u8 = 17;
/// Keyless cosign: no valid transparency-log entry.
pub const NO_TRANSPARENCY_LOG_ENTRY: u8 = 18;
/// Notary: expired metadata.
pub const EXPIRED: u8 = 19;
/// Notary: older metadata than already seen (rollback).
pub const ROLLBACK: u8 = 20;
/// Notary: refused by `trust_pinning`.
pub const PINNING_REFUSED: u8 = 21;
/// Notary: server unreachable and nothing usable cached.
pub const NOTARY_UNREACHABLE: u8 = 22;
/// Keyless cosign: no valid embedded certificate transparency timestamp (SCT).
pub const CERTIFICATE_NOT_LOGGED: u8 = 23;
/// `cache verify` found broken entries (whether or not `--repair` removed them).
pub const CACHE_DAMAGED: u8 = 24;

/// Every status with its one-line meaning, as README.md lists them.
pub const TABLE: [(u8, &str); 25] = [
    (SUCCESS, "success"),
    (FAILURE, "any other failure"),
    (USAGE, "invalid command line: option, image reference, platform or tag"),
    (CONFIG_INVALID, "configuration invalid (or a file it names)"),
    (NOT_FOUND, "image, tag, repository or platform not found (with --offline: not in the cache)"),
    (UNAUTHORIZED, "authentication refused"),
    (RATE_LIMITED, "rate limited (429)"),
    (NETWORK, "network: unreachable, timed out, TLS failed, server failing, download broken off"),
    (CACHE_IO, "cache I/O: disk full, permissions, unsafe cache directory"),
    (CONTENT_INVALID, "invalid content: digest or size mismatch, malformed or unsupported manifest, config or layer, layer limit exceeded"),
    (NOT_SIGNED, "not signed"),
    (NO_TRUSTED_KEY, "no trusted key (nor keyless signer) configured"),
    (SIGNATURE_INVALID, "no signature verifies"),
    (WRONG_IMAGE, "the signature is for another image (or the manifest is not what Notary signed)"),
    (WRONG_REPOSITORY, "the signature names another repository"),
    (TRUST_MATERIAL_UNUSABLE, "a key file, the trusted root or a trust_pinning CA file is unusable"),
    (IDENTITY_MISMATCH, "keyless: signed by another identity"),
    (CERTIFICATE_UNTRUSTED, "keyless: no certificate from a trusted CA"),
    (NO_TRANSPARENCY_LOG_ENTRY, "keyless: no valid transparency-log entry"),
    (EXPIRED, "Notary: expired metadata"),
    (ROLLBACK, "Notary: rollback"),
    (PINNING_REFUSED, "Notary: refused by trust_pinning"),
    (NOTARY_UNREACHABLE, "Notary: server unreachable, nothing usable cached"),
    (CERTIFICATE_NOT_LOGGED, "keyless: no valid certificate transparency timestamp (SCT)"),
    (CACHE_DAMAGED, "cache verify found broken entries (also when --repair removed them)"),
];

/// The status the command ends with for `error`: the most specific one its type tells.
pub fn of(error: &(dyn Error + 'static)) -> u8 {
    if let Some(error) = error.downcast_ref::<StoreError>() {
        return of_store(error);
    }
    if let Some(error) = error.downcast_ref::<TrustError>() {
        return of_trust(error);
    }
    if let Some(error) = error.downcast_ref::<NotaryError>() {
        return of_notary(error);
    }
    if let Some(error) = error.downcast_ref::<RegistryError>() {
        return of_registry(error);
    }
    if let Some(error) = error.downcast_ref::<ConfigError>() {
        return of_config(error);
    }
    if error.is::<CacheError>() {
        return CACHE_IO;
    }
    if error.is::<ReferenceError>() {
        return USAGE;
    }
    if let Some(error) = error.downcast_ref::<KeyManagementError>() {
        return match error {
            KeyManagementError::InvalidKeyName { .. } => USAGE,
            _ => FAILURE,
        };
    }
    if error.is::<tarsquash::Error>() {
        return CONTENT_INVALID;
    }
    FAILURE
}

fn of_store(error: &StoreError) -> u8 {
    match error {
        StoreError::InvalidPlatform { .. } => USAGE,
        StoreError::Config(error) => of_config(error),
        StoreError::Registry(error) => of_registry(error),
        StoreError::Cache(_) | StoreError::WriteLayer { .. } => CACHE_IO,
        StoreError::Trust(error) => of_trust(error),
        StoreError::NoMatchingPlatform { .. } => NOT_FOUND,
        StoreError::BlobTruncated { .. } | StoreError::BlobRead { .. } => NETWORK,
        StoreError::DescriptorDigest { .. }
        | StoreError::IndexTooDeep { .. }
        | StoreError::ConfigInvalid { .. }
        | StoreError::ConfigTooLarge { .. }
        | StoreError::LayerCountMismatch { .. }
        | StoreError::UnsupportedLayer { .. }
        | StoreError::NonDistributableLayer { .. }
        | StoreError::BlobTooLong { .. }
        | StoreError::BlobTooShort { .. }
        | StoreError::BlobDigestMismatch { .. }
        | StoreError::DiffIdMismatch { .. }
        | StoreError::Convert { .. }
        | StoreError::LayerLimit { .. }
        | StoreError::LayerTooLarge { .. }
        | StoreError::SquashfsLayerIsTar { .. } => CONTENT_INVALID,
        StoreError::NoLongerCached { .. } => CACHE_IO,
        StoreError::NotCachedOffline { .. } => NOT_FOUND,
        StoreError::File(error) => of_file(error),
        StoreError::NotaryForFile { .. } => NOT_SIGNED,
        StoreError::NotVerifiedOffline { .. } => NOT_SIGNED,
        StoreError::WorkerPanicked => FAILURE,
    }
}

fn of_file(error: &FileError) -> u8 {
    match error {
        FileError::Read { .. } | FileError::Missing { .. } | FileError::NoSuchImage { .. } => {
            NOT_FOUND
        }
        FileError::Ambiguous { .. } => USAGE,
        _ => CONTENT_INVALID,
    }
}

fn of_config(error: &ConfigError) -> u8 {
    match error {
        // The helper is where the credentials are: failing it is failing authentication.
        ConfigError::CredentialHelper { .. } => UNAUTHORIZED,
        _ => CONFIG_INVALID,
    }
}

fn of_registry(error: &RegistryError) -> u8 {
    match error {
        RegistryError::InvalidName { .. } | RegistryError::InvalidDigest { .. } => USAGE,
        RegistryError::InvalidUrl { .. }
        | RegistryError::CaFile { .. }
        | RegistryError::ClientCertificate { .. }
        | RegistryError::InvalidProxy { .. } => CONFIG_INVALID,
        RegistryError::Unauthorized { .. } | RegistryError::InsecureRealm { .. } => UNAUTHORIZED,
        RegistryError::NotFound { .. } => NOT_FOUND,
        RegistryError::Tls { .. }
        | RegistryError::Connection { .. }
        | RegistryError::ProxyRefused { .. }
        | RegistryError::RangeRefused { .. }
        | RegistryError::BodyBroken { .. } => NETWORK,
        RegistryError::RateLimited { .. } | RegistryError::Status { status: 429, .. } => {
            RATE_LIMITED
        }
        RegistryError::Status { status, .. } if *status >= 500 || *status == 408 => NETWORK,
        RegistryError::Status { .. } => FAILURE,
        RegistryError::DigestMismatch { .. }
        | RegistryError::TooLarge { .. }
        | RegistryError::Schema1 { .. }
        | RegistryError::InvalidManifest { .. }
        | RegistryError::UnsupportedMediaType { .. }
        | RegistryError::Malformed { .. } => CONTENT_INVALID,
    }
}

/// The status of a content-trust refusal (10–23), or of what kept trust from being checked.
pub fn of_trust(error: &TrustError) -> u8 {
    match error {
        TrustError::NotSigned { .. } => NOT_SIGNED,
        TrustError::NoTrustedKey { .. } => NO_TRUSTED_KEY,
        TrustError::SignatureInvalid { .. } => SIGNATURE_INVALID,
        TrustError::WrongImage { .. } => WRONG_IMAGE,
        TrustError::WrongRepository { .. } => WRONG_REPOSITORY,
        TrustError::KeyFile { .. }
        | TrustError::KeyDirectory { .. }
        | TrustError::TrustedRoot { .. } => TRUST_MATERIAL_UNUSABLE,
        TrustError::IdentityMismatch { .. } => IDENTITY_MISMATCH,
        TrustError::CertificateUntrusted { .. } => CERTIFICATE_UNTRUSTED,
        TrustError::NoTransparencyLogEntry { .. } => NO_TRANSPARENCY_LOG_ENTRY,
        TrustError::CertificateNotLogged { .. } => CERTIFICATE_NOT_LOGGED,
        TrustError::Notary { source, .. } => of_notary(source),
        TrustError::Registry { source, .. } => of_registry(source),
        TrustError::ImageFile { source, .. } => of_file(source),
    }
}

fn of_notary(error: &NotaryError) -> u8 {
    match error {
        NotaryError::NotPublished { .. } | NotaryError::TargetNotSigned { .. } => NOT_SIGNED,
        NotaryError::Threshold { .. } | NotaryError::Malformed { .. } => SIGNATURE_INVALID,
        NotaryError::MetadataMismatch { .. } | NotaryError::ManifestMismatch { .. } => WRONG_IMAGE,
        NotaryError::Expired { .. } => EXPIRED,
        NotaryError::Rollback { .. } => ROLLBACK,
        NotaryError::Pinning { .. } => PINNING_REFUSED,
        NotaryError::Unreachable { .. } => NOTARY_UNREACHABLE,
        NotaryError::CaFile { .. } => TRUST_MATERIAL_UNUSABLE,
        NotaryError::Server { .. }
        | NotaryError::Cache { .. }
        | NotaryError::MissingMetadata { .. }
        | NotaryError::Settings { .. } => FAILURE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digest;
    use crate::trust::{KeyProblem, KeylessGap};
    use std::path::PathBuf;

    #[test]
    fn each_way_of_not_being_trusted_has_its_own_exit_code() {
        let image = || "docker://example/x:1".to_owned();
        let digest = || Digest::of(b"a");
        let errors = [
            TrustError::NotSigned {
                image: image(),
                digest: digest(),
                detail: "no tag".to_owned(),
            },
            TrustError::NoTrustedKey {
                image: image(),
                digest: digest(),
                key_dir: None,
                keyless: KeylessGap::NoTrustedRoot,
            },
            TrustError::SignatureInvalid {
                image: image(),
                digest: digest(),
                rejected: Vec::new(),
            },
            TrustError::WrongImage {
                image: image(),
                digest: digest(),
                signed_digest: digest().to_string(),
            },
            TrustError::WrongRepository {
                image: image(),
                digest: digest(),
                repository: "r/x".to_owned(),
                signed_reference: "r/y".to_owned(),
            },
            TrustError::KeyFile {
                path: PathBuf::from("/k/a.pub"),
                problem: KeyProblem::RsaTooSmall(1024),
            },
        ];
        let codes: Vec<u8> = errors.iter().map(of_trust).collect();
        assert_eq!(codes, [10, 11, 12, 13, 14, 15]);
        assert!(errors[1].to_string().contains("key directory is unknown"));
        let with_dir = TrustError::NoTrustedKey {
            image: image(),
            digest: digest(),
            key_dir: Some(PathBuf::from("/etc/concil/cosign")),
            keyless: KeylessGap::NoIdentity {
                repository: "r/x".to_owned(),
            },
        };
        let message = with_dir.to_string();
        assert!(message.contains("/etc/concil/cosign holds no *.pub file"));
        assert!(
            message.contains("no cosign_identities entry matches"),
            "{message}"
        );
        let keyless = [
            TrustError::IdentityMismatch {
                image: image(),
                digest: digest(),
                expected: "subject \"a\"".to_owned(),
                found: "subject \"b\"".to_owned(),
            },
            TrustError::CertificateUntrusted {
                image: image(),
                digest: digest(),
                rejected: Vec::new(),
            },
            TrustError::NoTransparencyLogEntry {
                image: image(),
                digest: digest(),
                rejected: Vec::new(),
            },
            TrustError::CertificateNotLogged {
                image: image(),
                digest: digest(),
                rejected: Vec::new(),
            },
        ];
        let codes: Vec<u8> = keyless.iter().map(of_trust).collect();
        assert_eq!(codes, [16, 17, 18, 23]);
        assert!(errors[5].to_string().contains("/k/a.pub"));
    }

    #[test]
    fn statuses_are_distinct_and_in_order() {
        for (index, (status, meaning)) in TABLE.iter().enumerate() {
            assert_eq!(usize::from(*status), index, "{meaning}");
        }
    }

    /// README.md lists every status of [`TABLE`] with its meaning, and no other.
    #[test]
    fn readme_lists_the_table() {
        let readme = include_str!("../../../README.md");
        let listed: Vec<(u8, &str)> = readme
            .lines()
            .filter_map(|line| {
                let row = line.strip_prefix("| ")?.strip_suffix(" |")?;
                let (status, meaning) = row.split_once(" | ")?;
                Some((status.trim().parse().ok()?, meaning.trim()))
            })
            .collect();
        assert_eq!(listed, TABLE.to_vec());
    }
}
