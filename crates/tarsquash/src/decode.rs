//! Layer compression: from an OCI/Docker layer media type or the stream's magic bytes to a
//! decompressing reader.
//!
//! Errors of the decompressor itself (a corrupt or truncated stream) come out of the reader as
//! an [`io::Error`] of kind `InvalidData` wrapping a [`DecompressError`]; errors of the
//! compressed source pass through unchanged, so a caller can tell "the download failed" from
//! "the layer is corrupt" (see [`DecompressError::from_io`]).

use std::fmt;
use std::io::{self, BufReader, Read};

/// How a tar stream is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

impl Compression {
    /// The compression of a layer with this media type, or `None` when the media type is not a
    /// tar layer this crate converts (squashfs, encrypted, foreign or unknown layers).
    pub fn from_media_type(media_type: &str) -> Option<Self> {
        match media_type {
            "application/vnd.oci.image.layer.v1.tar"
            | "application/vnd.docker.image.rootfs.diff.tar"
            | "tar" => Some(Compression::None),
            "application/vnd.oci.image.layer.v1.tar+gzip"
            | "application/vnd.docker.image.rootfs.diff.tar.gzip"
            | "tar+gzip" => Some(Compression::Gzip),
            "application/vnd.oci.image.layer.v1.tar+zstd" | "tar+zstd" => Some(Compression::Zstd),
            _ => None,
        }
    }

    /// The compression announced by the first bytes of a stream (four are enough); anything
    /// that is neither gzip nor zstd is taken for a plain tar.
    pub fn detect(first_bytes: &[u8]) -> Self {
        if first_bytes.starts_with(&GZIP_MAGIC) {
            Compression::Gzip
        } else if first_bytes.starts_with(&ZSTD_MAGIC) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// A reader yielding the uncompressed bytes of `compressed`. Gzip streams may have several
    /// members (as `pigz` and concatenated layers do); zstd streams several frames.
    pub fn decoder<'a>(self, compressed: impl Read + 'a) -> Box<dyn Read + 'a> {
        let source = SourceReader {
            inner: compressed,
            failed: false,
        };
        match self {
            Compression::None => Box::new(source.inner),
            Compression::Gzip => Box::new(Decompressor {
                decoder: Decoder::Gzip(Box::new(flate2::read::MultiGzDecoder::new(source))),
                compression: self,
            }),
            Compression::Zstd => {
                let decoder = match zstd::stream::read::Decoder::new(source) {
                    Ok(decoder) => Decoder::Zstd(decoder),
                    Err(error) => Decoder::Unavailable(Some(error)),
                };
                Box::new(Decompressor {
                    decoder,
                    compression: self,
                })
            }
        }
    }

    /// Reads the first bytes of `input`, detects its compression from them and returns it with
    /// a decompressing reader over the whole stream, those first bytes included (for input that
    /// cannot be rewound, like stdin).
    pub fn detect_decoder<'a>(
        mut input: impl Read + 'a,
    ) -> io::Result<(Compression, Box<dyn Read + 'a>)> {
        let mut magic = [0u8; ZSTD_MAGIC.len()];
        let mut filled = 0;
        while filled < magic.len() {
            let unfilled = magic.get_mut(filled..).unwrap_or_default();
            match input.read(unfilled) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
        let first_bytes = magic.get(..filled).unwrap_or_default();
        let compression = Compression::detect(first_bytes);
        let whole = io::Cursor::new(first_bytes.to_vec()).chain(input);
        Ok((compression, compression.decoder(whole)))
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Compression::None => "uncompressed",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        })
    }
}

/// The compressed stream is corrupt or truncated.
#[derive(Debug, thiserror::Error)]
#[error("corrupt {compression} stream")]
pub struct DecompressError {
    pub compression: Compression,
    pub source: io::Error,
}

