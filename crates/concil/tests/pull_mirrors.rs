//! Mirrors (`remote_servers.<host>.mirrors`): a real pull-through cache (Debian's
//! `docker-registry` in proxy mode) in front of an origin registry serves the pull; dead,
//! failing and empty mirrors fall back to the origin; `mirror_digest_only` keeps tags on the
//! origin; a mirror serving other bytes than the digest names is refused; a warm pull by tag
//! asks the registry with `HEAD` only.

use concil_test_support as support;

use std::error::Error;

use serde_json::{json, Value};
use support::images::{Format, Images, PushedImage};
use support::pull::{config_for, run, ConcilHome, Pulled};
use support::registry::{free_port, HttpServer, Registry, Response};

type TestResult = Result<(), Box<dyn Error>>;

/// `config_for(origin)` with `mirrors` (base URLs) in front of it.
fn config_with_mirrors(origin: &Registry, mirrors: &[String], digest_only: bool) -> Value {
    let mut config = config_for(origin);
    config["remote_servers"] = json!({origin.host(): {
        "registry": origin.url().as_str(),
        "mirrors": mirrors,
        "mirror_digest_only": digest_only,
    }});
    config
}

/// The `source` of each layer in `concil pull --json` output.
fn sources(output: &Value) -> Vec<String> {
    output["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|layer| layer["source"].as_str().expect("source").to_owned())
        .collect()
}

fn pull_checked(home: &ConcilHome, image: &PushedImage, reference: &str) -> Value {
    let output = home.pull_json(reference, &[]);
    assert_eq!(
        Pulled::from_json(&output, reference),
        Pulled::expected(image, "linux/amd64", home),
        "pulled through the mirrors"
    );
    output
}

fn base(registry: &Registry) -> String {
    registry.url().as_str().to_owned()
}

#[test]
fn a_pull_through_cache_serves_the_image_and_a_second_node_costs_the_origin_nothing() -> TestResult
{
    let origin = Registry::plain();
    let image = Images::new(&origin)?.push_layered("mirrors/through", "v1", Format::Oci)?;
    let mirror = Registry::builder().pull_through(origin.url()).start();
    let config = config_with_mirrors(&origin, &[base(&mirror)], false);

    let first = ConcilHome::new(config.clone());
    let output = pull_checked(&first, &image, &image.reference);
    assert!(
        sources(&output)
            .iter()
            .all(|source| *source == base(&mirror)),
        "every layer from the mirror: {output}"
    );
    let origin_fetches = |image: &PushedImage| -> Vec<usize> {
        image
            .layers
            .iter()
            .map(|layer| origin.count_blob_fetches(&layer.digest))
            .collect()
    };
    let after_first = origin_fetches(&image);
    assert!(
        after_first.iter().all(|fetches| *fetches >= 1),
        "the mirror fetched every layer from the origin: {after_first:?}"
    );

    // A second node with an empty cache: the mirror serves it from its own storage.
    let second = ConcilHome::new(config);
    let output = pull_checked(&second, &image, &image.reference);
    assert!(
        sources(&output).iter().all(|s| *s == base(&mirror)),
        "{output}"
    );
    assert_eq!(
        origin_fetches(&image),
        after_first,
        "the origin served no layer again for the second node"
    );
    for layer in &image.layers {
        assert_eq!(
            mirror.count_blob_fetches(&layer.digest),
            2,
            "the mirror served both nodes"
        );
    }
    Ok(())
}

#[test]
fn dead_failing_and_empty_mirrors_fall_back_to_the_origin() -> TestResult {
    let origin = Registry::plain();
    let image = Images::new(&origin)?.push_layered("mirrors/fallback", "v1", Format::Docker)?;
    let dead = format!("http://127.0.0.1:{}/", free_port());
    let failing = HttpServer::start(|_| Response {
        status: 500,
        content_type: "text/plain",
        body: b"broken".to_vec(),
        headers: Vec::new(),
    });
    let empty = HttpServer::start(|request| Response {
        // A registry without the image: its /v2/ answers, everything else is unknown.
        status: if request.target == "/v2/" { 200 } else { 404 },
        content_type: "application/json",
        body: br#"{"errors":[{"code":"NAME_UNKNOWN","message":"unknown"}]}"#.to_vec(),
        headers: Vec::new(),
    });
    let mirrors = [
        dead,
        format!("http://127.0.0.1:{}/", failing.port),
        format!("http://127.0.0.1:{}/", empty.port),
    ];
    let home = ConcilHome::new(config_with_mirrors(&origin, &mirrors, false));
    let mut config: Value = serde_json::from_slice(&std::fs::read(home.config_path())?)?;
    // Keep the failing mirror's retries short.
    config["retries"] = json!(1);
    home.rewrite_config(config);

    let output = pull_checked(&home, &image, &image.reference);

    assert!(
        sources(&output)
            .iter()
            .all(|source| *source == base(&origin)),
        "every layer from the origin: {output}"
    );
    Ok(())
}

#[test]
fn mirror_digest_only_keeps_tags_on_the_origin() -> TestResult {
    let origin = Registry::plain();
    let image = Images::new(&origin)?.push_layered("mirrors/digest-only", "v1", Format::Oci)?;
    let mirror = Registry::builder().pull_through(origin.url()).start();
    let config = config_with_mirrors(&origin, &[base(&mirror)], true);

    let by_tag = ConcilHome::new(config.clone());
    let output = pull_checked(&by_tag, &image, &image.reference);
    assert!(
        sources(&output).iter().all(|s| *s == base(&origin)),
        "{output}"
    );
    assert!(
        mirror
            .log_lines()
            .iter()
            .all(|line| !line.contains("/mirrors/")),
        "the mirror was not asked for a pull by tag: {:?}",
        mirror.log_lines()
    );

    let by_digest = ConcilHome::new(config);
    let reference = format!(
        "docker://{}/{}@{}",
        origin.host(),
        image.repo,
        image.manifest_digest
    );
    let output = by_digest.pull_json(&reference, &[]);
    assert_eq!(
        Pulled::from_json(&output, &reference),
        Pulled::expected(&image, "linux/amd64", &by_digest)
    );
    assert!(
        sources(&output).iter().all(|s| *s == base(&mirror)),
        "{output}"
    );
    Ok(())
}

/// A hostile (or corrupt) mirror answers every blob with other bytes of the right size: the
/// config comes from the origin instead (a small blob is checked before it is used), each
/// layer's bytes fail their digest and are thrown away, and the layer is fetched again from
/// the origin alone. The pull succeeds with the origin's bytes, warning about the mirror;
/// nothing of the mirror's reaches the cache.
#[test]
fn a_mirror_serving_other_bytes_is_passed_over_for_the_origin() -> TestResult {
    let origin = Registry::plain();
    let images = Images::new(&origin)?;
    let image = images.push_layered("mirrors/hostile", "v1", Format::Oci)?;
    let manifest = image.manifest.clone();
    // The test server takes a static content type; one small string per test run.
    let media_type: &'static str = Box::leak(image.manifest_media_type.clone().into_boxed_str());
    let sizes: Vec<(String, u64)> = image
        .layers
        .iter()
        .map(|layer| (layer.digest.clone(), layer.size))
        .collect();
    let hostile = HttpServer::start(move |request| {
        let answer = |content_type: &'static str, body: Vec<u8>| Response {
            status: 200,
            content_type,
            body,
            headers: Vec::new(),
        };
        if request.target == "/v2/" {
            return answer("application/json", b"{}".to_vec());
        }
        if request.target.contains("/manifests/") {
            // The true manifest: the mirror's lie is in the blobs.
            let mut response = answer(media_type, manifest.clone());
            response.headers = vec![(
                "Docker-Content-Digest".into(),
                support::sha256_digest(&manifest),
            )];
            return response;
        }
        // Other bytes of the right size.
        let size = sizes
            .iter()
            .find(|(digest, _)| request.target.ends_with(digest.as_str()))
            .map_or(4096, |(_, size)| *size);
        answer("application/octet-stream", vec![0x42; size as usize])
    });
    let mirror = format!("http://127.0.0.1:{}/", hostile.port);
    let home = ConcilHome::new(config_with_mirrors(
        &origin,
        std::slice::from_ref(&mirror),
        false,
    ));

    let output = run(&mut home.pull_command(&image.reference, &[]));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let pulled: Value = serde_json::from_slice(&output.stdout)?;
    for layer in pulled["layers"].as_array().expect("layers") {
        assert_eq!(layer["source"], json!(origin.url().as_str()), "{pulled}");
    }
    home.assert_layers_match(&image);
    assert!(
        stderr.contains(&format!("127.0.0.1:{}", hostile.port))
            && stderr.contains("instead of its mirrors"),
        "warns about the mirror: {stderr}"
    );
    Ok(())
}

