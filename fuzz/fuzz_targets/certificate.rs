//! Arbitrary bytes as a DER X.509 certificate: a keyless signature's leaf (as the `.sig`
//! certificate annotation or a bundle's `rawBytes` carries it), a Notary root or delegation
//! certificate, a CA of a trusted root. Parsed, its key read, and checked as a Fulcio leaf
//! (validity at the time the first 8 bytes give, extensions, identity, embedded SCTs) and as
//! a CA; an error or `Ok`, never a panic.
#![no_main]

use concil::fuzzing;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((time, der)) = data.split_first_chunk::<8>() else {
        return;
    };
    let _ = fuzzing::certificate(der, u64::from_be_bytes(*time));
});
