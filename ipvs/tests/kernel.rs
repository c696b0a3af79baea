//! End-to-end tests against a real kernel's IPVS, compared with what
//! ipvsadm and the kernel's own /proc files say. They need root and a
//! kernel with IPVS, so they are ignored in a plain `cargo test`; the lab
//! runs them (`lab/test`, or `lab/run -- cargo test -p ipvs --test kernel
//! -- --ignored` on a machine with IPVS).
//!
//! The network is the lab's (`lab/topology.sh`): a client, a director and
//! three real servers in namespaces, addresses from 198.18.0.0/15 and
//! 2001:db8::/32 only. The tests share it, so they take a lock and build it
//! once.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::MutexGuard;
use std::thread::sleep;
use std::time::{Duration, Instant};

use lab_harness::{
    client, director, fetch_from_client, lab_once, run_in, topology_script, DIRECTOR,
};

use ipvs::proc::{ConnProtocol, ConnTableCounts, GlobalStats};
use ipvs::{
    AddressFamily, DestinationConfig, DestinationKey, Error, ForwardMethod, Ipvs, Netmask,
    ServiceConfig, ServiceFlags, ServiceKey, TableEntry, Timeouts, MAX_WEIGHT,
};

/// The table every test starts from, in `ipvsadm -R` form: TCP, UDP and
/// SCTP; IPv4 and IPv6; firewall marks; persistence with a netmask;
/// schedulers rr, wrr, wlc, sh and mh with their flags; NAT, DR and TUN
/// destinations with thresholds.
const TABLE: &str = "\
-A -t 198.18.0.10:80 -s rr
-a -t 198.18.0.10:80 -r 198.18.1.11:80 -m -w 1 -x 100 -y 10
-a -t 198.18.0.10:80 -r 198.18.1.12:80 -m -w 2
-A -t 198.18.0.11:80 -s wlc -p 300 -M 255.255.255.0
-a -t 198.18.0.11:80 -r 198.18.1.11:80 -m -w 1
-a -t 198.18.0.11:80 -r 198.18.1.12:80 -m -w 1
-a -t 198.18.0.11:80 -r 198.18.1.13:80 -m -w 1
-A -u 198.18.0.10:53 -s wrr
-a -u 198.18.0.10:53 -r 198.18.1.11:53 -m -w 3
-a -u 198.18.0.10:53 -r 198.18.1.12:53 -m -w 1
-A --sctp-service 198.18.0.12:3868 -s sh -b sh-fallback,sh-port
-a --sctp-service 198.18.0.12:3868 -r 198.18.1.11:3868 -g -w 1
-a --sctp-service 198.18.0.12:3868 -r 198.18.1.12:3868 -i -w 1 -x 50 -y 5
-A -t [2001:db8::10]:80 -s mh -b mh-fallback,mh-port
-a -t [2001:db8::10]:80 -r [2001:db8:1::11]:80 -m -w 1
-a -t [2001:db8::10]:80 -r [2001:db8:1::12]:80 -m -w 1
-A -u [2001:db8::10]:53 -s wlc -o
-a -u [2001:db8::10]:53 -r [2001:db8:1::13]:53 -m -w 1
-A -f 1 -s rr -p 600
-a -f 1 -r 198.18.1.11 -m -w 1
-a -f 1 -r 198.18.1.12 -m -w 1
-A -f 3 -s wlc
-a -f 3 -r 198.18.1.13:0 -i -w 4 -x 1000 -y 100 --tun-type gue --tun-port 6080 --tun-csum
-A -f 2 -6 -s sh -p 120 -M 64
-a -f 2 -6 -r [2001:db8:1::13]:0 -g -w 1
";

/// Builds the lab network, the table and its traffic, once per test binary.
fn lab() -> MutexGuard<'static, ()> {
    lab_once(|| {
        let topology = topology_script();
        run_in(None, &format!("{topology} up 3 && {topology} serve"));
        for vip in [
            "198.18.0.10",
            "198.18.0.11",
            "198.18.0.12",
            "198.18.0.20",
            "2001:db8::10",
        ] {
            run_in(None, &format!("{topology} vip {vip}"));
        }
        // Every packet to 198.18.0.20, TCP or UDP, is one firewall-mark
        // service; its real servers have no port, so each connection keeps
        // the one it was sent to.
        director("iptables -t mangle -A PREROUTING -d 198.18.0.20/32 -j MARK --set-mark 1");
        restore_table();
        drive_traffic();
    })
}

