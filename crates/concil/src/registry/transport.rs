//! HTTP transport: the `ureq` agents (one per URL scheme, for curl's proxy rules) and their TLS
//! roots, redirects that keep `Authorization` on the origin it was meant for, retries with
//! backoff, and the mapping of transport failures to [`RegistryError`].

use std::io::Read;
use std::time::Duration;

use url::Url;

use super::auth::AuthHeader;
use super::body::{HttpResponse, WatchedBody};
use super::retry::{Backoff, NetworkSettings};
use super::{ErrorDetail, RegistryError, TlsSettings};

/// The longest `Retry-After` waited for; a registry asking for a longer pause fails the pull
/// at once with [`RegistryError::RateLimited`] (a script can come back later; a pull that
/// sleeps for an hour looks hung).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);
/// Redirects followed per request (registry → blob storage takes one or two).
const MAX_REDIRECTS: usize = 5;
/// The largest CA bundle read (Debian's whole system bundle is ~200 KiB).
const MAX_CA_FILE_SIZE: u64 = 16 * 1024 * 1024;
/// How much of an error body we read to find the registry's error codes.
const MAX_ERROR_BODY: u64 = 64 * 1024;

/// The connection pools and the way requests are made.
pub(super) struct Transport {
    /// For `https://` URLs: through `https_proxy` (else `all_proxy`) unless `no_proxy` says.
    https: Agent,
    /// For `http://` URLs: through `http_proxy` (else `all_proxy`) unless `no_proxy` says.
    http: Agent,
    network: NetworkSettings,
    /// The client certificate file shown in handshakes, for errors.
    client_cert: Option<std::path::PathBuf>,
}

/// An agent and the proxy it goes through, for errors (without its credentials).
struct Agent {
    agent: ureq::Agent,
    proxy: Option<(ureq::Proxy, String)>,
}

impl Agent {
    /// The proxy a request to `url` goes through (as shown, no credentials), if any.
    fn proxy_for(&self, url: &Url) -> Option<&str> {
        let (proxy, shown) = self.proxy.as_ref()?;
        let uri = url.as_str().parse::<ureq::http::Uri>().ok()?;
        (!proxy.is_no_proxy(&uri)).then_some(shown.as_str())
    }
}

/// A response with the URL it finally came from (after redirects).
pub(super) struct Fetched {
    pub(super) response: HttpResponse,
    pub(super) url: Url,
}

/// `GET`, `HEAD`, or `POST` of a form (the OAuth2 token request). `Debug` never shows the
/// form: it holds a refresh token.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum Method<'a> {
    #[default]
    Get,
    Head,
    /// `application/x-www-form-urlencoded` body.
    PostForm(&'a str),
}

impl std::fmt::Debug for Method<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::PostForm(_) => "POST",
        })
    }
}

/// What one request asks for, besides its URL.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct RequestOptions<'a> {
    pub(super) method: Method<'a>,
    pub(super) accept: Option<&'a str>,
    /// Sent only to the `auth_origin` given with it.
    pub(super) authorization: Option<&'a AuthHeader>,
    /// `Range: bytes=N-`.
    pub(super) range_from: Option<u64>,
}

impl Transport {
    pub(super) fn new(
        tls: &TlsSettings,
        network: &NetworkSettings,
    ) -> Result<Transport, RegistryError> {
        let roots = root_certificates(tls)?;
        let client_cert = tls
            .client_cert
            .as_ref()
            .map(client_certificate)
            .transpose()?;
        let proxies = super::proxy::from_environment(|name| std::env::var(name).ok())?;
        let agent = |proxy: Option<super::proxy::ProxySetting>| {
            let ureq_proxy = proxy.as_ref().map(|setting| setting.proxy.clone());
            let config = ureq::Agent::config_builder()
                .tls_config(
                    ureq::tls::TlsConfig::builder()
                        .root_certs(roots.clone())
                        .client_cert(client_cert.clone())
                        .build(),
                )
                // Statuses are ours to interpret; redirects are ours to follow (see `request`).
                .http_status_as_error(false)
                .max_redirects(0)
                .user_agent(concat!("concil/", env!("CARGO_PKG_VERSION")))
                .proxy(ureq_proxy)
                .timeout_connect(Some(network.timeouts.connect))
                .timeout_recv_response(Some(network.timeouts.idle))
                // No total timeout (a layer may take long); a body silent this long breaks.
                .timeout_per_read(Some(network.timeouts.idle))
                .build();
            Agent {
                agent: config.new_agent(),
                proxy: proxy.map(|setting| (setting.proxy, setting.shown)),
            }
        };
        Ok(Transport {
            https: agent(proxies.https),
            http: agent(proxies.http),
            network: network.clone(),
            client_cert: tls.client_cert.as_ref().map(|files| files.cert.clone()),
        })
    }

