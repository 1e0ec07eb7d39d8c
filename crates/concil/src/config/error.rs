//! What can be wrong with the configuration. No error contains a credential.

use std::path::PathBuf;

/// Errors loading the configuration. None of them contains a credential.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The configuration file (or Docker's `config.json`) could not be read, or is too large.
    #[error("cannot read configuration file {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why it could not be read.
        #[source]
        source: std::io::Error,
    },
    /// The file is not JSON, or a key holds a value of the wrong type.
    #[error("invalid configuration file {} (line {line}, column {column})", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// Where in it (1-based).
        line: usize,
        /// Where in the line (1-based).
        column: usize,
        /// What the JSON parser said.
        #[source]
        source: serde_json::Error,
    },
    /// A key whose value is of the right type but not usable (a negative timeout, a size
    /// without a unit concil knows).
    #[error("configuration file {}: {key} {reason}", path.display())]
    InvalidValue {
        /// The file.
        path: PathBuf,
        /// The key.
        key: &'static str,
        /// What it must be instead.
        reason: &'static str,
    },
    /// A `remote_servers` URL that concil cannot use.
    #[error("configuration file {}: remote_servers entry {server:?}: {field} URL {problem}", path.display())]
    InvalidServerUrl {
        /// The file.
        path: PathBuf,
        /// The entry's registry name.
        server: String,
        /// `registry` or `notary`.
        field: &'static str,
        /// What is wrong with the URL (the URL is not repeated: it may hold secrets).
        problem: UrlProblem,
    },
    /// An `auths` value that is not base64 `user:password`.
    #[error("auths entry {key:?} from {origin}: {problem}")]
    InvalidAuth {
        /// The file or the environment variable the entry came from.
        origin: String,
        /// The entry's repository pattern.
        key: String,
        /// What is wrong with the value (never the value itself).
        problem: AuthProblem,
    },
    /// A `cosign_identities` entry that cannot be used.
    #[error("configuration file {}: cosign_identities entry {key:?}: {reason}", path.display())]
    InvalidCosignIdentity {
        /// The file.
        path: PathBuf,
        /// The entry's repository pattern.
        key: String,
        /// What is wrong (both or neither of subject and subject_regexp, a bad regexp…).
        reason: String,
    },
    /// A `trust_policy` that is not an object, or an entry that is not "cosign", "notary" or
    /// "none".
    #[error("configuration file {}: trust_policy entry {key:?} must be \"cosign\", \"notary\" or \"none\"", path.display())]
    InvalidTrustPolicy {
        /// The file.
        path: PathBuf,
        /// The entry's key (`trust_policy` itself when it is not an object).
        key: String,
    },
    /// A `trust_pinning` value that cannot be used.
    #[error("configuration file {}: {key} {reason}", path.display())]
    InvalidTrustPinning {
        /// The file.
        path: PathBuf,
        /// The value's path in the file (`trust_pinning.certs["registry.example/app"]`).
        key: String,
        /// What it must be instead.
        reason: String,
    },
    /// A path starts with `~` but the home directory is unknown.
    #[error("cannot expand `~` in {what}: the home directory is unknown (HOME is not set)")]
    NoHomeDirectory {
        /// The setting holding the path (`cache_dir`, `--config`, …).
        what: &'static str,
    },
    /// A Docker credential helper that failed, timed out or answered no credentials. Its
    /// output is never shown: it may hold the secret.
    #[error("credential helper {helper} for {registry}: {problem}")]
    CredentialHelper {
        /// `docker-credential-<name>`.
        helper: String,
        /// The registry it was asked about.
        registry: String,
        /// What went wrong.
        problem: HelperProblem,
    },
    /// A `remote_servers` entry with only one of `client_cert` and `client_key`.
    #[error("configuration file {}: remote_servers[{server:?}] needs both client_cert and client_key", path.display())]
    InvalidClientCertificate {
        /// The file.
        path: PathBuf,
        /// The entry's registry name.
        server: String,
    },
    /// The configuration file could not be written (`concil login`, `logout`).
    #[error("cannot write configuration file {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// What the file system said.
        source: std::io::Error,
    },
    /// A registry name from which no URL can be made.
    #[error("registry name {registry:?} does not form a URL")]
    InvalidRegistryName {
        /// The name, as a reference gives it.
        registry: String,
    },
}

/// How a credential helper failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HelperProblem {
    /// The name in `config.json` is not one a helper program can have.
    #[error("not a valid helper name")]
    InvalidName,
    /// It could not be started or waited for.
    #[error("could not be run")]
    Start(#[source] std::io::Error),
    /// It exited with a failure status (`None`: killed by a signal).
    #[error("failed (exit status {})", .0.map_or_else(|| "none".to_owned(), |c| c.to_string()))]
    Failed(Option<i32>),
    /// It did not answer within the time limit (seconds).
    #[error("gave no answer within {0} s")]
    TimedOut(f64),
    /// Its answer is not `{"Username", "Secret"}` JSON.
    #[error("answered something else than credentials")]
    NotCredentials,
}

/// What is wrong with a `remote_servers` URL (the URL itself is not repeated: it may hold
/// secrets).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UrlProblem {
    /// Not a URL at all.
    #[error("cannot be parsed")]
    Unparsable(#[source] url::ParseError),
    /// A scheme other than http and https (the one found).
    #[error("has scheme {0:?}, expected http or https")]
    Scheme(String),
    /// User info in the URL: credentials belong in `auths`.
    #[error("contains a user name or password (put credentials in auths)")]
    Credentials,
}

/// What is wrong with an `auths` value (the value itself is never shown).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthProblem {
    /// A JSON value other than a string.
    #[error("is not a string")]
    NotAString,
    /// Not base64.
    #[error("is not valid base64")]
    NotBase64,
    /// Decodes to bytes that are not UTF-8.
    #[error("does not decode to UTF-8 text")]
    NotUtf8,
    /// Decodes to text without the `:` between user and password.
    #[error("does not decode to \"user:password\" (no ':')")]
    NoColon,
}
