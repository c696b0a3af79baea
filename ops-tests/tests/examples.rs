//! `examples/`: each config is what its tool accepts. Checker configs load
//! as `ipvs-checker --config.check` loads them (and the binary accepts
//! each); a managed-mode config documents the table it makes as `ipvsadm
//! -Sn` lines, which must be what the config says (`tests/lab.rs` checks
//! them against the kernel) and names the VIP and mark its director and
//! real-server scripts set up; the keepalived example's checker lists the
//! real servers and weights of keepalived.conf; the web config parses with
//! ipvs-web's parser and its password is the one its comment says; the
//! private CA's certificates verify with openssl; the systemd units pass
//! `systemd-analyze verify` and an offline security review; the Prometheus
//! config passes `promtool check config`, the Alertmanager config `amtool
//! check-config`, the keepalived config `keepalived --config-test`; every
//! shell script parses.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use ipvs::{AddressFamily, ForwardMethod, Protocol, ServiceFlags, ServiceKey};
use ipvs_checker::config::{self, Config, Mode};
use ops_tests::{daemon_binary, documented_table, read, repo, run, MANAGED_EXAMPLES};

fn examples() -> PathBuf {
    repo().join("examples")
}

/// `examples/DIR` copied into a fresh temporary directory (so files made
/// for a test, such as certificates, never land in the repository).
fn copy_example(dir: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("temporary directory");
    for entry in std::fs::read_dir(examples().join(dir)).expect("example directory") {
        let path = entry.expect("entry").path();
        std::fs::copy(&path, tmp.path().join(path.file_name().expect("name"))).expect("copy");
    }
    tmp
}

/// Runs examples/https-private-ca/make-ca.sh DIR NAME SANS...
fn make_ca(dir: &Path, name: &str, sans: &[&str]) {
    run(Command::new("sh")
        .arg(examples().join("https-private-ca/make-ca.sh"))
        .arg(dir)
        .arg(name)
        .args(sans));
}

/// Loads a checker config as `--config.check` does, or panics with why.
fn load(file: &Path) -> Config {
    let config = config::load(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    assert!(!config::describe(&config).is_empty());
    config
}

/// The example `dir` copied, with what its config names made beside it
/// (the private CA's `ca.pem`), and its config loaded.
fn load_example(dir: &str) -> (tempfile::TempDir, Config) {
    let tmp = copy_example(dir);
    match dir {
        // Their HTTPS checks name ca.pem beside the config, or in pki/.
        "fwmark-persistence" => make_ca(tmp.path(), "www.example.test", &[]),
        "https-private-ca" => make_ca(&tmp.path().join("pki"), "www.example.test", &[]),
        _ => {}
    }
    let config = load(&tmp.path().join("checker.yml"));
    (tmp, config)
}

/// The table a managed config makes, as `ipvsadm -Sn` prints it with
/// every real server at its configured weight. Panics on a setting this
/// does not write (scheduler flags, thresholds): the examples use none,
/// and a line without them would be a false one.
fn ipvsadm_save(config: &Config) -> Vec<String> {
    let mut lines = Vec::new();
    for service in &config.services {
        let key = match service.key {
            ServiceKey::Addr { protocol, addr } => {
                let flag = match protocol {
                    Protocol::Tcp => "-t",
                    Protocol::Udp => "-u",
                    Protocol::Sctp => "--sctp-service",
                    other => panic!("protocol {other} has no ipvsadm flag"),
                };
                format!("{flag} {addr}")
            }
            ServiceKey::Fwmark { mark, family } => match family {
                AddressFamily::Inet => format!("-f {mark}"),
                AddressFamily::Inet6 => format!("-f {mark} -6"),
            },
        };
        assert_eq!(
            service.flags,
            ServiceFlags::default(),
            "{key}: flags are not written here"
        );
        let mut line = format!("-A {key} -s {}", service.scheduler);
        if let Some(timeout) = service.persistence {
            line += &format!(" -p {timeout}");
        }
        if let Some(mask) = service.netmask {
            line += &format!(" -M {mask}");
        }
        lines.push(line);
        for rs in &service.real_servers {
            assert_eq!(
                (rs.upper_threshold, rs.lower_threshold),
                (0, 0),
                "{key}: thresholds are not written here"
            );
            // ipvsadm names the tunnel type after the weight; the config's
            // `forward: tun` is IP-in-IP.
            let (forward, tunnel) = match rs.forward {
                ForwardMethod::Masquerade => ("-m", ""),
                ForwardMethod::DirectRoute => ("-g", ""),
                ForwardMethod::Tunnel => ("-i", " --tun-type ipip"),
                other => panic!("{key}: forwarding method {other:?} is not in the examples"),
            };
            lines.push(format!(
                "-a {key} -r {} {forward} -w {}{tunnel}",
                rs.key.addr, rs.weight
            ));
        }
    }
    lines
}

/// The value of the first `NAME=value` line of a script.
fn script_var(path: &str, name: &str) -> String {
    read(path)
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("{path} sets no {name}="))
        .to_owned()
}

