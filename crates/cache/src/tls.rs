//! TLS to Redis (`rediss://`): rustls, trusting the system's certificate
//! authorities or, when given, only those of `REDIS_CA_CERT` (a private CA,
//! or a cloud provider's bundle on a host without it).

use std::fmt;

use deadpool_redis::redis::{
    Client, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, TlsCertificates,
};
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::{CacheConfig, CacheError};

/// Certificate authorities in PEM, checked when made: every block parses
/// as a certificate a TLS client can anchor to, and there is at least one.
#[derive(Clone)]
pub struct CaCertificates {
    pem: Vec<u8>,
    count: usize,
}

impl CaCertificates {
    /// One certificate or a bundle of them (as RDS and ElastiCache publish).
    pub fn from_pem(pem: Vec<u8>) -> Result<Self, CacheError> {
        let invalid = |message: String| CacheError::InvalidCaCertificates(message);
        let mut anchors = RootCertStore::empty();
        for certificate in CertificateDer::pem_slice_iter(&pem) {
            let certificate =
                certificate.map_err(|error| invalid(format!("not PEM certificates: {error}")))?;
            anchors
                .add(certificate)
                .map_err(|error| invalid(format!("not a CA certificate: {error}")))?;
        }
        if anchors.is_empty() {
            return Err(invalid("no PEM certificate in it".to_owned()));
        }
        Ok(Self {
            pem,
            count: anchors.len(),
        })
    }

    pub fn pem(&self) -> &[u8] {
        &self.pem
    }
}

impl fmt::Debug for CaCertificates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CaCertificates({} certificates)", self.count)
    }
}

/// Where and how to connect: the URL (with the redis crate's own options,
/// such as `rediss://...#insecure`) and, for TLS, the trusted authorities.
pub(crate) fn connection_info(config: &CacheConfig) -> Result<ConnectionInfo, CacheError> {
    let info = config
        .redis_url
        .as_str()
        .into_connection_info()
        .map_err(CacheError::InvalidUrl)?;
    let tls = matches!(info.addr(), ConnectionAddr::TcpTls { .. });
    if tls {
        install_crypto_provider();
    }
    let Some(authorities) = &config.ca_certificates else {
        return Ok(info);
    };
    if !tls {
        // Nothing would use them: a plain connection is not what was meant.
        return Err(CacheError::CaCertificatesWithoutTls);
    }
    let certificates = TlsCertificates {
        client_tls: None,
        root_cert: Some(authorities.pem.clone()),
    };
    Client::build_with_tls(info, certificates)
        .map(|client| client.get_connection_info().clone())
        .map_err(CacheError::InvalidUrl)
}

/// The redis crate asks rustls for the process's crypto provider, which
/// rustls picks by itself only when exactly one is compiled in; another
/// crate of the process may bring a second one. The workspace's TLS uses
/// aws-lc-rs, so that is the one installed when none is yet.
fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race to another installer is fine: one is in place.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed CA certificate (P-256), valid for a century.
    const CA: &str = "-----BEGIN CERTIFICATE-----
MIIBiDCCAS+gAwIBAgIUN0YF0FLdMCTgLfmwC/1dr7UIoz0wCgYIKoZIzj0EAwIw
GTEXMBUGA1UEAwwOb3JkZXJzIHRlc3QgQ0EwIBcNMjYxMjAxMjIwOTM4WhgPMjEy
NjExMDcyMjA5MzhaMBkxFzAVBgNVBAMMDm9yZGVycyB0ZXN0IENBMFkwEwYHKoZI
zj0CAQYIKoZIzj0DAQcDQgAEJ6C7W6hdtkDJqwLEo1/JaIhS6h7WpX8UjmhUJXgc
FYuDsVEZrFA00auLMjWmIaAZdJyShxlKhdV7n30O2TiGfKNTMFEwHQYDVR0OBBYE
FA8/PWVzAeLNQtvO9lB+Gso1mz4JMB8GA1UdIwQYMBaAFA8/PWVzAeLNQtvO9lB+
Gso1mz4JMA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDRwAwRAIgYeBWeMXY
bTk2ktlc5V3MhcbDXz19FqkzlkdpYJ4M3/QCIGAyf/IRM3yuvvx4G5GxSptppCKd
Xe6d/8qqtnUJ49Lt
-----END CERTIFICATE-----
";

    fn config(url: &str, pem: Option<&str>) -> CacheConfig {
        CacheConfig {
            redis_url: url.to_owned(),
            ca_certificates: pem
                .map(|pem| CaCertificates::from_pem(pem.as_bytes().to_vec()).unwrap()),
            ..CacheConfig::default()
        }
    }

    #[test]
    fn a_bundle_counts_its_certificates() {
        let bundle = CaCertificates::from_pem(format!("{CA}\n{CA}").into_bytes()).unwrap();
        assert_eq!(format!("{bundle:?}"), "CaCertificates(2 certificates)");
    }

    #[test]
    fn what_is_not_a_certificate_is_refused() {
        for junk in [
            "",
            "hello",
            "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n",
        ] {
            assert!(
                matches!(
                    CaCertificates::from_pem(junk.as_bytes().to_vec()),
                    Err(CacheError::InvalidCaCertificates(_))
                ),
                "{junk:?}"
            );
        }
    }

    #[test]
    fn authorities_go_with_a_tls_url_only() {
        let info = connection_info(&config("rediss://cache.example:6380/0", Some(CA))).unwrap();
        let ConnectionAddr::TcpTls {
            host, tls_params, ..
        } = info.addr()
        else {
            panic!("TLS expected: {:?}", info.addr());
        };
        assert_eq!(host, "cache.example");
        assert!(tls_params.is_some(), "the authorities are in place");
        assert!(matches!(
            connection_info(&config("redis://cache.example:6379/0", Some(CA))),
            Err(CacheError::CaCertificatesWithoutTls)
        ));
        let insecure = connection_info(&config("rediss://cache.example/#insecure", None)).unwrap();
        assert!(matches!(
            insecure.addr(),
            ConnectionAddr::TcpTls { insecure: true, .. }
        ));
    }
}
