//! `$risk-assessment` latency under concurrent clients, on the CPU: the service in this process
//! (release build, SQLite in a temporary folder, the default EfficientNet-Lite0 image encoder)
//! with a model that takes age, LDH and the study's image embedding (trained here on a random
//! cohort: the figures are about the path, not the numbers). Each request assesses a patient
//! not assessed before, so every request gathers, encodes if needed, predicts and files.
//!
//! - warm: the patient's study is already encoded (one study, encoded before the clock starts);
//! - cold: each patient's own 20-slice series was just stored and is not encoded yet (the
//!   background worker is off: `inference.embed_on_receipt = false`), so the request encodes it.
//!
//! Beside them, in the same run, `GET /fhir/Patient/{id}` at the same concurrency: the floor of
//! an HTTP round trip to this service on this machine; and warm again at 1 and 8 clients with a
//! second model deployed as a shadow (it scores every assessment's inputs beside the answer):
//! what one shadow costs the clinician's request.
//!
//! Usage: `cargo bench --bench risk_assessment -- FILE` (a single-frame DICOM file, re-identified
//! into each slice; scripts/bench-risk-assessment passes pydicom's CT_small.dcm).
//! Settings: `BENCH_WARM_PER_CLIENT` (warm requests per client, default 12, at least 48 per
//! level), `BENCH_COLD_SERIES` (cold requests at concurrency 1, default 3; 0 skips the cold
//! scenario).
// A load generator is the service's client: its tasks need no request span.
#![allow(clippy::disallowed_methods)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod common;

use prognostics::config::Settings;
use prognostics::domain::{Horizon, TimeUnit};
use prognostics::features::InputSpec;
use prognostics::fusion::TrainSettings;
use prognostics::startup::Application;
use prognostics::training::{ColumnRoles, TrainOptions, train};
use serde_json::{Value, json};

use common::load::drive;
use common::{reidentify, uid_of};

const SLICES: usize = 20;
const BOUNDARY: &str = "risk-bench-boundary";
const LEVELS: [usize; 3] = [1, 8, 32];

fn var(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A model over age, LDH and the EfficientNet-Lite0 embedding, trained on a random cohort,
/// named `name`, into `dir/{name}`.
fn train_model(dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    let mut rng = prognostics::fusion::Rng::new(0x9e37_79b9_7f4a_7c15);
    let mut uniform = move || rng.uniform();
    let mut csv = String::from("age,ldh,time,event");
    for i in 0..1280 {
        csv += &format!(",imaging_{i}");
    }
    csv.push('\n');
    for _ in 0..200 {
        let age = 40.0 + 40.0 * uniform();
        let ldh = 150.0 + 200.0 * uniform();
        let time = 1.0 + 3000.0 * uniform();
        let event = u8::from(uniform() < 0.5);
        csv += &format!("{age:.1},{ldh:.0},{time:.0},{event}");
        for _ in 0..1280 {
            csv += &format!(",{:.3}", uniform());
        }
        csv.push('\n');
    }
    std::fs::create_dir_all(dir).unwrap();
    let cohort = dir.join("cohort.csv");
    std::fs::write(&cohort, csv).unwrap();
    let spec: InputSpec = toml::from_str(
        "[clinical]\nage = true\n[[labs]]\nname = \"ldh\"\nloinc = [\"2532-0\"]\nunit = \"U/L\"\n\
         [imaging]\nencoder = \"efficientnet-lite0\"\ndimension = 1280\n",
    )
    .unwrap();
    let out = dir.join(name);
    let options = TrainOptions {
        cohort,
        roles: ColumnRoles {
            time: "time".into(),
            event: "event".into(),
            embedding_components: 16,
            ..ColumnRoles::default()
        },
        out: out.clone(),
        name: name.into(),
        settings: TrainSettings {
            seed: 1,
            max_epochs: 60,
            ..TrainSettings::default()
        },
        test_fraction: 0.2,
        horizons: [1.0, 3.0, 5.0]
            .into_iter()
            .map(|years| Horizon::new(years, TimeUnit::Years).unwrap())
            .collect(),
        time_unit: TimeUnit::Days,
        triage_recall: 0.9,
        subgroups: vec![],
        inputs: Some(spec),
    };
    train(&options, &mut |_| {}).unwrap();
    out
}

/// Creates a patient with a birth date and a recent LDH result; returns the id.
async fn patient(client: &reqwest::Client, fhir: &str, n: usize) -> String {
    let created: Value = client
        .post(format!("{fhir}/Patient"))
        .header("content-type", "application/fhir+json")
        .body(
            json!({"resourceType": "Patient", "birthDate": format!("19{:02}-03-01", 40 + n % 40)})
                .to_string(),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    let drawn = (chrono::Utc::now() - chrono::Duration::days(2))
        .format("%Y-%m-%d")
        .to_string();
    let observation = json!({"resourceType": "Observation", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "2532-0"}]},
        "subject": {"reference": format!("Patient/{id}")}, "effectiveDateTime": drawn,
        "valueQuantity": {"value": 150 + (n * 7) % 200, "unit": "U/L", "system": "http://unitsofmeasure.org", "code": "U/L"}});
    let response = client
        .post(format!("{fhir}/Observation"))
        .header("content-type", "application/fhir+json")
        .body(observation.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    id
}

