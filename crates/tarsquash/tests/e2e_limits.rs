//! End to end at the format's limits, where squashfs splits its structures: directories with
//! thousands of entries (several directory headers and an index), more than 65536 inodes,
//! hard links whose inode numbers lie far apart (the 16-bit offsets in directory entries),
//! thousands of distinct ids (several id table blocks), xattr values and symlink targets longer
//! than a metadata block, names of 255 bytes, files over 4 GiB. Read back with `sqfs2tar` and
//! a kernel mount (whose lookups use the directory index).
//!
//! And the limits a caller sets on one layer ([`tarsquash::Limits`]): a layer just at a limit
//! converts, one byte or one entry more fails with the error naming the limit, leaving no file.

use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;

use tar::EntryType;
use tarsquash::{Error, Limits};

use concil_test_support::e2e::*;

/// Converts, then compares `expected` (root excluded) with `sqfs2tar` and the kernel.
fn assert_round_trip(context: &str, tar: &[u8], mut expected: Tree) {
    let dir = staging_dir();
    let image = dir.path().join("image.sqfs");
    convert_bytes(tar, &image, &options(0));
    expected.count_links();
    let mut got = read_back(&image);
    got.nodes.remove(&Bytes::from(""));
    assert_same_tree(&format!("{context}: sqfs2tar read-back"), &expected, &got);
    let mount = Mount::new(&image);
    let mut got = Tree::from_dir(mount.path());
    got.nodes.remove(&Bytes::from(""));
    assert_same_tree(&format!("{context}: kernel mount"), &expected, &got);
}

#[test]
fn directory_with_thousands_of_entries() {
    let mut writer = TarWriter::new();
    let mut expected = Tree::default();
    writer.dir("big/", DIR);
    expected.insert("big", DIR.node(Kind::Dir));
    for i in 0..4000u32 {
        // Names of many lengths, written in an order unlike the sorted one (7919 is prime, so
        // the numbers are a permutation of 0..4000).
        let path = format!(
            "big/{:04}-{}",
            (i * 7919) % 4000,
            "n".repeat(i as usize % 240)
        );
        writer.file(&path, FILE, &i.to_le_bytes());
        expected.insert(&path, FILE.node(Kind::file(&i.to_le_bytes())));
    }
    let max_name = format!("big/{}", "m".repeat(255));
    writer.file(&max_name, FILE, b"255");
    expected.insert(&max_name, FILE.node(Kind::file(b"255")));
    assert_round_trip("4000 entries in one directory", &writer.finish(), expected);
}

#[test]
fn more_than_65536_inodes_and_hard_links_far_apart() {
    let mut writer = TarWriter::new();
    let mut expected = Tree::default();
    writer.dir("a/", DIR).file("a/target", FILE, b"target");
    expected.insert("a", DIR.node(Kind::Dir));
    expected.insert("a/target", FILE.node(Kind::file(b"target")));
    // 70,000 inodes between the target and the directory that links to it.
    for d in 0..70 {
        let dir = format!("b/{d:02}");
        writer.dir(&format!("{dir}/"), DIR);
        expected.insert(&dir, DIR.node(Kind::Dir));
        for f in 0..1000 {
            let path = format!("{dir}/{f:03}");
            writer.file(&path, FILE, b"");
            expected.insert(&path, FILE.node(Kind::file(b"")));
        }
    }
    writer.dir("b/", DIR);
    expected.insert("b", DIR.node(Kind::Dir));
    writer
        .dir("z/", DIR)
        .file("z/after", FILE, b"after")
        .hard_link("z/link", "a/target");
    writer.hard_link("z/link-to-middle", "b/35/500");
    expected.insert("z", DIR.node(Kind::Dir));
    expected.insert("z/after", FILE.node(Kind::file(b"after")));
    expected.hard_link("z/link", "a/target");
    expected.hard_link("z/link-to-middle", "b/35/500");
    assert_round_trip("70k inodes, distant hard links", &writer.finish(), expected);
}

