//! Signed pulls end to end: the real `concil` binary against the real registry, content trust
//! on as by default (`content_trust` "cosign", keys in `cosign/` beside the config file), and
//! signatures made by sigstore-rs in cosign's registry format. Each refusal exits with its own
//! status, prints one `error:` line naming the image, and leaves the cache without layers:
//! the registry's access log shows that no layer blob (nor the config) was fetched, because
//! trust is decided before anything but the manifest is read. Then the warm-pull cost of
//! verification, and key management through `concil trust cosign`.

use concil_test_support as support;

use std::error::Error;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::{json, Value};
use sigstore::crypto::SigningScheme;
use support::cosign::{
    payload, push_signature_manifest, push_signatures, signature_tag, SignatureLayer, Signer,
};
use support::images::{Format, Images, ListKind, PushedImage, PLATFORM_MARKER};
use support::pull::{expect_failure, run, ConcilHome, Pulled};
use support::registry::{self, Registry};

type TestResult = Result<(), Box<dyn Error>>;

/// The platform the single-platform test images are built for (umoci's default).
const IMAGE_PLATFORM: &str = "linux/amd64";
/// Encrypts the private keys `concil trust cosign generate` writes.
const PASSWORD: &str = "correct horse battery staple";

/// Exit statuses of `concil pull` when the image is not trusted.
const NOT_SIGNED: i32 = 10;
const NO_TRUSTED_KEY: i32 = 11;
const SIGNATURE_INVALID: i32 = 12;
const WRONG_IMAGE: i32 = 13;
const WRONG_REPOSITORY: i32 = 14;
const TRUST_MATERIAL_UNUSABLE: i32 = 15;
const IDENTITY_MISMATCH: i32 = 16;
const CERTIFICATE_NOT_LOGGED: i32 = 23;

/// A concil home whose configuration reaches `registry` and says nothing about content trust,
/// so it is on, with cosign, as by default.
fn trusting_home(registry: &Registry) -> ConcilHome {
    ConcilHome::new(json!({
        "remote_servers": {registry.host(): {"registry": registry.url().as_str()}},
    }))
}

/// Signs `digest` in `repo` with `signer`, as `cosign sign` does.
fn sign(registry: &Registry, signer: &Signer, repo: &str, digest: &str) {
    let signed_name = format!("{}/{repo}", registry.host());
    push_signatures(
        registry,
        repo,
        digest,
        &[SignatureLayer::signed(
            signer,
            payload(&signed_name, digest),
        )],
    );
}

/// `host:port/repo:tag`, the image as concil names it in messages.
fn image_name(image: &PushedImage) -> String {
    image.reference.trim_start_matches("docker://").to_owned()
}

/// `concil pull --json --config … <extra> <image>`, run to its end.
fn pull(home: &ConcilHome, image: &str, extra: &[&str]) -> Output {
    run(&mut home.pull_command(image, extra))
}

/// The pull succeeded: its JSON output, and what it wrote on stderr.
fn succeeded(output: &Output, what: &str) -> (Value, String) {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(0), "{what} failed:\n{stderr}");
    let json = serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "{what} printed no JSON ({error}):\n{}",
            String::from_utf8_lossy(&output.stdout)
        )
    });
    (json, stderr)
}

/// The pull was refused with exit status `status` and one `error:` line naming the image
/// (and `digest`, when the refusal is about one), before the config or any layer was
/// fetched; returns that line.
fn assert_refused(
    registry: &Registry,
    home: &ConcilHome,
    image: &PushedImage,
    output: &Output,
    status: i32,
    digest: Option<&str>,
) -> String {
    let failure = expect_failure(output, &format!("concil pull {}", image.reference));
    assert_eq!(
        output.status.code(),
        Some(status),
        "exit status of the refused pull:\n{}",
        failure.stderr
    );
    home.assert_no_layers();
    assert!(
        home.listing("config").is_empty(),
        "no config cached before trust is decided"
    );
    for layer in &image.layers {
        assert_eq!(
            registry.count_blob_fetches(&layer.digest),
            0,
            "layer {} fetched for an untrusted image",
            layer.digest
        );
    }
    assert_eq!(registry.count_blob_fetches(&image.config_digest), 0);
    let error = failure.error;
    if let Some(digest) = digest {
        assert!(error.contains(digest), "{digest} in: {error}");
    }
    assert!(error.contains(&image_name(image)), "the image in: {error}");
    error
}

