//! Adversarial review of resumable downloads, timeouts, mirrors, proxies and rate limits: what
//! a hostile registry, mirror, blob store, proxy or environment must not be able to do with
//! them. Each case runs the real `concil` binary against a raw hostile HTTP server on
//! 127.0.0.1 (written here: it trickles, lies about ranges and lengths, never ends a body), or
//! against the real registry behind the fault proxy, and asserts that concil (a) names nothing
//! in the cache after bytes that do not hash to it, (b) ends in bounded time, (c) never panics,
//! (d) never shows a password, and (e) ends with the exit status that says what happened.

use concil_test_support as support;

use std::error::Error;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::images::{Format, Images, PushedImage};
use support::proxy::{BlobFault, Fault, Proxy};
use support::pull::{
    basic_auth, config_for, expect_failure, sha256_digest, wait_with_limit, ConcilHome,
};
use support::registry::{hello_layer, Registry};

type TestResult = Result<(), Box<dyn Error>>;

const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
const GZIP_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// How long a case that must end in bounded time may take: with `idle` at 1 s, `min_rate` at
/// 100 B/s and one or two retries, every honest give-up takes a few seconds.
const BOUNDED: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------------
// A raw hostile HTTP server.

/// One request as the raw server read it.
#[derive(Debug, Clone)]
struct RawRequest {
    method: String,
    /// Path without the query.
    path: String,
    headers: Vec<(String, String)>,
    /// Which connection of the server this was (0 for the first).
    number: usize,
}

impl RawRequest {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// `N` of a `Range: bytes=N-` header.
    fn range_from(&self) -> Option<u64> {
        self.header("range")?
            .strip_prefix("bytes=")?
            .strip_suffix('-')?
            .parse()
            .ok()
    }
}

/// What a handler has to answer with: the raw stream and the server's stop flag (a trickle
/// ends when the test is over).
struct Answer<'a> {
    stream: &'a mut TcpStream,
    stop: &'a AtomicBool,
}

impl Answer<'_> {
    /// Writes a status line, the headers (plus `Connection: close`) and the end of the head.
    fn head(&mut self, status: u16, headers: &[(&str, String)]) -> std::io::Result<()> {
        let mut head = format!("HTTP/1.1 {status} X\r\nConnection: close\r\n");
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        self.stream.write_all(head.as_bytes())?;
        self.stream.flush()
    }

    /// A whole answer with `Content-Length` (no body written for `HEAD`).
    fn full(&mut self, request: &RawRequest, status: u16, content_type: &str, body: &[u8]) {
        let _ = self.head(
            status,
            &[
                ("Content-Type", content_type.to_owned()),
                ("Content-Length", body.len().to_string()),
            ],
        );
        if request.method != "HEAD" {
            let _ = self.stream.write_all(body);
        }
    }

    fn body(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }

    /// Sends `bytes` one at a time, `every` apart, until done, the client goes away or the
    /// test ends.
    fn trickle(&mut self, bytes: &[u8], every: Duration) {
        for byte in bytes {
            if self.stop.load(Ordering::SeqCst) || self.body(&[*byte]).is_err() {
                return;
            }
            std::thread::sleep(every);
        }
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}

/// A hostile HTTP server on 127.0.0.1: each connection on a thread of its own, one request
/// per connection (`Connection: close`), answered by the handler writing raw bytes.
struct RawServer {
    port: u16,
    stop: Arc<AtomicBool>,
    requests: Arc<Mutex<Vec<RawRequest>>>,
    accept: Option<JoinHandle<()>>,
}

