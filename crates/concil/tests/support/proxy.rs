//! A fault-injecting HTTP/1.1 proxy for loopback registries.
//!
//! It forwards every request to one plain-HTTP upstream (`host:port`) and, for responses to
//! `GET /v2/<repo>/blobs/<digest>` only, can flip one body byte, cut the body short, or
//! throttle it. Every connection carries exactly one exchange: the proxy forces
//! `Connection: close` on the request and on the response, so a body simply ends when the
//! upstream closes and nothing has to be re-framed.
//!
//! Fault offsets count body bytes as they travel on the wire. The registry serves blobs with
//! `Content-Length` (not chunked), so for blob responses they are blob bytes (for a `206`
//! response: bytes of the requested range). Blobs the registry redirects elsewhere (`307`) are
//! not faulted: their bodies come from the redirect target, not through the proxy. The upstream
//! must speak plain HTTP (the proxy reads the requests).
//!
//! This file is also the body of the `throttle_proxy` example (`#[path]`-included there), so the
//! benchmarks throttle exactly the way the tests do and the library crate carries no test code.

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
    stopping: AtomicBool,
    blob_responses: AtomicU64,
    faulted_responses: AtomicU64,
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
            stopping: AtomicBool::new(false),
            blob_responses: AtomicU64::new(0),
            faulted_responses: AtomicU64::new(0),
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
    let blob_digest = request.blob_get_digest();

    let mut upstream =
        TcpStream::connect(shared.upstream).map_err(|source| ProxyError::Connect {
            upstream: shared.upstream,
            source,
        })?;
    upstream
        .write_all(&request.with_connection_close())
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

    let result = forward_response(&mut upstream, &mut client, blob_digest, shared);
    let _ = client.shutdown(Shutdown::Both);
    let _ = upstream.shutdown(Shutdown::Both);
    let _ = request_pump.join();
    result
}

fn forward_response(
    upstream: &mut TcpStream,
    client: &mut TcpStream,
    blob_digest: Option<&str>,
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
        _ => None,
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
        let mut out = String::with_capacity(512);
        out.push_str(self.start_line);
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

    /// For `GET /v2/<repo>/blobs/<digest>[?query]`: the digest.
    fn blob_get_digest(&self) -> Option<&'a str> {
        let mut parts = self.start_line.split(' ');
        if parts.next() != Some("GET") {
            return None;
        }
        let target = parts.next()?;
        let path = target.split('?').next()?;
        let (repo, digest) = path.strip_prefix("/v2/")?.rsplit_once("/blobs/")?;
        let is_digest = digest.contains(':') && !digest.contains('/');
        (!repo.is_empty() && is_digest).then_some(digest)
    }

    /// A `200` or `206` response: the ones whose body is blob content.
    fn is_success_with_body(&self) -> bool {
        matches!(self.start_line.split(' ').nth(1), Some("200" | "206"))
    }
}