/// What a verified pull of `image` must print and leave in `home`'s cache.
fn assert_verified_pull(home: &ConcilHome, image: &PushedImage, json: &Value) {
    let mut expected = Pulled::expected(image, IMAGE_PLATFORM, home);
    expected.verified = "cosign".to_owned();
    assert_eq!(Pulled::from_json(json, &image.reference), expected);
    home.assert_holds_image(image);
}

#[test]
fn signed_image_pulls_verified() -> TestResult {
    let registry = Registry::plain();
    let images = Images::new(&registry)?;
    let image = images.push_busybox("trust/signed", "v1", Format::Docker)?;
    let signer = Signer::p256();
    sign(&registry, &signer, &image.repo, &image.manifest_digest);
    let home = trusting_home(&registry);
    signer.trust_in(&home.cosign_key_dir(), "release");

    let output = pull(&home, &image.reference, &[]);

    let (json, stderr) = succeeded(&output, "signed pull");
    assert_eq!(json["verified"], "cosign");
    assert_verified_pull(&home, &image, &json);
    assert!(!stderr.contains("warning"), "nothing to warn of: {stderr}");
    for layer in &image.layers {
        assert_eq!(registry.count_blob_fetches(&layer.digest), 1);
    }
    Ok(())
}

#[test]
fn unsigned_image_is_refused() -> TestResult {
    let registry = Registry::plain();
    let images = Images::new(&registry)?;
    let image = images.push_busybox("trust/unsigned", "v1", Format::Docker)?;
    let home = trusting_home(&registry);
    Signer::p256().trust_in(&home.cosign_key_dir(), "release");

    let output = pull(&home, &image.reference, &[]);

    let error = assert_refused(
        &registry,
        &home,
        &image,
        &output,
        NOT_SIGNED,
        Some(&image.manifest_digest),
    );
    let tag = signature_tag(&image.manifest_digest);
    assert!(error.contains(&tag), "where it looked: {error}");
    Ok(())
}

#[test]
fn no_trusted_key_is_refused() -> TestResult {
    let registry = Registry::plain();
    let images = Images::new(&registry)?;
    let image = images.push_busybox("trust/no-keys", "v1", Format::Docker)?;
    let signer = Signer::p256();
    sign(&registry, &signer, &image.repo, &image.manifest_digest);
    let home = trusting_home(&registry);
    let keys = home.cosign_key_dir();

    // No cosign/ at all, then one holding only a private key (no `*.pub`).
    for setup in ["missing", "private key only"] {
        if setup == "private key only" {
            std::fs::create_dir_all(&keys)?;
            std::fs::write(keys.join("release.key"), "not a public key")?;
        }
        let output = pull(&home, &image.reference, &[]);
        let error = expect_failure(&output, setup).error;
        assert!(
            error.contains(&keys.display().to_string()),
            "{setup}: the key directory in: {error}"
        );
        assert_refused(&registry, &home, &image, &output, NO_TRUSTED_KEY, None);
    }
    Ok(())
}

#[test]
fn signature_by_an_untrusted_key_is_refused() -> TestResult {
    let registry = Registry::plain();
    let images = Images::new(&registry)?;
    let image = images.push_busybox("trust/untrusted", "v1", Format::Docker)?;
    sign(
        &registry,
        &Signer::p256(),
        &image.repo,
        &image.manifest_digest,
    );
    let home = trusting_home(&registry);
    Signer::p256().trust_in(&home.cosign_key_dir(), "release");
    Signer::new(SigningScheme::ED25519).trust_in(&home.cosign_key_dir(), "build-bot");

    let output = pull(&home, &image.reference, &[]);

    let error = assert_refused(
        &registry,
        &home,
        &image,
        &output,
        SIGNATURE_INVALID,
        Some(&image.manifest_digest),
    );
    assert!(error.contains("2 trusted keys"), "{error}");
    Ok(())
}

