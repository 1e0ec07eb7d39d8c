//! A fault-injecting HTTP/1.1 proxy for loopback registries and notary servers.
//!
//! It forwards every request to one plain-HTTP upstream (`host:port`). Every connection carries
//! exactly one exchange: the proxy forces `Connection: close` on the request and on the
//! response, so a body simply ends when the upstream closes and nothing has to be re-framed.
//! A response to `HEAD` (and a `204`/`304`) has no body whatever its `Content-Length` says: the
//! proxy forwards its head and closes, without waiting for the upstream to close.
//!
//! Two kinds of fault, set independently:
//!
//! - Blob faults ([`Proxy::set_fault`], [`BlobFault`]): for `GET /v2/<repo>/blobs/<digest>`
//!   only. On the response body: flip one byte, cut it short (after a given or a pseudo-random
//!   number of bytes), stall it, or throttle it. Offsets count body bytes as they travel on the
//!   wire. The registry serves blobs with `Content-Length` (not chunked), so they are blob bytes
//!   (for a `206` response: bytes of the requested range). On the response head: shift the start
//!   of a `206`'s `Content-Range` (a lying server). On the request: drop its `Range` header (a
//!   server that ignores ranges), or answer a status such as `429`/`503` in the upstream's place
//!   (rate limits, overload). Blobs the registry redirects elsewhere (`307`) are not faulted:
//!   their bodies come from the redirect target, not through the proxy.
//! - Path faults ([`Proxy::set_path_faults`], [`PathFault`]): for any `GET` or `HEAD` whose path
//!   (query left out) matches a [`PathMatch`] — a suffix such as `/manifests/v1`, or a TUF role's
//!   metadata under `/_trust/tuf/` by plain or consistent (checksum) name — flip a body byte of
//!   the upstream's `200`/`206` response (`GET` only), answer `200` with canned bytes without
//!   asking the upstream (replay old metadata, serve metadata a test made), answer a status with
//!   no body (`404`, `503`; or `429` with `Retry-After`), or close the connection without
//!   answering (server unreachable). A flipped request goes upstream as HTTP/1.0 so the body is
//!   never chunked (notary-server chunks metadata over 2 KiB) and the offset counts body bytes.
//!   A path fault takes precedence over a blob fault.
//!
//! Every request is logged ([`Proxy::requests`], [`Proxy::blob_requests`],
//! [`Proxy::blob_body_bytes`]), so a test can count manifest `GET`s and `HEAD`s, or check that a
//! resumed download fetched no byte twice. A log entry is updated before the bytes it counts are
//! handed to the client, so a client that has read a response finds it counted.
//!
//! The upstream must speak plain HTTP (the proxy reads the requests).
//!
//! The `throttle_proxy` example (concil's benchmarks) uses it too, so a benchmark's slow link
//! and a test's are the same code. (Its log grows by one small entry per request.)

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Largest request or response head the proxy accepts.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Size of one forwarding read.
const CHUNK_BYTES: usize = 16 * 1024;
/// A throttled body is written in slices of this many seconds' worth of bytes, so the rate is
/// smooth at every scale instead of bursting one buffer at a time.
const THROTTLE_SLICE_SECS: f64 = 0.05;
/// A stalled connection checks this often whether the proxy is stopping, so dropping the
/// [`Proxy`] ends its stalls at once instead of leaving them to run out.
const STALL_POLL: Duration = Duration::from_millis(20);
/// The body of an injected `429`, in the registry API's error form (Docker Hub's code).
const TOO_MANY_REQUESTS_BODY: &[u8] =
    br#"{"errors":[{"code":"TOOMANYREQUESTS","message":"rate limited"}]}"#;

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("cannot listen on {addr}")]
    Bind {
        addr: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot resolve upstream {upstream}")]
    Resolve {
        upstream: String,
        #[source]
        source: io::Error,
    },
    #[error("upstream {upstream} resolves to no address")]
    NoUpstreamAddress { upstream: String },
    #[error("cannot connect to upstream {upstream}")]
    Connect {
        upstream: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("i/o error while {doing}")]
    Io {
        doing: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("{side} head is larger than {MAX_HEAD_BYTES} bytes")]
    HeadTooLarge { side: Side },
    #[error("{side} closed the connection inside the head")]
    TruncatedHead { side: Side },
    #[error("{side} head is not HTTP/1.x: {first_line:?}")]
    MalformedHead { side: Side, first_line: String },
}

/// Which peer a head came from, for errors.
#[derive(Debug, Clone, Copy)]
pub enum Side {
    Client,
    Upstream,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Client => "client request",
            Side::Upstream => "upstream response",
        })
    }
}

