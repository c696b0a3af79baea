//! What `packaging/` installs, checked on this machine (the packages
//! themselves are installed in the lab: `tests/package_lab.rs`):
//!
//! - the Debian packages' systemd units, as `packaging/make-units` makes
//!   them from `examples/systemd/`: hardened as the issue asks, `systemd-analyze
//!   verify` clean, `systemd-analyze security` exposure 2.0 or less (the
//!   score is printed: `cargo test -p ops-tests --test packaging -- --nocapture`);
//! - the checker's conffile `/etc/ipvs-checker/checker.yml`: refused as
//!   shipped (it does nothing until edited), its commented example loads;
//! - `examples/kubernetes/ipvs-exporter.yaml` against the Kubernetes
//!   schemas of 1.25 and 1.37 (kubernetes-validate, offline, from
//!   lab/setup's venv), its ServiceMonitor against the Prometheus
//!   Operator's schema (an npm package, from lab/setup's lab/.cache/npm),
//!   the settings the issue names, and the exporter's
//!   service filter of the DaemonSet on kube-proxy's NodePort services;
//! - `examples/kubernetes/Dockerfile` against the tarball's layout (no
//!   container runtime here to build it).

use std::path::{Path, PathBuf};
use std::process::Command;

use ipvs::ServiceKey;
use ipvs_exporter::filter::{service_name, ServiceFilter};
use ops_tests::{daemon_binary, read, repo, run};

const DAEMONS: [&str; 2] = ["ipvs-exporter", "ipvs-checker"];

/// The packaged units, made into `dir`.
fn make_units(dir: &Path) {
    run(Command::new(repo().join("packaging/make-units")).arg(dir));
}

#[test]
fn the_packaged_units_run_as_the_package_user_with_only_cap_net_admin_and_verify() {
    let tmp = tempfile::tempdir().expect("temporary directory");
    make_units(tmp.path());
    for daemon in DAEMONS {
        let unit = std::fs::read_to_string(tmp.path().join(format!("{daemon}.service")))
            .expect("make-units wrote the unit");
        for line in [
            format!("User={daemon}\n"),
            format!("Group={daemon}\n"),
            format!("EnvironmentFile=-/etc/default/{daemon}\n"),
            "CapabilityBoundingSet=CAP_NET_ADMIN\n".into(),
            "AmbientCapabilities=CAP_NET_ADMIN\n".into(),
            "NoNewPrivileges=yes\n".into(),
            "ProtectSystem=strict\n".into(),
            "ProtectHome=yes\n".into(),
            "PrivateTmp=yes\n".into(),
            "PrivateDevices=yes\n".into(),
            "PrivateMounts=yes\n".into(),
            "SystemCallFilter=@system-service\n".into(),
        ] {
            assert!(
                unit.contains(&line),
                "{daemon}.service lacks {line}\n{unit}"
            );
        }
        assert!(!unit.contains("DynamicUser"), "{unit}");
        assert!(!unit.contains("/usr/local"), "{unit}");
        let exec_start = unit
            .lines()
            .find(|l| l.starts_with("ExecStart="))
            .expect("ExecStart");
        assert!(
            exec_start.starts_with(&format!("ExecStart=/usr/bin/{daemon} "))
                && exec_start.ends_with(" $ARGS"),
            "{exec_start}"
        );
        if daemon == "ipvs-checker" {
            assert!(
                exec_start.contains(" --config.file=/etc/ipvs-checker/checker.yml "),
                "{exec_start}"
            );
        }

        // verify wants ExecStart's binary: this build's stands in for /usr/bin's.
        let built = daemon_binary(daemon);
        let local = unit.replace(
            &format!("/usr/bin/{daemon} "),
            &format!("{} ", built.display()),
        );
        let verify_dir = tmp.path().join("verify");
        std::fs::create_dir_all(&verify_dir).expect("directory");
        let file = verify_dir.join(format!("{daemon}.service"));
        std::fs::write(&file, local).expect("write unit");
        run(Command::new("systemd-analyze").arg("verify").arg(&file));

        // Exposure 2.0 or less of systemd's 10 ("OK").
        let out = run(Command::new("systemd-analyze")
            .args(["security", "--offline=true", "--threshold=20"])
            .arg(tmp.path().join(format!("{daemon}.service"))));
        let score = out
            .lines()
            .find(|l| l.contains("Overall exposure level"))
            .unwrap_or_else(|| panic!("no score in:\n{out}"));
        println!("{score}");
    }
}

