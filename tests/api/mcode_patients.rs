//! Every patient of the official mCODE examples (hl7.fhir.us.mcode 4.0.0: its example
//! resources and Bundles, loaded into the FHIR test server, dates shifted so that the breast
//! cancer was diagnosed a year ago) assessed by the default model through an EHR pull: the
//! breast-cancer patient gets a score with her receptor status, endocrine therapy, grade and
//! nodes read from the chart as mCODE records them; every other patient gets 422 naming why.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::helpers::{assert_outcome, assert_valid_fhir, spawn_app_with};
use crate::risk_assessment::{assess, of_type};

/// Every Patient in the package's examples, files and Bundle entries alike: id → gender.
fn mcode_patients() -> BTreeMap<String, String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(".cache/test-data/hl7.fhir.us.mcode-4.0.0/package/example");
    let mut patients = BTreeMap::new();
    let mut bundles = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let Ok(text) = std::fs::read(&path) else {
            continue;
        };
        let Ok(resource) = serde_json::from_slice::<Value>(&text) else {
            continue;
        };
        let resources: Vec<Value> = if resource["resourceType"] == "Bundle" {
            bundles += 1;
            resource["entry"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|e| e["resource"].clone())
                .collect()
        } else {
            vec![resource]
        };
        for r in resources {
            if r["resourceType"] == "Patient" {
                patients.insert(
                    r["id"].as_str().unwrap().to_owned(),
                    r["gender"].as_str().unwrap_or_default().to_owned(),
                );
            }
        }
    }
    assert!(bundles >= 2, "the package's example Bundles were not found");
    patients
}

#[tokio::test]
async fn every_mcode_example_patient_is_assessed_or_refused_with_the_reason() {
    let Some(server) = tokio::task::spawn_blocking(|| {
        crate::ehr::start_fhir_server(&crate::ehr::diagnosed_a_year_ago())
    })
    .await
    .unwrap() else {
        return;
    };
    let ehr = server.base_url.clone();
    let app = spawn_app_with(move |s| {
        s.ehr.base_url = Some(ehr);
        s.ehr.timeout_secs = 10;
    })
    .await;
    let patients = mcode_patients();
    assert!(patients.len() >= 7, "{patients:?}");
    let empty = json!({"resourceType": "Parameters"});
    let mut scored = Vec::new();
    for (id, gender) in &patients {
        let response = assess(&app, id, &empty).await;
        if id == "cancer-patient-jenny-m" {
            assert_eq!(response.status(), 200, "{id}");
            let request_id = response.headers()["x-request-id"]
                .to_str()
                .unwrap()
                .to_owned();
            check_pull_audited(&app, id, &request_id).await;
            scored.push(id.clone());
            let bundle: Value = response.json().await.unwrap();
            assert_valid_fhir(
                "an mCODE patient's assessment",
                std::slice::from_ref(&bundle),
            );
            check_jenny(&bundle);
            continue;
        }
        let outcome = assert_outcome(response, 422).await;
        let why = outcome["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            why.contains("no primary breast cancer on record"),
            "{id}: {why}"
        );
        if gender == "male" {
            assert!(why.contains("male"), "{id}: {why}");
        }
        // Refused: audited, nothing filed as a risk.
        let refusals = app
            .audit_events(&format!("patient=Patient/{id}&outcome=4"))
            .await;
        assert!(
            refusals.iter().any(|e| e["outcomeDesc"]
                .as_str()
                .is_some_and(|d| d.contains("no primary breast cancer on record"))),
            "{id}: {refusals:?}"
        );
        let risks = app
            .search(&format!("RiskAssessment?subject=Patient/{id}"))
            .await;
        assert_eq!(risks["total"], 0, "{id}");
    }
    assert_eq!(scored, ["cancer-patient-jenny-m"]);
}

/// The pull from the EHR is a record of its own in the trail, tied to the request that caused
/// it by the request id, naming the EHR's Patient and what was read.
async fn check_pull_audited(app: &crate::helpers::TestApp, id: &str, request_id: &str) {
    let carries_request = |event: &Value| {
        event["entity"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|e| e["what"]["identifier"]["value"] == request_id)
    };
    let of_request = |code: &str, events: &[Value]| {
        events
            .iter()
            .any(|e| e["subtype"][0]["code"] == code && carries_request(e))
    };
    // Written off the request path: both records within the stated bound.
    let mut events = Vec::new();
    for _ in 0..50 {
        events = app.audit_events(&format!("patient={id}")).await;
        if of_request("pull", &events) && of_request("risk-assessment", &events) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let pull = events
        .iter()
        .find(|e| e["subtype"][0]["code"] == "pull")
        .unwrap_or_else(|| panic!("no pull recorded: {events:?}"));
    assert!(carries_request(pull), "{pull}");
    assert_eq!(pull["outcome"], "0");
    assert!(
        pull["outcomeDesc"]
            .as_str()
            .unwrap()
            .contains("resources read"),
        "{pull}"
    );
    let pulled_from = pull["entity"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["what"]["reference"].as_str())
        .any(|r| r.ends_with(&format!("/fhir/R4/Patient/{id}")));
    assert!(pulled_from, "{pull}");
    // The request that caused it is recorded too, under the same id.
    assert!(of_request("risk-assessment", &events), "{events:?}");
}

/// ER positive, PR negative (immunohistochemistry), on anastrozole, Nottingham grade 2, pN0:
/// all read from her chart; node negative, she is outside GBSG2's node-positive women, and the
/// assessment says so instead of giving a risk band.
fn check_jenny(bundle: &Value) {
    let risk = of_type(bundle, "RiskAssessment")[0];
    let basis: Vec<&str> = risk["basis"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["reference"].as_str().unwrap())
        .collect();
    for fact in [
        "Observation/tumor-marker-test-er-jenny-m",
        "Observation/tumor-marker-test-pr-jenny-m",
        "MedicationRequest/cancer-related-medication-request-anastrozole-jenny-m",
        "Observation/us-core-observation-lab-tumor-grade-jenny-m",
        "Observation/tnm-pathologic-regional-nodes-category-jenny-m",
        "Observation/tumor-size-jenny-m",
    ] {
        assert!(
            basis.iter().any(|b| b.contains(fact)),
            "{fact} is not in the basis: {basis:?}"
        );
    }
    let issues = of_type(bundle, "OperationOutcome")[0]["issue"].to_string();
    // Only her menopausal status is unknown: 53 at diagnosis, no finding on record.
    assert!(issues.contains("menostat"), "{issues}");
    for read in ["estrec", "progrec", "horTh", "tgrade", "pnodes:", "tsize"] {
        assert!(
            !issues.contains(&format!("{read}: no")),
            "{read} was not read: {issues}"
        );
    }
    assert!(
        issues.contains("pnodes 0: no training patient had it, so it was taken as unknown"),
        "{issues}"
    );
    let prediction = &risk["prediction"][0];
    let probabilities: Vec<String> = risk["prediction"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| format!("{} by {}", p["probabilityDecimal"], p["whenPeriod"]["end"]))
        .collect();
    eprintln!(
        "cancer-patient-jenny-m: {}; {issues}",
        probabilities.join(", ")
    );
    assert_eq!(
        prediction["qualitativeRisk"]["text"],
        "Outside the model's training population"
    );
    assert!(
        prediction["rationale"]
            .as_str()
            .unwrap()
            .contains("outside the model's training data: pnodes 0"),
        "{prediction}"
    );
    let report = of_type(bundle, "DiagnosticReport")[0];
    assert!(
        report["conclusion"]
            .as_str()
            .unwrap()
            .contains("outside the model's training population"),
        "{report}"
    );
}
