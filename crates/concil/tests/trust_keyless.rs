//! Keyless cosign verification against a real `docker-registry`: a test Fulcio CA, Rekor
//! log and certificate transparency log made with the `openssl` command
//! (tests/support/keyless.rs, written apart from the verifier), a `trusted_root.json` naming
//! them, short-lived leaf certificates for the signer identity with an embedded SCT, and
//! signatures pushed in cosign's formats: the `.sig` tag with certificate,
//! chain and Rekor bundle annotations, and v0.3 sigstore bundles as referrers (found through
//! the referrers tag schema, as Debian's registry has no referrers API). No network.

use concil_test_support as support;

use std::path::{Path, PathBuf};

use concil::config::{CosignIdentities, CosignIdentity, IdentityMatch};
use concil::registry::{Client, TlsSettings};
use concil::trust::cosign::{CosignVerified, SignatureFormat, SignedBy, Verifier};
use concil::trust::trusted_root::TrustedRoot;
use concil::trust::{SignatureRejection, TrustError};
use serde_json::json;
use support::cosign::{payload, push_bundles, push_signature_manifest};
use support::images::OCI_MANIFEST;
use support::keyless::{
    base64, dsse_body, hashedrekord_body, keyless_layer_annotations, millis, now, sha256_hex,
    CtLog, Identity, Leaf, Logged, Sct, Sigstore,
};
use support::registry::{Format, PushedImage, Registry};

const GITHUB_ISSUER: &str = "https://token.actions.githubusercontent.com";
const WORKFLOW: &str = "https://github.com/concil/app/.github/workflows/release.yml@refs/tags/v1";
const IN_TOTO: &str = "application/vnd.in-toto+json";
const COSIGN_SIGN: &str = "https://sigstore.dev/cosign/sign/v1";
/// Fulcio certificates live ten minutes.
const CERT_LIFETIME: i64 = 600;

/// A registry with a test image, a test sigstore, and its trusted root on disk.
struct Fixture {
    registry: Registry,
    sigstore: Sigstore,
    dir: tempfile::TempDir,
    image: PushedImage,
    /// `registry/repository`, as signed and as the verifier is told.
    repository: String,
    repo: &'static str,
}

impl Fixture {
    fn new(repo: &'static str) -> Fixture {
        let registry = Registry::plain();
        let image = registry.push_test_image(repo, "v1", Format::Oci, "v1");
        let sigstore = Sigstore::new();
        let dir = tempfile::tempdir().expect("temp dir");
        sigstore.write_trusted_root(&dir.path().join("trusted_root.json"));
        Fixture {
            repository: format!("{}/{repo}", registry.host()),
            registry,
            sigstore,
            dir,
            image,
            repo,
        }
    }

    fn trusted_root(&self) -> PathBuf {
        self.dir.path().join("trusted_root.json")
    }

    /// Our trusted root changed by `edit`, written as `name`.
    fn edited_root(&self, name: &str, edit: impl FnOnce(&mut serde_json::Value)) -> PathBuf {
        let mut root = self.sigstore.trusted_root();
        edit(&mut root);
        let path = self.dir.path().join(name);
        std::fs::write(&path, root.to_string()).expect("write root");
        path
    }

    fn digest(&self) -> &str {
        &self.image.manifest_digest
    }

    /// A leaf for the workflow identity, valid for ten minutes from a minute ago.
    fn workflow_leaf(&self) -> Leaf {
        self.workflow_leaf_with(Some(&Sct::by(self.sigstore.ct_log(), millis(now() - 60))))
    }

    /// [`Fixture::workflow_leaf`] with the SCT `sct` makes, or none.
    fn workflow_leaf_with(&self, sct: Option<&Sct>) -> Leaf {
        self.sigstore.issue_with(
            &Identity::uri(WORKFLOW, GITHUB_ISSUER),
            now() - 60,
            now() - 60 + CERT_LIFETIME,
            sct,
        )
    }

