//! `tcp`: the real server accepts a connection.
//!
//! Every probe's connection ends with a reset (its socket disconnected and
//! kept for the next probe, see [`idle`]; or, not kept, closed with
//! `SO_LINGER` 0), as HAProxy closes its checks': the probe has read all
//! it wanted, and an orderly close would cost a FIN each way and leave a
//! TIME_WAIT socket, on the checker for a `tcp` check (one per probe for
//! a minute: tens of thousands at hundreds of real servers) or on the
//! real server for HTTP (which closes first after `Connection: close`),
//! and the close was a large part of an HTTP probe's CPU in a profile
//! (lab/bench/README.md).
//!
//! A probe through the VIP (`probe_through_vip`, see
//! [`crate::config::ProbeService`]) is made here too: its socket carries
//! the probe service's mark and is bound to the director's own address
//! toward the real server, which the real server's answer (from the VIP)
//! comes back to.

mod connection;
mod idle;
mod set;

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use socket2::{Domain, Socket, Type};

pub use connection::Connection;
pub use idle::{disconnect, Idle};
use set::Registered;
pub use set::{epoll_set, take_events, Sent};

use super::{Phase, Phases, ProbeError, Success, Target, Watch};
use crate::config::Through;

/// Opens a TCP connection to the target and closes it.
pub async fn probe(
    target: &Target,
    watch: &Watch,
    phases: &mut Phases,
) -> Result<Success, ProbeError> {
    connect(target, watch, phases).await?;
    Ok(Success::default())
}

/// A TCP connection to the target from its source address, if set, timed
/// as the `connect` phase, its socket named to `watch`.
pub(super) async fn connect(
    target: &Target,
    watch: &Watch,
    phases: &mut Phases,
) -> Result<Connection, ProbeError> {
    Ok(open(target, watch, phases, false, None).await?.0)
}

/// The socket of a connection whose first bytes are the checker's (an
/// HTTP request, a ClientHello, a DNS query), not connected yet, the
/// `connect` phase begun: its connection is made by [`make_sending`],
/// which sends them as it is made. (A ClientHello is made by a TLS client
/// built over the connection's stream, so the stream comes first.)
///
/// The handshake's last ACK is not sent alone but with the first bytes
/// (`TCP_QUICKACK` off before the connect). That is one segment fewer
/// each way, and the server, woken once by the connection with its first
/// bytes, is not woken first for the connection alone
/// (lab/bench/README.md has what it saves). Once connected the kernel
/// acknowledges at once again, so no answer waits for a delayed ACK.
/// (Not for a connection made ahead of a full handshake's turn: it may
/// wait, and the server sees it made at once.)
pub(super) fn to_send(
    target: &Target,
    watch: &Watch,
    phases: &mut Phases,
) -> Result<Connection, ProbeError> {
    unconnected(target, watch, phases, true)
}

/// [`to_send`] and [`make_sending`] for first bytes known before the
/// connection exists (a plain HTTP request, a DNS query over TCP).
pub(super) async fn connect_sending(
    target: &Target,
    first: &Arc<[u8]>,
    watch: &Watch,
    phases: &mut Phases,
) -> Result<(Connection, Option<Sent>), ProbeError> {
    open(target, watch, phases, true, Some(first)).await
}

/// `phase` begun where [`make_sending`]'s first bytes went, or now if
/// they did not: how many of them went.
pub(super) fn begins_where_sent(phases: &mut Phases, phase: Phase, sent: Option<Sent>) -> usize {
    match sent {
        Some(sent) => {
            phases.begin_at(phase, sent.at);
            sent.len
        }
        None => {
            phases.begin(phase);
            0
        }
    }
}

async fn open(
    target: &Target,
    watch: &Watch,
    phases: &mut Phases,
    ack_with_first_bytes: bool,
    first: Option<&Arc<[u8]>>,
) -> Result<(Connection, Option<Sent>), ProbeError> {
    let mut connection = unconnected(target, watch, phases, ack_with_first_bytes)?;
    let sent = make_sending(&mut connection, target, first, phases).await?;
    Ok((connection, sent))
}

