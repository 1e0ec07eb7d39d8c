//! A fault-injecting HTTP/1.1 proxy for loopback registries and notary servers.
//!
//! It forwards every request to one plain-HTTP upstream (`host:port`). Every connection carries
//! exactly one exchange: the proxy forces `Connection: close` on the request and on the
//! response, so a body simply ends when the upstream closes and nothing has to be re-framed.
//!
//! Two kinds of fault, set independently:
//!
//! - Blob faults ([`Proxy::set_fault`], [`BlobFault`]): for responses to
//!   `GET /v2/<repo>/blobs/<digest>` only, flip one body byte, cut the body short, or throttle
//!   it. Offsets count body bytes as they travel on the wire. The registry serves blobs with
//!   `Content-Length` (not chunked), so they are blob bytes (for a `206` response: bytes of the
//!   requested range). Blobs the registry redirects elsewhere (`307`) are not faulted: their
//!   bodies come from the redirect target, not through the proxy.
//! - Path faults ([`Proxy::set_path_faults`], [`PathFault`]): for any `GET` whose path (query
//!   left out) matches a [`PathMatch`] — a suffix such as `/manifests/v1`, or a TUF role's
//!   metadata under `/_trust/tuf/` by plain or consistent (checksum) name — flip a body byte of
//!   the upstream's `200`/`206` response, answer `200` with canned bytes without asking the
//!   upstream (replay old metadata, serve metadata a test made), answer a bare status (`404`,
//!   `503`), or close the connection without answering (server unreachable). A flipped request
//!   goes upstream as HTTP/1.0 so the body is never chunked (notary-server chunks metadata over
//!   2 KiB) and the offset counts body bytes. A path fault takes precedence over a blob fault.
//!
//! The upstream must speak plain HTTP (the proxy reads the requests).
//!
//! The `throttle_proxy` example (concil's benchmarks) uses it too, so a benchmark's slow link
//! and a test's are the same code.

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

/// What to do to a blob response body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Invert every bit of the body byte at `offset`; all other bytes pass unchanged.
    FlipByte { offset: u64 },
    /// Forward the first `bytes` body bytes, then close the connection.
    CutAfter { bytes: u64 },
    /// Forward the body at no more than `bytes_per_sec` (per response).
    Throttle { bytes_per_sec: u64 },
}

/// A fault and the blob responses it applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobFault {
    pub fault: Fault,
    /// Only responses for this digest (`sha256:…`); `None`: every blob.
    pub digest: Option<String>,
    /// Only this many responses, later ones pass unchanged; `None`: all of them.
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

/// Which `GET` requests a [`PathFault`] applies to, by path (the query is left out).
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

/// What to do to a request a [`PathMatch`] selected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathAction {
    /// Invert every bit of body byte `offset` of the upstream's `200`/`206` response; other
    /// responses pass unchanged and do not use up the fault.
    FlipByte { offset: u64 },
    /// Answer `200` with this body (and its `Content-Length`); the upstream is not asked.
    Replace { body: Vec<u8> },
    /// Answer this status with an empty body; the upstream is not asked.
    Status { code: u16 },
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

/// A running proxy; stops accepting when dropped.
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

/// State shared between the acceptor, the connection threads and the owner.
struct Shared {
    upstream: SocketAddr,
    plan: Mutex<Option<BlobFault>>,
    path_plan: Mutex<Vec<PathFault>>,
    stopping: AtomicBool,
    blob_responses: AtomicU64,
    faulted_responses: AtomicU64,
    path_faulted_responses: AtomicU64,
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
            plan: Mutex::new(None),
            path_plan: Mutex::new(Vec::new()),
            stopping: AtomicBool::new(false),
            blob_responses: AtomicU64::new(0),
            faulted_responses: AtomicU64::new(0),
            path_faulted_responses: AtomicU64::new(0),
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

