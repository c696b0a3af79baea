//! Table-wide facts: the IPVS version, the connection hash table size
//! (GET_INFO) and the protocol timeouts (GET_CONFIG).

use std::fmt;

/// The IPVS version, as `IP_VS_VERSION_CODE` (0x010201 is 1.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version(pub u32);

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0;
        write!(f, "{}.{}.{}", (v >> 16) & 0xff, (v >> 8) & 0xff, v & 0xff)
    }
}

/// The answer to GET_INFO (`ipvsadm --version`, first line of `ipvsadm -Ln`).
///
/// Non-exhaustive, as the kernel may answer more: make one with
/// [`Info::new`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Info {
    /// IPVS version.
    pub version: Version,
    /// Buckets of the connection hash table (`ip_vs_conn_tab_bits`).
    pub conn_table_size: u32,
}

impl Info {
    /// The answer of an IPVS of `version` whose connection hash table has
    /// `conn_table_size` buckets.
    pub fn new(version: Version, conn_table_size: u32) -> Self {
        Info {
            version,
            conn_table_size,
        }
    }
}

/// Connection timeouts in seconds (`ipvsadm -L --timeout`, set with
/// `ipvsadm --set TCP TCPFIN UDP`; 0 on set means "leave as is").
///
/// Non-exhaustive, as the kernel may make more timeouts settable over
/// netlink: make one with [`Timeouts::new`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Timeouts {
    /// Established TCP connections.
    pub tcp: u32,
    /// TCP connections after a FIN.
    pub tcp_fin: u32,
    /// UDP "connections".
    pub udp: u32,
}

impl Timeouts {
    /// The timeouts `tcp`, `tcp_fin` and `udp` in seconds, in the order of
    /// `ipvsadm --set`.
    pub fn new(tcp: u32, tcp_fin: u32, udp: u32) -> Self {
        Timeouts { tcp, tcp_fin, udp }
    }
}
