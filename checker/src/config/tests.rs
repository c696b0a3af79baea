//! The config against `testdata/`: the valid example read field by field,
//! and one `invalid-*.yaml` per rule with the exact message it produces.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ipvs::{AddressFamily, DestinationKey, ServiceKey};

use super::*;

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name)
}

fn dest(s: &str) -> DestinationKey {
    DestinationKey::new(s.parse().expect("test address"))
}

#[test]
fn valid_example_reads_as_written() {
    let config = load(&testdata("valid.yaml")).expect("valid.yaml is valid");
    assert_eq!(config.mode, Mode::Weights);
    assert_eq!(config.services.len(), 4);
    let mail = &config.services[3].real_servers[0];
    let kinds: Vec<&str> = mail.checks.iter().map(|c| c.check.kind.name()).collect();
    assert_eq!(kinds, ["tcp", "tcp", "exec"]);
    assert_eq!(
        mail.checks[1].target,
        "198.18.1.11:465".parse().expect("test address")
    );
    let CheckKind::Conversation(smtps) = &mail.checks[1].check.kind else {
        panic!("a conversation: {:?}", mail.checks[1].check)
    };
    assert!(smtps.tls.is_some());
    assert!(matches!(&smtps.steps[1], crate::config::Step::Send(b) if b == b"QUIT\r\n"));

    let web = &config.services[0];
    assert_eq!(
        web.key,
        ServiceKey::tcp("198.18.0.10:80".parse().expect("test address"))
    );
    assert_eq!(
        web.quorum,
        Some(Quorum {
            min_up: 1,
            sorry_server: None
        })
    );
    let rs1 = &web.real_servers[0];
    assert_eq!(rs1.key, dest("198.18.1.11:80"));
    assert_eq!(rs1.weight, 3);
    assert_eq!(
        rs1.checks[0].target,
        "198.18.1.11:80".parse().expect("test address")
    );
    // The defaults apply wherever they stand in the file.
    assert_eq!(
        rs1.timing,
        Timing {
            interval: Duration::from_secs(1),
            timeout: Duration::from_millis(500),
            rise: 2,
            fall: 2
        }
    );
    let CheckKind::Http(http) = &rs1.checks[0].check.kind else {
        panic!("service check is http: {:?}", rs1.checks[0].check)
    };
    assert_eq!(http.path, "/health");
    assert_eq!(http.expect_status, vec![(200, 200), (300, 399)]);
    assert_eq!(http.body.as_ref().map(|r| r.as_str()), Some("ok"));
    // A bare IP takes the service's port; check_address moves the probe.
    let rs2 = &web.real_servers[1];
    assert_eq!(rs2.key, dest("198.18.1.12:80"));
    assert_eq!(rs2.weight, 2, "default weight");
    assert_eq!(
        rs2.checks[0].target,
        "198.18.1.12:8080".parse().expect("test address")
    );
    assert_eq!(rs2.timing.rise, 1);

    let dns = &config.services[1];
    assert_eq!(
        dns.key,
        ServiceKey::udp("[2001:db8::10]:53".parse().expect("test address"))
    );
    let rs = &dns.real_servers[0];
    assert_eq!(rs.timing.interval, Duration::from_secs(5));
    assert!(matches!(rs.checks[0].check.kind, CheckKind::Tcp));
    assert_eq!(
        rs.checks[0].target,
        "[2001:db8:1::13]:8053".parse().expect("test address")
    );

    let marked = &config.services[2];
    assert_eq!(marked.key, ServiceKey::fwmark(1, AddressFamily::Inet));
    let rs = &marked.real_servers[0];
    assert_eq!(rs.key, dest("198.18.1.11:0"));
    assert_eq!(
        rs.checks[0].target,
        "198.18.1.11:443".parse().expect("test address")
    );
    let CheckKind::Https(https) = &rs.checks[0].check.kind else {
        panic!("https: {:?}", rs.checks[0].check)
    };
    assert_eq!(https.tls.ca_file, Some(testdata("ca.pem")));
    assert_eq!(https.tls.min_version, TlsVersion::Tls13);
    assert_eq!(
        https
            .tls
            .server_name
            .as_ref()
            .map(|n| n.to_str().into_owned()),
        Some("rs1.lab.test".to_owned())
    );
}

#[test]
fn describe_lists_every_real_server() {
    let config = load(&testdata("valid.yaml")).expect("valid.yaml is valid");
    let text = describe(&config);
    assert!(
        text.contains("TCP 198.18.0.10:80 quorum min_up=1\n  -> 198.18.1.11:80 weight 3 probe 198.18.1.11:80 every 1s timeout 500ms rise 2 fall 2: http GET /health expect 200,300-399 body=/ok/\n"),
        "{text}"
    );
    assert!(
        text.contains("FWM 1\n  -> 198.18.1.11:0 weight 2 probe 198.18.1.11:443"),
        "{text}"
    );
    assert!(
        text.contains("https GET / expect 200-299 keep_alive=60s server_name=rs1.lab.test"),
        "{text}"
    );
}

