//! The cache's locks and commits across real processes. Each test starts copies of this test
//! binary that run only `child_entry`, with `ROLE_VAR` naming what the child does; children
//! report on stdout as `@@<WORD> <payload>` lines.

use std::fs::{self, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::Duration;

use concil::cache::{Cache, CachedLayer, CleanReport};
use concil::digest::Digest;

const ROLE_VAR: &str = "CONCIL_CACHE_TEST_ROLE";
const CACHE_VAR: &str = "CONCIL_CACHE_TEST_DIR";
/// How long a test waits for a child's report before it fails (instead of hanging).
const REPORT_TIMEOUT: Duration = Duration::from_secs(60);
const LAYER_SIZE: usize = 4 << 20;

fn digest(byte: u8) -> Digest {
    Digest::parse(&format!("sha256:{}", format!("{byte:02x}").repeat(32))).expect("a digest")
}

fn blob() -> Digest {
    digest(0xb1)
}

fn diff_id() -> Digest {
    digest(0xd1)
}

/// Distinct bytes, so a truncated or mixed-up file cannot pass for the layer.
fn layer_content() -> Vec<u8> {
    (0..LAYER_SIZE).map(|index| (index % 251) as u8).collect()
}

/// A running child and the `@@` reports it prints.
struct ChildProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    reports: Receiver<String>,
}

impl ChildProcess {
    fn start(role: &str, cache_dir: &Path) -> ChildProcess {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "child_entry",
                "--ignored",
                "--nocapture",
                "--quiet",
            ])
            .env(ROLE_VAR, role)
            .env(CACHE_VAR, cache_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().unwrap();
        let (sender, reports) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // The test harness may print on the same line; the report starts at "@@".
                if let Some(start) = line.find("@@") {
                    if sender.send(line[start + 2..].to_owned()).is_err() {
                        break;
                    }
                }
            }
        });
        ChildProcess {
            child,
            stdin,
            reports,
        }
    }

    /// Waits for the next report, which must start with `word`; returns its payload.
    fn expect(&self, word: &str) -> String {
        let report = self
            .reports
            .recv_timeout(REPORT_TIMEOUT)
            .unwrap_or_else(|error| panic!("no {word} report from child: {error}"));
        let payload = report
            .strip_prefix(word)
            .unwrap_or_else(|| panic!("expected {word}, child reported {report:?}"));
        payload.trim().to_owned()
    }

    fn tell(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    fn kill(mut self) {
        self.child.kill().unwrap(); // SIGKILL
        self.child.wait().unwrap();
    }

    fn finish(mut self) {
        drop(self.stdin.take());
        let status = self.child.wait().unwrap();
        assert!(status.success(), "child failed: {status}");
    }
}

#[test]
fn contending_processes_wait_and_find_the_committed_layer() {
    let dir = tempfile::tempdir().unwrap();
    let cache_dir = dir.path().join("cache");
    let mut children: Vec<ChildProcess> = (0..4)
        .map(|_| ChildProcess::start("fetch_layer", &cache_dir))
        .collect();
    for child in &children {
        child.expect("READY");
    }
    // Release them together, so that they contend for the lock.
    for child in &mut children {
        child.tell("go");
    }
    for child in children {
        child.finish();
    }

    // Appended under the lock by each child: "enter PID" then "leave PID OUTCOME". Had two
    // children held the lock at once, their lines would interleave.
    let log = fs::read_to_string(cache_dir.join("log")).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 8, "{log}");
    let mut outcomes = Vec::new();
    for pair in lines.chunks(2) {
        let enter: Vec<&str> = pair[0].split(' ').collect();
        let leave: Vec<&str> = pair[1].split(' ').collect();
        assert_eq!(enter[0], "enter", "{log}");
        assert_eq!(leave[0], "leave", "{log}");
        assert_eq!(
            enter[1], leave[1],
            "lock held by two processes at once:\n{log}"
        );
        outcomes.push(leave[2]);
    }
    assert_eq!(outcomes, ["committed", "found", "found", "found"], "{log}");

    let cache = Cache::open(&cache_dir).unwrap();
    let layer = cache.layer_by_blob(&blob()).unwrap().unwrap();
    assert_eq!(layer.diff_id, diff_id());
    assert!(fs::read(&layer.path).unwrap() == layer_content());
    assert_eq!(fs::read_dir(cache_dir.join("tmp")).unwrap().count(), 0);
}

#[test]
fn lock_of_a_killed_holder_is_free_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let cache_dir = dir.path().join("cache");
    let cache = Cache::open(&cache_dir).unwrap();
    let holder = ChildProcess::start("hold_lock", &cache_dir);
    holder.expect("LOCKED");
    assert!(cache.try_lock(&blob()).unwrap().is_none());

    // A second process finds the lock busy and blocks in `lock`.
    let waiter = ChildProcess::start("wait_for_lock", &cache_dir);
    waiter.expect("BUSY");
    assert!(waiter.reports.try_recv().is_err(), "waiter got a held lock");

    holder.kill();
    // The kernel released the flock when the holder died; the blocked waiter gets it.
    waiter.expect("LOCKED");
    waiter.finish();
    assert!(cache.try_lock(&blob()).unwrap().is_some());
}

