//! Cosign signatures, checked with the public keys of the configuration's key directory or,
//! keyless, against a sigstore trusted root and the configured signer identity.
//!
//! # Where cosign puts a signature
//! - The `sha256-<hex>.sig` tag: one signature layer per signing, its payload a "simple
//!   signing" JSON document naming the manifest digest ([`simple_signing`]).
//! - Sigstore bundles attached to the digest as OCI 1.1 referrers (`cosign sign
//!   --new-bundle-format`, [`bundle`]).
//!
//! # What makes an image trusted
//! Any one signature that verifies with any trusted key (or, keyless, with a certificate of
//! a trusted Fulcio CA for the configured identity, logged in a trusted Rekor log:
//! [`crate::trust::keyless`], against [`crate::config::Config::cosign_trusted_root`] and the
//! [`crate::config::Config::cosign_identities`] entry of the repository) and whose payload is
//! a cosign image signature naming exactly the manifest digest asked about. concil 1.0
//! checked only the last layer and never compared the digest, so a signature copied from
//! another image passed; here a trusted signature of another digest is
//! [`crate::trust::TrustError::WrongImage`]. The signed `docker-reference` is compared with
//! the repository only when asked ([`Verifier::check_docker_reference`]): cosign signs the
//! name an image was pushed under, and images copied between registries keep their
//! signatures, so it is off by default, as in `cosign verify`, which does not compare it.
//!
//! [`Verifier::verify`] looks at the `.sig` tag first; without a trusted signature there,
//! among the digest's referrers.
//!
//! # Where the signatures are read from
//! A [`SignatureSource`]: the image's repository in its registry, or the image file it came in
//! (an OCI layout holds the `.sig` tag as `skopeo copy` writes it, the signatures `cosign save`
//! marks with its `kind` annotation, and referrers listed in index.json or under the referrers
//! tag). A signature is judged the same wherever it was found.
//!
//! # Layout
//! Dependencies point one way: `verifier` → `simple_signing`, `bundle` → `attempt` → `source`.
//! - `attempt` (private): one verification's state and the decisions every format shares:
//!   who signed (a trusted key, else the keyless signer), whether the claim is for our
//!   digest, which error says best why nothing vouched. It uses no other file here.
//! - [`simple_signing`]: the `.sig` tag format; [`bundle`]: sigstore bundles as referrers.
//! - `source` (private): [`SignatureSource`] and its two implementations.
//! - `verifier` (private): [`Verifier`], the keys and keyless set-up, and the search order.

mod attempt;
pub mod bundle;
pub mod simple_signing;
mod source;
mod verifier;

pub use crate::trust::error::SignatureRejection;
pub use crate::trust::keys::{TrustedKey, PUBLIC_KEY_EXTENSION};
pub use attempt::{CosignVerified, SignatureFormat, SignedBy};
pub use simple_signing::{
    signature_tag, CERTIFICATE_ANNOTATION, IMAGE_SIGNATURE_TYPE, REKOR_BUNDLE_ANNOTATION,
    SIGNATURE_ANNOTATION, SIMPLESIGNING_MEDIA_TYPE,
};
pub use source::{SignatureSource, SourceError};
pub use verifier::Verifier;