#[test]
fn signature_copied_from_another_image_is_refused() -> TestResult {
    let registry = Registry::plain();
    let images = Images::new(&registry)?;
    let image = images.push_busybox("trust/copied", "v1", Format::Docker)?;
    let signed = registry.push_test_image("trust/copied", "signed", registry::Format::Oci, "x");
    assert_ne!(signed.manifest_digest, image.manifest_digest);
    let signer = Signer::p256();
    let signed_name = format!("{}/trust/copied", registry.host());
    let layers = [SignatureLayer::signed(
        &signer,
        payload(&signed_name, &signed.manifest_digest),
    )];
    push_signatures(&registry, "trust/copied", &signed.manifest_digest, &layers);
    // The attacker's move: the other image's signature manifest under this image's tag.
    push_signatures(&registry, "trust/copied", &image.manifest_digest, &layers);
    let home = trusting_home(&registry);
    signer.trust_in(&home.cosign_key_dir(), "release");

    let output = pull(&home, &image.reference, &[]);

    let error = assert_refused(
        &registry,
        &home,
        &image,
        &output,
        WRONG_IMAGE,
        Some(&image.manifest_digest),
    );
    assert!(
        error.contains(&signed.manifest_digest),
        "the digest the signature is for: {error}"
    );
    Ok(())
}

#[test]
fn unverified_pulls_warn_and_say_so() -> TestResult {
    let registry = Registry::plain();
    let images = Images::new(&registry)?;
    let image = images.push_busybox("trust/unverified", "v1", Format::Docker)?;

    let home = trusting_home(&registry);
    Signer::p256().trust_in(&home.cosign_key_dir(), "release");
    let output = pull(&home, &image.reference, &["--no-verify"]);
    let (json, stderr) = succeeded(&output, "pull --no-verify");
    assert_eq!(
        Pulled::from_json(&json, &image.reference),
        Pulled::expected(&image, IMAGE_PLATFORM, &home)
    );
    assert_eq!(json["verified"], "none");
    assert!(
        stderr.lines().any(|line| line.starts_with("warning: --no-verify")
            && line.contains(&image.reference)),
        "{stderr}"
    );
    home.assert_holds_image(&image);

    let home = ConcilHome::new(json!({
        "disable_content_trust": true,
        "remote_servers": {registry.host(): {"registry": registry.url().as_str()}},
    }));
    let output = pull(&home, &image.reference, &[]);
    let (json, stderr) = succeeded(&output, "pull with disable_content_trust");
    assert_eq!(json["verified"], "none");
    assert!(
        stderr
            .lines()
            .any(|line| line.starts_with("warning: disable_content_trust")
                && line.contains(&image.reference)),
        "{stderr}"
    );
    home.assert_holds_image(&image);
    Ok(())
}

#[test]
fn signed_index_pulls_the_requested_platform_verified() -> TestResult {
    let registry = Registry::plain();
    let images = Images::new(&registry)?;
    let index = images.push_multi_platform("trust/multi", "v1", ListKind::OciIndex)?;
    let arm64 = &index
        .child("linux/arm64/v8")
        .ok_or("the index has an arm64 child")?
        .image;
    let amd64 = &index
        .child("linux/amd64")
        .ok_or("the index has an amd64 child")?
        .image;
    // The index is signed; its children are trusted through it.
    let signer = Signer::p256();
    sign(&registry, &signer, &index.repo, &index.manifest_digest);
    let home = trusting_home(&registry);
    signer.trust_in(&home.cosign_key_dir(), "release");

    let output = pull(&home, &index.reference, &["--platform", "linux/arm64"]);

    let (json, _) = succeeded(&output, "signed index pull");
    let mut expected = Pulled::expected(arm64, "linux/arm64", &home);
    expected.verified = "cosign".to_owned();
    assert_eq!(Pulled::from_json(&json, &index.reference), expected);
    home.assert_cache_holds(
        &[&index.manifest_digest, &arm64.manifest_digest],
        &[&arm64.config_digest],
        &[(&arm64.layers[0].digest, &arm64.layers[0].diff_id)],
    );
    let squashfs = home
        .cache_dir()
        .join("layers")
        .join(&arm64.layers[0].diff_id);
    let marker = Command::new("rdsquashfs")
        .arg("-c")
        .arg(format!("/{PLATFORM_MARKER}"))
        .arg(&squashfs)
        .output()?;
    assert!(marker.status.success(), "rdsquashfs -c: {marker:?}");
    assert_eq!(String::from_utf8_lossy(&marker.stdout), "linux/arm64/v8\n");
    assert_eq!(registry.count_blob_fetches(&amd64.layers[0].digest), 0);

    // An unsigned index is refused before either child is looked at.
    let unsigned = images.push_multi_platform("trust/multi-unsigned", "v1", ListKind::OciIndex)?;
    let home = trusting_home(&registry);
    signer.trust_in(&home.cosign_key_dir(), "release");
    let output = pull(&home, &unsigned.reference, &["--platform", "linux/arm64"]);
    let failure = expect_failure(&output, "unsigned index pull");
    assert_eq!(output.status.code(), Some(NOT_SIGNED), "{}", failure.stderr);
    assert!(
        failure.error.contains(&unsigned.manifest_digest),
        "{}",
        failure.error
    );
    home.assert_no_layers();
    let cached: Vec<String> = home.listing("manifest").into_keys().collect();
    assert_eq!(
        cached,
        [unsigned.manifest_digest.as_str()],
        "only the index"
    );
    Ok(())
}

