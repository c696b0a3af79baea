//! The web configuration file every Prometheus exporter takes with
//! `--web.config.file` (the exporter-toolkit format): TLS and basic auth.
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: server.crt          # relative paths start at the file's folder
//!   key_file: server.key
//!   client_auth_type: RequireAndVerifyClientCert
//!   client_ca_file: clients-ca.crt
//!   min_version: TLS12
//! basic_auth_users:
//!   prometheus: $2y$10$...         # bcrypt hash (htpasswd -nBC 10)
//! ```
//!
//! Parsed in two steps: raw serde structs with
//! `deny_unknown_fields` (so a typo is an error naming file, line and
//! column), then `WebConfig::from_raw` checks the rules across fields and
//! loads the certificates, so every mistake is reported at start-up.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;

pub use ipvs_common::ConfigError;

/// The file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    tls_server_config: Option<RawTls>,
    #[serde(default)]
    basic_auth_users: Option<BTreeMap<String, String>>,
}

/// `tls_server_config` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    #[serde(default)]
    cert_file: Option<PathBuf>,
    #[serde(default)]
    key_file: Option<PathBuf>,
    #[serde(default)]
    client_ca_file: Option<PathBuf>,
    #[serde(default)]
    client_auth_type: Option<String>,
    #[serde(default)]
    min_version: Option<String>,
}

/// Whether and how clients present certificates (exporter-toolkit's
/// `client_auth_type`, named after Go's `tls.ClientAuthType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// `NoClientCert` (the default): no client certificate asked for.
    None,
    /// `VerifyClientCertIfGiven`: a certificate is optional, but one that
    /// is sent must chain to `client_ca_file`.
    VerifyIfGiven,
    /// `RequireAndVerifyClientCert`: mutual TLS.
    RequireAndVerify,
}

/// The validated web configuration: what the server enforces.
#[derive(Clone)]
pub struct WebConfig {
    /// The TLS settings, ready for the acceptor; `None` serves plain HTTP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// User name to bcrypt hash; empty means no authentication.
    pub basic_auth_users: BTreeMap<String, String>,
}

impl fmt::Debug for WebConfig {
    // The hashes stay out of logs and panics.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebConfig")
            .field("tls", &self.tls.is_some())
            .field(
                "basic_auth_users",
                &self.basic_auth_users.keys().collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl WebConfig {
    /// Plain HTTP, no authentication: what a server uses without
    /// `--web.config.file`.
    pub fn plain() -> Self {
        WebConfig {
            tls: None,
            basic_auth_users: BTreeMap::new(),
        }
    }

    /// Reads, parses and validates the file at `path`, loading the
    /// certificates and keys it names.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::unreadable(path, &e))?;
        Self::parse(&text, path)
    }

    /// Parses and validates `text`, the contents of the file at `path`
    /// (which names the file in errors and anchors relative paths).
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        // An empty file (or one of comments only) is a valid empty config.
        let raw: RawConfig = if text.trim().is_empty()
            || text.lines().all(|l| {
                let l = l.trim();
                l.is_empty() || l.starts_with('#')
            }) {
            RawConfig::default()
        } else {
            ipvs_common::yaml::from_str(path, text)?
        };
        let base = path.parent().unwrap_or(Path::new("."));
        Self::from_raw(raw, base).map_err(|message| ConfigError::new(path, message))
    }

    /// The rules across fields, and loading what the paths name.
    fn from_raw(raw: RawConfig, base: &Path) -> Result<Self, String> {
        let mut users = BTreeMap::new();
        for (user, hash) in raw.basic_auth_users.unwrap_or_default() {
            if user.contains(':') {
                return Err(format!(
                    "basic_auth_users: user name {user:?} contains ':', which HTTP basic auth cannot carry"
                ));
            }
            if bcrypt_cost(&hash).is_none() {
                return Err(format!(
                    "basic_auth_users: the password of {user:?} is not a bcrypt hash (make one with `htpasswd -nBC 10 {user}`)"
                ));
            }
            users.insert(user, hash);
        }
        let tls = match raw.tls_server_config {
            None => None,
            Some(tls) => Some(Arc::new(tls_config(tls, base)?)),
        };
        Ok(WebConfig {
            tls,
            basic_auth_users: users,
        })
    }
}

/// The cost of a bcrypt hash (`$2a$`, `$2b$`, `$2x$` or `$2y$`, two-digit
/// cost, 53 characters of salt and hash), or `None` if it is not one.
fn bcrypt_cost(hash: &str) -> Option<u32> {
    let rest = hash
        .strip_prefix("$2a$")
        .or_else(|| hash.strip_prefix("$2b$"))
        .or_else(|| hash.strip_prefix("$2x$"))
        .or_else(|| hash.strip_prefix("$2y$"))?;
    let (cost, tail) = rest.split_once('$')?;
    let valid = cost.len() == 2
        && tail.len() == 53
        && tail
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'/');
    let cost: u32 = cost.parse().ok()?;
    (valid && (4..=31).contains(&cost)).then_some(cost)
}

