//! A Fulcio-like CA and a Rekor-like log for keyless cosign tests, made with the `openssl`
//! command (written apart from concil's verifier; nothing here calls concil):
//!
//! - [`Sigstore::new`]: a P-384 root CA and intermediate (`openssl ca`, so validity windows
//!   can lie in the past), a P-256 log key, and a certificate transparency log ([`CtLog`]);
//!   [`Sigstore::trusted_root`] names them in a sigstore `trusted_root.json`.
//! - [`Sigstore::issue`]: a leaf certificate for a fresh P-256 key with the identity as
//!   subject alternative name (critical), the OIDC issuer in Fulcio's extensions
//!   (`1.3.6.1.4.1.57264.1.1`, raw, and `…1.8`, a UTF8String), code-signing usage, and an
//!   embedded SCT of the CT log. As Fulcio does (RFC 6962 3.1), it is issued twice with the
//!   same serial, validity, key and extensions: first without the SCT list, whose TBS the
//!   log signs (with the SHA-256 of the intermediate's SubjectPublicKeyInfo), then with it.
//!   [`Sigstore::issue_with`] makes wrong SCTs (another log, another precertificate, a
//!   changed timestamp) or none.
//! - [`Sigstore::log`]: a log entry with its signed entry timestamp over the canonical
//!   `{"body","integratedTime","logID","logIndex"}` JSON, by the log key.
//! - [`hashedrekord_body`], [`dsse_body`]: Rekor entry bodies as Rekor canonicalizes them;
//!   [`cosign_bundle_annotation`] and [`bundle_v03`]: how cosign stores it all.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::{json, Value};
use sha2::Digest as _;
use tempfile::TempDir;

/// Fulcio's issuer extension: raw bytes (deprecated).
const ISSUER_V1: &str = "1.3.6.1.4.1.57264.1.1";
/// Fulcio's issuer extension: a DER UTF8String.
const ISSUER_V2: &str = "1.3.6.1.4.1.57264.1.8";
/// Certificate transparency's embedded SCT list: an OCTET STRING around a TLS-encoded
/// `SignedCertificateTimestampList` (RFC 6962 3.3).
const SCT_LIST: &str = "1.3.6.1.4.1.11129.2.4.2";
/// Where the trusted roots' CAs and CT logs begin to be valid.
const VALID_FROM: &str = "2020-01-01T00:00:00Z";

pub fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub use crate::sha256_hex;

/// Seconds since the epoch, now.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

use crate::{openssl, run_in as run};

/// `YYYYMMDDHHMMSSZ` for `openssl ca -startdate/-enddate`, by `date`.
fn openssl_time(dir: &Path, unix: i64) -> String {
    let out = run(
        dir,
        "date",
        &["-u", "-d", &format!("@{unix}"), "+%Y%m%d%H%M%SZ"],
    );
    String::from_utf8(out)
        .expect("date output")
        .trim()
        .to_owned()
}

/// The DER of a PEM certificate file.
fn der_of(dir: &Path, pem: &str) -> Vec<u8> {
    openssl(dir, &["x509", "-in", pem, "-outform", "DER"])
}

/// A fresh P-256 key in `dir/name`; returns its public key (SubjectPublicKeyInfo), DER.
fn p256_key(dir: &Path, name: &str) -> Vec<u8> {
    openssl(
        dir,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            name,
        ],
    );
    openssl(dir, &["pkey", "-in", name, "-pubout", "-outform", "DER"])
}

/// The length of a DER element's header and of the whole element, from its first bytes.
fn der_element_lengths(der: &[u8]) -> (usize, usize) {
    let first = usize::from(der[1]);
    if first < 0x80 {
        return (2, 2 + first);
    }
    let count = first & 0x7f;
    let length = der[2..2 + count]
        .iter()
        .fold(0, |length, byte| length << 8 | usize::from(*byte));
    (2 + count, 2 + count + length)
}

/// The TBSCertificate of a DER certificate, exactly as openssl encoded it.
fn tbs_of(certificate: &[u8]) -> &[u8] {
    let (header, _) = der_element_lengths(certificate);
    let inner = &certificate[header..];
    let (_, tbs_length) = der_element_lengths(inner);
    &inner[..tbs_length]
}