#[test]
fn warm_signed_pull_costs_at_most_two_round_trips_more() -> TestResult {
    let registry = Registry::plain();
    let images = Images::new(&registry)?;
    let image = images.push_busybox("trust/warm", "v1", Format::Docker)?;
    let signer = Signer::p256();
    sign(&registry, &signer, &image.repo, &image.manifest_digest);
    let home = trusting_home(&registry);
    signer.trust_in(&home.cosign_key_dir(), "release");
    let (cold, _) = succeeded(&pull(&home, &image.reference, &[]), "cold signed pull");

    // Requests the registry answered during one pull (its "response completed" lines).
    let requests_during = |extra: &[&str]| {
        let before = registry.log_lines().len();
        let (json, _) = succeeded(&pull(&home, &image.reference, extra), "warm pull");
        (json, registry.log_lines().len() - before)
    };
    let (unverified, unverified_requests) = requests_during(&["--no-verify"]);
    let (verified, verified_requests) = requests_during(&[]);

    assert_eq!(unverified["verified"], "none");
    assert_eq!(
        support::pull::without_sources(&verified),
        support::pull::without_sources(&cold),
        "the warm pull gives what the cold one did"
    );
    assert!(
        verified["layers"]
            .as_array()
            .is_some_and(|layers| layers.iter().all(|layer| layer["source"] == "cache")),
        "every layer from the cache: {verified}"
    );
    assert_eq!(verified["verified"], "cosign");
    // The signature is checked afresh (a signature can be removed), at the cost of the
    // signature manifest and its payload: no more.
    let extra = verified_requests.checked_sub(unverified_requests);
    assert!(
        matches!(extra, Some(1..=2)),
        "a warm verified pull made {verified_requests} requests, an unverified one \
         {unverified_requests}"
    );
    for layer in &image.layers {
        assert_eq!(
            registry.count_blob_fetches(&layer.digest),
            1,
            "warm pulls fetch no layer"
        );
    }
    Ok(())
}

/// `concil trust cosign <args> --config …` for `home`, run in `cwd`, with `password` as
/// `$COSIGN_PASSWORD` if given.
fn trust_command(home: &ConcilHome, cwd: &Path, password: Option<&str>, args: &[&str]) -> Output {
    let mut command = home.concil();
    command
        .current_dir(cwd)
        .args(["trust", "cosign"])
        .args(args)
        .arg("--config")
        .arg(home.config_path());
    if let Some(password) = password {
        command.env("COSIGN_PASSWORD", password);
    }
    run(&mut command)
}

