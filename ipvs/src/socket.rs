//! The netlink transport: one `NETLINK_GENERIC` socket, the IPVS family id
//! resolved when it opens (and again when the kernel no longer knows it),
//! requests sent and answers read synchronously; a socket an error left
//! in an unknown state is replaced by a fresh one before the next request.
//!
//! Synchronous on purpose: every IPVS command is a short request/answer
//! with the kernel, the callers (an exporter's scrape, a checker's weight
//! change) run it on a blocking thread, and a dump decoded straight from
//! one reused buffer is as fast as the kernel lets it be.

use std::ops::ControlFlow;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use netlink_packet_core::{
    DecodeError, DoneBuffer, ErrorBuffer, NetlinkBuffer, NetlinkHeader, NetlinkMessage,
    NetlinkPayload, ParseableParametrized, NLMSG_DONE, NLMSG_ERROR, NLMSG_NOOP, NLMSG_OVERRUN,
    NLM_F_ACK, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST,
};
use netlink_packet_generic::ctrl::nlas::GenlCtrlAttrs;
use netlink_packet_generic::ctrl::{GenlCtrl, GenlCtrlCmd};
use netlink_packet_generic::{GenlFamily, GenlMessage};

use crate::error::{Error, Result};
use crate::link::{KernelLink, Link};
use crate::message::IpvsMessage;

/// Large enough for any datagram the kernel sends on a dump: it sizes dump
/// skbs from the reader's buffer, up to 32 KiB, and more with
/// NETLINK_ALLOC of larger buffers.
const RECV_BUFFER: usize = 64 * 1024;

/// `struct genlmsghdr`: command, version, reserved.
pub(crate) const GENL_HEADER_LEN: usize = 4;

/// How the transport failed, before the caller names the operation.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The kernel answered this positive errno.
    Errno(i32),
    /// Sending the request failed.
    Io(std::io::Error),
    /// Reading the answer failed: the socket's error (ENOBUFS when the
    /// kernel could not queue an answer) or another errno of recv.
    Receive(std::io::Error),
    /// Reading the acknowledgement of a command that changes the table
    /// failed: the kernel may have made the change.
    Unacknowledged(std::io::Error),
    /// The socket that replaced a failed one could not be opened.
    Reopen(Box<Error>),
    /// An answer could not be decoded.
    Decode(String),
    /// A dump was interrupted by a concurrent change of the table.
    Interrupted,
    /// The IPVS family is no longer registered (the module was unloaded).
    Unavailable,
}

impl From<DecodeError> for Failure {
    fn from(e: DecodeError) -> Self {
        Failure::Decode(e.to_string())
    }
}

impl Failure {
    /// The caller's error for this failure of `operation`, with the errno
    /// mapping every operation shares.
    pub(crate) fn into_error(self, operation: impl Into<String>) -> Error {
        let operation = operation.into();
        match self {
            Failure::Errno(libc::EPERM) => Error::PermissionDenied { operation },
            Failure::Errno(errno) => Error::Kernel {
                operation,
                errno,
                source: std::io::Error::from_raw_os_error(errno),
            },
            Failure::Io(source) | Failure::Receive(source) => Error::Socket { operation, source },
            Failure::Unacknowledged(source) => Error::Unacknowledged { operation, source },
            Failure::Reopen(error) => *error,
            Failure::Decode(message) => Error::Decode { operation, message },
            // A caller that starts a dump again on this failure reports it
            // itself, with its count of attempts.
            Failure::Interrupted => Error::DumpInterrupted {
                operation,
                attempts: 1,
            },
            Failure::Unavailable => Error::Unavailable,
        }
    }

    /// Whether a read-only request that failed so may be made again: after
    /// a socket error, on a fresh socket.
    pub(crate) fn is_socket_error(&self) -> bool {
        matches!(self, Failure::Io(_) | Failure::Receive(_))
    }