    /// Signs our digest's payload with `leaf`, logs it with `log` at `time`, and pushes it
    /// as a `.sig` layer; returns the log entry.
    fn push_legacy(&self, leaf: &Leaf, log: &Sigstore, time: i64) -> Logged {
        let payload = payload(&self.repository, self.digest());
        let signature = leaf.sign(&payload);
        let body = hashedrekord_body(&sha256_hex(&payload), &signature, &leaf.pem);
        let entry = log.log(&body, time, 7);
        self.push_legacy_layer(payload, &signature, leaf, &entry);
        entry
    }

    fn push_legacy_layer(&self, payload: Vec<u8>, signature: &[u8], leaf: &Leaf, entry: &Logged) {
        let annotations =
            keyless_layer_annotations(signature, leaf, &self.sigstore.chain_pem(), entry);
        push_signature_manifest(
            &self.registry,
            self.repo,
            self.digest(),
            &[(payload, annotations)],
        );
    }

    /// Verifies our digest keylessly (no keys) requiring `identity` for our repository.
    fn verify(&self, identity: CosignIdentity) -> Result<CosignVerified, TrustError> {
        self.verify_with_root(&self.trusted_root(), identity)
    }

    fn verify_with_root(
        &self,
        trusted_root: &Path,
        identity: CosignIdentity,
    ) -> Result<CosignVerified, TrustError> {
        let identities: CosignIdentities = [(format!("{}/*", self.registry.host()), identity)]
            .into_iter()
            .collect();
        let root = TrustedRoot::from_file(trusted_root).expect("trusted root loads");
        let client = Client::new(
            self.registry.url(),
            self.repo,
            None,
            &TlsSettings::default(),
            false,
        )
        .expect("client");
        Verifier::from_key_dir(&self.dir.path().join("no-keys"))
            .expect("no keys")
            .keyless(Some(root), identities)
            .verify(
                &client,
                self.repo,
                &self.repository,
                &support::digest(self.digest()),
            )
    }
}

fn workflow_identity() -> CosignIdentity {
    CosignIdentity {
        subject: IdentityMatch::exact(WORKFLOW),
        issuer: IdentityMatch::exact(GITHUB_ISSUER),
    }
}

fn assert_signed_by_workflow(verified: &CosignVerified, entry: &Logged) {
    match &verified.signed_by {
        SignedBy::Certificate(signer) => {
            assert_eq!(signer.subject, WORKFLOW);
            assert_eq!(signer.issuer, GITHUB_ISSUER);
            assert_eq!(signer.log_index, entry.log_index);
            assert_eq!(signer.integrated_time, entry.integrated_time);
        }
        other => panic!("signed by {other:?}"),
    }
}

/// The rejections of an error that lists them.
fn rejections(error: &TrustError) -> &[SignatureRejection] {
    match error {
        TrustError::SignatureInvalid { rejected, .. }
        | TrustError::CertificateUntrusted { rejected, .. }
        | TrustError::NoTransparencyLogEntry { rejected, .. } => rejected,
        other => panic!("no rejections in {other:?}"),
    }
}

#[test]
fn legacy_keyless_signature_passes() {
    let fixture = Fixture::new("keyless/legacy");
    let leaf = fixture.workflow_leaf();
    let entry = fixture.push_legacy(&leaf, &fixture.sigstore, now());

    let verified = fixture.verify(workflow_identity()).expect("trusted");
    assert_eq!(verified.digest, fixture.digest());
    assert_eq!(verified.format, SignatureFormat::SimpleSigning);
    assert_eq!(verified.key_name(), None);
    assert_eq!(
        verified.docker_reference.as_deref(),
        Some(fixture.repository.as_str())
    );
    assert_signed_by_workflow(&verified, &entry);

    // A regular expression over the whole subject, as for a repository's workflows.
    let pattern = CosignIdentity {
        subject: IdentityMatch::regexp(r"https://github\.com/concil/[^/]+/\.github/workflows/.+")
            .expect("regexp"),
        issuer: IdentityMatch::exact(GITHUB_ISSUER),
    };
    fixture.verify(pattern).expect("the pattern matches");
}