/// Each fixture and the message it must produce, after `FILE:`.
const INVALID: &[(&str, &str)] = &[
    ("address-and-fwmark", "2:5: services[0]: set either address or fwmark, not both"),
    ("body-regex", "3:12: services[0].check: invalid body regex: regex parse error:\n    (ok\n    ^\nerror: unclosed group"),
    ("body-md5", "3:12: services[0].check: invalid body_md5 \"3b1fb749c971d7a2c6a517b37f735df\": expected an MD5 as 32 hex digits, like eff5bc1ef8ec9d03e640fc4370f5eacd (`md5sum` of the page)"),
    ("ca-file-missing", "2:5: services[0]: check: ca_file testdata/no-such-ca.pem: I/O error: No such file or directory (os error 2)"),
    ("check-and-checks", "2:5: services[0]: set check (one check) or checks (several, all must pass), not both"),
    ("check-type", "3:12: services[0].check: unknown check type \"ping\": expected tcp, http, https, exec, dns, udp or icmp"),
    ("checks-empty", "2:5: services[0]: real server 198.18.1.11:80: checks is empty: list at least one check, or leave it out for a tcp connect"),
    ("client-cert-without-key", "3:12: services[0].check: client_cert and client_key go together: set both or neither"),
    ("duplicate-key", "6:9: services[0].real_servers[0]: `weight` is given twice in the same mapping"),
    ("dns-answer-regex", "4:12: services[0].check: invalid answer regex: regex parse error:\n    198.18.(1\n           ^\nerror: unclosed group"),
    ("dns-answer-with-rcode", "4:12: services[0].check: answer and answer_address need expect_rcode NOERROR (an answer with rcode NXDOMAIN has no records to match)"),
    ("dns-field-on-tcp", "4:12: services[0].check: name is only for dns checks, not type tcp"),
    ("dns-name", "4:12: services[0].check: invalid name \"www..lab.test\": a label is empty (a leading or doubled dot)"),
    ("dns-query-type", "4:12: services[0].check: invalid query_type \"AAAAA\": expected a record type like A, AAAA, SOA, NS, MX, TXT, SRV or PTR"),
    ("dns-rcode", "4:12: services[0].check: invalid expect_rcode \"NXDOMAINS\": expected one of NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED, YXDOMAIN, YXRRSET, NXRRSET, NOTAUTH, NOTZONE"),
    ("dns-transport", "4:12: services[0].check: invalid transport \"dot\": expected udp or tcp"),
    ("dns-without-name", "2:55: services[0].check: a dns check needs name: the name to ask for, like www.example.test"),
    ("duplicate-real-server", "2:5: services[0]: real server 198.18.1.11:80 is listed twice"),
    ("duplicate-service", "5:5: services[1]: service TCP 198.18.0.10:80 is listed twice"),
    ("drain-timeout-in-weights-mode", "drain_timeout is only used in mode: managed (weights mode deletes no real server)"),
    ("duration", "2:3: defaults: invalid duration \"2\": expected whole numbers with units (y, w, d, h, m, s, ms) largest first, like 500ms, 2s or 1m30s"),
    ("exec-env-reserved", "3:12: services[0].check: env IPVS_CHECKER_RS_ADDRESS: the IPVS_CHECKER_ variables are the checker's (the real server and its service)"),
    ("exec-field-on-tcp", "3:12: services[0].check: command is only for exec checks, not type tcp"),
    ("exec-placeholder", "3:12: services[0].check: unknown placeholder {rs_ip} in command: expected {rs_address}, {rs_port}, {vs_address}, {vs_port}, {vs_protocol}, {vs_fwmark}"),
    ("exec-relative-command", "3:12: services[0].check: command \"check-mysql.sh\": the program must be an absolute path (it runs without a shell or PATH)"),
    ("exec-without-command", "3:12: services[0].check: an exec check needs command: the program and its arguments, like [/usr/local/bin/check-db, \"{rs_address}\"]"),
    ("fwmark-no-port", "2:5: services[0]: real server 198.18.1.11:0: no port to probe: set check.port or check_address (the real server has port 0)"),
    ("hooks-argv-empty", "2:5: services[0]: hooks.exec.argv: the list is empty: it needs at least the program"),
    ("hooks-ca-file-on-http", "2:5: services[0]: hooks.webhook.ca_file is only for an https:// URL"),
    ("hooks-client-cert-without-key", "2:5: services[0]: hooks.webhook: client_cert and client_key go together: set both or neither"),
    ("hooks-timeout", "3:19: services[0].hooks.exec: duration \"0s\" must be more than 0"),
    ("hooks-unknown-field", "3:49: services[0].hooks.exec: unknown field `shell`, expected `argv` or `timeout`"),
    ("hooks-webhook-https-without-ca", "defaults.hooks.webhook: an https URL needs ca_file (the CA that issued the receiver's certificate; the system's bundle will do, such as /etc/ssl/certs/ca-certificates.crt)"),
    ("hooks-webhook-url", "2:5: services[0]: hooks.webhook.url \"ftp://alerts.example.test/ipvs\": expected an http:// or https:// URL"),
    ("https-without-ca", "3:12: services[0].check: an https check needs ca_file (the CA that issued the real servers' certificates), or insecure_skip_verify: true"),
    ("icmp-port", "3:12: services[0].check: port is not for icmp checks: an echo request goes to an address"),
    ("keep-alive-not-longer-than-interval", "3:5: services[0]: real server 198.18.1.11:80: check keep_alive 2s is not longer than interval 2s: no connection would serve a second probe"),
    ("maintenance-dir-empty", "maintenance_dir: must not be empty"),
    ("managed-without-state-file", "mode: managed needs state_file: the file where the checker records the services and real servers it created, the only ones it deletes"),
    ("max-running-hooks", "max_running_hooks must be at least 1"),
    ("min-tls-version", "3:12: services[0].check: invalid min_tls_version \"1.1\": expected \"1.2\" or \"1.3\""),
    ("mode", "1:7: mode: unknown variant `auto`, expected `weights` or `managed`"),
    ("netmask-without-persistence", "4:5: services[0]: persistence_netmask needs persistence"),
    ("no-address", "2:5: services[0]: a service needs an address (with protocol) or a fwmark"),
    ("no-real-servers", "2:5: services[0]: service TCP 198.18.0.10:80 has no real servers"),
    ("no-services", "services: the list is empty: nothing to check"),
    ("one-packet-on-tcp", "4:5: services[0]: one_packet is only for UDP services"),
    ("out-of-band", "1:14: out_of_band: unknown variant `ignore`, expected `drain` or `restore`"),
    ("persistence-netmask", "4:5: services[0]: invalid persistence_netmask \"255.0.255.0\": the ones must be contiguous, like 255.255.255.0"),
    ("persistence-zero", "4:5: services[0]: persistence must be at least 1 (seconds); leave it out for none"),
    ("preset", "3:12: services[0].check: unknown preset \"ldap\": expected smtp, imap, pop3, redis or mysql"),
    ("preset-and-steps", "3:12: services[0].check: set preset or steps, not both (a preset is its steps)"),
    ("quorum", "2:5: services[0]: quorum.min_up 3 is more than the service's 2 real servers"),
    ("real-server-address", "4:9: services[0].real_servers[0]: invalid real server address \"rs1.lab.test:80\": expected IP, IP:PORT or [IPv6]:PORT"),
    ("rise-zero", "2:5: services[0]: rise and fall must be at least 1 (consecutive results that change the state), got 0"),
    ("scheduler-flag", "4:5: services[0]: scheduler flag \"sh-port\" does not belong to scheduler wrr: sh takes sh-fallback and sh-port, mh takes mh-fallback and mh-port"),
    ("scheduler-in-weights-mode", "3:5: services[0]: scheduler is only used in mode: managed"),
    ("scheduler-name", "4:5: services[0]: invalid scheduler \"Round Robin\": expected a kernel scheduler name such as rr, wrr, lc, wlc, sh or mh"),
    ("send-hex", "3:12: services[0].check: invalid send_hex \"0d0\" in step 1: expected pairs of hex digits, like 0d0a"),
    ("slow-start", "2:5: services[0]: invalid duration \"fast\": expected whole numbers with units (y, w, d, h, m, s, ms) largest first, like 500ms, 2s or 1m30s"),
    ("sorry-server-family", "2:5: services[0]: quorum.sorry_server [2001:db8:1::99]:80 is not of the service's address family"),
    ("sorry-server-is-real-server", "2:5: services[0]: quorum.sorry_server 198.18.1.11:80 is also a real server of the service"),
    ("sorry-server-weight", "2:5: services[0]: quorum.sorry_server.weight must be at least 1"),
    ("state-file-in-weights-mode", "state_file is only used in mode: managed (weights mode creates and deletes nothing)"),
    ("status-range", "3:12: services[0].check: invalid status range \"399-200\" in expect_status: expected like 200-399"),
    ("step-keys", "3:12: services[0].check: step 1 must have exactly one of send, send_hex or expect"),
    ("step-regex", "3:12: services[0].check: invalid expect regex in step 2: regex parse error:\n    +PONG\n    ^\nerror: repetition operator missing expression"),
    ("steps-empty", "3:12: services[0].check: steps is empty: list send and expect steps, or leave it out for a connect"),
    ("steps-on-http", "3:12: services[0].check: steps is only for tcp checks, not type http"),
    ("tcp-tls-without-ca", "3:12: services[0].check: a tcp check with tls: true needs ca_file (the CA that issued the real servers' certificates), or insecure_skip_verify: true"),
    ("threshold-in-weights-mode", "2:5: services[0]: real server 198.18.1.11: upper_threshold is only used in mode: managed"),
    ("thresholds", "4:5: services[0]: real server 198.18.1.11:80: lower_threshold 200 is above upper_threshold 100 (the kernel refuses it; 0 is none)"),
    ("timeout-longer-than-interval", "4:5: services[0]: real server 198.18.1.11:80: timeout 2s is longer than interval 1s"),
    ("tls-field-on-http", "3:12: services[0].check: ca_file is only for https checks, not type http"),
    ("tls-field-on-plain-tcp", "3:12: services[0].check: ca_file is only for https checks and tcp checks with tls: true"),
    ("udp-expect-regex", "4:12: services[0].check: invalid expect regex: regex parse error:\n    (pong\n    ^\nerror: unclosed group"),
    ("udp-field-on-dns", "4:12: services[0].check: payload is only for udp checks, not type dns"),
    ("udp-payload-and-hex", "4:12: services[0].check: set payload or payload_hex, not both"),
    ("udp-payload-hex", "4:12: services[0].check: invalid payload_hex \"ffzz\": expected pairs of hex digits, like 0d0a"),
    ("unknown-field", "4:35: services[0].real_servers[0]: unknown field `wieght`, expected one of `address`, `weight`, `forward`, `upper_threshold`, `lower_threshold`, `slow_start`, `check_address`, `interval`, `timeout`, `rise`, `fall`, `source_address`, `probe_through_vip`, `check`, `checks`"),
    ("vip-check-address", "2:5: services[0]: real server 198.18.1.11:80: set check_address or probe_through_vip, not both"),
    ("vip-check-type", "2:5: services[0]: real server 198.18.1.11:53: probe_through_vip works with checks that connect over TCP (tcp, http, https, dns with transport: tcp), not type udp"),
    ("vip-dns-over-udp", "2:5: services[0]: real server 198.18.1.11:53: probe_through_vip works with checks that connect over TCP: set transport: tcp on the dns check"),
    ("vip-first-mark", "vip_probes.first_mark must not be 0 (a packet without a mark has 0)"),
    ("vip-fwmark-service", "3:5: services[0]: real server 198.18.1.11:0: probe_through_vip needs a service with an address: a fwmark service has no one VIP to probe"),
    ("vip-marks", "vip_probes.marks is 1, but 2 real servers are probed through their VIP: each needs a mark of its own"),
    ("vip-marks-past-the-last", "vip_probes: first_mark 0xffffff00 and marks 4096 go past the largest mark, 0xffffffff"),
    ("vip-nat", "4:5: services[0]: real server 198.18.1.11:80: probe_through_vip is for forward: dr or tun (a NAT real server answers through the director: probe its own address)"),
    ("vip-weights-without-forward", "2:5: services[0]: real server 198.18.1.11:80: probe_through_vip needs forward: dr or tun, as the table forwards to this real server (its probe service forwards the same way)"),
    ("weight", "4:9: services[0].real_servers[0]: weight 2147483648 is out of range: IPVS accepts 0 to 2147483647"),
    ("yaml-syntax", "3:4: did not find expected '-' indicator at line 3 column 4, while parsing a block collection at line 2 column 3"),
];