fn restore_table() {
    director(&format!("ipvsadm -C && ipvsadm -R <<'EOF'\n{TABLE}EOF"));
}

/// Real traffic from the client through the VIPs to the real servers, so
/// counters are not zero, connections sit in several states and the
/// persistent services hold templates.
fn drive_traffic() {
    run_in(None, "rm -f /run/lab-sctp-open /run/lab-tcp-open");
    fetch_from_client("http://198.18.0.10/", 6);
    fetch_from_client("http://198.18.0.11/", 3);
    fetch_from_client("http://[2001:db8::10]/", 4);
    fetch_from_client("http://198.18.0.20/", 3);
    // UDP queries, each from its own socket so each is a connection entry.
    client(
        r#"python3 - <<'EOF'
import socket
targets = [("198.18.0.10", 53)] * 4 + [("2001:db8::10", 53)] * 2 + [("198.18.0.20", 53)] * 2
for target in targets:
    family = socket.AF_INET6 if ":" in target[0] else socket.AF_INET
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.settimeout(5)
    s.sendto(b"who", target)
    assert s.recv(64).startswith(b"rs"), target
    s.close()
EOF"#,
    );
    // SCTP: an association attempt to the SCTP service (its real servers
    // are DR and TUN and do not answer it), kept open for the rest of the
    // run: closing it would abort it, and the kernel forgets aborted SCTP
    // entries within seconds.
    client(
        "(exec python3 -c 'import socket,time; s=socket.socket(socket.AF_INET,socket.SOCK_STREAM,socket.IPPROTO_SCTP); \
         s.setblocking(False); s.connect_ex((\"198.18.0.12\",3868)); open(\"/run/lab-sctp-open\",\"w\"); \
         time.sleep(600)' >/dev/null 2>&1 &)",
    );
    // A connection left open (ESTABLISHED, so an active connection) for the
    // rest of the run.
    client(
        "(exec python3 -c 'import socket,time; s=socket.create_connection((\"198.18.0.10\",80)); \
         open(\"/run/lab-tcp-open\",\"w\"); time.sleep(600)' >/dev/null 2>&1 &)",
    );
    // Both background clients say when their connection is open.
    let started = Instant::now();
    for ready in ["/run/lab-sctp-open", "/run/lab-tcp-open"] {
        while !Path::new(ready).exists() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{ready} did not appear"
            );
            sleep(Duration::from_millis(100));
        }
    }
    // The kernel folds its per-CPU counters into what it reports every 2 s.
    sleep(Duration::from_secs(3));
}

fn ipvs() -> Ipvs {
    Ipvs::connect_in_netns(DIRECTOR).expect("connect to the director's IPVS")
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("socket address")
}

/// ipvsadm's output, reduced to lines with single spaces, sorted: the same
/// table printed in another order compares equal.
fn normalized(text: &str) -> Vec<String> {
    let mut service = String::new();
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| {
            !l.starts_with("IP Virtual Server")
                && !l.starts_with("Prot ")
                && !l.contains("-> RemoteAddress")
        })
        .map(|l| {
            let words = l.split_whitespace().collect::<Vec<_>>().join(" ");
            if let Some(dest) = words.strip_prefix("-> ") {
                format!("{service} -> {dest}")
            } else {
                service = words
                    .split(' ')
                    .take(if words.starts_with("FWM") && words.contains(" IPv6") {
                        3
                    } else {
                        2
                    })
                    .collect::<Vec<_>>()
                    .join(" ");
                words
            }
        })
        .collect();
    lines.sort();
    lines
}

/// The crate's dump printed as `ipvsadm -Ln` prints the table.
fn as_ipvsadm_list(table: &[TableEntry]) -> String {
    let mut out = String::new();
    for TableEntry {
        service,
        destinations,
    } in table
    {
        let c = &service.config;
        out += &format!("{} {}", service.key, c.scheduler);
        let flags = c.flags.scheduler_flag_names(&c.scheduler);
        if !flags.is_empty() {
            out += &format!(" ({})", flags.join(","));
        }
        if c.flags.contains(ServiceFlags::PERSISTENT) {
            out += &format!(" persistent {}", c.timeout);
            if let Some(mask) = c.netmask {
                out += &format!(" mask {mask}");
            }
            if let Some(pe) = &c.pe_name {
                out += &format!(" pe {pe}");
            }
        }
        if c.flags.contains(ServiceFlags::ONE_PACKET) {
            out += " ops";
        }
        out += "\n";
        for d in destinations {
            out += &format!(
                "  -> {} {} {} {} {}\n",
                d.key, d.config.forward, d.config.weight, d.active_conns, d.inactive_conns
            );
        }
    }
    out
}

