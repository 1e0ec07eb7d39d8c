//! The tar front end on inputs the other end-to-end tests leave out: PAX data the `tar` crate
//! misreads, oversized headers, blank and negative header fields, device numbers, xattr
//! namespaces, global headers, pre-POSIX directories, rare whiteouts, GNU tar's older PAX sparse
//! formats, and `convert_to_path`'s all-or-nothing output. Images are read back with
//! `sqfs2tar` and compared with the tree the tar describes.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use tar::EntryType;
use tarsquash::decode::Compression;
use tarsquash::{Error, Options, Whiteouts};

use concil_test_support::e2e::*;

/// Converts `tar` and returns the error it must give.
fn convert_error(tar: &[u8], options: &Options) -> Error {
    let dir = staging_dir();
    let out = File::create(dir.path().join("image.sqfs")).expect("image file");
    match tarsquash::convert(&mut &tar[..], out, options) {
        Ok(conversion) => panic!("converted, expected an error: {conversion:?}"),
        Err(error) => error,
    }
}

/// Converts `tar` and reads the image back, without the root.
fn convert_and_read(tar: &[u8], options: &Options) -> Tree {
    let dir = staging_dir();
    let image = dir.path().join("image.sqfs");
    convert_bytes(tar, &image, options);
    let mut got = read_back(&image);
    got.nodes.remove(&Bytes::from(""));
    got
}

fn expect(nodes: &[(&str, Node)]) -> Tree {
    let mut tree = Tree::default();
    for (path, node) in nodes {
        tree.insert(path, node.clone());
    }
    tree.count_links();
    tree
}

#[test]
fn pax_values_cannot_pass_for_records() {
    // tar 0.4.46 splits PAX data at newlines: it would read the fake records inside these
    // values (a link target, a path) and drop the xattrs. A reader that walks records by their
    // length, as Go's archive/tar and GNU tar do, sees two xattrs and nothing else.
    let smuggled_link: &[u8] = b"x\n21 linkpath=/evil\n";
    let smuggled_path: &[u8] = b"\n16 path=stolen\n";
    let tar = TarWriter::new()
        .pax(&[
            ("SCHILY.xattr.user.a", smuggled_link),
            ("SCHILY.xattr.user.b", smuggled_path),
        ])
        .symlink("s", LINK, "harmless")
        .finish();
    let mut link = LINK.node(Kind::Symlink(Bytes::from("harmless")));
    link.xattrs
        .insert(Bytes::from("user.a"), Bytes::from(smuggled_link));
    link.xattrs
        .insert(Bytes::from("user.b"), Bytes::from(smuggled_path));
    assert_same_tree(
        "records inside PAX values",
        &expect(&[("s", link)]),
        &convert_and_read(&tar, &Options::default()),
    );
}

#[test]
fn a_size_record_the_tar_crate_misses_is_an_error() {
    // A newline in the first value makes the tar crate skip the size record after it and take
    // the header's size (0) instead of 5; reading on would misframe the rest of the stream.
    let mut writer = TarWriter::new();
    writer.pax(&[("SCHILY.xattr.user.x", b"\n"), ("size", b"5")]);
    let header = TarWriter::header(EntryType::Regular, b"f", b"", FILE, 0);
    writer.raw(&header, b"12345");
    match convert_error(&writer.finish(), &Options::default()) {
        Error::Pax { entry, .. } => assert_eq!(entry, "f"),
        other => panic!("expected Error::Pax, got {other:?}"),
    }
}

#[test]
fn malformed_pax_data_names_the_entry() {
    let mut writer = TarWriter::new();
    let data = b"99 path=a\n";
    let header = TarWriter::header(
        EntryType::XHeader,
        b"PaxHeaders/f",
        b"",
        FILE,
        data.len() as u64,
    );
    writer.raw(&header, data).file("f", FILE, b"");
    match convert_error(&writer.finish(), &Options::default()) {
        Error::Pax { entry, reason } => {
            assert_eq!(entry, "f");
            assert!(reason.contains("length"), "{reason}");
        }
        other => panic!("expected Error::Pax, got {other:?}"),
    }
}

