//! The Debian packages on a machine that never saw the source: in the lab
//! VM (whose root is this machine's under a throwaway overlay, so dpkg may
//! write to it), with no Rust toolchain on the PATH of anything run, the
//! packages of `target/debian/` are installed with `dpkg -i`, both daemons
//! are started as their unit's ExecStart would run them (the unit's user,
//! only the unit's capability, `NoNewPrivileges`, the flags of
//! `/etc/default/NAME`), the exporter's metrics are compared with `ipvsadm`
//! (the connection table too), and the checker, without root, must set a
//! failed real server's weight to 0, write `expire_quiescent_template` and
//! ping over an ICMP datagram socket; then
//! `dpkg -r` must leave nothing but the conffiles, the users and
//! deb-systemd-helper's state of the units, and `dpkg -P` nothing at all.
//!
//! `lab/test` builds the packages first (`packaging/build-deb --profile dev
//! --no-build`: the binaries its unit tests built). By hand:
//!
//! ```sh
//! packaging/build-deb --profile dev && cargo test -p ops-tests --test package_lab --no-run
//! lab/run -- lab/lib/run-ignored target/debug/deps/package_lab-HASH
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use lab_harness::{client, director, lab_once, run_in, topology_script, Daemon};
use ops_tests::{repo, run, run_status};

/// What the daemons and dpkg run with: the system's directories, no
/// ~/.cargo/bin.
const SYSTEM_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";
const PACKAGES: [&str; 2] = ["ipvs-exporter", "ipvs-checker"];
const VIP: &str = "198.18.0.10";
const RS1: &str = "198.18.1.11";
const RS2: &str = "198.18.1.12";

/// `sh -c script` in a clean environment (SYSTEM_PATH).
fn system_command(script: &str) -> Command {
    let mut command = Command::new("/bin/sh");
    command
        .args(["-c", script])
        .env_clear()
        .env("PATH", SYSTEM_PATH)
        .env("HOME", "/root")
        .env("LANG", "C")
        .env("DEBIAN_FRONTEND", "noninteractive");
    command
}

/// Runs `script` in a clean environment; returns stdout and stderr
/// together, panics with them if it fails.
fn system(script: &str) -> String {
    run(&mut system_command(script))
}

/// Runs `script` in a clean environment: its success, stdout and stderr.
fn system_status(script: &str) -> (bool, String) {
    status_and_output(&mut system_command(script))
}

/// Runs `command`: whether it succeeded, its stdout and stderr together.
fn status_and_output(command: &mut Command) -> (bool, String) {
    let (status, text) = run_status(command);
    (status.success(), text)
}

/// The one `.deb` of `package` in target/debian/.
fn deb(package: &str) -> PathBuf {
    let dir = repo().join("target/debian");
    let found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e}: build the packages first (packaging/build-deb)",
                dir.display()
            )
        })
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(OsStr::to_str)
                .is_some_and(|n| n.starts_with(&format!("{package}_")) && n.ends_with(".deb"))
        })
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one {package} package in {dir:?}: {found:?}"
    );
    found.into_iter().next().expect("one package")
}