/// `bytes` as a DER OCTET STRING.
fn der_octet_string(bytes: &[u8]) -> Vec<u8> {
    let mut der = vec![0x04];
    match u8::try_from(bytes.len()) {
        Ok(length) if length < 0x80 => der.push(length),
        Ok(length) => der.extend_from_slice(&[0x81, length]),
        Err(_) => {
            let length = u16::try_from(bytes.len()).expect("SCT list under 64 KiB");
            der.push(0x82);
            der.extend_from_slice(&length.to_be_bytes());
        }
    }
    der.extend_from_slice(bytes);
    der
}

/// `bytes` after their length as a TLS `opaque<0..2^16-1>`.
fn tls_u16_prefixed(bytes: &[u8]) -> Vec<u8> {
    let length = u16::try_from(bytes.len()).expect("under 64 KiB");
    let mut out = length.to_be_bytes().to_vec();
    out.extend_from_slice(bytes);
    out
}

/// A certificate transparency log, as Fulcio's: a P-256 key that signs precertificates.
pub struct CtLog {
    dir: TempDir,
    public_der: Vec<u8>,
}

impl CtLog {
    pub fn new() -> CtLog {
        let dir = tempfile::tempdir().expect("temp dir");
        let public_der = p256_key(dir.path(), "ct.key");
        CtLog { dir, public_der }
    }

    /// Its log ID (RFC 6962 3.2): the SHA-256 of its key's DER.
    pub fn id(&self) -> Vec<u8> {
        sha2::Sha256::digest(&self.public_der).to_vec()
    }

    /// Its entry in a trusted root's `ctlogs`, valid from 2020 on.
    pub fn trusted_root_entry(&self) -> Value {
        json!({
            "baseUrl": "https://ctfe.concil.test/test",
            "hashAlgorithm": "SHA2_256",
            "publicKey": {
                "rawBytes": base64(&self.public_der),
                "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                "validFor": {"start": VALID_FROM},
            },
            "logId": {"keyId": base64(&self.id())},
        })
    }

    /// This log's ECDSA-SHA256 signature (DER) over what it signs for the precertificate
    /// `tbs` of the CA whose key hashes to `issuer_key_hash`, at `timestamp` (RFC 6962 3.2:
    /// v1, certificate_timestamp, precert_entry, no extensions).
    fn sign_precertificate(&self, issuer_key_hash: &[u8], tbs: &[u8], timestamp: u64) -> Vec<u8> {
        let tbs_length = u32::try_from(tbs.len()).expect("TBS under 16 MiB");
        let mut signed = vec![0, 0];
        signed.extend_from_slice(&timestamp.to_be_bytes());
        signed.extend_from_slice(&[0, 1]);
        signed.extend_from_slice(issuer_key_hash);
        signed.extend_from_slice(&tbs_length.to_be_bytes()[1..]);
        signed.extend_from_slice(tbs);
        signed.extend_from_slice(&[0, 0]);
        let path = self.dir.path();
        std::fs::write(path.join("signed"), signed).expect("write SCT input");
        openssl(path, &["dgst", "-sha256", "-sign", "ct.key", "signed"])
    }
}

/// How the SCT embedded in a leaf certificate is made.
pub struct Sct<'a> {
    pub log: &'a CtLog,
    /// When the log signed, in milliseconds since the epoch.
    pub timestamp: u64,
    /// Whose precertificate the log signed, if not the leaf's identity (the subject
    /// alternative name changed after logging).
    pub precertificate_identity: Option<&'a Identity>,
    /// The timestamp the certificate shows, if not the signed one (tampered).
    pub shown_timestamp: Option<u64>,
}

