//! The OCI Distribution API client: auth challenges, manifests and blobs.
//!
//! # Why a synchronous client on `ureq`
//! The pull pipeline is synchronous: each layer's HTTP body is a plain [`Read`] that a worker
//! thread feeds straight into the hashing, decompression and squashfs stages, with no async
//! runtime to bridge. `ureq` 3 gives exactly that (a blocking agent whose response bodies are
//! `Read + Send`), and leaves us full control over what goes on the wire: the `Accept` list for
//! manifests, the `WWW-Authenticate` challenge/response dance, which host ever sees an
//! `Authorization` header (redirects are followed here, not inside `ureq`), and that neither
//! errors nor logs carry credentials. Two `ureq` defaults are off on purpose (Cargo.toml):
//! its `gzip` feature (a body must reach the digest check exactly as served, never
//! transparently decoded) and, through the `log` crate's `max_level_debug`, the TRACE-level
//! hex dump of every byte `ureq-proto` sends (it would show `Authorization` headers; `ureq`'s
//! DEBUG logs redact them).
//!
//! # What a [`Client`] does
//! One client talks to one repository of one registry. It is cheap to clone and shared across
//! the threads that download layers in parallel; the endpoint it settled on and the bearer
//! token it holds are shared behind mutexes, so parallel downloads reuse one token.
//!
//! - Endpoint: HTTPS unless the base URL says `http://`. With `allow_http_fallback` (a
//!   loopback registry that the configuration does not name, as Docker allows), plain HTTP is
//!   tried once HTTPS fails to connect or to complete its handshake.
//! - Auth: `GET /v2/` tells which challenge the registry uses. `Bearer` → a token from the
//!   realm for `repository:<name>:pull` (anonymous, or with the credentials as basic auth),
//!   reused until 5 s before its `expires_in` (default 60 s) passes; `Basic` → the
//!   credentials themselves. A request answered 401 is retried once with a fresh token.
//!   The realm gets the credentials over HTTPS, or over plain HTTP only when the registry
//!   itself is plain HTTP on the realm's host (never a downgrade from HTTPS).
//! - Retries ([`NetworkSettings`]): connection failures, timeouts, 408 and 5xx are retried with
//!   exponential backoff and jitter, `retries` times; a 429 is waited out when its
//!   `Retry-After` is short, else it fails at once ([`RegistryError::RateLimited`]). Small
//!   bodies (manifests, configs, metadata) that break off are fetched again whole.
//! - Proxies: curl's variables, one proxy per URL scheme (`proxy` module).
//! - Manifests: fetched with the full `Accept` list, at most [`MAX_MANIFEST_SIZE`] bytes,
//!   digest-checked; schema 1 is refused. A tag can be resolved to its digest with `HEAD`
//!   ([`Client::manifest_digest`]), which registries do not count against pull limits.
//! - Blobs: streamed as they arrive ([`BlobReader`]); redirects to blob storage are followed
//!   without the registry's `Authorization` header. A body that breaks off (closed early,
//!   reset, silent for the idle timeout, slower than `min_rate`) is resumed where it broke
//!   with `Range: bytes=N-`, through the registry again (a signed storage URL may have
//!   expired), so the reader hands out each byte once.

pub(crate) mod auth;
pub(crate) mod body;
mod error;
mod proxy;
mod retry;
pub(crate) mod transport;

use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use url::Url;

pub use error::{ErrorDetail, RegistryError};
pub use oci_spec::image::{Descriptor, ImageIndex, ImageManifest, MediaType};
pub use retry::{NetworkSettings, PROGRESS_THAT_RESETS};

use crate::config::{Credentials, IDENTITY_TOKEN_USER};
use crate::digest::Digest;
use crate::reference;
use auth::{AuthHeader, CachedToken, Challenge};
use body::{HttpResponse, WatchedBody};
use retry::Backoff;
use transport::{
    error_details, host_port, malformed, redact, Fetched, Method, RequestOptions, Transport,
};

/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST_V2: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list (multi-platform), schema 2.
pub const DOCKER_MANIFEST_LIST_V2: &str =
    "application/vnd.docker.distribution.manifest.list.v2+json";
/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// The manifest media types a [`Client`] asks for and accepts.
pub const ACCEPTED_MANIFEST_TYPES: [&str; 4] = [
    OCI_INDEX,
    OCI_MANIFEST,
    DOCKER_MANIFEST_LIST_V2,
    DOCKER_MANIFEST_V2,
];

/// Docker schema 1 media types, recognised only to refuse them clearly.
const DOCKER_SCHEMA1_TYPES: [&str; 2] = [
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
];

/// The largest manifest body [`Client::manifest`] reads (containerd's limit too).
pub const MAX_MANIFEST_SIZE: u64 = 4 * 1024 * 1024;
/// Image configs are small JSON documents; anything bigger is refused rather than read.
pub const MAX_CONFIG_SIZE: u64 = 16 * 1024 * 1024;

/// The media type of a manifest body read without a `Content-Type` (from the cache or an
/// image file): the one its body declares, else (an OCI document may
/// leave `mediaType` out, as umoci's do) an OCI index when it lists `manifests`, an OCI image
/// manifest when it has a `config`.
pub fn media_type_of(bytes: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Head {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
        manifests: Option<serde::de::IgnoredAny>,
        config: Option<serde::de::IgnoredAny>,
    }
    let head = serde_json::from_slice::<Head>(bytes).ok()?;
    match head {
        Head {
            media_type: Some(media_type),
            ..
        } => Some(media_type),
        Head {
            manifests: Some(_),
            config: None,
            ..
        } => Some(OCI_INDEX.to_owned()),
        Head {
            config: Some(_),
            manifests: None,
            ..
        } => Some(OCI_MANIFEST.to_owned()),
        _ => None,
    }
}

/// How to verify a registry's TLS certificate, and which certificate to show it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct TlsSettings {
    /// PEM file with extra CA certificates (config's `cafile`), trusted in addition to the
    /// usual web roots, so a registry with a private CA works.
    pub ca_file: Option<PathBuf>,
    /// More CA files for one registry (`remote_servers.<host>.cafile`, `certs.d/*.crt`).
    pub extra_ca_files: Vec<PathBuf>,
    /// A client certificate for registries that ask for one (mutual TLS).
    pub client_cert: Option<ClientCertFiles>,
}

/// A client certificate (PEM, the chain) and its private key (PEM), as files.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientCertFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key.
    pub key: PathBuf,
}

/// A client for one repository of one registry. Clones share the connection pool, the
/// endpoint and the token.
#[derive(Clone)]
pub struct Client {
    /// The registry itself.
    inner: Arc<Inner>,
    /// Mirrors tried in order before the registry ([`Client::with_mirrors`]).
    mirrors: Arc<[Inner]>,
}

struct Inner {
    transport: Arc<Transport>,
    /// `scheme://host[:port]/` as configured.
    configured_base: Url,
    /// `host[:port]`, for messages.
    registry: String,
    repository: String,
    credentials: Option<Credentials>,
    allow_http_fallback: bool,
    /// Settled by the first request (`GET /v2/`); held while it is settled, so parallel first
    /// requests wait for one ping instead of each making its own.
    session: Mutex<Option<Session>>,
    /// Held while a token is fetched, so parallel requests share one token request.
    token: Mutex<Option<CachedToken>>,
    /// A mirror that could not be reached (after the retries) is not asked again.
    unreachable: std::sync::atomic::AtomicBool,
}

