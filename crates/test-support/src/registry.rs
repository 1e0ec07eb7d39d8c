//! Debian's `docker-registry` (CNCF distribution 2.8), started by the tests on 127.0.0.1.
//!
//! [`RegistryBuilder`] picks the variant: plain HTTP or HTTPS with a private CA made here with
//! `openssl`; no auth, htpasswd basic auth (`htpasswd -Bbn`), or bearer tokens from a
//! [`TokenIssuer`] inside the test process (the registry's `auth: token:` section trusts the
//! test CA, which certifies the issuer's ES256 signing key; the JWT names it in `x5c`); and
//! optionally blobs redirected to a [`BlobStorage`] server (the registry's `redirect` storage
//! middleware), which records whether `Authorization` followed the redirect.
//!
//! The registry runs in its own process group with its own config, storage and log in a temp
//! dir; it is killed by PID when the [`Registry`] is dropped. To push to it: [`Registry::push_blob`]
//! and [`Registry::push_manifest`] (raw HTTP, with whatever auth the variant needs), or skopeo
//! with [`Registry::skopeo_dest_args`].

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::sha256_digest;
use base64::Engine as _;
use concil::config::Credentials;
use url::Url;

/// The user that htpasswd and the token issuer accept.
pub const USER: &str = "concil-tester";
/// Its password.
pub const PASSWORD: &str = "correct horse battery";
/// The refresh token ("identity token") the token issuer takes for [`USER`] in Docker's
/// OAuth2 flow (`POST` with `grant_type=refresh_token`).
pub const REFRESH_TOKEN: &str = "concil-test-refresh-token";
/// The registry's `auth.token.service` (the JWT audience).
const TOKEN_SERVICE: &str = "concil-test-registry";
/// The registry's `auth.token.issuer`.
const TOKEN_ISSUER: &str = "concil-test-issuer";

/// How the registry authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    None,
    /// htpasswd basic auth with [`USER`]/[`PASSWORD`].
    Htpasswd,
    /// Bearer tokens from the in-suite issuer. `anonymous_pull`: the issuer hands anonymous
    /// callers pull tokens (like Docker Hub); otherwise it answers them 401.
    Token {
        anonymous_pull: bool,
        expires_in: u64,
    },
}

/// Chooses the variant of registry to start.
#[derive(Debug, Clone)]
pub struct RegistryBuilder {
    tls: bool,
    auth: Auth,
    redirect_blobs: bool,
    pull_through: Option<Url>,
    client_certificates: bool,
}

impl RegistryBuilder {
    /// Serve HTTPS with a certificate from the test CA ([`Registry::ca_file`]).
    pub fn tls(mut self) -> Self {
        self.tls = true;
        self
    }

    pub fn auth(mut self, auth: Auth) -> Self {
        self.auth = auth;
        self
    }

    /// Redirect blob downloads to a [`BlobStorage`] server on another port.
    pub fn redirect_blobs(mut self) -> Self {
        self.redirect_blobs = true;
        self
    }

    /// Require a client certificate from the test CA (`http.tls.clientcas`; implies TLS):
    /// mutual TLS, as some sites run their registries. Issue one with [`TestCa::issue_client`].
    pub fn client_certificates(mut self) -> Self {
        self.tls = true;
        self.client_certificates = true;
        self
    }

    /// A pull-through cache of `remote` (CNCF distribution's proxy mode, `proxy: remoteurl`),
    /// what clusters run as a mirror: it fetches from `remote` what it does not hold yet.
    pub fn pull_through(mut self, remote: Url) -> Self {
        self.pull_through = Some(remote);
        self
    }

    pub fn start(self) -> Registry {
        Registry::start(self)
    }
}

/// A running registry. Dropping it kills the process and removes its files.
pub struct Registry {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
    options: RegistryBuilder,
    ca: TestCa,
    issuer: Option<TokenIssuer>,
    blob_storage: Option<BlobStorage>,
    agent: ureq::Agent,
}

impl Registry {
    pub fn builder() -> RegistryBuilder {
        RegistryBuilder {
            tls: false,
            auth: Auth::None,
            redirect_blobs: false,
            pull_through: None,
            client_certificates: false,
        }
    }

    /// Plain HTTP, no auth.
    pub fn plain() -> Registry {
        Registry::builder().start()
    }

