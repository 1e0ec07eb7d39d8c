//! End to end with real content: a Debian bookworm minbase root file system and a tree of ~50k
//! small files (both made by scripts/fixtures.sh, run here when they are missing), converted
//! from their compressed tars through `tarsquash::decode`, compared with the uncompressed tar
//! through `sqfs2tar` and a kernel mount.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use tarsquash::decode::Compression;

use concil_test_support::e2e::*;

/// Converts a compressed tar as a layer would be: decompressed by `tarsquash::decode`.
fn convert_compressed(
    input: &Path,
    image: &Path,
    compression: Compression,
    threads: usize,
) -> tarsquash::Conversion {
    let file = File::open(input).unwrap_or_else(|e| panic!("{}: {e}", input.display()));
    let mut tar = compression.decoder(file);
    tarsquash::convert_to_path(&mut tar, image, &options(threads))
        .unwrap_or_else(|e| panic!("converting {}: {e}", input.display()))
}

/// What the image of `tar` must hold.
fn expected_from(tar: &Path) -> Tree {
    let mut expected = Tree::from_tar(File::open(tar).expect("open tar"));
    expected.drop_xattrs("trusted.overlay.");
    expected.clamp_mtimes();
    expected
}

#[test]
fn debian_rootfs_gzip_layer_matches_its_tar() {
    let tar = fixture("debian", "debian/rootfs.tar");
    let gz = fixture("debian", "debian/rootfs.tar.gz");
    let work = staging_dir();
    let image = work.path().join("debian.sqfs");
    let gzip = Compression::from_media_type("application/vnd.oci.image.layer.v1.tar+gzip");
    assert_eq!(gzip, Some(Compression::Gzip));
    let conversion = convert_compressed(&gz, &image, Compression::Gzip, 0);
    assert_eq!(
        conversion.diff_id,
        sha256sum(&tar),
        "diff_id vs sha256sum rootfs.tar"
    );
    assert_eq!(
        conversion.tar_size,
        std::fs::metadata(&tar).expect("tar").len()
    );
    assert_eq!(
        conversion.image_size,
        std::fs::metadata(&image).expect("image").len()
    );
    assert_superblock(&image, 10, 131_072);

    let expected = expected_from(&tar);
    assert!(
        expected.nodes.len() > 6000,
        "{} entries: not a Debian root",
        expected.nodes.len()
    );
    assert!(
        !expected.hard_links.is_empty(),
        "Debian has hard links (perl, gunzip)"
    );
    assert_same_tree(
        "sqfs2tar read-back of Debian",
        &expected,
        &read_back(&image),
    );
    let mount = Mount::new(&image);
    assert_same_tree(
        "kernel mount of Debian",
        &expected,
        &Tree::from_dir(mount.path()),
    );
    // The mounted tree is usable: its shell runs a script.
    let out = run_text(
        std::process::Command::new("chroot")
            .arg(mount.path())
            .args(["/bin/sh", "-c", "echo $((6*7))"]),
    );
    assert_eq!(out.trim(), "42");
}

#[test]
fn debian_rootfs_zstd_layer_gives_the_same_image_on_one_thread() {
    let zst = fixture("debian", "debian/rootfs.tar.zst");
    let gz = fixture("debian", "debian/rootfs.tar.gz");
    let mut magic = [0u8; 4];
    File::open(&zst)
        .expect("open")
        .read_exact(&mut magic)
        .expect("read magic");
    assert_eq!(Compression::detect(&magic), Compression::Zstd);
    let work = staging_dir();
    let from_zstd = work.path().join("zstd.sqfs");
    let from_gzip = work.path().join("gzip.sqfs");
    let a = convert_compressed(&zst, &from_zstd, Compression::Zstd, 1);
    let b = convert_compressed(&gz, &from_gzip, Compression::Gzip, 2);
    assert_eq!(a.diff_id, b.diff_id);
    let (a, b) = (
        std::fs::read(&from_zstd).expect("read"),
        std::fs::read(&from_gzip).expect("read"),
    );
    assert!(
        a == b,
        "zstd layer on 1 thread and gzip layer on 2 threads gave different images"
    );
}

#[test]
fn many_small_files_round_trip() {
    let tar = fixture("small", "small/files.tar");
    let gz = fixture("small", "small/files.tar.gz");
    let work = staging_dir();
    let image = work.path().join("small.sqfs");
    let (compression, mut input) =
        Compression::detect_decoder(File::open(&gz).expect("open")).expect("detecting compression");
    assert_eq!(compression, Compression::Gzip);
    let conversion = tarsquash::convert_to_path(&mut input, &image, &options(0))
        .expect("converting files.tar.gz");
    assert_eq!(
        conversion.diff_id,
        sha256sum(&tar),
        "diff_id vs sha256sum files.tar"
    );
    let expected = expected_from(&tar);
    assert!(
        expected.nodes.len() > 50_000,
        "{} entries",
        expected.nodes.len()
    );
    assert_same_tree(
        "sqfs2tar read-back of the small files",
        &expected,
        &read_back(&image),
    );
    let mount = Mount::new(&image);
    assert_same_tree(
        "kernel mount of the small files",
        &expected,
        &Tree::from_dir(mount.path()),
    );
}
