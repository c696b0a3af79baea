//! The command line on this machine (no IPVS needed): `--config.check`
//! prints what would be checked and exits 0, or names the error and exits 1.

use std::process::Command;

fn checker(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ipvs-checker"))
        .args(args)
        .output()
        .expect("run ipvs-checker");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn testdata(name: &str) -> String {
    format!("{}/testdata/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn config_check_prints_the_plan() {
    let (ok, stdout, stderr) =
        checker(&["--config.file", &testdata("valid.yaml"), "--config.check"]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.starts_with("mode: weights\nTCP 198.18.0.10:80 quorum min_up=1\n"),
        "{stdout}"
    );
}

#[test]
fn config_check_names_the_error_and_fails() {
    let file = testdata("invalid-weight.yaml");
    let (ok, stdout, stderr) = checker(&["--config.file", &file, "--config.check"]);
    assert!(!ok);
    assert_eq!(stdout, "");
    assert_eq!(
        stderr,
        format!("ipvs-checker: invalid configuration: {file}:4:9: services[0].real_servers[0]: weight 2147483648 is out of range: IPVS accepts 0 to 2147483647\n")
    );
}

/// Every `testdata/invalid-*.yaml` through the real binary: exit 1, nothing
/// on stdout, and on stderr exactly the library's message for it (which
/// the config's unit tests pin, fixture by fixture).
#[test]
fn every_invalid_fixture_fails_through_the_binary_with_its_message() {
    let dir = testdata("");
    let mut fixtures: Vec<String> = std::fs::read_dir(&dir)
        .expect("testdata")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("invalid-") && n.ends_with(".yaml"))
        .collect();
    fixtures.sort();
    assert!(fixtures.len() >= 30, "{fixtures:?}");
    for name in &fixtures {
        let file = testdata(name);
        let (ok, stdout, stderr) = checker(&["--config.file", &file, "--config.check"]);
        let error = ipvs_checker::config::load(std::path::Path::new(&file))
            .expect_err(name)
            .to_string();
        assert!(!ok, "{name} passed");
        assert_eq!(stdout, "", "{name}");
        assert_eq!(
            stderr,
            format!("ipvs-checker: invalid configuration: {error}\n"),
            "{name}"
        );
        assert!(error.starts_with(&format!("{file}:")), "{error}");
    }
}