/// The real servers of a config (address as `ipvsadm -Sn` prints it) and
/// their weights.
fn checker_real_servers(config: &Config) -> BTreeMap<String, u32> {
    config
        .services
        .iter()
        .flat_map(|s| s.real_servers.iter())
        .map(|rs| (rs.key.addr.to_string(), rs.weight))
        .collect()
}

#[test]
fn managed_configs_document_the_table_they_make() {
    for dir in MANAGED_EXAMPLES {
        let (_tmp, config) = load_example(dir);
        assert_eq!(config.mode, Mode::Managed, "examples/{dir}: managed mode");
        // The one directory the hardened unit lets the checker write.
        assert_eq!(
            config.state_file.as_deref(),
            Some(Path::new("/var/lib/ipvs-checker/owned.json")),
            "examples/{dir}: state_file"
        );
        let text = read(&format!("examples/{dir}/checker.yml"));
        assert_eq!(
            documented_table(&text),
            ipvsadm_save(&config),
            "examples/{dir}/checker.yml: the ipvsadm -Sn lines in its comment are not the table it makes"
        );
    }
    let unit = read("examples/systemd/ipvs-checker.service");
    assert!(unit.contains("\nStateDirectory=ipvs-checker\n"), "{unit}");
    // The checker speaks sd_notify: ready after its first pass, a watchdog
    // fed only while it makes progress.
    assert!(
        unit.contains("\nType=notify\n") && unit.contains("\nWatchdogSec="),
        "{unit}"
    );
}

#[test]
fn director_and_real_server_scripts_set_up_the_vips_and_marks_the_configs_name() {
    for dir in ["lvs-nat", "lvs-dr", "lvs-tun", "fwmark-persistence"] {
        let (_tmp, config) = load_example(dir);
        let director = format!("examples/{dir}/director.sh");
        let script = read(&director);
        // The checker makes the table: a script with ipvsadm lines beside it
        // would say otherwise.
        assert!(
            !script
                .lines()
                .any(|l| l.trim_start().starts_with("ipvsadm ")),
            "{director}: the checker owns the table"
        );
        let vip: std::net::IpAddr = script_var(&director, "VIP").parse().expect("VIP");
        assert!(
            script.contains("ip addr add \"$VIP/"),
            "{director}: holds the VIP"
        );
        let realserver = format!("examples/{dir}/realserver.sh");
        if repo().join(&realserver).exists() {
            assert_eq!(
                script_var(&realserver, "VIP")
                    .parse::<std::net::IpAddr>()
                    .expect("VIP"),
                vip,
                "{realserver} and {director}: the VIP"
            );
        }
        for service in &config.services {
            match service.key {
                ServiceKey::Addr { addr, .. } => {
                    assert_eq!(addr.ip(), vip, "examples/{dir}: checker.yml's VIP")
                }
                ServiceKey::Fwmark { mark, .. } => {
                    let set: u32 = script_var(&director, "MARK").parse().expect("MARK");
                    assert_eq!(mark, set, "examples/{dir}: checker.yml's fwmark");
                    assert!(
                        script.contains("-d \"$VIP/32\"")
                            && script.contains("--set-mark \"$MARK\""),
                        "{director}: marks the VIP's packets"
                    );
                }
            }
        }
    }
}

#[test]
fn the_checker_binary_accepts_every_example_config() {
    let checker = daemon_binary("ipvs-checker");
    for dir in [
        "lvs-nat",
        "lvs-dr",
        "lvs-tun",
        "fwmark-persistence",
        "https-private-ca",
        "keepalived",
    ] {
        let (tmp, _) = load_example(dir);
        let out = run(Command::new(&checker)
            .arg("--config.file")
            .arg(tmp.path().join("checker.yml"))
            .arg("--config.check"));
        assert!(
            !out.trim().is_empty(),
            "examples/{dir}: --config.check printed nothing"
        );
    }
}

