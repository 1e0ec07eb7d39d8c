//! What tarsquash's tests check images with: the real squashfs tools, kernel mounts,
//! conversions checked against their input, the large fixtures, and deterministic data.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::process::{run, run_text};
use crate::sha256_digest;

/// `unsquashfs -s`: the superblock as squashfs-tools describes it.
fn superblock(image: &Path) -> String {
    run_text(Command::new("unsquashfs").arg("-s").arg(image))
}

/// Asserts the superblock says squashfs 4.0, zstd at `level`, `block_size`-byte blocks.
pub fn assert_superblock(image: &Path, level: i32, block_size: u32) {
    let text = superblock(image);
    for want in [
        "Found a valid SQUASHFS 4:0 superblock".to_string(),
        "Compression zstd".to_string(),
        format!("compression-level {level}\n"),
        format!("Block size {block_size}\n"),
    ] {
        assert!(
            text.contains(&want),
            "unsquashfs -s {}: no {want:?} in:\n{text}",
            image.display()
        );
    }
}

/// A squashfs image mounted read-only by the kernel; unmounted when dropped.
pub struct Mount {
    dir: tempfile::TempDir,
    lazy: bool,
}

impl Mount {
    /// Mounts `image`; dropping it unmounts lazily, so that a test failing with a file still
    /// open does not leave the mount behind.
    pub fn new(image: &Path) -> Mount {
        Mount::with_unmount(image, true)
    }

    /// Mounts `image`; dropping it unmounts at once and fails the test (unless it is failing
    /// already) when the image is still busy.
    pub fn strict(image: &Path) -> Mount {
        Mount::with_unmount(image, false)
    }

    fn with_unmount(image: &Path, lazy: bool) -> Mount {
        let dir = tempfile::tempdir().expect("mount point");
        run(Command::new("mount")
            .args(["-o", "loop,ro", "-t", "squashfs"])
            .arg(image)
            .arg(dir.path()));
        Mount { dir, lazy }
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `relative` below the mount point.
    pub fn join(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        // A strict unmount is retried a few times: the kernel may still hold the loop device
        // busy for a moment after the last file closed (seen with several suites running).
        let mut status = None;
        for attempt in 0..5 {
            if attempt > 0 {
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            let mut umount = Command::new("umount");
            if self.lazy {
                umount.arg("-l");
            }
            let result = umount.arg(self.dir.path()).status();
            if matches!(result, Ok(s) if s.success()) {
                return;
            }
            status = Some(result);
            if self.lazy {
                break;
            }
        }
        if self.lazy || std::thread::panicking() {
            eprintln!("umount {} failed: {status:?}", self.dir.path().display());
        } else {
            panic!("umount {} failed: {status:?}", self.dir.path().display());
        }
    }
}

/// `getfattr -d -m - -h --absolute-names PATH` lines `name="value"` (text values only).
pub fn getfattr(path: &Path) -> BTreeSet<String> {
    let text = run_text(
        Command::new("getfattr")
            .args(["-d", "-m", "-", "-h", "--absolute-names"])
            .arg(path),
    );
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// Converts the plain tar file `input` into `image` with `tarsquash::convert`.
pub fn convert_file(
    input: &Path,
    image: &Path,
    options: &tarsquash::Options,
) -> tarsquash::Conversion {
    let mut tar = File::open(input).unwrap_or_else(|e| panic!("{}: {e}", input.display()));
    let out = File::create(image).unwrap_or_else(|e| panic!("{}: {e}", image.display()));
    let conversion = tarsquash::convert(&mut tar, out, options)
        .unwrap_or_else(|e| panic!("converting {}: {e}", input.display()));
    check_conversion(
        &conversion,
        &std::fs::read(input).expect("reading tar"),
        image,
    );
    conversion
}

/// Converts tar bytes into `image`.
pub fn convert_bytes(
    tar: &[u8],
    image: &Path,
    options: &tarsquash::Options,
) -> tarsquash::Conversion {
    let out = File::create(image).unwrap_or_else(|e| panic!("{}: {e}", image.display()));
    let conversion = tarsquash::convert(&mut &tar[..], out, options)
        .unwrap_or_else(|e| panic!("converting: {e}"));
    check_conversion(&conversion, tar, image);
    conversion
}

/// diff_id is the sha256 of the whole tar, tar_size its length, image_size the image's.
fn check_conversion(conversion: &tarsquash::Conversion, tar: &[u8], image: &Path) {
    assert_eq!(conversion.diff_id, sha256_digest(tar), "diff_id");
    assert_eq!(conversion.tar_size, tar.len() as u64, "tar_size");
    let len = std::fs::metadata(image).expect("image").len();
    assert_eq!(
        conversion.image_size, len,
        "image_size vs the file's length"
    );
}

pub fn options(threads: usize) -> tarsquash::Options {
    let mut options = tarsquash::Options::default();
    options.image.threads = threads;
    options
}

/// Where the large fixtures live (built by scripts/fixtures.sh).
pub fn fixtures_dir() -> PathBuf {
    std::env::var_os("CONCIL_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/concil-fixtures"))
}

/// `fixtures_dir()/relative`, running `scripts/fixtures.sh set` first when it is missing.
pub fn fixture(set: &str, relative: &str) -> PathBuf {
    let path = fixtures_dir().join(relative);
    if !path.exists() {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/fixtures.sh");
        eprintln!(
            "{} missing: running {} {set}",
            path.display(),
            script.display()
        );
        let status = Command::new("bash")
            .arg(&script)
            .arg(set)
            .env("CONCIL_FIXTURES", fixtures_dir())
            .status()
            .expect("starting scripts/fixtures.sh");
        assert!(status.success(), "scripts/fixtures.sh {set}: {status}");
    }
    assert!(
        path.exists(),
        "{} still missing after scripts/fixtures.sh",
        path.display()
    );
    path
}

/// A directory for staging trees and images under /var/tmp, which is on a disk file system here
/// (xattrs in every namespace, device nodes), not a tmpfs.
pub fn staging_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("tarsquash-e2e-")
        .tempdir_in("/var/tmp")
        .expect("staging dir")
}

/// Writes `data` to `path`, creating parent directories.
pub fn write_file(path: &Path, data: &[u8]) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("create_dir_all");
    }
    let mut file = File::create(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    file.write_all(data).expect("write");
}

/// Deterministic data: `len` bytes from a xorshift generator seeded with `seed`; `text` makes
/// it compressible (letters and newlines), otherwise it is incompressible noise.
pub fn pseudo_random(seed: u64, len: usize, text: bool) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            if text {
                b"etaoin shrdlu\n"[(state % 14) as usize]
            } else {
                (state >> 24) as u8
            }
        })
        .collect()
}
