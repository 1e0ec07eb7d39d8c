//! One image being pulled: resolving its reference to a trusted manifest (through an index,
//! with cosign or Notary), its config, and its layers on a bounded pool of threads.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use super::layer::{descriptor_digest, BlobSource, Downloaded, LayerBlob, Pass};
use super::{
    ImageConfig, Inspection, Platform, PulledImage, PulledLayer, ResolvedManifest, Store,
    StoreError, Verification, MAX_INDEX_DEPTH,
};
use crate::cache::{Hold, ImageRecord, RecordedLayer};
use crate::config::ContentTrust;
use crate::digest::Digest;
use crate::image_file::ImageFile;
use crate::reference::Reference;
use crate::registry::{
    media_type_of, Client, Descriptor, Manifest, NetworkSettings, ParsedManifest, MAX_CONFIG_SIZE,
};
use crate::trust::cosign::{SignatureSource, Verifier};
use crate::trust::notary::{NotaryClient, NotarySettings, Wanted};
use crate::trust::TrustError;

/// How often a pull starts over when a clean-up removed an entry before it was held.
const MAX_HOLD_ATTEMPTS: u32 = 3;

/// One reference being pulled through a [`Store`]: the store's cache, settings and
/// connections, and where its manifests and blobs come from.
pub(super) struct ImagePull<'s> {
    pub(super) store: &'s Store,
    pub(super) reference: &'s Reference,
    /// The reference as text, for messages.
    pub(super) image: String,
    pub(super) origin: Origin,
}

/// Where an image's manifests and blobs come from.
pub(super) enum Origin {
    /// The repository's client: mirrors, then the registry.
    Registry(Client),
    /// `--offline`: the cache alone.
    Offline,
    /// An image file (boxed: its member index is the largest variant by far).
    File(Box<ImageFile>),
}