#[test]
fn the_lvs_nat_example_is_the_seed_notes_cluster() {
    assert_eq!(
        documented_table(&read("examples/lvs-nat/checker.yml")),
        [
            "-A -t 192.168.0.150:80 -s wrr",
            "-a -t 192.168.0.150:80 -r 192.168.10.2:80 -m -w 3",
            "-a -t 192.168.0.150:80 -r 192.168.10.3:80 -m -w 1",
        ]
    );
    assert!(read("examples/lvs-nat/director.sh").contains("sysctl -w net.ipv4.ip_forward=1\n"));
}

#[test]
fn the_https_example_verifies_with_its_private_ca() {
    let tmp = copy_example("https-private-ca");
    let pki = tmp.path().join("pki");
    make_ca(&pki, "www.example.test", &["IP:10.0.0.11", "IP:10.0.0.12"]);
    let out = run(Command::new("openssl")
        .args([
            "verify",
            "-purpose",
            "sslserver",
            "-verify_hostname",
            "www.example.test",
            "-CAfile",
        ])
        .arg(pki.join("ca.pem"))
        .arg(pki.join("www.example.test.pem")));
    assert!(out.contains(": OK"), "{out}");
    let out = run(Command::new("openssl")
        .args(["verify", "-verify_ip", "10.0.0.12", "-CAfile"])
        .arg(pki.join("ca.pem"))
        .arg(pki.join("www.example.test.pem")));
    assert!(out.contains(": OK"), "{out}");
    // A second server reuses the CA instead of making a new one.
    let ca = std::fs::read(pki.join("ca.pem")).expect("ca.pem");
    make_ca(&pki, "api.example.test", &[]);
    assert_eq!(std::fs::read(pki.join("ca.pem")).expect("ca.pem"), ca);
    let config = load(&tmp.path().join("checker.yml"));
    assert_eq!(checker_real_servers(&config).len(), 2);
}

#[test]
fn the_keepalived_example_passes_its_config_test_and_the_checker_owns_the_same_servers() {
    let file = examples().join("keepalived/keepalived.conf");
    run(Command::new("keepalived")
        .arg("--config-test")
        .arg(format!("--use-file={}", file.display())));
    let conf = read("examples/keepalived/keepalived.conf");
    let mut table = BTreeMap::new();
    let lines: Vec<&str> = conf.lines().map(str::trim).collect();
    for (i, line) in lines.iter().enumerate() {
        if let Some(rest) = line.strip_prefix("real_server ") {
            let mut words = rest.split_whitespace();
            let (ip, port) = (words.next().expect("ip"), words.next().expect("port"));
            let weight = lines[i + 1]
                .strip_prefix("weight ")
                .expect("weight line")
                .parse::<u32>()
                .expect("weight");
            table.insert(format!("{ip}:{port}"), weight);
        }
    }
    let config = load(&examples().join("keepalived/checker.yml"));
    // keepalived owns the table: the checker only sets weights.
    assert_eq!(config.mode, Mode::Weights);
    let checked = checker_real_servers(&config);
    assert_eq!(checked, table, "keepalived.conf and checker.yml disagree");
    let checks = lines
        .iter()
        .filter(|l| !l.starts_with('#'))
        .any(|l| l.contains("HTTP_GET") || l.contains("SSL_GET") || l.contains("TCP_CHECK"));
    assert!(
        !checks,
        "keepalived.conf must leave the health checks to ipvs-checker"
    );
}

#[test]
fn the_web_config_parses_and_its_password_is_the_documented_one() {
    let tmp = copy_example("web-config");
    make_ca(
        &tmp.path().join("pki"),
        "lvs1.example.test",
        &["IP:192.168.0.150"],
    );
    let web = ipvs_web::WebConfig::load(&tmp.path().join("web.yml")).expect("web.yml parses");
    assert!(web.tls.is_some(), "web.yml enables TLS");
    let auth = ipvs_web::auth::BasicAuth::new(&web.basic_auth_users).expect("basic auth users");
    // base64("prometheus:example")
    assert!(auth.check(Some(b"Basic cHJvbWV0aGV1czpleGFtcGxl")));
    // base64("prometheus:wrong")
    assert!(!auth.check(Some(b"Basic cHJvbWV0aGV1czp3cm9uZw==")));
}

