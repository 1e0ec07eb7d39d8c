//! Kill anything, lose nothing: concurrent pulls, cleans, `rm`s and budget evictions on one
//! cache, one of them killed (SIGKILL) at a random moment, 200 times; then `cache verify`
//! finds no broken entry, the next clean leaves no working file, and every pull is correct.
//! RELIABILITY.md keeps the figures (`cargo test --test cache_soak -- --nocapture` prints
//! them).

use concil_test_support as support;

use std::error::Error;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::images::{Format, Images, PushedImage};
use support::pull::{concil_binary, config_for, run, ConcilHome};
use support::registry::Registry;

type TestResult = Result<(), Box<dyn Error>>;

/// How many processes are killed mid-run: rounds go on until this many kills landed before
/// their process ended (a kill after the end counts for nothing).
const KILLS: usize = 200;
/// More rounds than this means the kills keep missing: the test fails.
const MAX_ROUNDS: usize = 2_000;

/// What one process of a round does.
#[derive(Debug, Clone, Copy)]
enum Operation {
    Pull(usize),
    Remove(usize),
    CleanToSize,
    CleanByAge,
}

impl Operation {
    fn random(rng: &mut fastrand::Rng, images: usize) -> Operation {
        match rng.u8(..10) {
            0..=4 => Operation::Pull(rng.usize(..images)),
            5 | 6 => Operation::CleanToSize,
            7 | 8 => Operation::Remove(rng.usize(..images)),
            _ => Operation::CleanByAge,
        }
    }

    fn command(self, home: &ConcilHome, images: &[PushedImage], budget: u64) -> Command {
        let mut command = Command::new(concil_binary());
        command
            .env_clear()
            .env("HOME", home.cache_dir().join(".."))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        match self {
            Operation::Pull(index) => command
                .args(["pull", "--json"])
                .arg(&images[index].reference),
            Operation::Remove(index) => command.args(["cache", "rm"]).arg(&images[index].reference),
            Operation::CleanToSize => command
                .args(["cache", "clean", "--older-than", "100000", "--max-size"])
                .arg(budget.to_string()),
            Operation::CleanByAge => command.args(["cache", "clean", "--older-than", "0"]),
        };
        command.arg("--config").arg(home.config_path());
        command
    }
}

