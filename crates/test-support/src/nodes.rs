//! Cluster nodes simulated on one machine, for tests of many machines sharing one cache.
//!
//! A node is a process in network and mount namespaces of its own (`unshare --mount
//! --propagation private --net`, which needs root): it has only its own loopback, and a private
//! tmpfs mounted over the cluster's scratch directory (its `HOME` and `TMPDIR`), so what nodes
//! share is only what the test gives them by path (a cache directory, say). It reaches chosen
//! loopback ports of the test's network namespace through [`Bridge`]s: inside the node,
//! `socat TCP-LISTEN:<port>,bind=127.0.0.1` forwards each connection to a Unix socket, and
//! outside, a [`Bridge`] forwards that socket's connections to `127.0.0.1:<port>` (or to another
//! port: a bridge may lead a node's traffic elsewhere, a slow link for one node, say). So the
//! same `http://127.0.0.1:PORT/` URLs work inside and outside.
//!
//! A node sets up its namespaces and bridges, then waits for its [`Barrier`]'s file to appear
//! and only then starts its command: nodes released by one barrier start at the same moment.
//!
//! Needs `unshare` and `mount` (util-linux), `ip` (iproute2) and `socat`.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::process::wait_with_limit;

/// How long a node may take to set up its namespaces and bridges, a bridge to listen, or a
/// node's command to start once released.
const SETUP_LIMIT: Duration = Duration::from_secs(30);

/// The node's side: set up, report, wait for the barrier, run the command, report again.
/// Parameters come as `NODE_*` variables, the command as the arguments.
const NODE_SCRIPT: &str = r#"
set -eu
ip link set lo up
mount -t tmpfs -o mode=0700,size=64m "concil-$NODE_NAME" "$NODE_SCRATCH"
: > "$NODE_SCRATCH/$NODE_NAME"
bridges=
trap 'kill $bridges 2>/dev/null || :' EXIT
for bridge in $NODE_BRIDGES; do
    socat "TCP-LISTEN:${bridge%%=*},bind=127.0.0.1,fork,reuseaddr" "UNIX-CONNECT:${bridge#*=}" &
    bridges="$bridges $!"
done
for bridge in $NODE_BRIDGES; do
    tries=0
    until socat -u /dev/null "TCP:127.0.0.1:${bridge%%=*}" 2>/dev/null; do
        tries=$((tries + 1))
        if [ "$tries" -ge 1000 ]; then
            echo "node $NODE_NAME: no bridge listens on port ${bridge%%=*}" >&2
            exit 90
        fi
        sleep 0.01
    done
done
readlink /proc/self/ns/net /proc/self/ns/mnt > "$NODE_DIR/namespaces"
: > "$NODE_DIR/ready"
until [ -e "$NODE_BARRIER" ]; do sleep 0.005; done
"$@" &
program=$!
echo "$program" > "$NODE_DIR/pid.new"
mv "$NODE_DIR/pid.new" "$NODE_DIR/pid"
set +e
wait "$program"
status=$?
ls -A "$NODE_SCRATCH" > "$NODE_DIR/scratch"
exit "$status"
"#;

/// The directory of a simulated cluster: the Unix sockets of its bridges, the nodes' report
/// directories, the barrier files, and the scratch directory every node mounts its own tmpfs
/// over (so, seen from the test, it stays empty).
pub struct Cluster {
    dir: tempfile::TempDir,
}

impl Cluster {
    pub fn new() -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix("concil-cluster-")
            .tempdir()
            .expect("temp dir for the cluster");
        fs::create_dir(dir.path().join("scratch")).expect("the scratch directory");
        fs::create_dir(dir.path().join("nodes")).expect("the nodes' directory");
        Cluster { dir }
    }

    /// The directory each node mounts its own tmpfs over.
    pub fn scratch(&self) -> PathBuf {
        self.dir.path().join("scratch")
    }

    /// Where node `name` reports (created here): also a place for files the test gives to that
    /// node alone, such as its configuration.
    pub fn node_dir(&self, name: &str) -> PathBuf {
        let dir = self.dir.path().join("nodes").join(name);
        fs::create_dir_all(&dir).expect("a node's directory");
        dir
    }

    /// A bridge from the Unix socket `<name>.sock` to `127.0.0.1:<target_port>` in the test's
    /// network namespace, listening when this returns.
    pub fn bridge(&self, name: &str, target_port: u16) -> Bridge {
        Bridge::start(&self.dir.path().join(format!("{name}.sock")), target_port)
    }

    /// A barrier: the nodes started with it wait until [`Barrier::release`].
    pub fn barrier(&self, name: &str) -> Barrier {
        Barrier {
            path: self.dir.path().join(format!("{name}.go")),
        }
    }

    /// Starts node `name` (its own network and mount namespaces), with `127.0.0.1:<port>`
    /// leading through each `(port, bridge)` and `command` to run once `barrier` is released,
    /// with only `PATH`, `HOME` and `TMPDIR` (the node's private scratch directory) set and its
    /// stdout and stderr the node's.
    pub fn start_node(
        &self,
        name: &str,
        bridges: &[(u16, &Bridge)],
        barrier: &Barrier,
        program: &Path,
        args: &[&OsStr],
    ) -> Node {
        assert!(
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'),
            "a node's name is a plain word: {name:?}"
        );
        let dir = self.node_dir(name);
        let bridges: Vec<String> = bridges
            .iter()
            .map(|(port, bridge)| format!("{port}={}", bridge.socket.display()))
            .collect();
        let child = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "--net", "sh", "-c"])
            .arg(NODE_SCRIPT)
            .arg("node")
            .arg(program)
            .args(args)
            .env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .env("HOME", self.scratch())
            .env("TMPDIR", self.scratch())
            .env("NODE_NAME", name)
            .env("NODE_DIR", &dir)
            .env("NODE_SCRATCH", self.scratch())
            .env("NODE_BARRIER", &barrier.path)
            .env("NODE_BRIDGES", bridges.join(" "))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group: the node and everything it starts are ended together.
            .process_group(0)
            .spawn()
            .expect("start a node with unshare (util-linux)");
        Node {
            name: name.to_owned(),
            dir,
            child: Some(child),
        }
    }
}

