//! `tcp`: the real server accepts a connection.
//!
//! Every probe's connection is closed with a reset (`SO_LINGER` 0), as
//! HAProxy closes its checks': the probe has read all it wanted, and an
//! orderly close would cost a FIN each way and leave a TIME_WAIT socket,
//! on the checker for a `tcp` check (one per probe for a minute: tens of
//! thousands at hundreds of real servers) or on the real server for HTTP (which closes
//! first after `Connection: close`), and the close was a large part of an
//! HTTP probe's CPU in a profile (lab/bench/README.md).

use tokio::net::{TcpSocket, TcpStream};

use super::{Phase, Phases, ProbeError, Success, Target};

/// Opens a TCP connection to the target and closes it.
pub async fn probe(target: &Target, phases: &mut Phases) -> Result<Success, ProbeError> {
    connect(target, phases).await?;
    Ok(Success::default())
}

/// A TCP connection to the target from its source address, if set, timed
/// as the `connect` phase.
pub(super) async fn connect(target: &Target, phases: &mut Phases) -> Result<TcpStream, ProbeError> {
    phases.begin(Phase::Connect);
    let socket = if target.addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(ProbeError::Connect)?;
    // Not a blocking close: with a linger of 0, close() resets at once.
    socket.set_zero_linger().map_err(ProbeError::Connect)?;
    if let Some(source) = target.source {
        socket
            .bind(std::net::SocketAddr::new(source, 0))
            .map_err(ProbeError::Connect)?;
    }
    let stream = socket
        .connect(target.addr)
        .await
        .map_err(ProbeError::Connect)?;
    phases.end();
    Ok(stream)
}
