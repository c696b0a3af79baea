//! A scripted kernel behind the transport's [`Link`]: it answers the
//! generic netlink controller and the IPVS commands the tests send from a
//! small table, and fails chosen reads with ENOBUFS the way a netlink
//! socket does, which no unprivileged test can make the real kernel do on
//! cue.
//!
//! It keeps the kernel's rules that matter to a reader that recovers: a
//! dump's state lives on its socket until NLMSG_DONE has been read, a new
//! dump request on that socket is refused with EBUSY, and a socket error
//! drops what was queued (a dump whose next part could not be queued, an
//! ACK that did not fit), so a read after it would wait for ever.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use netlink_packet_core::{Emitable, NetlinkBuffer, ParseableParametrized, NLM_F_DUMP};
use netlink_packet_generic::ctrl::nlas::GenlCtrlAttrs;
use netlink_packet_generic::ctrl::{GenlCtrl, GenlCtrlCmd};
use netlink_packet_generic::GenlMessage;

use super::emit;
use super::transport::{error, message as packet};
use crate::error::Result;
use crate::link::Link;
use crate::message::{IpvsAttr, IpvsCmd, IpvsMessage};
use crate::service::ServiceKey;
use crate::socket::Transport;
use crate::{DestinationConfig, DestinationKey, Ipvs, ServiceConfig};

/// `GENL_ID_CTRL`, the controller's fixed family id.
const GENL_ID_CTRL: u16 = 0x10;
/// The id the fake registers IPVS under.
const IPVS_FAMILY: u16 = 0x22;
const NLMSG_DONE: u16 = 3;
const NLM_F_MULTI: u16 = 2;
/// Dump answers per datagram, so that a dump of a few objects spans
/// several datagrams and a read can fail in its middle.
const PER_DATAGRAM: usize = 2;

/// One virtual service of the fake table with its destinations.
#[derive(Debug, Clone)]
pub(super) struct FakeService {
    pub(super) key: ServiceKey,
    pub(super) destinations: Vec<(DestinationKey, DestinationConfig)>,
}

/// The state every socket opened on the fake kernel shares.
#[derive(Debug, Default)]
pub(super) struct Kernel {
    pub(super) table: Vec<FakeService>,
    /// Reads of IPVS answers that fail with ENOBUFS, numbered from 1 over
    /// every socket.
    pub(super) failing_reads: Vec<usize>,
    /// Every read of an IPVS answer from this one on fails.
    pub(super) failing_from: Option<usize>,
    /// Reads of IPVS answers so far.
    pub(super) reads: usize,
    /// The IPVS commands received, in order.
    pub(super) requests: Vec<IpvsCmd>,
    /// Sockets opened.
    pub(super) sockets: usize,
}

/// One socket on the fake kernel.
#[derive(Debug)]
pub(super) struct FakeLink {
    kernel: Arc<Mutex<Kernel>>,
    /// Datagrams queued for the reader.
    queue: VecDeque<Vec<u8>>,
    /// A dump whose NLMSG_DONE has not been read yet.
    dumping: bool,
    /// Whether the request being answered is an IPVS command (its reads
    /// may fail), not the controller's.
    ipvs_answer: bool,
}

impl FakeLink {
    fn new(kernel: Arc<Mutex<Kernel>>) -> Self {
        lock(&kernel).sockets += 1;
        FakeLink {
            kernel,
            queue: VecDeque::new(),
            dumping: false,
            ipvs_answer: false,
        }
    }

    fn answer_ipvs(&mut self, request: IpvsMessage, dump: bool, sequence: u32) {
        let mut kernel = lock(&self.kernel);
        kernel.requests.push(request.cmd);
        if dump {
            if self.dumping {
                // __netlink_dump_start: a dump is in progress.
                self.queue.push_back(error(libc::EBUSY, sequence));
                return;
            }
            let answers = kernel.dump(&request);
            self.dumping = true;
            let mut datagrams: Vec<Vec<u8>> = answers
                .chunks(PER_DATAGRAM)
                .map(|chunk| {
                    chunk
                        .iter()
                        .flat_map(|answer| ipvs_packet(answer, NLM_F_MULTI, sequence))
                        .collect()
                })
                .collect();
            let done = packet(NLMSG_DONE, NLM_F_MULTI, sequence, &0i32.to_ne_bytes());
            match datagrams.last_mut() {
                Some(last) => last.extend(done),
                None => datagrams.push(done),
            }
            self.queue.extend(datagrams);
        } else {
            let errno = kernel.apply(&request);
            self.queue.push_back(error(errno, sequence));
        }
    }
}

impl Link for FakeLink {
    fn send(&mut self, datagram: &[u8]) -> io::Result<()> {
        let buffer = NetlinkBuffer::new_checked(datagram).expect("a netlink request");
        let (kind, flags, sequence) = (
            buffer.message_type(),
            buffer.flags(),
            buffer.sequence_number(),
        );
        self.ipvs_answer = kind == IPVS_FAMILY;
        if kind == GENL_ID_CTRL {
            let answer = GenlCtrl {
                cmd: GenlCtrlCmd::NewFamily,
                nlas: vec![
                    GenlCtrlAttrs::FamilyName("IPVS".into()),
                    GenlCtrlAttrs::FamilyId(IPVS_FAMILY),
                ],
            };
            let mut payload = vec![u8::from(GenlCtrlCmd::NewFamily), 2, 0, 0];
            let start = payload.len();
            payload.resize(start + answer.buffer_len(), 0);
            answer.emit(&mut payload[start..]);
            let mut datagram = packet(GENL_ID_CTRL, 0, sequence, &payload);
            datagram.extend(error(0, sequence));
            self.queue.push_back(datagram);
        } else {
            assert_eq!(kind, IPVS_FAMILY, "a request to an unknown family");
            let request = GenlMessage::<IpvsMessage>::parse_with_param(buffer.payload(), kind)
                .expect("an IPVS request")
                .payload;
            self.answer_ipvs(request, flags & NLM_F_DUMP == NLM_F_DUMP, sequence);
        }
        Ok(())
    }

