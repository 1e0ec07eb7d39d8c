//! Many inodes (several inode-table blocks), a directory large enough to need an index, deep
//! nesting, and other block sizes.

use std::os::unix::fs::MetadataExt;

use concil_test_support::image_builder::{meta, run_on, text, Builder};
use tarsquash::image::ImageOptions;
use tarsquash::tree::NodeKind;

const BIG_DIR_ENTRIES: usize = 5000;

fn big_dir_name(i: usize) -> String {
    format!("entry-{:05}-{}", i * 2, "x".repeat(i % 40))
}

#[test]
fn a_large_directory_is_found_by_every_name_through_its_index() {
    let mut b = Builder::new(&ImageOptions::default());
    let root = b.root();
    let big = b.dir(root, "big", meta(0o755, 0, 0, 1));
    // Files, symlinks and subdirectories mixed, so entries point into many inode blocks.
    for i in 0..BIG_DIR_ENTRIES {
        let name = big_dir_name(i);
        match i % 3 {
            0 => {
                b.file(
                    big,
                    &name,
                    name.as_bytes(),
                    meta(0o644, i as u32 % 7, 0, i as u32),
                );
            }
            1 => {
                b.add(
                    big,
                    &name,
                    NodeKind::Symlink(name.as_bytes().into()),
                    meta(0o777, 0, 0, i as u32),
                );
            }
            _ => {
                let sub = b.dir(big, &name, meta(0o700, 0, 0, i as u32));
                b.file(sub, "inside", b"", meta(0o600, 0, 0, 0));
            }
        }
    }
    // Names with bytes above 0x7f sort after all ASCII names.
    b.file(big, "\u{e9}t\u{e9}", b"accent", meta(0o644, 0, 0, 0));
    let image = b.finish();

    let summary = run_on("unsquashfs", &["-s"], &image.path);
    let inodes = 2 + BIG_DIR_ENTRIES + BIG_DIR_ENTRIES / 3 + 1;
    assert!(
        summary.contains(&format!("Number of inodes {inodes}")),
        "{summary}"
    );
    let listing = run_on("unsquashfs", &["-n", "-l"], &image.path);
    assert_eq!(listing.lines().filter(|l| !l.is_empty()).count(), inodes);

    let mount = image.mount();
    let read: Vec<String> = std::fs::read_dir(mount.join("big"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let mut expected: Vec<String> = (0..BIG_DIR_ENTRIES).map(big_dir_name).collect();
    expected.push("\u{e9}t\u{e9}".into());
    expected.sort();
    assert_eq!(read, expected, "readdir order is name byte order");
    assert_eq!(
        std::fs::metadata(mount.join("big")).unwrap().nlink(),
        2 + (BIG_DIR_ENTRIES / 3) as u64
    );

    for i in 0..BIG_DIR_ENTRIES {
        let name = big_dir_name(i);
        let path = mount.join(&format!("big/{name}"));
        let stat = std::fs::symlink_metadata(&path).unwrap();
        assert_eq!(stat.mtime(), i as i64, "{name}");
        match i % 3 {
            0 => assert_eq!(std::fs::read(&path).unwrap(), name.as_bytes()),
            1 => assert_eq!(
                std::fs::read_link(&path).unwrap().as_os_str(),
                name.as_str()
            ),
            _ => assert_eq!(std::fs::read(path.join("inside")).unwrap(), b""),
        }
        // Names between the listed ones are not there. (The kernel stops early only on a
        // smaller first byte, so each of these reads the listing to its end: only a few.)
        if i % 500 == 0 {
            let missing = format!("entry-{:05}", i * 2 + 1);
            assert!(!mount.join(&format!("big/{missing}")).exists(), "{missing}");
        }
    }
    for missing in ["a", "entry-", "entry-99999", "zzz", "\u{e9}", "\u{ff}"] {
        assert!(!mount.join(&format!("big/{missing}")).exists(), "{missing}");
    }
    assert_eq!(
        std::fs::read(mount.join("big/\u{e9}t\u{e9}")).unwrap(),
        b"accent"
    );

    let stat = run_on("rdsquashfs", &["-s", "/big"], &image.path);
    assert!(stat.contains("Inode type: extended directory"), "{stat}");
}

#[test]
fn deep_nesting_and_many_small_files() {
    let mut b = Builder::new(&ImageOptions::default());
    let mut dir = b.root();
    // 1000 levels: deeper than any recursion-friendly stack depth would allow comfortably.
    for level in 0..1000 {
        dir = b.dir(dir, "d", meta(0o755, 0, 0, level));
    }
    b.file(dir, "bottom", b"deep", meta(0o644, 0, 0, 0));
    let root = b.root();
    let flat = b.dir(root, "flat", meta(0o755, 0, 0, 0));
    for i in 0..3000u32 {
        let content = text(100 + i as usize % 300, i);
        b.file(
            flat,
            &format!("f{i}"),
            &content,
            meta(0o644, i % 3, i % 5, i),
        );
    }
    let image = b.finish();

    let deep = format!("/{}bottom", "d/".repeat(1000));
    let stat = run_on("rdsquashfs", &["-s", &deep], &image.path);
    assert!(stat.contains("File size: 4"), "{stat}");
    let content = run_on("rdsquashfs", &["-c", &deep], &image.path);
    assert_eq!(content, "deep");

    let mount = image.mount();
    for i in (0..3000u32).step_by(7) {
        let path = mount.join(&format!("flat/f{i}"));
        assert_eq!(
            std::fs::read(&path).unwrap(),
            text(100 + i as usize % 300, i)
        );
        let stat = std::fs::metadata(&path).unwrap();
        assert_eq!(
            (stat.uid(), stat.gid(), stat.mtime()),
            (i % 3, i % 5, i64::from(i))
        );
    }
}

#[test]
fn other_block_sizes_and_levels_are_recorded_and_readable() {
    for (block_size, level) in [(4096u32, 1), (1 << 20, 19)] {
        let options = ImageOptions {
            level,
            block_size,
            threads: 2,
        };
        let mut b = Builder::new(&options);
        let root = b.root();
        let content = text(3 * block_size as usize + 10, block_size);
        b.file(root, "f", &content, meta(0o644, 0, 0, 0));
        let image = b.finish();
        let summary = run_on("unsquashfs", &["-s"], &image.path);
        assert!(
            summary.contains(&format!("Block size {block_size}")),
            "{summary}"
        );
        assert!(
            summary.contains(&format!("compression-level {level}")),
            "{summary}"
        );
        let mount = image.mount();
        assert!(std::fs::read(mount.join("f")).unwrap() == content);
    }
}

/// `zeros` zero bytes, then `tail`.
struct ZerosThen {
    zeros: u64,
    tail: &'static [u8],
    at: u64,
}

impl std::io::Read for ZerosThen {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.at < self.zeros {
            let n = buf.len().min((self.zeros - self.at) as usize);
            buf[..n].fill(0);
            self.at += n as u64;
            return Ok(n);
        }
        let from = (self.at - self.zeros) as usize;
        let n = buf.len().min(self.tail.len() - from);
        buf[..n].copy_from_slice(&self.tail[from..from + n]);
        self.at += n as u64;
        Ok(n)
    }
}

#[test]
fn a_file_over_4_gib_is_stored_with_64_bit_sizes() {
    use std::os::unix::fs::FileExt;

    let zeros = 5u64 << 30;
    let tail = b"the end";
    let size = zeros + tail.len() as u64;
    let mut b = Builder::new(&ImageOptions::default());
    let root = b.root();
    let mut input = ZerosThen { zeros, tail, at: 0 };
    let data = b.writer.add_file_data(&mut input, size).unwrap();
    assert_eq!(data.size(), size);
    b.add(root, "huge", NodeKind::File(data), meta(0o644, 0, 0, 0));
    let image = b.finish();
    assert!(image.bytes().len() < 1 << 20);

    let stat = run_on("rdsquashfs", &["-s", "/huge"], &image.path);
    assert!(stat.contains("Inode type: extended file"), "{stat}");
    assert!(stat.contains(&format!("File size: {size}")), "{stat}");
    assert!(stat.contains(&format!("Sparse: {zeros}")), "{stat}");

    let mount = image.mount();
    let file = std::fs::File::open(mount.join("huge")).unwrap();
    assert_eq!(file.metadata().unwrap().len(), size);
    let mut end = [0u8; 10];
    file.read_exact_at(&mut end, size - 10).unwrap();
    assert_eq!(&end, b"\0\0\0the end");
    let mut middle = [1u8; 4096];
    file.read_exact_at(&mut middle, 3 << 30).unwrap();
    assert_eq!(middle, [0; 4096]);
}
