//! The pull pipeline and the public API.
//!
//! ```text
//! reference ─► endpoint + credentials ─► manifest ─► platform ─► config ─► layers ─► ordered paths
//! ```
//!
//! A [`Store`] pulls one image reference. Each layer is one streaming pass with no temporary
//! tarball: the HTTP body is hashed (blob digest), decompressed, hashed again (diff_id) and
//! converted to squashfs by `tarsquash` into a working file of the cache; only when the blob
//! digest, its size and the diff_id all match does the file get its final name. Layers download
//! on a fixed pool of [`Store::parallel_layers`] worker threads while each conversion keeps every
//! core busy compressing.
//!
//! ```no_run
//! use concil::config::Config;
//! use concil::reference::Reference;
//! use concil::store::{Platform, Store};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = Config::load(None)?;
//! let reference = Reference::parse("docker://127.0.0.1:5000/demo/busybox:latest")?;
//! let store = Store::new(reference, config)?.without_verification();
//! let image = store.pull(&Platform::host())?;
//! for layer in &image.layers {
//!     println!("{} {}", layer.diff_id, layer.path.display());
//! }
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tarsquash::decode::Compression;

use crate::cache::{Cache, CacheError, CleanReport};
use crate::config::{Config, ConfigError, ContentTrust};
use crate::digest::{Digest, DigestError, DigestReader};
use crate::reference::Reference;
use crate::registry::{
    Client, Descriptor, ImageManifest, Manifest, ParsedManifest, RegistryError, TlsSettings,
};
use crate::trust::cosign::Verifier;
use crate::trust::notary::pinning::TrustPinning;
use crate::trust::notary::{NotaryClient, NotarySettings, Wanted};
use crate::trust::TrustError;

/// concil's own media type for a layer that is already a squashfs image. Stored as it is under
/// its blob digest (`layers/<blob>`), never under its config's diff_id.
pub const SQUASHFS_LAYER: &str = "application/vnd.docker.image.rootfs.diff.squashfs";
/// An encrypted squashfs layer, stored as it is.
pub const ENCRYPTED_SQUASHFS_LAYER: &str =
    "application/vnd.docker.image.rootfs.diff.squashfs+encrypted";

/// How many layers download at once unless told otherwise.
pub const DEFAULT_PARALLEL_LAYERS: usize = 3;
/// Image configs are small JSON documents; anything bigger is refused rather than read.
const MAX_CONFIG_SIZE: u64 = 16 * 1024 * 1024;
/// An index may point to an index; more than this many levels is refused.
const MAX_INDEX_DEPTH: usize = 4;

