//! The service as a resource server of a real authorization server: `oidc-provider`
//! (tests/auth-server) issues the tokens, through SMART Backend Services (client credentials,
//! a `private_key_jwt` assertion signed by the service's own SMART client code) and through a
//! user's authorization code with PKCE and a patient in context; the service verifies them
//! against the provider's discovered JWK Set and lets each do what its scopes allow.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Child;

use base64::Engine;
use prognostics::config::AuthMode;
use prognostics::ehr::{SmartBackend, SmartClient};
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::authorization::{AUDIENCE, client_with, trusting};
use crate::ehr::{node, start_node_server};
use crate::ehr_smart::key_pair;
use crate::helpers::{TestApp, spawn_app_with};
use crate::risk_assessment::patient_with_record;

const REDIRECT_URI: &str = "http://127.0.0.1/smart-app/callback";
const USER: &str = "Practitioner/onc-1";
/// The API page's client secret at the provider.
const DOCS_SECRET: &str = "docs-client-secret";
/// The app's PKCE code verifier (43 to 128 characters).
const VERIFIER: &str = "a-pkce-verifier-of-at-least-forty-three-characters-0123456789";

/// The running provider; stopped when dropped.
pub(crate) struct AuthServer {
    pub(crate) issuer: String,
    child: Child,
    _config: tempfile::NamedTempFile,
}

impl Drop for AuthServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the provider with `config` (tests/auth-server/server.mjs names its fields); None (a
/// skip) when it is not installed.
pub(crate) fn start_provider(config: &Value) -> Option<AuthServer> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let installed = root.join("tests/auth-server/node_modules/oidc-provider");
    if !node().exists() || !installed.is_dir() {
        assert!(
            std::env::var_os("TEST_REQUIRE_PEERS").is_none(),
            "the authorization test server is missing: run scripts/install-test-deps"
        );
        eprintln!("skipping: the authorization test server is not installed");
        return None;
    }
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), config.to_string()).unwrap();
    let (child, port) =
        start_node_server("tests/auth-server/server.mjs", &[file.path().as_os_str()]);
    Some(AuthServer {
        issuer: format!("http://127.0.0.1:{port}"),
        child,
        _config: file,
    })
}

/// Starts the provider with `backend_jwks` registered for the backend client and `patient` in
/// the app's context; None (a skip) when it is not installed.
fn start_auth_server(backend_jwks: &Value, patient: &str) -> Option<AuthServer> {
    start_provider(&json!({
        "audience": AUDIENCE,
        "backend": {
            "client_id": "backend-services",
            "jwks": backend_jwks,
            "scope": "system/*.cruds system/*.rs system/RiskAssessment.c",
        },
        "docs": {
            "client_id": "api-docs",
            "client_secret": DOCS_SECRET,
            "scope": "system/*.rs",
        },
        "app": {
            "client_id": "risk-view",
            "redirect_uri": REDIRECT_URI,
            "scope": "patient/*.rs",
            "user": "onc-1",
            "fhirUser": USER,
            "patient": patient,
        },
    }))
}

/// The service trusting `issuer`, its keys found through discovery.
async fn spawn_resource_server(issuer: &str) -> TestApp {
    let issuer = issuer.to_owned();
    spawn_app_with(|s| {
        s.auth.mode = AuthMode::Smart;
        s.auth.issuers = vec![trusting(issuer)];
        s.fhir.base_url = Some(AUDIENCE.parse().unwrap());
    })
    .await
}

