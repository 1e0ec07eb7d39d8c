//! Every kind of node, with its attributes, read back by unsquashfs, rdsquashfs, sqfs2tar and
//! the kernel.

use std::os::unix::fs::{FileTypeExt, MetadataExt};

use concil_test_support::image_builder::{
    meta, noise, run_on, text, with_xattrs, xattrs, Builder, Image,
};
use tarsquash::image::ImageOptions;
use tarsquash::tree::NodeKind;

const BLOCK: usize = 128 * 1024;
/// A version 2 file capability (cap_net_raw, effective); the kernel checks the format.
const CAPABILITY: &[u8] = &[
    1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

struct Contents {
    empty: Vec<u8>,
    small: Vec<u8>,
    multi: Vec<u8>,
    sparse: Vec<u8>,
    noisy: Vec<u8>,
    exact: Vec<u8>,
}

fn contents() -> Contents {
    let mut sparse = text(BLOCK / 2, 1);
    sparse.resize(4 * BLOCK + 100, 0);
    sparse.extend_from_slice(b"end of the sparse file");
    Contents {
        empty: Vec::new(),
        small: b"hello, squashfs\n".to_vec(),
        multi: text(3 * BLOCK + 5000, 2),
        sparse,
        noisy: noise(2 * BLOCK + 777, 3),
        exact: text(2 * BLOCK, 4),
    }
}

/// An image with one of everything; returns it and the contents of its files.
fn build() -> (Image, Contents) {
    let c = contents();
    let mut b = Builder::new(&ImageOptions::default());
    let root = b.root();
    b.root_meta(with_xattrs(
        meta(0o755, 0, 0, 1_700_000_000),
        &[("user.root", b"r")],
    ));
    let etc = b.dir(root, "etc", meta(0o750, 0, 42, 1_700_000_001));
    b.dir(etc, "empty", meta(0o700, 1000, 1000, 1_700_000_002));
    b.file(root, "empty", &c.empty, meta(0o600, 1000, 100, 5));
    let small = b.file(
        etc,
        "small",
        &c.small,
        with_xattrs(
            meta(0o4755, 0, 0, 123_456_789),
            &[("security.capability", CAPABILITY), ("user.comment", b"x")],
        ),
    );
    b.link(root, "small-link", small);
    b.link(etc, "small-link-2", small);
    b.file(
        root,
        "multi",
        &c.multi,
        meta(0o644, 65534, 65534, 4_000_000_000),
    );
    b.file(root, "sparse", &c.sparse, meta(0o644, 0, 0, 7));
    b.file(root, "noisy", &c.noisy, meta(0o644, 0, 0, 8));
    b.file(root, "exact", &c.exact, meta(0o1644, 0, 0, 9));
    b.add(
        root,
        "symlink",
        NodeKind::Symlink(b"etc/small"[..].into()),
        with_xattrs(meta(0o777, 5, 6, 10), &[("trusted.t", b"value")]),
    );
    b.add(
        root,
        "null",
        NodeKind::CharDevice { major: 1, minor: 3 },
        meta(0o666, 0, 0, 11),
    );
    b.add(
        root,
        "big-numbers",
        NodeKind::BlockDevice {
            major: 4095,
            minor: 1_048_575,
        },
        meta(0o660, 0, 6, 12),
    );
    b.add(root, "fifo", NodeKind::Fifo, meta(0o620, 0, 0, 13));
    b.add(root, "socket", NodeKind::Socket, meta(0o755, 0, 0, 14));
    (b.finish(), c)
}

#[test]
fn unsquashfs_reports_zstd_level_and_block_size() {
    let (image, _) = build();
    let summary = run_on("unsquashfs", &["-s"], &image.path);
    assert!(summary.contains("Compression zstd"), "{summary}");
    assert!(summary.contains("compression-level 10"), "{summary}");
    assert!(summary.contains("Block size 131072"), "{summary}");
    assert!(
        summary.contains("Creation or last append time Thu Jan  1 00:00:00 1970"),
        "{summary}"
    );
    // root, etc, etc/empty, 9 leaves, one inode for the three names of etc/small.
    assert!(summary.contains("Number of inodes 14"), "{summary}");
    assert!(summary.contains("Number of xattr ids 3"), "{summary}");
    assert_eq!(image.bytes().len() % 4096, 0);
}

#[test]
fn listings_of_both_tool_sets_agree_with_the_tree() {
    let (image, _) = build();
    // unsquashfs 4.5.1 prints large device numbers wrongly; rdsquashfs checks those below.
    let listing = run_on("unsquashfs", &["-n", "-lln"], &image.path);
    let lines: Vec<String> = listing
        .lines()
        .filter(|line| !line.is_empty() && !line.contains("big-numbers"))
        .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(
        lines,
        [
            "drwxr-xr-x 0/0 182 2023-11-14 22:13 squashfs-root",
            "-rw------- 1000/100 0 1970-01-01 00:00 squashfs-root/empty",
            "drwxr-x--- 0/42 61 2023-11-14 22:13 squashfs-root/etc",
            "drwx------ 1000/1000 3 2023-11-14 22:13 squashfs-root/etc/empty",
            "-rwsr-xr-x 0/0 16 1973-11-29 21:33 squashfs-root/etc/small",
            "-rwsr-xr-x 0/0 16 1973-11-29 21:33 squashfs-root/etc/small-link-2",
            "-rw-r--r-T 0/0 262144 1970-01-01 00:00 squashfs-root/exact",
            "prw--w---- 0/0 0 1970-01-01 00:00 squashfs-root/fifo",
            "-rw-r--r-- 65534/65534 398216 2096-10-02 07:06 squashfs-root/multi",
            "-rw-r--r-- 0/0 262921 1970-01-01 00:00 squashfs-root/noisy",
            "crw-rw-rw- 0/0 1, 3 1970-01-01 00:00 squashfs-root/null",
            "-rwsr-xr-x 0/0 16 1973-11-29 21:33 squashfs-root/small-link",
            "srwxr-xr-x 0/0 0 1970-01-01 00:00 squashfs-root/socket",
            "-rw-r--r-- 0/0 524410 1970-01-01 00:00 squashfs-root/sparse",
            "lrwxrwxrwx 5/6 9 1970-01-01 00:00 squashfs-root/symlink -> etc/small",
        ]
    );

    let ls = run_on("rdsquashfs", &["-l", "/"], &image.path);
    let lines: Vec<String> = ls
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(
        lines,
        [
            "brw-rw---- 0/6 4095:1048575 big-numbers",
            "-rw------- 1000/100 0 empty",
            "drwxr-x--- 0/42 61 etc",
            "-rw-r--r-T 0/0 256k exact",
            "prw--w---- 0/0 0 fifo",
            "-rw-r--r-- 65534/65534 389k multi",
            "-rw-r--r-- 0/0 257k noisy",
            "crw-rw-rw- 0/0 1:3 null",
            "-rwsr-xr-x 0/0 16 small-link",
            "srwxr-xr-x 0/0 0 socket",
            "-rw-r--r-- 0/0 512k sparse",
            "lrwxrwxrwx 5/6 9 symlink -> etc/small",
        ]
    );
    let small = run_on("rdsquashfs", &["-s", "/etc/small"], &image.path);
    assert!(small.contains("Inode type: extended file"), "{small}");
    assert!(small.contains("Hard link count: 3"), "{small}");
    let sparse = run_on("rdsquashfs", &["-s", "/sparse"], &image.path);
    // Blocks 1 to 3 of the sparse file are all zeros.
    assert!(sparse.contains("Sparse: 393216"), "{sparse}");
    let big = run_on("rdsquashfs", &["-s", "/big-numbers"], &image.path);
    assert!(big.contains("Device number: 4095:1048575"), "{big}");
}

#[test]
fn sqfs2tar_reads_every_file_back() {
    let (image, c) = build();
    let out = tempfile::tempdir().unwrap();
    let tar = out.path().join("image.tar");
    let tar_file = std::fs::File::create(&tar).unwrap();
    let status = std::process::Command::new("sqfs2tar")
        .arg(&image.path)
        .stdout(tar_file)
        .status()
        .unwrap();
    assert!(status.success());
    let listing = run_on("tar", &["-tvv", "--numeric-owner", "-f"], &tar);
    let lines: Vec<String> = listing
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    // A tar cannot hold the socket.
    assert_eq!(
        lines,
        [
            "brw-rw---- 0/6 4095,1048575 1970-01-01 00:00 big-numbers",
            "-rw------- 1000/100 0 1970-01-01 00:00 empty",
            "drwxr-x--- 0/42 0 2023-11-14 22:13 etc/",
            "drwx------ 1000/1000 0 2023-11-14 22:13 etc/empty/",
            "-rwsr-xr-x 0/0 16 1973-11-29 21:33 etc/small",
            "hrwsr-xr-x 0/0 0 1973-11-29 21:33 etc/small-link-2 link to etc/small",
            "-rw-r--r-T 0/0 262144 1970-01-01 00:00 exact",
            "prw--w---- 0/0 0 1970-01-01 00:00 fifo",
            "-rw-r--r-- 65534/65534 398216 2096-10-02 07:06 multi",
            "-rw-r--r-- 0/0 262921 1970-01-01 00:00 noisy",
            "crw-rw-rw- 0/0 1,3 1970-01-01 00:00 null",
            "hrwsr-xr-x 0/0 0 1973-11-29 21:33 small-link link to etc/small",
            "-rw-r--r-- 0/0 524410 1970-01-01 00:00 sparse",
            "lrwxrwxrwx 5/6 0 1970-01-01 00:00 symlink -> etc/small",
        ]
    );
    let mut archive = tar::Archive::new(std::fs::File::open(&tar).unwrap());
    let mut seen = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        let expected = match path.trim_end_matches('/') {
            "empty" => &c.empty,
            "etc/small" => &c.small,
            "multi" => &c.multi,
            "sparse" => &c.sparse,
            "noisy" => &c.noisy,
            "exact" => &c.exact,
            _ => continue,
        };
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
        assert!(data == *expected, "{path} differs");
        seen.push(path);
    }
    seen.sort();
    assert_eq!(
        seen,
        ["empty", "etc/small", "exact", "multi", "noisy", "sparse"]
    );
}

