//! Notary v1 (Docker Content Trust) peers: Debian's `notary-server`, `notary-signer` and the
//! real `notary` client (package `notary` 0.7), started by the tests on 127.0.0.1.
//!
//! [`NotaryServer`] serves TUF metadata from memory storage, over HTTPS with a certificate from a
//! [`TestCa`] (or plain HTTP). Its timestamp key is ed25519 from the server's local trust
//! service, or ecdsa from a `notary-signer` it starts beside it: notary-server ignores
//! `key_algorithm` for a local trust service, and notary-signer refuses `rsa` ("CreateKey:
//! unsupported algorithm"), so those are the only two timestamp keys the real server makes.
//!
//! [`NotaryPublisher`] drives the `notary` CLI with its own trust dir and fixed passphrases:
//! init, addhash, publish, delegations (as `docker trust signer add` sets them up), key
//! rotation. [`SigningCa`] makes root certificates (CN = GUN) and delegation certificates
//! signed by a CA of its own, for `notary init --rootkey/--rootcert` and trust pinning.
//!
//! A GUN for a registry at `127.0.0.1:PORT` is `127.0.0.1:PORT/repository`, as Docker forms it.

use std::fmt::Write as _;
use std::fs::File;
use std::io::Write as _;
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use url::Url;

use crate::registry::{free_port, openssl_parts, test_agent, wait_until_ready, TestCa};

/// Passphrase of every root key (`NOTARY_ROOT_PASSPHRASE`, and the encryption of
/// [`SigningCa::root_key`] files).
pub const ROOT_PASSPHRASE: &str = "concil test root passphrase";
const TARGETS_PASSPHRASE: &str = "concil test targets passphrase";
const SNAPSHOT_PASSPHRASE: &str = "concil test snapshot passphrase";
const DELEGATION_PASSPHRASE: &str = "concil test delegation passphrase";

/// The timestamp key the server signs `timestamp.json` with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampKey {
    /// Key type `ed25519`, method `eddsa`: the server's local trust service (always ed25519).
    Ed25519,
    /// Key type `ecdsa`, method `ecdsa`: a `notary-signer` with `key_algorithm: ecdsa`.
    Ecdsa,
}

/// Chooses the variant of notary-server to start.
#[derive(Debug, Clone)]
pub struct NotaryServerBuilder {
    tls: bool,
    timestamp_key: TimestampKey,
}

impl NotaryServerBuilder {
    /// Serve plain HTTP instead of HTTPS.
    pub fn plain_http(mut self) -> Self {
        self.tls = false;
        self
    }

    pub fn timestamp_key(mut self, key: TimestampKey) -> Self {
        self.timestamp_key = key;
        self
    }

    pub fn start(self) -> NotaryServer {
        NotaryServer::launch(self)
    }
}

/// A running notary-server (and its notary-signer, if any). Dropping it kills them by PID.
pub struct NotaryServer {
    server: Child,
    /// Holds the timestamp keys for [`TimestampKey::Ecdsa`]; outlives [`NotaryServer::restart`].
    signer: Option<Child>,
    dir: tempfile::TempDir,
    port: u16,
    tls: bool,
    ca: TestCa,
    agent: ureq::Agent,
}

impl NotaryServer {
    pub fn builder() -> NotaryServerBuilder {
        NotaryServerBuilder {
            tls: true,
            timestamp_key: TimestampKey::Ed25519,
        }
    }

    /// HTTPS with the test CA, memory storage, ed25519 timestamps from the local trust service.
    pub fn start() -> NotaryServer {
        NotaryServer::builder().start()
    }

