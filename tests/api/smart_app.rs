//! The SMART app at `/app/`: its files under a content security policy, its launch (known EHRs
//! only, refusals audited), its code exchange, and the explanation of an assessment it shows.
//! The whole app in a browser, through a real EHR launch, is `tests/api/app_browser.rs`.

use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app, spawn_app_with};
use crate::risk_assessment::{assess, of_type, patient_with_record};

/// The CSP of the app's responses.
fn policy(response: &reqwest::Response) -> String {
    response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned()
}

async fn get(app: &TestApp, path: &str) -> reqwest::Response {
    app.client
        .get(format!("{}{path}", app.address))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_app_is_served_from_its_own_origin_only() {
    let app =
        spawn_app_with(|s| s.app.launch_issuers = vec!["https://ehr.example/fhir".into()]).await;
    let page = get(&app, "/app/").await;
    assert_eq!(page.status(), 200);
    let csp = policy(&page);
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'self' https://ehr.example",
    ] {
        assert!(csp.contains(directive), "{directive} in {csp}");
    }
    let html = page.text().await.unwrap();
    assert!(html.contains("AI-generated and preliminary"));
    // Every script and style the page loads is the service's own, and none is inline.
    assert!(!html.contains("<script>") && !html.contains("style="));
    for src in ["/app/app.js", "/app/app.css"] {
        assert!(html.contains(src), "{src}");
    }
    for (file, kind) in [
        ("app.js", "text/javascript"),
        ("charts.js", "text/javascript"),
        ("smart.js", "text/javascript"),
        ("launch.js", "text/javascript"),
        ("app.css", "text/css"),
    ] {
        let response = get(&app, &format!("/app/{file}")).await;
        assert_eq!(response.status(), 200, "{file}");
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with(kind)
        );
        let text = response.text().await.unwrap();
        assert!(
            !text.contains("https://") || file != "app.css",
            "{file} loads nothing from elsewhere"
        );
    }
    assert_eq!(get(&app, "/app/evil.js").await.status(), 404);
    // An EHR whose user interface is elsewhere than its FHIR server.
    let framed = spawn_app_with(|s| {
        s.app.launch_issuers = vec!["https://fhir.ehr.example/r4".into()];
        s.app.frame_ancestors = vec!["https://chart.ehr.example".into()];
    })
    .await;
    let csp = policy(&get(&framed, "/app/").await);
    assert!(
        csp.contains("frame-ancestors 'self' https://chart.ehr.example"),
        "{csp}"
    );
    assert!(!csp.contains("fhir.ehr.example"), "{csp}");
    let bare = app
        .client
        .get(format!("{}/app", app.address))
        .send()
        .await
        .unwrap();
    assert!(bare.url().path().ends_with("/app/"));
}

#[tokio::test]
async fn a_launch_from_an_unknown_ehr_is_refused_and_audited() {
    let app =
        spawn_app_with(|s| s.app.launch_issuers = vec!["https://ehr.example/fhir".into()]).await;
    let response = get(
        &app,
        "/app/launch?iss=https%3A%2F%2Fevil.example%2Ffhir&launch=abc",
    )
    .await;
    assert_eq!(response.status(), 400);
    assert!(policy(&response).contains("default-src 'none'"));
    let page = response.text().await.unwrap();
    assert!(
        page.contains("not registered with the EHR at https://evil.example/fhir"),
        "{page}"
    );
    // Half a launch, and a code exchange for an unknown EHR.
    assert_eq!(get(&app, "/app/launch?launch=abc").await.status(), 400);
    let exchange = app
        .client
        .post(format!("{}/app/token", app.address))
        .form(&[
            ("iss", "https://evil.example/fhir"),
            ("code", "c"),
            ("code_verifier", "v"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(exchange.status(), 400);
    let body: Value = exchange.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request");
    let refusals = app.audit_events("outcome=4").await;
    let launches: Vec<&Value> = refusals
        .iter()
        .filter(|e| e["subtype"][0]["code"] == "app-launch")
        .collect();
    assert!(launches.len() >= 2, "{refusals:?}");
    assert!(
        launches
            .iter()
            .any(|e| e["outcomeDesc"].as_str().unwrap().contains("evil.example")),
        "{launches:?}"
    );
    assert!(
        refusals
            .iter()
            .any(|e| e["subtype"][0]["code"] == "app-token")
    );
    // No EHR configured at all: a standalone launch says so.
    let alone = spawn_app().await;
    let response = get(&alone, "/app/launch").await;
    assert_eq!(response.status(), 400);
    assert!(response.text().await.unwrap().contains("launch_issuers"));
}

#[tokio::test]
async fn an_assessment_is_explained_with_its_curve_sources_and_what_would_fill_it() {
    let app = spawn_app().await;
    let patient = patient_with_record(&app, false).await;
    let bundle: Value = assess(&app, &patient, &json!({"resourceType": "Parameters"}))
        .await
        .json()
        .await
        .unwrap();
    let report = of_type(&bundle, "DiagnosticReport")[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let response = get(&app, &format!("/app/api/explanations/{report}")).await;
    assert_eq!(response.status(), 200);
    let view: Value = response.json().await.unwrap();
    assert_eq!(view["report"], report.as_str());
    assert_eq!(view["patient"], patient.as_str());
    // The curve rises from 0 and passes through the horizons it is drawn with.
    let curve = view["curve"].as_array().unwrap();
    assert!(curve.len() > 10);
    assert_eq!(curve[0]["probability"].as_f64().unwrap(), 0.0);
    let probabilities: Vec<f64> = curve
        .iter()
        .map(|p| p["probability"].as_f64().unwrap())
        .collect();
    assert!(probabilities.windows(2).all(|w| w[1] >= w[0]));
    assert_eq!(view["horizons"].as_array().unwrap().len(), 3);
    // Features carry what the record says, and where it says it.
    let features = view["features"].as_array().unwrap();
    assert!(!features.is_empty());
    let grade = features
        .iter()
        .find(|f| f["feature"].as_str().unwrap().starts_with("tgrade"));
    if let Some(grade) = grade {
        assert!(
            grade["source"]
                .as_str()
                .unwrap()
                .starts_with("Observation/"),
            "{grade}"
        );
        assert_eq!(grade["date"], "2023-11-20");
    }
    let age = features.iter().find(|f| f["feature"] == "age");
    if let Some(age) = age {
        assert_eq!(age["unit"], "years");
        assert_eq!(age["source"], format!("Patient/{patient}"));
    }
    // Without the pathology: the tumour size is missing, and a test fills it.
    let missing = view["missing"].as_array().unwrap();
    let size = missing.iter().find(|m| m["feature"] == "tsize").unwrap();
    assert!(size["test"]["code"].is_string(), "{size}");
    assert_eq!(
        get(&app, "/app/api/explanations/no-such-report")
            .await
            .status(),
        404
    );
}
