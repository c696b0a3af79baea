//! What the lab's end-to-end tests share (`ipvs/tests/kernel.rs`,
//! `exporter/tests/lab.rs`, `checker/tests/lab.rs`): running commands in
//! the lab's namespaces, the path of `lab/topology.sh`, and a lock with a
//! one-time setup, since the tests of a binary share one lab network and
//! the director's IPVS table.
//!
//! Test code: a command that fails panics with its output.

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

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

/// Runs `script` in the director's namespace.
pub fn director(script: &str) -> String {
    run_in(Some("lab-director"), script)
}

/// Runs `script` in the client's namespace.
pub fn client(script: &str) -> String {
    run_in(Some("lab-client"), script)
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
