//! The IPVS generic netlink message: a command and its first-level
//! attributes. This is the wire layer; [`crate::Ipvs`] turns it into the
//! typed values of [`crate::service`] and [`crate::destination`].

use netlink_packet_core::{DecodeError, DefaultNla, Emitable, Nla, ParseableParametrized};
use netlink_packet_generic::{GenlFamily, GenlHeader};

use crate::constants::*;
use crate::daemon::attr::DaemonAttr;
use crate::destination::attr::DestAttr;
use crate::nla::{parse_block, u32_attr};
use crate::service::attr::ServiceAttr;

/// An IPVS command (`IPVS_CMD_*`).
///
/// Non-exhaustive: a command the kernel adds may get a variant of its own
/// instead of [`IpvsCmd::Other`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IpvsCmd {
    /// `IPVS_CMD_NEW_SERVICE` (`ipvsadm -A`); also the command of each
    /// GET_SERVICE dump answer.
    NewService,
    /// `IPVS_CMD_SET_SERVICE` (`ipvsadm -E`).
    SetService,
    /// `IPVS_CMD_DEL_SERVICE` (`ipvsadm -D`).
    DelService,
    /// `IPVS_CMD_GET_SERVICE` (`ipvsadm -L`).
    GetService,
    /// `IPVS_CMD_NEW_DEST` (`ipvsadm -a`); also the command of each GET_DEST
    /// dump answer.
    NewDest,
    /// `IPVS_CMD_SET_DEST` (`ipvsadm -e`).
    SetDest,
    /// `IPVS_CMD_DEL_DEST` (`ipvsadm -d`).
    DelDest,
    /// `IPVS_CMD_GET_DEST`
    GetDest,
    /// `IPVS_CMD_NEW_DAEMON` (`ipvsadm --start-daemon`); also the command
    /// of each GET_DAEMON dump answer.
    NewDaemon,
    /// `IPVS_CMD_DEL_DAEMON` (`ipvsadm --stop-daemon`).
    DelDaemon,
    /// `IPVS_CMD_GET_DAEMON` (`ipvsadm -L --daemon`).
    GetDaemon,
    /// `IPVS_CMD_SET_CONFIG` (`ipvsadm --set`); also the command of the
    /// GET_CONFIG answer.
    SetConfig,
    /// `IPVS_CMD_GET_CONFIG` (`ipvsadm -L --timeout`).
    GetConfig,
    /// `IPVS_CMD_SET_INFO`: the command of the GET_INFO answer.
    SetInfo,
    /// `IPVS_CMD_GET_INFO`
    GetInfo,
    /// `IPVS_CMD_ZERO` (`ipvsadm -Z`).
    Zero,
    /// `IPVS_CMD_FLUSH` (`ipvsadm -C`).
    Flush,
    /// Any other command number.
    Other(u8),
}

impl From<IpvsCmd> for u8 {
    fn from(cmd: IpvsCmd) -> u8 {
        use IpvsCmd::*;
        match cmd {
            NewService => IPVS_CMD_NEW_SERVICE,
            SetService => IPVS_CMD_SET_SERVICE,
            DelService => IPVS_CMD_DEL_SERVICE,
            GetService => IPVS_CMD_GET_SERVICE,
            NewDest => IPVS_CMD_NEW_DEST,
            SetDest => IPVS_CMD_SET_DEST,
            DelDest => IPVS_CMD_DEL_DEST,
            GetDest => IPVS_CMD_GET_DEST,
            NewDaemon => IPVS_CMD_NEW_DAEMON,
            DelDaemon => IPVS_CMD_DEL_DAEMON,
            GetDaemon => IPVS_CMD_GET_DAEMON,
            SetConfig => IPVS_CMD_SET_CONFIG,
            GetConfig => IPVS_CMD_GET_CONFIG,
            SetInfo => IPVS_CMD_SET_INFO,
            GetInfo => IPVS_CMD_GET_INFO,
            Zero => IPVS_CMD_ZERO,
            Flush => IPVS_CMD_FLUSH,
            Other(n) => n,
        }
    }
}