#[test]
fn make_units_refuses_an_example_it_no_longer_matches() {
    // A copy of the repository's packaging/ and examples/systemd/ whose
    // exporter unit listens elsewhere than the default: the package cannot
    // leave that to $ARGS, and says so.
    let tmp = tempfile::tempdir().expect("temporary directory");
    let root = tmp.path();
    std::fs::create_dir_all(root.join("packaging")).expect("directory");
    std::fs::create_dir_all(root.join("examples/systemd")).expect("directory");
    std::fs::copy(
        repo().join("packaging/make-units"),
        root.join("packaging/make-units"),
    )
    .expect("copy make-units");
    for daemon in DAEMONS {
        let unit = read(&format!("examples/systemd/{daemon}.service"))
            .replace("--web.listen-address=:10310", "--web.listen-address=:9999");
        std::fs::write(
            root.join(format!("examples/systemd/{daemon}.service")),
            unit,
        )
        .expect("write unit");
    }
    // Through bash, not exec'd: a copy just written may still be open in
    // a child another test forked meanwhile (ETXTBSY).
    let output = Command::new("bash")
        .arg(root.join("packaging/make-units"))
        .arg(root.join("out"))
        .output()
        .expect("run make-units");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("listens elsewhere than the default :10310"),
        "{stderr}"
    );
}

