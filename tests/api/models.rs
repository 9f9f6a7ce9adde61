//! Several models at once: the configured model and the bundles of `risk.models_dir` are
//! loaded, each deployed active, shadow or retired; a change (API or command line) switches at
//! once and whole, files the model's Device and a Provenance, is audited, and survives a
//! restart. Bundles that cannot be loaded are listed with why; changes that cannot be are
//! refused with nothing half-switched.

use std::path::Path;

use serde_json::{Value, json};

use crate::acceptance::train_model;
use crate::helpers::{TestApp, assert_outcome, spawn_app_in};
use crate::risk_assessment::{assess, of_type, patient_with_record};

/// A models folder with a trained bundle and a copy of it whose weights were changed.
pub(crate) fn models_dir(dir: &Path) -> std::path::PathBuf {
    let models = dir.join("models");
    std::fs::create_dir_all(&models).unwrap();
    let training = dir.join("training");
    std::fs::create_dir_all(&training).unwrap();
    let trained = train_model(&training);
    let good = models.join("ldh-imaging");
    copy_dir(&trained, &good);
    let broken = models.join("broken");
    copy_dir(&trained, &broken);
    let weights = broken.join("model.safetensors");
    let mut bytes = std::fs::read(&weights).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&weights, bytes).unwrap();
    models
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

pub(crate) async fn listed(app: &TestApp) -> Value {
    app.get_json("/models").await
}