/// An `os/arch[/variant]` platform, normalised as containerd does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    /// The platform of the running machine (`linux/amd64`, `linux/arm64`, …).
    pub fn host() -> Platform {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            "arm" => "arm",
            other => other,
        };
        Platform::new(std::env::consts::OS, architecture, None)
    }

    /// A platform with its variant normalised: `arm64` ≡ `arm64/v8`, `arm` means `arm/v7`.
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Platform {
        let architecture = match architecture {
            "x86_64" | "x86-64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        };
        let variant = match (architecture, variant.filter(|v| !v.is_empty())) {
            ("arm64", None | Some("v8")) => None,
            ("arm", None) => Some("v7".to_owned()),
            ("amd64", Some("v1")) => None,
            (_, variant) => variant.map(str::to_owned),
        };
        Platform {
            os: os.to_owned(),
            architecture: architecture.to_owned(),
            variant,
        }
    }

    fn from_spec(platform: &oci_spec::image::Platform) -> Platform {
        Platform::new(
            &platform.os().to_string(),
            &platform.architecture().to_string(),
            platform.variant().as_deref(),
        )
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Platform {
    type Err = StoreError;
    fn from_str(text: &str) -> Result<Platform, StoreError> {
        let parts: Vec<&str> = text.split('/').collect();
        let valid = |part: &str| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        if !parts.iter().all(|part| valid(part)) {
            return Err(StoreError::InvalidPlatform {
                text: text.to_owned(),
            });
        }
        match parts.as_slice() {
            [os, arch] => Ok(Platform::new(os, arch, None)),
            [os, arch, variant] => Ok(Platform::new(os, arch, Some(variant))),
            _ => Err(StoreError::InvalidPlatform {
                text: text.to_owned(),
            }),
        }
    }
}

/// How the manifest's trust was established.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verification {
    /// Not checked: content trust is disabled.
    None,
    /// A trusted cosign key signed the manifest (or the index that led to it).
    Cosign,
    /// Notary's signed targets gave the digest (of the manifest or the index that led to it).
    Notary,
}

/// An image manifest chosen for a platform, with the digests it was reached by.
#[derive(Debug, Clone)]
pub struct ResolvedManifest {
    /// Digest of the image manifest itself (not of the index that led to it).
    pub digest: Digest,
    pub media_type: String,
    pub manifest: ImageManifest,
    /// How the digest the reference resolved to was found trustworthy.
    pub verified: Verification,
}

/// The parts of an image config the store needs. Parsed leniently (not with oci-spec's
/// `ImageConfiguration`) because real-world configs carry fields in forms oci-spec rejects,
/// while these are all a pull depends on.
#[derive(Debug, Clone, Deserialize)]
pub struct ImageConfig {
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub variant: Option<String>,
    pub rootfs: RootFs,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type", default)]
    pub kind: String,
    pub diff_ids: Vec<Digest>,
}

/// One layer of a pulled image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PulledLayer {
    /// The blob's digest as in the manifest.
    pub digest: Digest,
    /// The uncompressed tar's digest from the config, the name of the squashfs file.
    pub diff_id: Digest,
    pub media_type: String,
    /// The blob's size in bytes.
    pub size: u64,
    /// The squashfs file in the cache.
    pub path: PathBuf,
}

/// A pulled image: what `concil pull --json` prints.
#[derive(Debug, Clone, Serialize)]
pub struct PulledImage {
    pub manifest_digest: Digest,
    pub config_digest: Digest,
    /// The platform of the image pulled (from its config).
    pub platform: String,
    pub verified: Verification,
    /// In `rootfs.diff_ids` order.
    pub layers: Vec<PulledLayer>,
}

/// What a pull reports as it goes; the CLI draws progress bars from it.
/// Called from the layer worker threads.
pub trait Progress: Send + Sync {
    /// A layer starts downloading (`size` bytes of blob).
    fn layer_started(&self, _digest: &Digest, _size: u64) {}
    /// `bytes` more bytes of the blob arrived.
    fn layer_bytes(&self, _digest: &Digest, _bytes: u64) {}
    /// The layer is in the cache (`cached`: it was there already).
    fn layer_done(&self, _digest: &Digest, _cached: bool) {}
}

/// Reports nothing.
pub struct NoProgress;
impl Progress for NoProgress {}