#[test]
fn the_kernel_mounts_it_with_every_attribute() {
    let (image, c) = build();
    let mount = image.mount();
    let stat = |p: &str| std::fs::symlink_metadata(mount.join(p)).unwrap();

    let root = stat("");
    assert_eq!(
        (root.mode(), root.nlink(), root.mtime()),
        (0o40755, 3, 1_700_000_000)
    );
    assert_eq!(
        xattrs(&mount.join("")),
        [("user.root".to_string(), b"r".to_vec())]
    );
    let etc = stat("etc");
    assert_eq!(
        (etc.mode(), etc.uid(), etc.gid(), etc.nlink()),
        (0o40750, 0, 42, 3)
    );
    assert_eq!(stat("etc/empty").nlink(), 2);
    assert_eq!(
        std::fs::read_dir(mount.join("etc/empty")).unwrap().count(),
        0
    );

    let small = stat("etc/small");
    assert_eq!(
        (small.mode(), small.nlink(), small.mtime()),
        (0o104755, 3, 123_456_789)
    );
    assert_eq!(small.ino(), stat("small-link").ino());
    assert_eq!(small.ino(), stat("etc/small-link-2").ino());
    assert_eq!(
        xattrs(&mount.join("etc/small")),
        [
            ("security.capability".to_string(), CAPABILITY.to_vec()),
            ("user.comment".to_string(), b"x".to_vec()),
        ]
    );

    let multi = stat("multi");
    assert_eq!(
        (multi.uid(), multi.gid(), multi.mtime()),
        (65534, 65534, 4_000_000_000)
    );
    assert_eq!(stat("exact").mode(), 0o101644);
    assert_eq!(stat("empty").mode(), 0o100600);
    for (name, expected) in [
        ("empty", &c.empty),
        ("etc/small", &c.small),
        ("small-link", &c.small),
        ("multi", &c.multi),
        ("sparse", &c.sparse),
        ("noisy", &c.noisy),
        ("exact", &c.exact),
    ] {
        assert!(
            std::fs::read(mount.join(name)).unwrap() == *expected,
            "{name} differs"
        );
    }

    let symlink = stat("symlink");
    assert!(symlink.file_type().is_symlink());
    assert_eq!(
        (symlink.uid(), symlink.gid(), symlink.mode()),
        (5, 6, 0o120777)
    );
    assert_eq!(
        std::fs::read_link(mount.join("symlink"))
            .unwrap()
            .as_os_str(),
        "etc/small"
    );
    assert_eq!(
        xattrs(&mount.join("symlink")),
        [("trusted.t".to_string(), b"value".to_vec())]
    );

    let null = stat("null");
    assert!(null.file_type().is_char_device());
    assert_eq!((null.rdev(), null.mode()), (libc::makedev(1, 3), 0o20666));
    let big = stat("big-numbers");
    assert!(big.file_type().is_block_device());
    assert_eq!(big.rdev(), libc::makedev(4095, 1_048_575));
    assert!(stat("fifo").file_type().is_fifo());
    assert_eq!(stat("fifo").mode(), 0o10620);
    assert!(stat("socket").file_type().is_socket());
    assert_eq!(stat("socket").nlink(), 1);
}

#[test]
fn a_lone_root_without_fragments_or_xattrs_mounts() {
    let image = Builder::new(&ImageOptions::default()).finish();
    assert_eq!(image.bytes().len(), 4096);
    let summary = run_on("unsquashfs", &["-s"], &image.path);
    assert!(summary.contains("Number of fragments 0"), "{summary}");
    assert!(summary.contains("Number of inodes 1"), "{summary}");
    let mount = image.mount();
    let root = std::fs::metadata(mount.join("")).unwrap();
    assert_eq!(
        (root.mode(), root.nlink(), root.mtime()),
        (0o40755, 2, 1_600_000_000)
    );
    assert_eq!(std::fs::read_dir(mount.join("")).unwrap().count(), 0);
}