    fn launch(options: NotaryServerBuilder) -> NotaryServer {
        let dir = tempfile::tempdir().expect("temp dir for notary-server");
        let ca = TestCa::create(&dir.path().join("ca"));
        let trust_service = match options.timestamp_key {
            TimestampKey::Ed25519 => None,
            TimestampKey::Ecdsa => Some(start_signer(dir.path(), &ca)),
        };
        let agent = test_agent(options.tls.then_some(ca.cert.as_path()));
        let config = dir.path().join("server.json");
        // A port found free may be taken before the server binds it: try a few.
        for _ in 0..5 {
            let port = free_port();
            let mut server_config = serde_json::json!({
                "server": {"http_addr": format!("127.0.0.1:{port}")},
                "trust_service": {"type": "local"},
                "storage": {"backend": "memory"},
                "logging": {"level": "info"},
            });
            if options.tls {
                server_config["server"]["tls_cert_file"] =
                    ca.server_cert.display().to_string().into();
                server_config["server"]["tls_key_file"] =
                    ca.server_key.display().to_string().into();
            }
            if let Some((_, signer_port)) = &trust_service {
                server_config["trust_service"] = serde_json::json!({
                    "type": "remote", "hostname": "127.0.0.1", "port": signer_port.to_string(),
                    "tls_ca_file": ca.cert, "key_algorithm": "ecdsa",
                });
            }
            std::fs::write(&config, server_config.to_string()).expect("write server config");
            let mut server = spawn_logged("notary-server", &config, &dir.path().join("server.log"));
            if wait_until_ready(&mut server, &agent, &server_url(options.tls, port)) {
                return NotaryServer {
                    server,
                    signer: trust_service.map(|(signer, _)| signer),
                    dir,
                    port,
                    tls: options.tls,
                    ca,
                    agent,
                };
            }
            let _ = server.kill();
            let _ = server.wait();
        }
        panic!(
            "notary-server did not start; its log:\n{}",
            log_text(dir.path())
        );
    }

    /// `https://127.0.0.1:PORT/` (or `http://…` for plain HTTP).
    pub fn url(&self) -> Url {
        server_url(self.tls, self.port)
    }

    /// The test CA (PEM) that signed the server's certificate; `None` for plain HTTP.
    pub fn ca_file(&self) -> Option<&Path> {
        self.tls.then_some(self.ca.cert.as_path())
    }

    /// Stops and starts notary-server on the same port: memory storage forgets every GUN
    /// (the signer, if any, keeps running).
    pub fn restart(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
        let config = self.dir.path().join("server.json");
        self.server = spawn_logged(
            "notary-server",
            &config,
            &self.dir.path().join("server.log"),
        );
        let url = self.url();
        assert!(
            wait_until_ready(&mut self.server, &self.agent, &url),
            "notary-server did not restart on port {}; its log:\n{}",
            self.port,
            log_text(self.dir.path())
        );
    }

    /// `GET /v2/<gun>/_trust/tuf/<role>.json`: its status and body as served. `role` is a
    /// role name (`root`, `targets/releases`) or a consistent name (`2.root`).
    pub fn fetch_metadata(&self, gun: &str, role: &str) -> (u16, Vec<u8>) {
        let url = format!("{}v2/{gun}/_trust/tuf/{role}.json", self.url());
        let mut response = self
            .agent
            .get(&url)
            .call()
            .unwrap_or_else(|error| panic!("GET {url}: {error}"));
        let body = response
            .body_mut()
            .read_to_vec()
            .unwrap_or_else(|error| panic!("body of {url}: {error}"));
        (response.status().as_u16(), body)
    }

    /// The metadata of `role` as served (see [`NotaryServer::fetch_metadata`]); panics unless 200.
    pub fn metadata(&self, gun: &str, role: &str) -> Vec<u8> {
        let (status, body) = self.fetch_metadata(gun, role);
        assert_eq!(
            status,
            200,
            "GET {role}.json of {gun}: {}",
            String::from_utf8_lossy(&body)
        );
        body
    }

    /// The server's (and signer's) logs so far, for failure messages.
    pub fn log(&self) -> String {
        log_text(self.dir.path())
    }
}

impl Drop for NotaryServer {
    fn drop(&mut self) {
        // Child::kill sends SIGKILL to this PID only.
        let _ = self.server.kill();
        let _ = self.server.wait();
        if let Some(signer) = &mut self.signer {
            let _ = signer.kill();
            let _ = signer.wait();
        }
    }
}

fn server_url(tls: bool, port: u16) -> Url {
    let scheme = if tls { "https" } else { "http" };
    Url::parse(&format!("{scheme}://127.0.0.1:{port}/")).expect("notary-server URL")
}

/// Starts `/usr/bin/<program> -config CONFIG` in its own process group, logging to `log`.
fn spawn_logged(program: &str, config: &Path, log: &Path) -> Child {
    let log = File::options()
        .create(true)
        .append(true)
        .open(log)
        .expect("log file");
    Command::new(Path::new("/usr/bin").join(program))
        .arg("-config")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log handle"))
        .stderr(log)
        .process_group(0)
        .spawn()
        .unwrap_or_else(|error| {
            panic!("start /usr/bin/{program} (apt-get install notary): {error}")
        })
}

