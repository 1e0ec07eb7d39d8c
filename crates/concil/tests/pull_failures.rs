//! Pulls that must fail, and fail cleanly: one `error:` line naming what went wrong, a
//! non-zero exit, and nothing left in the cache's `layers/` or `tmp/`. Unknown tags and
//! repositories, a layer blob corrupted or cut short on the way (a fault-injecting proxy in
//! front of the real registry), a config whose diff_id does not match its layer, and content
//! trust that is required but cannot be checked yet.

use concil_test_support as support;

use std::error::Error;

use concil::store::{Platform, StoreError};
use concil::trust::notary::NotaryError;
use concil::trust::TrustError;
use serde_json::{json, Value};
use support::images::{Format, Images, PushedImage};
use support::proxy::{BlobFault, Fault, Proxy};
use support::pull::{config_for, sha256_digest, ConcilHome};
use support::registry::{self, Registry};

type TestResult = Result<(), Box<dyn Error>>;

/// A configuration that reaches `registry` through `proxy`.
fn config_through(registry: &Registry, proxy: &Proxy) -> Value {
    let mut config = config_for(registry);
    config["remote_servers"] =
        json!({registry.host(): {"registry": format!("http://{}", proxy.addr())}});
    config
}

/// A busybox image, a proxy in front of its registry applying `fault` to every response for
/// its layer blob, and a home configured to go through the proxy.
struct Faulty {
    image: PushedImage,
    proxy: Proxy,
    home: ConcilHome,
    // Dropped last: the proxy and the images refer to it.
    _registry: Registry,
}

impl Faulty {
    fn start(repo: &str, fault: impl FnOnce(u64) -> Fault) -> Result<Faulty, Box<dyn Error>> {
        let registry = Registry::plain();
        let image = Images::new(&registry)?.push_busybox(repo, "v1", Format::Docker)?;
        let proxy = Proxy::start("127.0.0.1:0", &registry.host())?;
        let layer = &image.layers[0];
        proxy.set_fault(Some(BlobFault {
            fault: fault(layer.size),
            digest: Some(layer.digest.clone()),
            times: None,
        }));
        let home = ConcilHome::new(config_through(&registry, &proxy));
        Ok(Faulty {
            image,
            proxy,
            home,
            _registry: registry,
        })
    }
}

#[test]
fn unknown_tag_fails_and_caches_nothing() -> TestResult {
    let registry = Registry::plain();
    let images = Images::new(&registry)?;
    let image = images.push_busybox("failures/exists", "v1", Format::Docker)?;
    let home = ConcilHome::new(config_for(&registry));
    let reference = format!("docker://{}/failures/exists:no-such-tag", registry.host());

    let error = home.pull_failure(&reference, &[]).error;

    assert!(error.contains("not found"), "{error}");
    assert!(
        error.contains("MANIFEST_UNKNOWN"),
        "the registry's code: {error}"
    );
    assert!(
        error.contains("failures/exists/manifests/no-such-tag"),
        "the URL: {error}"
    );
    home.assert_no_layers();
    assert!(home.listing("manifest").is_empty());
    assert_eq!(registry.count_blob_fetches(&image.layers[0].digest), 0);
    Ok(())
}

#[test]
fn unknown_repository_fails_and_caches_nothing() -> TestResult {
    let registry = Registry::plain();
    Images::new(&registry)?.push_busybox("failures/exists", "v1", Format::Docker)?;
    let home = ConcilHome::new(config_for(&registry));
    let reference = format!("docker://{}/failures/never-pushed:v1", registry.host());

    let error = home.pull_failure(&reference, &[]).error;

    assert!(error.contains("not found"), "{error}");
    // distribution 2.8 answers MANIFEST_UNKNOWN here, not NAME_UNKNOWN.
    assert!(error.contains("_UNKNOWN"), "the registry's code: {error}");
    assert!(
        error.contains("failures/never-pushed/manifests/v1"),
        "the URL: {error}"
    );
    home.assert_no_layers();
    assert!(home.listing("manifest").is_empty());
    Ok(())
}

