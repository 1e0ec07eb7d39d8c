//! Content trust for images as files: cosign signatures made by sigstore-rs are pushed to the
//! real registry beside the image, and `skopeo copy` carries both into an OCI layout (the
//! `sha256-<hex>.sig` tag, the `sha256-<hex>` referrers tag); concil checks them there, as it
//! would in the registry, with the keys of the home's `cosign/` directory and content trust on
//! as by default. The layout `cosign save` writes (its `kind` annotations instead of tags) and
//! the one `oras` writes for referrers (the referrer manifests listed in index.json) are made
//! from skopeo's layout by rewriting index.json, as neither tool is packaged for Debian.
//!
//! Every refusal exits with the status a registry pull would, and leaves no layer in the cache.

use concil_test_support as support;

use std::error::Error;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};
use support::cosign::{
    dsse_bundle, payload, push_bundles, push_signature_manifest, push_signatures, signature_tag,
    statement, SignatureLayer, Signer, COSIGN_SIGN,
};
use support::images::{
    sha256_digest, skopeo_copy, skopeo_copy_with, Format, Images, ListKind, PushedImage,
};
use support::pull::ConcilHome;
use support::registry::Registry;

type TestResult = Result<(), Box<dyn Error>>;

const NOT_FOUND: i32 = 4;
const NOT_SIGNED: i32 = 10;
const NO_TRUSTED_KEY: i32 = 11;
const SIGNATURE_INVALID: i32 = 12;
const WRONG_IMAGE: i32 = 13;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// A home with content trust on (cosign, as by default) trusting `signer`'s key, or none.
fn trusting_home(signer: Option<&Signer>) -> ConcilHome {
    let home = ConcilHome::new(json!({}));
    if let Some(signer) = signer {
        signer.trust_in(&home.cosign_key_dir(), "release");
    }
    home
}

/// Signs `digest` in the image's repository as `cosign sign` does; returns the signature
/// manifest's digest.
fn sign(registry: &Registry, signer: &Signer, repo: &str, digest: &str) -> String {
    let signed_name = format!("{}/{repo}", registry.host());
    push_signatures(
        registry,
        repo,
        digest,
        &[SignatureLayer::signed(
            signer,
            payload(&signed_name, digest),
        )],
    )
}

/// `docker://host:port/repo:tag` for another tag of the image's repository.
fn tag_of(image: &str, tag: &str) -> String {
    let (repository, _) = image.rsplit_once(':').expect("a tagged reference");
    format!("{repository}:{tag}")
}

/// Copies the image (tagged `v1`) and its `.sig` tag into the layout `dir`, as `skopeo copy`
/// of both tags writes them.
fn copy_signed(image: &str, digest: &str, dir: &Path) -> String {
    skopeo_copy(image, &format!("oci:{}:v1", dir.display()), true);
    let sig = signature_tag(digest);
    skopeo_copy(
        &tag_of(image, &sig),
        &format!("oci:{}:{sig}", dir.display()),
        false,
    );
    format!("oci:{}", dir.display())
}

/// The layered test image pushed as `repo:v1`, signed by a fresh key, and copied with its
/// signature into `<work>/layout`: the image, its signer, the layout and `oci:<layout>`.
fn signed_layout(
    registry: &Registry,
    images: &Images,
    repo: &str,
    work: &Path,
) -> Result<(PushedImage, Signer, PathBuf, String), Box<dyn Error>> {
    let image = images.push_layered(repo, "v1", Format::Oci)?;
    let signer = Signer::p256();
    sign(registry, &signer, repo, &image.manifest_digest);
    let layout = work.join("layout");
    let source = copy_signed(&image.reference, &image.manifest_digest, &layout);
    Ok((image, signer, layout, source))
}

fn read_index(layout: &Path) -> Value {
    serde_json::from_slice(&fs::read(layout.join("index.json")).expect("index.json"))
        .expect("index.json is JSON")
}