#[test]
fn every_invalid_fixture_fails_with_its_message() {
    let mut fixtures: Vec<String> = std::fs::read_dir(testdata(""))
        .expect("testdata")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("invalid-"))
        .collect();
    fixtures.sort();
    let mut report = String::new();
    for name in &fixtures {
        let path = testdata(name);
        let error = load(&path).expect_err(name).to_string();
        // The file name is the same in every message; machine paths inside
        // the message (ca_file) are shown relative to the crate.
        let got = error
            .strip_prefix(&format!("{}:", path.display()))
            .unwrap_or(&error)
            .trim_start()
            .replace(&format!("{}/", testdata("").display()), "testdata/")
            .replace(&testdata("").display().to_string(), "testdata/");
        let rule = name
            .trim_start_matches("invalid-")
            .trim_end_matches(".yaml");
        match INVALID.iter().find(|(r, _)| *r == rule) {
            Some((_, want)) if *want == got => {}
            Some((_, want)) => report.push_str(&format!("{name}:\n  want {want}\n  got  {got}\n")),
            None => report.push_str(&format!(
                "{name}: no expected message; got\n    (\"{rule}\", {got:?}),\n"
            )),
        }
    }
    for (rule, _) in INVALID {
        if !fixtures.contains(&format!("invalid-{rule}.yaml")) {
            report.push_str(&format!("invalid-{rule}.yaml is missing\n"));
        }
    }
    assert!(report.is_empty(), "\n{report}");
}