#[test]
fn email_identity_passes() {
    let fixture = Fixture::new("keyless/email");
    let issuer = "https://accounts.google.com";
    let leaf = fixture.sigstore.issue(
        &Identity::email("dev@example.org", issuer),
        now() - 60,
        now() + 540,
    );
    fixture.push_legacy(&leaf, &fixture.sigstore, now());
    let verified = fixture
        .verify(CosignIdentity {
            subject: IdentityMatch::exact("dev@example.org"),
            issuer: IdentityMatch::exact(issuer),
        })
        .expect("trusted");
    assert!(
        matches!(&verified.signed_by, SignedBy::Certificate(signer) if signer.subject == "dev@example.org")
    );
}

#[test]
fn another_identity_or_issuer_is_a_mismatch() {
    let fixture = Fixture::new("keyless/identity");
    let leaf = fixture.workflow_leaf();
    fixture.push_legacy(&leaf, &fixture.sigstore, now());

    let someone_else = "https://github.com/someone/else/.github/workflows/release.yml@refs/tags/v1";
    let error = fixture
        .verify(CosignIdentity {
            subject: IdentityMatch::exact(someone_else),
            issuer: IdentityMatch::exact(GITHUB_ISSUER),
        })
        .expect_err("another subject");
    match &error {
        TrustError::IdentityMismatch {
            expected, found, ..
        } => {
            assert!(expected.contains(someone_else), "{expected}");
            assert!(found.contains(WORKFLOW), "{found}");
        }
        other => panic!("{other}"),
    }
    assert_eq!(concil::exit_status::of(&error), 16);

    let error = fixture
        .verify(CosignIdentity {
            subject: IdentityMatch::exact(WORKFLOW),
            issuer: IdentityMatch::exact("https://accounts.google.com"),
        })
        .expect_err("another issuer");
    assert!(
        matches!(&error, TrustError::IdentityMismatch { found, .. } if found.contains(GITHUB_ISSUER)),
        "{error}"
    );
    assert_eq!(concil::exit_status::of(&error), 16);

    // A pattern that matches only part of the subject does not match it.
    let error = fixture
        .verify(CosignIdentity {
            subject: IdentityMatch::regexp("https://github.com/concil").expect("regexp"),
            issuer: IdentityMatch::exact(GITHUB_ISSUER),
        })
        .expect_err("partial match");
    assert!(
        matches!(error, TrustError::IdentityMismatch { .. }),
        "{error}"
    );
}

#[test]
fn certificate_from_an_untrusted_ca_is_refused() {
    let fixture = Fixture::new("keyless/untrusted-ca");
    let impostor = Sigstore::new();
    let leaf = impostor.issue(
        &Identity::uri(WORKFLOW, GITHUB_ISSUER),
        now() - 60,
        now() + 540,
    );
    // Logged in the trusted log: only the CA is wrong.
    fixture.push_legacy(&leaf, &fixture.sigstore, now());
    let error = fixture
        .verify(workflow_identity())
        .expect_err("untrusted CA");
    assert!(
        matches!(error, TrustError::CertificateUntrusted { .. }),
        "{error}"
    );
    assert_eq!(concil::exit_status::of(&error), 17);
    assert!(
        error.to_string().contains("not issued by a Fulcio CA"),
        "{error}"
    );
}

