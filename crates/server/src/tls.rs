//! HTTPS served directly: the certificate chain of `TLS_CERT_FILE` and the
//! private key of `TLS_KEY_FILE` (PEM both), read at start (a wrong one
//! stops the start) and read again, without a restart, on SIGHUP and when
//! either file changes. A reload that fails keeps the certificate in use
//! and logs one line; the next change or SIGHUP tries again.
//!
//! New handshakes take the certificate from [`ReloadingCertificate`], a
//! rustls certificate resolver whose key can be swapped at any time;
//! connections already open keep the one they began with.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::signal::unix::{SignalKind, signal};

/// Why a certificate or key could not be used, and which of the two files
/// is to blame (for the setting it names).
#[derive(Debug, thiserror::Error)]
pub enum TlsFileError {
    #[error("{path}: {message}")]
    Certificate { path: String, message: String },
    #[error("{path}: {message}")]
    Key { path: String, message: String },
}

impl TlsFileError {
    /// The setting that names the file at fault.
    pub fn variable(&self) -> &'static str {
        match self {
            Self::Certificate { .. } => "TLS_CERT_FILE",
            Self::Key { .. } => "TLS_KEY_FILE",
        }
    }
}

/// The files of HTTPS and the certificate read from them at start.
#[derive(Clone)]
pub struct TlsSettings {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// How often the files' modification times are compared; zero: only
    /// SIGHUP reloads.
    pub reload_interval: Duration,
    pub initial: Arc<CertifiedKey>,
}

impl fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsSettings")
            .field("cert_file", &self.cert_file)
            .field("key_file", &self.key_file)
            .field("reload_interval", &self.reload_interval)
            .finish_non_exhaustive()
    }
}

impl TlsSettings {
    /// Reads and checks both files: the start fails here on a wrong one.
    pub fn load(
        cert_file: PathBuf,
        key_file: PathBuf,
        reload_interval: Duration,
    ) -> Result<Self, TlsFileError> {
        let initial = Arc::new(read_certified_key(&cert_file, &key_file)?);
        Ok(Self {
            cert_file,
            key_file,
            reload_interval,
            initial,
        })
    }
}

/// The one crypto provider of the workspace (README, TLS to MySQL and
/// Redis): aws-lc-rs.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The chain (leaf first) and its private key, checked to belong together.
pub fn read_certified_key(cert_file: &Path, key_file: &Path) -> Result<CertifiedKey, TlsFileError> {
    let certificate = |message: String| TlsFileError::Certificate {
        path: cert_file.display().to_string(),
        message,
    };
    let key = |message: String| TlsFileError::Key {
        path: key_file.display().to_string(),
        message,
    };
    let pem =
        std::fs::read(cert_file).map_err(|error| certificate(format!("cannot read: {error}")))?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| certificate(format!("not PEM certificates: {error}")))?;
    if chain.is_empty() {
        return Err(certificate("no PEM certificate in it".to_owned()));
    }
    let pem = std::fs::read(key_file).map_err(|error| key(format!("cannot read: {error}")))?;
    let private = PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|error| key(format!("not a PEM private key: {error}")))?;
    CertifiedKey::from_der(chain, private, &provider()).map_err(|error| match error {
        rustls::Error::InconsistentKeys(_) => key(format!(
            "does not match the certificate of {}",
            cert_file.display()
        )),
        rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented => {
            certificate(format!("not a usable certificate: {error}"))
        }
        other => key(format!("not a usable private key: {other}")),
    })
}

/// The certificate new handshakes get; swapped by a reload.
#[derive(Debug)]
pub struct ReloadingCertificate {
    current: RwLock<Arc<CertifiedKey>>,
}

impl ReloadingCertificate {
    pub fn new(initial: Arc<CertifiedKey>) -> Self {
        Self {
            current: RwLock::new(initial),
        }
    }

    fn replace(&self, certified: CertifiedKey) {
        // A poisoned lock only means a panic while replacing an Arc: the
        // value inside is whole either way.
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(certified);
    }
}

impl ResolvesServerCert for ReloadingCertificate {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
        )
    }
}

/// The rustls configuration of the server: TLS 1.2 and 1.3, no client
/// certificates, the certificate from `certificate`. ALPN (h2, then
/// http/1.1) is added by actix-web.
pub fn server_config(certificate: Arc<ReloadingCertificate>) -> rustls::ServerConfig {
    rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("aws-lc-rs supports the default protocol versions")
        .with_no_client_auth()
        .with_cert_resolver(certificate)
}

/// What tells a changed file apart: its modification time and length
/// (through symbolic links, as certbot's `live/` directory has).
fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let metadata = std::fs::metadata(path).ok()?;
    Some((metadata.modified().ok()?, metadata.len()))
}

type Stamps = (Option<(SystemTime, u64)>, Option<(SystemTime, u64)>);

fn stamps(settings: &TlsSettings) -> Stamps {
    (stamp(&settings.cert_file), stamp(&settings.key_file))
}

fn reload(settings: &TlsSettings, certificate: &ReloadingCertificate, trigger: &'static str) {
    match read_certified_key(&settings.cert_file, &settings.key_file) {
        Ok(certified) => {
            certificate.replace(certified);
            tracing::info!(
                trigger,
                cert_file = %settings.cert_file.display(),
                "reloaded the TLS certificate; new connections use it"
            );
        }
        Err(error) => tracing::warn!(
            trigger,
            variable = error.variable(),
            %error,
            "cannot reload the TLS certificate; keeping the one in use"
        ),
    }
}

/// Reloads the certificate on SIGHUP and whenever either file changes
/// (checked every `reload_interval`); runs until the process ends. The
/// stamps are taken before the files are read, so that a change made
/// while reading (a key written after its certificate) is seen on the next
/// check and read again.
pub async fn reload_on_change(settings: TlsSettings, certificate: Arc<ReloadingCertificate>) {
    let mut hangup = match signal(SignalKind::hangup()) {
        Ok(hangup) => Some(hangup),
        Err(error) => {
            tracing::error!(%error, "cannot handle SIGHUP; the certificate reloads only when its files change");
            None
        }
    };
    let mut seen = stamps(&settings);
    let interval = (!settings.reload_interval.is_zero()).then_some(settings.reload_interval);
    loop {
        let trigger = tokio::select! {
            Some(()) = async {
                match hangup.as_mut() {
                    Some(hangup) => hangup.recv().await,
                    None => std::future::pending().await,
                }
            } => "SIGHUP",
            () = async {
                match interval {
                    Some(interval) => tokio::time::sleep(interval).await,
                    None => std::future::pending().await,
                }
            } => {
                let now = stamps(&settings);
                if now == seen {
                    continue;
                }
                "file change"
            }
            else => return,
        };
        seen = stamps(&settings);
        reload(&settings, &certificate, trigger);
    }
}