/// Errors of a pull.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("invalid platform {text:?}: expected OS/ARCH[/VARIANT]")]
    InvalidPlatform { text: String },
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error(transparent)]
    Trust(#[from] TrustError),
    #[error("{image}: no manifest for platform {wanted}; the index offers: {available}")]
    NoMatchingPlatform {
        image: String,
        wanted: Platform,
        available: String,
    },
    /// A descriptor (in a manifest or index) whose digest concil cannot verify.
    #[error("{document}: {what}")]
    DescriptorDigest {
        document: String,
        what: String,
        source: DigestError,
    },
    #[error("{image}: indexes nested deeper than {MAX_INDEX_DEPTH} levels")]
    IndexTooDeep { image: String },
    #[error("{image}: manifest {digest} has media type {media_type}, expected an image manifest")]
    NotAnImageManifest {
        image: String,
        digest: Digest,
        media_type: String,
    },
    #[error("config {digest} is not a valid image config: {reason}")]
    ConfigInvalid { digest: Digest, reason: String },
    #[error("config {digest} is {size} bytes, more than the {MAX_CONFIG_SIZE} accepted")]
    ConfigTooLarge { digest: Digest, size: u64 },
    #[error("manifest {manifest} lists {layers} layers but its config has {diff_ids} diff_ids")]
    LayerCountMismatch {
        manifest: Digest,
        layers: usize,
        diff_ids: usize,
    },
    #[error("layer {digest} has media type {media_type}, which concil cannot store")]
    UnsupportedLayer { digest: Digest, media_type: String },
    #[error("layer {digest} is non-distributable ({media_type}) and cannot be pulled")]
    NonDistributableLayer { digest: Digest, media_type: String },
    #[error("layer {digest}: {url} ended after {got} of {expected} bytes")]
    BlobTruncated {
        digest: Digest,
        url: String,
        got: u64,
        expected: u64,
    },
    #[error("layer {digest}: {url} sent more than the {expected} bytes the manifest declares")]
    BlobTooLong {
        digest: Digest,
        url: String,
        expected: u64,
    },
    #[error("layer {digest}: content from {url} hashes to {got}")]
    BlobDigestMismatch {
        digest: Digest,
        url: String,
        got: Digest,
    },
    #[error(
        "layer {digest}: uncompressed content hashes to {got}, but the config says {expected}"
    )]
    DiffIdMismatch {
        digest: Digest,
        expected: Digest,
        got: String,
    },
    #[error("layer {digest}: reading {url}")]
    BlobRead {
        digest: Digest,
        url: String,
        source: io::Error,
    },
    #[error("layer {digest}: converting to squashfs")]
    Convert {
        digest: Digest,
        source: tarsquash::Error,
    },
    #[error("layer {digest}: writing {path}")]
    WriteLayer {
        digest: Digest,
        path: PathBuf,
        source: io::Error,
    },
    #[error("layer worker thread panicked")]
    WorkerPanicked,
}

/// Pulls one image into the cache. Cheap to share between threads.
pub struct Store {
    reference: Reference,
    image: String,
    config: Config,
    client: Client,
    cache: Cache,
    verify: bool,
    parallel_layers: usize,
    convert: tarsquash::Options,
    progress: Arc<dyn Progress>,
}

impl Store {
    /// A store for `reference` with the registry endpoint, credentials, TLS settings and cache
    /// directory that `config` gives. Does not touch the network yet.
    pub fn new(reference: Reference, config: Config) -> Result<Store, StoreError> {
        let endpoint = config.registry_endpoint(&reference.registry)?;
        let credentials = config.credentials(&reference.registry, &reference.repository);
        let tls = TlsSettings {
            ca_file: config.cafile.clone(),
        };
        let allow_http_fallback = !endpoint.explicit && is_loopback(&endpoint.url);
        let client = Client::new(
            endpoint.url,
            &reference.repository,
            credentials,
            &tls,
            allow_http_fallback,
        )?;
        let cache = Cache::open(&config.cache_dir)?;
        Ok(Store {
            image: reference.to_string(),
            reference,
            verify: !config.disable_content_trust,
            config,
            client,
            cache,
            parallel_layers: DEFAULT_PARALLEL_LAYERS,
            convert: tarsquash::Options::default(),
            progress: Arc::new(NoProgress),
        })
    }

    /// Pulls without content trust (`--no-verify`).
    pub fn without_verification(mut self) -> Store {
        self.verify = false;
        self
    }

    /// Reports progress to `progress`.
    pub fn with_progress(mut self, progress: Arc<dyn Progress>) -> Store {
        self.progress = progress;
        self
    }

    /// Downloads at most `layers` layers at once (at least 1).
    pub fn with_parallel_layers(mut self, layers: usize) -> Store {
        self.parallel_layers = layers.max(1);
        self
    }

    /// Uses these squashfs settings for converted layers.
    pub fn with_convert_options(mut self, options: tarsquash::Options) -> Store {
        self.convert = options;
        self
    }