#[test]
fn a_missing_file_is_named() {
    let error = load(Path::new("/nonexistent/checker.yml")).expect_err("no such file");
    assert_eq!(error.location, None);
    assert!(
        error
            .to_string()
            .starts_with("/nonexistent/checker.yml: cannot read: "),
        "{error}"
    );
}

#[test]
fn managed_example_reads_as_written() {
    use ipvs::{ForwardMethod, Netmask, ServiceConfig, ServiceFlags};
    let config = load(&testdata("valid-managed.yaml")).expect("valid-managed.yaml is valid");
    assert_eq!(config.mode, Mode::Managed);
    assert_eq!(
        config.state_file,
        Some(PathBuf::from("/var/lib/ipvs-checker/owned.json"))
    );
    assert!(config.set_expire_quiescent_template);
    let nat = &config.services[0];
    assert_eq!(nat.service_config(), ServiceConfig::new("wrr"));
    assert!(!nat.is_persistent());
    assert_eq!(
        nat.quorum,
        Some(Quorum {
            min_up: 1,
            sorry_server: Some(SorryServer {
                key: dest("198.18.1.99:8080"),
                weight: 1,
                forward: ForwardMethod::Masquerade
            })
        })
    );
    let (rs1, rs2) = (&nat.real_servers[0], &nat.real_servers[1]);
    assert_eq!(rs1.forward, ForwardMethod::Masquerade);
    assert_eq!(
        rs1.slow_start,
        Some(Duration::from_secs(10)),
        "from defaults"
    );
    assert_eq!(rs2.slow_start, Some(Duration::from_secs(30)));
    let d = rs2.destination_config(5);
    assert_eq!(
        (d.weight, d.upper_threshold, d.lower_threshold),
        (5, 100, 50)
    );

    let sticky = &config.services[1];
    let mut want = ServiceConfig::new("sh").persistent(300);
    want.flags = want.flags | ServiceFlags::SCHED1 | ServiceFlags::SCHED2;
    want.netmask = Some(Netmask::V4("255.255.255.0".parse().expect("mask")));
    assert_eq!(sticky.service_config(), want);
    assert_eq!(sticky.real_servers[0].forward, ForwardMethod::DirectRoute);
    assert_eq!(config.vip_probes.marks, 256);
    assert_eq!(
        config
            .probe_services
            .iter()
            .map(|p| p.mark)
            .collect::<Vec<_>>(),
        vec![0x4950_0000]
    );

    let dns = &config.services[2];
    let c = dns.service_config();
    assert!(c
        .flags
        .contains(ServiceFlags::ONE_PACKET | ServiceFlags::PERSISTENT));
    assert_eq!(c.netmask, Some(Netmask::V6(64)));
    assert_eq!(dns.real_servers[0].forward, ForwardMethod::Tunnel);

    let text = describe(&config);
    assert!(
        text.starts_with("mode: managed\nstate_file: /var/lib/ipvs-checker/owned.json\nTCP 198.18.0.10:80 wrr quorum min_up=1 sorry_server 198.18.1.99:8080 weight 1\n  -> 198.18.1.11:80 nat slow_start 10s weight 3"),
        "{text}"
    );
    assert!(
        text.contains("TCP 198.18.0.10:443 sh (sh-fallback,sh-port) persistent 300 mask 255.255.255.0\n  -> 198.18.1.11:443 dr slow_start 10s weight 1 probe 198.18.0.10:443 through FWM 0x49500000 (dr to 198.18.1.11)"),
        "{text}"
    );
}

