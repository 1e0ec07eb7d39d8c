//! End to end with real tars: a staged directory tree with every kind of entry, tarred by GNU
//! tar in ustar, GNU and PAX formats (and GNU/PAX sparse), converted, then read back with
//! `sqfs2tar`, `rdsquashfs`, `unsquashfs` and a kernel mount, and compared with the directory.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Command;

use concil_test_support::e2e::*;

const MTIME_BASE: i64 = 1_600_000_000;
/// Beyond 32 bits but within ustar's 11 octal digits.
const MTIME_FUTURE: i64 = 5_000_000_000;
/// Beyond ustar's octal field: GNU tar writes it as a PAX record or in base 256.
const MTIME_FAR_FUTURE: i64 = 10_000_000_000;
const LONG_DIR: &str =
    "a-directory-name-of-eighty-characters-to-make-the-full-path-exceed-every-limit-x";

fn mknod(path: &Path, args: &[&str]) {
    run(Command::new("mknod").arg(path).args(args));
}

fn set_mtime(path: &Path, seconds: i64) {
    let c_path = CString::new(path.as_os_str().as_bytes()).expect("path");
    let times = [
        libc::timespec {
            tv_sec: seconds,
            tv_nsec: 0,
        },
        libc::timespec {
            tv_sec: seconds,
            tv_nsec: 0,
        },
    ];
    // SAFETY: a valid C string and two timespecs, as utimensat expects.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c_path.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    assert_eq!(
        rc,
        0,
        "utimensat {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
}

fn symlink(target: &str, path: &Path) {
    std::os::unix::fs::symlink(target, path)
        .unwrap_or_else(|e| panic!("symlink {}: {e}", path.display()));
}

fn hard_link(from: &Path, to: &Path) {
    std::fs::hard_link(from, to).unwrap_or_else(|e| panic!("link {}: {e}", to.display()));
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

fn chown(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).expect("lchown");
}

fn setfattr(path: &Path, name: &str, value: &str) {
    run(Command::new("setfattr")
        .args(["-h", "-n", name, "-v", value])
        .arg(path));
}