/// What to do to a blob `GET`: to its response body, its response head, or its request.
///
/// The body faults (`FlipByte`, `CutAfter`, `Throttle`, `CutAtRandom`, `Stall`) apply to `200`
/// and `206` responses; other responses pass unchanged and do not use up the plan's `times`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Invert every bit of the body byte at `offset`; all other bytes pass unchanged.
    FlipByte { offset: u64 },
    /// Forward the first `bytes` body bytes, then close the connection.
    CutAfter { bytes: u64 },
    /// Forward the body at no more than `bytes_per_sec` (per response).
    Throttle { bytes_per_sec: u64 },
    /// A slow link that breaks: forward at no more than `bytes_per_sec` and close the
    /// connection after `cut_after` body bytes of each response (benchmarks of resumes).
    ThrottledCut { bytes_per_sec: u64, cut_after: u64 },
    /// Forward the first n body bytes, then close the connection, n pseudo-random in
    /// [1, `Content-Length` - 1] as [`Fault::random_cut`] draws it for `seed` and the number of
    /// responses this plan faulted before. A response without a `Content-Length` of at least 2
    /// passes unchanged and does not use up the plan.
    CutAtRandom { seed: u64 },
    /// Forward the first `after` body bytes, send nothing for `pause`, then close the connection
    /// without the rest (a server that hangs mid-body, for read timeouts). A body of at most
    /// `after` bytes passes whole, without a pause. Dropping the [`Proxy`] ends a pause early.
    Stall { after: u64, pause: Duration },
    /// Remove the request's `Range` (and `If-Range`) header before it goes upstream, so the
    /// registry answers `200` with the whole blob (a server that ignores ranges). Requests
    /// without a `Range` header pass unchanged and do not use up the plan.
    IgnoreRange,
    /// Rewrite an upstream `206`'s `Content-Range: bytes A-B/T` to `bytes (A+1)-B/T` (a lying
    /// server); the body passes unchanged. Other responses pass unchanged and do not use up the
    /// plan.
    WrongContentRange,
    /// Answer `code` without asking the upstream: with `Retry-After: <secs>` when `retry_after`
    /// is given, with Docker Hub's `ratelimit-limit: 100;w=21600` and
    /// `ratelimit-remaining: 0;w=21600` when `rate_limit_headers`, and with the registry API's
    /// `TOOMANYREQUESTS` error as body for a `429` (an empty body otherwise). With
    /// `times: Some(n)`, a burst of n such answers, then normal service.
    Status {
        code: u16,
        retry_after: Option<u64>,
        rate_limit_headers: bool,
    },
}

impl Fault {
    /// Where [`Fault::CutAtRandom`] cuts a body of `body_len` bytes: after this many bytes,
    /// in [1, `body_len` - 1], the same for the same `seed` and `response` (the number of
    /// responses the plan faulted before: 0 for the first). `None` when the range is empty
    /// (`body_len` < 2).
    pub fn random_cut(seed: u64, response: u64, body_len: u64) -> Option<u64> {
        let choices = body_len.checked_sub(1).filter(|&choices| choices > 0)?;
        Some(1 + splitmix64(splitmix64(seed) ^ response) % choices)
    }

    /// Whether this fault acts on a blob response with this head (rather than on the request,
    /// or not at all).
    fn applies_to_response(&self, response: &Head<'_>) -> bool {
        match self {
            Fault::FlipByte { .. }
            | Fault::CutAfter { .. }
            | Fault::Throttle { .. }
            | Fault::ThrottledCut { .. }
            | Fault::Stall { .. } => response.is_success_with_body(),
            Fault::CutAtRandom { .. } => {
                response.is_success_with_body()
                    && response.content_length().is_some_and(|length| length >= 2)
            }
            Fault::WrongContentRange => {
                response.status() == 206
                    && response
                        .header("content-range")
                        .and_then(shifted_content_range)
                        .is_some()
            }
            Fault::IgnoreRange | Fault::Status { .. } => false,
        }
    }
}

/// SplitMix64's output function: a well-mixed 64-bit value from any input, so neighbouring
/// seeds and response numbers give unrelated cut points (no dependency for a test's dice).
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A fault and the blob requests it applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobFault {
    pub fault: Fault,
    /// Only requests for this digest (`sha256:…`); `None`: every blob.
    pub digest: Option<String>,
    /// Only this many faulted responses, later ones pass unchanged; `None`: all of them.
    pub times: Option<u32>,
}

impl BlobFault {
    /// `fault` on every blob response.
    pub fn always(fault: Fault) -> Self {
        BlobFault {
            fault,
            digest: None,
            times: None,
        }
    }
}

/// Which `GET` and `HEAD` requests a [`PathFault`] applies to, by path (the query is left out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    /// Paths ending with this, e.g. `/manifests/v1`.
    Suffix(String),
    /// The metadata of one TUF role (`root`, `targets`, `targets/releases`, or a versioned root
    /// such as `2.root`) under `/_trust/tuf/`: `<role>.json`, or its consistent name
    /// `<role>.<sha256 hex>.json`, which is how the notary client asks for snapshot and targets.
    TufRole(String),
}

impl PathMatch {
    fn matches(&self, path: &str) -> bool {
        match self {
            PathMatch::Suffix(suffix) => path.ends_with(suffix.as_str()),
            PathMatch::TufRole(role) => {
                let Some((_, file)) = path.split_once("/_trust/tuf/") else {
                    return false;
                };
                let Some(name) = file
                    .strip_prefix(role.as_str())
                    .and_then(|rest| rest.strip_suffix(".json"))
                else {
                    return false;
                };
                name.is_empty()
                    || name.strip_prefix('.').is_some_and(|checksum| {
                        checksum.len() == 64 && checksum.bytes().all(|b| b.is_ascii_hexdigit())
                    })
            }
        }
    }
}