/// ... as `ipvsadm -Ln --stats --exact` prints it.
fn as_ipvsadm_stats(table: &[TableEntry]) -> String {
    let mut out = String::new();
    let line = |name: String, s: &ipvs::Stats| {
        format!(
            "{name} {} {} {} {} {}\n",
            s.conns, s.in_packets, s.out_packets, s.in_bytes, s.out_bytes
        )
    };
    for entry in table {
        out += &line(entry.service.key.to_string(), &entry.service.stats);
        for d in &entry.destinations {
            out += &line(format!("  -> {}", d.key), &d.stats);
        }
    }
    out
}

/// ... as `ipvsadm -Ln --persistent-conn` prints it.
fn as_ipvsadm_persistent(table: &[TableEntry]) -> String {
    dest_columns(table, |d| {
        format!(
            "{} {} {} {}",
            d.config.weight, d.persistent_conns, d.active_conns, d.inactive_conns
        )
    })
}

/// ... as `ipvsadm -Ln --thresholds` prints it.
fn as_ipvsadm_thresholds(table: &[TableEntry]) -> String {
    dest_columns(table, |d| {
        format!(
            "{} {} {} {}",
            d.config.upper_threshold, d.config.lower_threshold, d.active_conns, d.inactive_conns
        )
    })
}

/// Reads `theirs` between two reads of `ours`, again until both of ours
/// agree, so that the two compared saw one moment of the table. The table
/// does not stand still after the traffic: the rate estimates decay at each
/// estimator tick (every 2 s), the SCTP client's INIT is retransmitted
/// (packets counted), closed connections expire (inactive counts fall).
fn at_one_moment<T: PartialEq>(
    ipvs: &mut Ipvs,
    ours: impl Fn(&mut Ipvs) -> T,
    theirs: impl Fn(&mut Ipvs) -> T,
) -> (T, T) {
    for _ in 0..10 {
        let before = ours(ipvs);
        let other = theirs(ipvs);
        if ours(ipvs) == before {
            return (before, other);
        }
    }
    panic!("the table changed between every two reads, 10 times over");
}

fn dest_columns(table: &[TableEntry], columns: impl Fn(&ipvs::Destination) -> String) -> String {
    let mut out = String::new();
    for TableEntry {
        service,
        destinations,
    } in table
    {
        // These listings print the service line like the plain one.
        out += &as_ipvsadm_list(&[TableEntry {
            service: service.clone(),
            destinations: vec![],
        }]);
        for d in destinations {
            out += &format!("  -> {} {}\n", d.key, columns(d));
        }
    }
    out
}

#[test]
#[ignore = "needs root and a kernel with IPVS: run it in the lab (lab/test)"]
fn dump_equals_ipvsadm_field_by_field() {
    let _lab = lab();
    let mut ipvs = ipvs();
    for (flags, render) in [
        ("", as_ipvsadm_list as fn(&[TableEntry]) -> String),
        ("--stats --exact", as_ipvsadm_stats),
        ("--persistent-conn", as_ipvsadm_persistent),
        ("--thresholds", as_ipvsadm_thresholds),
    ] {
        let (ours, theirs) = at_one_moment(
            &mut ipvs,
            |ipvs| normalized(&render(&ipvs.dump().expect("dump"))),
            |_| normalized(&director(&format!("ipvsadm -Ln {flags}"))),
        );
        assert_eq!(ours, theirs, "ipvsadm -Ln {flags}");
    }
    // The concurrent dump is the same dump.
    let (sequential, parallel) = at_one_moment(
        &mut ipvs,
        |ipvs| ipvs.dump().expect("dump"),
        |ipvs| ipvs.dump_parallel(3).expect("parallel dump"),
    );
    assert_eq!(parallel, sequential);
    // Traffic did reach every kind of service that carried some.
    let table = ipvs.dump().expect("dump");
    for key in [
        ServiceKey::tcp(addr("198.18.0.10:80")),
        ServiceKey::tcp(addr("198.18.0.11:80")),
        ServiceKey::udp(addr("198.18.0.10:53")),
        ServiceKey::tcp(addr("[2001:db8::10]:80")),
        ServiceKey::udp(addr("[2001:db8::10]:53")),
        ServiceKey::fwmark(1, AddressFamily::Inet),
    ] {
        let entry = table
            .iter()
            .find(|e| e.service.key == key)
            .expect("service listed");
        assert!(
            entry.service.stats.conns > 0 && entry.service.stats.in_bytes > 0,
            "{key}: no traffic counted"
        );
    }
}

