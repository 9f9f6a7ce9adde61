//! Who a model answers for and from when: patients outside the default model's population are
//! refused with the reasons (and the refusal audited), the index date is read from the record,
//! and a patient event-free for years gets the risk from now, given none so far, checked
//! against the model's own survival curve (the default model, and a model trained here on a
//! cohort with a falling hazard and long follow-up).

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::helpers::{assert_outcome, assert_valid_fhir, spawn_app, spawn_app_with};
use crate::risk_assessment::{assess, coded, of_type, patient_diagnosed};

const SNOMED: &str = "http://snomed.info/sct";

/// A patient outside the model's intended population gets no score: 422 naming every unmet
/// criterion, an AuditEvent of the refusal, and nothing filed as a risk.
#[tokio::test]
async fn a_patient_the_model_is_not_for_is_refused_with_the_reasons_and_audited() {
    let app = spawn_app().await;
    let man = app
        .create(&json!({"resourceType": "Patient", "gender": "male", "birthDate": "1951-01-20"}))
        .await;
    let man = man["id"].as_str().unwrap().to_owned();
    app.create(
        &json!({"resourceType": "Condition", "subject": {"reference": format!("Patient/{man}")},
        "code": coded(SNOMED, "254637007"), "onsetDateTime": "2025-04-01"}),
    )
    .await;
    let outcome = assert_outcome(
        assess(&app, &man, &json!({"resourceType": "Parameters"})).await,
        422,
    )
    .await;
    let diagnostics = outcome["issue"][0]["diagnostics"].as_str().unwrap();
    assert!(
        diagnostics.contains("male") && diagnostics.contains("no primary breast cancer on record"),
        "{diagnostics}"
    );
    for filed in [
        "DiagnosticReport",
        "RiskAssessment",
        "Observation?code=event-probability",
    ] {
        let query = if filed.contains('?') {
            format!("{filed}&subject=Patient/{man}")
        } else {
            format!("{filed}?subject=Patient/{man}")
        };
        assert_eq!(app.search(&query).await["total"], 0, "{filed}");
    }
    // The refusal is in the audit trail twice: the request (422, with its diagnostics) and
    // the model's refusal (its Device named).
    let refusals = app
        .audit_events(&format!("patient=Patient/{man}&outcome=4"))
        .await;
    let by_model = refusals
        .iter()
        .find(|e| {
            e["entity"].as_array().is_some_and(|es| {
                es.iter().any(|x| {
                    x["what"]["reference"]
                        .as_str()
                        .is_some_and(|r| r.starts_with("Device/"))
                })
            })
        })
        .unwrap_or_else(|| panic!("{refusals:?}"));
    assert!(
        by_model["outcomeDesc"]
            .as_str()
            .unwrap()
            .contains("no primary breast cancer on record")
    );
    assert_valid_fhir("the audit trail's AuditEvents", &refusals);

    // A woman whose recurrence is on record: the event has happened, nothing to predict.
    let patient = patient_diagnosed(&app, "2024-01-10", true).await;
    app.create(&json!({"resourceType": "Condition", "subject": {"reference": format!("Patient/{patient}")},
        "code": coded("http://hl7.org/fhir/sid/icd-10-cm", "C78.01"), "onsetDateTime": "2025-06-01"}))
        .await;
    let outcome = assert_outcome(
        assess(&app, &patient, &json!({"resourceType": "Parameters"})).await,
        422,
    )
    .await;
    assert!(
        outcome["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("the predicted event has happened"),
        "{outcome}"
    );
}

fn default_model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models/risk/gbsg2-recurrence")
}

/// S(t) = exp(−H₀(t)·e^risk) of a model bundle's Breslow baseline (times in days).
fn model_survival(bundle: &Path, risk: f64, days: f64) -> f64 {
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(bundle.join("manifest.json")).unwrap()).unwrap();
    let times = manifest["baseline"]["times"].as_array().unwrap();
    let cumulative = manifest["baseline"]["cumulative"].as_array().unwrap();
    let at = times
        .iter()
        .take_while(|t| t.as_f64().unwrap() <= days)
        .count();
    let hazard = if at == 0 {
        0.0
    } else {
        cumulative[at - 1].as_f64().unwrap()
    };
    (-hazard * risk.exp()).exp()
}