/// `count` new patients, numbered on from `n`.
async fn new_patients(
    client: &reqwest::Client,
    fhir: &str,
    count: usize,
    n: &mut usize,
) -> Vec<String> {
    let mut patients = Vec::with_capacity(count);
    for _ in 0..count {
        patients.push(patient(client, fhir, *n).await);
        *n += 1;
    }
    patients
}

/// Stores a 20-slice series of its own study; returns the Study Instance UID.
async fn store_series(client: &reqwest::Client, base: &str, file: &[u8], n: usize) -> String {
    let sop = uid_of(file, [0x08, 0x00, 0x18, 0x00]);
    let series = uid_of(file, [0x20, 0x00, 0x0e, 0x00]);
    let study = uid_of(file, [0x20, 0x00, 0x0d, 0x00]);
    let mut body = Vec::new();
    for slice in 0..SLICES {
        let one = reidentify(file, &study, &format!("{n:04}"));
        let one = reidentify(&one, &series, &format!("{n:04}"));
        let one = reidentify(&one, &sop, &format!("{n:04}{slice:03}"));
        body.extend_from_slice(
            format!("--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(&one);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    let response = client
        .post(format!("{base}/dicomweb/studies"))
        .header(
            "Content-Type",
            format!("multipart/related; type=\"application/dicom\"; boundary={BOUNDARY}"),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut new = study[..study.len() - 4].to_owned();
    new.push_str(&format!("{n:04}"));
    new
}

fn assessment(fhir: &str, patient: &str, study: &str) -> (String, Option<Value>) {
    (
        format!("{fhir}/Patient/{patient}/$risk-assessment"),
        Some(json!({"resourceType": "Parameters", "parameter": [
            {"name": "imagingStudy", "valueString": study}]})),
    )
}

/// As the service's main does (see `encoders::cpu_thread_count`), before any thread starts.
#[allow(unsafe_code)]
fn main() {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let threads = prognostics::encoders::cpu_thread_count();
        // SAFETY: no other thread exists yet.
        unsafe { std::env::set_var("RAYON_NUM_THREADS", threads.to_string()) };
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(bench());
}

async fn bench() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let file = std::fs::read(args.first().expect("usage: risk_assessment FILE")).unwrap();
    let warm_per_client = var("BENCH_WARM_PER_CLIENT", 12);
    let cold_alone = var("BENCH_COLD_SERIES", 3);

    let dir = tempfile::tempdir().unwrap();
    let model = train_model(&dir.path().join("active"), "bench");
    // A second model, deployed as a shadow for the last scenario.
    train_model(&dir.path().join("models"), "bench-shadow");
    let mut settings = Settings::default();
    settings.server.listen = "127.0.0.1:0".parse().unwrap();
    settings.storage.data_dir = dir.path().join("data");
    settings.dicom.enabled = false;
    settings.hl7.enabled = false;
    settings.inference.models_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    settings.inference.embed_on_receipt = false;
    settings.risk.model = model;
    settings.risk.models_dir = Some(dir.path().join("models"));
    let app = Application::build(&settings).await.expect("service starts");
    let base = format!("http://127.0.0.1:{}", app.port());
    let fhir = format!("{base}/fhir");
    tokio::spawn(app.run_until_stopped());
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();

    // The warm study, encoded by one assessment before any clock starts.
    let warm_study = store_series(&client, &base, &file, 9999).await;
    let first = patient(&client, &fhir, 0).await;
    let (url, body) = assessment(&fhir, &first, &warm_study);
    let response = client
        .post(url)
        .header("content-type", "application/fhir+json")
        .body(body.unwrap().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    println!("| clients | scenario | requests | p50 ms | p99 ms | per second |");
    println!("|---:|---|---:|---:|---:|---:|");
    let mut n = 1;
    for clients in LEVELS {
        let requests = (warm_per_client * clients).max(48);
        let patients = new_patients(&client, &fhir, requests, &mut n).await;
        let reads = patients
            .iter()
            .map(|p| (format!("{fhir}/Patient/{p}"), None))
            .collect();
        let run = drive(&client, clients, reads, "application/fhir+json", |_| {}).await;
        println!(
            "| {clients} | read Patient (floor) | {requests} | {:.2} | {:.2} | {:.0} |",
            run.percentile(0.5),
            run.percentile(0.99),
            run.per_second()
        );
        let jobs = patients
            .iter()
            .map(|p| assessment(&fhir, p, &warm_study))
            .collect();
        let run = drive(&client, clients, jobs, "application/fhir+json", |_| {}).await;
        println!(
            "| {clients} | $risk-assessment, warm | {requests} | {:.1} | {:.1} | {:.1} |",
            run.percentile(0.5),
            run.percentile(0.99),
            run.per_second()
        );
    }
    // The cost of one shadow model on the same requests: it scores every assessment's
    // inputs beside the answer, never before it.
    let listing: Value = client
        .get(format!("{base}/models"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let version = listing["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "bench-shadow")
        .map(|m| m["version"].as_str().unwrap().to_owned())
        .expect("the shadow bundle is loaded");
    let deployed = client
        .post(format!("{base}/models/bench-shadow@{version}/$deploy"))
        .json(&json!({"status": "shadow"}))
        .send()
        .await
        .unwrap();
    assert_eq!(deployed.status(), 200);
    for clients in [1, 8] {
        let requests = (warm_per_client * clients).max(48);
        let patients = new_patients(&client, &fhir, requests, &mut n).await;
        let jobs = patients
            .iter()
            .map(|p| assessment(&fhir, p, &warm_study))
            .collect();
        let run = drive(&client, clients, jobs, "application/fhir+json", |_| {}).await;
        println!(
            "| {clients} | $risk-assessment, warm, one shadow model | {requests} | {:.1} | {:.1} | {:.1} |",
            run.percentile(0.5),
            run.percentile(0.99),
            run.per_second()
        );
    }
    let retired = client
        .post(format!("{base}/models/bench-shadow@{version}/$deploy"))
        .json(&json!({"status": "retired"}))
        .send()
        .await
        .unwrap();
    assert_eq!(retired.status(), 200);
    for clients in LEVELS.into_iter().filter(|_| cold_alone > 0) {
        let requests = clients.max(cold_alone);
        let mut jobs = Vec::with_capacity(requests);
        for _ in 0..requests {
            let p = patient(&client, &fhir, n).await;
            let study = store_series(&client, &base, &file, n).await;
            jobs.push(assessment(&fhir, &p, &study));
            n += 1;
        }
        let run = drive(&client, clients, jobs, "application/fhir+json", |_| {}).await;
        println!(
            "| {clients} | $risk-assessment, cold ({SLICES}-slice series) | {requests} | {:.0} | {:.0} | {:.2} |",
            run.percentile(0.5),
            run.percentile(0.99),
            run.per_second()
        );
    }
}