#[test]
#[ignore = "needs root and a kernel with IPVS: run it in the lab (lab/test)"]
fn info_and_timeouts_equal_ipvsadm() {
    let _lab = lab();
    let mut ipvs = ipvs();
    let info = ipvs.info().expect("info");
    let theirs = director("ipvsadm -Ln | head -1");
    assert_eq!(
        theirs.trim(),
        format!(
            "IP Virtual Server version {} (size={})",
            info.version, info.conn_table_size
        )
    );
    let timeouts = ipvs.timeouts().expect("timeouts");
    let theirs = director("ipvsadm -L --timeout");
    assert_eq!(
        theirs.trim(),
        format!(
            "Timeout (tcp tcpfin udp): {} {} {}",
            timeouts.tcp, timeouts.tcp_fin, timeouts.udp
        )
    );
    ipvs.set_timeouts(Timeouts::new(901, 0, 301))
        .expect("set timeouts");
    assert_eq!(
        director("ipvsadm -L --timeout").trim(),
        format!("Timeout (tcp tcpfin udp): 901 {} 301", timeouts.tcp_fin)
    );
    ipvs.set_timeouts(timeouts).expect("restore timeouts");
}

#[test]
#[ignore = "needs root and a kernel with IPVS: run it in the lab (lab/test)"]
fn set_weight_changes_the_weight_and_nothing_else() {
    let _lab = lab();
    let mut ipvs = ipvs();
    let service = ServiceKey::tcp(addr("198.18.0.10:80"));
    let rip = DestinationKey::new(addr("198.18.1.11:80"));
    let before = director("ipvsadm -Sn");
    let find = |ipvs: &mut Ipvs| {
        ipvs.destinations(&service)
            .expect("destinations")
            .into_iter()
            .find(|d| d.key == rip)
            .expect("rip")
    };
    let old = find(&mut ipvs);
    assert_eq!(ipvs.set_weight(&service, &rip, 7).expect("set weight"), 1);
    let new = find(&mut ipvs);
    assert_eq!(
        new.config,
        old.config.with_weight(7),
        "only the weight changed"
    );
    // Read without the counters, the same keys and settings.
    let whole: Vec<_> = ipvs
        .destinations(&service)
        .expect("destinations")
        .into_iter()
        .map(|d| (d.key, d.config))
        .collect();
    assert_eq!(
        ipvs.destination_settings(&service).expect("settings"),
        whole
    );
    let shown = director("ipvsadm -Ln -t 198.18.0.10:80");
    assert!(
        shown
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()[..3]
                == ["->", "198.18.1.11:80", "Masq"]
                && l.split_whitespace().nth(3) == Some("7")),
        "ipvsadm -Ln shows the new weight:\n{shown}"
    );
    // The TUN destination keeps its tunnel settings and thresholds.
    let fwmark = ServiceKey::fwmark(3, AddressFamily::Inet);
    let tun = DestinationKey::new(addr("198.18.1.13:0"));
    assert_eq!(ipvs.set_weight(&fwmark, &tun, 0).expect("quiesce"), 4);
    ipvs.set_weight(&fwmark, &tun, 4).expect("restore");
    ipvs.set_weight(&service, &rip, 1).expect("restore");
    assert_eq!(
        director("ipvsadm -Sn"),
        before,
        "the table is back as it was"
    );
}