#[test]
fn thousands_of_distinct_ids() {
    let mut writer = TarWriter::new();
    let mut expected = Tree::default();
    // 2 × 3000 ids: the id table (4 bytes an id, 8 KiB metadata blocks) needs several blocks.
    for i in 0..3000u64 {
        let meta = Meta {
            uid: 1000 + i * 3,
            gid: 5_000_000 + i * 7,
            ..FILE
        };
        let path = format!("ids/{i:04}");
        writer.file(&path, meta, b"");
        expected.insert(&path, meta.node(Kind::file(b"")));
    }
    // Implicit parent.
    expected.insert("ids", Node::new(Kind::Dir, 0o755, 0, 0, 0));
    let dir = staging_dir();
    let image = dir.path().join("image.sqfs");
    let tar = writer.finish();
    convert_bytes(&tar, &image, &options(0));
    let mut got = read_back(&image);
    got.nodes.remove(&Bytes::from(""));
    if let (Some(want), Some(have)) = (
        expected.nodes.get_mut(&Bytes::from("ids")),
        got.nodes.get(&Bytes::from("ids")),
    ) {
        want.mtime = have.mtime;
    }
    expected.count_links();
    assert_same_tree("6000 distinct ids", &expected, &got);
    let superblock = run_text(
        std::process::Command::new("unsquashfs")
            .arg("-s")
            .arg(&image),
    );
    assert!(
        superblock.contains("Number of ids 6001"),
        "unsquashfs -s:\n{superblock}"
    );
}

#[test]
fn long_xattr_values_many_xattrs_and_long_symlink_targets() {
    let mut writer = TarWriter::new();
    let mut expected = Tree::default();
    let big_value = pseudo_random(3, 30_000, true);
    let mut records: Vec<(String, Vec<u8>)> =
        vec![("SCHILY.xattr.user.big".into(), big_value.clone())];
    for i in 0..300 {
        records.push((
            format!("SCHILY.xattr.user.attribute-{i:03}"),
            format!("value {i}").into_bytes(),
        ));
    }
    let borrowed: Vec<(&str, &[u8])> = records
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_slice()))
        .collect();
    writer.pax(&borrowed).file("xattrs", FILE, b"x");
    let mut node = FILE.node(Kind::file(b"x"));
    for (key, value) in &records {
        node.xattrs.insert(
            Bytes::from(&key["SCHILY.xattr.".len()..]),
            Bytes(value.clone()),
        );
    }
    expected.insert("xattrs", node);
    // The longest target Linux reads back (PATH_MAX - 1), across metadata blocks.
    let target: String = (0..4095)
        .map(|i| if i % 50 == 49 { '/' } else { 't' })
        .collect();
    writer.symlink("long-link", LINK, &target);
    expected.insert(
        "long-link",
        LINK.node(Kind::Symlink(Bytes::from(target.as_str()))),
    );
    // Deep nesting: 100 levels.
    let deep = (0..100).map(|i| format!("d{i}")).collect::<Vec<_>>();
    for level in 1..=deep.len() {
        let path = deep[..level].join("/");
        writer.dir(&format!("{path}/"), DIR);
        expected.insert(&path, DIR.node(Kind::Dir));
    }
    let deep_file = format!("{}/file", deep.join("/"));
    writer.file(&deep_file, FILE, b"deep");
    expected.insert(&deep_file, FILE.node(Kind::file(b"deep")));
    assert_round_trip("long xattrs and targets", &writer.finish(), expected);
}

