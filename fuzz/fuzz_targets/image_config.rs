//! Arbitrary bytes as an image config, parsed as the store parses it
//! (`registry::parse_json::<ImageConfig>`); then its platform and diff_ids read as a pull
//! reads them.
#![no_main]

use concil::{Digest, ImageConfig, Platform};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let config: ImageConfig = match concil::registry::parse_json(data) {
        Ok(config) => config,
        Err(reason) => return drop(reason),
    };
    let platform = Platform::new(&config.os, &config.architecture, config.variant.as_deref());
    let _ = platform.to_string().parse::<Platform>();
    for diff_id in &config.rootfs.diff_ids {
        assert_eq!(Digest::parse(diff_id.as_str()).as_ref(), Ok(diff_id));
    }
});