#[test]
fn a_warm_pull_by_tag_asks_with_head_only() -> TestResult {
    let origin = Registry::plain();
    let image = Images::new(&origin)?.push_layered("mirrors/warm", "v1", Format::Oci)?;
    let home = ConcilHome::new(config_for(&origin));
    let manifest_path = format!("/manifests/{}", image.tag);

    pull_checked(&home, &image, &image.reference);
    let gets_after_cold = origin.count_requests("GET", &manifest_path);
    let heads_after_cold = origin.count_requests("HEAD", &manifest_path);
    pull_checked(&home, &image, &image.reference);

    assert_eq!(
        origin.count_requests("GET", &manifest_path),
        gets_after_cold,
        "no manifest GET on the warm pull: {:#?}",
        origin.log_lines()
    );
    assert_eq!(
        origin.count_requests("HEAD", &manifest_path),
        heads_after_cold + 1,
        "one HEAD resolved the tag"
    );
    Ok(())
}

/// Content trust through a mirror: the signature may come from the mirror and is checked with
/// the same keys; a mirror that answers the tag with another (unsigned) image is refused as
/// not signed, exactly as the registry would be.
#[test]
fn content_trust_is_checked_as_without_mirrors() -> TestResult {
    use support::cosign::{payload, push_signatures, SignatureLayer, Signer};

    let origin = Registry::plain();
    let images = Images::new(&origin)?;
    let signed = images.push_busybox("mirrors/signed", "v1", Format::Docker)?;
    let other = images.push_busybox("mirrors/signed", "other", Format::Oci)?;
    let signer = Signer::p256();
    let repository = format!("{}/mirrors/signed", origin.host());
    push_signatures(
        &origin,
        "mirrors/signed",
        &signed.manifest_digest,
        &[SignatureLayer::signed(
            &signer,
            payload(&repository, &signed.manifest_digest),
        )],
    );
    let trusting = |mirrors: &[String]| {
        let mut config = config_with_mirrors(&origin, mirrors, false);
        config["disable_content_trust"] = json!(false);
        let home = ConcilHome::new(config);
        let keys = home.config_path().with_file_name("cosign");
        std::fs::create_dir_all(&keys).expect("cosign key dir");
        signer.trust_in(&keys, "release");
        home
    };

    // Through a pull-through cache: verified with the signature the mirror fetched.
    let mirror = Registry::builder().pull_through(origin.url()).start();
    let home = trusting(&[base(&mirror)]);
    let output = home.pull_json(&signed.reference, &[]);
    assert_eq!(output["verified"], json!("cosign"), "{output}");
    assert!(
        sources(&output).iter().all(|s| *s == base(&mirror)),
        "{output}"
    );
    assert!(
        mirror.count_requests(
            "GET",
            &format!(
                "/manifests/{}",
                support::cosign::signature_tag(&signed.manifest_digest)
            )
        ) >= 1,
        "the signature came through the mirror: {:#?}",
        mirror.log_lines()
    );

    // A hostile mirror answers tag v1 with the other, unsigned image.
    let manifest = other.manifest.clone();
    let media_type: &'static str = Box::leak(other.manifest_media_type.clone().into_boxed_str());
    let hostile = HttpServer::start(move |request| {
        let (status, body) = if request.target == "/v2/" {
            (200, b"{}".to_vec())
        } else if request.target.ends_with("/manifests/v1") {
            (200, manifest.clone())
        } else {
            (404, Vec::new())
        };
        Response {
            status,
            content_type: media_type,
            body,
            headers: Vec::new(),
        }
    });
    let home = trusting(&[format!("http://127.0.0.1:{}/", hostile.port)]);
    let failure = home.pull_failure(&signed.reference, &[]);
    assert_eq!(failure.code, Some(10), "not signed: {}", failure.error);
    assert!(
        failure.error.contains(&other.manifest_digest),
        "{}",
        failure.error
    );
    home.assert_no_layers();
    Ok(())
}