#[test]
#[ignore = "needs root and a kernel with IPVS: run it in the lab (lab/test)"]
fn bad_requests_are_named_and_change_nothing() {
    let _lab = lab();
    let mut ipvs = ipvs();
    let before = director("ipvsadm -Sn");
    let service = ServiceKey::tcp(addr("198.18.0.10:80"));
    let missing_service = ServiceKey::tcp(addr("198.18.0.99:80"));
    let rip = DestinationKey::new(addr("198.18.1.11:80"));
    let missing_rip = DestinationKey::new(addr("198.18.1.99:80"));

    let error = ipvs
        .set_weight(&missing_service, &rip, 1)
        .expect_err("no such service");
    assert!(
        matches!(error, Error::ServiceNotFound(k) if k == missing_service),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "service TCP 198.18.0.99:80 does not exist"
    );

    let error = ipvs
        .set_weight(&service, &missing_rip, 1)
        .expect_err("no such destination");
    assert_eq!(
        error.to_string(),
        "destination 198.18.1.99:80 does not exist in service TCP 198.18.0.10:80"
    );
    let error = ipvs
        .set_weight(&service, &rip, MAX_WEIGHT + 1)
        .expect_err("weight too big");
    assert_eq!(
        error.to_string(),
        "weight 2147483648 is out of range: IPVS accepts 0 to 2147483647"
    );
    let error = ipvs
        .set_weight(&service, &rip, u32::MAX)
        .expect_err("weight too big");
    assert!(matches!(error, Error::WeightOutOfRange(u32::MAX)));

    let error = ipvs
        .del_service(&missing_service)
        .expect_err("no such service");
    assert!(matches!(error, Error::ServiceNotFound(_)), "{error:?}");
    let error = ipvs
        .del_destination(&service, &missing_rip)
        .expect_err("no such destination");
    assert!(
        matches!(error, Error::DestinationNotFound { .. }),
        "{error:?}"
    );
    let error = ipvs
        .destinations(&missing_service)
        .expect_err("no such service");
    assert!(matches!(error, Error::ServiceNotFound(_)), "{error:?}");
    let error = ipvs
        .destination_settings(&missing_service)
        .expect_err("no such service");
    assert!(matches!(error, Error::ServiceNotFound(_)), "{error:?}");
    let error = ipvs.service(&missing_service).expect_err("no such service");
    assert!(matches!(error, Error::ServiceNotFound(_)), "{error:?}");
    let error = ipvs
        .new_service(&service, &ServiceConfig::new("rr"))
        .expect_err("exists");
    assert_eq!(
        error.to_string(),
        "service TCP 198.18.0.10:80 already exists"
    );
    let error = ipvs
        .new_destination(
            &service,
            &rip,
            &DestinationConfig::new(ForwardMethod::Masquerade, 1),
        )
        .expect_err("exists");
    assert!(
        matches!(error, Error::DestinationExists { .. }),
        "{error:?}"
    );
    let error = ipvs
        .new_service(&missing_service, &ServiceConfig::new("nosuch"))
        .expect_err("no such scheduler");
    assert_eq!(
        error.to_string(),
        "scheduler or persistence engine \"nosuch\" is not available in this kernel (modprobe ip_vs_nosuch)"
    );
    let thresholds = DestinationConfig::new(ForwardMethod::Masquerade, 1).with_thresholds(5, 10);
    let error = ipvs
        .set_destination(&service, &rip, &thresholds)
        .expect_err("bad thresholds");
    assert_eq!(
        error.to_string(),
        "invalid request: lower threshold 10 is above upper threshold 5"
    );
    assert_eq!(director("ipvsadm -Sn"), before, "nothing changed");
}

