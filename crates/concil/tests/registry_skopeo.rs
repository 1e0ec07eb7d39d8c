//! Images built by umoci and pushed by skopeo (as Docker schema 2 and as OCI) read back
//! through the client: real manifests, configs and layers as other tools write them.

use concil_test_support as support;

use std::io::Read;
use std::path::Path;

use concil::digest::Digest;
use concil::registry::{self, Client, ParsedManifest, TlsSettings};
use sha2::Digest as _;
use support::registry::{Auth, Registry};

/// An OCI layout `oci:base` with one layer holding two files, made by umoci.
fn build_layout(dir: &Path) {
    support::run_in(dir, "umoci", &["init", "--layout", "oci"]);
    support::run_in(dir, "umoci", &["new", "--image", "oci:base"]);
    support::run_in(dir, "umoci", &["unpack", "--image", "oci:base", "bundle"]);
    std::fs::write(dir.join("bundle/rootfs/hello.txt"), "hello from umoci\n").unwrap();
    std::fs::create_dir(dir.join("bundle/rootfs/etc")).unwrap();
    std::fs::write(dir.join("bundle/rootfs/etc/motd"), "pushed with skopeo\n").unwrap();
    support::run_in(dir, "umoci", &["repack", "--image", "oci:base", "bundle"]);
    support::run_in(
        dir,
        "umoci",
        &[
            "config",
            "--image",
            "oci:base",
            "--os",
            "linux",
            "--architecture",
            "amd64",
            "--config.cmd",
            "/bin/true",
        ],
    );
}

#[test]
fn skopeo_pushed_docker_and_oci_images_read_back() {
    let registry = Registry::builder().tls().auth(Auth::Htpasswd).start();
    let work = tempfile::tempdir().unwrap();
    build_layout(work.path());
    for (format, repository, expected_type) in [
        ("v2s2", "skopeo/docker", registry::DOCKER_MANIFEST_V2),
        ("oci", "skopeo/oci", registry::OCI_MANIFEST),
    ] {
        let destination = format!("docker://{}/{repository}:latest", registry.host());
        let mut args = vec!["copy".to_owned(), "--format".to_owned(), format.to_owned()];
        args.extend(registry.skopeo_dest_args());
        args.extend(["oci:oci:base".to_owned(), destination]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        support::run_in(work.path(), "skopeo", &args);

        let tls = TlsSettings {
            ca_file: Some(registry.ca_file().to_owned()),
            ..TlsSettings::default()
        };
        let client = Client::new(
            registry.url(),
            repository,
            registry.credentials(),
            &tls,
            false,
        )
        .unwrap();
        let manifest = client.manifest("latest").unwrap();
        assert_eq!(manifest.media_type, expected_type, "{format}");
        let ParsedManifest::Image(image) = manifest.parse().unwrap() else {
            panic!("{format}: not an image")
        };

        let config = client
            .blob_bytes(
                &Digest::parse(image.config().digest().as_ref()).unwrap(),
                1 << 20,
            )
            .unwrap();
        assert_eq!(config.len() as u64, image.config().size());
        let config: serde_json::Value = serde_json::from_slice(&config).unwrap();
        assert_eq!(config["architecture"], "amd64");
        let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap().clone();
        assert_eq!(diff_ids.len(), image.layers().len());

        for layer in image.layers() {
            let digest = layer.digest().to_string();
            // Both pushes share the layer blob: count this download only.
            let fetched_before = registry.count_blob_fetches(&digest);
            let mut reader = client.blob(&Digest::parse(&digest).unwrap()).unwrap();
            assert_eq!(reader.content_length(), Some(layer.size()));
            let mut bytes = Vec::new();
            reader.read_to_end(&mut bytes).unwrap();
            assert_eq!(
                format!("sha256:{}", hex::encode(sha2::Sha256::digest(&bytes))),
                digest
            );
            assert_eq!(
                registry.count_blob_fetches(&digest) - fetched_before,
                1,
                "{format}: {digest}"
            );
        }
    }
}
