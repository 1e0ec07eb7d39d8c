//! Real images for the integration tests, built from real content and pushed to a real registry
//! ([`super::registry::Registry`], any of its variants).
//!
//! `umoci` builds OCI layouts (layer diffs, whiteouts, hard links and xattrs as umoci writes
//! them) from a tiny busybox rootfs plus generated files; `skopeo copy` pushes them as Docker
//! schema 2 or OCI. What skopeo cannot do is done by hand: a tar+zstd layer goes into a fresh OCI
//! layout written here (skopeo would reuse the gzip blobs it already knows), and multi-platform
//! lists and indexes are written as JSON and PUT with the registry's own push helpers.
//!
//! Everything lives in the [`Images`]' temporary directory and is gone when it is dropped; each
//! result records what the registry holds now (read back with `skopeo inspect --raw`) and the
//! path of every layer's uncompressed tar, to compare with what a pull produced.

use std::cell::{Cell, OnceCell};
use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest as _, Sha256};

use crate::registry::Registry;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const IN_TOTO: &str = "application/vnd.in-toto+json";

/// The file in each multi-platform child that names its platform (`linux/arm64/v8\n`).
pub const PLATFORM_MARKER: &str = "etc/concil-platform";

/// The busybox-static binary the rootfs is made of.
const BUSYBOX: &str = "/bin/busybox";
/// The tag every layout built here uses internally.
const LAYOUT_TAG: &str = "image";

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("cannot run {program}")]
    Spawn {
        program: String,
        #[source]
        source: io::Error,
    },
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        command: String,
        status: std::process::ExitStatus,
        stderr: String,
    },
    #[error("cannot {doing} {path}")]
    Io {
        doing: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{what} is not the JSON expected")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("OCI layout {layout}: {problem}")]
    Layout { layout: PathBuf, problem: String },
    #[error("layer tar {tar} has digest {actual}, the config says {expected}")]
    DiffId {
        tar: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("{reference}: the registry holds {actual}, expected {expected}")]
    Pushed {
        reference: String,
        expected: String,
        actual: String,
    },
    #[error(
        "cannot set xattr {name} on {path} (the temp dir's file system must support user xattrs)"
    )]
    Xattr {
        name: &'static str,
        path: PathBuf,
        #[source]
        source: rustix::io::Errno,
    },
}

/// The manifest format skopeo writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Docker image manifest v2, schema 2 (`--format v2s2`).
    Docker,
    /// OCI image manifest (`--format oci`).
    Oci,
}

/// A multi-platform manifest's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListKind {
    /// An OCI image index, with an attestation manifest for the amd64 child.
    OciIndex,
    /// A Docker manifest list.
    DockerList,
}

/// One layer as pushed, and its uncompressed tar kept locally.
#[derive(Debug, Clone)]
pub struct PushedLayer {
    /// The blob's digest (of the compressed bytes).
    pub digest: String,
    /// The digest of the uncompressed tar, as in the config's `rootfs.diff_ids`.
    pub diff_id: String,
    pub media_type: String,
    pub size: u64,
    /// The uncompressed tar, alive as long as the [`Images`] that built it.
    pub tar: PathBuf,
}

/// A single-platform image as the registry holds it.
#[derive(Debug, Clone)]
pub struct PushedImage {
    /// `docker://host:port/repo:tag`
    pub reference: String,
    pub repo: String,
    pub tag: String,
    pub manifest_digest: String,
    /// The manifest's media type. umoci's OCI manifests have no `mediaType` field (the registry
    /// serves them as [`OCI_MANIFEST`]); the zstd and multi-platform ones written here do.
    pub manifest_media_type: String,
    /// The manifest bytes as served.
    pub manifest: Vec<u8>,
    pub config_digest: String,
    /// In `rootfs.diff_ids` order.
    pub layers: Vec<PushedLayer>,
}

/// An OS/architecture/variant triple.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Platform {
    pub os: &'static str,
    pub architecture: &'static str,
    pub variant: Option<&'static str>,
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        match self.variant {
            Some(variant) => write!(f, "/{variant}"),
            None => Ok(()),
        }
    }
}

