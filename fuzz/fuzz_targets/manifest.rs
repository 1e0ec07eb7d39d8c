//! Arbitrary bytes as a manifest or index a registry served, read as the client reads it:
//! the media type from the body's `mediaType`, else the `Content-Type` it came with (the
//! first byte picks which of the four accepted types, or none); then `Manifest::parse` by
//! that type (by the `Content-Type` when the body's own is refused, as a cached manifest is
//! parsed), and every descriptor and platform read as the store reads them.
#![no_main]

use concil::registry::{
    Descriptor, Manifest, ParsedManifest, ACCEPTED_MANIFEST_TYPES, OCI_MANIFEST,
};
use concil::{fuzzing, Digest, Platform};
use libfuzzer_sys::fuzz_target;

fn descriptor(descriptor: &Descriptor) {
    let digest = descriptor.digest().to_string();
    if let Ok(parsed) = Digest::parse(&digest) {
        assert_eq!(parsed.as_str(), digest);
    }
    let _ = descriptor.media_type().to_string();
    let _ = descriptor.size();
    let _ = descriptor.artifact_type().as_ref().map(ToString::to_string);
    if let Some(platform) = descriptor.platform() {
        let platform = Platform::new(
            &platform.os().to_string(),
            &platform.architecture().to_string(),
            platform.variant().as_deref(),
        );
        let _ = platform.to_string().parse::<Platform>();
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, bytes)) = data.split_first() else {
        return;
    };
    let content_type = ACCEPTED_MANIFEST_TYPES.get(usize::from(mode) % 5).copied();
    let media_type = match fuzzing::manifest_media_type(bytes, content_type) {
        Ok(media_type) => {
            assert!(ACCEPTED_MANIFEST_TYPES.contains(&media_type.as_str()));
            media_type
        }
        Err(_) => content_type.unwrap_or(OCI_MANIFEST).to_owned(),
    };
    let manifest = Manifest {
        bytes: bytes.to_vec(),
        media_type,
        digest: Digest::of(bytes),
    };
    match manifest.parse() {
        Ok(ParsedManifest::Image(image)) => {
            descriptor(image.config());
            image.layers().iter().for_each(descriptor);
        }
        Ok(ParsedManifest::Index(index)) => index.manifests().iter().for_each(descriptor),
        Err(error) => drop(error.to_string()),
    }
});
