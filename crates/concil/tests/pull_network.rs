//! `concil pull` over a broken network: the fault proxy in front of the real registry cuts,
//! stalls, trickles, ignores ranges, lies about them, fails and rate-limits; each case ends with
//! the right layers (compared with their tars) or the named error and its exit status, and the
//! proxy's accounting shows what was sent again.

use concil_test_support as support;

use std::error::Error;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::images::{Format, Images, PushedImage};
use support::proxy::{BlobFault, BlobRequest, Fault, Proxy};
use support::pull::{config_for, ConcilHome, Pulled};
use support::registry::Registry;

type TestResult = Result<(), Box<dyn Error>>;

/// How much more than the blob a resume may fetch per break: the proxy forwards what it
/// counts, and one read buffer of it may not have reached concil when the connection closed.
const SLACK_PER_BREAK: u64 = 64 * 1024;

/// A busybox image behind a fault proxy, and a home configured to go through the proxy with
/// `settings` merged into its configuration.
struct Link {
    image: PushedImage,
    /// Copies of the layer tars (the image builder's own go with it).
    _tars: tempfile::TempDir,
    proxy: Proxy,
    home: ConcilHome,
    // Dropped last: the proxy and the image refer to it.
    _registry: Registry,
}

impl Link {
    fn start(repo: &str, settings: Value) -> Result<Link, Box<dyn Error>> {
        let registry = Registry::plain();
        let images = Images::new(&registry)?;
        let mut image = images.push_busybox(repo, "v1", Format::Docker)?;
        let tars = tempfile::tempdir()?;
        for (index, layer) in image.layers.iter_mut().enumerate() {
            let copy = tars.path().join(format!("{index}.tar"));
            std::fs::copy(&layer.tar, &copy)?;
            layer.tar = copy;
        }
        drop(images);
        let proxy = Proxy::start("127.0.0.1:0", &registry.host())?;
        let mut config = config_for(&registry);
        config["remote_servers"] =
            json!({registry.host(): {"registry": format!("http://{}", proxy.addr())}});
        if let (Some(config), Some(settings)) = (config.as_object_mut(), settings.as_object()) {
            for (key, value) in settings {
                config.insert(key.clone(), value.clone());
            }
        }
        Ok(Link {
            _tars: tars,
            home: ConcilHome::new(config),
            image,
            proxy,
            _registry: registry,
        })
    }

    fn layer_size(&self) -> u64 {
        self.image.layers[0].size
    }

    /// `fault` for the image's layer blob, `times` times (`None`: always).
    fn fault(&self, fault: Fault, times: Option<u32>) -> BlobFault {
        BlobFault {
            fault,
            digest: Some(self.image.layers[0].digest.clone()),
            times,
        }
    }

    /// Pulls; the layers must be the image's, byte for byte as its tars say.
    fn pull_ok(&self) -> Value {
        let output = self.home.pull_json(&self.image.reference, &[]);
        assert_eq!(
            Pulled::from_json(&output, &self.image.reference),
            Pulled::expected(&self.image, "linux/amd64", &self.home)
        );
        self.home.assert_layers_match(&self.image);
        self.home.assert_no_working_files();
        output
    }

    /// The proxy's record of the layer blob's requests.
    fn layer_requests(&self) -> Vec<BlobRequest> {
        let digest = &self.image.layers[0].digest;
        self.proxy
            .blob_requests()
            .into_iter()
            .filter(|request| request.method == "GET" && request.path.ends_with(digest.as_str()))
            .collect()
    }

    /// Body bytes sent for the layer blob, over all its responses.
    fn layer_bytes_sent(&self) -> u64 {
        self.layer_requests().iter().map(|r| r.body_bytes).sum()
    }
}

#[test]
fn a_blob_cut_halfway_resumes_where_it_broke() -> TestResult {
    let link = Link::start("network/cut-once", json!({}))?;
    let size = link.layer_size();
    link.proxy.set_fault(Some(
        link.fault(Fault::CutAfter { bytes: size / 2 }, Some(1)),
    ));

    link.pull_ok();

    let requests = link.layer_requests();
    assert_eq!(
        requests.len(),
        2,
        "the first answer and one resume: {requests:?}"
    );
    assert_eq!(requests[0].range, None);
    assert_eq!(
        requests[1].range.as_deref(),
        Some(format!("bytes={}-", size / 2).as_str())
    );
    assert_eq!(requests[1].status, 206, "{requests:?}");
    let sent = link.layer_bytes_sent();
    assert!(
        (size..=size + SLACK_PER_BREAK).contains(&sent),
        "{sent} bytes sent for a {size}-byte blob cut once"
    );
    Ok(())
}

