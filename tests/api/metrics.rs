//! `GET /metrics`: what the service counts and times, in the OpenMetrics text format, scraped
//! by a real Prometheus (Debian's `prometheus`) whose query API then answers with it.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};
use crate::risk_assessment::{assess, patient_with_record};

async fn scrape(app: &TestApp) -> String {
    let response = app
        .client
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    response.text().await.unwrap()
}

/// The value of the first sample of `name` whose labels include every one of `labels`.
fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(name) && labels.iter().all(|label| l.contains(label)))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

#[tokio::test]
async fn requests_assessments_and_models_are_counted() {
    let app = spawn_app().await;
    let before = scrape(&app).await;
    let filed = |text: &str| {
        sample(
            text,
            "prognostics_assessments_total",
            &["model=\"gbsg2-recurrence\"", "outcome=\"filed\""],
        )
        .unwrap_or(0.0)
    };
    let patient = patient_with_record(&app, true).await;
    assert_eq!(
        assess(&app, &patient, &json!({"resourceType": "Parameters"}))
            .await
            .status(),
        200
    );
    let after = scrape(&app).await;
    assert!(filed(&after) >= filed(&before) + 1.0, "{after}");
    assert!(
        sample(
            &after,
            "prognostics_http_requests_total",
            &[
                "route=\"/fhir/Patient/{id}/$risk-assessment\"",
                "status=\"200\""
            ]
        )
        .is_some(),
        "{after}"
    );
    assert!(after.contains("prognostics_http_request_duration_seconds_bucket"));
    assert!(after.contains("prognostics_inference_duration_seconds_count"));
    assert_eq!(
        sample(
            &after,
            "prognostics_model_deployed",
            &["model=\"gbsg2-recurrence\"", "status=\"active\""]
        ),
        Some(1.0)
    );
    assert!(after.contains("prognostics_audit_queue_depth"));
    // Labels are routes and models: never a patient.
    assert!(!after.contains(&patient));
}

struct Prometheus {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn a_real_prometheus_scrapes_the_service() {
    let prometheus = std::env::var("PROMETHEUS").unwrap_or_else(|_| "/usr/bin/prometheus".into());
    if !std::path::Path::new(&prometheus).exists() {
        assert!(
            std::env::var_os("TEST_REQUIRE_PEERS").is_none(),
            "prometheus is missing: run scripts/install-test-deps"
        );
        eprintln!("skipping: prometheus is not installed");
        return;
    }
    let app = spawn_app().await;
    let patient = patient_with_record(&app, true).await;
    assess(&app, &patient, &json!({"resourceType": "Parameters"})).await;

    let dir = tempfile::tempdir().unwrap();
    let target = app.address.trim_start_matches("http://").to_owned();
    let config = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: prognostics\n    metrics_path: /metrics\n    static_configs:\n      - targets: ['{target}']\n"
    );
    std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(&prometheus)
        .arg(format!(
            "--config.file={}",
            dir.path().join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _prometheus = Prometheus { child, _dir: dir };
    let client = reqwest::Client::new();
    let query = |q: &'static str| {
        let client = client.clone();
        async move {
            let response = client
                .get(format!("http://127.0.0.1:{port}/api/v1/query"))
                .query(&[("query", q)])
                .send()
                .await
                .ok()?;
            let body: Value = response.json().await.ok()?;
            let result = body["data"]["result"].as_array()?.clone();
            (!result.is_empty()).then_some(result)
        }
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut found = None;
    while Instant::now() < deadline {
        if let Some(result) =
            query("prognostics_assessments_total{model=\"gbsg2-recurrence\",outcome=\"filed\"}")
                .await
        {
            found = Some(result);
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let found = found.expect("Prometheus scraped the assessments counter within 30 s");
    let value: f64 = found[0]["value"][1].as_str().unwrap().parse().unwrap();
    assert!(value >= 1.0, "{found:?}");
    let up = query("up{job=\"prognostics\"}").await.unwrap();
    assert_eq!(up[0]["value"][1], "1", "{up:?}");
    let latency = query("prognostics_http_request_duration_seconds_count").await;
    assert!(latency.is_some(), "the latency histogram was scraped");
}
