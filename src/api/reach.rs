//! Reaching the endpoint before any request: does its host resolve, and does a TLS handshake
//! with it pass with the roots the client trusts (webpki-roots, as reqwest's `rustls-tls`)?
//! For `timattr doctor`; nothing is sent but the handshake itself.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// The host, port and whether TLS is used, of an endpoint's base URL (`scheme://host[:port]`).
pub fn host_port(base: &str) -> Option<(String, u16, bool)> {
    let url = reqwest::Url::parse(base).ok()?;
    let host = url.host_str()?.to_owned();
    let port = url.port_or_known_default()?;
    Some((host, port, url.scheme() == "https"))
}

/// The addresses `host` resolves to (the system resolver, as the client uses).
pub async fn resolve(host: &str, port: u16, timeout: Duration) -> Result<Vec<IpAddr>, String> {
    let host = host.trim_matches(['[', ']']);
    let lookup = tokio::net::lookup_host((host, port));
    match tokio::time::timeout(timeout, lookup).await {
        Err(_) => Err(format!(
            "no answer from the resolver within {} s",
            timeout.as_secs()
        )),
        Ok(Err(e)) => Err(e.to_string()),
        Ok(Ok(addrs)) => {
            let mut ips: Vec<IpAddr> = addrs.map(|a| a.ip()).collect();
            ips.dedup();
            if ips.is_empty() {
                Err("the resolver returned no address".into())
            } else {
                Ok(ips)
            }
        }
    }
}

/// Connects to `host:port` and completes a TLS handshake for the name `host`, checking the
/// certificate chain against the web's roots; returns the protocol version agreed.
pub async fn tls_handshake(host: &str, port: u16, timeout: Duration) -> Result<String, String> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let bare = host.trim_matches(['[', ']']);
    let name = rustls::pki_types::ServerName::try_from(bare.to_owned())
        .map_err(|e| format!("{bare} is not a valid TLS server name: {e}"))?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let handshake = async {
        let tcp = tokio::net::TcpStream::connect((bare, port))
            .await
            .map_err(|e| format!("cannot connect to port {port}: {e}"))?;
        let tls = connector
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS handshake failed: {e}"))?;
        let version = tls
            .get_ref()
            .1
            .protocol_version()
            .map(|v| format!("{v:?}").replace('_', "."))
            .unwrap_or_else(|| "TLS".into());
        Ok(version)
    };
    tokio::time::timeout(timeout, handshake)
        .await
        .unwrap_or_else(|_| Err(format!("no TLS handshake within {} s", timeout.as_secs())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn localhost_resolves_and_a_plain_server_fails_the_handshake() {
        let ips = resolve("localhost", 80, Duration::from_secs(5))
            .await
            .unwrap();
        assert!(ips.iter().all(IpAddr::is_loopback), "{ips:?}");
        // A server that answers the ClientHello with plain text is no TLS server.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            if let Ok((mut sock, _)) = listener.accept().await {
                let _ = sock.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
            }
        });
        let err = tls_handshake("localhost", port, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(err.starts_with("TLS handshake failed"), "{err}");
    }
}