#[test]
fn two_hundred_kills_leave_no_broken_entry() -> TestResult {
    let registry = Registry::plain();
    let images = Images::new(&registry)?;
    let pushed = vec![
        images.push_layered("soak/gzip", "v1", Format::Oci)?,
        images.push_layered_zstd("soak/zstd", "v1")?,
        images.push_busybox("soak/busybox", "v1", Format::Docker)?,
    ];
    let home = ConcilHome::new(config_for(&registry));
    // A budget that holds about one image: evictions happen all the time.
    home.pull_json(&pushed[0].reference, &[]);
    let budget = support_total(&home) * 3 / 2;
    let seed = std::env::var("SOAK_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    eprintln!("soak: seed {seed} (SOAK_SEED={seed} repeats this run)");
    let mut rng = fastrand::Rng::with_seed(seed);

    let started = Instant::now();
    let (mut killed_mid_run, mut finished_before_kill, mut failed) = (0, 0, Vec::new());
    let (mut operations_run, mut refused_removals) = (0, 0);
    let mut round = 0;
    while killed_mid_run < KILLS {
        round += 1;
        assert!(
            round <= MAX_ROUNDS,
            "only {killed_mid_run} kills landed in {MAX_ROUNDS} rounds"
        );
        let operations: Vec<Operation> = (0..rng.usize(2..=4))
            .map(|_| Operation::random(&mut rng, pushed.len()))
            .collect();
        let mut children: Vec<(Operation, Child)> = operations
            .iter()
            .map(|operation| {
                let child = operation
                    .command(&home, &pushed, budget)
                    .spawn()
                    .expect("spawn concil");
                (*operation, child)
            })
            .collect();
        operations_run += children.len();
        let victim = rng.usize(..children.len());
        // Most operations take 20 to 300 ms here: kills land at every stage of them.
        std::thread::sleep(Duration::from_millis(rng.u64(0..80)));
        let victim_pid =
            rustix::process::Pid::from_raw(children[victim].1.id() as i32).expect("a child's pid");
        let _ = rustix::process::kill_process(victim_pid, rustix::process::Signal::KILL);
        for (index, (operation, child)) in children.iter_mut().enumerate() {
            let output = wait(child);
            if index == victim {
                if output.status.code().is_none() {
                    killed_mid_run += 1;
                } else {
                    finished_before_kill += 1;
                }
                continue;
            }
            // `rm` of an image that is not (or no longer) in the cache, or that a pull holds,
            // fails as it should.
            let refused_rm = matches!(operation, Operation::Remove(_))
                && matches!(output.status.code(), Some(1 | 4));
            if refused_rm {
                refused_removals += 1;
                continue;
            }
            if !output.status.success() {
                failed.push(format!(
                    "round {round}: {operation:?}: {}: {}",
                    output.status,
                    String::from_utf8_lossy(&output.stderr)
                ));
                continue;
            }
            if let Operation::Pull(image) = operation {
                check_pull_output(&output.stdout, &pushed[*image]);
            }
        }
    }
    let soak_seconds = started.elapsed().as_secs();

    // Nothing broken: only working files of the killed writers may be found.
    let output = run(home
        .concil()
        .args(["cache", "verify", "--json", "--config"])
        .arg(home.config_path()));
    let report: Value = serde_json::from_slice(&output.stdout)?;
    let problems = report["problems"].as_array().expect("problems");
    let broken: Vec<&Value> = problems
        .iter()
        .filter(|problem| problem["problem"] != "dead_writer")
        .collect();
    let dead_writers = problems.len() - broken.len();
    eprintln!(
        "soak: {round} rounds, {operations_run} processes, {killed_mid_run} killed mid-run, \
         {finished_before_kill} finished before their kill, {refused_removals} rm refused \
         (not in the cache, or held), {} other processes failed; \
         verify: {} broken entries, {dead_writers} working files of killed writers; {soak_seconds} s",
        failed.len(),
        broken.len()
    );
    assert_eq!(
        broken,
        Vec::<&Value>::new(),
        "broken entries after the soak"
    );
    assert!(
        failed.is_empty(),
        "processes that were not killed failed:\n{}",
        failed.join("\n")
    );
    assert!(
        killed_mid_run >= KILLS / 2,
        "most kills should land mid-run: {killed_mid_run}"
    );

    // The next clean leaves no working file; verify is clean; every pull is correct.
    home.clean(Duration::from_secs(100_000));
    home.assert_no_working_files();
    let output = run(home
        .concil()
        .args(["cache", "verify", "--config"])
        .arg(home.config_path()));
    assert!(output.status.success(), "verify after clean: {output:?}");
    for image in &pushed {
        let output = home.pull_json(&image.reference, &[]);
        check_pull_output(output.to_string().as_bytes(), image);
        home.assert_layers_match(image);
    }
    Ok(())
}

/// The cache's total size as `cache ls --json` says.
fn support_total(home: &ConcilHome) -> u64 {
    let output = run(home
        .concil()
        .args(["cache", "ls", "--json", "--config"])
        .arg(home.config_path()));
    let listing: Value = serde_json::from_slice(&output.stdout).expect("ls --json");
    listing["total_bytes"].as_u64().expect("total_bytes")
}

/// A pull's `--json` output names the image's layers by their diff_ids, under the cache.
fn check_pull_output(stdout: &[u8], image: &PushedImage) {
    let output: Value = serde_json::from_slice(stdout).expect("pull --json output");
    let layers = output["layers"].as_array().expect("layers");
    let diff_ids: Vec<&str> = layers
        .iter()
        .map(|layer| layer["diff_id"].as_str().expect("diff_id"))
        .collect();
    let expected: Vec<&str> = image.layers.iter().map(|l| l.diff_id.as_str()).collect();
    assert_eq!(diff_ids, expected, "{}", image.reference);
    for layer in layers {
        let path = layer["path"].as_str().expect("path");
        assert!(
            path.ends_with(layer["diff_id"].as_str().expect("diff_id")),
            "{path}"
        );
    }
}

fn wait(child: &mut Child) -> std::process::Output {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(_status) = child.try_wait().expect("wait for concil") {
            break;
        }
        assert!(Instant::now() < deadline, "a concil process hangs");
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut output = std::process::Output {
        status: child.wait().expect("status"),
        stdout: Vec::new(),
        stderr: Vec::new(),
    };
    use std::io::Read;
    if let Some(mut stdout) = child.stdout.take() {
        let _ = stdout.read_to_end(&mut output.stdout);
    }
    if let Some(mut stderr) = child.stderr.take() {
        let _ = stderr.read_to_end(&mut output.stderr);
    }
    output
}