    /// Whether the socket may be left with an answer half read, or with a
    /// dump the kernel still holds for it. A dump's state lives on the
    /// socket until NLMSG_DONE is queued (`netlink_dump` in
    /// net/netlink/af_netlink.c); a later dump request on that socket is
    /// refused with EBUSY (`__netlink_dump_start`), and a later read gets
    /// the old dump's tail. The next part of a dump is made only when a
    /// datagram is read (`netlink_recvmsg`); when `netlink_dump` cannot
    /// allocate or queue it (ENOBUFS), `netlink_recvmsg` sets that as the
    /// socket's error, the next recv returns it, and with nothing queued
    /// no more of the dump ever comes. When a single answer or an ACK
    /// does not fit the receive queue, `netlink_attachskb` drops it and
    /// `netlink_overrun` sets ENOBUFS: its reader would wait for ever. An
    /// ENOBUFS from the dump's first part is answered as NLMSG_ERROR with
    /// the dump still held, and EBUSY is such a held dump. Closing the
    /// socket ends the dump (`netlink_release`).
    fn unsettles(&self) -> bool {
        matches!(
            self,
            Failure::Io(_)
                | Failure::Receive(_)
                | Failure::Unacknowledged(_)
                | Failure::Decode(_)
                | Failure::Errno(libc::ENOBUFS | libc::EBUSY)
        )
    }
}

/// One netlink socket speaking to the IPVS family.
#[derive(Debug)]
pub(crate) struct Transport {
    link: Box<dyn Link>,
    family_id: u16,
    sequence: u32,
    buffer: Vec<u8>,
    /// An error left the socket in an unknown state (see
    /// [`Failure::unsettles`]): the next exchange opens a fresh one first.
    unsettled: bool,
    /// How many times a socket was replaced so, shared by every transport
    /// opened from this one.
    reopens: Arc<AtomicU64>,
}

impl Transport {
    /// Opens a socket in the caller's network namespace, or in the one at
    /// `netns` (a file such as `/run/netns/NAME` or `/proc/PID/ns/net`).
    pub(crate) fn open(netns: Option<&Path>) -> Result<Self> {
        Self::over(Box::new(KernelLink::open(netns)?), Arc::default())
    }

    /// A transport over `link`, the IPVS family resolved through it; its
    /// replaced sockets are counted in `reopens`.
    pub(crate) fn over(link: Box<dyn Link>, reopens: Arc<AtomicU64>) -> Result<Self> {
        let mut transport = Transport {
            link,
            family_id: 0,
            sequence: 0,
            buffer: Vec::with_capacity(RECV_BUFFER),
            unsettled: false,
            reopens,
        };
        transport.family_id = transport.resolve_family()?;
        Ok(transport)
    }

    /// Another socket in the same namespace, the family resolved again.
    pub(crate) fn reopen(&self) -> Result<Self> {
        Self::over(self.link.reopen()?, Arc::clone(&self.reopens))
    }

    /// How many times a socket an error had left in an unknown state was
    /// replaced, by this transport and those opened from it.
    pub(crate) fn reopens(&self) -> u64 {
        self.reopens.load(Ordering::Relaxed)
    }

