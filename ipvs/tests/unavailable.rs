//! On a kernel without IPVS (the project's build machines have none), every
//! entry point says so in words a user can act on.

use std::path::Path;

use ipvs::{Error, Ipvs};

fn kernel_has_ipvs() -> bool {
    Path::new("/proc/net/ip_vs").exists() || Path::new("/sys/module/ip_vs").exists()
}

#[test]
fn netlink_without_ipvs_says_modprobe() {
    if kernel_has_ipvs() {
        eprintln!("skipped: this kernel has IPVS (the lab's tests cover it)");
        return;
    }
    let error = Ipvs::connect().expect_err("no IPVS here");
    assert!(matches!(error, Error::Unavailable), "{error:?}");
    assert_eq!(
        error.to_string(),
        "IPVS is not available in this kernel (modprobe ip_vs)"
    );
}

#[test]
fn proc_files_without_ipvs_say_modprobe() {
    if kernel_has_ipvs() {
        eprintln!("skipped: this kernel has IPVS (the lab's tests cover it)");
        return;
    }
    let error = ipvs::read_ip_vs_conn().expect_err("no IPVS here");
    assert!(error.to_string().contains("modprobe ip_vs"), "{error}");
    let error = ipvs::read_ip_vs_stats().expect_err("no IPVS here");
    assert!(error.to_string().contains("modprobe ip_vs"), "{error}");
}