/// A sparse file of 5 GiB: a 64-bit file size, more than 2^15 blocks; its data regions at the
/// start, across the 4 GiB mark and at the end.
#[test]
fn file_over_4_gib() {
    const SIZE: u64 = 5 << 30;
    let regions: [(u64, &[u8]); 3] = [
        (0, b"start"),
        ((4 << 30) - 2, b"across 4 GiB"),
        (SIZE - 3, b"end"),
    ];
    let mut writer = TarWriter::new();
    // GNU sparse: the map in the header, then the data of each region, each padded to 512
    // bytes as GNU tar stores them (but the last).
    let mut header = TarWriter::header(EntryType::GNUSparse, b"huge", b"", FILE, 0);
    let gnu = header.as_gnu_mut().expect("GNU header");
    let mut stored = Vec::new();
    for (i, (slot, (offset, data))) in gnu.sparse.iter_mut().zip(regions).enumerate() {
        let mut region = data.to_vec();
        if i + 1 < regions.len() {
            region.resize(512, 0);
        }
        slot.set_offset(offset);
        slot.set_length(region.len() as u64);
        stored.extend_from_slice(&region);
    }
    gnu.set_real_size(SIZE);
    header.set_size(stored.len() as u64);
    header.set_cksum();
    writer.raw(&header, &stored);
    let tar = writer.finish();

    let dir = staging_dir();
    let image = dir.path().join("image.sqfs");
    convert_bytes(&tar, &image, &options(0));
    let image_len = std::fs::metadata(&image).expect("image").len();
    assert!(image_len < 1 << 20, "5 GiB of zeros took {image_len} bytes");
    let mount = Mount::new(&image);
    let path = mount.path().join("huge");
    assert_eq!(std::fs::metadata(&path).expect("stat").size(), SIZE);
    let mut file = std::fs::File::open(&path).expect("open");
    for (offset, data) in regions {
        // The region with a zero byte either side (where the file has one).
        let start = offset.saturating_sub(1);
        let end = (offset + data.len() as u64 + 1).min(SIZE);
        let mut want = vec![0u8; (end - start) as usize];
        want[(offset - start) as usize..][..data.len()].copy_from_slice(data);
        let mut got = vec![0u8; want.len()];
        file.seek(SeekFrom::Start(start)).expect("seek");
        file.read_exact(&mut got).expect("read");
        assert_eq!(got, want, "bytes {start}..{end}");
    }
}

/// Converts `input` with `convert_to_path` under `limits`; checks that a failed conversion
/// leaves nothing in the output directory.
fn convert_limited(input: &mut dyn Read, limits: Limits) -> Result<tarsquash::Conversion, Error> {
    let dir = staging_dir();
    let output = dir.path().join("layer.sqfs");
    let options = tarsquash::Options {
        limits,
        ..options(2)
    };
    let result = tarsquash::convert_to_path(input, &output, &options);
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .expect("read_dir")
        .map(|e| e.expect("read_dir entry").file_name())
        .collect();
    match &result {
        Ok(_) => assert_eq!(left.len(), 1, "{left:?}"),
        Err(error) => assert!(left.is_empty(), "{error} left {left:?} behind"),
    }
    result
}

fn bytes_limit(max_tar_bytes: u64) -> Limits {
    Limits {
        max_tar_bytes,
        ..Limits::default()
    }
}

fn entries_limit(max_entries: u64) -> Limits {
    Limits {
        max_entries,
        ..Limits::default()
    }
}

/// Three files; the second has 2000 bytes of data, which start at byte 1024.
fn three_files() -> Vec<u8> {
    TarWriter::new()
        .file("first", FILE, b"")
        .file("second", FILE, &[7u8; 2000])
        .file("third", FILE, b"3")
        .finish()
}

