//! The series of the connection table (`/proc/net/ip_vs_conn` counted per
//! virtual service, real server and state): connection states and
//! persistence templates, labelled like the table's backends.
//!
//! The connection table names a connection of a firewall-mark service by
//! the address and port the client sent to, not by the mark; such a
//! connection is counted under its fwmark service when exactly one
//! fwmark service of that family has the real server (with its port, or
//! port 0), so its series join the backend's. Templates of fwmark
//! services carry the mark and join directly.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};

use ipvs::proc::{ConnKey, ConnProtocol, ConnTableCounts, VirtualAddress};
use ipvs::{AddressFamily, ServiceKey, TableEntry};
use ipvs_common::exposition::{Family, LabelSet};
use ipvs_common::labels;

use super::families::Families;
use crate::filter::{BackendLabels, ServiceFilter};

/// Adds the connection table's series of one namespace (`counts`, labelled
/// from the namespace's `table`) to the states and templates families.
pub(super) fn add_connections(
    f: &mut Families,
    counts: &ConnTableCounts,
    table: &[TableEntry],
    base: &LabelSet,
    filter: &ServiceFilter,
    mode: BackendLabels,
) {
    let owners = ConnOwners::new(table);
    let mut labeller = ConnLabeller {
        owners: &owners,
        base,
        kept: KeptServices::new(filter),
        mode,
    };
    labeller.series(&mut f.states, counts.connections());
    labeller.series(&mut f.templates, counts.templates());
}

/// Labels the connection table's keys of one namespace.
struct ConnLabeller<'a, 'f> {
    owners: &'a ConnOwners,
    base: &'a LabelSet,
    kept: KeptServices<'f>,
    mode: BackendLabels,
}

impl ConnLabeller<'_, '_> {
    /// Adds the series of the connection-table `counts` to `family`: one per
    /// label set (backend and state), summed over the keys that share it,
    /// sorted by label set.
    fn series<'c>(
        &mut self,
        family: &mut Family,
        counts: impl Iterator<Item = (&'c ConnKey, u64)>,
    ) {
        let mode = self.mode;
        let mut series: BTreeMap<String, u64> = BTreeMap::new();
        for (key, count) in counts {
            let owner = self.owners.owner(key);
            if !self.kept.keeps(owner.service) {
                continue;
            }
            let mut labels = self.base.clone();
            match owner.service {
                ConnService::Fwmark(mark) => {
                    labels::fwmark_service_labels(mark, |name, value| labels.add(name, value));
                }
                ConnService::Addr(protocol, vip) => {
                    labels::address_service_labels(&protocol, vip, |name, value| {
                        labels.add(name, value)
                    });
                }
            }
            labels::real_server_labels(owner.remote, |name, value| {
                if mode.keeps(name) {
                    labels.add(name, value);
                }
            });
            labels.add_escaped("state", key.state.as_str());
            *series.entry(labels.closed()).or_default() += count;
        }
        for (labels, count) in series {
            family.push_rendered(&labels, count);
        }
    }
}

/// The service a connection-table key is counted under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum ConnService {
    /// A firewall-mark service, by mark.
    Fwmark(u32),
    /// An address service, by the protocol and address the table prints.
    Addr(ConnProtocol, SocketAddr),
}

impl ConnService {
    /// The name the service filter matches (see [`crate::filter::service_name`]).
    fn name(self) -> String {
        match self {
            ConnService::Fwmark(mark) => format!("FWM/{mark}"),
            ConnService::Addr(protocol, vip) => format!("{protocol}/{vip}"),
        }
    }
}

/// A connection-table key's service and real server.
#[derive(Debug, Clone, Copy)]
struct ConnOwner {
    service: ConnService,
    remote: SocketAddr,
}

/// The filter's answer for each service met in the connection table,
/// asked once per service rather than once per key.
struct KeptServices<'f> {
    filter: &'f ServiceFilter,
    answers: HashMap<ConnService, bool>,
}

impl<'f> KeptServices<'f> {
    fn new(filter: &'f ServiceFilter) -> Self {
        KeptServices {
            filter,
            answers: HashMap::new(),
        }
    }

    fn keeps(&mut self, service: ConnService) -> bool {
        if self.filter.keeps_all() {
            return true;
        }
        let filter = self.filter;
        *self
            .answers
            .entry(service)
            .or_insert_with(|| filter.keeps(&service.name()))
    }
}

