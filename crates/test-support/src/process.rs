//! Running the programs tests drive: to success with the output returned ([`run`],
//! [`run_text`], [`run_program`]), or to their end within a time limit ([`wait_with_limit`]).

use std::ffi::OsStr;
use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long one run of a program under test may take before the test fails.
pub const COMMAND_LIMIT: Duration = Duration::from_secs(300);

/// Runs a command to completion (stdin empty); fails the test (with its stderr) unless it
/// succeeds. Returns its stdout.
pub fn run(command: &mut Command) -> Vec<u8> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("starting {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// [`run`], its stdout as text (which must be UTF-8).
pub fn run_text(command: &mut Command) -> String {
    String::from_utf8(run(command)).expect("tool output is UTF-8")
}

/// `program args` with `TZ=UTC` (listings print times in the local zone) through
/// [`run_text`].
pub fn run_program(program: &str, args: &[&OsStr]) -> String {
    run_text(Command::new(program).args(args).env("TZ", "UTC"))
}

/// `program before… image` through [`run_program`].
pub fn run_on(program: &str, before: &[&str], image: &Path) -> String {
    let mut args: Vec<&OsStr> = before.iter().map(|a| a.as_ref()).collect();
    args.push(image.as_os_str());
    run_program(program, &args)
}

/// Waits for a child started with piped stdout and stderr, reading both meanwhile; kills it
/// and fails the test once `limit` has passed.
pub fn wait_with_limit(mut child: Child, limit: Duration) -> Output {
    let stdout = read_in_background(child.stdout.take());
    let stderr = read_in_background(child.stderr.take());
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = stderr.join().unwrap_or_default();
            panic!(
                "pid {} did not finish within {limit:?}; stderr:\n{}",
                child.id(),
                String::from_utf8_lossy(&stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

/// Reads a pipe to its end on a thread of its own (so a child never blocks on a full pipe).
fn read_in_background<R: Read + Send + 'static>(pipe: Option<R>) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            // A read error leaves what arrived; the exit status tells what happened.
            let _ = pipe.read_to_end(&mut bytes);
        }
        bytes
    })
}
