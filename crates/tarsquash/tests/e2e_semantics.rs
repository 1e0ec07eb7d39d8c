//! End to end with hand-written tars for what GNU tar does not write: repeated paths, implicit
//! parents, directories after their children, `/` and `./` prefixes, out-of-range mtimes, PAX
//! overrides, whiteouts. Each image is read back with `sqfs2tar` (and some with a kernel mount)
//! and compared with the tree tar semantics give.

use std::path::PathBuf;

use tar::EntryType;
use tarsquash::{Options, Whiteouts};

use concil_test_support::e2e::*;

/// A converted image in a directory that lives as long as the value.
struct Converted {
    dir: tempfile::TempDir,
    image: PathBuf,
}

fn convert_with(tar: &[u8], options: &Options) -> Converted {
    let dir = staging_dir();
    let image = dir.path().join("image.sqfs");
    convert_bytes(tar, &image, options);
    Converted { dir, image }
}

/// Checks the read-back of `tar`'s image against `expected`. Directories in `implicit` are the
/// ones the tar does not list: they must be 0755 root:root; their mtime is not specified.
fn assert_image(
    context: &str,
    tar: &[u8],
    options: &Options,
    mut expected: Tree,
    implicit: &[&str],
) -> Converted {
    let converted = convert_with(tar, options);
    let got = read_back(&converted.image);
    for path in implicit {
        let mtime = got.nodes.get(&Bytes::from(*path)).map_or(0, |n| n.mtime);
        expected.insert(path, Node::new(Kind::Dir, 0o755, 0, 0, mtime));
    }
    expected.count_links();
    assert_same_tree(context, &expected, &got);
    let _ = &converted.dir;
    converted
}

fn meta(mode: u32, uid: u64, gid: u64, mtime: u64) -> Meta {
    Meta {
        mode,
        uid,
        gid,
        mtime,
    }
}

#[test]
fn later_entry_replaces_earlier() {
    let private = meta(0o600, 1, 2, 1_700_000_100);
    let tar = TarWriter::new()
        // file replaced by file
        .file("a", FILE, b"one")
        .file("a", private, b"two")
        // file replaced by a directory with a child
        .file("x", FILE, b"file")
        .dir("x/", DIR)
        .file("x/y", FILE, b"y")
        // directory with a child replaced by a file: the child goes too
        .dir("d/", DIR)
        .file("d/c", FILE, b"c")
        .file("d", FILE, b"now a file")
        // symlink replaced by a file, file replaced by a symlink
        .symlink("s", LINK, "t")
        .file("s", FILE, b"content")
        .file("f", FILE, b"f")
        .symlink("f", LINK, "target")
        // a replaced hard link target: the other name keeps the old inode
        .file("h1", FILE, b"old")
        .hard_link("h2", "h1")
        .file("h1", FILE, b"new")
        // a file replaced by a hard link to another file: one inode, two names
        .file("r", FILE, b"replaced")
        .file("keep", private, b"kept")
        .hard_link("r", "keep")
        // directory given twice: the second sets the attributes, the children stay
        .dir("e/", DIR)
        .file("e/keep", FILE, b"keep")
        .dir("e/", private)
        .finish();
    let mut expected = Tree::default();
    expected.insert("a", private.node(Kind::file(b"two")));
    expected.insert("x", DIR.node(Kind::Dir));
    expected.insert("x/y", FILE.node(Kind::file(b"y")));
    expected.insert("d", FILE.node(Kind::file(b"now a file")));
    expected.insert("s", FILE.node(Kind::file(b"content")));
    expected.insert("f", LINK.node(Kind::Symlink(Bytes::from("target"))));
    expected.insert("h1", FILE.node(Kind::file(b"new")));
    expected.insert("h2", FILE.node(Kind::file(b"old")));
    expected.insert("keep", private.node(Kind::file(b"kept")));
    expected.hard_link("r", "keep");
    expected.insert("e", private.node(Kind::Dir));
    expected.insert("e/keep", FILE.node(Kind::file(b"keep")));
    assert_image(
        "later entries replace earlier ones",
        &tar,
        &options(0),
        expected,
        &[""],
    );
}