    /// Replaces the socket by a fresh one; closing the old one ends any
    /// dump the kernel still held for it.
    fn renew(&mut self) -> Result<(), Failure> {
        *self = self.reopen().map_err(|e| Failure::Reopen(Box::new(e)))?;
        self.reopens.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn resolve_family(&mut self) -> Result<u16> {
        let operation = "CTRL_CMD_GETFAMILY IPVS";
        let request = GenlCtrl {
            cmd: GenlCtrlCmd::GetFamily,
            nlas: vec![GenlCtrlAttrs::FamilyName(
                IpvsMessage::family_name().to_string(),
            )],
        };
        let mut message = GenlMessage::from_payload(request);
        message.finalize();
        let sequence = self
            .send_genl(message, NLM_F_REQUEST | NLM_F_ACK)
            .map_err(|source| Error::Socket {
                operation: operation.into(),
                source,
            })?;
        let mut family_id = None;
        let result = self.receive(sequence, |payload, message_type| {
            let answer = GenlMessage::<GenlCtrl>::parse_with_param(payload, message_type)?;
            for attr in answer.payload.nlas {
                if let GenlCtrlAttrs::FamilyId(id) = attr {
                    family_id = Some(id);
                }
            }
            Ok(())
        });
        match result {
            // The controller answers ENOENT for a family nobody registered.
            Err(Failure::Errno(libc::ENOENT)) => Err(Error::Unavailable),
            Err(failure) => Err(failure.into_error(operation)),
            Ok(()) => family_id.ok_or_else(|| Error::Decode {
                operation: operation.into(),
                message: "CTRL_ATTR_FAMILY_ID: missing".into(),
            }),
        }
    }

    /// Sends `request` and waits for the kernel's acknowledgement. Never
    /// sent twice: when the acknowledgement cannot be read, the kernel may
    /// have made the change, and the caller learns so
    /// ([`Failure::Unacknowledged`]).
    pub(crate) fn execute(&mut self, request: IpvsMessage) -> Result<(), Failure> {
        self.exchange(|transport, _| {
            let sequence = transport.send_request(request.clone(), false)?;
            transport.receive(sequence, |_, _| Ok(()))
        })
        .map_err(|failure| match failure {
            Failure::Receive(source) => Failure::Unacknowledged(source),
            failure => failure,
        })
    }

    /// Sends `request` (a GET_* command) and hands each answer to `each`.
    /// With `dump`, the request asks for every object of its kind.
    pub(crate) fn query(
        &mut self,
        request: IpvsMessage,
        dump: bool,
        mut each: impl FnMut(IpvsMessage) -> Result<(), Failure>,
    ) -> Result<(), Failure> {
        self.exchange(|transport, answered| {
            let sequence = transport.send_request(request.clone(), dump)?;
            transport.receive(sequence, |payload, message_type| {
                *answered = true;
                let answer = GenlMessage::<IpvsMessage>::parse_with_param(payload, message_type)?;
                each(answer.payload)
            })
        })
    }

    /// [`Transport::query`] without building each answer's message: `each`
    /// gets every first-level attribute of every answer (type without
    /// flags, value). For dumps large enough that building the messages
    /// costs: the GET_DEST answers of a table with thousands of
    /// destinations.
    pub(crate) fn query_attrs(
        &mut self,
        request: IpvsMessage,
        dump: bool,
        mut each: impl FnMut(u16, &[u8]) -> Result<(), Failure>,
    ) -> Result<(), Failure> {
        self.exchange(|transport, answered| {
            let sequence = transport.send_request(request.clone(), dump)?;
            transport.receive(sequence, |payload, _| {
                *answered = true;
                // The generic netlink header (command, version, reserved).
                let attrs = payload.get(GENL_HEADER_LEN..).ok_or_else(|| {
                    Failure::Decode(format!(
                        "generic netlink header: {} bytes, expected {GENL_HEADER_LEN}",
                        payload.len()
                    ))
                })?;
                for attr in crate::nla::attributes("IPVS message", attrs) {
                    let (kind, value) = attr?;
                    each(kind, value)?;
                }
                Ok(())
            })
        })
    }

    /// Runs `exchange` (one request and its answer; it sets its flag when
    /// an answer message came). An ENOENT before any answer is what the
    /// kernel says to a family id it no longer knows: the ip_vs module was
    /// unloaded, and loaded again under a new id, which a daemon running
    /// for months sees. Then the family is resolved again and, if its id
    /// changed, the exchange made once more. (IPVS itself answers ENOENT
    /// too, for a destination that does not exist: that costs one more
    /// round trip and the same error.) A socket an earlier error left in
    /// an unknown state is replaced first.
    fn exchange<T>(
        &mut self,
        mut exchange: impl FnMut(&mut Self, &mut bool) -> Result<T, Failure>,
    ) -> Result<T, Failure> {
        if self.unsettled {
            self.renew()?;
        }
        let mut answered = false;
        let result = match exchange(self, &mut answered) {
            Err(Failure::Errno(libc::ENOENT)) if !answered && self.family_moved()? => {
                exchange(self, &mut answered)
            }
            result => result,
        };
        if let Err(failure) = &result {
            self.unsettled = failure.unsettles();
        }
        result
    }

    /// Whether the IPVS family has another id than the one in use (now
    /// taken); [`Failure::Unavailable`] if it is gone.
    fn family_moved(&mut self) -> Result<bool, Failure> {
        match self.resolve_family() {
            Ok(id) if id != self.family_id => {
                self.family_id = id;
                Ok(true)
            }
            Ok(_) => Ok(false),
            Err(Error::Unavailable) => Err(Failure::Unavailable),
            // The first error is the one to report.
            Err(_) => Ok(false),
        }
    }

    /// Sends `request`, as a dump (every object of its kind) or asking for
    /// an ACK; returns its sequence number.
    fn send_request(&mut self, request: IpvsMessage, dump: bool) -> Result<u32, Failure> {
        let flags = if dump {
            NLM_F_REQUEST | NLM_F_DUMP
        } else {
            NLM_F_REQUEST | NLM_F_ACK
        };
        self.send_ipvs(request, flags)
    }

    fn send_ipvs(&mut self, request: IpvsMessage, flags: u16) -> Result<u32, Failure> {
        let mut message = GenlMessage::from_payload(request);
        message.set_resolved_family_id(self.family_id);
        self.send_genl(message, flags).map_err(Failure::Io)
    }

    fn send_genl<F>(&mut self, message: GenlMessage<F>, flags: u16) -> std::io::Result<u32>
    where
        F: GenlFamily + netlink_packet_core::Emitable + std::fmt::Debug,
    {
        self.sequence = self.sequence.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = self.sequence;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(message));
        packet.finalize();
        let mut bytes = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut bytes);
        self.link.send(&bytes)?;
        Ok(self.sequence)
    }

    /// Reads datagrams until the answer to `sequence` is complete: an ACK,
    /// an error, or the end of a dump. Each data message's payload goes to
    /// `each` with its netlink message type.
    fn receive(
        &mut self,
        sequence: u32,
        mut each: impl FnMut(&[u8], u16) -> Result<(), Failure>,
    ) -> Result<(), Failure> {
        let mut answer = Answer {
            sequence,
            interrupted: false,
        };
        loop {
            self.buffer.clear();
            let size = self.link.recv(&mut self.buffer).map_err(Failure::Receive)?;
            if size > self.buffer.len() {
                return Err(Failure::Decode(format!(
                    "a {size}-byte datagram did not fit the {RECV_BUFFER}-byte buffer"
                )));
            }
            if answer.datagram(&self.buffer, &mut each)?.is_break() {
                return Ok(());
            }
        }
    }
}

