//! `ipvs-checker import`: each fixture under `tests/import/` converted by
//! the binary, its YAML and stderr compared with the golden files next to
//! it (`NAME.yaml`, `NAME.stderr`; `UPDATE_GOLDEN=1` rewrites them), its
//! exit code checked, and every converted config loaded by the checker's
//! own loader (`--config.check`). Files that must not convert give their
//! FILE:LINE:COLUMN error and no config. A property test feeds both
//! parsers arbitrary text: an error or a config, never a panic.
//!
//! The lab fixtures (`keepalived/lab.conf`, `ldirectord/lab.cf`) are the
//! ones `tests/import_lab.rs` runs the real daemons on.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ipvs_checker::import::{convert, Format, ImportMode};
use proptest::prelude::*;

fn dir(sub: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/import")
        .join(sub)
}

/// `ipvs-checker import FORMAT FILE ARGS...` run in `cwd`.
fn import(cwd: &Path, format: &str, file: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ipvs-checker"))
        .current_dir(cwd)
        .args([
            "import",
            format,
            file,
            "--state-file",
            "/var/lib/ipvs-checker/state.json",
        ])
        .args(args)
        .output()
        .expect("run ipvs-checker import")
}

/// The YAML must load with `--config.check`.
fn config_check(yaml: &[u8]) {
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), yaml).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_ipvs-checker"))
        .arg("--config.check")
        .arg("--config.file")
        .arg(file.path())
        .output()
        .expect("run --config.check");
    assert!(
        out.status.success(),
        "--config.check refuses:\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(yaml)
    );
}

fn golden(path: &Path, actual: &str) {
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(path, actual).expect("write golden");
        return;
    }
    let expected = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 writes it)", path.display()));
    assert_eq!(actual, expected, "{} differs", path.display());
}

/// Converts `file` in `cwd`, checks the exit code, the golden YAML and
/// stderr, and that the checker loads the YAML.
fn converts(cwd: &Path, format: &str, file: &str, args: &[&str], name: &str, code: i32) {
    let out = import(cwd, format, file, args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(code),
        "exit code; stderr:\n{stderr}"
    );
    golden(
        &cwd.join(format!("{name}.yaml")),
        &String::from_utf8_lossy(&out.stdout),
    );
    golden(&cwd.join(format!("{name}.stderr")), &stderr);
    config_check(&out.stdout);
}

/// `file` must not convert: exit 1, nothing on stdout, `message` on stderr.
fn fails(cwd: &Path, format: &str, file: &str, message: &str) {
    let out = import(cwd, format, file, &[]);
    assert_eq!(out.status.code(), Some(1), "{file} converted");
    assert!(
        out.stdout.is_empty(),
        "{file}: a partial config was printed"
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!("ipvs-checker: {message}\n")
    );
}

#[test]
fn keepalived_lab_config_converts_with_its_differences_said() {
    // Includes: conf.d/*.conf (a glob, relative to lab.conf), which
    // includes ../pool/{web,none}.inc (braces, relative to conf.d/; none.inc
    // does not exist, as keepalived allows).
    converts(&dir("keepalived"), "keepalived", "lab.conf", &[], "lab", 3);
}

#[test]
fn keepalived_failover_config_converts_with_its_one_difference() {
    converts(
        &dir("keepalived"),
        "keepalived",
        "failover.conf",
        &[],
        "failover",
        3,
    );
}

#[test]
fn keepalived_lab_config_in_weights_mode_has_no_table_settings() {
    converts(
        &dir("keepalived"),
        "keepalived",
        "lab.conf",
        &["--mode", "weights"],
        "lab-weights",
        3,
    );
    let yaml = std::fs::read_to_string(dir("keepalived").join("lab-weights.yaml")).expect("golden");
    for key in [
        "scheduler:",
        "forward:",
        "persistence:",
        "one_packet:",
        "upper_threshold:",
        "state_file:",
    ] {
        assert!(!yaml.contains(key), "weights mode has {key}");
    }
}

#[test]
fn keepalived_layouts_convert_as_keepalived_reads_them() {
    // Only notes (the words after a value on its line): exit 0.
    converts(
        &dir("keepalived/syntax"),
        "keepalived",
        "layout.conf",
        &[],
        "layout",
        0,
    );
    converts(
        &dir("keepalived/syntax"),
        "keepalived",
        "noprotocol.conf",
        &[],
        "noprotocol",
        0,
    );
}

#[test]
fn keepalived_settings_without_counterpart_are_dropped_and_said() {
    converts(
        &dir("keepalived/syntax"),
        "keepalived",
        "unsupported.conf",
        &[],
        "unsupported",
        3,
    );
}

#[test]
fn keepalived_real_servers_with_several_checkers_need_all_their_checks() {
    converts(
        &dir("keepalived/syntax"),
        "keepalived",
        "checkers.conf",
        &[],
        "checkers",
        3,
    );
    let yaml =
        std::fs::read_to_string(dir("keepalived/syntax").join("checkers.yaml")).expect("golden");
    // Three checkers, then two (another address and interval said), then
    // a UDP_CHECK whose FILE_CHECK is dropped, and a fwmark's two.
    assert_eq!(yaml.matches("checks:").count(), 3, "{yaml}");
    assert_eq!(yaml.matches("type: udp").count(), 3, "{yaml}");
}