    /// How many layers download at once.
    pub fn parallel_layers(&self) -> usize {
        self.parallel_layers
    }

    /// The cache this store writes into.
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// Resolves the reference to the image manifest for `platform` (through an index if the
    /// reference names one) and caches the manifests by digest.
    pub fn manifest(&self, platform: &Platform) -> Result<ResolvedManifest, StoreError> {
        let (mut manifest, verified) = self.trusted_manifest()?;
        for _ in 0..MAX_INDEX_DEPTH {
            match manifest.parse()? {
                ParsedManifest::Image(image) => {
                    return Ok(ResolvedManifest {
                        digest: manifest.digest,
                        media_type: manifest.media_type,
                        manifest: image,
                        verified,
                    });
                }
                ParsedManifest::Index(index) => {
                    let child = self.choose_platform(index.manifests(), platform)?;
                    let child = descriptor_digest(child, &manifest.digest, "manifest")?;
                    manifest = self.fetch_manifest(child.as_str())?;
                }
            }
        }
        Err(StoreError::IndexTooDeep {
            image: self.image.clone(),
        })
    }

    /// The image config of the manifest, from the cache or the registry (then cached).
    pub fn config(&self, resolved: &ResolvedManifest) -> Result<ImageConfig, StoreError> {
        let descriptor = resolved.manifest.config();
        let digest = descriptor_digest(descriptor, &resolved.digest, "config")?;
        let bytes = match self.cache.config(&digest)? {
            Some(bytes) => bytes,
            None => {
                // Concurrent pulls fetch it once: whoever holds the lock fetches it, the others
                // wait and then find it in the cache.
                let _lock = self.cache.lock(&digest)?;
                match self.cache.config(&digest)? {
                    Some(bytes) => bytes,
                    None => self.fetch_config(&digest, descriptor.size())?,
                }
            }
        };
        crate::registry::parse_json(&bytes)
            .map_err(|reason| StoreError::ConfigInvalid { digest, reason })
    }

    fn fetch_config(&self, digest: &Digest, size: u64) -> Result<Vec<u8>, StoreError> {
        if size > MAX_CONFIG_SIZE {
            return Err(StoreError::ConfigTooLarge {
                digest: digest.clone(),
                size,
            });
        }
        let bytes = self.client.blob_bytes(digest, size)?;
        self.cache.put_config(digest, &bytes)?;
        Ok(bytes)
    }

    /// The squashfs file of one layer (`descriptor`) of the manifest: from the cache, or downloaded and
    /// converted (each blob once, even across processes: the per-blob lock makes others wait
    /// and then reuse it).
    pub fn layer(
        &self,
        resolved: &ResolvedManifest,
        descriptor: &Descriptor,
        diff_id: &Digest,
    ) -> Result<PathBuf, StoreError> {
        self.pull_layer(&LayerBlob::of(&resolved.digest, descriptor)?, diff_id)
    }

    fn pull_layer(&self, layer: &LayerBlob, diff_id: &Digest) -> Result<PathBuf, StoreError> {
        let digest = &layer.digest;
        if let Some(path) = self.cached_layer(layer, diff_id)? {
            tracing::debug!(layer = %digest, "layer in the cache");
            self.progress.layer_done(digest, true);
            return Ok(path);
        }
        tracing::debug!(layer = %digest, "waiting for the blob's lock");
        let _lock = self.cache.lock(digest)?;
        // Another process may have finished it while we waited for the lock.
        if let Some(path) = self.cached_layer(layer, diff_id)? {
            self.progress.layer_done(digest, true);
            return Ok(path);
        }
        self.progress.layer_started(digest, layer.size);
        let started = std::time::Instant::now();
        let path = self.download_layer(layer, diff_id)?;
        tracing::info!(layer = %digest, bytes = layer.size, seconds = started.elapsed().as_secs_f64(), "layer downloaded and converted");
        self.progress.layer_done(digest, false);
        Ok(path)
    }