impl<'a> Sct<'a> {
    /// A genuine SCT of `log` at `timestamp` (milliseconds).
    pub fn by(log: &'a CtLog, timestamp: u64) -> Sct<'a> {
        Sct {
            log,
            timestamp,
            precertificate_identity: None,
            shown_timestamp: None,
        }
    }

    /// The DER OCTET STRING around a TLS SCT list holding this one SCT (v1, ECDSA with
    /// SHA-256, no extensions), signed over the precertificate `tbs`.
    fn list_extension(&self, issuer_key_hash: &[u8], tbs: &[u8]) -> Vec<u8> {
        let signature = self
            .log
            .sign_precertificate(issuer_key_hash, tbs, self.timestamp);
        let mut sct = vec![0];
        sct.extend_from_slice(&self.log.id());
        sct.extend_from_slice(&self.shown_timestamp.unwrap_or(self.timestamp).to_be_bytes());
        sct.extend_from_slice(&[0, 0]);
        sct.extend_from_slice(&[4, 3]); // sha256, ecdsa
        sct.extend_from_slice(&tls_u16_prefixed(&signature));
        der_octet_string(&tls_u16_prefixed(&tls_u16_prefixed(&sct)))
    }
}

/// Milliseconds since the epoch of `unix` seconds.
pub fn millis(unix: i64) -> u64 {
    u64::try_from(unix).expect("after 1970") * 1000
}

/// Who a leaf certificate is for.
#[derive(Debug, Clone)]
pub struct Identity {
    /// `URI:…` or `email:…` (openssl's subjectAltName syntax).
    pub san: String,
    pub issuer: String,
}

impl Identity {
    pub fn uri(uri: &str, issuer: &str) -> Identity {
        Identity {
            san: format!("URI:{uri}"),
            issuer: issuer.to_owned(),
        }
    }

    pub fn email(email: &str, issuer: &str) -> Identity {
        Identity {
            san: format!("email:{email}"),
            issuer: issuer.to_owned(),
        }
    }
}

/// A leaf certificate and its private key.
pub struct Leaf {
    dir: PathBuf,
    key: String,
    pub pem: String,
    pub der: Vec<u8>,
}

impl Leaf {
    /// The ECDSA P-256/SHA-256 DER signature of `message`, as cosign signs.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        let file = self.dir.join("message");
        std::fs::write(&file, message).expect("write message");
        openssl(
            &self.dir,
            &[
                "dgst",
                "-sha256",
                "-sign",
                &self.key,
                file.to_str().expect("utf-8 path"),
            ],
        )
    }
}

/// A log entry as the log returned it.
#[derive(Debug, Clone)]
pub struct Logged {
    pub body: Vec<u8>,
    pub integrated_time: i64,
    pub log_index: i64,
    pub log_id: Vec<u8>,
    pub signed_entry_timestamp: Vec<u8>,
}

/// A test Fulcio (root and intermediate CA) and Rekor (a log key), in a temp dir.
pub struct Sigstore {
    dir: TempDir,
    /// DER: intermediate, root.
    chain: Vec<Vec<u8>>,
    /// The SHA-256 of the intermediate's SubjectPublicKeyInfo DER, as SCTs name the issuer.
    issuer_key_hash: Vec<u8>,
    log_public_der: Vec<u8>,
    ct_log: CtLog,
    next_leaf: std::cell::Cell<usize>,
}

impl Sigstore {
    /// A CA valid from a day ago for a year, a log key and a CT log.
    pub fn new() -> Sigstore {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path();
        std::fs::create_dir(path.join("newcerts")).expect("newcerts");
        std::fs::write(path.join("index.txt"), "").expect("index");
        std::fs::write(path.join("serial"), "1000\n").expect("serial");
        std::fs::write(path.join("ca.cnf"), CA_CONFIG).expect("ca config");
        let start = now() - 86_400;
        let end = now() + 365 * 86_400;
        for (name, subject) in [
            ("root", "/O=concil-test/CN=fulcio-root"),
            ("intermediate", "/O=concil-test/CN=fulcio-intermediate"),
        ] {
            openssl(
                path,
                &[
                    "ecparam",
                    "-name",
                    "secp384r1",
                    "-genkey",
                    "-noout",
                    "-out",
                    &format!("{name}.key"),
                ],
            );
            openssl(
                path,
                &[
                    "req",
                    "-new",
                    "-key",
                    &format!("{name}.key"),
                    "-subj",
                    subject,
                    "-out",
                    &format!("{name}.csr"),
                ],
            );
        }
        let (start, end) = (openssl_time(path, start), openssl_time(path, end));
        let ca = |args: &[&str]| {
            let mut all = vec![
                "ca",
                "-batch",
                "-config",
                "ca.cnf",
                "-notext",
                "-md",
                "sha384",
                "-startdate",
                &start,
                "-enddate",
                &end,
            ];
            all.extend_from_slice(args);
            openssl(path, &all);
        };
        ca(&[
            "-selfsign",
            "-keyfile",
            "root.key",
            "-in",
            "root.csr",
            "-out",
            "root.pem",
            "-extensions",
            "ca_ext",
        ]);
        ca(&[
            "-cert",
            "root.pem",
            "-keyfile",
            "root.key",
            "-in",
            "intermediate.csr",
            "-out",
            "intermediate.pem",
            "-extensions",
            "ca_ext",
        ]);
        let log_public_der = p256_key(path, "log.key");
        openssl(
            path,
            &[
                "pkey",
                "-in",
                "intermediate.key",
                "-pubout",
                "-outform",
                "DER",
                "-out",
                "intermediate.spki",
            ],
        );
        let issuer_key_hash =
            sha2::Sha256::digest(std::fs::read(path.join("intermediate.spki")).expect("SPKI"))
                .to_vec();
        let chain = vec![der_of(path, "intermediate.pem"), der_of(path, "root.pem")];
        Sigstore {
            dir,
            chain,
            issuer_key_hash,
            log_public_der,
            ct_log: CtLog::new(),
            next_leaf: std::cell::Cell::new(0),
        }
    }