    /// The network settings the transport was made with.
    pub(super) fn network(&self) -> &NetworkSettings {
        &self.network
    }

    /// A request to `url`, retried on connection errors, 5xx and short 429s, following
    /// redirects. The authorization is sent only to `auth_origin` (scheme, host and port): a
    /// redirect to blob storage elsewhere gets no credentials. 5xx are returned as responses
    /// once the retries are used up; a 429 whose wait is too long, or that persists, is
    /// [`RegistryError::RateLimited`].
    pub(super) fn request(
        &self,
        url: &Url,
        options: RequestOptions<'_>,
        auth_origin: &Url,
    ) -> Result<Fetched, RegistryError> {
        let mut backoff = Backoff::new();
        let mut attempt = 0;
        loop {
            let result = self.request_following_redirects(url, options, auth_origin);
            let mut at_least = Duration::ZERO;
            match &result {
                Err(error @ RegistryError::Connection { .. }) => {
                    tracing::debug!(%error, attempt, "request failed");
                }
                Ok(fetched) if fetched.response.status() == 429 => {
                    match retry_after(&fetched.response) {
                        Some(wait) if wait > MAX_RETRY_AFTER => {
                            return Err(rate_limited(fetched, Some(wait)))
                        }
                        Some(wait) => at_least = wait,
                        None => {}
                    }
                    if attempt >= self.network.retries {
                        return Err(rate_limited(fetched, None));
                    }
                    tracing::warn!(
                        registry = %host_port(&fetched.url),
                        "rate limited (429); waiting {:.1} s",
                        at_least.max(Duration::from_millis(250)).as_secs_f64()
                    );
                }
                Ok(fetched) if is_retryable_status(fetched.response.status().as_u16()) => {
                    tracing::debug!(
                        url = %redact(&fetched.url),
                        status = fetched.response.status().as_u16(),
                        attempt,
                        "server failing"
                    );
                    if let Some(wait) = retry_after(&fetched.response) {
                        at_least = wait.min(MAX_RETRY_AFTER);
                    }
                }
                _ => return result,
            }
            if attempt >= self.network.retries {
                return result;
            }
            drop(result);
            attempt += 1;
            std::thread::sleep(backoff.next_wait(at_least));
        }
    }

    fn request_following_redirects(
        &self,
        url: &Url,
        options: RequestOptions<'_>,
        auth_origin: &Url,
    ) -> Result<Fetched, RegistryError> {
        let mut url = url.clone();
        for _ in 0..=MAX_REDIRECTS {
            let agent = match url.scheme() {
                "http" => &self.http,
                _ => &self.https,
            };
            let mut headers: Vec<(&str, ureq::http::HeaderValue)> = Vec::new();
            let header_value = |text: &str| {
                ureq::http::HeaderValue::from_str(text)
                    .map_err(|_| malformed(&url, "a value not valid in a header"))
            };
            if let Some(accept) = options.accept {
                headers.push(("Accept", header_value(accept)?));
            }
            if let Some(from) = options.range_from {
                headers.push(("Range", header_value(&format!("bytes={from}-"))?));
            }
            if let Some(authorization) = options.authorization {
                if url.origin() == auth_origin.origin() {
                    let mut value = ureq::http::HeaderValue::from_str(authorization.value())
                        .map_err(|_| {
                            malformed(&url, "credentials or token not valid in a header")
                        })?;
                    // `http` then shows it as "Sensitive" in any Debug output.
                    value.set_sensitive(true);
                    headers.push(("Authorization", value));
                }
            }
            let sent = match options.method {
                Method::Get | Method::Head => {
                    let mut request = if options.method == Method::Head {
                        agent.agent.head(url.as_str())
                    } else {
                        agent.agent.get(url.as_str())
                    };
                    for (name, value) in headers {
                        request = request.header(name, value);
                    }
                    request.call()
                }
                Method::PostForm(form) => {
                    let mut request = agent
                        .agent
                        .post(url.as_str())
                        .header("Content-Type", "application/x-www-form-urlencoded");
                    for (name, value) in headers {
                        request = request.header(name, value);
                    }
                    request.send(form)
                }
            };
            let response = sent.map_err(|e| {
                transport_error(&url, agent.proxy_for(&url), self.client_cert.as_deref(), e)
            })?;
            let status = response.status().as_u16();
            tracing::debug!(url = %redact(&url), status, method = ?options.method, "request");
            // Through a proxy every request goes in a CONNECT tunnel: a proxy's refusal is a
            // `ConnectProxyFailed` (see `transport_error`), and a 407 answer is the server's.
            if !matches!(status, 301 | 302 | 303 | 307 | 308) {
                let timeouts = self.network.timeouts;
                let response = response.map(|body| WatchedBody::new(body, &timeouts));
                return Ok(Fetched { response, url });
            }
            let location = response
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| malformed(&url, format!("redirect {status} without Location")))?;
            let next = url
                .join(location)
                .map_err(|e| malformed(&url, format!("redirect to an invalid URL: {e}")))?;
            if !matches!(next.scheme(), "http" | "https") {
                return Err(malformed(
                    &url,
                    format!("redirect to a {} URL", next.scheme()),
                ));
            }
            url = next;
        }
        Err(malformed(
            &url,
            format!("more than {MAX_REDIRECTS} redirects"),
        ))
    }
}

