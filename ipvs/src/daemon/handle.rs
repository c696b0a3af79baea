//! The sync daemon commands of [`Ipvs`]: GET_DAEMON, NEW_DAEMON and
//! DEL_DAEMON.

use super::attr::DaemonAttr;
use super::{SyncDaemon, SyncState};
use crate::constants::IP_VS_IFNAME_MAXLEN;
use crate::error::{Error, InvalidRequest, Result};
use crate::handle::{retry_read, Ipvs};
use crate::message::{IpvsAttr, IpvsCmd, IpvsMessage};
use crate::socket::Failure;

impl Ipvs {
    /// The sync daemons that run, master first, like `ipvsadm -L --daemon`
    /// (empty when none does).
    pub fn sync_daemons(&mut self) -> Result<Vec<SyncDaemon>> {
        retry_read(
            || "IPVS_CMD_GET_DAEMON".into(),
            || {
                let mut daemons = Vec::new();
                self.transport.query(
                    IpvsMessage::new(IpvsCmd::GetDaemon, vec![]),
                    true,
                    |answer| {
                        for attr in answer.attrs {
                            if let IpvsAttr::Daemon(attrs) = attr {
                                daemons.push(SyncDaemon::from_attrs(&attrs)?);
                            }
                        }
                        Ok(())
                    },
                )?;
                Ok(daemons)
            },
        )
    }

    /// Starts a sync daemon, like `ipvsadm --start-daemon master|backup
    /// --mcast-interface IF --syncid ID [--sync-maxlen N] [--mcast-group
    /// G] [--mcast-port P] [--mcast-ttl T]`. A bad interface name or a
    /// group that is not multicast is refused before anything is sent.
    pub fn start_sync_daemon(&mut self, daemon: &SyncDaemon) -> Result<()> {
        validate(daemon)?;
        let request = IpvsMessage::new(
            IpvsCmd::NewDaemon,
            vec![IpvsAttr::Daemon(daemon.to_attrs())],
        );
        self.transport
            .execute(request)
            .map_err(|failure| match failure {
                Failure::Errno(libc::EEXIST) => Error::SyncDaemonRunning(daemon.state),
                Failure::Errno(libc::ENODEV) => Error::InterfaceNotFound(daemon.interface.clone()),
                f => f.into_error(format!("IPVS_CMD_NEW_DAEMON {}", daemon.state)),
            })
    }

    /// Stops the sync daemon in `state`, like `ipvsadm --stop-daemon
    /// master|backup`.
    pub fn stop_sync_daemon(&mut self, state: SyncState) -> Result<()> {
        let request = IpvsMessage::new(
            IpvsCmd::DelDaemon,
            vec![IpvsAttr::Daemon(vec![DaemonAttr::State(state.number())])],
        );
        self.transport
            .execute(request)
            .map_err(|failure| match failure {
                Failure::Errno(libc::ESRCH) => Error::SyncDaemonNotRunning(state),
                f => f.into_error(format!("IPVS_CMD_DEL_DAEMON {state}")),
            })
    }
}

/// The kernel's own checks of NEW_DAEMON, made before sending so the
/// caller gets a named error instead of EINVAL.
fn validate(daemon: &SyncDaemon) -> Result<(), InvalidRequest> {
    if daemon.interface.is_empty() || daemon.interface.len() >= IP_VS_IFNAME_MAXLEN {
        return Err(InvalidRequest::InterfaceName {
            name: daemon.interface.clone(),
        });
    }
    if let Some(group) = daemon.multicast_group {
        if !group.is_multicast() {
            return Err(InvalidRequest::MulticastGroup { group });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_the_kernel_would_refuse_are_typed_errors() {
        let daemon = |interface: &str| SyncDaemon::new(SyncState::Master, interface, 1);
        assert_eq!(
            validate(&daemon("")).map_err(|e| e.to_string()),
            Err("interface name \"\" must be 1 to 15 bytes".into())
        );
        assert!(validate(&daemon("a-sixteen-bytes!")).is_err());
        assert!(validate(&daemon("fifteen-bytes!!")).is_ok());
        let unicast = daemon("eth0").with_multicast_group("192.0.2.1".parse().expect("ip"));
        assert_eq!(
            validate(&unicast).map_err(|e| e.to_string()),
            Err("sync daemon group 192.0.2.1 is not a multicast address".into())
        );
        let group6 = daemon("eth0").with_multicast_group("ff02::81".parse().expect("ip"));
        assert!(validate(&group6).is_ok());
    }
}
