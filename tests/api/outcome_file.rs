//! An outcome file for a past cohort: patients assessed a year and more ago, whose outcomes a
//! registry sends later as a CSV file. `prognostics monitor outcomes --file` files them as the
//! facts the monitoring reads (a disease status, a date of death), so that the assessments are
//! paired with them; a second import of the same file files nothing again; a file with a
//! contradiction or an unknown patient is refused whole, naming each bad line, and files
//! nothing.

use chrono::{Duration, NaiveDate, TimeZone, Utc};
use prognostics::cli::{Command, MonitorCommand, MonitorOutcomesArgs, run};
use prognostics::config::Settings;
use prognostics::domain::{ResourceId, ResourceType};
use prognostics::pipeline::monitoring::InputSnapshot;
use prognostics::startup::{load_models, open_pipeline};
use prognostics::store::ModelInputs;
use serde_json::{Map, Value, json};

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => unreachable!(),
    }
}

/// `n` patients assessed by the default model on 2025-01-15, as the service files an
/// assessment (the RiskAssessment and the inputs kept beside it); the risk rises with `i`.
async fn past_cohort(settings: &Settings, n: usize) {
    let pipeline = open_pipeline(settings)
        .await
        .unwrap()
        .with_models(load_models(&settings.risk).await.unwrap());
    pipeline.sync_models().await.unwrap();
    let (name, version) = {
        let registry = pipeline.models();
        let d = &registry.active().unwrap().description;
        (d.name.clone(), d.version.clone())
    };
    let assessed = Utc.with_ymd_and_hms(2025, 1, 15, 10, 0, 0).unwrap();
    let mut tx = pipeline.store().begin().await.unwrap();
    for i in 0..n {
        let patient = ResourceId::parse(&format!("past-{i}")).unwrap();
        tx.write(
            ResourceType::Patient,
            &patient,
            object(json!({"resourceType": "Patient", "gender": "female",
                "birthDate": "1960-05-01",
                "identifier": [{"system": "urn:oid:2.16.840.1.113883.3.9999", "value": format!("MRN{i}")}]})),
            None,
        )
        .await
        .unwrap();
        let risk = i as f64 / n as f64;
        let prediction: Vec<Value> = [1.0, 3.0, 5.0]
            .iter()
            .map(|years: &f64| {
                json!({"probabilityDecimal": 1.0 - (-0.2 * years * (1.0 + 2.0 * risk)).exp(),
                    "whenPeriod": {"start": assessed.to_rfc3339(),
                        "end": (assessed + Duration::days((years * 365.25) as i64)).to_rfc3339()}})
            })
            .collect();
        let id = ResourceId::parse(&format!("risk-past-{i}")).unwrap();
        tx.write(
            ResourceType::RiskAssessment,
            &id,
            object(json!({"resourceType": "RiskAssessment", "status": "final",
                "subject": {"reference": format!("Patient/{patient}")},
                "method": {"text": format!("{name} {version}")}, "prediction": prediction})),
            None,
        )
        .await
        .unwrap();
        tx.keep_model_inputs(&ModelInputs {
            report: id.to_string(),
            model: name.clone(),
            version: version.clone(),
            role: "active".into(),
            created_ms: 0,
            content: serde_json::to_string(&InputSnapshot::default()).unwrap(),
        })
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    let store = pipeline.store().clone();
    drop(pipeline);
    store.close().await;
}

async fn import(settings: &Settings, file: &std::path::Path) -> anyhow::Result<()> {
    run(
        Some(Command::Monitor(MonitorCommand::Outcomes(
            MonitorOutcomesArgs {
                file: file.to_path_buf(),
            },
        ))),
        settings.clone(),
    )
    .await
    .map(|_| ())
}

/// The active model's (paired, events) as the monitoring sees them, and Observations held.
async fn paired(settings: &Settings) -> (usize, usize, u64) {
    let pipeline = open_pipeline(settings)
        .await
        .unwrap()
        .with_models(load_models(&settings.risk).await.unwrap());
    pipeline.sync_models().await.unwrap();
    let performance = pipeline.monitor_performance().await.unwrap();
    let active = performance.iter().find(|p| p.role == "active").unwrap();
    let query =
        prognostics::fhir::parse_search(ResourceType::Observation, &[], true, 1, 1).unwrap();
    let (_, observations) = pipeline
        .store()
        .search(ResourceType::Observation, &query)
        .await
        .unwrap();
    let out = (active.paired, active.events, observations);
    let store = pipeline.store().clone();
    drop(pipeline);
    store.close().await;
    out
}

#[tokio::test]
async fn a_past_cohorts_outcome_file_is_paired_once_and_a_contradictory_one_refused() {
    let data = tempfile::tempdir().unwrap();
    let database = crate::helpers::fresh_postgres_database().await;
    let settings = crate::helpers::settings_for(data.path(), database.as_deref());
    let n = 30;
    past_cohort(&settings, n).await;
    // Before any outcome: no event, no follow-up (censored at the assessment).
    let (_, events_before, _) = paired(&settings).await;

    // Progression for the ten at highest risk (the highest soonest), two deaths, follow-up
    // without the event for the rest; one row given twice; patients named by id or by MRN.
    let start = NaiveDate::from_ymd_opt(2025, 2, 1).unwrap();
    let mut csv = String::from("patient,outcome,date,source\n");
    for i in 0..n {
        let who = if i % 2 == 0 {
            format!("past-{i}")
        } else {
            format!("urn:oid:2.16.840.1.113883.3.9999|MRN{i}")
        };
        let row = match i {
            20.. => format!(
                "{who},progression,{},registry\n",
                start + Duration::days(30 * (n - i) as i64)
            ),
            0 | 1 => format!("{who},death,2026-03-0{},registry\n", i + 1),
            _ => format!("{who},no-evidence-of-disease,2026-11-30,registry\n"),
        };
        csv.push_str(&row);
    }
    csv.push_str("past-2,no-evidence-of-disease,2026-11-30,registry\n");
    let file = data.path().join("outcomes.csv");
    std::fs::write(&file, &csv).unwrap();
    import(&settings, &file).await.unwrap();
    let (paired_now, events, observations) = paired(&settings).await;
    assert_eq!(events_before, 0);
    assert_eq!(paired_now, n, "every assessment has an outcome");
    assert_eq!(events, 12, "progression or death: the model's event");
    // 10 progressions and 18 follow-ups filed as disease statuses; the repeat once.
    assert_eq!(observations, 28);

    // The same file again: nothing new.
    import(&settings, &file).await.unwrap();
    assert_eq!(paired(&settings).await, (n, events, observations));

    // A death on another day than the one filed, a follow-up after a death, an unknown
    // patient, an unknown outcome: refused whole, each line named, nothing filed (not even the
    // good row).
    let bad = "patient,outcome,date\n\
               past-0,death,2026-04-01\n\
               past-3,death,2026-01-01\n\
               past-3,no-evidence-of-disease,2026-06-01\n\
               nobody,progression,2025-06-01\n\
               past-4,progression,2026-10-01\n\
               past-5,relapsed,2025-01-01\n";
    let file = data.path().join("bad.csv");
    std::fs::write(&file, bad).unwrap();
    let err = import(&settings, &file).await.unwrap_err().to_string();
    for expected in [
        "line 2: deaths on different days",
        "line 4: no-evidence-of-disease on 2026-06-01, after the death on 2026-01-01",
        "line 5: no patient held here has this id",
        "line 7: outcome `relapsed` is not one of",
    ] {
        assert!(err.contains(expected), "{expected} in {err}");
    }
    assert_eq!(paired(&settings).await, (n, events, observations));
}