/// Starts notary-signer (gRPC over TLS, memory key storage) and returns it with its port once
/// it accepts connections.
fn start_signer(dir: &Path, ca: &TestCa) -> (Child, u16) {
    let config = dir.join("signer.json");
    for _ in 0..5 {
        let port = free_port();
        let signer_config = serde_json::json!({
            "server": {"grpc_addr": format!("127.0.0.1:{port}"),
                       "tls_cert_file": ca.server_cert, "tls_key_file": ca.server_key},
            "storage": {"backend": "memory"},
            "logging": {"level": "info"},
        });
        std::fs::write(&config, signer_config.to_string()).expect("write signer config");
        let mut signer = spawn_logged("notary-signer", &config, &dir.join("signer.log"));
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline && matches!(signer.try_wait(), Ok(None)) {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return (signer, port);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = signer.kill();
        let _ = signer.wait();
    }
    panic!("notary-signer did not start; its log:\n{}", log_text(dir));
}

fn log_text(dir: &Path) -> String {
    ["server.log", "signer.log"]
        .iter()
        .filter_map(|name| {
            let text = std::fs::read_to_string(dir.join(name)).ok()?;
            Some(format!("--- {name}\n{text}"))
        })
        .collect()
}

/// A failed `notary` CLI run, or unreadable client metadata.
#[derive(thiserror::Error)]
pub enum NotaryCliError {
    #[error("could not run `{command}`: {source}")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}):\n{stderr}{stdout}")]
    Failed {
        command: String,
        status: ExitStatus,
        stdout: String,
        stderr: String,
    },
    #[error("client metadata {path}: {reason}")]
    Metadata { path: PathBuf, reason: String },
}

/// Tests `unwrap()` these: show the command and its output with real line breaks.
impl std::fmt::Debug for NotaryCliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// The real `notary` client with a trust dir of its own, talking to one [`NotaryServer`].
/// Passphrases come from the environment of each run (never the test process's).
pub struct NotaryPublisher {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl NotaryPublisher {
    /// A client of `server` (trusting its test CA) with an empty trust dir.
    pub fn new(server: &NotaryServer) -> NotaryPublisher {
        let dir = tempfile::tempdir().expect("temp dir for the notary client");
        let mut remote = serde_json::json!({"url": server.url().as_str().trim_end_matches('/')});
        if let Some(ca) = server.ca_file() {
            remote["root_ca"] = ca.display().to_string().into();
        }
        let config = dir.path().join("config.json");
        let client_config = serde_json::json!({
            "trust_dir": dir.path().join("trust"), "remote_server": remote,
        });
        std::fs::write(&config, client_config.to_string()).expect("write notary client config");
        NotaryPublisher { dir, config }
    }

    /// The client's trust dir (`private/` keys, `tuf/<gun>/metadata/` cached metadata).
    pub fn trust_dir(&self) -> PathBuf {
        self.dir.path().join("trust")
    }

    /// `notary init GUN`: new root key (ecdsa-x509, self-signed) on first use, new targets and
    /// snapshot keys; staged until [`NotaryPublisher::publish`].
    pub fn init(&self, gun: &str) -> Result<(), NotaryCliError> {
        self.run(&["init", gun], None).map(drop)
    }

    /// `notary init GUN --rootkey KEY --rootcert CERT` with a key from [`SigningCa::root_key`].
    pub fn init_with_root_key(&self, gun: &str, root: &KeyPair) -> Result<(), NotaryCliError> {
        let key = root.key_file.display().to_string();
        let cert = root.cert_file.display().to_string();
        self.run(&["init", gun, "--rootkey", &key, "--rootcert", &cert], None)
            .map(drop)
    }

    /// `notary addhash GUN TAG SIZE --sha256 HEX` (into `targets`), staged.
    pub fn add_hash(
        &self,
        gun: &str,
        tag: &str,
        size: u64,
        sha256_hex: &str,
    ) -> Result<(), NotaryCliError> {
        let size = size.to_string();
        self.run(&["addhash", gun, tag, &size, "--sha256", sha256_hex], None)
            .map(drop)
    }

    /// `notary addhash … --roles ROLE`: the target goes into a delegation (as `docker trust
    /// sign` does once `targets/releases` exists), signed by its imported key(s); staged.
    pub fn add_hash_to_role(
        &self,
        gun: &str,
        role: &str,
        tag: &str,
        size: u64,
        sha256_hex: &str,
    ) -> Result<(), NotaryCliError> {
        let size = size.to_string();
        self.run(
            &[
                "addhash", gun, tag, &size, "--sha256", sha256_hex, "--roles", role,
            ],
            None,
        )
        .map(drop)
    }

    /// `notary remove GUN TAG` (from `targets`), staged.
    pub fn remove(&self, gun: &str, tag: &str) -> Result<(), NotaryCliError> {
        self.run(&["remove", gun, tag], None).map(drop)
    }

    /// `notary publish GUN`: signs what is staged and pushes it.
    pub fn publish(&self, gun: &str) -> Result<(), NotaryCliError> {
        self.run(&["publish", gun], None).map(drop)
    }

    /// What `docker trust signer add` + `docker trust key load` amount to: adds the
    /// certificate's key to delegation `role` (all paths) and publishes, then imports the
    /// private key (unencrypted PKCS#8 PEM) so [`NotaryPublisher::add_hash_to_role`] signs
    /// with it. Call it again with another key pair to add a second key to the same role.
    pub fn delegation_add(
        &self,
        gun: &str,
        role: &str,
        cert: &Path,
        key: &Path,
    ) -> Result<(), NotaryCliError> {
        let cert = cert.display().to_string();
        let key = key.display().to_string();
        self.run(
            &[
                "delegation",
                "add",
                gun,
                role,
                &cert,
                "--all-paths",
                "--publish",
            ],
            None,
        )?;
        self.run(&["key", "import", &key, "--role", role, "--gun", gun], None)
            .map(drop)
    }

    /// `notary key rotate GUN ROLE` with a new client-side key, published at once. For
    /// `root` the new root is signed by the old and the new root key.
    pub fn rotate_key(&self, gun: &str, role: &str) -> Result<(), NotaryCliError> {
        // Root rotation asks "Are you sure you want to proceed?".
        self.run(&["key", "rotate", gun, role], Some(b"yes\n"))
            .map(drop)
    }

    /// `notary key rotate GUN ROLE --server-managed`: the server holds the new key
    /// (`timestamp`, or `snapshot`), published at once.
    pub fn rotate_key_to_server(&self, gun: &str, role: &str) -> Result<(), NotaryCliError> {
        self.run(&["key", "rotate", gun, role, "--server-managed"], None)
            .map(drop)
    }

    /// `notary list GUN` as printed (the targets the real client verifies and sees).
    pub fn list(&self, gun: &str) -> Result<String, NotaryCliError> {
        self.run(&["list", gun], None)
    }

    /// The root certificate IDs of `gun` (`root.json`'s `roles.root.keyids`, what Docker's
    /// trust pinning `certs` lists), from the client's copy of the last published root.
    /// Not what `notary key list` prints: that is the ID of the bare public key.
    pub fn root_cert_ids(&self, gun: &str) -> Result<Vec<String>, NotaryCliError> {
        let path = self
            .trust_dir()
            .join("tuf")
            .join(gun)
            .join("metadata/root.json");
        let failed = |reason: String| NotaryCliError::Metadata {
            path: path.clone(),
            reason,
        };
        let bytes = std::fs::read(&path).map_err(|error| failed(error.to_string()))?;
        let root: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|error| failed(error.to_string()))?;
        root.pointer("/signed/roles/root/keyids")
            .and_then(serde_json::Value::as_array)
            .map(|ids| {
                ids.iter()
                    .filter_map(|id| id.as_str().map(str::to_owned))
                    .collect()
            })
            .ok_or_else(|| failed("no signed.roles.root.keyids".to_owned()))
    }

    /// Runs `notary -c CONFIG ARGS…` with the test passphrases (and `stdin`, if any); its
    /// stdout when it succeeds.
    fn run(&self, args: &[&str], stdin: Option<&[u8]>) -> Result<String, NotaryCliError> {
        let mut command_line = format!("notary -c {}", self.config.display());
        for arg in args {
            let _ = write!(command_line, " {arg}");
        }
        let spawned = Command::new("/usr/bin/notary")
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .env("NOTARY_ROOT_PASSPHRASE", ROOT_PASSPHRASE)
            .env("NOTARY_TARGETS_PASSPHRASE", TARGETS_PASSPHRASE)
            .env("NOTARY_SNAPSHOT_PASSPHRASE", SNAPSHOT_PASSPHRASE)
            .env("NOTARY_DELEGATION_PASSPHRASE", DELEGATION_PASSPHRASE)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let spawn_failed = |source| NotaryCliError::Spawn {
            command: command_line.clone(),
            source,
        };
        let mut child = spawned.map_err(spawn_failed)?;
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            // A short answer fits the pipe buffer; the pipe closes when dropped here.
            pipe.write_all(input).map_err(spawn_failed)?;
        }
        let output = child.wait_with_output().map_err(spawn_failed)?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if output.status.success() {
            Ok(stdout)
        } else {
            Err(NotaryCliError::Failed {
                command: command_line,
                status: output.status,
                stdout,
                stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            })
        }
    }
}

