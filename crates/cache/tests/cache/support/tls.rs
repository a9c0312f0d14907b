//! Certificates for a TLS `redis-server` of a test's own: a CA made for
//! the test and a server certificate it signed for 127.0.0.1, by the
//! `openssl` command line tool, in a temporary directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use cache::CaCertificates;
use tempfile::TempDir;

use super::redis::unavailable;

pub struct Certificates {
    dir: TempDir,
}

impl Certificates {
    /// A fresh CA and a server certificate it signed; `None` (after a note)
    /// without `openssl` outside CI.
    pub fn generate() -> Option<Self> {
        match Self::try_generate() {
            Ok(certificates) => Some(certificates),
            Err(error) => {
                unavailable(&format!("cannot make certificates with openssl: {error}"));
                None
            }
        }
    }

    fn try_generate() -> Result<Self, String> {
        let dir = TempDir::new().map_err(|error| error.to_string())?;
        let certificates = Self { dir };
        certificates.new_ca("ca")?;
        certificates.openssl(
            "req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
             -keyout server.key -out server.csr -subj /CN=localhost",
        )?;
        // rustls reads names from subjectAltName only, never the CN.
        std::fs::write(
            certificates.file("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
             keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .map_err(|error| error.to_string())?;
        certificates.openssl(
            "x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
             -extfile server.ext -out server.crt",
        )?;
        Ok(certificates)
    }

    /// A self-signed CA certificate and key, `{name}.crt` and `{name}.key`.
    fn new_ca(&self, name: &str) -> Result<(), String> {
        self.openssl(&format!(
            "req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
             -keyout {name}.key -out {name}.crt -days 2 -subj /CN=cache-test-{name}"
        ))
    }

    /// Runs in the directory, so that the arguments hold no paths (and no
    /// spaces: they are split on whitespace).
    fn openssl(&self, args: &str) -> Result<(), String> {
        let args: Vec<&str> = args.split_whitespace().collect();
        let output = Command::new("openssl")
            .args(&args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .output()
            .map_err(|error| error.to_string())?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "openssl {}: {}",
                args[0],
                String::from_utf8_lossy(&output.stderr).trim()
            ))
        }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn ca_file(&self) -> PathBuf {
        self.file("ca.crt")
    }

    pub fn server_certificate(&self) -> PathBuf {
        self.file("server.crt")
    }

    pub fn server_key(&self) -> PathBuf {
        self.file("server.key")
    }

    /// The CA that signed the server's certificate.
    pub fn ca(&self) -> CaCertificates {
        read_ca(&self.ca_file())
    }

    /// Another CA, which signed nothing the server holds.
    pub fn other_ca(&self) -> CaCertificates {
        if !self.file("other.crt").exists() {
            self.new_ca("other").expect("openssl made the first CA");
        }
        read_ca(&self.file("other.crt"))
    }
}

fn read_ca(path: &Path) -> CaCertificates {
    CaCertificates::from_pem(std::fs::read(path).unwrap()).expect("openssl wrote a CA certificate")
}