#[test]
fn parents_not_listed_are_created_0755_root() {
    let tar = TarWriter::new()
        .file(
            "p/q/r/file",
            meta(0o600, 1000, 1000, 1_700_000_000),
            b"deep",
        )
        .symlink("s1/s2/link", LINK, "../../p")
        .finish();
    let mut expected = Tree::default();
    expected.insert(
        "p/q/r/file",
        meta(0o600, 1000, 1000, 1_700_000_000).node(Kind::file(b"deep")),
    );
    expected.insert(
        "s1/s2/link",
        LINK.node(Kind::Symlink(Bytes::from("../../p"))),
    );
    let converted = assert_image(
        "implicit parents",
        &tar,
        &options(0),
        expected,
        &["", "p", "p/q", "p/q/r", "s1", "s1/s2"],
    );
    let mount = Mount::new(&converted.image);
    let got = Tree::from_dir(mount.path());
    for path in ["", "p", "p/q", "p/q/r", "s1", "s1/s2"] {
        let node = got.node(path);
        assert_eq!(
            (node.mode, node.uid, node.gid),
            (0o755, 0, 0),
            "kernel stat of implicit {path:?}"
        );
    }
}

#[test]
fn directory_entry_after_its_children_sets_their_parent() {
    let q = meta(0o700, 7, 8, 1234);
    let p = meta(0o750, 5, 6, 4321);
    let root = meta(0o711, 1, 2, 999);
    let tar = TarWriter::new()
        .file("p/q/file", FILE, b"file")
        .file("p/other", FILE, b"other")
        .dir("p/q/", q)
        .dir("p/", p)
        .dir("./", root)
        .finish();
    let mut expected = Tree::default();
    expected.insert("", root.node(Kind::Dir));
    expected.insert("p", p.node(Kind::Dir));
    expected.insert("p/q", q.node(Kind::Dir));
    expected.insert("p/q/file", FILE.node(Kind::file(b"file")));
    expected.insert("p/other", FILE.node(Kind::file(b"other")));
    let converted = assert_image(
        "directories after their children",
        &tar,
        &options(0),
        expected.clone(),
        &[],
    );
    expected.count_links();
    let mount = Mount::new(&converted.image);
    assert_same_tree(
        "kernel mount, directories after children",
        &expected,
        &Tree::from_dir(mount.path()),
    );
}

#[test]
fn leading_slash_and_dot_slash_are_dropped() {
    let root = meta(0o755, 0, 0, 1_700_000_500);
    let tar = TarWriter::new()
        .dir("./", root)
        .dir("/abs/", DIR)
        .file("/abs/f", FILE, b"absolute")
        .file("./rel/f", FILE, b"relative")
        .file("././twice/f", FILE, b"twice")
        .hard_link("./rel/g", "/abs/f")
        .hard_link("/abs/h", "./rel/f")
        // A symlink target is data, kept as written.
        .symlink("/abs/s", LINK, "/an/absolute/target")
        .finish();
    let mut expected = Tree::default();
    expected.insert("", root.node(Kind::Dir));
    expected.insert("abs", DIR.node(Kind::Dir));
    expected.insert("abs/f", FILE.node(Kind::file(b"absolute")));
    expected.insert("rel/f", FILE.node(Kind::file(b"relative")));
    expected.insert("twice/f", FILE.node(Kind::file(b"twice")));
    expected.hard_link("rel/g", "abs/f");
    expected.hard_link("abs/h", "rel/f");
    expected.insert(
        "abs/s",
        LINK.node(Kind::Symlink(Bytes::from("/an/absolute/target"))),
    );
    assert_image(
        "leading / and ./ dropped",
        &tar,
        &options(0),
        expected,
        &["rel", "twice"],
    );
}

