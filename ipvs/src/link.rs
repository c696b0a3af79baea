//! The datagram channel under the transport: in production a
//! `NETLINK_GENERIC` socket in one network namespace; in the unit tests a
//! scripted kernel that can fail a read the way a real socket does
//! (ENOBUFS), which no unprivileged test could make the kernel do on cue.

use std::fmt::Debug;
use std::io;
use std::panic::{RefUnwindSafe, UnwindSafe};
use std::path::{Path, PathBuf};

use netlink_sys::{protocols::NETLINK_GENERIC, Socket, SocketAddr};

use crate::error::{Error, Result};

/// Where a [`crate::socket::Transport`] sends its requests and reads the
/// kernel's answers, one datagram at a time. The auto traits are those a
/// socket has, so that [`crate::Ipvs`] keeps them.
pub(crate) trait Link: Debug + Send + Sync + UnwindSafe + RefUnwindSafe {
    /// Sends one datagram to the kernel.
    fn send(&mut self, datagram: &[u8]) -> io::Result<()>;

    /// Reads one datagram into `buffer`'s spare capacity and returns its
    /// real size, which is larger than the capacity when it was cut
    /// (MSG_TRUNC).
    fn recv(&mut self, buffer: &mut Vec<u8>) -> io::Result<usize>;

    /// A new channel to the same kernel: a fresh socket in the same
    /// namespace.
    fn reopen(&self) -> Result<Box<dyn Link>>;
}

/// A netlink socket, and the namespace it was opened in.
#[derive(Debug)]
pub(crate) struct KernelLink {
    socket: Socket,
    netns: Option<PathBuf>,
}

impl KernelLink {
    /// Opens a socket in the caller's network namespace, or in the one at
    /// `netns` (a file such as `/run/netns/NAME` or `/proc/PID/ns/net`).
    pub(crate) fn open(netns: Option<&Path>) -> Result<Self> {
        let socket = match netns {
            None => new_socket()?,
            // A socket belongs to the namespace it was created in (see
            // [`crate::netns`]).
            Some(path) => crate::netns::in_netns(path, new_socket)??,
        };
        Ok(KernelLink {
            socket,
            netns: netns.map(Path::to_path_buf),
        })
    }
}

impl Link for KernelLink {
    fn send(&mut self, datagram: &[u8]) -> io::Result<()> {
        self.socket.send(datagram, 0).map(drop)
    }

    fn recv(&mut self, buffer: &mut Vec<u8>) -> io::Result<usize> {
        // MSG_TRUNC makes recv return the datagram's real size, so a
        // datagram larger than the buffer is seen, not silently cut.
        self.socket.recv(buffer, libc::MSG_TRUNC)
    }

    fn reopen(&self) -> Result<Box<dyn Link>> {
        Ok(Box::new(KernelLink::open(self.netns.as_deref())?))
    }
}

fn new_socket() -> Result<Socket> {
    let failed = |source| Error::Socket {
        operation: "opening a NETLINK_GENERIC socket".into(),
        source,
    };
    let mut socket = Socket::new(NETLINK_GENERIC).map_err(failed)?;
    socket.bind_auto().map_err(failed)?;
    socket.connect(&SocketAddr::new(0, 0)).map_err(failed)?;
    Ok(socket)
}
