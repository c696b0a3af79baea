//! `net.ipv4.vs.expire_quiescent_template` and persistent services.
//!
//! A real server at weight 0 (quiesced: how this checker takes a failed
//! one out) gets no new connections, but while this sysctl is 0 (the
//! kernel's default) a persistent service's templates still send its known
//! clients to it until they expire: the failed server keeps its clients.
//! With 1, the kernel expires a template whose destination is at weight 0.
//! The sysctl is per network namespace; it is read (and set) in the
//! checker's own, which is the director's.

use std::path::Path;

use ipvs::ServiceKey;

/// Where the sysctl is, in the reading process's network namespace.
pub const SYSCTL_PATH: &str = "/proc/sys/net/ipv4/vs/expire_quiescent_template";

/// What [`check`] found or did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Quiescent {
    /// No persistent service: nothing to say.
    NoPersistentService,
    /// The sysctl is already 1.
    AlreadyOn,
    /// The sysctl is 0 and was left so: the persistent services named
    /// keep sending clients to a quiesced real server.
    Off(Vec<ServiceKey>),
    /// The sysctl was 0 and is now 1, for the persistent services named.
    SetOn(Vec<ServiceKey>),
}

/// Reads the sysctl at `path` (see [`SYSCTL_PATH`]) when `persistent`
/// names any service, and sets it to 1 if it is 0 and `set` is on.
pub fn check(path: &Path, persistent: &[ServiceKey], set: bool) -> Result<Quiescent, String> {
    if persistent.is_empty() {
        return Ok(Quiescent::NoPersistentService);
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    match text.trim() {
        "0" if set => {
            std::fs::write(path, "1\n")
                .map_err(|e| format!("cannot set {} to 1: {e}", path.display()))?;
            Ok(Quiescent::SetOn(persistent.to_vec()))
        }
        "0" => Ok(Quiescent::Off(persistent.to_vec())),
        "1" => Ok(Quiescent::AlreadyOn),
        other => Err(format!(
            "{}: unexpected value {other:?} (expected 0 or 1)",
            path.display()
        )),
    }
}

/// The services as one list for a log line: `TCP 198.18.0.10:80, FWM 1`.
pub fn names(services: &[ServiceKey]) -> String {
    services
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp() -> Vec<ServiceKey> {
        vec![ServiceKey::tcp("198.18.0.10:443".parse().expect("address"))]
    }

    #[test]
    fn warns_sets_or_stays_quiet() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("expire_quiescent_template");
        std::fs::write(&path, "0\n").expect("write");
        // No persistent service: not even read.
        assert_eq!(
            check(&dir.path().join("absent"), &[], false),
            Ok(Quiescent::NoPersistentService)
        );
        assert_eq!(check(&path, &tcp(), false), Ok(Quiescent::Off(tcp())));
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "0\n");
        assert_eq!(check(&path, &tcp(), true), Ok(Quiescent::SetOn(tcp())));
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "1\n");
        assert_eq!(check(&path, &tcp(), true), Ok(Quiescent::AlreadyOn));
        assert_eq!(names(&tcp()), "TCP 198.18.0.10:443");
    }

    #[test]
    fn unreadable_or_odd_values_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("expire_quiescent_template");
        let e = check(&path, &tcp(), false).expect_err("missing");
        assert!(
            e.starts_with(&format!("cannot read {}: ", path.display())),
            "{e}"
        );
        std::fs::write(&path, "2\n").expect("write");
        assert_eq!(
            check(&path, &tcp(), true),
            Err(format!(
                "{}: unexpected value \"2\" (expected 0 or 1)",
                path.display()
            ))
        );
    }
}
