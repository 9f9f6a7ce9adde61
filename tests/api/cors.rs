//! CORS: closed by default; configured origins get preflights answered before any token is
//! asked for, and their pages may read the answers; other origins get no CORS headers.

use reqwest::Method;
use reqwest::header::{
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_REQUEST_HEADERS,
    ACCESS_CONTROL_REQUEST_METHOD, ORIGIN,
};

use crate::authorization::spawn_smart_app;
use crate::helpers::{TestApp, spawn_app};
use crate::issuer::TestIssuer;

const EHR: &str = "https://ehr.hospital.test";

async fn preflight(app: &TestApp, origin: &str) -> reqwest::Response {
    reqwest::Client::new()
        .request(Method::OPTIONS, app.url("Patient"))
        .header(ORIGIN, origin)
        .header(ACCESS_CONTROL_REQUEST_METHOD, "GET")
        .header(ACCESS_CONTROL_REQUEST_HEADERS, "authorization")
        .send()
        .await
        .unwrap()
}

async fn read_from(app: &TestApp, origin: &str) -> reqwest::Response {
    app.client
        .get(app.url("Patient"))
        .header(ORIGIN, origin)
        .send()
        .await
        .unwrap()
}

async fn cors_declared(app: &TestApp) -> bool {
    let statement = app.search("metadata").await;
    statement["rest"][0]["security"]["cors"].as_bool().unwrap()
}

#[tokio::test]
async fn configured_origins_may_call_from_a_browser_and_no_other() {
    let issuer = TestIssuer::with_rsa_key().await;
    let app = spawn_smart_app(&issuer, |s| {
        s.server.cors_origins = vec![EHR.to_owned()];
    })
    .await;
    // The preflight carries no token and is answered without one.
    let allowed = preflight(&app, EHR).await;
    assert!(allowed.status().is_success(), "{}", allowed.status());
    assert_eq!(allowed.headers()[ACCESS_CONTROL_ALLOW_ORIGIN], EHR);
    // The page can read the answer and the headers it needs (ETag, Location …).
    let read = read_from(&app, EHR).await;
    assert_eq!(read.status(), 200);
    assert_eq!(read.headers()[ACCESS_CONTROL_ALLOW_ORIGIN], EHR);
    let exposed = read.headers()[ACCESS_CONTROL_EXPOSE_HEADERS]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    for header in ["etag", "location", "x-request-id", "www-authenticate"] {
        assert!(exposed.contains(header), "{exposed}");
    }
    // Without a token, the refusal is readable too (the page learns to get one).
    let anonymous = reqwest::Client::new()
        .get(app.url("Patient"))
        .header(ORIGIN, EHR)
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(anonymous.headers()[ACCESS_CONTROL_ALLOW_ORIGIN], EHR);
    // Another origin: its preflight is refused and answers carry no CORS headers.
    let stranger = "https://elsewhere.test";
    let refused = preflight(&app, stranger).await;
    assert!(!refused.status().is_success());
    assert!(!refused.headers().contains_key(ACCESS_CONTROL_ALLOW_ORIGIN));
    let read = read_from(&app, stranger).await;
    assert!(!read.headers().contains_key(ACCESS_CONTROL_ALLOW_ORIGIN));
    assert!(cors_declared(&app).await);
}

#[tokio::test]
async fn cors_is_closed_by_default() {
    let app = spawn_app().await;
    let refused = preflight(&app, EHR).await;
    assert!(!refused.status().is_success(), "{}", refused.status());
    assert!(!refused.headers().contains_key(ACCESS_CONTROL_ALLOW_ORIGIN));
    let read = read_from(&app, EHR).await;
    assert_eq!(read.status(), 200);
    assert!(!read.headers().contains_key(ACCESS_CONTROL_ALLOW_ORIGIN));
    assert!(!cors_declared(&app).await);
}
