//! The feature builder on real mCODE data: the jenny-m patient pulled from the FHIR test
//! server (Medplum's router with the mCODE 4.0.0 examples), with two notes added to it (a
//! DocumentReference whose text is a Binary given by URL, a DiagnosticReport with inline
//! HTML), turned into a PatientContext and the features an input spec declares.

use base64::Engine;
use chrono::{DateTime, Utc};
use prognostics::ehr::pull_patient;
use prognostics::features::{
    Embedded, Embeddings, InputSpec, Modality, PatientContext, build_features, notes_to_embed,
};
use prognostics::fhir::codes::StageKind;
use serde_json::json;

use crate::ehr::fhir_server_and_client;

const SPEC: &str = r#"
[clinical]
age = true
sex = true
stage = true
markers = [
  { name = "er_positive", loinc = ["85337-4", "16112-5"] },
  { name = "her2_positive", loinc = ["48676-1"] },
  { name = "ki67_positive", loinc = ["85330-9"] },
]

[[labs]]
name = "neutrophils"
loinc = ["26499-4", "751-8"]
unit = "10*9/L"
lookback_days = 90

[[labs]]
name = "tumour_size"
loinc = ["21889-1"]
unit = "mm"
lookback_days = 365

[[labs]]
name = "creatinine"
loinc = ["2160-0"]
unit = "umol/L"
molar_mass = 113.12

[genomics]
genes = ["PALB2", "BRCA1", "KRAS"]

[notes]
encoder = "all-minilm-l6-v2"
dimension = 4
lookback_days = 365

[imaging]
encoder = "resnet50-imagenet"
dimension = 8
"#;

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().to_utc()
}

async fn post(base: &str, resource: serde_json::Value) {
    let kind = resource["resourceType"].as_str().unwrap().to_owned();
    let id = resource["id"].as_str().unwrap().to_owned();
    let response = reqwest::Client::new()
        .put(format!("{base}/{kind}/{id}"))
        .header("Content-Type", "application/fhir+json")
        .body(resource.to_string())
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
}

