//! A `pass` password store (GnuPG key without passphrase) in a home directory, so tests can run
//! the real `docker-credential-pass` (Debian's golang-docker-credential-helpers) as a Docker
//! credential helper. Stops the gpg-agent it started when dropped.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{json, Value};

/// A password store in `home` (`~/.gnupg`, `~/.password-store`).
pub struct PassStore {
    home: PathBuf,
}

impl PassStore {
    /// Makes a GnuPG key and a `pass` store in `home`.
    pub fn init(home: &Path) -> PassStore {
        let store = PassStore {
            home: home.to_owned(),
        };
        let gnupg = store.gnupg();
        std::fs::create_dir_all(&gnupg).expect("create ~/.gnupg");
        std::fs::set_permissions(&gnupg, std::fs::Permissions::from_mode(0o700))
            .expect("chmod ~/.gnupg");
        let status = store
            .command("gpg")
            .args(["--batch", "--pinentry-mode", "loopback", "--passphrase", ""])
            .args(["--quick-gen-key", "concil test <test@concil.invalid>"])
            .args(["default", "default", "never"])
            .stderr(Stdio::null())
            .status()
            .expect("run gpg (apt-get install gnupg)");
        assert!(status.success(), "gpg --quick-gen-key");
        let status = store
            .command("pass")
            .args(["init", "test@concil.invalid"])
            .stdout(Stdio::null())
            .status()
            .expect("run pass (apt-get install pass)");
        assert!(status.success(), "pass init");
        store
    }

    fn gnupg(&self) -> PathBuf {
        self.home.join(".gnupg")
    }

    /// `program` with this store's `HOME` and `GNUPGHOME`.
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command
            .env("HOME", &self.home)
            .env("GNUPGHOME", self.gnupg());
        command
    }

    /// `docker-credential-pass ACTION` with `input` on stdin; its stdout.
    fn helper(&self, action: &str, input: &[u8]) -> Vec<u8> {
        let mut child = self
            .command("docker-credential-pass")
            .arg(action)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect(
                "run docker-credential-pass (apt-get install golang-docker-credential-helpers)",
            );
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input)
            .expect("write to docker-credential-pass");
        let output = child.wait_with_output().expect("docker-credential-pass");
        assert!(output.status.success(), "docker-credential-pass {action}");
        output.stdout
    }

    /// Stores `user` and `secret` for `server` with `docker-credential-pass store`.
    pub fn store(&self, server: &str, user: &str, secret: &str) {
        let input = json!({"ServerURL": server, "Username": user, "Secret": secret});
        self.helper("store", input.to_string().as_bytes());
    }

    /// What `docker-credential-pass get` answers for `server`.
    pub fn get(&self, server: &str) -> Value {
        serde_json::from_slice(&self.helper("get", server.as_bytes())).expect("helper JSON")
    }
}

impl Drop for PassStore {
    fn drop(&mut self) {
        let _ = self
            .command("gpgconf")
            .args(["--kill", "gpg-agent"])
            .status();
    }
}
