//! `examples/`: each config is what its tool accepts. Checker configs load
//! as `ipvs-checker --config.check` loads them (the lab test also runs the
//! binary on each), and list the real servers and weights their director
//! script gives ipvsadm; the web config parses with ipvs-web's parser and
//! its password is the one its comment says; the private CA's certificates
//! verify with openssl; the systemd units pass `systemd-analyze verify` and
//! an offline security review; the Prometheus config passes `promtool check
//! config`, the Alertmanager config `amtool check-config`, the keepalived
//! config `keepalived --config-test`; every shell script parses.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use ipvs_checker::config::{self, Mode};
use ops_tests::{daemon_binary, read, repo, run};

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

/// (real server address, weight) of every `ipvsadm -a` line of a script.
fn ipvsadm_real_servers(script: &str) -> BTreeMap<String, u32> {
    script
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("ipvsadm -a "))
        .map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let after = |flag: &str| {
                let i = words
                    .iter()
                    .position(|w| *w == flag)
                    .unwrap_or_else(|| panic!("{flag} in {l}"));
                words[i + 1]
            };
            (after("-r").to_owned(), after("-w").parse().expect("weight"))
        })
        .collect()
}

/// Loads a checker config as `--config.check` does; returns its real
/// servers (as `ipvsadm -r` names them) and weights.
fn checker_real_servers(file: &Path) -> BTreeMap<String, u32> {
    let config = config::load(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    assert_eq!(
        config.mode,
        Mode::Weights,
        "{}: the examples use weights mode",
        file.display()
    );
    assert!(!config::describe(&config).is_empty());
    config
        .services
        .iter()
        .flat_map(|s| s.real_servers.iter())
        .map(|rs| {
            let addr = rs.key.addr;
            let name = if addr.port() == 0 {
                addr.ip().to_string()
            } else {
                addr.to_string()
            };
            (name, rs.weight)
        })
        .collect()
}

#[test]
fn checker_configs_load_and_match_their_ipvsadm_tables() {
    for dir in ["lvs-nat", "lvs-dr", "lvs-tun", "fwmark-persistence"] {
        let tmp = copy_example(dir);
        if dir == "fwmark-persistence" {
            // Its HTTPS check names ca.pem beside the config.
            make_ca(tmp.path(), "www.example.test", &[]);
        }
        let checked = checker_real_servers(&tmp.path().join("checker.yml"));
        let table = ipvsadm_real_servers(&read(&format!("examples/{dir}/director.sh")));
        assert_eq!(
            checked, table,
            "examples/{dir}: checker.yml and director.sh disagree"
        );
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
        let tmp = copy_example(dir);
        match dir {
            "fwmark-persistence" => make_ca(tmp.path(), "www.example.test", &[]),
            "https-private-ca" => make_ca(&tmp.path().join("pki"), "www.example.test", &[]),
            _ => {}
        }
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
    let table = ipvsadm_real_servers(&read("examples/lvs-nat/director.sh"));
    let want: BTreeMap<String, u32> = [
        ("192.168.10.2:80".to_owned(), 3),
        ("192.168.10.3:80".to_owned(), 1),
    ]
    .into();
    assert_eq!(table, want);
    let script = read("examples/lvs-nat/director.sh");
    assert!(script.contains("ipvsadm -A -t 192.168.0.150:80 -s wrr"));
    assert!(script.contains("net.ipv4.ip_forward=1"));
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
    let servers = checker_real_servers(&tmp.path().join("checker.yml"));
    assert_eq!(servers.len(), 2);
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
    let checked = checker_real_servers(&examples().join("keepalived/checker.yml"));
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
