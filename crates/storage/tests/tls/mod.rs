//! TLS to MySQL/MariaDB against `mariadbd`s of the tests' own, with a CA
//! and a server certificate (for `localhost` only) that the tests make.

mod mariadbd;

use std::time::Duration;

use domain::{CustomerName, ItemName, NewItem, NewOrder, OrderRepository, Quantity};
use mariadbd::Mariadbd;
use storage::{DatabaseUrl, Storage, StorageConfig, StorageError};

fn config(url: &str) -> StorageConfig {
    let mut config = StorageConfig::new(DatabaseUrl::parse(url).unwrap());
    // A TLS handshake on a busy two-core machine is slower than a query.
    config.pool_timeout = Duration::from_secs(10);
    config
}

async fn connect(url: &str) -> Result<Storage, StorageError> {
    Storage::connect(&config(url)).await
}

/// A write and a read through the pool: its connections work.
async fn round_trip(storage: &Storage) {
    let order = NewOrder::new(
        CustomerName::parse("Tls").unwrap(),
        vec![NewItem {
            name: ItemName::parse("Pen").unwrap(),
            quantity: Quantity::parse(1).unwrap(),
        }],
    )
    .unwrap();
    let created = storage.create(order, None).await.unwrap().document;
    let fetched = storage.get(created.id()).await.unwrap().unwrap();
    assert_eq!(fetched.body(), created.body());
}

/// The start's error, as the process prints it: one line that names the
/// setting to change, and never the password.
async fn refusal(url: &str) -> String {
    let error = connect(url).await.err().expect("the connection is refused");
    let message = error.to_string();
    assert!(!message.contains('\n'), "{message}");
    assert!(!message.contains(mariadbd::PASSWORD), "{message}");
    message
}

#[tokio::test]
async fn tls_is_verified_as_ssl_mode_says_and_a_server_requiring_it_refuses_plain_tcp() {
    let Some(server) = Mariadbd::start(true).await else {
        return;
    };
    let ca = server.ca.display().to_string();

    // ssl_ca alone checks the chain and the host name (as PyMySQL does);
    // the certificate names localhost. The server refuses any TCP
    // connection without TLS, so the pool's working connections are TLS
    // ones; the server counts their handshakes too.
    let accepted = server.status("Ssl_accepts").await;
    let storage = connect(&server.url("localhost", &format!("ssl_ca={ca}")))
        .await
        .unwrap();
    round_trip(&storage).await;
    drop(storage);
    assert!(
        server.status("Ssl_accepts").await >= accepted + 2,
        "the start's check, the migrations and the pool each shake hands"
    );

    // VERIFY_CA: a certificate of that CA passes whatever names it holds.
    let storage = connect(&server.url("127.0.0.1", &format!("ssl_mode=verify_ca&ssl_ca={ca}")))
        .await
        .unwrap();
    round_trip(&storage).await;
    drop(storage);

    // REQUIRED without a CA: encrypted, the certificate not checked.
    let storage = connect(&server.url("127.0.0.1", "ssl-mode=REQUIRED"))
        .await
        .unwrap();
    round_trip(&storage).await;
    drop(storage);

    // The host name is checked when asked: 127.0.0.1 is not in the
    // certificate.
    let message = refusal(&server.url("127.0.0.1", &format!("ssl_ca={ca}"))).await;
    assert!(
        message.contains("does not name the host") && message.contains("ssl_mode / DB_SSL_MODE"),
        "{message}"
    );

    // A CA that did not issue the server's certificate.
    let other = server.other_ca.display().to_string();
    for params in [
        format!("ssl_mode=VERIFY_CA&ssl_ca={other}"),
        format!("ssl_mode=VERIFY_IDENTITY&ssl_ca={other}"),
    ] {
        let message = refusal(&server.url("localhost", &params)).await;
        assert!(
            message.contains("not trusted by ssl_ca / DB_SSL_CA") && message.contains(&other),
            "{message}"
        );
    }
    // No CA given for a verifying mode: the public roots do not know ours.
    let message = refusal(&server.url("localhost", "ssl_mode=VERIFY_IDENTITY")).await;
    assert!(message.contains("ssl_ca / DB_SSL_CA"), "{message}");
    // A CA file that is not there stops the start before any connection.
    let message = refusal(&server.url("localhost", "ssl_ca=/no/such/ca.pem")).await;
    assert!(
        message.contains("ssl_ca / DB_SSL_CA") && message.contains("/no/such/ca.pem"),
        "{message}"
    );

    // Plain TCP, as asked or by default, is refused by this server.
    for params in ["ssl_mode=DISABLED", ""] {
        let error = connect(&server.url("127.0.0.1", params))
            .await
            .err()
            .expect("the server requires TLS");
        assert!(
            !matches!(error, StorageError::Tls(_)),
            "the server refused, not our TLS: {error}"
        );
    }
}

#[tokio::test]
async fn ssl_mode_disabled_is_honoured_where_tls_is_on_offer() {
    let Some(server) = Mariadbd::start(false).await else {
        return;
    };
    let before = server.status("Ssl_accepts").await;
    let connections = server.status("Connections").await;
    for params in ["ssl_mode=DISABLED", "ssl-mode=disabled", ""] {
        let storage = connect(&server.url("127.0.0.1", params)).await.unwrap();
        round_trip(&storage).await;
    }
    assert!(
        server.status("Connections").await >= connections + 6,
        "the storages did connect"
    );
    assert_eq!(
        server.status("Ssl_accepts").await,
        before,
        "no connection used TLS"
    );

    // The counter does move on this server when TLS is asked for.
    let storage = connect(&server.url("127.0.0.1", "ssl_mode=REQUIRED"))
        .await
        .unwrap();
    round_trip(&storage).await;
    assert!(server.status("Ssl_accepts").await > before);
}
