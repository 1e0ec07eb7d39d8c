//! The test harness checks itself: the image builders push what they claim (read back with
//! `skopeo inspect --raw` and plain HTTP from a real registry), and the proxy flips, cuts and
//! throttles exactly the bytes it is told to.

use concil_test_support as support;

use std::error::Error;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::images::{
    self, Format, Images, ListKind, PushedImage, DOCKER_CONFIG, DOCKER_LAYER_GZIP, DOCKER_LIST,
    DOCKER_MANIFEST, IN_TOTO, OCI_CONFIG, OCI_INDEX, OCI_LAYER_GZIP, OCI_LAYER_ZSTD, OCI_MANIFEST,
    PLATFORM_MARKER,
};
use support::proxy::{BlobFault, Fault, Proxy};
use support::registry::{Auth, Registry};

type TestResult = Result<(), Box<dyn Error>>;

/// Every manifest type (the registry refuses OCI types it was not offered).
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
    application/vnd.oci.image.index.v1+json, \
    application/vnd.docker.distribution.manifest.v2+json, \
    application/vnd.docker.distribution.manifest.list.v2+json";

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .build()
        .into()
}

/// `GET url`, the whole body.
fn get(url: &str) -> Result<Vec<u8>, Box<dyn Error>> {
    let mut response = agent().get(url).call()?;
    if response.status() != 200 {
        return Err(format!("GET {url}: {}", response.status()).into());
    }
    Ok(response
        .body_mut()
        .with_config()
        .limit(u64::MAX)
        .read_to_vec()?)
}

/// `GET url` until the body ends or fails: the bytes that arrived, and whether it failed.
fn get_partial(url: &str) -> Result<(Vec<u8>, bool), Box<dyn Error>> {
    let response = agent().get(url).call()?;
    let mut reader = response.into_body().into_reader();
    let mut received = Vec::new();
    let mut buffer = [0u8; 8192];
    loop {
        match reader.read(&mut buffer) {
            Ok(0) => return Ok((received, false)),
            Ok(read) => received.extend_from_slice(&buffer[..read]),
            Err(_) => return Ok((received, true)),
        }
    }
}