type Handler = dyn Fn(&RawRequest, &mut Answer<'_>) + Send + Sync + 'static;

impl RawServer {
    fn start(handler: impl Fn(&RawRequest, &mut Answer<'_>) + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the raw server");
        let port = listener.local_addr().expect("address").port();
        let stop = Arc::new(AtomicBool::new(false));
        let requests: Arc<Mutex<Vec<RawRequest>>> = Arc::default();
        let handler: Arc<Handler> = Arc::new(handler);
        let accept = {
            let (stop, requests) = (Arc::clone(&stop), Arc::clone(&requests));
            std::thread::spawn(move || {
                let counter = AtomicUsize::new(0);
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let number = counter.fetch_add(1, Ordering::SeqCst);
                    let (stop, requests, handler) = (
                        Arc::clone(&stop),
                        Arc::clone(&requests),
                        Arc::clone(&handler),
                    );
                    std::thread::spawn(move || {
                        let _ = serve(stream, number, &stop, &requests, &*handler);
                    });
                }
            })
        };
        RawServer {
            port,
            stop,
            requests,
            accept: Some(accept),
        }
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn requests(&self) -> Vec<RawRequest> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

impl Drop for RawServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

fn serve(
    stream: TcpStream,
    number: usize,
    stop: &AtomicBool,
    requests: &Mutex<Vec<RawRequest>>,
    handler: &Handler,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return Ok(());
    };
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    let request = RawRequest {
        method: method.to_owned(),
        path: target.split('?').next().unwrap_or_default().to_owned(),
        headers,
        number,
    };
    if let Ok(mut log) = requests.lock() {
        log.push(request.clone());
    }
    let mut stream = stream;
    handler(
        &request,
        &mut Answer {
            stream: &mut stream,
            stop,
        },
    );
    let _ = stream.flush();
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// A one-layer image served by hand.

/// A one-layer Docker image: a real tar.gz, its config and manifest.
#[derive(Clone)]
struct HandImage {
    layer: Vec<u8>,
    layer_digest: String,
    config: Vec<u8>,
    config_digest: String,
    manifest: Vec<u8>,
    manifest_digest: String,
}

impl HandImage {
    /// `bytes` of pseudo-random text in `hello.txt` (gzip keeps it about that big), so a resume
    /// point can be far into the blob.
    fn new(seed: u64, bytes: usize) -> HandImage {
        let mut state = seed;
        let content: String = (0..bytes)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                char::from(b"0123456789abcdef"[(state >> 60) as usize])
            })
            .collect();
        let (layer, diff_id) = hello_layer(&content);
        let config = serde_json::to_vec(&json!({
            "architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        }))
        .expect("config JSON");
        let (layer_digest, config_digest) = (sha256_digest(&layer), sha256_digest(&config));
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
            "config": {"mediaType": DOCKER_CONFIG, "size": config.len(), "digest": config_digest},
            "layers": [{"mediaType": GZIP_LAYER, "size": layer.len(), "digest": layer_digest}],
        }))
        .expect("manifest JSON");
        HandImage {
            manifest_digest: sha256_digest(&manifest),
            layer,
            layer_digest,
            config,
            config_digest,
            manifest,
        }
    }

    /// Answers `/v2/`, the manifest (`HEAD` and `GET`, by tag and digest) and the config as a
    /// registry would; `false` for anything else (the layer: the case's business).
    fn answer(&self, request: &RawRequest, answer: &mut Answer<'_>) -> bool {
        let path = request.path.as_str();
        if path == "/v2/" {
            answer.full(request, 200, "application/json", b"{}");
        } else if path.contains("/manifests/") {
            let _ = answer.head(
                200,
                &[
                    ("Content-Type", DOCKER_MANIFEST.to_owned()),
                    ("Content-Length", self.manifest.len().to_string()),
                    ("Docker-Content-Digest", self.manifest_digest.clone()),
                ],
            );
            if request.method != "HEAD" {
                let _ = answer.body(&self.manifest);
            }
        } else if path.ends_with(&self.config_digest) {
            answer.full(request, 200, "application/octet-stream", &self.config);
        } else {
            return false;
        }
        true
    }
}

/// A home for a plain-HTTP registry at `host`, with small timeouts and `retries`.
fn home_for(host: &str, retries: u32) -> ConcilHome {
    ConcilHome::new(json!({
        "disable_content_trust": true,
        "remote_servers": {host: {"registry": format!("http://{host}")}},
        "retries": retries,
        "timeouts": {"connect": 2, "idle": 1, "min_rate": 100},
    }))
}

/// `concil pull --json <extra> <image>` (plus `env`), killed and failed after [`BOUNDED`].
fn pull_bounded(home: &ConcilHome, image: &str, extra: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = home.pull_command(image, extra);
    command.envs(env.iter().copied());
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start concil");
    wait_with_limit(child, BOUNDED)
}

fn exit_code(output: &Output) -> Option<i32> {
    output.status.code()
}

/// Every file in `manifest/` and `config/` holds bytes that hash to its name, every layer
/// name is `sha256:` and no working file is left.
fn assert_cache_names_hash(home: &ConcilHome) {
    for subdir in ["manifest", "config"] {
        let dir = home.cache_dir().join(subdir);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let bytes = std::fs::read(entry.path()).expect("read a cache entry");
            let digest = sha256_digest(&bytes);
            assert!(
                name == digest || format!("sha256:{name}") == digest,
                "{subdir}/{name} holds bytes that hash to {digest}"
            );
        }
    }
    home.assert_no_working_files();
}

fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

// ---------------------------------------------------------------------------------------------
// (b) Bodies that never end or crawl.

/// A manifest body trickled one byte every 300 ms (never silent for `idle`, far below
/// `min_rate`) is given up like a layer body would be. `timeouts.min_rate` is documented for
/// "a body"; without it a registry holds a pull for up to 4 MiB × 0.3 s (two weeks).
#[test]
fn a_manifest_trickled_below_min_rate_is_given_up() -> TestResult {
    let image = HandImage::new(1, 100);
    let served = image.clone();
    let server = RawServer::start(move |request, answer| {
        if request.path.contains("/manifests/") && request.method == "GET" {
            let _ = answer.head(
                200,
                &[
                    ("Content-Type", DOCKER_MANIFEST.to_owned()),
                    ("Content-Length", served.manifest.len().to_string()),
                ],
            );
            answer.trickle(&served.manifest, Duration::from_millis(300));
        } else if !served.answer(request, answer) {
            answer.full(request, 404, "application/json", b"{}");
        }
    });
    let home = home_for(&server.host(), 1);
    let started = Instant::now();
    let output = pull_bounded(
        &home,
        &format!("docker://{}/slow/manifest:v1", server.host()),
        &[],
        &[],
    );
    let failure = expect_failure(&output, "a trickled manifest");
    assert_eq!(failure.code, Some(7), "{}", failure.stderr);
    assert!(started.elapsed() < BOUNDED);
    assert_cache_names_hash(&home);
    Ok(())
}

