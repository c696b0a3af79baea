//! The crate's one error type.

use std::io;
use std::path::PathBuf;

use std::net::IpAddr;

use crate::constants::{IP_VS_IFNAME_MAXLEN, IP_VS_PENAME_MAXLEN, IP_VS_SCHEDNAME_MAXLEN};
use crate::daemon::SyncState;
use crate::destination::{DestinationKey, MAX_WEIGHT};
use crate::service::ServiceKey;

/// What can go wrong talking to IPVS. Each variant says what a user can do
/// about it; kernel errors keep their errno.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The generic netlink family `IPVS` is not registered.
    #[error("IPVS is not available in this kernel (modprobe ip_vs)")]
    Unavailable,
    /// The kernel answered EPERM: every IPVS netlink command, reads
    /// included, is `GENL_ADMIN_PERM`.
    #[error("{operation} needs CAP_NET_ADMIN")]
    PermissionDenied {
        /// The command refused.
        operation: String,
    },
    /// No such virtual service; nothing was changed.
    #[error("service {0} does not exist")]
    ServiceNotFound(ServiceKey),
    /// The virtual service exists already; nothing was changed.
    #[error("service {0} already exists")]
    ServiceExists(ServiceKey),
    /// No such destination in the service; nothing was changed.
    #[error("destination {destination} does not exist in service {service}")]
    DestinationNotFound {
        /// The service searched.
        service: ServiceKey,
        /// The destination that is not there.
        destination: DestinationKey,
    },
    /// The destination exists already in the service; nothing was changed.
    #[error("destination {destination} already exists in service {service}")]
    DestinationExists {
        /// The service.
        service: ServiceKey,
        /// The destination that is there already.
        destination: DestinationKey,
    },
    /// The kernel has no scheduler (or persistence engine) of that name.
    #[error("scheduler or persistence engine {0:?} is not available in this kernel (modprobe ip_vs_{0})")]
    SchedulerNotFound(String),
    /// A weight the kernel would refuse; refused before anything was sent.
    #[error("weight {0} is out of range: IPVS accepts 0 to {MAX_WEIGHT}")]
    WeightOutOfRange(u32),
    /// A sync daemon in that state runs already; nothing was changed.
    #[error("a {0} sync daemon is running already (ipvsadm --stop-daemon {0})")]
    SyncDaemonRunning(SyncState),
    /// No sync daemon in that state runs; nothing was changed.
    #[error("no {0} sync daemon is running")]
    SyncDaemonNotRunning(SyncState),
    /// The sync daemon's interface does not exist in the namespace.
    #[error("interface {0:?} does not exist")]
    InterfaceNotFound(String),
    /// Another value the kernel would refuse; refused before anything was sent.
    #[error("invalid request: {0}")]
    InvalidRequest(#[from] InvalidRequest),
    /// The kernel refused a command with an errno this crate has no better
    /// name for.
    #[error("the kernel refused {operation} (errno {errno})")]
    Kernel {
        /// The command refused, with the object it was about.
        operation: String,
        /// The positive errno.
        errno: i32,
        /// The errno as an I/O error, for its description.
        #[source]
        source: io::Error,
    },
    /// The netlink socket itself failed.
    #[error("{operation}: netlink socket error")]
    Socket {
        /// What was being done.
        operation: String,
        /// The socket error.
        #[source]
        source: io::Error,
    },
    /// Reading the kernel's answer failed on every attempt (ENOBUFS when
    /// the kernel could not queue it, or another socket error), each
    /// attempt on a new socket.
    #[error(
        "{operation}: netlink socket error on each of {attempts} attempts, each on a new socket"
    )]
    SocketRetried {
        /// The read-only request.
        operation: String,
        /// How many times it was made.
        attempts: usize,
        /// The last attempt's socket error.
        #[source]
        source: io::Error,
    },
    /// The acknowledgement of a command that changes the table could not
    /// be read (its socket failed, ENOBUFS when the kernel could not
    /// queue it): the kernel may or may not have made the change, so the
    /// command was not sent again. The next call uses a new socket.
    #[error("{operation}: netlink socket error while waiting for the kernel's acknowledgement: the change may or may not have been made (read the table to know)")]
    Unacknowledged {
        /// The command, with the object it was about.
        operation: String,
        /// The socket error.
        #[source]
        source: io::Error,
    },
    /// A dump was interrupted by concurrent changes of the table (the
    /// kernel flags its answers `NLM_F_DUMP_INTR`) on every attempt; reading
    /// again once the table is quieter may succeed.
    #[error("{operation}: the dump was interrupted by concurrent changes of the table {attempts} times in a row")]
    DumpInterrupted {
        /// The dump.
        operation: String,
        /// How many times it was started.
        attempts: usize,
    },
    /// A thread of [`crate::Ipvs::dump_parallel`] panicked; its part of the
    /// table was not read.
    #[error("{operation}: a thread of the parallel dump panicked")]
    DumpThread {
        /// The dump the thread was making.
        operation: String,
    },
    /// The kernel's answer could not be decoded; names the attribute.
    #[error("{operation}: cannot decode the kernel's answer: {message}")]
    Decode {
        /// The command whose answer was bad.
        operation: String,
        /// What was wrong, naming the attribute.
        message: String,
    },
    /// A network namespace could not be entered.
    #[error("cannot enter network namespace {}", path.display())]
    Netns {
        /// The namespace file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// A request refused before it was sent, because the kernel would refuse it
/// too: which value, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidRequest {
    /// The scheduler name is empty or longer than the kernel keeps.
    #[error("scheduler name {name:?} must be 1 to {} bytes", IP_VS_SCHEDNAME_MAXLEN - 1)]
    SchedulerName {
        /// The name given.
        name: String,
    },
    /// The persistence engine name is empty or longer than the kernel keeps.
    #[error("persistence engine name {name:?} must be 1 to {} bytes", IP_VS_PENAME_MAXLEN - 1)]
    PeName {
        /// The name given.
        name: String,
    },
    /// An upper connection threshold above what the kernel accepts (since
    /// Linux 6.9 it refuses one above `INT_MAX`).
    #[error("upper threshold {upper} is above {MAX_WEIGHT}")]
    UpperThreshold {
        /// The threshold given.
        upper: u32,
    },
    /// A sync daemon's interface name that is empty or longer than the
    /// kernel keeps.
    #[error("interface name {name:?} must be 1 to {} bytes", IP_VS_IFNAME_MAXLEN - 1)]
    InterfaceName {
        /// The name given.
        name: String,
    },
    /// A sync daemon's group that is not a multicast address.
    #[error("sync daemon group {group} is not a multicast address")]
    MulticastGroup {
        /// The group given.
        group: IpAddr,
    },
    /// A lower connection threshold above the upper one.
    #[error("lower threshold {lower} is above upper threshold {upper}")]
    LowerThreshold {
        /// The lower threshold given.
        lower: u32,
        /// The upper threshold given.
        upper: u32,
    },
}

impl Error {
    /// The kernel's errno, when the kernel refused a command.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Kernel { errno, .. } => Some(*errno),
            Error::PermissionDenied { .. } => Some(libc::EPERM),
            _ => None,
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
