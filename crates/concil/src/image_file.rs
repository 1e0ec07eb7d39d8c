//! Images as files, for sites without a registry: an OCI image layout directory (`oci:`), a
//! tar of one (`oci-archive:`), and what `docker save` writes (`docker-archive:`). Archives
//! are read in place: their members are indexed once (name → offset, size) and each blob is
//! read from its offset, never unpacked.
//!
//! Nothing here is trusted more than a registry: every manifest and blob is checked against
//! its digest by the same pipeline as a registry's (`store/layer.rs`). Names inside the files (tags, a
//! `docker save` manifest's paths) only select; a path that would leave the archive is refused.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::Deserialize;

use crate::digest::Digest;
use crate::registry::{
    media_type_of, Manifest, DOCKER_MANIFEST_V2, MAX_CONFIG_SIZE, MAX_MANIFEST_SIZE, OCI_INDEX,
};

/// index.json and manifest.json are small; a bigger one is refused rather than read.
const MAX_INDEX_SIZE: u64 = 4 * 1024 * 1024;
/// The annotation that names an image in an OCI layout's index.json.
const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// The annotation `cosign save` marks its index.json entries with: the image, its signatures,
/// its attestations.
const COSIGN_KIND: &str = "kind";
/// `cosign save`'s kinds of the image (or index) signed; its signatures are in the entry of
/// kind [`COSIGN_SIGNATURES_KIND`].
const COSIGN_IMAGE_KINDS: [&str; 2] = [
    "dev.cosignproject.cosign/image",
    "dev.cosignproject.cosign/imageIndex",
];
const COSIGN_SIGNATURES_KIND: &str = "dev.cosignproject.cosign/sigs";
const COSIGN_ATTACHMENT_KINDS: [&str; 2] =
    [COSIGN_SIGNATURES_KIND, "dev.cosignproject.cosign/atts"];
/// How many index.json entries are read looking for the referrers of a digest (or, selecting
/// the one image of a layout, for manifests that are referrers).
const MAX_REFERRER_CANDIDATES: usize = 64;
/// A `docker save` layer (uncompressed tar).
const DOCKER_TAR_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

/// The kinds of image file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// `oci:DIR`: an OCI image layout directory.
    OciLayout,
    /// `oci-archive:FILE`: a tar of an OCI image layout.
    OciArchive,
    /// `docker-archive:FILE`: `docker save` output (its `manifest.json`).
    DockerArchive,
}

impl FileKind {
    fn prefix(self) -> &'static str {
        match self {
            FileKind::OciLayout => "oci:",
            FileKind::OciArchive => "oci-archive:",
            FileKind::DockerArchive => "docker-archive:",
        }
    }
}

/// Which image of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileSelector {
    /// The only one (an error if there are several).
    Only,
    /// By tag: an OCI layout's `org.opencontainers.image.ref.name`, a `docker save`
    /// `RepoTags` entry (`repo:tag`).
    Tag(String),
    /// By the manifest's digest.
    Digest(Digest),
    /// `docker-archive:FILE:@N`: the N-th image of `manifest.json` (from 0).
    Index(usize),
}

/// `oci:DIR[:TAG|@DIGEST]`, `oci-archive:FILE[:TAG|@DIGEST]`, `docker-archive:FILE[:REPO:TAG|:@N]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileReference {
    /// What kind of file.
    pub kind: FileKind,
    /// The directory or archive.
    pub path: PathBuf,
    /// Which image in it.
    pub selector: FileSelector,
}

impl FileReference {
    /// The file reference `text` is, if it starts with one of the file prefixes; `None` for
    /// anything else (a registry reference).
    pub fn parse(text: &str) -> Option<FileReference> {
        let (kind, rest) = [
            FileKind::OciLayout,
            FileKind::OciArchive,
            FileKind::DockerArchive,
        ]
        .into_iter()
        .find_map(|kind| text.strip_prefix(kind.prefix()).map(|rest| (kind, rest)))?;
        let (path, selector) = match kind {
            FileKind::DockerArchive => split_docker_archive(rest),
            _ => split_oci(rest),
        };
        Some(FileReference {
            kind,
            path: PathBuf::from(path),
            selector,
        })
    }
}

impl std::fmt::Display for FileReference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", self.kind.prefix(), self.path.display())?;
        match &self.selector {
            FileSelector::Only => Ok(()),
            FileSelector::Tag(tag) => write!(f, ":{tag}"),
            FileSelector::Digest(digest) => write!(f, "@{digest}"),
            FileSelector::Index(index) => write!(f, ":@{index}"),
        }
    }
}

