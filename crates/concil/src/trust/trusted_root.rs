//! Sigstore's `trusted_root.json`: the Fulcio certificate authorities, Rekor transparency
//! logs and certificate transparency logs that keyless signatures ([`super::keyless`]) and
//! their embedded signed certificate timestamps (the `sct` module) are checked against, each
//! with the time window it is valid for.

use std::fs;
use std::io::Read as _;
use std::path::Path;

use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use x509_cert::Certificate;

use crate::trust::base64;
use crate::trust::keys::{KeyProblem, PublicKey};
use crate::trust::x509::{check_ca, parse_certificate, signed_by, valid_at};

/// A trusted root is ~10 KiB (sigstore's public one); more is not one.
const MAX_TRUSTED_ROOT_SIZE: u64 = 4 * 1024 * 1024;

/// Why a `trusted_root.json` cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrustedRootProblem {
    /// The file cannot be read.
    #[error("cannot read it")]
    Read(#[source] std::io::Error),
    /// The file is larger than any trusted root.
    #[error("larger than {MAX_TRUSTED_ROOT_SIZE} bytes")]
    TooLarge,
    /// Not trusted-root JSON.
    #[error("not a trusted root: {0}")]
    NotJson(String),
    /// A certificate authority that cannot be used.
    #[error("certificateAuthorities[{authority}]: {reason}")]
    Authority {
        /// Its index in `certificateAuthorities`.
        authority: usize,
        /// Why.
        reason: String,
    },
    /// A Rekor log whose key cannot be used.
    #[error("tlogs[{log}]: {reason}")]
    LogKey {
        /// Its index in `tlogs`.
        log: usize,
        /// Why.
        reason: String,
    },
    /// A certificate transparency log whose key cannot be used.
    #[error("ctlogs[{log}]: {reason}")]
    CtLogKey {
        /// Its index in `ctlogs`.
        log: usize,
        /// Why.
        reason: String,
    },
    /// No Fulcio CA.
    #[error("names no certificate authority")]
    NoAuthority,
    /// No Rekor log.
    #[error("names no transparency log")]
    NoLog,
}

/// The Fulcio CAs, Rekor logs and certificate transparency logs keyless signatures are
/// checked against.
#[derive(Debug, Clone)]
pub struct TrustedRoot {
    /// The Fulcio CAs leaf certificates must be issued by.
    pub(super) authorities: Vec<CertificateAuthority>,
    /// The Rekor logs whose entries vouch for signatures.
    pub(super) logs: Vec<TransparencyLog>,
    /// None: the root's Fulcio does not log to CT, and no SCT is required.
    pub(super) ct_logs: Vec<TransparencyLog>,
}

/// A Fulcio CA: its certificate chain and when it issued certificates.
#[derive(Debug, Clone)]
pub(super) struct CertificateAuthority {
    /// Issuing certificate first, root last.
    pub(super) chain: Vec<Certificate>,
    pub(super) valid: ValidFor,
}

/// A Rekor log, or a certificate transparency log.
#[derive(Debug, Clone)]
pub(crate) struct TransparencyLog {
    /// The log ID: the SHA-256 of the log key's DER SubjectPublicKeyInfo.
    pub(super) id: Vec<u8>,
    pub(super) key: PublicKey,
    pub(super) valid: ValidFor,
}

/// A `validFor` window in Unix seconds; an open end is unbounded.
#[derive(Debug, Clone, Copy)]
pub(super) struct ValidFor {
    start: Option<u64>,
    end: Option<u64>,
}

impl ValidFor {
    pub(super) fn contains(self, time: u64) -> bool {
        self.start.is_none_or(|start| start <= time) && self.end.is_none_or(|end| time <= end)
    }
}

impl TrustedRoot {
    /// Reads a sigstore `trusted_root.json` (`application/vnd.dev.sigstore.trustedroot+json`).
    pub fn from_file(path: &Path) -> Result<TrustedRoot, TrustedRootProblem> {
        let mut text = Vec::new();
        fs::File::open(path)
            .and_then(|file| file.take(MAX_TRUSTED_ROOT_SIZE + 1).read_to_end(&mut text))
            .map_err(TrustedRootProblem::Read)?;
        if text.len() as u64 > MAX_TRUSTED_ROOT_SIZE {
            return Err(TrustedRootProblem::TooLarge);
        }
        TrustedRoot::from_json(&text)
    }