fn stdout_of(output: &Output, what: &str) -> String {
    assert_eq!(
        output.status.code(),
        Some(0),
        "{what} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

use support::openssl;

/// The `name` column of `concil trust cosign list`.
fn listed_names(listing: &str) -> Vec<&str> {
    listing
        .lines()
        .map(|line| line.split('\t').next().unwrap_or_default())
        .collect()
}

#[test]
fn keys_managed_through_the_cli_verify_pulls() -> TestResult {
    let registry = Registry::plain();
    let images = Images::new(&registry)?;
    let image = images.push_busybox("trust/cli-keys", "v1", Format::Docker)?;
    let home = trusting_home(&registry);
    let keys = home.cosign_key_dir();
    let work = tempfile::tempdir()?;

    assert_eq!(
        stdout_of(&trust_command(&home, work.path(), None, &["list"]), "list"),
        ""
    );

    // generate: the private key in the current directory, the public one among the keys.
    let output = trust_command(&home, work.path(), Some(PASSWORD), &["generate", "release"]);
    let printed = stdout_of(&output, "generate");
    let private_key = work.path().join("release.key");
    let public_key = keys.join("release.pub");
    assert!(printed.contains("release.key"), "{printed}");
    assert!(
        printed.contains(&public_key.display().to_string()),
        "{printed}"
    );
    let pem = std::fs::read(&private_key)?;
    assert!(
        String::from_utf8_lossy(&pem).starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----"),
        "{}",
        String::from_utf8_lossy(&pem)
    );
    let mode = std::fs::metadata(&private_key)?.permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "mode of {}", private_key.display());
    assert!(std::fs::read_to_string(&public_key)?.starts_with("-----BEGIN PUBLIC KEY-----"));

    // Without a password, or over an existing key, nothing is written.
    let output = trust_command(&home, work.path(), None, &["generate", "second"]);
    let error = expect_failure(&output, "generate without COSIGN_PASSWORD").error;
    assert!(error.contains("COSIGN_PASSWORD"), "{error}");
    assert!(!work.path().join("second.key").exists());
    assert!(!keys.join("second.pub").exists());
    let output = trust_command(&home, work.path(), Some(PASSWORD), &["generate", "release"]);
    let error = expect_failure(&output, "generate over an existing key").error;
    assert!(
        error.contains("release."),
        "names the existing file: {error}"
    );
    assert_eq!(std::fs::read(&private_key)?, pem, "the private key is kept");

    let listing = stdout_of(&trust_command(&home, work.path(), None, &["list"]), "list");
    assert_eq!(listed_names(&listing), ["release"], "{listing}");
    assert!(listing.contains("EcdsaP256"), "{listing}");
    assert!(
        listing.contains(&public_key.display().to_string()),
        "{listing}"
    );

    // import: PEM public keys made by openssl, by file name or given a name.
    openssl(
        work.path(),
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-384",
            "-out",
            "team.key",
        ],
    );
    openssl(
        work.path(),
        &["pkey", "-in", "team.key", "-pubout", "-out", "team.pem"],
    );
    openssl(
        work.path(),
        &["genpkey", "-algorithm", "ED25519", "-out", "ed.key"],
    );
    openssl(
        work.path(),
        &["pkey", "-in", "ed.key", "-pubout", "-out", "ed.pem"],
    );
    let printed = stdout_of(
        &trust_command(&home, work.path(), None, &["import", "team.pem"]),
        "import team.pem",
    );
    assert_eq!(printed.trim(), keys.join("team.pub").display().to_string());
    stdout_of(
        &trust_command(&home, work.path(), None, &["import", "ed.pem", "build-bot"]),
        "import ed.pem build-bot",
    );
    let listing = stdout_of(&trust_command(&home, work.path(), None, &["list"]), "list");
    assert_eq!(
        listed_names(&listing),
        ["build-bot", "release", "team"],
        "{listing}"
    );

    // A file that is no public key is refused, naming it, and not imported.
    let invalid = work.path().join("invalid.pem");
    std::fs::write(
        &invalid,
        "-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5\n-----END PUBLIC KEY-----\n",
    )?;
    let output = trust_command(&home, work.path(), None, &["import", "invalid.pem"]);
    let error = expect_failure(&output, "import invalid.pem").error;
    assert!(error.contains("invalid.pem"), "{error}");
    assert!(!keys.join("invalid.pub").exists());
    let output = trust_command(&home, work.path(), None, &["import", "ed.key", "secret"]);
    let error = expect_failure(&output, "import of a private key").error;
    assert!(error.contains("ed.key"), "{error}");
    assert!(!keys.join("secret.pub").exists());

    // A signature by the generated key (decrypted by sigstore-rs) makes the pull pass.
    let output = pull(&home, &image.reference, &[]);
    assert_refused(
        &registry,
        &home,
        &image,
        &output,
        NOT_SIGNED,
        Some(&image.manifest_digest),
    );
    let signer = Signer::from_encrypted_pem(&pem, PASSWORD.as_bytes());
    sign(&registry, &signer, &image.repo, &image.manifest_digest);
    let (json, _) = succeeded(
        &pull(&home, &image.reference, &[]),
        "pull signed by the generated key",
    );
    assert_verified_pull(&home, &image, &json);
    Ok(())
}

