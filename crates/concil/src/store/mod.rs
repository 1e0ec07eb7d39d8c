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

use crate::cache::{Cache, CacheError, CleanReport, Hold};
use crate::config::{Config, ConfigError};
use crate::digest::{Digest, DigestError};
use crate::image_file::{FileError, FileReference, ImageFile};
use crate::reference::Reference;
use crate::registry::{
    Client, Connections, Descriptor, ImageManifest, NetworkSettings, RegistryError, TlsSettings,
    MAX_CONFIG_SIZE,
};
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
    /// The digest the reference resolved to: the index that led to the manifest, or the
    /// manifest's own.
    pub resolved_digest: Digest,
    /// Its media type: [`OCI_MANIFEST`](crate::registry::OCI_MANIFEST) or
    /// [`DOCKER_MANIFEST_V2`](crate::registry::DOCKER_MANIFEST_V2).
    pub media_type: String,
    /// The parsed manifest: its config and layer descriptors.
    pub manifest: ImageManifest,
    /// How the digest the reference resolved to was found trustworthy.
    pub verified: Verification,
}

/// The parts of an image config the store needs. Parsed leniently (not with oci-spec's
/// `ImageConfiguration`) because real-world configs carry fields in forms oci-spec rejects,
/// while these are all a pull depends on.
#[derive(Debug, Clone, Deserialize)]
pub struct ImageConfig {
    /// The operating system the image is built for (`linux`); empty when the config omits it.
    #[serde(default)]
    pub os: String,
    /// The CPU architecture the image is built for (`amd64`); empty when the config omits it.
    #[serde(default)]
    pub architecture: String,
    /// The CPU variant (`v7`), when the config gives one.
    #[serde(default)]
    pub variant: Option<String>,
    /// The layers' uncompressed digests, which the converted layers are checked against.
    pub rootfs: RootFs,
}

/// An image config's `rootfs`: what the layers unpack to.
#[derive(Debug, Clone, Deserialize)]
pub struct RootFs {
    /// The `type` field, `layers` in every image today; not checked.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// The digest of each layer's uncompressed tar, in the manifest's layer order.
    pub diff_ids: Vec<Digest>,
}

/// One layer of a pulled image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PulledLayer {
    /// The blob's digest as in the manifest.
    pub digest: Digest,
    /// The uncompressed tar's digest from the config, the name of the squashfs file.
    pub diff_id: Digest,
    /// The blob's media type as in the manifest (a compressed tar or a squashfs image).
    pub media_type: String,
    /// The blob's size in bytes.
    pub size: u64,
    /// The squashfs file in the cache.
    pub path: PathBuf,
    /// Where the layer came from: `"cache"` when it was there already, else the base URL of
    /// the mirror or registry that served its blob.
    pub source: String,
}

/// [`PulledLayer::source`] of a layer that was in the cache already.
pub const FROM_CACHE: &str = "cache";

/// A pulled image: what `concil pull --json` prints.
#[derive(Debug, Clone, Serialize)]
pub struct PulledImage {
    /// Digest of the image manifest pulled (for a multi-platform image, the platform's
    /// manifest, not the index).
    pub manifest_digest: Digest,
    /// The digest the reference resolved to: the index, or the manifest itself.
    #[serde(skip)]
    pub resolved_digest: Digest,
    /// The name of the image's record in the cache (`None` until the pull wrote it): a hold
    /// holds it too, and refreshes it (the image's last use).
    #[serde(skip)]
    pub record: Option<Digest>,
    /// Digest of the image config.
    pub config_digest: Digest,
    /// The platform of the image pulled (from its config).
    pub platform: String,
    /// How the manifest's trust was established.
    pub verified: Verification,
    /// In `rootfs.diff_ids` order.
    pub layers: Vec<PulledLayer>,
}

