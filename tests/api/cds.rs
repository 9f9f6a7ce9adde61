//! CDS Hooks 2.0: a test client acting as the EHR calls the discovery endpoint and the services
//! with and without prefetch, with `fhirServer` pointing at the real FHIR test server, and with
//! signed client JWTs in SMART mode; every answer is checked against the CDS Hooks rules
//! (required fields, no nulls or empty arrays, summary length, indicator values). Feedback is
//! filed, searchable and audited; bad calls get clear errors and never a 500.

use jsonwebtoken::Algorithm;
use reqwest::StatusCode;
use serde_json::{Map, Value, json};

use crate::authorization::{AUDIENCE, client_with, spawn_smart_app};
use crate::helpers::{TestApp, assert_outcome, spawn_app};
use crate::issuer::{TestIssuer, jwk, now, sign};
use crate::risk_assessment::{coded, patient_with_record};

const PATIENT_VIEW: &str = "prognostics-risk";
const ORDER_SELECT: &str = "prognostics-order-value";
const EC384: &str = include_str!("../../src/auth/testdata/ec-p384-test-key.pem");

fn ec384() -> jsonwebtoken::EncodingKey {
    jsonwebtoken::EncodingKey::from_ec_pem(EC384.as_bytes()).unwrap()
}

fn hook(patient: &str) -> Value {
    json!({"hook": "patient-view", "hookInstance": uuid::Uuid::new_v4().to_string(),
        "context": {"userId": "Practitioner/dr-1", "patientId": patient}})
}