#[test]
fn signed_identity_is_checked_when_configured() -> TestResult {
    let registry = Registry::plain();
    let images = Images::new(&registry)?;
    let image = images.push_busybox("trust/identity", "v1", Format::Docker)?;
    let signer = Signer::p256();
    // A valid signature of this very digest, made for another repository's name.
    let other_name = format!("{}/trust/elsewhere", registry.host());
    let layers = [SignatureLayer::signed(
        &signer,
        payload(&other_name, &image.manifest_digest),
    )];
    push_signatures(&registry, "trust/identity", &image.manifest_digest, &layers);

    // On: the signed name must be this repository's (checked first: a refusal fetches no layer).
    let home = ConcilHome::new(json!({
        "remote_servers": {registry.host(): {"registry": registry.url().as_str()}},
        "cosign_check_identity": true,
    }));
    signer.trust_in(&home.cosign_key_dir(), "release");
    let output = pull(&home, &image.reference, &[]);
    let error = assert_refused(
        &registry,
        &home,
        &image,
        &output,
        WRONG_REPOSITORY,
        Some(&image.manifest_digest),
    );
    assert!(error.contains("trust/elsewhere"), "{error}");

    // Off (the default, as cosign): the signature counts.
    let home = trusting_home(&registry);
    signer.trust_in(&home.cosign_key_dir(), "release");
    let (output, _) = succeeded(&pull(&home, &image.reference, &[]), "identity not checked");
    assert_eq!(output["verified"], "cosign");

    Ok(())
}

/// Keyless signing end to end: a `.sig` layer with a Fulcio-like certificate (with an SCT of
/// a CT log) and a Rekor-like SET (made with openssl, tests/support/keyless.rs), verified
/// offline against the `cosign_trusted_root` file for the `cosign_identities` entry of the
/// repository.
#[test]
fn keyless_signed_image_pulls_with_a_trusted_root_and_identity() -> TestResult {
    use support::keyless::{keyless_signature, CtLog, Identity, Sigstore};
    const ISSUER: &str = "https://accounts.example.org";
    let registry = Registry::plain();
    let images = Images::new(&registry)?;
    let image = images.push_busybox("trust/keyless", "v1", Format::Docker)?;
    let sigstore = Sigstore::new();
    let signature = keyless_signature(
        &sigstore,
        &Identity::email("release@example.org", ISSUER),
        &format!("{}/trust/keyless", registry.host()),
        &image.manifest_digest,
    );
    push_signature_manifest(
        &registry,
        "trust/keyless",
        &image.manifest_digest,
        &[signature],
    );
    let root_dir = tempfile::tempdir()?;
    let root = root_dir.path().join("trusted_root.json");
    sigstore.write_trusted_root(&root);
    let config = |root: &Path, subject: &str| {
        json!({
            "remote_servers": {registry.host(): {"registry": registry.url().as_str()}},
            "cosign_trusted_root": root,
            "cosign_identities": {
                format!("{}/trust/*", registry.host()): {"subject": subject, "issuer": ISSUER},
            },
        })
    };

    // Refusals first: they must fetch no layer.
    let home = ConcilHome::new(config(&root, "someone@example.org"));
    let output = pull(&home, &image.reference, &[]);
    let error = assert_refused(
        &registry,
        &home,
        &image,
        &output,
        IDENTITY_MISMATCH,
        Some(&image.manifest_digest),
    );
    assert!(
        error.contains("\"release@example.org\"") && error.contains("\"someone@example.org\""),
        "{error}"
    );

    // A trusted root whose only CT log is another: the certificate's SCT counts for nothing.
    let mut other_ct_log = sigstore.trusted_root();
    other_ct_log["ctlogs"] = json!([CtLog::new().trusted_root_entry()]);
    let other_ct_log_root = root_dir.path().join("other_ct_log.json");
    std::fs::write(&other_ct_log_root, other_ct_log.to_string())?;
    let home = ConcilHome::new(config(&other_ct_log_root, "release@example.org"));
    let output = pull(&home, &image.reference, &[]);
    let error = assert_refused(
        &registry,
        &home,
        &image,
        &output,
        CERTIFICATE_NOT_LOGGED,
        Some(&image.manifest_digest),
    );
    assert!(
        error.contains("certificate transparency")
            && error.contains("which the trusted root does not name"),
        "{error}"
    );

    let missing = root_dir.path().join("missing.json");
    let home = ConcilHome::new(config(&missing, "release@example.org"));
    let output = pull(&home, &image.reference, &[]);
    let failure = expect_failure(&output, "pull with a missing trusted root");
    assert_eq!(output.status.code(), Some(TRUST_MATERIAL_UNUSABLE));
    assert!(
        failure.error.contains(&missing.display().to_string()),
        "{}",
        failure.error
    );

    let home = ConcilHome::new(config(&root, "release@example.org"));
    let (json, _) = succeeded(&pull(&home, &image.reference, &[]), "keyless pull");
    assert_verified_pull(&home, &image, &json);
    Ok(())
}
