//! HTTPS served by the binary itself: HTTP/2 by ALPN and HTTP/1.1 on one
//! port, on an inherited socket as on a bound one, the certificate
//! replaced without a restart (SIGHUP, or its files changing), a failed
//! reload keeping the certificate in use, and wrong files stopping the
//! start with one line naming the setting.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::tls::TlsInfo;
use reqwest::{Certificate, Client, Version};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde_json::json;
use tempfile::TempDir;

use crate::server_process::ServerProcess;
use crate::support::ci;

const SERVER: &str = env!("CARGO_BIN_EXE_server");

/// Certificate authorities of the test's own and server certificates they
/// signed for 127.0.0.1 and localhost, made by the `openssl` command line
/// tool (as the cache's TLS tests make theirs).
struct Certificates {
    dir: TempDir,
}

/// One CA and the server certificate and key it signed.
struct Issued {
    ca: PathBuf,
    certificate: PathBuf,
    key: PathBuf,
}

impl Issued {
    fn ca(&self) -> Certificate {
        Certificate::from_pem(&std::fs::read(&self.ca).unwrap()).unwrap()
    }

    /// The server certificate as a client sees it (DER).
    fn der(&self) -> Vec<u8> {
        CertificateDer::from_pem_file(&self.certificate)
            .unwrap()
            .to_vec()
    }
}

impl Certificates {
    /// `None` (after a note) when `openssl` is missing, outside CI.
    fn new() -> Option<Self> {
        let found = Command::new("openssl")
            .arg("version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if !found {
            assert!(
                !ci(),
                "openssl is needed to make test certificates and CI=true"
            );
            eprintln!("note: no openssl to make test certificates; skipping");
            return None;
        }
        Some(Self {
            dir: TempDir::new().unwrap(),
        })
    }