/// `PATH[:TAG|@DIGEST]`: a digest after the last `@sha256:`; else a tag after the last `:` if
/// what follows has no `/` (a path may hold colons).
fn split_oci(rest: &str) -> (&str, FileSelector) {
    if let Some((path, digest)) = rest.rsplit_once('@') {
        if let Ok(digest) = Digest::parse(digest) {
            return (path, FileSelector::Digest(digest));
        }
    }
    match rest.rsplit_once(':') {
        Some((path, tag)) if !tag.is_empty() && !tag.contains('/') && !path.is_empty() => {
            (path, FileSelector::Tag(tag.to_owned()))
        }
        _ => (rest, FileSelector::Only),
    }
}

/// `PATH[:REPO:TAG|:@N]`: the path is the longest prefix before a `:` that exists (a
/// reference holds colons too), else all of it.
fn split_docker_archive(rest: &str) -> (&str, FileSelector) {
    if Path::new(rest).exists() {
        return (rest, FileSelector::Only);
    }
    for (at, _) in rest.match_indices(':') {
        let (path, selector) = (&rest[..at], &rest[at + 1..]);
        if !Path::new(path).is_file() {
            continue;
        }
        if let Some(index) = selector.strip_prefix('@') {
            if let Ok(index) = index.parse() {
                return (path, FileSelector::Index(index));
            }
        }
        return (path, FileSelector::Tag(selector.to_owned()));
    }
    (rest, FileSelector::Only)
}