/// Builds with the crate, in a namespace of its own, the table ipvsadm built
/// in the director; ipvsadm must then list the same rules.
#[test]
#[ignore = "needs root and a kernel with IPVS: run it in the lab (lab/test)"]
fn crate_builds_what_ipvsadm_builds() {
    let _lab = lab();
    // The kernel refuses real servers whose address it cannot class as
    // unicast, which it cannot do in a namespace whose loopback is down.
    run_in(
        None,
        "ip netns del lab-crate 2>/dev/null; ip netns add lab-crate",
    );
    run_in(Some("lab-crate"), "ip link set lo up");
    let mut ipvs = Ipvs::connect_in_netns("/run/netns/lab-crate").expect("connect");
    let table = Ipvs::connect_in_netns(DIRECTOR)
        .expect("connect")
        .dump()
        .expect("dump");
    for entry in &table {
        ipvs.new_service(&entry.service.key, &entry.service.config)
            .expect("new service");
        for d in &entry.destinations {
            if let Err(e) = ipvs.new_destination(&entry.service.key, &d.key, &d.config) {
                panic!("{e}: {d:?}");
            }
        }
    }
    let rules = |ns: &str| {
        let mut lines: Vec<String> = run_in(Some(ns), "ipvsadm -Sn")
            .lines()
            .map(String::from)
            .collect();
        lines.sort();
        lines
    };
    assert_eq!(rules("lab-crate"), rules("lab-director"));

    // Every other command, checked through ipvsadm.
    let udp = ServiceKey::udp(addr("198.18.0.10:53"));
    let config = ServiceConfig::new("lc")
        .persistent(90)
        .with_netmask(Netmask::V4("255.255.0.0".parse().expect("mask")));
    ipvs.set_service(&udp, &config).expect("set service");
    let shown = run_in(Some("lab-crate"), "ipvsadm -Sn");
    assert!(
        shown.contains("-A -u 198.18.0.10:53 -s lc -p 90 -M 255.255.0.0"),
        "{shown}"
    );
    let rip = DestinationKey::new(addr("198.18.1.12:53"));
    ipvs.del_destination(&udp, &rip).expect("del destination");
    assert!(!run_in(Some("lab-crate"), "ipvsadm -Sn").contains("198.18.1.12:53"));
    ipvs.del_service(&udp).expect("del service");
    assert!(!run_in(Some("lab-crate"), "ipvsadm -Sn").contains("198.18.0.10:53"));
    ipvs.zero(None).expect("zero");
    ipvs.zero(Some(&ServiceKey::tcp(addr("198.18.0.10:80"))))
        .expect("zero one");
    ipvs.flush().expect("flush");
    assert_eq!(run_in(Some("lab-crate"), "ipvsadm -Sn"), "");
    run_in(None, "ip netns del lab-crate");
}

/// `ipvsadm -Lcn`'s entries, counted per (protocol, virtual, destination,
/// state) as it prints them.
fn ipvsadm_connections() -> BTreeMap<(String, String, String, String), u64> {
    let mut counts = BTreeMap::new();
    for line in director("ipvsadm -Lcn").lines().skip(2) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [pro, _expire, state, _source, virt, dest] = f[..] else {
            panic!("unexpected ipvsadm -Lcn line {line:?}")
        };
        *counts
            .entry((pro.into(), virt.into(), dest.into(), state.into()))
            .or_insert(0) += 1;
    }
    counts
}