/// Every path that the packages could leave behind and that exists now:
/// the whole of /etc and systemd's state, the packages' own directories,
/// and each path the packages install.
fn snapshot(package_paths: &BTreeSet<String>) -> BTreeSet<String> {
    let mut script = String::from(
        "find /etc /var/lib/systemd /var/lib/ipvs-checker /usr/share/ipvs-exporter \
         /usr/share/doc/ipvs-exporter /usr/share/doc/ipvs-checker 2>/dev/null; ",
    );
    script.push_str("for p in");
    for path in package_paths {
        script.push_str(&format!(" '{path}'"));
    }
    script.push_str("; do if [ -e \"$p\" ] || [ -L \"$p\" ]; then echo \"$p\"; fi; done");
    system_status(&script)
        .1
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The lines of /etc/passwd and /etc/group naming the packages' users.
fn users() -> Vec<String> {
    system_status("grep -hE '^ipvs-(exporter|checker):' /etc/passwd /etc/group")
        .1
        .lines()
        .map(str::to_owned)
        .collect()
}

/// `Key=value` settings of an installed unit (the last of each key).
fn unit_settings(package: &str) -> BTreeMap<String, String> {
    // cargo-deb installs units in /usr/lib (the same directory as /lib on
    // a merged-/usr system such as Debian 12).
    let path = format!("/usr/lib/systemd/system/{package}.service");
    let unit = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    unit.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// The setpriv command line that runs `command` (an ExecStart line) as the
/// unit would: its user and group, its only capability ambient, no new
/// privileges, `EnvironmentFile`'s variables expanded as systemd does for
/// an unquoted `$ARGS` (split at white space).
fn as_the_unit(package: &str, command: &str) -> Vec<String> {
    let unit = unit_settings(package);
    let user = &unit["User"];
    assert_eq!(user, package, "the unit's user");
    assert_eq!(&unit["Group"], package, "the unit's group");
    assert_eq!(unit["AmbientCapabilities"], "CAP_NET_ADMIN");
    assert_eq!(unit["CapabilityBoundingSet"], "CAP_NET_ADMIN");
    assert_eq!(unit["NoNewPrivileges"], "yes");
    let env_file = unit["EnvironmentFile"].trim_start_matches('-');
    [
        "env",
        "-i",
        &format!("PATH={SYSTEM_PATH}"),
        "setpriv",
        &format!("--reuid={user}"),
        &format!("--regid={user}"),
        "--init-groups",
        "--inh-caps=-all,+net_admin",
        "--ambient-caps=-all,+net_admin",
        "--bounding-set=-all,+net_admin",
        "--no-new-privs",
        "--",
        "/bin/sh",
        "-c",
        &format!("set -a; . {env_file}; set +a; exec {command}"),
    ]
    .map(str::to_owned)
    .to_vec()
}

/// Runs the checker unit's ExecStartPre (`--config.check`) as the unit
/// would; its success and output.
fn exec_start_pre() -> (bool, String) {
    let pre = unit_settings("ipvs-checker")["ExecStartPre"].clone();
    let args = as_the_unit("ipvs-checker", &pre);
    status_and_output(Command::new(&args[0]).args(&args[1..]))
}

/// Starts `package`'s daemon in the director's namespace as its unit would.
fn start(package: &str, ready_url: &str) -> Daemon {
    let exec_start = unit_settings(package)["ExecStart"].clone();
    let args = as_the_unit(package, &exec_start);
    let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    let log = PathBuf::from(std::env::var("LAB_OUT").unwrap_or_else(|_| "/tmp".into()))
        .join(format!("package-{package}.log"));
    Daemon::start(
        args[0].to_str().expect("program"),
        &args[1..],
        &log,
        ready_url,
        Duration::from_secs(30),
    )
}

/// `ipvs_backend_NAME` or `ipvs_service_NAME` of the lab's VIP:80 (and of
/// real server `rip` for a backend series) in an exposition.
fn series(metrics: &str, name: &str, rip: Option<&str>) -> u64 {
    let vip = format!("local_address=\"{VIP}\",local_port=\"80\"");
    metrics
        .lines()
        .find(|l| {
            l.starts_with(&format!("{name}{{"))
                && l.contains(&vip)
                && rip.is_none_or(|r| l.contains(&format!("remote_address=\"{r}\"")))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} for {rip:?} in:\n{metrics}"))
}

/// The numbers of ipvsadm's line for `addr` (VIP:80 or a real server).
fn ipvsadm_numbers(table: &str, addr: &str) -> Vec<u64> {
    table
        .lines()
        .find(|l| l.split_whitespace().any(|w| w == addr))
        .unwrap_or_else(|| panic!("no {addr} in:\n{table}"))
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect()
}

/// The weight ipvsadm shows for a real server of VIP:80.
fn weight(rip: &str) -> u64 {
    let table = director(&format!("ipvsadm -Ln -t {VIP}:80"));
    // -> RIP:80  Masq  WEIGHT  ActiveConn  InActConn
    ipvsadm_numbers(&table, &format!("{rip}:80"))[0]
}

#[test]
#[ignore = "installs packages: runs in the lab VM (lab/test)"]
fn the_packages_install_run_as_their_units_and_remove_cleanly() {
    assert_eq!(
        std::env::var("LAB_IN_VM").as_deref(),
        Ok("1"),
        "this test installs packages: it runs only in the lab VM, whose root is thrown away"
    );
    let _lab = lab_once(|| {});
    // Nothing the test runs may find a Rust toolchain.
    system("! command -v cargo && ! command -v rustc");
    let debs: Vec<PathBuf> = PACKAGES.iter().map(|p| deb(p)).collect();
    let mut package_paths = BTreeSet::new();
    for deb in &debs {
        // "drwxr-xr-x root/root 0 2026-01-01 00:00 ./usr/bin/" -> /usr/bin
        for line in system(&format!("dpkg-deb -c '{}'", deb.display())).lines() {
            let path = line.rsplit(' ').next().expect("a path");
            let path = path.trim_start_matches('.').trim_end_matches('/');
            if !path.is_empty() {
                package_paths.insert(path.to_owned());
            }
        }
    }
    let before = snapshot(&package_paths);
    let users_before = users();
    assert!(users_before.is_empty(), "{users_before:?}");

    // man-db's trigger would rebuild the whole man index under emulation.
    system("rm -f /var/lib/man-db/auto-update");
    let started = Instant::now();
    system(&format!(
        "dpkg -i '{}' '{}'",
        debs[0].display(),
        debs[1].display()
    ));
    eprintln!("dpkg -i: {:?}", started.elapsed());
    for package in PACKAGES {
        let status = system(&format!("dpkg-query -W -f='${{Status}}' {package}"));
        assert_eq!(status, "install ok installed");
        let passwd = system(&format!("getent passwd {package}"));
        // name:x:UID:GID:gecos:home:shell, a system user without a shell.
        let fields: Vec<&str> = passwd.trim().split(':').collect();
        let uid: u32 = fields[2].parse().expect("uid");
        assert!(uid < 1000, "{passwd}");
        assert!(fields[6].ends_with("nologin"), "{passwd}");
        system(&format!(
            "test -x /usr/bin/{package} && test -f /usr/share/man/man1/{package}.1.gz"
        ));
    }
    let conffiles: BTreeSet<String> = PACKAGES
        .iter()
        .flat_map(|p| {
            system(&format!("dpkg-query -W -f='${{Conffiles}}' {p}"))
                .lines()
                .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
                .collect::<Vec<_>>()
        })
        .collect();
    let expected: BTreeSet<String> = [
        "/etc/default/ipvs-exporter",
        "/etc/default/ipvs-checker",
        "/etc/ipvs-checker/checker.yml",
    ]
    .map(str::to_owned)
    .into();
    assert_eq!(conffiles, expected);
    system(
        "test -f /usr/share/ipvs-exporter/dashboards/ipvs-overview.json \
         && test -f /usr/share/ipvs-exporter/alerts/ipvs.rules.yml \
         && test -f /usr/share/doc/ipvs-checker/examples/lvs-nat/checker.yml",
    );
    // The exporter's unit is enabled (it only reads); the checker's is not.
    system("test -L /etc/systemd/system/multi-user.target.wants/ipvs-exporter.service");
    system("test ! -e /etc/systemd/system/multi-user.target.wants/ipvs-checker.service");

    // The checker's conffile as shipped: ExecStartPre refuses it.
    let (ok, out) = exec_start_pre();
    assert!(!ok, "{out}");
    assert!(out.contains("missing field `services`"), "{out}");

    // The lab's LVS-NAT cluster, made with ipvsadm; some traffic.
    let topology = topology_script();
    run_in(
        None,
        &format!("{topology} up 2 && {topology} serve && {topology} vip {VIP}"),
    );
    // Port 8080: persistent, its real servers pinged (ICMP).
    director(&format!(
        "ipvsadm -C && ipvsadm -A -t {VIP}:80 -s wrr \
         && ipvsadm -a -t {VIP}:80 -r {RS1}:80 -m -w 3 \
         && ipvsadm -a -t {VIP}:80 -r {RS2}:80 -m -w 1 \
         && ipvsadm -A -t {VIP}:8080 -s rr -p 60 \
         && ipvsadm -a -t {VIP}:8080 -r {RS1}:80 -m -w 2 \
         && ipvsadm -a -t {VIP}:8080 -r {RS2}:80 -m -w 2"
    ));
    // What the unprivileged checker changes, from the kernel's defaults:
    // expire_quiescent_template is 0, ping_group_range lets its group
    // (alone) make ICMP datagram sockets: it has no CAP_NET_RAW.
    let checker_gid = system("id -g ipvs-checker");
    director(&format!(
        "echo 0 > /proc/sys/net/ipv4/vs/expire_quiescent_template && \
         sysctl -qw net.ipv4.ping_group_range='{0} {0}'",
        checker_gid.trim()
    ));
    client(&format!(
        "for i in 1 2 3 4; do curl -sf -o /dev/null http://{VIP}/; done"
    ));

    // The operator's edits: the checker's config, flags in /etc/default.
    std::fs::write(
        "/etc/ipvs-checker/checker.yml",
        format!(
            "mode: weights\n\
             set_expire_quiescent_template: true\n\
             defaults: {{interval: 1s, timeout: 500ms, rise: 1, fall: 1}}\n\
             services:\n\
             \x20 - protocol: tcp\n\
             \x20   address: {VIP}:80\n\
             \x20   check: {{type: http, path: /}}\n\
             \x20   real_servers:\n\
             \x20     - {{address: {RS1}:80, weight: 3}}\n\
             \x20     - {{address: {RS2}:80, weight: 1}}\n\
             \x20 - protocol: tcp\n\
             \x20   address: {VIP}:8080\n\
             \x20   check: {{type: icmp}}\n\
             \x20   real_servers:\n\
             \x20     - {{address: {RS1}:80, weight: 2}}\n\
             \x20     - {{address: {RS2}:80, weight: 2}}\n"
        ),
    )
    .expect("edit checker.yml");
    std::fs::write(
        "/etc/default/ipvs-exporter",
        "ARGS=\"--web.listen-address=127.0.0.1:10310 --log.level=debug\"\n",
    )
    .expect("edit /etc/default/ipvs-exporter");
    std::fs::write(
        "/etc/default/ipvs-checker",
        "ARGS=\"--web.listen-address=127.0.0.1:10311\"\n",
    )
    .expect("edit /etc/default/ipvs-checker");
    let (ok, out) = exec_start_pre();
    assert!(ok, "{out}");
    assert!(out.contains(&format!("{RS1}:80 weight 3")), "{out}");

    let exporter = start("ipvs-exporter", "http://127.0.0.1:10310/");
    let checker = start("ipvs-checker", "http://127.0.0.1:10311/metrics");
    for (package, daemon) in [("ipvs-exporter", &exporter), ("ipvs-checker", &checker)] {
        let status = std::fs::read_to_string(format!("/proc/{}/status", daemon.pid()))
            .expect("the daemon's /proc status");
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{name}:")))
                .map(|v| v.split_whitespace().collect::<Vec<_>>())
                .unwrap_or_else(|| panic!("no {name} in {status}"))
        };
        let uid = system(&format!("id -u {package}"));
        assert_eq!(field("Uid"), [uid.trim(); 4], "{package} runs as its user");
        // CAP_NET_ADMIN is bit 12, and nothing else.
        for set in ["CapEff", "CapPrm", "CapBnd", "CapAmb"] {
            assert_eq!(field(set), ["0000000000001000"], "{package} {set}");
        }
        assert_eq!(field("NoNewPrivs"), ["1"], "{package}");
    }

    // The exporter's counters and weights equal ipvsadm's (the checker,
    // both real servers up, keeps the weights as they are), read while no
    // packet moves them: the four requests' last segments may still come
    // in between the two reads, so ipvsadm is read before and after the
    // scrape until both reads agree.
    let stats_of_vip = format!("ipvsadm -Ln --stats --exact -t {VIP}:80");
    let (metrics, stats) = (0..20)
        .find_map(|_| {
            let before = director(&stats_of_vip);
            let metrics = director("curl -sf http://127.0.0.1:10310/metrics");
            let after = director(&stats_of_vip);
            if before == after {
                return Some((metrics, after));
            }
            sleep(Duration::from_millis(250));
            None
        })
        .expect("ipvsadm's counters of the VIP still moving after 20 reads");
    let families = [
        "connections_total",
        "incoming_packets_total",
        "outgoing_packets_total",
        "incoming_bytes_total",
        "outgoing_bytes_total",
    ];
    let service: Vec<u64> = families
        .iter()
        .map(|f| series(&metrics, &format!("ipvs_service_{f}"), None))
        .collect();
    assert_eq!(service, ipvsadm_numbers(&stats, &format!("{VIP}:80")));
    assert!(service[0] >= 4, "the four requests: {service:?}");
    for rip in [RS1, RS2] {
        let backend: Vec<u64> = families
            .iter()
            .map(|f| series(&metrics, &format!("ipvs_backend_{f}"), Some(rip)))
            .collect();
        assert_eq!(backend, ipvsadm_numbers(&stats, &format!("{rip}:80")));
        assert_eq!(
            series(&metrics, "ipvs_backend_weight", Some(rip)),
            weight(rip)
        );
    }

    // The connection table, readable without privilege: the exporter's
    // connection states of VIP:80 count what ipvsadm lists.
    let listed = director(&format!("ipvsadm -Lnc | grep -c ' {VIP}:80 '"));
    let counted: u64 = metrics
        .lines()
        .filter(|l| {
            l.starts_with("ipvs_backend_connection_states{")
                && l.contains(&format!("local_address=\"{VIP}\",local_port=\"80\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(counted.to_string(), listed.trim(), "{metrics}");
    assert!(counted >= 4, "the four requests' connections: {counted}");

    // The checker wrote the sysctl (CAP_NET_ADMIN is what it takes), and
    // pings over an ICMP datagram socket: both real servers of VIP:8080
    // up.
    assert_eq!(
        director("cat /proc/sys/net/ipv4/vs/expire_quiescent_template").trim(),
        "1",
        "{}",
        checker.log_text()
    );
    let pinged = Instant::now();
    let checker_metric = |rip: &str| {
        let text = director("curl -sf http://127.0.0.1:10311/metrics");
        text.lines()
            .find(|l| {
                l.starts_with("ipvs_checker_probe_success{")
                    && l.contains("local_port=\"8080\"")
                    && l.contains(&format!("remote_address=\"{rip}\""))
            })
            .and_then(|l| l.rsplit(' ').next().map(str::to_owned))
    };
    while [RS1, RS2].map(checker_metric) != [Some("1".into()), Some("1".into())] {
        assert!(
            pinged.elapsed() < Duration::from_secs(20),
            "the ICMP checks did not pass in 20 s:\n{}",
            checker.log_text()
        );
        sleep(Duration::from_millis(300));
    }

    // A failed real server: the checker sets its weight to 0.
    run_in(None, "kill $(cat /run/lab-topology/rs1/server.pid)");
    let failed = Instant::now();
    while weight(RS1) != 0 {
        assert!(
            failed.elapsed() < Duration::from_secs(20),
            "rs1 still weighted 20 s after its server died:\n{}",
            checker.log_text()
        );
        sleep(Duration::from_millis(200));
    }
    eprintln!("rs1 at weight 0 after {:?}", failed.elapsed());
    assert_eq!(weight(RS2), 1);
    // Its host still answers pings: weight 2 on VIP:8080.
    let table = director(&format!("ipvsadm -Ln -t {VIP}:8080"));
    assert_eq!(
        ipvsadm_numbers(&table, &format!("{RS1}:80"))[0],
        2,
        "{table}"
    );
    let metrics = director("curl -sf http://127.0.0.1:10310/metrics");
    assert_eq!(series(&metrics, "ipvs_backend_weight", Some(RS1)), 0);
    drop(checker);
    drop(exporter);
    run_in(None, &format!("{topology} down"));

    // dpkg -r: the conffiles stay (edited or not), the users, and
    // deb-systemd-helper's state of the units (purge removes it).
    let started = Instant::now();
    system("dpkg -r ipvs-checker ipvs-exporter");
    eprintln!("dpkg -r: {:?}", started.elapsed());
    for package in PACKAGES {
        let status = system(&format!("dpkg-query -W -f='${{Status}}' {package}"));
        assert_eq!(status, "deinstall ok config-files");
    }
    let after_remove = snapshot(&package_paths);
    let left: Vec<&String> = after_remove.difference(&before).collect();
    for path in &left {
        let conffile = conffiles.contains(*path) || *path == "/etc/ipvs-checker";
        // deb-systemd-helper masks both units on removal (so that a unit
        // left enabled cannot start without its package) and keeps its
        // record of the exporter's being enabled.
        let systemd_state = path.contains("deb-systemd-helper")
            || (path.starts_with("/etc/systemd/system/") && path.contains("/ipvs-"));
        assert!(
            conffile || systemd_state,
            "{path} left after dpkg -r (all left: {left:?})"
        );
    }
    for conffile in &conffiles {
        assert!(
            after_remove.contains(conffile),
            "{conffile} removed by dpkg -r"
        );
    }
    system("test ! -e /usr/bin/ipvs-exporter && test ! -e /usr/bin/ipvs-checker");

    // dpkg -P: nothing.
    let started = Instant::now();
    system("dpkg -P ipvs-checker ipvs-exporter");
    eprintln!("dpkg -P: {:?}", started.elapsed());
    for package in PACKAGES {
        let (known, out) = system_status(&format!("dpkg-query -W {package}"));
        assert!(!known, "{package} still known to dpkg after purge: {out}");
    }
    let after_purge = snapshot(&package_paths);
    let left: Vec<&String> = after_purge.difference(&before).collect();
    assert!(left.is_empty(), "left after dpkg -P: {left:?}");
    assert_eq!(users(), users_before, "the users after dpkg -P");
}