#[test]
fn entries_of_unknown_logs_or_tampered_are_refused() {
    let fixture = Fixture::new("keyless/tlog");
    let leaf = fixture.workflow_leaf();

    // A SET by a log the trusted root does not name.
    let unknown_log = Sigstore::new();
    fixture.push_legacy(&leaf, &unknown_log, now());
    let error = fixture
        .verify(workflow_identity())
        .expect_err("unknown log");
    assert!(
        matches!(error, TrustError::NoTransparencyLogEntry { .. }),
        "{error}"
    );
    assert_eq!(concil::exit_status::of(&error), 18);
    assert!(
        error.to_string().contains("not in the trusted root"),
        "{error}"
    );

    // The trusted log's SET, with the entry changed afterwards (another integrated time).
    let payload = payload(&fixture.repository, fixture.digest());
    let signature = leaf.sign(&payload);
    let body = hashedrekord_body(&sha256_hex(&payload), &signature, &leaf.pem);
    let mut entry = fixture.sigstore.log(&body, now(), 8);
    entry.integrated_time -= 30;
    fixture.push_legacy_layer(payload.clone(), &signature, &leaf, &entry);
    let error = fixture
        .verify(workflow_identity())
        .expect_err("tampered entry");
    assert!(
        error
            .to_string()
            .contains("signed entry timestamp does not verify"),
        "{error}"
    );
    assert_eq!(concil::exit_status::of(&error), 18);

    // A genuine entry of the trusted log, for another signature (another signing of the
    // same payload): the body does not record this one.
    let other_signature = leaf.sign(&payload);
    let other_body = hashedrekord_body(&sha256_hex(&payload), &other_signature, &leaf.pem);
    let entry = fixture.sigstore.log(&other_body, now(), 9);
    fixture.push_legacy_layer(payload, &signature, &leaf, &entry);
    let error = fixture
        .verify(workflow_identity())
        .expect_err("entry of another signature");
    assert!(
        error.to_string().contains("records another signature"),
        "{error}"
    );
    assert_eq!(concil::exit_status::of(&error), 18);
}

#[test]
fn signing_time_must_lie_within_the_certificate() {
    let fixture = Fixture::new("keyless/time");
    let issued = now() - 7_200;
    let leaf = fixture.sigstore.issue(
        &Identity::uri(WORKFLOW, GITHUB_ISSUER),
        issued,
        issued + CERT_LIFETIME,
    );

    // Logged now, long after the certificate expired.
    fixture.push_legacy(&leaf, &fixture.sigstore, now());
    let error = fixture
        .verify(workflow_identity())
        .expect_err("logged too late");
    assert!(
        matches!(error, TrustError::CertificateUntrusted { .. }),
        "{error}"
    );
    assert!(
        error.to_string().contains("but the log's time is"),
        "{error}"
    );
    assert_eq!(concil::exit_status::of(&error), 17);

    // Logged five minutes into its ten: the certificate has expired since, which is how
    // keyless signatures always are when verified later.
    let entry = fixture.push_legacy(&leaf, &fixture.sigstore, issued + 300);
    let verified = fixture.verify(workflow_identity()).expect("logged in time");
    assert_signed_by_workflow(&verified, &entry);
}

#[test]
fn keyless_signature_of_another_digest_is_the_wrong_image() {
    let fixture = Fixture::new("keyless/copied");
    let other = fixture
        .registry
        .push_test_image(fixture.repo, "other", Format::Oci, "other");
    let leaf = fixture.workflow_leaf();
    // A valid keyless signature of the other image, copied to ours.
    let payload = payload(&fixture.repository, &other.manifest_digest);
    let signature = leaf.sign(&payload);
    let body = hashedrekord_body(&sha256_hex(&payload), &signature, &leaf.pem);
    let entry = fixture.sigstore.log(&body, now(), 3);
    fixture.push_legacy_layer(payload, &signature, &leaf, &entry);
    let error = fixture.verify(workflow_identity()).expect_err("copied");
    assert!(
        matches!(&error, TrustError::WrongImage { signed_digest, .. } if signed_digest == &other.manifest_digest),
        "{error}"
    );
}

