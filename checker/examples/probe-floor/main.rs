//! The least CPU a check can cost, to set beside ipvs-checker's and
//! keepalived's in the same lab run (lab/bench/checker.sh runs it as the
//! tool "floor"): one thread, no runtime, no health state, no metrics, and
//! for each check only the system calls the check itself needs:
//!
//! - `dns`: a UDP socket per real server, connected once and kept, and a
//!   query made once; a check is one send and one receive, passed on the
//!   answer's id, QR bit and rcode NOERROR;
//! - `http`: a new non-blocking connection, its handshake's last ACK sent
//!   with the request (as ipvs-checker sends it), a request made once
//!   that does not ask the server to close (as ipvs-checker's), the
//!   answer read until its head and `healthy` in its body, then closed
//!   with a reset (no FIN exchange, no TIME_WAIT);
//! - `https`: the same over TLS 1.2 (rustls with ring, as ipvs-checker),
//!   the chain verified against CA_FILE for SERVER_NAME on a full
//!   handshake, every later connection resuming the session (one client
//!   configuration and session cache for all: the name is the same); with
//!   `FLOOR_TLS13` set, over TLS 1.3 instead, as ipvs-checker resumes a
//!   server that speaks it (with a key exchange each time: rustls resumes
//!   TLS 1.3 only so), each real server keeping its own tickets;
//! - `exec`: SCRIPT started by `posix_spawn` (a vfork) with the address
//!   and port as its arguments, its end seen on a pidfd; exit 0 passes. At
//!   most as many run at once as there are CPUs: a program that waits for
//!   a CPU costs the same, and one killed at its timeout costs its CPU for
//!   no check, so this is the most checks a second the CPUs can finish
//!   (`FLOOR_PROGRAMS` sets another limit).
//!
//! With `FLOOR_TOKIO=1`, `http` checks run on a current-thread tokio
//! runtime instead, as ipvs-checker's probe threads run them: a task per
//! check with tokio's `TcpStream` (its epoll registration and removal)
//! and a timer for its timeout, the same socket, request and answer as
//! above. Beside the poll loop and ipvs-checker, it tells the runtime's
//! share of a check's cost from the checker's own. `FLOOR_TOKIO=set`
//! runs them on such a runtime too, but all on one task, through an
//! epoll set of its own registered once with the runtime (on_epoll_set.rs);
//! `FLOOR_TOKIO=tasks` the same with a task a real server that hands its
//! checks to that set (on_server_tasks.rs). `FLOOR_TOKIO=reuse` is
//! `FLOOR_TOKIO=1` with each real server's socket kept between its checks:
//! taken out of the runtime and disconnected (a `connect` to `AF_UNSPEC`,
//! which resets the connection as the close did) when a check ends, and
//! connected again, from a new port, for the next.
//!
//! Every real server is checked every interval (1 s; `FLOOR_INTERVAL_MS`),
//! timeout 1 s, in groups of 100 spread over the interval as ipvs-checker
//! spreads its probes (a check still going at its next turn skips it).
//! Every 10 s it prints to stderr the checks made, failed and timed out,
//! and how many groups started more than a tenth of the interval late.
//! lab/bench/README.md has the figures.
//!
//!   probe-floor dns|http|https|exec ADDRESSES PORT [SCRIPT | CA_FILE SERVER_NAME]
//!
//! ADDRESSES is a file of one IP address per line.

