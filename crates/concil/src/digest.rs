//! Content digests: `sha256:` and 64 lowercase hex digits, the only kind concil verifies.
//!
//! A [`Digest`] is parsed and validated once, where it enters (a reference, a manifest, a
//! config, a registry header), and from then on is a name that is safe everywhere: in a request
//! path, as a cache file name (one path component, never `.` or `..`), in a message. The
//! hashing [`DigestWriter`] and [`DigestReader`] compute the digest of what passes through them.

use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

use sha2::{Digest as _, Sha256};

const PREFIX: &str = "sha256:";
const HEX_LEN: usize = 64;

/// A validated `sha256:<64 lowercase hex>` digest.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest(String);

/// Why a text is not a digest concil can use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DigestError {
    /// A well-formed digest of another algorithm (sha512, blake3…): concil verifies sha256 only.
    #[error("digest {digest:?} uses {algorithm}; only sha256 is supported")]
    UnsupportedAlgorithm {
        /// The whole text, as given.
        digest: String,
        /// The algorithm before the `:` (`sha512`).
        algorithm: String,
    },
    /// Not `algorithm:hex` at all, or sha256 with other than 64 lowercase hex digits.
    #[error("invalid digest {digest:?}: expected \"sha256:\" followed by 64 lowercase hex digits")]
    Invalid {
        /// The whole text, as given.
        digest: String,
    },
}

impl Digest {
    /// Parses `sha256:<64 lowercase hex>`; another algorithm is named as unsupported.
    pub fn parse(text: &str) -> Result<Digest, DigestError> {
        if let Some(hex) = text.strip_prefix(PREFIX) {
            if is_sha256_hex(hex) {
                return Ok(Digest(text.to_owned()));
            }
            return Err(DigestError::Invalid {
                digest: text.to_owned(),
            });
        }
        // Name well-formed algorithms as unsupported; anything else is garbage.
        match text.split_once(':') {
            Some((algorithm, _))
                if algorithm.starts_with(|c: char| c.is_ascii_alphabetic())
                    && algorithm.chars().all(|c| {
                        c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '+' | '.')
                    }) =>
            {
                Err(DigestError::UnsupportedAlgorithm {
                    digest: text.to_owned(),
                    algorithm: algorithm.to_owned(),
                })
            }
            _ => Err(DigestError::Invalid {
                digest: text.to_owned(),
            }),
        }
    }

    /// The digest whose hex digits are `hex` (a sha256 as TUF metadata and in-toto subjects
    /// write it, without the algorithm).
    pub fn from_hex(hex: &str) -> Result<Digest, DigestError> {
        Digest::parse(&format!("{PREFIX}{hex}"))
    }

    /// The sha256 digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest::from_hash(Sha256::digest(bytes).as_slice())
    }

    /// The digest and length of everything `reader` yields.
    pub fn of_reader(reader: impl Read) -> io::Result<(Digest, u64)> {
        let mut hashing = DigestReader::new(reader);
        io::copy(&mut hashing, &mut io::sink())?;
        Ok((hashing.digest(), hashing.bytes_read()))
    }

    fn from_hash(hash: &[u8]) -> Digest {
        Digest(format!("{PREFIX}{}", hex::encode(hash)))
    }

    /// `sha256:<hex>`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 64 hex digits without the algorithm.
    pub fn hex(&self) -> &str {
        &self.0[PREFIX.len()..]
    }

    /// `sha256-<hex>`: the digest as a tag may hold it (cosign's signature tags, the
    /// referrers API's fallback tag).
    pub fn as_tag(&self) -> String {
        format!("sha256-{}", self.hex())
    }
}

/// Whether `text` is 64 lowercase hex digits (a sha256 in the form digests and image IDs use).
pub fn is_sha256_hex(text: &str) -> bool {
    text.len() == HEX_LEN && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.0)
    }
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(text: &str) -> Result<Digest, DigestError> {
        Digest::parse(text)
    }
}