#[test]
fn keyless_needs_a_trusted_root_and_an_identity() {
    let fixture = Fixture::new("keyless/unconfigured");
    let leaf = fixture.workflow_leaf();
    fixture.push_legacy(&leaf, &fixture.sigstore, now());
    let client = Client::new(
        fixture.registry.url(),
        fixture.repo,
        None,
        &TlsSettings::default(),
        false,
    )
    .expect("client");
    let no_keys = || Verifier::from_key_dir(Path::new("/nonexistent/cosign")).expect("no keys");

    // Nothing configured: no trusted key, and the message says keyless is not set up.
    let error = no_keys()
        .verify(
            &client,
            "x",
            &fixture.repository,
            &support::digest(fixture.digest()),
        )
        .expect_err("nothing to trust");
    assert_eq!(concil::exit_status::of(&error), 11);
    assert!(
        error.to_string().contains("no cosign_trusted_root"),
        "{error}"
    );

    // A trusted root, but the only identity is for another repository.
    let root = TrustedRoot::from_file(&fixture.trusted_root()).expect("root");
    let elsewhere: CosignIdentities = [("ghcr.io/other/*".to_owned(), workflow_identity())]
        .into_iter()
        .collect();
    let error = no_keys()
        .keyless(Some(root.clone()), elsewhere)
        .verify(
            &client,
            "x",
            &fixture.repository,
            &support::digest(fixture.digest()),
        )
        .expect_err("no identity");
    assert_eq!(concil::exit_status::of(&error), 11);
    assert!(error.to_string().contains(&fixture.repository), "{error}");

    // With a key trusted but no keyless set-up, the keyless signature says why it is refused.
    let keys = tempfile::tempdir().expect("keys");
    support::cosign::Signer::p256().trust_in(keys.path(), "release");
    let error = Verifier::from_key_dir(keys.path())
        .expect("keys")
        .verify(
            &client,
            "x",
            &fixture.repository,
            &support::digest(fixture.digest()),
        )
        .expect_err("keyless not configured");
    assert!(
        matches!(
            rejections(&error),
            [SignatureRejection::KeylessNotConfigured { .. }]
        ),
        "{error}"
    );
    assert_eq!(concil::exit_status::of(&error), 12);
}

/// The certificate is not logged in a trusted CT log, for the reason `reason` names.
fn assert_not_logged(error: &TrustError, reason: &str) {
    assert!(
        matches!(error, TrustError::CertificateNotLogged { .. }),
        "{error}"
    );
    assert_eq!(concil::exit_status::of(error), 23);
    assert!(error.to_string().contains(reason), "{reason} in: {error}");
}

/// A trusted root that names no CT log (a private sigstore without certificate transparency).
fn without_ct_logs(root: &mut serde_json::Value) {
    root["ctlogs"] = json!([]);
}

#[test]
fn certificate_with_an_sct_of_a_trusted_ct_log_passes() {
    let fixture = Fixture::new("keyless/sct");
    let leaf = fixture.workflow_leaf();
    let entry = fixture.push_legacy(&leaf, &fixture.sigstore, now());
    let verified = fixture.verify(workflow_identity()).expect("logged in CT");
    assert_signed_by_workflow(&verified, &entry);

    // Certificate transparency is the trusted root's requirement: without CT logs, the SCT
    // is not looked at and the certificate passes all the same.
    let no_ct_logs = fixture.edited_root("no_ct_logs.json", without_ct_logs);
    let verified = fixture
        .verify_with_root(&no_ct_logs, workflow_identity())
        .expect("no CT required");
    assert_signed_by_workflow(&verified, &entry);
}

#[test]
fn certificate_without_sct_needs_a_root_without_ct_logs() {
    let fixture = Fixture::new("keyless/no-sct");
    let leaf = fixture.workflow_leaf_with(None);
    let entry = fixture.push_legacy(&leaf, &fixture.sigstore, now());
    let error = fixture
        .verify(workflow_identity())
        .expect_err("the root names a CT log");
    assert_not_logged(&error, "embeds no signed certificate timestamp");

    let no_ct_logs = fixture.edited_root("no_ct_logs.json", without_ct_logs);
    let verified = fixture
        .verify_with_root(&no_ct_logs, workflow_identity())
        .expect("no CT required");
    assert_signed_by_workflow(&verified, &entry);
}