    /// Pulls the whole image for `platform`: manifest, config and every layer.
    pub fn pull(&self, wanted: &Platform) -> Result<PulledImage, StoreError> {
        let resolved = self.manifest(wanted)?;
        let config_descriptor = resolved.manifest.config();
        let config_digest = descriptor_digest(config_descriptor, &resolved.digest, "config")?;
        let config = self.config(&resolved)?;
        let descriptors = resolved.manifest.layers();
        if descriptors.len() != config.rootfs.diff_ids.len() {
            return Err(StoreError::LayerCountMismatch {
                manifest: resolved.digest,
                layers: descriptors.len(),
                diff_ids: config.rootfs.diff_ids.len(),
            });
        }
        // Refuse unusable layers before downloading any.
        let layers = descriptors
            .iter()
            .map(|descriptor| LayerBlob::of(&resolved.digest, descriptor))
            .collect::<Result<Vec<_>, _>>()?;
        let paths = self.layers_in_parallel(&layers, &config.rootfs.diff_ids)?;
        let layers = layers
            .into_iter()
            .zip(&config.rootfs.diff_ids)
            .zip(paths)
            .map(|((layer, diff_id), path)| PulledLayer {
                digest: layer.digest,
                diff_id: diff_id.clone(),
                media_type: layer.media_type,
                size: layer.size,
                path,
            })
            .collect();
        let platform = Platform::new(&config.os, &config.architecture, config.variant.as_deref());
        if !config.os.is_empty() && platform != *wanted {
            // As Docker: a single-platform image is pulled whatever it is built for, with a warning.
            tracing::warn!(image = %self.image, "the image is for {platform}, not the requested {wanted}");
        }
        Ok(PulledImage {
            manifest_digest: resolved.digest,
            config_digest,
            platform: platform.to_string(),
            verified: resolved.verified,
            layers,
        })
    }

    /// Removes cache entries older than the configured `cache_timeout`.
    pub fn cache_cleanup(&self) -> Result<CleanReport, StoreError> {
        Ok(self.cache.clean(self.config.cache_timeout)?)
    }

    /// The manifest the reference names, trusted as the configuration asks. Trust is decided
    /// on the digest the reference resolves to, before anything in the manifest is used; an
    /// index's trust covers the children fetched by digest from it.
    /// - cosign: the manifest is fetched by tag, then its digest must carry a signature;
    /// - Notary: the digest comes from Notary's signed targets first, and the manifest is
    ///   fetched by it and checked against the signed length and hashes.
    fn trusted_manifest(&self) -> Result<(Manifest, Verification), StoreError> {
        let repository = format!("{}/{}", self.reference.registry, self.reference.repository);
        match (self.verify, self.config.content_trust) {
            (false, _) => {
                let manifest = self.fetch_manifest(self.reference.manifest_reference())?;
                Ok((manifest, Verification::None))
            }
            (true, ContentTrust::Cosign) => {
                let manifest = self.fetch_manifest(self.reference.manifest_reference())?;
                let verified = Verifier::from_config(&self.config)?
                    .check_docker_reference(self.config.cosign_check_identity)
                    .verify(&self.client, &self.image, &repository, &manifest.digest)?;
                tracing::info!(digest = %manifest.digest, signed_by = %verified.signed_by, "cosign signature verified");
                Ok((manifest, Verification::Cosign))
            }
            (true, ContentTrust::Notary) => {
                Ok((self.notary_manifest(repository)?, Verification::Notary))
            }
        }
    }

