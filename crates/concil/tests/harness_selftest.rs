//! The test harness checks itself: the image builders push what they claim (read back with
//! `skopeo inspect --raw` and plain HTTP from a real registry), and the proxy flips, cuts,
//! stalls and throttles exactly the bytes it is told to, answers the statuses and ranges it is
//! told to, forwards `HEAD` without waiting for a body, and counts what it forwards.

use concil_test_support as support;

use std::error::Error;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::images::{
    self, Format, Images, ListKind, PushedImage, DOCKER_CONFIG, DOCKER_LAYER_GZIP, DOCKER_LIST,
    DOCKER_MANIFEST, IN_TOTO, OCI_CONFIG, OCI_INDEX, OCI_LAYER_GZIP, OCI_LAYER_ZSTD, OCI_MANIFEST,
    PLATFORM_MARKER,
};
use support::proxy::{BlobFault, BlobRequest, Fault, PathAction, PathFault, PathMatch, Proxy};
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

/// A response read off the wire to its end, and when its parts arrived.
struct RawResponse {
    status: u16,
    /// Names in lower case.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// From sending the request to the last byte that arrived.
    last_data: Duration,
    /// From sending the request to the end of the stream.
    eof: Duration,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(header, _)| header == name)
            .map(|(_, value)| value.as_str())
    }
}

/// Sends `method path` with `headers` to `addr` (no `Connection: close`: the proxy must close
/// by itself) and reads until the peer closes, which must be within 10 s.
fn raw_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<RawResponse, Box<dyn Error>> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    let started = Instant::now();
    stream.write_all(request.as_bytes())?;
    let mut received = Vec::new();
    let mut buffer = [0u8; 16 * 1024];
    let mut last_data = Duration::ZERO;
    loop {
        // a read timeout fails the test: the proxy did not close
        let read = stream.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        received.extend_from_slice(&buffer[..read]);
        last_data = started.elapsed();
    }
    let eof = started.elapsed();
    parse_raw(&received, last_data, eof)
}

fn parse_raw(
    received: &[u8],
    last_data: Duration,
    eof: Duration,
) -> Result<RawResponse, Box<dyn Error>> {
    let end = received
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .ok_or("no complete head")?;
    let head = std::str::from_utf8(&received[..end])?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .ok_or("no status line")?
        .parse()?;
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    Ok(RawResponse {
        status,
        headers,
        body: received[end + 4..].to_vec(),
        last_data,
        eof,
    })
}

impl ProxiedBlob {
    /// The blob's path on the registry (and the proxy).
    fn path(&self) -> String {
        format!("/v2/test/proxied/blobs/{}", self.digest)
    }

    /// `GET` of the blob through the proxy with `Range: range` (or none).
    fn get_range(&self, range: Option<&str>) -> Result<RawResponse, Box<dyn Error>> {
        let headers: Vec<(&str, &str)> = range.map(|range| ("Range", range)).into_iter().collect();
        raw_request(self.proxy.addr(), "GET", &self.path(), &headers)
    }
}

fn blob_request(
    method: &str,
    path: &str,
    range: Option<&str>,
    status: u16,
    body_bytes: u64,
) -> BlobRequest {
    BlobRequest {
        method: method.to_owned(),
        path: path.to_owned(),
        range: range.map(str::to_owned),
        status,
        body_bytes,
    }
}

#[test]
fn proxy_forwards_head_requests_without_waiting_for_a_body() -> TestResult {
    let setup = proxied_blob()?;
    let addr = setup.proxy.addr();
    let size = setup.blob.len().to_string();
    let blob = raw_request(addr, "HEAD", &setup.path(), &[])?;
    assert_eq!(blob.status, 200);
    assert_eq!(blob.header("content-length"), Some(size.as_str()));
    assert!(
        blob.body.is_empty(),
        "{} bytes after a HEAD",
        blob.body.len()
    );
    assert!(
        blob.eof < Duration::from_secs(2),
        "HEAD took {:?}",
        blob.eof
    );

    let manifest_path = "/v2/test/proxied/manifests/v1";
    let manifest = raw_request(addr, "HEAD", manifest_path, &[("Accept", MANIFEST_ACCEPT)])?;
    assert_eq!(manifest.status, 200);
    assert!(manifest
        .header("docker-content-digest")
        .is_some_and(|digest| digest.starts_with("sha256:")));
    assert!(manifest
        .header("content-length")
        .is_some_and(|length| length != "0"));
    assert!(manifest.body.is_empty());
    assert!(
        manifest.eof < Duration::from_secs(2),
        "HEAD took {:?}",
        manifest.eof
    );

    assert_eq!(
        setup.proxy.blob_requests(),
        [blob_request("HEAD", &setup.path(), None, 200, 0)]
    );
    assert_eq!(setup.proxy.blob_body_bytes(), 0);
    assert_eq!(setup.proxy.blob_responses(), 0, "a HEAD is no blob GET");
    assert_eq!(
        setup.proxy.requests(),
        [
            ("HEAD".to_owned(), setup.path(), 200),
            ("HEAD".to_owned(), manifest_path.to_owned(), 200),
        ]
    );
    Ok(())
}