/// The children of every multi-platform image, in list order. amd64 is not first, so picking
/// the first entry is not the same as picking the host's platform.
pub const LIST_PLATFORMS: [Platform; 2] = [
    Platform {
        os: "linux",
        architecture: "arm64",
        variant: Some("v8"),
    },
    Platform {
        os: "linux",
        architecture: "amd64",
        variant: None,
    },
];

/// One child of a multi-platform image.
#[derive(Debug, Clone)]
pub struct PushedChild {
    pub platform: Platform,
    /// Also pushed under its own tag, `<tag>-<os>-<arch>[-<variant>]`.
    pub image: PushedImage,
}

/// A multi-platform image (OCI index or Docker manifest list) as the registry holds it.
#[derive(Debug, Clone)]
pub struct PushedIndex {
    /// `docker://host:port/repo:tag`
    pub reference: String,
    pub repo: String,
    pub tag: String,
    pub manifest_digest: String,
    pub media_type: String,
    /// The list bytes as served.
    pub manifest: Vec<u8>,
    /// In list order ([`LIST_PLATFORMS`]).
    pub children: Vec<PushedChild>,
    /// The `unknown/unknown` attestation manifest listed last in an OCI index.
    pub attestation_digest: Option<String>,
}

impl PushedIndex {
    /// The child for `platform` (`linux/amd64`, `linux/arm64/v8`).
    pub fn child(&self, platform: &str) -> Option<&PushedChild> {
        self.children
            .iter()
            .find(|child| child.platform.to_string() == platform)
    }
}

pub use crate::sha256_digest;

/// `sha256:<hex>` of a file's content.
pub fn sha256_file(path: &Path) -> Result<String, ImageError> {
    let mut file = File::open(path).map_err(io_error("open", path))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 256 * 1024];
    loop {
        let read = file.read(&mut buffer).map_err(io_error("read", path))?;
        if read == 0 {
            return Ok(format!("sha256:{}", hex::encode(hasher.finalize())));
        }
        hasher.update(buffer.get(..read).unwrap_or_default());
    }
}

fn io_error(doing: &'static str, path: &Path) -> impl FnOnce(io::Error) -> ImageError {
    let path = path.to_path_buf();
    move |source| ImageError::Io {
        doing,
        path,
        source,
    }
}

/// Builds and pushes images to one registry; owns the temporary directory they are built in.
pub struct Images<'r> {
    registry: &'r Registry,
    work: tempfile::TempDir,
    /// skopeo's `--authfile`, so credentials never appear on a command line or in an error.
    auth_file: Option<PathBuf>,
    next_dir: Cell<u32>,
    /// The three-layer image, built once so its gzip and zstd pushes share their diff_ids.
    layered: OnceCell<Layout>,
}