/// What the ping found out: where the registry answers and how it wants to be authenticated.
#[derive(Debug, Clone)]
struct Session {
    base: Url,
    challenge: Challenge,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.inner.configured_base.as_str())
            .field("repository", &self.inner.repository)
            .field("has_credentials", &self.inner.credentials.is_some())
            .finish_non_exhaustive()
    }
}

/// A manifest (or index) exactly as the registry served it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The body, byte for byte (what the digest is computed over and what the cache stores).
    pub bytes: Vec<u8>,
    /// One of [`ACCEPTED_MANIFEST_TYPES`]: the body's `mediaType`, else the `Content-Type`.
    pub media_type: String,
    /// The digest of `bytes`.
    pub digest: Digest,
}

/// A manifest parsed into oci-spec's types. Docker schema 2 manifests and manifest lists have
/// the same shape as OCI manifests and indexes (only the media types differ, which oci-spec
/// keeps as [`MediaType::Other`]), so both parse into the OCI structs.
// One value per pull, moved out right away: boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParsedManifest {
    /// An image manifest: a config and layers.
    Image(ImageManifest),
    /// An index or manifest list: one manifest per platform.
    Index(ImageIndex),
}

impl Manifest {
    /// Parses the bytes by their media type.
    pub fn parse(&self) -> Result<ParsedManifest, RegistryError> {
        let invalid = |reason: String| RegistryError::InvalidManifest {
            digest: self.digest.clone(),
            reason,
        };
        match self.media_type.as_str() {
            OCI_MANIFEST | DOCKER_MANIFEST_V2 => parse_json::<ImageManifest>(&self.bytes)
                .map(ParsedManifest::Image)
                .map_err(invalid),
            OCI_INDEX | DOCKER_MANIFEST_LIST_V2 => parse_json::<ImageIndex>(&self.bytes)
                .map(ParsedManifest::Index)
                .map_err(invalid),
            other => Err(invalid(format!("unsupported media type {other:?}"))),
        }
    }
}

/// Parses a JSON document, saying which field failed (`layers[1].size: invalid type: …`)
/// rather than only where in the text.
pub fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        match path.as_str() {
            "." => error.inner().to_string(),
            _ => format!("{path}: {}", error.into_inner()),
        }
    })
}

/// A blob body being downloaded. Reads the bytes as the registry (or the blob storage it
/// redirected to) sends them, each byte once: when the body breaks off before its
/// `Content-Length` (closed, reset, silent for the idle timeout, or slower than `min_rate`),
/// it asks for the rest (`Range: bytes=N-`) and goes on from there. Accepted answers: `206`
/// whose `Content-Range` starts at N with the same total, or `200` (a server that ignores
/// ranges), read past its first N bytes. Anything else ends the read with an error and
/// [`BlobReader::must_restart`] says so. The caller checks the digest and the size.
pub struct BlobReader {
    client: Client,
    digest: Digest,
    body: Option<WatchedBody>,
    /// Bytes of `body` to read past before handing any out (a `200` answer to a resume).
    discard: u64,
    /// The server answered a resume with the whole blob: every break costs what came before
    /// it again, so progress no longer renews the budget (else a server breaking a little
    /// past each resume point would cost the square of the blob's size).
    ignores_ranges: bool,
    /// The size the first answer announced (`Content-Length`): without it, no resume.
    total: Option<u64>,
    /// Bytes handed out so far.
    offset: u64,
    /// Bytes handed out since the last (re)connection.
    attempt_bytes: u64,
    /// Breaks that used up the budget (see [`PROGRESS_THAT_RESETS`]).
    retries_used: u32,
    backoff: Backoff,
    must_restart: bool,
    /// Why the reader gave up, repeated to any later read (a consumer draining the rest).
    gave_up: Option<(io::ErrorKind, String)>,
    url: String,
    source: String,
    /// Whether a mirror served any of the bytes (the first, or those after a break).
    mirror_served: bool,
    on_retry: Option<Box<dyn Fn(u32, u32) + Send>>,
}

impl BlobReader {
    /// The `Content-Length` the server announced, if it did.
    pub fn content_length(&self) -> Option<u64> {
        self.total
    }

    /// The URL the body comes from (after redirects), without query string or credentials.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The base URL of the endpoint (a mirror or the registry) that served the first bytes.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether a mirror served any of the bytes: when they do not check out, the registry
    /// itself may still have the right ones ([`Client::without_mirrors`]).
    pub fn served_by_mirror(&self) -> bool {
        self.mirror_served
    }

    /// Calls `notify(retry, budget)` before each retry of a broken body (for progress bars).
    pub fn on_retry(mut self, notify: Box<dyn Fn(u32, u32) + Send>) -> BlobReader {
        self.on_retry = Some(notify);
        self
    }

    /// Whether the read failed because the server would not serve the rest of the blob: the
    /// bytes read so far must be thrown away and the blob fetched again from its start.
    pub fn must_restart(&self) -> bool {
        self.must_restart
    }

    /// Reconnects for the rest of the body after `broken`, or says why not. A reconnection
    /// that fails the way a network fails (no connection, a body that breaks before the
    /// resume point, a failing server) is one more break.
    fn resume(&mut self, mut broken: io::Error) -> io::Result<()> {
        self.body = None;
        let Some(total) = self.total else {
            return Err(broken);
        };
        let budget = self.client.inner.transport.network().retries;
        loop {
            // A link that broke after bringing data works: reconnect at once, budget renewed.
            // Only breaks without progress wait, longer each time.
            let made_progress = self.attempt_bytes >= PROGRESS_THAT_RESETS && !self.ignores_ranges;
            if made_progress {
                self.retries_used = 0;
                self.backoff.reset();
            }
            self.attempt_bytes = 0;
            if self.retries_used >= budget {
                return Err(io::Error::new(
                    broken.kind(),
                    format!(
                        "broke off at byte {} of {total}, {budget} retries without progress: {}",
                        self.offset,
                        with_causes(&broken)
                    ),
                ));
            }
            self.retries_used += 1;
            tracing::info!(
                blob = %self.digest, offset = self.offset, total, retry = self.retries_used, budget,
                "download broke off ({}); resuming", with_causes(&broken)
            );
            if let Some(notify) = &self.on_retry {
                notify(self.retries_used, budget);
            }
            if !made_progress {
                std::thread::sleep(self.backoff.next_wait(Duration::ZERO));
            }
            match self
                .client
                .open_blob(&self.digest, self.offset, Some(total))
            {
                Ok(opened) => {
                    self.mirror_served |= opened.from_mirror;
                    self.url = opened.url;
                    self.body = Some(opened.body);
                    self.discard = opened.discard;
                    self.ignores_ranges |= opened.discard > 0;
                    return Ok(());
                }
                Err(error @ RegistryError::RangeRefused { .. }) => {
                    self.must_restart = true;
                    return Err(io::Error::other(error));
                }
                Err(error) if error.is_transient() => broken = io::Error::other(error),
                Err(error) => return Err(io::Error::other(error)),
            }
        }
    }