    fn start(options: RegistryBuilder) -> Registry {
        let dir = tempfile::tempdir().expect("temp dir for the registry");
        let ca = TestCa::create(&dir.path().join("ca"));
        let issuer = match options.auth {
            Auth::Token {
                anonymous_pull,
                expires_in,
            } => Some(TokenIssuer::start(&ca, anonymous_pull, expires_in)),
            _ => None,
        };
        let storage_dir = dir.path().join("storage");
        std::fs::create_dir_all(&storage_dir).expect("storage dir");
        let blob_storage = options
            .redirect_blobs
            .then(|| BlobStorage::start(&storage_dir));
        // With client certificates required, the harness (its agent, skopeo through the cert
        // dir) shows one of its own.
        let harness_client = options.client_certificates.then(|| {
            let (cert, key) = ca.issue_client(&dir.path().join("ca"), "harness");
            std::fs::copy(&cert, ca.cert_dir.join("client.cert")).expect("copy client cert");
            std::fs::copy(&key, ca.cert_dir.join("client.key")).expect("copy client key");
            (cert, key)
        });
        let agent = test_agent_with_client(
            options.tls.then_some(ca.cert.as_path()),
            harness_client
                .as_ref()
                .map(|(cert, key)| (cert.as_path(), key.as_path())),
        );
        // A port found free may be taken before the registry binds it: try a few.
        for _ in 0..5 {
            let port = free_port();
            let config = dir.path().join("config.yml");
            std::fs::write(
                &config,
                registry_config(
                    &options,
                    port,
                    dir.path(),
                    &ca,
                    issuer.as_ref(),
                    blob_storage.as_ref(),
                ),
            )
            .expect("write registry config");
            let log = File::create(dir.path().join("registry.log")).expect("registry log");
            let mut child = Command::new("/usr/bin/docker-registry")
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log handle"))
                .stderr(log)
                .process_group(0)
                .spawn()
                .expect("start /usr/bin/docker-registry (apt-get install docker-registry)");
            if wait_until_ready(&mut child, &agent, &registry_url(options.tls, port)) {
                return Registry {
                    child,
                    dir,
                    port,
                    options,
                    ca,
                    issuer,
                    blob_storage,
                    agent,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let log = std::fs::read_to_string(dir.path().join("registry.log")).unwrap_or_default();
        panic!("docker-registry did not start; its log:\n{log}");
    }

    /// `http://127.0.0.1:PORT/` or `https://…`.
    pub fn url(&self) -> Url {
        registry_url(self.options.tls, self.port)
    }

    /// `127.0.0.1:PORT`, as it appears in image references.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn storage_dir(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// The test CA's certificate (PEM): it signed the registry's TLS certificate and the token
    /// issuer's key. Give it as `cafile`.
    pub fn ca_file(&self) -> &Path {
        &self.ca.cert
    }

    /// A directory holding `ca.crt` (the test CA), for `skopeo --dest-cert-dir`.
    pub fn cert_dir(&self) -> &Path {
        &self.ca.cert_dir
    }

    /// The credentials the registry accepts, if it wants any.
    pub fn credentials(&self) -> Option<Credentials> {
        (self.options.auth != Auth::None).then(|| Credentials {
            username: USER.to_owned(),
            password: PASSWORD.to_owned(),
        })
    }

    /// skopeo's `--dest-*` options to push here: TLS trust and credentials.
    pub fn skopeo_dest_args(&self) -> Vec<String> {
        let mut args = vec![if self.options.tls {
            format!("--dest-cert-dir={}", self.cert_dir().display())
        } else {
            "--dest-tls-verify=false".to_owned()
        }];
        if self.options.auth != Auth::None {
            args.push(format!("--dest-creds={USER}:{PASSWORD}"));
        }
        args
    }

    /// How many requests the token issuer answered (all of them, granted or not).
    pub fn token_requests(&self) -> usize {
        self.issuer
            .as_ref()
            .map_or(0, |issuer| issuer.requests.load(Ordering::SeqCst))
    }

    /// Makes the issuer's next token one the registry refuses as expired (the client is
    /// still told `expires_in` as usual), as when a registry revokes a token early.
    pub fn expire_next_token(&self) {
        let issuer = self
            .issuer
            .as_ref()
            .expect("only token registries have an issuer");
        issuer.expire_next.store(true, Ordering::SeqCst);
    }

    /// The redirect target for blobs, when the registry was built with `redirect_blobs`.
    pub fn blob_storage(&self) -> Option<&BlobStorage> {
        self.blob_storage.as_ref()
    }

    /// The test CA (for client certificates of a registry started with
    /// [`RegistryBuilder::client_certificates`]).
    pub fn ca(&self) -> &TestCa {
        &self.ca
    }

    /// The registry's "response completed" log lines (one per request answered 2xx/3xx),
    /// after the log has settled.
    pub fn log_lines(&self) -> Vec<String> {
        settled_file(&self.dir.path().join("registry.log"))
            .lines()
            .filter(|line| line.contains("msg=\"response completed\""))
            .map(str::to_owned)
            .collect()
    }

    /// How many times a blob was fetched with `GET` (any repository).
    /// How many requests with `method` for a path ending with `suffix` the registry logged.
    pub fn count_requests(&self, method: &str, suffix: &str) -> usize {
        self.log_lines()
            .iter()
            .filter(|line| log_field(line, "http.request.method").as_deref() == Some(method))
            .filter(|line| {
                log_field(line, "http.request.uri").is_some_and(|uri| uri.ends_with(suffix))
            })
            .count()
    }

    pub fn count_blob_fetches(&self, digest: &str) -> usize {
        let suffix = format!("/blobs/{digest}");
        self.log_lines()
            .iter()
            .filter(|line| log_field(line, "http.request.method").as_deref() == Some("GET"))
            .filter(|line| {
                log_field(line, "http.request.uri").is_some_and(|uri| uri.ends_with(&suffix))
            })
            .count()
    }

    /// Uploads a blob (POST + PUT) and returns its digest.
    pub fn push_blob(&self, repository: &str, bytes: &[u8]) -> String {
        let digest = sha256_digest(bytes);
        let auth = self.push_authorization(repository);
        let start = self
            .url()
            .join(&format!("v2/{repository}/blobs/uploads/"))
            .expect("URL");
        let response = with_auth(self.agent.post(start.as_str()), &auth)
            .send_empty()
            .expect("start blob upload");
        assert_eq!(response.status(), 202, "start blob upload to {start}");
        let location = response.headers().get("location").expect("upload Location");
        let mut upload = start
            .join(location.to_str().expect("Location text"))
            .expect("URL");
        upload.query_pairs_mut().append_pair("digest", &digest);
        let response = with_auth(self.agent.put(upload.as_str()), &auth)
            .header("Content-Type", "application/octet-stream")
            .send(bytes)
            .expect("finish blob upload");
        assert_eq!(response.status(), 201, "finish blob upload of {digest}");
        digest
    }

    /// Uploads a manifest under `reference` (a tag or its digest) and returns its digest.
    pub fn push_manifest(
        &self,
        repository: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> String {
        let auth = self.push_authorization(repository);
        let url = self
            .url()
            .join(&format!("v2/{repository}/manifests/{reference}"))
            .expect("URL");
        let mut response = with_auth(self.agent.put(url.as_str()), &auth)
            .header("Content-Type", media_type)
            .send(bytes)
            .expect("put manifest");
        let status = response.status();
        let body = response.body_mut().read_to_string().unwrap_or_default();
        assert_eq!(status, 201, "put manifest {repository}:{reference}: {body}");
        sha256_digest(bytes)
    }

    /// Deletes a manifest by digest (and with it every tag pointing to it).
    pub fn delete_manifest(&self, repository: &str, digest: &str) {
        let auth = self.push_authorization(repository);
        let url = self
            .url()
            .join(&format!("v2/{repository}/manifests/{digest}"))
            .expect("URL");
        let response = with_auth(self.agent.delete(url.as_str()), &auth)
            .call()
            .expect("delete");
        assert_eq!(response.status(), 202, "delete manifest {digest}");
    }

    /// Where the registry keeps a blob's bytes on disk (to corrupt it in a test).
    pub fn blob_data_path(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
        self.storage_dir()
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// The `Authorization` header value that lets the test push to `repository`.
    fn push_authorization(&self, repository: &str) -> Option<String> {
        let basic = || {
            let pair = format!("{USER}:{PASSWORD}");
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            )
        };
        match self.options.auth {
            Auth::None => None,
            Auth::Htpasswd => Some(basic()),
            Auth::Token { .. } => {
                let issuer = self
                    .issuer
                    .as_ref()
                    .expect("token registries have an issuer");
                let mut url = issuer.realm();
                url.query_pairs_mut()
                    .append_pair("service", TOKEN_SERVICE)
                    .append_pair(
                        "scope",
                        &format!("repository:{repository}:pull,push,delete"),
                    );
                let mut response = self
                    .agent
                    .get(url.as_str())
                    .header("Authorization", &basic())
                    .call()
                    .expect("token for pushing");
                let body: serde_json::Value =
                    serde_json::from_reader(response.body_mut().as_reader()).expect("token JSON");
                let token = body["token"].as_str().expect("token in the response");
                Some(format!("Bearer {token}"))
            }
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        // Child::kill sends SIGKILL to this PID only.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn registry_url(tls: bool, port: u16) -> Url {
    let scheme = if tls { "https" } else { "http" };
    Url::parse(&format!("{scheme}://127.0.0.1:{port}/")).expect("registry URL")
}

/// Polls `GET /v2/` until it answers 200 or 401; false if the process died or 15 s passed.
/// (notary-server answers `GET /v2/` with 200 too.)
pub fn wait_until_ready(child: &mut Child, agent: &ureq::Agent, base: &Url) -> bool {
    let deadline = Instant::now() + Duration::from_secs(15);
    let url = format!("{base}v2/");
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return false;
        }
        if let Ok(response) = agent.get(&url).call() {
            if matches!(response.status().as_u16(), 200 | 401) {
                return true;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn with_auth<B>(
    request: ureq::RequestBuilder<B>,
    auth: &Option<String>,
) -> ureq::RequestBuilder<B> {
    match auth {
        Some(value) => request.header("Authorization", value),
        None => request,
    }
}

/// A `ureq` agent for the harness itself: trusts the test CA, hands back every status.
pub fn test_agent(ca: Option<&Path>) -> ureq::Agent {
    test_agent_with_client(ca, None)
}

/// [`test_agent`] showing a client certificate (`cert`, `key` PEM files).
pub fn test_agent_with_client(ca: Option<&Path>, client: Option<(&Path, &Path)>) -> ureq::Agent {
    let mut tls = ureq::tls::TlsConfig::builder();
    if let Some(ca) = ca {
        let pem = std::fs::read(ca).expect("read test CA");
        let cert = ureq::tls::Certificate::from_pem(&pem).expect("test CA PEM");
        tls = tls.root_certs(ureq::tls::RootCerts::new_with_certs(&[cert]));
    }
    if let Some((cert, key)) = client {
        let cert = ureq::tls::Certificate::from_pem(&std::fs::read(cert).expect("client cert"))
            .expect("client certificate PEM");
        let key = ureq::tls::PrivateKey::from_pem(&std::fs::read(key).expect("client key"))
            .expect("client key PEM");
        tls = tls.client_cert(Some(ureq::tls::ClientCert::new_with_certs(&[cert], key)));
    }
    ureq::Agent::config_builder()
        .tls_config(tls.build())
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .new_agent()
}

fn registry_config(
    options: &RegistryBuilder,
    port: u16,
    dir: &Path,
    ca: &TestCa,
    issuer: Option<&TokenIssuer>,
    blob_storage: Option<&BlobStorage>,
) -> String {
    let mut config = format!(
        "version: 0.1\n\
         log:\n  level: info\n  accesslog:\n    disabled: false\n\
         storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n\
         http:\n  addr: 127.0.0.1:{port}\n  secret: test-only\n",
        storage = dir.join("storage").display(),
    );
    if options.tls {
        config += &format!(
            "  tls:\n    certificate: {}\n    key: {}\n",
            ca.server_cert.display(),
            ca.server_key.display()
        );
        if options.client_certificates {
            config += &format!("    clientcas:\n      - {}\n", ca.cert.display());
        }
    }
    match options.auth {
        Auth::None => {}
        Auth::Htpasswd => {
            let output = Command::new("htpasswd")
                .args(["-Bbn", USER, PASSWORD])
                .output()
                .expect("run htpasswd (apt-get install apache2-utils)");
            assert!(output.status.success(), "htpasswd failed");
            let path = dir.join("htpasswd");
            std::fs::write(&path, &output.stdout).expect("write htpasswd");
            config += &format!(
                "auth:\n  htpasswd:\n    realm: concil-test\n    path: {}\n",
                path.display()
            );
        }
        Auth::Token { .. } => {
            let issuer = issuer.expect("token auth needs the issuer");
            config += &format!(
                "auth:\n  token:\n    realm: {realm}\n    service: {TOKEN_SERVICE}\n    \
                 issuer: {TOKEN_ISSUER}\n    rootcertbundle: {bundle}\n",
                realm = issuer.realm(),
                bundle = ca.cert.display(),
            );
        }
    }
    if let Some(remote) = &options.pull_through {
        config += &format!(
            "proxy:\n  remoteurl: {}\n",
            remote.as_str().trim_end_matches('/')
        );
    }
    if let Some(storage) = blob_storage {
        config += &format!(
            "middleware:\n  storage:\n    - name: redirect\n      options:\n        baseurl: {}\n",
            storage.url()
        );
    }
    config
}

pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

/// The file's text once it stopped growing (the registry logs a request just after
/// answering it), waiting at most 2 s.
fn settled_file(path: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut text = std::fs::read_to_string(path).unwrap_or_default();
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let again = std::fs::read_to_string(path).unwrap_or_default();
        if again.len() == text.len() || Instant::now() > deadline {
            return again;
        }
        text = again;
    }
}

/// A `key=value` or `key="quoted value"` field of a logrus text line.
fn log_field(line: &str, key: &str) -> Option<String> {
    let start = line.find(&format!(" {key}="))? + key.len() + 2;
    let rest = line.get(start..)?;
    if let Some(quoted) = rest.strip_prefix('"') {
        let mut value = String::new();
        let mut chars = quoted.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => value.extend(chars.next()),
                '"' => return Some(value),
                _ => value.push(c),
            }
        }
        None
    } else {
        Some(rest.split(' ').next().unwrap_or_default().to_owned())
    }
}

/// A private CA (EC P-256) with a server certificate for 127.0.0.1/localhost and a
/// token-signing certificate, all made with `openssl`.
pub struct TestCa {
    /// Holds only `ca.crt`: skopeo takes any `*.key` in a cert dir for a client key.
    cert_dir: PathBuf,
    pub cert: PathBuf,
    /// The CA's private key (PEM), to issue more certificates with [`openssl`].
    pub key: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// PKCS#8 DER of the token-signing key (for ring).
    signing_key: Vec<u8>,
    /// DER of the token-signing certificate (for the JWT's `x5c`).
    signing_cert: Vec<u8>,
}

impl TestCa {
    /// A client certificate (`clientAuth`) and its key issued by this CA, as
    /// `dir/NAME.crt` and `dir/NAME.key`.
    pub fn issue_client(&self, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        self.issue_client_for_days(dir, name, 2)
    }

    /// [`TestCa::issue_client`] valid for `days` from now (negative: expired that long ago).
    pub fn issue_client_for_days(&self, dir: &Path, name: &str, days: i32) -> (PathBuf, PathBuf) {
        let (crt, key, csr, ext) = (
            dir.join(format!("{name}.crt")),
            dir.join(format!("{name}.key")),
            dir.join(format!("{name}.csr")),
            dir.join(format!("{name}.ext")),
        );
        std::fs::write(
            &ext,
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n",
        )
        .expect("write extensions");
        let text = |path: &Path| path.to_str().expect("UTF-8 path").to_owned();
        crate::openssl(
            dir,
            &[
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                &text(&key),
                "-out",
                &text(&csr),
                "-subj",
                &format!("/CN={name}"),
            ],
        );
        crate::openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &text(&csr),
                "-CA",
                &text(&self.cert),
                "-CAkey",
                &text(&self.key),
                "-CAcreateserial",
                "-days",
                &days.to_string(),
                "-out",
                &text(&crt),
                "-extfile",
                &text(&ext),
            ],
        );
        (crt, key)
    }

    pub fn create(dir: &Path) -> TestCa {
        std::fs::create_dir_all(dir).expect("CA dir");
        let p = |name: &str| dir.join(name);
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        openssl_parts(
            dir,
            &[
                &["req", "-x509", "-new"],
                &ec[..],
                &[
                    "-keyout",
                    "ca.key",
                    "-out",
                    "ca.crt",
                    "-days",
                    "2",
                    "-subj",
                    "/CN=concil test CA",
                    "-addext",
                    "basicConstraints=critical,CA:TRUE",
                    "-addext",
                    "keyUsage=critical,keyCertSign,cRLSign",
                ],
            ],
        );
        let issue = |name: &str, subject: &str, extensions: &str| {
            std::fs::write(p(&format!("{name}.ext")), extensions).expect("write extensions");
            openssl_parts(
                dir,
                &[
                    &["req", "-new"],
                    &ec[..],
                    &[
                        "-keyout",
                        &format!("{name}.key"),
                        "-out",
                        &format!("{name}.csr"),
                        "-subj",
                        subject,
                    ],
                ],
            );
            openssl_parts(
                dir,
                &[&[
                    "x509",
                    "-req",
                    "-in",
                    &format!("{name}.csr"),
                    "-CA",
                    "ca.crt",
                    "-CAkey",
                    "ca.key",
                    "-CAcreateserial",
                    "-days",
                    "2",
                    "-out",
                    &format!("{name}.crt"),
                    "-extfile",
                    &format!("{name}.ext"),
                ]],
            );
        };
        issue(
            "server",
            "/CN=127.0.0.1",
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
             keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
        );
        issue(
            "signing",
            "/CN=concil test token issuer",
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n",
        );
        openssl_parts(
            dir,
            &[&[
                "pkcs8",
                "-topk8",
                "-nocrypt",
                "-in",
                "signing.key",
                "-outform",
                "DER",
                "-out",
                "signing.pk8",
            ]],
        );
        openssl_parts(
            dir,
            &[&[
                "x509",
                "-in",
                "signing.crt",
                "-outform",
                "DER",
                "-out",
                "signing.der",
            ]],
        );
        let cert_dir = p("certs");
        std::fs::create_dir(&cert_dir).expect("cert dir");
        std::fs::copy(p("ca.crt"), cert_dir.join("ca.crt")).expect("copy CA certificate");
        TestCa {
            cert_dir,
            cert: p("ca.crt"),
            key: p("ca.key"),
            server_cert: p("server.crt"),
            server_key: p("server.key"),
            signing_key: std::fs::read(p("signing.pk8")).expect("signing key"),
            signing_cert: std::fs::read(p("signing.der")).expect("signing cert"),
        }
    }
}

/// `openssl` in `dir` with the concatenated `parts` of its arguments.
pub fn openssl_parts(dir: &Path, parts: &[&[&str]]) {
    crate::openssl(dir, &parts.concat());
}

/// One HTTP/1.1 request as the tiny servers below see it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    pub headers: Vec<(String, String)>,
    /// The body (by its `Content-Length`, at most 64 KiB).
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// An answer: status, content type, body and any further headers.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    /// Written as they are (a hostile server's headers may say anything).
    pub headers: Vec<(String, String)>,
}

/// A minimal HTTP server on 127.0.0.1 answering one connection at a time (with
/// `Connection: close`) on its own thread; stopped and joined on drop. Also the hostile
/// registry and token service of the security tests (any status, headers and body).
pub struct HttpServer {
    pub port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl HttpServer {
    pub fn start(handler: impl Fn(&Request) -> Response + Send + 'static) -> HttpServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind test HTTP server");
        let port = listener.local_addr().expect("address").port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    // A client that misbehaves only loses its own request.
                    let _ = serve_one(stream, &handler);
                }
            }
        });
        HttpServer {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve_one(stream: TcpStream, handler: &impl Fn(&Request) -> Response) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut parts = request_line.split_whitespace();
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
    let length = headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.parse::<u64>().ok())
        .unwrap_or(0)
        .min(64 * 1024);
    let mut body = Vec::new();
    (&mut reader).take(length).read_to_end(&mut body)?;
    let request = Request {
        method: method.to_owned(),
        target: target.to_owned(),
        headers,
        body,
    };
    let response = handler(&request);
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 {} X\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        response.status,
        response.content_type,
        response.body.len()
    )?;
    for (name, value) in &response.headers {
        write!(stream, "{name}: {value}\r\n")?;
    }
    stream.write_all(b"\r\n")?;
    if request.method != "HEAD" {
        stream.write_all(&response.body)?;
    }
    stream.flush()
}

