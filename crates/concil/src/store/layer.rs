//! One layer: from the cache, or one streaming pass from the registry's body through the
//! digest check, decompression and the squashfs writer into a working file of the cache, which
//! gets its final name only when every digest matched.

use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::Arc;

use tarsquash::decode::Compression;

use super::{Progress, StoreError, ENCRYPTED_SQUASHFS_LAYER, FROM_CACHE, SQUASHFS_LAYER};
use crate::cache::Cache;
use crate::digest::{Digest, DigestReader};
use crate::image_file::ImageFile;
use crate::registry::{Client, Descriptor};

/// Where a layer's blob comes from.
pub(super) enum BlobSource<'a> {
    /// The repository's client (mirrors, then the registry).
    Registry(&'a Client),
    /// An image file (`oci:`, `oci-archive:`, `docker-archive:`).
    File(&'a ImageFile),
}

/// A blob's body: a registry's, which resumes where it breaks and may have to start over, or
/// a file's.
trait BlobBody: Read + Send {
    /// Whether the source will not serve the rest: the pass must start over.
    fn must_restart(&self) -> bool;
    /// Whether a registry mirror served any of the bytes.
    fn served_by_mirror(&self) -> bool;
}

impl BlobBody for crate::registry::BlobReader {
    fn must_restart(&self) -> bool {
        crate::registry::BlobReader::must_restart(self)
    }

    fn served_by_mirror(&self) -> bool {
        crate::registry::BlobReader::served_by_mirror(self)
    }
}

/// A blob read from a file: read once, in place.
struct FileBody(Box<dyn Read + Send>);

impl Read for FileBody {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl BlobBody for FileBody {
    fn must_restart(&self) -> bool {
        false
    }

    fn served_by_mirror(&self) -> bool {
        false
    }
}

/// What one layer's pass uses of the store: its cache, where blobs come from, the conversion
/// settings and the progress reporter.
pub(super) struct Pass<'a> {
    pub(super) cache: &'a Cache,
    pub(super) blobs: BlobSource<'a>,
    pub(super) convert: &'a tarsquash::Options,
    pub(super) progress: &'a Arc<dyn Progress>,
}

impl LayerBlob {
    /// The layer from the cache.
    ///
    /// A squashfs layer is its blob: `layers/<blob>` as a file. A tar layer is found through
    /// its blob's link, or by its diff_id when the same tar was converted before from another
    /// blob (compressed another way). That second blob's link is not written then: a link
    /// `layers/<blob>` states what the blob's bytes hash to once uncompressed, and only a
    /// download of those bytes may say so (a manifest's word would let one image repoint
    /// another image's blob).
    pub(super) fn cached(
        &self,
        cache: &Cache,
        diff_id: &Digest,
    ) -> Result<Option<PathBuf>, StoreError> {
        let by_blob = cache.layer_by_blob(&self.digest)?;
        match self.kind {
            LayerKind::Squashfs => Ok(by_blob
                .filter(|cached| cached.diff_id == self.digest)
                .map(|layer| layer.path)),
            LayerKind::Tar(_) => match by_blob {
                Some(cached) if cached.diff_id == *diff_id => Ok(Some(cached.path)),
                _ => Ok(cache.layer_by_diff_id(diff_id)?),
            },
        }
    }

    /// Downloads the blob and stores it (converted, for a tar layer) in `pass.cache`: one
    /// streaming pass, committed only when its size, digest and diff_id all check out. The
    /// body resumes where it breaks off; only a server that will not serve the rest makes the
    /// pass start over (a fresh working file), up to the retry budget. Bytes a mirror served
    /// that do not check out are thrown away and the blob fetched once more, from the registry
    /// alone: a mirror's stale or corrupt copy does not fail a pull the registry can serve.
    pub(super) fn download(
        &self,
        pass: &Pass<'_>,
        diff_id: &Digest,
        retries: u32,
    ) -> Result<Downloaded, StoreError> {
        let mut restarts = 0;
        let mut registry_only = None;
        loop {
            let mut outcome = PassOutcome::default();
            let result = match &registry_only {
                Some(client) => {
                    let pass = Pass {
                        blobs: BlobSource::Registry(client),
                        ..*pass
                    };
                    self.download_once(&pass, diff_id, &mut outcome)
                }
                None => self.download_once(pass, diff_id, &mut outcome),
            };
            match (result, &pass.blobs) {
                (Err(error), BlobSource::Registry(client))
                    if outcome.served_by_mirror
                        && registry_only.is_none()
                        && is_wrong_body(&error) =>
                {
                    tracing::warn!(layer = %self.digest, "{error}; fetching it from the registry instead of its mirrors");
                    pass.progress.layer_restarted(&self.digest);
                    registry_only = Some(client.without_mirrors());
                }
                (Err(error), _) if outcome.must_restart && restarts < retries => {
                    restarts += 1;
                    tracing::warn!(layer = %self.digest, restart = restarts, "{error}; starting the blob over");
                    pass.progress.layer_restarted(&self.digest);
                }
                (result, _) => return result,
            }
        }
    }

    fn download_once(
        &self,
        pass: &Pass<'_>,
        diff_id: &Digest,
        outcome: &mut PassOutcome,
    ) -> Result<Downloaded, StoreError> {
        let layer = self;
        let digest = &layer.digest;
        // A layer stored as it is must stay within the configured size too: the descriptor's
        // size is the manifest's word, not a limit.
        let max_size = pass.convert.limits.max_tar_bytes;
        if matches!(layer.kind, LayerKind::Squashfs) && layer.size > max_size {
            return Err(StoreError::LayerTooLarge {
                digest: digest.clone(),
                size: layer.size,
                limit: max_size,
            });
        }
        let (body, url, source): (Box<dyn BlobBody>, String, String) = match pass.blobs {
            BlobSource::Registry(client) => {
                let progress = Arc::clone(pass.progress);
                let notified = digest.clone();
                let body = client
                    .blob(digest)?
                    .on_retry(Box::new(move |retry, budget| {
                        progress.layer_retrying(&notified, retry, budget);
                    }));
                let (url, source) = (body.url().to_owned(), body.source().to_owned());
                (Box::new(body), url, source)
            }
            BlobSource::File(file) => {
                let (reader, location) = file.blob(digest)?;
                (Box::new(FileBody(reader)), location, file.name())
            }
        };
        let mut blob = VerifyingReader::new(body, url, layer.size, digest, &**pass.progress);
        let result = self.convert_into_cache(pass, diff_id, &mut blob);
        outcome.must_restart = blob.must_restart();
        outcome.served_by_mirror = blob.served_by_mirror();
        result.map(|path| Downloaded { path, source })
    }

    /// The streaming pass proper: `blob` through the converter into a working file, committed
    /// when everything checks out.
    fn convert_into_cache(
        &self,
        pass: &Pass<'_>,
        diff_id: &Digest,
        blob: &mut VerifyingReader<'_>,
    ) -> Result<PathBuf, StoreError> {
        let layer = self;
        let digest = &layer.digest;
        let mut ingest = pass.cache.ingest()?;
        let written_diff_id = match layer.kind {
            LayerKind::Squashfs => {
                io::copy(blob, ingest.file())
                    .map_err(|source| blob.copy_error(source, ingest.path()))?;
                blob.drain()?;
                blob.finish()?;
                // The same bytes may be another image's uncompressed tar layer, whose squashfs
                // file has this very name (blob == diff_id): a tar is never stored as a
                // squashfs layer, so it cannot stand in for that conversion.
                if starts_with_tar_header(ingest.file()).map_err(|source| {
                    StoreError::WriteLayer {
                        digest: digest.clone(),
                        path: ingest.path().to_owned(),
                        source,
                    }
                })? {
                    return Err(StoreError::SquashfsLayerIsTar {
                        digest: digest.clone(),
                    });
                }
                // Stored as it is under the name its bytes hashed to, as concil 1.0 does. The
                // config's diff_id names nothing here: it was never checked against the
                // bytes, and as a file name it would let this image stand in for any layer
                // with that diff_id.
                return Ok(ingest.commit_layer(digest, None)?);
            }
            LayerKind::Tar(compression) => {
                let out = ingest
                    .file()
                    .try_clone()
                    .map_err(|source| StoreError::WriteLayer {
                        digest: digest.clone(),
                        path: ingest.path().to_owned(),
                        source,
                    })?;
                let mut tar = compression.decoder(&mut *blob);
                let converted = tarsquash::convert(&mut tar, out, pass.convert);
                drop(tar);
                match converted {
                    Ok(conversion) => conversion.diff_id,
                    Err(source) => {
                        // A broken download shows up as a tar or decompression error; name the
                        // real cause when the body was cut short or changed. The decoder may
                        // stop early on corrupt data: read the rest of the body before judging
                        // its size and digest, so a changed body is not called a short one.
                        blob.drain()?;
                        blob.finish()?;
                        return Err(conversion_error(digest, source));
                    }
                }
            }
        };
        blob.drain()?;
        blob.finish()?;
        if *diff_id != written_diff_id {
            return Err(StoreError::DiffIdMismatch {
                digest: digest.clone(),
                expected: diff_id.clone(),
                got: written_diff_id,
            });
        }
        Ok(ingest.commit_layer(diff_id, Some(digest))?)
    }
}

/// What one pass learnt of its body besides the result.
#[derive(Default)]
struct PassOutcome {
    /// The server will not serve the rest: the pass must start over.
    must_restart: bool,
    /// A mirror served (some of) the bytes.
    served_by_mirror: bool,
}

/// Whether the body was not the blob (other bytes, too many, too few): what a mirror's stale
/// or corrupt copy looks like.
fn is_wrong_body(error: &StoreError) -> bool {
    matches!(
        error,
        StoreError::BlobDigestMismatch { .. }
            | StoreError::BlobTooLong { .. }
            | StoreError::BlobTooShort { .. }
            | StoreError::BlobTruncated { .. }
    )
}

/// A layer's squashfs file and where it came from.
pub(super) struct Downloaded {
    pub(super) path: PathBuf,
    /// [`FROM_CACHE`], or the base URL of the mirror or registry that served the blob.
    pub(super) source: String,
}

impl Downloaded {
    /// A layer that was in the cache already.
    pub(super) fn cached(path: PathBuf) -> Downloaded {
        Downloaded {
            path,
            source: FROM_CACHE.to_owned(),
        }
    }
}

/// One layer blob of a manifest, with what the store does with it.
#[derive(Debug, Clone)]
pub(super) struct LayerBlob {
    pub(super) digest: Digest,
    pub(super) media_type: String,
    pub(super) size: u64,
    kind: LayerKind,
}

impl LayerBlob {
    /// The layer `descriptor` of `manifest` names; unusable ones (a digest concil cannot verify,
    /// a media type it cannot store) are refused here, before anything is downloaded.
    pub(super) fn of(manifest: &Digest, descriptor: &Descriptor) -> Result<LayerBlob, StoreError> {
        let digest = descriptor_digest(descriptor, manifest, "layer")?;
        let media_type = descriptor.media_type().to_string();
        let kind = LayerKind::of(&digest, &media_type)?;
        Ok(LayerBlob {
            digest,
            media_type,
            size: descriptor.size(),
            kind,
        })
    }
}

/// The digest a descriptor of `document` (a manifest or index) names.
pub(super) fn descriptor_digest(
    descriptor: &Descriptor,
    document: &Digest,
    what: &'static str,
) -> Result<Digest, StoreError> {
    Digest::parse(descriptor.digest().as_ref()).map_err(|source| StoreError::DescriptorDigest {
        document: document.clone(),
        what,
        source,
    })
}

/// What the store does with a layer, by media type.
#[derive(Debug, Clone, Copy)]
enum LayerKind {
    Tar(Compression),
    Squashfs,
}

impl LayerKind {
    fn of(digest: &Digest, media_type: &str) -> Result<LayerKind, StoreError> {
        if media_type == SQUASHFS_LAYER || media_type == ENCRYPTED_SQUASHFS_LAYER {
            return Ok(LayerKind::Squashfs);
        }
        if media_type.contains("nondistributable") || media_type.contains(".foreign.") {
            return Err(StoreError::NonDistributableLayer {
                digest: digest.clone(),
                media_type: media_type.to_owned(),
            });
        }
        Compression::from_media_type(media_type)
            .map(LayerKind::Tar)
            .ok_or_else(|| StoreError::UnsupportedLayer {
                digest: digest.clone(),
                media_type: media_type.to_owned(),
            })
    }
}

/// Reads a blob body, hashing and counting it, and never more than one byte past the size
/// the manifest declares (so a registry sending too much cannot make us read forever).
struct VerifyingReader<'a> {
    body: DigestReader<io::Take<Box<dyn BlobBody>>>,
    /// Where the body comes from (after redirects), for errors.
    url: String,
    expected_size: u64,
    expected_digest: &'a Digest,
    read_failed: bool,
    progress: &'a dyn Progress,
}