/// A connection's socket for `target`, not connected yet (the one kept
/// from the prober's last probe, or a new one), the `connect` phase
/// begun and the socket named to `watch`.
fn unconnected(
    target: &Target,
    watch: &Watch,
    phases: &mut Phases,
    ack_with_first_bytes: bool,
) -> Result<Connection, ProbeError> {
    let began = phases.begin(Phase::Connect);
    let source = match target.through {
        Some(through) => match target.source {
            Some(source) => Some(source),
            None => Some(source_toward(through, target.addr.ip()).map_err(ProbeError::Connect)?),
        },
        None => target.source,
    };
    let socket = match watch.idle().take(source) {
        Some(socket) if socket.in_current_set() => socket,
        _ => new_socket(target, source)
            .and_then(Registered::new)
            .map_err(ProbeError::Connect)?,
    };
    if ack_with_first_bytes {
        // Only a saving: a kernel that refuses it sends the ACK alone.
        let _ = socket.socket().set_tcp_quickack(false);
    }
    watch.connecting(&socket, target.addr, began);
    Ok(Connection::new(socket, watch.idle(), source))
}

/// Makes `connection` (from [`to_send`], or the one [`open`] makes) to
/// `target`, `first` sent by its thread's set as it is made (see
/// [`Connection::connect`]), the `connect` phase ending then: what of
/// them went, the caller sending the rest.
pub(super) async fn make_sending(
    connection: &mut Connection,
    target: &Target,
    first: Option<&Arc<[u8]>>,
    phases: &mut Phases,
) -> Result<Option<Sent>, ProbeError> {
    let sent = connection
        .connect(target.addr, first)
        .await
        .map_err(ProbeError::Connect)?;
    match sent {
        Some(sent) => phases.end_at(sent.at),
        None => phases.end(),
    }
    Ok(sent)
}

/// A socket for `target`'s probes, bound to `source` if set.
fn new_socket(target: &Target, source: Option<IpAddr>) -> io::Result<Socket> {
    let socket = Socket::new(
        Domain::for_address(target.addr),
        Type::STREAM.nonblocking(),
        None,
    )?;
    // Not a blocking close: with a linger of 0, close() resets at once.
    socket.set_linger(Some(Duration::ZERO))?;
    if let Some(through) = target.through {
        socket.set_mark(through.mark).map_err(mark_error)?;
    }
    if let Some(source) = source {
        socket.bind(&SocketAddr::new(source, 0).into())?;
    }
    Ok(socket)
}

/// `SO_MARK`'s error, saying what it needs.
fn mark_error(e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::PermissionDenied {
        io::Error::new(
            e.kind(),
            format!("setting the probe service's mark (SO_MARK) needs CAP_NET_ADMIN: {e}"),
        )
    } else {
        io::Error::new(
            e.kind(),
            format!("setting the probe service's mark (SO_MARK): {e}"),
        )
    }
}

/// The address the director sends from toward the real server, as its
/// routes say (a UDP socket connected there: no packet is sent). Bound to
/// it, the probe's connection gets the real server's answer; left to
/// itself the kernel would send from the VIP, the route to a local
/// address's own source, and the answer would stay on the real server.
pub(super) fn source_toward(through: Through, vip: IpAddr) -> io::Result<IpAddr> {
    let any: IpAddr = match through.real_server {
        IpAddr::V4(_) => std::net::Ipv4Addr::UNSPECIFIED.into(),
        IpAddr::V6(_) => std::net::Ipv6Addr::UNSPECIFIED.into(),
    };
    let socket = std::net::UdpSocket::bind((any, 0))?;
    // The port is not used: nothing is sent.
    socket.connect((through.real_server, 9))?;
    let source = socket.local_addr()?.ip();
    if source == vip {
        return Err(io::Error::new(
            io::ErrorKind::AddrNotAvailable,
            format!(
                "the route to real server {} has the VIP {vip} as its source: set source_address to the director's own address toward it",
                through.real_server
            ),
        ));
    }
    Ok(source)
}
