//! Arbitrary bytes as a sigstore `trusted_root.json` (`TrustedRoot::from_json`): its
//! certificate authorities, transparency and CT logs and their keys, or an error.
#![no_main]

use concil::trust::trusted_root::TrustedRoot;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(problem) = TrustedRoot::from_json(data) {
        drop(problem.to_string());
    }
});