/// A FHIR POST by `client`.
async fn post_as(client: &reqwest::Client, url: String, body: Value) -> reqwest::Response {
    client
        .post(url)
        .header("content-type", "application/fhir+json")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

/// The payload of a JWT, unverified (to see what the provider put in it).
fn claims_of(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn a_backend_services_token_reads_writes_and_assesses() {
    let keys = tempfile::tempdir().unwrap();
    if !node().exists() {
        assert!(start_auth_server(&json!({"keys": []}), "p").is_none());
        return;
    }
    let (private_pem, _) = key_pair("rsa", keys.path(), "backend");
    let backend = |scope: &str, token_url: &str| {
        SmartBackend::new(SmartClient {
            client_id: "backend-services".into(),
            private_key_pem: private_pem.clone().into(),
            key_id: None,
            token_url: Some(token_url.to_owned()),
            scope: scope.to_owned(),
        })
        .unwrap()
    };
    let jwks = backend("", "unused").jwks();
    let Some(server) = start_auth_server(&jwks, "unused") else {
        return;
    };
    let token_url = format!("{}/token", server.issuer);
    let http = reqwest::Client::new();

    // The backend asks for everything it may have: the provider's token, as it issued it.
    let full = backend("system/*.cruds", &token_url);
    let token = full.access_token(&http, "unused").await.unwrap();
    let token = secrecy::ExposeSecret::expose_secret(&token).to_owned();
    let claims = claims_of(&token);
    assert_eq!(claims["iss"], server.issuer);
    assert_eq!(claims["aud"], AUDIENCE);
    assert_eq!(claims["client_id"], "backend-services");

    let mut app = spawn_resource_server(&server.issuer).await;
    app.client = client_with(&token);
    // Writes and reads.
    let patient = patient_with_record(&app, true).await;
    let read = app.get(&format!("Patient/{patient}")).await;
    assert_eq!(read.status(), 200);
    let search = app
        .search(&format!("Observation?subject=Patient/{patient}"))
        .await;
    assert!(search["total"].as_u64().unwrap() >= 4, "{search}");
    // The assessment files a RiskAssessment: a read-only token is refused it ...
    let reading = backend("system/*.rs", &token_url);
    let read_only = reading.access_token(&http, "unused").await.unwrap();
    let reader = client_with(secrecy::ExposeSecret::expose_secret(&read_only));
    let refused = post_as(
        &reader,
        app.url(&format!("Patient/{patient}/$risk-assessment")),
        json!({"resourceType": "Parameters"}),
    )
    .await;
    assert_eq!(refused.status(), 403);
    // ... one that may also create RiskAssessments gets it.
    let assessing = backend("system/*.rs system/RiskAssessment.c", &token_url);
    let granted = assessing.access_token(&http, "unused").await.unwrap();
    let granted = secrecy::ExposeSecret::expose_secret(&granted).to_owned();
    assert_eq!(
        claims_of(&granted)["scope"],
        "system/*.rs system/RiskAssessment.c"
    );
    let assessor = client_with(&granted);
    let assessed = post_as(
        &assessor,
        app.url(&format!("Patient/{patient}/$risk-assessment")),
        json!({"resourceType": "Parameters"}),
    )
    .await;
    assert_eq!(assessed.status(), 200, "{}", assessed.text().await.unwrap());
    // A read-only token cannot write.
    let write = post_as(
        &assessor,
        app.url("Patient"),
        json!({"resourceType": "Patient"}),
    )
    .await;
    assert_eq!(write.status(), 403);

    // The trail names the provider's client.
    let events = app.audit_events("agent=backend-services").await;
    assert!(events.len() >= 4, "{}", events.len());
}

/// A browser's cookie jar, as far as the provider's redirects need one.
#[derive(Default)]
struct Cookies(BTreeMap<String, String>);

impl Cookies {
    fn take(&mut self, response: &reqwest::Response) {
        for header in response.headers().get_all(SET_COOKIE) {
            let pair = header.to_str().unwrap().split(';').next().unwrap();
            if let Some((name, value)) = pair.split_once('=') {
                self.0.insert(name.trim().to_owned(), value.to_owned());
            }
        }
    }

    fn header(&self) -> String {
        self.0
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Walks the provider's redirects from the authorization request to the app's redirect URI, as
/// a browser would, and gives back that last URL.
async fn authorize(browser: &reqwest::Client, start: String) -> url::Url {
    let mut cookies = Cookies::default();
    let mut next = start;
    for _ in 0..10 {
        if next.starts_with(REDIRECT_URI) {
            return url::Url::parse(&next).unwrap();
        }
        let response = browser
            .get(&next)
            .header(COOKIE, cookies.header())
            .send()
            .await
            .unwrap();
        cookies.take(&response);
        assert!(
            response.status().is_redirection(),
            "{next}: {}",
            response.status()
        );
        let location = response.headers()[LOCATION].to_str().unwrap();
        next = url::Url::parse(&next)
            .unwrap()
            .join(location)
            .unwrap()
            .to_string();
    }
    panic!("the authorization request never came back to the app");
}

#[tokio::test]
async fn a_users_token_with_pkce_is_confined_to_the_patient_in_context() {
    if !node().exists() {
        assert!(start_auth_server(&json!({"keys": []}), "p").is_none());
        return;
    }
    // The records come first (written with authorization off, then the service restarts
    // with it on); the patient's id is what the provider puts in context.
    let seeding = spawn_app_with(|_| {}).await;
    let patient = patient_with_record(&seeding, true).await;
    let other = patient_with_record(&seeding, false).await;
    let (dir, database_url) = seeding.stop().await;
    let Some(server) = start_auth_server(&json!({"keys": []}), &patient) else {
        return;
    };
    let mut app = crate::helpers::spawn_app_in(dir, database_url, |s| {
        s.auth.mode = AuthMode::Smart;
        s.auth.issuers = vec![trusting(server.issuer.clone())];
        s.fhir.base_url = Some(AUDIENCE.parse().unwrap());
    })
    .await;

    // The app's authorization request, with a PKCE challenge (S256).
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(Sha256::digest(VERIFIER.as_bytes()));
    let mut start = url::Url::parse(&format!("{}/auth", server.issuer)).unwrap();
    start
        .query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", "risk-view")
        .append_pair("redirect_uri", REDIRECT_URI)
        .append_pair("scope", "openid fhirUser launch/patient patient/*.rs")
        .append_pair("state", "opaque-state")
        .append_pair("aud", AUDIENCE)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let code_from = |back: url::Url| {
        let query: BTreeMap<String, String> = back.query_pairs().into_owned().collect();
        assert_eq!(query["state"], "opaque-state");
        query["code"].clone()
    };
    let exchange = |code: String, verifier: &'static str| {
        browser
            .post(format!("{}/token", server.issuer))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", REDIRECT_URI),
                ("client_id", "risk-view"),
                ("code_verifier", verifier),
            ])
            .send()
    };
    // A code without its verifier is worth nothing (PKCE) ...
    let code = code_from(authorize(&browser, start.to_string()).await);
    let stolen = exchange(
        code,
        "someone-elses-verifier-of-at-least-forty-three-characters-00",
    )
    .await
    .unwrap();
    assert_eq!(stolen.status(), 400);
    // ... and a code is good for one try, so the real app starts again.
    let code = code_from(authorize(&browser, start.to_string()).await);
    let answer: Value = exchange(code, VERIFIER)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["patient"], patient.as_str(), "{answer}");
    let token = answer["access_token"].as_str().unwrap();
    let claims = claims_of(token);
    assert_eq!(claims["patient"], patient.as_str());
    assert_eq!(claims["fhirUser"], USER);
    assert_eq!(claims["aud"], AUDIENCE);

    app.client = client_with(token);
    // The patient in context is readable, and a search without a patient finds only theirs.
    assert_eq!(app.get(&format!("Patient/{patient}")).await.status(), 200);
    let own = app.search("Observation").await;
    assert!(own["total"].as_u64().unwrap() >= 4, "{own}");
    for entry in own["entry"].as_array().unwrap() {
        assert_eq!(
            entry["resource"]["subject"]["reference"],
            format!("Patient/{patient}")
        );
    }
    // Another patient: 403; a write: 403.
    assert_eq!(app.get(&format!("Patient/{other}")).await.status(), 403);
    let write = app
        .post("Patient", &json!({"resourceType": "Patient"}))
        .await;
    assert_eq!(write.status(), 403);
}