/// The same for an image config (fetched whole into memory, up to 16 MiB).
#[test]
fn a_config_trickled_below_min_rate_is_given_up() -> TestResult {
    let image = HandImage::new(2, 100);
    let served = image.clone();
    let server = RawServer::start(move |request, answer| {
        if request.path.ends_with(&served.config_digest) {
            let _ = answer.head(200, &[("Content-Length", served.config.len().to_string())]);
            answer.trickle(&served.config, Duration::from_millis(300));
        } else if !served.answer(request, answer) {
            answer.full(request, 404, "application/json", b"{}");
        }
    });
    let home = home_for(&server.host(), 1);
    let output = pull_bounded(
        &home,
        &format!("docker://{}/slow/config:v1", server.host()),
        &[],
        &[],
    );
    let failure = expect_failure(&output, "a trickled config");
    assert_eq!(failure.code, Some(7), "{}", failure.stderr);
    assert_cache_names_hash(&home);
    Ok(())
}

/// A layer broken off halfway, whose resume is answered `200` (range ignored) and then the
/// part concil already has trickles one byte every 300 ms: the skip is as slow a body as any
/// and must be given up by `min_rate`, not read for (offset × 0.3 s).
#[test]
fn a_resume_answered_200_that_trickles_before_the_resume_point_is_given_up() -> TestResult {
    let image = HandImage::new(3, 6000);
    let served = image.clone();
    let half = image.layer.len() / 2;
    assert!(half > 1000, "layer of {} bytes", image.layer.len());
    let server = RawServer::start(move |request, answer| {
        if request.path.ends_with(&served.layer_digest) {
            let _ = answer.head(200, &[("Content-Length", served.layer.len().to_string())]);
            if request.range_from().is_none() {
                let _ = answer.body(&served.layer[..half]);
            } else {
                answer.trickle(&served.layer, Duration::from_millis(300));
            }
        } else if !served.answer(request, answer) {
            answer.full(request, 404, "application/json", b"{}");
        }
    });
    let home = home_for(&server.host(), 1);
    let output = pull_bounded(
        &home,
        &format!("docker://{}/slow/skip:v1", server.host()),
        &[],
        &[],
    );
    let failure = expect_failure(&output, "a resume that trickles what we have");
    assert_eq!(failure.code, Some(7), "{}", failure.stderr);
    home.assert_no_layers();
    assert_cache_names_hash(&home);
    Ok(())
}

/// A layer body sending one byte just under the idle timeout (0.9 s with `idle` 1 s): never
/// a read timeout, but far below `min_rate`, so it is given up after the retries.
#[test]
fn a_layer_slowloris_just_under_idle_is_given_up() -> TestResult {
    let image = HandImage::new(4, 200);
    let served = image.clone();
    let server = RawServer::start(move |request, answer| {
        if request.path.ends_with(&served.layer_digest) {
            let from = request.range_from().unwrap_or(0) as usize;
            let rest = &served.layer[from.min(served.layer.len())..];
            let mut headers = vec![("Content-Length", rest.len().to_string())];
            let status = if from > 0 {
                headers.push((
                    "Content-Range",
                    format!(
                        "bytes {from}-{}/{}",
                        served.layer.len() - 1,
                        served.layer.len()
                    ),
                ));
                206
            } else {
                200
            };
            let _ = answer.head(status, &headers);
            answer.trickle(rest, Duration::from_millis(900));
        } else if !served.answer(request, answer) {
            answer.full(request, 404, "application/json", b"{}");
        }
    });
    let home = home_for(&server.host(), 1);
    let output = pull_bounded(
        &home,
        &format!("docker://{}/slow/loris:v1", server.host()),
        &[],
        &[],
    );
    let failure = expect_failure(&output, "a slowloris layer");
    assert_eq!(failure.code, Some(7), "{}", failure.stderr);
    assert!(failure.error.contains("min_rate"), "{}", failure.error);
    let layer_gets = server
        .requests()
        .iter()
        .filter(|r| r.path.ends_with(&image.layer_digest))
        .count();
    assert_eq!(layer_gets, 2, "the first answer and one retry");
    home.assert_no_layers();
    Ok(())
}

