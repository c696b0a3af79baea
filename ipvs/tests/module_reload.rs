//! The ip_vs module unloaded and loaded again under a handle opened before
//! (a daemon that runs for months sees it: a kernel update's module reload,
//! an operator's `modprobe -r`). The kernel registers the IPVS generic
//! netlink family under a new id each time; a handle that kept the old one
//! was refused with ENOENT forever. Needs root and a kernel with IPVS, so
//! ignored in a plain `cargo test`; the lab runs it (`lab/test`).

use std::net::SocketAddr;

use lab_harness::{lock, run_in, unload_ip_vs};

use ipvs::{Error, Ipvs, ServiceConfig, ServiceKey};

/// Every namespace's table (`ipvsadm -S`), put back when dropped, with the
/// module loaded again: module unloading empties them all, and the test
/// binaries after this one share the lab.
struct Tables {
    saved: Vec<(Option<String>, String)>,
}

/// While it exists, loading ip_vs fails: the kernel loads the module
/// itself when asked for the IPVS family by name.
const NO_IP_VS: &str = "/etc/modprobe.d/lab-ipvs-no-ip_vs.conf";

impl Tables {
    fn save() -> Tables {
        let mut namespaces: Vec<Option<String>> = run_in(None, "ip netns list | cut -d' ' -f1")
            .lines()
            .filter(|ns| !ns.is_empty())
            .map(|ns| Some(ns.to_owned()))
            .collect();
        namespaces.push(None);
        let saved = namespaces
            .into_iter()
            .map(|ns| {
                let rules = run_in(ns.as_deref(), "ipvsadm -Sn");
                (ns, rules)
            })
            .collect();
        Tables { saved }
    }
}

impl Drop for Tables {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(NO_IP_VS);
        run_in(None, "modprobe ip_vs");
        for (ns, rules) in &self.saved {
            run_in(
                ns.as_deref(),
                &format!("ipvsadm -C && ipvsadm -R <<'EOF'\n{rules}EOF"),
            );
        }
    }
}

#[test]
#[ignore = "needs root and a kernel with IPVS: run it in the lab (lab/test)"]
fn a_handle_goes_on_after_the_ip_vs_module_is_unloaded_and_loaded_again() {
    let _lab = lock();
    run_in(None, "modprobe ip_vs");
    let mut ipvs = Ipvs::connect().expect("connect");
    ipvs.services().expect("services before");
    let family_id = || {
        run_in(
            None,
            "genl ctrl get name IPVS 2>/dev/null | awk '/ID:/ { print $4 }' || true",
        )
    };
    let id_before = family_id();

    let _tables = Tables::save();
    unload_ip_vs();
    std::fs::write(NO_IP_VS, "install ip_vs /bin/false\n").expect("modprobe.d");
    // Gone: the handle says so in words a user can act on.
    let error = ipvs.services().expect_err("IPVS is gone");
    assert!(matches!(error, Error::Unavailable), "{error:?}");

    std::fs::remove_file(NO_IP_VS).expect("modprobe.d");
    run_in(None, "modprobe ip_vs");
    let id_after = family_id();
    // Back, under another family id: the same handle lists and changes
    // the table.
    assert_eq!(ipvs.services().expect("services after").len(), 0);
    let vip: SocketAddr = "198.18.0.99:80".parse().expect("address");
    let key = ServiceKey::tcp(vip);
    ipvs.new_service(&key, &ServiceConfig::new("rr"))
        .expect("a new service after the reload");
    assert!(
        run_in(None, "ipvsadm -Sn").contains("-A -t 198.18.0.99:80 -s rr"),
        "ipvsadm sees the service"
    );
    ipvs.del_service(&key).expect("deleted");
    eprintln!(
        "IPVS family id {} before, {} after",
        id_before.trim(),
        id_after.trim()
    );
}