    /// One read from the current body: bytes for the caller, or what broke it.
    fn read_body(&mut self, buf: &mut [u8]) -> Result<usize, io::Error> {
        let Some(body) = self.body.as_mut() else {
            return Err(io::Error::new(io::ErrorKind::NotConnected, "no connection"));
        };
        while self.discard > 0 {
            let want = usize::try_from(self.discard).map_or(buf.len(), |d| d.min(buf.len()));
            match body.read(&mut buf[..want])? {
                0 => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the whole blob sent again ended before the resume point",
                    ))
                }
                n => self.discard -= n as u64,
            }
        }
        match body.read(buf)? {
            0 => match self.total {
                Some(total) if self.offset < total => Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("ended after {} of {total} bytes", self.offset),
                )),
                _ => Ok(0),
            },
            n => {
                self.offset += n as u64;
                self.attempt_bytes += n as u64;
                Ok(n)
            }
        }
    }
}

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if let Some((kind, reason)) = &self.gave_up {
            return Err(io::Error::new(*kind, reason.clone()));
        }
        loop {
            let broken = match self.read_body(buf) {
                Ok(n) => return Ok(n),
                Err(broken) => broken,
            };
            if let Err(error) = self.resume(broken) {
                self.gave_up = Some((error.kind(), with_causes(&error)));
                return Err(error);
            }
        }
    }
}

impl std::fmt::Debug for BlobReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobReader")
            .field("url", &self.url)
            .field("total", &self.total)
            .field("offset", &self.offset)
            .finish_non_exhaustive()
    }
}

/// An error and its causes on one line.
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}

/// A blob body as one request answered it.
struct OpenedBlob {
    body: WatchedBody,
    /// Bytes at its start that the reader already has (a `200` answer to a resume).
    discard: u64,
    /// Its `Content-Length` (of the whole blob for a `200`, of the rest for a `206`).
    length: Option<u64>,
    url: String,
    /// The base URL of the endpoint (mirror or registry) that answered.
    source: String,
    /// Whether that endpoint is a mirror.
    from_mirror: bool,
}

/// A transport made for registries with these TLS settings.
type TlsPool = (TlsSettings, Arc<Transport>);

/// A pool of connections (and the TLS settings they are made with), shared by the clients of
/// every registry and repository a long-lived store talks to. Cheap to clone.
#[derive(Clone)]
pub struct Connections {
    transport: Arc<Transport>,
    /// The pools for registries with TLS settings of their own, shared by all clones.
    others: Arc<Mutex<Vec<TlsPool>>>,
    tls: TlsSettings,
    network: NetworkSettings,
}

impl Connections {
    /// A new, empty pool. Reads `tls.ca_file` and the proxy variables (`HTTPS_PROXY`, …) now.
    pub fn new(tls: &TlsSettings, network: &NetworkSettings) -> Result<Connections, RegistryError> {
        Ok(Connections {
            transport: Arc::new(Transport::new(tls, network)?),
            others: Arc::new(Mutex::new(Vec::new())),
            tls: tls.clone(),
            network: network.clone(),
        })
    }

    /// The pool for registries with these TLS settings (CA files, a client certificate of
    /// their own): this one when they are its own, else one made once and then shared.
    pub fn with_tls(&self, tls: &TlsSettings) -> Result<Connections, RegistryError> {
        if *tls == self.tls {
            return Ok(self.clone());
        }
        let mut others = lock(&self.others);
        let transport = match others.iter().find(|(settings, _)| settings == tls) {
            Some((_, transport)) => Arc::clone(transport),
            None => {
                let transport = Arc::new(Transport::new(tls, &self.network)?);
                others.push((tls.clone(), Arc::clone(&transport)));
                transport
            }
        };
        Ok(Connections {
            transport,
            others: Arc::clone(&self.others),
            tls: tls.clone(),
            network: self.network.clone(),
        })
    }
}

impl std::fmt::Debug for Connections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connections").finish_non_exhaustive()
    }
}

impl Client {
    /// A client for `repository` (`library/alpine`) at `base_url` (scheme, host and port, from
    /// `Config::registry_url`; any path is ignored and user info in it is dropped: credentials
    /// come only from `credentials`), with a pool of its own. Reads `tls.ca_file` now; talks to
    /// the registry only on the first request.
    pub fn new(
        base_url: Url,
        repository: &str,
        credentials: Option<Credentials>,
        tls: &TlsSettings,
        allow_http_fallback: bool,
    ) -> Result<Client, RegistryError> {
        Client::with_connections(
            &Connections::new(tls, &NetworkSettings::default())?,
            base_url,
            repository,
            credentials,
            allow_http_fallback,
        )
    }

    /// As [`Client::new`], on a shared pool of connections.
    pub fn with_connections(
        connections: &Connections,
        base_url: Url,
        repository: &str,
        credentials: Option<Credentials>,
        allow_http_fallback: bool,
    ) -> Result<Client, RegistryError> {
        let configured_base = configured_base(base_url)?;
        check_repository(repository)?;
        Ok(Client::for_name(
            connections,
            configured_base,
            repository,
            credentials,
            allow_http_fallback,
        ))
    }

    /// A client for a Notary server at `base_url` serving the trust data of `gun`
    /// (`host[:port]/repository`, how Docker names a repository's trust collection). Notary
    /// speaks the registry's auth protocol (a pull token for `repository:<gun>:pull`), so
    /// everything but the name is as in [`Client::new`]; no plain-HTTP fallback.
    pub fn notary(
        base_url: Url,
        gun: &str,
        credentials: Option<Credentials>,
        tls: &TlsSettings,
        network: &NetworkSettings,
    ) -> Result<Client, RegistryError> {
        let configured_base = configured_base(base_url)?;
        check_gun(gun)?;
        Ok(Client::for_name(
            &Connections::new(tls, network)?,
            configured_base,
            gun,
            credentials,
            false,
        ))
    }

    fn for_name(
        connections: &Connections,
        configured_base: Url,
        name: &str,
        credentials: Option<Credentials>,
        allow_http_fallback: bool,
    ) -> Client {
        Client {
            inner: Arc::new(Inner::new(
                connections,
                configured_base,
                name,
                credentials,
                allow_http_fallback,
            )),
            mirrors: Arc::new([]),
        }
    }

    /// This client with `mirrors` (base URLs, each with the credentials for its host) tried in
    /// order before the registry, for every request: the next one is asked when a mirror
    /// cannot be reached, times out, answers 404, 408, 429 or 5xx, refuses access, or serves
    /// anything that does not check out. Nothing a mirror serves is trusted more than the
    /// registry's answer would be: the caller checks every digest, and signatures, as always.
    pub fn with_mirrors(
        self,
        connections: &Connections,
        mirrors: Vec<(Url, Option<Credentials>)>,
    ) -> Result<Client, RegistryError> {
        let mirrors = mirrors
            .into_iter()
            .map(|(url, credentials)| {
                Ok(Inner::new(
                    connections,
                    configured_base(url)?,
                    &self.inner.repository,
                    credentials,
                    false,
                ))
            })
            .collect::<Result<Vec<_>, RegistryError>>()?;
        Ok(Client {
            inner: self.inner,
            mirrors: mirrors.into(),
        })
    }

    /// This client without its mirrors: the registry alone, for a blob a mirror served wrong.
    pub fn without_mirrors(&self) -> Client {
        Client {
            inner: Arc::clone(&self.inner),
            mirrors: Arc::new([]),
        }
    }