#[test]
fn proxy_makes_the_registry_ignore_a_range_once() -> TestResult {
    let setup = proxied_blob()?;
    let size = setup.blob.len();
    // What the registry does with a range: 206, Content-Range, Content-Length of the range.
    let ranged = setup.get_range(Some("bytes=1000-"))?;
    assert_eq!(ranged.status, 206);
    assert_eq!(
        ranged.header("content-range"),
        Some(format!("bytes 1000-{}/{size}", size - 1).as_str())
    );
    assert_eq!(
        ranged.header("content-length"),
        Some((size - 1000).to_string().as_str())
    );
    assert_eq!(ranged.body, setup.blob[1000..]);

    setup.proxy.set_fault(Some(BlobFault {
        fault: Fault::IgnoreRange,
        digest: None,
        times: Some(1),
    }));
    // no Range header: passes unchanged and does not use up the fault
    let whole = setup.get_range(None)?;
    assert_eq!((whole.status, &whole.body), (200, &setup.blob));
    assert_eq!(setup.proxy.faulted_responses(), 0);

    let ignored = setup.get_range(Some("bytes=1000-"))?;
    assert_eq!(ignored.status, 200);
    assert_eq!(ignored.header("content-range"), None);
    assert_eq!(ignored.body, setup.blob);
    assert_eq!(setup.proxy.faulted_responses(), 1);

    // `times: Some(1)`: ranges work again
    let ranged = setup.get_range(Some("bytes=1000-"))?;
    assert_eq!(
        (ranged.status, &ranged.body[..]),
        (206, &setup.blob[1000..])
    );

    let path = setup.path();
    let size = size as u64;
    assert_eq!(
        setup.proxy.blob_requests(),
        [
            blob_request("GET", &path, Some("bytes=1000-"), 206, size - 1000),
            blob_request("GET", &path, None, 200, size),
            blob_request("GET", &path, Some("bytes=1000-"), 200, size),
            blob_request("GET", &path, Some("bytes=1000-"), 206, size - 1000),
        ]
    );
    assert_eq!(setup.proxy.blob_body_bytes(), 4 * size - 2000);
    Ok(())
}

#[test]
fn proxy_shifts_the_start_of_a_content_range() -> TestResult {
    let setup = proxied_blob()?;
    let size = setup.blob.len();
    setup
        .proxy
        .set_fault(Some(BlobFault::always(Fault::WrongContentRange)));
    // a 200 has no Content-Range: passes unchanged and does not use up the fault
    let whole = setup.get_range(None)?;
    assert_eq!((whole.status, &whole.body), (200, &setup.blob));
    assert_eq!(whole.header("content-range"), None);
    assert_eq!(setup.proxy.faulted_responses(), 0);

    let lying = setup.get_range(Some("bytes=1000-1999"))?;
    assert_eq!(lying.status, 206);
    assert_eq!(
        lying.header("content-range"),
        Some(format!("bytes 1001-1999/{size}").as_str())
    );
    assert_eq!(lying.header("content-length"), Some("1000"));
    assert_eq!(
        lying.body,
        setup.blob[1000..2000],
        "the body is not shifted"
    );
    assert_eq!(setup.proxy.faulted_responses(), 1);
    Ok(())
}