impl DecompressError {
    /// The `DecompressError` inside an error that a [`Compression::decoder`] reader returned,
    /// or the error unchanged when it is not one (the source failed).
    pub fn from_io(error: io::Error) -> Result<DecompressError, io::Error> {
        error.downcast::<DecompressError>()
    }
}

/// The compressed input; remembers whether it failed so that its errors are not blamed on the
/// decompressor.
struct SourceReader<R> {
    inner: R,
    failed: bool,
}

impl<R: Read> Read for SourceReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).inspect_err(|error| {
            if error.kind() != io::ErrorKind::Interrupted {
                self.failed = true;
            }
        })
    }
}

enum Decoder<'a, R: Read> {
    Gzip(Box<flate2::read::MultiGzDecoder<SourceReader<R>>>),
    Zstd(zstd::stream::read::Decoder<'a, BufReader<SourceReader<R>>>),
    /// The zstd context could not be created; the error is reported by the first read.
    Unavailable(Option<io::Error>),
}

struct Decompressor<'a, R: Read> {
    decoder: Decoder<'a, R>,
    compression: Compression,
}

impl<R: Read> Read for Decompressor<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let (result, source_failed) = match &mut self.decoder {
            Decoder::Gzip(decoder) => (decoder.read(buf), decoder.get_ref().failed),
            Decoder::Zstd(decoder) => (decoder.read(buf), decoder.get_ref().get_ref().failed),
            Decoder::Unavailable(error) => (
                Err(error
                    .take()
                    .unwrap_or_else(|| io::Error::other("zstd decoder unavailable"))),
                false,
            ),
        };
        match result {
            Err(error) if !source_failed && error.kind() != io::ErrorKind::Interrupted => {
                Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    DecompressError {
                        compression: self.compression,
                        source: error,
                    },
                ))
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    fn decode_all(compression: Compression, data: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        compression.decoder(data).read_to_end(&mut out)?;
        Ok(out)
    }

    /// A source that yields some bytes, then fails like a dropped connection.
    struct FailingSource<'a> {
        data: &'a [u8],
    }

    impl Read for FailingSource<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.data.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    "peer went away",
                ));
            }
            let n = self.data.read(buf)?;
            Ok(n)
        }
    }

    #[test]
    fn media_types_map_to_compressions() {
        let cases = [
            (
                "application/vnd.oci.image.layer.v1.tar",
                Some(Compression::None),
            ),
            (
                "application/vnd.oci.image.layer.v1.tar+gzip",
                Some(Compression::Gzip),
            ),
            (
                "application/vnd.oci.image.layer.v1.tar+zstd",
                Some(Compression::Zstd),
            ),
            (
                "application/vnd.docker.image.rootfs.diff.tar",
                Some(Compression::None),
            ),
            (
                "application/vnd.docker.image.rootfs.diff.tar.gzip",
                Some(Compression::Gzip),
            ),
            ("tar", Some(Compression::None)),
            ("tar+gzip", Some(Compression::Gzip)),
            ("tar+zstd", Some(Compression::Zstd)),
            (
                "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
                None,
            ),
            (
                "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
                None,
            ),
            ("application/vnd.docker.image.rootfs.diff.squashfs", None),
            (
                "application/vnd.oci.image.layer.v1.tar+gzip+encrypted",
                None,
            ),
            ("", None),
        ];
        for (media_type, expected) in cases {
            assert_eq!(
                Compression::from_media_type(media_type),
                expected,
                "{media_type}"
            );
        }
    }

    #[test]
    fn magic_bytes_are_detected() {
        assert_eq!(Compression::detect(&gzip(b"x")), Compression::Gzip);
        let zstd = zstd::encode_all(&b"x"[..], 3).unwrap();
        assert_eq!(Compression::detect(&zstd), Compression::Zstd);
        assert_eq!(Compression::detect(b"etc/\0\0\0"), Compression::None);
        assert_eq!(Compression::detect(&[0x1f]), Compression::None);
        assert_eq!(Compression::detect(&[]), Compression::None);
    }

    #[test]
    fn gzip_with_several_members_is_read_whole() {
        let mut stream = gzip(b"first member, ");
        stream.extend(gzip(b"second member"));
        assert_eq!(
            decode_all(Compression::Gzip, &stream).unwrap(),
            b"first member, second member"
        );
    }

    #[test]
    fn zstd_with_several_frames_is_read_whole() {
        let mut stream = zstd::encode_all(&b"one "[..], 3).unwrap();
        stream.extend(zstd::encode_all(&b"two"[..], 19).unwrap());
        assert_eq!(decode_all(Compression::Zstd, &stream).unwrap(), b"one two");
    }

    #[test]
    fn corrupt_gzip_is_a_decompress_error() {
        let mut stream = gzip(&[7u8; 10000]);
        let middle = stream.len() / 2;
        stream.truncate(middle);
        let error = decode_all(Compression::Gzip, &stream).unwrap_err();
        let error = DecompressError::from_io(error).expect("a DecompressError");
        assert_eq!(error.compression, Compression::Gzip);

        let mut flipped = gzip(b"some text that is long enough to be compressed");
        if let Some(byte) = flipped.get_mut(12) {
            *byte ^= 0xff;
        }
        let error = decode_all(Compression::Gzip, &flipped).unwrap_err();
        assert!(DecompressError::from_io(error).is_ok());
    }

    #[test]
    fn corrupt_zstd_is_a_decompress_error() {
        let stream = zstd::encode_all(&[3u8; 100000][..], 3).unwrap();
        let truncated = stream.get(..stream.len() - 3).unwrap();
        let error = decode_all(Compression::Zstd, truncated).unwrap_err();
        let error = DecompressError::from_io(error).expect("a DecompressError");
        assert_eq!(error.compression, Compression::Zstd);
        assert_eq!(error.to_string(), "corrupt zstd stream");

        let garbage = [0x28, 0xb5, 0x2f, 0xfd, 0xff, 0xff, 0xff, 0xff, 0, 0, 0];
        let error = decode_all(Compression::Zstd, &garbage).unwrap_err();
        assert!(DecompressError::from_io(error).is_ok());
    }

    #[test]
    fn source_errors_pass_through_the_decoders() {
        let gz = gzip(&[1u8; 50000]);
        let zst = zstd::encode_all(&[1u8; 50000][..], 3).unwrap();
        for (compression, stream) in [(Compression::Gzip, gz), (Compression::Zstd, zst)] {
            let half = stream.get(..stream.len() / 2).unwrap();
            let mut out = Vec::new();
            let error = compression
                .decoder(FailingSource { data: half })
                .read_to_end(&mut out)
                .unwrap_err();
            assert_eq!(
                error.kind(),
                io::ErrorKind::ConnectionReset,
                "{compression}"
            );
            assert!(DecompressError::from_io(error).is_err());
        }
    }

    #[test]
    fn detect_decoder_keeps_the_magic_bytes() {
        let payload = b"a tar would be here".repeat(100);
        let zst = zstd::encode_all(&payload[..], 3).unwrap();
        let cases = [
            (Compression::Gzip, gzip(&payload)),
            (Compression::Zstd, zst),
            (Compression::None, payload.clone()),
        ];
        for (expected, stream) in cases {
            // One byte per read, like a slow pipe, so the magic arrives in pieces.
            let trickle = io::BufReader::with_capacity(1, &stream[..]);
            let (compression, mut reader) = Compression::detect_decoder(trickle).unwrap();
            assert_eq!(compression, expected);
            let mut out = Vec::new();
            reader.read_to_end(&mut out).unwrap();
            assert_eq!(out, payload, "{expected}");
        }
        let (compression, mut reader) = Compression::detect_decoder(&b"ab"[..]).unwrap();
        assert_eq!(compression, Compression::None);
        let mut out = Vec::new();
        reader.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"ab");
    }
}