/// The key algorithm of a key pair made by [`SigningCa`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlgorithm {
    /// P-256: notary key type `ecdsa-x509`, signature method `ecdsa`.
    Ecdsa,
    /// RSA 2048: notary key type `rsa-x509`, signature method `rsapss`.
    Rsa,
}

/// A private key and its X.509 certificate (PEM files).
#[derive(Debug, Clone)]
pub struct KeyPair {
    pub key_file: PathBuf,
    pub cert_file: PathBuf,
}

/// A CA of its own (not the TLS one) that certifies notary root and delegation keys, for
/// trust pinning by CA and for root keys of a chosen algorithm.
pub struct SigningCa {
    dir: tempfile::TempDir,
    ca: TestCa,
}

impl SigningCa {
    pub fn new() -> SigningCa {
        let dir = tempfile::tempdir().expect("temp dir for the signing CA");
        let ca = TestCa::create(&dir.path().join("ca"));
        SigningCa { dir, ca }
    }

    /// The CA certificate (PEM).
    pub fn ca_file(&self) -> &Path {
        &self.ca.cert
    }

    /// A root key for `gun`: a certificate with CN = GUN (notary checks it) signed by this CA,
    /// and the key as encrypted PKCS#8 with [`ROOT_PASSPHRASE`] (notary imports only
    /// encrypted root keys, and only with the PBKDF2-HMAC-SHA1 PRF, not OpenSSL 3's default).
    pub fn root_key(&self, gun: &str, algorithm: KeyAlgorithm) -> KeyPair {
        let pair = self.issue(&format!("root {gun}"), gun, algorithm);
        let encrypted = pair.key_file.with_extension("enc.key");
        openssl_parts(
            self.dir.path(),
            &[&[
                "pkcs8",
                "-topk8",
                "-in",
                &pair.key_file.display().to_string(),
                "-out",
                &encrypted.display().to_string(),
                "-v2",
                "aes-256-cbc",
                "-v2prf",
                "hmacWithSHA1",
                "-passout",
                &format!("pass:{ROOT_PASSPHRASE}"),
            ]],
        );
        KeyPair {
            key_file: encrypted,
            cert_file: pair.cert_file,
        }
    }

