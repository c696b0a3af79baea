//! The attributes nested in `IPVS_CMD_ATTR_DAEMON`, as they are on the wire.

use netlink_packet_core::{DecodeError, DefaultNla, Nla};

use crate::constants::*;
use crate::nla::*;

/// One attribute of a connection-synchronisation daemon.
///
/// Non-exhaustive: the kernel adds attributes; until this crate names
/// one, it is kept as `Other`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DaemonAttr {
    /// `IPVS_DAEMON_ATTR_STATE`: `IP_VS_STATE_MASTER` or `IP_VS_STATE_BACKUP`.
    State(u32),
    /// `IPVS_DAEMON_ATTR_MCAST_IFN`: the interface the daemon sends or
    /// listens on.
    McastIfn(String),
    /// `IPVS_DAEMON_ATTR_SYNC_ID`: the sync id (0 to 255 in the kernel).
    SyncId(u32),
    /// `IPVS_DAEMON_ATTR_SYNC_MAXLEN`: the largest sync message, bytes of
    /// UDP payload.
    SyncMaxlen(u16),
    /// `IPVS_DAEMON_ATTR_MCAST_GROUP`: the IPv4 multicast group.
    McastGroup([u8; 4]),
    /// `IPVS_DAEMON_ATTR_MCAST_GROUP6`: the IPv6 multicast group.
    McastGroup6([u8; 16]),
    /// `IPVS_DAEMON_ATTR_MCAST_PORT`: the UDP port, in host order (the
    /// kernel puts it with `nla_put_u16`, unlike the service's port).
    McastPort(u16),
    /// `IPVS_DAEMON_ATTR_MCAST_TTL`: the multicast TTL.
    McastTtl(u8),
    /// An attribute this crate does not know, kept as it came.
    Other(DefaultNla),
}

impl DaemonAttr {
    /// Parses the value of an `IPVS_CMD_ATTR_DAEMON` attribute.
    pub fn parse_all(buf: &[u8]) -> Result<Vec<Self>, DecodeError> {
        parse_block("IPVS_CMD_ATTR_DAEMON", buf, Self::parse)
    }

    fn parse(kind: u16, value: &[u8]) -> Result<Self, DecodeError> {
        use DaemonAttr::*;
        Ok(match kind {
            IPVS_DAEMON_ATTR_STATE => State(u32_attr("IPVS_DAEMON_ATTR_STATE", value)?),
            IPVS_DAEMON_ATTR_MCAST_IFN => {
                McastIfn(string_attr("IPVS_DAEMON_ATTR_MCAST_IFN", value)?)
            }
            IPVS_DAEMON_ATTR_SYNC_ID => SyncId(u32_attr("IPVS_DAEMON_ATTR_SYNC_ID", value)?),
            IPVS_DAEMON_ATTR_SYNC_MAXLEN => {
                SyncMaxlen(u16_attr("IPVS_DAEMON_ATTR_SYNC_MAXLEN", value)?)
            }
            IPVS_DAEMON_ATTR_MCAST_GROUP => {
                McastGroup(bytes4_attr("IPVS_DAEMON_ATTR_MCAST_GROUP", value)?)
            }
            IPVS_DAEMON_ATTR_MCAST_GROUP6 => {
                McastGroup6(bytes16_attr("IPVS_DAEMON_ATTR_MCAST_GROUP6", value)?)
            }
            IPVS_DAEMON_ATTR_MCAST_PORT => {
                McastPort(u16_attr("IPVS_DAEMON_ATTR_MCAST_PORT", value)?)
            }
            IPVS_DAEMON_ATTR_MCAST_TTL => McastTtl(u8_attr("IPVS_DAEMON_ATTR_MCAST_TTL", value)?),
            _ => Other(DefaultNla::new(kind, value.to_vec())),
        })
    }
}

impl Nla for DaemonAttr {
    fn value_len(&self) -> usize {
        use DaemonAttr::*;
        match self {
            State(_) | SyncId(_) | McastGroup(_) => 4,
            McastIfn(s) => string_len(s),
            SyncMaxlen(_) | McastPort(_) => 2,
            McastGroup6(_) => 16,
            McastTtl(_) => 1,
            Other(nla) => nla.value_len(),
        }
    }

    fn kind(&self) -> u16 {
        use DaemonAttr::*;
        match self {
            State(_) => IPVS_DAEMON_ATTR_STATE,
            McastIfn(_) => IPVS_DAEMON_ATTR_MCAST_IFN,
            SyncId(_) => IPVS_DAEMON_ATTR_SYNC_ID,
            SyncMaxlen(_) => IPVS_DAEMON_ATTR_SYNC_MAXLEN,
            McastGroup(_) => IPVS_DAEMON_ATTR_MCAST_GROUP,
            McastGroup6(_) => IPVS_DAEMON_ATTR_MCAST_GROUP6,
            McastPort(_) => IPVS_DAEMON_ATTR_MCAST_PORT,
            McastTtl(_) => IPVS_DAEMON_ATTR_MCAST_TTL,
            Other(nla) => nla.kind(),
        }
    }

    fn emit_value(&self, buf: &mut [u8]) {
        use DaemonAttr::*;
        match self {
            State(v) | SyncId(v) => buf.copy_from_slice(&v.to_ne_bytes()),
            McastIfn(s) => emit_string(buf, s),
            SyncMaxlen(v) | McastPort(v) => buf.copy_from_slice(&v.to_ne_bytes()),
            McastGroup(a) => buf.copy_from_slice(a),
            McastGroup6(a) => buf.copy_from_slice(a),
            McastTtl(v) => buf.copy_from_slice(&[*v]),
            Other(nla) => nla.emit_value(buf),
        }
    }
}