/// What `/docs` (Swagger UI) does with **Authorize**, step by step over HTTP: read the token URL
/// from the served OpenAPI document, ask the provider for a client-credentials token from the
/// page's origin (a CORS preflight, then the POST with HTTP Basic), and call the API with it.
#[tokio::test]
async fn the_docs_page_flow_gets_a_token_and_calls_the_api() {
    if !node().exists() {
        assert!(start_auth_server(&json!({"keys": []}), "p").is_none());
        return;
    }
    let Some(server) = start_auth_server(&json!({"keys": []}), "unused") else {
        return;
    };
    let app = spawn_resource_server(&server.issuer).await;
    let page_origin = app.address.clone();
    let http = reqwest::Client::new();
    let document: Value = http
        .get(format!("{}/openapi.json", app.address))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let flow = &document["components"]["securitySchemes"]["smart"]["flows"]["clientCredentials"];
    let token_url = flow["tokenUrl"].as_str().unwrap();
    assert_eq!(token_url, format!("{}/token", server.issuer));

    let preflight = http
        .request(reqwest::Method::OPTIONS, token_url)
        .header("origin", &page_origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type",
        )
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        page_origin.as_str()
    );
    let answer = http
        .post(token_url)
        .header("origin", &page_origin)
        .basic_auth("api-docs", Some(DOCS_SECRET))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "system/*.rs"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(
        answer.headers()["access-control-allow-origin"],
        page_origin.as_str()
    );
    let token: Value = answer.json().await.unwrap();
    let reader = client_with(token["access_token"].as_str().unwrap());
    let read = reader.get(app.url("Patient")).send().await.unwrap();
    assert_eq!(read.status(), 200);
}
