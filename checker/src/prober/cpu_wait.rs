//! How long a program, and the checker's thread that started it, waited
//! for a CPU: the kernel's run delay, the time a thread was ready to run
//! and did not (the second field of `/proc/PID/task/TID/schedstat`, in
//! nanoseconds). On a machine short of CPU a program that would answer
//! in a few milliseconds can take its whole timeout waiting for its turn;
//! that timeout is the checker's (the machine's), not the real server's
//! (see [`super::watch`]).
//!
//! The kernel adds a wait to the run delay when the thread gets the CPU:
//! a thread waiting now shows this wait only once it runs. In the normal
//! scheduling class, on a CPU shared by tens of programs, that is a
//! scheduling period at most; a thread that runs once in seconds (under
//! `SCHED_IDLE` beside a busy one) shows its wait that late.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// The most processes of a program's tree read: a program that started
/// more is judged on the first ones (the walk is made at a timeout, and
/// must stay cheap however many it forked).
const MAX_PROCESSES: usize = 64;

/// A thread's run delay, from the text of its `schedstat`.
fn parse(text: &str) -> Option<Duration> {
    let nanos = text.split_ascii_whitespace().nth(1)?.parse().ok()?;
    Some(Duration::from_nanos(nanos))
}

fn read(path: &Path) -> Option<Duration> {
    parse(&std::fs::read_to_string(path).ok()?)
}

/// The calling thread's run delay so far; `None` where the kernel does
/// not keep it (no `CONFIG_SCHED_INFO`) or `/proc` is not mounted.
pub fn this_thread() -> Option<Duration> {
    read(Path::new("/proc/thread-self/schedstat"))
}

/// What the program led by `pid`, and the processes it started that are
/// still there, waited for a CPU in all: the sum of every thread's run
/// delay. `None` when its leader is gone (reaped) or the kernel does not
/// say. The processes that ended before are not counted, so this is at
/// most what the program waited; and a number reused by another process
/// between two reads would be counted for it: a rare error in either
/// direction, of one measure at one timeout.
pub fn of_program(pid: u32) -> Option<Duration> {
    let leader = PathBuf::from(format!("/proc/{pid}/task/{pid}"));
    let mut waited = Duration::ZERO;
    let mut measured = false;
    let mut pending = vec![pid];
    let mut counted = 0;
    while let Some(process) = pending.pop() {
        if counted == MAX_PROCESSES {
            break;
        }
        counted += 1;
        let Ok(threads) = std::fs::read_dir(format!("/proc/{process}/task")) else {
            continue;
        };
        for thread in threads.flatten() {
            let dir = thread.path();
            if let Some(delay) = read(&dir.join("schedstat")) {
                waited += delay;
                measured |= dir == leader;
            }
            pending.extend(children(&dir));
        }
    }
    // Without its main thread's, the leader is gone or the kernel keeps
    // no run delay.
    measured.then_some(waited)
}

/// The processes a thread (`/proc/PID/task/TID`) started and that are
/// still there.
fn children(thread: &Path) -> Vec<u32> {
    std::fs::read_to_string(thread.join("children"))
        .map(|text| {
            text.split_ascii_whitespace()
                .filter_map(|pid| pid.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
pub mod tests {
    use std::os::unix::process::CommandExt as _;

    use super::*;

    /// What a command is put behind to be kept off the CPU while a [`Hog`]
    /// runs: on CPU 0 at nice 11, where it gets about a tenth of the CPU
    /// beside the hog, in slices close enough together that its run delay
    /// keeps up (a thread's wait is added when it next runs: under
    /// `SCHED_IDLE`, or at nice 19 beside nice 0, a program ran so seldom
    /// that its run delay stood still for longer than a test's timeout).
    pub const STARVED: [&str; 6] = ["/usr/bin/taskset", "-c", "0", "/usr/bin/nice", "-n", "11"];

    /// A busy process on CPU 0 at nice 5 (other tests' threads there keep
    /// three quarters of it), killed when dropped.
    pub struct Hog(std::process::Child);

    impl Hog {
        pub fn start() -> Self {
            let child = std::process::Command::new("taskset")
                .args([
                    "-c",
                    "0",
                    "nice",
                    "-n",
                    "5",
                    "sh",
                    "-c",
                    "while :; do :; done",
                ])
                .spawn()
                .expect("taskset");
            Hog(child)
        }
    }

    impl Drop for Hog {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    #[test]
    fn the_run_delay_is_the_second_field() {
        assert_eq!(
            parse("187015910 977672592 108\n"),
            Some(Duration::from_nanos(977_672_592))
        );
        assert_eq!(parse("187015910\n"), None);
        assert_eq!(parse("1 -2 3\n"), None);
        assert_eq!(parse(""), None);
    }

    #[test]
    fn a_program_gone_says_nothing() {
        let mut child = std::process::Command::new("true").spawn().expect("spawn");
        let pid = child.id();
        child.wait().expect("wait");
        assert_eq!(of_program(pid), None);
    }

    /// A program kept off the CPU, and a busy child it started.
    #[test]
    fn a_program_held_off_the_cpu_waited_and_its_children_count() {
        if this_thread().is_none() {
            eprintln!("skipped: this kernel keeps no run delay");
            return;
        }
        let _hog = Hog::start();
        let mut program = std::process::Command::new(STARVED[0])
            .args(&STARVED[1..])
            .args(["sh", "-c", "(while :; do :; done) & wait"])
            .process_group(0)
            .spawn()
            .expect("program");
        std::thread::sleep(Duration::from_millis(600));
        let waited = of_program(program.id());
        // SAFETY: kill(2) takes no pointers; the group is the program's.
        unsafe {
            libc::kill(-(program.id() as i32), libc::SIGKILL);
        }
        let _ = program.wait();
        let waited = waited.expect("the program is there");
        assert!(
            waited >= Duration::from_millis(300),
            "a program at nice 11 beside a busy one at nice 5 on one CPU waited only {waited:?}"
        );
    }
}
