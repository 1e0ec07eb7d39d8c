//! De-duplication of files and tails, sparse files, and images that do not depend on the
//! number of compressor threads.

use concil_test_support::image_builder::{meta, noise, run_on, text, Builder};
use tarsquash::image::ImageOptions;

const BLOCK: usize = 128 * 1024;

/// The value of one field of `rdsquashfs -s PATH`.
fn inode_field(image: &std::path::Path, path: &str, field: &str) -> String {
    let stat = run_on("rdsquashfs", &["-s", path], image);
    stat.lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(": "))
        .unwrap_or_else(|| panic!("no {field} in\n{stat}"))
        .to_string()
}

#[test]
fn identical_files_and_tails_are_stored_once() {
    let a = noise(3 * BLOCK + 1000, 1);
    let mut other = noise(2 * BLOCK, 2);
    other.extend_from_slice(&a[3 * BLOCK..]);
    let small = text(5000, 3);

    let mut b = Builder::new(&ImageOptions::default());
    let root = b.root();
    b.file(root, "a", &a, meta(0o644, 0, 0, 0));
    b.file(root, "a-copy", &a, meta(0o600, 1, 1, 1));
    b.file(root, "same-tail", &other, meta(0o644, 0, 0, 0));
    b.file(root, "small", &small, meta(0o644, 0, 0, 0));
    b.file(root, "small-copy", &small, meta(0o644, 0, 0, 0));
    let image = b.finish();

    let mut alone = Builder::new(&ImageOptions::default());
    let root = alone.root();
    alone.file(root, "a", &a, meta(0o644, 0, 0, 0));
    alone.file(root, "same-tail", &other, meta(0o644, 0, 0, 0));
    alone.file(root, "small", &small, meta(0o644, 0, 0, 0));
    let alone = alone.finish();
    // The copies cost only their inodes and directory entries.
    let stored = |path: &std::path::Path| {
        let summary = run_on("unsquashfs", &["-s"], path);
        summary
            .lines()
            .find_map(|l| {
                l.strip_prefix("Filesystem size ")?
                    .split(' ')
                    .next()?
                    .parse::<u64>()
                    .ok()
            })
            .unwrap()
    };
    let (with_copies, without) = (stored(&image.path), stored(&alone.path));
    assert!(
        with_copies > without && with_copies < without + 200,
        "{with_copies} vs {without}"
    );

    let p = &image.path;
    for field in ["Blocks start", "Fragment index", "Fragment offset"] {
        assert_eq!(
            inode_field(p, "/a", field),
            inode_field(p, "/a-copy", field),
            "{field}"
        );
        assert_eq!(
            inode_field(p, "/small", field),
            inode_field(p, "/small-copy", field)
        );
    }
    for field in ["Fragment index", "Fragment offset"] {
        assert_eq!(
            inode_field(p, "/a", field),
            inode_field(p, "/same-tail", field),
            "{field}"
        );
    }
    assert_ne!(
        inode_field(p, "/a", "Blocks start"),
        inode_field(p, "/same-tail", "Blocks start")
    );

    let mount = image.mount();
    for (name, content) in [
        ("a", &a),
        ("a-copy", &a),
        ("same-tail", &other),
        ("small", &small),
        ("small-copy", &small),
    ] {
        assert!(
            std::fs::read(mount.join(name)).unwrap() == *content,
            "{name}"
        );
    }
}

#[test]
fn duplicate_blocks_are_taken_back_and_the_next_file_takes_their_place() {
    let first = noise(3 * BLOCK + 10, 10);
    let second = noise(2 * BLOCK, 11);
    let fourth = noise(2 * BLOCK + 20, 12);

    let mut b = Builder::new(&ImageOptions {
        threads: 3,
        ..ImageOptions::default()
    });
    let root = b.root();
    b.file(root, "1", &first, meta(0o644, 0, 0, 0));
    b.file(root, "2", &second, meta(0o644, 0, 0, 0));
    b.file(root, "3", &first, meta(0o644, 0, 0, 0));
    b.file(root, "4", &fourth, meta(0o644, 0, 0, 0));
    let image = b.finish();

    // Noise is stored raw, so each block takes exactly BLOCK bytes.
    let start = |path| {
        inode_field(&image.path, path, "Blocks start")
            .parse::<u64>()
            .unwrap()
    };
    assert_eq!(start("/2"), start("/1") + 3 * BLOCK as u64);
    assert_eq!(start("/3"), start("/1"));
    assert_eq!(start("/4"), start("/2") + 2 * BLOCK as u64);
    let mount = image.mount();
    for (name, content) in [("1", &first), ("2", &second), ("3", &first), ("4", &fourth)] {
        assert!(
            std::fs::read(mount.join(name)).unwrap() == *content,
            "{name}"
        );
    }
}

#[test]
fn zero_blocks_are_sparse() {
    let mut b = Builder::new(&ImageOptions::default());
    let root = b.root();
    let zeros = vec![0u8; 64 << 20];
    b.file(root, "zeros", &zeros, meta(0o644, 0, 0, 0));
    let mut holes = noise(BLOCK, 5);
    holes.resize(10 * BLOCK, 0);
    holes.extend_from_slice(&noise(BLOCK + 3, 6));
    b.file(root, "holes", &holes, meta(0o644, 0, 0, 0));
    let image = b.finish();

    assert!(
        image.bytes().len() < 3 * BLOCK + 64 * 1024,
        "{}",
        image.bytes().len()
    );
    assert_eq!(
        inode_field(&image.path, "/zeros", "Sparse"),
        (64u64 << 20).to_string()
    );
    assert_eq!(
        inode_field(&image.path, "/holes", "Sparse"),
        (9 * BLOCK).to_string()
    );
    let mount = image.mount();
    assert!(std::fs::read(mount.join("zeros")).unwrap() == zeros);
    assert!(std::fs::read(mount.join("holes")).unwrap() == holes);
}

/// An image with blocks of every sort: text, noise, zeros, duplicates, many tails.
fn mixed_image(threads: usize) -> Vec<u8> {
    let mut b = Builder::new(&ImageOptions {
        threads,
        ..ImageOptions::default()
    });
    let root = b.root();
    let dir = b.dir(root, "d", meta(0o755, 0, 0, 0));
    for i in 0..40u32 {
        // Every fourth file repeats the one two before it.
        let source = if i % 4 == 3 { i - 2 } else { i };
        let len = (source as usize * 37_001) % (5 * BLOCK) + 1;
        let content = match source % 4 {
            0 => text(len, source),
            1 => noise(len, source),
            _ => {
                let mut c = text(len / 2, source);
                c.resize(len, 0);
                c
            }
        };
        b.file(dir, &format!("f{i}"), &content, meta(0o644, i, i, i));
    }
    b.finish().bytes()
}

#[test]
fn the_image_is_the_same_for_any_number_of_threads() {
    let one = mixed_image(1);
    assert!(one == mixed_image(4), "1 and 4 threads differ");
    assert!(one == mixed_image(0), "1 thread and one per core differ");
}