/// Three years past her diagnosis without recurrence, a patient's risk by a horizon is counted
/// from now, given none so far: 1 − S(3 y + h) / S(3 y) of the default model; its 5-year
/// horizon (8 years after diagnosis) lies past GBSG2's follow-up and is left out with a caution.
#[tokio::test]
async fn three_years_event_free_the_default_models_risk_is_conditional_on_it() {
    let app = spawn_app().await;
    let three_years_ago = (chrono::Utc::now() - chrono::Duration::days(1096))
        .format("%Y-%m-%d")
        .to_string();
    let patient = patient_diagnosed(&app, &three_years_ago, true).await;
    let response = assess(&app, &patient, &json!({"resourceType": "Parameters"})).await;
    assert_eq!(response.status(), 200);
    let bundle: Value = response.json().await.unwrap();
    assert_valid_fhir("a conditional assessment", std::slice::from_ref(&bundle));
    let risk = of_type(&bundle, "RiskAssessment")[0];
    let predictions = risk["prediction"].as_array().unwrap();
    // 1 and 3 years from now (4 and 6 years after diagnosis); 5 years (8) lies past the
    // default model's follow-up.
    assert_eq!(predictions.len(), 2, "{predictions:?}");
    let issues = of_type(&bundle, "OperationOutcome")[0]["issue"].to_string();
    assert!(issues.contains("past the model's follow-up"), "{issues}");
    let rationale = predictions[0]["rationale"].as_str().unwrap();
    assert!(
        rationale.contains("Counted from the date of diagnosis")
            && rationale.contains(&three_years_ago)
            && rationale.contains("given none so far"),
        "{rationale}"
    );
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    assert_eq!(predictions[1]["whenPeriod"]["start"], today);

    let log_hazard = log_hazard_ratio(&bundle);
    let elapsed = 1096.0;
    let horizon = 1095.75;
    let s = |t: f64| model_survival(&default_model(), log_hazard, t);
    let conditional = 1.0 - s(elapsed + horizon) / s(elapsed);
    let reported = predictions[1]["probabilityDecimal"].as_f64().unwrap();
    assert!(
        (reported - conditional).abs() < 2e-3,
        "{reported} vs 1 − S(6y)/S(3y) = {conditional}"
    );
}

fn log_hazard_ratio(bundle: &Value) -> f64 {
    of_type(bundle, "Observation")
        .into_iter()
        .find(|o| o["code"]["coding"][0]["code"] == "log-hazard-ratio")
        .unwrap()["valueQuantity"]["value"]
        .as_f64()
        .unwrap()
}

/// A cohort whose hazard falls with time (Weibull, shape 0.6, scale 6 years; older patients
/// at higher risk), followed up to 15 years: `time,event,age` in days.
fn falling_hazard_cohort(rows: usize) -> String {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut uniform = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    let mut text = String::from("time,event,age\n");
    for _ in 0..rows {
        let age = 40.0 + 40.0 * uniform();
        let scale = 6.0 * 365.25 * (-(0.03 * (age - 60.0)) / 0.6).exp();
        let event_time = scale * (-uniform().ln()).powf(1.0 / 0.6);
        let censored_at = 365.25 * (1.0 + 14.0 * uniform());
        let (time, event) = if event_time <= censored_at {
            (event_time, 1)
        } else {
            (censored_at, 0)
        };
        text += &format!("{:.0},{event},{age:.1}\n", time.max(1.0));
    }
    text
}