impl<'r> Images<'r> {
    pub fn new(registry: &'r Registry) -> Result<Images<'r>, ImageError> {
        let work = tempfile::Builder::new()
            .prefix("concil-images-")
            .tempdir()
            .map_err(io_error("create a temp dir in", &std::env::temp_dir()))?;
        let auth_file = match registry.credentials() {
            Some(credentials) => {
                let path = work.path().join("auth.json");
                let pair = format!("{}:{}", credentials.username, credentials.password);
                let auth = base64::engine::general_purpose::STANDARD.encode(pair);
                let auths = json!({"auths": {registry.host(): {"auth": auth}}});
                write_file(&path, auths.to_string().as_bytes())?;
                Some(path)
            }
            None => None,
        };
        Ok(Images {
            registry,
            work,
            auth_file,
            next_dir: Cell::new(0),
            layered: OnceCell::new(),
        })
    }

    /// A one-layer (gzip) image: `/bin/busybox`, a symlink per applet, and `/etc/concil-image`.
    pub fn push_busybox(
        &self,
        repo: &str,
        tag: &str,
        format: Format,
    ) -> Result<PushedImage, ImageError> {
        let build = self.start_layout("busybox", None)?;
        add_busybox(&build.rootfs)?;
        write_file(&build.rootfs.join("etc/concil-image"), b"busybox\n")?;
        build.repack()?;
        let layout = read_layout(build.layout)?;
        self.push_layout(&layout, repo, tag, format)
    }

    /// A three-layer (gzip) image:
    /// 1. the busybox rootfs, `etc/motd`, `data/{keep,remove-me,hard-source}`,
    ///    `data/removed-dir/file`, `opq/{old,sub/old}`;
    /// 2. deletes `data/remove-me` and `data/removed-dir` (`.wh.` whiteouts), replaces
    ///    `etc/motd`, adds hard links `data/hard-{a,b}` (one inode), symlinks
    ///    `data/{relative,absolute,dangling}-link`, a setuid `bin/suid-tool` and a user xattr
    ///    on `data/xattr-file`;
    /// 3. makes `opq` opaque (`opq/.wh..wh..opq`) holding only `opq/new` and `opq/sub2/file`
    ///    (GNU tar format; layers 1 and 2 are umoci's PAX).
    pub fn push_layered(
        &self,
        repo: &str,
        tag: &str,
        format: Format,
    ) -> Result<PushedImage, ImageError> {
        let layout = self.layered_layout()?;
        self.push_layout(layout, repo, tag, format)
    }

    /// The same three layers as [`Images::push_layered`] (same diff_ids, same tars), each
    /// recompressed as `tar+zstd`, in an OCI manifest.
    pub fn push_layered_zstd(&self, repo: &str, tag: &str) -> Result<PushedImage, ImageError> {
        let gzip = self.layered_layout()?;
        let zstd = self.recompress_zstd(gzip)?;
        self.push_layout(&zstd, repo, tag, Format::Oci)
    }

    /// A multi-platform image: one child per [`LIST_PLATFORMS`] entry, each one layer of the
    /// busybox rootfs plus [`PLATFORM_MARKER`] naming its platform; for an OCI index also an
    /// attestation manifest (`unknown/unknown`, one in-toto layer) referring to the amd64 child.
    pub fn push_multi_platform(
        &self,
        repo: &str,
        tag: &str,
        kind: ListKind,
    ) -> Result<PushedIndex, ImageError> {
        let (format, list_media_type, child_media_type) = match kind {
            ListKind::OciIndex => (Format::Oci, OCI_INDEX, OCI_MANIFEST),
            ListKind::DockerList => (Format::Docker, DOCKER_LIST, DOCKER_MANIFEST),
        };
        let mut children = Vec::with_capacity(LIST_PLATFORMS.len());
        let mut entries = Vec::with_capacity(LIST_PLATFORMS.len() + 1);
        for platform in LIST_PLATFORMS {
            let build = self.start_layout("platform", Some(platform))?;
            add_busybox(&build.rootfs)?;
            write_file(
                &build.rootfs.join(PLATFORM_MARKER),
                format!("{platform}\n").as_bytes(),
            )?;
            build.repack()?;
            let layout = read_layout(build.layout)?;
            let child_tag = match platform.variant {
                Some(variant) => {
                    format!("{tag}-{}-{}-{variant}", platform.os, platform.architecture)
                }
                None => format!("{tag}-{}-{}", platform.os, platform.architecture),
            };
            let image = self.push_layout(&layout, repo, &child_tag, format)?;
            let mut platform_json =
                json!({"os": platform.os, "architecture": platform.architecture});
            if let (Some(variant), Some(object)) = (platform.variant, platform_json.as_object_mut())
            {
                object.insert("variant".into(), variant.into());
            }
            entries.push(json!({
                "mediaType": child_media_type,
                "digest": image.manifest_digest,
                "size": image.manifest.len(),
                "platform": platform_json,
            }));
            children.push(PushedChild { platform, image });
        }

        let attestation_digest = match kind {
            ListKind::OciIndex => {
                let amd64 = children
                    .iter()
                    .find(|child| child.platform.architecture == "amd64")
                    .map(|child| child.image.manifest_digest.clone())
                    .unwrap_or_default();
                let (digest, size) = self.push_attestation(repo, &amd64);
                entries.push(json!({
                    "mediaType": OCI_MANIFEST,
                    "digest": digest,
                    "size": size,
                    "platform": {"os": "unknown", "architecture": "unknown"},
                    "annotations": {
                        "vnd.docker.reference.digest": amd64,
                        "vnd.docker.reference.type": "attestation-manifest",
                    },
                }));
                Some(digest)
            }
            ListKind::DockerList => None,
        };

        let list = json!({
            "schemaVersion": 2,
            "mediaType": list_media_type,
            "manifests": entries,
        });
        let manifest = list.to_string().into_bytes();
        let manifest_digest = self
            .registry
            .push_manifest(repo, tag, list_media_type, &manifest);
        Ok(PushedIndex {
            reference: format!("docker://{}/{repo}:{tag}", self.registry.host()),
            repo: repo.to_owned(),
            tag: tag.to_owned(),
            manifest_digest,
            media_type: list_media_type.to_owned(),
            manifest,
            children,
            attestation_digest,
        })
    }

    /// Pushes a BuildKit-style attestation manifest by digest; returns its digest and size.
    fn push_attestation(&self, repo: &str, subject_digest: &str) -> (String, usize) {
        let subject_hex = subject_digest
            .strip_prefix("sha256:")
            .unwrap_or(subject_digest);
        let statement = json!({
            "_type": "https://in-toto.io/Statement/v0.1",
            "predicateType": "https://slsa.dev/provenance/v0.2",
            "subject": [{"name": format!("pkg:docker/{repo}"), "digest": {"sha256": subject_hex}}],
            "predicate": {"builder": {"id": "concil-test-harness"}},
        })
        .to_string()
        .into_bytes();
        let statement_digest = self.registry.push_blob(repo, &statement);
        let config = json!({
            "architecture": "unknown",
            "os": "unknown",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [statement_digest]},
        })
        .to_string()
        .into_bytes();
        let config_digest = self.registry.push_blob(repo, &config);
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config.len()},
            "layers": [{
                "mediaType": IN_TOTO,
                "digest": statement_digest,
                "size": statement.len(),
                "annotations": {"in-toto.io/predicate-type": "https://slsa.dev/provenance/v0.2"},
            }],
        })
        .to_string()
        .into_bytes();
        let digest = sha256_digest(&manifest);
        let digest = self
            .registry
            .push_manifest(repo, &digest, OCI_MANIFEST, &manifest);
        (digest, manifest.len())
    }

    fn layered_layout(&self) -> Result<&Layout, ImageError> {
        if let Some(layout) = self.layered.get() {
            return Ok(layout);
        }
        let build = self.start_layout("layered", None)?;
        let rootfs = &build.rootfs;

        add_busybox(rootfs)?;
        write_file(&rootfs.join("etc/motd"), b"layer 1\n")?;
        write_file(&rootfs.join("data/keep"), b"kept from layer 1\n")?;
        write_file(&rootfs.join("data/remove-me"), b"deleted by layer 2\n")?;
        write_file(&rootfs.join("data/hard-source"), b"one inode, two names\n")?;
        write_file(
            &rootfs.join("data/removed-dir/file"),
            b"deleted with its dir\n",
        )?;
        write_file(&rootfs.join("opq/old"), b"hidden by the opaque layer 3\n")?;
        write_file(
            &rootfs.join("opq/sub/old"),
            b"hidden by the opaque layer 3\n",
        )?;
        build.repack()?;

        remove(&rootfs.join("data/remove-me"))?;
        remove(&rootfs.join("data/removed-dir"))?;
        write_file(&rootfs.join("etc/motd"), b"layer 2 replaced this\n")?;
        let hard_a = rootfs.join("data/hard-a");
        fs::rename(rootfs.join("data/hard-source"), &hard_a)
            .map_err(io_error("rename to", &hard_a))?;
        let hard_b = rootfs.join("data/hard-b");
        fs::hard_link(&hard_a, &hard_b).map_err(io_error("hard-link", &hard_b))?;
        make_symlink("keep", &rootfs.join("data/relative-link"))?;
        make_symlink("/etc/motd", &rootfs.join("data/absolute-link"))?;
        make_symlink("/does/not/exist", &rootfs.join("data/dangling-link"))?;
        let suid = rootfs.join("bin/suid-tool");
        write_file(&suid, b"#!/bin/sh\necho setuid\n")?;
        set_mode(&suid, 0o4755)?;
        let xattr_file = rootfs.join("data/xattr-file");
        write_file(&xattr_file, b"has a user xattr\n")?;
        const XATTR: &str = "user.concil.test";
        rustix::fs::setxattr(
            &xattr_file,
            XATTR,
            b"layer 2",
            rustix::fs::XattrFlags::empty(),
        )
        .map_err(|source| ImageError::Xattr {
            name: XATTR,
            path: xattr_file.clone(),
            source,
        })?;
        build.repack()?;

        // umoci 0.4.7's `insert --opaque` writes a tar without its end-of-archive blocks (and
        // without padding the last file), which GNU tar rejects; GNU tar writes this layer and
        // `umoci raw add-layer` appends it.
        let stage = self.fresh_dir("opaque")?;
        write_file(&stage.join("opq/.wh..wh..opq"), b"")?;
        write_file(&stage.join("opq/new"), b"replaces everything under opq\n")?;
        write_file(
            &stage.join("opq/sub2/file"),
            b"added under the opaque dir\n",
        )?;
        let layer_tar = stage.join("layer.tar");
        run(Command::new("tar")
            .args([
                "--numeric-owner",
                "--owner=0",
                "--group=0",
                "--sort=name",
                "--format=gnu",
            ])
            .arg("-C")
            .arg(&stage)
            .arg("-cf")
            .arg(&layer_tar)
            .arg("opq"))?;
        run(Command::new("umoci")
            .args(["raw", "add-layer", "--image"])
            .arg(build.image_arg())
            .arg(&layer_tar))?;

        let layout = read_layout(build.layout)?;
        Ok(self.layered.get_or_init(|| layout))
    }

    /// A new directory under the work dir.
    fn fresh_dir(&self, name: &str) -> Result<PathBuf, ImageError> {
        let number = self.next_dir.get();
        self.next_dir.set(number + 1);
        let dir = self.work.path().join(format!("{number}-{name}"));
        fs::create_dir(&dir).map_err(io_error("create", &dir))?;
        Ok(dir)
    }

    /// `umoci init` + `new` (+ `config` for a platform) + `unpack`: an empty image to fill.
    fn start_layout(
        &self,
        name: &str,
        platform: Option<Platform>,
    ) -> Result<LayoutBuild, ImageError> {
        let dir = self.fresh_dir(name)?;
        let layout = dir.join("layout");
        let bundle = dir.join("bundle");
        let build = LayoutBuild {
            rootfs: bundle.join("rootfs"),
            layout,
            bundle,
        };
        run(Command::new("umoci")
            .arg("init")
            .arg("--layout")
            .arg(&build.layout))?;
        run(Command::new("umoci")
            .arg("new")
            .arg("--image")
            .arg(build.image_arg()))?;
        if let Some(platform) = platform {
            run(Command::new("umoci")
                .arg("config")
                .arg("--image")
                .arg(build.image_arg())
                .arg("--os")
                .arg(platform.os)
                .arg("--architecture")
                .arg(platform.architecture))?;
        }
        run(Command::new("umoci")
            .arg("unpack")
            .arg("--image")
            .arg(build.image_arg())
            .arg(&build.bundle))?;
        Ok(build)
    }

    /// A fresh OCI layout with `source`'s config and each layer's tar compressed with zstd.
    fn recompress_zstd(&self, source: &Layout) -> Result<Layout, ImageError> {
        let dir = self.fresh_dir("zstd")?;
        let blobs = dir.join("blobs/sha256");
        fs::create_dir_all(&blobs).map_err(io_error("create", &blobs))?;
        write_file(
            &dir.join("oci-layout"),
            br#"{"imageLayoutVersion":"1.0.0"}"#,
        )?;

        let config_path = blob_path(&source.dir, &source.config_digest)?;
        let config = fs::read(&config_path).map_err(io_error("read", &config_path))?;
        let config_digest = write_blob(&dir, &config)?;

        let mut layers = Vec::with_capacity(source.layers.len());
        let mut layer_descriptors = Vec::with_capacity(source.layers.len());
        for layer in &source.layers {
            let compressed = blobs.join("incoming.zst");
            run(Command::new("zstd")
                .args(["-q", "-f", "-3", "--no-progress", "-o"])
                .arg(&compressed)
                .arg(&layer.tar))?;
            let digest = sha256_file(&compressed)?;
            let size = fs::metadata(&compressed)
                .map_err(io_error("stat", &compressed))?
                .len();
            let path = blob_path(&dir, &digest)?;
            fs::rename(&compressed, &path).map_err(io_error("rename to", &path))?;
            layer_descriptors
                .push(json!({"mediaType": OCI_LAYER_ZSTD, "digest": digest, "size": size}));
            layers.push(LocalLayer {
                digest,
                diff_id: layer.diff_id.clone(),
                tar: layer.tar.clone(),
            });
        }

        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config.len()},
            "layers": layer_descriptors,
        })
        .to_string()
        .into_bytes();
        let manifest_digest = write_blob(&dir, &manifest)?;
        let index = json!({
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": OCI_MANIFEST,
                "digest": manifest_digest,
                "size": manifest.len(),
                "annotations": {"org.opencontainers.image.ref.name": LAYOUT_TAG},
            }],
        });
        write_file(&dir.join("index.json"), index.to_string().as_bytes())?;
        Ok(Layout {
            dir,
            config_digest,
            layers,
        })
    }

    /// `skopeo copy` of a layout to `repo:tag`, then reads back what the registry holds.
    fn push_layout(
        &self,
        layout: &Layout,
        repo: &str,
        tag: &str,
        format: Format,
    ) -> Result<PushedImage, ImageError> {
        let reference = format!("docker://{}/{repo}:{tag}", self.registry.host());
        let digest_file = self.fresh_dir("push")?.join("digest");
        let mut copy = Command::new("skopeo");
        copy.args(["copy", "--quiet", "--digestfile"])
            .arg(&digest_file)
            .arg("--format")
            .arg(match format {
                Format::Docker => "v2s2",
                Format::Oci => "oci",
            });
        if format == Format::Oci {
            // The layout is OCI already: keep it byte for byte, and with it every blob
            // (skopeo may otherwise swap a blob for another of the same content it saw before).
            copy.arg("--preserve-digests");
        }
        self.add_access_args(&mut copy, "--dest-");
        copy.arg(format!("oci:{}:{LAYOUT_TAG}", layout.dir.display()))
            .arg(&reference);
        run(&mut copy)?;
        let digest_text =
            fs::read_to_string(&digest_file).map_err(io_error("read", &digest_file))?;
        let manifest_digest = digest_text.trim().to_owned();

        let by_digest = format!("docker://{}/{repo}@{manifest_digest}", self.registry.host());
        let mut inspect = Command::new("skopeo");
        inspect.args(["inspect", "--raw"]);
        self.add_access_args(&mut inspect, "--");
        let manifest = run(inspect.arg(&by_digest))?;
        let served_digest = sha256_digest(&manifest);
        if served_digest != manifest_digest {
            return Err(ImageError::Pushed {
                reference: by_digest,
                expected: manifest_digest,
                actual: served_digest,
            });
        }
        let parsed: ManifestJson =
            serde_json::from_slice(&manifest).map_err(|source| ImageError::Json {
                what: format!("manifest of {by_digest}"),
                source,
            })?;
        let manifest_media_type = parsed.media_type.unwrap_or_else(|| OCI_MANIFEST.to_owned());
        let pushed_digests: Vec<&str> = parsed.layers.iter().map(|l| l.digest.as_str()).collect();
        let built_digests: Vec<&str> = layout.layers.iter().map(|l| l.digest.as_str()).collect();
        if pushed_digests != built_digests {
            return Err(ImageError::Pushed {
                reference: by_digest,
                expected: built_digests.join(","),
                actual: pushed_digests.join(","),
            });
        }
        let layers = parsed
            .layers
            .into_iter()
            .zip(&layout.layers)
            .map(|(pushed, local)| PushedLayer {
                digest: pushed.digest,
                diff_id: local.diff_id.clone(),
                media_type: pushed.media_type,
                size: pushed.size,
                tar: local.tar.clone(),
            })
            .collect();
        Ok(PushedImage {
            reference,
            repo: repo.to_owned(),
            tag: tag.to_owned(),
            manifest_digest,
            manifest_media_type,
            manifest,
            config_digest: parsed.config.digest,
            layers,
        })
    }

    /// skopeo's TLS and credential options; `prefix` is `--dest-` for copy, `--` for inspect.
    pub fn add_access_args(&self, command: &mut Command, prefix: &str) {
        if self.registry.url().scheme() == "https" {
            command
                .arg(format!("{prefix}cert-dir"))
                .arg(self.registry.cert_dir());
        } else {
            // skopeo falls back from https to http only when told not to verify
            command.arg(format!("{prefix}tls-verify=false"));
        }
        if let Some(auth_file) = &self.auth_file {
            command.arg(format!("{prefix}authfile")).arg(auth_file);
        }
    }
}

