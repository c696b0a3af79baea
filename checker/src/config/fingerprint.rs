//! What makes a check the same check after a reload: its block as written
//! and the bytes of every file it read (a CA, a client certificate and
//! key), digested with SHA-256. A real server whose checks keep their
//! fingerprints keeps its probers over a reload, and with them its TLS
//! sessions and kept-alive connections (see `daemon::probes`): a reload
//! that changes only the timing then costs no full handshake.

use std::hash::{Hash, Hasher};

use ring::digest::{Context, SHA256};

/// The digest of a check (see the module's documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint([u8; 32]);

/// A fingerprint being made: values go in through [`Hash`], file bytes
/// through [`Fingerprinting::file`].
#[derive(Clone)]
pub(super) struct Fingerprinting(Context);

impl Fingerprinting {
    /// The fingerprint of `value` alone, to be added to.
    pub fn of(value: &impl Hash) -> Self {
        let mut f = Fingerprinting(Context::new(&SHA256));
        value.hash(&mut f);
        f
    }

    /// Adds the bytes of a file read (their length first, so that two
    /// files cannot pass for one).
    pub fn file(&mut self, bytes: &[u8]) {
        self.write_usize(bytes.len());
        self.0.update(bytes);
    }

    pub fn finish(self) -> Fingerprint {
        let digest = self.0.finish();
        let mut bytes = [0; 32];
        bytes.copy_from_slice(digest.as_ref());
        Fingerprint(bytes)
    }
}

impl Hasher for Fingerprinting {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The first 8 bytes of the digest so far (the digest itself is what
    /// [`Fingerprinting::finish`] gives).
    fn finish(&self) -> u64 {
        let digest = self.0.clone().finish();
        let mut first = [0; 8];
        first.copy_from_slice(&digest.as_ref()[..8]);
        u64::from_le_bytes(first)
    }
}

impl std::fmt::Debug for Fingerprinting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Fingerprinting")
    }
}

impl Fingerprint {
    /// The fingerprint of `value` (a check with no file).
    pub(super) fn of(value: &impl Hash) -> Self {
        Fingerprinting::of(value).finish()
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::{parse, Config};

    /// A CA certificate of its own, as PEM.
    fn new_ca() -> String {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let key = rcgen::KeyPair::generate().expect("key");
        params.self_signed(&key).expect("certificate").pem()
    }

    /// One service of one real server, `check` its check, files relative
    /// to `dir`.
    fn load(dir: &Path, defaults: &str, check: &str) -> Config {
        let text = format!(
            "defaults: {{{defaults}}}\nservices:\n  - address: 198.18.0.10:443\n    check: {check}\n    real_servers:\n      - {{address: 198.18.1.11}}\n"
        );
        parse(&text, &dir.join("checker.yaml"), dir).expect("valid")
    }

    fn same_probes(a: &Config, b: &Config) -> bool {
        a.services[0].real_servers[0].probes_as(&b.services[0].real_servers[0])
    }

    #[test]
    fn a_check_is_the_same_after_a_reload_until_its_block_or_a_file_it_read_changes() {
        let dir = tempfile::tempdir().expect("temporary directory");
        std::fs::write(dir.path().join("ca.pem"), new_ca()).expect("CA file");
        let https = "{type: https, ca_file: ca.pem, path: /health}";
        let before = load(dir.path(), "interval: 10s", https);
        // The timing alone changed: the same probes.
        let retimed = load(dir.path(), "interval: 6s, fall: 3", https);
        assert!(same_probes(&before, &retimed));
        // The block changed.
        let other_path = load(
            dir.path(),
            "interval: 10s",
            "{type: https, ca_file: ca.pem, path: /ready}",
        );
        assert!(!same_probes(&before, &other_path));
        // The same block, the CA file replaced by another CA's.
        std::fs::write(dir.path().join("ca.pem"), new_ca()).expect("CA file");
        let other_ca = load(dir.path(), "interval: 10s", https);
        assert!(!same_probes(&before, &other_ca));
        // Another type, and the default check against an explicit one.
        let tcp = load(dir.path(), "interval: 10s", "{type: tcp}");
        assert!(!same_probes(&before, &tcp));
        let text = "services:\n  - address: 198.18.0.10:443\n    real_servers:\n      - {address: 198.18.1.11}\n";
        let default = || parse(text, &dir.path().join("checker.yaml"), dir.path()).expect("valid");
        assert!(same_probes(&default(), &default()));
        assert!(!same_probes(&default(), &tcp));
    }
}
