//! `sslmode` and `sslrootcert` with libpq's meanings, over rustls (no OpenSSL).
//!
//! - `disable`: plain TCP;
//! - `prefer` (the default) and `require`: TLS without checking the certificate (`prefer`
//!   falls back to plain TCP when the server offers no TLS) — libpq's behaviour, and the
//!   reason `verify-full` is the mode to put in a URL that crosses a network;
//! - `verify-ca`: the chain must lead to a trusted root; the host name is not checked;
//! - `verify-full`: the chain and the host name are checked.
//!
//! Trusted roots are the system's, plus the PEM file `sslrootcert=FILE`. As in libpq,
//! `require` with an `sslrootcert` checks the chain like `verify-ca`.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mode {
    pub level: Level,
    pub root_cert: Option<PathBuf>,
}

impl Mode {
    /// Takes `sslmode` and `sslrootcert` out of a URL's query (the client only knows some of
    /// libpq's modes), returning the rest of the URL and the mode.
    pub fn split_from_url(url: &str) -> Result<(String, Mode), String> {
        let mut mode = Mode {
            level: Level::Prefer,
            root_cert: None,
        };
        let Some((base, query)) = url.split_once('?') else {
            return Ok((url.to_owned(), mode));
        };
        let mut kept = Vec::new();
        for kv in query.split('&').filter(|kv| !kv.is_empty()) {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            match k {
                "sslmode" => {
                    mode.level = match v {
                        "disable" => Level::Disable,
                        "allow" | "prefer" => Level::Prefer,
                        "require" => Level::Require,
                        "verify-ca" => Level::VerifyCa,
                        "verify-full" => Level::VerifyFull,
                        other => return Err(format!("sslmode {other:?} is not one of disable, prefer, require, verify-ca, verify-full")),
                    }
                }
                "sslrootcert" => mode.root_cert = Some(PathBuf::from(percent_decode(v)?)),
                _ => kept.push(kv),
            }
        }
        if mode.level == Level::Require && mode.root_cert.is_some() {
            mode.level = Level::VerifyCa;
        }
        let rest = if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        Ok((rest, mode))
    }

    /// What a failed handshake means under this mode, and what to do about it.
    pub fn explain(&self, e: &rustls::Error, host: String) -> String {
        use rustls::{CertificateError, Error};
        match e {
            Error::InvalidCertificate(CertificateError::NotValidForName) => format!(
                "the server's certificate is not valid for the host name {host:?} (sslmode=verify-full checks it): connect with a name the certificate holds, or use sslmode=verify-ca to check the chain only"
            ),
            Error::InvalidCertificate(CertificateError::NotValidForNameContext {
                presented, ..
            }) => format!(
                "the server's certificate is not valid for the host name {host:?} (sslmode=verify-full checks it; the certificate is for {}): connect with a name the certificate holds, or use sslmode=verify-ca to check the chain only",
                presented
                    .iter()
                    .map(|p| match (p.find('"'), p.rfind('"')) {
                        // `DnsName("db.example.com")`: the name alone.
                        (Some(a), Some(b)) if a < b => &p[a + 1..b],
                        _ => p.as_str(),
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Error::InvalidCertificate(
                CertificateError::UnknownIssuer | CertificateError::BadSignature,
            ) => {
                let given = match &self.root_cert {
                    Some(f) => format!(" nor by the CA in {}", f.display()),
                    None => String::new(),
                };
                format!(
                    "the server's certificate is not signed by the system's trusted roots{given}: give the CA that signed it with sslrootcert=FILE (PEM)"
                )
            }
            Error::InvalidCertificate(CertificateError::Expired | CertificateError::ExpiredContext { .. }) => {
                "the server's certificate has expired: renew it on the server".into()
            }
            other => format!("the handshake failed: {other}"),
        }
    }

    pub fn ssl_mode(&self) -> SslMode {
        match self.level {
            Level::Disable => SslMode::Disable,
            Level::Prefer => SslMode::Prefer,
            _ => SslMode::Require,
        }
    }

    /// The TLS connector of this mode; `None` for `disable`.
    pub fn connector(&self) -> Result<Option<MakeRustlsConnect>, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let verifier: Arc<dyn ServerCertVerifier> = match self.level {
            Level::Disable => return Ok(None),
            Level::Prefer | Level::Require => Arc::new(Unchecked(provider)),
            Level::VerifyCa | Level::VerifyFull => {
                let roots = Arc::new(self.roots()?);
                let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider)
                    .build()
                    .map_err(|e| e.to_string())?;
                if self.level == Level::VerifyCa {
                    Arc::new(AnyName(webpki))
                } else {
                    webpki
                }
            }
        };
        let config = builder
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(Some(MakeRustlsConnect::new(config)))
    }

    fn roots(&self) -> Result<RootCertStore, String> {
        let mut roots = RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            // A system root rustls cannot parse is skipped, as the system's own tools do.
            let _ = roots.add(cert);
        }
        if let Some(path) = &self.root_cert {
            use rustls::pki_types::pem::PemObject;
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<Result<_, _>>())
                .map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
            if certs.is_empty() {
                return Err(format!(
                    "sslrootcert {}: no certificate in it",
                    path.display()
                ));
            }
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
            }
        }
        Ok(roots)
    }
}

fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).map_err(|e| e.to_string())?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| format!("bad escape %{hex}"))?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|e| e.to_string())
}

/// `prefer` and `require`: encryption without authentication, as libpq does it.
#[derive(Debug)]
struct Unchecked(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for Unchecked {
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

/// `verify-ca`: the full chain check, except that the certificate may name another host.
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        use rustls::{CertificateError, Error};
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libpq_modes_are_taken_out_of_the_url() {
        let (rest, mode) =
            Mode::split_from_url("postgres://u@h/db?sslmode=verify-full&connect_timeout=3")
                .unwrap();
        assert_eq!(rest, "postgres://u@h/db?connect_timeout=3");
        assert_eq!(mode.level, Level::VerifyFull);
        let (rest, mode) =
            Mode::split_from_url("postgres://u@h/db?sslmode=require&sslrootcert=%2Ftmp%2Fca.pem")
                .unwrap();
        assert_eq!(rest, "postgres://u@h/db");
        assert_eq!(mode.level, Level::VerifyCa);
        assert_eq!(mode.root_cert, Some(PathBuf::from("/tmp/ca.pem")));
        assert_eq!(
            Mode::split_from_url("postgres://h/db").unwrap().1.level,
            Level::Prefer
        );
        assert!(Mode::split_from_url("postgres://h/db?sslmode=sometimes").is_err());
        assert!(Mode {
            level: Level::VerifyFull,
            root_cert: Some("/nonexistent/ca.pem".into())
        }
        .connector()
        .is_err());
    }
}
