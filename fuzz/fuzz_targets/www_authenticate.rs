//! Arbitrary text as the `WWW-Authenticate` values of a 401 (one per line, in order), through
//! the registry client's challenge parser: a challenge, none, or an error, never a panic.
#![no_main]

use concil::fuzzing;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = fuzzing::www_authenticate(text.split('\n'));
});