    /// `operation` on each mirror in turn, then on the registry: the first success, else the
    /// registry's error. A mirror's failure is logged, never returned.
    fn on_endpoints<T>(
        &self,
        operation: impl Fn(&Inner) -> Result<T, RegistryError>,
    ) -> Result<T, RegistryError> {
        for mirror in self.mirrors.iter() {
            if mirror
                .unreachable
                .load(std::sync::atomic::Ordering::Relaxed)
            {
                continue;
            }
            match operation(mirror) {
                Ok(value) => return Ok(value),
                Err(error) => {
                    if matches!(
                        error,
                        RegistryError::Connection { .. } | RegistryError::Tls { .. }
                    ) {
                        // Retried already; no use waiting for it again on every request.
                        mirror
                            .unreachable
                            .store(true, std::sync::atomic::Ordering::Relaxed);
                    }
                    tracing::warn!(mirror = %mirror.registry, "mirror failed, trying the next source: {error}");
                }
            }
        }
        operation(&self.inner)
    }

    /// A request on each mirror in turn, then on the registry (as [`Client::on_endpoints`]);
    /// a mirror's 401, 403, 404, 408, 429 or 5xx answer counts as its failure.
    fn request_on_endpoints(
        &self,
        path: &str,
        options: RequestOptions<'_>,
    ) -> Result<Fetched, RegistryError> {
        self.on_endpoints(|endpoint| {
            let fetched = endpoint.request(path, options)?;
            let status = fetched.response.status().as_u16();
            let is_mirror = !std::ptr::eq(endpoint, &*self.inner);
            if is_mirror && matches!(status, 401 | 403 | 404 | 408 | 429 | 500..=599) {
                return Err(RegistryError::Status {
                    url: redact(&fetched.url),
                    status,
                    errors: Vec::new(),
                });
            }
            Ok(fetched)
        })
    }

    /// Checks `credentials` against the registry at `base_url` the way a pull would use them
    /// (`concil login`): the registry's challenge, then, for `Bearer`, a token from its realm
    /// (no repository asked for), for `Basic`, `GET /v2/` with them. A registry that asks for
    /// no authentication accepts any. [`RegistryError::Unauthorized`] when they are refused.
    pub fn check_login(
        connections: &Connections,
        base_url: Url,
        credentials: Credentials,
        allow_http_fallback: bool,
    ) -> Result<(), RegistryError> {
        let client = Client::for_name(
            connections,
            configured_base(base_url)?,
            "",
            Some(credentials),
            allow_http_fallback,
        );
        let endpoint = &client.inner;
        let session = endpoint.session()?;
        match &session.challenge {
            Challenge::None => Ok(()),
            Challenge::Bearer { realm, service } => endpoint
                .fetch_token(realm, service.as_deref(), &session.base)
                .map(drop),
            Challenge::Basic => {
                let url = session
                    .base
                    .join("v2/")
                    .map_err(|e| malformed(&session.base, e.to_string()))?;
                let authorization = endpoint.authorization(&session, None)?;
                let fetched = endpoint.transport.request(
                    &url,
                    RequestOptions {
                        authorization: authorization.as_ref(),
                        ..RequestOptions::default()
                    },
                    &session.base,
                )?;
                match fetched.response.status().as_u16() {
                    200 => Ok(()),
                    401 | 403 => Err(endpoint.unauthorized(fetched.response)),
                    status => Err(RegistryError::Status {
                        url: redact(&fetched.url),
                        status,
                        errors: error_details(fetched.response),
                    }),
                }
            }
        }
    }

    /// The repository this client reads.
    pub fn repository(&self) -> &str {
        &self.inner.repository
    }

    /// Fetches a manifest by tag or by `sha256:` digest with the full `Accept` list.
    ///
    /// By digest, the bytes must hash to it; by tag, they must hash to the registry's
    /// `Docker-Content-Digest` header when it sent one ([`RegistryError::DigestMismatch`]).
    /// Schema 1 and other media types are refused, and bodies over [`MAX_MANIFEST_SIZE`].
    pub fn manifest(&self, reference: &str) -> Result<Manifest, RegistryError> {
        let by_digest = if reference.contains(':') {
            Some(
                Digest::parse(reference).map_err(|error| RegistryError::InvalidDigest {
                    what: "manifest reference",
                    source: error,
                })?,
            )
        } else {
            check_tag(reference)?;
            None
        };
        self.on_endpoints(|endpoint| self.manifest_from(endpoint, reference, by_digest.as_ref()))
    }

    /// [`Client::manifest`] from one endpoint.
    fn manifest_from(
        &self,
        endpoint: &Inner,
        reference: &str,
        by_digest: Option<&Digest>,
    ) -> Result<Manifest, RegistryError> {
        let path = format!("v2/{}/manifests/{reference}", self.inner.repository);
        let accept = ACCEPTED_MANIFEST_TYPES.join(", ");
        let (bytes, url, announced_digest, content_type) = self.retrying_body(|| {
            let Fetched { response, url } = endpoint.get(&path, Some(&accept))?;
            let response = expect_ok(response, &url)?;
            let announced_digest = header(&response, "docker-content-digest");
            let content_type = header(&response, "content-type");
            let bytes = read_limited(response, &url, MAX_MANIFEST_SIZE)?;
            Ok((bytes, url, announced_digest, content_type))
        })?;
        let digest = Digest::of(&bytes);
        let expected = match by_digest {
            Some(asked) => Some(asked.clone()),
            None => announced_digest.and_then(|announced| match Digest::parse(&announced) {
                Ok(announced) => Some(announced),
                Err(_) => {
                    tracing::debug!(url = %redact(&url), %announced, "digest header not sha256: not compared");
                    None
                }
            }),
        };
        if let Some(expected) = expected.filter(|expected| *expected != digest) {
            return Err(RegistryError::DigestMismatch {
                url: redact(&url),
                expected,
                actual: digest,
            });
        }
        let media_type = manifest_media_type(&bytes, content_type.as_deref(), &url)?;
        Ok(Manifest {
            bytes,
            media_type,
            digest,
        })
    }

    /// The digest a tag points to, from `HEAD /v2/<name>/manifests/<tag>` and its
    /// `Docker-Content-Digest` header, without fetching the manifest (registries do not count
    /// a `HEAD` against pull limits). `None` when the registry does not say (no such header,
    /// not a sha256 digest, `HEAD` not supported, not found): the caller then fetches by tag.
    /// The digest is only the registry's word, good for finding the manifest in the cache
    /// (where a name is only ever the hash of its bytes), nothing more.
    pub fn manifest_digest(&self, tag: &str) -> Result<Option<Digest>, RegistryError> {
        check_tag(tag)?;
        let path = format!("v2/{}/manifests/{tag}", self.inner.repository);
        let accept = ACCEPTED_MANIFEST_TYPES.join(", ");
        let options = RequestOptions {
            method: Method::Head,
            accept: Some(&accept),
            ..RequestOptions::default()
        };
        let Fetched { response, url } = self.request_on_endpoints(&path, options)?;
        match response.status().as_u16() {
            200 => Ok(header(&response, "docker-content-digest")
                .and_then(|announced| Digest::parse(&announced).ok())),
            // A HEAD answer has no body to say what is missing: the GET will say it.
            status => {
                tracing::debug!(url = %redact(&url), status, "HEAD not answered; fetching by tag");
                Ok(None)
            }
        }
    }