    /// A delegation signer's key (unencrypted PKCS#8) and certificate with CN = `name`.
    pub fn delegation_key(&self, name: &str, algorithm: KeyAlgorithm) -> KeyPair {
        self.issue(&format!("delegation {name}"), name, algorithm)
    }

    /// A fresh key pair of `algorithm` with a certificate for `common_name` from this CA;
    /// files named after `label`.
    fn issue(&self, label: &str, common_name: &str, algorithm: KeyAlgorithm) -> KeyPair {
        let stem: String = label
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let dir = self.dir.path();
        let key_file = dir.join(format!("{stem}.key"));
        let cert_file = dir.join(format!("{stem}.crt"));
        let csr = dir.join(format!("{stem}.csr"));
        let extensions = dir.join("leaf.ext");
        std::fs::write(
            &extensions,
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n\
             extendedKeyUsage=codeSigning\n",
        )
        .expect("write certificate extensions");
        let new_key: &[&str] = match algorithm {
            KeyAlgorithm::Ecdsa => &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"],
            KeyAlgorithm::Rsa => &["-newkey", "rsa:2048"],
        };
        // A GUN holds '/', which -subj reads as a separator unless escaped.
        let subject = format!("/CN={}", common_name.replace('/', "\\/"));
        let path = |p: &Path| p.display().to_string();
        openssl_parts(
            dir,
            &[
                &["req", "-new", "-nodes"],
                new_key,
                &["-keyout", &path(&key_file), "-out", &path(&csr)],
                &["-subj", &subject],
            ],
        );
        openssl_parts(
            dir,
            &[&[
                "x509",
                "-req",
                "-in",
                &path(&csr),
                "-CA",
                &path(&self.ca.cert),
                "-CAkey",
                &path(&self.ca.key),
                "-CAcreateserial",
                "-days",
                "2",
                "-out",
                &path(&cert_file),
                "-extfile",
                &path(&extensions),
            ]],
        );
        KeyPair {
            key_file,
            cert_file,
        }
    }
}