#[test]
fn the_checker_conffile_does_nothing_until_edited_and_its_example_loads() {
    let shipped = repo().join("packaging/debian/checker.yml");
    let checker = daemon_binary("ipvs-checker");
    let output = Command::new(&checker)
        .arg(format!("--config.file={}", shipped.display()))
        .arg("--config.check")
        .output()
        .expect("run ipvs-checker");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "the shipped file must be refused");
    assert!(stderr.contains("missing field `services`"), "{stderr}");

    // Uncommented from `mode:` on, the example is a config the checker takes.
    let text = read("packaging/debian/checker.yml");
    let example: String = text
        .lines()
        .map(|l| l.strip_prefix("# ").or(l.strip_prefix('#')).unwrap_or(l))
        .skip_while(|l| !l.starts_with("mode:"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(example.contains("services:"), "{example}");
    let tmp = tempfile::tempdir().expect("temporary directory");
    let file = tmp.path().join("checker.yml");
    std::fs::write(&file, example).expect("write config");
    let out = run(Command::new(&checker)
        .arg(format!("--config.file={}", file.display()))
        .arg("--config.check"));
    assert!(out.contains("mode: weights"), "{out}");
}

/// `kubernetes-validate` of lab/setup's venv.
fn kubernetes_validate() -> PathBuf {
    let tool = repo().join("lab/.cache/venv/bin/kubernetes-validate");
    assert!(
        tool.is_file(),
        "{} is missing: run lab/setup --packages (lab/requirements.txt)",
        tool.display()
    );
    tool
}

const MANIFEST: &str = "examples/kubernetes/ipvs-exporter.yaml";

#[test]
fn the_kubernetes_manifest_validates_against_the_kubernetes_schemas() {
    let manifest = repo().join(MANIFEST);
    for version in ["1.25", "1.37"] {
        let out = run(Command::new(kubernetes_validate())
            .args(["--strict", "--kubernetes-version", version])
            .arg(&manifest));
        for kind in ["namespace", "daemonset", "service"] {
            assert!(
                out.contains(&format!("passed for resource {kind}/ipvs-exporter")),
                "{kind} not validated against {version}:\n{out}"
            );
        }
        // The Prometheus Operator's CRDs are no Kubernetes schema: the
        // ServiceMonitor is the one object it leaves unchecked, and says
        // so (`the_service_monitor_validates_against_the_operators_schema`).
        let unchecked: Vec<&str> = out.lines().filter(|l| l.contains("WARN")).collect();
        assert!(
            unchecked.len() == 1 && unchecked[0].contains("kind ServiceMonitor"),
            "{out}"
        );
    }

    // The validator is live: a wrong type and an unknown field are refused.
    let text = read(MANIFEST);
    let tmp = tempfile::tempdir().expect("temporary directory");
    for (what, broken) in [
        (
            "hostNetwork",
            text.replace("hostNetwork: true", "hostNetwork: \"yes\""),
        ),
        (
            "hostNetworking",
            text.replace("hostNetwork: true", "hostNetworking: true"),
        ),
    ] {
        assert_ne!(broken, text);
        let file = tmp.path().join("broken.yaml");
        std::fs::write(&file, broken).expect("write manifest");
        let output = Command::new(kubernetes_validate())
            .arg("--strict")
            .arg(&file)
            .output()
            .expect("run kubernetes-validate");
        let out = String::from_utf8_lossy(&output.stdout);
        assert!(!output.status.success(), "{what}: {out}");
        assert!(out.contains(what), "{out}");
    }
}

/// Validates `object` with the Prometheus Operator's ServiceMonitor schema
/// (its CRD's, as the npm package `@kubernetes-models/prometheus-operator`
/// ships it; lab/setup installs it): `Ok` or the validator's message.
fn validate_service_monitor(object: &serde_json::Value) -> Result<(), String> {
    let packages = repo().join("lab/.cache/npm");
    assert!(
        packages.join("node_modules").is_dir(),
        "{} is missing: run lab/setup --packages (lab/npm/package.json)",
        packages.display()
    );
    // An inline module resolves its imports from the working directory.
    let script = "import { ServiceMonitor } from \
        '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor';\n\
        try { new ServiceMonitor(JSON.parse(process.argv[1])).validate(); }\n\
        catch (e) { console.log(e.message); process.exitCode = 1; }";
    let output = Command::new("node")
        .current_dir(&packages)
        .args(["--input-type=module", "-e", script])
        .arg(object.to_string())
        .output()
        .expect("run node (Node.js)");
    let out = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let err = String::from_utf8_lossy(&output.stderr);
    match output.status.code() {
        Some(0) => Ok(()),
        Some(1) if !out.is_empty() => Err(out),
        _ => panic!("node failed: {}\n{out}\n{err}", output.status),
    }
}

/// The manifest's objects, as JSON.
fn manifest_objects() -> Vec<serde_json::Value> {
    read(MANIFEST)
        .split("\n---\n")
        .map(|d| serde_yaml::from_str(d).expect("YAML document"))
        .collect()
}

#[test]
fn the_service_monitor_validates_against_the_operators_schema_and_selects_the_service() {
    let objects = manifest_objects();
    let monitor = objects
        .iter()
        .find(|o| o["kind"] == "ServiceMonitor")
        .expect("a ServiceMonitor");
    validate_service_monitor(monitor).expect("the ServiceMonitor is valid");

    // It selects the Service, in its namespace, by the Service's port name.
    let service = objects
        .iter()
        .find(|o| o["kind"] == "Service")
        .expect("a Service");
    assert_eq!(
        monitor["metadata"]["namespace"],
        service["metadata"]["namespace"]
    );
    let wanted = monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .expect("matchLabels");
    assert!(!wanted.is_empty());
    for (label, value) in wanted {
        assert_eq!(&service["metadata"]["labels"][label], value, "{label}");
    }
    let ports: Vec<&serde_json::Value> = service["spec"]["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .map(|p| &p["name"])
        .collect();
    assert!(ports.contains(&&monitor["spec"]["endpoints"][0]["port"]));

    // The validator is live: a duration and a scheme it refuses, by name.
    for (field, value, named) in [
        ("interval", "30 seconds", "interval must match pattern"),
        (
            "scheme",
            "htp",
            "scheme must be equal to one of the allowed values",
        ),
    ] {
        let mut broken = monitor.clone();
        broken["spec"]["endpoints"][0][field] = serde_json::json!(value);
        let error = validate_service_monitor(&broken).expect_err(field);
        assert!(error.contains(named), "{field}: {error}");
    }
}

#[test]
fn the_daemonset_runs_in_the_host_network_with_net_admin_only_and_filters_nodeports() {
    let docs = manifest_objects();
    let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        ["Namespace", "DaemonSet", "Service", "ServiceMonitor"]
    );
    let pod = &docs[1]["spec"]["template"]["spec"];
    assert_eq!(pod["hostNetwork"].as_bool(), Some(true));
    let container = &pod["containers"][0];
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"].as_bool(), Some(true));
    assert_eq!(security["allowPrivilegeEscalation"].as_bool(), Some(false));
    assert_eq!(security["capabilities"]["drop"][0].as_str(), Some("ALL"));
    let added: Vec<&str> = security["capabilities"]["add"]
        .as_array()
        .expect("capabilities.add")
        .iter()
        .filter_map(|c| c.as_str())
        .collect();
    assert_eq!(added, ["NET_ADMIN"]);
    assert_eq!(container["ports"][0]["containerPort"].as_u64(), Some(10310));
    assert_eq!(
        docs[3]["spec"]["endpoints"][0]["port"].as_str(),
        container["ports"][0]["name"].as_str()
    );

    let args: Vec<&str> = container["args"]
        .as_array()
        .expect("args")
        .iter()
        .filter_map(|a| a.as_str())
        .collect();
    assert!(
        args.contains(&"--collector.backends.labels=per-service"),
        "{args:?}"
    );
    let exclude = args
        .iter()
        .find_map(|a| a.strip_prefix("--collector.services.exclude="))
        .expect("--collector.services.exclude");
    let filter = ServiceFilter::new(None, Some(exclude)).expect("the exclude pattern compiles");
    let kept = |addr: &str, tcp: bool| {
        let addr = addr.parse().expect("socket address");
        let key = if tcp {
            ServiceKey::tcp(addr)
        } else {
            ServiceKey::udp(addr)
        };
        filter.keeps(&service_name(&key))
    };
    // NodePorts (30000-32767) out, ClusterIP services in.
    for (addr, tcp) in [
        ("10.0.0.5:30000", true),
        ("10.0.0.5:31234", true),
        ("10.0.0.5:32767", true),
        ("[fd00::5]:30080", false),
    ] {
        assert!(!kept(addr, tcp), "{addr} should be excluded");
    }
    for (addr, tcp) in [
        ("10.96.0.1:443", true),
        ("10.96.0.10:53", false),
        ("10.0.0.5:29999", true),
        ("10.0.0.5:32768", true),
        ("10.96.0.20:3000", true),
    ] {
        assert!(kept(addr, tcp), "{addr} should be kept");
    }
}

#[test]
fn the_dockerfile_copies_what_the_tarball_holds_and_runs_what_it_copied() {
    // No container runtime here: the file is checked against the tarball
    // layout that packaging/build-tarball writes, and the manifest's port.
    let dockerfile = read("examples/kubernetes/Dockerfile");
    let build_tarball = read("packaging/build-tarball");
    let lines: Vec<&str> = dockerfile
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .collect();
    assert_eq!(lines.first(), Some(&"FROM scratch"), "{dockerfile}");
    let mut copied = Vec::new();
    for line in &lines {
        if let Some(rest) = line.strip_prefix("COPY ") {
            let (source, destination) = rest.split_once(' ').expect("COPY SOURCE DESTINATION");
            // build-tarball installs each file as "$stage/NAME".
            let staged = if source == "ipvs-exporter" {
                "\"$stage/$daemon\"".to_owned()
            } else {
                format!("\"$stage/{source}\"")
            };
            assert!(
                build_tarball.contains(&staged),
                "the tarball has no {source} (build-tarball writes no {staged})"
            );
            copied.push(destination);
        }
    }
    let entrypoint = lines
        .iter()
        .find_map(|l| l.strip_prefix("ENTRYPOINT [\""))
        .and_then(|l| l.split('"').next())
        .expect("ENTRYPOINT [\"...\"]");
    assert!(copied.contains(&entrypoint), "{entrypoint} is not copied");
    assert!(
        lines.contains(&"EXPOSE 10310") && read(MANIFEST).contains("containerPort: 10310"),
        "{dockerfile}"
    );
}