impl<'a> VerifyingReader<'a> {
    fn new(
        body: Box<dyn BlobBody>,
        url: String,
        expected_size: u64,
        expected_digest: &'a Digest,
        progress: &'a dyn Progress,
    ) -> Self {
        VerifyingReader {
            url,
            body: DigestReader::new(body.take(expected_size.saturating_add(1))),
            expected_size,
            expected_digest,
            read_failed: false,
            progress,
        }
    }

    /// Whether the server refused to serve the rest of the body: the pass must start over.
    fn must_restart(&self) -> bool {
        self.body.get_ref().get_ref().must_restart()
    }

    fn served_by_mirror(&self) -> bool {
        self.body.get_ref().get_ref().served_by_mirror()
    }

    /// Reads what the consumer left (a gzip trailer, tar padding) so the digest covers it all.
    fn drain(&mut self) -> Result<(), StoreError> {
        io::copy(self, &mut io::sink())
            .map(drop)
            .map_err(|source| StoreError::BlobRead {
                digest: self.expected_digest.clone(),
                url: self.url.clone(),
                source,
            })
    }

    /// What a failed copy of the body into `path` means: a download that broke (named by
    /// size or digest when they tell) or a write that failed.
    fn copy_error(&self, source: io::Error, path: &std::path::Path) -> StoreError {
        let digest = self.expected_digest.clone();
        if !self.read_failed {
            return StoreError::WriteLayer {
                digest,
                path: path.to_owned(),
                source,
            };
        }
        match self.finish() {
            Err(error) => error,
            Ok(()) => StoreError::BlobRead {
                digest,
                url: self.url.clone(),
                source,
            },
        }
    }