fn write_index(layout: &Path, index: &Value) {
    fs::write(
        layout.join("index.json"),
        serde_json::to_vec(index).expect("index JSON"),
    )
    .expect("write index.json");
}

/// `tar -C DIR -cf ARCHIVE .`: an `oci-archive:` of a layout.
fn archive(layout: &Path, archive: &Path) -> String {
    let status = Command::new("tar")
        .arg("-C")
        .arg(layout)
        .arg("-cf")
        .arg(archive)
        .arg(".")
        .status()
        .expect("run tar");
    assert!(status.success(), "tar of {}", layout.display());
    format!("oci-archive:{}", archive.display())
}

#[test]
fn signatures_copied_with_the_image_are_verified_in_layouts_and_archives() -> TestResult {
    let registry = Registry::plain();
    let images = Images::new(&registry)?;
    let work = tempfile::tempdir()?;
    let (image, signer, layout, source) =
        signed_layout(&registry, &images, "signed/files", work.path())?;

    let home = trusting_home(Some(&signer));
    // By tag; and without one, the signature beside the image does not make two images.
    for source in [format!("{source}:v1"), source.clone()] {
        let output = home.pull_json(&source, &[]);
        assert_eq!(output["verified"], "cosign", "{source}");
        assert_eq!(output["manifest_digest"], json!(image.manifest_digest));
    }
    home.assert_layers_match(&image);

    let tar = archive(&layout, &work.path().join("image.tar"));
    let home = trusting_home(Some(&signer));
    let output = home.pull_json(&format!("{tar}:v1"), &[]);
    assert_eq!(output["verified"], "cosign");
    home.assert_layers_match(&image);

    // Another key signed it: refused as from a registry, and nothing converted.
    let stranger = trusting_home(Some(&Signer::p256()));
    let failure = stranger.pull_failure(&format!("{source}:v1"), &[]);
    assert_eq!(failure.code, Some(SIGNATURE_INVALID), "{}", failure.stderr);
    assert!(failure.error.contains(&source), "{}", failure.error);
    stranger.assert_no_layers();
    // No key at all.
    let keyless = trusting_home(None);
    let failure = keyless.pull_failure(&format!("{source}:v1"), &[]);
    assert_eq!(failure.code, Some(NO_TRUSTED_KEY), "{}", failure.stderr);
    keyless.assert_no_layers();
    Ok(())
}

/// skopeo turns a Docker schema 2 image into an OCI one when it writes a layout, which changes
/// its digest: the signature names the old one. `--preserve-digests` keeps the Docker manifest
/// (and the signature valid).
#[test]
fn a_docker_image_keeps_its_signature_in_a_layout_only_with_its_digest() -> TestResult {
    let registry = Registry::plain();
    let images = Images::new(&registry)?;
    let image = images.push_busybox("signed/docker", "v1", Format::Docker)?;
    let signer = Signer::p256();
    sign(&registry, &signer, "signed/docker", &image.manifest_digest);
    let work = tempfile::tempdir()?;
    let sig = signature_tag(&image.manifest_digest);
    let copy = |name: &str, args: &[&str]| {
        let layout = work.path().join(name);
        skopeo_copy_with(
            &image.reference,
            &format!("oci:{}:v1", layout.display()),
            args,
        );
        skopeo_copy(
            &tag_of(&image.reference, &sig),
            &format!("oci:{}:{sig}", layout.display()),
            false,
        );
        format!("oci:{}:v1", layout.display())
    };
    let preserved = copy("preserved", &["--preserve-digests"]);
    let home = trusting_home(Some(&signer));
    let output = home.pull_json(&preserved, &[]);
    assert_eq!(output["verified"], "cosign");
    assert_eq!(output["manifest_digest"], json!(image.manifest_digest));
    home.assert_layers_match(&image);

    let converted = copy("converted", &[]);
    let home = trusting_home(Some(&signer));
    let failure = home.pull_failure(&converted, &[]);
    assert_eq!(failure.code, Some(NOT_SIGNED), "{}", failure.stderr);
    assert!(
        !failure.error.contains(&image.manifest_digest),
        "{}",
        failure.error
    );
    home.assert_no_layers();
    Ok(())
}

