//! CDS Hooks `patient-view` latency, the card a clinician waits for when opening a chart: the
//! service in this process (release build, SQLite in a temporary folder, the default GBSG2
//! model), loopback HTTP, open access. Each patient has the record the default model takes
//! (age, menopausal status, grade, endocrine therapy, tumour size, nodes, receptors) and a breast
//! cancer diagnosed today.
//!
//! - without prefetch: the record is held here (filed through the FHIR API);
//! - with prefetch: the patient is not held here, and the call carries the whole record as the
//!   prefetch the discovery document asks for (Patient, and a searchset Bundle per key).
//!
//! For each, the first opening of the chart (the assessment is made and filed) and a reopening
//! (the same assessment is found filed: nothing written). Beside them, in the same run,
//! `GET /fhir/Patient/{id}` at the same concurrency: the floor of a round trip to this service.
//! The CDS Hooks guidance asks for a card within about 500 ms.
//!
//! Usage: `cargo bench --bench cds_hooks`. Settings: `BENCH_PER_CLIENT` (requests per client,
//! default 12, at least 48 per level).
// A load generator is the service's client: its tasks need no request span.
#![allow(clippy::disallowed_methods)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

// The DICOM helpers of `common` are not used here.
#[allow(dead_code)]
mod common;

use prognostics::config::Settings;
use prognostics::startup::Application;
use serde_json::{Map, Value, json};

use common::load::{Run, drive};

const LEVELS: [usize; 2] = [1, 8];
const LOINC: &str = "http://loinc.org";
const SNOMED: &str = "http://snomed.info/sct";
const UCUM: &str = "http://unitsofmeasure.org";
const EHR: &str = "https://ehr.example.org/fhir";

fn coded(system: &str, code: &str) -> Value {
    json!({"coding": [{"system": system, "code": code}]})
}

/// The record of patient `id` (number `n`), each resource with its id.
fn record(id: &str, n: usize) -> Vec<Value> {
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let subject = json!({"reference": format!("Patient/{id}")});
    let observation = |k: usize, code: Value, key: &str, value: Value| {
        let mut o = json!({"resourceType": "Observation", "id": format!("{id}-o{k}"),
            "status": "final", "code": code, "subject": subject, "effectiveDateTime": today});
        o[key] = value;
        o
    };
    let quantity = |value: usize, unit: &str| json!({"value": value, "system": UCUM, "code": unit});
    vec![
        json!({"resourceType": "Patient", "id": id, "gender": "female",
            "birthDate": format!("19{:02}-01-01", 50 + n % 25)}),
        json!({"resourceType": "Condition", "id": format!("{id}-c"), "subject": subject,
            "code": coded(SNOMED, "372064008"), "onsetDateTime": today}),
        observation(
            1,
            coded(SNOMED, "161712005"),
            "valueCodeableConcept",
            coded(SNOMED, "76498008"),
        ),
        observation(
            2,
            coded(LOINC, "33732-9"),
            "valueCodeableConcept",
            coded(SNOMED, "1663004"),
        ),
        observation(
            3,
            coded(LOINC, "21889-1"),
            "valueQuantity",
            quantity(10 + n % 40, "mm"),
        ),
        observation(4, coded(LOINC, "21893-3"), "valueInteger", json!(n % 6)),
        observation(
            5,
            coded(LOINC, "31207-4"),
            "valueQuantity",
            quantity(5 + n % 90, "fmol/mg"),
        ),
        observation(
            6,
            coded(LOINC, "14130-9"),
            "valueQuantity",
            quantity(5 + n % 70, "fmol/mg"),
        ),
        json!({"resourceType": "MedicationStatement", "id": format!("{id}-m"), "status": "not-taken",
            "subject": subject, "effectiveDateTime": today,
            "medicationCodeableConcept": coded("http://www.nlm.nih.gov/research/umls/rxnorm", "10324")}),
    ]
}

/// The prefetch of `templates` (key → query) filled from `resources`.
fn prefetch(templates: &Map<String, Value>, resources: &[Value]) -> Value {
    let mut out = Map::new();
    for (key, query) in templates {
        let query = query.as_str().unwrap();
        let t = query.split(['/', '?']).next().unwrap();
        let of_type: Vec<&Value> = resources
            .iter()
            .filter(|r| r["resourceType"] == t)
            .collect();
        let value = if t == "Patient" {
            of_type[0].clone()
        } else {
            json!({"resourceType": "Bundle", "type": "searchset", "total": of_type.len(),
                "entry": of_type.iter().map(|r| json!({"resource": r})).collect::<Vec<_>>()})
        };
        out.insert(key.clone(), value);
    }
    Value::Object(out)
}