    /// The OCI 1.1 referrers index of a manifest digest (`GET /v2/<name>/referrers/<digest>`),
    /// as served (digest of the bytes, not checked against anything); `None` when the
    /// registry answers 404, i.e. has no referrers API (the caller then reads the
    /// `sha256-<hex>` tag, the spec's fallback).
    pub fn referrers(&self, digest: &Digest) -> Result<Option<Manifest>, RegistryError> {
        let path = format!("v2/{}/referrers/{digest}", self.inner.repository);
        let fetched = self.retrying_body(|| {
            let options = RequestOptions {
                accept: Some(OCI_INDEX),
                ..RequestOptions::default()
            };
            let Fetched { response, url } = self.request_on_endpoints(&path, options)?;
            if response.status() == 404 {
                return Ok(None);
            }
            let response = expect_ok(response, &url)?;
            Ok(Some((
                read_limited(response, &url, MAX_MANIFEST_SIZE)?,
                url,
            )))
        })?;
        let Some((bytes, url)) = fetched else {
            return Ok(None);
        };
        let media_type = manifest_media_type(&bytes, Some(OCI_INDEX), &url)?;
        Ok(Some(Manifest {
            digest: Digest::of(&bytes),
            bytes,
            media_type,
        }))
    }

    /// A Notary (TUF) metadata file of this client's trust collection, as served:
    /// `GET /v2/<gun>/_trust/tuf/<name>.json` where `name` is a role (`root`, `timestamp`,
    /// `targets/releases`) optionally followed by `.<hex checksum>` (Notary's consistent
    /// names). `None` when the server answers 404. At most `max_size` bytes.
    pub fn trust_metadata(
        &self,
        name: &str,
        max_size: u64,
    ) -> Result<Option<Vec<u8>>, RegistryError> {
        check_metadata_name(name)?;
        let path = format!("v2/{}/_trust/tuf/{name}.json", self.inner.repository);
        self.retrying_body(|| {
            let Fetched { response, url } = self.inner.get(&path, Some("application/json"))?;
            if response.status() == 404 {
                return Ok(None);
            }
            let response = expect_ok(response, &url)?;
            read_limited(response, &url, max_size).map(Some)
        })
    }

    /// Starts downloading a blob (`sha256:<hex>`) and returns its body as a stream that
    /// resumes where it breaks off ([`BlobReader`]).
    /// The digest is NOT checked here: the caller hashes while it consumes the stream.
    pub fn blob(&self, digest: &Digest) -> Result<BlobReader, RegistryError> {
        let opened = self.open_blob(digest, 0, None)?;
        Ok(BlobReader {
            client: self.clone(),
            digest: digest.clone(),
            total: opened.length,
            body: Some(opened.body),
            discard: 0,
            ignores_ranges: false,
            offset: 0,
            attempt_bytes: 0,
            retries_used: 0,
            backoff: Backoff::new(),
            must_restart: false,
            gave_up: None,
            url: opened.url,
            source: opened.source,
            mirror_served: opened.from_mirror,
            on_retry: None,
        })
    }

    /// Downloads a small blob (an image config) of at most `max_size` bytes into memory and
    /// checks its digest.
    pub fn blob_bytes(&self, digest: &Digest, max_size: u64) -> Result<Vec<u8>, RegistryError> {
        self.on_endpoints(|endpoint| {
            let (bytes, url) = self.retrying_body(|| {
                let Fetched { response, url } = self.fetch_blob(endpoint, digest)?;
                Ok((read_limited(response, &url, max_size)?, url))
            })?;
            let actual = Digest::of(&bytes);
            if actual != *digest {
                return Err(RegistryError::DigestMismatch {
                    url: redact(&url),
                    expected: digest.clone(),
                    actual,
                });
            }
            Ok(bytes)
        })
    }
}

impl Client {
    /// `fetch` again whole while its body breaks off ([`RegistryError::BodyBroken`]), up to
    /// the retry budget.
    fn retrying_body<T>(
        &self,
        fetch: impl Fn() -> Result<T, RegistryError>,
    ) -> Result<T, RegistryError> {
        let mut backoff = Backoff::new();
        let mut retries = 0;
        loop {
            match fetch() {
                Err(error @ RegistryError::BodyBroken { .. })
                    if retries < self.inner.transport.network().retries =>
                {
                    retries += 1;
                    tracing::info!(%error, retries, "body broke off; fetching it again");
                    std::thread::sleep(backoff.next_wait(Duration::ZERO));
                }
                result => return result,
            }
        }
    }

    /// A blob's body from byte `offset` on (see [`BlobReader`] for what is accepted); `total`:
    /// the whole blob's size as the first answer gave it (`None` for that first request).
    fn open_blob(
        &self,
        digest: &Digest,
        offset: u64,
        total: Option<u64>,
    ) -> Result<OpenedBlob, RegistryError> {
        self.on_endpoints(|endpoint| self.open_blob_from(endpoint, digest, offset, total))
    }

    /// [`Client::open_blob`] from one endpoint.
    fn open_blob_from(
        &self,
        endpoint: &Inner,
        digest: &Digest,
        offset: u64,
        total: Option<u64>,
    ) -> Result<OpenedBlob, RegistryError> {
        let path = format!("v2/{}/blobs/{digest}", self.inner.repository);
        let options = RequestOptions {
            range_from: (offset > 0).then_some(offset),
            ..RequestOptions::default()
        };
        let Fetched { response, url } = endpoint.request(&path, options)?;
        let refused = |reason: String| RegistryError::RangeRefused {
            url: redact(&url),
            offset,
            reason,
        };
        let status = response.status().as_u16();
        let skip = match status {
            200 => offset,
            206 if offset > 0 => {
                let range = header(&response, "content-range").unwrap_or_default();
                match parse_content_range(&range) {
                    Some((start, whole))
                        if start == offset && whole.is_none_or(|w| Some(w) == total) =>
                    {
                        0
                    }
                    _ => return Err(refused(format!("206 with Content-Range {range:?}"))),
                }
            }
            _ if offset > 0 && status != 404 && status != 401 && status != 403 => {
                return Err(refused(format!("HTTP status {status}")))
            }
            _ => {
                let response = expect_ok(response, &url)?;
                return Err(malformed(
                    &url,
                    format!("unexpected status {}", response.status()),
                ));
            }
        };
        let body = response.into_body();
        let length = body.content_length();
        if skip > 0 {
            if length.is_some_and(|length| length != total.unwrap_or(length)) {
                return Err(refused(format!("200 with another length ({length:?})")));
            }
            tracing::debug!(url = %redact(&url), skip, "server ignored the range; reading past what we have");
        }
        Ok(OpenedBlob {
            body,
            discard: skip,
            length,
            url: redact(&url),
            source: endpoint.configured_base.to_string(),
            from_mirror: !std::ptr::eq(endpoint, &*self.inner),
        })
    }

    /// `GET` a blob from `endpoint`; only a 200 response comes back.
    fn fetch_blob(&self, endpoint: &Inner, digest: &Digest) -> Result<Fetched, RegistryError> {
        let path = format!("v2/{}/blobs/{digest}", self.inner.repository);
        let Fetched { response, url } = endpoint.get(&path, None)?;
        let response = expect_ok(response, &url)?;
        Ok(Fetched { response, url })
    }
}

