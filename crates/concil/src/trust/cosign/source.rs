//! [`SignatureSource`]: where an image's cosign signatures are read from — the repository of
//! a registry ([`Client`]), or the image file the image came in ([`ImageFile`]: `skopeo copy`
//! of the `.sig` tag and `cosign save` put them into an OCI layout beside the image).
//!
//! The checks (`simple_signing`, `bundle`) ask only these three things, so a signature is
//! judged the same wherever it was found.

use crate::digest::Digest;
use crate::image_file::{FileError, ImageFile};
use crate::registry::{Client, Manifest, RegistryError};

/// What the signature checks read: manifests by tag or digest, the referrers of a digest, and
/// small blobs, each checked against its digest by the source.
pub trait SignatureSource {
    /// The manifest a tag (`sha256-<hex>.sig`, `sha256-<hex>`) or a digest names.
    fn manifest(&self, reference: &str) -> Result<Manifest, SourceError>;
    /// The referrers of `digest` as an OCI index; `None` where the source cannot list them
    /// (a registry without the referrers API: the `sha256-<hex>` tag is asked instead).
    fn referrers(&self, digest: &Digest) -> Result<Option<Manifest>, SourceError>;
    /// A whole blob, refused past `max_size` bytes.
    fn blob_bytes(&self, digest: &Digest, max_size: u64) -> Result<Vec<u8>, SourceError>;
}

/// Why a [`SignatureSource`] did not give what was asked.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The registry answered with an error, or could not be asked.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The image file does not hold it, holds it wrong, or cannot be read.
    #[error(transparent)]
    File(#[from] FileError),
}

impl SourceError {
    /// Nothing by that name: the place holds no signature.
    pub(super) fn is_not_found(&self) -> bool {
        match self {
            SourceError::Registry(error) => matches!(error, RegistryError::NotFound { .. }),
            SourceError::File(error) => {
                matches!(
                    error,
                    FileError::Missing { .. } | FileError::NoSuchImage { .. }
                )
            }
        }
    }

    /// The signature content is bad (missing, corrupt, too large, not a manifest we read),
    /// which rejects that signature, rather than that the source could not be read, which fails
    /// the verification.
    pub(super) fn is_bad_content(&self) -> bool {
        match self {
            SourceError::Registry(error) => matches!(
                error,
                RegistryError::NotFound { .. }
                    | RegistryError::DigestMismatch { .. }
                    | RegistryError::TooLarge { .. }
                    | RegistryError::InvalidManifest { .. }
                    | RegistryError::UnsupportedMediaType { .. }
                    | RegistryError::Schema1 { .. }
                    | RegistryError::Malformed { .. }
            ),
            SourceError::File(error) => matches!(
                error,
                FileError::Missing { .. }
                    | FileError::NoSuchImage { .. }
                    | FileError::DigestMismatch { .. }
                    | FileError::TooLarge { .. }
                    | FileError::Invalid { .. }
                    | FileError::UnsafePath { .. }
            ),
        }
    }
}

impl SignatureSource for Client {
    fn manifest(&self, reference: &str) -> Result<Manifest, SourceError> {
        Ok(Client::manifest(self, reference)?)
    }

    fn referrers(&self, digest: &Digest) -> Result<Option<Manifest>, SourceError> {
        Ok(Client::referrers(self, digest)?)
    }

    fn blob_bytes(&self, digest: &Digest, max_size: u64) -> Result<Vec<u8>, SourceError> {
        Ok(Client::blob_bytes(self, digest, max_size)?)
    }
}

impl SignatureSource for ImageFile {
    fn manifest(&self, reference: &str) -> Result<Manifest, SourceError> {
        match Digest::parse(reference) {
            Ok(digest) => Ok(ImageFile::manifest(self, &digest)?),
            Err(_) => Ok(self.tagged_manifest(reference)?),
        }
    }

    fn referrers(&self, digest: &Digest) -> Result<Option<Manifest>, SourceError> {
        Ok(ImageFile::referrers(self, digest)?)
    }

    fn blob_bytes(&self, digest: &Digest, max_size: u64) -> Result<Vec<u8>, SourceError> {
        Ok(ImageFile::blob_bytes(self, digest, max_size)?)
    }
}
