//! Shared by the `pull_*` tests: a concil configuration and cache in a temp dir, the real
//! `concil` binary run against them, the checks of what a pull must leave (the `--json` output,
//! the cache layout of README.md), and a layer's squashfs compared with the tar it was made
//! from, read back with `sqfs2tar`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use base64::Engine as _;
use concil::cache::CleanReport;
use concil::config::{Config, Environment};
use concil::digest::Digest;
use concil::reference::Reference;
use concil::registry::Descriptor;
use concil::store::{ImageConfig, Platform, PulledImage, ResolvedManifest, Store, StoreError};
use serde_json::{json, Value};
use std::io::Read as _;

use crate::images::PushedImage;
use crate::registry::Registry;

/// Longest a `concil` run may take before the test kills it and fails (a loaded 2-core box
/// converting a few megabytes): [`COMMAND_LIMIT`].
pub use crate::process::{wait_with_limit, COMMAND_LIMIT};

/// The configuration that reaches `registry` with everything it needs: its URL in
/// `remote_servers`, the test CA as `cafile` for HTTPS, its credentials in `auths`, and content
/// trust disabled (the trust tests turn it on). Tests change keys of the returned value as they need.
pub fn config_for(registry: &Registry) -> Value {
    let mut config = json!({
        "disable_content_trust": true,
        "remote_servers": {registry.host(): {"registry": registry.url().as_str()}},
    });
    if registry.url().scheme() == "https" {
        config["cafile"] = json!(registry.ca_file());
    }
    if let Some(credentials) = registry.credentials() {
        config["auths"] = json!({
            registry.host(): basic_auth(&credentials.username, &credentials.password)
        });
    }
    config
}

/// `concil pull --json` output without the layers' `source` (which says whether this pull
/// found a layer in the cache or downloaded it, so it differs between pulls of one image).
pub fn without_sources(output: &Value) -> Value {
    let mut output = output.clone();
    if let Some(layers) = output["layers"].as_array_mut() {
        for layer in layers {
            if let Some(layer) = layer.as_object_mut() {
                layer.remove("source");
            }
        }
    }
    output
}

/// An `auths` value: base64 of `user:password`.
pub fn basic_auth(user: &str, password: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
}

/// A long-lived [`Store`] and one reference the test pulls through it.
pub struct ImageStore {
    pub store: Store,
    pub reference: Reference,
}

impl ImageStore {
    pub fn pull(&self, platform: &Platform) -> Result<PulledImage, StoreError> {
        self.store.pull(&self.reference, platform)
    }

    pub fn manifest(&self, platform: &Platform) -> Result<ResolvedManifest, StoreError> {
        self.store.manifest(&self.reference, platform)
    }

    pub fn config(&self, resolved: &ResolvedManifest) -> Result<ImageConfig, StoreError> {
        self.store.image_config(&self.reference, resolved)
    }

    pub fn layer(
        &self,
        resolved: &ResolvedManifest,
        descriptor: &Descriptor,
        diff_id: &Digest,
    ) -> Result<PathBuf, StoreError> {
        self.store
            .layer(&self.reference, resolved, descriptor, diff_id)
    }

    pub fn cache_cleanup(&self) -> Result<CleanReport, StoreError> {
        self.store.cache_cleanup()
    }
}

/// A home directory for concil: `config.json` and the cache (`cache/`) in a temp dir.
pub struct ConcilHome {
    dir: tempfile::TempDir,
}

impl ConcilHome {
    /// Writes `config` (its `cache_dir` set to `<dir>/cache`) as `<dir>/config.json`.
    pub fn new(config: Value) -> ConcilHome {
        let dir = tempfile::Builder::new()
            .prefix("concil-pull-")
            .tempdir()
            .expect("temp dir for the concil home");
        let home = ConcilHome { dir };
        home.rewrite_config(config);
        home
    }

    /// Replaces `config.json` by `config`, its `cache_dir` set to `<dir>/cache` as before.
    pub fn rewrite_config(&self, mut config: Value) {
        config["cache_dir"] = json!(self.cache_dir());
        fs::write(
            self.config_path(),
            serde_json::to_vec_pretty(&config).expect("config JSON"),
        )
        .expect("write config.json");
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.json")
    }