    /// The CT log whose SCTs [`Sigstore::issue`] embeds and the trusted root names.
    pub fn ct_log(&self) -> &CtLog {
        &self.ct_log
    }

    /// The intermediate and root as PEM (cosign's `dev.sigstore.cosign/chain`).
    pub fn chain_pem(&self) -> String {
        ["intermediate.pem", "root.pem"]
            .iter()
            .map(|name| std::fs::read_to_string(self.dir.path().join(name)).expect("CA PEM"))
            .collect()
    }

    /// Rekor's log ID: the SHA-256 of the log key's DER.
    pub fn log_id(&self) -> Vec<u8> {
        sha2::Sha256::digest(&self.log_public_der).to_vec()
    }

    /// The `trusted_root.json` naming this CA, log and CT log, written to `path`.
    pub fn write_trusted_root(&self, path: &Path) {
        let root = self.trusted_root();
        std::fs::write(path, serde_json::to_vec_pretty(&root).expect("JSON")).expect("write root");
    }

    /// The `trusted_root.json` naming this CA, log and CT log.
    pub fn trusted_root(&self) -> Value {
        json!({
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [{
                "baseUrl": "https://rekor.concil.test",
                "hashAlgorithm": "SHA2_256",
                "publicKey": {
                    "rawBytes": base64(&self.log_public_der),
                    "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                    "validFor": {"start": "2020-01-01T00:00:00.000Z"},
                },
                "logId": {"keyId": base64(&self.log_id())},
            }],
            "certificateAuthorities": [{
                "subject": {"organization": "concil-test", "commonName": "fulcio"},
                "uri": "https://fulcio.concil.test",
                "certChain": {"certificates": self.chain.iter().map(|der| json!({"rawBytes": base64(der)})).collect::<Vec<_>>()},
                "validFor": {"start": VALID_FROM},
            }],
            "ctlogs": [self.ct_log.trusted_root_entry()],
            "timestampAuthorities": [],
        })
    }

    /// A leaf certificate for `identity`, valid from `not_before` to `not_after` (Unix
    /// seconds), issued by the intermediate for a fresh P-256 key, with an SCT of this
    /// sigstore's CT log made at `not_before`, as Fulcio issues them.
    pub fn issue(&self, identity: &Identity, not_before: i64, not_after: i64) -> Leaf {
        let sct = Sct::by(&self.ct_log, millis(not_before));
        self.issue_with(identity, not_before, not_after, Some(&sct))
    }

