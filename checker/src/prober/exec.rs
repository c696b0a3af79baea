//! `exec`: an external program (argv, no shell) that says whether the
//! real server is healthy by its exit status, as keepalived's `MISC_CHECK`
//! and ldirectord's `checktype=external`.
//!
//! The program is told which real server to check in its arguments
//! (placeholders such as `{rs_address}`, replaced in each argument) and in
//! its environment (`IPVS_CHECKER_RS_ADDRESS`, ... see [`ExecCheck::PLACEHOLDERS`]).
//! It runs in a process group of its own, with stdin closed: at the
//! probe's timeout the whole group is killed (SIGKILL), so the shell
//! script's `sleep` or the `curl` it started go with it. What it writes
//! is read as it comes, so that it never blocks on a full pipe, and the
//! first [`OUTPUT_LIMIT`] bytes of each of stdout and stderr are kept for
//! the error of a failed probe.
//!
//! Exit 0 passes, anything else fails. With `dynamic_weight` (keepalived's
//! `misc_dynamic`) an exit status from 2 to 255 passes too and sets the
//! real server's weight to the status less 2; 0 passes leaving the weight
//! where the program last set it; 1 fails.

use std::io;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Child;

use super::watch::Watch;
use super::{cpu_wait, Phase, Phases, ProbeError, Success, Target};
use crate::config::ExecCheck;

/// The bytes of stdout, and of stderr, kept for the error message.
pub const OUTPUT_LIMIT: usize = 2048;

/// The command line and environment of one real server's program, with
/// its placeholders replaced (built once, used at every probe).
#[derive(Debug, Clone)]
pub struct Prepared {
    argv: Vec<String>,
    env: Vec<(String, String)>,
}

/// The virtual service the real server belongs to, as the program is
/// told: address, port, protocol (`tcp`, `udp`, `sctp`, `fwm`) and
/// firewall mark (empty but for a fwmark service).
#[derive(Debug, Clone, Default)]
pub struct Virtual {
    /// Its address (empty for a fwmark service).
    pub address: String,
    /// Its port (empty for a fwmark service).
    pub port: String,
    /// `tcp`, `udp`, `sctp` or `fwm`.
    pub protocol: String,
    /// The firewall mark, or empty.
    pub fwmark: String,
}

impl Virtual {
    /// What the program is told of `service`.
    pub fn of(service: &ipvs::ServiceKey) -> Self {
        match service {
            ipvs::ServiceKey::Addr { protocol, addr } => Virtual {
                address: addr.ip().to_string(),
                port: addr.port().to_string(),
                protocol: match protocol {
                    ipvs::Protocol::Tcp => "tcp".into(),
                    ipvs::Protocol::Udp => "udp".into(),
                    ipvs::Protocol::Sctp => "sctp".into(),
                    other => other.number().to_string(),
                },
                fwmark: String::new(),
            },
            ipvs::ServiceKey::Fwmark { mark, .. } => Virtual {
                protocol: "fwm".into(),
                fwmark: mark.to_string(),
                ..Virtual::default()
            },
        }
    }
}

impl Prepared {
    /// `check`'s program for the real server probed at `target`, of the
    /// virtual service `service`.
    pub fn new(check: &ExecCheck, target: &Target, service: &Virtual) -> Self {
        let values = [
            target.addr.ip().to_string(),
            target.addr.port().to_string(),
            service.address.clone(),
            service.port.clone(),
            service.protocol.clone(),
            service.fwmark.clone(),
        ];
        let argv = check
            .command
            .iter()
            .map(|arg| {
                ExecCheck::PLACEHOLDERS
                    .iter()
                    .zip(&values)
                    .fold(arg.clone(), |arg, ((name, _), value)| {
                        arg.replace(name, value)
                    })
            })
            .collect();
        let mut env: Vec<(String, String)> = ExecCheck::PLACEHOLDERS
            .iter()
            .zip(values)
            .map(|((_, var), value)| ((*var).to_owned(), value))
            .collect();
        env.extend(check.env.iter().cloned());
        Prepared { argv, env }
    }
}

/// Kills a process group when dropped, unless disarmed: the program and
/// whatever it started, at the timeout (the probe's future is dropped
/// then).
pub(super) struct GroupKill(Option<i32>);

impl Drop for GroupKill {
    fn drop(&mut self) {
        if let Some(group) = self.0 {
            // SAFETY: kill(2) takes no pointers; a negative pid names the
            // process group the child leads (made with process_group(0)),
            // whose id stays taken while any of its members lives.
            unsafe {
                libc::kill(-group, libc::SIGKILL);
            }
        }
    }
}