    /// `cosign/` beside the config file: where concil looks for trusted keys.
    pub fn cosign_key_dir(&self) -> PathBuf {
        self.dir.path().join("cosign")
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    /// The configuration as the library loads it, with this home and no environment
    /// variables (nothing from the machine's `~/.docker` or `CONCIL_*` can leak in).
    pub fn load_config(&self) -> Config {
        let environment = Environment {
            home: Some(self.dir.path().to_owned()),
            vars: BTreeMap::new(),
        };
        Config::load_from(Some(&self.config_path()), &environment).expect("load config.json")
    }

    /// A library store with this home's configuration, and `image` to pull through it.
    pub fn store(&self, image: &str) -> ImageStore {
        ImageStore {
            store: Store::open(self.load_config()).expect("store"),
            reference: Reference::parse(image).expect("image reference"),
        }
    }

    /// The `concil` binary with a clean environment: only this home, no `CONCIL_*` variables.
    pub fn concil(&self) -> Command {
        self.concil_from(&concil_binary())
    }

    /// [`ConcilHome::concil`] with the binary at `binary` (a copy another user can reach).
    pub fn concil_from(&self, binary: &Path) -> Command {
        let mut command = Command::new(binary);
        command
            .env_clear()
            .env("HOME", self.dir.path())
            .stdin(Stdio::null());
        command
    }

    /// `concil pull --json --config <file> <extra…> <image>`, not yet run.
    pub fn pull_command(&self, image: &str, extra: &[&str]) -> Command {
        let mut command = self.concil();
        command
            .args(["pull", "--json", "--config"])
            .arg(self.config_path())
            .args(extra)
            .arg(image);
        command
    }

    /// Runs `concil pull --json`, which must succeed, and returns its JSON output.
    pub fn pull_json(&self, image: &str, extra: &[&str]) -> Value {
        let output = run(&mut self.pull_command(image, extra));
        assert!(
            output.status.success(),
            "concil pull {extra:?} {image} failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
            panic!(
                "concil pull --json printed no JSON ({error}):\n{}",
                String::from_utf8_lossy(&output.stdout)
            )
        })
    }

    /// Runs `concil pull`, which must fail as the CLI contract says.
    pub fn pull_failure(&self, image: &str, extra: &[&str]) -> Failure {
        let output = run(&mut self.pull_command(image, extra));
        expect_failure(&output, &format!("concil pull {extra:?} {image}"))
    }

