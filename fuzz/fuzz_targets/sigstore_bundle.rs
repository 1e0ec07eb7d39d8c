//! Arbitrary bytes as a sigstore bundle attached to an image as an OCI 1.1 referrer, read
//! as far as it is read before a signature is checked (the keyless material, the DSSE
//! envelope and its in-toto statement, or the message signature): `Ok` or an error.
#![no_main]

use concil::{fuzzing, Digest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let digest = Digest::of(b"the manifest being verified");
    let _ = fuzzing::sigstore_bundle(data, &digest);
});
