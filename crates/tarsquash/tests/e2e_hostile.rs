//! Hostile and broken input: every case must end in its own error (never a panic, never a
//! huge allocation), naming the entry where there is one, and `convert_to_path` must leave no
//! file behind.

use std::io::{Read, Write};

use tar::EntryType;
use tarsquash::decode::{Compression, DecompressError};
use tarsquash::Error;

use concil_test_support::e2e::*;

/// Converts `input` with `convert_to_path`; returns the error and checks that the output
/// directory is empty afterwards (no image, no temporary file).
fn convert_error(input: &mut dyn Read) -> Error {
    let dir = staging_dir();
    let output = dir.path().join("layer.sqfs");
    let error = match tarsquash::convert_to_path(input, &output, &options(2)) {
        Ok(conversion) => {
            let listing = run_text(
                std::process::Command::new("rdsquashfs")
                    .arg("-d")
                    .arg(&output),
            );
            panic!("hostile input converted: {conversion:?}; the image holds:\n{listing}");
        }
        Err(error) => error,
    };
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .expect("read_dir")
        .map(|e| e.expect("read_dir entry").file_name())
        .collect();
    assert!(left.is_empty(), "a failed conversion left {left:?} behind");
    error
}

fn message(error: &Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

fn tar_error(tar: &[u8]) -> Error {
    convert_error(&mut &tar[..])
}

/// A raw header whose name is written as given (up to 100 bytes).
fn raw_file(writer: &mut TarWriter, name: &[u8], data: &[u8]) {
    let header = TarWriter::header(EntryType::Regular, name, b"", FILE, data.len() as u64);
    writer.raw(&header, data);
}

#[test]
fn path_escaping_the_root_names_the_entry() {
    let mut plain = TarWriter::new();
    plain.file("ok", FILE, b"ok");
    raw_file(&mut plain, b"a/../../etc/passwd", b"root::0:0::/:/bin/sh\n");
    let error = tar_error(&plain.finish());
    assert!(
        matches!(&error, Error::PathEscapesRoot { entry } if entry == "a/../../etc/passwd"),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("a/../../etc/passwd"),
        "{}",
        message(&error)
    );

    let long = format!(
        "{}/{}/{}etc/cron.d/x",
        "d".repeat(60),
        "e".repeat(60),
        "../".repeat(3)
    );
    let gnu = TarWriter::new().file(&long, FILE, b"x").finish();
    let error = tar_error(&gnu);
    assert!(
        matches!(&error, Error::PathEscapesRoot { entry } if *entry == long),
        "{error:?}"
    );

    let mut pax = TarWriter::new();
    pax.pax(&[("path", b"../outside")])
        .file("inside", FILE, b"x");
    let error = tar_error(&pax.finish());
    assert!(
        matches!(&error, Error::PathEscapesRoot { entry } if entry == "../outside"),
        "{error:?}"
    );
}

#[test]
fn hard_link_target_escaping_the_root_names_the_entry() {
    // etc/shadow exists in the layer: `../../etc/shadow` must still not resolve to it.
    let tar = TarWriter::new()
        .file("etc/shadow", FILE, b"root:*:")
        .hard_link("link", "../../etc/shadow")
        .finish();
    let error = tar_error(&tar);
    assert!(
        matches!(
            &error,
            Error::PathEscapesRoot { .. }
                | Error::InvalidLinkTarget { .. }
                | Error::HardLinkTargetMissing { .. }
        ),
        "{error:?}"
    );
    assert!(
        message(&error).contains("\"link\""),
        "error does not name the entry: {}",
        message(&error)
    );
}

#[test]
fn hard_link_to_a_missing_target_names_the_entry() {
    let tar = TarWriter::new()
        .file("f", FILE, b"f")
        .hard_link("link", "nowhere")
        .finish();
    let error = tar_error(&tar);
    assert!(
        matches!(&error, Error::HardLinkTargetMissing { entry, target } if entry == "link" && target == "nowhere"),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("link") && error.to_string().contains("nowhere"),
        "{}",
        message(&error)
    );

    // The target comes later in the tar: still missing when the link is read.
    let tar = TarWriter::new()
        .hard_link("early", "late")
        .file("late", FILE, b"late")
        .finish();
    let error = tar_error(&tar);
    assert!(
        matches!(&error, Error::HardLinkTargetMissing { entry, .. } if entry == "early"),
        "{error:?}"
    );
}

#[test]
fn the_root_as_a_file_is_refused() {
    // (`./` with its slash would be a directory by the old tar convention; `.` is not.)
    let tar = TarWriter::new()
        .file(".", FILE, b"not a directory")
        .finish();
    let error = tar_error(&tar);
    assert!(
        matches!(&error, Error::RootNotDirectory { .. }),
        "{error:?}"
    );
}

/// A tar with a PAX entry, a GNU long name and a 10000-byte file.
fn sample_tar() -> Vec<u8> {
    let mut writer = TarWriter::new();
    writer
        .pax(&[("SCHILY.xattr.user.x", b"y")])
        .file("first", FILE, b"first");
    writer.file(&format!("{}/long", "l".repeat(120)), FILE, b"long");
    writer.file("file", FILE, &pseudo_random(1, 10_000, false));
    writer.finish()
}

#[test]
fn truncated_tars_fail_at_every_cut() {
    let tar = sample_tar();
    let file_header = tar.len() - 1024 - 10_240 - 512;
    // Blocks: 0 PAX header, 1 PAX data, 2 "first", 3 its data, 4 GNU long name header, 5 the
    // name, 6 its entry's header, 7 data, 8 "file" header, 9.. its data. Cut inside the PAX
    // header, the PAX data, the long name, the header after it, the last header, the data.
    assert_eq!(file_header, 8 * 512);
    let cuts = [
        100,
        512 + 30,
        5 * 512 + 60,
        6 * 512 + 200,
        file_header + 100,
        file_header + 512 + 5000,
    ];
    for cut in cuts {
        let error = tar_error(&tar[..cut]);
        let ok = match &error {
            Error::TruncatedHeaders { .. } | Error::Header { .. } => cut <= file_header + 512,
            Error::Truncated {
                entry,
                expected,
                got,
            } => cut > file_header + 512 && entry == "file" && *expected == 10_000 && *got == 5000,
            _ => false,
        };
        assert!(ok, "cut at {cut}: {error:?}");
    }
}

#[test]
fn bad_header_checksum_fails() {
    let mut tar = TarWriter::new()
        .file("first", FILE, b"1")
        .file("second", FILE, b"2")
        .finish();
    let second = 2 * 512;
    assert_eq!(&tar[second..second + 6], b"second");
    // A mode digit changed, the checksum left as it was.
    tar[second + 100 + 3] = b'7';
    let error = tar_error(&tar);
    assert!(
        matches!(&error, Error::Header { offset, previous: Some(previous), .. } if *offset == second as u64 && previous == "first"),
        "{error:?}"
    );
}

#[test]
fn absurd_declared_sizes_fail_without_allocating() {
    let sizes: [(&str, u64); 3] = [
        ("octal", 0o77777777777),
        ("base-256", 1 << 62),
        ("u64 max", u64::MAX),
    ];
    for (what, size) in sizes {
        let mut writer = TarWriter::new();
        let header = TarWriter::header(EntryType::Regular, b"huge", b"", FILE, size);
        writer.raw(&header, b"only a few bytes");
        let error = tar_error(&writer.finish());
        assert!(
            matches!(&error, Error::Truncated { entry, expected, .. } if entry == "huge" && *expected == size)
                || matches!(&error, Error::Tar { entry, .. } if entry == "huge")
                || matches!(&error, Error::Header { .. }),
            "{what} size {size}: {error:?}"
        );
    }

    // A PAX size beyond u64.
    let mut writer = TarWriter::new();
    writer
        .pax(&[("size", b"99999999999999999999999")])
        .file("pax-huge", FILE, b"x");
    let error = tar_error(&writer.finish());
    assert!(
        matches!(&error, Error::Pax { entry, .. } | Error::Tar { entry, .. } if entry == "pax-huge")
            || matches!(&error, Error::Header { .. }),
        "PAX size beyond u64: {error:?}"
    );

    // Headers (a GNU long name, PAX data) declaring a terabyte.
    for kind in [EntryType::GNULongName, EntryType::XHeader] {
        let mut writer = TarWriter::new();
        let header = TarWriter::header(kind, b"././@LongLink", b"", FILE, 1 << 40);
        writer.raw(&header, &[b'a'; 4096]);
        let error = tar_error(&writer.finish());
        assert!(
            matches!(
                &error,
                Error::HeadersTooLarge { .. } | Error::TruncatedHeaders { .. }
            ),
            "{kind:?} of 1 TiB: {error:?}"
        );
    }

    // A size field that is not a number.
    let mut tar = TarWriter::new().file("garbage-size", FILE, b"x").finish();
    tar[124..130].copy_from_slice(b"zz9zz9");
    let checksum_fixed = {
        let header = tar::Header::from_byte_slice(&tar[..512]);
        let mut header = header.clone();
        header.set_cksum();
        header
    };
    tar[..512].copy_from_slice(checksum_fixed.as_bytes());
    let error = tar_error(&tar);
    assert!(
        matches!(
            &error,
            Error::Header { .. } | Error::Tar { .. } | Error::TruncatedHeaders { .. }
        ),
        "non-numeric size: {error:?}"
    );
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).expect("gzip");
    encoder.finish().expect("gzip")
}

