//! `hooks.exec`: the program run with its arguments (no shell), the event
//! in its environment, in a process group of its own so that at the
//! timeout it is killed with every child it started. Its exit code and
//! the start of its stderr are logged; its stdout goes nowhere.

use std::process::Stdio;

use tokio::io::AsyncReadExt as _;
use tokio::process::Command;
use tracing::{info, warn};

use super::{Ending, Event};
use crate::config::ExecHook;

/// The most of a hook's stderr that is logged; the rest is read and
/// dropped, so a chatty hook cannot block on a full pipe.
const STDERR_KEPT: usize = 4096;

/// Runs `hook` for `event`.
pub(super) async fn run(hook: &ExecHook, event: &Event) -> Ending {
    let event_name = event.kind.as_str();
    let mut command = Command::new(&hook.argv[0]);
    command
        .args(&hook.argv[1..])
        .envs(event.environment())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            warn!(
                event = event_name,
                program = %hook.argv[0],
                "exec hook cannot start: {e}"
            );
            return Ending::Failed;
        }
    };
    let pid = child.id();
    let stderr = child.stderr.take();
    let read_stderr = async move {
        let mut kept = Vec::new();
        if let Some(mut stderr) = stderr {
            let mut buf = [0u8; 1024];
            while let Ok(n) = stderr.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                let room = STDERR_KEPT.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
        kept
    };
    let waited = tokio::time::timeout(hook.timeout, async {
        let (status, stderr) = tokio::join!(child.wait(), read_stderr);
        (status, stderr)
    })
    .await;
    match waited {
        Ok((Ok(status), stderr)) => {
            let stderr = String::from_utf8_lossy(&stderr);
            let stderr = stderr.trim_end();
            if status.success() {
                info!(event = event_name, program = %hook.argv[0], stderr = %stderr, "exec hook ran");
                Ending::Succeeded
            } else {
                warn!(event = event_name, program = %hook.argv[0], exit = %status, stderr = %stderr, "exec hook failed");
                Ending::Failed
            }
        }
        Ok((Err(e), _)) => {
            warn!(event = event_name, program = %hook.argv[0], "exec hook: cannot wait for it: {e}");
            Ending::Failed
        }
        Err(_) => {
            // The whole group: a shell script's children go with it.
            if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
                // SAFETY: kill(2) takes any pid; a negative one is the
                // process group made for this hook above.
                unsafe {
                    libc::kill(-pid, libc::SIGKILL);
                }
            }
            let _ = child.wait().await;
            warn!(
                event = event_name,
                program = %hook.argv[0],
                timeout = ?hook.timeout,
                "exec hook ran past its timeout: killed with its process group"
            );
            Ending::TimedOut
        }
    }
}
