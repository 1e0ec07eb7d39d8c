//! Arbitrary bytes as the `Retry-After` header of a 429: a wait in whole seconds, or none.
#![no_main]

use concil::fuzzing;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(wait) = fuzzing::retry_after(data) {
        let text = std::str::from_utf8(data).expect("a parsed value is text");
        assert_eq!(text.trim().parse::<u64>(), Ok(wait.as_secs()));
    }
});