    /// `concil cache clean --older-than <seconds>` with this configuration; its stdout.
    pub fn clean(&self, older_than: Duration) -> String {
        let output = run(self
            .concil()
            .args(["cache", "clean", "--older-than"])
            .arg(older_than.as_secs().to_string())
            .arg("--config")
            .arg(self.config_path()));
        assert!(
            output.status.success(),
            "concil cache clean failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("clean output is UTF-8")
    }

    /// What one cache directory (`manifest`, `config`, `layers`, `tmp`) holds, by name.
    pub fn listing(&self, subdir: &str) -> BTreeMap<String, CacheEntry> {
        let dir = self.cache_dir().join(subdir);
        let Ok(read_dir) = fs::read_dir(&dir) else {
            return BTreeMap::new(); // not created yet: empty
        };
        read_dir
            .map(|entry| {
                let entry = entry.expect("cache directory entry");
                let metadata = entry.metadata().expect("cache entry metadata");
                let kind = if metadata.is_symlink() {
                    CacheEntry::Symlink(fs::read_link(entry.path()).expect("read symlink"))
                } else if metadata.is_file() {
                    CacheEntry::File
                } else {
                    CacheEntry::Other
                };
                (entry.file_name().to_string_lossy().into_owned(), kind)
            })
            .collect()
    }

    /// The cache holds exactly these entries, laid out as README.md says: `manifest/<digest>`
    /// and `config/<digest>` files whose bytes hash to their names, `layers/<diff_id>` squashfs
    /// files, `layers/<blob>` symlinks to `sha256:<diff_id>`; and no working file in `tmp/`.
    pub fn assert_cache_holds(
        &self,
        manifests: &[&str],
        configs: &[&str],
        layers: &[(&str, &str)],
    ) {
        for (subdir, digests) in [("manifest", manifests), ("config", configs)] {
            let listing = self.listing(subdir);
            let names: BTreeSet<&str> = listing.keys().map(String::as_str).collect();
            let expected: BTreeSet<&str> = digests.iter().copied().collect();
            assert_eq!(names, expected, "{subdir}/ of the cache");
            for digest in digests {
                let path = self.cache_dir().join(subdir).join(digest);
                assert_eq!(
                    listing.get(*digest),
                    Some(&CacheEntry::File),
                    "{}",
                    path.display()
                );
                let bytes = fs::read(&path).expect("read cache entry");
                assert_eq!(
                    &sha256_digest(&bytes),
                    digest,
                    "content of {}",
                    path.display()
                );
            }
        }
        let mut expected = BTreeMap::new();
        for (blob, diff_id) in layers {
            expected.insert(diff_id.to_string(), CacheEntry::File);
            expected.insert(
                blob.to_string(),
                CacheEntry::Symlink(PathBuf::from(diff_id)),
            );
        }
        assert_eq!(self.listing("layers"), expected, "layers/ of the cache");
        for (_, diff_id) in layers {
            let path = self.cache_dir().join("layers").join(diff_id);
            let mut magic = [0u8; 4];
            fs::File::open(&path)
                .and_then(|mut file| file.read_exact(&mut magic))
                .expect("read the squashfs magic");
            assert_eq!(
                &magic,
                b"hsqs",
                "{} is not a squashfs image",
                path.display()
            );
        }
        self.assert_no_working_files();
    }

    /// Nothing in `layers/` and no working file in `tmp/`: what every failed pull leaves.
    pub fn assert_no_layers(&self) {
        assert_eq!(
            self.listing("layers"),
            BTreeMap::new(),
            "layers/ of the cache"
        );
        self.assert_no_working_files();
    }

    pub fn assert_no_working_files(&self) {
        assert_eq!(self.listing("tmp"), BTreeMap::new(), "tmp/ of the cache");
    }

    /// Every layer of `image` in this cache has the content of the tar it was made from.
    pub fn assert_layers_match(&self, image: &PushedImage) {
        for layer in &image.layers {
            let squashfs = self.cache_dir().join("layers").join(&layer.diff_id);
            assert_squashfs_matches_tar(&squashfs, &layer.tar);
        }
    }

    /// `image`'s manifest, config and layers, and nothing else, are in the cache, each layer
    /// with the content of its tar.
    pub fn assert_holds_image(&self, image: &PushedImage) {
        let layers: Vec<(&str, &str)> = image
            .layers
            .iter()
            .map(|layer| (layer.digest.as_str(), layer.diff_id.as_str()))
            .collect();
        self.assert_cache_holds(&[&image.manifest_digest], &[&image.config_digest], &layers);
        self.assert_layers_match(image);
    }
}

/// What a cache directory entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheEntry {
    File,
    /// With its target, as stored.
    Symlink(PathBuf),
    Other,
}

/// The `concil` binary of this build: Cargo builds it beside the test executables
/// (`target/<profile>/concil`, the tests being in `target/<profile>/deps/`).
pub fn concil_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("CARGO_BIN_EXE_concil") {
        return PathBuf::from(path);
    }
    let test = std::env::current_exe().expect("the test executable's path");
    test.parent()
        .and_then(Path::parent)
        .map(|profile| profile.join("concil"))
        .expect("the test executable is in target/<profile>/deps/")
}

/// Runs `command` to its end with stdout and stderr captured; kills it (by its PID) and fails
/// the test after [`COMMAND_LIMIT`].
pub fn run(command: &mut Command) -> Output {
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start concil");
    wait_with_limit(child, COMMAND_LIMIT)
}

/// A command that failed: its one `error: …` line, all it wrote on stderr, its exit status.
#[derive(Debug)]
pub struct Failure {
    pub error: String,
    pub stderr: String,
    pub code: Option<i32>,
}

/// Checks that a command failed as the CLI contract says (non-zero exit, nothing on stdout,
/// exactly one `error: …` line on stderr).
pub fn expect_failure(output: &Output, what: &str) -> Failure {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        !output.status.success(),
        "{what} succeeded but should have failed; stdout:\n{}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert!(
        output.stdout.is_empty(),
        "{what} failed but printed on stdout:\n{}",
        String::from_utf8_lossy(&output.stdout)
    );
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|line| line.starts_with("error: "))
        .collect();
    let [error] = errors.as_slice() else {
        panic!("{what}: expected one `error:` line on stderr:\n{stderr}");
    };
    Failure {
        error: (*error).to_owned(),
        stderr,
        code: output.status.code(),
    }
}