/// What to do to a request a [`PathMatch`] selected. An answer to a `HEAD` request carries the
/// head only (a `Replace` answer's `Content-Length` still counts its body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathAction {
    /// Invert every bit of body byte `offset` of the upstream's `200`/`206` response; other
    /// responses pass unchanged and do not use up the fault. `GET` only: a `HEAD` request
    /// passes it by (a later fault in the list may still match).
    FlipByte { offset: u64 },
    /// Answer `200` with this body (and its `Content-Length`); the upstream is not asked.
    Replace { body: Vec<u8> },
    /// Answer this status with an empty body; the upstream is not asked.
    Status { code: u16 },
    /// Answer this status with these headers and an empty body (`Content-Length: 0` and
    /// `Connection: close` are added), e.g. `429` with `Retry-After`; the upstream is not asked.
    StatusWithHeaders {
        code: u16,
        headers: Vec<(String, String)>,
    },
    /// Close the connection without answering; the upstream is not asked.
    Drop,
}

/// A path fault: what to do, to which requests, how often.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathFault {
    pub path: PathMatch,
    pub action: PathAction,
    /// Only this many faulted responses, later ones pass unchanged; `None`: all of them.
    pub times: Option<u32>,
}

impl PathFault {
    /// `action` on every request `path` matches.
    pub fn always(path: PathMatch, action: PathAction) -> Self {
        PathFault {
            path,
            action,
            times: None,
        }
    }
}

/// One blob request (`GET` or `HEAD` of `/v2/<repo>/blobs/<digest>`) as the proxy saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobRequest {
    pub method: String,
    /// The request path, query left out.
    pub path: String,
    /// The `Range` header the client sent (before a [`Fault::IgnoreRange`] removed it).
    pub range: Option<String>,
    /// The status the client was answered, injected or the upstream's; 0 if the connection
    /// closed before an answer (a dropped request, an unreachable upstream).
    pub status: u16,
    /// The body bytes handed to the client (after a cut: the bytes before it).
    pub body_bytes: u64,
}

/// A running proxy; stops accepting when dropped.
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

/// State shared between the acceptor, the connection threads and the owner.
struct Shared {
    upstream: SocketAddr,
    /// The blob faults in force, in order: a request takes the first that applies to it and
    /// has uses left.
    plan: Mutex<Vec<ActivePlan>>,
    path_plan: Mutex<Vec<PathFault>>,
    stopping: AtomicBool,
    blob_responses: AtomicU64,
    faulted_responses: AtomicU64,
    path_faulted_responses: AtomicU64,
    log: Mutex<Vec<Exchange>>,
}

/// The blob fault in force and how often it has applied, which numbers the responses
/// [`Fault::CutAtRandom`] draws for.
struct ActivePlan {
    fault: BlobFault,
    applied: u64,
}

/// One request in the log, filled in as its exchange goes on.
struct Exchange {
    method: String,
    path: String,
    range: Option<String>,
    is_blob: bool,
    status: u16,
    body_bytes: u64,
}