#[test]
fn proxy_cuts_at_a_random_point_per_seed_and_response() -> TestResult {
    let setup = proxied_blob()?;
    let size = setup.blob.len() as u64;
    let seed = 42;
    let first = Fault::random_cut(seed, 0, size).ok_or("no cut")?;
    let second = Fault::random_cut(seed, 1, size).ok_or("no cut")?;
    assert_ne!(first, second, "responses are cut at different points");
    assert_ne!(Fault::random_cut(seed + 1, 0, size), Some(first));
    assert_eq!(
        Fault::random_cut(seed, 0, size),
        Some(first),
        "deterministic"
    );
    assert_eq!(Fault::random_cut(seed, 0, 1), None, "no byte to cut after");
    assert_eq!(Fault::random_cut(seed, 7, 2), Some(1));
    let cuts: Vec<u64> = (0..1000)
        .filter_map(|response| Fault::random_cut(seed, response, 10))
        .collect();
    assert_eq!(cuts.len(), 1000);
    for cut in 1..=9 {
        assert!(cuts.contains(&cut), "{cut} is never drawn");
    }
    assert!(!cuts.contains(&0) && !cuts.contains(&10));

    setup.proxy.set_fault(Some(BlobFault {
        fault: Fault::CutAtRandom { seed },
        digest: None,
        times: Some(2),
    }));
    for cut in [first, second] {
        let (received, failed) = get_partial(&setup.proxied_url)?;
        assert!(failed, "a body shorter than its Content-Length is an error");
        assert_eq!(received.len() as u64, cut);
        assert_eq!(received, setup.blob[..cut as usize]);
    }
    assert_eq!(get(&setup.proxied_url)?, setup.blob, "used up");

    // A new plan numbers its responses from 0 again; a 206 is cut within its own length.
    setup.proxy.set_fault(Some(BlobFault {
        fault: Fault::CutAtRandom { seed },
        digest: None,
        times: Some(1),
    }));
    let range_cut = Fault::random_cut(seed, 0, size - 1000).ok_or("no cut")?;
    let ranged = setup.get_range(Some("bytes=1000-"))?;
    assert_eq!(ranged.status, 206);
    assert_eq!(ranged.body.len() as u64, range_cut);
    assert_eq!(ranged.body, setup.blob[1000..1000 + range_cut as usize]);
    assert_eq!(
        setup.proxy.blob_body_bytes(),
        first + second + size + range_cut
    );
    Ok(())
}

#[test]
fn proxy_stalls_a_body_then_closes() -> TestResult {
    let setup = proxied_blob()?;
    let pause = Duration::from_millis(1500);
    let after = 10_000;
    setup
        .proxy
        .set_fault(Some(BlobFault::always(Fault::Stall { after, pause })));
    let stalled = setup.get_range(None)?;
    assert_eq!(stalled.status, 200);
    assert_eq!(
        stalled.header("content-length"),
        Some(setup.blob.len().to_string().as_str())
    );
    assert_eq!(
        stalled.body,
        setup.blob[..after as usize],
        "no byte after the stall"
    );
    let silence = stalled.eof - stalled.last_data;
    assert!(
        silence >= pause - Duration::from_millis(200),
        "closed {silence:?} after the last byte"
    );
    assert!(
        silence < pause + Duration::from_secs(2),
        "silent for {silence:?}"
    );
    assert_eq!(
        setup.proxy.blob_requests(),
        [blob_request("GET", &setup.path(), None, 200, after)]
    );
    Ok(())
}

#[test]
fn dropping_the_proxy_ends_a_stall_at_once() -> TestResult {
    let ProxiedBlob {
        _registry,
        proxy,
        blob,
        digest,
        ..
    } = proxied_blob()?;
    let after = 5_000;
    proxy.set_fault(Some(BlobFault::always(Fault::Stall {
        after,
        pause: Duration::from_secs(2),
    })));
    let mut stream = TcpStream::connect(proxy.addr())?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET /v2/test/proxied/blobs/{digest} HTTP/1.1\r\nHost: proxy\r\n\r\n"
    )?;
    // read up to the stall: the head and `after` body bytes
    let mut received = Vec::new();
    let mut buffer = [0u8; 16 * 1024];
    while parse_raw(&received, Duration::ZERO, Duration::ZERO)
        .map_or(true, |response| (response.body.len() as u64) < after)
    {
        let read = stream.read(&mut buffer)?;
        if read == 0 {
            return Err("closed before the stall".into());
        }
        received.extend_from_slice(&buffer[..read]);
    }
    let dropping = Instant::now();
    drop(proxy);
    let dropped = dropping.elapsed();
    assert!(
        dropped < Duration::from_millis(500),
        "Drop waited {dropped:?}"
    );
    let rest = stream.read(&mut buffer)?;
    let closed = dropping.elapsed();
    assert_eq!(rest, 0, "nothing after the stall");
    assert!(
        closed < Duration::from_secs(1),
        "the stall went on for {closed:?}"
    );
    let response = parse_raw(&received, Duration::ZERO, Duration::ZERO)?;
    assert_eq!(response.body, blob[..after as usize]);
    Ok(())
}