    fn recv(&mut self, buffer: &mut Vec<u8>) -> io::Result<usize> {
        if self.ipvs_answer {
            let mut kernel = lock(&self.kernel);
            kernel.reads += 1;
            let read = kernel.reads;
            if kernel.failing_reads.contains(&read)
                || kernel.failing_from.is_some_and(|f| read >= f)
            {
                // What could not be queued is lost; a dump in progress
                // stays held by the socket.
                self.queue.clear();
                return Err(io::Error::from_raw_os_error(libc::ENOBUFS));
            }
        }
        let datagram = self
            .queue
            .pop_front()
            .expect("a read with nothing queued: a real socket would wait for ever");
        if datagram_ends_dump(&datagram) {
            self.dumping = false;
        }
        buffer.extend_from_slice(&datagram);
        Ok(datagram.len())
    }

    fn reopen(&self) -> Result<Box<dyn Link>> {
        Ok(Box::new(FakeLink::new(Arc::clone(&self.kernel))))
    }
}

impl Kernel {
    /// The answers to a GET_SERVICE or GET_DEST dump.
    fn dump(&self, request: &IpvsMessage) -> Vec<IpvsMessage> {
        match request.cmd {
            IpvsCmd::GetService => self
                .table
                .iter()
                .map(|s| {
                    crate::handle::service_request(
                        IpvsCmd::NewService,
                        &s.key,
                        Some(&ServiceConfig::new("rr")),
                    )
                })
                .collect(),
            IpvsCmd::GetDest => self
                .service(request)
                .map(|s| {
                    s.destinations
                        .iter()
                        .map(|(key, config)| {
                            let mut attrs = key.to_attrs();
                            attrs.extend(config.to_attrs());
                            IpvsMessage::new(IpvsCmd::NewDest, vec![IpvsAttr::Dest(attrs)])
                        })
                        .collect()
                })
                .unwrap_or_default(),
            other => panic!("no dump of {other:?} in the fake kernel"),
        }
    }

    /// Applies a command; its errno (positive, 0 for success).
    fn apply(&mut self, request: &IpvsMessage) -> i32 {
        if request.cmd != IpvsCmd::SetDest {
            return libc::EOPNOTSUPP;
        }
        let Some(attrs) = request.attrs.iter().find_map(|attr| match attr {
            IpvsAttr::Dest(attrs) => Some(attrs),
            _ => None,
        }) else {
            return libc::EINVAL;
        };
        let mut bytes = vec![0u8; attrs.as_slice().buffer_len()];
        attrs.as_slice().emit(&mut bytes);
        let Ok(wanted) = crate::Destination::decode(&bytes, crate::AddressFamily::Inet) else {
            return libc::EINVAL;
        };
        let Some(index) = self
            .table
            .iter()
            .position(|s| Some(s) == self.service(request))
        else {
            return libc::ESRCH;
        };
        match self.table[index]
            .destinations
            .iter_mut()
            .find(|(key, _)| *key == wanted.key)
        {
            Some((_, config)) => {
                *config = wanted.config;
                0
            }
            None => libc::ENOENT,
        }
    }

    fn service(&self, request: &IpvsMessage) -> Option<&FakeService> {
        let key = request.attrs.iter().find_map(|attr| match attr {
            IpvsAttr::Service(attrs) => ServiceKey::from_attrs(attrs).ok(),
            _ => None,
        })?;
        self.table.iter().find(|s| s.key == key)
    }
}

impl PartialEq for FakeService {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}

/// A handle on a fresh fake kernel holding `table`.
pub(super) fn connect(table: Vec<FakeService>) -> (Ipvs, Arc<Mutex<Kernel>>) {
    let kernel = Arc::new(Mutex::new(Kernel {
        table,
        ..Kernel::default()
    }));
    let link = FakeLink::new(Arc::clone(&kernel));
    let transport = Transport::over(Box::new(link), Arc::default()).expect("the family resolves");
    (Ipvs { transport }, kernel)
}

pub(super) fn lock(kernel: &Mutex<Kernel>) -> MutexGuard<'_, Kernel> {
    kernel.lock().expect("the fake kernel's lock")
}

/// Whether `datagram` holds an NLMSG_DONE: the end of a dump.
fn datagram_ends_dump(datagram: &[u8]) -> bool {
    let mut offset = 0;
    while let Some(Ok(buffer)) = datagram.get(offset..).map(NetlinkBuffer::new_checked) {
        if buffer.message_type() == NLMSG_DONE {
            return true;
        }
        offset += (buffer.length() as usize + 3) & !3;
    }
    false
}

fn ipvs_packet(message: &IpvsMessage, flags: u16, sequence: u32) -> Vec<u8> {
    let mut payload = vec![u8::from(message.cmd), 1, 0, 0];
    payload.extend(emit(message));
    packet(IPVS_FAMILY, flags, sequence, &payload)
}