#[test]
fn the_systemd_units_verify_and_are_hardened() {
    let tmp = tempfile::tempdir().expect("temporary directory");
    for daemon in ["ipvs-exporter", "ipvs-checker"] {
        let unit = read(&format!("examples/systemd/{daemon}.service"));
        for line in [
            "CapabilityBoundingSet=CAP_NET_ADMIN\n",
            "AmbientCapabilities=CAP_NET_ADMIN\n",
            "NoNewPrivileges=yes\n",
            "ProtectSystem=strict\n",
            "DynamicUser=yes\n",
        ] {
            assert!(unit.contains(line), "{daemon}.service lacks {line}");
        }
        // systemd-analyze verify wants ExecStart's binary to exist: the one
        // this build made stands in for /usr/local/bin's.
        let built = daemon_binary(daemon);
        let local = unit.replace(
            &format!("/usr/local/bin/{daemon}"),
            &built.display().to_string(),
        );
        let file = tmp.path().join(format!("{daemon}.service"));
        std::fs::write(&file, local).expect("write unit");
        run(Command::new("systemd-analyze").arg("verify").arg(&file));
        // Exposure 2.0 or less of systemd's 10 ("OK").
        let out = run(Command::new("systemd-analyze")
            .args(["security", "--offline=true", "--threshold=20"])
            .arg(examples().join(format!("systemd/{daemon}.service"))));
        assert!(out.contains("Overall exposure level"), "{out}");
    }
}

#[test]
fn promtool_accepts_the_prometheus_config() {
    let out = run(Command::new("promtool")
        .args(["check", "config"])
        .arg(examples().join("prometheus/prometheus.yml")));
    assert!(out.contains("SUCCESS"), "{out}");
}

#[test]
fn amtool_accepts_the_alertmanager_config_and_its_alert_names_exist() {
    let out = run(Command::new("amtool")
        .arg("check-config")
        .arg(examples().join("alertmanager/alertmanager.yml")));
    assert!(out.contains("SUCCESS"), "{out}");
    let rules = read("alerts/ipvs.rules.yml");
    let am: serde_yaml::Value =
        serde_yaml::from_str(&read("examples/alertmanager/alertmanager.yml")).expect("YAML");
    let mut matchers = Vec::new();
    collect_matchers(&am, &mut matchers);
    let named: Vec<&str> = matchers
        .iter()
        .filter_map(|m| m.strip_prefix("alertname"))
        .map(|m| m.trim_start_matches(['=', '~']).trim_matches('"'))
        .collect();
    assert!(named.len() >= 5, "{matchers:?}");
    for names in named {
        for name in names.split('|').filter(|n| !n.contains('*')) {
            assert!(
                rules.contains(&format!("alert: {name}\n")),
                "alertmanager.yml names {name}, which no rule has"
            );
        }
    }
}

/// Every string of every `*matchers` list under `value`.
fn collect_matchers(value: &serde_yaml::Value, out: &mut Vec<String>) {
    match value {
        serde_yaml::Value::Mapping(map) => {
            for (key, v) in map {
                let is_matchers = key.as_str().is_some_and(|k| k.ends_with("matchers"));
                match v.as_sequence() {
                    Some(list) if is_matchers => {
                        out.extend(list.iter().filter_map(|m| m.as_str().map(str::to_owned)))
                    }
                    _ => collect_matchers(v, out),
                }
            }
        }
        serde_yaml::Value::Sequence(list) => list.iter().for_each(|v| collect_matchers(v, out)),
        _ => {}
    }
}

#[test]
fn the_dr_and_tun_real_servers_get_the_arp_settings() {
    let conf = read("examples/lvs-dr/90-lvs-dr.conf");
    for (key, value) in [
        ("net.ipv4.conf.all.arp_ignore", "1"),
        ("net.ipv4.conf.all.arp_announce", "2"),
        ("net.ipv4.conf.lo.arp_ignore", "1"),
        ("net.ipv4.conf.lo.arp_announce", "2"),
    ] {
        assert!(
            conf.contains(&format!("{key} = {value}\n")),
            "90-lvs-dr.conf: {key}"
        );
        assert!(
            read("examples/lvs-dr/realserver.sh").contains(&format!("sysctl -w {key}={value}\n")),
            "lvs-dr/realserver.sh: {key}"
        );
    }
    let tun = read("examples/lvs-tun/realserver.sh");
    for setting in ["arp_ignore=1", "arp_announce=2", "tunl0.rp_filter=0"] {
        assert!(tun.contains(setting), "lvs-tun/realserver.sh: {setting}");
    }
}

#[test]
fn every_example_script_parses() {
    for entry in walk(&examples()) {
        if entry.extension().is_some_and(|e| e == "sh") {
            run(Command::new("sh").arg("-n").arg(&entry));
        }
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read_dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