use std::collections::VecDeque;
use std::ffi::CString;
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use rustls::{ClientConfig, ClientConnection, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use socket2::{Domain, Socket, Type};

mod on_epoll_set;
mod on_server_tasks;
mod on_tokio;
mod schedule;
mod tls;

use schedule::{Schedule, TIMEOUT};
use tls::Tls;

/// The name asked for by `dns`, the bench's dnsmasq's.
const DNS_NAME: &str = "www.lab.test";

enum Kind {
    Dns {
        sockets: Vec<UdpSocket>,
        query: Vec<u8>,
    },
    Http {
        request: Vec<u8>,
    },
    Https {
        /// Each real server's (see `FLOOR_TLS13`).
        configs: Vec<Arc<ClientConfig>>,
        name: ServerName<'static>,
        request: Vec<u8>,
    },
    Exec {
        script: CString,
        port: CString,
        limit: usize,
    },
}

/// A check under way.
struct Check {
    server: usize,
    deadline: Instant,
    how: Pending,
}

enum Pending {
    /// The query's id, its answer awaited on the server's kept socket.
    Answer(u16),
    /// The connection, and what it read once the request went (`None`
    /// while it connects).
    Http(TcpStream, Option<Vec<u8>>),
    Tls(Box<Tls>),
    Program(libc::pid_t, OwnedFd),
}

#[derive(Default)]
struct Counts {
    made: u64,
    failed: u64,
    timeouts: u64,
    late_groups: u64,
}

impl Counts {
    /// A check ended.
    fn ended(&mut self, passed: bool) {
        self.made += 1;
        self.failed += u64::from(!passed);
    }

    /// Prints them to stderr (every 10 s).
    fn report(&self) {
        eprintln!(
            "floor: {} checks, {} failed ({} timeouts), {} groups started late",
            self.made, self.failed, self.timeouts, self.late_groups
        );
    }
}

fn main() -> anyhow::Result<()> {
    let usage =
        "usage: probe-floor dns|http|https|exec ADDRESSES PORT [SCRIPT | CA_FILE SERVER_NAME]";
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (kind, file, port) = match &args[..] {
        [kind, file, port, ..] => (kind.as_str(), file, port),
        _ => bail!("{usage}"),
    };
    let port: u16 = port.parse().with_context(|| format!("PORT {port:?}"))?;
    let addresses = std::fs::read_to_string(file)
        .with_context(|| format!("reading {file}"))?
        .lines()
        .map(|l| {
            l.trim()
                .parse::<IpAddr>()
                .with_context(|| format!("{file}: {l:?}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let servers: Vec<SocketAddr> = addresses
        .iter()
        .map(|&ip| SocketAddr::new(ip, port))
        .collect();
    let kind = match kind {
        "dns" => Kind::Dns {
            sockets: servers
                .iter()
                .map(|&s| {
                    let socket = UdpSocket::bind(SocketAddr::new(unspecified(s), 0))?;
                    socket.connect(s)?;
                    socket.set_nonblocking(true)?;
                    Ok(socket)
                })
                .collect::<std::io::Result<_>>()
                .context("making the UDP sockets")?,
            query: dns_query(DNS_NAME),
        },
        "http" => Kind::Http {
            request: b"GET / HTTP/1.1\r\nHost: floor\r\n\r\n".to_vec(),
        },
        "https" => {
            let (ca, name) = match &args[3..] {
                [ca, name, ..] => (ca, name),
                _ => bail!("{usage}"),
            };
            let mut roots = RootCertStore::empty();
            for cert in
                CertificateDer::pem_file_iter(ca).with_context(|| format!("reading {ca}"))?
            {
                roots.add(cert.with_context(|| format!("reading {ca}"))?)?;
            }
            // The suite ipvs-checker agrees on with a server that follows
            // the client's order (its AES-128-GCM with SHA-256 first).
            let tls13 = std::env::var_os("FLOOR_TLS13").is_some();
            let (suite, version) = if tls13 {
                (
                    rustls::CipherSuite::TLS13_AES_128_GCM_SHA256,
                    &rustls::version::TLS13,
                )
            } else {
                (
                    rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
                    &rustls::version::TLS12,
                )
            };
            let mut provider = rustls::crypto::ring::default_provider();
            provider.cipher_suites.retain(|s| s.suite() == suite);
            let config = Arc::new(
                ClientConfig::builder_with_provider(Arc::new(provider))
                    .with_protocol_versions(&[version])?
                    .with_root_certificates(roots)
                    .with_no_client_auth(),
            );
            Kind::Https {
                // A TLS 1.3 ticket resumes one connection: each real
                // server keeps its own, as ipvs-checker's do (one cache for
                // all runs out of them among hundreds of servers at once).
                configs: servers
                    .iter()
                    .map(|_| {
                        if tls13 {
                            let mut own = ClientConfig::clone(&config);
                            own.resumption = rustls::client::Resumption::in_memory_sessions(4);
                            Arc::new(own)
                        } else {
                            config.clone()
                        }
                    })
                    .collect(),
                name: ServerName::try_from(name.clone())
                    .with_context(|| format!("SERVER_NAME {name:?}"))?,
                request: b"GET / HTTP/1.1\r\nHost: floor\r\n\r\n".to_vec(),
            }
        }
        "exec" => Kind::Exec {
            script: CString::new(args.get(3).context(usage)?.as_str())?,
            port: CString::new(port.to_string())?,
            limit: std::env::var("FLOOR_PROGRAMS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        },
        other => bail!("{other:?} is not dns, http, https or exec; {usage}"),
    };
    // As many sockets as the hard limit allows: 5,000 real servers'
    // checks may be in flight at once.
    // SAFETY: getrlimit and setrlimit read and write the struct given.
    unsafe {
        let mut limit = std::mem::zeroed::<libc::rlimit>();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
    let interval = Duration::from_millis(
        std::env::var("FLOOR_INTERVAL_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1000),
    );
    if let Some(how) = std::env::var_os("FLOOR_TOKIO") {
        let Kind::Http { request } = kind else {
            bail!("FLOOR_TOKIO: http checks only");
        };
        return match how.to_str() {
            Some("1") => on_tokio::run(request, servers, interval, false),
            Some("reuse") => on_tokio::run(request, servers, interval, true),
            Some("set") => on_epoll_set::run(&Kind::Http { request }, &servers, interval, false),
            Some("set-reuse") => {
                on_epoll_set::run(&Kind::Http { request }, &servers, interval, true)
            }
            Some("tasks") => on_server_tasks::run(Kind::Http { request }, servers, interval),
            _ => bail!("FLOOR_TOKIO: 1, reuse, set, set-reuse or tasks, not {how:?}"),
        };
    }
    run(&kind, &servers, interval)
}

fn unspecified(s: SocketAddr) -> IpAddr {
    match s {
        SocketAddr::V4(_) => IpAddr::from([0u8; 4]),
        SocketAddr::V6(_) => IpAddr::from([0u16; 8]),
    }
}

/// A query for `name`, type A, class IN, recursion desired, id 0.
fn dns_query(name: &str) -> Vec<u8> {
    let mut q = vec![0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

fn run(kind: &Kind, servers: &[SocketAddr], interval: Duration) -> anyhow::Result<()> {
    let schedule = Schedule::new(servers.len(), interval);
    let mut busy = vec![false; servers.len()];
    let mut checks: Vec<Check> = Vec::new();
    let mut waiting: VecDeque<usize> = VecDeque::new();
    let mut counts = Counts::default();
    let start = Instant::now();
    let mut turn: u64 = 0; // groups started, over every interval
    let mut next_report = start + Duration::from_secs(10);
    let mut fds: Vec<libc::pollfd> = Vec::new();
    loop {
        let now = Instant::now();
        // Each group at its place.
        let (due, late) = schedule.due(start, now, &mut turn);
        counts.late_groups += late;
        for server in due.flat_map(|t| schedule.members(t)) {
            if !std::mem::replace(&mut busy[server], true) {
                waiting.push_back(server);
            }
        }
        while let Some(&server) = waiting.front() {
            if let Kind::Exec { limit, .. } = kind {
                if checks.len() >= *limit {
                    break;
                }
            }
            waiting.pop_front();
            let deadline = Instant::now() + TIMEOUT;
            match begin(kind, server, servers[server], turn) {
                Ok(how) => checks.push(Check {
                    server,
                    deadline,
                    how,
                }),
                Err(_) => {
                    counts.ended(false);
                    busy[server] = false;
                }
            }
        }
        if now >= next_report {
            counts.report();
            next_report += Duration::from_secs(10);
        }
        // Wait for the next event: a socket or program, a deadline, the
        // next group.
        let next_group = start + schedule.at(turn);
        let wake = checks
            .iter()
            .map(|c| c.deadline)
            .fold(next_group, Instant::min);
        fds.clear();
        fds.extend(checks.iter().map(|c| pollfd(kind, c)));
        let timeout = wake.saturating_duration_since(Instant::now());
        let ms = timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
        // SAFETY: fds is a live slice of pollfd of the length given.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
        if ready < 0 && std::io::Error::last_os_error().kind() != ErrorKind::Interrupted {
            bail!("poll: {}", std::io::Error::last_os_error());
        }
        let now = Instant::now();
        let mut i = 0;
        let mut k = 0;
        while i < checks.len() {
            let revents = fds.get(k).map_or(0, |f| f.revents);
            k += 1;
            let outcome = if revents != 0 {
                step(kind, &mut checks[i])
            } else if now >= checks[i].deadline {
                counts.timeouts += 1;
                Some(false)
            } else {
                None
            };
            match outcome {
                None => i += 1,
                Some(passed) => {
                    let check = checks.swap_remove(i);
                    // swap_remove moved the last check here: its pollfd too.
                    fds.swap_remove(k - 1);
                    k -= 1;
                    end(check.how, &mut busy[check.server]);
                    counts.ended(passed);
                }
            }
        }
    }
}

/// Starts a check of `server`.
fn begin(kind: &Kind, server: usize, addr: SocketAddr, turn: u64) -> std::io::Result<Pending> {
    match kind {
        Kind::Dns { sockets, query } => {
            let id = (turn as u16).wrapping_mul(31).wrapping_add(server as u16);
            let mut q = query.clone();
            q[..2].copy_from_slice(&id.to_be_bytes());
            sockets[server].send(&q)?;
            Ok(Pending::Answer(id))
        }
        Kind::Http { .. } => Ok(Pending::Http(connect(addr)?, None)),
        Kind::Https { configs, name, .. } => Ok(Pending::Tls(Box::new(Tls {
            stream: connect(addr)?,
            connection: ClientConnection::new(configs[server].clone(), name.clone())
                .map_err(std::io::Error::other)?,
            connected: false,
            sent: false,
            got: Vec::with_capacity(512),
        }))),
        Kind::Exec { script, port, .. } => {
            let address = CString::new(addr.ip().to_string())?;
            let argv = [
                script.as_ptr(),
                address.as_ptr(),
                port.as_ptr(),
                std::ptr::null(),
            ];
            let mut pid: libc::pid_t = 0;
            extern "C" {
                static environ: *const *mut libc::c_char;
            }
            // SAFETY: the strings outlive the call; argv ends with null;
            // environ is the process's own.
            let rc = unsafe {
                libc::posix_spawn(
                    &mut pid,
                    script.as_ptr(),
                    std::ptr::null(),
                    std::ptr::null(),
                    argv.as_ptr() as *const *mut libc::c_char,
                    environ,
                )
            };
            if rc != 0 {
                return Err(std::io::Error::from_raw_os_error(rc));
            }
            // SAFETY: a plain system call; a descriptor it returns is ours.
            let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
            if fd < 0 {
                let e = std::io::Error::last_os_error();
                // SAFETY: reaping our own child.
                unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
                return Err(e);
            }
            // SAFETY: pidfd_open returned a new descriptor, owned here.
            Ok(Pending::Program(pid, unsafe {
                OwnedFd::from_raw_fd(fd as RawFd)
            }))
        }
    }
}

fn pollfd(kind: &Kind, check: &Check) -> libc::pollfd {
    let (fd, events) = match (&check.how, kind) {
        (Pending::Answer(_), Kind::Dns { sockets, .. }) => {
            (sockets[check.server].as_raw_fd(), libc::POLLIN)
        }
        (Pending::Http(s, None), _) => (s.as_raw_fd(), libc::POLLOUT),
        (Pending::Http(s, Some(_)), _) => (s.as_raw_fd(), libc::POLLIN),
        (Pending::Tls(t), _) => {
            let write = !t.connected || t.connection.wants_write();
            (
                t.stream.as_raw_fd(),
                libc::POLLIN | if write { libc::POLLOUT } else { 0 },
            )
        }
        (Pending::Program(_, fd), _) => (fd.as_raw_fd(), libc::POLLIN),
        (Pending::Answer(_), _) => (-1, 0),
    };
    libc::pollfd {
        fd,
        events,
        revents: 0,
    }
}

/// What a ready check does next: `Some` of whether it passed once it ends.
fn step(kind: &Kind, check: &mut Check) -> Option<bool> {
    match (&mut check.how, kind) {
        (Pending::Answer(id), Kind::Dns { sockets, .. }) => {
            let mut buf = [0u8; 4096];
            match sockets[check.server].recv(&mut buf) {
                Ok(len) if len >= 12 && buf[..2] == id.to_be_bytes() => {
                    // QR set, rcode NOERROR.
                    Some(buf[2] & 0x80 != 0 && buf[3] & 0x0f == 0)
                }
                Ok(_) => None, // not this query's answer: wait on
                Err(e) if e.kind() == ErrorKind::WouldBlock => None,
                Err(_) => Some(false),
            }
        }
        (Pending::Http(stream, got @ None), Kind::Http { request }) => {
            match stream.write(request) {
                Ok(len) if len == request.len() => {
                    *got = Some(Vec::with_capacity(512));
                    None
                }
                _ => Some(false),
            }
        }
        (Pending::Http(stream, Some(got)), _) => {
            let mut buf = [0u8; 4096];
            match stream.read(&mut buf) {
                Ok(0) => Some(answered(got)),
                Ok(len) => {
                    got.extend_from_slice(&buf[..len]);
                    answered(got).then_some(true)
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => None,
                Err(_) => Some(false),
            }
        }
        (Pending::Tls(t), Kind::Https { request, .. }) => t.step(request),
        (Pending::Program(pid, _), _) => {
            let mut status = 0;
            // SAFETY: reaping our own child, whose pidfd said it ended.
            let reaped = unsafe { libc::waitpid(*pid, &mut status, libc::WNOHANG) };
            (reaped == *pid).then(|| libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0)
        }
        _ => Some(false),
    }
}

/// Whether `got` holds a 200 answer's head and `healthy` after it.
fn answered(got: &[u8]) -> bool {
    let Some(head) = got.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    got.starts_with(b"HTTP/1.1 200") && got[head..].windows(7).any(|w| w == b"healthy")
}

/// A check's end: a program still running is killed and reaped; sockets
/// close as they drop.
fn end(how: Pending, busy: &mut bool) {
    if let Pending::Program(pid, _) = how {
        // SAFETY: our own child; reaped here if the kill ended it.
        unsafe {
            if libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) == 0 {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, std::ptr::null_mut(), 0);
            }
        }
    }
    *busy = false;
}

/// A new non-blocking connection to `addr`, its last handshake ACK kept
/// for the first bytes, closed with a reset.
fn connect(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM.nonblocking(), None)?;
    socket.set_linger(Some(Duration::ZERO))?;
    connect_from(socket, addr)
}

/// `socket` (new, or disconnected) connected to `addr` as [`connect`]
/// connects.
fn connect_from(socket: Socket, addr: SocketAddr) -> std::io::Result<TcpStream> {
    socket.set_tcp_quickack(false)?;
    match socket.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    Ok(socket.into())
}
