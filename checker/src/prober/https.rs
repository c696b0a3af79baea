//! `https`: the `http` check over TLS, with the server's chain verified
//! against the configured CA and the name checked (`server_name`, else the
//! Host, else the IP probed).

use rustls_pki_types::ServerName;
use tokio_rustls::TlsConnector;

use super::{ProbeError, Success, Target};
use crate::config::HttpsCheck;

/// TLS handshake, then the HTTP exchange over it.
pub async fn probe(target: &Target, check: &HttpsCheck) -> Result<Success, ProbeError> {
    let name = server_name(target, check);
    let tcp = super::tcp::connect(target).await?;
    let stream = TlsConnector::from(check.tls.client.clone())
        .connect(name.clone(), tcp)
        .await
        .map_err(|e| super::tls::classify(e, &name))?;
    let not_after = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(super::tls::not_after);
    let mut success = super::http::exchange(stream, target, &check.http).await?;
    success.cert_not_after = not_after;
    Ok(success)
}

fn server_name(target: &Target, check: &HttpsCheck) -> ServerName<'static> {
    if let Some(name) = &check.tls.server_name {
        return name.clone();
    }
    if let Some(host) = &check.http.host {
        // A Host with a port names the same server.
        let host = host.rsplit_once(':').map_or(host.as_str(), |(h, _)| h);
        if let Ok(name) = ServerName::try_from(host.to_owned()) {
            return name;
        }
    }
    ServerName::IpAddress(target.addr.ip().into())
}
