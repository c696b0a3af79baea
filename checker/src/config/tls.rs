//! The TLS side of an https check: its settings, checked with the rest of
//! the `check:` block ([`TlsSettings::new`]), and the files they name (CA,
//! client certificate and key), read after the block is parsed
//! ([`load`]), when the check is built for its real servers: so a missing
//! or broken file still fails the config load (and `--config.check`) with
//! the file's name, and the parser reads no file.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use super::fingerprint::Fingerprinting;
use super::{TlsCheck, TlsVersion};

mod random;

#[cfg(test)]
pub(super) use random::given as random_given_on_this_thread;

/// How long an HTTPS check may resume TLS sessions before it makes a full
/// handshake again (which verifies the chain and reads the certificate's
/// expiry): a changed or expiring certificate is seen within this.
const DEFAULT_FULL_HANDSHAKE_INTERVAL: Duration = Duration::from_secs(300);

/// Why a TLS check without a CA file is refused, after the check's name.
const NEEDS_CA: &str = "needs ca_file (the CA that issued the real servers' certificates), or insecure_skip_verify: true";

/// The TLS fields of a `check:` block as written.
#[derive(Debug)]
pub(super) struct TlsFields {
    /// The check, for an error: "an https check".
    pub what: &'static str,
    pub ca_file: Option<String>,
    pub server_name: Option<String>,
    pub client_cert: Option<String>,
    pub client_key: Option<String>,
    pub min_tls_version: Option<String>,
    pub insecure_skip_verify: Option<bool>,
    pub full_handshake_interval: Option<Duration>,
}

/// The TLS settings of an https check, checked; file names as written.
#[derive(Debug)]
pub(super) struct TlsSettings {
    server_name: Option<ServerName<'static>>,
    ca_file: Option<PathBuf>,
    /// The client certificate and key files (mTLS).
    client_auth: Option<(PathBuf, PathBuf)>,
    min_version: TlsVersion,
    insecure_skip_verify: bool,
    full_handshake_interval: Duration,
}

impl TlsSettings {
    /// Checks the fields against each other; reads no file.
    pub fn new(f: TlsFields) -> Result<Self, String> {
        let insecure_skip_verify = f.insecure_skip_verify.unwrap_or(false);
        let min_version = match f.min_tls_version.as_deref() {
            None | Some("1.2") => TlsVersion::Tls12,
            Some("1.3") => TlsVersion::Tls13,
            Some(other) => {
                return Err(format!(
                    "invalid min_tls_version {other:?}: expected \"1.2\" or \"1.3\""
                ))
            }
        };
        let server_name = match f.server_name {
            Some(name) => Some(ServerName::try_from(name.clone()).map_err(|_| {
                format!("invalid server_name {name:?}: expected a DNS name or an IP address")
            })?),
            None => None,
        };
        if !insecure_skip_verify && f.ca_file.is_none() {
            return Err(format!("{} {NEEDS_CA}", f.what));
        }
        let client_auth = match (f.client_cert, f.client_key) {
            (None, None) => None,
            (Some(cert), Some(key)) => Some((cert.into(), key.into())),
            _ => return Err("client_cert and client_key go together: set both or neither".into()),
        };
        Ok(TlsSettings {
            server_name,
            ca_file: f.ca_file.map(PathBuf::from),
            client_auth,
            min_version,
            insecure_skip_verify,
            full_handshake_interval: f
                .full_handshake_interval
                .unwrap_or(DEFAULT_FULL_HANDSHAKE_INTERVAL),
        })
    }
}

/// What an https check verifies the server's certificate with.
enum Verifier {
    /// The chain, against the CA file's certificates.
    Roots(Arc<rustls::client::WebPkiServerVerifier>),
    /// Nothing (`insecure_skip_verify`).
    Any(Arc<AcceptAnyCertificate>),
}