/// A pulled image, from the library's [`PulledImage`] or `concil pull --json`, in one form to
/// compare with what was pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pulled {
    pub manifest_digest: String,
    pub config_digest: String,
    pub platform: String,
    pub verified: String,
    pub layers: Vec<PulledLayer>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PulledLayer {
    pub digest: String,
    pub diff_id: String,
    pub media_type: String,
    pub size: u64,
    pub path: PathBuf,
}

impl Pulled {
    /// What pulling `image` (built for `platform`) into `home` must give.
    pub fn expected(image: &PushedImage, platform: &str, home: &ConcilHome) -> Pulled {
        Pulled {
            manifest_digest: image.manifest_digest.clone(),
            config_digest: image.config_digest.clone(),
            platform: platform.to_owned(),
            verified: "none".to_owned(),
            layers: image
                .layers
                .iter()
                .map(|layer| PulledLayer {
                    digest: layer.digest.clone(),
                    diff_id: layer.diff_id.clone(),
                    media_type: layer.media_type.clone(),
                    size: layer.size,
                    path: home.cache_dir().join("layers").join(&layer.diff_id),
                })
                .collect(),
        }
    }

    pub fn from_library(image: &PulledImage) -> Pulled {
        Pulled {
            manifest_digest: image.manifest_digest.to_string(),
            config_digest: image.config_digest.to_string(),
            platform: image.platform.clone(),
            verified: serde_json::to_value(image.verified)
                .ok()
                .and_then(|value| value.as_str().map(str::to_owned))
                .expect("verified serialises as a string"),
            layers: image
                .layers
                .iter()
                .map(|layer| PulledLayer {
                    digest: layer.digest.to_string(),
                    diff_id: layer.diff_id.to_string(),
                    media_type: layer.media_type.clone(),
                    size: layer.size,
                    path: layer.path.clone(),
                })
                .collect(),
        }
    }

    /// Reads `concil pull --json` output: exactly the keys README.md lists, `image` being the
    /// reference as given on the command line.
    pub fn from_json(output: &Value, image: &str) -> Pulled {
        let object = output.as_object().expect("the output is a JSON object");
        let keys: BTreeSet<&str> = object.keys().map(String::as_str).collect();
        let expected_keys = BTreeSet::from([
            "image",
            "manifest_digest",
            "config_digest",
            "platform",
            "verified",
            "layers",
        ]);
        assert_eq!(keys, expected_keys, "keys of the pull output {output}");
        assert_eq!(output["image"], json!(image), "image in {output}");
        let text = |value: &Value, key: &str| -> String {
            value[key]
                .as_str()
                .unwrap_or_else(|| panic!("{key} is not a string in {value}"))
                .to_owned()
        };
        let layers = output["layers"]
            .as_array()
            .expect("layers is an array")
            .iter()
            .map(|layer| {
                let keys: BTreeSet<&str> = layer
                    .as_object()
                    .expect("a layer is an object")
                    .keys()
                    .map(String::as_str)
                    .collect();
                assert_eq!(
                    keys,
                    BTreeSet::from(["digest", "diff_id", "media_type", "size", "path", "source"]),
                    "keys of the layer {layer}"
                );
                // Where it came from ("cache" or a base URL) varies by pull; the tests that
                // care read it from the JSON.
                assert!(
                    !text(layer, "source").is_empty(),
                    "empty source in the layer {layer}"
                );
                PulledLayer {
                    digest: text(layer, "digest"),
                    diff_id: text(layer, "diff_id"),
                    media_type: text(layer, "media_type"),
                    size: layer["size"].as_u64().expect("size is a number"),
                    path: PathBuf::from(text(layer, "path")),
                }
            })
            .collect();
        Pulled {
            manifest_digest: text(output, "manifest_digest"),
            config_digest: text(output, "config_digest"),
            platform: text(output, "platform"),
            verified: text(output, "verified"),
            layers,
        }
    }
}

pub use crate::sha256_digest;
pub use crate::tree::{assert_squashfs_matches_tar, differences, Bytes, Kind, Node, Tree};
