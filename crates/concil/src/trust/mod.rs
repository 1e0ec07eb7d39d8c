//! Content trust: does a trusted key vouch for this manifest digest?
//!
//! - [`cosign`]: cosign signatures in the registry (the `sha256-<hex>.sig` tag, and sigstore
//!   bundles attached as OCI 1.1 referrers), checked against the public keys in the
//!   configuration's key directory or, keyless, against a sigstore trusted root and the
//!   configured signer identity ([`cosign::Verifier`]); [`keyless`]: Fulcio certificates and
//!   Rekor entries, checked against a [`trusted_root`].
//! - [`keys`]: the public keys and signature schemes cosign uses.
//! - [`key_management`]: listing, importing and generating keys (for the CLI).
//! - [`notary`]: Notary v1 (Docker Content Trust), a TUF client that answers which digest a
//!   tag must have ([`notary::NotaryClient`]).
//!
//! Each check answers "this digest is trusted" or a [`TrustError`] saying why not. The part
//! reads cosign signatures through a [`cosign::SignatureSource`] (the registry's
//! [`crate::registry::Client`], or the [`crate::image_file::ImageFile`] an image came in), talks
//! to Notary and its registry directly, and knows nothing of the cache:
//! the store verifies the digest a reference resolved to (an index's digest when the tag
//! names an index, whose signature covers the children it lists by digest) before it fetches
//! anything else.
//!
//! # Layout
//! This file only declares the modules and re-exports; dependencies point one way, from the
//! checks down to what they share:
//! - `base64` (the one decoder), [`keys`], `x509`: no dependency inside `trust`;
//! - [`trusted_root`] (keys, x509, base64) → `sct` → [`keyless`];
//! - [`notary`] (keys, x509, base64), whose errors [`TrustError`] wraps (`error`: the
//!   errors and signature rejections of every check);
//! - [`cosign`] (keyless, keys, error) → [`key_management`].

pub(crate) mod base64;
pub mod cosign;
mod error;
pub mod key_management;
pub mod keyless;
pub mod keys;
pub mod notary;
pub(crate) mod sct;
pub mod trusted_root;
pub(crate) mod x509;

pub use cosign::bundle;
pub use error::{KeylessGap, SignatureRejection, TrustError};
pub use keys::KeyProblem;
pub use trusted_root::TrustedRootProblem;