/// Errors reading an image file; each names the file and the entry.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    /// The file or directory cannot be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the file system said.
        source: io::Error,
    },
    /// The archive is not a readable tar (truncated, corrupt).
    #[error("{path} is not a readable tar archive")]
    Tar {
        /// The archive.
        path: PathBuf,
        /// What the tar reader said.
        source: io::Error,
    },
    /// A member the image needs is not in the archive or layout (as a regular file).
    #[error("{path}: no {member}")]
    Missing {
        /// The layout or archive.
        path: PathBuf,
        /// The member, as named.
        member: String,
    },
    /// A JSON document of the layout or archive does not parse.
    #[error("{path}: {member} is invalid: {reason}")]
    Invalid {
        /// The layout or archive.
        path: PathBuf,
        /// The member.
        member: String,
        /// What is wrong.
        reason: String,
    },
    /// A member larger than its kind may be.
    #[error("{path}: {member} is {size} bytes, more than the {limit} accepted")]
    TooLarge {
        /// The layout or archive.
        path: PathBuf,
        /// The member.
        member: String,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// A path in `manifest.json` that would leave the archive, or names one member twice.
    #[error("{path}: manifest.json names {entry:?}, {problem}")]
    UnsafePath {
        /// The archive.
        path: PathBuf,
        /// The path as written.
        entry: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// No image with that tag, digest or index.
    #[error("{path}: no image {wanted}; it holds: {available}")]
    NoSuchImage {
        /// The layout or archive.
        path: PathBuf,
        /// What was asked for.
        wanted: String,
        /// What it holds (tags, or digests when untagged).
        available: String,
    },
    /// Several images and nothing says which.
    #[error("{path} holds {count} images; name one ({available})")]
    Ambiguous {
        /// The layout or archive.
        path: PathBuf,
        /// How many.
        count: usize,
        /// Their tags or digests.
        available: String,
    },
    /// A member's bytes are not the digest that names them.
    #[error("{path}: {member} hashes to {got}")]
    DigestMismatch {
        /// The layout or archive.
        path: PathBuf,
        /// The member.
        member: String,
        /// What its bytes hash to.
        got: Digest,
    },
}

/// Where the members of an image file are.
#[derive(Debug)]
enum Members {
    /// A directory: members are files under it.
    Directory,
    /// An archive: regular-file members by normalised name → (offset, size).
    Archive(HashMap<String, (u64, u64)>),
}

/// An opened image file: its members, and the image it was asked for.
#[derive(Debug)]
pub struct ImageFile {
    reference: FileReference,
    members: Members,
    /// For a `docker-archive:`, the manifest made from `manifest.json` (it has none of its
    /// own), served by its digest; its blobs are members named by path.
    docker: Option<DockerImage>,
    /// An OCI layout's index.json, parsed once: selecting the image and finding its
    /// signatures and referrers all read it.
    index: OnceLock<Index>,
}

/// One image of a `docker save` archive.
#[derive(Debug)]
struct DockerImage {
    manifest: Manifest,
    /// Blob digest → the member holding it.
    blobs: HashMap<Digest, String>,
}

/// An index.json entry, as much as selecting needs.
#[derive(Debug, Deserialize)]
struct IndexEntry {
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    digest: String,
    size: u64,
    #[serde(rename = "artifactType", default)]
    artifact_type: Option<String>,
    #[serde(default)]
    annotations: HashMap<String, String>,
}

impl IndexEntry {
    /// Whether the entry is something attached to an image rather than an image: a cosign
    /// signature or attestation (the `sha256-<hex>.sig` / `.att` / `.sbom` tags and the
    /// `sha256-<hex>` referrers tag, `cosign save`'s `kind` annotation), or an artifact
    /// (`artifactType`, as OCI 1.1 referrers are listed). Such entries never make a layout
    /// hold "several images".
    fn is_attachment(&self) -> bool {
        let cosign_tag = self.annotations.get(REF_NAME).is_some_and(|name| {
            let rest = name.strip_prefix("sha256-").unwrap_or_default();
            // `get`, not slicing: a name is outside input, and byte 64 may fall inside a
            // character.
            match (rest.get(..64), rest.get(64..)) {
                (Some(hex), Some(suffix)) => {
                    hex.bytes().all(|b| b.is_ascii_hexdigit())
                        && ["", ".sig", ".att", ".sbom"].contains(&suffix)
                }
                _ => false,
            }
        });
        let cosign_kind = self
            .annotations
            .get(COSIGN_KIND)
            .is_some_and(|kind| COSIGN_ATTACHMENT_KINDS.contains(&kind.as_str()));
        cosign_tag || cosign_kind || self.artifact_type.is_some()
    }

    /// The name the entry is listed under, for messages: its tag, else its digest.
    fn name(&self) -> String {
        self.annotations
            .get(REF_NAME)
            .cloned()
            .unwrap_or_else(|| self.digest.clone())
    }
}

#[derive(Debug, Deserialize)]
struct Index {
    manifests: Vec<IndexEntry>,
}

/// A `docker save` manifest.json entry.
#[derive(Debug, Deserialize)]
struct DockerEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

impl ImageFile {
    /// Opens the layout or archive (indexing an archive's members); reads nothing else yet.
    pub fn open(reference: &FileReference) -> Result<ImageFile, FileError> {
        let path = &reference.path;
        let members = match reference.kind {
            FileKind::OciLayout => {
                let metadata = std::fs::metadata(path).map_err(|source| FileError::Read {
                    path: path.clone(),
                    source,
                })?;
                if !metadata.is_dir() {
                    return Err(FileError::Read {
                        path: path.clone(),
                        source: io::Error::other("not a directory (oci-archive: reads a tar)"),
                    });
                }
                Members::Directory
            }
            FileKind::OciArchive | FileKind::DockerArchive => Members::Archive(index_tar(path)?),
        };
        let mut file = ImageFile {
            reference: reference.clone(),
            members,
            docker: None,
            index: OnceLock::new(),
        };
        if reference.kind == FileKind::DockerArchive {
            file.docker = Some(file.docker_image()?);
        }
        Ok(file)
    }

    /// The reference as given, for messages and `--json`'s `source`.
    pub fn name(&self) -> String {
        format!(
            "{}{}",
            self.reference.kind.prefix(),
            self.reference.path.display()
        )
    }

    /// The manifest the reference selects, its bytes checked against its digest. Without a
    /// tag or digest the layout must hold one image (signatures and other attachments beside it
    /// do not count).
    pub fn selected_manifest(&self) -> Result<Manifest, FileError> {
        if let Some(docker) = &self.docker {
            return Ok(docker.manifest.clone());
        }
        let index = self.index()?;
        let available = || {
            index
                .manifests
                .iter()
                .filter(|entry| !entry.is_attachment())
                .map(IndexEntry::name)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let entry = match &self.reference.selector {
            FileSelector::Only => {
                let mut images: Vec<&IndexEntry> = index
                    .manifests
                    .iter()
                    .filter(|entry| !entry.is_attachment())
                    .collect();
                if (2..=MAX_REFERRER_CANDIDATES).contains(&images.len()) {
                    // Referrers listed without an `artifactType` are known by their subject.
                    images.retain(|entry| !self.has_subject(entry));
                }
                match images[..] {
                    [only] => only,
                    [] => {
                        return Err(FileError::NoSuchImage {
                            path: self.reference.path.clone(),
                            wanted: "to pull: only signatures, attestations or artifacts".into(),
                            available: index
                                .manifests
                                .iter()
                                .map(IndexEntry::name)
                                .collect::<Vec<_>>()
                                .join(", "),
                        })
                    }
                    _ => {
                        return Err(FileError::Ambiguous {
                            path: self.reference.path.clone(),
                            count: images.len(),
                            available: available(),
                        })
                    }
                }
            }
            FileSelector::Tag(tag) => index
                .manifests
                .iter()
                .find(|entry| entry.annotations.get(REF_NAME) == Some(tag))
                .ok_or_else(|| FileError::NoSuchImage {
                    path: self.reference.path.clone(),
                    wanted: format!("tagged {tag}"),
                    available: available(),
                })?,
            FileSelector::Digest(digest) => {
                return self.manifest(digest);
            }
            FileSelector::Index(index_number) => {
                return Err(FileError::NoSuchImage {
                    path: self.reference.path.clone(),
                    wanted: format!("@{index_number} (only docker-archive: numbers images)"),
                    available: available(),
                })
            }
        };
        self.entry_manifest(entry)
    }

    /// The manifest an OCI layout's index.json tags `tag` (a `docker-archive:` has no tags
    /// but its images'). A signature tag `sha256-<hex>.sig` is also found as `cosign save`
    /// writes it: the entry of kind "signatures" beside the image of that digest.
    pub fn tagged_manifest(&self, tag: &str) -> Result<Manifest, FileError> {
        let not_found = || FileError::Missing {
            path: self.reference.path.clone(),
            member: format!("index.json entry tagged {tag}"),
        };
        if self.docker.is_some() {
            return Err(not_found());
        }
        let index = self.index()?;
        let of_kind = |entry: &IndexEntry, kinds: &[&str]| {
            entry
                .annotations
                .get(COSIGN_KIND)
                .is_some_and(|kind| kinds.contains(&kind.as_str()))
        };
        let tagged = index.manifests.iter().find(|entry| {
            entry
                .annotations
                .get(REF_NAME)
                .is_some_and(|name| name == tag)
        });
        let saved_by_cosign = || {
            let signed = tag
                .strip_suffix(".sig")?
                .strip_prefix("sha256-")
                .map(|hex| format!("sha256:{hex}"))?;
            let holds_signed = index
                .manifests
                .iter()
                .any(|entry| of_kind(entry, &COSIGN_IMAGE_KINDS) && entry.digest == signed);
            if !holds_signed {
                return None;
            }
            index
                .manifests
                .iter()
                .find(|entry| of_kind(entry, &[COSIGN_SIGNATURES_KIND]))
        };
        match tagged.or_else(saved_by_cosign) {
            Some(entry) => self.entry_manifest(entry),
            None => Err(not_found()),
        }
    }

    /// The referrers of `digest` in an OCI layout, as a registry's referrers API lists them: an
    /// index of the manifests that name `digest` as their `subject`, each with its
    /// `artifactType` (else its config's media type). They are looked for among the first
    /// [`MAX_REFERRER_CANDIDATES`] entries of index.json (as `oras` lists referrers) and of the
    /// index tagged `sha256-<hex>` (the referrers tag `skopeo copy --all` brings, whose entries
    /// skopeo 1.9 rewrites without their `artifactType`). `None` when there are none, and for a
    /// `docker-archive:`, which cannot hold referrers.
    pub fn referrers(&self, digest: &Digest) -> Result<Option<Manifest>, FileError> {
        #[derive(Deserialize)]
        struct Subject {
            digest: String,
        }
        #[derive(Deserialize)]
        struct Config {
            #[serde(rename = "mediaType")]
            media_type: Option<String>,
        }
        #[derive(Deserialize)]
        struct Referrer {
            subject: Option<Subject>,
            #[serde(rename = "artifactType")]
            artifact_type: Option<String>,
            config: Option<Config>,
            #[serde(default)]
            annotations: HashMap<String, String>,
        }
        if self.docker.is_some() {
            return Ok(None);
        }
        let index = self.index()?;
        let referrers_tag = digest.as_tag();
        let tagged_index = index
            .manifests
            .iter()
            .find(|entry| entry.annotations.get(REF_NAME) == Some(&referrers_tag))
            .and_then(|entry| self.entry_manifest(entry).ok())
            .and_then(|manifest| serde_json::from_slice::<Index>(&manifest.bytes).ok());
        let candidates = index.manifests.iter().take(MAX_REFERRER_CANDIDATES).chain(
            tagged_index
                .iter()
                .flat_map(|tagged| tagged.manifests.iter().take(MAX_REFERRER_CANDIDATES)),
        );
        let mut referrers = Vec::new();
        let mut seen = HashSet::new();
        for entry in candidates {
            if entry.digest == digest.as_str() || !seen.insert(entry.digest.as_str()) {
                continue;
            }
            // An entry that cannot be read, or is no manifest, is no referrer of ours; the
            // image's own entries were read when it was selected.
            let Ok(manifest) = self.entry_manifest(entry) else {
                continue;
            };
            let Ok(referrer) = serde_json::from_slice::<Referrer>(&manifest.bytes) else {
                continue;
            };
            if referrer.subject.map(|subject| subject.digest).as_deref() != Some(digest.as_str()) {
                continue;
            }
            let artifact_type = referrer
                .artifact_type
                .or_else(|| referrer.config.and_then(|config| config.media_type));
            referrers.push(serde_json::json!({
                "mediaType": manifest.media_type,
                "digest": manifest.digest.as_str(),
                "size": manifest.bytes.len(),
                "artifactType": artifact_type,
                "annotations": referrer.annotations,
            }));
        }
        if referrers.is_empty() {
            return Ok(None);
        }
        let bytes = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": referrers,
        }))
        .map_err(|error| FileError::Invalid {
            path: self.reference.path.clone(),
            member: "index.json".into(),
            reason: error.to_string(),
        })?;
        Ok(Some(Manifest {
            digest: Digest::of(&bytes),
            bytes,
            media_type: OCI_INDEX.to_owned(),
        }))
    }

    /// Whether an index.json entry is a manifest about another (a referrer: it has a
    /// `subject`); one that cannot be read is not.
    fn has_subject(&self, entry: &IndexEntry) -> bool {
        #[derive(Deserialize)]
        struct Head {
            subject: Option<serde::de::IgnoredAny>,
        }
        self.entry_manifest(entry)
            .ok()
            .and_then(|manifest| serde_json::from_slice::<Head>(&manifest.bytes).ok())
            .is_some_and(|head| head.subject.is_some())
    }

    /// An OCI layout's index.json.
    fn index(&self) -> Result<&Index, FileError> {
        if let Some(index) = self.index.get() {
            return Ok(index);
        }
        let bytes = self.read_member("index.json", MAX_INDEX_SIZE)?;
        let index = serde_json::from_slice(&bytes).map_err(|error| FileError::Invalid {
            path: self.reference.path.clone(),
            member: "index.json".into(),
            reason: error.to_string(),
        })?;
        Ok(self.index.get_or_init(|| index))
    }

    /// The manifest an index.json entry points to, checked against the entry's digest, with
    /// the entry's media type when it gives one.
    fn entry_manifest(&self, entry: &IndexEntry) -> Result<Manifest, FileError> {
        let digest = Digest::parse(&entry.digest).map_err(|error| FileError::Invalid {
            path: self.reference.path.clone(),
            member: "index.json".into(),
            reason: format!("digest {:?}: {error}", entry.digest),
        })?;
        if entry.size > MAX_MANIFEST_SIZE {
            return Err(FileError::TooLarge {
                path: self.reference.path.clone(),
                member: blob_member(&digest),
                size: entry.size,
                limit: MAX_MANIFEST_SIZE,
            });
        }
        let mut manifest = self.manifest(&digest)?;
        if let Some(media_type) = &entry.media_type {
            manifest.media_type = media_type.clone();
        }
        Ok(manifest)
    }

    /// The manifest `digest` names (a child of an index, or one by digest), checked.
    pub fn manifest(&self, digest: &Digest) -> Result<Manifest, FileError> {
        if let Some(docker) = &self.docker {
            if docker.manifest.digest == *digest {
                return Ok(docker.manifest.clone());
            }
        }
        let bytes = self.blob_bytes(digest, MAX_MANIFEST_SIZE)?;
        let media_type = media_type_of(&bytes).ok_or_else(|| FileError::Invalid {
            path: self.reference.path.clone(),
            member: blob_member(digest),
            reason: "not a manifest or index".into(),
        })?;
        Ok(Manifest {
            bytes,
            media_type,
            digest: digest.clone(),
        })
    }

    /// The whole blob `digest` (at most `limit` bytes), checked against its digest.
    pub fn blob_bytes(&self, digest: &Digest, limit: u64) -> Result<Vec<u8>, FileError> {
        let member = self.blob_name(digest);
        let bytes = self.read_member(&member, limit)?;
        let got = Digest::of(&bytes);
        if got != *digest {
            return Err(FileError::DigestMismatch {
                path: self.reference.path.clone(),
                member,
                got,
            });
        }
        Ok(bytes)
    }

    /// A reader of the blob `digest` (its digest and size are checked by the caller, as for a
    /// registry's body), and where it is, for messages.
    pub fn blob(&self, digest: &Digest) -> Result<(Box<dyn Read + Send>, String), FileError> {
        let member = self.blob_name(digest);
        let reader = self.open_member(&member)?;
        let location = format!("{}/{member}", self.name());
        Ok((reader, location))
    }

    fn blob_name(&self, digest: &Digest) -> String {
        self.docker
            .as_ref()
            .and_then(|docker| docker.blobs.get(digest).cloned())
            .unwrap_or_else(|| blob_member(digest))
    }

    /// A member, whole, refused beyond `limit` bytes.
    fn read_member(&self, member: &str, limit: u64) -> Result<Vec<u8>, FileError> {
        let size = self.member_size(member)?;
        if size > limit {
            return Err(FileError::TooLarge {
                path: self.reference.path.clone(),
                member: member.to_owned(),
                size,
                limit,
            });
        }
        let mut bytes = Vec::new();
        self.open_member(member)?
            .take(limit)
            .read_to_end(&mut bytes)
            .map_err(|source| FileError::Read {
                path: self.reference.path.join(member),
                source,
            })?;
        Ok(bytes)
    }

    fn member_size(&self, member: &str) -> Result<u64, FileError> {
        match &self.members {
            Members::Directory => {
                let path = self.reference.path.join(member);
                match std::fs::metadata(&path) {
                    Ok(metadata) if metadata.is_file() => Ok(metadata.len()),
                    Ok(_) => Err(self.missing(member)),
                    Err(error) if error.kind() == io::ErrorKind::NotFound => {
                        Err(self.missing(member))
                    }
                    Err(source) => Err(FileError::Read { path, source }),
                }
            }
            Members::Archive(members) => members
                .get(member)
                .map(|(_, size)| *size)
                .ok_or_else(|| self.missing(member)),
        }
    }

    fn open_member(&self, member: &str) -> Result<Box<dyn Read + Send>, FileError> {
        match &self.members {
            Members::Directory => {
                let path = self.reference.path.join(member);
                match File::open(&path) {
                    Ok(file) => Ok(Box::new(file)),
                    Err(error) if error.kind() == io::ErrorKind::NotFound => {
                        Err(self.missing(member))
                    }
                    Err(source) => Err(FileError::Read { path, source }),
                }
            }
            Members::Archive(members) => {
                let (offset, size) = *members.get(member).ok_or_else(|| self.missing(member))?;
                let read_error = |source| FileError::Read {
                    path: self.reference.path.clone(),
                    source,
                };
                let mut file = File::open(&self.reference.path).map_err(read_error)?;
                file.seek(SeekFrom::Start(offset)).map_err(read_error)?;
                Ok(Box::new(file.take(size)))
            }
        }
    }

    fn missing(&self, member: &str) -> FileError {
        FileError::Missing {
            path: self.reference.path.clone(),
            member: member.to_owned(),
        }
    }

    /// The image `manifest.json` selects, as a Docker schema 2 manifest of its config and
    /// (uncompressed tar) layers, each named by its digest: the config's by hashing it, each
    /// layer's by the config's diff_id for it (a `docker save` layer is the uncompressed tar;
    /// the pipeline checks the bytes against it as it streams them).
    fn docker_image(&self) -> Result<DockerImage, FileError> {
        let path = &self.reference.path;
        let bytes = self.read_member("manifest.json", MAX_INDEX_SIZE)?;
        let entries: Vec<DockerEntry> =
            serde_json::from_slice(&bytes).map_err(|error| FileError::Invalid {
                path: path.clone(),
                member: "manifest.json".into(),
                reason: error.to_string(),
            })?;
        let available = || {
            entries
                .iter()
                .enumerate()
                .map(|(index, entry)| match &entry.repo_tags {
                    Some(tags) if !tags.is_empty() => tags.join(" "),
                    _ => format!("@{index}"),
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let entry = match &self.reference.selector {
            FileSelector::Only if entries.len() == 1 => &entries[0],
            FileSelector::Only => {
                return Err(FileError::Ambiguous {
                    path: path.clone(),
                    count: entries.len(),
                    available: available(),
                })
            }
            FileSelector::Index(index) => {
                entries.get(*index).ok_or_else(|| FileError::NoSuchImage {
                    path: path.clone(),
                    wanted: format!("@{index}"),
                    available: available(),
                })?
            }
            FileSelector::Tag(tag) => entries
                .iter()
                .find(|entry| {
                    entry
                        .repo_tags
                        .iter()
                        .flatten()
                        .any(|repo_tag| same_repo_tag(repo_tag, tag))
                })
                .ok_or_else(|| FileError::NoSuchImage {
                    path: path.clone(),
                    wanted: tag.clone(),
                    available: available(),
                })?,
            FileSelector::Digest(digest) => {
                return Err(FileError::NoSuchImage {
                    path: path.clone(),
                    wanted: format!("@{digest} (docker-archive: selects by REPO:TAG or @N)"),
                    available: available(),
                })
            }
        };
        let config_member = safe_member(path, &entry.config)?;
        let config = self.read_member(&config_member, MAX_CONFIG_SIZE)?;
        let config_digest = Digest::of(&config);
        #[derive(Deserialize)]
        struct RootFs {
            diff_ids: Vec<Digest>,
        }
        #[derive(Deserialize)]
        struct Config {
            rootfs: RootFs,
        }
        let diff_ids = serde_json::from_slice::<Config>(&config)
            .map_err(|error| FileError::Invalid {
                path: path.clone(),
                member: config_member.clone(),
                reason: error.to_string(),
            })?
            .rootfs
            .diff_ids;
        if diff_ids.len() != entry.layers.len() {
            return Err(FileError::Invalid {
                path: path.clone(),
                member: "manifest.json".into(),
                reason: format!(
                    "{} layers, but its config has {} diff_ids",
                    entry.layers.len(),
                    diff_ids.len()
                ),
            });
        }
        let mut blobs = HashMap::from([(config_digest.clone(), config_member)]);
        let mut layers = Vec::with_capacity(entry.layers.len());
        for (layer, diff_id) in entry.layers.iter().zip(diff_ids) {
            let member = safe_member(path, layer)?;
            if blobs.values().any(|named| *named == member) {
                return Err(FileError::UnsafePath {
                    path: path.clone(),
                    entry: layer.clone(),
                    problem: "a member named twice",
                });
            }
            let size = self.member_size(&member)?;
            layers.push(serde_json::json!({
                "mediaType": DOCKER_TAR_LAYER, "size": size, "digest": diff_id,
            }));
            blobs.insert(diff_id, member);
        }
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST_V2,
            "config": {"mediaType": DOCKER_CONFIG, "size": config.len(), "digest": config_digest},
            "layers": layers,
        }))
        .expect("a manifest serialises");
        Ok(DockerImage {
            manifest: Manifest {
                digest: Digest::of(&manifest),
                bytes: manifest,
                media_type: DOCKER_MANIFEST_V2.to_owned(),
            },
            blobs,
        })
    }
}