#[test]
fn killed_writer_leaves_no_final_file_and_clean_removes_its_ingest_file() {
    let dir = tempfile::tempdir().unwrap();
    let cache_dir = dir.path().join("cache");
    let cache = Cache::open(&cache_dir).unwrap();
    let killed = ChildProcess::start("write_and_hang", &cache_dir);
    let killed_path = PathBuf::from(killed.expect("WRITING"));
    let alive = ChildProcess::start("write_and_hang", &cache_dir);
    let alive_path = PathBuf::from(alive.expect("WRITING"));
    killed.kill();

    assert_eq!(cache.layer_by_diff_id(&diff_id()).unwrap(), None);
    assert_eq!(cache.layer_by_blob(&blob()).unwrap(), None);
    assert_eq!(fs::read_dir(cache_dir.join("layers")).unwrap().count(), 0);
    assert!(
        killed_path.is_file(),
        "the killed writer's file is gone already"
    );

    // Only the dead writer's file goes: the live one holds the flock on its file.
    let report = cache.clean(Duration::from_secs(86_400)).unwrap();
    assert_eq!(
        report,
        CleanReport {
            removed_files: 1,
            removed_bytes: (LAYER_SIZE / 2) as u64
        }
    );
    assert!(!killed_path.exists());
    assert!(alive_path.is_file());
    alive.kill();
}

#[test]
fn readers_never_see_a_partial_final_file() {
    let dir = tempfile::tempdir().unwrap();
    let cache_dir = dir.path().join("cache");
    let cache = Cache::open(&cache_dir).unwrap();
    let mut writer = ChildProcess::start("write_slowly", &cache_dir);
    writer.expect("READY");
    writer.tell("go");
    // Look as often as we can while the writer writes chunk by chunk, then commits.
    let mut looks_while_absent = 0u64;
    let found: CachedLayer = loop {
        match cache.layer_by_blob(&blob()).unwrap() {
            Some(layer) => break layer,
            None => looks_while_absent += 1,
        }
        if let Ok(report) = writer.reports.try_recv() {
            assert_eq!(report.trim(), "COMMITTED");
        }
    };
    // The first time the final name exists, it holds everything.
    assert!(fs::read(&found.path).unwrap() == layer_content());
    assert!(looks_while_absent > 0);
    writer.finish();
}

/// The child processes' roles. Without `ROLE_VAR` (a normal `--include-ignored` run) it does
/// nothing.
#[test]
#[ignore = "entry point of the child processes that the other tests start"]
fn child_entry() {
    let Ok(role) = std::env::var(ROLE_VAR) else {
        return;
    };
    let cache = Cache::open(std::env::var_os(CACHE_VAR).unwrap()).unwrap();
    match role.as_str() {
        "fetch_layer" => fetch_layer(&cache),
        "hold_lock" => {
            let _lock = cache.lock(&blob()).unwrap();
            report("LOCKED", "");
            wait_for_line();
        }
        "wait_for_lock" => {
            assert!(cache.try_lock(&blob()).unwrap().is_none());
            report("BUSY", "");
            let _lock = cache.lock(&blob()).unwrap();
            report("LOCKED", "");
        }
        "write_and_hang" => {
            let mut ingest = cache.ingest().unwrap();
            let content = layer_content();
            ingest.file().write_all(&content[..LAYER_SIZE / 2]).unwrap();
            report("WRITING", &ingest.path().display().to_string());
            wait_for_line();
        }
        "write_slowly" => {
            report("READY", "");
            wait_for_line();
            let mut ingest = cache.ingest().unwrap();
            for chunk in layer_content().chunks(64 << 10) {
                ingest.file().write_all(chunk).unwrap();
                thread::sleep(Duration::from_millis(2));
            }
            ingest.commit_layer(&diff_id(), Some(&blob())).unwrap();
            report("COMMITTED", "");
        }
        other => panic!("unknown role {other}"),
    }
}

/// The store's pattern: lock, look again, convert and commit only if still absent.
fn fetch_layer(cache: &Cache) {
    report("READY", "");
    wait_for_line();
    let lock = cache.lock(&blob()).unwrap();
    let pid = std::process::id();
    append_log(cache, &format!("enter {pid}"));
    let outcome = match cache.layer_by_blob(&blob()).unwrap() {
        Some(layer) => {
            assert_eq!(layer.diff_id, diff_id());
            assert!(fs::read(&layer.path).unwrap() == layer_content());
            "found"
        }
        None => {
            let mut ingest = cache.ingest().unwrap();
            for chunk in layer_content().chunks(256 << 10) {
                ingest.file().write_all(chunk).unwrap();
            }
            ingest.commit_layer(&diff_id(), Some(&blob())).unwrap();
            "committed"
        }
    };
    // Holding the lock a little longer only widens the window for an overlap to show.
    thread::sleep(Duration::from_millis(20));
    append_log(cache, &format!("leave {pid} {outcome}"));
    drop(lock);
}

fn append_log(cache: &Cache, line: &str) {
    let mut log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(cache.root().join("log"))
        .unwrap();
    // One write per line: O_APPEND keeps it whole.
    log.write_all(format!("{line}\n").as_bytes()).unwrap();
}

fn report(word: &str, payload: &str) {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "@@{word} {payload}").unwrap();
    stdout.flush().unwrap();
}

/// Blocks until the parent writes a line or closes stdin.
fn wait_for_line() {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
}