#[test]
fn keepalived_digests_become_body_md5() {
    // Every real server has inhibit_on_failure and retry 0: exact.
    converts(
        &dir("keepalived/syntax"),
        "keepalived",
        "digest.conf",
        &[],
        "digest",
        0,
    );
    let yaml =
        std::fs::read_to_string(dir("keepalived/syntax").join("digest.yaml")).expect("golden");
    assert_eq!(yaml.matches("body_md5:").count(), 4, "{yaml}");
    assert!(
        yaml.contains("body_md5: \"f1743bfe5e2cd7630e74f90e32d8f651\""),
        "lowercased: {yaml}"
    );
}

#[test]
fn keepalived_smtp_checks_convert_with_their_helo_name_and_hosts() {
    // The host at another IP is a difference: exit 3.
    converts(
        &dir("keepalived/syntax"),
        "keepalived",
        "smtp.conf",
        &[],
        "smtp",
        3,
    );
    let yaml = std::fs::read_to_string(dir("keepalived/syntax").join("smtp.yaml")).expect("golden");
    // rs1: the preset; rs2: the steps with its name; rs3: its two hosts;
    // rs4: its own connection and its host.
    assert_eq!(yaml.matches("preset: smtp").count(), 3, "{yaml}");
    assert_eq!(
        yaml.matches("{send: \"EHLO lb1.example.test\\r\\n\"}")
            .count(),
        3,
        "{yaml}"
    );
    assert_eq!(yaml.matches("checks:").count(), 2, "{yaml}");
}

#[test]
fn keepalived_files_that_do_not_parse_give_their_place_and_no_config() {
    let d = dir("keepalived/invalid");
    fails(
        &d,
        "keepalived",
        "unclosed.conf",
        "unclosed.conf:1:13: this `{` is never closed",
    );
    fails(
        &d,
        "keepalived",
        "stray-close.conf",
        "stray-close.conf:4:1: `}` without a `{` to close",
    );
    fails(
        &d,
        "keepalived",
        "unterminated.conf",
        "unterminated.conf:5:22: unterminated quoted string (a string ends on its line)",
    );
    fails(
        &d,
        "keepalived",
        "substitution.conf",
        "substitution.conf:1:1: \"$VIP=198.18.0.10\": keepalived's parameter substitution ($NAME) and conditional lines (@NAME) are not supported by the import; expand them first",
    );
    fails(
        &d,
        "keepalived",
        "self.conf",
        "self.conf:2:1: includes nested deeper than 16: a file includes itself?",
    );
    fails(
        &d,
        "keepalived",
        "weight.conf",
        "weight.conf:3:16: weight \"heavy\": expected a number in range",
    );
    fails(
        &d,
        "keepalived",
        "digest.conf",
        "digest.conf:6:24: digest \"7a6c0d2ef5a9e6e1776090916c66ba3\": expected an MD5 as 32 hex digits",
    );
    fails(
        &d,
        "keepalived",
        "group.conf",
        "group.conf:1:22: no virtual_server_group \"missing\"",
    );
    fails(
        &d,
        "keepalived",
        "absent.conf",
        "absent.conf:1:1: cannot read: No such file or directory (os error 2)",
    );
}

#[test]
fn ldirectord_lab_config_converts_with_its_differences_said() {
    converts(&dir("ldirectord"), "ldirectord", "lab.cf", &[], "lab", 3);
}

#[test]
fn ldirectord_failover_config_converts_exactly() {
    converts(
        &dir("ldirectord"),
        "ldirectord",
        "failover.cf",
        &[],
        "failover",
        0,
    );
}

#[test]
fn ldirectord_layouts_convert_as_ldirectord_reads_them() {
    converts(
        &dir("ldirectord"),
        "ldirectord",
        "syntax.cf",
        &[],
        "syntax",
        3,
    );
}

#[test]
fn ldirectord_files_that_do_not_parse_give_their_place_and_no_config() {
    let d = dir("ldirectord/invalid");
    fails(
        &d,
        "ldirectord",
        "indent.cf",
        "indent.cf:2:1: indented by 2 space(s): a line of a virtual section is indented by at least 4 spaces or a tab, and a global line not at all",
    );
    fails(
        &d,
        "ldirectord",
        "hostname.cf",
        "hostname.cf:2:10: \"web1.example.test\": the import needs an IP address (ldirectord would resolve a host name when it starts)",
    );
    fails(
        &d,
        "ldirectord",
        "checktype.cf",
        "checktype.cf:3:5: checktype \"sometimes\": expected connect, negotiate, on, off, ping, external, external-perl or a number",
    );
    fails(
        &d,
        "ldirectord",
        "unterminated.cf",
        "unterminated.cf:3:13: request takes a quoted, non-empty string",
    );
    fails(
        &d,
        "ldirectord",
        "maintenancedir.cf",
        "maintenancedir.cf:2:1: maintenancedir has no value",
    );
}

/// Text made of what the two grammars care about.
fn config_text() -> impl Strategy<Value = String> {
    prop::string::string_regex(
        "([a-z_]{1,12}|virtual_server|real_server|TCP_CHECK|HTTP_GET|url|path|include|virtual|real|198\\.18\\.[0-9]\\.[0-9]{1,3}|[0-9]{1,6}|masq|gate|[{}\"#!=:,\\[\\]/*-]|\\t|    | |\n){0,80}",
    )
    .expect("regex")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn no_input_makes_either_parser_panic(text in config_text(), bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, content) in [("a.conf", text.as_bytes().to_vec()), ("b.conf", bytes)] {
            let path = dir.path().join(name);
            std::fs::write(&path, &content).expect("write");
            for format in [Format::Keepalived, Format::Ldirectord] {
                for mode in [ImportMode::Managed, ImportMode::Weights] {
                    // An error or a config: both fine, a panic is not.
                    let _ = convert(format, &path, mode, "/var/lib/ipvs-checker/state.json");
                }
            }
        }
    }
}
