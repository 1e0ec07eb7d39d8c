//! The compression floor of a conversion: compresses a file cut into independent blocks (128 KiB
//! by default) with zstd level 10, on one thread, and prints the CPU seconds it took. No
//! squashfs writer that compresses every data block can spend less; divided by the cores it is
//! the lowest wall time. Used by scripts/bench-convert.sh.
//!
//! Usage: zstd_floor FILE [--block-size BYTES] [--level N]
//! Prints `cpu_seconds input_bytes compressed_bytes`.

use std::fs::File;
use std::io::Read;
use std::process::ExitCode;

fn cpu_seconds() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given; RUSAGE_SELF is always valid.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

fn run() -> Result<(f64, u64, u64), String> {
    let usage = "usage: zstd_floor FILE [--block-size BYTES] [--level N]";
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or(usage)?;
    let (mut block_size, mut level) = (128 * 1024usize, 10i32);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(usage)?;
        match flag.as_str() {
            "--block-size" => block_size = value.parse().map_err(|_| usage)?,
            "--level" => level = value.parse().map_err(|_| usage)?,
            _ => return Err(usage.to_string()),
        }
    }
    let mut file = File::open(&path).map_err(|e| format!("{path}: {e}"))?;
    let mut compressor = zstd::bulk::Compressor::new(level).map_err(|e| format!("zstd: {e}"))?;
    let mut block = vec![0u8; block_size];
    let (mut input, mut output) = (0u64, 0u64);
    let start = cpu_seconds();
    loop {
        let mut filled = 0;
        while filled < block.len() {
            match file.read(&mut block[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("{path}: {e}")),
            }
        }
        if filled == 0 {
            break;
        }
        let compressed = compressor
            .compress(&block[..filled])
            .map_err(|e| format!("zstd: {e}"))?;
        input += filled as u64;
        output += compressed.len().min(filled) as u64;
    }
    Ok((cpu_seconds() - start, input, output))
}

fn main() -> ExitCode {
    match run() {
        Ok((cpu, input, output)) => {
            println!("{cpu:.2} {input} {output}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
