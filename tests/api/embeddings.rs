//! Image embeddings through the running service: received studies are embedded in the
//! background and pooled per series and study; a model change recomputes them; uploads are
//! embedded through the batching queue, which answers 429 when full. Tiny random models stand in
//! for real weights (their embeddings mean nothing, but every step is the real one).

use std::path::Path;
use std::time::Duration;

use prognostics::config::Settings;
use serde_json::Value;

use crate::dicomweb::{multipart, stow};
use crate::helpers::{TestApp, assert_outcome, pydicom_file, spawn_app_in, spawn_app_with};

const CT_STUDY: &str = "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322";

fn use_model(settings: &mut Settings, models: &Path) {
    settings.inference.enabled = true;
    settings.inference.models_dir = models.to_path_buf();
}

async fn study_embeddings(app: &TestApp, study: &str) -> reqwest::Response {
    app.client
        .get(format!("{}/embeddings/studies/{study}", app.address))
        .send()
        .await
        .unwrap()
}

/// Polls until the study has no pending instances (for up to 30 s).
async fn settled(app: &TestApp, study: &str) -> Value {
    for _ in 0..600 {
        let response = study_embeddings(app, study).await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        if body["status"] != "pending" {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("study {study} was not embedded in time");
}

fn mean(vectors: &[&Vec<Value>]) -> Vec<f64> {
    let len = vectors[0].len();
    (0..len)
        .map(|i| vectors.iter().map(|v| v[i].as_f64().unwrap()).sum::<f64>() / vectors.len() as f64)
        .collect()
}

#[tokio::test]
async fn received_studies_are_embedded_pooled_and_recomputed_only_for_a_new_model() {
    let (Some(ct), Some(mr), Some(no_pixels)) = (
        pydicom_file("CT_small.dcm"),
        pydicom_file("MR_small.dcm"),
        pydicom_file("rtplan.dcm"),
    ) else {
        return;
    };
    let models = tempfile::tempdir().unwrap();
    prognostics::encoders::write_random_model(models.path(), "tiny", "efficientnet-lite", 1)
        .unwrap();
    let app = spawn_app_with(|s| use_model(s, models.path())).await;
    let response = stow(&app, "/studies", multipart(&[&ct, &mr, &no_pixels])).await;
    assert_eq!(response.status(), 200);

    let ct_study = settled(&app, CT_STUDY).await;
    assert_eq!(ct_study["status"], "complete", "{ct_study}");
    assert_eq!(ct_study["model"], "tiny");
    assert_eq!(ct_study["modelVersion"], "random-1");
    assert_eq!(ct_study["instanceCount"], 1);
    assert_eq!(ct_study["seriesCount"], 1);
    let embedding = ct_study["embedding"].as_array().unwrap();
    assert_eq!(embedding.len(), 64);
    let series = ct_study["series"].as_array().unwrap();
    assert_eq!(series.len(), 1);
    // One series of one single-frame instance: the study is that series.
    assert_eq!(&series[0]["embedding"], &ct_study["embedding"]);

    // The upload route gives the same embedding for the same file, and stores nothing new.
    let upload = app
        .client
        .post(format!("{}/embeddings/image", app.address))
        .header("Content-Type", "application/dicom")
        .body(ct.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(upload.status(), 200);
    let upload: Value = upload.json().await.unwrap();
    assert_eq!(upload["frames"], 1);
    for (a, b) in upload["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .zip(embedding)
    {
        assert!((a.as_f64().unwrap() - b.as_f64().unwrap()).abs() < 1e-4);
    }

    let (dir, database) = app.stop().await;

    // Same model after a restart: nothing to recompute.
    let app = spawn_app_in(dir, database, |s| use_model(s, models.path())).await;
    let again: Value = study_embeddings(&app, CT_STUDY).await.json().await.unwrap();
    assert_eq!(again["status"], "complete");
    assert_eq!(again["embedding"], ct_study["embedding"]);
    let (dir, database) = app.stop().await;

    // A new model version: every embedding is made again, by the new model.
    let new_models = tempfile::tempdir().unwrap();
    prognostics::encoders::write_random_model(new_models.path(), "tiny", "efficientnet-lite", 2)
        .unwrap();
    let app = spawn_app_in(dir, database, |s| use_model(s, new_models.path())).await;
    let recomputed = settled(&app, CT_STUDY).await;
    assert_eq!(recomputed["status"], "complete");
    assert_eq!(recomputed["modelVersion"], "random-2");
    assert_eq!(recomputed["embedding"].as_array().unwrap().len(), 64);
    assert_ne!(recomputed["embedding"], ct_study["embedding"]);

    let unknown = study_embeddings(&app, "1.2.3.4.5").await;
    assert_outcome(unknown, 404).await;
}

#[tokio::test]
async fn a_study_embedding_is_the_mean_of_its_series() {
    let Some(ct) = pydicom_file("CT_small.dcm") else {
        return;
    };
    // Two series of one study: the same CT slice, re-identified into a second series.
    let second = reidentify_series(&ct);
    let models = tempfile::tempdir().unwrap();
    prognostics::encoders::write_random_model(models.path(), "tiny", "resnet", 5).unwrap();
    let app = spawn_app_with(|s| use_model(s, models.path())).await;
    let response = stow(&app, "/studies", multipart(&[&ct, &second])).await;
    assert_eq!(response.status(), 200);
    let study = settled(&app, CT_STUDY).await;
    assert_eq!(study["seriesCount"], 2, "{study}");
    assert_eq!(study["instanceCount"], 2);
    let series: Vec<&Vec<Value>> = study["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["embedding"].as_array().unwrap())
        .collect();
    let expected = mean(&series);
    for (a, b) in study["embedding"].as_array().unwrap().iter().zip(expected) {
        assert!((a.as_f64().unwrap() - b).abs() < 1e-5);
    }
}

/// The file with new SOP Instance and Series Instance UIDs (same length, so no lengths change).
fn reidentify_series(file: &[u8]) -> Vec<u8> {
    let replace = |bytes: &mut Vec<u8>, from: &[u8], to: &[u8]| {
        assert_eq!(from.len(), to.len());
        let mut i = 0;
        while let Some(pos) = bytes[i..].windows(from.len()).position(|w| w == from) {
            bytes[i + pos..i + pos + from.len()].copy_from_slice(to);
            i += pos + from.len();
        }
    };
    let mut bytes = file.to_vec();
    // CT_small's Series and SOP Instance UIDs end in these digits.
    replace(
        &mut bytes,
        b"1.3.6.1.4.1.5962.1.3.1.1.20040119072730.12322",
        b"1.3.6.1.4.1.5962.1.3.1.1.20040119072730.99999",
    );
    replace(
        &mut bytes,
        b"1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322",
        b"1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.99999",
    );
    bytes
}

#[tokio::test]
async fn uploads_get_protocol_errors_and_a_full_queue_answers_429() {
    let Some(ct) = pydicom_file("CT_small.dcm") else {
        return;
    };
    let models = tempfile::tempdir().unwrap();
    prognostics::encoders::write_random_model(models.path(), "tiny", "vit-dinov2", 9).unwrap();
    let app = spawn_app_with(|s| {
        use_model(s, models.path());
        s.inference.queue_capacity = 1;
        s.inference.max_batch_size = 8;
        s.inference.max_wait_ms = 1500;
    })
    .await;
    let post = |body: Vec<u8>, media: &'static str| {
        app.client
            .post(format!("{}/embeddings/image", app.address))
            .header("Content-Type", media)
            .body(body)
            .send()
    };
    assert_outcome(
        post(b"not dicom".to_vec(), "application/dicom")
            .await
            .unwrap(),
        400,
    )
    .await;
    assert_outcome(post(ct.clone(), "application/json").await.unwrap(), 415).await;

    // The first upload holds the only queue slot while its batch waits for company.
    let first = tokio::spawn(post(ct.clone(), "application/dicom"));
    tokio::time::sleep(Duration::from_millis(400)).await;
    let refused = post(ct.clone(), "application/dicom").await.unwrap();
    let outcome = assert_outcome(refused, 429).await;
    assert!(outcome.to_string().contains("queue is full"), "{outcome}");
    let first = first.await.unwrap().unwrap();
    assert_eq!(first.status(), 200);
    let body: Value = first.json().await.unwrap();
    assert_eq!(body["embedding"].as_array().unwrap().len(), 16);
}

#[tokio::test]
async fn without_an_encoder_embedding_routes_say_unavailable() {
    let app = spawn_app_with(|_| {}).await;
    let response = app
        .client
        .post(format!("{}/embeddings/image", app.address))
        .header("Content-Type", "application/dicom")
        .body(b"DICM".to_vec())
        .send()
        .await
        .unwrap();
    assert_outcome(response, 503).await;
}

/// The worker saves instance embeddings one by one and pools the series and the study after
/// its pass: an assessment arriving in between (every instance embedded, no study embedding
/// yet) pools the study itself and uses the imaging.
#[tokio::test]
async fn an_assessment_between_the_workers_embeddings_and_its_pooling_uses_the_imaging() {
    let Some(ct) = crate::acceptance::her_ct() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (models, bundle) = crate::acceptance::imaging_models(dir.path());
    let app = spawn_app_with(|s| {
        use_model(s, &models);
        s.risk.model = bundle;
        s.dicom.patient_id_system = Some(crate::acceptance::MRN_SYSTEM.into());
    })
    .await;
    let patient = app
        .create(
            &serde_json::json!({"resourceType": "Patient", "birthDate": "1965-01-01",
            "identifier": [{"system": crate::acceptance::MRN_SYSTEM, "value": "MRN1234"}]}),
        )
        .await;
    let patient = patient["id"].as_str().unwrap().to_owned();
    crate::acceptance::store_her_series(&app, dir.path(), &ct).await;
    let study = app.search_until_total("ImagingStudy", 1).await;
    let uid = study["entry"][0]["resource"]["identifier"][0]["value"]
        .as_str()
        .unwrap()
        .trim_start_matches("urn:oid:")
        .to_owned();
    let settled = settled(&app, &uid).await;
    assert_eq!(settled["instanceCount"], 3, "{settled}");

    // The worker's pass half done: the instances embedded, nothing pooled yet.
    assert_eq!(app.execute("DELETE FROM study_embeddings").await, 1);
    assert_eq!(app.execute("DELETE FROM series_embeddings").await, 1);
    let response = app
        .post(
            &format!("Patient/{patient}/$risk-assessment"),
            &serde_json::json!({"resourceType": "Parameters"}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let result: Value = response.json().await.unwrap();
    let risk = result["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["resource"])
        .find(|r| r["resourceType"] == "RiskAssessment")
        .unwrap();
    let rationale = risk["prediction"][0]["rationale"].as_str().unwrap();
    assert!(rationale.contains("imaging +"), "{rationale}");
    assert!(
        !rationale.contains("Missing modalities: imaging"),
        "{rationale}"
    );
    let pooled: Value = study_embeddings(&app, &uid).await.json().await.unwrap();
    assert_eq!(pooled["status"], "complete", "{pooled}");
    assert_eq!(pooled["instanceCount"], 3, "{pooled}");
}