#[test]
fn wrong_scts_leave_the_certificate_not_logged() {
    let fixture = Fixture::new("keyless/bad-sct");
    let ct_log = fixture.sigstore.ct_log();
    let issued = millis(now() - 60);

    // A genuine SCT of a CT log the trusted root does not name.
    let unknown_log = CtLog::new();
    let leaf = fixture.workflow_leaf_with(Some(&Sct::by(&unknown_log, issued)));
    fixture.push_legacy(&leaf, &fixture.sigstore, now());
    let error = fixture
        .verify(workflow_identity())
        .expect_err("unknown CT log");
    assert_not_logged(&error, "which the trusted root does not name");

    // The trusted log signed the precertificate of another identity: the subject
    // alternative name changed after logging.
    let logged = Identity::uri(
        "https://github.com/concil/app/.github/workflows/test.yml@refs/heads/main",
        GITHUB_ISSUER,
    );
    let leaf = fixture.workflow_leaf_with(Some(&Sct {
        precertificate_identity: Some(&logged),
        ..Sct::by(ct_log, issued)
    }));
    fixture.push_legacy(&leaf, &fixture.sigstore, now());
    let error = fixture
        .verify(workflow_identity())
        .expect_err("SCT of another precertificate");
    assert_not_logged(&error, "does not verify with its CT log's key");

    // The trusted log's SCT with its timestamp changed afterwards.
    let leaf = fixture.workflow_leaf_with(Some(&Sct {
        shown_timestamp: Some(issued - 1_000),
        ..Sct::by(ct_log, issued)
    }));
    fixture.push_legacy(&leaf, &fixture.sigstore, now());
    let error = fixture
        .verify(workflow_identity())
        .expect_err("tampered SCT timestamp");
    assert_not_logged(&error, "does not verify with its CT log's key");

    // A genuine SCT, made after the CT log's key was retired.
    let leaf = fixture.workflow_leaf();
    fixture.push_legacy(&leaf, &fixture.sigstore, now());
    let retired = fixture.edited_root("retired_ct_log.json", |root| {
        root["ctlogs"][0]["publicKey"]["validFor"]["end"] = json!("2021-01-01T00:00:00Z");
    });
    let error = fixture
        .verify_with_root(&retired, workflow_identity())
        .expect_err("CT log retired");
    assert_not_logged(&error, "when its CT log's key was not valid");
    // The same certificate, while the key was valid: the SCT itself was fine.
    fixture
        .verify(workflow_identity())
        .expect("CT log valid at the SCT's time");
}

/// A v0.3 bundle with a DSSE envelope around cosign's image-signature statement, signed
/// keylessly by `leaf` and logged as a `dsse` entry at `time`.
fn dsse_keyless_bundle(fixture: &Fixture, leaf: &Leaf, time: i64, with_promise: bool) -> Vec<u8> {
    let hex = fixture.digest().trim_start_matches("sha256:");
    let statement = serde_json::to_vec(&json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": fixture.repository, "digest": {"sha256": hex}}],
        "predicateType": COSIGN_SIGN,
        "predicate": {},
    }))
    .expect("statement");
    let mut pae = format!("DSSEv1 {} {IN_TOTO} {} ", IN_TOTO.len(), statement.len()).into_bytes();
    pae.extend_from_slice(&statement);
    let signature = leaf.sign(&pae);
    let envelope = json!({
        "payload": base64(&statement), "payloadType": IN_TOTO,
        "signatures": [{"sig": base64(&signature), "keyid": ""}],
    });
    let envelope_bytes = serde_json::to_vec(&envelope).expect("envelope");
    let body = dsse_body(&envelope_bytes, &statement, &signature, &leaf.pem);
    let entry = fixture.sigstore.log(&body, time, 11);
    let mut bundle: serde_json::Value = serde_json::from_slice(&support::keyless::bundle_v03(
        leaf,
        &entry,
        "dsse",
        json!({"dsseEnvelope": envelope}),
    ))
    .expect("bundle");
    if !with_promise {
        // An inclusion proof instead of the promise: membership, but no signed time.
        let tlog = &mut bundle["verificationMaterial"]["tlogEntries"][0];
        tlog.as_object_mut()
            .expect("entry")
            .remove("inclusionPromise");
        tlog["inclusionProof"] = json!({
            "logIndex": "11", "rootHash": base64(&[0; 32]), "treeSize": "12",
            "hashes": [], "checkpoint": {"envelope": "rekor.concil.test\n12\nAAAA\n\n"},
        });
    }
    serde_json::to_vec(&bundle).expect("bundle JSON")
}