    /// [`Sigstore::issue`] with the SCT made as `sct` says, or none.
    pub fn issue_with(
        &self,
        identity: &Identity,
        not_before: i64,
        not_after: i64,
        sct: Option<&Sct>,
    ) -> Leaf {
        let path = self.dir.path();
        let n = self.next_leaf.get();
        self.next_leaf.set(n + 1);
        let key = format!("leaf{n}.key");
        p256_key(path, &key);
        let csr = format!("leaf{n}.csr");
        openssl(
            path,
            &[
                "req",
                "-new",
                "-key",
                &key,
                "-subj",
                "/O=sigstore.dev",
                "-out",
                &csr,
            ],
        );
        let (start, end) = (
            openssl_time(path, not_before),
            openssl_time(path, not_after),
        );
        // `openssl ca` for this CSR and validity, with `extensions` (an openssl config
        // section), written to `name.pem`; returns its DER.
        let sign = |name: &str, extensions: &str| {
            let config = format!("{name}.cnf");
            std::fs::write(path.join(&config), format!("[leaf]\n{extensions}"))
                .expect("leaf extensions");
            let pem = format!("{name}.pem");
            openssl(
                path,
                &[
                    "ca",
                    "-batch",
                    "-config",
                    "ca.cnf",
                    "-notext",
                    "-md",
                    "sha384",
                    "-startdate",
                    &start,
                    "-enddate",
                    &end,
                    "-cert",
                    "intermediate.pem",
                    "-keyfile",
                    "intermediate.key",
                    "-in",
                    &csr,
                    "-out",
                    &pem,
                    "-extfile",
                    &config,
                    "-extensions",
                    "leaf",
                ],
            );
            der_of(path, &pem)
        };
        let name = format!("leaf{n}");
        let mut extensions = leaf_extensions(identity);
        if let Some(sct) = sct {
            // The precertificate: the same certificate without the SCT list. `openssl ca`
            // refuses a serial it issued, so it forgets this one to issue it again.
            let database = ["serial", "index.txt"]
                .map(|file| (file, std::fs::read(path.join(file)).expect("CA database")));
            let precertificate = sign(
                &format!("{name}-pre"),
                &leaf_extensions(sct.precertificate_identity.unwrap_or(identity)),
            );
            for (file, bytes) in database {
                std::fs::write(path.join(file), bytes).expect("restore CA database");
            }
            let list = sct.list_extension(&self.issuer_key_hash, tbs_of(&precertificate));
            extensions.push_str(&format!("{SCT_LIST}=DER:{}\n", hex::encode(list)));
        }
        let der = sign(&name, &extensions);
        let pem = std::fs::read_to_string(path.join(format!("{name}.pem"))).expect("leaf PEM");
        Leaf {
            dir: path.to_path_buf(),
            key: path.join(key).to_str().expect("utf-8 path").to_owned(),
            der,
            pem,
        }
    }

    /// Logs `body` at `integrated_time` as entry `log_index`: the SET is this log's
    /// signature over the canonical entry JSON.
    pub fn log(&self, body: &[u8], integrated_time: i64, log_index: i64) -> Logged {
        let log_id = self.log_id();
        let canonical = format!(
            r#"{{"body":"{}","integratedTime":{integrated_time},"logID":"{}","logIndex":{log_index}}}"#,
            base64(body),
            hex::encode(&log_id)
        );
        let path = self.dir.path();
        std::fs::write(path.join("entry.json"), canonical).expect("write entry");
        let set = openssl(path, &["dgst", "-sha256", "-sign", "log.key", "entry.json"]);
        Logged {
            body: body.to_vec(),
            integrated_time,
            log_index,
            log_id,
            signed_entry_timestamp: set,
        }
    }
}

/// Fulcio's extensions of a leaf for `identity`, as an openssl config section's lines.
fn leaf_extensions(identity: &Identity) -> String {
    format!(
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n\
         extendedKeyUsage=codeSigning\nsubjectAltName=critical,{}\n\
         {ISSUER_V1}=DER:{}\n{ISSUER_V2}=ASN1:UTF8String:{}\n",
        identity.san,
        hex::encode(identity.issuer.as_bytes()),
        identity.issuer
    )
}

/// A `hashedrekord` v0.0.1 body for a signature over content hashing to `sha256_hex`.
pub fn hashedrekord_body(content_sha256: &str, signature: &[u8], certificate_pem: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "0.0.1",
        "kind": "hashedrekord",
        "spec": {
            "data": {"hash": {"algorithm": "sha256", "value": content_sha256}},
            "signature": {"content": base64(signature), "publicKey": {"content": base64(certificate_pem.as_bytes())}},
        },
    }))
    .expect("body JSON")
}

