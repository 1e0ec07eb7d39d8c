//! Real peers for concil's integration tests, started by the tests themselves on 127.0.0.1,
//! and the helpers the tests of concil and tarsquash share. Test code only (`publish = false`).
//!
//! Without concil (what tarsquash's tests use, `default-features = false`):
//! - `tree`: one comparable model of a file system tree, read from a tar, from a squashfs
//!   image (`sqfs2tar`) or from a directory (a kernel mount), and its comparisons.
//! - `process`: run a command to success (its output as bytes or text), or to its end within a
//!   time limit.
//! - `tar_writer`: tars written entry by entry with names and numbers verbatim.
//! - `squashfs`: the real squashfs tools and kernel mounts, tarsquash conversions checked,
//!   fixtures, deterministic data.
//! - `image_builder`: squashfs images written from trees built by hand (tarsquash's image
//!   writer).
//! - `e2e`: everything tarsquash's end-to-end tests use, in one import.
//! - the sha256 helpers below.
//!
//! With the `concil` feature (on by default):
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

pub mod image_builder;
pub mod nodes;
pub mod process;
pub mod squashfs;
pub mod tar_writer;
pub mod tree;

#[cfg(feature = "concil")]
pub mod cosign;
#[cfg(feature = "concil")]
pub mod http_proxy;
#[cfg(feature = "concil")]
pub mod images;
#[cfg(feature = "concil")]
pub mod keyless;
#[cfg(feature = "concil")]
pub mod notary;
#[cfg(feature = "concil")]
pub mod pass;
#[cfg(feature = "concil")]
pub mod proxy;
#[cfg(feature = "concil")]
pub mod pull;
#[cfg(feature = "concil")]
pub mod registry;
#[cfg(feature = "concil")]
pub mod tuf;

/// What tarsquash's end-to-end tests use, in one import.
pub mod e2e {
    pub use crate::process::{run, run_text};
    pub use crate::squashfs::*;
    pub use crate::tar_writer::*;
    pub use crate::tree::*;
    pub use crate::{sha256_digest, sha256sum};
}

/// The library's digest type for a digest a test holds as text.
#[cfg(feature = "concil")]
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

/// `sha256sum FILE` as `sha256:<hex>` (the tool, not this crate's hashing: an independent
/// check of a digest the code under test computed).
pub fn sha256sum(path: &std::path::Path) -> String {
    let out = process::run_text(std::process::Command::new("sha256sum").arg(path));
    let hex = out.split_whitespace().next().expect("sha256sum output");
    format!("sha256:{hex}")
}

/// Runs `program args` in `dir` to success and returns its stdout; fails the test with its
/// stderr otherwise (for tools the tests drive: openssl, umoci, date). See [`process::run`].
pub fn run_in(dir: &std::path::Path, program: &str, args: &[&str]) -> Vec<u8> {
    process::run(
        std::process::Command::new(program)
            .args(args)
            .current_dir(dir),
    )
}

/// `openssl args` in `dir` (see [`run_in`]).
pub fn openssl(dir: &std::path::Path, args: &[&str]) -> Vec<u8> {
    run_in(dir, "openssl", args)
}