fn tls_config(raw: RawTls, base: &Path) -> Result<rustls::ServerConfig, String> {
    let resolve = |p: &Path| {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            base.join(p)
        }
    };
    let cert_file = raw
        .cert_file
        .as_deref()
        .map(resolve)
        .ok_or("tls_server_config: cert_file is required")?;
    let key_file = raw
        .key_file
        .as_deref()
        .map(resolve)
        .ok_or("tls_server_config: key_file is required")?;
    let client_auth = match raw.client_auth_type.as_deref() {
        None | Some("") | Some("NoClientCert") => ClientAuth::None,
        Some("VerifyClientCertIfGiven") => ClientAuth::VerifyIfGiven,
        Some("RequireAndVerifyClientCert") => ClientAuth::RequireAndVerify,
        Some(other) => {
            return Err(format!(
                "tls_server_config: client_auth_type {other:?} is not supported (use NoClientCert, VerifyClientCertIfGiven or RequireAndVerifyClientCert)"
            ))
        }
    };
    let versions: &[&rustls::SupportedProtocolVersion] = match raw.min_version.as_deref() {
        None | Some("") | Some("TLS12") => &[&rustls::version::TLS13, &rustls::version::TLS12],
        Some("TLS13") => &[&rustls::version::TLS13],
        Some(other) => {
            return Err(format!(
                "tls_server_config: min_version {other:?} is not supported (use TLS12 or TLS13)"
            ))
        }
    };
    let client_ca_file = raw.client_ca_file.as_deref().map(resolve);
    match (client_auth, &client_ca_file) {
        (ClientAuth::None, Some(_)) => {
            return Err("tls_server_config: client_ca_file is set but client_auth_type is NoClientCert: set client_auth_type to VerifyClientCertIfGiven or RequireAndVerifyClientCert".into())
        }
        (ClientAuth::VerifyIfGiven | ClientAuth::RequireAndVerify, None) => {
            return Err("tls_server_config: client_auth_type verifies client certificates, so client_ca_file is required".into())
        }
        _ => {}
    }

    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_file)
        .and_then(|certs| certs.collect())
        .map_err(|e| format!("tls_server_config: cert_file {}: {e}", cert_file.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "tls_server_config: cert_file {}: no certificate in it",
            cert_file.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&key_file)
        .map_err(|e| format!("tls_server_config: key_file {}: {e}", key_file.display()))?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| format!("tls_server_config: {e}"))?;
    let builder = match (client_auth, client_ca_file) {
        (ClientAuth::None, _) | (_, None) => builder.with_no_client_auth(),
        (auth, Some(ca_file)) => {
            let mut roots = RootCertStore::empty();
            let cas = CertificateDer::pem_file_iter(&ca_file)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| {
                    format!(
                        "tls_server_config: client_ca_file {}: {e}",
                        ca_file.display()
                    )
                })?;
            for ca in cas {
                roots.add(ca).map_err(|e| {
                    format!(
                        "tls_server_config: client_ca_file {}: {e}",
                        ca_file.display()
                    )
                })?;
            }
            if roots.is_empty() {
                return Err(format!(
                    "tls_server_config: client_ca_file {}: no certificate in it",
                    ca_file.display()
                ));
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if auth == ClientAuth::VerifyIfGiven {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            let verifier = verifier
                .build()
                .map_err(|e| format!("tls_server_config: client_ca_file: {e}"))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|e| {
        format!(
            "tls_server_config: cert_file {} and key_file {}: {e}",
            cert_file.display(),
            key_file.display()
        )
    })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "$2y$04$Ny7jRcgRvU2YE6Xx7G1J3eJd5hvuPc7xbvY5Zbn5YmV3i3K3jV6Wy";

    fn error_of(yaml: &str) -> String {
        WebConfig::parse(yaml, Path::new("/etc/web.yml"))
            .expect_err("should be refused")
            .to_string()
    }

    #[test]
    fn empty_and_comment_only_files_are_plain_http() {
        for text in ["", "\n", "# nothing\n"] {
            let config = WebConfig::parse(text, Path::new("web.yml")).expect("valid");
            assert!(config.tls.is_none());
            assert!(config.basic_auth_users.is_empty());
        }
    }

    #[test]
    fn basic_auth_users_only() {
        let config = WebConfig::parse(
            &format!("basic_auth_users:\n  alice: {HASH}\n"),
            Path::new("web.yml"),
        )
        .expect("valid");
        assert!(config.tls.is_none());
        assert_eq!(config.basic_auth_users["alice"], HASH);
        assert_eq!(
            format!("{config:?}"),
            r#"WebConfig { tls: false, basic_auth_users: ["alice"] }"#
        );
    }

    #[test]
    fn unknown_keys_name_file_line_and_column() {
        assert_eq!(
            error_of("tls_server_config:\n  cert_file: a\n  certfile: b\n"),
            "/etc/web.yml:3:3: tls_server_config: unknown field `certfile`, expected one of `cert_file`, `key_file`, `client_ca_file`, `client_auth_type`, `min_version`"
        );
        assert_eq!(
            error_of("# web\nbasic_auth_user :\n  a: b\n"),
            "/etc/web.yml:2:1: unknown field `basic_auth_user`, expected `tls_server_config` or `basic_auth_users`"
        );
    }

    #[test]
    fn yaml_syntax_errors_name_the_line() {
        assert_eq!(
            error_of("basic_auth_users: [\n"),
            "/etc/web.yml:2:1: did not find expected node content at line 2 column 1, while parsing a flow node"
        );
        assert_eq!(
            error_of("basic_auth_users:\n  alice: x\n  alice: y\n"),
            "/etc/web.yml:3:3: basic_auth_users: `alice` is given twice in the same mapping"
        );
    }

    #[test]
    fn each_rule_has_its_message() {
        let cases = [
            (
                "tls_server_config:\n  key_file: k\n",
                "/etc/web.yml: tls_server_config: cert_file is required",
            ),
            (
                "tls_server_config:\n  cert_file: c\n",
                "/etc/web.yml: tls_server_config: key_file is required",
            ),
            (
                "tls_server_config:\n  cert_file: c\n  key_file: k\n  client_auth_type: RequireAnyClientCert\n",
                "/etc/web.yml: tls_server_config: client_auth_type \"RequireAnyClientCert\" is not supported (use NoClientCert, VerifyClientCertIfGiven or RequireAndVerifyClientCert)",
            ),
            (
                "tls_server_config:\n  cert_file: c\n  key_file: k\n  min_version: TLS11\n",
                "/etc/web.yml: tls_server_config: min_version \"TLS11\" is not supported (use TLS12 or TLS13)",
            ),
            (
                "tls_server_config:\n  cert_file: c\n  key_file: k\n  client_ca_file: ca\n",
                "/etc/web.yml: tls_server_config: client_ca_file is set but client_auth_type is NoClientCert: set client_auth_type to VerifyClientCertIfGiven or RequireAndVerifyClientCert",
            ),
            (
                "tls_server_config:\n  cert_file: c\n  key_file: k\n  client_auth_type: RequireAndVerifyClientCert\n",
                "/etc/web.yml: tls_server_config: client_auth_type verifies client certificates, so client_ca_file is required",
            ),
            (
                "tls_server_config:\n  cert_file: missing.crt\n  key_file: missing.key\n",
                "/etc/web.yml: tls_server_config: cert_file /etc/missing.crt: I/O error: No such file or directory (os error 2)",
            ),
            (
                "basic_auth_users:\n  bob: secret\n",
                "/etc/web.yml: basic_auth_users: the password of \"bob\" is not a bcrypt hash (make one with `htpasswd -nBC 10 bob`)",
            ),
            (
                &format!("basic_auth_users:\n  'a:b': {HASH}\n"),
                "/etc/web.yml: basic_auth_users: user name \"a:b\" contains ':', which HTTP basic auth cannot carry",
            ),
        ];
        for (yaml, message) in cases {
            assert_eq!(error_of(yaml), message, "for {yaml:?}");
        }
    }

    #[test]
    fn unreadable_file() {
        let error = WebConfig::load(Path::new("/nonexistent/web.yml")).expect_err("no file");
        assert_eq!(
            error.to_string(),
            "/nonexistent/web.yml: cannot read: No such file or directory (os error 2)"
        );
    }

    #[test]
    fn bcrypt_hashes_are_recognised() {
        assert_eq!(bcrypt_cost(HASH), Some(4));
        assert_eq!(bcrypt_cost(&HASH.replace("$2y$", "$2b$")), Some(4));
        assert_eq!(bcrypt_cost(&HASH.replace("$2y$", "$1$")), None);
        assert_eq!(bcrypt_cost(&HASH[..HASH.len() - 1]), None);
        assert_eq!(bcrypt_cost("$2y$99$"), None);
        assert_eq!(bcrypt_cost(""), None);
    }
}