/// zstd with a content checksum, as the `zstd` tool writes it.
fn zstd(data: &[u8]) -> Vec<u8> {
    let mut encoder = zstd::Encoder::new(Vec::new(), 3).expect("zstd");
    encoder.include_checksum(true).expect("zstd checksum");
    encoder.write_all(data).expect("zstd");
    encoder.finish().expect("zstd")
}

/// Eight files, text and noise, so that the compressed stream has many blocks of both kinds.
fn compressible_tar() -> Vec<u8> {
    let mut writer = TarWriter::new();
    for i in 0..8 {
        writer.file(
            &format!("f{i}"),
            FILE,
            &pseudo_random(i, 200_000, i % 2 == 0),
        );
    }
    writer.finish()
}

/// One file of noise: gzip and zstd store it as it is, so a flipped byte in the middle of the
/// compressed stream changes file data only, and only the checksum at the end can tell.
fn incompressible_tar() -> Vec<u8> {
    TarWriter::new()
        .file("noise", FILE, &pseudo_random(9, 1 << 20, false))
        .finish()
}

fn flip_middle(data: &[u8]) -> Vec<u8> {
    let mut flipped = data.to_vec();
    let middle = flipped.len() / 2;
    for byte in &mut flipped[middle..middle + 16] {
        *byte ^= 0x5a;
    }
    flipped
}