/// Layer bodies that never end (no `Content-Length`, close-delimited; and one announcing
/// 2^63 bytes) are read no further than one byte past the declared size: a content error
/// (exit 9) at once, nothing in the cache.
#[test]
fn a_layer_body_that_never_ends_is_cut_at_its_declared_size() -> TestResult {
    let image = HandImage::new(5, 300);
    for announced in [None, Some(u64::MAX / 2)] {
        let served = image.clone();
        let sent = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&sent);
        let server = RawServer::start(move |request, answer| {
            if request.path.ends_with(&served.layer_digest) {
                let headers: Vec<(&str, String)> = announced
                    .map(|length| vec![("Content-Length", length.to_string())])
                    .unwrap_or_default();
                let _ = answer.head(200, &headers);
                let _ = answer.body(&served.layer);
                let chunk = vec![0x5a_u8; 64 * 1024];
                while !answer.stopped() && answer.body(&chunk).is_ok() {
                    counter.fetch_add(chunk.len(), Ordering::SeqCst);
                }
            } else if !served.answer(request, answer) {
                answer.full(request, 404, "application/json", b"{}");
            }
        });
        let home = home_for(&server.host(), 1);
        let output = pull_bounded(
            &home,
            &format!("docker://{}/endless/app:v1", server.host()),
            &[],
            &[],
        );
        let failure = expect_failure(&output, "an endless layer body");
        assert_eq!(failure.code, Some(9), "{announced:?}: {}", failure.stderr);
        assert!(
            failure.error.contains(&image.layer_digest),
            "{announced:?}: {}",
            failure.error
        );
        home.assert_no_layers();
        assert_cache_names_hash(&home);
        drop(server);
        assert!(
            sent.load(Ordering::SeqCst) < 64 << 20,
            "{announced:?}: {} bytes were taken from an endless body",
            sent.load(Ordering::SeqCst)
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// (a), (c) Lying resumes.

/// Every way a resume's `206` can lie: its `Content-Range` overflowing, reversed, starting
/// before or after the resume point, with another total, `*` forms; bytes other than the
/// blob's with a correct range; a body longer than the range. Each ends in bounded time
/// without a panic, with a network (7) or content (9) status, exactly one error line and
/// nothing in the cache.
#[test]
fn hostile_resume_answers_never_commit_nor_panic() -> TestResult {
    let image = HandImage::new(6, 3000);
    let len = image.layer.len() as u64;
    let half = len / 2;
    // (name, Content-Range (None: none), body after the resume point: "rest", "other", "long")
    let cases: Vec<(&str, Option<String>, &str)> = vec![
        (
            "overflow",
            Some(format!(
                "bytes {half}-18446744073709551615/18446744073709551616"
            )),
            "rest",
        ),
        (
            "max",
            Some(format!(
                "bytes {half}-18446744073709551614/18446744073709551615"
            )),
            "rest",
        ),
        (
            "reversed",
            Some(format!("bytes {half}-{}/{len}", half - 1)),
            "rest",
        ),
        (
            "before",
            Some(format!("bytes {}-{}/{len}", half - 1, len - 1)),
            "rest",
        ),
        (
            "after",
            Some(format!("bytes {}-{}/{len}", half + 1, len - 1)),
            "rest",
        ),
        (
            "other-total",
            Some(format!("bytes {half}-{}/{}", len - 1, len + 1)),
            "rest",
        ),
        (
            "end-past-total",
            Some(format!("bytes {half}-{len}/{len}")),
            "rest",
        ),
        (
            "star-total",
            Some(format!("bytes {half}-{}/*", len - 1)),
            "other",
        ),
        ("unsatisfied", Some(format!("bytes */{len}")), "rest"),
        ("missing", None, "rest"),
        (
            "negative",
            Some(format!("bytes -{half}-{}/{len}", len - 1)),
            "rest",
        ),
        (
            "other-bytes",
            Some(format!("bytes {half}-{}/{len}", len - 1)),
            "other",
        ),
        (
            "too-long",
            Some(format!("bytes {half}-{}/{len}", len - 1)),
            "long",
        ),
    ];
    for (name, content_range, body) in cases {
        let served = image.clone();
        let server = RawServer::start(move |request, answer| {
            if !request.path.ends_with(&served.layer_digest) {
                if !served.answer(request, answer) {
                    answer.full(request, 404, "application/json", b"{}");
                }
                return;
            }
            let layer = &served.layer;
            match request.range_from() {
                None => {
                    let _ = answer.head(200, &[("Content-Length", layer.len().to_string())]);
                    let _ = answer.body(&layer[..half as usize]);
                }
                Some(from) => {
                    let rest: Vec<u8> = match body {
                        "other" => vec![0xa5; layer.len().saturating_sub(from as usize)],
                        "long" => {
                            let mut long = layer[(from as usize).min(layer.len())..].to_vec();
                            long.extend(std::iter::repeat_n(0u8, 4096));
                            long
                        }
                        _ => layer[(from as usize).min(layer.len())..].to_vec(),
                    };
                    let mut headers = vec![("Content-Length", rest.len().to_string())];
                    if let Some(range) = &content_range {
                        headers.push(("Content-Range", range.clone()));
                    }
                    let _ = answer.head(206, &headers);
                    let _ = answer.body(&rest);
                }
            }
        });
        let home = home_for(&server.host(), 1);
        let output = pull_bounded(
            &home,
            &format!("docker://{}/lying/range:v1", server.host()),
            &[],
            &[],
        );
        let failure = expect_failure(&output, name);
        assert!(
            matches!(failure.code, Some(7 | 9)),
            "{name}: status {:?}: {}",
            failure.code,
            failure.stderr
        );
        home.assert_no_layers();
        assert_cache_names_hash(&home);
    }
    Ok(())
}

/// A server that answers every resume with `200` and the whole blob, and cuts every answer a
/// little further on (alternating with honest `206`s): the pull completes with the right
/// layer, each byte hashed once.
#[test]
fn alternating_200_and_206_resumes_give_the_right_layer() -> TestResult {
    let image = HandImage::new(7, 3000);
    let served = image.clone();
    let len = image.layer.len();
    let server = RawServer::start(move |request, answer| {
        if !request.path.ends_with(&served.layer_digest) {
            if !served.answer(request, answer) {
                answer.full(request, 404, "application/json", b"{}");
            }
            return;
        }
        let from = request.range_from().unwrap_or(0) as usize;
        // Each answer brings at most 700 new bytes, then the connection closes.
        let upto = (from + 700).min(len);
        if from == 0 || request.number % 2 == 0 {
            let _ = answer.head(200, &[("Content-Length", len.to_string())]);
            let _ = answer.body(&served.layer[..upto]);
        } else {
            let _ = answer.head(
                206,
                &[
                    ("Content-Length", (len - from).to_string()),
                    ("Content-Range", format!("bytes {from}-{}/{len}", len - 1)),
                ],
            );
            let _ = answer.body(&served.layer[from..upto]);
        }
    });
    let home = home_for(&server.host(), 8);
    let reference = format!("docker://{}/alternating/app:v1", server.host());
    let output = pull_bounded(&home, &reference, &[], &[]);
    assert!(output.status.success(), "{}", stderr_of(&output));
    let pulled: Value = serde_json::from_slice(&output.stdout)?;
    assert_eq!(pulled["layers"][0]["digest"], json!(image.layer_digest));
    assert_cache_names_hash(&home);
    Ok(())
}

/// A resume answered by endless redirects (to itself, then to a `file:` URL) ends after the
/// redirect limit: bounded, no panic, nothing in the cache.
#[test]
fn endless_redirects_on_resume_end() -> TestResult {
    let image = HandImage::new(8, 2000);
    for target in ["self", "file"] {
        let served = image.clone();
        let server = RawServer::start(move |request, answer| {
            if !request.path.ends_with(&served.layer_digest) {
                if !served.answer(request, answer) {
                    answer.full(request, 404, "application/json", b"{}");
                }
                return;
            }
            if request.range_from().is_none() {
                let len = served.layer.len();
                let _ = answer.head(200, &[("Content-Length", len.to_string())]);
                let _ = answer.body(&served.layer[..len / 2]);
            } else {
                let location = match target {
                    "self" => format!("{}?again={}", request.path, request.number),
                    _ => "file:///etc/passwd".to_owned(),
                };
                let _ = answer.head(
                    302,
                    &[("Location", location), ("Content-Length", "0".into())],
                );
            }
        });
        let home = home_for(&server.host(), 1);
        let output = pull_bounded(
            &home,
            &format!("docker://{}/redirects/app:v1", server.host()),
            &[],
            &[],
        );
        let failure = expect_failure(&output, target);
        assert!(
            matches!(failure.code, Some(7 | 9)),
            "{target}: {}",
            failure.stderr
        );
        home.assert_no_layers();
        let redirects = server.requests().len();
        assert!(redirects < 60, "{target}: {redirects} requests");
    }
    Ok(())
}

/// A `200` resume that breaks before it reaches the resume point is one more break of the
/// connection, as README's "Resume" says ("A break counts against `retries` ..."): with the
/// budget far from used up, it is retried, not the end of the pull. The server ignores the
/// first resume's range and breaks at a quarter of the blob; the next resume gets an honest
/// `206`.
#[test]
fn a_200_resume_that_breaks_before_the_resume_point_is_retried() -> TestResult {
    let image = HandImage::new(14, 6000);
    let served = image.clone();
    let len = image.layer.len();
    let resumes = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&resumes);
    let server = RawServer::start(move |request, answer| {
        if !request.path.ends_with(&served.layer_digest) {
            if !served.answer(request, answer) {
                answer.full(request, 404, "application/json", b"{}");
            }
            return;
        }
        let layer = &served.layer;
        match request.range_from() {
            None => {
                let _ = answer.head(200, &[("Content-Length", len.to_string())]);
                let _ = answer.body(&layer[..len / 2]);
            }
            Some(from) if counted.fetch_add(1, Ordering::SeqCst) == 0 => {
                // Range ignored; the connection breaks before the resume point.
                let _ = from;
                let _ = answer.head(200, &[("Content-Length", len.to_string())]);
                let _ = answer.body(&layer[..len / 4]);
            }
            Some(from) => {
                let from = from as usize;
                let _ = answer.head(
                    206,
                    &[
                        ("Content-Length", (len - from).to_string()),
                        ("Content-Range", format!("bytes {from}-{}/{len}", len - 1)),
                    ],
                );
                let _ = answer.body(&layer[from..]);
            }
        }
    });
    let home = home_for(&server.host(), 5);
    let output = pull_bounded(
        &home,
        &format!("docker://{}/skip/break:v1", server.host()),
        &[],
        &[],
    );
    assert!(
        output.status.success(),
        "a break during a 200 resume ended the pull with retries left: {}",
        stderr_of(&output)
    );
    let pulled: Value = serde_json::from_slice(&output.stdout)?;
    assert_eq!(pulled["layers"][0]["digest"], json!(image.layer_digest));
    assert_cache_names_hash(&home);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// (e) Rate limits and exit statuses.

/// `Retry-After` values at the edges (2^64-1, past u64, negative, a date, fractional) on
/// 429: each fails at once or after the retries with the rate-limit status (6), never
/// sleeps for them, never panics.
#[test]
fn absurd_retry_after_values_fail_fast_with_the_rate_limit_status() -> TestResult {
    for retry_after in [
        "18446744073709551615",
        "99999999999999999999999",
        "-1",
        "Wed, 21 Oct 2099 07:28:00 GMT",
        "1.5",
        "",
    ] {
        let server = RawServer::start(move |request, answer| {
            if request.path == "/v2/" {
                answer.full(request, 200, "application/json", b"{}");
            } else {
                let _ = answer.head(
                    429,
                    &[
                        ("Retry-After", retry_after.to_owned()),
                        ("Content-Length", "0".into()),
                        ("ratelimit-remaining", "0;w=21600".into()),
                    ],
                );
            }
        });
        let home = home_for(&server.host(), 1);
        let started = Instant::now();
        let output = pull_bounded(
            &home,
            &format!("docker://{}/limits/app:v1", server.host()),
            &[],
            &[],
        );
        let failure = expect_failure(&output, retry_after);
        assert_eq!(failure.code, Some(6), "{retry_after:?}: {}", failure.stderr);
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "{retry_after:?}: took {:?}",
            started.elapsed()
        );
    }
    Ok(())
}

/// A registry that starts rate-limiting in the middle of a layer (the resume answered 429
/// with `Retry-After: 3600`, as Docker Hub does when the quota runs out) fails the pull
/// with the rate-limit status, 6, as README promises ("a longer one ... fail at once with
/// exit 6"), not with the status of a broken network.
#[test]
fn rate_limited_during_a_resume_exits_with_the_rate_limit_status() -> TestResult {
    let link = Link::start("hostile/429-resume", json!({"retries": 2}))?;
    let size = link.layer_size();
    link.proxy.set_faults(vec![
        link.fault(Fault::CutAfter { bytes: size / 2 }, Some(1)),
        link.fault(
            Fault::Status {
                code: 429,
                retry_after: Some(3600),
                rate_limit_headers: true,
            },
            None,
        ),
    ]);
    let output = pull_bounded(&link.home, &link.image.reference, &[], &[]);
    let failure = expect_failure(&output, "429 on a resume");
    assert!(failure.error.contains("rate limited"), "{}", failure.error);
    assert_eq!(
        failure.code,
        Some(i32::from(concil::exit_status::RATE_LIMITED)),
        "{}",
        failure.error
    );
    link.home.assert_no_layers();
    Ok(())
}

/// A registry answering 407 when no proxy is configured is not reported as a proxy that
/// refused: there is no proxy, and "proxy 127.0.0.1:… refused" sends the user looking for one.
#[test]
fn a_407_without_a_proxy_is_not_blamed_on_a_proxy() -> TestResult {
    let server = RawServer::start(|request, answer| {
        answer.full(request, 407, "text/plain", b"who are you");
    });
    let home = home_for(&server.host(), 0);
    let output = pull_bounded(
        &home,
        &format!("docker://{}/noproxy/app:v1", server.host()),
        &[],
        &[],
    );
    let failure = expect_failure(&output, "407 from the registry");
    assert!(
        !failure.error.contains("proxy"),
        "no proxy is configured: {}",
        failure.error
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// (d) Credentials.

/// A blob store the registry redirects to answers 401 with a Bearer challenge naming its own
/// token realm: the user's registry credentials must not go there (README: "credentials go
/// only to the registry's own origin (never to where it redirects)"). The blob store and its
/// realm are on 127.0.0.1 like the registry (another port), as a CDN of the same host would be.
#[test]
fn a_blob_store_cannot_choose_where_the_credentials_go() -> TestResult {
    const USER: &str = "alice";
    const PASSWORD: &str = "registry-s3cret";
    let image = HandImage::new(9, 300);
    let stolen: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = Arc::clone(&stolen);
    let storage_port = Arc::new(AtomicUsize::new(0));
    let port = Arc::clone(&storage_port);
    let storage = RawServer::start(move |request, answer| {
        if let Some(authorization) = request.header("authorization") {
            if let Ok(mut seen) = seen.lock() {
                seen.push(authorization.to_owned());
            }
        }
        if request.path == "/token" {
            answer.full(request, 200, "application/json", br#"{"token":"stolen"}"#);
            return;
        }
        let realm = format!("http://127.0.0.1:{}/token", port.load(Ordering::SeqCst));
        let _ = answer.head(
            401,
            &[
                (
                    "WWW-Authenticate",
                    format!("Bearer realm=\"{realm}\",service=\"cdn\""),
                ),
                ("Content-Length", "0".into()),
            ],
        );
    });
    storage_port.store(storage.port as usize, Ordering::SeqCst);
    let served = image.clone();
    let storage_host = storage.host();
    let expected_basic = format!("Basic {}", basic_auth(USER, PASSWORD));
    let registry = RawServer::start(move |request, answer| {
        if request.header("authorization") != Some(expected_basic.as_str()) {
            let _ = answer.head(
                401,
                &[
                    ("WWW-Authenticate", "Basic realm=\"registry\"".to_owned()),
                    ("Content-Length", "0".into()),
                ],
            );
            return;
        }
        if request.path.ends_with(&served.layer_digest) {
            let _ = answer.head(
                307,
                &[
                    ("Location", format!("http://{storage_host}/blob?sig=x")),
                    ("Content-Length", "0".into()),
                ],
            );
        } else if !served.answer(request, answer) {
            answer.full(request, 404, "application/json", b"{}");
        }
    });
    let host = registry.host();
    let home = ConcilHome::new(json!({
        "disable_content_trust": true,
        "remote_servers": {host.clone(): {"registry": format!("http://{host}")}},
        "auths": {host.clone(): basic_auth(USER, PASSWORD)},
        "retries": 0,
        "timeouts": {"connect": 2, "idle": 1, "min_rate": 100},
    }));
    let output = pull_bounded(
        &home,
        &format!("docker://{host}/creds/app:v1"),
        &["-vv"],
        &[],
    );
    assert!(!output.status.success(), "the blob store answered only 401");
    let stolen = stolen.lock().map_err(|_| "log")?.clone();
    assert!(
        stolen.is_empty(),
        "the blob store's realm got the registry credentials: {stolen:?}"
    );
    assert!(!stderr_of(&output).contains(PASSWORD));
    Ok(())
}

/// Proxy variables with credentials, in every form that fails (a dead proxy, a proxy that
/// answers 407, one that hangs up, invalid URLs, non-UTF-8 credentials, an unsupported
/// scheme), at the highest verbosity and with `CONCIL_LOG=trace`: the password appears
/// nowhere, neither as it is nor base64-encoded in a header dump.
#[test]
fn proxy_passwords_never_appear_at_any_verbosity() -> TestResult {
    const SECRET: &str = "pr0xy-s3cret";
    let encoded = basic_auth("bob", SECRET);
    let refusing = RawServer::start(|request, answer| {
        answer.full(request, 407, "text/plain", b"no");
    });
    let hanging_up = RawServer::start(|_, _| {});
    let dead = {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.local_addr()?.port()
    };
    let registry = HandImage::new(10, 100);
    let served = registry.clone();
    let target = RawServer::start(move |request, answer| {
        if !served.answer(request, answer) {
            answer.full(request, 404, "application/json", b"{}");
        }
    });
    let home = home_for(&target.host(), 0);
    let image = format!("docker://{}/proxied/app:v1", target.host());
    let values = [
        (format!("http://bob:{SECRET}@127.0.0.1:{dead}"), Some(7)),
        (format!("http://bob:{SECRET}@{}", refusing.host()), Some(7)),
        (format!("bob:{SECRET}@{}", hanging_up.host()), Some(7)),
        (format!("http://bob:{SECRET}@[::1"), Some(3)),
        (format!("http://bob:{SECRET}@127.0.0.1:port"), Some(3)),
        (format!("http://bob:{SECRET}%ff@127.0.0.1:{dead}"), Some(3)),
        (format!("socks5://bob:{SECRET}@127.0.0.1:{dead}"), Some(3)),
        (format!("http://bob:{SECRET}@/"), Some(3)),
    ];
    for (value, status) in &values {
        for variable in ["http_proxy", "HTTP_PROXY", "all_proxy"] {
            for (extra, log) in [(&["-vv"][..], "debug"), (&[][..], "trace")] {
                let output = pull_bounded(
                    &home,
                    &image,
                    extra,
                    &[(variable, value.as_str()), ("CONCIL_LOG", log)],
                );
                let stderr = stderr_of(&output);
                assert!(
                    !stderr.contains(SECRET) && !stderr.contains(&encoded),
                    "{variable}={value:?} (log {log}): {stderr}"
                );
                assert!(output.stdout.is_empty() || output.status.success());
                assert_eq!(
                    exit_code(&output),
                    *status,
                    "{variable}={value:?}: {stderr}"
                );
            }
        }
    }
    Ok(())
}

/// `NO_PROXY` forms that name the registry (`*`, its address among others with spaces, upper
/// and lower case variables) reach it directly past a dead proxy; ones that do not name it
/// (another address that merely starts or ends like it) go through the proxy and fail.
#[test]
fn no_proxy_forms_bypass_exactly_the_hosts_they_name() -> TestResult {
    let image = HandImage::new(11, 100);
    let served = image.clone();
    let target = RawServer::start(move |request, answer| {
        if !served.answer(request, answer) {
            if request.path.ends_with(&served.layer_digest) {
                answer.full(request, 200, "application/octet-stream", &served.layer);
            } else {
                answer.full(request, 404, "application/json", b"{}");
            }
        }
    });
    let dead = {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.local_addr()?.port()
    };
    let proxy = format!("http://127.0.0.1:{dead}");
    let reference = format!("docker://{}/noproxy/app:v1", target.host());
    let cases: [(&str, &str, bool); 6] = [
        ("NO_PROXY", "*", true),
        ("no_proxy", " example.org , 127.0.0.1 ", true),
        ("NO_PROXY", "example.org,127.0.0.1", true),
        ("no_proxy", "127.0.0.10", false),
        ("no_proxy", "27.0.0.1", false),
        ("no_proxy", "example.org", false),
    ];
    for (variable, value, direct) in cases {
        let home = home_for(&target.host(), 0);
        let output = pull_bounded(
            &home,
            &reference,
            &[],
            &[("http_proxy", proxy.as_str()), (variable, value)],
        );
        assert_eq!(
            output.status.success(),
            direct,
            "{variable}={value:?}: {}",
            stderr_of(&output)
        );
        if !direct {
            assert_eq!(exit_code(&output), Some(7), "{variable}={value:?}");
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Mirrors.

/// A mirror that answers `HEAD` with one digest, and `GET` by tag or by digest with a
/// manifest that hashes to neither (announcing the `HEAD`'s digest): concil falls back to the
/// registry, pulls the registry's image, and the cache names only bytes that hash to them.
#[test]
fn a_mirror_whose_head_and_get_disagree_cannot_name_cache_entries() -> TestResult {
    let image = HandImage::new(12, 200);
    let evil = HandImage::new(13, 200);
    let claimed = sha256_digest(b"a manifest nobody has");
    let served = image.clone();
    let registry = RawServer::start(move |request, answer| {
        if !served.answer(request, answer) {
            if request.path.ends_with(&served.layer_digest) {
                answer.full(request, 200, "application/octet-stream", &served.layer);
            } else {
                answer.full(request, 404, "application/json", b"{}");
            }
        }
    });
    let (lie, claimed_digest) = (evil.clone(), claimed.clone());
    let mirror = RawServer::start(move |request, answer| {
        if request.path == "/v2/" {
            answer.full(request, 200, "application/json", b"{}");
        } else if request.path.contains("/manifests/") {
            let _ = answer.head(
                200,
                &[
                    ("Content-Type", DOCKER_MANIFEST.to_owned()),
                    ("Content-Length", lie.manifest.len().to_string()),
                    ("Docker-Content-Digest", claimed_digest.clone()),
                ],
            );
            if request.method != "HEAD" {
                let _ = answer.body(&lie.manifest);
            }
        } else if request.path.contains("/blobs/") {
            // Every blob: the evil config's bytes under any name.
            answer.full(request, 200, "application/octet-stream", &lie.config);
        } else {
            answer.full(request, 404, "application/json", b"{}");
        }
    });
    let host = registry.host();
    let config = json!({
        "disable_content_trust": true,
        "remote_servers": {host.clone(): {
            "registry": format!("http://{host}"),
            "mirrors": [format!("http://{}", mirror.host())],
        }},
        "retries": 0,
        "timeouts": {"connect": 2, "idle": 1, "min_rate": 100},
    });
    for reference in [
        format!("docker://{host}/mirrored/app:v1"),
        format!("docker://{host}/mirrored/app@{}", image.manifest_digest),
    ] {
        let home = ConcilHome::new(config.clone());
        let output = pull_bounded(&home, &reference, &[], &[]);
        assert_cache_names_hash(&home);
        assert!(
            !home.cache_dir().join("manifest").join(&claimed).exists(),
            "{reference}: the HEAD's word named a manifest"
        );
        assert!(
            !home
                .cache_dir()
                .join("manifest")
                .join(&evil.manifest_digest)
                .exists(),
            "{reference}: the mirror's manifest was cached"
        );
        // The config and layer the mirror serves as garbage: either refused (exit 9, the
        // mirror's layer is not fallen back from) or the registry's; never cached wrong.
        if output.status.success() {
            let pulled: Value = serde_json::from_slice(&output.stdout)?;
            assert_eq!(
                pulled["manifest_digest"],
                json!(image.manifest_digest),
                "{reference}"
            );
        } else {
            // (Which status: see the next test.)
            let failure = expect_failure(&output, &reference);
            assert!(
                matches!(failure.code, Some(7 | 9)),
                "{reference}: {}",
                failure.stderr
            );
            home.assert_no_layers();
        }
    }
    Ok(())
}

/// A mirror, and then the registry it is passed over for, serve a layer blob whole (its
/// `Content-Length` honoured, nothing cut) but of another size than the manifest declares:
/// README ("Mirrors"): "only when the registry's bytes do not match either does the pull fail
/// (exit 9)", and the exit table puts a size mismatch under 9. A complete answer is not a
/// broken network (7), which scripts would retry forever.
#[test]
fn a_whole_layer_of_another_size_is_invalid_content_not_a_broken_network() -> TestResult {
    let image = HandImage::new(15, 300);
    let other = HandImage::new(16, 100);
    assert_ne!(other.layer.len(), image.layer.len());
    let (served, wrong) = (image.clone(), other.clone());
    let registry = RawServer::start(move |request, answer| {
        if request.path.ends_with(&served.layer_digest) {
            answer.full(request, 200, "application/octet-stream", &wrong.layer);
        } else if !served.answer(request, answer) {
            answer.full(request, 404, "application/json", b"{}");
        }
    });
    let wanted = image.clone();
    let mirror = RawServer::start(move |request, answer| {
        if request.path == "/v2/" {
            answer.full(request, 200, "application/json", b"{}");
        } else if request.path.ends_with(&wanted.layer_digest) {
            answer.full(request, 200, "application/octet-stream", &other.layer);
        } else {
            answer.full(request, 404, "application/json", b"{}");
        }
    });
    let host = registry.host();
    let home = ConcilHome::new(json!({
        "disable_content_trust": true,
        "remote_servers": {host.clone(): {
            "registry": format!("http://{host}"),
            "mirrors": [format!("http://{}", mirror.host())],
        }},
        "retries": 1,
        "timeouts": {"connect": 2, "idle": 1, "min_rate": 100},
    }));
    let output = pull_bounded(&home, &format!("docker://{host}/sized/app:v1"), &[], &[]);
    let failure = expect_failure(&output, "a whole layer of another size");
    assert_eq!(
        failure.code,
        Some(i32::from(concil::exit_status::CONTENT_INVALID)),
        "{}",
        failure.error
    );
    home.assert_no_layers();
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The real registry behind the fault proxy (as pull_network.rs).

/// A busybox image behind a fault proxy, and a home that goes through the proxy.
struct Link {
    image: PushedImage,
    proxy: Proxy,
    home: ConcilHome,
    /// Copies of the layer tars (the image builder's own go with it).
    _tars: tempfile::TempDir,
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
        config["timeouts"] = json!({"connect": 2, "idle": 2, "min_rate": 100});
        if let (Some(config), Some(settings)) = (config.as_object_mut(), settings.as_object()) {
            for (key, value) in settings {
                config.insert(key.clone(), value.clone());
            }
        }
        Ok(Link {
            home: ConcilHome::new(config),
            image,
            proxy,
            _tars: tars,
            _registry: registry,
        })
    }

    fn layer_size(&self) -> u64 {
        self.image.layers[0].size
    }

    fn fault(&self, fault: Fault, times: Option<u32>) -> BlobFault {
        BlobFault {
            fault,
            digest: Some(self.image.layers[0].digest.clone()),
            times,
        }
    }
}