fn hook(patient: &str, prefetch: Option<Value>) -> Value {
    let mut call = json!({"hook": "patient-view", "hookInstance": uuid::Uuid::new_v4().to_string(),
        "context": {"userId": "Practitioner/bench", "patientId": patient}});
    // A complete prefetch: the server it came from is named (the basis references it) and
    // never called.
    if let Some(prefetch) = prefetch {
        call["prefetch"] = prefetch;
        call["fhirServer"] = json!(EHR);
    }
    call
}

/// A hook call must answer with one card.
fn one_card(text: &str) {
    let answer: Value = serde_json::from_str(text).unwrap();
    assert_eq!(answer["cards"].as_array().map(Vec::len), Some(1), "{text}");
}

fn main() {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(bench());
}

async fn bench() {
    let per_client = std::env::var("BENCH_PER_CLIENT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12usize);
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::default();
    settings.server.listen = "127.0.0.1:0".parse().unwrap();
    settings.storage.data_dir = dir.path().join("data");
    settings.dicom.enabled = false;
    settings.hl7.enabled = false;
    settings.inference.enabled = false;
    settings.risk.model =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/risk/gbsg2-recurrence");
    let app = Application::build(&settings).await.expect("service starts");
    let base = format!("http://127.0.0.1:{}", app.port());
    let fhir = format!("{base}/fhir");
    tokio::spawn(app.run_until_stopped());
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    let discovery: Value = client
        .get(format!("{base}/cds-services"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let templates = discovery["services"][0]["prefetch"]
        .as_object()
        .unwrap()
        .clone();
    let service = format!("{base}/cds-services/prognostics-risk");

    println!("| clients | scenario | requests | p50 ms | p99 ms | per second |");
    println!("|---:|---|---:|---:|---:|---:|");
    let mut n = 0;
    for clients in LEVELS {
        let requests = (per_client * clients).max(48);
        let mut held = Vec::with_capacity(requests);
        let mut given = Vec::with_capacity(requests);
        for _ in 0..requests {
            n += 1;
            let id = format!("held-{n}");
            for resource in record(&id, n) {
                let url = format!(
                    "{fhir}/{}/{}",
                    resource["resourceType"].as_str().unwrap(),
                    resource["id"].as_str().unwrap()
                );
                let response = client
                    .put(url)
                    .header("content-type", "application/fhir+json")
                    .body(resource.to_string())
                    .send()
                    .await
                    .unwrap();
                assert!(response.status().is_success());
            }
            held.push(id);
            let id = format!("ehr-{n}");
            given.push((id.clone(), prefetch(&templates, &record(&id, n))));
        }
        let reads = held
            .iter()
            .map(|p| (format!("{fhir}/Patient/{p}"), None))
            .collect();
        let floor = drive(&client, clients, reads, "application/json", one_card).await;
        let row = |scenario: &str, run: &Run| {
            println!(
                "| {clients} | {scenario} | {requests} | {:.1} | {:.1} | {:.1} |",
                run.percentile(0.5),
                run.percentile(0.99),
                run.per_second()
            );
        };
        row("read Patient (floor)", &floor);
        let held_calls = || {
            held.iter()
                .map(|p| (service.clone(), Some(hook(p, None))))
                .collect::<Vec<_>>()
        };
        let given_calls = || {
            given
                .iter()
                .map(|(p, prefetch)| (service.clone(), Some(hook(p, Some(prefetch.clone())))))
                .collect::<Vec<_>>()
        };
        row(
            "patient-view, held here, first opening",
            &drive(&client, clients, held_calls(), "application/json", one_card).await,
        );
        row(
            "patient-view, held here, reopened",
            &drive(&client, clients, held_calls(), "application/json", one_card).await,
        );
        row(
            "patient-view with prefetch, first opening",
            &drive(
                &client,
                clients,
                given_calls(),
                "application/json",
                one_card,
            )
            .await,
        );
        row(
            "patient-view with prefetch, reopened",
            &drive(
                &client,
                clients,
                given_calls(),
                "application/json",
                one_card,
            )
            .await,
        );
    }
}