/// A layout being filled through an unpacked bundle.
struct LayoutBuild {
    layout: PathBuf,
    bundle: PathBuf,
    rootfs: PathBuf,
}

impl LayoutBuild {
    fn image_arg(&self) -> String {
        format!("{}:{LAYOUT_TAG}", self.layout.display())
    }

    /// Adds the bundle's changes since the last repack as a new layer.
    fn repack(&self) -> Result<(), ImageError> {
        run(Command::new("umoci")
            .args(["repack", "--refresh-bundle", "--image"])
            .arg(self.image_arg())
            .arg(&self.bundle))?;
        Ok(())
    }
}

/// A finished OCI layout with one tag, [`LAYOUT_TAG`].
struct Layout {
    dir: PathBuf,
    config_digest: String,
    layers: Vec<LocalLayer>,
}

struct LocalLayer {
    digest: String,
    diff_id: String,
    tar: PathBuf,
}

#[derive(Deserialize)]
struct Descriptor {
    #[serde(rename = "mediaType")]
    media_type: String,
    digest: String,
    size: u64,
}

#[derive(Deserialize)]
struct LayoutIndex {
    manifests: Vec<IndexEntry>,
}

#[derive(Deserialize)]
struct IndexEntry {
    digest: String,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct ManifestJson {
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    config: Descriptor,
    layers: Vec<Descriptor>,
}

#[derive(Deserialize)]
struct ConfigJson {
    rootfs: RootFs,
}

#[derive(Deserialize)]
struct RootFs {
    diff_ids: Vec<String>,
}

/// Reads a finished layout and keeps each layer's uncompressed tar next to it.
fn read_layout(dir: PathBuf) -> Result<Layout, ImageError> {
    let index: LayoutIndex = read_json(&dir.join("index.json"))?;
    let entry = index
        .manifests
        .iter()
        .find(|entry| {
            entry
                .annotations
                .get("org.opencontainers.image.ref.name")
                .map(String::as_str)
                == Some(LAYOUT_TAG)
        })
        .ok_or_else(|| ImageError::Layout {
            layout: dir.clone(),
            problem: format!("index.json has no {LAYOUT_TAG:?} tag"),
        })?;
    let manifest: ManifestJson = read_json(&blob_path(&dir, &entry.digest)?)?;
    let config: ConfigJson = read_json(&blob_path(&dir, &manifest.config.digest)?)?;
    if config.rootfs.diff_ids.len() != manifest.layers.len() {
        return Err(ImageError::Layout {
            layout: dir,
            problem: format!(
                "{} layers but {} diff_ids",
                manifest.layers.len(),
                config.rootfs.diff_ids.len()
            ),
        });
    }
    let tars = dir.join("tars");
    fs::create_dir_all(&tars).map_err(io_error("create", &tars))?;
    let mut layers = Vec::with_capacity(manifest.layers.len());
    for (number, (layer, diff_id)) in manifest
        .layers
        .iter()
        .zip(&config.rootfs.diff_ids)
        .enumerate()
    {
        if layer.media_type != OCI_LAYER_GZIP {
            return Err(ImageError::Layout {
                layout: dir,
                problem: format!(
                    "layer {} is {}, expected gzip",
                    layer.digest, layer.media_type
                ),
            });
        }
        let tar = tars.join(format!("layer-{number}.tar"));
        let output = File::create(&tar).map_err(io_error("create", &tar))?;
        run(Command::new("gzip")
            .arg("-dc")
            .arg(blob_path(&dir, &layer.digest)?)
            .stdout(output))?;
        let actual = sha256_file(&tar)?;
        if &actual != diff_id {
            return Err(ImageError::DiffId {
                tar,
                expected: diff_id.clone(),
                actual,
            });
        }
        layers.push(LocalLayer {
            digest: layer.digest.clone(),
            diff_id: actual,
            tar,
        });
    }
    Ok(Layout {
        dir,
        config_digest: manifest.config.digest,
        layers,
    })
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ImageError> {
    let bytes = fs::read(path).map_err(io_error("read", path))?;
    serde_json::from_slice(&bytes).map_err(|source| ImageError::Json {
        what: path.display().to_string(),
        source,
    })
}

/// Where a layout keeps the blob `digest`.
fn blob_path(layout: &Path, digest: &str) -> Result<PathBuf, ImageError> {
    match digest.strip_prefix("sha256:") {
        Some(hex) if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Ok(layout.join("blobs/sha256").join(hex))
        }
        _ => Err(ImageError::Layout {
            layout: layout.to_path_buf(),
            problem: format!("{digest:?} is not a sha256 digest"),
        }),
    }
}

/// Stores `bytes` as a blob of the layout at `layout`; returns its digest.
fn write_blob(layout: &Path, bytes: &[u8]) -> Result<String, ImageError> {
    let digest = sha256_digest(bytes);
    write_file(&blob_path(layout, &digest)?, bytes)?;
    Ok(digest)
}

/// Runs a command to completion; returns its stdout (unless redirected by the caller).
fn run(command: &mut Command) -> Result<Vec<u8>, ImageError> {
    let program = command.get_program().to_string_lossy().into_owned();
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|source| ImageError::Spawn {
            program: program.clone(),
            source,
        })?;
    if output.status.success() {
        return Ok(output.stdout);
    }
    // Credentials never reach a command line (skopeo reads them from an auth file).
    let command_line = std::iter::once(program)
        .chain(
            command
                .get_args()
                .map(|arg| arg.to_string_lossy().into_owned()),
        )
        .collect::<Vec<_>>()
        .join(" ");
    Err(ImageError::Command {
        command: command_line,
        status: output.status,
        stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
    })
}