#[test]
fn mtimes_beyond_32_bits_are_clamped() {
    let mut writer = TarWriter::new();
    // 11 octal digits, beyond u32.
    writer.file("octal", meta(0o644, 0, 0, 5_000_000_000), b"1");
    // Beyond the octal field: the tar crate writes GNU base-256.
    writer.file("base256", meta(0o644, 0, 0, 1 << 40), b"2");
    writer.dir("dir-octal/", meta(0o755, 0, 0, 4_294_967_296));
    writer.symlink("symlink-octal", meta(0o777, 0, 0, 8_000_000_000), "x");
    writer
        .pax(&[("mtime", b"6000000000.5")])
        .file("pax-large", FILE, b"3");
    writer
        .pax(&[("mtime", b"1700000000.999999999")])
        .file("pax-fraction", FILE, b"4");
    writer.file("max", meta(0o644, 0, 0, u32::MAX as u64), b"5");
    let tar = writer.finish();
    let clamped = u32::MAX as u64;
    let mut expected = Tree::default();
    expected.insert("octal", meta(0o644, 0, 0, clamped).node(Kind::file(b"1")));
    expected.insert("base256", meta(0o644, 0, 0, clamped).node(Kind::file(b"2")));
    expected.insert("dir-octal", meta(0o755, 0, 0, clamped).node(Kind::Dir));
    expected.insert(
        "symlink-octal",
        meta(0o777, 0, 0, clamped).node(Kind::Symlink(Bytes::from("x"))),
    );
    expected.insert(
        "pax-large",
        meta(0o644, 0, 0, clamped).node(Kind::file(b"3")),
    );
    expected.insert(
        "pax-fraction",
        meta(0o644, 0, 0, 1_700_000_000).node(Kind::file(b"4")),
    );
    expected.insert("max", meta(0o644, 0, 0, clamped).node(Kind::file(b"5")));
    let converted = assert_image("mtimes clamped", &tar, &options(0), expected, &[""]);
    let mount = Mount::new(&converted.image);
    let got = Tree::from_dir(mount.path());
    assert_eq!(
        got.node("base256").mtime,
        u32::MAX as i64,
        "kernel stat mtime of base256"
    );
}

#[test]
fn pax_records_override_the_header() {
    let long_path = format!("pax/ünïcödé/{}", "x".repeat(150));
    let long_target = format!("../{}", "y".repeat(200));
    let xattrs: [(&str, &[u8]); 5] = [
        ("SCHILY.xattr.user.a", b"b"),
        ("SCHILY.xattr.user.binary", b"\0\n\xff= value"),
        ("SCHILY.xattr.trusted.overlay.opaque", b"y"),
        ("SCHILY.xattr.trusted.other", b"kept"),
        (
            "SCHILY.xattr.security.selinux",
            b"system_u:object_r:bin_t:s0\0",
        ),
    ];
    let mut writer = TarWriter::new();
    let mut records: Vec<(&str, &[u8])> = vec![
        ("path", long_path.as_bytes()),
        ("uid", b"3000000000"),
        ("gid", b"4000000000"),
        ("mtime", b"1234567890"),
        ("atime", b"1"),
        ("ctime", b"2"),
    ];
    records.extend(xattrs);
    writer.pax(&records).file("short-name", FILE, b"pax file");
    writer
        .pax(&[("linkpath", long_target.as_bytes())])
        .symlink("pax/link", LINK, "short-target");
    writer
        .pax(&[("path", b"pax/hard"), ("linkpath", long_path.as_bytes())])
        .hard_link("h", "t");
    writer
        .pax(&[
            ("SCHILY.xattr.user.dir", b"d"),
            ("SCHILY.xattr.trusted.overlay.redirect", b"/x"),
        ])
        .dir("pax/", DIR);
    // PAX size wins over the header's size field.
    let sized = TarWriter::header(EntryType::Regular, b"pax/sized", b"", FILE, 0);
    writer.pax(&[("size", b"5")]).raw(&sized, b"12345");
    let tar = writer.finish();

    let mut expected = Tree::default();
    let mut node =
        meta(0o644, 3_000_000_000, 4_000_000_000, 1_234_567_890).node(Kind::file(b"pax file"));
    for (key, value) in xattrs
        .iter()
        .filter(|(k, _)| !k.contains("trusted.overlay."))
    {
        node.xattrs.insert(
            Bytes::from(&key["SCHILY.xattr.".len()..]),
            Bytes::from(*value),
        );
    }
    expected.insert(&long_path, node);
    expected.insert(
        "pax/link",
        LINK.node(Kind::Symlink(Bytes::from(long_target.as_str()))),
    );
    expected.hard_link("pax/hard", &long_path);
    let mut dir = DIR.node(Kind::Dir);
    dir.xattrs.insert(Bytes::from("user.dir"), Bytes::from("d"));
    expected.insert("pax", dir);
    expected.insert("pax/sized", FILE.node(Kind::file(b"12345")));
    let converted = assert_image(
        "PAX records",
        &tar,
        &options(0),
        expected,
        &["", "pax/ünïcödé"],
    );
    let mount = Mount::new(&converted.image);
    let attrs = getfattr(&mount.path().join(&long_path));
    assert!(attrs.contains("user.a=\"b\""), "getfattr: {attrs:?}");
    assert!(
        attrs.contains("trusted.other=\"kept\""),
        "getfattr: {attrs:?}"
    );
    assert!(
        !attrs.iter().any(|a| a.starts_with("trusted.overlay.")),
        "getfattr: {attrs:?}"
    );
}

