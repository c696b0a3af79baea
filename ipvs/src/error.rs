//! The crate's one error type.

use std::io;
use std::path::PathBuf;

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
    /// Another value the kernel would refuse; refused before anything was sent.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
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
