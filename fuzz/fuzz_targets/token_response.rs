//! Arbitrary bytes as a token service's answer: a token fit for an `Authorization` header
//! (non-empty, visible ASCII only) and its lifetime, or an error.
#![no_main]

use concil::fuzzing;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((token, _expires_in)) = fuzzing::token_response(data) {
        assert!(!token.is_empty());
        assert!(token.bytes().all(|b| b.is_ascii_graphic()), "{token:?}");
    }
});