/// What `concil inspect` shows of an image ([`Store::inspect`]).
#[derive(Debug, Clone)]
pub struct Inspection {
    /// The media type of the manifest the reference resolved to (an index, or the image
    /// manifest itself).
    pub media_type: String,
    /// That manifest's bytes, exactly as served.
    pub raw: Vec<u8>,
    /// For an index: each child's platform (`os/arch[/variant]`) and digest, in its order.
    pub platforms: Vec<(String, Digest)>,
    /// The image manifest for the platform asked for.
    pub manifest: ResolvedManifest,
    /// Its config blob, exactly as served.
    pub config: Vec<u8>,
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
    /// The blob's body broke off; retry `retry` of `budget` resumes it where it broke.
    fn layer_retrying(&self, _digest: &Digest, _retry: u32, _budget: u32) {}
    /// The server would not serve the rest of the blob: it downloads again from byte 0.
    fn layer_restarted(&self, _digest: &Digest) {}
}

/// Reports nothing: a [`Store`]'s progress until [`Store::with_progress`] sets one.
pub struct NoProgress;
impl Progress for NoProgress {}
/// Errors of a pull. Layer errors name the layer by its blob digest as the manifest gives it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A platform (`--platform`) that is not `os/arch[/variant]`.
    #[error("invalid platform {text:?}: expected OS/ARCH[/VARIANT]")]
    InvalidPlatform {
        /// The platform as given.
        text: String,
    },
    /// The configuration gives no usable registry endpoint or Notary server for the reference.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Talking to the registry failed, or it served a manifest or config that is wrong.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The cache could not be read or written.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// An image file (`oci:`, `oci-archive:`, `docker-archive:`) is unreadable or wrong.
    #[error(transparent)]
    File(#[from] FileError),
    /// The trust policy asks Notary to vouch for an image file: Notary signs tags in a
    /// registry, not files.
    #[error(
        "{image}: Notary does not apply to image files (it signs tags in a registry); set \
         trust_policy {{\"*\": \"cosign\"}} to check the file's cosign signatures, or pull it \
         with --no-verify"
    )]
    NotaryForFile {
        /// The image file as given.
        image: String,
    },
    /// Content trust refused the manifest, or could not be checked.
    #[error(transparent)]
    Trust(#[from] TrustError),
    /// The index has no manifest for the platform asked for.
    #[error("{image}: no manifest for platform {wanted}; the index offers: {available}")]
    NoMatchingPlatform {
        /// The image reference, normalised.
        image: String,
        /// The platform asked for (boxed: it is the largest field of any variant).
        wanted: Box<Platform>,
        /// The platforms the index offers, comma-separated (`nothing` if none).
        available: String,
    },
    /// A descriptor (in a manifest or index) whose digest concil cannot verify.
    #[error("manifest {document}: {what} descriptor")]
    DescriptorDigest {
        /// The digest of the manifest or index that holds the descriptor.
        document: Digest,
        /// Which descriptor it is (`manifest`, `config`, `layer`).
        what: &'static str,
        /// Why its digest is unusable.
        source: DigestError,
    },
    /// Indexes point to indexes more than 4 levels deep: refused rather than followed
    /// without end.
    #[error("{image}: indexes nested deeper than {MAX_INDEX_DEPTH} levels")]
    IndexTooDeep {
        /// The image reference, normalised.
        image: String,
    },
    /// The image config does not parse (or lacks `rootfs.diff_ids`).
    #[error("config {digest} is not a valid image config: {reason}")]
    ConfigInvalid {
        /// The config's digest.
        digest: Digest,
        /// What the parser said, with the field that failed.
        reason: String,
    },
    /// The manifest declares a config larger than concil reads into memory (16 MiB).
    #[error("config {digest} is {size} bytes, more than the {MAX_CONFIG_SIZE} accepted")]
    ConfigTooLarge {
        /// The config's digest.
        digest: Digest,
        /// The size the manifest declares for it.
        size: u64,
    },
    /// The manifest and its config disagree on the number of layers.
    #[error("manifest {manifest} lists {layers} layers but its config has {diff_ids} diff_ids")]
    LayerCountMismatch {
        /// The image manifest's digest.
        manifest: Digest,
        /// How many layers the manifest lists.
        layers: usize,
        /// How many diff_ids the config lists.
        diff_ids: usize,
    },
    /// A layer media type that is neither a (compressed) tar concil can convert nor squashfs.
    #[error("layer {digest} has media type {media_type}, which concil cannot store")]
    UnsupportedLayer {
        /// The blob's digest as the manifest gives it.
        digest: Digest,
        /// The layer's media type.
        media_type: String,
    },
    /// A non-distributable ("foreign") layer: its blob lives outside the registry, and concil
    /// downloads only from the registry.
    #[error("layer {digest} is non-distributable ({media_type}) and cannot be pulled")]
    NonDistributableLayer {
        /// The blob's digest as the manifest gives it.
        digest: Digest,
        /// The layer's media type.
        media_type: String,
    },
    /// The blob's body ended before the size the manifest declares.
    #[error("layer {digest}: {url} ended after {got} of {expected} bytes")]
    BlobTruncated {
        /// The blob's digest as the manifest gives it.
        digest: Digest,
        /// Where the body came from (after redirects), without query or credentials.
        url: String,
        /// How many bytes arrived.
        got: u64,
        /// The size the manifest declares.
        expected: u64,
    },
    /// The blob's body ended cleanly (the server said it was complete) short of the size the
    /// manifest declares: not the blob the manifest names.
    #[error("layer {digest}: {url} served {got} bytes, the manifest declares {expected}")]
    BlobTooShort {
        /// The blob's digest as the manifest gives it.
        digest: Digest,
        /// Where the body came from (after redirects), without query or credentials.
        url: String,
        /// How many bytes it served.
        got: u64,
        /// The size the manifest declares.
        expected: u64,
    },
    /// The blob's body went on past the size the manifest declares.
    #[error("layer {digest}: {url} sent more than the {expected} bytes the manifest declares")]
    BlobTooLong {
        /// The blob's digest as the manifest gives it.
        digest: Digest,
        /// Where the body came from (after redirects), without query or credentials.
        url: String,
        /// The size the manifest declares.
        expected: u64,
    },
    /// The blob's body has the declared size but another digest.
    #[error("layer {digest}: content from {url} hashes to {got}")]
    BlobDigestMismatch {
        /// The blob's digest as the manifest gives it.
        digest: Digest,
        /// Where the body came from (after redirects), without query or credentials.
        url: String,
        /// The digest of the bytes received.
        got: Digest,
    },
    /// The blob is intact, but its uncompressed tar is not the one the config names, so the
    /// converted layer is discarded.
    #[error(
        "layer {digest}: uncompressed content hashes to {got}, but the config says {expected}"
    )]
    DiffIdMismatch {
        /// The blob's digest as the manifest gives it.
        digest: Digest,
        /// The diff_id the config gives for the layer.
        expected: Digest,
        /// The digest of the uncompressed tar received.
        got: String,
    },
    /// Reading the blob's body failed (the connection broke off or timed out) before its size
    /// or digest could tell what was wrong.
    #[error("layer {digest}: reading {url}")]
    BlobRead {
        /// The blob's digest as the manifest gives it.
        digest: Digest,
        /// Where the body came from (after redirects), without query or credentials.
        url: String,
        /// The read error.
        source: io::Error,
    },
    /// The blob arrived intact (size and digest match) but does not decompress or convert to
    /// squashfs: a corrupt or hostile tar, a limit exceeded, the squashfs file not written.
    #[error("layer {digest}: converting to squashfs")]
    Convert {
        /// The blob's digest as the manifest gives it.
        digest: Digest,
        /// What the converter said.
        source: tarsquash::Error,
    },
    /// The layer is larger than the configuration allows (`layer_max_size` uncompressed
    /// bytes or `layer_max_entries` entries); refused while it converted.
    #[error("layer {digest} exceeds {key} = {limit}")]
    LayerLimit {
        /// The blob's digest as the manifest gives it.
        digest: Digest,
        /// The configuration key of the limit.
        key: &'static str,
        /// The limit's value.
        limit: u64,
        /// Where the converter stopped.
        source: tarsquash::Error,
    },
    /// A layer stored as it is (squashfs-typed) whose declared size exceeds
    /// `layer_max_size`; refused before any byte is read.
    #[error("layer {digest} is {size} bytes, more than layer_max_size = {limit}")]
    LayerTooLarge {
        /// The blob's digest as the manifest gives it.
        digest: Digest,
        /// Its size as the manifest declares it.
        size: u64,
        /// The configured limit.
        limit: u64,
    },
    /// A squashfs-typed layer whose bytes are a tar: stored under its digest it would stand
    /// in for the squashfs file of the uncompressed tar layer of that digest.
    #[error("layer {digest} is typed as squashfs but is a tar")]
    SquashfsLayerIsTar {
        /// The blob's digest as the manifest gives it.
        digest: Digest,
    },
    /// Writing the layer's working file in the cache failed.
    #[error("layer {digest}: writing {path}")]
    WriteLayer {
        /// The blob's digest as the manifest gives it.
        digest: Digest,
        /// The working file in the cache.
        path: PathBuf,
        /// What the file system said.
        source: io::Error,
    },
    /// An entry of a pulled image went from the cache before it could be held (a clean-up
    /// of another process removed it).
    #[error("{path} is no longer in the cache")]
    NoLongerCached {
        /// The entry that is gone.
        path: PathBuf,
    },
    /// `--offline`, and the cache lacks something the image needs.
    #[error("{image}: offline, and the cache holds no {missing}")]
    NotCachedOffline {
        /// The image reference, normalised.
        image: String,
        /// What is missing (`record of a pull of it for linux/amd64`, `manifest sha256:…`,
        /// `config sha256:…`, `layer sha256:…`).
        missing: String,
    },
    /// `--offline`, the configuration wants the image signed, and its last online pull did not
    /// verify it (or nothing records that one did).
    #[error("{image}: offline, content trust needs {wanted}, and {found}")]
    NotVerifiedOffline {
        /// The image reference, normalised.
        image: String,
        /// The trust the configuration asks for (`cosign`, `notary`).
        wanted: &'static str,
        /// What the cache says instead.
        found: String,
    },
    /// A thread pulling layers panicked (a bug); the pull is abandoned.
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
    /// `--offline`: everything from the cache, no network (no client is ever made).
    offline: bool,
    parallel_layers: usize,
    convert: tarsquash::Options,
    progress: Arc<dyn Progress>,
}