/// A program started: the child, the guard that kills its group, and
/// how long starting it waited for a CPU on the checker's side.
pub(super) struct Started {
    pub child: Child,
    pub group: GroupKill,
    pub waited: Duration,
}

/// Starts `command` (made with `process_group(0)`), and the guard that
/// kills its group, on a blocking thread: a spawn waits for the child's
/// exec, which on a loaded machine or from a slow file system takes a
/// while (0.1 to 0.5 s in the lab's emulated VM), and on the probe thread
/// that wait would hold up every other probe there, and make the checker
/// late, so that their timeouts, and this program's own, would not be
/// judged. A probe dropped meanwhile (its timeout) drops what the spawn
/// returns when it is done, which kills the group. What the start waited
/// for a CPU: until the blocking thread took it up, and that thread's run
/// delay while it started the program (the child's own is the child's).
pub(super) async fn spawn(mut command: tokio::process::Command) -> io::Result<Started> {
    let asked = Instant::now();
    tokio::task::spawn_blocking(move || {
        let queued = asked.elapsed();
        let before = cpu_wait::this_thread();
        let child = command.spawn()?;
        let group = GroupKill(child.id().and_then(|id| i32::try_from(id).ok()));
        let starting = cpu_wait::this_thread()
            .zip(before)
            .map_or(Duration::ZERO, |(after, before)| {
                after.saturating_sub(before)
            });
        Ok(Started {
            child,
            group,
            waited: queued + starting,
        })
    })
    .await
    .map_err(io::Error::other)?
}

/// Runs the program once, timed as the `response` phase.
pub async fn probe(
    check: &ExecCheck,
    prepared: &Prepared,
    watch: &Watch,
    waited: &mut Option<Duration>,
    phases: &mut Phases,
) -> Result<Success, ProbeError> {
    let asked = Instant::now();
    phases.begin(Phase::Response);
    let Some((program, args)) = prepared.argv.split_first() else {
        return Err(ProbeError::Exec("no program to run".into()));
    };
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .envs(prepared.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    watch.starting(asked);
    let Started {
        mut child,
        mut group,
        waited: start_waited,
    } = spawn(command)
        .await
        .map_err(|e| ProbeError::Exec(format!("cannot run {program}: {e}")))?;
    let pid = child.id();
    if let Some(pid) = pid {
        watch.running(pid, asked, start_waited);
    }
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    // Its output read to the end first, then its status: the program is
    // reaped last, so that until then its number is its own (a zombie's
    // included) and its run delay there to read.
    let (out, err) = tokio::join!(bounded(stdout), bounded(stderr));
    *waited = pid
        .and_then(cpu_wait::of_program)
        .map(|delay| delay + start_waited);
    let status = child.wait().await;
    // Done before the timeout: nothing of it is left to kill (a child it
    // left behind with our pipes closed is its own business).
    group.0 = None;
    let status = status.map_err(|e| ProbeError::Exec(format!("waiting for {program}: {e}")))?;
    phases.end();
    let code = status.code();
    match code {
        Some(0) => Ok(Success::default()),
        Some(n @ 2..=255) if check.dynamic_weight => Ok(Success {
            weight: Some(n as u32 - 2),
            ..Success::default()
        }),
        _ => {
            let how = match code {
                Some(n) => format!("exit status {n}"),
                None => {
                    use std::os::unix::process::ExitStatusExt as _;
                    format!("killed by signal {}", status.signal().unwrap_or(0))
                }
            };
            Err(ProbeError::Exit(format!(
                "{how}{}{}",
                out.describe("stdout"),
                err.describe("stderr")
            )))
        }
    }
}

/// The start of what a program wrote on one stream, and how much.
#[derive(Debug, Default)]
struct Output {
    kept: Vec<u8>,
    total: u64,
}

impl Output {
    /// `; stdout: "..."`, or nothing when it wrote nothing.
    fn describe(&self, name: &str) -> String {
        if self.total == 0 {
            return String::new();
        }
        let text = String::from_utf8_lossy(&self.kept);
        let more = self.total - self.kept.len() as u64;
        let more = if more > 0 {
            format!(" (and {more} bytes more)")
        } else {
            String::new()
        };
        format!("; {name}: {:?}{more}", text.trim_end())
    }
}

/// Reads `stream` to its end, keeping its first [`OUTPUT_LIMIT`] bytes.
async fn bounded(stream: Option<impl AsyncRead + Unpin>) -> Output {
    let mut output = Output::default();
    let Some(mut stream) = stream else {
        return output;
    };
    let mut chunk = [0u8; 8192];
    loop {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return output,
            Ok(n) => {
                output.total += n as u64;
                let room = OUTPUT_LIMIT.saturating_sub(output.kept.len());
                output.kept.extend_from_slice(&chunk[..n.min(room)]);
            }
        }
    }
}