/// The state of reading one answer, datagram after datagram.
#[derive(Debug)]
pub(crate) struct Answer {
    /// The request's sequence number; other messages are stale and skipped.
    pub(crate) sequence: u32,
    /// Whether a dump message carried NLM_F_DUMP_INTR.
    pub(crate) interrupted: bool,
}

impl Answer {
    /// Handles the netlink messages of one datagram: `Break` once the answer
    /// is complete (ACK, NLMSG_DONE), `Continue` when more datagrams follow.
    pub(crate) fn datagram(
        &mut self,
        datagram: &[u8],
        each: &mut impl FnMut(&[u8], u16) -> Result<(), Failure>,
    ) -> Result<ControlFlow<()>, Failure> {
        let mut offset = 0;
        while let Some(rest) = datagram.get(offset..).filter(|rest| !rest.is_empty()) {
            let packet = NetlinkBuffer::new_checked(rest)
                .map_err(|e| Failure::Decode(format!("netlink header: {e}")))?;
            // Messages are 4-byte aligned within a datagram; new_checked has
            // verified that the length covers at least the header.
            offset += (packet.length() as usize + 3) & !3;
            if packet.sequence_number() != self.sequence {
                // A late answer to an earlier request that gave up.
                continue;
            }
            match packet.message_type() {
                NLMSG_NOOP => {}
                NLMSG_OVERRUN => return Err(Failure::Decode("NLMSG_OVERRUN".into())),
                NLMSG_ERROR => {
                    let error = ErrorBuffer::new_checked(packet.payload())
                        .map_err(|e| Failure::Decode(format!("NLMSG_ERROR: {e}")))?;
                    return match error.code() {
                        None => Ok(ControlFlow::Break(())),
                        Some(code) => Err(Failure::Errno(code.get().saturating_abs())),
                    };
                }
                NLMSG_DONE => {
                    let done = DoneBuffer::new_checked(packet.payload())
                        .map_err(|e| Failure::Decode(format!("NLMSG_DONE: {e}")))?;
                    if done.code() < 0 {
                        return Err(Failure::Errno(done.code().saturating_abs()));
                    }
                    return if self.interrupted {
                        Err(Failure::Interrupted)
                    } else {
                        Ok(ControlFlow::Break(()))
                    };
                }
                message_type => {
                    self.interrupted |= packet.flags() & NLM_F_DUMP_INTR != 0;
                    // A single answer is followed by the ACK asked for, a
                    // dump by NLMSG_DONE: keep reading until then.
                    each(packet.payload(), message_type)?;
                }
            }
        }
        Ok(ControlFlow::Continue(()))
    }
}