/// Stages `root/short` (everything ustar can hold), `root/long` (names, targets and numbers
/// only GNU and PAX can hold) and `root/xattr` (extended attributes, PAX only).
fn stage(root: &Path) {
    let short = root.join("short");
    write_file(&short.join("hello.txt"), b"hello\n");
    write_file(&short.join("copy-of-hello"), b"hello\n");
    write_file(&short.join("empty"), b"");
    write_file(&short.join("setuid"), b"#!/bin/sh\n");
    write_file(&short.join("setgid"), b"setgid\n");
    write_file(&short.join("no-permissions"), b"secret\n");
    write_file(&short.join("one-block"), &pseudo_random(1, 131_072, true));
    write_file(
        &short.join("block-plus-one"),
        &pseudo_random(2, 131_073, false),
    );
    write_file(
        &short.join("three-blocks"),
        &pseudo_random(3, 3 * 131_072, false),
    );
    let mut big = pseudo_random(4, 2 * 1024 * 1024, true);
    big.extend(pseudo_random(5, 1024 * 1024 + 1234, false));
    write_file(&short.join("big"), &big);
    write_file(&short.join("copy-of-big"), &big);
    write_file(&short.join("zeros-1m"), &vec![0; 1024 * 1024]);
    write_file(&short.join("zeros-odd"), &vec![0; 200_001]);
    write_file(&short.join("links/a"), &pseudo_random(6, 200_000, true));
    std::fs::create_dir_all(short.join("other")).expect("mkdir");
    hard_link(&short.join("links/a"), &short.join("links/b"));
    hard_link(&short.join("links/a"), &short.join("other/c"));
    symlink("hello.txt", &short.join("symlink-relative"));
    symlink("/etc/passwd", &short.join("symlink-absolute"));
    symlink("no/such/file", &short.join("symlink-dangling"));
    symlink("links", &short.join("symlink-to-dir"));
    // `ln -P`: a second name of the symlink itself.
    hard_link(
        &short.join("symlink-relative"),
        &short.join("symlink-hard-link"),
    );
    std::fs::create_dir_all(short.join("dev")).expect("mkdir");
    mknod(&short.join("dev/null"), &["c", "1", "3"]);
    mknod(&short.join("dev/loop0"), &["b", "7", "0"]);
    mknod(&short.join("dev/large"), &["c", "300", "70000"]);
    mknod(&short.join("dev/fifo"), &["p"]);
    std::fs::create_dir_all(short.join("sticky")).expect("mkdir");
    write_file(&short.join("setgid-dir/inside"), b"inside\n");
    write_file(&short.join("future"), b"from the future\n");
    write_file(&short.join("ünïcödé 文件 name=with spaces"), b"utf-8\n");
    // 60 + 60 + 60 characters: over ustar's 100-byte name, within its 155-byte prefix.
    let sixty = "p".repeat(60);
    write_file(
        &short.join(&sixty).join("q".repeat(60)).join("r".repeat(60)),
        b"prefix\n",
    );
    // OCI whiteouts, kept as plain files by default.
    write_file(&short.join(".wh.removed"), b"");
    write_file(&short.join("opaque/.wh..wh..opq"), b"");
    write_file(&short.join("opaque/kept"), b"kept\n");

    let long = root.join("long");
    let long_dir = long.join(LONG_DIR).join(LONG_DIR).join(LONG_DIR);
    let long_name = format!("{}.txt", "n".repeat(200));
    write_file(&long_dir.join(&long_name), b"a long name\n");
    hard_link(
        &long_dir.join(&long_name),
        &long_dir.join(format!("{}.hard-link", "h".repeat(200))),
    );
    symlink(
        &format!("{}/{}", "t".repeat(150), "u".repeat(150)),
        &long.join("symlink-long-target"),
    );
    write_file(&long.join("big-ids"), b"ids\n");
    write_file(&long.join("far-future"), b"far\n");

    let xattr = root.join("xattr");
    write_file(&xattr.join("file"), b"with attributes\n");
    setfattr(&xattr.join("file"), "user.comment", "hello");
    setfattr(&xattr.join("file"), "user.binary", "0x00ff0a41");
    setfattr(&xattr.join("file"), "trusted.kept", "t");
    setfattr(&xattr.join("file"), "security.e2e", "s");
    setfattr(&xattr.join("file"), "user.long", &"v".repeat(1000));
    std::fs::create_dir_all(xattr.join("dir")).expect("mkdir");
    setfattr(&xattr.join("dir"), "user.dir", "d");
    // A layer must not inject overlayfs attributes: these are dropped.
    setfattr(&xattr.join("dir"), "trusted.overlay.opaque", "y");
    setfattr(&xattr.join("dir"), "trusted.overlay.redirect", "/elsewhere");
    write_file(&xattr.join("hard-1"), b"linked with attributes\n");
    setfattr(&xattr.join("hard-1"), "user.linked", "yes");
    hard_link(&xattr.join("hard-1"), &xattr.join("hard-2"));
    write_file(&xattr.join("many"), b"many\n");
    for i in 0..20 {
        setfattr(
            &xattr.join("many"),
            &format!("user.attribute-{i:02}"),
            &format!("value {i}"),
        );
    }
    for name in ["shared-1", "shared-2"] {
        write_file(&xattr.join(name), name.as_bytes());
        setfattr(&xattr.join(name), "user.same", "same set on two files");
    }

    // Ownership and modes, then every mtime last (creating entries changes directory mtimes).
    chown(&short.join("hello.txt"), 1000, 1000);
    chown(&short.join("other"), 1000, 100);
    chown(&short.join("symlink-dangling"), 65534, 65534);
    chown(&short.join("dev/fifo"), 33, 44);
    chown(&long.join("big-ids"), 3_000_000, 4_000_000_000);
    chmod(&short.join("empty"), 0o600);
    chmod(&short.join("setuid"), 0o4755);
    chmod(&short.join("setgid"), 0o2711);
    chmod(&short.join("no-permissions"), 0o000);
    chmod(&short.join("sticky"), 0o1777);
    chmod(&short.join("setgid-dir"), 0o2775);
    chmod(&short.join("dev/fifo"), 0o620);
    chmod(&short.join("links/a"), 0o640);
    chmod(root, 0o755);
    let staged = Tree::from_dir(root);
    for (i, path) in staged.nodes.keys().enumerate() {
        set_mtime(
            &root.join(Path::new(std::ffi::OsStr::from_bytes(&path.0))),
            MTIME_BASE + 1000 * i as i64,
        );
    }
    set_mtime(&short.join("future"), MTIME_FUTURE);
    set_mtime(&long.join("far-future"), MTIME_FAR_FUTURE);
}