/// A real server of a firewall-mark service, as the connection table's
/// keys are matched against it.
#[derive(Debug, Clone, Copy)]
struct FwmarkDest {
    /// Where the service is in the table.
    service: usize,
    /// Where the real server is in its service.
    position: usize,
    family: AddressFamily,
    mark: u32,
    port: u16,
}

/// The services of one namespace's table, indexed for labelling its
/// connection table: built once per scrape, so that each key is a few
/// hash lookups, however large the table.
struct ConnOwners {
    /// Address services, by protocol number and virtual address.
    services: HashSet<(u16, SocketAddr)>,
    /// The real servers of firewall-mark services by address and port, in
    /// table order.
    fwmark_dests: HashMap<SocketAddr, Vec<FwmarkDest>>,
}

impl ConnOwners {
    fn new(table: &[TableEntry]) -> Self {
        let mut owners = ConnOwners {
            services: HashSet::new(),
            fwmark_dests: HashMap::new(),
        };
        for (service, entry) in table.iter().enumerate() {
            table_visits::add(1);
            match entry.service.key {
                ServiceKey::Addr { protocol, addr } => {
                    owners.services.insert((protocol.number(), addr));
                }
                ServiceKey::Fwmark { mark, family } => {
                    for (position, dest) in entry.destinations.iter().enumerate() {
                        table_visits::add(1);
                        owners
                            .fwmark_dests
                            .entry(dest.key.addr)
                            .or_default()
                            .push(FwmarkDest {
                                service,
                                position,
                                family,
                                mark,
                                port: dest.key.addr.port(),
                            });
                    }
                }
            }
        }
        owners
    }

    /// The service and real server `key` is counted under (see the
    /// module docs for connections of fwmark services).
    fn owner(&self, key: &ConnKey) -> ConnOwner {
        match key.virtual_address {
            VirtualAddress::Fwmark(mark) => ConnOwner {
                service: ConnService::Fwmark(mark),
                remote: key.destination,
            },
            VirtualAddress::Addr(vip) => {
                let own = (u16::from(key.protocol.number()), vip);
                if !self.services.contains(&own) {
                    if let Some((mark, port)) = self.fwmark_owner(vip.ip(), key.destination) {
                        return ConnOwner {
                            service: ConnService::Fwmark(mark),
                            remote: SocketAddr::new(key.destination.ip(), port),
                        };
                    }
                }
                ConnOwner {
                    service: ConnService::Addr(key.protocol, vip),
                    remote: key.destination,
                }
            }
        }
    }

    /// The one fwmark service (mark, real server port) of the family of
    /// `vip` that has real server `dest` (by address, with its port or
    /// port 0; the first such real server of the service).
    fn fwmark_owner(&self, vip: IpAddr, dest: SocketAddr) -> Option<(u32, u16)> {
        let family = AddressFamily::of(vip);
        let with_port = self.fwmark_dests.get(&dest).into_iter().flatten();
        let any_port = self
            .fwmark_dests
            .get(&SocketAddr::new(dest.ip(), 0))
            .into_iter()
            .flatten();
        let mut owner: Option<&FwmarkDest> = None;
        for candidate in with_port.chain(any_port) {
            table_visits::add(1);
            if candidate.family != family {
                continue;
            }
            match owner {
                None => owner = Some(candidate),
                Some(first) if first.service != candidate.service => return None,
                Some(first) if candidate.position < first.position => owner = Some(candidate),
                Some(_) => {}
            }
        }
        owner.map(|o| (o.mark, o.port))
    }
}

/// Counts the table entries looked at while labelling the connection
/// table, so a test can hold the labelling to linear work.
pub(crate) mod table_visits {
    #[cfg(test)]
    thread_local! {
        static VISITS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    }

    /// `n` more entries looked at.
    #[inline]
    pub(crate) fn add(n: u64) {
        #[cfg(test)]
        VISITS.with(|v| v.set(v.get() + n));
        #[cfg(not(test))]
        let _ = n;
    }