/// Whether two `repo:tag` names are the same image, as Docker normalises them (`app:v1` is
/// `docker.io/library/app:v1`; skopeo writes `docker.io/files/app:v1` for `files/app:v1`).
fn same_repo_tag(written: &str, wanted: &str) -> bool {
    let normal = |name: &str| crate::reference::Reference::parse(name).map(|name| name.to_string());
    written == wanted || matches!((normal(written), normal(wanted)), (Ok(a), Ok(b)) if a == b)
}

/// `blobs/sha256/<hex>`: where an OCI layout keeps a blob.
fn blob_member(digest: &Digest) -> String {
    format!("blobs/sha256/{}", digest.hex())
}

/// A member path from `manifest.json`, normalised (`./` dropped); refused if it is absolute or
/// climbs out (`..`).
fn safe_member(archive: &Path, entry: &str) -> Result<String, FileError> {
    let unsafe_path = |problem| FileError::UnsafePath {
        path: archive.to_owned(),
        entry: entry.to_owned(),
        problem,
    };
    if entry.starts_with('/') {
        return Err(unsafe_path("an absolute path"));
    }
    let parts: Vec<&str> = entry
        .split('/')
        .filter(|part| !part.is_empty() && *part != ".")
        .collect();
    if parts.contains(&"..") {
        return Err(unsafe_path("a path that leaves the archive"));
    }
    if parts.is_empty() {
        return Err(unsafe_path("an empty path"));
    }
    Ok(parts.join("/"))
}

