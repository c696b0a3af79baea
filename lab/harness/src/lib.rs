//! What the lab's end-to-end tests share (`ipvs/tests/kernel.rs`,
//! `exporter/tests/lab.rs`, `checker/tests/lab.rs`,
//! `checker/tests/probes.rs`): running commands in the lab's namespaces
//! (and requests from its client, [`fetch_from_client`]),
//! the path of `lab/topology.sh`, a lock with a one-time setup, since the
//! tests of a binary share one lab network and the director's IPVS table,
//! a guard for a daemon under test ([`Daemon`]) and whether a process is
//! gone ([`process_gone`]); a headless Chromium for pages ([`browser`]);
//! one HTTP GET over a stream the test opened ([`http`]).
//!
//! Test code: a command that fails panics with its output.

pub mod browser;
pub mod http;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// How long a daemon under test may take to end after a signal.
const EXIT_LIMIT: Duration = Duration::from_secs(60);

/// The director's network namespace.
pub const DIRECTOR: &str = "/run/netns/lab-director";

/// `lab/topology.sh`, by absolute path.
pub fn topology_script() -> String {
    format!("{}/../topology.sh", env!("CARGO_MANIFEST_DIR"))
}

/// Runs `script` with `sh -c`, in namespace `ns` (`lab-NAME`) if given;
/// returns its stdout, panics with its output if it fails.
pub fn run_in(ns: Option<&str>, script: &str) -> String {
    let mut command = match ns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, "sh", "-c", script]);
            c
        }
        None => {
            let mut c = Command::new("sh");
            c.args(["-c", script]);
            c
        }
    };
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {script:?}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{script:?} in {ns:?} failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Empties every namespace's IPVS table, stops every sync daemon (one
/// holds the module too) and unloads the ip_vs modules; panics if ip_vs
/// is still loaded. Module autoloading may load it again at the next
/// request for the IPVS family: a test that needs it gone blocks that.
pub fn unload_ip_vs() {
    assert!(try_unload_ip_vs(), "ip_vs is still loaded");
}

/// [`unload_ip_vs`] that says whether ip_vs is gone instead of panicking
/// (a running daemon that makes its table again between the flush and
/// the unload keeps the module in use: the caller tries again).
pub fn try_unload_ip_vs() -> bool {
    run_in(
        None,
        "for ns in $(ip netns list | cut -d' ' -f1) ''; do \
           in_ns() { if [ -n \"$ns\" ]; then ip netns exec \"$ns\" \"$@\"; else \"$@\"; fi; }; \
           in_ns ipvsadm --stop-daemon master 2>/dev/null; in_ns ipvsadm --stop-daemon backup 2>/dev/null; in_ns ipvsadm -C; \
         done",
    );
    Command::new("sh")
        .arg("-c")
        .arg("modprobe -r $(lsmod | awk '/^ip_vs_/ { print $1 }') ip_vs 2>/dev/null; ! grep -q '^ip_vs ' /proc/modules")
        .status()
        .is_ok_and(|status| status.success())
}

/// Whether process `pid` is gone, or a zombie (killed, not reaped yet by
/// its parent); `kill -0` would still find a zombie.
pub fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
    }
}

/// Runs `script` in the director's namespace.
pub fn director(script: &str) -> String {
    run_in(Some("lab-director"), script)
}

/// Runs `script` in the client's namespace.
pub fn client(script: &str) -> String {
    run_in(Some("lab-client"), script)
}

/// Fetches `url` from the client `times` times, a curl (so a connection)
/// each, all in one shell: every process a test starts in the VM costs it
/// tenths of a second. Panics unless each answer is a real server's page
/// (`rsK`).
pub fn fetch_from_client(url: &str, times: usize) {
    let answers = client(&format!(
        "for i in $(seq {times}); do curl -gsS --max-time 10 {url}; done"
    ));
    let bodies: Vec<&str> = answers.lines().collect();
    assert!(
        bodies.len() == times && bodies.iter().all(|b| b.starts_with("rs")),
        "{url} answered {bodies:?}"
    );
}

/// The lock every test of a binary holds (they share the lab network and
/// the director's table); a test that panicked does not poison it.
pub fn lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Takes the lock and runs `setup` once per test binary. A setup that
/// failed fails every later test at once instead of being tried again.
pub fn lab_once(setup: impl FnOnce()) -> MutexGuard<'static, ()> {
    let guard = lock();
    static ATTEMPTED: AtomicBool = AtomicBool::new(false);
    static READY: OnceLock<()> = OnceLock::new();
    if READY.get().is_none() && ATTEMPTED.swap(true, Ordering::SeqCst) {
        panic!("the lab setup failed in an earlier test");
    }
    READY.get_or_init(setup);
    guard
}

/// A daemon under test in the director's namespace: killed when the test
/// ends, its log printed if the test failed.
#[derive(Debug)]
pub struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    /// Runs `program` with `args` in the director's namespace, its stderr
    /// appended to `log` (so a restart keeps the earlier lines), and waits
    /// until `ready_url` answers there (`curl -sf`; a process start is slow
    /// in the VM), at most `within`, else panics with the log.
    pub fn start(
        program: &str,
        args: &[&std::ffi::OsStr],
        log: &Path,
        ready_url: &str,
        within: Duration,
    ) -> Daemon {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap_or_else(|e| panic!("log file {}: {e}", log.display()));
        // `ip netns exec` execs the program: this is its pid.
        let child = Command::new("ip")
            .args(["netns", "exec", "lab-director", program])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
        let daemon = Daemon {
            child,
            log: log.to_owned(),
        };
        let start = Instant::now();
        while !Command::new("ip")
            .args([
                "netns",
                "exec",
                "lab-director",
                "curl",
                "-sf",
                "-o",
                "/dev/null",
            ])
            .arg(ready_url)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
        {
            assert!(
                start.elapsed() < within,
                "{program} does not answer on {ready_url} after {within:?}:\n{}",
                daemon.log_text()
            );
            sleep(Duration::from_millis(100));
        }
        daemon
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends it `signal` (`HUP`, `KILL`, ...).
    pub fn signal(&self, signal: &str) {
        run_in(None, &format!("kill -{signal} {}", self.pid()));
    }

    /// Waits for it to end (after a signal); panics with its log if it
    /// has not ended within a minute, a hang on the way out being a
    /// defect of its own.
    pub fn wait(&mut self) {
        let start = Instant::now();
        while self.child.try_wait().is_ok_and(|ended| ended.is_none()) {
            assert!(
                start.elapsed() < EXIT_LIMIT,
                "the daemon has not ended {EXIT_LIMIT:?} after the signal:\n{}",
                self.log_text()
            );
            sleep(Duration::from_millis(50));
        }
    }

    /// Its log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- log {}:\n{}", self.log.display(), self.log_text());
        }
    }
}