/// With a model whose follow-up reaches 15 years and whose hazard falls, a patient three years
/// past her diagnosis without the event has a lower 5-year risk from now than a patient like
/// her at diagnosis, equal to 1 − S(8 y) / S(3 y) of the model.
#[tokio::test]
async fn a_patient_event_free_for_three_years_has_a_lower_risk_from_now() {
    use prognostics::domain::{Horizon, TimeUnit};
    use prognostics::features::InputSpec;
    use prognostics::fusion::TrainSettings;
    use prognostics::training::{ColumnRoles, TrainOptions, train};

    let dir = tempfile::tempdir().unwrap();
    let cohort = dir.path().join("cohort.csv");
    std::fs::write(&cohort, falling_hazard_cohort(800)).unwrap();
    let inputs: InputSpec = toml::from_str(
        r#"
        required = ["age"]
        [population]
        sex = ["female"]
        require = ["https://prognostics.example.org/fhir/ValueSet/primary-breast-cancer"]
        [population.index]
        from = ["diagnosis"]
        [clinical]
        age = true
        "#,
    )
    .unwrap();
    let bundle = dir.path().join("falling-hazard");
    let options = TrainOptions {
        cohort,
        roles: ColumnRoles {
            time: "time".into(),
            event: "event".into(),
            ..ColumnRoles::default()
        },
        out: bundle.clone(),
        name: "falling-hazard".into(),
        settings: TrainSettings {
            seed: 3,
            members: 1,
            max_epochs: 60,
            patience: 15,
            ..TrainSettings::default()
        },
        test_fraction: 0.2,
        horizons: vec![Horizon::new(5.0, TimeUnit::Years).unwrap()],
        time_unit: TimeUnit::Days,
        triage_recall: 0.9,
        subgroups: vec![],
        inputs: Some(inputs),
    };
    tokio::task::spawn_blocking(move || train(&options, &mut |_| {}).map(|_| ()))
        .await
        .unwrap()
        .unwrap();

    let model = bundle.clone();
    let app = spawn_app_with(move |s| s.risk.model = model).await;
    let today = chrono::Utc::now();
    let diagnosed = |days_ago: i64| {
        (today - chrono::Duration::days(days_ago))
            .format("%Y-%m-%d")
            .to_string()
    };
    // Two women of the same age at diagnosis: one diagnosed today, one three years ago.
    let mut risks = Vec::new();
    for (born, diagnosis) in [
        ("1960-06-01", diagnosed(0)),
        ("1957-06-01", diagnosed(1096)),
    ] {
        let patient = app
            .create(&json!({"resourceType": "Patient", "gender": "female", "birthDate": born}))
            .await;
        let id = patient["id"].as_str().unwrap().to_owned();
        app.create(&json!({"resourceType": "Condition",
            "subject": {"reference": format!("Patient/{id}")},
            "code": coded(SNOMED, "372064008"), "onsetDateTime": diagnosis}))
            .await;
        let response = assess(&app, &id, &json!({"resourceType": "Parameters"})).await;
        assert_eq!(response.status(), 200);
        let bundle: Value = response.json().await.unwrap();
        let risk = of_type(&bundle, "RiskAssessment")[0]["prediction"][0]["probabilityDecimal"]
            .as_f64()
            .unwrap();
        risks.push((risk, log_hazard_ratio(&bundle)));
    }
    // Without a birth date its only input is unknown, and it declares that it does not answer
    // without it.
    let ageless = app
        .create(&json!({"resourceType": "Patient", "gender": "female"}))
        .await;
    let ageless = ageless["id"].as_str().unwrap().to_owned();
    app.create(&json!({"resourceType": "Condition",
        "subject": {"reference": format!("Patient/{ageless}")},
        "code": coded(SNOMED, "372064008"), "onsetDateTime": diagnosed(30)}))
        .await;
    let outcome = assert_outcome(
        assess(&app, &ageless, &json!({"resourceType": "Parameters"})).await,
        422,
    )
    .await;
    assert!(
        outcome["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("does not answer without age"),
        "{outcome}"
    );

    let [(at_diagnosis, _), (three_years_on, log_hazard)] = risks[..] else {
        unreachable!()
    };
    let s = |t: f64| model_survival(&bundle, log_hazard, t);
    let conditional = 1.0 - s(1096.0 + 1826.25) / s(1096.0);
    assert!(
        (three_years_on - conditional).abs() < 2e-3,
        "{three_years_on} vs 1 − S(8y)/S(3y) = {conditional}"
    );
    assert!(
        three_years_on < at_diagnosis,
        "three years on {three_years_on}, at diagnosis {at_diagnosis}"
    );
}
