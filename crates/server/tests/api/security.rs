//! Headers that keep browsers from guessing: `nosniff` on every kind of
//! response, and a content security policy for `/docs` that its page
//! satisfies.

use reqwest::{Method, Response};
use serde_json::json;

use crate::support::{Options, TestApp};

fn nosniff(response: &Response, what: &str) {
    assert_eq!(
        response
            .headers()
            .get("x-content-type-options")
            .map(|value| value.to_str().unwrap()),
        Some("nosniff"),
        "{what}: {:?}",
        response.headers()
    );
}

#[tokio::test]
async fn every_kind_of_response_says_nosniff() {
    let spool = tempfile::tempdir().unwrap();
    // Lists over 1 KiB go out as parts: a streamed body.
    let app = TestApp::start(Options {
        extra: vec![
            ("LIST_STREAM_ABOVE_KB", "1".to_owned()),
            ("LIST_SPOOL_DIR", spool.path().display().to_string()),
        ],
        ..Options::default()
    })
    .await;
    let created = app.create("Alice").await;
    let id = created["order_id"].as_str().unwrap().to_owned();
    assert_eq!(
        app.admin("/admin/seed", json!({"count": 40}))
            .await
            .status(),
        201
    );

    let detail = app.get(&format!("/orders/{id}")).await;
    nosniff(&detail, "an order");
    let etag = detail.headers()["etag"].clone();
    let not_modified = app
        .client
        .get(app.url(&format!("/orders/{id}")))
        .header("If-None-Match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(not_modified.status(), 304);
    nosniff(&not_modified, "a 304");

    let list = app.get("/orders").await;
    assert_eq!(list.status(), 200);
    nosniff(&list, "the streamed full list");
    for accept in ["gzip", "br"] {
        let list = app
            .client
            .get(app.url("/orders?limit=20"))
            .header("Accept-Encoding", accept)
            .send()
            .await
            .unwrap();
        nosniff(&list, accept);
    }
    let refused = app
        .client
        .get(app.url("/orders"))
        .header("Accept-Encoding", "br, identity;q=0")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 406);
    nosniff(&refused, "a 406");

    for (method, path, status) in [
        (Method::GET, "/orders?limit=0", 400),
        (Method::GET, "/orders/not-a-uuid", 404),
        (Method::GET, "/nowhere", 404),
        (Method::PUT, "/orders", 405),
        (Method::DELETE, "/docs", 405),
        (Method::POST, "/admin/reset", 401),
        (Method::GET, "/healthz", 200),
        (Method::GET, "/readyz", 200),
        (Method::GET, "/metrics", 200),
        (Method::GET, "/openapi.json", 200),
        (Method::GET, "/docs", 200),
    ] {
        let response = app
            .client
            .request(method.clone(), app.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{method} {path}");
        nosniff(&response, &format!("{method} {path}"));
    }
    let too_large = app
        .client
        .post(app.url("/orders"))
        .header("content-type", "application/json")
        .body(vec![b' '; 70 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(too_large.status(), 413);
    nosniff(&too_large, "a 413");
    let wrong_type = app
        .client
        .post(app.url("/orders"))
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_type.status(), 415);
    nosniff(&wrong_type, "a 415");
    // Answered by the CORS middleware itself.
    let preflight = app
        .client
        .request(Method::OPTIONS, app.url("/orders"))
        .header("Origin", "http://frontend.example:3000")
        .header("Access-Control-Request-Method", "POST")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success());
    nosniff(&preflight, "a CORS preflight");
}

/// The directives of a policy, by name.
fn directive<'a>(policy: &'a str, name: &str) -> Vec<&'a str> {
    policy
        .split(';')
        .map(str::trim)
        .find_map(|directive| {
            let mut words = directive.split_whitespace();
            (words.next() == Some(name)).then(|| words.collect())
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn docs_carry_a_policy_their_page_satisfies() {
    let app = TestApp::sqlite().await;
    let docs = app.get("/docs").await;
    assert_eq!(docs.status(), 200);
    assert!(
        docs.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let policy = docs.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    let page = docs.text().await.unwrap();

    // Strict: nothing is allowed unless named, no inline or eval'd script,
    // no frames, forms or base URL.
    assert_eq!(directive(&policy, "default-src"), ["'none'"]);
    let scripts = directive(&policy, "script-src");
    assert!(
        scripts
            .iter()
            .all(|source| !source.contains("unsafe") && *source != "*" && !source.ends_with(':')),
        "{policy}"
    );
    for (name, value) in [
        ("base-uri", "'none'"),
        ("form-action", "'none'"),
        ("frame-ancestors", "'none'"),
    ] {
        assert_eq!(directive(&policy, name), [value], "{policy}");
    }

    // Satisfied: every script the page loads comes from an allowed origin,
    // and its one inline script is a data block (never executed, so no
    // policy applies to it).
    let mut inline = 0;
    for tag in page.split("<script").skip(1) {
        let tag = &tag[..tag.find('>').unwrap()];
        let attribute = |name: &str| {
            let start = tag.find(&format!("{name}=\""))? + name.len() + 2;
            Some(&tag[start..start + tag[start..].find('"')?])
        };
        match attribute("src") {
            Some(src) => {
                let origin: String = src.split('/').take(3).collect::<Vec<_>>().join("/");
                assert!(scripts.contains(&origin.as_str()), "{src} under {policy}");
            }
            None => {
                assert_eq!(attribute("type"), Some("application/json"), "<script{tag}>");
                inline += 1;
            }
        }
    }
    assert_eq!(inline, 1, "the spec's data block");
    assert!(!page.contains("<style") && !page.contains("style=\"") && !page.contains("<link"));
    for handler in ["onload=", "onerror=", "onclick=", "javascript:"] {
        assert!(!page.contains(handler), "{handler}");
    }
    // The page calls this server for "try it" requests.
    assert!(
        directive(&policy, "connect-src").contains(&"'self'"),
        "{policy}"
    );
}
