//! The clinician's sign-off (`$sign-off` on a risk DiagnosticReport): signing makes the report
//! final with the clinician as interpreter and a Provenance attesting it; disagreeing keeps it
//! preliminary with a coded reason; both are review records that can be counted, and audited.
//! A signed report is never overwritten by a later assessment, and every sign-off that cannot
//! be is refused in FHIR's form.

use serde_json::{Value, json};

use crate::authorization::{AUDIENCE, client_with, spawn_smart_app};
use crate::cds::audited;
use crate::helpers::{FHIR_JSON, TestApp, assert_outcome, assert_valid_fhir, spawn_app};
use crate::issuer::TestIssuer;
use crate::risk_assessment::{assess, of_type, patient_with_record};

const CODE_SYSTEM: &str = "https://prognostics.example.org/fhir/CodeSystem/prognostics";
const ONCOLOGIST: &str = "Practitioner/onc-1";

fn sign() -> Value {
    json!({"resourceType": "Parameters", "parameter": [{"name": "decision", "valueCode": "sign"}]})
}

fn disagree(reason: &str, comment: &str) -> Value {
    json!({"resourceType": "Parameters", "parameter": [
        {"name": "decision", "valueCode": "disagree"},
        {"name": "reason", "valueCoding": {"system": CODE_SYSTEM, "code": reason}},
        {"name": "comment", "valueString": comment},
    ]})
}

/// A token of a clinician (`fhir_user`) in `patient`'s chart, as a SMART app gets it.
fn clinician_token(issuer: &TestIssuer, patient: &str, fhir_user: &str) -> reqwest::Client {
    let mut claims = issuer.claims(
        AUDIENCE,
        "risk-view",
        "launch openid fhirUser patient/*.rs patient/DiagnosticReport.u",
        Some(patient),
    );
    claims["fhirUser"] = json!(fhir_user);
    client_with(&issuer.token(&claims))
}