/// What the image must hold for a staged tree: trusted.overlay.* dropped, mtimes clamped.
fn expected_image(staged: &Tree) -> Tree {
    let mut expected = staged.clone();
    expected.drop_xattrs("trusted.overlay.");
    expected.clamp_mtimes();
    expected
}

fn gnu_tar(args: &[&str], dir: &Path, out: &Path) {
    run(Command::new("tar")
        .args(args)
        .arg("--numeric-owner")
        .arg("-C")
        .arg(dir)
        .arg("-cf")
        .arg(out)
        .arg("."));
}

#[test]
fn pax_tar_with_every_kind_of_entry_round_trips() {
    let work = staging_dir();
    let src = work.path().join("src");
    stage(&src);
    let tar = work.path().join("pax.tar");
    gnu_tar(
        &["--format=pax", "--xattrs", "--xattrs-include=*"],
        &src,
        &tar,
    );
    let image = work.path().join("pax.sqfs");
    let conversion = convert_file(&tar, &image, &options(0));
    assert_eq!(conversion.diff_id, sha256sum(&tar));
    assert_superblock(&image, 10, 131_072);

    let staged = Tree::from_dir(&src);
    let expected = expected_image(&staged);
    // The staged tree really has what the test is about.
    assert_eq!(staged.node("long/far-future").mtime, MTIME_FAR_FUTURE);
    assert!(staged
        .node("xattr/dir")
        .xattrs
        .contains_key(&Bytes::from("trusted.overlay.opaque")));
    assert_eq!(expected.node("short/links/a").nlink, 3);

    assert_same_tree(
        "sqfs2tar read-back of the PAX tar's image",
        &expected,
        &read_back(&image),
    );

    let mount = Mount::new(&image);
    assert_same_tree(
        "kernel mount of the PAX tar's image",
        &expected,
        &Tree::from_dir(mount.path()),
    );
    for path in [
        "xattr/file",
        "xattr/hard-2",
        "xattr/many",
        "short/hello.txt",
    ] {
        assert_eq!(
            getfattr(&mount.path().join(path)),
            getfattr(&src.join(path)),
            "getfattr -d -m - {path}"
        );
    }
    let mut dir_attrs = getfattr(&src.join("xattr/dir"));
    dir_attrs.retain(|line| !line.starts_with("trusted.overlay."));
    assert_eq!(
        getfattr(&mount.path().join("xattr/dir")),
        dir_attrs,
        "getfattr -d -m - xattr/dir"
    );

    let stat = run_text(
        Command::new("rdsquashfs")
            .args(["-s", "/short/links/b"])
            .arg(&image),
    );
    assert!(
        stat.contains("Hard link count: 3"),
        "rdsquashfs -s /short/links/b:\n{stat}"
    );
    let listing = run_text(Command::new("rdsquashfs").args(["-l", "/"]).arg(&image));
    let names: Vec<&str> = listing
        .lines()
        .filter_map(|l| l.split(' ').next_back())
        .collect();
    assert_eq!(
        names,
        ["long", "short", "xattr"],
        "rdsquashfs -l /:\n{listing}"
    );
    let lls = run_text(Command::new("unsquashfs").arg("-lls").arg(&image));
    for path in expected.nodes.keys().filter(|p| !p.0.is_empty()) {
        let name = format!("squashfs-root/{}", String::from_utf8_lossy(&path.0));
        assert!(
            lls.lines()
                .any(|l| l.ends_with(&name) || l.contains(&format!("{name} -> "))),
            "unsquashfs -lls does not list {name}"
        );
    }
}

