//! The one base64 decoder (and encoder) of content trust.
//!
//! Signatures, certificates, payloads and hashes reach us base64-encoded by several writers,
//! each with its own habits: cosign's `.sig` annotations are standard base64 that Go's
//! decoder reads with line breaks in it; protobuf's JSON mapping (sigstore bundles, trusted
//! roots) writes standard base64 and DSSE allows URL-safe; Rekor bodies, checkpoints and
//! Notary's TUF metadata are standard. [`decode`] accepts the union of what each reader
//! accepted before they were merged:
//!
//! - the standard alphabet (`+`, `/`) or the URL-safe one (`-`, `_`), with canonical `=`
//!   padding; a text mixing the two alphabets is refused. No text is valid in both alphabets
//!   with different meanings (they differ only in those two characters), so the choice
//!   never changes the bytes a text decodes to;
//! - CR and LF anywhere are ignored (wrapped lines), nothing else is.
//!
//! Being lenient here is safe because the decoded bytes are never trusted for what they
//! are: they are signatures, certificates, payloads, keys and hashes that are then verified
//! (a signature against a trusted key or a certificate that is itself checked, a payload
//! through the signature over it, a hash by comparison with one we computed), and the
//! encoded text itself is what signed documents commit to. A lenient decoder can only turn
//! a text into bytes that still have to pass those checks.

use ::base64::engine::general_purpose::{STANDARD, URL_SAFE};
use ::base64::Engine as _;

use ::base64::DecodeError;

/// Decodes standard or URL-safe base64 (canonical padding), CR and LF ignored. The error,
/// when both alphabets refuse the text, is the standard decoder's on the text as given.
pub(crate) fn decode(text: &str) -> Result<Vec<u8>, DecodeError> {
    let standard_error = match STANDARD.decode(text) {
        Ok(bytes) => return Ok(bytes),
        Err(error) => error,
    };
    let compact: String = text.chars().filter(|c| !matches!(c, '\r' | '\n')).collect();
    STANDARD
        .decode(&compact)
        .or_else(|_| URL_SAFE.decode(&compact))
        .map_err(|_| standard_error)
}

/// Standard base64 with padding, as every format here writes it.
pub(crate) fn encode(bytes: impl AsRef<[u8]>) -> String {
    STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_accepted_spelling_decodes() {
        assert_eq!(decode("aGVsbG8=").unwrap(), b"hello");
        // Wrapped, as Go's decoder (cosign's) reads it.
        assert_eq!(decode("aGVs\nbG8=\r\n").unwrap(), b"hello");
        // Both alphabets: 0xfb 0xff is `+/8=` standard, `-_8=` URL-safe.
        assert_eq!(decode("+/8=").unwrap(), [0xfb, 0xff]);
        assert_eq!(decode("-_8=").unwrap(), [0xfb, 0xff]);
        assert_eq!(decode("-_\n8=").unwrap(), [0xfb, 0xff]);
        assert_eq!(decode("").unwrap(), b"");
    }

    #[test]
    fn other_texts_are_refused() {
        assert!(decode("not base64!").is_err());
        // Mixed alphabets, missing or non-canonical padding, other whitespace.
        assert!(decode("+_8=").is_err());
        assert!(decode("aGVsbG8").is_err());
        assert!(decode("aGVsbG9=").is_err());
        assert!(decode("aGVs bG8=").is_err());
        assert!(decode("aGVs\tbG8=").is_err());
    }

    #[test]
    fn errors_are_the_standard_decoders() {
        let text = "aGV\nz!G8=";
        assert_eq!(
            decode(text).unwrap_err(),
            STANDARD.decode(text).unwrap_err()
        );
    }

    #[test]
    fn encoding_round_trips() {
        assert_eq!(encode(b"hello"), "aGVsbG8=");
        assert_eq!(decode(&encode([0xfb, 0xff])).unwrap(), [0xfb, 0xff]);
    }
}