/// The bearer-token service the registry's `auth: token:` points to. Checks basic credentials
/// ([`USER`]/[`PASSWORD`]) and answers with an ES256 JWT granting the requested scopes
/// (only `pull`, and only with `anonymous_pull`, to callers without credentials).
pub struct TokenIssuer {
    server: HttpServer,
    requests: Arc<AtomicUsize>,
    expire_next: Arc<AtomicBool>,
}

impl TokenIssuer {
    fn start(ca: &TestCa, anonymous_pull: bool, expires_in: u64) -> TokenIssuer {
        let rng = ring::rand::SystemRandom::new();
        let key = ring::signature::EcdsaKeyPair::from_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &ca.signing_key,
            &rng,
        )
        .expect("token signing key");
        let x5c = base64::engine::general_purpose::STANDARD.encode(&ca.signing_cert);
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&requests);
        let expire_next = Arc::new(AtomicBool::new(false));
        let expiring = Arc::clone(&expire_next);
        let serial = Mutex::new(0u64);
        let server = HttpServer::start(move |request| {
            counter.fetch_add(1, Ordering::SeqCst);
            let unauthorized = |message: &str| Response {
                status: 401,
                content_type: "application/json",
                body: serde_json::json!({"errors": [{"code": "UNAUTHORIZED", "message": message}]})
                    .to_string()
                    .into_bytes(),
                headers: Vec::new(),
            };
            // Docker's OAuth2 flow: a refresh token (an "identity token") for an access token.
            let form: Vec<(String, String)> = url::form_urlencoded::parse(&request.body)
                .into_owned()
                .collect();
            let field = |name: &str| {
                form.iter()
                    .find(|(key, _)| key == name)
                    .map(|(_, value)| value.as_str())
            };
            let refresh = request.method == "POST";
            if refresh
                && (field("grant_type") != Some("refresh_token")
                    || field("refresh_token") != Some(REFRESH_TOKEN))
            {
                return unauthorized("invalid refresh token");
            }
            let user = match request.header("authorization") {
                _ if refresh => Some(USER),
                Some(value) => {
                    let expected = format!(
                        "Basic {}",
                        base64::engine::general_purpose::STANDARD
                            .encode(format!("{USER}:{PASSWORD}"))
                    );
                    if value != expected {
                        return unauthorized("wrong user name or password");
                    }
                    Some(USER)
                }
                None if anonymous_pull => None,
                None => return unauthorized("authentication required"),
            };
            let url = Url::parse(&format!("http://issuer{}", request.target)).expect("target");
            let scopes: Vec<(String, String)> =
                url.query_pairs().into_owned().chain(form.clone()).collect();
            let access: Vec<serde_json::Value> = scopes
                .iter()
                .filter(|(key, _)| key == "scope")
                .filter_map(|(_, scope)| {
                    let (kind, rest) = scope.split_once(':')?;
                    let (name, actions) = rest.rsplit_once(':')?;
                    let actions: Vec<&str> = actions
                        .split(',')
                        .filter(|action| user.is_some() || *action == "pull")
                        .collect();
                    Some(serde_json::json!({"type": kind, "name": name, "actions": actions}))
                })
                .collect();
            let mut now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .expect("clock")
                .as_secs();
            if expiring.swap(false, Ordering::SeqCst) {
                // Past the registry's 60 s leeway, while the client is told it is fresh.
                now -= 3600;
            }
            let jti = {
                let mut serial = serial.lock().expect("serial");
                *serial += 1;
                *serial
            };
            let header = serde_json::json!({"typ": "JWT", "alg": "ES256", "x5c": [x5c]});
            let claims = serde_json::json!({
                "iss": TOKEN_ISSUER, "sub": user.unwrap_or(""), "aud": TOKEN_SERVICE,
                // The JWT itself stays one the registry accepts; only the answer's
                // `expires_in` carries what a test asks for (up to a hostile u64::MAX).
                "exp": now + expires_in.min(86_400), "nbf": now - 10, "iat": now, "jti": jti.to_string(),
                "access": access,
            });
            let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
            let signing_input = format!(
                "{}.{}",
                b64(header.to_string().as_bytes()),
                b64(claims.to_string().as_bytes())
            );
            let signature = key
                .sign(&rng, signing_input.as_bytes())
                .expect("sign token");
            let token = format!("{signing_input}.{}", b64(signature.as_ref()));
            let answer = if refresh {
                serde_json::json!({"access_token": token, "expires_in": expires_in})
            } else {
                serde_json::json!({"token": token, "expires_in": expires_in})
            };
            Response {
                status: 200,
                content_type: "application/json",
                body: answer.to_string().into_bytes(),
                headers: Vec::new(),
            }
        });
        TokenIssuer {
            server,
            requests,
            expire_next,
        }
    }

    fn realm(&self) -> Url {
        Url::parse(&format!("http://127.0.0.1:{}/token", self.server.port)).expect("realm")
    }
}

