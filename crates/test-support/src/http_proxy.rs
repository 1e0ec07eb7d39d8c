//! Debian's `tinyproxy` (1.11), started by the tests on 127.0.0.1: a real HTTP proxy, to check
//! that concil follows the proxy environment variables (`https_proxy`, `http_proxy`,
//! `all_proxy`, `no_proxy`, upper and lower case) as curl does.
//!
//! It tunnels `CONNECT host:port` to any port (no `ConnectPort` line restricts them) and
//! forwards absolute-URI requests (`GET http://host:port/path`). [`HttpProxy::with_basic_auth`]
//! makes it ask for basic auth: a request without the right `Proxy-Authorization` is answered
//! `407 Proxy Authentication Required`. It accepts clients from 127.0.0.1 only.
//!
//! tinyproxy runs in the foreground (`-d`) in its own process group, with its config and log in
//! a temp dir; it is killed by PID when the [`HttpProxy`] is dropped. Its log (`LogLevel Info`)
//! tells which requests reached it: [`HttpProxy::requests`] reads them back, whether the proxy
//! then served or refused them.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::registry::free_port;

/// The tinyproxy binary (package `tinyproxy-bin`, pulled in by `tinyproxy`).
const TINYPROXY: &str = "/usr/bin/tinyproxy";
/// What tinyproxy logs once it listens (after binding its port).
const READY_LINE: &str = "Accepting connections.";
/// How long tinyproxy may take to start.
const START_LIMIT: Duration = Duration::from_secs(10);

/// One request line tinyproxy received, as its log shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyRequest {
    /// `CONNECT`, `GET`, …
    pub method: String,
    /// `host:port` for `CONNECT`, the absolute URI (`http://host:port/path`) for a forwarded
    /// request.
    pub target: String,
}

impl ProxyRequest {
    /// A `CONNECT` tunnel to `host_port` (`127.0.0.1:PORT`).
    pub fn is_connect_to(&self, host_port: &str) -> bool {
        self.method == "CONNECT" && self.target == host_port
    }

    /// A `GET` forwarded to `http://<host_port>/…`.
    pub fn is_forwarded_get_to(&self, host_port: &str) -> bool {
        self.method == "GET"
            && self
                .target
                .strip_prefix("http://")
                .and_then(|rest| rest.strip_prefix(host_port))
                .is_some_and(|path| path.starts_with('/'))
    }
}

/// A running tinyproxy. Dropping it kills the process and removes its files.
pub struct HttpProxy {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
    credentials: Option<(String, String)>,
}

impl HttpProxy {
    /// A proxy that asks for no credentials.
    pub fn start() -> HttpProxy {
        HttpProxy::start_with(None)
    }

    /// A proxy that answers `407` to every request without `Proxy-Authorization: Basic` for
    /// `user`:`password` (tinyproxy's `BasicAuth`). Both may hold only ASCII letters, digits,
    /// `-`, `.` and `_` (what tinyproxy's config accepts; they then need no escaping in a URL).
    pub fn with_basic_auth(user: &str, password: &str) -> HttpProxy {
        for word in [user, password] {
            assert!(
                !word.is_empty()
                    && word
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_')),
                "tinyproxy's BasicAuth takes [-A-Za-z0-9._]+, not {word:?}"
            );
        }
        HttpProxy::start_with(Some((user.to_owned(), password.to_owned())))
    }