impl Store {
    /// A store with the cache directory, TLS settings and content trust that `config` gives.
    /// Opens (creates) the cache; does not touch the network yet.
    pub fn open(config: Config) -> Result<Store, StoreError> {
        let cache = Cache::open(&config.cache_dir)?;
        let convert = tarsquash::Options {
            limits: tarsquash::Limits {
                max_tar_bytes: config.layer_max_size,
                max_entries: config.layer_max_entries,
            },
            ..tarsquash::Options::default()
        };
        let connections = Connections::new(
            &TlsSettings {
                ca_file: config.cafile.clone(),
                ..TlsSettings::default()
            },
            &NetworkSettings::of(&config),
        )?;
        Ok(Store {
            verify: true,
            offline: false,
            config,
            cache,
            connections,
            clients: Mutex::new(HashMap::new()),
            parallel_layers: DEFAULT_PARALLEL_LAYERS,
            convert,
            progress: Arc::new(NoProgress),
        })
    }

    /// Pulls without content trust (`--no-verify`).
    pub fn without_verification(mut self) -> Store {
        self.verify = false;
        self
    }

    /// Pulls from the cache alone (`--offline`): a reference by digest needs its manifest,
    /// config and layers in the cache; a reference by tag resolves to the digest the last
    /// online pull of it recorded. Content trust is what that pull established (its record
    /// says), so an image the configuration wants signed is refused if it was pulled
    /// unverified. Nothing touches the network, and no credential helper runs.
    pub fn offline(mut self) -> Store {
        self.offline = true;
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

    /// Uses these squashfs settings (and limits) for converted layers instead of the defaults
    /// and the configuration's `layer_max_size` / `layer_max_entries`.
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
        Ok(self.pull_held(reference, platform)?.0)
    }

