//! Docker credential helpers (`credHelpers` per registry and `credsStore` in Docker's
//! `config.json`): `docker-credential-<name> get` with the server on stdin answers
//! `{"Username", "Secret"}`. Written here on `std::process` rather than with a crate: the
//! protocol is one request and one JSON answer, and what matters is ours to decide — a time
//! limit, a cap on the output, and that nothing the helper prints ever reaches an error or a log.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::credentials::Credentials;
use super::error::{ConfigError, HelperProblem};
use crate::reference::DOCKER_HUB;

/// The most a helper may print: an answer is a few hundred bytes.
const MAX_HELPER_OUTPUT: u64 = 64 * 1024;
/// What Docker's helpers print (exit status 1) when they hold nothing for the server.
const NOT_FOUND_ANSWER: &str = "credentials not found in native keychain";
/// The name Docker's helpers know Docker Hub by.
const DOCKER_HUB_SERVER: &str = "https://index.docker.io/v1/";

/// Whether a helper name can be run as `docker-credential-<name>` from `PATH` (no path
/// separators, nothing a shell or a path would read differently).
pub(super) fn is_valid_helper_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && !name.starts_with('.')
}

/// Asks helper `name` for `registry`'s credentials: `Ok(None)` when it holds none (or is not
/// installed: a `config.json` copied from a desktop names helpers a cluster node lacks);
/// an error naming the helper, never its output, when it fails, takes longer than `timeout`,
/// or answers something else than credentials.
pub(super) fn get(
    name: &str,
    registry: &str,
    timeout: Duration,
) -> Result<Option<Credentials>, ConfigError> {
    let fail = failure(name, registry)?;
    let (status, output) = match run(name, "get", server_name(registry).as_bytes(), timeout) {
        Ok(ran) => ran,
        // A config.json copied from a desktop names helpers a cluster node lacks.
        Err(HelperProblem::Start(error)) if error.kind() == std::io::ErrorKind::NotFound => {
            tracing::debug!(helper = name, "credential helper not installed; skipped");
            return Ok(None);
        }
        Err(problem) => return Err(fail(problem)),
    };
    if !status.success() {
        if String::from_utf8_lossy(&output).trim() == NOT_FOUND_ANSWER {
            return Ok(None);
        }
        return Err(fail(HelperProblem::Failed(status.code())));
    }
    // A bare Value: a type error must not quote the secret.
    let answer: Value =
        serde_json::from_slice(&output).map_err(|_| fail(HelperProblem::NotCredentials))?;
    let field = |key: &str| answer.get(key).and_then(Value::as_str).unwrap_or_default();
    let (username, secret) = (field("Username"), field("Secret"));
    if secret.is_empty() {
        // Older helpers (docker-credential-pass 0.6) answer an empty secret, status 0.
        return Ok(None);
    }
    Ok(Some(Credentials {
        username: username.to_owned(),
        password: secret.to_owned(),
    }))
}

/// The error maker for helper `name` asked about `registry`, once the name is known to be
/// one a helper program can have.
fn failure(
    name: &str,
    registry: &str,
) -> Result<impl Fn(HelperProblem) -> ConfigError, ConfigError> {
    let make = {
        let (helper, registry) = (format!("docker-credential-{name}"), registry.to_owned());
        move |problem| ConfigError::CredentialHelper {
            helper: helper.clone(),
            registry: registry.clone(),
            problem,
        }
    };
    if !is_valid_helper_name(name) {
        return Err(make(HelperProblem::InvalidName));
    }
    Ok(make)
}

/// What a helper knows a registry by.
fn server_name(registry: &str) -> &str {
    if registry == DOCKER_HUB {
        DOCKER_HUB_SERVER
    } else {
        registry
    }
}

/// Runs `docker-credential-<name> <action>` with `input` on stdin: its exit status and
/// (capped) stdout, within `timeout`.
fn run(
    name: &str,
    action: &str,
    input: &[u8],
    timeout: Duration,
) -> Result<(std::process::ExitStatus, Vec<u8>), HelperProblem> {
    let mut child = Command::new(format!("docker-credential-{name}"))
        .arg(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(HelperProblem::Start)?;
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that does not read its input fails below; nothing to do about it here.
        let _ = stdin.write_all(input);
    }
    // Read on a thread so that a helper filling its pipe cannot block the time limit, and
    // handed over by a channel so that a helper's child keeping the pipe open cannot either.
    let (sender, output) = std::sync::mpsc::channel();
    if let Some(stdout) = child.stdout.take() {
        std::thread::spawn(move || {
            let mut output = Vec::new();
            let _ = stdout.take(MAX_HELPER_OUTPUT).read_to_end(&mut output);
            let _ = sender.send(output);
        });
    }
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(HelperProblem::TimedOut(timeout.as_secs_f64()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(error) => return Err(HelperProblem::Start(error)),
        }
    };
    let output = output
        .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        .map_err(|_| HelperProblem::TimedOut(timeout.as_secs_f64()))?;
    Ok((status, output))
}

/// Stores `credentials` for `registry` in helper `name` (`concil login`); `false` when the
/// helper is not installed.
pub(super) fn store(
    name: &str,
    registry: &str,
    credentials: &Credentials,
    timeout: Duration,
) -> Result<bool, ConfigError> {
    let fail = failure(name, registry)?;
    let input = serde_json::json!({
        "ServerURL": server_name(registry),
        "Username": credentials.username,
        "Secret": credentials.password,
    });
    let (status, _) = match run(name, "store", input.to_string().as_bytes(), timeout) {
        Ok(ran) => ran,
        Err(HelperProblem::Start(error)) if error.kind() == std::io::ErrorKind::NotFound => {
            return Ok(false)
        }
        Err(problem) => return Err(fail(problem)),
    };
    if !status.success() {
        return Err(fail(HelperProblem::Failed(status.code())));
    }
    Ok(true)
}

/// Removes `registry`'s credentials from helper `name` (`concil logout`); `false` when it held
/// none.
pub(super) fn erase(name: &str, registry: &str, timeout: Duration) -> Result<bool, ConfigError> {
    let fail = failure(name, registry)?;
    let (status, output) = match run(name, "erase", server_name(registry).as_bytes(), timeout) {
        Ok(ran) => ran,
        Err(HelperProblem::Start(error)) if error.kind() == std::io::ErrorKind::NotFound => {
            return Ok(false)
        }
        Err(problem) => return Err(fail(problem)),
    };
    if status.success() {
        return Ok(true);
    }
    if String::from_utf8_lossy(&output).trim() == NOT_FOUND_ANSWER {
        return Ok(false);
    }
    Err(fail(HelperProblem::Failed(status.code())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helper_names_cannot_name_paths() {
        for good in ["pass", "ecr-login", "gcloud", "desktop.exe", "osx_keychain"] {
            assert!(is_valid_helper_name(good), "{good}");
        }
        for bad in ["", "../x", "a/b", ".hidden", "a b", "x;y", &"x".repeat(65)] {
            assert!(!is_valid_helper_name(bad), "{bad}");
        }
    }

    #[test]
    fn a_missing_helper_means_no_credentials() {
        let found = get(
            "concil-test-no-such-helper",
            "r.example",
            Duration::from_secs(1),
        );
        assert!(matches!(found, Ok(None)), "{found:?}");
    }
}