impl Proxy {
    /// Listens on `listen` (e.g. `127.0.0.1:0`) and forwards to `upstream` (`host:port`).
    pub fn start(listen: &str, upstream: &str) -> Result<Proxy, ProxyError> {
        let upstream_addr = upstream
            .to_socket_addrs()
            .map_err(|source| ProxyError::Resolve {
                upstream: upstream.to_owned(),
                source,
            })?
            .next()
            .ok_or_else(|| ProxyError::NoUpstreamAddress {
                upstream: upstream.to_owned(),
            })?;
        let listener = TcpListener::bind(listen).map_err(|source| ProxyError::Bind {
            addr: listen.to_owned(),
            source,
        })?;
        let addr = listener.local_addr().map_err(|source| ProxyError::Io {
            doing: "reading the bound address",
            source,
        })?;
        let shared = Arc::new(Shared {
            upstream: upstream_addr,
            plan: Mutex::new(Vec::new()),
            path_plan: Mutex::new(Vec::new()),
            stopping: AtomicBool::new(false),
            blob_responses: AtomicU64::new(0),
            faulted_responses: AtomicU64::new(0),
            path_faulted_responses: AtomicU64::new(0),
            log: Mutex::new(Vec::new()),
        });
        let acceptor_shared = Arc::clone(&shared);
        let acceptor = thread::Builder::new()
            .name("proxy-accept".into())
            .spawn(move || accept_loop(&listener, &acceptor_shared))
            .map_err(|source| ProxyError::Io {
                doing: "spawning the accept thread",
                source,
            })?;
        Ok(Proxy {
            addr,
            shared,
            acceptor: Some(acceptor),
        })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Replaces the fault plan for requests that start from now on (`None`: pass through).
    /// The [`Fault::CutAtRandom`] response numbers start again at 0.
    pub fn set_fault(&self, plan: Option<BlobFault>) {
        self.set_faults(plan.into_iter().collect());
    }

    /// Replaces the fault plan with several faults (empty: pass through): each request or
    /// response takes the first one that applies to it and has uses left, so
    /// `[CutAfter × 1, IgnoreRange × 1]` cuts the first answer and ignores the resume's range.
    pub fn set_faults(&self, plans: Vec<BlobFault>) {
        *self
            .shared
            .plan
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = plans
            .into_iter()
            .map(|fault| ActivePlan { fault, applied: 0 })
            .collect();
    }

    /// How many successful (`200`/`206`) blob GET responses have started so far.
    pub fn blob_responses(&self) -> u64 {
        self.shared.blob_responses.load(Ordering::SeqCst)
    }

    /// How many blob requests a fault has applied to so far: responses altered, `Range`
    /// headers removed, statuses answered in the upstream's place.
    pub fn faulted_responses(&self) -> u64 {
        self.shared.faulted_responses.load(Ordering::SeqCst)
    }

    /// Replaces the path faults for requests that start from now on (empty: none). The first
    /// fault that matches a request and has uses left applies.
    pub fn set_path_faults(&self, faults: Vec<PathFault>) {
        *self
            .shared
            .path_plan
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = faults;
    }

    /// How many responses a path fault has altered, replaced, or dropped so far.
    pub fn path_faulted_responses(&self) -> u64 {
        self.shared.path_faulted_responses.load(Ordering::SeqCst)
    }

    /// The body bytes handed to clients in `200`/`206` answers to blob `GET`s so far, cut and
    /// faulted bodies included: what a client downloaded of blobs.
    pub fn blob_body_bytes(&self) -> u64 {
        self.shared
            .lock_log()
            .iter()
            .filter(|exchange| {
                exchange.is_blob && exchange.method == "GET" && matches!(exchange.status, 200 | 206)
            })
            .map(|exchange| exchange.body_bytes)
            .sum()
    }

    /// Every blob request (`GET` and `HEAD`) so far, in the order they arrived; a request still
    /// in progress shows what it has got so far.
    pub fn blob_requests(&self) -> Vec<BlobRequest> {
        self.shared
            .lock_log()
            .iter()
            .filter(|exchange| exchange.is_blob)
            .map(|exchange| BlobRequest {
                method: exchange.method.clone(),
                path: exchange.path.clone(),
                range: exchange.range.clone(),
                status: exchange.status,
                body_bytes: exchange.body_bytes,
            })
            .collect()
    }

    /// Every request so far, of any path, in the order they arrived: method, path (query left
    /// out), and the status answered (0: none yet, or the connection closed without one).
    pub fn requests(&self) -> Vec<(String, String, u16)> {
        self.shared
            .lock_log()
            .iter()
            .map(|exchange| {
                (
                    exchange.method.clone(),
                    exchange.path.clone(),
                    exchange.status,
                )
            })
            .collect()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // Also ends stalls (`Fault::Stall`): connection threads are not joined, and a stalled
        // one must not outlive the test by its whole pause.
        self.shared.stopping.store(true, Ordering::SeqCst);
        // `accept` blocks; one connection wakes it up to see the flag.
        if TcpStream::connect(self.addr).is_ok() {
            if let Some(acceptor) = self.acceptor.take() {
                let _ = acceptor.join();
            }
        }
    }
}

impl Shared {
    /// The blob fault for one request to `digest` if `applies` accepts it, consuming one use of
    /// a counted plan and counting it; with the number of times the plan applied before.
    fn take_fault(&self, digest: &str, applies: impl Fn(&Fault) -> bool) -> Option<(Fault, u64)> {
        let mut plans = self.plan.lock().unwrap_or_else(PoisonError::into_inner);
        let current = plans.iter_mut().find(|current| {
            current
                .fault
                .digest
                .as_deref()
                .is_none_or(|only| only == digest)
                && current.fault.times != Some(0)
                && applies(&current.fault.fault)
        })?;
        if let Some(left) = &mut current.fault.times {
            *left -= 1;
        }
        let number = current.applied;
        current.applied += 1;
        self.faulted_responses.fetch_add(1, Ordering::SeqCst);
        Some((current.fault.fault, number))
    }

    /// The first path fault for a request with uses left: its index and action. Uses nothing
    /// up. A `HEAD` request has no body to flip, so flip faults do not match it.
    fn find_path_fault(&self, path: &str, is_head: bool) -> Option<(usize, PathAction)> {
        let plan = self
            .path_plan
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        plan.iter()
            .enumerate()
            .find(|(_, fault)| {
                fault.times != Some(0)
                    && fault.path.matches(path)
                    && !(is_head && matches!(fault.action, PathAction::FlipByte { .. }))
            })
            .map(|(index, fault)| (index, fault.action.clone()))
    }

    /// Uses up one application of path fault `index` and counts it; false when none was left
    /// (another connection took the last one) or the plan was replaced meanwhile.
    fn use_path_fault(&self, index: usize, action: &PathAction) -> bool {
        let mut plan = self
            .path_plan
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let Some(fault) = plan.get_mut(index).filter(|fault| fault.action == *action) else {
            return false;
        };
        match &mut fault.times {
            Some(0) => return false,
            Some(left) => *left -= 1,
            None => {}
        }
        self.path_faulted_responses.fetch_add(1, Ordering::SeqCst);
        true
    }

    fn lock_log(&self) -> std::sync::MutexGuard<'_, Vec<Exchange>> {
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Logs a request as it arrives; its index for the updates below.
    fn record_request(&self, request: &Head<'_>) -> usize {
        let exchange = Exchange {
            method: request.method().to_owned(),
            path: request.path().unwrap_or_default().to_owned(),
            range: request.header("range").map(str::to_owned),
            is_blob: matches!(request.method(), "GET" | "HEAD")
                && request.path().and_then(blob_digest_of).is_some(),
            status: 0,
            body_bytes: 0,
        };
        let mut log = self.lock_log();
        log.push(exchange);
        log.len() - 1
    }

    /// Logs the status of a request's answer; called before the head goes to the client.
    fn record_status(&self, index: usize, status: u16) {
        if let Some(exchange) = self.lock_log().get_mut(index) {
            exchange.status = status;
        }
    }