    /// Replaces the fault plan for responses that start from now on (`None`: pass through).
    pub fn set_fault(&self, plan: Option<BlobFault>) {
        *self
            .shared
            .plan
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = plan;
    }

    /// How many successful (`200`/`206`) blob GET responses have started so far.
    pub fn blob_responses(&self) -> u64 {
        self.shared.blob_responses.load(Ordering::SeqCst)
    }

    /// How many of those had a fault applied.
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
}

impl Drop for Proxy {
    fn drop(&mut self) {
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
    /// The fault for one blob response, consuming one use of a counted plan.
    fn take_fault(&self, digest: &str) -> Option<Fault> {
        let mut plan = self.plan.lock().unwrap_or_else(PoisonError::into_inner);
        let current = plan.as_mut()?;
        if current.digest.as_deref().is_some_and(|only| only != digest) {
            return None;
        }
        match &mut current.times {
            Some(0) => return None,
            Some(left) => *left -= 1,
            None => {}
        }
        Some(current.fault)
    }

    /// The first path fault for `path` with uses left: its index and action. Uses nothing up.
    fn find_path_fault(&self, path: &str) -> Option<(usize, PathAction)> {
        let plan = self
            .path_plan
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        plan.iter()
            .enumerate()
            .find(|(_, fault)| fault.times != Some(0) && fault.path.matches(path))
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

/// Forwards one request and its response.
fn serve(mut client: TcpStream, shared: &Shared) -> Result<(), ProxyError> {
    let Some((request_head, request_rest)) = read_head(&mut client, Side::Client)? else {
        return Ok(()); // connected and closed without a request (e.g. the wake-up in Drop)
    };
    let request = Head::parse(&request_head, Side::Client)?;
    let path_fault = request
        .get_path()
        .and_then(|path| shared.find_path_fault(path));
    // A path fault replaces blob faults for its request.
    let blob_digest = match path_fault {
        Some(_) => None,
        None => request.blob_get_digest(),
    };
    let flip_offset = match path_fault {
        Some((index, PathAction::FlipByte { offset })) => Some((index, offset)),
        Some((index, action)) => {
            if shared.use_path_fault(index, &action) {
                return answer_without_upstream(&mut client, &action);
            }
            None
        }
        None => None,
    };
    let request_head = match flip_offset {
        Some(_) => request.as_http10_with_connection_close(),
        None => request.with_connection_close(),
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

    let result = forward_response(&mut upstream, &mut client, blob_digest, flip_offset, shared);
    let _ = client.shutdown(Shutdown::Both);
    let _ = upstream.shutdown(Shutdown::Both);
    let _ = request_pump.join();
    result
}

/// Carries out a path fault that needs no upstream response: answers, or closes without one.
fn answer_without_upstream(client: &mut TcpStream, action: &PathAction) -> Result<(), ProxyError> {
    let (code, body): (u16, &[u8]) = match action {
        PathAction::Replace { body } => (200, body),
        PathAction::Status { code } => (*code, &[]),
        PathAction::Drop | PathAction::FlipByte { .. } => {
            let _ = client.shutdown(Shutdown::Both);
            return Ok(());
        }
    };
    let head = format!(
        "HTTP/1.1 {code} Injected\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
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
    blob_digest: Option<&str>,
    flip_offset: Option<(usize, u64)>,
    shared: &Shared,
) -> Result<(), ProxyError> {
    let Some((response_head, response_rest)) = read_head(upstream, Side::Upstream)? else {
        return Err(ProxyError::TruncatedHead {
            side: Side::Upstream,
        });
    };
    let response = Head::parse(&response_head, Side::Upstream)?;
    client
        .write_all(&response.with_connection_close())
        .map_err(io_error("sending the response head to the client"))?;

    let fault = match blob_digest {
        Some(digest) if response.is_success_with_body() => {
            shared.blob_responses.fetch_add(1, Ordering::SeqCst);
            let fault = shared.take_fault(digest);
            if fault.is_some() {
                shared.faulted_responses.fetch_add(1, Ordering::SeqCst);
            }
            fault
        }
        _ => match flip_offset {
            Some((index, offset))
                if response.is_success_with_body()
                    && shared.use_path_fault(index, &PathAction::FlipByte { offset }) =>
            {
                Some(Fault::FlipByte { offset })
            }
            _ => None,
        },
    };
    let mut body = io::Cursor::new(response_rest).chain(upstream);
    forward_body(&mut body, client, fault)
}

/// Copies a body until the upstream closes, applying `fault`.
fn forward_body(
    body: &mut impl Read,
    client: &mut TcpStream,
    fault: Option<Fault>,
) -> Result<(), ProxyError> {
    let started = Instant::now();
    let mut sent: u64 = 0;
    let mut buffer = vec![0u8; CHUNK_BYTES];
    loop {
        let want = match fault {
            Some(Fault::CutAfter { bytes }) => {
                let left = bytes.saturating_sub(sent);
                if left == 0 {
                    return Ok(()); // the caller closes the connection mid-body
                }
                usize::try_from(left).map_or(CHUNK_BYTES, |left| left.min(CHUNK_BYTES))
            }
            Some(Fault::Throttle { bytes_per_sec }) => {
                // bytes_per_sec * slice is small and positive: truncation is the intent
                let slice = (bytes_per_sec as f64 * THROTTLE_SLICE_SECS) as usize;
                slice.clamp(1, CHUNK_BYTES)
            }
            _ => CHUNK_BYTES,
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
        if let Some(Fault::FlipByte { offset }) = fault {
            if let Some(byte) = offset
                .checked_sub(sent)
                .and_then(|at| usize::try_from(at).ok())
                .and_then(|at| chunk.get_mut(at))
            {
                *byte ^= 0xFF;
            }
        }
        client
            .write_all(chunk)
            .map_err(io_error("sending the response body to the client"))?;
        sent += read as u64;
        if let Some(Fault::Throttle { bytes_per_sec }) = fault {
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
        self.forwarded(self.start_line)
    }

    /// A request head to forward as HTTP/1.0, which no server answers with a chunked body.
    fn as_http10_with_connection_close(&self) -> Vec<u8> {
        match self.start_line.rsplit_once(' ') {
            Some((method_and_target, _version)) => {
                self.forwarded(&format!("{method_and_target} HTTP/1.0"))
            }
            None => self.with_connection_close(),
        }
    }

    fn forwarded(&self, start_line: &str) -> Vec<u8> {
        let mut out = String::with_capacity(512);
        out.push_str(start_line);
        out.push_str("\r\n");
        for line in &self.header_lines {
            let name = line.split(':').next().unwrap_or_default().trim();
            if !CONNECTION_HEADERS
                .iter()
                .any(|header| header.eq_ignore_ascii_case(name))
            {
                out.push_str(line);
                out.push_str("\r\n");
            }
        }
        out.push_str("Connection: close\r\n\r\n");
        out.into_bytes()
    }

    /// For `GET <path>[?query]`: the path.
    fn get_path(&self) -> Option<&'a str> {
        let mut parts = self.start_line.split(' ');
        if parts.next() != Some("GET") {
            return None;
        }
        parts.next()?.split('?').next()
    }

    /// For `GET /v2/<repo>/blobs/<digest>[?query]`: the digest.
    fn blob_get_digest(&self) -> Option<&'a str> {
        let (repo, digest) = self
            .get_path()?
            .strip_prefix("/v2/")?
            .rsplit_once("/blobs/")?;
        let is_digest = digest.contains(':') && !digest.contains('/');
        (!repo.is_empty() && is_digest).then_some(digest)
    }

    /// A `200` or `206` response: the ones whose body is blob content.
    fn is_success_with_body(&self) -> bool {
        matches!(self.start_line.split(' ').nth(1), Some("200" | "206"))
    }
}
