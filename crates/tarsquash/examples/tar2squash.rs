//! Converts a tar, tar.gz or tar.zst file (or `-` for stdin) into a squashfs image with
//! `tarsquash`, the way `concil convert` does; used by scripts/bench-convert.sh.
//!
//! Usage: tar2squash INPUT OUTPUT [--threads N] [--level N]
//! Prints `diff_id tar_size image_size` on success; `error: …` and exit status 1 otherwise.

use std::fs::File;
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use tarsquash::decode::Compression;

struct Args {
    input: String,
    output: PathBuf,
    options: tarsquash::Options,
}

fn parse_args() -> Result<Args, String> {
    let usage = "usage: tar2squash INPUT OUTPUT [--threads N] [--level N]";
    let mut positional = Vec::new();
    let mut options = tarsquash::Options::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--threads" | "--level" => {
                let value = args
                    .next()
                    .ok_or_else(|| format!("{arg} needs a value\n{usage}"))?;
                let bad = |_| format!("{arg} {value}: not a number\n{usage}");
                if arg == "--threads" {
                    options.image.threads = value.parse().map_err(bad)?;
                } else {
                    options.image.level = value.parse().map_err(bad)?;
                }
            }
            _ if arg.starts_with("--") => return Err(format!("unknown option {arg}\n{usage}")),
            _ => positional.push(arg),
        }
    }
    match <[String; 2]>::try_from(positional) {
        Ok([input, output]) => Ok(Args {
            input,
            output: PathBuf::from(output),
            options,
        }),
        Err(_) => Err(usage.to_string()),
    }
}

fn run(args: &Args) -> Result<tarsquash::Conversion, Box<dyn std::error::Error>> {
    let input: Box<dyn Read> = if args.input == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(File::open(&args.input).map_err(|e| format!("{}: {e}", args.input))?)
    };
    let (_, mut tar) = Compression::detect_decoder(input)?;
    Ok(tarsquash::convert_to_path(
        &mut tar,
        &args.output,
        &args.options,
    )?)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(conversion) => {
            println!(
                "{} {} {}",
                conversion.diff_id, conversion.tar_size, conversion.image_size
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            let mut message = format!("error: {error}");
            let mut source = error.source();
            while let Some(cause) = source {
                message.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}