#[test]
fn gnu_long_names_and_link_targets() {
    let long_dir = format!("{}/{}", "d".repeat(120), "e".repeat(130));
    let long_file = format!("{long_dir}/{}", "f".repeat(250));
    let long_target = format!("{}/{}", "t".repeat(250), "u".repeat(250));
    let hard = format!("{}/hard", "h".repeat(200));
    let tar = TarWriter::new()
        .dir(&format!("{long_dir}/"), meta(0o700, 0, 0, 1_700_000_000))
        .file(&long_file, FILE, b"long")
        .symlink("link", LINK, &long_target)
        .hard_link(&hard, &long_file)
        .finish();
    let mut expected = Tree::default();
    expected.insert(&long_dir, meta(0o700, 0, 0, 1_700_000_000).node(Kind::Dir));
    expected.insert(&long_file, FILE.node(Kind::file(b"long")));
    expected.insert(
        "link",
        LINK.node(Kind::Symlink(Bytes::from(long_target.as_str()))),
    );
    expected.hard_link(&hard, &long_file);
    let parent = long_dir.split('/').next().expect("first component");
    let hard_parent = hard.split('/').next().expect("first component");
    assert_image(
        "GNU long names",
        &tar,
        &options(0),
        expected,
        &["", parent, hard_parent],
    );
}

#[test]
fn hard_links_share_one_inode() {
    let data = pseudo_random(7, 200_000, true);
    let tar = TarWriter::new()
        .file("a", meta(0o640, 3, 4, 1_700_000_000), &data)
        .hard_link("b", "a")
        .dir("dir/", DIR)
        .hard_link("dir/c", "b")
        .hard_link("d", "./a")
        .symlink("s", LINK, "a")
        .hard_link("s2", "s")
        .device(EntryType::Char, "dev", FILE, 4, 5)
        .hard_link("dev2", "dev")
        .device(EntryType::Fifo, "p", FILE, 0, 0)
        .hard_link("p2", "p")
        .file("empty", FILE, b"")
        .hard_link("empty2", "empty")
        .finish();
    let mut expected = Tree::default();
    expected.insert(
        "a",
        meta(0o640, 3, 4, 1_700_000_000).node(Kind::file(&data)),
    );
    expected.hard_link("b", "a");
    expected.insert("dir", DIR.node(Kind::Dir));
    expected.hard_link("dir/c", "a");
    expected.hard_link("d", "a");
    expected.insert("s", LINK.node(Kind::Symlink(Bytes::from("a"))));
    expected.hard_link("s2", "s");
    expected.insert("dev", FILE.node(Kind::CharDevice { major: 4, minor: 5 }));
    expected.hard_link("dev2", "dev");
    expected.insert("p", FILE.node(Kind::Fifo));
    expected.hard_link("p2", "p");
    expected.insert("empty", FILE.node(Kind::file(b"")));
    expected.hard_link("empty2", "empty");
    let converted = assert_image("hard links", &tar, &options(0), expected.clone(), &[""]);
    let mount = Mount::new(&converted.image);
    let mut got = Tree::from_dir(mount.path());
    got.nodes.remove(&Bytes::from(""));
    expected.nodes.remove(&Bytes::from(""));
    expected.count_links();
    assert_same_tree(
        "kernel mount, hard links (stat nlink and inode numbers)",
        &expected,
        &got,
    );
}

fn whiteout_tar() -> Vec<u8> {
    let mut writer = TarWriter::new();
    writer
        .file(".wh.gone", meta(0o600, 0, 0, 1_700_000_000), b"")
        .dir("opq/", DIR)
        .file("opq/.wh..wh..opq", FILE, b"")
        .file("opq/x", FILE, b"x")
        .file("sub/.wh.file", FILE, b"");
    // A layer's own overlayfs attributes are dropped in either mode.
    writer
        .pax(&[("SCHILY.xattr.trusted.overlay.opaque", b"y")])
        .dir("evil/", DIR);
    writer.finish()
}

