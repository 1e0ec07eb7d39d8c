//! Arbitrary bytes as what cosign's `.sig` tag carries (the first byte picks which):
//! even, a simple-signing payload (`{"critical": {"type", "image", "identity"}}`); odd, the
//! `dev.sigstore.cosign/certificate` (PEM) and `dev.sigstore.cosign/bundle` (Rekor entry)
//! annotations of a keyless signature layer, split at the first NUL byte (no NUL: no
//! bundle annotation).
#![no_main]

use concil::fuzzing;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        let _ = fuzzing::simple_signing(rest);
        return;
    }
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let (certificate, bundle) = match text.split_once('\0') {
        Some((certificate, bundle)) => (certificate, Some(bundle)),
        None => (text, None),
    };
    let _ = fuzzing::cosign_keyless_annotations(certificate, bundle);
});
