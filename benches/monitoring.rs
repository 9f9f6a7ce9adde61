//! The monitoring job over many assessments with outcomes, on SQLite in a temporary folder:
//! N patients (default 100,000), each with a RiskAssessment of the default model (its three
//! horizons), the inputs kept beside it, and what happened since (a metastasis for about
//! 40 %, follow-up without one for the rest), written straight into the store. Then, timed:
//! the performance on outcomes (every assessment paired with its patient's record), the drift
//! against the training patients, and the two together as the periodic job runs them; the
//! peak resident memory the job added; and the `/metrics` text rendered from the registry
//! (what a scrape costs the service, HTTP aside).
//!
//! Usage: `cargo bench --bench monitoring` (`BENCH_ASSESSMENTS` to change N).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::time::Instant;

use chrono::{Duration, Utc};
use prognostics::config::Settings;
use prognostics::domain::{ResourceId, ResourceType};
use prognostics::pipeline::monitoring::InputSnapshot;
use prognostics::startup::{load_models, open_pipeline};
use prognostics::store::ModelInputs;
use serde_json::{Value, json};

/// Resident memory now and at its peak since the last reset, in MiB.
fn memory() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Forgets the peak so far (Linux: writing 5 to clear_refs resets VmHWM).
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn map(value: Value) -> serde_json::Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => unreachable!(),
    }
}