#[tokio::test]
async fn an_mcode_patient_becomes_the_features_a_model_declares() {
    let Some((server, client)) = fhir_server_and_client().await else {
        return;
    };
    let b64 = |t: &str| base64::engine::general_purpose::STANDARD.encode(t);
    post(
        &server.base_url,
        json!({
            "resourceType": "Binary", "id": "note-jenny", "contentType": "text/plain",
            "data": b64("Oncology follow-up. Tolerating anastrozole; no new masses."),
        }),
    )
    .await;
    post(&server.base_url, json!({
        "resourceType": "DocumentReference", "id": "note-jenny", "status": "current",
        "subject": {"reference": "Patient/cancer-patient-jenny-m"}, "date": "2018-05-02T10:00:00Z",
        "content": [{"attachment": {"contentType": "text/plain", "url": "Binary/note-jenny"}}],
    }))
    .await;
    post(&server.base_url, json!({
        "resourceType": "DiagnosticReport", "id": "path-html-jenny", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "22637-3"}]},
        "subject": {"reference": "Patient/cancer-patient-jenny-m"},
        "effectiveDateTime": "2018-04-01T00:00:00Z",
        "presentedForm": [{"contentType": "text/html",
            "data": b64("<p>Invasive lobular carcinoma, <b>margins clear</b> &amp; 0/2 nodes.</p>")}],
    }))
    .await;

    let record = pull_patient(&client, "cancer-patient-jenny-m")
        .await
        .unwrap();
    assert!(record.missing.is_empty(), "{:?}", record.missing);
    assert_eq!(
        record.staging.len(),
        8,
        "the clinical and pathologic TNM stage groups and their T, N and M categories"
    );
    let context = PatientContext::from_resources(&record.patient, record.resources());
    let texts: Vec<&str> = context.notes.iter().map(|n| n.text.as_str()).collect();
    assert!(
        texts.contains(&"Oncology follow-up. Tolerating anastrozole; no new masses."),
        "the note given by URL was fetched: {texts:?}"
    );
    assert!(texts.contains(&"Invasive lobular carcinoma, margins clear & 0/2 nodes."));
    // Both on the same day: the pathologic one comes first.
    assert_eq!(context.stage_groups[0].kind, StageKind::Pathologic);
    assert_eq!(context.stage_groups[0].group, 2);
    assert_eq!(context.stage_groups[0].letter, Some('B'));

    let spec: InputSpec = toml::from_str(SPEC).unwrap();
    spec.validate().unwrap();

    // Two months after the last result.
    let as_of = at("2018-06-01T00:00:00Z");
    let notes = notes_to_embed(spec.notes.as_ref().unwrap(), &context, as_of);
    assert_eq!(
        notes.len(),
        2 + texts.len() - 2,
        "every note is in the window"
    );
    let embeddings = Embeddings {
        notes: Some(Embedded {
            vector: vec![0.5; 4],
            sources: notes.iter().map(|n| n.source.clone()).collect(),
        }),
        imaging: None,
    };
    let features = build_features(&spec, &context, &embeddings, as_of);
    let value = |name: &str| features.value(name).unwrap();
    // Born 1965-01-01: 53.41 years old.
    let (age, known) = value("age");
    assert!(known && (age - 53.41).abs() < 0.01, "{age}");
    assert_eq!(value("sex_female"), (1.0, true));
    assert_eq!(value("stage_2"), (1.0, true));
    assert_eq!(value("stage_3"), (0.0, true));
    assert_eq!(value("er_positive"), (1.0, true));
    assert_eq!(value("her2_positive"), (0.0, true));
    assert_eq!(value("ki67_positive"), (0.0, false));
    // 3000 × 10³/µL = 3000 × 10⁹/L.
    let (neutrophils, known) = value("neutrophils");
    assert!(known && (neutrophils - 3000.0).abs() < 0.01);
    // 2.5 cm (the only axis of the size panel) = 25 mm.
    assert_eq!(value("tumour_size"), (25.0, true));
    assert_eq!(value("creatinine"), (0.0, false));
    assert_eq!(value("PALB2"), (1.0, true), "a somatic PALB2 variant");
    assert_eq!(value("BRCA1"), (0.0, true), "studied, nothing found");
    assert_eq!(
        value("KRAS"),
        (0.0, false),
        "not studied: unknown, not negative"
    );
    let notes = features.modality(Modality::Notes).unwrap();
    assert!(notes.present && notes.mask.iter().all(|m| *m));
    let imaging = features.modality(Modality::Imaging).unwrap();
    assert!(!imaging.present && imaging.mask.iter().all(|m| !m));
    let unfilled: Vec<&str> = features
        .unfilled
        .iter()
        .map(|u| u.feature.as_str())
        .collect();
    assert_eq!(
        unfilled,
        ["ki67_positive", "creatinine", "KRAS", "resnet50-imagenet"]
    );

    // Before staging and the later results: those are not known yet.
    let early = build_features(
        &spec,
        &context,
        &Embeddings::default(),
        at("2018-03-12T00:00:00Z"),
    );
    assert_eq!(early.value("stage_2"), Some((0.0, false)));
    assert_eq!(early.value("neutrophils"), Some((0.0, false)));
    assert_eq!(early.value("tumour_size"), Some((0.0, false)));
    assert_eq!(early.value("er_positive"), Some((1.0, true)));
    let reason = |f: &str| {
        early
            .unfilled
            .iter()
            .find(|u| u.feature == f)
            .map(|u| u.reason.clone())
            .unwrap()
    };
    assert!(
        reason("neutrophils").contains("90 days"),
        "{}",
        reason("neutrophils")
    );
    assert!(reason("all-minilm-l6-v2").contains("no note"));
}