#[test]
fn a_tar_at_the_byte_limit_converts_and_one_byte_more_fails() {
    let mut tar = three_files();
    let len = tar.len() as u64;
    let conversion = convert_limited(&mut &tar[..], bytes_limit(len)).expect("at the limit");
    assert_eq!(conversion.tar_size, len);

    // The byte after the end-of-archive blocks still counts: the diff_id covers it.
    tar.push(0);
    match convert_limited(&mut &tar[..], bytes_limit(len)) {
        Err(Error::TarTooLarge { limit, entry }) => {
            assert_eq!((limit, entry.as_deref()), (len, Some("third")));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_byte_limit_names_the_entry_it_is_reached_in() {
    let tar = three_files();
    // In the data of "second", in the headers before the first entry, after "second".
    for (limit, at) in [(2000, Some("second")), (100, None), (3100, Some("second"))] {
        let error = convert_limited(&mut &tar[..], bytes_limit(limit)).unwrap_err();
        match &error {
            Error::TarTooLarge {
                limit: reported,
                entry,
            } => assert_eq!((*reported, entry.as_deref()), (limit, at), "{error}"),
            other => panic!("limit {limit}: {other:?}"),
        }
    }
    let error = convert_limited(&mut &tar[..], bytes_limit(2000)).unwrap_err();
    assert_eq!(
        error.to_string(),
        "the uncompressed tar is larger than the limit of 2000 bytes (max_tar_bytes), \
         exceeded at entry \"second\""
    );
}

/// What the limit is for: a small compressed layer that would unpack to far more.
#[test]
fn the_byte_limit_counts_uncompressed_bytes() {
    let mut writer = TarWriter::new();
    let zeros = vec![0u8; 64 << 20];
    writer.file("zeros", FILE, &zeros);
    let tar = writer.finish();
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gzip.write_all(&tar).expect("gzip");
    let gzip = gzip.finish().expect("gzip");
    assert!(gzip.len() < 1 << 20, "{} bytes of gzip", gzip.len());
    let (_, mut decoder) =
        tarsquash::decode::Compression::detect_decoder(&gzip[..]).expect("gzip magic");
    match convert_limited(&mut decoder, bytes_limit(16 << 20)) {
        Err(Error::TarTooLarge { limit, entry }) => {
            assert_eq!((limit, entry.as_deref()), (16 << 20, Some("zeros")));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_tar_at_the_entry_limit_converts_and_one_entry_more_fails() {
    // Five entries: a PAX header and a GNU long name belong to the entry they precede; a
    // global PAX header is an entry of its own.
    let long = format!("dir/{}", "l".repeat(150));
    let mut writer = TarWriter::new();
    writer
        .dir("dir/", DIR)
        .pax(&[("path", b"dir/pax-named")])
        .file("PaxHeaders/x", FILE, b"pax")
        .file(&long, FILE, b"long");
    let global = TarWriter::header(EntryType::XGlobalHeader, b"global", b"", FILE, 0);
    writer
        .raw(&global, b"")
        .hard_link("dir/link", "dir/pax-named");
    let tar = writer.finish();
    convert_limited(&mut &tar[..], entries_limit(5)).expect("at the limit");

    let error = convert_limited(&mut &tar[..], entries_limit(4)).unwrap_err();
    match &error {
        Error::TooManyEntries { limit, entry } => {
            assert_eq!((*limit, entry.as_str()), (4, "dir/link"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        error.to_string(),
        "the tar has more entries than the limit of 4 (max_entries); \"dir/link\" is one too many"
    );
    let error = convert_limited(&mut &tar[..], entries_limit(2)).unwrap_err();
    assert!(
        matches!(&error, Error::TooManyEntries { limit: 2, entry } if *entry == long),
        "{error:?}"
    );
    let error = convert_limited(&mut &tar[..], entries_limit(0)).unwrap_err();
    assert!(
        matches!(&error, Error::TooManyEntries { limit: 0, entry } if entry == "dir/"),
        "{error:?}"
    );
}

#[test]
fn default_limits_are_generous() {
    let limits = Limits::default();
    assert_eq!(limits.max_tar_bytes, 256 << 30);
    assert_eq!(limits.max_entries, 20_000_000);
}

/// A sparse file's holes count against the byte limit (the image holds them as data): GNU
/// tar's sparse formats, old GNU and PAX 1.0, of a 64 MiB file with one byte of data, fail
/// with a 16 MiB limit and convert with 65 MiB.
#[test]
fn sparse_holes_count_against_the_byte_limit() {
    let dir = staging_dir();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).expect("root");
    let file = std::fs::File::create(root.join("holes")).expect("sparse file");
    file.set_len(64 << 20).expect("64 MiB of hole");
    (&file).write_all(b"x").expect("one byte of data");
    for format in ["gnu", "posix"] {
        let tar = std::process::Command::new("tar")
            .args(["--sparse", &format!("--format={format}"), "-cf", "-", "-C"])
            .arg(&root)
            .arg("holes")
            .output()
            .expect("run tar");
        assert!(tar.status.success(), "tar --format={format}");
        assert!(
            tar.stdout.len() < 1 << 20,
            "{format}: {} bytes of tar",
            tar.stdout.len()
        );
        let error = convert_limited(&mut tar.stdout.as_slice(), bytes_limit(16 << 20))
            .expect_err("64 MiB of holes over a 16 MiB limit");
        assert!(
            matches!(&error, Error::TarTooLarge { limit, .. } if *limit == 16 << 20),
            "{format}: {error}"
        );
        convert_limited(&mut tar.stdout.as_slice(), bytes_limit(65 << 20))
            .unwrap_or_else(|error| panic!("{format} within the limit: {error}"));
    }
}