/// Where the registry redirects blob downloads: serves the registry's own stored files by
/// path and records, per request, whether an `Authorization` header came along.
pub struct BlobStorage {
    server: HttpServer,
    requests: Arc<Mutex<Vec<(String, bool)>>>,
}

impl BlobStorage {
    fn start(storage_dir: &Path) -> BlobStorage {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&requests);
        let root = storage_dir.to_owned();
        let server = HttpServer::start(move |request| {
            let path = request
                .target
                .split('?')
                .next()
                .unwrap_or_default()
                .to_owned();
            seen.lock()
                .expect("requests")
                .push((path.clone(), request.header("authorization").is_some()));
            let file = root.join(path.trim_start_matches('/'));
            match std::fs::File::open(&file) {
                Ok(mut f) if !path.contains("..") => {
                    let mut body = Vec::new();
                    f.read_to_end(&mut body).expect("read stored blob");
                    Response {
                        status: 200,
                        content_type: "application/octet-stream",
                        body,
                        headers: Vec::new(),
                    }
                }
                _ => Response {
                    status: 404,
                    content_type: "text/plain",
                    body: b"no such blob".to_vec(),
                    headers: Vec::new(),
                },
            }
        });
        BlobStorage { server, requests }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.server.port)
    }

    /// The paths requested so far, each with whether it carried `Authorization`.
    pub fn requests(&self) -> Vec<(String, bool)> {
        self.requests.lock().expect("requests").clone()
    }
}

