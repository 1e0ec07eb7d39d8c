//! Pulling images with the library, as a runtime embedding concil would: one long-lived
//! [`Store`] for every image, its layers' squashfs files printed bottom first.
//!
//! `cargo run --example pull -- [--config FILE] IMAGE...` (the configuration as `concil pull`
//! finds it: `--config`, else `$CONCIL_CONFIG`, else `~/.concil/config.json`).

use std::path::PathBuf;
use std::process::ExitCode;

use concil::{Config, Platform, Reference, Store};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1).peekable();
    let config_path = match args.peek().map(String::as_str) {
        Some("--config") => {
            args.next();
            args.next().map(PathBuf::from)
        }
        _ => None,
    };
    let images: Vec<String> = args.collect();
    if images.is_empty() {
        eprintln!("usage: pull [--config FILE] IMAGE...");
        return ExitCode::from(concil::exit_status::USAGE);
    }
    match pull(config_path, &images) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(concil::exit_status::of(&*error))
        }
    }
}

fn pull(config_path: Option<PathBuf>, images: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let store = Store::open(Config::load(config_path.as_deref())?)?;
    for image in images {
        let reference = Reference::parse(image)?;
        let pulled = store.pull(&reference, &Platform::host())?;
        println!(
            "{reference} {} ({})",
            pulled.manifest_digest, pulled.platform
        );
        for layer in &pulled.layers {
            println!("  {}", layer.path.display());
        }
    }
    Ok(())
}