fn write_file(path: &Path, contents: &[u8]) -> Result<(), ImageError> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(io_error("create", parent))?;
    }
    fs::write(path, contents).map_err(io_error("write", path))
}

fn make_symlink(target: &str, link: &Path) -> Result<(), ImageError> {
    symlink(target, link).map_err(io_error("create the symlink", link))
}

fn set_mode(path: &Path, mode: u32) -> Result<(), ImageError> {
    use std::os::unix::fs::PermissionsExt as _;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(io_error("chmod", path))
}

fn remove(path: &Path) -> Result<(), ImageError> {
    let removed = if path.is_dir() {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    };
    removed.map_err(io_error("remove", path))
}

/// `/bin/busybox` and a symlink to it for every applet it lists.
fn add_busybox(rootfs: &Path) -> Result<(), ImageError> {
    let bin = rootfs.join("bin");
    fs::create_dir_all(&bin).map_err(io_error("create", &bin))?;
    let busybox = bin.join("busybox");
    fs::copy(BUSYBOX, &busybox).map_err(io_error("copy", Path::new(BUSYBOX)))?;
    let applets = run(Command::new(BUSYBOX).arg("--list"))?;
    for applet in String::from_utf8_lossy(&applets).lines() {
        let applet = applet.trim();
        if applet.is_empty() || applet.contains('/') || applet == "busybox" {
            continue;
        }
        make_symlink("busybox", &bin.join(applet))?;
    }
    Ok(())
}

/// `skopeo copy [--all] docker://… DESTINATION` from the plain-HTTP test registry.
pub fn skopeo_copy(image: &str, destination: &str, all: bool) {
    skopeo_copy_with(image, destination, if all { &["--all"] } else { &[] });
}

/// `skopeo copy ARGS… docker://… DESTINATION` from the plain-HTTP test registry.
pub fn skopeo_copy_with(image: &str, destination: &str, args: &[&str]) {
    let output = Command::new("skopeo")
        .args(["copy", "--quiet", "--src-tls-verify=false"])
        .args(args)
        .arg(image)
        .arg(destination)
        .output()
        .expect("run skopeo");
    assert!(
        output.status.success(),
        "skopeo copy {image} {destination}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