/// An image pushed by [`Registry::push_test_image`]: every byte the registry stores for it.
#[derive(Debug, Clone)]
pub struct PushedImage {
    pub manifest: Vec<u8>,
    pub manifest_digest: String,
    pub media_type: &'static str,
    pub config: Vec<u8>,
    pub config_digest: String,
    /// A real gzip-compressed tar made by `tar -cz`.
    pub layer: Vec<u8>,
    pub layer_digest: String,
}

/// Docker or OCI flavour of [`Registry::push_test_image`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    DockerV2,
    Oci,
}

/// A real layer: GNU tar of `hello.txt` holding `content`, gzip-compressed; with the tar's
/// digest (its diff_id).
pub fn hello_layer(content: &str) -> (Vec<u8>, String) {
    let rootfs = tempfile::tempdir().expect("rootfs dir");
    std::fs::write(rootfs.path().join("hello.txt"), content).expect("write hello.txt");
    let output = Command::new("tar")
        .args([
            "--sort=name",
            "--mtime=@0",
            "--owner=0",
            "--group=0",
            "--numeric-owner",
            "-cf",
            "-",
            "-C",
        ])
        .arg(rootfs.path())
        .arg("hello.txt")
        .output()
        .expect("run tar");
    assert!(output.status.success(), "tar failed");
    let tar = output.stdout;
    let mut gzip = Command::new("gzip")
        .args(["-n", "-c"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run gzip");
    let mut stdin = gzip.stdin.take().expect("gzip stdin");
    let writer = std::thread::spawn(move || stdin.write_all(&tar).map(|()| sha256_digest(&tar)));
    let output = gzip.wait_with_output().expect("gzip output");
    let diff_id = writer.join().expect("gzip writer").expect("write to gzip");
    assert!(output.status.success(), "gzip failed");
    (output.stdout, diff_id)
}

impl Registry {
    /// Pushes a one-layer image (a real tar.gz with `hello.txt` holding `content`) as
    /// `repository:tag` and returns what was stored. `content` makes images distinct.
    pub fn push_test_image(
        &self,
        repository: &str,
        tag: &str,
        format: Format,
        content: &str,
    ) -> PushedImage {
        let (layer, diff_id) = hello_layer(content);

        let (manifest_type, config_type, layer_type) = match format {
            Format::DockerV2 => (
                "application/vnd.docker.distribution.manifest.v2+json",
                "application/vnd.docker.container.image.v1+json",
                "application/vnd.docker.image.rootfs.diff.tar.gzip",
            ),
            Format::Oci => (
                "application/vnd.oci.image.manifest.v1+json",
                "application/vnd.oci.image.config.v1+json",
                "application/vnd.oci.image.layer.v1.tar+gzip",
            ),
        };
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "config": {"Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        }))
        .expect("config JSON");
        let config_digest = self.push_blob(repository, &config);
        let layer_digest = self.push_blob(repository, &layer);
        let manifest = serde_json::to_vec_pretty(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": manifest_type,
            "config": {"mediaType": config_type, "size": config.len(), "digest": config_digest},
            "layers": [{"mediaType": layer_type, "size": layer.len(), "digest": layer_digest}],
            "annotations": {"org.example.note": "aaaa"},
        }))
        .expect("manifest JSON");
        let manifest_digest = self.push_manifest(repository, tag, manifest_type, &manifest);
        PushedImage {
            manifest,
            manifest_digest,
            media_type: manifest_type,
            config,
            config_digest,
            layer,
            layer_digest,
        }
    }

    /// Pushes an index (OCI) or manifest list (Docker) of `images`, all as linux/amd64 unless
    /// `platforms` says otherwise, as `repository:tag`; returns its bytes and digest.
    pub fn push_index(
        &self,
        repository: &str,
        tag: &str,
        format: Format,
        images: &[(&PushedImage, &str)],
    ) -> (Vec<u8>, String) {
        let media_type = match format {
            Format::DockerV2 => "application/vnd.docker.distribution.manifest.list.v2+json",
            Format::Oci => "application/vnd.oci.image.index.v1+json",
        };
        let manifests: Vec<serde_json::Value> = images
            .iter()
            .map(|(image, platform)| {
                let (os, arch) = platform.split_once('/').expect("os/arch");
                serde_json::json!({
                    "mediaType": image.media_type, "size": image.manifest.len(),
                    "digest": image.manifest_digest,
                    "platform": {"os": os, "architecture": arch},
                })
            })
            .collect();
        let index = serde_json::to_vec_pretty(&serde_json::json!({
            "schemaVersion": 2, "mediaType": media_type, "manifests": manifests,
        }))
        .expect("index JSON");
        let digest = self.push_manifest(repository, tag, media_type, &index);
        (index, digest)
    }
}