    /// The manifest by the digest Notary signed for the reference, checked against the signed
    /// length and hashes.
    fn notary_manifest(&self, gun: String) -> Result<Manifest, StoreError> {
        let notary_error = |source| TrustError::Notary {
            image: self.image.clone(),
            source: Box::new(source),
        };
        let client = NotaryClient::new(NotarySettings {
            server: self.config.notary_url(&self.reference.registry)?,
            credentials: self
                .config
                .credentials(&self.reference.registry, &self.reference.repository),
            tls: TlsSettings {
                ca_file: self.config.cafile.clone(),
            },
            trust_dir: self.config.notary_trust_dir(),
            pinning: TrustPinning::from_config(self.config.trust_pinning.as_ref())
                .map_err(notary_error)?,
            gun,
        })
        .map_err(notary_error)?;
        let target = client
            .target(Wanted {
                tag: self.reference.tag.as_deref(),
                digest: self.reference.digest.as_ref(),
            })
            .map_err(notary_error)?;
        let manifest = self.fetch_manifest(target.digest.as_str())?;
        target
            .check_manifest(&manifest.bytes)
            .map_err(notary_error)?;
        Ok(manifest)
    }

    /// A manifest by tag or digest. By digest it may come from the cache (content-addressed,
    /// so it cannot be stale); by tag it is always asked for, since tags move.
    fn fetch_manifest(&self, reference: &str) -> Result<Manifest, StoreError> {
        if let Ok(digest) = Digest::parse(reference) {
            if let Some(bytes) = self.cache.manifest(&digest)? {
                if let Some(media_type) = media_type_of(&bytes) {
                    return Ok(Manifest {
                        bytes,
                        media_type,
                        digest,
                    });
                }
            }
        }
        let manifest = self.client.manifest(reference)?;
        tracing::info!(reference, digest = %manifest.digest, media_type = %manifest.media_type, "manifest fetched");
        // Already cached (a warm pull by tag): the lookup refreshes it; no rewrite, no fsync.
        if self.cache.manifest(&manifest.digest)?.is_none() {
            self.cache.put_manifest(&manifest.digest, &manifest.bytes)?;
        }
        Ok(manifest)
    }