/// A file whose appearance starts the nodes waiting on it.
pub struct Barrier {
    path: PathBuf,
}

impl Barrier {
    pub fn release(&self) {
        fs::write(&self.path, b"go\n").expect("write the barrier file");
    }
}

/// Outside the nodes: `socat UNIX-LISTEN:<socket>,fork TCP:127.0.0.1:<port>`, ended (with the
/// connections it forked) when dropped.
pub struct Bridge {
    child: Child,
    socket: PathBuf,
}

impl Bridge {
    fn start(socket: &Path, port: u16) -> Bridge {
        let child = Command::new("socat")
            .arg(format!("UNIX-LISTEN:{},fork", socket.display()))
            .arg(format!("TCP:127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start socat (apt-get install socat)");
        let bridge = Bridge {
            child,
            socket: socket.to_owned(),
        };
        let deadline = Instant::now() + SETUP_LIMIT;
        // A connection made here is forwarded and closed at once: harmless to the peer.
        while UnixStream::connect(socket).is_err() {
            assert!(
                Instant::now() < deadline,
                "socat does not listen on {}",
                socket.display()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        bridge
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        kill_group(self.child.id());
        let _ = self.child.wait();
    }
}

/// A running node.
pub struct Node {
    name: String,
    dir: PathBuf,
    /// Taken by [`Node::finish`].
    child: Option<Child>,
}

impl Node {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Waits until the node is set up and waits on its barrier; fails the test with the node's
    /// output if it ended before.
    pub fn wait_ready(&mut self) {
        let deadline = Instant::now() + SETUP_LIMIT;
        while !self.dir.join("ready").exists() {
            self.assert_running("setting up");
            assert!(
                Instant::now() < deadline,
                "node {} not set up within {SETUP_LIMIT:?}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The PID (in the test's PID namespace) of the node's command, once it started.
    pub fn program_pid(&mut self) -> u32 {
        let deadline = Instant::now() + SETUP_LIMIT;
        loop {
            if let Ok(text) = fs::read_to_string(self.dir.join("pid")) {
                return text.trim().parse().expect("a PID in the node's pid file");
            }
            self.assert_running("starting its command");
            assert!(
                Instant::now() < deadline,
                "node {} did not start its command within {SETUP_LIMIT:?}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends SIGKILL to the node's command (not to the node's shell, which reports the
    /// command's end as status 137 and ends its bridges).
    pub fn kill_program(&mut self) {
        let pid = self.program_pid();
        let pid = libc::pid_t::try_from(pid).expect("a PID fits pid_t");
        // SAFETY: kill(2) with a PID this node started and has not waited for (its shell
        // waits for it, so the PID cannot have been reused yet).
        let result = unsafe { libc::kill(pid, libc::SIGKILL) };
        assert_eq!(
            result,
            0,
            "kill -KILL {pid}: {}",
            std::io::Error::last_os_error()
        );
    }

    /// The node's network and mount namespaces (`net:[…]`, `mnt:[…]`), as it saw them.
    pub fn namespaces(&self) -> Vec<String> {
        let text = fs::read_to_string(self.dir.join("namespaces")).expect("the node's namespaces");
        text.lines().map(str::to_owned).collect()
    }

    /// What the node saw in its scratch directory after its command ended.
    pub fn scratch_listing(&self) -> Vec<String> {
        let text =
            fs::read_to_string(self.dir.join("scratch")).expect("the node's scratch listing");
        text.lines().map(str::to_owned).collect()
    }

    /// Waits for the node to end (within `limit`): its command's exit status, stdout, stderr.
    pub fn finish(&mut self, limit: Duration) -> Output {
        let child = self.child.take().expect("the node is still running");
        wait_with_limit(child, limit)
    }

    fn assert_running(&mut self, doing: &str) {
        let child = self.child.as_mut().expect("the node is still running");
        if child.try_wait().expect("poll the node").is_some() {
            let child = self.child.take().expect("the node is still running");
            let output = wait_with_limit(child, SETUP_LIMIT);
            panic!(
                "node {} ended ({}) while {doing}; stderr:\n{}",
                self.name,
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_group(child.id());
            let _ = child.wait();
        }
    }
}

/// SIGKILL to the process group `pgid` (a group this module started: its leader's PID).
fn kill_group(pgid: u32) {
    if let Ok(pgid) = libc::pid_t::try_from(pgid) {
        // SAFETY: kill(2) on a process group we created; errors (the group is gone) ignored.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
}

/// The blocked `flock` waiters that `/proc/locks` shows for `pid` (one per waiting thread).
pub fn blocked_flock_waiters(pid: u32) -> usize {
    let locks = fs::read_to_string("/proc/locks").expect("read /proc/locks");
    locks
        .lines()
        .filter(|line| line.contains("->"))
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // `N: -> FLOCK  ADVISORY  WRITE <pid> <dev:inode> <start> <end>`
            fields.get(2) == Some(&"FLOCK") && fields.get(5) == Some(&pid.to_string().as_str())
        })
        .count()
}