async fn call(app: &TestApp, service: &str, body: &Value) -> reqwest::Response {
    app.client
        .post(format!("{}/cds-services/{service}", app.address))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

/// The cards of a successful call, each checked against the CDS Hooks 2.0 rules.
async fn cards_of(response: reqwest::Response) -> Vec<Value> {
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    no_nulls_or_empty_arrays(&body["cards"], "cards", true);
    let cards = body["cards"].as_array().expect("cards").clone();
    for card in &cards {
        let summary = card["summary"].as_str().expect("summary");
        assert!(summary.chars().count() < 140, "{summary}");
        assert!(
            ["info", "warning", "critical"].contains(&card["indicator"].as_str().unwrap()),
            "{card}"
        );
        assert!(card["source"]["label"].is_string(), "{card}");
        if let Some(uuid) = card.get("uuid") {
            assert!(
                uuid::Uuid::parse_str(uuid.as_str().unwrap()).is_ok(),
                "{card}"
            );
        }
        if card.get("suggestions").is_some() {
            assert!(card["selectionBehavior"].is_string(), "{card}");
            for s in card["suggestions"].as_array().unwrap() {
                assert!(s["label"].is_string() && s["uuid"].is_string(), "{s}");
            }
        }
        for reason in card["overrideReasons"].as_array().into_iter().flatten() {
            assert!(reason["code"].is_string() && reason["display"].is_string());
        }
        // A card with an assessment links the SMART app, opened on that assessment.
        if card.get("uuid").is_some() {
            let link = &card["links"][0];
            assert_eq!(link["type"], "smart", "{card}");
            assert!(
                link["url"].as_str().unwrap().ends_with("/app/launch"),
                "{card}"
            );
            let context: Value =
                serde_json::from_str(link["appContext"].as_str().unwrap()).unwrap();
            assert!(
                context["report"].as_str().unwrap().starts_with("risk-"),
                "{card}"
            );
        }
    }
    cards
}

fn no_nulls_or_empty_arrays(v: &Value, path: &str, top: bool) {
    match v {
        Value::Null => panic!("null at {path}"),
        Value::Array(items) => {
            assert!(top || !items.is_empty(), "empty array at {path}");
            for (i, item) in items.iter().enumerate() {
                no_nulls_or_empty_arrays(item, &format!("{path}[{i}]"), false);
            }
        }
        Value::Object(map) => {
            for (k, item) in map {
                no_nulls_or_empty_arrays(item, &format!("{path}.{k}"), false);
            }
        }
        _ => {}
    }
}

/// The audit events of `subtype` among those `query` finds, once at least `least` are there
/// (or after five seconds).
pub(crate) async fn audited(app: &TestApp, query: &str, subtype: &str, least: usize) -> Vec<Value> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let found: Vec<Value> = app
            .audit_events(&format!("{query}&_count=500"))
            .await
            .into_iter()
            .filter(|e| e["subtype"][0]["code"] == subtype)
            .collect();
        if found.len() >= least || std::time::Instant::now() > deadline {
            return found;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

async fn report_count(app: &TestApp, patient: &str) -> u64 {
    app.search(&format!(
        "DiagnosticReport?subject=Patient/{patient}&_summary=count"
    ))
    .await["total"]
        .as_u64()
        .unwrap()
}

#[tokio::test]
async fn discovery_lists_both_services_with_prefetch_from_the_model() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(format!("{}/cds-services", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let services = body["services"].as_array().unwrap();
    let hooks: Vec<(&str, &str)> = services
        .iter()
        .map(|s| (s["id"].as_str().unwrap(), s["hook"].as_str().unwrap()))
        .collect();
    assert_eq!(
        hooks,
        [
            (PATIENT_VIEW, "patient-view"),
            (ORDER_SELECT, "order-select")
        ]
    );
    let prefetch = &services[0]["prefetch"];
    assert_eq!(prefetch["patient"], "Patient/{{context.patientId}}");
    assert_eq!(
        prefetch["conditions"],
        "Condition?patient={{context.patientId}}"
    );
    assert!(prefetch["observations"].is_string());
    for service in services {
        assert!(service["title"].is_string() && service["description"].is_string());
    }
    // The model card the cards link to.
    let card = app
        .client
        .get(format!("{}/model-card", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(card.status(), 200);
    assert!(card.text().await.unwrap().contains("## Intended use"));
}

#[tokio::test]
async fn a_patient_view_card_explains_the_risk_and_drafts_orders_for_what_is_missing() {
    let app = spawn_app().await;
    let patient = patient_with_record(&app, false).await;
    let cards = cards_of(call(&app, PATIENT_VIEW, &hook(&patient)).await).await;
    assert_eq!(cards.len(), 1, "{cards:?}");
    let card = &cards[0];
    let summary = card["summary"].as_str().unwrap();
    assert!(
        summary.starts_with("Recurrence or death: ") && summary.contains(" by 5 years ("),
        "{summary}"
    );
    let detail = card["detail"].as_str().unwrap();
    for expected in [
        "| By | Probability | Band |",
        "**What moved the risk most**",
        "**Missing, and why**",
        "progrec",
        "*AI-generated and preliminary*",
        "/model-card)",
    ] {
        assert!(detail.contains(expected), "{expected} in {detail}");
    }
    assert!(
        card["source"]["url"]
            .as_str()
            .unwrap()
            .ends_with("/model-card")
    );
    // Each test the model lacks a result of is offered as a draft order.
    let orders: Vec<&Value> = card["suggestions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["actions"][0]["resource"])
        .collect();
    let codes: Vec<&str> = orders
        .iter()
        .map(|o| o["code"]["coding"][0]["code"].as_str().unwrap())
        .collect();
    for code in ["21889-1", "21893-3", "31207-4", "14130-9"] {
        assert!(codes.contains(&code), "{code} in {codes:?}");
    }
    for order in &orders {
        assert_eq!(order["resourceType"], "ServiceRequest");
        assert_eq!(order["status"], "draft");
        assert_eq!(order["subject"]["reference"], format!("Patient/{patient}"));
    }
    // Opening the chart again shows the same card and files nothing new.
    assert_eq!(report_count(&app, &patient).await, 1);
    let again = cards_of(call(&app, PATIENT_VIEW, &hook(&patient)).await).await;
    assert_eq!(again[0]["uuid"], card["uuid"]);
    assert_eq!(report_count(&app, &patient).await, 1);
    // The same assessment $risk-assessment files.
    let bundle: Value = app
        .post(
            &format!("Patient/{patient}/$risk-assessment"),
            &json!({"resourceType": "Parameters"}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(report_count(&app, &patient).await, 1, "{bundle}");
}

#[tokio::test]
async fn a_patient_the_model_is_not_for_gets_no_card() {
    let app = spawn_app().await;
    let man = app
        .create(&json!({"resourceType": "Patient", "gender": "male", "birthDate": "1950-01-01"}))
        .await;
    let cards = cards_of(call(&app, PATIENT_VIEW, &hook(man["id"].as_str().unwrap())).await).await;
    assert!(cards.is_empty(), "{cards:?}");
}

/// A patient the model is made for but cannot answer for (diagnosed twelve years ago: every
/// horizon lies past the model's follow-up) gets a card saying why, with no number.
#[tokio::test]
async fn a_patient_the_model_cannot_answer_for_gets_a_card_without_a_number() {
    let app = spawn_app().await;
    let patient = crate::risk_assessment::patient_diagnosed(&app, "2014-06-01", true).await;
    let cards = cards_of(call(&app, PATIENT_VIEW, &hook(&patient)).await).await;
    assert_eq!(cards.len(), 1, "{cards:?}");
    assert_eq!(cards[0]["indicator"], "info");
    assert!(
        cards[0]["summary"]
            .as_str()
            .unwrap()
            .starts_with("No risk estimate")
    );
    let detail = cards[0]["detail"].as_str().unwrap();
    assert!(!detail.contains('%'), "{detail}");
    assert!(
        detail.contains("follow-up") || detail.contains("predict"),
        "{detail}"
    );
    assert_eq!(report_count(&app, &patient).await, 0);
}

#[tokio::test]
async fn an_order_select_card_says_what_the_order_adds() {
    let app = spawn_app().await;
    let patient = patient_with_record(&app, false).await;
    let order = |id: &str, code: Value| {
        json!({"resourceType": "ServiceRequest", "id": id, "status": "draft", "intent": "order",
            "code": code, "subject": {"reference": format!("Patient/{patient}")}})
    };
    let body = |orders: Vec<Value>, selected: &[&str]| {
        json!({"hook": "order-select", "hookInstance": uuid::Uuid::new_v4().to_string(),
            "context": {"userId": "Practitioner/dr-1", "patientId": patient,
                "selections": selected.iter().map(|s| format!("ServiceRequest/{s}")).collect::<Vec<_>>(),
                "draftOrders": {"resourceType": "Bundle", "type": "collection",
                    "entry": orders.into_iter().map(|r| json!({"resource": r})).collect::<Vec<_>>()}}})
    };
    let receptor = order(
        "pr",
        json!({"coding": [{"system": "http://loinc.org", "code": "40557-1"}],
            "text": "Progesterone receptor IHC"}),
    );
    let creatinine = order("cr", coded("http://loinc.org", "2160-0"));
    let cards = cards_of(
        call(
            &app,
            ORDER_SELECT,
            &body(vec![receptor.clone(), creatinine.clone()], &["pr"]),
        )
        .await,
    )
    .await;
    assert_eq!(cards.len(), 1);
    let summary = cards[0]["summary"].as_str().unwrap();
    assert!(
        summary.starts_with("Progesterone receptor IHC would fill progrec"),
        "{summary}"
    );
    assert!(
        cards[0]["detail"]
            .as_str()
            .unwrap()
            .contains("The model lacks inputs this order fills")
    );
    // An order that gives the model nothing: no card.
    let none = cards_of(
        call(
            &app,
            ORDER_SELECT,
            &body(vec![receptor, creatinine], &["cr"]),
        )
        .await,
    )
    .await;
    assert!(none.is_empty(), "{none:?}");
}

/// The prefetch the discovery document asks for, as an EHR would fill it from `server`.
async fn prefetch_from(app: &TestApp, server: &str, patient: &str) -> Map<String, Value> {
    let discovery: Value = app
        .client
        .get(format!("{}/cds-services", app.address))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut prefetch = Map::new();
    let http = reqwest::Client::new();
    for (key, template) in discovery["services"][0]["prefetch"].as_object().unwrap() {
        let query = template
            .as_str()
            .unwrap()
            .replace("{{context.patientId}}", patient);
        let value: Value = http
            .get(format!("{server}/{query}"))
            .header("accept", "application/fhir+json")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        prefetch.insert(key.clone(), value);
    }
    prefetch
}

/// An EHR patient (the mCODE example on the real FHIR test server), assessed from the
/// prefetch, then from `fhirServer`: the same record, so the same card and one report.
#[tokio::test]
async fn an_ehr_patient_is_assessed_from_the_prefetch_or_from_the_fhir_server() {
    let Some(server) = tokio::task::spawn_blocking(|| {
        crate::ehr::start_fhir_server(&crate::ehr::diagnosed_a_year_ago())
    })
    .await
    .unwrap() else {
        return;
    };
    let app = spawn_app().await;
    let patient = "cancer-patient-jenny-m";
    let prefetch = prefetch_from(&app, &server.base_url, patient).await;
    assert_eq!(prefetch["patient"]["id"], patient);
    let mut with_prefetch = hook(patient);
    with_prefetch["fhirServer"] = json!(server.base_url);
    with_prefetch["prefetch"] = Value::Object(prefetch);
    let from_prefetch = cards_of(call(&app, PATIENT_VIEW, &with_prefetch).await).await;
    assert_eq!(from_prefetch.len(), 1, "{from_prefetch:?}");

    let mut from_server = hook(patient);
    from_server["fhirServer"] = json!(server.base_url);
    from_server["fhirAuthorization"] = json!({"access_token": "not-checked-by-this-server",
        "token_type": "Bearer", "expires_in": 300, "scope": "patient/*.rs", "subject": "prognostics"});
    let pulled = cards_of(call(&app, PATIENT_VIEW, &from_server).await).await;
    assert_eq!(pulled[0]["summary"], from_prefetch[0]["summary"]);
    assert_eq!(pulled[0]["uuid"], from_prefetch[0]["uuid"]);
    assert_eq!(report_count(&app, patient).await, 1);
    // The pull is in the audit trail.
    assert!(
        !audited(&app, "patient=Patient/cancer-patient-jenny-m", "pull", 1)
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn bad_hook_calls_get_clear_errors_and_are_audited() {
    let app = spawn_app().await;
    let patient = patient_with_record(&app, false).await;
    let with = |change: &dyn Fn(&mut Value)| {
        let mut body = hook(&patient);
        change(&mut body);
        body
    };
    let cases: Vec<(&str, &str, Value, u16)> = vec![
        (
            "no hookInstance",
            PATIENT_VIEW,
            with(&|b| {
                b.as_object_mut().unwrap().remove("hookInstance");
            }),
            400,
        ),
        (
            "unknown hook",
            PATIENT_VIEW,
            with(&|b| b["hook"] = json!("order-sign")),
            400,
        ),
        ("unknown service", "no-such-service", hook(&patient), 404),
        (
            "no patientId",
            PATIENT_VIEW,
            with(&|b| {
                b["context"].as_object_mut().unwrap().remove("patientId");
            }),
            400,
        ),
        (
            "prefetch of the wrong type",
            PATIENT_VIEW,
            with(&|b| {
                b["prefetch"] = json!({"patient": {"resourceType": "Observation", "id": "x"}});
            }),
            400,
        ),
        (
            "prefetch for another patient",
            PATIENT_VIEW,
            with(&|b| {
                b["prefetch"] =
                    json!({"patient": {"resourceType": "Patient", "id": "someone-else"}});
            }),
            400,
        ),
        (
            "incomplete prefetch, no fhirServer",
            PATIENT_VIEW,
            with(&|b| {
                b["prefetch"] = json!({"patient": {"resourceType": "Patient", "id": patient},
                "observations": {"resourceType": "OperationOutcome", "issue": []}});
            }),
            412,
        ),
        (
            "fhirServer unreachable",
            PATIENT_VIEW,
            with(&|b| {
                b["fhirServer"] = json!("http://127.0.0.1:9/fhir");
            }),
            412,
        ),
        (
            "unknown patient, no fhirServer",
            PATIENT_VIEW,
            hook("nobody-here"),
            412,
        ),
        ("not JSON", PATIENT_VIEW, json!("{"), 400),
    ];
    for (what, service, body, status) in cases {
        let response = call(&app, service, &body).await;
        let outcome = assert_outcome(response, status).await;
        assert!(
            outcome["issue"][0]["diagnostics"].as_str().unwrap().len() > 10,
            "{what}: {outcome}"
        );
    }
    let refused = audited(&app, "agent=127.0.0.1&outcome=4", "cds-service", 9).await;
    assert!(refused.len() >= 9, "{}", refused.len());
}

/// fhirServer answering 401 (the real FHIR test server, which wants live tokens when it is
/// also an authorization server) is a 412, saying why.
#[tokio::test]
async fn a_fhir_server_refusing_the_token_is_a_precondition_failure() {
    let Some(server) = tokio::task::spawn_blocking(|| {
        let key = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("src/auth/testdata/rsa-test-key.pub.pem");
        crate::ehr::start_fhir_server(&[
            "--smart-client".into(),
            format!("someone={}", key.display()),
        ])
    })
    .await
    .unwrap() else {
        return;
    };
    let app = spawn_app().await;
    let mut body = hook("cancer-patient-jenny-m");
    body["fhirServer"] = json!(server.base_url);
    body["fhirAuthorization"] = json!({"access_token": "forged", "token_type": "Bearer",
        "expires_in": 300, "scope": "patient/*.rs", "subject": "prognostics"});
    let outcome = assert_outcome(call(&app, PATIENT_VIEW, &body).await, 412).await;
    assert!(
        outcome["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("401"),
        "{outcome}"
    );
}

#[tokio::test]
async fn feedback_is_filed_once_searchable_and_audited() {
    let app = spawn_app().await;
    let patient = patient_with_record(&app, false).await;
    let card = cards_of(call(&app, PATIENT_VIEW, &hook(&patient)).await).await[0].clone();
    let feedback = json!({"feedback": [{"card": card["uuid"], "outcome": "overridden",
        "outcomeTimestamp": "2026-12-06T10:15:00Z",
        "overrideReason": {"reason": card["overrideReasons"][2], "userComment": "seen in clinic today"}}]});
    let post = |service: &str, body: &Value| {
        app.client
            .post(format!("{}/cds-services/{service}/feedback", app.address))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
    };
    for _ in 0..2 {
        assert_eq!(post(PATIENT_VIEW, &feedback).await.unwrap().status(), 200);
    }
    let found = app
        .search(&format!(
            "Basic?code=cds-feedback&subject=Patient/{patient}"
        ))
        .await;
    assert_eq!(found["total"], 1, "{found}");
    let filed = &found["entry"][0]["resource"];
    assert_eq!(filed["author"]["reference"], "Practitioner/dr-1");
    assert_eq!(filed["identifier"][0]["value"], card["uuid"]);
    let extensions = filed["extension"].to_string();
    for expected in [
        "\"valueCode\":\"overridden\"",
        "override-clinical-judgement",
        "seen in clinic today",
        "DiagnosticReport/risk-",
    ] {
        assert!(extensions.contains(expected), "{expected} in {extensions}");
    }
    // Counted for governance, per model version, with the reason given.
    let actions = app.get_json("/monitoring/actions").await;
    let model = &actions["models"][0];
    assert_eq!(model["cards_overridden"], 1, "{actions}");
    assert_eq!(
        model["override_reasons"]["override-clinical-judgement"], 1,
        "{actions}"
    );
    let filed_twice = audited(
        &app,
        &format!("patient=Patient/{patient}"),
        "cds-feedback",
        2,
    )
    .await;
    assert_eq!(filed_twice.len(), 2);
    // A card this service did not show, or another service's card.
    let mut unknown = feedback.clone();
    unknown["feedback"][0]["card"] = json!(uuid::Uuid::new_v4().to_string());
    assert_outcome(post(PATIENT_VIEW, &unknown).await.unwrap(), 400).await;
    assert_outcome(post(ORDER_SELECT, &feedback).await.unwrap(), 400).await;
}

/// In SMART mode a CDS client signs each call (ES384 or RS384) for the URL it calls, once.
#[tokio::test]
async fn cds_clients_sign_each_call_and_cannot_replay_it() {
    let issuer = TestIssuer::with_rsa_key().await;
    let ehr = TestIssuer::start().await;
    ehr.keys.lock().await.keys = vec![
        jwk(&ec384(), Algorithm::ES384, "cds-ec"),
        jwk(&crate::issuer::rsa_key(), Algorithm::RS384, "cds-rsa"),
    ];
    let ehr_base = ehr.base.clone();
    let app = spawn_smart_app(&issuer, |s| {
        s.auth.cds_clients = vec![prognostics::config::CdsClientSettings {
            issuer: ehr_base.clone(),
            jwks_uri: Some(format!("{ehr_base}/jwks")),
            jku_allowed: Vec::new(),
        }];
    })
    .await;
    let patient = patient_with_record(&app, false).await;
    let root = AUDIENCE.trim_end_matches("/fhir");
    let claims = |service: &str| {
        json!({"iss": ehr_base, "sub": "ehr-cds-client", "aud": format!("{root}/cds-services/{service}"),
            "exp": now() + 120, "iat": now(), "jti": uuid::Uuid::new_v4().to_string()})
    };
    let post = |token: Option<String>, service: &'static str| {
        let body = hook(&patient);
        let client = match &token {
            Some(token) => client_with(token),
            None => reqwest::Client::new(),
        };
        let url = format!("{}/cds-services/{service}", app.address);
        async move {
            client
                .post(url)
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()
                .await
                .unwrap()
        }
    };
    let es384 = sign(&claims(PATIENT_VIEW), &ec384(), Algorithm::ES384, "cds-ec");
    assert_eq!(post(Some(es384.clone()), PATIENT_VIEW).await.status(), 200);
    let rs384 = sign(
        &claims(PATIENT_VIEW),
        &crate::issuer::rsa_key(),
        Algorithm::RS384,
        "cds-rsa",
    );
    assert_eq!(post(Some(rs384), PATIENT_VIEW).await.status(), 200);

    let for_other_service = sign(&claims(ORDER_SELECT), &ec384(), Algorithm::ES384, "cds-ec");
    let forged = sign(
        &claims(PATIENT_VIEW),
        &crate::issuer::ec_key(),
        Algorithm::ES256,
        "cds-ec",
    );
    let mut stranger_claims = claims(PATIENT_VIEW);
    stranger_claims["iss"] = json!("https://stranger.example.org");
    let stranger = sign(&stranger_claims, &ec384(), Algorithm::ES384, "cds-ec");
    let access_token = issuer.token(&issuer.claims(AUDIENCE, "admin", "system/*.cruds", None));
    let refusals = [
        ("replayed", Some(es384)),
        ("another service's URL", Some(for_other_service)),
        ("forged (ES256, another key)", Some(forged)),
        ("an issuer not trusted", Some(stranger)),
        ("a SMART access token", Some(access_token)),
        ("no token", None),
    ];
    for (what, token) in refusals {
        let response = post(token, PATIENT_VIEW).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{what}");
        assert!(
            response.headers().contains_key("www-authenticate"),
            "{what}"
        );
    }
    // Discovery needs no token.
    let discovery = reqwest::get(format!("{}/cds-services", app.address))
        .await
        .unwrap();
    assert_eq!(discovery.status(), 200);
    let refused = audited(&app, "agent=127.0.0.1&outcome=4", "cds-service", 6).await;
    assert!(refused.len() >= 6, "{}", refused.len());
}

/// A study received but not encoded yet: the card comes at once from what is ready and says
/// so; once `$risk-assessment` has encoded it, the card reopened shows that assessment.
#[tokio::test]
async fn a_card_does_not_wait_for_imaging_that_is_not_encoded() {
    let Some(ct) = crate::acceptance::her_ct() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (models, bundle) = crate::acceptance::imaging_models(dir.path());
    let app = crate::helpers::spawn_app_with(|s| {
        s.inference.enabled = true;
        s.inference.embed_on_receipt = false;
        s.inference.models_dir = models.clone();
        s.risk.model = bundle;
        s.dicom.patient_id_system = Some(crate::acceptance::MRN_SYSTEM.into());
    })
    .await;
    let patient = app
        .create(
            &json!({"resourceType": "Patient", "gender": "female", "birthDate": "1965-01-01",
            "identifier": [{"system": crate::acceptance::MRN_SYSTEM, "value": "MRN1234"}]}),
        )
        .await;
    let patient = patient["id"].as_str().unwrap().to_owned();
    let drawn = (chrono::Utc::now() - chrono::Duration::days(3))
        .format("%Y-%m-%d")
        .to_string();
    app.create(&json!({"resourceType": "Observation", "status": "final",
        "code": coded("http://loinc.org", "2532-0"), "subject": {"reference": format!("Patient/{patient}")},
        "effectiveDateTime": drawn,
        "valueQuantity": {"value": 310, "unit": "U/L", "system": "http://unitsofmeasure.org", "code": "U/L"}}))
        .await;
    crate::acceptance::store_her_series(&app, dir.path(), &ct).await;
    let studies = app.search_until_total("ImagingStudy", 1).await;
    assert_eq!(studies["total"], 1, "{studies}");

    let card = cards_of(call(&app, PATIENT_VIEW, &hook(&patient)).await).await[0].clone();
    let detail = card["detail"].as_str().unwrap();
    assert!(detail.contains("is not encoded yet"), "{detail}");
    assert!(
        detail.contains("the imaging modality: predicted without it"),
        "{detail}"
    );

    // The FHIR operation encodes the study now; the chart reopened shows that assessment.
    let response = app
        .post(
            &format!("Patient/{patient}/$risk-assessment"),
            &json!({"resourceType": "Parameters"}),
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(report_count(&app, &patient).await, 2);
    let reopened = cards_of(call(&app, PATIENT_VIEW, &hook(&patient)).await).await[0].clone();
    let detail = reopened["detail"].as_str().unwrap();
    assert!(!detail.contains("not encoded yet"), "{detail}");
    assert_ne!(reopened["uuid"], card["uuid"]);
    assert_eq!(report_count(&app, &patient).await, 2);
}