impl AsRef<str> for Digest {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A digest is one path component (no `/`, never `.` or `..`): safe to join to a directory.
impl AsRef<std::path::Path> for Digest {
    fn as_ref(&self) -> &std::path::Path {
        std::path::Path::new(&self.0)
    }
}

impl PartialEq<Digest> for String {
    fn eq(&self, other: &Digest) -> bool {
        *self == other.0
    }
}

impl PartialEq<Digest> for str {
    fn eq(&self, other: &Digest) -> bool {
        self == other.0
    }
}

impl PartialEq<str> for Digest {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Digest {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl PartialEq<String> for Digest {
    fn eq(&self, other: &String) -> bool {
        &self.0 == other
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Digest, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Digest::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Hashes what is written through it into `inner`; [`DigestWriter::digest`] tells the digest
/// of everything written so far.
#[derive(Debug)]
pub struct DigestWriter<W> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> DigestWriter<W> {
    /// Writes through to `inner`.
    pub fn new(inner: W) -> Self {
        DigestWriter {
            inner,
            hasher: Sha256::new(),
        }
    }

    /// The digest of the bytes written so far.
    pub fn digest(&self) -> Digest {
        Digest::from_hash(self.hasher.clone().finalize().as_slice())
    }

    /// The inner writer.
    pub fn into_inner(self) -> W {
        self.inner
    }
}

impl<W: Write> Write for DigestWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.hasher.update(&buf[..written]);
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Hashes what is read through it; [`DigestReader::digest`] tells the digest of everything
/// read so far, [`DigestReader::bytes_read`] how much that was.
#[derive(Debug)]
pub struct DigestReader<R> {
    inner: R,
    hasher: Sha256,
    read: u64,
}

impl<R: Read> DigestReader<R> {
    /// Reads from `inner`.
    pub fn new(inner: R) -> Self {
        DigestReader {
            inner,
            hasher: Sha256::new(),
            read: 0,
        }
    }

    /// The digest of the bytes read so far.
    pub fn digest(&self) -> Digest {
        Digest::from_hash(self.hasher.clone().finalize().as_slice())
    }

    /// How many bytes were read so far.
    pub fn bytes_read(&self) -> u64 {
        self.read
    }

    /// The inner reader.
    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// The inner reader.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }
}

impl<R: Read> Read for DigestReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.read += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_sha256_only_and_names_other_algorithms() {
        let digest = Digest::parse(EMPTY).unwrap();
        assert_eq!(digest.to_string(), EMPTY);
        assert_eq!(digest.hex(), &EMPTY[7..]);
        assert_eq!(Digest::of(b""), digest);
        let hex = "ab".repeat(32);
        assert!(matches!(
            Digest::parse(&format!("sha512:{hex}{hex}")),
            Err(DigestError::UnsupportedAlgorithm { algorithm, .. }) if algorithm == "sha512"
        ));
        for bad in [
            String::new(),
            "sha256:".to_owned(),
            format!("sha256:{}", &hex[1..]),
            format!("sha256:{hex}0"),
            format!("sha256:{}", hex.to_uppercase()),
            format!("SHA256:{hex}"),
            format!("sha256:{}/..", &hex[3..]),
            format!("../{hex}"),
            "sha256:../../../../etc/passwd".to_owned(),
            hex.clone(),
        ] {
            assert!(Digest::parse(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn hashing_reader_and_writer_agree_with_of() {
        let data = b"some layer bytes".repeat(1000);
        let mut reader = DigestReader::new(data.as_slice());
        let mut writer = DigestWriter::new(Vec::new());
        io::copy(&mut reader, &mut writer).unwrap();
        assert_eq!(reader.digest(), Digest::of(&data));
        assert_eq!(reader.bytes_read(), data.len() as u64);
        assert_eq!(writer.digest(), Digest::of(&data));
        assert_eq!(writer.into_inner(), data);
    }

    #[test]
    fn deserializes_validated() {
        let ok: Digest = serde_json::from_str(&format!("\"{EMPTY}\"")).unwrap();
        assert_eq!(ok, EMPTY);
        assert!(serde_json::from_str::<Digest>("\"sha256:xyz\"").is_err());
        assert_eq!(serde_json::to_string(&ok).unwrap(), format!("\"{EMPTY}\""));
    }
}