impl From<u8> for IpvsCmd {
    fn from(n: u8) -> IpvsCmd {
        use IpvsCmd::*;
        match n {
            IPVS_CMD_NEW_SERVICE => NewService,
            IPVS_CMD_SET_SERVICE => SetService,
            IPVS_CMD_DEL_SERVICE => DelService,
            IPVS_CMD_GET_SERVICE => GetService,
            IPVS_CMD_NEW_DEST => NewDest,
            IPVS_CMD_SET_DEST => SetDest,
            IPVS_CMD_DEL_DEST => DelDest,
            IPVS_CMD_GET_DEST => GetDest,
            IPVS_CMD_NEW_DAEMON => NewDaemon,
            IPVS_CMD_DEL_DAEMON => DelDaemon,
            IPVS_CMD_GET_DAEMON => GetDaemon,
            IPVS_CMD_SET_CONFIG => SetConfig,
            IPVS_CMD_GET_CONFIG => GetConfig,
            IPVS_CMD_SET_INFO => SetInfo,
            IPVS_CMD_GET_INFO => GetInfo,
            IPVS_CMD_ZERO => Zero,
            IPVS_CMD_FLUSH => Flush,
            n => Other(n),
        }
    }
}

/// A first-level attribute.
///
/// Non-exhaustive: the kernel adds attributes; until this crate names
/// one, it is kept as `Other`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum IpvsAttr {
    /// `IPVS_CMD_ATTR_SERVICE`
    Service(Vec<ServiceAttr>),
    /// `IPVS_CMD_ATTR_DEST`
    Dest(Vec<DestAttr>),
    /// `IPVS_CMD_ATTR_DAEMON`
    Daemon(Vec<DaemonAttr>),
    /// `IPVS_CMD_ATTR_TIMEOUT_TCP`, seconds.
    TimeoutTcp(u32),
    /// `IPVS_CMD_ATTR_TIMEOUT_TCP_FIN`, seconds.
    TimeoutTcpFin(u32),
    /// `IPVS_CMD_ATTR_TIMEOUT_UDP`, seconds.
    TimeoutUdp(u32),
    /// `IPVS_INFO_ATTR_VERSION` (GET_INFO answer only).
    InfoVersion(u32),
    /// `IPVS_INFO_ATTR_CONN_TAB_SIZE` (GET_INFO answer only).
    InfoConnTabSize(u32),
    /// Anything else, kept as it came.
    Other(DefaultNla),
}

impl Nla for IpvsAttr {
    fn value_len(&self) -> usize {
        match self {
            IpvsAttr::Service(attrs) => attrs.as_slice().buffer_len(),
            IpvsAttr::Dest(attrs) => attrs.as_slice().buffer_len(),
            IpvsAttr::Daemon(attrs) => attrs.as_slice().buffer_len(),
            IpvsAttr::TimeoutTcp(_)
            | IpvsAttr::TimeoutTcpFin(_)
            | IpvsAttr::TimeoutUdp(_)
            | IpvsAttr::InfoVersion(_)
            | IpvsAttr::InfoConnTabSize(_) => 4,
            IpvsAttr::Other(nla) => nla.value_len(),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            IpvsAttr::Service(_) => IPVS_CMD_ATTR_SERVICE,
            IpvsAttr::Dest(_) => IPVS_CMD_ATTR_DEST,
            IpvsAttr::Daemon(_) => IPVS_CMD_ATTR_DAEMON,
            IpvsAttr::TimeoutTcp(_) => IPVS_CMD_ATTR_TIMEOUT_TCP,
            IpvsAttr::TimeoutTcpFin(_) => IPVS_CMD_ATTR_TIMEOUT_TCP_FIN,
            IpvsAttr::TimeoutUdp(_) => IPVS_CMD_ATTR_TIMEOUT_UDP,
            IpvsAttr::InfoVersion(_) => IPVS_INFO_ATTR_VERSION,
            IpvsAttr::InfoConnTabSize(_) => IPVS_INFO_ATTR_CONN_TAB_SIZE,
            IpvsAttr::Other(nla) => nla.kind(),
        }
    }

    fn is_nested(&self) -> bool {
        matches!(
            self,
            IpvsAttr::Service(_) | IpvsAttr::Dest(_) | IpvsAttr::Daemon(_)
        )
    }