impl Inner {
    fn new(
        connections: &Connections,
        configured_base: Url,
        name: &str,
        credentials: Option<Credentials>,
        allow_http_fallback: bool,
    ) -> Inner {
        Inner {
            transport: Arc::clone(&connections.transport),
            registry: host_port(&configured_base),
            configured_base,
            repository: name.to_owned(),
            credentials,
            allow_http_fallback,
            session: Mutex::new(None),
            token: Mutex::new(None),
            unreachable: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// `GET base/path`, as [`Inner::request`].
    fn get(&self, path: &str, accept: Option<&str>) -> Result<Fetched, RegistryError> {
        self.request(
            path,
            RequestOptions {
                accept,
                ..RequestOptions::default()
            },
        )
    }

    /// A request for `base/path` with the authorization the registry asked for; a 401 is
    /// answered once with a fresh token (or with credentials the ping did not ask for yet).
    fn request(&self, path: &str, options: RequestOptions<'_>) -> Result<Fetched, RegistryError> {
        let session = self.session()?;
        let url = session
            .base
            .join(path)
            .map_err(|_| RegistryError::InvalidName {
                what: "request path",
                value: path.to_owned(),
                reason: "not a valid URL path",
            })?;
        let authorization = self.authorization(&session, None)?;
        let fetched = self.transport.request(
            &url,
            RequestOptions {
                authorization: authorization.as_ref(),
                ..options
            },
            &session.base,
        )?;
        if fetched.response.status() != 401 {
            return self.refuse_forbidden(fetched, &session);
        }
        // A 401 from where the registry redirected us (blob storage) is not the registry's
        // challenge: answering it would send the registry's credentials wherever that server
        // names as its realm.
        if fetched.url.origin() != session.base.origin() {
            return Err(RegistryError::Status {
                url: redact(&fetched.url),
                status: 401,
                errors: error_details(fetched.response),
            });
        }
        // The registry may challenge per request (another realm, a token it no longer takes).
        let challenge = challenge_of(&fetched.response, &fetched.url)?
            .unwrap_or_else(|| session.challenge.clone());
        let retry = match &challenge {
            Challenge::Bearer { .. } => true,
            Challenge::Basic => authorization.is_none() && self.credentials.is_some(),
            Challenge::None => false,
        };
        if !retry {
            return Err(self.unauthorized(fetched.response));
        }
        let session = self.update_challenge(challenge);
        let authorization = self.authorization(&session, authorization.as_ref())?;
        let fetched = self.transport.request(
            &url,
            RequestOptions {
                authorization: authorization.as_ref(),
                ..options
            },
            &session.base,
        )?;
        if fetched.response.status() == 401 {
            return Err(self.unauthorized(fetched.response));
        }
        self.refuse_forbidden(fetched, &session)
    }

    /// A 403 from the registry itself (`DENIED`: known credentials without access) is
    /// [`RegistryError::Unauthorized`] too; one from blob storage it redirected to is not ours
    /// to explain and stays a status error.
    fn refuse_forbidden(
        &self,
        fetched: Fetched,
        session: &Session,
    ) -> Result<Fetched, RegistryError> {
        if fetched.response.status() == 403 && fetched.url.origin() == session.base.origin() {
            return Err(self.unauthorized(fetched.response));
        }
        Ok(fetched)
    }

    /// The endpoint and challenge, from `GET /v2/` on first use.
    fn session(&self) -> Result<Session, RegistryError> {
        let mut session = lock(&self.session);
        if let Some(session) = session.as_ref() {
            return Ok(session.clone());
        }
        let settled = match self.ping(&self.configured_base) {
            Err(error @ (RegistryError::Tls { .. } | RegistryError::Connection { .. }))
                if self.allow_http_fallback && self.configured_base.scheme() == "https" =>
            {
                let mut http_base = self.configured_base.clone();
                let _ = http_base.set_scheme("http");
                tracing::debug!(%error, registry = %self.registry, "HTTPS failed; trying plain HTTP");
                self.ping(&http_base).map_err(|http_error| {
                    tracing::debug!(%http_error, "plain HTTP failed too");
                    error
                })?
            }
            result => result?,
        };
        *session = Some(settled.clone());
        Ok(settled)
    }

    fn ping(&self, base: &Url) -> Result<Session, RegistryError> {
        let url = base
            .join("v2/")
            .map_err(|e| malformed(base, e.to_string()))?;
        let Fetched { response, url } =
            self.transport
                .request(&url, RequestOptions::default(), base)?;
        let challenge = match response.status().as_u16() {
            200 => Challenge::None,
            401 => challenge_of(&response, &url)?.ok_or_else(|| {
                malformed(
                    &url,
                    "401 without a Bearer or Basic WWW-Authenticate challenge",
                )
            })?,
            status => {
                return Err(RegistryError::Status {
                    url: redact(&url),
                    status,
                    errors: error_details(response),
                })
            }
        };
        tracing::debug!(registry = %self.registry, base = %redact(base), ?challenge, "registry endpoint settled");
        Ok(Session {
            base: base.clone(),
            challenge,
        })
    }

    fn update_challenge(&self, challenge: Challenge) -> Session {
        let mut session = lock(&self.session);
        let base = session
            .as_ref()
            .map_or_else(|| self.configured_base.clone(), |s| s.base.clone());
        let updated = Session { base, challenge };
        *session = Some(updated.clone());
        updated
    }

    /// The `Authorization` header for the session's challenge. `rejected`: the header the
    /// registry just refused; a token equal to it is not reused.
    fn authorization(
        &self,
        session: &Session,
        rejected: Option<&AuthHeader>,
    ) -> Result<Option<AuthHeader>, RegistryError> {
        match &session.challenge {
            Challenge::None => Ok(None),
            Challenge::Basic => Ok(self.credentials.as_ref().map(AuthHeader::basic)),
            Challenge::Bearer { realm, service } => {
                let mut cached = lock(&self.token);
                if let Some(token) = cached.as_ref() {
                    let header = AuthHeader::bearer(&token.token);
                    if token.is_fresh(Instant::now()) && rejected != Some(&header) {
                        return Ok(Some(header));
                    }
                }
                let token = self.fetch_token(realm, service.as_deref(), &session.base)?;
                let header = AuthHeader::bearer(&token.token);
                *cached = Some(token);
                Ok(Some(header))
            }
        }
    }

    /// A pull token for the repository from the realm, with basic credentials if we have them.
    /// Credentials never go out in clear text unless the registry itself (`base`) is plain
    /// HTTP on the realm's host: a realm on `http://` named by an HTTPS registry is refused.
    fn fetch_token(
        &self,
        realm: &Url,
        service: Option<&str>,
        base: &Url,
    ) -> Result<CachedToken, RegistryError> {
        let realm_is_safe = realm.scheme() == "https"
            || (base.scheme() == "http" && realm.host_str() == base.host_str());
        if self.credentials.is_some() && !realm_is_safe {
            return Err(RegistryError::InsecureRealm {
                registry: self.registry.clone(),
                realm: redact(realm),
            });
        }
        let scope = format!("repository:{}:pull", self.repository);
        // A login check asks for no repository: the token only proves the credentials.
        let scope = (!self.repository.is_empty()).then_some(scope.as_str());
        let started = Instant::now();
        let refresh_token = self
            .credentials
            .as_ref()
            .filter(|credentials| credentials.username == IDENTITY_TOKEN_USER)
            .map(|credentials| credentials.password.as_str());
        let Fetched { response, url } = match refresh_token {
            // Docker's OAuth2 flow: an identity token is a refresh token, traded at the realm
            // (POST, form) for an access token; it is never sent as a password.
            Some(refresh_token) => {
                let mut form = url::form_urlencoded::Serializer::new(String::new());
                form.append_pair("grant_type", "refresh_token")
                    .append_pair("refresh_token", refresh_token)
                    .append_pair("client_id", "concil");
                if let Some(service) = service {
                    form.append_pair("service", service);
                }
                if let Some(scope) = scope {
                    form.append_pair("scope", scope);
                }
                let form = form.finish();
                self.transport.request(
                    realm,
                    RequestOptions {
                        method: transport::Method::PostForm(&form),
                        accept: Some("application/json"),
                        ..RequestOptions::default()
                    },
                    realm,
                )?
            }
            None => {
                let mut url = realm.clone();
                {
                    let mut query = url.query_pairs_mut();
                    if let Some(service) = service {
                        query.append_pair("service", service);
                    }
                    if let Some(scope) = scope {
                        query.append_pair("scope", scope);
                    }
                }
                let authorization = self.credentials.as_ref().map(AuthHeader::basic);
                self.transport.request(
                    &url,
                    RequestOptions {
                        accept: Some("application/json"),
                        authorization: authorization.as_ref(),
                        ..RequestOptions::default()
                    },
                    realm,
                )?
            }
        };
        match response.status().as_u16() {
            200 => {}
            401 | 403 => return Err(self.unauthorized(response)),
            status => {
                return Err(RegistryError::Status {
                    url: redact(&url),
                    status,
                    errors: error_details(response),
                })
            }
        }
        let body = read_limited(response, &url, MAX_TOKEN_RESPONSE)?;
        let parsed: auth::TokenResponse = serde_json::from_slice(&body)
            .map_err(|e| malformed(&url, format!("token response: {e}")))?;
        let (token, expires_in) = parsed
            .into_token()
            .map_err(|reason| malformed(&url, reason))?;
        tracing::debug!(registry = %self.registry, expires_in, "got a bearer token");
        Ok(CachedToken::new(token, expires_in, started))
    }

    fn unauthorized(&self, response: HttpResponse) -> RegistryError {
        RegistryError::Unauthorized {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            credentials_sent: self.credentials.is_some(),
            errors: error_details(response),
        }
    }
}

/// Token responses are small JWTs; anything past this is not one.
const MAX_TOKEN_RESPONSE: u64 = 1024 * 1024;

/// The mutex's value even if a thread panicked while holding it: the values kept here (an
/// endpoint, a token) are replaced whole, never left half-written.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn challenge_of(response: &HttpResponse, url: &Url) -> Result<Option<Challenge>, RegistryError> {
    let headers = response.headers().get_all("www-authenticate");
    auth::parse_challenges(headers.iter().filter_map(|v| v.to_str().ok()))
        .map_err(|reason| malformed(url, reason))
}

/// The response if it is a 200; the registry's error otherwise.
fn expect_ok(response: HttpResponse, url: &Url) -> Result<HttpResponse, RegistryError> {
    match response.status().as_u16() {
        200 => Ok(response),
        404 => Err(RegistryError::NotFound {
            url: redact(url),
            errors: error_details(response),
        }),
        status => Err(RegistryError::Status {
            url: redact(url),
            status,
            errors: error_details(response),
        }),
    }
}

fn header(response: &HttpResponse, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_owned())
}

