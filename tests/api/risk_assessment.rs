//! `$risk-assessment` with the default model over what FHIR feeds stored: the Bundle's
//! resources, their filing and search, idempotence, the asynchronous pattern, a prediction made
//! without part of the record, and the errors (unknown patient, nothing usable, bad
//! parameters, no model).

use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_outcome, assert_valid_fhir, spawn_app, spawn_app_with};

const LOINC: &str = "http://loinc.org";
const SNOMED: &str = "http://snomed.info/sct";
const UCUM: &str = "http://unitsofmeasure.org";

pub(crate) fn coded(system: &str, code: &str) -> Value {
    json!({"coding": [{"system": system, "code": code}]})
}

/// A patient with the facts the default model takes, posted as an EHR feed would, diagnosed
/// with breast cancer today; with `pathology` false only age, menopausal status, grade and
/// hormone therapy.
pub(crate) async fn patient_with_record(app: &TestApp, pathology: bool) -> String {
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    patient_diagnosed(app, &today, pathology).await
}

/// A patient as [`patient_with_record`] describes, with breast cancer diagnosed on `date`.
pub(crate) async fn patient_diagnosed(app: &TestApp, date: &str, pathology: bool) -> String {
    let patient = app
        .create(&json!({"resourceType": "Patient", "gender": "female", "birthDate": "1954-01-01"}))
        .await;
    let id = patient["id"].as_str().unwrap().to_owned();
    let subject = json!({"reference": format!("Patient/{id}")});
    app.create(&json!({"resourceType": "Condition", "subject": subject,
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "372064008"}]},
        "onsetDateTime": date}))
        .await;
    let observation = |code: Value, key: &str, value: Value| {
        let mut o = json!({"resourceType": "Observation", "status": "final", "code": code,
            "subject": subject, "effectiveDateTime": "2023-11-20"});
        o[key] = value;
        o
    };
    let mut resources = vec![
        observation(
            coded(SNOMED, "161712005"),
            "valueCodeableConcept",
            coded(SNOMED, "76498008"),
        ),
        observation(
            coded(LOINC, "33732-9"),
            "valueCodeableConcept",
            coded(SNOMED, "1663004"),
        ),
        json!({"resourceType": "MedicationStatement", "status": "not-taken", "subject": subject,
            "effectiveDateTime": "2023-12-01",
            "medicationCodeableConcept": coded("http://www.nlm.nih.gov/research/umls/rxnorm", "10324")}),
    ];
    if pathology {
        resources.push(observation(
            coded(LOINC, "21889-1"),
            "valueQuantity",
            json!({"value": 21, "unit": "mm", "system": UCUM, "code": "mm"}),
        ));
        resources.push(observation(
            coded(LOINC, "21893-3"),
            "valueInteger",
            json!(3),
        ));
        resources.push(observation(
            coded(LOINC, "31207-4"),
            "valueQuantity",
            json!({"value": 48, "system": UCUM, "code": "fmol/mg"}),
        ));
        resources.push(observation(
            coded(LOINC, "14130-9"),
            "valueQuantity",
            json!({"value": 66, "system": UCUM, "code": "fmol/mg"}),
        ));
    }
    for resource in resources {
        app.create(&resource).await;
    }
    id
}

pub(crate) async fn assess(app: &TestApp, patient: &str, parameters: &Value) -> reqwest::Response {
    app.post(&format!("Patient/{patient}/$risk-assessment"), parameters)
        .await
}

/// Asks for an assessment of `patient` with `Prefer: respond-async`: the status URL of the
/// 202.
pub(crate) async fn assess_async(app: &TestApp, patient: &str) -> String {
    let response = app
        .client
        .post(app.url(&format!("Patient/{patient}/$risk-assessment")))
        .header("content-type", "application/fhir+json")
        .header("prefer", "respond-async")
        .body(json!({"resourceType": "Parameters"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    response.headers()["content-location"]
        .to_str()
        .unwrap()
        .to_owned()
}

pub(crate) fn of_type<'a>(bundle: &'a Value, t: &str) -> Vec<&'a Value> {
    bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["resource"])
        .filter(|r| r["resourceType"] == t)
        .collect()
}

/// The references of a RiskAssessment's basis.
fn basis_of(risk: &Value) -> Vec<&str> {
    risk["basis"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["reference"].as_str().unwrap())
        .collect()
}

fn ai_asserted(resource: &Value) -> bool {
    resource["meta"]["security"]
        .as_array()
        .is_some_and(|s| s.iter().any(|l| l["code"] == "AIAST"))
}