/// The drain settings: their defaults, and paths next to the config.
#[test]
fn drain_settings_default_and_resolve_next_to_the_config() {
    let service =
        "services:\n  - address: 198.18.0.10:80\n    real_servers: [{address: 198.18.1.11:80}]\n";
    let at = |text: &str| {
        parse(
            text,
            Path::new("/etc/ipvs-checker/checker.yml"),
            Path::new("/etc/ipvs-checker"),
        )
        .expect("valid")
    };
    let config = at(service);
    assert_eq!(config.drain_file, PathBuf::from(DEFAULT_DRAIN_FILE));
    assert_eq!(config.out_of_band, OutOfBand::Drain);
    assert_eq!(config.maintenance_dir, None);
    let config = at(&format!(
        "drain_file: drains.json\nout_of_band: restore\nmaintenance_dir: /var/lib/ipvs-checker/maintenance\n{service}"
    ));
    assert_eq!(
        config.drain_file,
        PathBuf::from("/etc/ipvs-checker/drains.json")
    );
    assert_eq!(config.out_of_band, OutOfBand::Restore);
    assert_eq!(
        config.maintenance_dir,
        Some(PathBuf::from("/var/lib/ipvs-checker/maintenance"))
    );
}

#[test]
fn a_relative_state_file_is_next_to_the_config() {
    let config = parse(
        "mode: managed\nstate_file: owned.json\nservices:\n  - address: 198.18.0.10:80\n    real_servers: [{address: 198.18.1.11:80}]\n",
        Path::new("/etc/ipvs-checker/checker.yml"),
        Path::new("/etc/ipvs-checker"),
    )
    .expect("valid");
    assert_eq!(
        config.state_file,
        Some(PathBuf::from("/etc/ipvs-checker/owned.json"))
    );
}