fn coded(system: &str, code: &str) -> Value {
    json!({"coding": [{"system": system, "code": code}]})
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("BENCH_ASSESSMENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::default();
    settings.storage.data_dir = dir.path().to_path_buf();
    settings.risk.model =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/risk/gbsg2-recurrence");
    let pipeline = open_pipeline(&settings)
        .await
        .unwrap()
        .with_models(load_models(&settings.risk).await.unwrap());
    pipeline.sync_models().await.unwrap();
    let (name, version) = {
        let registry = pipeline.models();
        let active = registry.active().unwrap();
        (
            active.description.name.clone(),
            active.description.version.clone(),
        )
    };

    eprintln!("seeding {n} assessments with outcomes");
    let seeding = Instant::now();
    let mut rng = prognostics::fusion::Rng::new(0x2545_f491_4f6c_dd1d);
    let mut uniform = move || rng.uniform();
    let start = Utc::now() - Duration::days(3 * 365);
    let store = pipeline.store().clone();
    for chunk in (0..n).collect::<Vec<_>>().chunks(2_000) {
        let mut tx = store.begin().await.unwrap();
        for &i in chunk {
            let patient = ResourceId::parse(&format!("mon-{i}")).unwrap();
            let subject = json!({"reference": format!("Patient/{patient}")});
            let assessed = start + Duration::minutes((i as i64 * 2 * 365 * 1440) / n as i64);
            let risk = (uniform() - 0.5) * 2.0;
            let p = |years: f64| 1.0 - (-0.08 * years * f64::exp(risk)).exp();
            let born = 1940 + (i % 40);
            tx.write(
                ResourceType::Patient,
                &patient,
                map(json!({"resourceType": "Patient", "gender": "female", "birthDate": format!("{born}-03-01")})),
                None,
            )
            .await
            .unwrap();
            let horizons: Vec<Value> = [1.0, 3.0, 5.0]
                .iter()
                .map(|years| {
                    json!({"probabilityDecimal": p(*years), "whenPeriod": {
                        "start": assessed.to_rfc3339(),
                        "end": (assessed + Duration::days((years * 365.25) as i64)).to_rfc3339()}})
                })
                .collect();
            let id = ResourceId::parse(&format!("mon-ra-{i}")).unwrap();
            tx.write(
                ResourceType::RiskAssessment,
                &id,
                map(json!({"resourceType": "RiskAssessment", "status": "final",
                    "subject": subject, "method": {"text": format!("{name} {version}")},
                    "prediction": horizons})),
                None,
            )
            .await
            .unwrap();
            // What happened: an event sooner for the higher risks; else follow-up.
            let days = (-(1.0 - uniform()).ln() / (0.08 * f64::exp(risk)) * 365.25).min(2000.0);
            let at = (assessed + Duration::days(days as i64 + 1))
                .format("%Y-%m-%d")
                .to_string();
            let outcome = if days < 1500.0 {
                json!({"resourceType": "Condition", "subject": subject,
                    "code": coded("http://snomed.info/sct", "128462008"), "onsetDateTime": at})
            } else {
                json!({"resourceType": "Observation", "status": "final", "subject": subject,
                    "code": coded("http://loinc.org", "21889-1"), "effectiveDateTime": at,
                    "valueQuantity": {"value": 5, "unit": "mm", "system": "http://unitsofmeasure.org", "code": "mm"}})
            };
            let t = if days < 1500.0 {
                ResourceType::Condition
            } else {
                ResourceType::Observation
            };
            let outcome_id = ResourceId::parse(&format!("mon-o-{i}")).unwrap();
            tx.write(t, &outcome_id, map(outcome), None).await.unwrap();
            let mut snapshot = InputSnapshot {
                log_hazard_ratio: risk,
                ..InputSnapshot::default()
            };
            snapshot
                .numbers
                .insert("age".into(), f64::from(born as u32 % 40 + 40));
            snapshot
                .numbers
                .insert("tsize".into(), 10.0 + 40.0 * uniform());
            snapshot.levels.insert("tgrade".into(), "II".into());
            tx.keep_model_inputs(&ModelInputs {
                report: format!("mon-ra-{i}"),
                model: name.clone(),
                version: version.clone(),
                role: "active".into(),
                created_ms: 0,
                content: serde_json::to_string(&snapshot).unwrap(),
            })
            .await
            .unwrap();
        }
        tx.commit().await.unwrap();
    }
    eprintln!("seeded in {:.1} s", seeding.elapsed().as_secs_f64());

    let (before, _) = memory();
    reset_peak();
    let started = Instant::now();
    let performance = pipeline.monitor_performance().await.unwrap();
    let performance_s = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let drift = pipeline.input_drift(3650).await.unwrap();
    let drift_s = started.elapsed().as_secs_f64();
    let (_, peak) = memory();
    let started = Instant::now();
    let alerts = pipeline.evaluate_alerts().await.unwrap();
    let job_s = started.elapsed().as_secs_f64();
    let active = performance.iter().find(|p| p.role == "active").unwrap();
    assert_eq!(active.assessments, n);
    assert!(
        active.paired > n * 9 / 10,
        "{} of {n} paired",
        active.paired
    );
    assert_eq!(drift[0].assessments, n);

    // A scrape: the gauges sampled and the registry rendered.
    let mut renders = Vec::new();
    let mut bytes = 0;
    for _ in 0..200 {
        let t = Instant::now();
        pipeline.sample_metrics();
        bytes = prognostics::metrics::METRICS.render().len();
        renders.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    renders.sort_by(f64::total_cmp);

    println!("\n| measure | value |\n|---|---:|");
    println!(
        "| assessments (paired with an outcome) | {n} ({}) |",
        active.paired
    );
    println!("| performance on outcomes | {performance_s:.1} s |");
    println!("| drift against the training patients | {drift_s:.2} s |");
    println!(
        "| the monitoring job (both, judged, {} alerts filed) | {job_s:.1} s |",
        alerts.len()
    );
    println!(
        "| peak resident memory added by performance and drift | {:.0} MiB (resident before: {before:.0} MiB) |",
        (peak - before).max(0.0)
    );
    println!(
        "| `/metrics` rendered ({bytes} bytes): p50 / p99 | {:.3} ms / {:.3} ms |",
        renders[renders.len() / 2],
        renders[renders.len() * 99 / 100]
    );
    println!(
        "\nHarrell's C {:.3} on {} paired (the synthetic outcomes follow the predicted risk)",
        active.harrell_c.unwrap_or(f64::NAN),
        active.paired
    );
}