#[tokio::test]
async fn an_assessment_is_filed_found_by_search_and_not_duplicated() {
    let app = spawn_app().await;
    let patient = patient_with_record(&app, true).await;
    let response = assess(&app, &patient, &json!({"resourceType": "Parameters"})).await;
    assert_eq!(response.status(), 200);
    let bundle: Value = response.json().await.unwrap();
    assert_eq!(bundle["type"], "collection");
    assert!(
        of_type(&bundle, "OperationOutcome").is_empty(),
        "nothing was missing"
    );

    let report = of_type(&bundle, "DiagnosticReport")[0];
    assert_eq!(report["status"], "preliminary");
    assert_eq!(report["subject"]["reference"], format!("Patient/{patient}"));
    assert!(report["effectiveDateTime"].is_string() && report["issued"].is_string());
    assert!(
        report["conclusion"]
            .as_str()
            .unwrap()
            .contains("recurrence or death")
    );
    assert!(report["conclusionCode"][0]["coding"][0]["code"].is_string());
    let observations = of_type(&bundle, "Observation");
    assert_eq!(
        observations.len(),
        4,
        "three horizons and the log hazard ratio"
    );
    assert_eq!(report["result"].as_array().unwrap().len(), 4);

    let risk = of_type(&bundle, "RiskAssessment")[0];
    let predictions = risk["prediction"].as_array().unwrap();
    let probabilities: Vec<f64> = predictions
        .iter()
        .map(|p| p["probabilityDecimal"].as_f64().unwrap())
        .collect();
    assert_eq!(probabilities.len(), 3);
    assert!(
        probabilities.windows(2).all(|w| w[0] <= w[1]) && probabilities[2] < 1.0,
        "{probabilities:?}"
    );
    // Counted from today, her diagnosis: five years on.
    let today = chrono::Utc::now().date_naive();
    assert_eq!(predictions[2]["whenPeriod"]["start"], today.to_string());
    let end = chrono::NaiveDate::parse_from_str(
        predictions[2]["whenPeriod"]["end"].as_str().unwrap(),
        "%Y-%m-%d",
    )
    .unwrap();
    // Five years of 365.25 days from the moment of the assessment: the end date is 1826 days
    // on before 18:00 UTC, 1827 after.
    let days = (end - today).num_days();
    assert!((1826..=1827).contains(&days), "{days}");
    assert_eq!(
        predictions[0]["outcome"]["coding"][0]["code"],
        "recurrence-or-death"
    );
    assert!(predictions[0]["qualitativeRisk"]["coding"][0]["code"].is_string());
    let rationale = predictions[0]["rationale"].as_str().unwrap();
    assert!(
        rationale.contains("clinical") && rationale.contains("labs"),
        "{rationale}"
    );
    assert!(
        rationale.contains("Features that moved the risk most"),
        "{rationale}"
    );
    // The basis names the patient and each of the seven facts it used, at their versions.
    let basis = basis_of(risk);
    assert_eq!(basis.len(), 8, "{basis:?}");
    assert!(basis.iter().all(|b| b.contains("/_history/")), "{basis:?}");
    assert!(basis.iter().any(|b| b.starts_with("MedicationStatement/")));

    let provenance = of_type(&bundle, "Provenance")[0];
    let device = of_type(&bundle, "Device")[0];
    assert_eq!(
        provenance["agent"][0]["who"]["reference"],
        format!("Device/{}", device["id"].as_str().unwrap())
    );
    assert_eq!(provenance["entity"].as_array().unwrap().len(), 8);
    assert_eq!(device["deviceName"][0]["name"], "gbsg2-recurrence");
    assert!(device["version"][0]["value"].is_string());
    for resource in observations.iter().chain([&report, &risk]) {
        assert!(ai_asserted(resource), "{resource}");
    }

    // Filed: search finds them; asking again gives the same report, not a second one.
    let found = app
        .search(&format!("DiagnosticReport?subject=Patient/{patient}"))
        .await;
    assert_eq!(found["total"], 1);
    let found = app
        .search(&format!("RiskAssessment?subject=Patient/{patient}"))
        .await;
    assert_eq!(found["total"], 1);
    let again: Value = assess(&app, &patient, &json!({"resourceType": "Parameters"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(of_type(&again, "DiagnosticReport")[0]["id"], report["id"]);
    assert_eq!(
        of_type(&again, "DiagnosticReport")[0]["meta"]["versionId"],
        "1"
    );
    let type_level: Value = app
        .post(
            "Patient/$risk-assessment",
            &json!({"resourceType": "Parameters", "parameter": [
                {"name": "patient", "valueReference": {"reference": format!("Patient/{patient}")}}]}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        of_type(&type_level, "DiagnosticReport")[0]["id"],
        report["id"]
    );
    assert_eq!(
        app.search(&format!("DiagnosticReport?subject=Patient/{patient}"))
            .await["total"],
        1
    );

    // One horizon asked for: one prediction (a new assessment, filed beside the first).
    let five: Value = assess(
        &app,
        &patient,
        &json!({"resourceType": "Parameters", "parameter": [
            {"name": "horizon", "valueQuantity": {"value": 5, "system": UCUM, "code": "a"}}]}),
    )
    .await
    .json()
    .await
    .unwrap();
    let predictions = of_type(&five, "RiskAssessment")[0]["prediction"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(predictions.len(), 1);
    assert_eq!(
        predictions[0]["probabilityDecimal"].as_f64().unwrap(),
        probabilities[2]
    );
}

#[tokio::test]
async fn without_the_pathology_the_prediction_comes_back_with_a_warning() {
    let app = spawn_app().await;
    let patient = patient_with_record(&app, false).await;
    let response = assess(&app, &patient, &json!({"resourceType": "Parameters"})).await;
    assert_eq!(response.status(), 200);
    let bundle: Value = response.json().await.unwrap();
    assert_valid_fhir(
        "an assessment with a warning",
        std::slice::from_ref(&bundle),
    );
    let outcome = of_type(&bundle, "OperationOutcome")[0];
    assert_eq!(outcome["issue"][0]["severity"], "warning");
    let diagnostics = outcome["issue"][0]["diagnostics"].as_str().unwrap();
    assert!(
        diagnostics.contains("labs modality is missing") && diagnostics.contains("tsize"),
        "{diagnostics}"
    );
    let risk = of_type(&bundle, "RiskAssessment")[0];
    assert!(
        risk["note"][0]["text"]
            .as_str()
            .unwrap()
            .starts_with("Missing modality: labs")
    );
    assert!(
        risk["prediction"][0]["rationale"]
            .as_str()
            .unwrap()
            .contains("Missing modalities: labs")
    );
}

#[tokio::test]
async fn asynchronous_requests_are_polled_until_the_bundle_is_ready() {
    let app = spawn_app().await;
    let patient = patient_with_record(&app, true).await;
    let status_url = assess_async(&app, &patient).await;
    let mut bundle = None;
    for _ in 0..200 {
        let polled = app.get_url(&status_url).await;
        match polled.status().as_u16() {
            202 => tokio::time::sleep(std::time::Duration::from_millis(25)).await,
            200 => {
                bundle = Some(polled.json::<Value>().await.unwrap());
                break;
            }
            other => panic!("status {other}"),
        }
    }
    let bundle = bundle.expect("the assessment finished");
    assert_eq!(of_type(&bundle, "DiagnosticReport").len(), 1);
    let unknown = app
        .get(&format!("$risk-assessment-status/{}", uuid::Uuid::new_v4()))
        .await;
    assert_outcome(unknown, 404).await;
}

#[tokio::test]
async fn errors_are_operation_outcomes_with_their_status() {
    let app = spawn_app().await;
    let empty = json!({"resourceType": "Parameters"});
    assert_outcome(assess(&app, "nobody", &empty).await, 404).await;

    // A patient with nothing on record: not one the model is for.
    let bare = app
        .create(&json!({"resourceType": "Patient", "gender": "female"}))
        .await;
    let bare = bare["id"].as_str().unwrap();
    let outcome = assert_outcome(assess(&app, bare, &empty).await, 422).await;
    assert!(
        outcome["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("no primary breast cancer on record"),
        "{outcome}"
    );

    let patient = patient_with_record(&app, true).await;
    let cases = [
        (json!({"resourceType": "Patient"}), 400, "Parameters"),
        (
            json!({"resourceType": "Parameters", "parameter": [{"name": "colour", "valueString": "red"}]}),
            400,
            "unknown parameter",
        ),
        (
            json!({"resourceType": "Parameters", "parameter": [{"name": "horizon", "valueString": "2y"}]}),
            400,
            "does not predict at",
        ),
        (
            json!({"resourceType": "Parameters", "parameter": [{"name": "horizon", "valueString": "soon"}]}),
            400,
            "horizon",
        ),
        (
            json!({"resourceType": "Parameters", "parameter": [{"name": "model", "valueString": "other-model"}]}),
            503,
            "not loaded",
        ),
    ];
    for (body, status, expected) in cases {
        let outcome = assert_outcome(assess(&app, &patient, &body).await, status).await;
        let diagnostics = outcome["issue"][0]["diagnostics"].as_str().unwrap();
        assert!(diagnostics.contains(expected), "{body}: {diagnostics}");
    }
    let missing = app.post("Patient/$risk-assessment", &empty).await;
    assert_outcome(missing, 400).await;

    let without_model = spawn_app_with(|s| s.risk.model = Default::default()).await;
    let patient = patient_with_record(&without_model, true).await;
    let outcome = assert_outcome(assess(&without_model, &patient, &empty).await, 503).await;
    assert!(
        outcome["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("no risk model")
    );
}

/// The profiles, the code system, the operation definition and the examples in fhir-profiles/
/// are valid R4 resources, and the examples conform to the profiles they claim.
#[test]
fn the_published_conformance_resources_and_examples_are_valid() {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fhir-profiles");
    let mut resources = Vec::new();
    for dir in [root.clone(), root.join("examples")] {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "json") {
                resources.push(serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap());
            }
        }
    }
    assert!(resources.len() >= 9);
    assert_valid_fhir("fhir-profiles/", &resources);
}

/// A patient known to the EHR (the Medplum-based FHIR test server holding the mCODE examples)
/// is assessed from what the EHR holds and what feeds filed here under her medical record
/// number; when the EHR then fails, the assessment still comes back, with a warning.
#[tokio::test]
async fn an_ehr_patient_is_assessed_from_the_ehr_and_the_feeds_filed_here() {
    let Some(server) = tokio::task::spawn_blocking(|| {
        crate::ehr::start_fhir_server(&crate::ehr::diagnosed_a_year_ago())
    })
    .await
    .unwrap() else {
        return;
    };
    let ehr_base = server.base_url.clone();
    let app = spawn_app_with(|s| {
        s.ehr.base_url = Some(ehr_base.clone());
        s.ehr.timeout_secs = 2;
        s.ehr.retries = 0;
    })
    .await;
    // An HL7 feed filed her positive nodes under a Patient of its own, with her MRN.
    let local = app
        .create(&json!({"resourceType": "Patient", "identifier": [
            {"system": "http://hospital.example.org", "value": "MRN1234"}]}))
        .await;
    let local = local["id"].as_str().unwrap();
    let nodes = app
        .create(&json!({"resourceType": "Observation", "status": "final",
            "code": coded(LOINC, "21893-3"), "subject": {"reference": format!("Patient/{local}")},
            "effectiveDateTime": "2018-03-20", "valueInteger": 2}))
        .await;
    // And her diagnosis (as the EHR has it, a year ago).
    let a_year_ago = (chrono::Utc::now() - chrono::Duration::days(365))
        .format("%Y-%m-%d")
        .to_string();
    app.create(&json!({"resourceType": "Condition", "subject": {"reference": format!("Patient/{local}")},
        "code": coded("http://hl7.org/fhir/sid/icd-10-cm", "C50.912"), "onsetDateTime": a_year_ago}))
        .await;

    let patient = "cancer-patient-jenny-m";
    let response = assess(&app, patient, &json!({"resourceType": "Parameters"})).await;
    assert_eq!(response.status(), 200);
    let bundle: Value = response.json().await.unwrap();
    assert_valid_fhir("an assessment from the EHR", std::slice::from_ref(&bundle));
    // What she lacks (menopausal status, grade …) is named, though both modalities are there.
    let issues = of_type(&bundle, "OperationOutcome")[0]["issue"].to_string();
    assert!(
        issues.contains("inputs not on record") && issues.contains("menostat"),
        "{issues}"
    );
    let risk = of_type(&bundle, "RiskAssessment")[0];
    let basis = basis_of(risk);
    // Her Patient, copied here so that the results have a subject; the tumour size from the
    // EHR (an absolute reference); the nodes filed here under her MRN.
    assert_eq!(
        basis[0],
        format!("Patient/{patient}/_history/1"),
        "{basis:?}"
    );
    assert!(
        basis
            .iter()
            .any(|b| b.starts_with(&format!("{}/Observation/", server.base_url))),
        "{basis:?}"
    );
    assert!(
        basis.contains(
            &format!("Observation/{}/_history/1", nodes["id"].as_str().unwrap()).as_str()
        ),
        "{basis:?}"
    );
    let copy = app.get(&format!("Patient/{patient}")).await;
    assert_eq!(copy.status(), 200);
    assert_eq!(
        app.search(&format!("RiskAssessment?subject=Patient/{patient}"))
            .await["total"],
        1
    );

    // The EHR goes away: the assessment comes back from what is here, with a warning.
    drop(server);
    let response = assess(&app, patient, &json!({"resourceType": "Parameters"})).await;
    assert_eq!(response.status(), 200);
    let bundle: Value = response.json().await.unwrap();
    let outcome = of_type(&bundle, "OperationOutcome")[0];
    let diagnostics = outcome["issue"][0]["diagnostics"].as_str().unwrap();
    assert!(
        diagnostics.contains("EHR could not be reached"),
        "{diagnostics}"
    );
    assert_eq!(of_type(&bundle, "RiskAssessment").len(), 1);
    // A patient held only by the EHR, while it is away: 503 naming the EHR, not 404.
    let away = assess(
        &app,
        "cancer-patient-john-anyperson",
        &json!({"resourceType": "Parameters"}),
    )
    .await;
    let outcome = assert_outcome(away, 503).await;
    assert!(
        outcome["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("EHR could not be asked"),
        "{outcome}"
    );
}

/// With one assessment allowed at a time, a second one while the first waits on a slow EHR is
/// refused with 429; a synchronous request that outlasts the time limit gets 503 with
/// Retry-After, and asking again later returns the assessment it went on to file.
#[tokio::test]
async fn a_full_queue_answers_429_and_a_slow_assessment_503_then_its_result() {
    let Some(server) = crate::ehr::slow_ehr_with_a_diagnosis().await else {
        return;
    };
    let ehr = server.base_url.clone();
    let app = spawn_app_with(|s| {
        s.ehr.base_url = Some(ehr);
        s.ehr.timeout_secs = 10;
        s.risk.max_concurrent = 1;
        s.risk.time_limit_secs = 1;
    })
    .await;
    let patient = "cancer-patient-jenny-m";
    let empty = json!({"resourceType": "Parameters"});
    let (first, second) = tokio::join!(assess(&app, patient, &empty), async {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assess(&app, patient, &empty).await
    });
    assert_eq!(first.headers()["retry-after"], "5");
    let outcome = assert_outcome(first, 503).await;
    assert!(
        outcome["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("took longer than 1 s"),
        "{outcome}"
    );
    assert_eq!(second.status(), 429);
    // The first goes on and files its report.
    let mut filed = Value::Null;
    for _ in 0..100 {
        filed = app
            .search(&format!("DiagnosticReport?subject=Patient/{patient}"))
            .await;
        if filed["total"] == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(filed["total"], 1, "{filed}");
}

/// An accepted asynchronous request is recorded before the 202: one a stop left running is run
/// again at the next start, and its status URL then gives the Bundle.
#[tokio::test]
async fn an_accepted_request_left_running_by_a_stop_is_run_at_the_next_start() {
    let app = spawn_app().await;
    let patient = patient_with_record(&app, true).await;
    let (dir, database_url) = app.stop().await;
    // As the service records it before answering 202, then stops before running it.
    let mut settings = prognostics::config::Settings::default();
    settings.storage.data_dir = dir.path().to_path_buf();
    if let Some(url) = &database_url {
        settings.database.url = Some(secrecy::SecretString::from(url.clone()));
    }
    let store = prognostics::store::Store::connect(&settings).await.unwrap();
    let request = prognostics::pipeline::risk::AssessmentRequest {
        patient: prognostics::domain::ResourceId::parse(&patient).unwrap(),
        model: None,
        study: None,
        horizons: vec![
            prognostics::domain::Horizon::new(5.0, prognostics::domain::TimeUnit::Years).unwrap(),
        ],
    };
    store
        .insert_risk_job(
            "left-running",
            &request.to_json(),
            "http://example.org/fhir",
            // Its process died with it: the lease has run out.
            std::time::Duration::ZERO,
        )
        .await
        .unwrap();
    store.close().await;
    drop(store);

    let app = crate::helpers::spawn_app_in(dir, database_url, |_| {}).await;
    let mut bundle = None;
    for _ in 0..200 {
        let polled = app.get("$risk-assessment-status/left-running").await;
        match polled.status().as_u16() {
            202 => tokio::time::sleep(std::time::Duration::from_millis(25)).await,
            200 => {
                bundle = Some(polled.json::<Value>().await.unwrap());
                break;
            }
            other => panic!("status {other}: {}", polled.text().await.unwrap()),
        }
    }
    let bundle = bundle.expect("the request was run after the restart");
    let risk = of_type(&bundle, "RiskAssessment")[0];
    assert_eq!(
        risk["prediction"].as_array().unwrap().len(),
        1,
        "its one horizon"
    );
    assert!(
        bundle["entry"][0]["fullUrl"]
            .as_str()
            .unwrap()
            .starts_with("http://example.org/fhir/")
    );
}
