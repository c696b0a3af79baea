//! The metric families the exporter writes, with their help texts, in
//! exposition order.

use ipvs_common::exposition::{Family, Kind};

use crate::director::SYSCTLS;

/// All metric families, in exposition order.
#[derive(Debug)]
pub(super) struct Families {
    pub(super) up: Family,
    pub(super) info: Family,
    pub(super) global: [Family; 5],
    pub(super) service: [Family; 5],
    pub(super) service_info: Family,
    pub(super) backend: [Family; 5],
    pub(super) weight: Family,
    pub(super) active: Family,
    pub(super) inactive: Family,
    pub(super) persistent: Family,
    pub(super) backend_info: Family,
    pub(super) states: Family,
    pub(super) templates: Family,
    pub(super) scan_age: Family,
    pub(super) duration: Family,
    pub(super) success: Family,
    pub(super) service_rates: [Family; 5],
    pub(super) backend_rates: [Family; 5],
    pub(super) sync_running: Family,
    pub(super) sync_info: Family,
    pub(super) timeout: Family,
    pub(super) sysctls: Vec<Family>,
    pub(super) defense_active: Family,
    pub(super) socket_reopens: Family,
    pub(super) build_info: Family,
}

impl Families {
    pub(super) fn new() -> Self {
        use Kind::*;
        Families {
            up: Family::new("ipvs_up", Gauge, "Whether the kernel's IPVS answered (GET_INFO over netlink): 0 when IPVS is absent or CAP_NET_ADMIN is missing."),
            info: Family::new("ipvs_info", Info, "The IPVS version and the size of the connection hash table."),
            global: [
                Family::new("ipvs_connections_total", Counter, "Connections scheduled by IPVS (/proc/net/ip_vs_stats)."),
                Family::new("ipvs_incoming_packets_total", Counter, "Packets from clients to real servers (/proc/net/ip_vs_stats)."),
                Family::new("ipvs_outgoing_packets_total", Counter, "Packets from real servers to clients, NAT only (/proc/net/ip_vs_stats)."),
                Family::new("ipvs_incoming_bytes_total", Counter, "Bytes from clients to real servers (/proc/net/ip_vs_stats)."),
                Family::new("ipvs_outgoing_bytes_total", Counter, "Bytes from real servers to clients, NAT only (/proc/net/ip_vs_stats)."),
            ],
            service: [
                Family::new("ipvs_service_connections_total", Counter, "Connections scheduled by the virtual service."),
                Family::new("ipvs_service_incoming_packets_total", Counter, "Packets from clients to the virtual service."),
                Family::new("ipvs_service_outgoing_packets_total", Counter, "Packets from the virtual service to clients (NAT only)."),
                Family::new("ipvs_service_incoming_bytes_total", Counter, "Bytes from clients to the virtual service."),
                Family::new("ipvs_service_outgoing_bytes_total", Counter, "Bytes from the virtual service to clients (NAT only)."),
            ],
            service_info: Family::new("ipvs_service_info", Info, "Settings of the virtual service: scheduler, flags, persistence timeout and netmask, persistence engine."),
            backend: [
                Family::new("ipvs_backend_connections_total", Counter, "Connections scheduled to the real server."),
                Family::new("ipvs_backend_incoming_packets_total", Counter, "Packets from clients to the real server."),
                Family::new("ipvs_backend_outgoing_packets_total", Counter, "Packets from the real server to clients (NAT only)."),
                Family::new("ipvs_backend_incoming_bytes_total", Counter, "Bytes from clients to the real server."),
                Family::new("ipvs_backend_outgoing_bytes_total", Counter, "Bytes from the real server to clients (NAT only)."),
            ],
            weight: Family::new("ipvs_backend_weight", Gauge, "Weight of the real server (0: quiescent, no new connections)."),
            active: Family::new("ipvs_backend_connections_active", Gauge, "Active (established) connections to the real server, as the kernel counts them."),
            inactive: Family::new("ipvs_backend_connections_inactive", Gauge, "Inactive connections (any other state) to the real server, as the kernel counts them."),
            persistent: Family::new("ipvs_backend_connections_persistent", Gauge, "Persistence templates pointing at the real server, as the kernel counts them."),
            backend_info: Family::new("ipvs_backend_info", Info, "Settings of the real server: forwarding method, connection thresholds, tunnel type."),
            states: Family::new("ipvs_backend_connection_states", Gauge, "Connections in the connection table (/proc/net/ip_vs_conn) per state, persistence templates excluded."),
            templates: Family::new("ipvs_backend_persistence_templates", Gauge, "Persistence templates in the connection table (/proc/net/ip_vs_conn) per state (NONE or ASSURED)."),
            scan_age: Family::new("ipvs_conntable_scan_age_seconds", Gauge, "Age of the connection table counts: seconds since the scan of /proc/net/ip_vs_conn they come from (0 when this scrape scanned; see --collector.connections.min-interval)."),
            duration: Family::new("ipvs_scrape_collector_duration_seconds", Gauge, "Time the collector took."),
            success: Family::new("ipvs_scrape_collector_success", Gauge, "Whether the collector succeeded."),
            service_rates: [
                Family::new("ipvs_service_connections_per_second", Gauge, "The kernel's estimate of connections per second to the virtual service (--collector.services.rates)."),
                Family::new("ipvs_service_incoming_packets_per_second", Gauge, "The kernel's estimate of packets per second from clients to the virtual service (--collector.services.rates)."),
                Family::new("ipvs_service_outgoing_packets_per_second", Gauge, "The kernel's estimate of packets per second from the virtual service to clients, NAT only (--collector.services.rates)."),
                Family::new("ipvs_service_incoming_bytes_per_second", Gauge, "The kernel's estimate of bytes per second from clients to the virtual service (--collector.services.rates)."),
                Family::new("ipvs_service_outgoing_bytes_per_second", Gauge, "The kernel's estimate of bytes per second from the virtual service to clients, NAT only (--collector.services.rates)."),
            ],
            backend_rates: [
                Family::new("ipvs_backend_connections_per_second", Gauge, "The kernel's estimate of connections per second to the real server (--collector.services.rates)."),
                Family::new("ipvs_backend_incoming_packets_per_second", Gauge, "The kernel's estimate of packets per second from clients to the real server (--collector.services.rates)."),
                Family::new("ipvs_backend_outgoing_packets_per_second", Gauge, "The kernel's estimate of packets per second from the real server to clients, NAT only (--collector.services.rates)."),
                Family::new("ipvs_backend_incoming_bytes_per_second", Gauge, "The kernel's estimate of bytes per second from clients to the real server (--collector.services.rates)."),
                Family::new("ipvs_backend_outgoing_bytes_per_second", Gauge, "The kernel's estimate of bytes per second from the real server to clients, NAT only (--collector.services.rates)."),
            ],
            sync_running: Family::new("ipvs_sync_daemon_running", Gauge, "Whether the connection-sync daemon in this state (master or backup) runs (IPVS_CMD_GET_DAEMON, ipvsadm -L --daemon)."),
            sync_info: Family::new("ipvs_sync_daemon_info", Info, "Settings of a running connection-sync daemon: interface, sync id, maximum sync message (UDP payload bytes), multicast group, port and TTL."),
            timeout: Family::new("ipvs_timeout_seconds", Gauge, "IPVS connection timeouts by protocol state: tcp, tcpfin, udp (ipvsadm -L --timeout)."),
            sysctls: SYSCTLS.iter().map(|s| Family::new(s.metric, Gauge, s.help)).collect(),
            defense_active: Family::new("ipvs_drop_defense_active", Gauge, "Whether the drop defence is acting now: its sysctl is 2 (automatic, memory short) or 3 (always)."),
            socket_reopens: Family::new("ipvs_exporter_netlink_socket_reopens_total", Counter, "Netlink sockets the exporter replaced by new ones after an error left them unusable (a socket error such as ENOBUFS while an answer was read, an answer that could not be decoded); the read was then made again."),
            build_info: Family::new("ipvs_exporter_build_info", Info, "The exporter's version, the git revision and the rustc version it was built from."),
        }
    }
}
