//! A throttling HTTP proxy in front of a registry, for benchmarks of slow links.
//!
//! `throttle_proxy --listen 127.0.0.1:0 --upstream HOST:PORT --rate BYTES_PER_SEC` prints the
//! bound address on stdout and runs until killed. Blob bodies (`GET /v2/<repo>/blobs/<digest>`)
//! are limited to the rate per response; everything else passes at full speed.
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
    proxy.set_fault(Some(proxy::BlobFault::always(proxy::Fault::Throttle {
        bytes_per_sec: args.rate,
    })));
    let mut stdout = std::io::stdout();
    if writeln!(stdout, "{}", proxy.addr())
        .and_then(|()| stdout.flush())
        .is_err()
    {
        return ExitCode::FAILURE;
    }
    // Serve until killed; the acceptor and connection threads do the work.
    loop {
        std::thread::park();
    }
}