#[test]
fn a_signed_index_in_a_layout_covers_its_platforms() -> TestResult {
    let registry = Registry::plain();
    let images = Images::new(&registry)?;
    let index = images.push_multi_platform("signed/multi", "v1", ListKind::OciIndex)?;
    let signer = Signer::p256();
    sign(&registry, &signer, "signed/multi", &index.manifest_digest);
    let work = tempfile::tempdir()?;
    let source = copy_signed(
        &index.reference,
        &index.manifest_digest,
        &work.path().join("l"),
    );
    let arm = index.child("linux/arm64/v8").expect("arm64 child");
    let home = trusting_home(Some(&signer));
    let output = home.pull_json(&format!("{source}:v1"), &["--platform", "linux/arm64/v8"]);
    assert_eq!(output["verified"], "cosign");
    assert_eq!(output["manifest_digest"], json!(arm.image.manifest_digest));
    home.assert_layers_match(&arm.image);
    Ok(())
}

/// `cosign save` names nothing by tag: index.json lists the image with the annotation
/// `kind: dev.cosignproject.cosign/image` and its signatures with `…/sigs`.
#[test]
fn the_layout_cosign_save_writes_is_verified() -> TestResult {
    let registry = Registry::plain();
    let images = Images::new(&registry)?;
    let work = tempfile::tempdir()?;
    let (image, signer, layout, source) =
        signed_layout(&registry, &images, "signed/saved", work.path())?;
    let mut index = read_index(&layout);
    for entry in index["manifests"].as_array_mut().expect("manifests") {
        let kind = if entry["digest"] == json!(image.manifest_digest) {
            "dev.cosignproject.cosign/image"
        } else {
            "dev.cosignproject.cosign/sigs"
        };
        entry["annotations"] = json!({"kind": kind});
    }
    write_index(&layout, &index);

    let home = trusting_home(Some(&signer));
    let output = home.pull_json(&source, &[]);
    assert_eq!(output["verified"], "cosign");
    home.assert_layers_match(&image);
    // The signatures' entry counts only beside the image `cosign save` marked as the one
    // signed, with that digest: with no image so marked, the image is not signed.
    let mut index = read_index(&layout);
    index["manifests"][0]["annotations"]["kind"] = json!("dev.cosignproject.cosign/atts");
    write_index(&layout, &index);
    let home = trusting_home(Some(&signer));
    let failure = home.pull_failure(&format!("{source}@{}", image.manifest_digest), &[]);
    assert_eq!(failure.code, Some(NOT_SIGNED), "{}", failure.stderr);
    home.assert_no_layers();
    Ok(())
}