    fn start_with(credentials: Option<(String, String)>) -> HttpProxy {
        let dir = tempfile::Builder::new()
            .prefix("concil-tinyproxy-")
            .tempdir()
            .expect("temp dir for tinyproxy");
        let config = dir.path().join("tinyproxy.conf");
        let log = dir.path().join("tinyproxy.log");
        let output = dir.path().join("tinyproxy.out");
        // A port found free may be taken before tinyproxy binds it (it then exits): try a few.
        for _ in 0..5 {
            let port = free_port();
            std::fs::write(&config, tinyproxy_config(port, &log, credentials.as_ref()))
                .expect("write tinyproxy.conf");
            // A new log per attempt: a line from a failed start must not count.
            let _ = std::fs::remove_file(&log);
            let out = File::create(&output).expect("tinyproxy output file");
            let mut child = Command::new(TINYPROXY)
                .arg("-d")
                .arg("-c")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(out.try_clone().expect("output handle"))
                .stderr(out)
                .process_group(0)
                .spawn()
                .unwrap_or_else(|e| panic!("start {TINYPROXY} (apt-get install tinyproxy): {e}"));
            if wait_until_listening(&mut child, &log) {
                return HttpProxy {
                    child,
                    dir,
                    port,
                    credentials,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!(
            "tinyproxy did not start; its output:\n{}\nits log:\n{}\nits config:\n{}",
            std::fs::read_to_string(&output).unwrap_or_default(),
            std::fs::read_to_string(&log).unwrap_or_default(),
            std::fs::read_to_string(&config).unwrap_or_default(),
        );
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`, as an error naming the proxy shows it.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:PORT`: the proxy without credentials.
    pub fn url(&self) -> String {
        format!("http://{}", self.host())
    }

    /// `http://USER:PASSWORD@127.0.0.1:PORT`. Panics for a proxy without basic auth.
    pub fn url_with_credentials(&self) -> String {
        let (user, password) = self
            .credentials()
            .expect("url_with_credentials: this proxy was started without basic auth");
        self.url_with(user, password)
    }

    /// `http://USER:PASSWORD@127.0.0.1:PORT` with any credentials (wrong ones, for a `407`).
    /// They are put in the URL as they are: give only characters a URL's userinfo takes.
    pub fn url_with(&self, user: &str, password: &str) -> String {
        format!("http://{user}:{password}@{}", self.host())
    }

    /// The user and password the proxy accepts, if it asks for any.
    pub fn credentials(&self) -> Option<(&str, &str)> {
        self.credentials
            .as_ref()
            .map(|(user, password)| (user.as_str(), password.as_str()))
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("tinyproxy.log")
    }

    /// tinyproxy's log so far, once it stopped growing (it logs a request as it reads it, and
    /// more as it connects and closes), waiting at most 2 s.
    pub fn log(&self) -> String {
        settled_file(&self.log_path())
    }

    /// Every request line the proxy received, in order (served or refused, `407` included).
    pub fn requests(&self) -> Vec<ProxyRequest> {
        self.log().lines().filter_map(parse_request).collect()
    }

    /// How many client connections the proxy accepted (with or without a request on them).
    pub fn connections(&self) -> usize {
        self.log()
            .lines()
            .filter(|line| line.contains("]: Connect (file descriptor "))
            .count()
    }

    /// How many `CONNECT <host_port>` requests (`127.0.0.1:PORT`) it received.
    pub fn count_connects_to(&self, host_port: &str) -> usize {
        self.requests()
            .iter()
            .filter(|request| request.is_connect_to(host_port))
            .count()
    }

    /// How many `GET http://<host_port>/…` requests it received (forwarded, not tunnelled).
    pub fn count_forwarded_gets_to(&self, host_port: &str) -> usize {
        self.requests()
            .iter()
            .filter(|request| request.is_forwarded_get_to(host_port))
            .count()
    }
}

impl Drop for HttpProxy {
    fn drop(&mut self) {
        // Child::kill sends SIGKILL to this PID only.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The config: listen and accept on 127.0.0.1 only, any `CONNECT` port, every request in the
/// log, and `BasicAuth` if asked.
fn tinyproxy_config(port: u16, log: &Path, credentials: Option<&(String, String)>) -> String {
    let log = log.to_str().expect("a UTF-8 temp dir path");
    assert!(!log.contains('"'), "a log path tinyproxy can quote: {log}");
    let mut config = format!(
        "Port {port}\n\
         Listen 127.0.0.1\n\
         Allow 127.0.0.1\n\
         Timeout 60\n\
         MaxClients 100\n\
         LogFile \"{log}\"\n\
         LogLevel Info\n"
    );
    if let Some((user, password)) = credentials {
        config.push_str(&format!("BasicAuth {user} {password}\n"));
    }
    config
}

/// Waits for tinyproxy's "Accepting connections." (logged after it bound its port); false if
/// it exited first (its port was taken) or [`START_LIMIT`] passed.
fn wait_until_listening(child: &mut Child, log: &Path) -> bool {
    let deadline = Instant::now() + START_LIMIT;
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return false;
        }
        if std::fs::read_to_string(log).is_ok_and(|text| text.contains(READY_LINE)) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// `… [PID]: Request (file descriptor N): METHOD TARGET HTTP/1.1` as a [`ProxyRequest`].
fn parse_request(line: &str) -> Option<ProxyRequest> {
    let (_, rest) = line.split_once("]: Request (file descriptor ")?;
    let (_, request_line) = rest.split_once("): ")?;
    let mut words = request_line.split_whitespace();
    Some(ProxyRequest {
        method: words.next()?.to_owned(),
        target: words.next()?.to_owned(),
    })
}

/// The file's text once it stopped growing for 100 ms, waiting at most 2 s.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tinyproxy_request_lines() {
        let connect = "CONNECT   Dec 03 11:39:09.001 [1855]: Request (file descriptor 5): \
                       CONNECT 127.0.0.1:18999 HTTP/1.1";
        let get = "CONNECT   Dec 03 11:39:08.982 [1855]: Request (file descriptor 5): \
                   GET http://127.0.0.1:18999/v2/ HTTP/1.1";
        let connect = parse_request(connect).expect("a CONNECT line");
        assert!(connect.is_connect_to("127.0.0.1:18999"));
        assert!(!connect.is_connect_to("127.0.0.1:1899"));
        let get = parse_request(get).expect("a GET line");
        assert!(get.is_forwarded_get_to("127.0.0.1:18999"));
        assert!(!get.is_forwarded_get_to("127.0.0.1:1899"));
        assert_eq!(
            parse_request("CONNECT   Dec 03 [1855]: Connect (file descriptor 5): 127.0.0.1"),
            None
        );
    }
}