    fn emit_value(&self, buf: &mut [u8]) {
        match self {
            IpvsAttr::Service(attrs) => attrs.as_slice().emit(buf),
            IpvsAttr::Dest(attrs) => attrs.as_slice().emit(buf),
            IpvsAttr::Daemon(attrs) => attrs.as_slice().emit(buf),
            IpvsAttr::TimeoutTcp(v)
            | IpvsAttr::TimeoutTcpFin(v)
            | IpvsAttr::TimeoutUdp(v)
            | IpvsAttr::InfoVersion(v)
            | IpvsAttr::InfoConnTabSize(v) => buf.copy_from_slice(&v.to_ne_bytes()),
            IpvsAttr::Other(nla) => nla.emit_value(buf),
        }
    }
}

impl IpvsAttr {
    fn parse(cmd: IpvsCmd, kind: u16, value: &[u8]) -> Result<Self, DecodeError> {
        // GET_INFO's answer numbers its attributes from 1 again.
        if cmd == IpvsCmd::SetInfo {
            return Ok(match kind {
                IPVS_INFO_ATTR_VERSION => {
                    IpvsAttr::InfoVersion(u32_attr("IPVS_INFO_ATTR_VERSION", value)?)
                }
                IPVS_INFO_ATTR_CONN_TAB_SIZE => {
                    IpvsAttr::InfoConnTabSize(u32_attr("IPVS_INFO_ATTR_CONN_TAB_SIZE", value)?)
                }
                _ => IpvsAttr::Other(DefaultNla::new(kind, value.to_vec())),
            });
        }
        Ok(match kind {
            IPVS_CMD_ATTR_SERVICE => IpvsAttr::Service(ServiceAttr::parse_all(value)?),
            IPVS_CMD_ATTR_DEST => IpvsAttr::Dest(DestAttr::parse_all(value)?),
            IPVS_CMD_ATTR_DAEMON => IpvsAttr::Daemon(DaemonAttr::parse_all(value)?),
            IPVS_CMD_ATTR_TIMEOUT_TCP => {
                IpvsAttr::TimeoutTcp(u32_attr("IPVS_CMD_ATTR_TIMEOUT_TCP", value)?)
            }
            IPVS_CMD_ATTR_TIMEOUT_TCP_FIN => {
                IpvsAttr::TimeoutTcpFin(u32_attr("IPVS_CMD_ATTR_TIMEOUT_TCP_FIN", value)?)
            }
            IPVS_CMD_ATTR_TIMEOUT_UDP => {
                IpvsAttr::TimeoutUdp(u32_attr("IPVS_CMD_ATTR_TIMEOUT_UDP", value)?)
            }
            _ => IpvsAttr::Other(DefaultNla::new(kind, value.to_vec())),
        })
    }
}

/// One IPVS generic netlink message (the payload after the genl header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpvsMessage {
    /// The command.
    pub cmd: IpvsCmd,
    /// Its first-level attributes.
    pub attrs: Vec<IpvsAttr>,
}

impl IpvsMessage {
    /// A message with `cmd` and `attrs`.
    pub fn new(cmd: IpvsCmd, attrs: Vec<IpvsAttr>) -> Self {
        IpvsMessage { cmd, attrs }
    }
}

impl GenlFamily for IpvsMessage {
    fn family_name() -> &'static str {
        IPVS_GENL_NAME
    }

    fn command(&self) -> u8 {
        self.cmd.into()
    }

    fn version(&self) -> u8 {
        IPVS_GENL_VERSION
    }
}

impl Emitable for IpvsMessage {
    fn buffer_len(&self) -> usize {
        self.attrs.as_slice().buffer_len()
    }

    fn emit(&self, buffer: &mut [u8]) {
        self.attrs.as_slice().emit(buffer)
    }
}

impl ParseableParametrized<[u8], GenlHeader> for IpvsMessage {
    fn parse_with_param(buf: &[u8], header: GenlHeader) -> Result<Self, DecodeError> {
        let cmd = IpvsCmd::from(header.cmd);
        let attrs = parse_block("IPVS message", buf, |kind, value| {
            IpvsAttr::parse(cmd, kind, value)
        })?;
        Ok(IpvsMessage { cmd, attrs })
    }
}