/// A 429 as an error, with what the registry said of its limit.
fn rate_limited(fetched: &Fetched, retry_after: Option<Duration>) -> RegistryError {
    let header = |name: &str| {
        fetched
            .response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.chars().filter(|c| !c.is_control()).take(80).collect())
    };
    RegistryError::RateLimited {
        registry: host_port(&fetched.url),
        retry_after: retry_after.map(|wait| wait.as_secs()),
        limit: header("ratelimit-limit"),
        remaining: header("ratelimit-remaining"),
    }
}

/// The usual web roots (Mozilla's, as `ureq` uses by default) plus the certificates of the
/// configured CA file.
fn root_certificates(tls: &TlsSettings) -> Result<ureq::tls::RootCerts, RegistryError> {
    let mut roots: Vec<ureq::tls::Certificate<'static>> = webpki_root_certs::TLS_SERVER_ROOT_CERTS
        .iter()
        .map(|der| ureq::tls::Certificate::from_der(der.as_ref()))
        .collect();
    for path in tls.ca_file.iter().chain(&tls.extra_ca_files) {
        let ca_error = |reason: String| RegistryError::CaFile {
            path: path.clone(),
            reason,
        };
        let pem = crate::config::read_capped(path, MAX_CA_FILE_SIZE)
            .map_err(|e| ca_error(e.to_string()))?;
        let before = roots.len();
        for item in ureq::tls::parse_pem(&pem) {
            match item.map_err(|e| ca_error(e.to_string()))? {
                ureq::tls::PemItem::Certificate(certificate) => roots.push(certificate),
                // A bundle may carry keys or other items beside the certificates.
                _ => continue,
            }
        }
        if roots.len() == before {
            return Err(ca_error("no PEM certificate in the file".to_owned()));
        }
    }
    Ok(ureq::tls::RootCerts::new_with_certs(&roots))
}

/// 5xx and 408 (request timeout): the server may do better on the next try.
/// The client certificate chain and key from their PEM files. The key is checked against the
/// certificate only in the handshake (rustls does), whose error then names the file.
fn client_certificate(
    files: &super::ClientCertFiles,
) -> Result<ureq::tls::ClientCert, RegistryError> {
    let problem = |path: &std::path::Path, reason: String| RegistryError::ClientCertificate {
        path: path.to_owned(),
        reason,
    };
    let read = |path: &std::path::Path| {
        crate::config::read_capped(path, MAX_CA_FILE_SIZE).map_err(|e| problem(path, e.to_string()))
    };
    let mut chain = Vec::new();
    for item in ureq::tls::parse_pem(&read(&files.cert)?) {
        if let ureq::tls::PemItem::Certificate(certificate) =
            item.map_err(|e| problem(&files.cert, e.to_string()))?
        {
            chain.push(certificate);
        }
    }
    if chain.is_empty() {
        return Err(problem(
            &files.cert,
            "no PEM certificate in the file".to_owned(),
        ));
    }
    let key_pem = read(&files.key)?;
    let key = ureq::tls::parse_pem(&key_pem)
        .filter_map(Result::ok)
        .find_map(|item| match item {
            ureq::tls::PemItem::PrivateKey(key) => Some(key),
            _ => None,
        })
        .ok_or_else(|| problem(&files.key, "no PEM private key in the file".to_owned()))?;
    // ureq panics on a key that is not the certificate's (it builds its rustls configuration
    // with `expect`): ask rustls the same question first, with the provider ureq uses.
    key_matches(&chain, &key_pem).map_err(|reason| problem(&files.key, reason))?;
    Ok(ureq::tls::ClientCert::new_with_certs(&chain, key))
}

