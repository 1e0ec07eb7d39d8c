//! Real peers for the integration tests, started by the tests themselves on 127.0.0.1.
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
#![allow(dead_code)] // each test binary uses its own subset of the support code

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