/// A service or a check deserialized on its own, outside [`parse`]: it is
/// validated as in `mode: weights` with no defaults, relative file names
/// against the current directory, and never panics.
#[test]
fn a_service_and_a_check_deserialize_on_their_own() {
    let service: VirtualService = serde_yaml::from_str(
        "address: 198.18.0.10:80\ncheck: {type: http, path: /health}\nreal_servers: [{address: 198.18.1.11}]\n",
    )
    .expect("a valid service");
    assert_eq!(service.real_servers[0].key, dest("198.18.1.11:80"));
    assert_eq!(
        service.real_servers[0].timing.interval,
        Duration::from_secs(2)
    );
    let error = serde_yaml::from_str::<VirtualService>(
        "address: 198.18.0.10:80\nscheduler: rr\nreal_servers: [{address: 198.18.1.11}]\n",
    )
    .expect_err("scheduler is for managed mode");
    assert!(
        error
            .to_string()
            .contains("scheduler is only used in mode: managed"),
        "{error}"
    );
    let check: Check = serde_yaml::from_str("type: tcp\nport: 8080\n").expect("a valid check");
    assert_eq!(check.port, Some(8080));
    let error = serde_yaml::from_str::<Check>("type: https\nca_file: no-such-ca.pem\n")
        .expect_err("no CA file");
    assert!(
        error.to_string().contains("ca_file no-such-ca.pem"),
        "{error}"
    );
}

/// The files a check names are read once per check, after its block is
/// parsed: a broken one in `defaults` is named as such, even when every
/// service sets its own check, and one check shared by many real servers
/// is built once.
#[test]
fn check_files_are_read_after_parsing_and_named() {
    let base = testdata("");
    let error = parse(
        "defaults:\n  check: {type: https, ca_file: no-such-ca.pem}\nservices:\n  - address: 198.18.0.10:80\n    check: {type: tcp}\n    real_servers: [{address: 198.18.1.11}]\n",
        Path::new("checker.yml"),
        &base,
    )
    .expect_err("missing CA in defaults");
    assert_eq!(error.location, None);
    assert_eq!(
        error.message,
        format!(
            "defaults.check: ca_file {}: I/O error: No such file or directory (os error 2)",
            base.join("no-such-ca.pem").display()
        )
    );
    let config = parse(
        "defaults:\n  check: {type: https, ca_file: ca.pem}\nservices:\n  - address: 198.18.0.10:443\n    real_servers: [{address: 198.18.1.11}, {address: 198.18.1.12}]\n  - address: 198.18.0.11:443\n    real_servers: [{address: 198.18.1.11}]\n",
        Path::new("checker.yml"),
        &base,
    )
    .expect("valid");
    let checks: Vec<&Arc<Check>> = config
        .services
        .iter()
        .flat_map(|s| s.real_servers.iter().map(|rs| &rs.checks[0].check))
        .collect();
    assert!(
        checks.iter().all(|c| Arc::ptr_eq(c, checks[0])),
        "one check, built once"
    );
}

/// The sorry server and the real servers take their port by one rule: a
/// bare IP is the service's port, so a sorry server on another port of a
/// real server's address is not that real server.
#[test]
fn the_sorry_server_port_rule_is_the_real_servers() {
    let text = |sorry: &str| {
        format!("services:\n  - address: 198.18.0.10:80\n    quorum: {{min_up: 1, sorry_server: {{address: \"{sorry}\"}}}}\n    real_servers: [{{address: 198.18.1.11}}]\n")
    };
    let parse_text = |t: String| parse(&t, Path::new("c.yml"), Path::new("."));
    let config = parse_text(text("198.18.1.11:8080")).expect("another port is another server");
    let sorry = config.services[0]
        .quorum
        .and_then(|q| q.sorry_server)
        .expect("sorry");
    assert_eq!(sorry.key, dest("198.18.1.11:8080"));
    let error = parse_text(text("198.18.1.11")).expect_err("the same server");
    assert!(
        error
            .message
            .ends_with("quorum.sorry_server 198.18.1.11:80 is also a real server of the service"),
        "{error}"
    );
}

/// The scheduler name limit is the kernel's, as the ipvs crate has it.
#[test]
fn scheduler_names_up_to_the_kernels_limit() {
    let text = |name: &str| {
        format!("mode: managed\nstate_file: s.json\nservices:\n  - address: 198.18.0.10:80\n    scheduler: {name}\n    real_servers: [{{address: 198.18.1.11}}]\n")
    };
    let longest = "a".repeat(ipvs::constants::IP_VS_SCHEDNAME_MAXLEN - 1);
    parse(&text(&longest), Path::new("c.yml"), Path::new(".")).expect("fits with its NUL");
    let error = parse(
        &text(&format!("{longest}a")),
        Path::new("c.yml"),
        Path::new("."),
    )
    .expect_err("one too long");
    assert!(error.message.contains("invalid scheduler"), "{error}");
}

