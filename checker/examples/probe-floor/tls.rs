//! The floor's `https` check under way (see main.rs).

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;

use rustls::ClientConnection;

use super::answered;

/// An `https` check under way.
pub(crate) struct Tls {
    pub(crate) stream: TcpStream,
    pub(crate) connection: ClientConnection,
    /// The connection was made (an event came on it).
    pub(crate) connected: bool,
    /// The request went.
    pub(crate) sent: bool,
    /// The answer so far.
    pub(crate) got: Vec<u8>,
}

impl Tls {
    /// Takes what the socket brought and sends what is due: `Some` of
    /// whether the check passed once it ends.
    pub(crate) fn step(&mut self, request: &[u8]) -> Option<bool> {
        self.connected = true;
        match self.connection.read_tls(&mut self.stream) {
            Ok(0) => return Some(answered(&self.got)),
            Ok(_) => {
                if self.connection.process_new_packets().is_err() {
                    return Some(false);
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(_) => return Some(false),
        }
        if !self.connection.is_handshaking() && !self.sent {
            if self.connection.writer().write_all(request).is_err() {
                return Some(false);
            }
            self.sent = true;
        }
        let mut buf = [0u8; 4096];
        loop {
            match self.connection.reader().read(&mut buf) {
                Ok(0) => return Some(answered(&self.got)),
                Ok(len) => self.got.extend_from_slice(&buf[..len]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => return Some(false),
            }
        }
        if answered(&self.got) {
            return Some(true);
        }
        while self.connection.wants_write() {
            match self.connection.write_tls(&mut self.stream) {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => return Some(false),
            }
        }
        None
    }
}
