//! What the image writer refuses, how input and output failures surface, and that its threads
//! stop however it ends.

use std::io::Read;

use concil_test_support::image_builder::{meta, noise, run_program, text, with_xattrs, Builder};
use tarsquash::image::{ImageError, ImageOptions, ImageWriter};
use tarsquash::tree::{NodeKind, Tree};

const BLOCK: usize = 128 * 1024;

/// Yields `good` bytes of noise, then fails.
struct FailingReader {
    good: Vec<u8>,
    at: usize,
}

impl Read for FailingReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.at == self.good.len() {
            return Err(std::io::Error::other("decompressor: corrupt input"));
        }
        let n = buf.len().min(self.good.len() - self.at).min(10_000);
        buf[..n].copy_from_slice(&self.good[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Two files, optionally with a failed and a short file between them.
fn image_with_failures(fail: bool) -> Vec<u8> {
    let mut b = Builder::new(&ImageOptions {
        threads: 2,
        ..ImageOptions::default()
    });
    let root = b.root();
    b.file(
        root,
        "before",
        &noise(2 * BLOCK + 5, 1),
        meta(0o644, 0, 0, 0),
    );
    if fail {
        let mut failing = FailingReader {
            good: noise(2 * BLOCK + BLOCK / 2, 2),
            at: 0,
        };
        let error = b
            .writer
            .add_file_data(&mut failing, 4 * BLOCK as u64)
            .unwrap_err();
        assert!(matches!(error, ImageError::Read { .. }), "{error:?}");
        let source = std::error::Error::source(&error).unwrap().to_string();
        assert_eq!(source, "decompressor: corrupt input");

        let short = noise(BLOCK + 1000, 3);
        let error = b
            .writer
            .add_file_data(&mut &short[..], 3 * BLOCK as u64)
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "file data ended after {} of {} bytes",
                BLOCK + 1000,
                3 * BLOCK
            )
        );
        let error = b.writer.add_file_data(&mut &b"tail"[..], 10).unwrap_err();
        assert!(matches!(
            error,
            ImageError::ShortInput {
                expected: 10,
                got: 4
            }
        ));
    }
    b.file(
        root,
        "after",
        &noise(3 * BLOCK + 7, 4),
        meta(0o644, 0, 0, 0),
    );
    b.finish().bytes()
}

#[test]
fn failed_input_leaves_no_trace_and_the_writer_goes_on() {
    let with = image_with_failures(true);
    assert!(with == image_with_failures(false));
}

fn finish_error(build: impl FnOnce(&mut Builder)) -> ImageError {
    let mut b = Builder::new(&ImageOptions::default());
    build(&mut b);
    let Builder { tree, writer, .. } = b;
    writer.finish(tree).unwrap_err()
}

#[test]
fn trees_squashfs_cannot_hold_are_refused_with_the_path() {
    let error = finish_error(|b| {
        let root = b.root();
        let etc = b.dir(root, "etc", meta(0o755, 0, 0, 0));
        b.file(
            etc,
            "f",
            b"x",
            with_xattrs(
                meta(0o644, 0, 0, 0),
                &[("system.posix_acl_access", b"\x02")],
            ),
        );
    });
    assert_eq!(
        error.to_string(),
        "extended attribute system.posix_acl_access of /etc/f: squashfs stores only user., \
         trusted. and security. names"
    );

    let error = finish_error(|b| {
        let root = b.root();
        let dev = b.dir(root, "dev", meta(0o755, 0, 0, 0));
        b.add(
            dev,
            "huge",
            NodeKind::CharDevice {
                major: 4096,
                minor: 1,
            },
            meta(0o600, 0, 0, 0),
        );
    });
    assert_eq!(
        error.to_string(),
        "device 4096:1 at /dev/huge: squashfs stores majors below 4096 and minors below 1048576"
    );

    let error = finish_error(|b| {
        let root = b.root();
        for uid in 0..65536 {
            b.add(
                root,
                &format!("p{uid}"),
                NodeKind::Fifo,
                meta(0o644, uid, 0, 0),
            );
        }
    });
    assert!(matches!(error, ImageError::TooManyIds), "{error}");
}