/// Every regular-file member of the tar at `path`: normalised name → (data offset, size). Links,
/// directories and devices are left out (a blob must be a file of the archive).
fn index_tar(path: &Path) -> Result<HashMap<String, (u64, u64)>, FileError> {
    let tar_error = |source| FileError::Tar {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(|source| FileError::Read {
        path: path.to_owned(),
        source,
    })?;
    let length = file
        .metadata()
        .map_err(|source| FileError::Read {
            path: path.to_owned(),
            source,
        })?
        .len();
    let mut archive = tar::Archive::new(file);
    let mut members = HashMap::new();
    for entry in archive.entries_with_seek().map_err(tar_error)? {
        let entry = entry.map_err(tar_error)?;
        let kind = entry.header().entry_type();
        if !(kind.is_file() || kind == tar::EntryType::Continuous) {
            continue;
        }
        let name = entry.path().map_err(tar_error)?;
        let name = name.to_string_lossy();
        let name: Vec<&str> = name
            .split('/')
            .filter(|part| !part.is_empty() && *part != ".")
            .collect();
        let (offset, size) = (entry.raw_file_position(), entry.size());
        // A member whose data runs past the end: a truncated archive.
        if offset.saturating_add(size) > length {
            return Err(tar_error(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("member {} is cut short", name.join("/")),
            )));
        }
        members.insert(name.join("/"), (offset, size));
    }
    Ok(members)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_references_split_path_and_selector() {
        let digest = format!("sha256:{}", "ab".repeat(32));
        let parse = |text: &str| FileReference::parse(text).expect("a file reference");
        assert_eq!(
            parse("oci:/srv/images/app:v1"),
            FileReference {
                kind: FileKind::OciLayout,
                path: "/srv/images/app".into(),
                selector: FileSelector::Tag("v1".into())
            }
        );
        assert_eq!(parse("oci:/srv/app").selector, FileSelector::Only);
        assert_eq!(parse("oci:app").path, PathBuf::from("app"));
        assert_eq!(
            parse(&format!("oci-archive:/a:b/app.tar@{digest}")),
            FileReference {
                kind: FileKind::OciArchive,
                path: "/a:b/app.tar".into(),
                selector: FileSelector::Digest(Digest::parse(&digest).unwrap())
            }
        );
        assert_eq!(
            parse("oci:/a:b/app").selector,
            FileSelector::Only,
            "a colon in a directory name"
        );
        assert_eq!(FileReference::parse("docker://alpine"), None);
        assert_eq!(FileReference::parse("alpine"), None);
    }

    #[test]
    fn signatures_and_artifacts_beside_an_image_are_attachments() {
        let entry = |annotations: &[(&str, &str)], artifact_type: Option<&str>| IndexEntry {
            media_type: None,
            digest: format!("sha256:{}", "ab".repeat(32)),
            size: 1,
            artifact_type: artifact_type.map(str::to_owned),
            annotations: annotations
                .iter()
                .map(|(key, value)| (key.to_string(), value.to_string()))
                .collect(),
        };
        let hex = "0123456789abcdef".repeat(4);
        for tag in [
            format!("sha256-{hex}.sig"),
            format!("sha256-{hex}.att"),
            format!("sha256-{hex}"),
        ] {
            assert!(entry(&[(REF_NAME, &tag)], None).is_attachment(), "{tag}");
        }
        for tag in [
            "v1".to_owned(),
            "sha256-abc.sig".to_owned(),
            format!("sha256-{hex}.tar"),
            format!("sha256-{}.sig", "g".repeat(64)),
            format!("sha256-{}é.sig", "a".repeat(63)),
        ] {
            assert!(!entry(&[(REF_NAME, &tag)], None).is_attachment(), "{tag}");
        }
        assert!(entry(&[(COSIGN_KIND, COSIGN_SIGNATURES_KIND)], None).is_attachment());
        assert!(!entry(&[(COSIGN_KIND, COSIGN_IMAGE_KINDS[0])], None).is_attachment());
        assert!(entry(&[], Some("application/vnd.dev.sigstore.bundle.v0.3+json")).is_attachment());
        assert!(!entry(&[], None).is_attachment());
    }

    #[test]
    fn manifest_json_paths_that_leave_the_archive_are_refused() {
        let archive = Path::new("/x.tar");
        assert_eq!(
            safe_member(archive, "./abc/layer.tar").unwrap(),
            "abc/layer.tar"
        );
        for bad in ["../../etc/passwd", "/etc/passwd", "a/../../b", "", "./"] {
            assert!(
                matches!(safe_member(archive, bad), Err(FileError::UnsafePath { .. })),
                "{bad:?}"
            );
        }
    }
}
