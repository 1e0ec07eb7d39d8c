//! Writes a tar of many small entries to stdout, to measure what each entry costs a converter
//! (scripts/bench-entries.sh runs tarsquash and tar2sqfs on its output).
//!
//! Usage: entries_tar FILES [--per-dir N] [--depth D] [--size BYTES]
//!
//! FILES regular files of BYTES bytes each (default 0), N to a directory (default 1000), the
//! directories D levels deep (default 1): `d123/f4567` at depth 1, `d1/d23/f4567` at depth 2.
//! Every directory is listed before its files, as tar lists a tree. File contents differ from
//! file to file (so that no deduplication hides their cost); names, modes, owners and times are
//! what a real layer has.

use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

struct Shape {
    files: u64,
    per_dir: u64,
    depth: u32,
    size: u64,
}

fn parse_args() -> Result<Shape, String> {
    let usage = "usage: entries_tar FILES [--per-dir N] [--depth D] [--size BYTES]";
    let mut args = std::env::args().skip(1);
    let number = |text: Option<String>| -> Result<u64, String> {
        text.ok_or(usage)?.parse().map_err(|_| usage.to_string())
    };
    let mut shape = Shape {
        files: number(args.next())?,
        per_dir: 1000,
        depth: 1,
        size: 0,
    };
    while let Some(flag) = args.next() {
        let value = number(args.next())?;
        match flag.as_str() {
            "--per-dir" if value > 0 => shape.per_dir = value,
            "--depth" if (1..=8).contains(&value) => shape.depth = value as u32,
            "--size" if value <= 1 << 20 => shape.size = value,
            _ => return Err(usage.to_string()),
        }
    }
    Ok(shape)
}

fn header(path: &str, kind: tar::EntryType, mode: u32, size: u64) -> io::Result<tar::Header> {
    let mut header = tar::Header::new_ustar();
    header.set_path(path)?;
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_uid(1000);
    header.set_gid(1000);
    header.set_mtime(1_700_000_000);
    header.set_size(size);
    header.set_cksum();
    Ok(header)
}

/// The directory path of directory number `dir`: `d{dir}` at depth 1; deeper, the number
/// split into levels of (roughly) equal fan-out.
fn dir_path(dir: u64, dirs: u64, depth: u32) -> Vec<String> {
    let fan_out = (dirs as f64).powf(1.0 / f64::from(depth)).ceil().max(1.0) as u64;
    let mut levels = Vec::with_capacity(depth as usize);
    let mut rest = dir;
    for _ in 0..depth {
        levels.push(rest % fan_out);
        rest /= fan_out;
    }
    levels.reverse();
    let mut path = String::new();
    levels
        .iter()
        .map(|level| {
            if !path.is_empty() {
                path.push('/');
            }
            path.push_str(&format!("d{level}"));
            path.clone()
        })
        .collect()
}

fn write(shape: &Shape, out: &mut dyn Write) -> io::Result<()> {
    let dirs = shape.files.div_ceil(shape.per_dir);
    let mut listed = std::collections::HashSet::new();
    let mut data = Vec::with_capacity(shape.size as usize + 512);
    let mut file = 0u64;
    for dir in 0..dirs {
        let levels = dir_path(dir, dirs, shape.depth);
        for level in &levels {
            if listed.insert(level.clone()) {
                out.write_all(
                    header(&format!("{level}/"), tar::EntryType::Directory, 0o755, 0)?.as_bytes(),
                )?;
            }
        }
        let parent = levels.last().map_or("", String::as_str);
        for _ in 0..shape.per_dir.min(shape.files - file) {
            let path = format!("{parent}/f{file}");
            out.write_all(header(&path, tar::EntryType::Regular, 0o644, shape.size)?.as_bytes())?;
            if shape.size > 0 {
                data.clear();
                let line = format!("file {file} of {}\n", shape.files);
                while data.len() < shape.size as usize {
                    data.extend_from_slice(line.as_bytes());
                }
                data.truncate(shape.size as usize);
                data.resize(shape.size.next_multiple_of(512) as usize, 0);
                out.write_all(&data)?;
            }
            file += 1;
        }
    }
    out.write_all(&[0; 1024])?;
    out.flush()
}

fn main() -> ExitCode {
    let shape = match parse_args() {
        Ok(shape) => shape,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let mut out = BufWriter::with_capacity(1 << 20, io::stdout().lock());
    match write(&shape, &mut out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
