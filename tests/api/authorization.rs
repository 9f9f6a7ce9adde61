//! SMART on FHIR authorization on the HTTP door: every route × every kind of token gives the
//! expected status (the auth matrix), `patient/` scopes confine to the token's patient, opaque
//! tokens are introspected, clients are rate-limited, and each decision is in the audit trail.

use std::collections::BTreeMap;

use jsonwebtoken::Algorithm;
use prognostics::config::{AuthMode, IssuerSettings};
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app_with};
use crate::issuer::{TestIssuer, ec_key, now, sign};

/// The audience tokens must name: the service's public FHIR base.
pub const AUDIENCE: &str = "https://prognostics.test/fhir";

/// A service that trusts `issuer`, with `app.client` sending an administrator's token.
pub async fn spawn_smart_app(
    issuer: &TestIssuer,
    adjust: impl FnOnce(&mut prognostics::config::Settings),
) -> TestApp {
    let base = issuer.base.clone();
    let mut app = spawn_app_with(|s| {
        s.auth.mode = AuthMode::Smart;
        s.auth.issuers = vec![trusting(base)];
        s.fhir.base_url = Some(AUDIENCE.parse().unwrap());
        adjust(s);
    })
    .await;
    let admin = issuer.token(&issuer.claims(AUDIENCE, "admin", "system/*.cruds", None));
    app.client = client_with(&admin);
    app
}

/// An issuer whose tokens are for [`AUDIENCE`], its keys found through discovery.
pub fn trusting(issuer: String) -> IssuerSettings {
    IssuerSettings {
        issuer,
        audience: AUDIENCE.into(),
        jwks_uri: None,
        introspection_endpoint: None,
        introspection_client_id: None,
        introspection_client_secret: None,
    }
}

pub fn client_with(token: &str) -> reqwest::Client {
    let mut headers = HeaderMap::new();
    headers.insert(
        AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

/// One request of the matrix.
struct Case {
    method: Method,
    path: String,
    content_type: &'static str,
    body: String,
    /// What an administrator (system/*.cruds) gets.
    admin: u16,
    /// Whether a `patient/` token for the patient concerned is enough.
    confined: bool,
}

fn case(method: Method, path: &str, body: Value, admin: u16, confined: bool) -> Case {
    Case {
        method,
        path: path.to_owned(),
        content_type: "application/fhir+json",
        body: if body.is_null() {
            String::new()
        } else {
            body.to_string()
        },
        admin,
        confined,
    }
}

fn observation(id: Option<&str>, patient: &str) -> Value {
    let mut o = json!({"resourceType": "Observation", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]},
        "subject": {"reference": format!("Patient/{patient}")}, "valueQuantity": {"value": 12.0}});
    if let Some(id) = id {
        o["id"] = json!(id);
    }
    o
}

const HL7_MESSAGE: &str = "MSH|^~\\&|LAB|HOSP|PROG|HOSP|20240301120000||ORU^R01|MSG-AUTH-1|P|2.5.1\rPID|1||M-AUTH-1^^^HOSP^MR||Doe^Jane||19600101|F\rOBR|1||LAB-1|718-7^Hemoglobin^LN|||20240301110000\rOBX|1|NM|718-7^Hemoglobin^LN||12.5|g/dL|||||F|||20240301110000\r";