#[test]
fn gnu_tar_with_long_names_round_trips() {
    let work = staging_dir();
    let src = work.path().join("src");
    stage(&src);
    let tar = work.path().join("gnu.tar");
    gnu_tar(&["--format=gnu"], &src, &tar);
    let image = work.path().join("gnu.sqfs");
    convert_file(&tar, &image, &options(2));
    let mut expected = expected_image(&Tree::from_dir(&src));
    // The GNU format has no extended attributes.
    expected.drop_xattrs("");
    assert_same_tree(
        "sqfs2tar read-back of the GNU tar's image",
        &expected,
        &read_back(&image),
    );
}

#[test]
fn ustar_tar_round_trips() {
    let work = staging_dir();
    let src = work.path().join("src");
    stage(&src);
    let tar = work.path().join("ustar.tar");
    let short = src.join("short");
    gnu_tar(&["--format=ustar"], &short, &tar);
    let image = work.path().join("ustar.sqfs");
    convert_file(&tar, &image, &options(1));
    let expected = expected_image(&Tree::from_dir(&short));
    assert_same_tree(
        "sqfs2tar read-back of the ustar tar's image",
        &expected,
        &read_back(&image),
    );
    let mount = Mount::new(&image);
    assert_same_tree(
        "kernel mount of the ustar tar's image",
        &expected,
        &Tree::from_dir(mount.path()),
    );
}

/// Sparse files: data regions at odd offsets, more regions than a GNU header holds, a hole at
/// the end, a file that is all hole.
fn stage_sparse(root: &Path) {
    use std::io::{Seek, SeekFrom, Write};
    // (name, size, data regions as (offset, length)); many-regions gets 30 regions below.
    type Layout = (&'static str, u64, &'static [(u64, usize)]);
    let layouts: [Layout; 5] = [
        (
            "three-regions",
            1 << 20,
            &[(0, 5000), (300_000, 70_000), (900_000, 1)],
        ),
        ("many-regions", 4 << 20, &[]),
        ("hole-at-end", 1 << 20, &[(0, 10_000)]),
        ("all-hole", 5 << 20, &[]),
        (
            "across-a-block-boundary",
            600_000,
            &[(131_071, 3), (262_143, 2)],
        ),
    ];
    std::fs::create_dir_all(root).expect("mkdir");
    for (i, (name, size, regions)) in layouts.iter().enumerate() {
        let mut file = std::fs::File::create(root.join(name)).expect("create");
        file.set_len(*size).expect("truncate");
        let many: Vec<(u64, usize)> = (0..30).map(|r| (r * 140_000 + 777, 4000)).collect();
        let regions = if *name == "many-regions" {
            &many[..]
        } else {
            regions
        };
        for (j, (offset, len)) in regions.iter().enumerate() {
            file.seek(SeekFrom::Start(*offset)).expect("seek");
            file.write_all(&pseudo_random((i * 100 + j) as u64, *len, false))
                .expect("write");
        }
    }
    set_mtime(root, MTIME_BASE);
}

#[test]
fn gnu_sparse_files_round_trip() {
    let work = staging_dir();
    let src = work.path().join("src");
    stage_sparse(&src);
    let expected = Tree::from_dir(&src);
    let tar = work.path().join("sparse.tar");
    gnu_tar(&["--format=gnu", "--sparse"], &src, &tar);
    // GNU tar really wrote sparse ('S') entries, including extended sparse headers.
    let mut archive = tar::Archive::new(std::fs::File::open(&tar).expect("open"));
    let sparse_entries = archive
        .entries()
        .expect("entries")
        .filter(|e| {
            e.as_ref()
                .map(|e| e.header().entry_type() == tar::EntryType::GNUSparse)
                .unwrap_or(false)
        })
        .count();
    assert_eq!(sparse_entries, 5, "sparse entries in {}", tar.display());

    let image = work.path().join("sparse.sqfs");
    convert_file(&tar, &image, &options(0));
    assert_same_tree(
        "sqfs2tar read-back of GNU sparse files",
        &expected,
        &read_back(&image),
    );
    let mount = Mount::new(&image);
    assert_same_tree(
        "kernel mount of GNU sparse files",
        &expected,
        &Tree::from_dir(mount.path()),
    );
}

