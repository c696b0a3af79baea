//! systemd's notify protocol, without libsystemd: each state is one
//! datagram (`READY=1`, `WATCHDOG=1`, `STOPPING=1`) sent to the Unix
//! socket named by `$NOTIFY_SOCKET`, a path or, starting with `@`, a name
//! in the abstract namespace. `$WATCHDOG_USEC` (for this process, when
//! `$WATCHDOG_PID` names it) says how often systemd wants `WATCHDOG=1`.
//!
//! The daemon's loop sends them (see `daemon::watchdog`): ready after its
//! first reconciliation, the watchdog only while it makes progress.

use std::io;
use std::os::linux::net::SocketAddrExt as _;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// Where the states go.
#[derive(Debug)]
pub struct Notifier {
    socket: UnixDatagram,
    target: SocketAddr,
}

impl Notifier {
    /// A notifier for the socket `name` (`$NOTIFY_SOCKET`: a path, or
    /// `@name` for an abstract one).
    pub fn new(name: &str) -> io::Result<Notifier> {
        let target = match name.strip_prefix('@') {
            Some(abstract_name) => SocketAddr::from_abstract_name(abstract_name.as_bytes())?,
            None if name.starts_with('/') => SocketAddr::from_pathname(name)?,
            None => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("NOTIFY_SOCKET={name:?} is neither a path nor @name"),
                ))
            }
        };
        let socket = UnixDatagram::unbound()?;
        // A full queue at systemd's end drops a state: never block the loop.
        socket.set_nonblocking(true)?;
        Ok(Notifier { socket, target })
    }

    /// Sends one state, e.g. `READY=1`.
    pub fn notify(&self, state: &str) -> io::Result<()> {
        self.socket
            .send_to_addr(state.as_bytes(), &self.target)
            .map(drop)
    }
}

/// `$NOTIFY_SOCKET`, if set and not empty.
pub fn socket_from_env() -> Option<String> {
    std::env::var("NOTIFY_SOCKET")
        .ok()
        .filter(|s| !s.is_empty())
}

/// How often systemd wants `WATCHDOG=1` from this process: `$WATCHDOG_USEC`
/// when `$WATCHDOG_PID` is unset or this process's id.
pub fn watchdog_from_env() -> Option<Duration> {
    let pid = std::env::var("WATCHDOG_PID").ok();
    watchdog(
        std::env::var("WATCHDOG_USEC").ok().as_deref(),
        pid.as_deref(),
        std::process::id(),
    )
}

fn watchdog(usec: Option<&str>, pid: Option<&str>, own: u32) -> Option<Duration> {
    if pid.is_some_and(|p| p.trim().parse::<u32>().ok() != Some(own)) {
        return None;
    }
    let usec: u64 = usec?.trim().parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_reach_a_path_and_an_abstract_socket() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).expect("bind");
        let notifier = Notifier::new(path.to_str().expect("utf-8")).expect("notifier");
        notifier.notify("READY=1").expect("send");
        let mut buf = [0; 64];
        let n = listener.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..n], b"READY=1");

        let name = format!("ipvs-checker-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).expect("name");
        let listener = UnixDatagram::bind_addr(&addr).expect("bind abstract");
        let notifier = Notifier::new(&format!("@{name}")).expect("notifier");
        notifier.notify("WATCHDOG=1").expect("send");
        let n = listener.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..n], b"WATCHDOG=1");

        assert!(Notifier::new("relative/path").is_err());
    }

    #[test]
    fn the_watchdog_is_for_this_process_only() {
        assert_eq!(
            watchdog(Some("10000000"), None, 7),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            watchdog(Some("10000000"), Some("7"), 7),
            Some(Duration::from_secs(10))
        );
        assert_eq!(watchdog(Some("10000000"), Some("8"), 7), None);
        assert_eq!(watchdog(Some("0"), None, 7), None);
        assert_eq!(watchdog(Some("soon"), None, 7), None);
        assert_eq!(watchdog(None, None, 7), None);
    }
}
