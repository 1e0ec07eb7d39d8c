//! Arbitrary bytes as a registry's error body (`{"errors": [{"code", "message"}]}`): the
//! details it holds, and the error they make, displayed.
#![no_main]

use concil::fuzzing;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (errors, shown) = fuzzing::error_body(data);
    for error in &errors {
        assert!(shown.contains(&error.code) && shown.contains(&error.message));
    }
});