fn cases() -> Vec<Case> {
    let parameters = json!({"resourceType": "Parameters", "parameter": [
        {"name": "patient", "valueReference": {"reference": "Patient/p1"}}]});
    let batch = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "GET", "url": "Observation/o1"}}]});
    let mut all = vec![
        case(
            Method::GET,
            "/fhir/Observation?patient=p1",
            Value::Null,
            200,
            true,
        ),
        case(
            Method::POST,
            "/fhir/Observation",
            observation(None, "p1"),
            201,
            true,
        ),
        case(Method::GET, "/fhir/Observation/o1", Value::Null, 200, true),
        case(
            Method::PUT,
            "/fhir/Observation/o1",
            observation(Some("o1"), "p1"),
            200,
            true,
        ),
        case(
            Method::GET,
            "/fhir/Observation/o1/_history",
            Value::Null,
            200,
            true,
        ),
        case(
            Method::GET,
            "/fhir/Observation/o1/_history/1",
            Value::Null,
            200,
            true,
        ),
        case(Method::POST, "/fhir", batch, 200, false),
        case(
            Method::POST,
            "/fhir/Patient/p1/$risk-assessment",
            json!({"resourceType": "Parameters"}),
            422,
            true,
        ),
        case(
            Method::POST,
            "/fhir/Patient/$risk-assessment",
            parameters,
            422,
            true,
        ),
        // Reaches the handler with a grant (p1's report); a token without a user must name
        // the clinician.
        case(
            Method::POST,
            "/fhir/DiagnosticReport/dr1/$sign-off",
            json!({"resourceType": "Parameters", "parameter": [{"name": "decision", "valueCode": "sign"}]}),
            400,
            true,
        ),
        case(Method::GET, "/models", Value::Null, 200, false),
        case(Method::GET, "/metrics", Value::Null, 200, false),
        case(
            Method::GET,
            "/monitoring/performance",
            Value::Null,
            200,
            false,
        ),
        case(Method::GET, "/monitoring/actions", Value::Null, 200, false),
        case(Method::GET, "/monitoring/inputs", Value::Null, 200, false),
        case(Method::GET, "/monitoring/drift", Value::Null, 200, false),
        case(Method::GET, "/monitoring", Value::Null, 200, false),
        case(
            Method::POST,
            "/monitoring/$evaluate",
            Value::Null,
            200,
            false,
        ),
        case(
            Method::GET,
            "/models/shadow-predictions/no-report",
            Value::Null,
            200,
            false,
        ),
        case(
            Method::POST,
            "/models/no-such-model@1/$deploy",
            json!({"status": "active"}),
            404,
            false,
        ),
        // p1's report, for which no explanation was kept.
        case(
            Method::GET,
            "/app/api/explanations/dr1",
            Value::Null,
            404,
            true,
        ),
        case(
            Method::GET,
            "/fhir/$risk-assessment-status/no-such-job",
            Value::Null,
            404,
            false,
        ),
        case(Method::GET, "/dicomweb/studies", Value::Null, 200, false),
        case(
            Method::GET,
            "/embeddings/studies/1.2.3",
            Value::Null,
            503,
            false,
        ),
        case(
            Method::GET,
            "/fhir/AuditEvent?patient=p1",
            Value::Null,
            200,
            true,
        ),
        // Last: what it changes is not read by the cases before.
        case(
            Method::DELETE,
            "/fhir/Observation/od1",
            Value::Null,
            204,
            true,
        ),
    ];
    for path in ["/dicomweb/studies", "/dicomweb/studies/1.2.3"] {
        all.push(Case {
            content_type: "multipart/related; type=\"application/dicom\"; boundary=b",
            body: "--b--\r\n".into(),
            ..case(Method::POST, path, Value::Null, 400, false)
        });
    }
    all.push(Case {
        content_type: "application/dicom",
        body: "not dicom".into(),
        ..case(Method::POST, "/embeddings/image", Value::Null, 503, false)
    });
    // CDS Hooks services take CDS client JWTs only (tests/api/cds.rs): no access token will do.
    all.push(case(
        Method::POST,
        "/cds-services/prognostics-risk",
        json!({"hook": "patient-view", "hookInstance": "h1", "context": {"patientId": "p1"}}),
        401,
        false,
    ));
    all.push(case(
        Method::POST,
        "/cds-services/prognostics-risk/feedback",
        json!({"feedback": []}),
        401,
        false,
    ));
    all.push(Case {
        content_type: "x-application/hl7-v2+er7",
        body: HL7_MESSAGE.into(),
        ..case(Method::POST, "/hl7/v2", Value::Null, 200, false)
    });
    all
}