impl ImagePull<'_> {
    /// Resolves the reference to the image manifest for `platform` (through an index if the
    /// reference names one) and caches the manifests by digest.
    pub(super) fn manifest(&self, platform: &Platform) -> Result<ResolvedManifest, StoreError> {
        let (manifest, verified) = self.trusted_manifest(platform)?;
        self.resolve(manifest, verified, platform)
    }

    /// What `concil inspect` shows: the manifest the reference names (as served), the
    /// platforms of an index, the image manifest for `platform` and its config; no layer.
    pub(super) fn inspect(&self, platform: &Platform) -> Result<Inspection, StoreError> {
        let (top, verified) = self.trusted_manifest(platform)?;
        let platforms = match top.parse()? {
            ParsedManifest::Index(index) => index
                .manifests()
                .iter()
                .filter_map(|child| {
                    let platform = Platform::from_spec(child.platform().as_ref()?);
                    let digest = Digest::parse(child.digest().as_ref()).ok()?;
                    Some((platform.to_string(), digest))
                })
                .collect(),
            ParsedManifest::Image(_) => Vec::new(),
        };
        let raw = top.bytes.clone();
        let media_type = top.media_type.clone();
        let manifest = self.resolve(top, verified, platform)?;
        let config = self.config_bytes(&manifest)?;
        Ok(Inspection {
            media_type,
            raw,
            platforms,
            manifest,
            config,
        })
    }

    /// The image manifest for `platform`, from the manifest the reference resolved to
    /// (following an index), caching the manifests by digest.
    fn resolve(
        &self,
        mut manifest: Manifest,
        verified: Verification,
        platform: &Platform,
    ) -> Result<ResolvedManifest, StoreError> {
        let resolved_digest = manifest.digest.clone();
        for _ in 0..MAX_INDEX_DEPTH {
            match manifest.parse()? {
                ParsedManifest::Image(image) => {
                    return Ok(ResolvedManifest {
                        digest: manifest.digest,
                        resolved_digest,
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
    pub(super) fn config(&self, resolved: &ResolvedManifest) -> Result<ImageConfig, StoreError> {
        let digest = descriptor_digest(resolved.manifest.config(), &resolved.digest, "config")?;
        let bytes = self.config_bytes(resolved)?;
        crate::registry::parse_json(&bytes)
            .map_err(|reason| StoreError::ConfigInvalid { digest, reason })
    }

    /// The config blob of the manifest, from the cache or the registry (then cached).
    fn config_bytes(&self, resolved: &ResolvedManifest) -> Result<Vec<u8>, StoreError> {
        let descriptor = resolved.manifest.config();
        let digest = descriptor_digest(descriptor, &resolved.digest, "config")?;
        let bytes = match self.store.cache.config(&digest)? {
            Some(bytes) => bytes,
            None => {
                // Concurrent pulls fetch it once: whoever holds the lock fetches it, the others
                // wait and then find it in the cache.
                let _lock = self.store.cache.lock(&digest)?;
                match self.store.cache.config(&digest)? {
                    Some(bytes) => bytes,
                    None => self.fetch_config(&digest, descriptor.size())?,
                }
            }
        };
        Ok(bytes)
    }

    fn fetch_config(&self, digest: &Digest, size: u64) -> Result<Vec<u8>, StoreError> {
        if size > MAX_CONFIG_SIZE {
            return Err(StoreError::ConfigTooLarge {
                digest: digest.clone(),
                size,
            });
        }
        let bytes = match &self.origin {
            Origin::File(file) => file.blob_bytes(digest, MAX_CONFIG_SIZE)?,
            _ => self.online("config", digest)?.blob_bytes(digest, size)?,
        };
        self.store.cache.put_config(digest, &bytes)?;
        Ok(bytes)
    }

    /// The squashfs file of one layer (`descriptor`) of the manifest: from the cache, or
    /// downloaded and converted (each blob once, even across processes: the per-blob lock
    /// makes others wait and then reuse it).
    pub(super) fn layer(
        &self,
        resolved: &ResolvedManifest,
        descriptor: &Descriptor,
        diff_id: &Digest,
    ) -> Result<PathBuf, StoreError> {
        self.pull_layer(&LayerBlob::of(&resolved.digest, descriptor)?, diff_id)
            .map(|pulled| pulled.path)
    }

    /// The layer's squashfs file and where it came from.
    fn pull_layer(&self, layer: &LayerBlob, diff_id: &Digest) -> Result<Downloaded, StoreError> {
        let digest = &layer.digest;
        if let Some(path) = layer.cached(&self.store.cache, diff_id)? {
            tracing::debug!(layer = %digest, "layer in the cache");
            self.store.progress.layer_done(digest, true);
            return Ok(Downloaded::cached(path));
        }
        tracing::debug!(layer = %digest, "waiting for the blob's lock");
        let _lock = self.store.cache.lock(digest)?;
        // Another process may have finished it while we waited for the lock.
        if let Some(path) = layer.cached(&self.store.cache, diff_id)? {
            self.store.progress.layer_done(digest, true);
            return Ok(Downloaded::cached(path));
        }
        self.store
            .cache
            .refuse_foreign_layer_names([diff_id, digest])?;
        self.store.progress.layer_started(digest, layer.size);
        let started = std::time::Instant::now();
        let pass = Pass {
            cache: &self.store.cache,
            blobs: match &self.origin {
                Origin::File(file) => BlobSource::File(file),
                _ => BlobSource::Registry(self.online("layer", digest)?),
            },
            convert: &self.store.convert,
            progress: &self.store.progress,
        };
        let downloaded = layer.download(&pass, diff_id, self.store.config.retries)?;
        tracing::info!(layer = %digest, bytes = layer.size, seconds = started.elapsed().as_secs_f64(), "layer downloaded and converted");
        self.store.progress.layer_done(digest, false);
        Ok(downloaded)
    }

    /// Pulls the whole image for `platform` (manifest, config and every layer), holds it,
    /// and records it in the cache.
    pub(super) fn pull(&self, wanted: &Platform) -> Result<(PulledImage, Hold), StoreError> {
        // A clean-up of another process may remove an entry between its lookup and the hold
        // that keeps it; then the pull is done again (it finds the rest in the cache).
        let mut attempts = 0;
        loop {
            let image = self.pull_once(wanted)?;
            match super::hold_pulled(&self.store.cache, &image) {
                Ok(mut hold) => {
                    let record = self.record(&image, wanted);
                    hold.extend(self.store.cache.hold([&record.name()])?);
                    self.store.cache.record_image(&record)?;
                    self.store.cache.touch_image(&record);
                    let image = PulledImage {
                        record: Some(record.name()),
                        ..image
                    };
                    return Ok((image, hold));
                }
                Err(StoreError::NoLongerCached { path }) if attempts < MAX_HOLD_ATTEMPTS => {
                    attempts += 1;
                    tracing::warn!(path = %path.display(), "removed from the cache while pulling; pulling again");
                }
                Err(error) => return Err(error),
            }
        }
    }

    fn record(&self, image: &PulledImage, wanted: &Platform) -> ImageRecord {
        ImageRecord {
            reference: self.image.clone(),
            requested_platform: wanted.to_string(),
            platform: image.platform.clone(),
            resolved_digest: image.resolved_digest.clone(),
            manifest_digest: image.manifest_digest.clone(),
            config_digest: image.config_digest.clone(),
            layers: image
                .layers
                .iter()
                .map(|layer| RecordedLayer {
                    digest: layer.digest.clone(),
                    // The squashfs file's name: a layer stored as it is lives under its blob.
                    diff_id: layer.file_name().clone(),
                    media_type: layer.media_type.clone(),
                    size: layer.size,
                })
                .collect(),
            verified: serde_json::to_value(image.verified)
                .ok()
                .and_then(|value| value.as_str().map(str::to_owned))
                .unwrap_or_default(),
            pulled_at: self.resolved_at(wanted).unwrap_or_else(ImageRecord::now),
        }
    }

    /// Offline, the time the reference was last resolved online (its record keeps it).
    fn resolved_at(&self, wanted: &Platform) -> Option<u64> {
        if !matches!(self.origin, Origin::Offline) {
            return None;
        }
        let recorded = self
            .store
            .cache
            .image_record(&self.image, &wanted.to_string())
            .ok()??;
        Some(recorded.record.pulled_at)
    }

    fn pull_once(&self, wanted: &Platform) -> Result<PulledImage, StoreError> {
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
            .map(|((layer, diff_id), pulled)| PulledLayer {
                digest: layer.digest,
                diff_id: diff_id.clone(),
                media_type: layer.media_type,
                size: layer.size,
                path: pulled.path,
                source: pulled.source,
            })
            .collect();
        let platform = Platform::new(&config.os, &config.architecture, config.variant.as_deref());
        if !config.os.is_empty() && platform != *wanted {
            // As Docker: a single-platform image is pulled whatever it is built for, with a warning.
            tracing::warn!(image = %self.image, "the image is for {platform}, not the requested {wanted}");
        }
        Ok(PulledImage {
            manifest_digest: resolved.digest,
            resolved_digest: resolved.resolved_digest,
            record: None,
            config_digest,
            platform: platform.to_string(),
            verified: resolved.verified,
            layers,
        })
    }

    /// The manifest the reference names, trusted as the configuration asks. Trust is decided
    /// on the digest the reference resolves to, before anything in the manifest is used; an
    /// index's trust covers the children fetched by digest from it.
    /// - cosign: the manifest is fetched by tag, then its digest must carry a signature;
    /// - Notary: the digest comes from Notary's signed targets first, and the manifest is
    ///   fetched by it and checked against the signed length and hashes.
    fn trusted_manifest(
        &self,
        platform: &Platform,
    ) -> Result<(Manifest, Verification), StoreError> {
        let repository = format!("{}/{}", self.reference.registry, self.reference.repository);
        let engine = if self.store.verify {
            self.store
                .config
                .content_trust_for(&self.reference.registry, &self.reference.repository)
        } else {
            None
        };
        match &self.origin {
            Origin::Offline => return self.offline_manifest(platform, engine),
            Origin::File(file) => return self.file_manifest(file, engine),
            Origin::Registry(_) => {}
        }
        match engine {
            None => {
                let manifest = self.fetch_manifest(self.reference.manifest_reference())?;
                Ok((manifest, Verification::None))
            }
            Some(ContentTrust::Cosign) => {
                let manifest = self.fetch_manifest(self.reference.manifest_reference())?;
                let client = self.online("signature of", &manifest.digest)?;
                self.cosign_verify(client, &repository, &manifest.digest)?;
                Ok((manifest, Verification::Cosign))
            }
            Some(ContentTrust::Notary) => {
                Ok((self.notary_manifest(repository)?, Verification::Notary))
            }
        }
    }

    /// Checks that a trusted cosign signature in `source` vouches for `digest`. The signed
    /// repository is compared with `repository` only for registries, when the configuration
    /// asks (`cosign_check_identity`): an image file has no repository to compare with.
    fn cosign_verify(
        &self,
        source: &dyn SignatureSource,
        repository: &str,
        digest: &Digest,
    ) -> Result<(), StoreError> {
        let check_identity =
            self.store.config.cosign_check_identity && !matches!(self.origin, Origin::File(_));
        let verified = Verifier::from_config(&self.store.config)?
            .check_docker_reference(check_identity)
            .verify(source, &self.image, repository, digest)?;
        tracing::info!(%digest, signed_by = %verified.signed_by, "cosign signature verified");
        Ok(())
    }

    /// The manifest by the digest Notary signed for the reference, checked against the signed
    /// length and hashes.
    fn notary_manifest(&self, gun: String) -> Result<Manifest, StoreError> {
        let notary_error = |source| TrustError::Notary {
            image: self.image.clone(),
            source: Box::new(source),
        };
        let client = NotaryClient::new(NotarySettings {
            server: self.store.config.notary_url(&self.reference.registry)?,
            credentials: self
                .store
                .config
                .resolve_credentials(&self.reference.registry, &self.reference.repository)?,
            tls: super::tls_for(&self.store.config, &self.reference.registry),
            network: NetworkSettings::of(&self.store.config),
            trust_dir: self.store.config.notary_trust_dir(),
            pinning: self.store.config.trust_pinning.clone(),
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
    /// so it cannot be stale). A tag moves, so the registry is always asked what it points
    /// to, with a `HEAD` (not counted against pull limits): when the cache holds that digest,
    /// no manifest is downloaded.
    fn fetch_manifest(&self, reference: &str) -> Result<Manifest, StoreError> {
        if let (Origin::File(file), Ok(digest)) = (&self.origin, Digest::parse(reference)) {
            let manifest = file.manifest(&digest)?;
            self.cache_manifest(&manifest)?;
            return Ok(manifest);
        }
        let by_digest = match Digest::parse(reference) {
            Ok(digest) => Some(digest),
            Err(_) => self
                .online("manifest", reference)?
                .manifest_digest(reference)?,
        };
        if let Some(digest) = by_digest {
            if let Some(bytes) = self.store.cache.manifest(&digest)? {
                if let Some(media_type) = media_type_of(&bytes) {
                    tracing::debug!(reference, %digest, "manifest in the cache");
                    return Ok(Manifest {
                        bytes,
                        media_type,
                        digest,
                    });
                }
            }
        }
        let manifest = self.online("manifest", reference)?.manifest(reference)?;
        tracing::info!(reference, digest = %manifest.digest, media_type = %manifest.media_type, "manifest fetched");
        // Already cached (a warm pull by tag): the lookup refreshes it; no rewrite, no fsync.
        self.cache_manifest(&manifest)?;
        Ok(manifest)
    }

    /// The registry's client; offline, the error that the cache lacks `what name` (an image
    /// file's callers never ask: they read the file).
    fn online(&self, what: &str, name: impl std::fmt::Display) -> Result<&Client, StoreError> {
        match &self.origin {
            Origin::Registry(client) => Ok(client),
            Origin::Offline | Origin::File(_) => Err(StoreError::NotCachedOffline {
                image: self.image.clone(),
                missing: format!("{what} {name}"),
            }),
        }
    }

    /// The manifest an image file's reference selects, trusted as the trust policy's `"*"`
    /// asks: cosign signatures are looked for in the file itself (the `sha256-<hex>.sig` tag,
    /// `cosign save`'s signatures, bundles among the referrers); Notary signs tags in a
    /// registry and cannot vouch for a file. A file has no repository (it is verified for
    /// `""`): keyless signatures are checked against the `cosign_identities` entry `"*"`.
    fn file_manifest(
        &self,
        file: &ImageFile,
        engine: Option<ContentTrust>,
    ) -> Result<(Manifest, Verification), StoreError> {
        if engine == Some(ContentTrust::Notary) {
            return Err(StoreError::NotaryForFile {
                image: self.image.clone(),
            });
        }
        let manifest = file.selected_manifest()?;
        let verification = match engine {
            Some(_) => {
                self.cosign_verify(file, "", &manifest.digest)?;
                Verification::Cosign
            }
            None => Verification::None,
        };
        self.cache_manifest(&manifest)?;
        Ok((manifest, verification))
    }

    /// Keeps a manifest (its digest checked) in the cache, unless it is there.
    fn cache_manifest(&self, manifest: &Manifest) -> Result<(), StoreError> {
        if self.store.cache.manifest(&manifest.digest)?.is_none() {
            self.store
                .cache
                .put_manifest(&manifest.digest, &manifest.bytes)?;
        }
        Ok(())
    }

    /// Offline: the manifest the last online pull of the reference resolved to (by digest:
    /// the one named), trusted as that pull's record says.
    fn offline_manifest(
        &self,
        platform: &Platform,
        engine: Option<ContentTrust>,
    ) -> Result<(Manifest, Verification), StoreError> {
        let cache = &self.store.cache;
        let (digest, record) = match &self.reference.digest {
            Some(digest) => {
                // Any record of a pull that resolved to this digest tells how it was trusted.
                // A record of a pull of this repository that resolved to this digest tells how
                // it was trusted (another repository's record says nothing of this one's
                // policy: its keys, identities or delegations).
                let repository =
                    format!("{}/{}", self.reference.registry, self.reference.repository);
                let record = cache.image_records()?.images.into_iter().find(|recorded| {
                    let same_repository = recorded
                        .record
                        .reference
                        .strip_prefix(&repository)
                        .is_some_and(|rest| rest.starts_with([':', '@']));
                    same_repository
                        && (recorded.record.resolved_digest == *digest
                            || recorded.record.manifest_digest == *digest)
                });
                (digest.clone(), record)
            }
            None => {
                let record = cache
                    .image_record(&self.image, &platform.to_string())?
                    .ok_or_else(|| StoreError::NotCachedOffline {
                        image: self.image.clone(),
                        missing: format!("record of a pull of it for {platform}"),
                    })?;
                let resolved_at = chrono::DateTime::from_timestamp(
                    i64::try_from(record.record.pulled_at).unwrap_or(0),
                    0,
                )
                .map(|time| time.format("%Y-%m-%d %H:%M:%S UTC").to_string())
                .unwrap_or_default();
                tracing::warn!(
                    "offline: {} is {}, as a pull resolved it at {resolved_at}",
                    self.image,
                    record.record.resolved_digest
                );
                (record.record.resolved_digest.clone(), Some(record))
            }
        };
        let verified = match record.as_ref().map(|found| found.record.verified.as_str()) {
            Some("cosign") => Verification::Cosign,
            Some("notary") => Verification::Notary,
            _ => Verification::None,
        };
        if let Some(engine) = engine {
            let wanted = match engine {
                ContentTrust::Cosign => "cosign",
                ContentTrust::Notary => "notary",
            };
            if verified == Verification::None {
                return Err(StoreError::NotVerifiedOffline {
                    image: self.image.clone(),
                    wanted,
                    found: match record {
                        Some(_) => "its last pull was not verified".to_owned(),
                        None => format!("no record says {digest} was verified"),
                    },
                });
            }
        }
        Ok((self.fetch_manifest(digest.as_str())?, verified))
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
            wanted: Box::new(wanted.clone()),
            available: if available.is_empty() {
                "nothing".into()
            } else {
                available.join(", ")
            },
        })
    }

    /// Runs `pull_layer` for every layer on a pool of `parallel_layers` threads; results in order.
    fn layers_in_parallel(
        &self,
        layers: &[LayerBlob],
        diff_ids: &[Digest],
    ) -> Result<Vec<Downloaded>, StoreError> {
        let next = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let results: Mutex<Vec<Option<Result<Downloaded, StoreError>>>> =
            Mutex::new((0..layers.len()).map(|_| None).collect());
        let workers = self.store.parallel_layers.min(layers.len()).max(1);
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
}