#[test]
#[ignore = "needs root and a kernel with IPVS: run it in the lab (lab/test)"]
fn conn_table_counts_equal_ipvsadm_and_the_kernels_own_counters() {
    let _lab = lab();
    // The director's /proc/net files, read whole first so that a copy of
    // exactly what was parsed can be kept as a fixture.
    let read = |name: &str| {
        let path = format!("/proc/thread-self/net/{name}");
        let mut file = ipvs::netns::in_netns(Path::new(DIRECTOR), || File::open(&path))
            .expect("enter the director")
            .unwrap_or_else(|e| panic!("open {name}: {e}"));
        let mut text = Vec::new();
        file.read_to_end(&mut text).expect("read");
        text
    };
    let conn_text = read("ip_vs_conn");
    let counts = ConnTableCounts::read_from(&conn_text[..]).expect("parse ip_vs_conn");
    let theirs = ipvsadm_connections();
    let stats_text = read("ip_vs_stats");
    let global = GlobalStats::read_from(&stats_text[..]).expect("parse ip_vs_stats");
    assert!(
        counts.total_templates() > 0,
        "the persistent services hold templates"
    );
    assert!(counts.total_connections() > 0);

    // Per (protocol, virtual, destination, state), as ipvsadm prints them:
    // ipvsadm shows templates and connections alike.
    let mut ours = BTreeMap::new();
    for (key, n) in counts.connections().chain(counts.templates()) {
        let virt = match key.virtual_address {
            ipvs::proc::VirtualAddress::Addr(a) => a.to_string(),
            // ipvsadm prints the mark where the address would be.
            ipvs::proc::VirtualAddress::Fwmark(mark) => {
                format!("{}:0", std::net::Ipv4Addr::from(mark))
            }
        };
        *ours
            .entry((
                key.protocol.to_string(),
                virt,
                key.destination.to_string(),
                key.state.to_string(),
            ))
            .or_insert(0) += n;
    }
    assert_eq!(ours, theirs, "ipvsadm -Lcn");

    // Against the kernel's own counters of the same table: connections per
    // real server are its active + inactive connections, templates its
    // persistent connections, summed over the services it serves. Per
    // address, not address and port: a firewall-mark service's real server
    // may have no port, while its connections carry the one they came to.
    let table = ipvs().dump().expect("dump");
    let mut kernel: BTreeMap<IpAddr, (u64, u64)> = BTreeMap::new();
    for d in table.iter().flat_map(|e| &e.destinations) {
        let k = kernel.entry(d.key.addr.ip()).or_default();
        k.0 += u64::from(d.active_conns + d.inactive_conns);
        k.1 += u64::from(d.persistent_conns);
    }
    kernel.retain(|_, v| *v != (0, 0));
    let mut parsed: BTreeMap<IpAddr, (u64, u64)> = BTreeMap::new();
    for (key, n) in counts.connections() {
        parsed.entry(key.destination.ip()).or_default().0 += n;
    }
    for (key, n) in counts.templates() {
        parsed.entry(key.destination.ip()).or_default().1 += n;
    }
    assert_eq!(parsed, kernel, "per real server: (connections, templates)");
    assert!(
        counts
            .connections()
            .any(|(key, _)| key.protocol == ConnProtocol::Sctp),
        "an SCTP entry"
    );

    // The global totals are the sum of every service's (no service of this
    // table was deleted or zeroed since the traffic).
    let mut total = ipvs::Stats::default();
    for s in table.iter().map(|e| &e.service.stats) {
        total.conns += s.conns;
        total.in_packets += s.in_packets;
        total.out_packets += s.out_packets;
        total.in_bytes += s.in_bytes;
        total.out_bytes += s.out_bytes;
    }
    assert_eq!(
        (
            global.conns,
            global.inpkts,
            global.outpkts,
            global.inbytes,
            global.outbytes
        ),
        (
            total.conns,
            total.in_packets,
            total.out_packets,
            total.in_bytes,
            total.out_bytes
        ),
        "/proc/net/ip_vs_stats against the services' counters"
    );

    // Keep the captures, with what the kernel's counters said of them, for
    // the parsers' unit tests (ipvs/src/proc/testdata/lab-*).
    if let Ok(dir) = std::env::var("LAB_CAPTURE_DIR") {
        let dir = Path::new(&dir);
        std::fs::create_dir_all(dir).expect("capture dir");
        std::fs::write(dir.join("lab-ip_vs_conn.txt"), &conn_text).expect("write");
        std::fs::write(dir.join("lab-ip_vs_stats.txt"), &stats_text).expect("write");
        let kernel_view: String = kernel
            .iter()
            .map(|(ip, (connections, templates))| format!("{ip} {connections} {templates}\n"))
            .collect();
        std::fs::write(dir.join("lab-ip_vs_conn.kernel"), kernel_view).expect("write");
        let totals = format!(
            "{} {} {} {} {}\n",
            total.conns, total.in_packets, total.out_packets, total.in_bytes, total.out_bytes
        );
        std::fs::write(dir.join("lab-ip_vs_stats.kernel"), totals).expect("write");
    }
}

/// Drops CAP_NET_ADMIN from the calling thread's effective set (capabilities
/// are per thread on Linux), so the rest of the thread runs without it.
fn drop_cap_net_admin_in_this_thread() {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Default, Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
    const CAP_NET_ADMIN: u32 = 12;
    let mut header = Header {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: capget/capset read and write exactly these two structures,
    // laid out as <linux/capability.h> has them (version 3: two data words).
    unsafe {
        assert_eq!(
            libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()),
            0,
            "capget"
        );
        data[0].effective &= !(1 << CAP_NET_ADMIN);
        assert_eq!(
            libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()),
            0,
            "capset"
        );
    }
}

#[test]
#[ignore = "needs root and a kernel with IPVS: run it in the lab (lab/test)"]
fn without_cap_net_admin_the_error_says_so() {
    let _lab = lab();
    let error = std::thread::spawn(|| {
        drop_cap_net_admin_in_this_thread();
        // Resolving the family needs no privilege; every IPVS command does.
        let mut ipvs = Ipvs::connect_in_netns(DIRECTOR).expect("connect");
        ipvs.info().expect_err("GET_INFO without CAP_NET_ADMIN")
    })
    .join()
    .expect("thread");
    assert!(matches!(error, Error::PermissionDenied { .. }), "{error:?}");
    assert_eq!(error.to_string(), "IPVS_CMD_GET_INFO needs CAP_NET_ADMIN");
    // The /proc files stay readable: they are world-readable.
    assert!(Path::new("/proc/net/ip_vs_conn").exists());
}
