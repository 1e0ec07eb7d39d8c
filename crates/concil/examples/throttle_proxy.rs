//! A throttling HTTP proxy in front of a registry, for benchmarks of slow links.
//!
//! `throttle_proxy --listen 127.0.0.1:0 --upstream HOST:PORT --rate BYTES_PER_SEC
//! [--cut-every BYTES] [--stats FILE]` prints the bound address on stdout and runs until killed.
//! Blob bodies (`GET /v2/<repo>/blobs/<digest>`) are limited to the rate per response, and with
//! `--cut-every` each response's connection is closed after that many body bytes (a link that
//! breaks); everything else passes at full speed. `--stats FILE` keeps FILE holding the number
//! of blob body bytes sent so far (rewritten every 100 ms), for "bytes received" figures.
//!
//! The proxy itself is the test suite's fault-injecting proxy (`concil-test-support`), so a
//! benchmark's "slow link" and a test's are the same code.

use concil_test_support::proxy;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

#[derive(Parser)]
#[command(about = "Throttle registry blob downloads for benchmarks")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// Registry to forward to (plain HTTP), as HOST:PORT.
    #[arg(long)]
    upstream: String,
    /// Blob body bytes per second, per response.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    rate: u64,
    /// Close each blob response's connection after this many body bytes.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    cut_every: Option<u64>,
    /// Keep this file holding the blob body bytes sent so far.
    #[arg(long)]
    stats: Option<std::path::PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let proxy = match proxy::Proxy::start(&args.listen, &args.upstream) {
        Ok(proxy) => proxy,
        Err(error) => {
            eprintln!("error: {}", proxy::error_chain(&error));
            return ExitCode::FAILURE;
        }
    };
    let fault = match args.cut_every {
        Some(cut_after) => proxy::Fault::ThrottledCut {
            bytes_per_sec: args.rate,
            cut_after,
        },
        None => proxy::Fault::Throttle {
            bytes_per_sec: args.rate,
        },
    };
    proxy.set_fault(Some(proxy::BlobFault::always(fault)));
    let mut stdout = std::io::stdout();
    if writeln!(stdout, "{}", proxy.addr())
        .and_then(|()| stdout.flush())
        .is_err()
    {
        return ExitCode::FAILURE;
    }
    // Serve until killed; the acceptor and connection threads do the work.
    loop {
        match &args.stats {
            Some(path) => {
                let partial = path.with_extension("part");
                let written = std::fs::write(&partial, format!("{}\n", proxy.blob_body_bytes()))
                    .and_then(|()| std::fs::rename(&partial, path));
                if let Err(error) = written {
                    eprintln!("error: writing {}: {error}", path.display());
                    return ExitCode::FAILURE;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            None => std::thread::park(),
        }
    }
}