#[test]
fn proxy_answers_bursts_of_rate_limits_and_overload() -> TestResult {
    let setup = proxied_blob()?;
    let size = setup.blob.len() as u64;
    setup.proxy.set_fault(Some(BlobFault {
        fault: Fault::Status {
            code: 429,
            retry_after: Some(7),
            rate_limit_headers: true,
        },
        digest: None,
        times: Some(2),
    }));
    let body = br#"{"errors":[{"code":"TOOMANYREQUESTS","message":"rate limited"}]}"#;
    for _ in 0..2 {
        let limited = setup.get_range(None)?;
        assert_eq!(limited.status, 429);
        assert_eq!(limited.header("retry-after"), Some("7"));
        assert_eq!(limited.header("ratelimit-limit"), Some("100;w=21600"));
        assert_eq!(limited.header("ratelimit-remaining"), Some("0;w=21600"));
        assert_eq!(limited.header("content-type"), Some("application/json"));
        assert_eq!(limited.body, body);
    }
    assert_eq!(get(&setup.proxied_url)?, setup.blob, "the burst is over");

    setup.proxy.set_fault(Some(BlobFault {
        fault: Fault::Status {
            code: 503,
            retry_after: None,
            rate_limit_headers: false,
        },
        digest: None,
        times: Some(1),
    }));
    let overloaded = setup.get_range(None)?;
    assert_eq!(overloaded.status, 503);
    assert_eq!(overloaded.header("retry-after"), None);
    assert_eq!(overloaded.header("ratelimit-limit"), None);
    assert_eq!(overloaded.header("content-length"), Some("0"));
    assert!(overloaded.body.is_empty());
    assert_eq!(get(&setup.proxied_url)?, setup.blob);

    let path = setup.path();
    let limited = blob_request("GET", &path, None, 429, body.len() as u64);
    assert_eq!(
        setup.proxy.blob_requests(),
        [
            limited.clone(),
            limited,
            blob_request("GET", &path, None, 200, size),
            blob_request("GET", &path, None, 503, 0),
            blob_request("GET", &path, None, 200, size),
        ]
    );
    assert_eq!(setup.proxy.blob_responses(), 2, "only the upstream's 200s");
    assert_eq!(setup.proxy.faulted_responses(), 3);
    assert_eq!(
        setup.proxy.blob_body_bytes(),
        2 * size,
        "error bodies are no blob bytes"
    );
    Ok(())
}

#[test]
fn proxy_path_fault_answers_a_status_with_headers() -> TestResult {
    let setup = proxied_blob()?;
    let addr = setup.proxy.addr();
    let manifest_path = "/v2/test/proxied/manifests/v1";
    setup.proxy.set_path_faults(vec![PathFault {
        path: PathMatch::Suffix("/manifests/v1".to_owned()),
        action: PathAction::StatusWithHeaders {
            code: 429,
            headers: vec![("Retry-After".to_owned(), "3".to_owned())],
        },
        times: Some(2),
    }]);
    let accept = [("Accept", MANIFEST_ACCEPT)];
    for method in ["GET", "HEAD"] {
        let limited = raw_request(addr, method, manifest_path, &accept)?;
        assert_eq!(limited.status, 429, "{method}");
        assert_eq!(limited.header("retry-after"), Some("3"));
        assert_eq!(limited.header("content-length"), Some("0"));
        assert!(limited.body.is_empty());
    }
    // other paths pass
    assert_eq!(get(&setup.proxied_url)?, setup.blob);
    // used up: the upstream answers
    let manifest = raw_request(addr, "GET", manifest_path, &accept)?;
    assert_eq!(manifest.status, 200);
    assert!(manifest
        .body
        .windows(setup.digest.len())
        .any(|window| window == setup.digest.as_bytes()));
    assert_eq!(setup.proxy.path_faulted_responses(), 2);
    assert_eq!(setup.proxy.faulted_responses(), 0);
    assert_eq!(
        setup.proxy.requests(),
        [
            ("GET".to_owned(), manifest_path.to_owned(), 429),
            ("HEAD".to_owned(), manifest_path.to_owned(), 429),
            ("GET".to_owned(), setup.path(), 200),
            ("GET".to_owned(), manifest_path.to_owned(), 200),
        ]
    );
    Ok(())
}