/// A flipped byte in the gzip header's MTIME field: the layer still decompresses to the right
/// tar (right diff_id), so only the blob digest check can catch it.
#[test]
fn blob_corrupted_where_decompression_cannot_notice_is_refused() -> TestResult {
    let faulty = Faulty::start("failures/flip-mtime", |_| Fault::FlipByte { offset: 4 })?;
    let layer = &faulty.image.layers[0];
    let store = faulty.home.store(&faulty.image.reference);

    let error = store.pull(&Platform::host()).expect_err("a corrupted blob");

    match &error {
        StoreError::BlobDigestMismatch { digest, url, got } => {
            assert_eq!(digest, &layer.digest);
            assert!(url.ends_with(&format!("/blobs/{}", layer.digest)), "{url}");
            assert_ne!(got, &layer.digest);
        }
        other => panic!("expected a blob digest mismatch, got {other:?}"),
    }
    assert!(faulty.proxy.faulted_responses() >= 1);
    faulty.home.assert_no_layers();

    let cli = faulty.home.pull_failure(&faulty.image.reference, &[]).error;
    assert!(cli.contains(&layer.digest), "names the digest: {cli}");
    assert!(cli.contains("hashes to"), "{cli}");
    faulty.home.assert_no_layers();
    Ok(())
}

/// A flipped byte in the middle of the compressed stream.
#[test]
fn blob_corrupted_in_the_middle_is_refused() -> TestResult {
    let faulty = Faulty::start("failures/flip-middle", |size| Fault::FlipByte {
        offset: size / 2,
    })?;
    let layer = &faulty.image.layers[0];

    let error = faulty.home.pull_failure(&faulty.image.reference, &[]).error;

    assert!(error.contains(&layer.digest), "names the digest: {error}");
    // The whole body arrived: whatever else the error says, it must not blame the transfer.
    assert!(
        !error.contains("ended after"),
        "the body was not cut short: {error}"
    );
    assert!(faulty.proxy.faulted_responses() >= 1);
    faulty.home.assert_no_layers();
    Ok(())
}

/// Every answer for the blob breaks off before its first byte: no attempt makes progress, so
/// the retry budget (2 here) runs out and the pull fails naming the blob and the budget.
#[test]
fn blob_cut_on_every_answer_gives_up_after_the_retries() -> TestResult {
    let faulty = Faulty::start("failures/cut", |_| Fault::CutAfter { bytes: 0 })?;
    let mut config: Value = serde_json::from_slice(&std::fs::read(faulty.home.config_path())?)?;
    config["retries"] = json!(2);
    faulty.home.rewrite_config(config);
    let layer = &faulty.image.layers[0];

    let failure = faulty.home.pull_failure(&faulty.image.reference, &[]);

    let error = &failure.error;
    assert!(error.contains(&layer.digest), "names the digest: {error}");
    assert!(
        error.contains("2 retries without progress"),
        "says why it gave up: {error}"
    );
    assert_eq!(failure.code, Some(7), "the network exit status: {error}");
    // The first answer and two resumes.
    assert_eq!(faulty.proxy.faulted_responses(), 3, "{error}");
    faulty.home.assert_no_layers();
    Ok(())
}