/// Reads the files `settings` name (relative names against `base`) and
/// builds the check's TLS client configurations; what was read goes into
/// the check's `fingerprint`.
pub(super) fn load(
    settings: &TlsSettings,
    base: &Path,
    fingerprint: &mut Fingerprinting,
) -> Result<TlsCheck, String> {
    let resolve = |p: &Path| -> PathBuf {
        if p.is_absolute() {
            p.to_owned()
        } else {
            base.join(p)
        }
    };
    let ca_file = settings.ca_file.as_deref().map(resolve);
    let provider = Arc::new(CryptoProvider {
        secure_random: &random::ThreadGenerator,
        ..sha256_first(rustls::crypto::ring::default_provider())
    });
    // One verifier (and below one client certificate resolver) for every
    // client config of this check: rustls resumes a session only with the
    // very ones that made it.
    let verifier = match (&ca_file, settings.insecure_skip_verify) {
        (_, true) => Verifier::Any(Arc::new(AcceptAnyCertificate(provider.clone()))),
        (None, false) => return Err(format!("a TLS check {NEEDS_CA}")),
        (Some(ca_file), false) => {
            let mut roots = rustls::RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(ca_file)
                .map_err(|e| format!("ca_file {}: {e}", ca_file.display()))?;
            for cert in certs {
                let cert = cert.map_err(|e| format!("ca_file {}: {e}", ca_file.display()))?;
                fingerprint.file(&cert);
                roots
                    .add(cert)
                    .map_err(|e| format!("ca_file {}: {e}", ca_file.display()))?;
            }
            if roots.is_empty() {
                return Err(format!(
                    "ca_file {} holds no PEM certificate",
                    ca_file.display()
                ));
            }
            let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots),
                provider.clone(),
            )
            .build()
            .map_err(|e| format!("ca_file {}: {e}", ca_file.display()))?;
            Verifier::Roots(verifier)
        }
    };
    let builder = |versions: &[&'static rustls::SupportedProtocolVersion]| {
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)
            .map_err(|e| format!("TLS settings: {e}"))?;
        Ok::<_, String>(match &verifier {
            Verifier::Roots(verifier) => builder.with_webpki_verifier(verifier.clone()),
            Verifier::Any(verifier) => builder
                .dangerous()
                .with_custom_certificate_verifier(verifier.clone()),
        })
    };
    let versions: &[&rustls::SupportedProtocolVersion] = match settings.min_version {
        TlsVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::Tls13 => &[&rustls::version::TLS13],
    };
    let builder_all = builder(versions)?;
    let mut client = match &settings.client_auth {
        None => builder_all.with_no_client_auth(),
        Some((cert, key)) => {
            let (cert, key) = (resolve(cert), resolve(key));
            let chain = CertificateDer::pem_file_iter(&cert)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("client_cert {}: {e}", cert.display()))?;
            if chain.is_empty() {
                return Err(format!(
                    "client_cert {} holds no PEM certificate",
                    cert.display()
                ));
            }
            let key_der = PrivateKeyDer::from_pem_file(&key)
                .map_err(|e| format!("client_key {}: {e}", key.display()))?;
            for cert in &chain {
                fingerprint.file(cert);
            }
            fingerprint.file(key_der.secret_der());
            builder_all
                .with_client_auth_cert(chain, key_der)
                .map_err(|e| format!("client_cert and client_key: {e}"))?
        }
    };
    client.alpn_protocols = vec![b"http/1.1".to_vec()];
    let client_tls12 = match settings.min_version {
        TlsVersion::Tls12 => {
            let mut tls12 = builder(&[&rustls::version::TLS12])?
                .with_client_cert_resolver(client.client_auth_cert_resolver.clone());
            tls12.alpn_protocols = client.alpn_protocols.clone();
            Some(Arc::new(tls12))
        }
        TlsVersion::Tls13 => None,
    };
    Ok(TlsCheck {
        server_name: settings.server_name.clone(),
        ca_file,
        min_version: settings.min_version,
        insecure_skip_verify: settings.insecure_skip_verify,
        client_auth: settings.client_auth.is_some(),
        client: Arc::new(client),
        client_tls12,
        full_handshake_interval: settings.full_handshake_interval,
    })
}

/// `provider` with its cipher suites that hash with SHA-384 (AES-256-GCM's)
/// last, the others in their order: AES-128-GCM with SHA-256 first, as
/// Mozilla's intermediate profile has it. A server that follows the
/// client's order (OpenSSL's default, so nginx's) then agrees on it, and
/// a resumed TLS 1.2 probe's own work is mostly the PRF's HMACs, fewer
/// instructions with SHA-256 (lab/bench/README.md).
fn sha256_first(mut provider: CryptoProvider) -> CryptoProvider {
    use rustls::CipherSuite as S;
    provider.cipher_suites.sort_by_key(|suite| {
        matches!(
            suite.suite(),
            S::TLS13_AES_256_GCM_SHA384
                | S::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
                | S::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
        )
    });
    provider
}

/// `insecure_skip_verify: true`: any certificate for any name is accepted;
/// the handshake signatures are still checked, so the TLS session is real.
#[derive(Debug)]
pub struct AcceptAnyCertificate(pub Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