    /// Parses the JSON of a trusted root.
    pub fn from_json(text: &[u8]) -> Result<TrustedRoot, TrustedRootProblem> {
        let file: TrustedRootFile =
            serde_json::from_slice(text).map_err(|e| TrustedRootProblem::NotJson(e.to_string()))?;
        let authorities = file
            .certificate_authorities
            .iter()
            .enumerate()
            .map(|(authority, entry)| {
                CertificateAuthority::from_file(entry)
                    .map_err(|reason| TrustedRootProblem::Authority { authority, reason })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let logs = file
            .tlogs
            .iter()
            .enumerate()
            .map(|(log, entry)| {
                TransparencyLog::from_file(entry)
                    .map_err(|reason| TrustedRootProblem::LogKey { log, reason })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let ct_logs = file
            .ctlogs
            .iter()
            .enumerate()
            .map(|(log, entry)| {
                TransparencyLog::from_file(entry)
                    .map_err(|reason| TrustedRootProblem::CtLogKey { log, reason })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if authorities.is_empty() {
            return Err(TrustedRootProblem::NoAuthority);
        }
        if logs.is_empty() {
            return Err(TrustedRootProblem::NoLog);
        }
        Ok(TrustedRoot {
            authorities,
            logs,
            ct_logs,
        })
    }
}

impl CertificateAuthority {
    fn from_file(entry: &CertificateAuthorityFile) -> Result<CertificateAuthority, String> {
        let chain = entry
            .cert_chain
            .certificates
            .iter()
            .enumerate()
            .map(|(index, raw)| {
                base64::decode(&raw.raw_bytes)
                    .map_err(|_| "rawBytes is not base64".to_owned())
                    .and_then(|der| parse_certificate(&der))
                    .map_err(|reason| format!("certChain.certificates[{index}]: {reason}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if chain.is_empty() {
            return Err("certChain holds no certificate".to_owned());
        }
        for (index, cert) in chain.iter().enumerate() {
            check_ca(cert, index)
                .map_err(|reason| format!("certChain.certificates[{index}]: {reason}"))?;
        }
        Ok(CertificateAuthority {
            chain,
            valid: ValidFor::from_file(entry.valid_for.as_ref())?,
        })
    }

    /// The certificate of this CA that issued `leaf`, all of its chain being valid at
    /// `time`; `None` if this CA did not issue it.
    pub(super) fn issuer_of(&self, leaf: &Certificate, time: u64) -> Option<&Certificate> {
        let issuer = self.chain.first()?;
        let issued = self.valid.contains(time)
            && signed_by(leaf, issuer)
            && self.chain.iter().all(|cert| valid_at(cert, time))
            && self
                .chain
                .windows(2)
                .all(|pair| matches!(pair, [cert, next] if signed_by(cert, next)));
        issued.then_some(issuer)
    }
}

impl TransparencyLog {
    fn from_file(entry: &TransparencyLogFile) -> Result<TransparencyLog, String> {
        let der = base64::decode(&entry.public_key.raw_bytes)
            .map_err(|_| "publicKey.rawBytes is not base64".to_owned())?;
        let key = PublicKey::from_der(&der)
            .map_err(|problem: KeyProblem| format!("publicKey: {problem}"))?;
        let id = match &entry.log_id {
            Some(log_id) => base64::decode(&log_id.key_id)
                .map_err(|_| "logId.keyId is not base64".to_owned())?,
            None => Sha256::digest(&der).to_vec(),
        };
        Ok(TransparencyLog {
            id,
            key,
            valid: ValidFor::from_file(entry.public_key.valid_for.as_ref())?,
        })
    }
}

impl ValidFor {
    fn from_file(entry: Option<&ValidForFile>) -> Result<ValidFor, String> {
        let parse = |time: &Option<String>| {
            time.as_deref()
                .map(|text| {
                    parse_rfc3339(text).ok_or_else(|| format!("validFor: bad time {text:?}"))
                })
                .transpose()
        };
        Ok(match entry {
            Some(entry) => ValidFor {
                start: parse(&entry.start)?,
                end: parse(&entry.end)?,
            },
            None => ValidFor {
                start: None,
                end: None,
            },
        })
    }
}

/// `2024-01-02T03:04:05Z` (UTC, as protobuf's JSON writes timestamps, fraction allowed).
fn parse_rfc3339(text: &str) -> Option<u64> {
    if !text.ends_with('Z') {
        return None;
    }
    let time = chrono::DateTime::parse_from_rfc3339(text).ok()?;
    u64::try_from(time.timestamp()).ok()
}

/// Unix seconds as `2024-01-02T03:04:05Z`.
pub(super) fn format_time(seconds: u64) -> String {
    x509_cert::der::DateTime::from_unix_duration(std::time::Duration::from_secs(seconds))
        .map_or_else(
            |_| format!("{seconds} (Unix time)"),
            |time| time.to_string(),
        )
}

/// `trusted_root.json`, as far as verification reads it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TrustedRootFile {
    #[serde(default)]
    tlogs: Vec<TransparencyLogFile>,
    #[serde(default)]
    ctlogs: Vec<TransparencyLogFile>,
    #[serde(default)]
    certificate_authorities: Vec<CertificateAuthorityFile>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TransparencyLogFile {
    public_key: PublicKeyFile,
    #[serde(default)]
    log_id: Option<LogIdFile>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PublicKeyFile {
    raw_bytes: String,
    #[serde(default)]
    valid_for: Option<ValidForFile>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogIdFile {
    key_id: String,
}

#[derive(Deserialize)]
struct ValidForFile {
    #[serde(default)]
    start: Option<String>,
    #[serde(default)]
    end: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CertificateAuthorityFile {
    cert_chain: CertChainFile,
    #[serde(default)]
    valid_for: Option<ValidForFile>,
}

#[derive(Deserialize)]
struct CertChainFile {
    certificates: Vec<RawBytesFile>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RawBytesFile {
    pub(super) raw_bytes: String,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn rfc3339_times_as_protobuf_writes_them() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339("2021-03-07T03:20:29.000Z"),
            Some(1_615_087_229)
        );
        assert_eq!(
            parse_rfc3339("2022-04-13T20:06:15.123456789Z"),
            Some(1_649_880_375)
        );
        assert_eq!(parse_rfc3339("2021-03-07T03:20:29+01:00"), None);
        assert_eq!(parse_rfc3339("2021-03-07T03:20:29.x0Z"), None);
        assert_eq!(parse_rfc3339("2021-13-07T03:20:29Z"), None);
        assert_eq!(format_time(1_615_087_229), "2021-03-07T03:20:29Z");
    }

    /// sigstore's public trusted root (as JSON, to be edited) and the Fulcio leaf of the
    /// real cosign v3 bundle in tests/data/sigstore.
    pub(crate) fn real_root_and_leaf() -> (serde_json::Value, Vec<u8>) {
        let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sigstore");
        let read_json = |name: &str| -> serde_json::Value {
            serde_json::from_slice(&fs::read(data.join(name)).unwrap()).unwrap()
        };
        let bundle = read_json("bundle_v03.json");
        let leaf = bundle["verificationMaterial"]["certificate"]["rawBytes"]
            .as_str()
            .and_then(|text| base64::decode(text).ok())
            .unwrap();
        (read_json("sigstore_trusted_root.json"), leaf)
    }

    #[test]
    fn trusted_root_chains_hold_only_cas() {
        let (mut root, leaf) = real_root_and_leaf();
        assert!(TrustedRoot::from_json(&serde_json::to_vec(&root).unwrap()).is_ok());
        // A Fulcio leaf (no CA) as the issuing certificate of a CA.
        root["certificateAuthorities"][1]["certChain"]["certificates"][0]["rawBytes"] =
            base64::encode(&leaf).into();
        let problem = TrustedRoot::from_json(&serde_json::to_vec(&root).unwrap()).unwrap_err();
        assert!(
            matches!(&problem, TrustedRootProblem::Authority { authority: 1, reason }
                if reason.contains("certificates[0]: not a CA certificate")),
            "{problem}"
        );
    }

    #[test]
    fn trusted_roots_without_cas_or_logs_are_refused() {
        assert!(matches!(
            TrustedRoot::from_json(br#"{"tlogs": [], "certificateAuthorities": []}"#),
            Err(TrustedRootProblem::NoAuthority)
        ));
        assert!(matches!(
            TrustedRoot::from_json(b"42"),
            Err(TrustedRootProblem::NotJson(_))
        ));
        let bad_cert = br#"{"certificateAuthorities": [{"certChain": {"certificates": [{"rawBytes": "AAAA"}]}}]}"#;
        assert!(matches!(
            TrustedRoot::from_json(bad_cert),
            Err(TrustedRootProblem::Authority { authority: 0, .. })
        ));
    }
}