#[test]
fn oversized_headers_fail_before_they_are_read_into_memory() {
    // A GNU long name declaring 256 MiB, all of it there: 250 KB once gzipped. The tar crate
    // would read it whole into a Vec; the conversion stops at 1 MiB of headers.
    let name_size: u64 = 256 << 20;
    let header = TarWriter::header(
        EntryType::GNULongName,
        b"././@LongLink",
        b"",
        FILE,
        name_size,
    );
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(header.as_bytes()).expect("gzip");
    let block = [b'a'; 1 << 16];
    for _ in 0..name_size / block.len() as u64 {
        encoder.write_all(&block).expect("gzip");
    }
    let layer = encoder.finish().expect("gzip");
    assert!(
        layer.len() < 4 << 20,
        "the layer is small: {} bytes",
        layer.len()
    );

    let dir = staging_dir();
    let out = File::create(dir.path().join("image.sqfs")).expect("image file");
    let mut tar = Compression::Gzip.decoder(&layer[..]);
    match tarsquash::convert(&mut tar, out, &Options::default()) {
        Err(Error::HeadersTooLarge { offset, limit }) => {
            assert_eq!((offset, limit), (0, 1 << 20));
        }
        other => panic!("expected Error::HeadersTooLarge, got {other:?}"),
    }
}

#[test]
fn blank_and_negative_header_fields() {
    // Writers that leave unused numeric fields blank (NULs) mean 0, as Go's archive/tar reads
    // them; a base-256 time before 1970 is 0 for squashfs, as is a negative PAX time.
    let mut writer = TarWriter::new();
    let mut blank = TarWriter::header(EntryType::Regular, b"blank", b"", meta(0o640, 5, 6, 7), 1);
    let old = blank.as_old_mut();
    old.uid = [0; 8];
    old.gid = [b' '; 8];
    old.mtime = [0; 12];
    blank.set_cksum();
    writer.raw(&blank, b"b");
    let mut before_1970 = TarWriter::header(EntryType::Regular, b"old", b"", FILE, 1);
    before_1970.as_old_mut().mtime = [0xff; 12];
    before_1970.set_cksum();
    writer.raw(&before_1970, b"o");
    writer
        .pax(&[("mtime", b"-1.5")])
        .file("pax-old", FILE, b"p");
    let expected = expect(&[
        ("blank", meta(0o640, 0, 0, 0).node(Kind::file(b"b"))),
        ("old", meta(0o644, 0, 0, 0).node(Kind::file(b"o"))),
        ("pax-old", meta(0o644, 0, 0, 0).node(Kind::file(b"p"))),
    ]);
    assert_same_tree(
        "blank and negative fields",
        &expected,
        &convert_and_read(&writer.finish(), &Options::default()),
    );
}

#[test]
fn device_numbers_from_schily_records_and_their_limits() {
    let mut writer = TarWriter::new();
    writer
        .pax(&[
            ("SCHILY.devmajor", b"4095"),
            ("SCHILY.devminor", b"1048575"),
        ])
        .device(EntryType::Block, "big", FILE, 0, 0)
        .device(EntryType::Char, "null", FILE, 1, 3);
    let expected = expect(&[
        (
            "big",
            FILE.node(Kind::BlockDevice {
                major: 4095,
                minor: 1_048_575,
            }),
        ),
        ("null", FILE.node(Kind::CharDevice { major: 1, minor: 3 })),
    ]);
    assert_same_tree(
        "device numbers",
        &expected,
        &convert_and_read(&writer.finish(), &Options::default()),
    );

    let tar = TarWriter::new()
        .pax(&[("SCHILY.devmajor", b"4096")])
        .device(EntryType::Char, "too-big", FILE, 0, 0)
        .finish();
    match convert_error(&tar, &Options::default()) {
        Error::DeviceTooLarge {
            entry,
            major,
            minor,
        } => {
            assert_eq!((entry.as_str(), major, minor), ("too-big", 4096, 0));
        }
        other => panic!("expected Error::DeviceTooLarge, got {other:?}"),
    }
}

#[test]
fn xattrs_squashfs_cannot_store_are_dropped_and_oversized_ones_refused() {
    let tar = TarWriter::new()
        .pax(&[
            (
                "SCHILY.xattr.system.posix_acl_access",
                b"\x02\0\0\0\x01\0\x06\0",
            ),
            ("SCHILY.xattr.user.kept", b""),
            ("SCHILY.xattr.user.", b"no name after the namespace"),
            ("SCHILY.xattr.trusted.overlay.origin", b"x"),
        ])
        .file("f", FILE, b"f")
        .finish();
    let mut file = FILE.node(Kind::file(b"f"));
    file.xattrs
        .insert(Bytes::from("user.kept"), Bytes::from(""));
    assert_same_tree(
        "xattr namespaces",
        &expect(&[("f", file)]),
        &convert_and_read(&tar, &Options::default()),
    );

    let huge = vec![b'v'; 65537];
    let tar = TarWriter::new()
        .pax(&[("SCHILY.xattr.user.huge", &huge)])
        .file("f", FILE, b"f")
        .finish();
    match convert_error(&tar, &Options::default()) {
        Error::Xattr { entry, name, .. } => {
            assert_eq!((entry.as_str(), name.as_str()), ("f", "user.huge"))
        }
        other => panic!("expected Error::Xattr, got {other:?}"),
    }
}