    /// [`pull`](Store::pull), and a [`Hold`] on everything the image uses: until it is
    /// dropped no clean-up (of this process or any other sharing the cache) removes it.
    /// Records the image in the cache (`cache ls`); then, if the cache is over
    /// `cache_max_size` (and `cache_auto_clean` is on), removes least-recently-used images.
    pub fn pull_held(
        &self,
        reference: &Reference,
        platform: &Platform,
    ) -> Result<(PulledImage, Hold), StoreError> {
        let pulled = self.image(reference)?.pull(platform)?;
        self.keep_under_budget();
        Ok(pulled)
    }

    /// After a pull: if the cache is over `cache_max_size` (and `cache_auto_clean` is on),
    /// removes least-recently-used images (what the pull holds stays).
    fn keep_under_budget(&self) {
        if let (Some(max_size), true) = (self.config.cache_max_size, self.config.cache_auto_clean) {
            // The pull succeeded; a clean-up that fails only leaves the cache too big.
            match self.cache.fit(max_size, false) {
                Ok(report) if !report.removed.is_empty() => tracing::info!(
                    images = report.removed.len(),
                    freed = report.size_before - report.size_after,
                    "the cache was over cache_max_size: removed least recently used images"
                ),
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(%error, "cannot bring the cache under cache_max_size")
                }
            }
        }
    }

    /// Holds what `image` uses (its manifest, config and layers) against clean-up until the
    /// [`Hold`] is dropped, and refreshes its last use; fails if the cache no longer holds all
    /// of it.
    pub fn hold(&self, image: &PulledImage) -> Result<Hold, StoreError> {
        hold_pulled(&self.cache, image)
    }

    /// [`pull_held`](Store::pull_held) from an image file: an OCI layout directory, an OCI
    /// archive or `docker save` output. Every blob is checked against its digest as from a
    /// registry, and the cache entries are the ones a registry pull of the same image makes.
    pub fn pull_file_held(
        &self,
        file: &FileReference,
        platform: &Platform,
    ) -> Result<(PulledImage, Hold), StoreError> {
        let pulled = self.file_image(file)?.pull(platform)?;
        self.keep_under_budget();
        Ok(pulled)
    }

    /// [`inspect`](Store::inspect) of an image file.
    pub fn inspect_file(
        &self,
        file: &FileReference,
        platform: &Platform,
    ) -> Result<Inspection, StoreError> {
        self.file_image(file)?.inspect(platform)
    }

    fn file_image(&self, file: &FileReference) -> Result<ImagePull<'_>, StoreError> {
        Ok(ImagePull {
            store: self,
            reference: &FILE_REFERENCE,
            image: file.to_string(),
            origin: image::Origin::File(Box::new(ImageFile::open(file)?)),
        })
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

    /// The manifest `reference` resolves to (trusted as configured), the platforms of an index,
    /// the image manifest for `platform` and its config, without any layer; manifests and the
    /// config are cached as a pull caches them.
    pub fn inspect(
        &self,
        reference: &Reference,
        platform: &Platform,
    ) -> Result<Inspection, StoreError> {
        self.image(reference)?.inspect(platform)
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
            origin: match self.offline {
                true => image::Origin::Offline,
                false => image::Origin::Registry(self.client(reference)?),
            },
        })
    }

    /// The client for the reference's repository: made once with the registry endpoint and
    /// credentials the configuration gives, on the store's connections.
    fn client(&self, reference: &Reference) -> Result<Client, StoreError> {
        // By tag and by digest may differ in mirrors (`mirror_digest_only`).
        let key = format!(
            "{}/{} {}",
            reference.registry,
            reference.repository,
            reference.digest.is_some()
        );
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
            .resolve_credentials(&reference.registry, &reference.repository)?;
        let allow_http_fallback = !endpoint.explicit && is_loopback(&endpoint.url);
        let connections = self
            .connections
            .with_tls(&tls_for(&self.config, &reference.registry))?;
        let client = Client::with_connections(
            &connections,
            endpoint.url,
            &reference.repository,
            credentials,
            allow_http_fallback,
        )?;
        let (mirrors, digest_only) = self.config.registry_mirrors(&reference.registry);
        let client = if mirrors.is_empty() || (digest_only && reference.digest.is_none()) {
            client
        } else {
            let mirrors = mirrors
                .iter()
                .map(|url| {
                    let host = url.host_str().unwrap_or_default();
                    let name = match url.port() {
                        Some(port) => format!("{host}:{port}"),
                        None => host.to_owned(),
                    };
                    let credentials = self
                        .config
                        .resolve_credentials(&name, &reference.repository)?;
                    Ok((url.clone(), credentials))
                })
                .collect::<Result<_, ConfigError>>()?;
            client.with_mirrors(&self.connections, mirrors)?
        };
        clients.insert(key, client.clone());
        Ok(client)
    }
}