    /// Entries looked at so far by this thread.
    #[cfg(test)]
    pub(crate) fn get() -> u64 {
        VISITS.with(std::cell::Cell::get)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipvs::{Destination, DestinationConfig, DestinationKey, ForwardMethod, Service};

    fn entry(key: ServiceKey, dests: &[&str]) -> TableEntry {
        TableEntry {
            service: Service::new(key, ipvs::ServiceConfig::new("rr")),
            destinations: dests
                .iter()
                .map(|d| {
                    Destination::new(
                        DestinationKey::new(d.parse().expect("address")),
                        DestinationConfig::new(ForwardMethod::Masquerade, 1),
                    )
                })
                .collect(),
        }
    }

    fn owner(owners: &ConnOwners, vip: &str, dest: &str) -> (ConnService, SocketAddr) {
        let key = ConnKey {
            protocol: ConnProtocol::Tcp,
            virtual_address: VirtualAddress::Addr(vip.parse().expect("vip")),
            destination: dest.parse().expect("dest"),
            state: ipvs::proc::ConnState::Established,
        };
        let owner = owners.owner(&key);
        (owner.service, owner.remote)
    }

    #[test]
    fn a_connection_goes_to_the_one_fwmark_service_that_has_its_real_server() {
        let owners = ConnOwners::new(&[
            entry(
                ServiceKey::tcp("198.18.0.10:80".parse().expect("vip")),
                &["198.18.1.12:80"],
            ),
            entry(
                ServiceKey::fwmark(1, AddressFamily::Inet),
                &["198.18.1.12:0"],
            ),
            // Two fwmark services with 198.18.1.13 (by port 0 and by 80).
            entry(
                ServiceKey::fwmark(2, AddressFamily::Inet),
                &["198.18.1.13:0"],
            ),
            entry(
                ServiceKey::fwmark(3, AddressFamily::Inet),
                &["198.18.1.13:80"],
            ),
            // Its port first, then port 0: the first real server counts.
            entry(
                ServiceKey::fwmark(4, AddressFamily::Inet),
                &["198.18.1.14:80", "198.18.1.14:0"],
            ),
        ]);
        let addr = |vip: &str| ConnService::Addr(ConnProtocol::Tcp, vip.parse().expect("vip"));
        let at = |s: &str| s.parse::<SocketAddr>().expect("address");
        // The address service's own connections stay with it.
        assert_eq!(
            owner(&owners, "198.18.0.10:80", "198.18.1.12:80"),
            (addr("198.18.0.10:80"), at("198.18.1.12:80"))
        );
        // Another address whose real server is fwmark 1's (port 0).
        assert_eq!(
            owner(&owners, "198.18.0.20:80", "198.18.1.12:80"),
            (ConnService::Fwmark(1), at("198.18.1.12:0"))
        );
        // Two fwmark services could own it: none is picked.
        assert_eq!(
            owner(&owners, "198.18.0.20:80", "198.18.1.13:80"),
            (addr("198.18.0.20:80"), at("198.18.1.13:80"))
        );
        assert_eq!(
            owner(&owners, "198.18.0.20:80", "198.18.1.14:80"),
            (ConnService::Fwmark(4), at("198.18.1.14:80"))
        );
        // A real server no fwmark service has.
        assert_eq!(
            owner(&owners, "198.18.0.20:80", "198.18.1.99:80"),
            (addr("198.18.0.20:80"), at("198.18.1.99:80"))
        );
        // An IPv6 virtual address is not an IPv4 fwmark service's.
        assert_eq!(
            owner(&owners, "[2001:db8::20]:80", "198.18.1.12:80"),
            (addr("[2001:db8::20]:80"), at("198.18.1.12:80"))
        );
    }

    #[test]
    fn the_filter_is_asked_once_per_service_by_its_ipvsadm_name() {
        let filter =
            ServiceFilter::new(Some(r"TCP/198\.18\.0\.10:80|FWM/1"), None).expect("pattern");
        let mut kept = KeptServices::new(&filter);
        assert!(kept.keeps(ConnService::Fwmark(1)));
        assert!(!kept.keeps(ConnService::Fwmark(10)));
        assert!(kept.keeps(ConnService::Addr(
            ConnProtocol::Tcp,
            "198.18.0.10:80".parse().expect("vip")
        )));
        assert!(!kept.keeps(ConnService::Addr(
            ConnProtocol::Udp,
            "198.18.0.10:80".parse().expect("vip")
        )));
        assert_eq!(
            ConnService::Addr(ConnProtocol::Tcp, "[2001:db8::10]:80".parse().expect("vip")).name(),
            "TCP/[2001:db8::10]:80"
        );
        assert_eq!(kept.answers.len(), 4);
        kept.keeps(ConnService::Fwmark(1));
        assert_eq!(kept.answers.len(), 4, "answered from the first time");
    }
}
