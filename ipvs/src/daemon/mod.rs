//! Connection-synchronisation daemons: the kernel threads that send a
//! director's connection table to its peers (the master) or take theirs
//! in (the backup), so that a backup taking over keeps the established
//! connections. [`SyncDaemon`] is one as `ipvsadm -L --daemon` lists it
//! and `ipvsadm --start-daemon` starts it.

pub mod attr;
mod handle;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netlink_packet_core::DecodeError;

use self::attr::DaemonAttr;
use crate::constants::*;

/// Which side of the synchronisation a daemon is.
///
/// Exhaustive on purpose: the kernel has these two states only, and a
/// director runs at most one daemon of each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SyncState {
    /// Sends this director's connections (`ipvsadm --start-daemon master`).
    Master,
    /// Receives the connections of a master (`ipvsadm --start-daemon backup`).
    Backup,
}

impl SyncState {
    /// Both states, master first, as the kernel lists them.
    pub const ALL: [SyncState; 2] = [SyncState::Master, SyncState::Backup];

    /// The `IP_VS_STATE_*` number.
    pub fn number(self) -> u32 {
        match self {
            SyncState::Master => IP_VS_STATE_MASTER,
            SyncState::Backup => IP_VS_STATE_BACKUP,
        }
    }

    /// `master` or `backup`, as ipvsadm names them.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncState::Master => "master",
            SyncState::Backup => "backup",
        }
    }
}

impl fmt::Display for SyncState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A sync daemon: what `ipvsadm -L --daemon` shows of a running one, and
/// what `ipvsadm --start-daemon` sets for a new one.
///
/// The optional settings are `None` in a request to leave them to the
/// kernel (a maximum length from the interface's MTU, group 224.0.0.81,
/// port 8848, TTL 1), and in an answer when the kernel does not report
/// them (before Linux 4.3). Non-exhaustive: make one with
/// [`SyncDaemon::new`] and the `with_*` methods.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SyncDaemon {
    /// Master or backup.
    pub state: SyncState,
    /// The interface it sends or listens on (`--mcast-interface`).
    pub interface: String,
    /// The sync id (`--syncid`): a backup takes in only a master's
    /// messages of its own id.
    pub sync_id: u8,
    /// The largest sync message, bytes of UDP payload (`--sync-maxlen`).
    pub max_packet_len: Option<u16>,
    /// The multicast group (`--mcast-group`).
    pub multicast_group: Option<IpAddr>,
    /// The UDP port (`--mcast-port`).
    pub multicast_port: Option<u16>,
    /// The multicast TTL (`--mcast-ttl`).
    pub multicast_ttl: Option<u8>,
}

impl SyncDaemon {
    /// A daemon in `state` on `interface` with `sync_id`, every other
    /// setting left to the kernel, like `ipvsadm --start-daemon STATE
    /// --mcast-interface IF --syncid ID`.
    pub fn new(state: SyncState, interface: impl Into<String>, sync_id: u8) -> Self {
        SyncDaemon {
            state,
            interface: interface.into(),
            sync_id,
            max_packet_len: None,
            multicast_group: None,
            multicast_port: None,
            multicast_ttl: None,
        }
    }

    /// With `--sync-maxlen`.
    pub fn with_max_packet_len(mut self, bytes: u16) -> Self {
        self.max_packet_len = Some(bytes);
        self
    }

    /// With `--mcast-group`.
    pub fn with_multicast_group(mut self, group: IpAddr) -> Self {
        self.multicast_group = Some(group);
        self
    }

    /// With `--mcast-port`.
    pub fn with_multicast_port(mut self, port: u16) -> Self {
        self.multicast_port = Some(port);
        self
    }

    /// With `--mcast-ttl`.
    pub fn with_multicast_ttl(mut self, ttl: u8) -> Self {
        self.multicast_ttl = Some(ttl);
        self
    }

    /// The attributes of NEW_DAEMON, in the order ipvsadm sends them.
    pub(crate) fn to_attrs(&self) -> Vec<DaemonAttr> {
        let mut attrs = vec![
            DaemonAttr::State(self.state.number()),
            DaemonAttr::McastIfn(self.interface.clone()),
            DaemonAttr::SyncId(self.sync_id.into()),
        ];
        if let Some(len) = self.max_packet_len {
            attrs.push(DaemonAttr::SyncMaxlen(len));
        }
        if let Some(port) = self.multicast_port {
            attrs.push(DaemonAttr::McastPort(port));
        }
        if let Some(ttl) = self.multicast_ttl {
            attrs.push(DaemonAttr::McastTtl(ttl));
        }
        match self.multicast_group {
            Some(IpAddr::V4(group)) => attrs.push(DaemonAttr::McastGroup(group.octets())),
            Some(IpAddr::V6(group)) => attrs.push(DaemonAttr::McastGroup6(group.octets())),
            None => {}
        }
        attrs
    }

    /// A daemon from the attributes of a GET_DAEMON answer.
    pub fn from_attrs(attrs: &[DaemonAttr]) -> Result<Self, DecodeError> {
        let (mut state, mut interface, mut sync_id) = (None, None, None);
        let mut daemon = SyncDaemon::new(SyncState::Master, "", 0);
        for attr in attrs {
            match attr {
                DaemonAttr::State(IP_VS_STATE_MASTER) => state = Some(SyncState::Master),
                DaemonAttr::State(IP_VS_STATE_BACKUP) => state = Some(SyncState::Backup),
                DaemonAttr::State(other) => {
                    return Err(DecodeError::from(format!(
                        "IPVS_DAEMON_ATTR_STATE: {other} is neither master (1) nor backup (2)"
                    )))
                }
                DaemonAttr::McastIfn(name) => interface = Some(name.clone()),
                DaemonAttr::SyncId(id) => {
                    sync_id = Some(u8::try_from(*id).map_err(|_| {
                        DecodeError::from(format!("IPVS_DAEMON_ATTR_SYNC_ID: {id} is above 255"))
                    })?)
                }
                DaemonAttr::SyncMaxlen(len) => daemon.max_packet_len = Some(*len),
                DaemonAttr::McastGroup(group) => {
                    daemon.multicast_group = Some(Ipv4Addr::from(*group).into())
                }
                DaemonAttr::McastGroup6(group) => {
                    daemon.multicast_group = Some(Ipv6Addr::from(*group).into())
                }
                DaemonAttr::McastPort(port) => daemon.multicast_port = Some(*port),
                DaemonAttr::McastTtl(ttl) => daemon.multicast_ttl = Some(*ttl),
                DaemonAttr::Other(_) => {}
            }
        }
        let missing = |name: &str| DecodeError::from(format!("{name}: missing"));
        daemon.state = state.ok_or_else(|| missing("IPVS_DAEMON_ATTR_STATE"))?;
        daemon.interface = interface.ok_or_else(|| missing("IPVS_DAEMON_ATTR_MCAST_IFN"))?;
        daemon.sync_id = sync_id.ok_or_else(|| missing("IPVS_DAEMON_ATTR_SYNC_ID"))?;
        Ok(daemon)
    }
}