#[test]
fn whiteouts_are_kept_as_files_by_default() {
    assert_eq!(Options::default().whiteouts, Whiteouts::Keep);
    let mut expected = Tree::default();
    expected.insert(
        ".wh.gone",
        meta(0o600, 0, 0, 1_700_000_000).node(Kind::file(b"")),
    );
    expected.insert("opq", DIR.node(Kind::Dir));
    expected.insert("opq/.wh..wh..opq", FILE.node(Kind::file(b"")));
    expected.insert("opq/x", FILE.node(Kind::file(b"x")));
    expected.insert("sub/.wh.file", FILE.node(Kind::file(b"")));
    expected.insert("evil", DIR.node(Kind::Dir));
    assert_image(
        "whiteouts kept",
        &whiteout_tar(),
        &Options::default(),
        expected,
        &["", "sub"],
    );
}

#[test]
fn overlay_whiteouts_become_char_devices_and_opaque_xattrs() {
    let options = Options {
        whiteouts: Whiteouts::Overlay,
        ..Options::default()
    };
    let converted = convert_with(&whiteout_tar(), &options);
    let got = read_back(&converted.image);
    let mut expected = Tree::default();
    // A whiteout is a 0:0 character device; its other attributes are not specified.
    for path in ["gone", "sub/file"] {
        let mut node = got
            .nodes
            .get(&Bytes::from(path))
            .cloned()
            .unwrap_or_else(|| FILE.node(Kind::Fifo));
        node.kind = Kind::CharDevice { major: 0, minor: 0 };
        expected.insert(path, node);
    }
    let mut opq = DIR.node(Kind::Dir);
    opq.xattrs
        .insert(Bytes::from("trusted.overlay.opaque"), Bytes::from("y"));
    expected.insert("opq", opq);
    expected.insert("opq/x", FILE.node(Kind::file(b"x")));
    expected.insert("evil", DIR.node(Kind::Dir));
    for (path, mtime) in [("", 0), ("sub", 0)] {
        let mtime = got.nodes.get(&Bytes::from(path)).map_or(mtime, |n| n.mtime);
        expected.insert(path, Node::new(Kind::Dir, 0o755, 0, 0, mtime));
    }
    expected.count_links();
    assert_same_tree("overlay whiteouts", &expected, &got);

    let mount = Mount::new(&converted.image);
    let attrs = getfattr(&mount.path().join("opq"));
    assert!(
        attrs.contains("trusted.overlay.opaque=\"y\""),
        "getfattr -d -m - opq: {attrs:?}"
    );
    assert!(
        getfattr(&mount.path().join("evil")).is_empty(),
        "evil/ kept a layer's trusted.overlay xattr"
    );
    let md = std::fs::symlink_metadata(mount.path().join("gone")).expect("stat gone");
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    assert!(
        md.file_type().is_char_device() && md.rdev() == 0,
        "gone: {md:?}"
    );
}

#[test]
fn diff_id_covers_the_whole_stream() {
    let mut tar = TarWriter::new().file("f", FILE, b"data").finish();
    // Zero padding after the end-of-archive blocks (GNU tar pads to 10 KiB records) is part of
    // the layer's bytes and of its digest.
    tar.resize(tar.len() + (1 << 20), 0);
    let converted = convert_with(&tar, &options(0));
    let mut expected = Tree::default();
    expected.insert("f", FILE.node(Kind::file(b"data")));
    let mut got = read_back(&converted.image);
    got.nodes.remove(&Bytes::from(""));
    expected.count_links();
    assert_same_tree("padded tar", &expected, &got);
}

#[test]
fn symlink_targets_outside_the_root_are_data() {
    let tar = TarWriter::new()
        .symlink("up", LINK, "../../../etc/passwd")
        .symlink("abs", LINK, "/etc/shadow")
        .finish();
    let mut expected = Tree::default();
    expected.insert(
        "up",
        LINK.node(Kind::Symlink(Bytes::from("../../../etc/passwd"))),
    );
    expected.insert("abs", LINK.node(Kind::Symlink(Bytes::from("/etc/shadow"))));
    assert_image(
        "symlinks pointing outside",
        &tar,
        &options(0),
        expected,
        &[""],
    );
}

#[test]
fn empty_tar_gives_an_image_with_only_the_root() {
    let tar = TarWriter::new().finish();
    let converted = assert_image("empty tar", &tar, &options(0), Tree::default(), &[""]);
    let mount = Mount::new(&converted.image);
    assert_eq!(
        std::fs::read_dir(mount.path()).expect("read_dir").count(),
        0
    );
}
