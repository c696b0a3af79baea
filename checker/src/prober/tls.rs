//! TLS helpers of the HTTPS prober: failure reasons and the leaf
//! certificate's expiry. (The verifier of `insecure_skip_verify` is
//! built with the check's TLS configuration, in `config`.)

use std::io;

use rustls::CertificateError;
use rustls_pki_types::{CertificateDer, ServerName};

use super::ProbeError;

/// Names a failed handshake: wrong CA, wrong name and expiry each get
/// their own reason; anything else is `tls`.
pub(super) fn classify(e: io::Error, name: &ServerName<'_>) -> ProbeError {
    let Some(rustls_error) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) else {
        return ProbeError::Tls(e);
    };
    match rustls_error {
        rustls::Error::InvalidCertificate(cert) => match cert {
            CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                ProbeError::TlsUnknownCa(rustls_error.clone())
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                ProbeError::TlsBadName {
                    name: name.to_str().into_owned(),
                    source: rustls_error.clone(),
                }
            }
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. } => {
                ProbeError::TlsExpired(rustls_error.clone())
            }
            _ => ProbeError::Tls(e),
        },
        _ => ProbeError::Tls(e),
    }
}

/// The certificate's not-after in seconds since the Unix epoch.
pub(super) fn not_after(cert: &CertificateDer<'_>) -> Option<i64> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    Some(parsed.validity().not_after.timestamp())
}