    fn choose_platform<'a>(
        &self,
        manifests: &'a [Descriptor],
        wanted: &Platform,
    ) -> Result<&'a Descriptor, StoreError> {
        let offered = manifests
            .iter()
            .filter_map(|m| m.platform().as_ref().map(|p| (m, p)));
        for (descriptor, platform) in offered.clone() {
            if Platform::from_spec(platform) == *wanted {
                return Ok(descriptor);
            }
        }
        let available: Vec<String> = offered
            .map(|(_, p)| Platform::from_spec(p))
            // Attestation manifests (buildkit) are not images.
            .filter(|p| p.os != "unknown")
            .map(|p| p.to_string())
            .collect();
        Err(StoreError::NoMatchingPlatform {
            image: self.image.clone(),
            wanted: wanted.clone(),
            available: if available.is_empty() {
                "nothing".into()
            } else {
                available.join(", ")
            },
        })
    }

    /// The layer from the cache.
    ///
    /// A squashfs layer is its blob: `layers/<blob>` as a file. A tar layer is found through
    /// its blob's link, or by its diff_id when the same tar was converted before from another
    /// blob (compressed another way). That second blob's link is not written then: a link
    /// `layers/<blob>` states what the blob's bytes hash to once uncompressed, and only a
    /// download of those bytes may say so (a manifest's word would let one image repoint
    /// another image's blob).
    fn cached_layer(
        &self,
        layer: &LayerBlob,
        diff_id: &Digest,
    ) -> Result<Option<PathBuf>, StoreError> {
        let by_blob = self.cache.layer_by_blob(&layer.digest)?;
        match layer.kind {
            LayerKind::Squashfs => Ok(by_blob
                .filter(|cached| cached.diff_id == layer.digest)
                .map(|layer| layer.path)),
            LayerKind::Tar(_) => match by_blob {
                Some(cached) if cached.diff_id == *diff_id => Ok(Some(cached.path)),
                _ => Ok(self.cache.layer_by_diff_id(diff_id)?),
            },
        }
    }

    /// Runs `pull_layer` for every layer on a pool of `parallel_layers` threads; results in order.
    fn layers_in_parallel(
        &self,
        layers: &[LayerBlob],
        diff_ids: &[Digest],
    ) -> Result<Vec<PathBuf>, StoreError> {
        let next = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let results: Mutex<Vec<Option<Result<PathBuf, StoreError>>>> =
            Mutex::new((0..layers.len()).map(|_| None).collect());
        let workers = self.parallel_layers.min(layers.len()).max(1);
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| {
                    while !failed.load(Ordering::Relaxed) {
                        let index = next.fetch_add(1, Ordering::Relaxed);
                        let (Some(layer), Some(diff_id)) = (layers.get(index), diff_ids.get(index))
                        else {
                            break;
                        };
                        let result = self.pull_layer(layer, diff_id);
                        if result.is_err() {
                            failed.store(true, Ordering::Relaxed);
                        }
                        if let Ok(mut results) = results.lock() {
                            results[index] = Some(result);
                        }
                    }
                });
            }
        });
        let results = results
            .into_inner()
            .map_err(|_| StoreError::WorkerPanicked)?;
        // The first error in layer order, else all paths.
        let mut paths = Vec::with_capacity(layers.len());
        for result in results {
            match result {
                Some(Ok(path)) => paths.push(path),
                Some(Err(error)) => return Err(error),
                None if failed.load(Ordering::Relaxed) => continue,
                None => return Err(StoreError::WorkerPanicked),
            }
        }
        Ok(paths)
    }

    fn download_layer(&self, layer: &LayerBlob, diff_id: &Digest) -> Result<PathBuf, StoreError> {
        let digest = &layer.digest;
        let mut blob = VerifyingReader::new(
            self.client.blob(digest)?,
            layer.size,
            digest,
            &*self.progress,
        );
        let mut ingest = self.cache.ingest()?;
        let written_diff_id = match layer.kind {
            LayerKind::Squashfs => {
                io::copy(&mut blob, ingest.file())
                    .map_err(|source| blob.copy_error(source, ingest.path()))?;
                blob.drain()?;
                blob.finish()?;
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
                let mut tar = compression.decoder(&mut blob);
                let converted = tarsquash::convert(&mut tar, out, &self.convert);
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
                        return Err(StoreError::Convert {
                            digest: digest.clone(),
                            source,
                        });
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

/// One layer blob of a manifest, with what the store does with it.
#[derive(Debug, Clone)]
struct LayerBlob {
    digest: Digest,
    media_type: String,
    size: u64,
    kind: LayerKind,
}

impl LayerBlob {
    /// The layer `descriptor` of `manifest` names; unusable ones (a digest concil cannot verify,
    /// a media type it cannot store) are refused here, before anything is downloaded.
    fn of(manifest: &Digest, descriptor: &Descriptor) -> Result<LayerBlob, StoreError> {
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
fn descriptor_digest(
    descriptor: &Descriptor,
    document: &Digest,
    what: &str,
) -> Result<Digest, StoreError> {
    Digest::parse(descriptor.digest().as_ref()).map_err(|source| StoreError::DescriptorDigest {
        document: format!("manifest {document}"),
        what: format!("{what} descriptor"),
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
    body: DigestReader<io::Take<crate::registry::BlobReader>>,
    /// Where the body comes from (after redirects), for errors.
    url: String,
    expected_size: u64,
    expected_digest: &'a Digest,
    read_failed: bool,
    progress: &'a dyn Progress,
}

impl<'a> VerifyingReader<'a> {
    fn new(
        body: crate::registry::BlobReader,
        expected_size: u64,
        expected_digest: &'a Digest,
        progress: &'a dyn Progress,
    ) -> Self {
        VerifyingReader {
            url: body.url().to_owned(),
            body: DigestReader::new(body.take(expected_size.saturating_add(1))),
            expected_size,
            expected_digest,
            read_failed: false,
            progress,
        }
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

/// The media type a cached manifest declares in its body.
fn media_type_of(bytes: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct MediaTypeOnly {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
    }
    serde_json::from_slice::<MediaTypeOnly>(bytes)
        .ok()?
        .media_type
}

/// Docker talks plain HTTP to loopback registries when HTTPS fails; so do we.
fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(domain)) => domain == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}