/// What an image file stands for where a registry reference is asked: files have no registry
/// or repository, so the trust policy's `"*"` (or the default) rules them.
static FILE_REFERENCE: Reference = Reference {
    registry: String::new(),
    repository: String::new(),
    tag: None,
    digest: None,
};

/// Holds `image`'s entries and checks they are all still there.
fn hold_pulled(cache: &Cache, image: &PulledImage) -> Result<Hold, StoreError> {
    let hold = cache.hold(
        [
            &image.resolved_digest,
            &image.manifest_digest,
            &image.config_digest,
        ]
        .into_iter()
        .chain(&image.record)
        .chain(image.layers.iter().map(PulledLayer::file_name)),
    )?;
    if let Some(record) = &image.record {
        cache.touch_record(record);
    }
    // Looked up (which refreshes their last use) only now that they are held.
    for layer in &image.layers {
        if cache.layer_by_diff_id(layer.file_name())?.as_ref() != Some(&layer.path) {
            return Err(StoreError::NoLongerCached {
                path: layer.path.clone(),
            });
        }
    }
    for digest in [&image.resolved_digest, &image.manifest_digest] {
        if cache.manifest(digest)?.is_none() {
            return Err(StoreError::NoLongerCached {
                path: cache.root().join(digest),
            });
        }
    }
    if cache.config(&image.config_digest)?.is_none() {
        return Err(StoreError::NoLongerCached {
            path: cache.root().join(&image.config_digest),
        });
    }
    Ok(hold)
}