    /// Checks what was read so far against the descriptor: size first, then digest.
    fn finish(&self) -> Result<(), StoreError> {
        let url = &self.url;
        let digest = self.expected_digest.clone();
        let read = self.body.bytes_read();
        if read > self.expected_size {
            return Err(StoreError::BlobTooLong {
                digest,
                url: url.clone(),
                expected: self.expected_size,
            });
        }
        if read < self.expected_size && !self.read_failed {
            return Err(StoreError::BlobTooShort {
                digest,
                url: url.clone(),
                got: read,
                expected: self.expected_size,
            });
        }
        if read < self.expected_size {
            return Err(StoreError::BlobTruncated {
                digest,
                url: url.clone(),
                got: read,
                expected: self.expected_size,
            });
        }
        let got = self.body.digest();
        if got != *self.expected_digest {
            return Err(StoreError::BlobDigestMismatch {
                digest,
                url: url.clone(),
                got,
            });
        }
        Ok(())
    }
}

impl Read for VerifyingReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self
            .body
            .read(buf)
            .inspect_err(|_| self.read_failed = true)?;
        self.progress.layer_bytes(self.expected_digest, n as u64);
        Ok(n)
    }
}

/// A conversion failure, as the configuration's limit it hit when it was one.
fn conversion_error(digest: &Digest, source: tarsquash::Error) -> StoreError {
    let limit = match &source {
        tarsquash::Error::TooManyEntries { limit, .. } => Some(("layer_max_entries", *limit)),
        tarsquash::Error::TarTooLarge { limit, .. } => Some(("layer_max_size", *limit)),
        _ => None,
    };
    match limit {
        Some((key, limit)) => StoreError::LayerLimit {
            digest: digest.clone(),
            key,
            limit,
            source,
        },
        None => StoreError::Convert {
            digest: digest.clone(),
            source,
        },
    }
}

/// Whether `file` starts with a tar header whose checksum is right (a ustar or old-style
/// header: the sum of its 512 bytes, the checksum field counted as spaces, written in octal at
/// bytes 148..156). A squashfs image never does by chance.
fn starts_with_tar_header(file: &mut std::fs::File) -> io::Result<bool> {
    use std::io::Seek as _;
    let mut header = [0u8; 512];
    file.seek(io::SeekFrom::Start(0))?;
    let read = file.read(&mut header)?;
    file.seek(io::SeekFrom::End(0))?;
    if read < header.len() {
        return Ok(false);
    }
    let field = &header[148..156];
    let digits: String = field
        .iter()
        .map(|&b| b as char)
        .take_while(|c| c.is_digit(8) || *c == ' ')
        .filter(|c| *c != ' ')
        .collect();
    let Ok(written) = u32::from_str_radix(&digits, 8) else {
        return Ok(false);
    };
    let sum: u32 = header
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                u32::from(b' ')
            } else {
                u32::from(b)
            }
        })
        .sum();
    Ok(sum == written)
}