/// The tree cannot be malformed (its operations refuse what squashfs cannot list: a
/// directory in two places, a missing node, a root that is not a directory, a name of more
/// than 255 bytes), but a file data handle can come from another writer.
#[test]
fn file_data_of_another_writer_is_refused() {
    // A handle from another writer.
    let mut other = Builder::new(&ImageOptions::default());
    let foreign = other.data(&text(3 * BLOCK, 1));
    let error = finish_error(|b| {
        let root = b.root();
        b.add(root, "f", NodeKind::File(foreign), meta(0o644, 0, 0, 0));
    });
    assert_eq!(
        error.to_string(),
        "/f: the file data was not added by this image writer"
    );
}

#[test]
fn options_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let out = || std::fs::File::create(dir.path().join("x")).unwrap();
    let bad = |options: ImageOptions| ImageWriter::new(out(), &options).err().unwrap().to_string();
    assert_eq!(
        bad(ImageOptions {
            block_size: 3000,
            ..ImageOptions::default()
        }),
        "block size 3000 is not a power of two from 4096 to 1048576"
    );
    assert_eq!(
        bad(ImageOptions {
            block_size: 2 << 20,
            ..ImageOptions::default()
        }),
        "block size 2097152 is not a power of two from 4096 to 1048576"
    );
    assert_eq!(
        bad(ImageOptions {
            level: 23,
            ..ImageOptions::default()
        }),
        "zstd level 23 is not from 1 to 22"
    );
}

#[test]
fn a_full_disk_stops_the_writer_with_an_error_and_its_threads_exit() {
    let dir = tempfile::tempdir().unwrap();
    let mount_point = dir.path().join("small");
    std::fs::create_dir(&mount_point).unwrap();
    run_program(
        "mount",
        &[
            "-t".as_ref(),
            "tmpfs".as_ref(),
            "-o".as_ref(),
            "size=1m".as_ref(),
            "tmpfs".as_ref(),
            mount_point.as_os_str(),
        ],
    );
    let result = std::panic::catch_unwind(|| {
        let out = std::fs::File::create(mount_point.join("image.sqfs")).unwrap();
        let mut writer = ImageWriter::new(
            out,
            &ImageOptions {
                threads: 2,
                ..ImageOptions::default()
            },
        )
        .unwrap();
        let data = noise(4 * BLOCK, 9);
        let mut first_error = None;
        for _ in 0..40 {
            if let Err(error) = writer.add_file_data(&mut &data[..], data.len() as u64) {
                first_error = Some(error);
                break;
            }
            // The writer thread reports the failed write to whichever call comes next: keep
            // the first error, from either call.
            if let Err(error) = writer.add_file_data(&mut &noise(BLOCK, 7)[..], BLOCK as u64) {
                first_error = Some(error);
                break;
            }
        }
        let error = first_error.expect("1 MiB cannot hold 20 MiB of noise");
        assert!(
            matches!(
                error,
                ImageError::Write {
                    what: "file data",
                    ..
                }
            ),
            "{error:?}"
        );
        assert!(std::error::Error::source(&error)
            .unwrap()
            .to_string()
            .contains("No space left"));
        let again = writer
            .add_file_data(&mut &data[..], data.len() as u64)
            .unwrap_err();
        assert!(matches!(again, ImageError::Stopped), "{again:?}");
        let tree = Tree::new(meta(0o755, 0, 0, 0));
        assert!(matches!(writer.finish(tree), Err(ImageError::Stopped)));
    });
    run_program("umount", &[mount_point.as_os_str()]);
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

#[test]
fn dropping_an_unfinished_writer_stops_its_threads() {
    let mut b = Builder::new(&ImageOptions {
        threads: 3,
        ..ImageOptions::default()
    });
    for seed in 0..10 {
        b.data(&noise(3 * BLOCK + 5, seed));
    }
    let image = b.abandon();
    // Dropping returned (the threads were joined); the superblock was never written.
    assert_eq!(image.bytes()[..4], [0; 4]);
}