impl PulledLayer {
    /// The name of its squashfs file: the diff_id, or the blob digest for a layer stored as
    /// it is.
    pub(super) fn file_name(&self) -> &Digest {
        if self.path.ends_with(&self.diff_id) {
            &self.diff_id
        } else {
            &self.digest
        }
    }
}

/// `concil login`: checks `credentials` against `registry` (`host[:port]`, reached as a pull
/// would reach it: `remote_servers`, the CA file, proxies, the plain-HTTP fallback for
/// loopback registries) and, only if it accepts them, stores them
/// ([`Config::save_credentials`]).
pub fn login(
    config: &Config,
    registry: &str,
    credentials: crate::config::Credentials,
) -> Result<crate::config::SavedIn, StoreError> {
    let endpoint = config.registry_endpoint(registry)?;
    let connections = Connections::new(&tls_for(config, registry), &NetworkSettings::of(config))?;
    let allow_http_fallback = !endpoint.explicit && is_loopback(&endpoint.url);
    Client::check_login(
        &connections,
        endpoint.url,
        credentials.clone(),
        allow_http_fallback,
    )?;
    Ok(config.save_credentials(registry, &credentials)?)
}

/// The TLS settings for `registry`: the global `cafile`, and its own files
/// ([`Config::registry_tls`]).
fn tls_for(config: &Config, registry: &str) -> TlsSettings {
    let own = config.registry_tls(registry);
    TlsSettings {
        ca_file: config.cafile.clone(),
        extra_ca_files: own.ca_files,
        client_cert: own
            .client_cert
            .map(|(cert, key)| crate::registry::ClientCertFiles { cert, key }),
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