#[test]
fn a_blob_cut_on_every_answer_completes_piece_by_piece() -> TestResult {
    let link = Link::start("network/cut-always", json!({}))?;
    let size = link.layer_size();
    // Every answer (the resumes too) breaks after a fifth of the blob: five answers in all.
    link.proxy.set_fault(Some(link.fault(
        Fault::CutAfter {
            bytes: size / 5 + 1,
        },
        None,
    )));

    link.pull_ok();

    let requests = link.layer_requests();
    assert_eq!(requests.len(), 5, "{requests:?}");
    assert!(
        requests[1..].iter().all(|r| r.status == 206),
        "{requests:?}"
    );
    let sent = link.layer_bytes_sent();
    assert!(
        (size..=size + 4 * SLACK_PER_BREAK).contains(&sent),
        "{sent} bytes sent for a {size}-byte blob cut four times"
    );
    Ok(())
}

#[test]
fn random_cuts_resume_to_the_same_layer() -> TestResult {
    for seed in [1, 7, 42] {
        let link = Link::start(&format!("network/random-{seed}"), json!({}))?;
        link.proxy
            .set_fault(Some(link.fault(Fault::CutAtRandom { seed }, Some(3))));
        link.pull_ok();
        assert_eq!(link.layer_requests().len(), 4, "seed {seed}");
    }
    Ok(())
}

/// A registry that ignores `Range` answers the resume with the whole blob: concil reads past
/// what it has and finishes.
#[test]
fn a_server_ignoring_ranges_is_read_past_what_we_have() -> TestResult {
    let link = Link::start("network/ignore-range", json!({}))?;
    let size = link.layer_size();
    link.proxy.set_faults(vec![
        link.fault(Fault::CutAfter { bytes: size / 3 }, Some(1)),
        link.fault(Fault::IgnoreRange, Some(1)),
    ]);

    link.pull_ok();

    let requests = link.layer_requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(
        requests[1].status, 200,
        "the range was ignored: {requests:?}"
    );
    Ok(())
}

/// A `206` whose `Content-Range` does not start where we asked cannot be spliced in: the blob
/// starts over in a fresh working file, and the pull still ends with the right layer.
#[test]
fn a_wrong_content_range_starts_the_blob_over() -> TestResult {
    let link = Link::start("network/wrong-range", json!({}))?;
    let size = link.layer_size();
    link.proxy.set_faults(vec![
        link.fault(Fault::CutAfter { bytes: size / 3 }, Some(1)),
        link.fault(Fault::WrongContentRange, Some(1)),
    ]);

    link.pull_ok();

    let requests = link.layer_requests();
    assert_eq!(
        requests.len(),
        3,
        "cut, refused resume, fresh start: {requests:?}"
    );
    assert_eq!(
        requests[2].range, None,
        "started over from byte 0: {requests:?}"
    );
    Ok(())
}

/// A registry that sends part of a layer and then nothing: the idle timeout counts it as a
/// break and the pull resumes, instead of hanging.
#[test]
fn a_stalled_body_times_out_and_resumes() -> TestResult {
    let link = Link::start("network/stall", json!({"timeouts": {"idle": 1}}))?;
    let size = link.layer_size();
    link.proxy.set_fault(Some(link.fault(
        Fault::Stall {
            after: size / 2,
            pause: Duration::from_secs(20),
        },
        Some(1),
    )));

    let started = Instant::now();
    link.pull_ok();

    assert!(
        started.elapsed() < Duration::from_secs(15),
        "did not wait for the stalled answer to end: {:?}",
        started.elapsed()
    );
    let requests = link.layer_requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(
        requests[1].range.as_deref(),
        Some(format!("bytes={}-", size / 2).as_str())
    );
    Ok(())
}

/// A body trickling below `min_rate` is stalled too; when every answer trickles, the budget
/// runs out and the error says why.
#[test]
fn a_trickling_body_is_given_up_with_the_reason() -> TestResult {
    let link = Link::start(
        "network/trickle",
        json!({"retries": 1, "timeouts": {"idle": 1, "min_rate": 100000}}),
    )?;
    link.proxy.set_fault(Some(link.fault(
        Fault::Throttle {
            bytes_per_sec: 2000,
        },
        None,
    )));

    let started = Instant::now();
    let failure = link.home.pull_failure(&link.image.reference, &[]);

    assert!(failure.error.contains("min_rate"), "{}", failure.error);
    assert_eq!(failure.code, Some(7), "{}", failure.error);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    link.home.assert_no_layers();
    Ok(())
}