/// The top-level keys are checked by hand (the services need the
/// context): an unknown, repeated or missing one reads as serde's own.
#[test]
fn top_level_keys_are_refused_where_they_stand() {
    let error = |text: &str| {
        parse(text, Path::new("c.yml"), Path::new("."))
            .expect_err("invalid")
            .to_string()
    };
    let service =
        "services:\n  - address: 198.18.0.10:80\n    real_servers: [{address: 198.18.1.11}]\n";
    assert_eq!(
        error(&format!("{service}stat_file: x\n")),
        "c.yml:4:1: unknown field `stat_file`, expected one of `mode`, `defaults`, `state_file`, `set_expire_quiescent_template`, `drain_file`, `out_of_band`, `maintenance_dir`, `drain_timeout`, `max_running_hooks`, `vip_probes`, `services`"
    );
    assert_eq!(
        error("mode: weights\n"),
        "c.yml:1:1: missing field `services`"
    );
    assert_eq!(
        error(&format!("{service}{service}")),
        "c.yml:4:1: `services` is given twice in the same mapping"
    );
}

/// `checks:` lists several checks, inherited like `check:` and printed by
/// `--config.check` one under the other; `check_address` moves every
/// check's probe, and a check's own port wins over its port.
#[test]
fn several_checks_are_read_inherited_and_described() {
    let config = parse(
        "defaults:\n  checks: [{type: tcp}, {type: tcp, preset: smtp, port: 25}]\nservices:\n  - address: 198.18.0.10:80\n    real_servers:\n      - {address: 198.18.1.11}\n      - {address: 198.18.1.12, check_address: 198.18.2.12:8080}\n      - {address: 198.18.1.13, check: {type: http}}\n",
        Path::new("checker.yml"),
        Path::new("."),
    )
    .expect("valid");
    let rss = &config.services[0].real_servers;
    let targets =
        |i: usize| -> Vec<String> { rss[i].checks.iter().map(|c| c.target.to_string()).collect() };
    assert_eq!(targets(0), ["198.18.1.11:80", "198.18.1.11:25"]);
    assert_eq!(targets(1), ["198.18.2.12:8080", "198.18.2.12:25"]);
    assert_eq!(
        targets(2),
        ["198.18.1.13:80"],
        "its own check replaces the list"
    );
    let text = describe(&config);
    assert!(
        text.contains("  -> 198.18.1.11:80 weight 1 probe 198.18.1.11:80 every 2s timeout 1s rise 2 fall 3: tcp connect\n     and probe 198.18.1.11:25: tcp preset=smtp expect /(?m)^220 / send \"EHLO ipvs-checker\\r\\n\" expect /(?m)^250 / send \"QUIT\\r\\n\" expect /(?m)^221/\n"),
        "{text}"
    );
}

/// An exec check needs no port: a fwmark service's real server (port 0)
/// is checked by its program alone.
#[test]
fn an_exec_check_needs_no_port() {
    let config = parse(
        "services:\n  - fwmark: 7\n    check: {type: exec, command: [/bin/true, \"{rs_address}\"], dynamic_weight: true}\n    real_servers: [{address: 198.18.1.11}]\n",
        Path::new("checker.yml"),
        Path::new("."),
    )
    .expect("valid");
    let text = describe(&config);
    assert!(
        text.contains("probe 198.18.1.11:0 every 2s timeout 1s rise 2 fall 3: exec [\"/bin/true\", \"{rs_address}\"] dynamic_weight\n"),
        "{text}"
    );
}

/// A dns check with its defaults (type A, UDP, NOERROR, RD on) as
/// `--config.check` prints it.
#[test]
fn a_dns_check_is_described_with_its_defaults() {
    let config = parse(
        "services:\n  - protocol: udp\n    address: 198.18.0.10:53\n    checks:\n      - {type: dns, name: www.lab.test}\n      - {type: dns, name: lab.test, query_type: soa, transport: tcp, recursion_desired: false, answer: 'ns1'}\n    real_servers: [{address: 198.18.1.11}]\n",
        Path::new("checker.yml"),
        Path::new("."),
    )
    .expect("valid");
    let text = describe(&config);
    assert!(
        text.contains(": dns www.lab.test. A over udp expect NOERROR\n     and probe 198.18.1.11:53: dns lab.test. SOA over tcp expect NOERROR answer=/ns1/ no_rd\n"),
        "{text}"
    );
}