/// `skopeo inspect` with the registry's access options.
fn skopeo_inspect(
    images: &Images,
    options: &[&str],
    reference: &str,
) -> Result<Vec<u8>, Box<dyn Error>> {
    let mut command = Command::new("skopeo");
    command.arg("inspect").args(options);
    images.add_access_args(&mut command, "--");
    let output = command.arg(reference).stdin(Stdio::null()).output()?;
    if !output.status.success() {
        return Err(format!(
            "skopeo inspect {reference}: {}",
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    Ok(output.stdout)
}

/// `tar -tvf` of a tar file, one line per entry.
fn tar_listing(tar: &std::path::Path) -> Result<String, Box<dyn Error>> {
    let output = Command::new("tar").arg("-tvf").arg(tar).output()?;
    if !output.status.success() {
        return Err(format!(
            "tar -tvf {}: {}",
            tar.display(),
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    Ok(String::from_utf8(output.stdout)?)
}

fn has_entry(listing: &str, suffix: &str) -> bool {
    listing.lines().any(|line| line.ends_with(suffix))
}

/// Checks a pushed image against the registry: raw manifest, config diff_ids, layer tars.
fn check_against_registry(
    images: &Images,
    image: &PushedImage,
    manifest_type: &str,
    config_type: &str,
    layer_type: &str,
) -> TestResult {
    let raw = skopeo_inspect(images, &["--raw"], &image.reference)?;
    assert_eq!(raw, image.manifest, "manifest served by tag");
    assert_eq!(images::sha256_digest(&raw), image.manifest_digest);
    let manifest: Value = serde_json::from_slice(&raw)?;
    match manifest.get("mediaType") {
        Some(field) => assert_eq!(field, manifest_type),
        None => assert_eq!(
            manifest_type, OCI_MANIFEST,
            "only OCI manifests may omit mediaType"
        ),
    }
    assert_eq!(image.manifest_media_type, manifest_type);
    assert_eq!(manifest["config"]["mediaType"], config_type);
    assert_eq!(manifest["config"]["digest"], image.config_digest.as_str());
    let layers = manifest["layers"].as_array().ok_or("no layers")?;
    assert_eq!(layers.len(), image.layers.len());
    let config: Value = serde_json::from_slice(&skopeo_inspect(
        images,
        &["--config", "--raw"],
        &image.reference,
    )?)?;
    let diff_ids = config["rootfs"]["diff_ids"]
        .as_array()
        .ok_or("no diff_ids")?;
    for ((served, layer), diff_id) in layers.iter().zip(&image.layers).zip(diff_ids) {
        assert_eq!(served["mediaType"], layer_type);
        assert_eq!(layer.media_type, layer_type);
        assert_eq!(served["digest"], layer.digest.as_str());
        assert_eq!(served["size"], layer.size);
        assert_eq!(diff_id, layer.diff_id.as_str());
        assert_eq!(
            images::sha256_file(&layer.tar)?,
            layer.diff_id,
            "kept tar is the layer"
        );
    }
    Ok(())
}

#[test]
fn busybox_pushes_as_docker_and_oci() -> TestResult {
    let registry = Registry::plain();
    let images = Images::new(&registry)?;
    let docker = images.push_busybox("test/busybox", "docker", Format::Docker)?;
    check_against_registry(
        &images,
        &docker,
        DOCKER_MANIFEST,
        DOCKER_CONFIG,
        DOCKER_LAYER_GZIP,
    )?;
    let oci = images.push_busybox("test/busybox", "oci", Format::Oci)?;
    check_against_registry(&images, &oci, OCI_MANIFEST, OCI_CONFIG, OCI_LAYER_GZIP)?;

    let [layer] = docker.layers.as_slice() else {
        return Err(format!("{} layers, expected 1", docker.layers.len()).into());
    };
    let listing = tar_listing(&layer.tar)?;
    assert!(has_entry(&listing, " bin/busybox"), "{listing}");
    assert!(has_entry(&listing, " bin/sh -> busybox"), "{listing}");
    assert!(
        listing
            .lines()
            .filter(|line| line.ends_with("-> busybox"))
            .count()
            > 100
    );
    // The registry serves each manifest as the type the builder reports, field or no field.
    for image in [&docker, &oci] {
        let url = format!("{}v2/test/busybox/manifests/{}", registry.url(), image.tag);
        let response = agent().get(&url).header("Accept", MANIFEST_ACCEPT).call()?;
        let content_type = response
            .headers()
            .get("Content-Type")
            .ok_or("no Content-Type")?;
        assert_eq!(content_type.to_str()?, image.manifest_media_type);
    }
    // The blob the registry serves is what the manifest names.
    let blob = get(&format!(
        "http://{}/v2/test/busybox/blobs/{}",
        registry.host(),
        layer.digest
    ))?;
    assert_eq!(images::sha256_digest(&blob), layer.digest);
    assert_eq!(blob.len() as u64, layer.size);
    Ok(())
}

#[test]
fn layered_image_has_whiteouts_links_and_an_opaque_dir() -> TestResult {
    // htpasswd: skopeo reads the credentials from the builder's auth file
    let registry = Registry::builder().auth(Auth::Htpasswd).start();
    let images = Images::new(&registry)?;
    let image = images.push_layered("test/layered", "v1", Format::Docker)?;
    check_against_registry(
        &images,
        &image,
        DOCKER_MANIFEST,
        DOCKER_CONFIG,
        DOCKER_LAYER_GZIP,
    )?;
    let [first, second, third] = image.layers.as_slice() else {
        return Err(format!("{} layers, expected 3", image.layers.len()).into());
    };

    let first = tar_listing(&first.tar)?;
    assert!(has_entry(&first, " data/remove-me"), "{first}");
    assert!(has_entry(&first, " opq/sub/old"), "{first}");

    let listing = tar_listing(&second.tar)?;
    assert!(has_entry(&listing, " data/.wh.remove-me"), "{listing}");
    assert!(has_entry(&listing, " data/.wh.removed-dir"), "{listing}");
    assert!(
        has_entry(&listing, " data/hard-b link to data/hard-a")
            || has_entry(&listing, " data/hard-a link to data/hard-b"),
        "{listing}"
    );
    assert!(
        has_entry(&listing, " data/relative-link -> keep"),
        "{listing}"
    );
    assert!(
        has_entry(&listing, " data/absolute-link -> /etc/motd"),
        "{listing}"
    );
    assert!(
        has_entry(&listing, " data/dangling-link -> /does/not/exist"),
        "{listing}"
    );
    assert!(
        listing
            .lines()
            .any(|line| line.starts_with("-rwsr-xr-x") && line.ends_with(" bin/suid-tool")),
        "{listing}"
    );
    let second_bytes = std::fs::read(&second.tar)?;
    let xattr_record = b"SCHILY.xattr.user.concil.test=layer 2";
    assert!(second_bytes
        .windows(xattr_record.len())
        .any(|w| w == xattr_record));

    let listing = tar_listing(&third.tar)?;
    assert!(has_entry(&listing, " opq/.wh..wh..opq"), "{listing}");
    assert!(has_entry(&listing, " opq/new"), "{listing}");
    assert!(has_entry(&listing, " opq/sub2/file"), "{listing}");
    assert!(!has_entry(&listing, " data/keep"), "{listing}");
    Ok(())
}

#[test]
fn zstd_variant_has_the_same_tars_in_zstd_blobs() -> TestResult {
    let registry = Registry::plain();
    let images = Images::new(&registry)?;
    // zstd first: skopeo must not swap in its blobs for the gzip pushes that follow (the
    // builder checks that the pushed layer digests are the built ones)
    let zstd = images.push_layered_zstd("test/layered", "zstd")?;
    let gzip = images.push_layered("test/layered", "gzip", Format::Oci)?;
    let docker = images.push_layered("test/layered", "docker", Format::Docker)?;
    check_against_registry(
        &images,
        &docker,
        DOCKER_MANIFEST,
        DOCKER_CONFIG,
        DOCKER_LAYER_GZIP,
    )?;
    check_against_registry(&images, &zstd, OCI_MANIFEST, OCI_CONFIG, OCI_LAYER_ZSTD)?;
    check_against_registry(&images, &gzip, OCI_MANIFEST, OCI_CONFIG, OCI_LAYER_GZIP)?;
    assert_eq!(zstd.config_digest, gzip.config_digest);
    assert_eq!(zstd.layers.len(), 3);
    for (zstd_layer, gzip_layer) in zstd.layers.iter().zip(&gzip.layers) {
        assert_eq!(zstd_layer.diff_id, gzip_layer.diff_id);
        assert_ne!(zstd_layer.digest, gzip_layer.digest);
        let url = format!(
            "http://{}/v2/test/layered/blobs/{}",
            registry.host(),
            zstd_layer.digest
        );
        let blob = get(&url)?;
        assert_eq!(
            blob.get(..4),
            Some(&[0x28, 0xb5, 0x2f, 0xfd][..]),
            "zstd magic"
        );
        let mut unzstd = Command::new("zstd")
            .args(["-dc", "-q"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let mut stdin = unzstd.stdin.take().ok_or("no stdin")?;
        let writer = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &blob));
        let output = unzstd.wait_with_output()?;
        writer.join().map_err(|_| "writer panicked")??;
        assert_eq!(images::sha256_digest(&output.stdout), zstd_layer.diff_id);
    }
    Ok(())
}

#[test]
fn oci_index_lists_two_platforms_and_an_attestation() -> TestResult {
    // HTTPS with the test CA and bearer tokens, for skopeo and for the hand-written PUTs
    let registry = Registry::builder()
        .tls()
        .auth(Auth::Token {
            anonymous_pull: false,
            expires_in: 300,
        })
        .start();
    let images = Images::new(&registry)?;
    let index = images.push_multi_platform("test/multi", "index", ListKind::OciIndex)?;
    let raw = skopeo_inspect(&images, &["--raw"], &index.reference)?;
    assert_eq!(raw, index.manifest);
    assert_eq!(images::sha256_digest(&raw), index.manifest_digest);
    let served: Value = serde_json::from_slice(&raw)?;
    assert_eq!(served["mediaType"], OCI_INDEX);
    let entries = served["manifests"].as_array().ok_or("no manifests")?;
    let platforms: Vec<String> = entries
        .iter()
        .map(|entry| {
            let platform = &entry["platform"];
            let mut text = format!(
                "{}/{}",
                platform["os"].as_str().unwrap_or("?"),
                platform["architecture"].as_str().unwrap_or("?")
            );
            if let Some(variant) = platform["variant"].as_str() {
                text = format!("{text}/{variant}");
            }
            text
        })
        .collect();
    assert_eq!(
        platforms,
        ["linux/arm64/v8", "linux/amd64", "unknown/unknown"]
    );

    check_children(&registry, &images, &index, OCI_MANIFEST)?;

    let attestation = index
        .attestation_digest
        .as_deref()
        .ok_or("no attestation")?;
    let amd64 = index.child("linux/amd64").ok_or("no amd64 child")?;
    assert_eq!(entries[2]["digest"], attestation);
    assert_eq!(
        entries[2]["annotations"]["vnd.docker.reference.digest"],
        amd64.image.manifest_digest.as_str()
    );
    let by_digest = format!("docker://{}/test/multi@{attestation}", registry.host());
    let manifest: Value =
        serde_json::from_slice(&skopeo_inspect(&images, &["--raw"], &by_digest)?)?;
    assert_eq!(manifest["layers"][0]["mediaType"], IN_TOTO);
    Ok(())
}

#[test]
fn docker_list_lists_two_platforms() -> TestResult {
    let registry = Registry::plain();
    let images = Images::new(&registry)?;
    let list = images.push_multi_platform("test/multi", "list", ListKind::DockerList)?;
    let raw = skopeo_inspect(&images, &["--raw"], &list.reference)?;
    assert_eq!(raw, list.manifest);
    let served: Value = serde_json::from_slice(&raw)?;
    assert_eq!(served["mediaType"], DOCKER_LIST);
    assert_eq!(served["manifests"].as_array().map(Vec::len), Some(2));
    assert_eq!(list.attestation_digest, None);
    check_children(&registry, &images, &list, DOCKER_MANIFEST)
}

/// Each child is served by digest with `media_type` and carries its own platform marker.
fn check_children(
    registry: &Registry,
    images: &Images,
    index: &images::PushedIndex,
    media_type: &str,
) -> TestResult {
    let mut markers = Vec::new();
    for child in &index.children {
        let image = &child.image;
        let by_digest = format!(
            "docker://{}/{}@{}",
            registry.host(),
            index.repo,
            image.manifest_digest
        );
        let raw = skopeo_inspect(images, &["--raw"], &by_digest)?;
        assert_eq!(raw, image.manifest);
        let manifest: Value = serde_json::from_slice(&raw)?;
        assert_eq!(image.manifest_media_type, media_type);
        if let Some(field) = manifest.get("mediaType") {
            assert_eq!(field, media_type);
        }
        let config: Value =
            serde_json::from_slice(&skopeo_inspect(images, &["--config", "--raw"], &by_digest)?)?;
        assert_eq!(config["architecture"], child.platform.architecture);
        let [layer] = image.layers.as_slice() else {
            return Err("children have one layer".into());
        };
        let marker = Command::new("tar")
            .arg("-xOf")
            .arg(&layer.tar)
            .arg(PLATFORM_MARKER)
            .output()?;
        assert_eq!(
            String::from_utf8(marker.stdout)?,
            format!("{}\n", child.platform)
        );
        markers.push(layer.diff_id.clone());
    }
    markers.dedup();
    assert_eq!(
        markers.len(),
        index.children.len(),
        "children differ in content"
    );
    Ok(())
}

/// A registry with one busybox image, a proxy in front of it, and the image's blob URLs.
struct ProxiedBlob {
    _registry: Registry,
    proxy: Proxy,
    blob: Vec<u8>,
    digest: String,
    proxied_url: String,
}

fn proxied_blob() -> Result<ProxiedBlob, Box<dyn Error>> {
    let registry = Registry::plain();
    let images = Images::new(&registry)?;
    let image = images.push_busybox("test/proxied", "v1", Format::Oci)?;
    let digest = image.layers.first().ok_or("no layer")?.digest.clone();
    drop(images); // only the registry's copy is needed from here on
    let blob = get(&format!(
        "http://{}/v2/test/proxied/blobs/{digest}",
        registry.host()
    ))?;
    let proxy = Proxy::start("127.0.0.1:0", &registry.host())?;
    let proxied_url = format!("http://{}/v2/test/proxied/blobs/{digest}", proxy.addr());
    Ok(ProxiedBlob {
        _registry: registry,
        proxy,
        blob,
        digest,
        proxied_url,
    })
}

#[test]
fn proxy_passes_everything_through_without_a_fault() -> TestResult {
    let setup = proxied_blob()?;
    assert_eq!(get(&setup.proxied_url)?, setup.blob);
    assert_eq!(setup.proxy.blob_responses(), 1);
    assert_eq!(setup.proxy.faulted_responses(), 0);
    Ok(())
}

#[test]
fn proxy_flips_one_byte_of_blob_responses_only() -> TestResult {
    let setup = proxied_blob()?;
    let offset = 70_000; // beyond the first read, to exercise the offset arithmetic
    setup.proxy.set_fault(Some(BlobFault {
        fault: Fault::FlipByte { offset },
        digest: None,
        times: Some(1),
    }));
    // not a blob: passes unchanged and does not use up the fault
    let manifest_url = format!("http://{}/v2/test/proxied/manifests/v1", setup.proxy.addr());
    let mut manifest = agent()
        .get(&manifest_url)
        .header("Accept", OCI_MANIFEST)
        .call()?;
    assert_eq!(manifest.status(), 200);
    let manifest = manifest.body_mut().read_to_vec()?;
    assert!(manifest
        .windows(setup.digest.len())
        .any(|w| w == setup.digest.as_bytes()));

    let flipped = get(&setup.proxied_url)?;
    assert_eq!(flipped.len(), setup.blob.len());
    let differing: Vec<usize> = (0..flipped.len())
        .filter(|&i| flipped[i] != setup.blob[i])
        .collect();
    assert_eq!(differing, [offset as usize]);
    assert_eq!(flipped[offset as usize], !setup.blob[offset as usize]);

    // `times: Some(1)`: the next response is intact
    assert_eq!(get(&setup.proxied_url)?, setup.blob);
    assert_eq!(setup.proxy.blob_responses(), 2);
    assert_eq!(setup.proxy.faulted_responses(), 1);
    Ok(())
}

#[test]
fn proxy_cuts_a_blob_short() -> TestResult {
    let setup = proxied_blob()?;
    setup
        .proxy
        .set_fault(Some(BlobFault::always(Fault::CutAfter { bytes: 50_000 })));
    let (received, failed) = get_partial(&setup.proxied_url)?;
    assert!(failed, "a body shorter than its Content-Length is an error");
    assert_eq!(received.len(), 50_000);
    assert_eq!(received, setup.blob[..50_000]);

    // a fault for another digest leaves this blob alone
    setup.proxy.set_fault(Some(BlobFault {
        fault: Fault::CutAfter { bytes: 10 },
        digest: Some(format!("sha256:{}", "0".repeat(64))),
        times: None,
    }));
    assert_eq!(get(&setup.proxied_url)?, setup.blob);
    assert_eq!(setup.proxy.faulted_responses(), 1);
    Ok(())
}

#[test]
fn proxy_throttles_a_blob() -> TestResult {
    let setup = proxied_blob()?;
    let size = setup.blob.len() as u64;
    // about one second of transfer
    setup
        .proxy
        .set_fault(Some(BlobFault::always(Fault::Throttle {
            bytes_per_sec: size,
        })));
    let started = Instant::now();
    let body = get(&setup.proxied_url)?;
    let elapsed = started.elapsed();
    assert_eq!(body, setup.blob);
    assert!(
        elapsed >= Duration::from_millis(800),
        "{size} bytes at {size} B/s took {elapsed:?}"
    );
    Ok(())
}