    /// Counts body bytes of a request's answer; called before they go to the client.
    fn record_body(&self, index: usize, bytes: u64) {
        if let Some(exchange) = self.lock_log().get_mut(index) {
            exchange.body_bytes += bytes;
        }
    }

    /// Sleeps for `duration`, or less if the proxy is dropped meanwhile.
    fn pause(&self, duration: Duration) {
        let started = Instant::now();
        while !self.stopping.load(Ordering::SeqCst) {
            let Some(left) = duration.checked_sub(started.elapsed()) else {
                return;
            };
            if left.is_zero() {
                return;
            }
            thread::sleep(left.min(STALL_POLL));
        }
    }
}

/// One thread per connection: each carries one short exchange, and the tests open few.
fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    for connection in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let client = match connection {
            Ok(client) => client,
            Err(error) => {
                eprintln!("proxy: accept failed: {error}");
                continue;
            }
        };
        let shared = Arc::clone(shared);
        let spawned = thread::Builder::new()
            .name("proxy-conn".into())
            .spawn(move || {
                if let Err(error) = serve(client, &shared) {
                    eprintln!("proxy: {}", error_chain(&error));
                }
            });
        if let Err(error) = spawned {
            eprintln!("proxy: cannot spawn a connection thread: {error}");
        }
    }
}

/// An error and its causes on one line, `: `-separated.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}

fn io_error(doing: &'static str) -> impl FnOnce(io::Error) -> ProxyError {
    move |source| ProxyError::Io { doing, source }
}

/// What a request's exchange needs to know once the upstream answers.
struct Forwarding<'a> {
    /// The log entry.
    index: usize,
    /// `HEAD`: the answer has no body.
    is_head: bool,
    /// For a blob `GET` no path fault matched: the digest.
    blob_digest: Option<&'a str>,
    /// A blob fault already acted on the request (`IgnoreRange`): none acts on the response.
    request_faulted: bool,
    /// A path flip fault to apply to a successful response: its index and offset.
    flip_offset: Option<(usize, u64)>,
}

/// Forwards one request and its response.
fn serve(mut client: TcpStream, shared: &Shared) -> Result<(), ProxyError> {
    let Some((request_head, request_rest)) = read_head(&mut client, Side::Client)? else {
        return Ok(()); // connected and closed without a request (e.g. the wake-up in Drop)
    };
    let request = Head::parse(&request_head, Side::Client)?;
    let index = shared.record_request(&request);
    let is_head = request.method() == "HEAD";
    let path_fault = match request.method() {
        "GET" | "HEAD" => request
            .path()
            .and_then(|path| shared.find_path_fault(path, is_head)),
        _ => None,
    };
    // A path fault replaces blob faults for its request.
    let blob_digest = match path_fault {
        Some(_) => None,
        None => request.blob_get_digest(),
    };
    let flip_offset = match path_fault {
        Some((index, PathAction::FlipByte { offset })) => Some((index, offset)),
        Some((fault_index, action)) => {
            if shared.use_path_fault(fault_index, &action) {
                return answer_path_fault(&mut client, &action, is_head, shared, index);
            }
            None
        }
        None => None,
    };
    // Blob faults that act before the upstream is asked.
    let has_range = request.header("range").is_some();
    let request_fault = blob_digest.and_then(|digest| {
        shared.take_fault(digest, |fault| match fault {
            Fault::Status { .. } => true,
            Fault::IgnoreRange => has_range,
            _ => false,
        })
    });
    if let Some((fault @ Fault::Status { .. }, _)) = request_fault {
        return answer_status_fault(&mut client, fault, shared, index);
    }
    let request_head = if flip_offset.is_some() {
        request.as_http10_with_connection_close()
    } else if request_fault.is_some() {
        request.forwarded_with(request.start_line, &["range", "if-range"], &[])
    } else {
        request.with_connection_close()
    };

    let mut upstream =
        TcpStream::connect(shared.upstream).map_err(|source| ProxyError::Connect {
            upstream: shared.upstream,
            source,
        })?;
    upstream
        .write_all(&request_head)
        .and_then(|()| upstream.write_all(&request_rest))
        .map_err(io_error("sending the request head upstream"))?;

    // The rest of a request body (uploads) flows on its own; it ends when the client closes,
    // which happens once the response below is done.
    let mut client_reader = client
        .try_clone()
        .map_err(io_error("cloning the client socket"))?;
    let mut upstream_writer = upstream
        .try_clone()
        .map_err(io_error("cloning the upstream socket"))?;
    let request_pump = thread::Builder::new()
        .name("proxy-request-body".into())
        .spawn(move || {
            let _ = io::copy(&mut client_reader, &mut upstream_writer);
            let _ = upstream_writer.shutdown(Shutdown::Write);
        })
        .map_err(io_error("spawning the request body thread"))?;

    let forwarding = Forwarding {
        index,
        is_head,
        blob_digest,
        request_faulted: request_fault.is_some(),
        flip_offset,
    };
    let result = forward_response(&mut upstream, &mut client, &forwarding, shared);
    let _ = client.shutdown(Shutdown::Both);
    let _ = upstream.shutdown(Shutdown::Both);
    let _ = request_pump.join();
    result
}

