//! Arbitrary text as an image reference (`Reference::parse`) and as a digest
//! (`Digest::parse`). A reference that parses must print in a form that parses back to
//! itself; a digest that parses is the text it came from.
#![no_main]

use concil::reference::registry_host;
use concil::{Digest, Reference};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Reference::parse(text) {
        Ok(reference) => {
            let shown = reference.to_string();
            let again = Reference::parse(&shown)
                .unwrap_or_else(|error| panic!("{text:?} printed as {shown:?}: {error}"));
            assert_eq!(again, reference, "{text:?} printed as {shown:?}");
            let _ = registry_host(&reference.registry);
            let _ = reference.manifest_reference();
        }
        Err(error) => drop(error.to_string()),
    }
    if let Ok(digest) = Digest::parse(text) {
        assert_eq!(digest.as_str(), text);
        assert_eq!(digest.hex().len(), 64);
    }
});