/// Sigstore bundles as OCI 1.1 referrers: through the `sha256-<hex>` referrers tag skopeo
/// copies with `--all`, and as `oras` lays them out (the referrer manifests listed in
/// index.json, found by their `subject`).
#[test]
fn bundles_among_the_referrers_in_a_layout_are_verified() -> TestResult {
    let registry = Registry::plain();
    let repo = "signed/bundles";
    let images = Images::new(&registry)?;
    let image = images.push_layered(repo, "v1", Format::Oci)?;
    let signer = Signer::p256();
    let name = format!("{}/{repo}", registry.host());
    let bundle = dsse_bundle(
        &signer,
        &statement(COSIGN_SIGN, &name, &image.manifest_digest),
    );
    push_bundles(
        &registry,
        repo,
        &image.manifest_digest,
        OCI_MANIFEST,
        &[bundle],
        &[],
    );
    let work = tempfile::tempdir()?;
    let layout = work.path().join("layout");
    skopeo_copy(
        &image.reference,
        &format!("oci:{}:v1", layout.display()),
        false,
    );
    let referrers_tag = image.manifest_digest.replacen(':', "-", 1);
    skopeo_copy(
        &tag_of(&image.reference, &referrers_tag),
        &format!("oci:{}:{referrers_tag}", layout.display()),
        true,
    );
    let source = format!("oci:{}:v1", layout.display());
    let home = trusting_home(Some(&signer));
    assert_eq!(home.pull_json(&source, &[])["verified"], "cosign");

    // As oras writes them: no referrers tag, the bundle manifest itself in index.json.
    let mut index = read_index(&layout);
    let manifests = index["manifests"].as_array_mut().expect("manifests");
    let tagged = manifests
        .iter()
        .position(|entry| {
            entry["annotations"]["org.opencontainers.image.ref.name"] == json!(referrers_tag)
        })
        .expect("the referrers tag in index.json");
    let referrers_digest = manifests.remove(tagged)["digest"]
        .as_str()
        .expect("digest")
        .to_owned();
    let referrers: Value = serde_json::from_slice(&fs::read(
        layout
            .join("blobs/sha256")
            .join(referrers_digest.trim_start_matches("sha256:")),
    )?)?;
    assert_eq!(referrers["mediaType"], OCI_INDEX);
    let mut bundle_entry = referrers["manifests"][0].clone();
    bundle_entry
        .as_object_mut()
        .expect("a descriptor")
        .remove("artifactType");
    manifests.push(bundle_entry);
    write_index(&layout, &index);
    let home = trusting_home(Some(&signer));
    assert_eq!(home.pull_json(&source, &[])["verified"], "cosign");
    home.assert_layers_match(&image);
    // Untagged, the layout still holds one image: the bundle manifest is about it.
    let untagged = format!("oci:{}", layout.display());
    assert_eq!(home.pull_json(&untagged, &[])["verified"], "cosign");
    Ok(())
}

#[test]
fn a_signature_of_another_image_copied_into_a_layout_is_the_wrong_image() -> TestResult {
    let registry = Registry::plain();
    let images = Images::new(&registry)?;
    let image = images.push_layered("signed/copied", "v1", Format::Oci)?;
    let other = images.push_busybox("signed/copied", "other", Format::Oci)?;
    let signer = Signer::p256();
    // The other image's signature, stored under this image's signature tag.
    let name = format!("{}/signed/copied", registry.host());
    push_signatures(
        &registry,
        "signed/copied",
        &image.manifest_digest,
        &[SignatureLayer::signed(
            &signer,
            payload(&name, &other.manifest_digest),
        )],
    );
    let work = tempfile::tempdir()?;
    let source = copy_signed(
        &image.reference,
        &image.manifest_digest,
        &work.path().join("l"),
    );
    let home = trusting_home(Some(&signer));
    let failure = home.pull_failure(&format!("{source}:v1"), &[]);
    assert_eq!(failure.code, Some(WRONG_IMAGE), "{}", failure.stderr);
    home.assert_no_layers();
    Ok(())
}

#[test]
fn a_signature_blob_that_is_not_its_digest_does_not_count() -> TestResult {
    let registry = Registry::plain();
    let images = Images::new(&registry)?;
    let work = tempfile::tempdir()?;
    let (image, signer, layout, source) =
        signed_layout(&registry, &images, "signed/tampered", work.path())?;
    // The payload blob, rewritten to name another digest: the bytes no longer hash to the
    // name the signature manifest gives them.
    let name = format!("{}/signed/tampered", registry.host());
    let signed = payload(&name, &image.manifest_digest);
    let blob = layout
        .join("blobs/sha256")
        .join(sha256_digest(&signed).trim_start_matches("sha256:"));
    let forged = payload(&name, &format!("sha256:{}", "0".repeat(64)));
    fs::write(&blob, forged)?;
    let home = trusting_home(Some(&signer));
    let failure = home.pull_failure(&format!("{source}:v1"), &[]);
    assert_eq!(failure.code, Some(SIGNATURE_INVALID), "{}", failure.stderr);
    assert!(
        failure.stderr.contains(&sha256_digest(&signed)),
        "names the blob: {}",
        failure.stderr
    );
    home.assert_no_layers();
    Ok(())
}