#[test]
fn keyless_bundle_as_referrer_passes() {
    let fixture = Fixture::new("keyless/bundle");
    let leaf = fixture.workflow_leaf();
    let bundle = dsse_keyless_bundle(&fixture, &leaf, now(), true);
    push_bundles(
        &fixture.registry,
        fixture.repo,
        fixture.digest(),
        OCI_MANIFEST,
        &[bundle],
        &[],
    );
    let verified = fixture.verify(workflow_identity()).expect("trusted bundle");
    assert_eq!(verified.format, SignatureFormat::Bundle);
    assert!(
        matches!(&verified.signed_by, SignedBy::Certificate(signer) if signer.subject == WORKFLOW && signer.log_index == 11)
    );

    let error = fixture
        .verify(CosignIdentity {
            subject: IdentityMatch::exact("someone@example.org"),
            issuer: IdentityMatch::exact(GITHUB_ISSUER),
        })
        .expect_err("another signer");
    assert_eq!(concil::exit_status::of(&error), 16, "{error}");
}

#[test]
fn keyless_message_signature_bundle_passes() {
    let fixture = Fixture::new("keyless/message");
    let leaf = fixture.workflow_leaf();
    let signature = leaf.sign(&fixture.image.manifest);
    let body = hashedrekord_body(&sha256_hex(&fixture.image.manifest), &signature, &leaf.pem);
    let entry = fixture.sigstore.log(&body, now(), 5);
    let digest_bytes = hex::decode(sha256_hex(&fixture.image.manifest)).expect("hex");
    let bundle = support::keyless::bundle_v03(
        &leaf,
        &entry,
        "hashedrekord",
        json!({"messageSignature": {
            "messageDigest": {"algorithm": "SHA2_256", "digest": base64(&digest_bytes)},
            "signature": base64(&signature),
        }}),
    );
    push_bundles(
        &fixture.registry,
        fixture.repo,
        fixture.digest(),
        OCI_MANIFEST,
        &[bundle],
        &[],
    );
    let verified = fixture.verify(workflow_identity()).expect("trusted bundle");
    assert_signed_by_workflow(&verified, &entry);
}

#[test]
fn bundle_with_only_an_inclusion_proof_has_no_signed_time() {
    let fixture = Fixture::new("keyless/proof-only");
    let leaf = fixture.workflow_leaf();
    let bundle = dsse_keyless_bundle(&fixture, &leaf, now(), false);
    push_bundles(
        &fixture.registry,
        fixture.repo,
        fixture.digest(),
        OCI_MANIFEST,
        &[bundle],
        &[],
    );
    let error = fixture.verify(workflow_identity()).expect_err("no SET");
    assert_eq!(concil::exit_status::of(&error), 18, "{error}");
    assert!(
        error.to_string().contains("no signed entry timestamp"),
        "{error}"
    );
}

