//! Real peers for concil's integration tests, started by the tests themselves on 127.0.0.1,
//! and the helpers the tests share. Test code only (`publish = false`).
//!
//! - `cosign`: cosign signatures made by sigstore-rs and pushed in cosign's registry format.
//! - `keyless`: a Fulcio-like CA and Rekor-like log made with `openssl`, for keyless cosign.
//! - `registry`: Debian's `docker-registry` (plain HTTP, HTTPS with a private CA, htpasswd,
//!   bearer tokens from an in-suite token issuer) and its access log.
//! - `notary`: notary-server (+ notary-signer) and the real `notary` client (content trust).
//! - `images`: real images built with umoci and pushed with skopeo (or PUT with the HTTP API).
//! - `proxy`: a fault-injecting TCP/HTTP proxy (flip a byte, cut a body short, throttle; on any
//!   GET path: flip a byte, serve canned bytes, answer a status, drop the connection).
//! - `tuf`: an independent signer of Notary v1 TUF metadata (expired, rolled back, rotated…).
//! - `pull`: a concil home (config + cache) for the `pull_*` tests, the CLI run against it, and
//!   a layer's squashfs compared with its tar.

// `new` makes a real peer (temp dirs, keys, a process): a `Default` would hide that.
#![allow(clippy::new_without_default)]

pub mod cosign;
pub mod images;
pub mod keyless;
pub mod notary;
pub mod proxy;
pub mod pull;
pub mod registry;
pub mod tuf;

/// The library's digest type for a digest a test holds as text.
pub fn digest(text: &str) -> concil::digest::Digest {
    concil::digest::Digest::parse(text).expect("a sha256 digest")
}

/// Hex of the sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(bytes))
}

/// Runs `program args` in `dir` to success and returns its stdout; panics with its stderr
/// otherwise (for tools the tests drive: openssl, umoci, date).
pub fn run_in(dir: &std::path::Path, program: &str, args: &[&str]) -> Vec<u8> {
    let output = std::process::Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|error| panic!("run {program}: {error}"));
    assert!(
        output.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// `openssl args` in `dir` (see [`run_in`]).
pub fn openssl(dir: &std::path::Path, args: &[&str]) -> Vec<u8> {
    run_in(dir, "openssl", args)
}
