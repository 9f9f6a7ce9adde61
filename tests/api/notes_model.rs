//! A model that takes notes: the service loads the text encoder its spec names (the real
//! all-MiniLM-L6-v2 of `models/`, fetched by `scripts/fetch-models`) and the assessment embeds
//! the patient's notes with it, instead of predicting without them.

use std::path::{Path, PathBuf};

use base64::Engine;
use serde_json::{Value, json};

use crate::acceptance::RandomCohort;
use crate::helpers::spawn_app_with;
use crate::risk_assessment::{assess, of_type};

/// A model trained on age and a 384-wide notes embedding (random cohort).
fn notes_model(dir: &Path) -> PathBuf {
    RandomCohort {
        seed: 0x9e37_79b9_7f4a_7c15,
        rows: 100,
        tabular: &[],
        hazard: |age, _| 0.03 * (age - 60.0),
        embedding: ("notes", 384),
    }
    .train(
        dir,
        "age-notes",
        r#"
        [clinical]
        age = true
        [notes]
        encoder = "all-minilm-l6-v2"
        dimension = 384
        [outcome]
        code = "death"
        display = "Death"
        "#,
        1,
    )
}

#[tokio::test]
async fn a_model_that_takes_notes_gets_them_embedded_by_the_service() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let weights = root.join("models/weights/all-minilm-l6-v2");
    if !weights.is_dir() {
        assert!(
            std::env::var_os("TEST_REQUIRE_DATA").is_none(),
            "the MiniLM weights are missing: run scripts/fetch-models"
        );
        eprintln!("skipping: the MiniLM weights are not fetched");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bundle = notes_model(dir.path());
    let app = spawn_app_with(move |s| {
        s.risk.model = bundle;
        s.inference.models_dir = root.join("models");
    })
    .await;
    let patient = app
        .create(&json!({"resourceType": "Patient", "gender": "female", "birthDate": "1960-05-01"}))
        .await;
    let id = patient["id"].as_str().unwrap();
    let text = "CT chest: two new pulmonary nodules, the largest 9 mm, suspicious for metastasis.";
    app.create(
        &json!({"resourceType": "DocumentReference", "status": "current",
        "subject": {"reference": format!("Patient/{id}")},
        "date": chrono::Utc::now().to_rfc3339(),
        "content": [{"attachment": {"contentType": "text/plain",
            "data": base64::engine::general_purpose::STANDARD.encode(text)}}]}),
    )
    .await;
    let response = assess(&app, id, &json!({"resourceType": "Parameters"})).await;
    assert_eq!(response.status(), 200);
    let bundle: Value = response.json().await.unwrap();
    let said = of_type(&bundle, "OperationOutcome")
        .iter()
        .map(|o| o.to_string())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(!said.contains("notes encoder is not loaded"), "{said}");
    assert!(!said.contains("notes modality is missing"), "{said}");
    // The note is among the assessment's inputs.
    let risk = of_type(&bundle, "RiskAssessment")[0];
    assert!(
        risk["basis"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["reference"]
                .as_str()
                .unwrap()
                .starts_with("DocumentReference/")),
        "{risk}"
    );
}