#[test]
fn a_service_hooks_replace_the_defaults_whole() {
    let text = "\
max_running_hooks: 2
defaults:
  hooks:
    exec: {argv: [/usr/local/bin/page, --team, lb]}
    webhook: {url: \"http://127.0.0.1:9000/ipvs\", retries: 5, backoff: 2s, timeout: 3s}
services:
  - address: 198.18.0.10:80
    real_servers: [{address: 198.18.1.11:80}]
  - address: 198.18.0.20:80
    hooks: {exec: {argv: [/usr/local/bin/other], timeout: 30s}}
    real_servers: [{address: 198.18.1.12:80}]
  - address: 198.18.0.30:80
    hooks: {}
    real_servers: [{address: 198.18.1.13:80}]
";
    let config = parse(text, Path::new("test.yaml"), Path::new(".")).expect("valid");
    assert_eq!(config.max_running_hooks, 2);
    let exec = config.hooks.exec.as_ref().expect("the defaults' exec");
    assert_eq!(exec.argv, ["/usr/local/bin/page", "--team", "lb"]);
    assert_eq!(exec.timeout, std::time::Duration::from_secs(10));
    let webhook = config
        .hooks
        .webhook
        .as_ref()
        .expect("the defaults' webhook");
    assert_eq!(webhook.url.to_string(), "http://127.0.0.1:9000/ipvs");
    assert_eq!(
        (webhook.retries, webhook.backoff, webhook.timeout),
        (
            5,
            std::time::Duration::from_secs(2),
            std::time::Duration::from_secs(3)
        )
    );
    assert!(webhook.tls.is_none());
    // Inherited whole.
    assert_eq!(config.services[0].hooks.exec.as_ref(), Some(exec));
    assert!(config.services[0].hooks.webhook.is_some());
    // Replaced whole: no webhook, though the defaults have one.
    let own = &config.services[1].hooks;
    assert_eq!(
        own.exec.as_ref().map(|e| e.argv.clone()),
        Some(vec!["/usr/local/bin/other".to_owned()])
    );
    assert!(own.webhook.is_none());
    assert!(config.services[2].hooks.is_empty());
}

#[test]
fn an_https_webhook_reads_its_ca_file() {
    let config = load(&testdata("valid.yaml")).expect("valid.yaml is valid");
    assert_eq!(config.max_running_hooks, 2);
    let webhook = config
        .hooks
        .webhook
        .as_ref()
        .expect("the defaults' webhook");
    assert!(webhook.tls.is_some(), "an https:// URL gets a TLS client");
    assert_eq!(webhook.retries, 1);
    assert!(config.services[0].hooks.webhook.is_some(), "inherited");
    assert!(
        config.services[1].hooks.is_empty(),
        "hooks: {{}} turns them off"
    );
}

/// Issue 17's input limits: a config of 100,000 real servers, and the
/// same padded with comments to 10 MB, load whole (their time and memory
/// are measured by lab/bench/config-load.sh, which makes the same files).
#[test]
fn a_config_of_100_000_real_servers_or_of_10_mb_loads_whole() {
    let mut text =
        String::from("defaults: {interval: 2s, timeout: 1s, check: {type: tcp}}\nservices:\n");
    for s in 0..1000 {
        text.push_str(&format!(
            "  - address: 198.18.{}.{}:80\n    real_servers:\n",
            s / 250,
            s % 250 + 1
        ));
        for r in 0..100 {
            text.push_str(&format!(
                "      - address: 10.{}.{}.{}:80\n",
                s / 250,
                s % 250,
                r + 1
            ));
        }
    }
    let pad = format!("# {}\n", "x".repeat(98));
    let padded = text.clone() + &pad.repeat((10_000_000 - text.len()) / pad.len());
    assert!(padded.len() > 9_900_000, "{} bytes", padded.len());
    for text in [text, padded] {
        let config = parse(&text, Path::new("big.yml"), Path::new(".")).expect("loads");
        assert_eq!(config.services.len(), 1000);
        let real_servers: usize = config.services.iter().map(|s| s.real_servers.len()).sum();
        assert_eq!(real_servers, 100_000);
        let last = config.services.last().expect("a service");
        assert_eq!(
            last.real_servers.last().map(|rs| rs.key),
            Some(dest("10.3.249.100:80"))
        );
    }
}

/// An https check offers the suites that hash with SHA-256 before those
/// with SHA-384, and no fewer of them.
#[test]
fn an_https_check_offers_aes_128_with_sha_256_first() {
    use rustls::CipherSuite as S;
    let config = parse(
        "services:\n  - address: 198.18.0.10:443\n    check: {type: https, ca_file: ca.pem}\n    real_servers:\n      - address: 198.18.1.11:443\n",
        Path::new("test.yaml"),
        &testdata(""),
    )
    .expect("config");
    let CheckKind::Https(https) = &config.services[0].real_servers[0].checks[0].check.kind else {
        panic!("not an https check");
    };
    let offered: Vec<S> = https
        .tls
        .client
        .crypto_provider()
        .cipher_suites
        .iter()
        .map(|s| s.suite())
        .collect();
    let place = |suite| offered.iter().position(|s| *s == suite).expect("offered");
    assert!(
        place(S::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256)
            < place(S::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384)
    );
    assert!(
        place(S::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)
            < place(S::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384)
    );
    assert!(place(S::TLS13_AES_128_GCM_SHA256) < place(S::TLS13_AES_256_GCM_SHA384));
    let all = rustls::crypto::ring::default_provider().cipher_suites.len();
    assert_eq!(offered.len(), all);
    // Its ClientHello's random and session id come from the thread's
    // generator, not a system call each.
    let before = super::tls::random_given_on_this_thread();
    rustls::ClientConnection::new(
        https.tls.client.clone(),
        "rs.lab.test".try_into().expect("name"),
    )
    .expect("client");
    let given = super::tls::random_given_on_this_thread() - before;
    assert!(given >= 64, "{given} bytes");
}