/// The whole body if it is at most `limit` bytes.
fn read_limited(response: HttpResponse, url: &Url, limit: u64) -> Result<Vec<u8>, RegistryError> {
    let too_large = || RegistryError::TooLarge {
        url: redact(url),
        limit,
    };
    let body = response.into_body();
    if body.content_length().is_some_and(|length| length > limit) {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    body.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|source| RegistryError::BodyBroken {
            url: redact(url),
            source,
        })?;
    if bytes.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(bytes)
}

/// `Content-Range: bytes START-END/TOTAL` as (START, TOTAL), TOTAL `None` for `*`.
pub(crate) fn parse_content_range(value: &str) -> Option<(u64, Option<u64>)> {
    let range = value.trim().strip_prefix("bytes ")?;
    let (span, total) = range.split_once('/')?;
    let (start, end) = span.split_once('-')?;
    let start: u64 = start.trim().parse().ok()?;
    let end: u64 = end.trim().parse().ok()?;
    let total = match total.trim() {
        "*" => None,
        number => Some(number.parse::<u64>().ok()?),
    };
    (end >= start && total.is_none_or(|total| end < total)).then_some((start, total))
}

/// The manifest's media type: its own `mediaType`, else the `Content-Type` it came with.
pub(crate) fn manifest_media_type(
    bytes: &[u8],
    content_type: Option<&str>,
    url: &Url,
) -> Result<String, RegistryError> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Head {
        schema_version: Option<u64>,
        media_type: Option<String>,
    }
    let head: Head = serde_json::from_slice(bytes)
        .map_err(|e| malformed(url, format!("manifest is not a JSON object: {e}")))?;
    let content_type = content_type.map(|v| v.split(';').next().unwrap_or_default().trim());
    let media_type = head
        .media_type
        .as_deref()
        .or(content_type)
        .unwrap_or_default();
    if head.schema_version == Some(1) || DOCKER_SCHEMA1_TYPES.contains(&media_type) {
        return Err(RegistryError::Schema1 { url: redact(url) });
    }
    if !ACCEPTED_MANIFEST_TYPES.contains(&media_type) {
        return Err(RegistryError::UnsupportedMediaType {
            url: redact(url),
            media_type: media_type.to_owned(),
        });
    }
    Ok(media_type.to_owned())
}

/// `scheme://host[:port]/` of a base URL: any path, query and user info dropped (credentials
/// come only from the configuration's auths).
fn configured_base(base_url: Url) -> Result<Url, RegistryError> {
    let invalid_url = |reason| RegistryError::InvalidUrl {
        url: redact(&base_url),
        reason,
    };
    if !matches!(base_url.scheme(), "http" | "https") {
        return Err(invalid_url("the scheme must be https or http"));
    }
    if base_url.host_str().is_none_or(str::is_empty) {
        return Err(invalid_url("no host"));
    }
    let mut configured_base = base_url.clone();
    configured_base.set_path("/");
    let _ = configured_base.set_username("");
    let _ = configured_base.set_password(None);
    configured_base.set_query(None);
    configured_base.set_fragment(None);
    Ok(configured_base)
}

fn invalid_name(what: &'static str, value: &str, reason: &'static str) -> RegistryError {
    RegistryError::InvalidName {
        what,
        value: value.to_owned(),
        reason,
    }
}

/// The distribution spec's tag grammar (the one [`crate::reference`] parses).
fn check_tag(tag: &str) -> Result<(), RegistryError> {
    if !reference::is_valid_tag(tag) {
        return Err(invalid_name(
            "tag",
            tag,
            "expected [A-Za-z0-9_][A-Za-z0-9._-]{0,127}",
        ));
    }
    Ok(())
}

/// Repository path components: lowercase letters and digits joined by `.`, `_`, `__` or
/// dashes, separated by `/` (the distribution spec's grammar; also what keeps the name from
/// reaching outside `/v2/<name>/`).
fn check_repository(repository: &str) -> Result<(), RegistryError> {
    if repository.len() > 255
        || !repository
            .split('/')
            .all(reference::is_valid_path_component)
    {
        return Err(invalid_name(
            "repository",
            repository,
            "expected lowercase path components like library/alpine",
        ));
    }
    Ok(())
}