/// Carries out a path fault that needs no upstream response: answers, or closes without one.
fn answer_path_fault(
    client: &mut TcpStream,
    action: &PathAction,
    is_head: bool,
    shared: &Shared,
    index: usize,
) -> Result<(), ProxyError> {
    const OCTET_STREAM: [(&str, &str); 1] = [("Content-Type", "application/octet-stream")];
    let (code, headers, body): (u16, Vec<(&str, &str)>, &[u8]) = match action {
        PathAction::Replace { body } => (200, OCTET_STREAM.to_vec(), body),
        PathAction::Status { code } => (*code, OCTET_STREAM.to_vec(), &[]),
        PathAction::StatusWithHeaders { code, headers } => (
            *code,
            headers
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_str()))
                .collect(),
            &[],
        ),
        PathAction::Drop | PathAction::FlipByte { .. } => {
            let _ = client.shutdown(Shutdown::Both);
            return Ok(());
        }
    };
    answer(client, code, &headers, body, is_head, shared, index)
}

/// Answers a blob `GET` with a [`Fault::Status`] in the upstream's place.
fn answer_status_fault(
    client: &mut TcpStream,
    fault: Fault,
    shared: &Shared,
    index: usize,
) -> Result<(), ProxyError> {
    let Fault::Status {
        code,
        retry_after,
        rate_limit_headers,
    } = fault
    else {
        return Ok(()); // only called with a status fault
    };
    let retry_after = retry_after.map(|secs| secs.to_string());
    let mut headers: Vec<(&str, &str)> = Vec::new();
    let body: &[u8] = if code == 429 {
        headers.push(("Content-Type", "application/json"));
        TOO_MANY_REQUESTS_BODY
    } else {
        &[]
    };
    if let Some(secs) = &retry_after {
        headers.push(("Retry-After", secs));
    }
    if rate_limit_headers {
        headers.push(("ratelimit-limit", "100;w=21600"));
        headers.push(("ratelimit-remaining", "0;w=21600"));
    }
    answer(client, code, &headers, body, false, shared, index)
}

/// Answers in the upstream's place: `code`, `headers`, and `body` with its `Content-Length`
/// (to a `HEAD` request: the head only); logs it, then closes.
fn answer(
    client: &mut TcpStream,
    code: u16,
    headers: &[(&str, &str)],
    body: &[u8],
    is_head: bool,
    shared: &Shared,
    index: usize,
) -> Result<(), ProxyError> {
    let mut head = format!("HTTP/1.1 {code} Injected\r\n");
    for (name, value) in headers {
        head.push_str(name);
        head.push_str(": ");
        head.push_str(value);
        head.push_str("\r\n");
    }
    head.push_str("Content-Length: ");
    head.push_str(&body.len().to_string());
    head.push_str("\r\nConnection: close\r\n\r\n");
    let body = if is_head { &[] } else { body };
    shared.record_status(index, code);
    shared.record_body(index, body.len() as u64);
    let result = client
        .write_all(head.as_bytes())
        .and_then(|()| client.write_all(body))
        .map_err(io_error("sending an injected response to the client"));
    let _ = client.shutdown(Shutdown::Both);
    result
}

fn forward_response(
    upstream: &mut TcpStream,
    client: &mut TcpStream,
    forwarding: &Forwarding<'_>,
    shared: &Shared,
) -> Result<(), ProxyError> {
    let Some((response_head, response_rest)) = read_head(upstream, Side::Upstream)? else {
        return Err(ProxyError::TruncatedHead {
            side: Side::Upstream,
        });
    };
    let response = Head::parse(&response_head, Side::Upstream)?;

    let fault = match forwarding.blob_digest {
        Some(digest) => {
            if response.is_success_with_body() {
                shared.blob_responses.fetch_add(1, Ordering::SeqCst);
            }
            if forwarding.request_faulted {
                None
            } else {
                shared.take_fault(digest, |fault| fault.applies_to_response(&response))
            }
        }
        None => match forwarding.flip_offset {
            Some((index, offset))
                if response.is_success_with_body()
                    && shared.use_path_fault(index, &PathAction::FlipByte { offset }) =>
            {
                Some((Fault::FlipByte { offset }, 0))
            }
            _ => None,
        },
    };
    let shifted_range = match fault {
        Some((Fault::WrongContentRange, _)) => response
            .header("content-range")
            .and_then(shifted_content_range),
        _ => None,
    };
    let head = match shifted_range {
        Some(shifted) => response.forwarded_with(
            response.start_line,
            &["content-range"],
            &[format!("Content-Range: {shifted}")],
        ),
        None => response.with_connection_close(),
    };
    shared.record_status(forwarding.index, response.status());
    client
        .write_all(&head)
        .map_err(io_error("sending the response head to the client"))?;
    // No body follows, whatever the head says; the upstream need not be waited for.
    if forwarding.is_head || matches!(response.status(), 204 | 304) {
        return Ok(());
    }

    let plan = match fault {
        None | Some((Fault::WrongContentRange | Fault::IgnoreRange | Fault::Status { .. }, _)) => {
            BodyPlan::Pass
        }
        Some((Fault::FlipByte { offset }, _)) => BodyPlan::Flip { offset },
        Some((Fault::CutAfter { bytes }, _)) => BodyPlan::Cut { bytes },
        Some((Fault::Throttle { bytes_per_sec }, _)) => BodyPlan::Throttle { bytes_per_sec },
        Some((
            Fault::ThrottledCut {
                bytes_per_sec,
                cut_after,
            },
            _,
        )) => BodyPlan::ThrottledCut {
            bytes_per_sec,
            bytes: cut_after,
        },
        Some((Fault::Stall { after, pause }, _)) => BodyPlan::Stall { after, pause },
        Some((Fault::CutAtRandom { seed }, number)) => {
            // applies_to_response saw a Content-Length of at least 2
            match response
                .content_length()
                .and_then(|length| Fault::random_cut(seed, number, length))
            {
                Some(bytes) => BodyPlan::Cut { bytes },
                None => BodyPlan::Pass,
            }
        }
    };
    let mut body = io::Cursor::new(response_rest).chain(upstream);
    forward_body(&mut body, client, plan, shared, forwarding.index)
}