pub(crate) fn status_of(listing: &Value, name: &str) -> (String, String) {
    let model = listing["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == name)
        .unwrap_or_else(|| panic!("{name} in {listing}"));
    (
        model["version"].as_str().unwrap().to_owned(),
        model["status"].as_str().unwrap().to_owned(),
    )
}

/// What the shadow models said of `report`, once they have said it (they score beside the
/// assessment's answer, within seconds).
pub(crate) async fn shadow_predictions(app: &TestApp, report: &str) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let found = app
            .get_json(&format!("/models/shadow-predictions/{report}"))
            .await;
        if !found["predictions"].as_array().unwrap().is_empty()
            || std::time::Instant::now() > deadline
        {
            return found;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Makes the trained bundle of [`models_dir`] a shadow model.
pub(crate) async fn deploy_shadow_of_trained(app: &TestApp) {
    let (version, _) = status_of(&listed(app).await, "ldh-imaging");
    let response = deploy(
        app,
        &format!("ldh-imaging@{version}"),
        json!({"status": "shadow"}),
    )
    .await;
    assert_eq!(response.status(), 200);
}

async fn deploy(app: &TestApp, model: &str, body: Value) -> reqwest::Response {
    app.client
        .post(format!("{}/models/{model}/$deploy", app.address))
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn models_are_deployed_switched_at_once_recorded_and_kept_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let models = models_dir(dir.path());
    // The image encoder the trained model's embeddings come from runs here.
    let encoders = dir.path().join("encoders");
    prognostics::encoders::write_random_model(&encoders, "tiny", "efficientnet-lite", 1).unwrap();
    let configure = |models: std::path::PathBuf| {
        let encoders = encoders.clone();
        move |s: &mut prognostics::config::Settings| {
            s.risk.models_dir = Some(models);
            s.inference.enabled = true;
            s.inference.models_dir = encoders;
        }
    };
    let data = tempfile::tempdir().unwrap();
    let database = crate::helpers::fresh_postgres_database().await;
    let app = spawn_app_in(data, database, configure(models.clone())).await;

    // The configured model is active; the folder's bundle is loaded, retired; the broken one
    // is listed with why.
    let listing = listed(&app).await;
    let (gbsg2, status) = status_of(&listing, "gbsg2-recurrence");
    assert_eq!(status, "active");
    let (ldh, status) = status_of(&listing, "ldh-imaging");
    assert_eq!(status, "retired");
    let unloadable = listing["unloadable"].as_array().unwrap();
    assert_eq!(unloadable.len(), 1, "{listing}");
    assert!(
        unloadable[0]["bundle"]
            .as_str()
            .unwrap()
            .ends_with("broken")
    );
    assert!(!unloadable[0]["reason"].as_str().unwrap().is_empty());

    // Shadow, then active: the switch is immediate, the one before is retired.
    let ldh_model = format!("ldh-imaging@{ldh}");
    let response = deploy(
        &app,
        &ldh_model,
        json!({"status": "shadow", "reason": "trial"}),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        status_of(&response.json().await.unwrap(), "ldh-imaging").1,
        "shadow"
    );
    // A shadow scores every assessment, seen by governance only.
    let shadowed = patient_with_record(&app, true).await;
    let bundle: Value = assess(&app, &shadowed, &json!({"resourceType": "Parameters"}))
        .await
        .json()
        .await
        .unwrap();
    assert!(
        of_type(&bundle, "RiskAssessment")[0]["method"]["text"]
            .as_str()
            .unwrap()
            .starts_with("gbsg2-recurrence"),
        "the active model answers"
    );
    assert!(
        !bundle.to_string().contains("ldh-imaging"),
        "nothing of the shadow in the answer"
    );
    let report = of_type(&bundle, "DiagnosticReport")[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let shadows = shadow_predictions(&app, &report).await;
    let prediction = &shadows["predictions"][0];
    assert_eq!(prediction["model"], "ldh-imaging", "{shadows}");
    assert!(prediction["logHazardRatio"].is_number(), "{shadows}");
    assert_eq!(
        prediction["horizons"].as_array().unwrap().len(),
        2,
        "{shadows}"
    );

    let response = deploy(&app, &ldh_model, json!({"status": "active"})).await;
    assert_eq!(response.status(), 200);
    let listing: Value = response.json().await.unwrap();
    assert_eq!(status_of(&listing, "ldh-imaging").1, "active");
    assert_eq!(status_of(&listing, "gbsg2-recurrence").1, "retired");
    let patient = patient_with_record(&app, true).await;
    let bundle: Value = assess(&app, &patient, &json!({"resourceType": "Parameters"}))
        .await
        .json()
        .await
        .unwrap();
    let method = of_type(&bundle, "RiskAssessment")[0]["method"]["text"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(method.starts_with("ldh-imaging"), "{method}");

    // Each model is a Device saying how it is deployed; each change has its Provenance.
    let device_of = |name: &str| {
        listing["models"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == name)
            .unwrap()["device"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let device: Value = app
        .get(&device_of("ldh-imaging"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(device["status"], "active");
    assert_eq!(
        device["property"][0]["valueCode"][0]["coding"][0]["code"],
        "deployment-active"
    );
    let retired: Value = app
        .get(&device_of("gbsg2-recurrence"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(retired["status"], "inactive");
    let provenance = app.search("Provenance?_count=100").await;
    let changes: Vec<&Value> = provenance["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["resource"])
        .filter(|p| {
            p["activity"]["coding"][0]["code"]
                .as_str()
                .is_some_and(|c| c.starts_with("deployment-"))
        })
        .collect();
    assert_eq!(
        changes.len(),
        3,
        "shadow, active, and the retirement it caused"
    );
    assert!(changes.iter().any(|p| p["reason"][0]["text"] == "trial"));

    // What cannot be done is refused, and nothing changes.
    let gbsg2_model = format!("gbsg2-recurrence@{gbsg2}");
    assert_outcome(
        deploy(&app, &ldh_model, json!({"status": "retired"})).await,
        409,
    )
    .await;
    assert_outcome(
        deploy(&app, &ldh_model, json!({"status": "active"})).await,
        409,
    )
    .await;
    assert_outcome(
        deploy(&app, "nope@1", json!({"status": "active"})).await,
        404,
    )
    .await;
    assert_outcome(
        deploy(&app, "no-version", json!({"status": "active"})).await,
        400,
    )
    .await;
    assert_outcome(
        deploy(&app, &gbsg2_model, json!({"status": "on"})).await,
        400,
    )
    .await;
    assert_outcome(
        deploy(&app, &gbsg2_model, json!({"state": "active"})).await,
        400,
    )
    .await;
    // Two promotions at once: each is whole or refused, and one model ends active.
    let (a, b) = tokio::join!(
        deploy(&app, &gbsg2_model, json!({"status": "active"})),
        deploy(&app, &gbsg2_model, json!({"status": "shadow"})),
    );
    for status in [a.status().as_u16(), b.status().as_u16()] {
        assert!(status == 200 || status == 409, "{status}");
    }
    let listing = listed(&app).await;
    let active: Vec<&Value> = listing["models"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["status"] == "active")
        .collect();
    assert_eq!(active.len(), 1, "{listing}");
    let deploys = crate::cds::audited(&app, "agent=127.0.0.1", "model-deploy", 10).await;
    assert!(deploys.len() >= 8, "{} changes audited", deploys.len());
    assert!(deploys.iter().filter(|e| e["outcome"] == "0").count() >= 2);

    // Kept across a restart.
    let before = listed(&app).await["models"].clone();
    let (data, database) = app.stop().await;
    let app = spawn_app_in(data, database, configure(models)).await;
    assert_eq!(listed(&app).await["models"], before);
}

#[tokio::test]
async fn the_command_line_promotes_and_the_service_starts_with_it() {
    use prognostics::cli::{Command, DeployArgs, ModelsCommand, run};
    let dir = tempfile::tempdir().unwrap();
    let models = models_dir(dir.path());
    let data = tempfile::tempdir().unwrap();
    let database = crate::helpers::fresh_postgres_database().await;
    let mut settings = crate::helpers::settings_for(data.path(), database.as_deref());
    settings.risk.models_dir = Some(models.clone());

    let listed_code = run(Some(Command::Models(ModelsCommand::List)), settings.clone())
        .await
        .unwrap();
    assert_eq!(listed_code, std::process::ExitCode::SUCCESS);
    // An unknown model and a malformed name are errors, and change nothing.
    for model in ["nope@1", "ldh-imaging"] {
        let outcome = run(
            Some(Command::Models(ModelsCommand::Promote(DeployArgs {
                model: model.into(),
                reason: None,
            }))),
            settings.clone(),
        )
        .await;
        assert!(outcome.is_err(), "{model}");
    }
    // The trained bundle's version, as the service names it.
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(models.join("ldh-imaging/manifest.json")).unwrap())
            .unwrap();
    let model = format!("ldh-imaging@{}", manifest["version"].as_str().unwrap());
    run(
        Some(Command::Models(ModelsCommand::Shadow(DeployArgs {
            model: model.clone(),
            reason: Some("compare with the active model".into()),
        }))),
        settings.clone(),
    )
    .await
    .unwrap();
    // As the active model it would answer without its images: no image encoder runs with
    // this configuration. Refused, and the shadow stays.
    let refused = run(
        Some(Command::Models(ModelsCommand::Promote(DeployArgs {
            model: model.clone(),
            reason: None,
        }))),
        settings.clone(),
    )
    .await
    .unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("cannot be given its inputs here: it takes studies encoded by `tiny`"),
        "{refused}"
    );

    let app = spawn_app_in(data, database, move |s| s.risk.models_dir = Some(models)).await;
    let listing = listed(&app).await;
    assert_eq!(status_of(&listing, "ldh-imaging").1, "shadow");
    assert_eq!(status_of(&listing, "gbsg2-recurrence").1, "active");
    let model_entry = listing["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "ldh-imaging")
        .unwrap()
        .clone();
    assert!(
        model_entry["changedBy"]
            .as_str()
            .unwrap()
            .starts_with("command line"),
        "{model_entry}"
    );
    // The command line's changes are in the audit trail, refusals included.
    let changes = crate::cds::audited(&app, "date=ge2000-01-01", "model-deploy", 4).await;
    assert_eq!(changes.len(), 4, "{changes:?}");
    assert_eq!(changes.iter().filter(|e| e["outcome"] != "0").count(), 3);
}

#[tokio::test]
async fn a_model_that_cannot_be_given_its_inputs_is_not_made_active() {
    let dir = tempfile::tempdir().unwrap();
    let models = models_dir(dir.path());
    // No image encoder runs (inference off): the trained model takes image embeddings.
    let app = crate::helpers::spawn_app_with(move |s| s.risk.models_dir = Some(models)).await;
    let (ldh, _) = status_of(&listed(&app).await, "ldh-imaging");
    let before = listed(&app).await;
    let outcome = assert_outcome(
        deploy(
            &app,
            &format!("ldh-imaging@{ldh}"),
            json!({"status": "active"}),
        )
        .await,
        422,
    )
    .await;
    let text = outcome.to_string();
    assert!(
        text.contains("no image encoder runs here") && text.contains("nothing was switched"),
        "{outcome}"
    );
    assert_eq!(listed(&app).await, before);
    // A shadow may lack them: what it lacked shows in its monitoring, never in an answer.
    let response = deploy(
        &app,
        &format!("ldh-imaging@{ldh}"),
        json!({"status": "shadow"}),
    )
    .await;
    assert_eq!(response.status(), 200);
}
