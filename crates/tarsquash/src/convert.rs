//! The entry point: a tar stream in, a squashfs image and the tar's sha256 out.

use crate::image::ImageOptions;

/// How OCI whiteout files (`.wh.name`, `.wh..wh..opq`) are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Whiteouts {
    /// As regular files, as the tar has them (what concil's runtime expects).
    #[default]
    Keep,
    /// In overlayfs form: a 0:0 character device, `trusted.overlay.opaque=y` on the directory.
    Overlay,
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub image: ImageOptions,
    pub whiteouts: Whiteouts,
}

/// What a conversion produced.
#[derive(Debug, Clone)]
pub struct Conversion {
    /// sha256 of the uncompressed tar stream, as `sha256:<hex>` (the layer's diff_id).
    pub diff_id: String,
    /// Bytes of uncompressed tar read.
    pub tar_size: u64,
    /// Size of the finished image.
    pub image_size: u64,
}

/// Errors of a conversion.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Image(#[from] crate::image::ImageError),
    // The tar front end adds precise variants here (entry name and what is wrong).
}

/// Reads an uncompressed tar stream from `tar` to its end and writes the squashfs image to `out`.
pub fn convert(
    tar: &mut dyn std::io::Read,
    out: std::fs::File,
    options: &Options,
) -> Result<Conversion, Error> {
    let _ = (tar, out, options);
    todo!("tar front end")
}