#[test]
fn proxy_counts_the_bytes_of_a_resumed_download_once() -> TestResult {
    let setup = proxied_blob()?;
    let addr = setup.proxy.addr();
    let size = setup.blob.len() as u64;
    let cut = 50_000;
    setup.proxy.set_fault(Some(BlobFault {
        fault: Fault::CutAfter { bytes: cut },
        digest: Some(setup.digest.clone()),
        times: Some(1),
    }));
    let (mut received, failed) = get_partial(&setup.proxied_url)?;
    assert!(failed);
    assert_eq!(received.len() as u64, cut);
    let range = format!("bytes={cut}-");
    let resumed = setup.get_range(Some(&range))?;
    assert_eq!(resumed.status, 206);
    received.extend_from_slice(&resumed.body);
    assert_eq!(received, setup.blob, "cut + resumed range = the blob");
    assert_eq!(setup.proxy.blob_body_bytes(), size, "no byte fetched twice");

    // HEADs, other statuses and other paths are no blob bytes
    let head = raw_request(addr, "HEAD", &setup.path(), &[])?;
    assert_eq!(head.status, 200);
    let unknown_path = format!("/v2/test/proxied/blobs/sha256:{}", "0".repeat(64));
    let unknown = raw_request(addr, "GET", &unknown_path, &[])?;
    assert_eq!(unknown.status, 404);
    assert!(!unknown.body.is_empty(), "the registry explains a 404");
    let upload = raw_request(
        addr,
        "POST",
        "/v2/test/proxied/blobs/uploads/",
        &[("Content-Length", "0")],
    )?;
    assert_eq!(upload.status, 202);
    assert_eq!(setup.proxy.blob_body_bytes(), size);

    let path = setup.path();
    assert_eq!(
        setup.proxy.blob_requests(),
        [
            blob_request("GET", &path, None, 200, cut),
            blob_request("GET", &path, Some(&range), 206, size - cut),
            blob_request("HEAD", &path, None, 200, 0),
            blob_request("GET", &unknown_path, None, 404, unknown.body.len() as u64),
        ],
        "the upload is no blob request"
    );
    let requests = setup.proxy.requests();
    assert_eq!(requests.len(), 5);
    assert_eq!(
        requests.last(),
        Some(&(
            "POST".to_owned(),
            "/v2/test/proxied/blobs/uploads/".to_owned(),
            202
        ))
    );
    Ok(())
}

#[test]
fn proxy_does_not_wait_for_a_body_after_head_even_if_the_upstream_stays_open() -> TestResult {
    // An upstream that answers HEAD with a Content-Length and keeps the connection open (as a
    // keep-alive server that ignores `Connection: close` would): the proxy must not read on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let upstream_addr = listener.local_addr()?;
    let upstream = std::thread::spawn(move || -> std::io::Result<Vec<u8>> {
        let (mut stream, _) = listener.accept()?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut request = Vec::new();
        let mut buffer = [0u8; 4096];
        while !request.windows(4).any(|window| window == b"\r\n\r\n") {
            let read = stream.read(&mut buffer)?;
            if read == 0 {
                break;
            }
            request.extend_from_slice(&buffer[..read]);
        }
        stream.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nDocker-Content-Digest: sha256:x\r\n\r\n",
        )?;
        std::thread::sleep(Duration::from_secs(2));
        Ok(request)
    });
    let proxy = Proxy::start("127.0.0.1:0", &upstream_addr.to_string())?;
    let path = "/v2/test/open/manifests/latest";
    let response = raw_request(proxy.addr(), "HEAD", path, &[])?;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-length"), Some("1000"));
    assert!(response.body.is_empty());
    assert!(
        response.eof < Duration::from_secs(1),
        "the proxy waited {:?} for a HEAD body",
        response.eof
    );
    assert_eq!(
        proxy.requests(),
        [("HEAD".to_owned(), path.to_owned(), 200)]
    );
    let request = upstream.join().map_err(|_| "upstream panicked")??;
    let request = String::from_utf8(request)?;
    assert!(
        request.starts_with(&format!("HEAD {path} HTTP/1.1\r\n")),
        "{request}"
    );
    assert!(request.contains("Connection: close\r\n"), "{request}");
    Ok(())
}
