//! The binary started outside the repository, with no weights and no way to fetch them: it
//! serves, with the model manifest and the default risk model built into it, and says that
//! images will not be embedded until weights are fetched.

use serde_json::{Value, json};

use crate::request_log::Service;

#[tokio::test]
async fn the_service_starts_outside_the_repository_without_weights() {
    let elsewhere = tempfile::tempdir().unwrap();
    let service = Service::start_in(
        elsewhere.path(),
        &[("PROGNOSTICS_INFERENCE__FETCH_MISSING_WEIGHTS", "false")],
    )
    .await;
    let lines = service.since(0);
    let said = |message: &str| lines.iter().any(|l| l["message"].as_str() == Some(message));
    assert!(
        said("no model manifest there: using the built-in one"),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "risk model loaded" && l["built_in"] == true),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l["message"]
            .as_str()
            .is_some_and(|m| m.contains("weights are missing"))),
        "{lines:?}"
    );

    // The default model answers from there.
    let client = reqwest::Client::new();
    let fhir = |path: &str| format!("{}/fhir/{path}", service.address);
    let post = |path: String, body: Value| {
        client
            .post(fhir(&path))
            .header("Content-Type", "application/fhir+json")
            .json(&body)
            .send()
    };
    let patient: Value = post(
        "Patient".into(),
        json!({"resourceType": "Patient", "gender": "female", "birthDate": "1960-05-01"}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let id = patient["id"].as_str().unwrap();
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    post(
        "Condition".into(),
        json!({"resourceType": "Condition", "subject": {"reference": format!("Patient/{id}")},
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "372064008"}]},
            "onsetDateTime": today}),
    )
    .await
    .unwrap();
    let response = post(
        format!("Patient/{id}/$risk-assessment"),
        json!({"resourceType": "Parameters"}),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        !elsewhere
            .path()
            .join("models/weights")
            .read_dir()
            .is_ok_and(|mut d| d.next().is_some()),
        "nothing was fetched"
    );
}