/// Files an assessment of a new patient; returns (patient, report id).
async fn assessed_patient(app: &TestApp) -> (String, String) {
    let patient = patient_with_record(app, true).await;
    let response = assess(app, &patient, &json!({"resourceType": "Parameters"})).await;
    assert_eq!(response.status(), 200);
    let bundle: Value = response.json().await.unwrap();
    let report = of_type(&bundle, "DiagnosticReport")[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    (patient, report)
}

async fn sign_off(
    client: &reqwest::Client,
    app: &TestApp,
    report: &str,
    body: &Value,
) -> reqwest::Response {
    client
        .post(app.url(&format!("DiagnosticReport/{report}/$sign-off")))
        .header("content-type", FHIR_JSON)
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

async fn count(app: &TestApp, code: &str) -> u64 {
    app.search(&format!("Basic?code={CODE_SYSTEM}|{code}&_summary=count"))
        .await["total"]
        .as_u64()
        .unwrap()
}

#[tokio::test]
async fn a_signed_report_is_final_attested_counted_and_never_overwritten() {
    let issuer = TestIssuer::with_rsa_key().await;
    let app = spawn_smart_app(&issuer, |_| {}).await;
    let (patient, report) = assessed_patient(&app).await;
    let oncologist = clinician_token(&issuer, &patient, ONCOLOGIST);

    let response = sign_off(&oncologist, &app, &report, &sign()).await;
    assert_eq!(response.status(), 200);
    let bundle: Value = response.json().await.unwrap();
    let signed = of_type(&bundle, "DiagnosticReport")[0];
    assert_eq!(signed["status"], "final");
    assert_eq!(signed["resultsInterpreter"][0]["reference"], ONCOLOGIST);
    assert_eq!(signed["meta"]["versionId"], "2");
    let provenance = of_type(&bundle, "Provenance")[0];
    assert_eq!(
        provenance["agent"][0]["type"]["coding"][0]["code"],
        "attester"
    );
    assert_eq!(provenance["agent"][0]["who"]["reference"], ONCOLOGIST);
    assert_eq!(
        provenance["target"][0]["reference"],
        format!("DiagnosticReport/{report}/_history/2")
    );
    let review = of_type(&bundle, "Basic")[0];
    assert_eq!(review["code"]["coding"][0]["code"], "assessment-signed");
    assert_eq!(review["author"]["reference"], ONCOLOGIST);
    assert_valid_fhir(
        "the signed report, its attestation and review",
        &[signed.clone(), provenance.clone(), review.clone()],
    );

    // What is stored is what was answered, and the review is counted.
    let stored: Value = app
        .get(&format!("DiagnosticReport/{report}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(stored["status"], "final");
    assert_eq!(count(&app, "assessment-signed").await, 1);
    let events = audited(&app, &format!("patient=Patient/{patient}"), "sign-off", 1).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["outcome"], "0");
    assert!(
        events[0]["agent"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["who"]["reference"] == ONCOLOGIST || a["altId"] == ONCOLOGIST),
        "the audit record names the clinician: {}",
        events[0]
    );

    // Nor is it changed or deleted through the REST API.
    let mut edited = stored.clone();
    edited["status"] = json!("amended");
    assert_outcome(
        app.put(&format!("DiagnosticReport/{report}"), &edited, None)
            .await,
        409,
    )
    .await;
    assert_outcome(app.delete(&format!("DiagnosticReport/{report}")).await, 409).await;

    // The same assessment asked again returns the signed report as it is.
    let again: Value = assess(&app, &patient, &json!({"resourceType": "Parameters"}))
        .await
        .json()
        .await
        .unwrap();
    let report_again = of_type(&again, "DiagnosticReport")[0];
    assert_eq!(report_again["id"], report.as_str());
    assert_eq!(report_again["status"], "final");
    assert_eq!(report_again["meta"]["versionId"], "2");

    // A new result on record makes a newer assessment: filed beside, preliminary.
    app.create(&json!({"resourceType": "Observation", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "21893-3"}]},
        "subject": {"reference": format!("Patient/{patient}")},
        "effectiveDateTime": chrono::Utc::now().format("%Y-%m-%d").to_string(),
        "valueInteger": 5}))
        .await;
    let newer: Value = assess(&app, &patient, &json!({"resourceType": "Parameters"}))
        .await
        .json()
        .await
        .unwrap();
    let newer_report = of_type(&newer, "DiagnosticReport")[0];
    assert_ne!(newer_report["id"], report.as_str());
    assert_eq!(newer_report["status"], "preliminary");
    let kept: Value = app
        .get(&format!("DiagnosticReport/{report}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(kept["status"], "final");
    assert_eq!(kept["meta"]["versionId"], "2");
}

#[tokio::test]
async fn a_disagreement_keeps_the_report_preliminary_with_its_reason() {
    let issuer = TestIssuer::with_rsa_key().await;
    let app = spawn_smart_app(&issuer, |_| {}).await;
    let (patient, report) = assessed_patient(&app).await;
    let oncologist = clinician_token(&issuer, &patient, ONCOLOGIST);
    let comment = "grade was revised to 2 at the tumour board";

    let response = sign_off(
        &oncologist,
        &app,
        &report,
        &disagree("override-inputs-wrong", comment),
    )
    .await;
    assert_eq!(response.status(), 200);
    let bundle: Value = response.json().await.unwrap();
    assert_eq!(
        of_type(&bundle, "DiagnosticReport")[0]["status"],
        "preliminary"
    );
    assert!(of_type(&bundle, "Provenance").is_empty());
    let review = of_type(&bundle, "Basic")[0];
    assert_eq!(review["code"]["coding"][0]["code"], "assessment-disagreed");
    let text = review.to_string();
    assert!(text.contains("override-inputs-wrong") && text.contains(comment));
    assert!(text.contains(&format!("DiagnosticReport/{report}")));
    assert!(text.contains(&format!("RiskAssessment/{report}")));
    assert_valid_fhir("the disagreement", std::slice::from_ref(review));

    // Searchable by patient and counted; the report is still there to be signed by another.
    let found = app
        .search(&format!(
            "Basic?subject=Patient/{patient}&author={ONCOLOGIST}"
        ))
        .await;
    assert_eq!(found["total"], 1);
    assert_eq!(count(&app, "assessment-disagreed").await, 1);
    assert_eq!(count(&app, "assessment-signed").await, 0);
    let twice = sign_off(
        &oncologist,
        &app,
        &report,
        &disagree("override-inputs-wrong", comment),
    )
    .await;
    assert_outcome(twice, 409).await;
    assert_eq!(count(&app, "assessment-disagreed").await, 1);
    let colleague = clinician_token(&issuer, &patient, "Practitioner/onc-2");
    let response = sign_off(&colleague, &app, &report, &sign()).await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn sign_offs_that_cannot_be_are_refused_in_fhirs_form_and_audited() {
    let issuer = TestIssuer::with_rsa_key().await;
    let app = spawn_smart_app(&issuer, |_| {}).await;
    let (patient, report) = assessed_patient(&app).await;
    let (other_patient, other_report) = assessed_patient(&app).await;
    let oncologist = clinician_token(&issuer, &patient, ONCOLOGIST);

    // Another patient's report, from this patient's chart.
    assert_outcome(
        sign_off(&oncologist, &app, &other_report, &sign()).await,
        403,
    )
    .await;
    // A `patient` that is not the report's.
    let mut named = sign();
    named["parameter"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "patient", "valueReference": {"reference": format!("Patient/{other_patient}")}}));
    let admin = &app.client;
    let mut as_system = named.clone();
    as_system["parameter"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "clinician", "valueReference": {"reference": ONCOLOGIST}}));
    assert_outcome(sign_off(admin, &app, &report, &as_system).await, 400).await;
    // A user who is not a practitioner, and a user naming someone else.
    let patient_user = clinician_token(&issuer, &patient, &format!("Patient/{patient}"));
    assert_outcome(sign_off(&patient_user, &app, &report, &sign()).await, 403).await;
    let mut impersonating = sign();
    impersonating["parameter"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "clinician", "valueReference": {"reference": "Practitioner/onc-2"}}));
    assert_outcome(
        sign_off(&oncologist, &app, &report, &impersonating).await,
        403,
    )
    .await;
    // A system token must say who signs.
    assert_outcome(sign_off(admin, &app, &report, &sign()).await, 400).await;
    // Malformed decisions.
    for body in [
        json!({"resourceType": "Parameters"}),
        json!({"resourceType": "Parameters", "parameter": [{"name": "decision", "valueCode": "maybe"}]}),
        disagree("override-because", "x"),
        json!({"resourceType": "Parameters", "parameter": [{"name": "decision", "valueCode": "disagree"}]}),
        json!({"resourceType": "Bundle"}),
    ] {
        assert_outcome(sign_off(&oncologist, &app, &report, &body).await, 400).await;
    }
    assert_outcome(
        sign_off(&oncologist, &app, &report, &json!("not json{")).await,
        400,
    )
    .await;
    // No such report; a report that is not a risk report.
    assert_outcome(
        sign_off(admin, &app, "no-such-report", &as_system).await,
        404,
    )
    .await;
    let lab = app
        .create(
            &json!({"resourceType": "DiagnosticReport", "status": "final",
            "code": {"text": "CBC"}, "subject": {"reference": format!("Patient/{patient}")}}),
        )
        .await;
    let mut for_lab = sign();
    for_lab["parameter"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "clinician", "valueReference": {"reference": ONCOLOGIST}}));
    assert_outcome(
        sign_off(admin, &app, lab["id"].as_str().unwrap(), &for_lab).await,
        422,
    )
    .await;

    // Nothing above changed the report; a signature works once, then is refused.
    assert_eq!(count(&app, "assessment-signed").await, 0);
    assert_eq!(
        sign_off(&oncologist, &app, &report, &sign()).await.status(),
        200
    );
    let again = assert_outcome(sign_off(&oncologist, &app, &report, &sign()).await, 409).await;
    assert!(
        again["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains(ONCOLOGIST),
        "{again}"
    );
    let colleague = clinician_token(&issuer, &patient, "Practitioner/onc-2");
    assert_outcome(
        sign_off(
            &colleague,
            &app,
            &report,
            &disagree("override-clinical-judgement", ""),
        )
        .await,
        409,
    )
    .await;
    assert_eq!(count(&app, "assessment-signed").await, 1);
    let failures: Vec<Value> = audited(&app, &format!("patient=Patient/{patient}"), "sign-off", 10)
        .await
        .into_iter()
        .filter(|e| e["outcome"] == "4")
        .collect();
    assert!(failures.len() >= 9, "{} refusals audited", failures.len());
}

#[tokio::test]
async fn without_tokens_the_clinician_is_named_in_the_request() {
    let app = spawn_app().await;
    let (_, report) = assessed_patient(&app).await;
    assert_outcome(
        app.post(&format!("DiagnosticReport/{report}/$sign-off"), &sign())
            .await,
        400,
    )
    .await;
    let mut named = sign();
    named["parameter"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "clinician", "valueReference": {"reference": ONCOLOGIST}}));
    let response = app
        .post(&format!("DiagnosticReport/{report}/$sign-off"), &named)
        .await;
    assert_eq!(response.status(), 200);
    let bundle: Value = response.json().await.unwrap();
    assert_eq!(
        of_type(&bundle, "DiagnosticReport")[0]["resultsInterpreter"][0]["reference"],
        ONCOLOGIST
    );
}