#[test]
fn a_burst_of_503_is_retried() -> TestResult {
    let link = Link::start("network/503", json!({}))?;
    let fault = Fault::Status {
        code: 503,
        retry_after: None,
        rate_limit_headers: false,
    };
    link.proxy.set_fault(Some(link.fault(fault, Some(2))));

    link.pull_ok();

    let statuses: Vec<u16> = link.layer_requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [503, 503, 200]);
    Ok(())
}

#[test]
fn a_short_retry_after_is_waited_out() -> TestResult {
    let link = Link::start("network/429-short", json!({}))?;
    let fault = Fault::Status {
        code: 429,
        retry_after: Some(1),
        rate_limit_headers: true,
    };
    link.proxy.set_fault(Some(link.fault(fault, Some(1))));

    let started = Instant::now();
    link.pull_ok();

    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited the Retry-After"
    );
    let statuses: Vec<u16> = link.layer_requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [429, 200]);
    Ok(())
}

#[test]
fn a_long_retry_after_fails_at_once_naming_the_limit() -> TestResult {
    let link = Link::start("network/429-long", json!({}))?;
    let fault = Fault::Status {
        code: 429,
        retry_after: Some(3600),
        rate_limit_headers: true,
    };
    link.proxy.set_fault(Some(link.fault(fault, None)));

    let started = Instant::now();
    let failure = link.home.pull_failure(&link.image.reference, &[]);

    assert_eq!(
        failure.code,
        Some(6),
        "the rate-limit exit status: {}",
        failure.error
    );
    for part in [
        "rate limited",
        "retry after 3600 s",
        "limit 100;w=21600",
        "remaining 0;w=21600",
    ] {
        assert!(
            failure.error.contains(part),
            "{part:?} in: {}",
            failure.error
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "did not wait an hour"
    );
    assert_eq!(link.layer_requests().len(), 1, "asked once");
    link.home.assert_no_layers();
    Ok(())
}

#[test]
fn persistent_429_without_retry_after_fails_with_the_rate_limit_status() -> TestResult {
    let link = Link::start("network/429-always", json!({"retries": 2}))?;
    let fault = Fault::Status {
        code: 429,
        retry_after: None,
        rate_limit_headers: false,
    };
    link.proxy.set_fault(Some(link.fault(fault, None)));

    let failure = link.home.pull_failure(&link.image.reference, &[]);

    assert_eq!(failure.code, Some(6), "{}", failure.error);
    assert!(failure.error.contains("rate limited"), "{}", failure.error);
    assert_eq!(
        link.layer_requests().len(),
        3,
        "the first try and two retries"
    );
    Ok(())
}

/// Eight processes pull the same image at once through a link that cuts every answer once:
/// the blob is downloaded by one of them (the others wait on its lock and reuse it), every
/// output is the same, and the cache holds each layer once.
#[test]
fn eight_concurrent_pulls_through_a_cutting_link_agree() -> TestResult {
    let link = Link::start("network/concurrent", json!({}))?;
    let size = link.layer_size();
    link.proxy.set_fault(Some(
        link.fault(Fault::CutAfter { bytes: size / 2 }, Some(4)),
    ));

    let children: Vec<_> = (0..8)
        .map(|_| {
            link.home
                .pull_command(&link.image.reference, &[])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
        })
        .collect::<Result<_, _>>()?;
    let outputs: Vec<Value> = children
        .into_iter()
        .map(|child| {
            let output = child.wait_with_output()?;
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
            Ok(serde_json::from_slice(&output.stdout)?)
        })
        .collect::<Result<_, Box<dyn Error>>>()?;

    let first = Pulled::from_json(&outputs[0], &link.image.reference);
    for output in &outputs {
        assert_eq!(Pulled::from_json(output, &link.image.reference), first);
    }
    assert_eq!(
        first,
        Pulled::expected(&link.image, "linux/amd64", &link.home)
    );
    link.home.assert_layers_match(&link.image);
    link.home.assert_no_working_files();
    let sent = link.layer_bytes_sent();
    assert!(
        sent <= size + SLACK_PER_BREAK,
        "one download with one resume: {sent} bytes for {size}"
    );
    Ok(())
}