/// `bytes A-B/T` with A one higher, or `None` if `value` does not have that form.
fn shifted_content_range(value: &str) -> Option<String> {
    let (start, rest) = value.trim().strip_prefix("bytes ")?.split_once('-')?;
    let start = start.trim().parse::<u64>().ok()?.checked_add(1)?;
    let (end, total) = rest.split_once('/')?;
    end.trim().parse::<u64>().ok()?;
    Some(format!("bytes {start}-{end}/{total}"))
}

/// What [`forward_body`] does to one body: a body fault, resolved against its response.
#[derive(Debug, Clone, Copy)]
enum BodyPlan {
    Pass,
    Flip { offset: u64 },
    Cut { bytes: u64 },
    Stall { after: u64, pause: Duration },
    Throttle { bytes_per_sec: u64 },
    ThrottledCut { bytes_per_sec: u64, bytes: u64 },
}

impl BodyPlan {
    /// The rate limit, if the plan has one.
    fn rate(self) -> Option<u64> {
        match self {
            BodyPlan::Throttle { bytes_per_sec } | BodyPlan::ThrottledCut { bytes_per_sec, .. } => {
                Some(bytes_per_sec)
            }
            _ => None,
        }
    }
}

/// Copies a body until the upstream closes, applying `plan`, counting the bytes in log entry
/// `index` before they go to the client.
fn forward_body(
    body: &mut impl Read,
    client: &mut TcpStream,
    plan: BodyPlan,
    shared: &Shared,
    index: usize,
) -> Result<(), ProxyError> {
    let started = Instant::now();
    let mut sent: u64 = 0;
    let mut buffer = vec![0u8; CHUNK_BYTES];
    loop {
        // A throttled write is a slice of a second's worth, so the rate is smooth.
        let slice = plan.rate().map_or(CHUNK_BYTES, |bytes_per_sec| {
            // bytes_per_sec * slice is small and positive: truncation is the intent
            ((bytes_per_sec as f64 * THROTTLE_SLICE_SECS) as usize).clamp(1, CHUNK_BYTES)
        });
        let want = match plan {
            BodyPlan::Cut { bytes: limit }
            | BodyPlan::Stall { after: limit, .. }
            | BodyPlan::ThrottledCut { bytes: limit, .. } => {
                let left = limit.saturating_sub(sent);
                if left == 0 {
                    if let BodyPlan::Stall { pause, .. } = plan {
                        // The connection stays open and silent; the caller closes it after.
                        shared.pause(pause);
                    }
                    return Ok(()); // the caller closes the connection mid-body
                }
                usize::try_from(left).map_or(slice, |left| left.min(slice))
            }
            BodyPlan::Throttle { .. } | BodyPlan::Pass | BodyPlan::Flip { .. } => slice,
        };
        let Some(chunk) = buffer.get_mut(..want) else {
            return Ok(()); // `want` never exceeds the buffer
        };
        let read = body
            .read(chunk)
            .map_err(io_error("reading the response body"))?;
        if read == 0 {
            return Ok(());
        }
        let Some(chunk) = chunk.get_mut(..read) else {
            return Ok(());
        };
        if let BodyPlan::Flip { offset } = plan {
            if let Some(byte) = offset
                .checked_sub(sent)
                .and_then(|at| usize::try_from(at).ok())
                .and_then(|at| chunk.get_mut(at))
            {
                *byte ^= 0xFF;
            }
        }
        shared.record_body(index, read as u64);
        client
            .write_all(chunk)
            .map_err(io_error("sending the response body to the client"))?;
        sent += read as u64;
        if let Some(bytes_per_sec) = plan.rate() {
            let due = Duration::from_secs_f64(sent as f64 / bytes_per_sec.max(1) as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                thread::sleep(wait);
            }
        }
    }
}

/// A head (up to and including its blank line) and the bytes that arrived after it.
type HeadAndRest = (Vec<u8>, Vec<u8>);

/// Reads up to the blank line ending a head; `None` if the peer closed before sending anything.
fn read_head(stream: &mut TcpStream, side: Side) -> Result<Option<HeadAndRest>, ProxyError> {
    let mut bytes = Vec::with_capacity(1024);
    let mut buffer = [0u8; 4096];
    loop {
        let read = stream
            .read(&mut buffer)
            .map_err(io_error("reading a head"))?;
        if read == 0 {
            if bytes.is_empty() {
                return Ok(None);
            }
            return Err(ProxyError::TruncatedHead { side });
        }
        bytes.extend_from_slice(buffer.get(..read).unwrap_or_default());
        // A head starts with a method or "HTTP/". Anything else (a TLS ClientHello from a
        // client probing for HTTPS, as skopeo does) never ends in a blank line: refuse it now
        // so the client falls back to plain HTTP instead of waiting out its handshake timeout.
        if !bytes.first().is_some_and(u8::is_ascii_alphabetic) {
            return Err(ProxyError::MalformedHead {
                side,
                first_line: String::from_utf8_lossy(bytes.get(..16).unwrap_or(&bytes)).into_owned(),
            });
        }
        if let Some(end) = bytes.windows(4).position(|window| window == b"\r\n\r\n") {
            let rest = bytes.split_off(end + 4);
            return Ok(Some((bytes, rest)));
        }
        if bytes.len() > MAX_HEAD_BYTES {
            return Err(ProxyError::HeadTooLarge { side });
        }
    }
}