#[test]
fn global_headers_and_trailing_bytes_change_no_entry() {
    // `git archive` starts with a global header; data after the end-of-archive blocks is part
    // of the layer's digest (convert_bytes checks diff_id over all of it) but not of the tree.
    let mut writer = TarWriter::new();
    let records = b"52 comment=6f1ed002ab5595859014ebf0951522d9e2f08c36\n18 mtime=12345678\n";
    let global = TarWriter::header(
        EntryType::XGlobalHeader,
        b"pax_global_header",
        b"",
        FILE,
        records.len() as u64,
    );
    writer.raw(&global, records).file("f", FILE, b"data");
    let mut tar = writer.finish();
    tar.extend_from_slice(b"trailing bytes that are not a tar");
    assert_same_tree(
        "global header",
        &expect(&[("f", FILE.node(Kind::file(b"data")))]),
        &convert_and_read(&tar, &Options::default()),
    );
}

#[test]
fn pre_posix_directories_and_unsupported_types() {
    // Before POSIX, a regular entry whose name ends in `/` was a directory.
    let tar = TarWriter::new()
        .entry(EntryType::Regular, b"old-dir/", b"", DIR, b"")
        .file("old-dir/f", FILE, b"f")
        .finish();
    let expected = expect(&[
        ("old-dir", DIR.node(Kind::Dir)),
        ("old-dir/f", FILE.node(Kind::file(b"f"))),
    ]);
    assert_same_tree(
        "V7 directory",
        &expected,
        &convert_and_read(&tar, &Options::default()),
    );

    // A GNU volume label and a multi-volume continuation are not files.
    for type_flag in [b'V', b'M'] {
        let tar = TarWriter::new()
            .entry(EntryType::new(type_flag), b"label", b"", FILE, b"")
            .finish();
        match convert_error(&tar, &Options::default()) {
            Error::UnsupportedType {
                entry,
                type_flag: got,
            } => {
                assert_eq!((entry.as_str(), got), ("label", type_flag));
            }
            other => panic!("expected Error::UnsupportedType, got {other:?}"),
        }
    }
}

#[test]
fn overlay_whiteouts_in_every_position() {
    let overlay = Options {
        whiteouts: Whiteouts::Overlay,
        ..Options::default()
    };
    let late = meta(0o750, 1, 2, 1_700_000_500);
    let tar = TarWriter::new()
        // The opaque marker comes before its directory's own entry, which must not drop it.
        .file("d/.wh..wh..opq", FILE, b"")
        .dir("d/", late)
        // aufs bookkeeping is left out.
        .dir(".wh..wh.plnk/", DIR)
        .file(".wh..wh.plnk/12.34", FILE, b"aufs keeps hard links here")
        .file(".wh..wh.aufs", FILE, b"")
        // A whiteout that is a hard link to another whiteout (tars written with dedup).
        .file("e/.wh.one", FILE, b"")
        .hard_link("e/.wh.two", "e/.wh.one")
        .finish();
    let got = convert_and_read(&tar, &overlay);
    let mut d = late.node(Kind::Dir);
    d.xattrs
        .insert(Bytes::from("trusted.overlay.opaque"), Bytes::from("y"));
    let implicit_e = got
        .nodes
        .get(&Bytes::from("e"))
        .map_or(0, |node| node.mtime);
    let whiteout = FILE.node(Kind::CharDevice { major: 0, minor: 0 });
    let expected = expect(&[
        ("d", d),
        ("e", Node::new(Kind::Dir, 0o755, 0, 0, implicit_e)),
        ("e/one", whiteout.clone()),
        ("e/two", whiteout),
    ]);
    assert_same_tree("overlay whiteouts", &expected, &got);

    let tar = TarWriter::new().file("d/.wh.", FILE, b"").finish();
    match convert_error(&tar, &overlay) {
        Error::InvalidWhiteout { entry } => assert_eq!(entry, "d/.wh."),
        other => panic!("expected Error::InvalidWhiteout, got {other:?}"),
    }
}

