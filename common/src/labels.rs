//! The labels that name a virtual service and a real server in both
//! daemons' series, as node_exporter's ipvs collector names them. They are
//! written here once: the checker's series join the exporter's on them.
//!
//! A service is `proto`, `local_address`, `local_port`, `local_mark`. A
//! firewall-mark service has `proto="FWM"`, an empty `local_address`,
//! `local_port="0"` and the mark in `local_mark` as `/proc/net/ip_vs`
//! prints it (`%08X`); an address service has an empty `local_mark`. A
//! real server adds `remote_address` and `remote_port`.
//!
//! Each function hands its labels, in order, to `label(name, value)`, so a
//! caller renders them straight into its label set (or leaves some out):
//! the exporter writes those of every real server of a large table on each
//! scrape. [`LabelSet::with_service`] and [`LabelSet::with_real_server`]
//! add them all.

use std::fmt::Display;
use std::net::SocketAddr;

use ipvs::ServiceKey;

use crate::exposition::LabelSet;

/// The real server's address label.
pub const REMOTE_ADDRESS: &str = "remote_address";
/// The real server's port label.
pub const REMOTE_PORT: &str = "remote_port";

/// The labels of a virtual service.
pub fn service_labels(key: &ServiceKey, label: impl FnMut(&'static str, &dyn Display)) {
    match key {
        ServiceKey::Addr { protocol, addr } => address_service_labels(protocol, *addr, label),
        ServiceKey::Fwmark { mark, .. } => fwmark_service_labels(*mark, label),
    }
}

/// The labels of a service by protocol name and virtual address (the
/// connection table names protocols its own way).
pub fn address_service_labels(
    protocol: &dyn Display,
    vip: SocketAddr,
    mut label: impl FnMut(&'static str, &dyn Display),
) {
    label("proto", protocol);
    label("local_address", &vip.ip());
    label("local_port", &vip.port());
    label("local_mark", &"");
}

/// The labels of a firewall-mark service.
pub fn fwmark_service_labels(mark: u32, mut label: impl FnMut(&'static str, &dyn Display)) {
    label("proto", &"FWM");
    label("local_address", &"");
    label("local_port", &0);
    label("local_mark", &format_args!("{mark:08X}"));
}

/// The labels a real server adds to its service's.
pub fn real_server_labels(remote: SocketAddr, mut label: impl FnMut(&'static str, &dyn Display)) {
    label(REMOTE_ADDRESS, &remote.ip());
    label(REMOTE_PORT, &remote.port());
}

impl LabelSet {
    /// These labels and a virtual service's ([`service_labels`]) after them.
    pub fn with_service(&self, key: &ServiceKey) -> LabelSet {
        let mut labels = self.clone();
        service_labels(key, |name, value| labels.add(name, value));
        labels
    }

    /// These labels and a real server's ([`real_server_labels`]) after
    /// them.
    pub fn with_real_server(&self, remote: SocketAddr) -> LabelSet {
        let mut labels = self.clone();
        real_server_labels(remote, |name, value| labels.add(name, value));
        labels
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(write: impl FnOnce(&mut dyn FnMut(&'static str, &dyn Display))) -> String {
        let mut out = Vec::new();
        write(&mut |name, value| out.push(format!("{name}={value}")));
        out.join(",")
    }

    #[test]
    fn node_exporters_labels() {
        let tcp = ServiceKey::tcp("198.18.0.10:80".parse().expect("addr"));
        assert_eq!(
            collect(|l| service_labels(&tcp, l)),
            "proto=TCP,local_address=198.18.0.10,local_port=80,local_mark="
        );
        let v6 = ServiceKey::Addr {
            protocol: ipvs::Protocol::Udp,
            addr: "[2001:db8::10]:53".parse().expect("addr"),
        };
        assert_eq!(
            collect(|l| service_labels(&v6, l)),
            "proto=UDP,local_address=2001:db8::10,local_port=53,local_mark="
        );
        let fwm = ServiceKey::Fwmark {
            mark: 26,
            family: ipvs::AddressFamily::Inet,
        };
        assert_eq!(
            collect(|l| service_labels(&fwm, l)),
            "proto=FWM,local_address=,local_port=0,local_mark=0000001A"
        );
        assert_eq!(
            collect(|l| real_server_labels("[2001:db8:1::11]:8080".parse().expect("addr"), l)),
            "remote_address=2001:db8:1::11,remote_port=8080"
        );
    }

    #[test]
    fn a_label_set_of_a_real_server() {
        let service = LabelSet::new()
            .with("netns", "a")
            .with_service(&ServiceKey::tcp("198.18.0.10:80".parse().expect("addr")));
        let backend = service
            .with_real_server("198.18.1.11:8080".parse().expect("addr"))
            .with("phase", "connect");
        assert_eq!(
            backend.closed(),
            r#"{netns="a",proto="TCP",local_address="198.18.0.10",local_port="80",local_mark="",remote_address="198.18.1.11",remote_port="8080",phase="connect"}"#
        );
        assert_eq!(
            service.closed(),
            r#"{netns="a",proto="TCP",local_address="198.18.0.10",local_port="80",local_mark=""}"#,
            "the service's own stay as they were"
        );
    }
}