/// Whether rustls accepts the private key in `key_pem` for the certificate `chain` (the key
/// pair matches).
fn key_matches(chain: &[ureq::tls::Certificate<'static>], key_pem: &[u8]) -> Result<(), String> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|error| error.to_string())?;
    let chain = chain
        .iter()
        .map(|certificate| CertificateDer::from(certificate.der()).into_owned())
        .collect();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| error.to_string())?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_client_auth_cert(chain, key)
        .map(drop)
        .map_err(|error| format!("not the key of the client certificate ({error})"))
}

fn is_retryable_status(status: u16) -> bool {
    status == 408 || (500..=599).contains(&status)
}

/// `Retry-After` in seconds (the HTTP-date form is rare from registries and ignored).
pub(crate) fn retry_after(response: &HttpResponse) -> Option<Duration> {
    let seconds: u64 = response
        .headers()
        .get("retry-after")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(seconds))
}

/// A `ureq` failure as a proxy refusal, a TLS error (handshake, certificate) or a connection
/// error. `proxy`: the proxy the request went through, as shown (no credentials).
fn transport_error(
    url: &Url,
    proxy: Option<&str>,
    client_cert: Option<&std::path::Path>,
    error: ureq::Error,
) -> RegistryError {
    if let (ureq::Error::ConnectProxyFailed(reason), Some(proxy)) = (&error, proxy) {
        return RegistryError::ProxyRefused {
            proxy: proxy.to_owned(),
            reason: reason.clone(),
        };
    }
    let is_tls = match &error {
        ureq::Error::Tls(_) | ureq::Error::Rustls(_) | ureq::Error::TlsRequired => true,
        ureq::Error::Io(io) => io
            .get_ref()
            .is_some_and(|inner| inner.is::<rustls::Error>()),
        _ => false,
    };
    if is_tls {
        RegistryError::Tls {
            host: host_port(url),
            client_cert: client_cert.map(|path| Box::new(path.to_owned())),
            source: error,
        }
    } else {
        RegistryError::Connection {
            url: redact(url),
            source: error,
        }
    }
}

pub(super) fn malformed(url: &Url, reason: impl Into<String>) -> RegistryError {
    RegistryError::Malformed {
        url: redact(url),
        reason: reason.into(),
    }
}

/// The URL for errors and logs: no user info, no query (signed storage URLs carry
/// credentials there), no fragment.
pub(super) fn redact(url: &Url) -> String {
    let mut url = url.clone();
    // Both fail only for URLs that cannot have user info, which then have none.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.set_query(None);
    url.set_fragment(None);
    url.into()
}

/// `host[:port]` as people write a registry's name.
pub(super) fn host_port(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

/// The registry's `errors` from an error response body, as far as it has them (best effort:
/// an unreadable or non-JSON body gives none).
pub(crate) fn error_details(response: HttpResponse) -> Vec<ErrorDetail> {
    #[derive(serde::Deserialize)]
    struct Body {
        #[serde(default)]
        errors: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    let mut body = Vec::new();
    let mut reader = response.into_body().take(MAX_ERROR_BODY);
    if reader.read_to_end(&mut body).is_err() {
        return Vec::new();
    }
    serde_json::from_slice::<Body>(&body)
        .map(|body| {
            body.errors
                .into_iter()
                .map(|e| ErrorDetail {
                    code: e.code,
                    message: e.message,
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_drops_user_info_and_query() {
        let url =
            Url::parse("https://user:secret@blobs.example/x/y?X-Amz-Signature=abc#f").unwrap();
        assert_eq!(redact(&url), "https://blobs.example/x/y");
    }

    #[test]
    fn host_port_keeps_explicit_ports_only() {
        assert_eq!(
            host_port(&Url::parse("https://127.0.0.1:5000/v2/").unwrap()),
            "127.0.0.1:5000"
        );
        assert_eq!(
            host_port(&Url::parse("https://registry-1.docker.io/").unwrap()),
            "registry-1.docker.io"
        );
        assert_eq!(host_port(&Url::parse("http://[::1]:80/").unwrap()), "[::1]");
    }

    #[test]
    fn missing_ca_file_is_named() {
        let tls = TlsSettings {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..TlsSettings::default()
        };
        let error = Transport::new(&tls, &NetworkSettings::default())
            .err()
            .unwrap();
        assert!(error.to_string().contains("/nonexistent/ca.pem"), "{error}");
    }

    #[test]
    fn ca_file_without_certificates_is_refused() {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), "not a certificate\n").unwrap();
        let tls = TlsSettings {
            ca_file: Some(file.path().to_owned()),
            ..TlsSettings::default()
        };
        assert!(matches!(
            Transport::new(&tls, &NetworkSettings::default()),
            Err(RegistryError::CaFile { .. })
        ));
    }
}