/// A manifest and config written by hand: the layer blob is intact (its digest and size
/// match), but the config's diff_id is not the digest of its tar.
#[test]
fn wrong_diff_id_in_config_is_refused() -> TestResult {
    let registry = Registry::plain();
    let good = registry.push_test_image(
        "failures/good",
        "v1",
        registry::Format::DockerV2,
        "real content\n",
    );
    let good_config: Value = serde_json::from_slice(&good.config)?;
    let true_diff_id = good_config["rootfs"]["diff_ids"][0]
        .as_str()
        .ok_or("diff_id in the config")?
        .to_owned();
    let wrong_diff_id = sha256_digest(b"not the layer's tar");
    let mut bad_config = good_config.clone();
    bad_config["rootfs"]["diff_ids"] = json!([wrong_diff_id]);
    let bad_config = serde_json::to_vec(&bad_config)?;

    let repo = "failures/bad-diff-id";
    let config_digest = registry.push_blob(repo, &bad_config);
    let layer_digest = registry.push_blob(repo, &good.layer);
    assert_eq!(layer_digest, good.layer_digest);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": good.media_type,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                   "size": bad_config.len(), "digest": config_digest},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "size": good.layer.len(), "digest": layer_digest}],
    }))?;
    registry.push_manifest(repo, "v1", good.media_type, &manifest);
    let reference = format!("docker://{}/{repo}:v1", registry.host());
    let home = ConcilHome::new(config_for(&registry));

    let error = home
        .store(&reference)
        .pull(&Platform::host())
        .expect_err("a wrong diff_id");

    match &error {
        StoreError::DiffIdMismatch {
            digest,
            expected,
            got,
        } => {
            assert_eq!(digest, &layer_digest);
            assert_eq!(expected, &wrong_diff_id);
            assert_eq!(got, &true_diff_id);
        }
        other => panic!("expected a diff_id mismatch, got {other:?}"),
    }
    home.assert_no_layers();

    let cli = home.pull_failure(&reference, &[]).error;
    for wanted in [&layer_digest, &wrong_diff_id, &true_diff_id] {
        assert!(cli.contains(wanted.as_str()), "{wanted} in: {cli}");
    }
    home.assert_no_layers();
    Ok(())
}

/// Notary content trust that cannot be checked (no server answers, nothing cached) refuses
/// the pull before the manifest, config or any layer is fetched, with its own exit status;
/// `--no-verify` then pulls and says so.
#[test]
fn pull_refuses_when_notary_is_unreachable() -> TestResult {
    let registry = Registry::plain();
    let images = Images::new(&registry)?;
    let image = images.push_busybox("failures/trust", "v1", Format::Docker)?;
    let mut config = config_for(&registry);
    config
        .as_object_mut()
        .and_then(|object| object.remove("disable_content_trust"))
        .ok_or("config_for disables content trust")?;
    config["content_trust"] = json!("notary");
    // Nothing listens there.
    config["remote_servers"][registry.host()]["notary"] = json!(format!(
        "https://127.0.0.1:{}",
        support::registry::free_port()
    ));
    let home = ConcilHome::new(config);
    let pushed_lines = registry.log_lines().len();

    let error = home
        .store(&image.reference)
        .pull(&Platform::host())
        .expect_err("trust is required");
    assert!(
        matches!(&error, StoreError::Trust(TrustError::Notary { image: name, source })
            if name.contains("failures/trust") && matches!(**source, NotaryError::Unreachable { .. })),
        "{error:?}"
    );

    let failure = home.pull_failure(&image.reference, &[]);
    assert_eq!(failure.code, Some(22), "{}", failure.error);
    let cli = failure.error;
    assert!(cli.contains("cannot be reached"), "{cli}");
    assert!(cli.contains("failures/trust"), "{cli}");
    assert_eq!(
        registry.log_lines()[pushed_lines..]
            .iter()
            .filter(|line| line.contains("/manifests/"))
            .count(),
        0,
        "the manifest is fetched only by the digest Notary signed"
    );
    home.assert_no_layers();
    assert!(
        home.listing("config").is_empty(),
        "refused before the config"
    );
    for blob in [&image.config_digest, &image.layers[0].digest] {
        assert_eq!(registry.count_blob_fetches(blob), 0, "{blob} fetched");
    }

    // --no-verify pulls, and says that it did not verify.
    let output = support::pull::run(&mut home.pull_command(&image.reference, &["--no-verify"]));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("warning: --no-verify"));
    home.assert_holds_image(&image);
    Ok(())
}