    /// A fresh CA `name` and a server certificate it signed, whose subject
    /// also carries `name`.
    fn issue(&self, name: &str) -> Issued {
        self.openssl(&format!(
            "req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
             -keyout {name}-ca.key -out {name}-ca.crt -days 2 -subj /CN=orders-test-{name}-ca"
        ));
        self.openssl(&format!(
            "req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
             -keyout {name}.key -out {name}.csr -subj /CN=orders-test-{name}"
        ));
        // rustls reads names from subjectAltName only, never the CN.
        std::fs::write(
            self.dir.path().join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
             keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        self.openssl(&format!(
            "x509 -req -in {name}.csr -CA {name}-ca.crt -CAkey {name}-ca.key -CAcreateserial \
             -days 2 -extfile server.ext -out {name}.crt"
        ));
        Issued {
            ca: self.dir.path().join(format!("{name}-ca.crt")),
            certificate: self.dir.path().join(format!("{name}.crt")),
            key: self.dir.path().join(format!("{name}.key")),
        }
    }

    fn openssl(&self, args: &str) {
        let args: Vec<&str> = args.split_whitespace().collect();
        let output = Command::new("openssl")
            .args(&args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "openssl {}: {}",
            args[0],
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// Puts `issued`'s certificate and key where the server reads them, each
/// written beside and renamed over, as certificate tools do.
fn install(issued: &Issued, cert_file: &Path, key_file: &Path) {
    for (from, to) in [(&issued.certificate, cert_file), (&issued.key, key_file)] {
        let staged = to.with_extension("new");
        std::fs::copy(from, &staged).unwrap();
        std::fs::rename(&staged, to).unwrap();
    }
}

/// A client of its own that trusts only `cas` and tells which certificate
/// the server showed: a new connection, and a full handshake (a client
/// kept would resume its TLS session, which carries the certificate of the
/// handshake it began with).
fn fresh_client(cas: &[&Issued]) -> Client {
    Client::builder()
        .tls_certs_only(cas.iter().map(|issued| issued.ca()))
        .tls_info(true)
        .build()
        .unwrap()
}

/// The leaf certificate of a new connection's handshake.
async fn certificate_shown(cas: &[&Issued], url: &str) -> Vec<u8> {
    let response = fresh_client(cas)
        .get(format!("{url}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response
        .extensions()
        .get::<TlsInfo>()
        .and_then(TlsInfo::peer_certificate)
        .expect("a TLS connection shows its certificate")
        .to_vec()
}

/// Waits until new connections get `issued`'s certificate.
async fn wait_for_certificate(cas: &[&Issued], url: &str, issued: &Issued, server: &ServerProcess) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while certificate_shown(cas, url).await != issued.der() {
        assert!(
            Instant::now() < deadline,
            "the new certificate was never served: {}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn environment(
    dir: &Path,
    cert_file: &Path,
    key_file: &Path,
    extra: Vec<(&'static str, String)>,
) -> Vec<(&'static str, String)> {
    let mut env = vec![
        (
            "DATABASE_URL",
            format!("sqlite:///{}", dir.join("orders.db").display()),
        ),
        ("CACHE_DISABLED", "true".to_owned()),
        ("WORKERS", "2".to_owned()),
        ("TLS_CERT_FILE", cert_file.display().to_string()),
        ("TLS_KEY_FILE", key_file.display().to_string()),
    ];
    env.extend(extra);
    env
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_speaks_http2_and_http1_and_takes_a_new_certificate_on_sighup() {
    let Some(certificates) = Certificates::new() else {
        return;
    };
    let (first, second) = (certificates.issue("first"), certificates.issue("second"));
    let dir = tempfile::tempdir().unwrap();
    let (cert_file, key_file) = (dir.path().join("server.crt"), dir.path().join("server.key"));
    install(&first, &cert_file, &key_file);
    // SIGHUP only: no polling of the files, so the reload seen is SIGHUP's.
    let env = environment(
        dir.path(),
        &cert_file,
        &key_file,
        vec![("TLS_RELOAD_INTERVAL_MS", "0".to_owned())],
    );
    // An inherited socket (systemd's socket activation) serves HTTPS too.
    let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://127.0.0.1:{}", socket.local_addr().unwrap().port());
    let mut server = ServerProcess::start(dir.path(), "server", &env, Some(&socket));
    server.wait_serving();
    assert!(
        server.log().contains(r#""scheme":"https""#),
        "{}",
        server.log()
    );

    // HTTP/2 by ALPN, on a connection kept for later.
    let kept = Client::builder()
        .tls_certs_only([first.ca()])
        .tls_info(true)
        .build()
        .unwrap();
    let created = kept
        .post(format!("{url}/orders"))
        .json(&json!({"customer_name": "Alice", "items": [{"name": "Pen", "quantity": 2}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.version(), Version::HTTP_2);
    assert_eq!(created.status(), 201);
    let id = created.json::<serde_json::Value>().await.unwrap()["order_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // HTTP/1.1 for a client that offers only that.
    let http1 = Client::builder()
        .tls_certs_only([first.ca()])
        .http1_only()
        .build()
        .unwrap();
    let read = http1
        .get(format!("{url}/orders/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(read.version(), Version::HTTP_11);
    assert_eq!(read.status(), 200);
    assert_eq!(
        read.json::<serde_json::Value>().await.unwrap()["customer_name"],
        "Alice"
    );

    let both = [&first, &second];
    assert_eq!(certificate_shown(&both, &url).await, first.der());

    // The new certificate, another CA's, then SIGHUP: new connections get
    // it, the process goes on.
    install(&second, &cert_file, &key_file);
    server.signal("HUP");
    wait_for_certificate(&both, &url, &second, &server).await;
    assert!(
        server.log().contains("reloaded the TLS certificate"),
        "{}",
        server.log()
    );
    assert!(
        server.running(),
        "SIGHUP stopped the server: {}",
        server.log()
    );
    let only_second = fresh_client(&[&second]);
    assert_eq!(
        only_second
            .get(format!("{url}/orders/{id}"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let only_first = fresh_client(&[&first]);
    assert!(
        only_first
            .get(format!("{url}/healthz"))
            .send()
            .await
            .is_err(),
        "a client trusting only the old CA must refuse the new certificate"
    );
    // The connection made before the reload goes on with the old one.
    let again = kept.get(format!("{url}/orders/{id}")).send().await.unwrap();
    assert_eq!(again.status(), 200);
    assert_eq!(again.version(), Version::HTTP_2);

    // A broken certificate file: the reload fails with one line, and the
    // certificate in use stays.
    std::fs::write(&cert_file, "-----BEGIN CERTIFICATE-----\nnot base64\n").unwrap();
    server.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.log().contains("cannot reload the TLS certificate") {
        assert!(
            Instant::now() < deadline,
            "no line about the failed reload: {}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let failed: Vec<String> = server
        .log()
        .lines()
        .filter(|line| line.contains("cannot reload the TLS certificate"))
        .map(str::to_owned)
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(failed[0].contains("TLS_CERT_FILE"), "{}", failed[0]);
    assert_eq!(certificate_shown(&both, &url).await, second.der());
    assert!(server.running());

    // An HTTP/2 connection left open would hold the stop until actix-web's
    // shutdown timeout (README, "HTTPS"): close them first.
    drop((kept, only_second));
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_takes_a_new_certificate_when_its_files_change() {
    let Some(certificates) = Certificates::new() else {
        return;
    };
    let (first, second) = (certificates.issue("first"), certificates.issue("second"));
    let dir = tempfile::tempdir().unwrap();
    let (cert_file, key_file) = (dir.path().join("server.crt"), dir.path().join("server.key"));
    install(&first, &cert_file, &key_file);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let env = environment(
        dir.path(),
        &cert_file,
        &key_file,
        vec![
            ("TLS_RELOAD_INTERVAL_MS", "200".to_owned()),
            ("HOST", "127.0.0.1".to_owned()),
            ("PORT", port.to_string()),
        ],
    );
    let mut server = ServerProcess::start(dir.path(), "server", &env, None);
    server.wait_serving();
    let url = format!("https://127.0.0.1:{port}");
    let both = [&first, &second];
    assert_eq!(certificate_shown(&both, &url).await, first.der());

    install(&second, &cert_file, &key_file);
    wait_for_certificate(&both, &url, &second, &server).await;
    assert!(server.log().contains("file change"), "{}", server.log());
    server.stop();
}

#[test]
fn a_wrong_certificate_or_key_stops_the_start_with_one_line_naming_it() {
    let Some(certificates) = Certificates::new() else {
        return;
    };
    let (first, second) = (certificates.issue("first"), certificates.issue("second"));
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate").unwrap();
    let missing = dir.path().join("missing.pem");
    let path = |path: &Path| path.display().to_string();
    for (cert, key, variable) in [
        (
            Some(path(&missing)),
            Some(path(&first.key)),
            "TLS_CERT_FILE",
        ),
        (Some(path(&junk)), Some(path(&first.key)), "TLS_CERT_FILE"),
        (
            Some(path(&first.certificate)),
            Some(path(&missing)),
            "TLS_KEY_FILE",
        ),
        (
            Some(path(&first.certificate)),
            Some(path(&junk)),
            "TLS_KEY_FILE",
        ),
        // Another certificate's key.
        (
            Some(path(&first.certificate)),
            Some(path(&second.key)),
            "TLS_KEY_FILE",
        ),
        (Some(path(&first.certificate)), None, "TLS_KEY_FILE"),
        (None, Some(path(&first.key)), "TLS_CERT_FILE"),
    ] {
        let mut command = Command::new(SERVER);
        command.current_dir(dir.path()).env_clear();
        if let Some(cert) = &cert {
            command.env("TLS_CERT_FILE", cert);
        }
        if let Some(key) = &key {
            command.env("TLS_KEY_FILE", key);
        }
        let output = command.output().unwrap();
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(output.status.code(), Some(2), "{cert:?} {key:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(variable), "{variable}: {stderr}");
    }
}