fn assert_decompress_error(error: &Error, compression: Compression, what: &str) {
    match error {
        Error::Decompress {
            source: DecompressError { compression: c, .. },
            ..
        } if *c == compression => {}
        _ => panic!("{what}: expected a {compression} Decompress error, got {error:?}"),
    }
}

/// Corruption the decompressor cannot see at once may first reach the tar reader as garbage.
fn assert_corrupt_input_error(error: &Error, compression: Compression, what: &str) {
    match error {
        Error::Header { .. } | Error::TruncatedHeaders { .. } | Error::Truncated { .. } => {}
        _ => assert_decompress_error(error, compression, what),
    }
}

#[test]
fn corrupt_and_truncated_gzip_fail() {
    let gz = gzip(&compressible_tar());
    let middle = gz.len() / 2;
    let mut bad_crc = gz.clone();
    let crc = bad_crc.len() - 8;
    bad_crc[crc] ^= 0xff;
    // The first deflate block's type bits set to 11, which deflate reserves.
    let mut bad_block = gz.clone();
    bad_block[10] |= 0b110;
    let noise_flipped = flip_middle(&gzip(&incompressible_tar()));
    let cases: [(&str, &[u8]); 4] = [
        ("cut in the middle", &gz[..middle]),
        ("wrong CRC", &bad_crc),
        ("reserved block type", &bad_block),
        ("stored data flipped (CRC mismatch)", &noise_flipped),
    ];
    for (what, data) in cases {
        let error = convert_error(&mut Compression::Gzip.decoder(data));
        assert_decompress_error(&error, Compression::Gzip, what);
    }
    let error = convert_error(&mut Compression::Gzip.decoder(&flip_middle(&gz)[..]));
    assert_corrupt_input_error(&error, Compression::Gzip, "compressed data flipped");
}

#[test]
fn corrupt_and_truncated_zstd_fail() {
    let zst = zstd(&compressible_tar());
    let middle = zst.len() / 2;
    // The frame header descriptor's reserved bit (bit 3) set.
    let mut bad_frame = zst.clone();
    bad_frame[4] |= 0b1000;
    let noise_flipped = flip_middle(&zstd(&incompressible_tar()));
    let cases: [(&str, &[u8]); 3] = [
        ("cut in the middle", &zst[..middle]),
        ("reserved frame header bit", &bad_frame),
        ("raw data flipped (checksum mismatch)", &noise_flipped),
    ];
    for (what, data) in cases {
        let error = convert_error(&mut Compression::Zstd.decoder(data));
        assert_decompress_error(&error, Compression::Zstd, what);
    }
    let error = convert_error(&mut Compression::Zstd.decoder(&flip_middle(&zst)[..]));
    assert_corrupt_input_error(&error, Compression::Zstd, "compressed data flipped");
}

/// The input source failing (a dropped download) is told apart from corrupt content.
#[test]
fn failing_source_is_a_read_error() {
    struct Failing<'a>(&'a [u8]);
    impl Read for Failing<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0.is_empty() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "connection reset",
                ));
            }
            let n = buf.len().min(self.0.len()).min(4096);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }
    let tar = compressible_tar();
    let error = convert_error(&mut Failing(&tar[..300_000]));
    assert!(matches!(&error, Error::Read { .. }), "plain: {error:?}");
    let gz = gzip(&tar);
    let error = convert_error(&mut Compression::Gzip.decoder(Failing(&gz[..gz.len() / 2])));
    assert!(matches!(&error, Error::Read { .. }), "gzip: {error:?}");
}
