//! The official example Bundles of mCODE 4.0.0 and Genomics Reporting 3.0.0 load into the
//! service as transactions: every resource in them (patients, conditions, observations, but
//! also practitioners, organizations, specimens, family history, molecular sequences, tasks …)
//! is stored, validated against its R4 model, and found by its standard search parameters.
//! Collection Bundles are sent as the transactions an EHR would build from them (an update of
//! each entry at its own id); transaction Bundles as they are.

use std::path::Path;

use serde_json::{Value, json};

use crate::helpers::spawn_app;

fn example_bundles() -> Option<Vec<(String, Value)>> {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/test-data");
    let dirs = [
        data.join("hl7.fhir.us.mcode-4.0.0/package/example"),
        data.join("hl7.fhir.uv.genomics-reporting-3.0.0/package/example"),
    ];
    if !dirs.iter().all(|d| d.is_dir()) {
        assert!(
            std::env::var_os("TEST_REQUIRE_DATA").is_none(),
            "the mCODE and Genomics Reporting examples are missing: run scripts/fetch-test-data"
        );
        return None;
    }
    let mut bundles = Vec::new();
    for dir in dirs {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if name.starts_with("Bundle-") && name.ends_with(".json") {
                let bundle: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
                bundles.push((name, bundle));
            }
        }
    }
    bundles.sort_by(|a, b| a.0.cmp(&b.0));
    Some(bundles)
}

/// A collection as a transaction: each entry updated at its own `Type/id`.
fn as_transaction(bundle: &Value) -> Value {
    if bundle["type"] == "transaction" {
        return bundle.clone();
    }
    let entries: Vec<Value> = bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let r = &e["resource"];
            let url = format!(
                "{}/{}",
                r["resourceType"].as_str().unwrap(),
                r["id"].as_str().unwrap()
            );
            let mut entry = json!({"resource": r, "request": {"method": "PUT", "url": url}});
            if let Some(full_url) = e.get("fullUrl") {
                entry["fullUrl"] = full_url.clone();
            }
            entry
        })
        .collect();
    json!({"resourceType": "Bundle", "type": "transaction", "entry": entries})
}

#[tokio::test]
async fn the_official_example_bundles_load_as_transactions() {
    let Some(bundles) = example_bundles() else {
        return;
    };
    assert!(bundles.len() >= 14, "{} bundles", bundles.len());
    let app = spawn_app().await;
    let mut failures = Vec::new();
    let mut stored = 0;
    for (name, bundle) in &bundles {
        let response = app.post("", &as_transaction(bundle)).await;
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        if status != 200 {
            failures.push(format!("{name}: {status} {body}"));
            continue;
        }
        stored += body["entry"].as_array().unwrap().len();
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    eprintln!("{} example Bundles, {stored} entries stored", bundles.len());

    // What was stored is found by the standard search parameters of its type.
    let jenny = "Patient/cancer-patient-jenny-m";
    for (query, at_least) in [
        (format!("FamilyMemberHistory?patient={jenny}"), 2),
        (format!("Specimen?patient={jenny}"), 1),
        (
            format!(
                "MedicationRequest?patient={jenny}&code=http://www.nlm.nih.gov/research/umls/rxnorm|84857"
            ),
            1,
        ),
        ("Practitioner?_count=50".to_owned(), 3),
        ("Organization?_count=50".to_owned(), 3),
        ("MolecularSequence?_count=50".to_owned(), 14),
        (
            "Task?status=completed,requested,in-progress,ready,accepted".to_owned(),
            1,
        ),
    ] {
        let found = app.search(&query).await;
        let total = found["total"].as_u64().unwrap();
        assert!(total >= at_least, "{query}: {total}");
    }
}