#[test]
fn unsigned_files_are_refused_and_notary_does_not_apply_to_files() -> TestResult {
    let registry = Registry::plain();
    let images = Images::new(&registry)?;
    let image = images.push_layered("signed/none", "v1", Format::Oci)?;
    let work = tempfile::tempdir()?;
    let layout = work.path().join("layout");
    skopeo_copy(
        &image.reference,
        &format!("oci:{}:v1", layout.display()),
        false,
    );
    let docker = work.path().join("docker.tar");
    skopeo_copy(
        &image.reference,
        &format!("docker-archive:{}:signed/none:v1", docker.display()),
        false,
    );
    let signer = Signer::p256();
    let home = trusting_home(Some(&signer));
    for source in [
        format!("oci:{}:v1", layout.display()),
        format!("docker-archive:{}", docker.display()),
    ] {
        let failure = home.pull_failure(&source, &[]);
        assert_eq!(
            failure.code,
            Some(NOT_SIGNED),
            "{source}: {}",
            failure.stderr
        );
        assert!(failure.error.contains(&source), "{}", failure.error);
        home.assert_no_layers();
    }
    // A missing file is not an unsigned one.
    let missing = format!("oci:{}:v1", work.path().join("missing").display());
    assert_eq!(home.pull_failure(&missing, &[]).code, Some(NOT_FOUND));

    let notary = ConcilHome::new(json!({"trust_policy": {"*": "notary"}}));
    let source = format!("oci:{}:v1", layout.display());
    let failure = notary.pull_failure(&source, &[]);
    assert_eq!(failure.code, Some(NOT_SIGNED), "{}", failure.stderr);
    assert!(
        failure.error.contains("Notary does not apply"),
        "{}",
        failure.error
    );
    notary.assert_no_layers();
    assert_eq!(
        notary.pull_json(&source, &["--no-verify"])["verified"],
        "none"
    );
    Ok(())
}

/// Keyless signatures in a file are checked against the trusted root and the identity the
/// `cosign_identities` key `"*"` gives: a file has no registry or repository for the other
/// keys to match.
#[test]
fn keyless_signatures_in_a_file_use_the_identity_for_every_repository() -> TestResult {
    use support::keyless::{keyless_signature, Identity, Sigstore};
    const ISSUER: &str = "https://accounts.example.org";
    let registry = Registry::plain();
    let images = Images::new(&registry)?;
    let image = images.push_layered("signed/keyless", "v1", Format::Oci)?;
    let sigstore = Sigstore::new();
    let signature = keyless_signature(
        &sigstore,
        &Identity::email("release@example.org", ISSUER),
        &format!("{}/signed/keyless", registry.host()),
        &image.manifest_digest,
    );
    push_signature_manifest(
        &registry,
        "signed/keyless",
        &image.manifest_digest,
        &[signature],
    );
    let work = tempfile::tempdir()?;
    let source = copy_signed(
        &image.reference,
        &image.manifest_digest,
        &work.path().join("l"),
    );
    let root = work.path().join("trusted_root.json");
    sigstore.write_trusted_root(&root);
    let identity = json!({"subject": "release@example.org", "issuer": ISSUER});

    let home = ConcilHome::new(json!({
        "cosign_trusted_root": root,
        "cosign_identities": {"*": identity},
    }));
    let output = home.pull_json(&format!("{source}:v1"), &[]);
    assert_eq!(output["verified"], "cosign");
    home.assert_layers_match(&image);

    // An identity for the registry's repositories says nothing of a file.
    let home = ConcilHome::new(json!({
        "cosign_trusted_root": root,
        "cosign_identities": {format!("{}/signed/*", registry.host()): identity},
    }));
    let failure = home.pull_failure(&format!("{source}:v1"), &[]);
    assert_eq!(failure.code, Some(NO_TRUSTED_KEY), "{}", failure.stderr);
    assert!(
        failure.error.contains("only the key \"*\" applies"),
        "{}",
        failure.error
    );
    home.assert_no_layers();
    Ok(())
}