/// A Notary GUN: `host[:port]/` and a repository (what keeps it inside `/v2/<gun>/_trust/`).
fn check_gun(gun: &str) -> Result<(), RegistryError> {
    let (host, repository) = gun
        .split_once('/')
        .ok_or_else(|| invalid_name("trust collection", gun, "expected host[:port]/repository"))?;
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
        && !host.contains("..");
    if !host_ok {
        return Err(invalid_name(
            "trust collection",
            gun,
            "expected host[:port]/repository",
        ));
    }
    check_repository(repository)
}

/// A TUF role name (`root`, `targets/releases`), optionally with `.<hex checksum>`.
fn check_metadata_name(name: &str) -> Result<(), RegistryError> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && name
            .split('/')
            .all(|part| !part.is_empty() && !part.starts_with('.'))
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/'));
    if !ok {
        return Err(invalid_name(
            "trust metadata name",
            name,
            "expected a TUF role name like targets/releases",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url() -> Url {
        Url::parse("https://registry.example/v2/x/manifests/latest").unwrap()
    }

    #[test]
    fn clients_and_blob_readers_go_to_other_threads() {
        fn send<T: Send>() {}
        fn sync<T: Sync>() {}
        send::<BlobReader>();
        send::<Client>();
        sync::<Client>();
    }

    #[test]
    fn media_type_from_body_then_content_type() {
        let body = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json"}"#;
        assert_eq!(
            manifest_media_type(body, Some(DOCKER_MANIFEST_V2), &url()).unwrap(),
            OCI_INDEX
        );
        let body = br#"{"schemaVersion":2}"#;
        let content_type = format!("{OCI_MANIFEST}; charset=utf-8");
        assert_eq!(
            manifest_media_type(body, Some(&content_type), &url()).unwrap(),
            OCI_MANIFEST
        );
        assert!(matches!(
            manifest_media_type(body, Some("application/json"), &url()),
            Err(RegistryError::UnsupportedMediaType { media_type, .. }) if media_type == "application/json"
        ));
    }

    #[test]
    fn schema1_is_refused() {
        let body = br#"{"schemaVersion":1,"name":"x","tag":"latest","fsLayers":[]}"#;
        let error = manifest_media_type(body, Some("application/json"), &url()).unwrap_err();
        assert!(matches!(error, RegistryError::Schema1 { .. }), "{error}");
        let body = br#"{"name":"x"}"#;
        let error = manifest_media_type(body, Some(DOCKER_SCHEMA1_TYPES[1]), &url()).unwrap_err();
        assert!(matches!(error, RegistryError::Schema1 { .. }), "{error}");
    }

    #[test]
    fn names_are_checked() {
        assert!(check_repository("library/alpine").is_ok());
        assert!(check_repository("a.b/c_d/e--f/g__h").is_ok());
        for bad in [
            "", "Alpine", "a//b", "../x", "a/..", "a/b/", "a?b", "a%2f", "a..b",
        ] {
            assert!(check_repository(bad).is_err(), "{bad}");
        }
        assert!(check_tag("v1.0_rc-1").is_ok());
        for bad in ["", ".x", "-x", "a/b", "a:b", &"x".repeat(129)] {
            assert!(check_tag(bad).is_err(), "{bad}");
        }
        for good in ["docker.io/library/x", "127.0.0.1:5000/a/b", "[::1]:4443/r"] {
            assert!(check_gun(good).is_ok(), "{good}");
        }
        for bad in ["library/x/", "x", "/x", "h../x", "h/../x", "h?/x", "h/X"] {
            assert!(check_gun(bad).is_err(), "{bad}");
        }
        for good in ["root", "targets/releases", "snapshot.0af3", "targets.abc-1"] {
            assert!(check_metadata_name(good).is_ok(), "{good}");
        }
        for bad in ["", "../root", "targets//x", "a/.x", "root.json?x", "a b"] {
            assert!(check_metadata_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn content_range_is_parsed_strictly() {
        assert_eq!(parse_content_range("bytes 5-9/10"), Some((5, Some(10))));
        assert_eq!(parse_content_range(" bytes 0-0/* "), Some((0, None)));
        for bad in [
            "bytes 9-5/10",
            "bytes 5-10/10",
            "bytes */10",
            "items 0-1/2",
            "bytes 0-1",
            "bytes -1-2/3",
            "bytes 0-18446744073709551616/18446744073709551617",
            "bytes 1-2/x",
            "",
        ] {
            assert_eq!(parse_content_range(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn base_url_user_info_and_path_are_dropped() {
        let base = Url::parse("https://user:secret@registry.example:5000/some/path?q=1").unwrap();
        let client =
            Client::new(base, "library/alpine", None, &TlsSettings::default(), false).unwrap();
        assert_eq!(
            client.inner.configured_base.as_str(),
            "https://registry.example:5000/"
        );
        assert_eq!(client.inner.registry, "registry.example:5000");
        assert!(!format!("{client:?}").contains("secret"));
        let error = Client::new(
            Url::parse("ftp://x/").unwrap(),
            "a",
            None,
            &TlsSettings::default(),
            false,
        )
        .unwrap_err();
        assert!(matches!(error, RegistryError::InvalidUrl { .. }));
    }

    #[test]
    fn docker_schema2_json_parses_into_oci_types() {
        let manifest = Manifest {
            bytes: br#"{
               "schemaVersion": 2,
               "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
               "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 7023,
                          "digest": "sha256:b5b2b2c507a0944348e0303114d8d93aaaa081732b86451d9bce1f432a537bc7"},
               "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 32654,
                           "digest": "sha256:e692418e4cbaf90ca69d05a66403747baa33ee08806650b51fab815ad7fc331f"}]
            }"#
            .to_vec(),
            media_type: DOCKER_MANIFEST_V2.to_owned(),
            digest: Digest::of(b"0"),
        };
        let ParsedManifest::Image(image) = manifest.parse().unwrap() else {
            panic!("not an image manifest")
        };
        assert_eq!(image.layers().len(), 1);
        assert_eq!(
            image.config().media_type(),
            &MediaType::Other("application/vnd.docker.container.image.v1+json".to_owned())
        );
        let list = Manifest {
            bytes: br#"{
               "schemaVersion": 2,
               "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
               "manifests": [{"mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                              "size": 7143,
                              "digest": "sha256:e692418e4cbaf90ca69d05a66403747baa33ee08806650b51fab815ad7fc331f",
                              "platform": {"architecture": "arm", "os": "linux", "variant": "v7",
                                           "features": ["sse4"]}}]
            }"#
            .to_vec(),
            media_type: DOCKER_MANIFEST_LIST_V2.to_owned(),
            digest: Digest::of(b"1"),
        };
        let ParsedManifest::Index(index) = list.parse().unwrap() else {
            panic!("not an index")
        };
        let platform = index.manifests()[0].platform().clone().unwrap();
        assert_eq!(platform.variant().as_deref(), Some("v7"));
        let broken = Manifest {
            bytes: b"{}".to_vec(),
            ..list
        };
        assert!(matches!(
            broken.parse(),
            Err(RegistryError::InvalidManifest { .. })
        ));
    }
}