#[test]
fn pax_sparse_files_round_trip() {
    let work = staging_dir();
    let src = work.path().join("src");
    stage_sparse(&src);
    let expected = Tree::from_dir(&src);
    for version in ["0.0", "0.1", "1.0"] {
        let tar = work.path().join(format!("sparse-{version}.tar"));
        gnu_tar(
            &[
                "--format=pax",
                "--sparse",
                &format!("--sparse-version={version}"),
            ],
            &src,
            &tar,
        );
        let bytes = std::fs::read(&tar).expect("read tar");
        assert!(
            bytes.windows(11).any(|w| w == b"GNU.sparse."),
            "no GNU.sparse records in {}",
            tar.display()
        );
        let image = work.path().join(format!("sparse-{version}.sqfs"));
        convert_file(&tar, &image, &options(0));
        assert_same_tree(
            &format!("PAX sparse {version} read back"),
            &expected,
            &read_back(&image),
        );
    }
}

/// All-zero blocks take no space, as with tar2sqfs: every block of a 1 MiB zero file is sparse.
#[test]
fn all_zero_blocks_are_stored_sparse() {
    let tar = TarWriter::new()
        .file("zeros", FILE, &vec![0; 1 << 20])
        .finish();
    let work = staging_dir();
    let image = work.path().join("zeros.sqfs");
    convert_bytes(&tar, &image, &options(0));
    let stat = run_text(
        Command::new("rdsquashfs")
            .args(["-s", "/zeros"])
            .arg(&image),
    );
    let blocks: Vec<&str> = stat
        .lines()
        .filter(|l| l.trim_start().starts_with("Block #"))
        .collect();
    assert_eq!(blocks.len(), 8, "rdsquashfs -s /zeros:\n{stat}");
    assert!(
        blocks.iter().all(|l| l.contains("size: 0 ")),
        "zero blocks stored with data:\n{stat}"
    );
    let mut expected = Tree::default();
    expected.insert("", DIR.node(Kind::Dir));
    expected.insert("zeros", FILE.node(Kind::file(&vec![0; 1 << 20])));
    expected.count_links();
    let mut got = read_back(&image);
    // The root of a tar without a `./` entry is implicit: its attributes are not the point here.
    let root = got.nodes.get_mut(&Bytes::from("")).expect("root");
    root.mtime = DIR.mtime as i64;
    assert_same_tree("zeros read back", &expected, &got);
}

#[test]
fn image_is_identical_for_any_thread_count_and_run() {
    let work = staging_dir();
    let src = work.path().join("src");
    stage(&src);
    // More data than one block per thread, so that the threads really interleave.
    for i in 0..24 {
        write_file(
            &src.join(format!("bulk/{i:02}")),
            &pseudo_random(100 + i, 300_000 + 4099 * i as usize, i % 3 != 0),
        );
    }
    set_mtime(&src.join("bulk"), MTIME_BASE);
    let tar = work.path().join("pax.tar");
    gnu_tar(
        &[
            "--format=pax",
            "--xattrs",
            "--xattrs-include=*",
            "--sort=name",
        ],
        &src,
        &tar,
    );
    let images: Vec<Vec<u8>> = [1, 4, 4, 2]
        .iter()
        .enumerate()
        .map(|(i, &threads)| {
            let image = work.path().join(format!("run-{i}.sqfs"));
            convert_file(&tar, &image, &options(threads));
            std::fs::read(&image).expect("read image")
        })
        .collect();
    for (i, image) in images.iter().enumerate().skip(1) {
        assert!(
            image == &images[0],
            "image of run {i} differs from run 0 (threads 1, 4, 4, 2)"
        );
    }
}

#[test]
fn level_and_block_size_options_are_used() {
    let work = staging_dir();
    let src = work.path().join("src");
    stage(&src);
    let tar = work.path().join("pax.tar");
    gnu_tar(
        &["--format=pax", "--xattrs", "--xattrs-include=*"],
        &src,
        &tar,
    );
    let image = work.path().join("small-blocks.sqfs");
    let mut options = options(0);
    options.image.level = 3;
    options.image.block_size = 65_536;
    convert_file(&tar, &image, &options);
    assert_superblock(&image, 3, 65_536);
    assert_same_tree(
        "64 KiB blocks, level 3",
        &expected_image(&Tree::from_dir(&src)),
        &read_back(&image),
    );
}
