//! `server healthcheck`'s probe against the real server: healthy while it
//! serves, unhealthy once it has stopped.

use std::net::{Ipv4Addr, SocketAddr};

use server::healthcheck::{TIMEOUT, probe};

use crate::support::TestApp;

async fn probe_port(port: u16) -> Result<(), String> {
    tokio::task::spawn_blocking(move || {
        probe(SocketAddr::from((Ipv4Addr::LOCALHOST, port)), TIMEOUT).map_err(|e| e.to_string())
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn the_probe_sees_a_serving_server_and_then_its_stop() {
    let app = TestApp::sqlite().await;
    let port = app.server.port;
    probe_port(port).await.expect("healthy while serving");

    app.server.stop().await;
    let error = probe_port(port).await.expect_err("unhealthy once stopped");
    assert!(!error.is_empty());
}
