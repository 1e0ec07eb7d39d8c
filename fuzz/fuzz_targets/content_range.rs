//! Arbitrary text as the `Content-Range` of a `206` to a resumed blob download: a start and
//! an optional total (the start inside it), or nothing.
#![no_main]

use concil::fuzzing;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some((start, Some(total))) = fuzzing::content_range(text) {
        assert!(start < total, "{text:?}");
    }
});