/// A parsed request or response head: the start line and the header lines as received.
struct Head<'a> {
    start_line: &'a str,
    header_lines: Vec<&'a str>,
}

/// Hop-by-hop headers about connection reuse; the proxy replaces them with `Connection: close`.
const CONNECTION_HEADERS: [&str; 3] = ["connection", "keep-alive", "proxy-connection"];

impl<'a> Head<'a> {
    fn parse(bytes: &'a [u8], side: Side) -> Result<Head<'a>, ProxyError> {
        let text = std::str::from_utf8(bytes).map_err(|_| ProxyError::MalformedHead {
            side,
            first_line: String::from_utf8_lossy(
                bytes.split(|&b| b == b'\n').next().unwrap_or_default(),
            )
            .into_owned(),
        })?;
        let mut lines = text.split("\r\n").filter(|line| !line.is_empty());
        let start_line = lines.next().unwrap_or_default();
        let is_http = match side {
            Side::Client => start_line.ends_with(" HTTP/1.1") || start_line.ends_with(" HTTP/1.0"),
            Side::Upstream => start_line.starts_with("HTTP/1."),
        };
        if !is_http {
            return Err(ProxyError::MalformedHead {
                side,
                first_line: start_line.to_owned(),
            });
        }
        Ok(Head {
            start_line,
            header_lines: lines.collect(),
        })
    }

    /// The head to forward: connection headers replaced by `Connection: close`.
    fn with_connection_close(&self) -> Vec<u8> {
        self.forwarded_with(self.start_line, &[], &[])
    }

    /// A request head to forward as HTTP/1.0, which no server answers with a chunked body.
    fn as_http10_with_connection_close(&self) -> Vec<u8> {
        match self.start_line.rsplit_once(' ') {
            Some((method_and_target, _version)) => {
                self.forwarded_with(&format!("{method_and_target} HTTP/1.0"), &[], &[])
            }
            None => self.with_connection_close(),
        }
    }

    /// The head to forward with `start_line`, without connection headers and the headers named
    /// in `drop` (lower case), with `add` (whole header lines) and `Connection: close` at the end.
    fn forwarded_with(&self, start_line: &str, drop: &[&str], add: &[String]) -> Vec<u8> {
        let mut out = String::with_capacity(512);
        out.push_str(start_line);
        out.push_str("\r\n");
        for line in &self.header_lines {
            let name = header_name(line);
            let dropped = CONNECTION_HEADERS.iter().chain(drop);
            if !dropped
                .into_iter()
                .any(|header| header.eq_ignore_ascii_case(name))
            {
                out.push_str(line);
                out.push_str("\r\n");
            }
        }
        for line in add {
            out.push_str(line);
            out.push_str("\r\n");
        }
        out.push_str("Connection: close\r\n\r\n");
        out.into_bytes()
    }

    /// A request's method (empty for a response).
    fn method(&self) -> &'a str {
        match self.start_line.split_once(' ') {
            Some((method, _)) if !method.starts_with("HTTP/") => method,
            _ => "",
        }
    }

    /// A request's path, query left out.
    fn path(&self) -> Option<&'a str> {
        self.start_line.split(' ').nth(1)?.split('?').next()
    }

    /// For `GET /v2/<repo>/blobs/<digest>[?query]`: the digest.
    fn blob_get_digest(&self) -> Option<&'a str> {
        if self.method() != "GET" {
            return None;
        }
        blob_digest_of(self.path()?)
    }

    /// A response's status code; 0 if it has none that parses.
    fn status(&self) -> u16 {
        self.start_line
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or(0)
    }

    /// The value of the first header named `name` (any case), trimmed.
    fn header(&self, name: &str) -> Option<&'a str> {
        self.header_lines.iter().find_map(|line| {
            let (line_name, value) = line.split_once(':')?;
            line_name
                .trim()
                .eq_ignore_ascii_case(name)
                .then_some(value.trim())
        })
    }

    fn content_length(&self) -> Option<u64> {
        self.header("content-length")?.parse().ok()
    }

    /// A `200` or `206` response: the ones whose body is blob content.
    fn is_success_with_body(&self) -> bool {
        matches!(self.status(), 200 | 206)
    }
}

/// A header line's name.
fn header_name(line: &str) -> &str {
    line.split(':').next().unwrap_or_default().trim()
}

/// For a path `/v2/<repo>/blobs/<digest>`: the digest (an upload's path has none).
fn blob_digest_of(path: &str) -> Option<&str> {
    let (repo, digest) = path.strip_prefix("/v2/")?.rsplit_once("/blobs/")?;
    let is_digest = digest.contains(':') && !digest.contains('/');
    (!repo.is_empty() && is_digest).then_some(digest)
}
