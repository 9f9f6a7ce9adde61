//! A cohort whose columns refer to studies and notes this service holds: the studies' image
//! embeddings (as the service computed them) and the notes' text embeddings become the
//! cohort's `imaging_<n>` and `notes_<n>` columns, rows without one get empty cells, and
//! `prognostics train --studies COL` trains on them from the command line.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use prognostics::cli::stored_cohort::attach_stored_embeddings;
use prognostics::cohort::{Values, read_cohort};
use prognostics::config::Settings;
use prognostics::domain::ModelVersion;
use prognostics::encoders::{ModelManifest, TextEncoder};
use prognostics::startup::open_pipeline;
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::dicomweb::{multipart, stow};
use crate::helpers::{pydicom_file, spawn_app_with};

fn settings_for(dir: &Path, database_url: Option<&String>, models: &Path) -> Settings {
    let mut settings = Settings::default();
    settings.storage.data_dir = dir.to_path_buf();
    settings.inference.models_dir = models.to_path_buf();
    if let Some(url) = database_url {
        settings.database.url = Some(SecretString::from(url.clone()));
    }
    settings
}

/// The real notes encoder (scripts/fetch-models), if its weights are here.
fn text_encoder() -> Option<TextEncoder> {
    let models = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models");
    let manifest = ModelManifest::read(&models).unwrap();
    match TextEncoder::load(&manifest, None, &prognostics::encoders::device()) {
        Ok(encoder) => Some(encoder),
        Err(e) => {
            assert!(
                std::env::var_os("TEST_REQUIRE_DATA").is_none(),
                "the notes encoder is missing ({e}): run scripts/fetch-models"
            );
            None
        }
    }
}

#[tokio::test]
async fn studies_and_notes_held_here_become_a_cohorts_embedding_columns() {
    let (Some(ct), Some(mr)) = (pydicom_file("CT_small.dcm"), pydicom_file("MR_small.dcm")) else {
        return;
    };
    let Some(notes_encoder) = text_encoder() else {
        return;
    };
    let models = tempfile::tempdir().unwrap();
    prognostics::encoders::write_random_model(models.path(), "tiny", "efficientnet-lite", 1)
        .unwrap();
    let app = spawn_app_with(|s| {
        s.inference.enabled = true;
        s.inference.models_dir = models.path().to_path_buf();
    })
    .await;
    assert_eq!(
        stow(&app, "/studies", multipart(&[&ct, &mr]))
            .await
            .status(),
        200
    );
    let studies: Vec<String> = app
        .qido("")
        .await
        .iter()
        .map(|s| s["0020000D"]["Value"][0].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(studies.len(), 2);
    let mut embeddings = Vec::new();
    for study in &studies {
        let mut body = Value::Null;
        for _ in 0..200 {
            body = app
                .client
                .get(format!("{}/embeddings/studies/{study}", app.address))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if body["status"] == "complete" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        embeddings.push(body["embedding"].as_array().unwrap().clone());
    }
    let note = |text: &str| {
        json!({"resourceType": "DocumentReference", "status": "current", "content": [{"attachment": {
            "contentType": "text/plain",
            "data": base64::engine::general_purpose::STANDARD.encode(text)}}]})
    };
    let calm = app.create(&note("No evidence of disease.")).await;
    let grim = app.create(&note("Extensive metastatic progression.")).await;
    let (calm, grim) = (
        format!("DocumentReference/{}", calm["id"].as_str().unwrap()),
        format!("DocumentReference/{}", grim["id"].as_str().unwrap()),
    );
    let (dir, database_url) = app.stop().await;

    // 40 patients: studies and notes alternate, every third row has neither.
    let cohort_dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("id,age,time,event,study,note\n");
    for i in 0..40 {
        let (study, note) = if i % 3 == 2 {
            (String::new(), String::new())
        } else {
            (studies[i % 2].clone(), [&calm, &grim][i % 2].clone())
        };
        let event = i % 2;
        csv += &format!("p{i},{},{},{event},{study},{note}\n", 40 + i, 100 + 37 * i);
    }
    let path = cohort_dir.path().join("site.csv");
    std::fs::write(&path, csv).unwrap();

    let settings = settings_for(dir.path(), database_url.as_ref(), models.path());
    let pipeline = open_pipeline(&settings).await.unwrap();
    let mut cohort = read_cohort(&path).unwrap();
    let tiny = ModelVersion {
        name: "tiny".into(),
        version: "random-1".into(),
    };
    let report = attach_stored_embeddings(
        pipeline.store(),
        &mut cohort,
        Some(("study", &tiny)),
        Some(("note", &notes_encoder)),
    )
    .await
    .unwrap();
    pipeline.store().close().await;
    // The database is locked while any handle to it lives; the command below opens it.
    drop(pipeline);
    assert_eq!((report.studies_found, report.studies_missing), (27, 13));
    assert_eq!((report.notes_found, report.notes_missing), (27, 13));
    let column = |name: &str| match &cohort.column(name).unwrap().values {
        Values::Numeric(v) => v.clone(),
        other => panic!("{name}: {other:?}"),
    };
    // Row 1 refers to the second study: its embedding as the service stored it.
    let imaging_5 = column("imaging_5");
    assert!((imaging_5[1].unwrap() - embeddings[1][5].as_f64().unwrap()).abs() < 1e-6);
    assert_eq!(imaging_5[2], None, "a row without a study has empty cells");
    assert!(cohort.column("imaging_63").is_ok() && cohort.column("imaging_64").is_err());
    // The notes embedding is the text encoder's, L2-normalised.
    let expected = notes_encoder
        .embed(&["Extensive metastatic progression."])
        .unwrap();
    let notes_0 = column("notes_0");
    assert!((notes_0[1].unwrap() - f64::from(expected[0][0])).abs() < 1e-5);
    assert_eq!(notes_0[2], None);

    // From the command line: the studies become the imaging modality of the model.
    let out = cohort_dir.path().join("model");
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_prognostics"));
    command
        .args(["train", "--cohort"])
        .arg(&path)
        .args([
            "--time",
            "time",
            "--event",
            "event",
            "--patient",
            "id",
            "--exclude",
            "note",
            "--studies",
            "study",
            "--embedding-components",
            "0",
            "--members",
            "2",
            "--max-epochs",
            "20",
            "--quiet",
            "--out",
        ])
        .arg(&out)
        .env("PROGNOSTICS_STORAGE__DATA_DIR", dir.path())
        .env("PROGNOSTICS_INFERENCE__MODELS_DIR", models.path());
    if let Some(url) = &database_url {
        command.env("PROGNOSTICS_DATABASE__URL", url);
    }
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .contains("studies: 27 rows with an image embedding, 13 without")
    );
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    let modalities: Vec<&str> = manifest["layout"]["modalities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["modality"].as_str().unwrap())
        .collect();
    assert_eq!(modalities, ["clinical", "imaging"]);
}
