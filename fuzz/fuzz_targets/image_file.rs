//! Arbitrary bytes as an image file, read as `concil pull oci:…` / `oci-archive:…` /
//! `docker-archive:…` read it. The first byte picks the form: even, the rest is the index.json
//! of an OCI layout directory that also holds a few real blobs (an image manifest, a signature
//! manifest, a referrer of the image); odd, the rest is a tar, opened as an OCI archive and as
//! `docker save` output. Each form is asked for its image (untagged, by tag, by digest), for
//! the image's signature tag and for its referrers, as the store and the cosign checks ask.
//!
//! Whatever a file holds, every manifest it gives is bytes that hash to the digest it is
//! given under, and nothing panics.
#![no_main]

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use concil::image_file::{FileReference, ImageFile};
use concil::registry::Manifest;
use concil::trust::cosign::SignatureSource;
use concil::Digest;
use libfuzzer_sys::fuzz_target;

/// The image manifest stored in the layout (its config and layer need not exist: nothing
/// here reads them).
const IMAGE: &[u8] = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;

struct Layout {
    dir: tempfile::TempDir,
    image: Digest,
}

/// One layout directory for every run: its blobs are fixed, index.json is rewritten.
fn layout() -> &'static Layout {
    static LAYOUT: OnceLock<Layout> = OnceLock::new();
    LAYOUT.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let blobs = dir.path().join("blobs/sha256");
        fs::create_dir_all(&blobs).expect("blobs/sha256");
        fs::write(dir.path().join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)
            .expect("oci-layout");
        let image = Digest::of(IMAGE);
        let referrer = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/vnd.dev.sigstore.bundle.v0.3+json","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2}},"layers":[],"subject":{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{image}","size":{}}}}}"#,
            IMAGE.len()
        );
        for blob in [IMAGE, referrer.as_bytes(), b"{}"] {
            fs::write(blobs.join(Digest::of(blob).hex()), blob).expect("a blob");
        }
        Layout { dir, image }
    })
}

fn reference(text: String) -> FileReference {
    FileReference::parse(&text).expect("a file reference")
}

/// Every manifest an image file gives hashes to its digest.
fn checked(manifest: Result<Manifest, impl std::fmt::Display>) {
    match manifest {
        Ok(manifest) => assert_eq!(Digest::of(&manifest.bytes), manifest.digest),
        Err(error) => drop(error.to_string()),
    }
}

/// Asks `path` (as `prefix`) for what a pull and its signature check ask.
fn read(prefix: &str, path: &Path, image: &Digest) {
    let signature_tag = format!("{}.sig", image.as_tag());
    for selector in [String::new(), ":latest".to_owned(), format!("@{image}")] {
        let reference = reference(format!("{prefix}{}{selector}", path.display()));
        let file = match ImageFile::open(&reference) {
            Ok(file) => file,
            Err(error) => {
                drop(error.to_string());
                continue;
            }
        };
        checked(file.selected_manifest());
        checked(SignatureSource::manifest(&file, &signature_tag));
        checked(SignatureSource::manifest(&file, &image.as_tag()));
        match SignatureSource::referrers(&file, image) {
            Ok(Some(index)) => assert_eq!(Digest::of(&index.bytes), index.digest),
            Ok(None) => {}
            Err(error) => drop(error.to_string()),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&form, bytes)) = data.split_first() else {
        return;
    };
    let layout = layout();
    if form % 2 == 0 {
        fs::write(layout.dir.path().join("index.json"), bytes).expect("index.json");
        read("oci:", layout.dir.path(), &layout.image);
    } else {
        let archive: PathBuf = layout.dir.path().join("archive.tar");
        fs::write(&archive, bytes).expect("the archive");
        read("oci-archive:", &archive, &layout.image);
        read("docker-archive:", &archive, &layout.image);
    }
});