#[test]
fn gnu_tar_pax_sparse_formats_0_0_and_0_1() {
    use std::io::{Seek, SeekFrom};
    let work = staging_dir();
    let src = work.path().join("src");
    std::fs::create_dir(&src).expect("mkdir");
    let mut sparse = File::create(src.join("sparse")).expect("create");
    sparse.set_len(3 << 20).expect("truncate");
    for (index, offset) in [0u64, 700_001, 2_000_000].into_iter().enumerate() {
        sparse.seek(SeekFrom::Start(offset)).expect("seek");
        sparse
            .write_all(&pseudo_random(index as u64, 9000, false))
            .expect("write");
    }
    drop(sparse);
    let expected = Tree::from_dir(&src);
    for version in ["0.0", "0.1"] {
        let tar = work.path().join(format!("sparse-{version}.tar"));
        run(Command::new("tar")
            .args([
                "--format=pax",
                "--sparse",
                &format!("--sparse-version={version}"),
            ])
            .arg("-C")
            .arg(&src)
            .arg("-cf")
            .arg(&tar)
            .arg("."));
        let keyword: &[u8] = if version == "0.0" {
            b"GNU.sparse.offset"
        } else {
            b"GNU.sparse.map"
        };
        let written = std::fs::read(&tar).expect("reading the tar");
        assert!(
            written
                .windows(keyword.len())
                .any(|window| window == keyword),
            "GNU tar wrote a {version} sparse map"
        );
        let image = work.path().join(format!("sparse-{version}.sqfs"));
        convert_file(&tar, &image, &Options::default());
        assert_same_tree(
            &format!("PAX sparse {version}"),
            &expected,
            &read_back(&image),
        );
    }
}

#[test]
fn convert_to_path_is_all_or_nothing() {
    let work = staging_dir();
    let output = work.path().join("layer.sqfs");
    let tar = TarWriter::new().file("f", FILE, b"content").finish();
    let conversion =
        tarsquash::convert_to_path(&mut &tar[..], &output, &Options::default()).expect("convert");
    assert_eq!(conversion.diff_id, sha256_digest(&tar));
    assert_eq!(
        conversion.image_size,
        std::fs::metadata(&output).expect("output").len()
    );
    assert_same_tree(
        "convert_to_path output",
        &expect(&[
            ("", Node::new(Kind::Dir, 0o755, 0, 0, 0)),
            ("f", FILE.node(Kind::file(b"content"))),
        ]),
        &read_back(&output),
    );
    // Readable like any file the user creates there (0644 less the umask), not 0600.
    let reference = work.path().join("reference");
    File::create(&reference).expect("create");
    let umasked = std::fs::metadata(&reference)
        .expect("reference")
        .permissions()
        .mode()
        & 0o644;
    let mode = std::fs::metadata(&output)
        .expect("output")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, umasked, "mode {mode:o}");
    std::fs::remove_file(&reference).expect("remove");

    // A failed conversion leaves the existing output as it was and no temporary file.
    let before = std::fs::read(&output).expect("output");
    let truncated = tar.get(..700).expect("a cut inside the data");
    let error = tarsquash::convert_to_path(&mut &truncated[..], &output, &Options::default())
        .expect_err("a truncated tar must fail");
    assert!(
        matches!(
            error,
            Error::Truncated { .. } | Error::TruncatedHeaders { .. }
        ),
        "{error:?}"
    );
    assert_eq!(std::fs::read(&output).expect("output"), before);
    assert_eq!(names_in(work.path()), ["layer.sqfs"]);

    // Nor does a failure leave anything when there was no output before.
    let fresh = work.path().join("fresh.sqfs");
    let error =
        tarsquash::convert_to_path(&mut &b"not a tar at all"[..], &fresh, &Options::default())
            .expect_err("garbage must fail");
    assert!(matches!(error, Error::TruncatedHeaders { .. }), "{error:?}");
    assert_eq!(names_in(work.path()), ["layer.sqfs"]);
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|entry| {
            entry
                .expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

fn meta(mode: u32, uid: u64, gid: u64, mtime: u64) -> Meta {
    Meta {
        mode,
        uid,
        gid,
        mtime,
    }
}