async fn send(app: &TestApp, case: &Case, token: Option<&str>) -> (StatusCode, HeaderMap, String) {
    let mut request = reqwest::Client::new()
        .request(case.method.clone(), format!("{}{}", app.address, case.path))
        .header("content-type", case.content_type)
        .body(case.body.clone());
    if let Some(token) = token {
        request = request.header(AUTHORIZATION, format!("Bearer {token}"));
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

#[tokio::test]
async fn every_route_answers_every_kind_of_token_as_it_should() {
    let issuer = TestIssuer::with_rsa_key().await;
    let app = spawn_smart_app(&issuer, |s| s.auth.rate_burst = 0).await;
    for (id, patient) in [("o1", "p1"), ("o2", "p2"), ("od1", "p1")] {
        for p in ["p1", "p2"] {
            app.client
                .put(format!("{}/Patient/{p}", app.base))
                .json(&json!({"resourceType": "Patient", "id": p, "gender": "female"}))
                .send()
                .await
                .unwrap();
        }
        let response = app
            .client
            .put(format!("{}/Observation/{id}", app.base))
            .json(&observation(Some(id), patient))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "seed {id}");
    }

    let response = app
        .client
        .put(format!("{}/DiagnosticReport/dr1", app.base))
        .json(
            &json!({"resourceType": "DiagnosticReport", "id": "dr1", "status": "final",
            "code": {"text": "CBC"}, "subject": {"reference": "Patient/p1"}}),
        )
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "seed dr1");

    let good = |client: &str, scope: &str, patient: Option<&str>| {
        issuer.token(&issuer.claims(AUDIENCE, client, scope, patient))
    };
    let with = |change: &dyn Fn(&mut Value)| {
        let mut claims = issuer.claims(AUDIENCE, "bad", "system/*.cruds", None);
        change(&mut claims);
        issuer.token(&claims)
    };
    let expired = with(&|c| c["exp"] = json!(now() - 600));
    let other_audience = with(&|c| c["aud"] = json!("https://elsewhere.test/fhir"));
    // Signed with a key the issuer never published, under its key's id.
    let forged = sign(
        &issuer.claims(AUDIENCE, "bad", "system/*.cruds", None),
        &ec_key(),
        Algorithm::ES256,
        "key-1",
    );
    let admin = good("admin-client", "system/*.cruds", None);
    let wrong_scope = good("device-reader", "system/Device.rs", None);
    let other_patient = good("app-p2", "patient/*.cruds", Some("p2"));
    let own_patient = good("app-p1", "patient/*.cruds", Some("p1"));

    let mut failures = Vec::new();
    let mut seen = BTreeMap::new();
    for case in cases() {
        let label = format!("{} {}", case.method, case.path);
        let confined_answer = if case.confined { case.admin } else { 403 };
        // 401 for every access token: a route for CDS clients' own tokens.
        let refused = if case.admin == 401 { 401 } else { 403 };
        let expectations: [(&str, Option<&str>, u16); 8] = [
            ("no token", None, 401),
            ("expired", Some(&expired), 401),
            ("other audience", Some(&other_audience), 401),
            ("forged", Some(&forged), 401),
            ("wrong scope", Some(&wrong_scope), refused),
            ("other patient", Some(&other_patient), refused),
            (
                "own patient",
                Some(&own_patient),
                if refused == 401 { 401 } else { confined_answer },
            ),
            ("administrator", Some(&admin), case.admin),
        ];
        for (who, token, expected) in expectations {
            // What changes state is done once, by the last token that may.
            if case.method == Method::DELETE && who == "own patient" {
                continue;
            }
            let (status, headers, body) = send(&app, &case, token).await;
            seen.insert(format!("{label} × {who}"), status.as_u16());
            if status.as_u16() != expected {
                failures.push(format!(
                    "{label} × {who}: {status} (expected {expected}) {body}"
                ));
                continue;
            }
            if expected == 401 {
                let challenge = headers["www-authenticate"].to_str().unwrap();
                let error_named = challenge.contains("error=\"invalid_token\"");
                assert_eq!(error_named, token.is_some(), "{label} × {who}: {challenge}");
            }
            if expected == 401 || expected == 403 {
                let outcome: Value = serde_json::from_str(&body).unwrap();
                assert_eq!(
                    outcome["resourceType"], "OperationOutcome",
                    "{label} × {who}"
                );
                assert_eq!(
                    headers["content-type"].to_str().unwrap(),
                    "application/fhir+json; charset=utf-8"
                );
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );

    // The matrix covers every rule that needs a token.
    let covered: std::collections::BTreeSet<(String, String)> = cases()
        .iter()
        .map(|c| {
            let path = c.path.split('?').next().unwrap().to_owned();
            (c.method.to_string(), path)
        })
        .collect();
    for rule in prognostics::api::policy::RULES {
        // Served without a token (the SMART app's launch: tests/api/smart_app.rs).
        if matches!(
            rule.needs,
            prognostics::api::policy::Needs::Public | prognostics::api::policy::Needs::Anyone
        ) {
            continue;
        }
        assert!(
            covered
                .iter()
                .any(|(m, p)| m == rule.method && matches_pattern(rule.path, p)),
            "{} {} is not in the matrix",
            rule.method,
            rule.path
        );
    }

    // Every decision is in the audit trail: who, which patient, the outcome.
    let reads = app.audit_events("agent=app-p1&patient=p1").await;
    assert!(
        reads
            .iter()
            .any(|e| e["outcome"] == "0" && e["action"] == "R"),
        "{reads:?}"
    );
    let refused = app.audit_events("agent=app-p2&outcome=4").await;
    assert!(!refused.is_empty());
    assert!(
        refused
            .iter()
            .all(|e| e["outcomeDesc"].as_str().unwrap().starts_with("403")),
        "{refused:?}"
    );
    let expired_refusals = app.audit_events("agent=bad&outcome=4").await;
    assert!(
        expired_refusals.is_empty(),
        "an unverified token names no one"
    );
    let anonymous = app.audit_events("agent=127.0.0.1&outcome=4").await;
    assert!(
        anonymous.iter().any(|e| e["outcomeDesc"]
            .as_str()
            .unwrap()
            .contains("bearer access token")),
        "{anonymous:?}"
    );
}

/// Whether `path` is one `pattern` (`/fhir/{resource_type}/{id}`) matches.
fn matches_pattern(pattern: &str, path: &str) -> bool {
    let (pattern, path): (Vec<&str>, Vec<&str>) =
        (pattern.split('/').collect(), path.split('/').collect());
    pattern.len() == path.len()
        && pattern
            .iter()
            .zip(&path)
            .all(|(p, s)| p == s || (p.starts_with('{') && !s.is_empty()))
}

#[tokio::test]
async fn a_patient_token_sees_and_changes_its_own_patient_only() {
    let issuer = TestIssuer::with_rsa_key().await;
    let app = spawn_smart_app(&issuer, |_| {}).await;
    for p in ["p1", "p2"] {
        app.client
            .put(format!("{}/Patient/{p}", app.base))
            .json(&json!({"resourceType": "Patient", "id": p}))
            .send()
            .await
            .unwrap();
        for n in 0..2 {
            let id = format!("{p}-o{n}");
            app.client
                .put(format!("{}/Observation/{id}", app.base))
                .json(&observation(Some(&id), p))
                .send()
                .await
                .unwrap();
        }
    }
    let token = issuer.token(&issuer.claims(
        AUDIENCE,
        "app",
        "patient/*.rs patient/Observation.cu",
        Some("p1"),
    ));
    let client = client_with(&token);
    let get = |path: String| client.get(format!("{}/{path}", app.base)).send();

    // A search without a patient is filtered to the token's.
    let found: Value = get("Observation".into())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = found["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(ids.iter().all(|id| id.starts_with("p1-")), "{ids:?}");
    let patients: Value = get("Patient".into()).await.unwrap().json().await.unwrap();
    assert_eq!(patients["entry"].as_array().unwrap().len(), 1);

    // Another patient, by search, read or write, is 403.
    for path in [
        "Observation?patient=p2",
        "Observation?subject=Patient/p2",
        "Observation?patient=p1,p2",
        "Observation/p2-o0",
        "Patient/p2",
        "Observation?subject=Group/g1",
    ] {
        let response = get(path.into()).await.unwrap();
        assert_eq!(response.status(), 403, "{path}");
    }
    assert_eq!(get("Observation/p1-o0".into()).await.unwrap().status(), 200);
    // A type outside any patient's compartment is not covered by patient/*.
    assert_eq!(get("Organization".into()).await.unwrap().status(), 403);

    let write = |method: Method, path: &str, body: Value| {
        client
            .request(method, format!("{}/{path}", app.base))
            .header("content-type", "application/fhir+json")
            .body(body.to_string())
            .send()
    };
    let created = write(Method::POST, "Observation", observation(None, "p1"))
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let elsewhere = write(Method::POST, "Observation", observation(None, "p2"))
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), 403);
    // Moving one's own resource to another patient, or taking over another's, is refused.
    let moved = write(
        Method::PUT,
        "Observation/p1-o0",
        observation(Some("p1-o0"), "p2"),
    )
    .await
    .unwrap();
    assert_eq!(moved.status(), 403);
    let taken = write(
        Method::PUT,
        "Observation/p2-o0",
        observation(Some("p2-o0"), "p1"),
    )
    .await
    .unwrap();
    assert_eq!(taken.status(), 403);
    let still: Value = app
        .client
        .get(format!("{}/Observation/p2-o0", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        still["subject"]["reference"], "Patient/p2",
        "nothing changed"
    );
    // Read-only on patients: no write scope, no write.
    let renamed = write(
        Method::PUT,
        "Patient/p1",
        json!({"resourceType": "Patient", "id": "p1"}),
    )
    .await
    .unwrap();
    assert_eq!(renamed.status(), 403);
    // The assessment of another patient is refused before anything is read.
    let assess = write(
        Method::POST,
        "Patient/p2/$risk-assessment",
        json!({"resourceType": "Parameters"}),
    )
    .await
    .unwrap();
    assert_eq!(assess.status(), 403);
}

#[tokio::test]
async fn opaque_tokens_are_introspected_and_bad_headers_refused() {
    let issuer = TestIssuer::with_rsa_key().await;
    let introspect = format!("{}/introspect", issuer.base);
    let app = spawn_smart_app(&issuer, |s| {
        s.auth.issuers[0].introspection_endpoint = Some(introspect);
        s.auth.issuers[0].introspection_client_id = Some("prognostics".into());
    })
    .await;
    issuer.opaque.lock().await.insert(
        "opaque-good".into(),
        json!({"active": true, "scope": "system/Patient.rs", "client_id": "legacy",
            "sub": "legacy", "exp": now() + 300, "aud": AUDIENCE}),
    );
    issuer.opaque.lock().await.insert(
        "opaque-elsewhere".into(),
        json!({"active": true, "scope": "system/Patient.rs", "client_id": "legacy",
            "exp": now() + 300, "aud": "https://elsewhere.test/fhir"}),
    );
    let status = |token: String| {
        let url = format!("{}/Patient", app.base);
        async move {
            reqwest::Client::new()
                .get(url)
                .header(AUTHORIZATION, token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(status("Bearer opaque-good".into()).await, 200);
    assert_eq!(status("Bearer opaque-elsewhere".into()).await, 401);
    assert_eq!(status("Bearer opaque-unknown".into()).await, 401);
    assert_eq!(status("Basic dXNlcjpwYXNz".into()).await, 401);
    assert_eq!(status("Bearer".into()).await, 401);
    assert_eq!(status("Bearer a b".into()).await, 401);
    assert_eq!(status(format!("Bearer {}", "a".repeat(9_000))).await, 401);
    // alg none and an HMAC signature made with the public key are refused.
    let claims = issuer.claims(AUDIENCE, "x", "system/*.cruds", None);
    use base64::Engine;
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "kid": "key-1"})),
        b64(&claims)
    );
    assert_eq!(status(format!("Bearer {none}")).await, 401);
    let public_pem = include_str!("../../src/auth/testdata/rsa-test-key.pub.pem");
    let hs = sign(
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(public_pem.as_bytes()),
        Algorithm::HS256,
        "key-1",
    );
    assert_eq!(status(format!("Bearer {hs}")).await, 401);
    // Not yet valid, and a token of an issuer not trusted.
    let mut early = issuer.claims(AUDIENCE, "x", "system/*.cruds", None);
    early["nbf"] = json!(now() + 600);
    assert_eq!(
        status(format!("Bearer {}", issuer.token(&early))).await,
        401
    );
    let mut stranger = issuer.claims(AUDIENCE, "x", "system/*.cruds", None);
    stranger["iss"] = json!("https://evil.test");
    assert_eq!(
        status(format!("Bearer {}", issuer.token(&stranger))).await,
        401
    );
}

#[tokio::test]
async fn an_issuer_that_is_slow_fails_the_request_in_time_not_with_a_500() {
    let issuer = TestIssuer::with_rsa_key().await;
    let app = spawn_smart_app(&issuer, |s| s.auth.fetch_timeout_ms = 500).await;
    *issuer.delay.lock().await = std::time::Duration::from_secs(10);
    let started = std::time::Instant::now();
    let response = app
        .client
        .get(format!("{}/Patient", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_client_over_its_rate_is_told_when_to_come_back() {
    let issuer = TestIssuer::with_rsa_key().await;
    let app = spawn_smart_app(&issuer, |s| {
        s.auth.rate_burst = 3;
        s.auth.rate_per_second = 0.5;
    })
    .await;
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..5 {
        let response = app
            .client
            .get(format!("{}/Patient", app.base))
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
        if response.status() == 429 {
            retry_after = response.headers().get("retry-after").cloned();
        }
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    assert_eq!(retry_after.unwrap(), "2");
    // Another client has its own allowance.
    let other = client_with(&issuer.token(&issuer.claims(AUDIENCE, "other", "system/*.rs", None)));
    assert_eq!(
        other
            .get(format!("{}/Patient", app.base))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn the_smart_configuration_and_capability_statement_say_how_to_get_a_token() {
    let issuer = TestIssuer::with_rsa_key().await;
    let app = spawn_smart_app(&issuer, |_| {}).await;
    let anonymous = reqwest::Client::new();
    let config: Value = anonymous
        .get(format!("{}/.well-known/smart-configuration", app.address))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(config["token_endpoint"], format!("{}/token", issuer.base));
    assert!(
        config["capabilities"]
            .as_array()
            .unwrap()
            .contains(&json!("permission-v2"))
    );
    let metadata: Value = anonymous
        .get(format!("{}/metadata", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let security = &metadata["rest"][0]["security"];
    assert_eq!(security["service"][0]["coding"][0]["code"], "SMART-on-FHIR");
    let uris = &security["extension"][0]["extension"];
    assert!(
        uris.as_array()
            .unwrap()
            .contains(&json!({"url": "token", "valueUri": format!("{}/token", issuer.base)}))
    );
    // The served OpenAPI document offers the token endpoint to the /docs page.
    let openapi: Value = anonymous
        .get(format!("{}/openapi.json", app.address))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let flow = &openapi["components"]["securitySchemes"]["smart"]["flows"]["clientCredentials"];
    assert_eq!(flow["tokenUrl"], format!("{}/token", issuer.base));
    assert!(openapi["paths"]["/fhir/{resource_type}"]["get"]["security"][0]["smart"].is_array());
}