/// The real thing: the bundle cosign v3 made in GitHub Actions for a kubewarden-controller
/// image (Fulcio certificate, Rekor SET), checked against sigstore's public trusted root
/// (tests/data/sigstore, from sigstore-rs). Attached to our test image, every keyless check
/// (chain, embedded SCT, SET, inclusion proof and checkpoint, entry body, identity) passes
/// and only the statement's subject, another image, refuses it.
#[test]
fn real_cosign_v3_bundle_verifies_against_sigstores_trusted_root() {
    const KUBEWARDEN: &str = "https://github.com/kubewarden/kubewarden-controller/.github/workflows/release.yml@refs/tags/v1.34.0";
    const SIGNED: &str = "sha256:c811d58de79c92f03214e63aa339484e488d694ae8a6283b5f3f17a9faf50172";
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sigstore");
    let root = data.join("sigstore_trusted_root.json");
    let bundle = std::fs::read(data.join("bundle_v03.json")).expect("real bundle");
    let fixture = Fixture::new("keyless/real");
    push_bundles(
        &fixture.registry,
        fixture.repo,
        fixture.digest(),
        OCI_MANIFEST,
        std::slice::from_ref(&bundle),
        &[],
    );
    let kubewarden = || CosignIdentity {
        subject: IdentityMatch::exact(KUBEWARDEN),
        issuer: IdentityMatch::exact(GITHUB_ISSUER),
    };
    let error = fixture
        .verify_with_root(&root, kubewarden())
        .expect_err("signed for another image");
    assert!(
        matches!(&error, TrustError::WrongImage { signed_digest, .. } if signed_digest == SIGNED),
        "{error}"
    );

    let error = fixture
        .verify_with_root(&root, workflow_identity())
        .expect_err("another signer");
    assert!(
        matches!(&error, TrustError::IdentityMismatch { found, .. } if found.contains(KUBEWARDEN)),
        "{error}"
    );

    // The certificate's SCT is checked against the root's CT logs: with another key in
    // place of the CT log's, the certificate counts as not logged, a refusal of its own.
    let mut root_json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&root).expect("root")).expect("root JSON");
    let rekor_key = root_json["tlogs"][0]["publicKey"]["rawBytes"].clone();
    for ct_log in root_json["ctlogs"].as_array_mut().expect("ctlogs") {
        ct_log["publicKey"]["rawBytes"] = rekor_key.clone();
    }
    let other_ct_key = fixture.dir.path().join("other_ct_key.json");
    std::fs::write(&other_ct_key, root_json.to_string()).expect("write root");
    let error = fixture
        .verify_with_root(&other_ct_key, kubewarden())
        .expect_err("SCT by an unknown key");
    assert!(
        matches!(&error, TrustError::CertificateNotLogged { .. }),
        "{error}"
    );
    assert_eq!(concil::exit_status::of(&error), 23);
    assert!(
        error
            .to_string()
            .contains("does not verify with its CT log's key"),
        "{error}"
    );
    // A trusted root that names no CT log requires no SCT (a private sigstore without CT).
    root_json["ctlogs"] = json!([]);
    let no_ct_logs = fixture.dir.path().join("no_ct_logs.json");
    std::fs::write(&no_ct_logs, root_json.to_string()).expect("write root");
    let error = fixture
        .verify_with_root(&no_ct_logs, kubewarden())
        .expect_err("signed for another image");
    assert!(matches!(&error, TrustError::WrongImage { .. }), "{error}");

    // Our test CA does not vouch for sigstore's certificates.
    let error = fixture.verify(kubewarden()).expect_err("untrusted CA");
    assert!(
        matches!(
            &error,
            TrustError::CertificateUntrusted { .. } | TrustError::NoTransparencyLogEntry { .. }
        ),
        "{error}"
    );

    // The SET still holds, but one hash of the inclusion proof changed: it leads elsewhere.
    let mut bad_proof: serde_json::Value = serde_json::from_slice(&bundle).expect("bundle JSON");
    bad_proof["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]["hashes"][0] =
        json!(base64(&[7; 32]));
    push_bundles(
        &fixture.registry,
        fixture.repo,
        fixture.digest(),
        OCI_MANIFEST,
        &[serde_json::to_vec(&bad_proof).expect("JSON")],
        &[],
    );
    let error = fixture
        .verify_with_root(&root, kubewarden())
        .expect_err("bad inclusion proof");
    assert_eq!(concil::exit_status::of(&error), 18, "{error}");
    assert!(
        error
            .to_string()
            .contains("inclusion proof leads to another root"),
        "{error}"
    );

    // One changed digit of the integrated time breaks Rekor's SET.
    let mut tampered: serde_json::Value = serde_json::from_slice(&bundle).expect("bundle JSON");
    let entry = &mut tampered["verificationMaterial"]["tlogEntries"][0];
    let time: i64 = entry["integratedTime"]
        .as_str()
        .expect("time")
        .parse()
        .expect("number");
    entry["integratedTime"] = json!((time + 1).to_string());
    push_bundles(
        &fixture.registry,
        fixture.repo,
        fixture.digest(),
        OCI_MANIFEST,
        &[serde_json::to_vec(&tampered).expect("JSON")],
        &[],
    );
    let error = fixture
        .verify_with_root(&root, kubewarden())
        .expect_err("tampered");
    assert_eq!(concil::exit_status::of(&error), 18, "{error}");
}
