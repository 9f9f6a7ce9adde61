//! A database for a benchmark run (a fresh PostgreSQL database with `BENCH_DATABASE_URL`) and
//! the Patients with Observations the HTTP benchmarks read and search.
// Each benchmark binary uses its own part of the shared helpers.
#![allow(dead_code)]

use serde_json::{Value, json};

/// With `BENCH_DATABASE_URL` (a PostgreSQL server), a fresh database for this run.
pub async fn fresh_postgres_database() -> Option<String> {
    let admin_url = std::env::var("BENCH_DATABASE_URL").ok()?;
    sqlx::any::install_default_drivers();
    let name = format!("bench_{}", uuid::Uuid::new_v4().simple());
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&admin_url)
        .await
        .expect("BENCH_DATABASE_URL is reachable");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap();
    let mut url = url::Url::parse(&admin_url).unwrap();
    url.set_path(&format!("/{name}"));
    Some(url.to_string())
}

/// Stores `patients` Patients with 10 Observations each, through transaction Bundles (with
/// `token` when the service wants one), and returns the Patients' ids.
pub async fn seed(base: &str, patients: usize, token: Option<&str>) -> Vec<String> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(token) = token {
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
    }
    let client = reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap();
    let mut ids = Vec::with_capacity(patients);
    for chunk_start in (0..patients).step_by(20) {
        let mut entries = Vec::new();
        for n in chunk_start..(chunk_start + 20).min(patients) {
            let full_url = format!("urn:uuid:{}", uuid::Uuid::new_v4());
            entries.push(json!({
                "fullUrl": full_url,
                "resource": {
                    "resourceType": "Patient",
                    "identifier": [{"system": "urn:bench:mrn", "value": format!("B{n:06}")}],
                    "gender": if n % 2 == 0 { "female" } else { "male" },
                    "birthDate": "1960-04-01"
                },
                "request": {"method": "POST", "url": "Patient"}
            }));
            for k in 0..10 {
                entries.push(json!({
                    "resource": {
                        "resourceType": "Observation",
                        "status": "final",
                        "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]},
                        "subject": {"reference": full_url},
                        "effectiveDateTime": format!("2026-01-{:02}T08:00:00Z", k + 1),
                        "valueQuantity": {"value": 12.0 + k as f64 / 10.0, "unit": "g/dL",
                            "system": "http://unitsofmeasure.org", "code": "g/dL"}
                    },
                    "request": {"method": "POST", "url": "Observation"}
                }));
            }
        }
        let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": entries});
        let response = client
            .post(base)
            .header("content-type", "application/fhir+json")
            .body(bundle.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "seeding transaction");
        let body: Value = response.json().await.unwrap();
        for entry in body["entry"].as_array().unwrap() {
            let location = entry["response"]["location"].as_str().unwrap();
            if let Some(rest) = location.strip_prefix("Patient/") {
                ids.push(rest.split('/').next().unwrap().to_owned());
            }
        }
    }
    assert_eq!(ids.len(), patients);
    ids
}
