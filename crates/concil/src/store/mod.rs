//! The pull pipeline and the public API.
//!
//! ```text
//! reference ─► endpoint + credentials ─► trusted manifest ─► platform ─► config ─► layers ─► ordered paths
//! ```
//!
//! A [`Store`] holds the cache, the configuration and one pool of connections for as long as
//! the caller likes; each [`Store::pull`] resolves one reference ([`image`](self) module: the
//! manifest, trusted as configured, the platform, the config) and brings its layers into the
//! cache on a bounded pool of [`Store::parallel_layers`] threads. Each layer is one streaming
//! pass with no temporary tarball ([`layer`](self) module): the HTTP body is hashed (blob
//! digest), decompressed, hashed again (diff_id) and converted to squashfs by `tarsquash` into
//! a working file of the cache, while each conversion keeps every core busy compressing; only
//! when the blob digest, its size and the diff_id all match does the file get its final name.
//!
//! ```no_run
//! use concil::{Config, Platform, Reference, Store};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = Store::open(Config::load(None)?)?.without_verification();
//! let reference = Reference::parse("docker://127.0.0.1:5000/demo/busybox:latest")?;
//! let image = store.pull(&reference, &Platform::host())?;
//! for layer in &image.layers {
//!     println!("{} {}", layer.diff_id, layer.path.display());
//! }
//! # Ok(())
//! # }
//! ```

mod image;
mod layer;
mod platform;

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::cache::{Cache, CacheError, CleanReport};
use crate::config::{Config, ConfigError};
use crate::digest::{Digest, DigestError};
use crate::reference::Reference;
use crate::registry::{Client, Connections, Descriptor, ImageManifest, RegistryError, TlsSettings};
use crate::trust::TrustError;
use image::ImagePull;
pub use platform::Platform;

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
        /// The platform asked for (boxed: it is the largest field of any variant).
        wanted: Box<Platform>,
        available: String,
    },
    /// A descriptor (in a manifest or index) whose digest concil cannot verify.
    #[error("manifest {document}: {what} descriptor")]
    DescriptorDigest {
        document: Digest,
        what: &'static str,
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
/// The image store: a cache, the configuration and a pool of connections, held as long as the
/// caller likes and shared between threads; each [`Store::pull`] resolves one reference.
pub struct Store {
    config: Config,
    cache: Cache,
    connections: Connections,
    /// One client per `registry/repository` pulled from: each keeps its registry's endpoint
    /// and bearer token for the next pull.
    clients: Mutex<HashMap<String, Client>>,
    verify: bool,
    parallel_layers: usize,
    convert: tarsquash::Options,
    progress: Arc<dyn Progress>,
}

impl Store {
    /// A store with the cache directory, TLS settings and content trust that `config` gives.
    /// Opens (creates) the cache; does not touch the network yet.
    pub fn open(config: Config) -> Result<Store, StoreError> {
        let cache = Cache::open(&config.cache_dir)?;
        let connections = Connections::new(&TlsSettings {
            ca_file: config.cafile.clone(),
        })?;
        Ok(Store {
            verify: !config.disable_content_trust,
            config,
            cache,
            connections,
            clients: Mutex::new(HashMap::new()),
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

    /// The configuration the store was opened with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Pulls the whole image `reference` names for `platform`: manifest, config and every
    /// layer, each verified, into the cache.
    pub fn pull(
        &self,
        reference: &Reference,
        platform: &Platform,
    ) -> Result<PulledImage, StoreError> {
        self.image(reference)?.pull(platform)
    }

    /// Resolves `reference` to the image manifest for `platform` (through an index if it names
    /// one), trusted as the configuration asks, and caches the manifests by digest.
    pub fn manifest(
        &self,
        reference: &Reference,
        platform: &Platform,
    ) -> Result<ResolvedManifest, StoreError> {
        self.image(reference)?.manifest(platform)
    }

    /// The image config of a manifest `reference` resolved to, from the cache or the registry
    /// (then cached).
    pub fn image_config(
        &self,
        reference: &Reference,
        resolved: &ResolvedManifest,
    ) -> Result<ImageConfig, StoreError> {
        self.image(reference)?.config(resolved)
    }

    /// The squashfs file of one layer (`descriptor`) of a manifest `reference` resolved to:
    /// from the cache, or downloaded and converted (each blob once, even across processes:
    /// the per-blob lock makes others wait and then reuse it).
    pub fn layer(
        &self,
        reference: &Reference,
        resolved: &ResolvedManifest,
        descriptor: &Descriptor,
        diff_id: &Digest,
    ) -> Result<PathBuf, StoreError> {
        self.image(reference)?.layer(resolved, descriptor, diff_id)
    }

    /// Removes cache entries older than the configured `cache_timeout`.
    pub fn cache_cleanup(&self) -> Result<CleanReport, StoreError> {
        Ok(self.cache.clean(self.config.cache_timeout)?)
    }

    fn image<'s>(&'s self, reference: &'s Reference) -> Result<ImagePull<'s>, StoreError> {
        Ok(ImagePull {
            store: self,
            reference,
            image: reference.to_string(),
            client: self.client(reference)?,
        })
    }

    /// The client for the reference's repository: made once with the registry endpoint and
    /// credentials the configuration gives, on the store's connections.
    fn client(&self, reference: &Reference) -> Result<Client, StoreError> {
        let key = format!("{}/{}", reference.registry, reference.repository);
        let mut clients = self
            .clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(client) = clients.get(&key) {
            return Ok(client.clone());
        }
        let endpoint = self.config.registry_endpoint(&reference.registry)?;
        let credentials = self
            .config
            .credentials(&reference.registry, &reference.repository);
        let allow_http_fallback = !endpoint.explicit && is_loopback(&endpoint.url);
        let client = Client::with_connections(
            &self.connections,
            endpoint.url,
            &reference.repository,
            credentials,
            allow_http_fallback,
        )?;
        clients.insert(key, client.clone());
        Ok(client)
    }
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