/// A `dsse` v0.0.1 body for an envelope around `payload` with one signature.
pub fn dsse_body(
    envelope: &[u8],
    payload: &[u8],
    signature: &[u8],
    certificate_pem: &str,
) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "0.0.1",
        "kind": "dsse",
        "spec": {
            "envelopeHash": {"algorithm": "sha256", "value": sha256_hex(envelope)},
            "payloadHash": {"algorithm": "sha256", "value": sha256_hex(payload)},
            "signatures": [{"signature": base64(signature), "verifier": base64(certificate_pem.as_bytes())}],
        },
    }))
    .expect("body JSON")
}

/// cosign's `dev.sigstore.cosign/bundle` layer annotation for a log entry.
pub fn cosign_bundle_annotation(entry: &Logged) -> String {
    serde_json::to_string(&json!({
        "SignedEntryTimestamp": base64(&entry.signed_entry_timestamp),
        "Payload": {
            "body": base64(&entry.body),
            "integratedTime": entry.integrated_time,
            "logIndex": entry.log_index,
            "logID": hex::encode(&entry.log_id),
        },
    }))
    .expect("annotation JSON")
}

/// The annotations of a keyless `.sig` layer: signature, certificate, chain, Rekor bundle.
pub fn keyless_layer_annotations(
    signature: &[u8],
    leaf: &Leaf,
    chain_pem: &str,
    entry: &Logged,
) -> Value {
    json!({
        "dev.cosignproject.cosign/signature": base64(signature),
        "dev.sigstore.cosign/certificate": leaf.pem,
        "dev.sigstore.cosign/chain": chain_pem,
        "dev.sigstore.cosign/bundle": cosign_bundle_annotation(entry),
    })
}

/// A keyless `.sig` layer of `digest` pushed as `signed_name`, as `cosign sign` makes it
/// without a key: the simple-signing payload signed by a fresh leaf of `sigstore` for
/// `identity` (valid from a minute ago for ten minutes), logged now as entry 1. Returns the
/// payload and the layer's annotations, for [`crate::cosign::push_signature_manifest`].
pub fn keyless_signature(
    sigstore: &Sigstore,
    identity: &Identity,
    signed_name: &str,
    digest: &str,
) -> (Vec<u8>, Value) {
    let leaf = sigstore.issue(identity, now() - 60, now() + 540);
    let payload = crate::cosign::payload(signed_name, digest);
    let signature = leaf.sign(&payload);
    let body = hashedrekord_body(&crate::sha256_hex(&payload), &signature, &leaf.pem);
    let entry = sigstore.log(&body, now(), 1);
    let annotations = keyless_layer_annotations(&signature, &leaf, &sigstore.chain_pem(), &entry);
    (payload, annotations)
}

/// A v0.3 sigstore bundle: the leaf certificate, the log entry (inclusion promise), and
/// `content` (`{"dsseEnvelope": …}` or `{"messageSignature": …}`).
pub fn bundle_v03(leaf: &Leaf, entry: &Logged, kind: &str, content: Value) -> Vec<u8> {
    let mut bundle = json!({
        "mediaType": crate::cosign::BUNDLE_V03,
        "verificationMaterial": {
            "certificate": {"rawBytes": base64(&leaf.der)},
            "tlogEntries": [{
                "logIndex": entry.log_index.to_string(),
                "logId": {"keyId": base64(&entry.log_id)},
                "kindVersion": {"kind": kind, "version": "0.0.1"},
                "integratedTime": entry.integrated_time.to_string(),
                "inclusionPromise": {"signedEntryTimestamp": base64(&entry.signed_entry_timestamp)},
                "canonicalizedBody": base64(&entry.body),
            }],
        },
    });
    if let (Some(object), Some(extra)) = (bundle.as_object_mut(), content.as_object()) {
        object.extend(extra.clone());
    }
    serde_json::to_vec(&bundle).expect("bundle JSON")
}

const CA_CONFIG: &str = "\
[ca]
default_ca = test_ca
[test_ca]
dir = .
database = ./index.txt
new_certs_dir = ./newcerts
serial = ./serial
policy = policy_any
unique_subject = no
copy_extensions = none
[policy_any]
organizationName = optional
commonName = optional
[ca_ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
";
