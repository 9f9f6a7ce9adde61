//! Monitoring once outcomes arrive: assessments by the active model and a shadow's answers to
//! the same inputs are paired with what was filed since (a metastasis after the assessment is
//! the event; a later fact, follow-up without it), and each model version's discrimination
//! and calibration are reported side by side; a record that dates the event before the
//! assessment is counted as unusable, not used.

use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app_with};
use crate::models::{deploy_shadow_of_trained, status_of};
use crate::risk_assessment::{assess, coded, patient_with_record};

fn days_from_now(days: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::days(days))
        .format("%Y-%m-%d")
        .to_string()
}

async fn metastasis(app: &TestApp, patient: &str, date: &str) {
    app.create(&json!({"resourceType": "Condition",
        "subject": {"reference": format!("Patient/{patient}")},
        "code": coded("http://snomed.info/sct", "128462008"),
        "onsetDateTime": date}))
        .await;
}

async fn follow_up(app: &TestApp, patient: &str, date: &str) {
    app.create(&json!({"resourceType": "Observation", "status": "final",
        "subject": {"reference": format!("Patient/{patient}")},
        "code": coded("http://loinc.org", "21889-1"),
        "effectiveDateTime": date,
        "valueQuantity": {"value": 5, "unit": "mm", "system": "http://unitsofmeasure.org", "code": "mm"}}))
        .await;
}

#[tokio::test]
async fn assessments_are_paired_with_later_outcomes_per_model_version() {
    let dir = tempfile::tempdir().unwrap();
    let models = crate::models::models_dir(dir.path());
    let models_dir = models.clone();
    let app = spawn_app_with(move |s| {
        s.risk.models_dir = Some(models);
        s.monitoring.interval_secs = 0;
        s.monitoring.min_paired = 5;
        s.monitoring.missing_rate = 0.05;
        // Three decisions are enough to judge here; two of three accepted is below 0.7.
        s.monitoring.min_decisions = 3;
        s.monitoring.acceptance_rate = 0.7;
    })
    .await;
    deploy_shadow_of_trained(&app).await;

    let mut patients = Vec::new();
    let mut reports = Vec::new();
    for _ in 0..10 {
        let patient = patient_with_record(&app, true).await;
        let response = assess(&app, &patient, &json!({"resourceType": "Parameters"})).await;
        assert_eq!(response.status(), 200);
        let bundle: Value = response.json().await.unwrap();
        reports.push(
            crate::risk_assessment::of_type(&bundle, "DiagnosticReport")[0]["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
        patients.push(patient);
    }
    for report in &reports {
        crate::models::shadow_predictions(&app, report).await;
    }
    // What happened since: five metastases at different times, four followed without one,
    // and one record that dates its metastasis before the assessment.
    for (i, patient) in patients.iter().enumerate() {
        match i {
            0..=4 => metastasis(&app, patient, &days_from_now(100 + 150 * i as i64)).await,
            5..=8 => follow_up(&app, patient, &days_from_now(900)).await,
            _ => metastasis(&app, patient, &days_from_now(-30)).await,
        }
    }

    // Five of them cared for at one site (the Patient's managing organization).
    for patient in &patients[..5] {
        let mut resource: Value = app
            .get(&format!("Patient/{patient}"))
            .await
            .json()
            .await
            .unwrap();
        resource["managingOrganization"] = json!({"display": "North clinic"});
        let response = app
            .put(&format!("Patient/{patient}"), &resource, None)
            .await;
        assert_eq!(response.status(), 200);
    }

    let body = app.get_json("/monitoring/performance").await;
    let models = body["models"].as_array().unwrap();
    let of = |role: &str| {
        models
            .iter()
            .find(|m| m["role"] == role)
            .unwrap_or_else(|| panic!("{role} in {body}"))
    };
    for (role, name) in [("active", "gbsg2-recurrence"), ("shadow", "ldh-imaging")] {
        let m = of(role);
        assert_eq!(m["model"], name, "{m}");
        assert_eq!(m["assessments"], 10, "{m}");
        assert_eq!(m["paired"], 9, "{m}");
        assert_eq!(m["events"], 5, "{m}");
        let unusable = m["unusable"].as_object().unwrap();
        assert_eq!(
            unusable.values().map(|v| v.as_u64().unwrap()).sum::<u64>(),
            1
        );
        assert_eq!(
            unusable.keys().next().unwrap(),
            "an event dated before the assessment",
            "{m}"
        );
        let c = m["harrell_c"].as_f64();
        assert!(c.is_none() || (0.0..=1.0).contains(&c.unwrap()), "{m}");
        let horizons = m["horizons"].as_array().unwrap();
        assert!(!horizons.is_empty(), "{m}");
        let first = &horizons[0];
        assert!((0.0..=1.0).contains(&first["expected"].as_f64().unwrap()));
        // By the first horizon (a year), one of the nine paired had the event.
        let observed = first["observed"].as_f64().unwrap();
        assert!(observed > 0.05 && observed < 0.3, "{first}");
    }
    assert_eq!(of("active")["horizons"][0]["label"], "1 year");
    // Calibration at a year: every patient known (an event or followed past it) is binned.
    let year = &of("active")["horizons"][0];
    let binned: u64 = year["deciles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["count"].as_u64().unwrap())
        .sum();
    assert_eq!(binned, 9, "{year}");
    assert!(year["calibration_in_the_large"].is_number(), "{year}");
    assert_eq!(of("active")["outcome_definition"], "own");
    // By subgroup: all ten are women aged 65–74 (born 1954), so one group each and no gap.
    let subgroups = of("active")["subgroups"].as_array().unwrap().clone();
    let group = |column: &str| {
        subgroups
            .iter()
            .filter(|g| g["column"] == column)
            .map(|g| {
                (
                    g["group"].as_str().unwrap().to_owned(),
                    g["paired"].as_u64().unwrap(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(group("sex"), [("female".to_owned(), 9)]);
    assert_eq!(group("age"), [("65–74".to_owned(), 9)]);
    // By site: the five at North clinic, the rest not known; by the inputs the spec names,
    // as the model was given them (grade II, postmenopausal, no endocrine therapy).
    assert_eq!(
        group("site"),
        [("North clinic".to_owned(), 5), ("unknown".to_owned(), 4)]
    );
    assert_eq!(group("tgrade"), [("II".to_owned(), 9)]);
    assert_eq!(group("menostat"), [("Post".to_owned(), 9)]);
    assert_eq!(group("horTh"), [("no".to_owned(), 9)]);
    // No study was used: no scanner groups are made up.
    assert_eq!(group("scanner"), []);
    assert_eq!(of("active")["gaps"], json!({}));
    // The shadow names no event of its own: judged by the active model's.
    assert_eq!(of("shadow")["outcome_definition"], "active model's");
    assert_eq!(
        status_of(&crate::models::listed(&app).await, "ldh-imaging").1,
        "shadow"
    );

    // What clinicians did, per model version: two reports signed, one disagreed with.
    let clinician =
        json!({"name": "clinician", "valueReference": {"reference": "Practitioner/onc-1"}});
    for (report, decision) in [
        (&reports[0], "sign"),
        (&reports[1], "sign"),
        (&reports[2], "disagree"),
    ] {
        let mut parameters = vec![
            json!({"name": "decision", "valueCode": decision}),
            clinician.clone(),
        ];
        if decision == "disagree" {
            parameters.push(json!({"name": "reason", "valueCode": "override-inputs-wrong"}));
        }
        let response = app
            .post(
                &format!("DiagnosticReport/{report}/$sign-off"),
                &json!({"resourceType": "Parameters", "parameter": parameters}),
            )
            .await;
        assert_eq!(response.status(), 200);
    }
    let actions = app.get_json("/monitoring/actions").await;
    let gbsg2 = &actions["models"][0];
    assert_eq!(gbsg2["model"], "gbsg2-recurrence", "{actions}");
    assert_eq!(gbsg2["reports_signed"], 2, "{actions}");
    assert_eq!(gbsg2["reports_disagreed"], 1, "{actions}");
    assert_eq!(
        gbsg2["disagree_reasons"]["override-inputs-wrong"], 1,
        "{actions}"
    );
    let rate = gbsg2["acceptance_rate"].as_f64().unwrap();
    assert!((rate - 2.0 / 3.0).abs() < 1e-9, "{actions}");

    // Every one of the ten had the whole record: nothing missing for the active model; the
    // shadow's own inputs are its business, not the assessments'.
    let inputs = app.get_json("/monitoring/inputs").await;
    let active = &inputs["models"][0];
    assert_eq!(active["model"], "gbsg2-recurrence", "{inputs}");
    assert_eq!(active["assessments"], 10, "{inputs}");
    assert_eq!(active["missing"], json!({}), "{inputs}");
    let partial = patient_with_record(&app, false).await;
    assess(&app, &partial, &json!({"resourceType": "Parameters"})).await;
    let inputs = app.get_json("/monitoring/inputs").await;
    let tsize = &inputs["models"][0]["missing"]["tsize"];
    assert_eq!(tsize["count"], 1, "{inputs}");
    assert!(
        (tsize["rate"].as_f64().unwrap() - 1.0 / 11.0).abs() < 1e-9,
        "{inputs}"
    );

    // Alerts: the C-index fell from the card's 0.74 to 0.5 on these patients; one in eleven
    // had no tumour size. Each is filed once as a DetectedIssue naming the model's Device and
    // shown on /metrics.
    let evaluate = || async {
        let response = app
            .client
            .post(format!("{}/monitoring/$evaluate", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json::<Value>().await.unwrap()
    };
    let raised = evaluate().await;
    let alerts = raised["alerts"].as_array().unwrap();
    let kind_of = |model: &str, kind: &str| {
        alerts
            .iter()
            .find(|a| a["model"] == model && a["kind"] == kind)
            .unwrap_or_else(|| panic!("{model} {kind} in {raised}"))
            .clone()
    };
    let discrimination = kind_of("gbsg2-recurrence", "discrimination");
    assert!(
        discrimination["detail"].as_str().unwrap().contains("0.739"),
        "{discrimination}"
    );
    kind_of("gbsg2-recurrence", "input-missing:tsize");
    let acceptance = kind_of("gbsg2-recurrence", "acceptance");
    assert!(
        acceptance["detail"]
            .as_str()
            .unwrap()
            .contains("accepted 67 % of 3 decisions"),
        "{acceptance}"
    );
    let issue = app
        .get(discrimination["detected_issue"].as_str().unwrap())
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(issue["resourceType"], "DetectedIssue");
    crate::helpers::assert_valid_fhir("the alert", std::slice::from_ref(&issue));
    assert!(
        issue["implicated"][0]["reference"]
            .as_str()
            .unwrap()
            .starts_with("Device/model-"),
        "{issue}"
    );
    let filed = |text: Value| text["total"].as_u64().unwrap();
    let issues = filed(app.search("DetectedIssue?_summary=count").await);
    assert_eq!(issues, alerts.len() as u64);
    let metrics = app
        .client
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.lines().any(|l| l.starts_with("prognostics_alert{")
            && l.contains("kind=\"discrimination\"")
            && l.ends_with(" 1")),
        "{metrics}"
    );
    // Evaluated again: the same alerts, nothing filed twice.
    let again = evaluate().await;
    assert_eq!(again["alerts"].as_array().unwrap().len(), alerts.len());
    assert_eq!(
        filed(app.search("DetectedIssue?_summary=count").await),
        issues
    );

    // Drift against the training patients: every input of the eleven assessments compared with
    // the bundle's training distribution, the missing size against none missing in training.
    let drift = app.get_json("/monitoring/drift").await;
    let active = drift["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "active")
        .unwrap_or_else(|| panic!("{drift}"));
    assert_eq!(active["assessments"], 11, "{active}");
    let input = |name: &str| {
        active["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["input"] == name)
            .unwrap_or_else(|| panic!("{name} in {active}"))
            .clone()
    };
    let tsize = input("tsize");
    assert!(tsize["psi"].as_f64().unwrap() >= 0.0, "{tsize}");
    assert!((tsize["missing_rate"].as_f64().unwrap() - 1.0 / 11.0).abs() < 1e-9);
    assert_eq!(tsize["training_missing_rate"], 0.0);
    assert!(input("tgrade")["psi"].is_number(), "{active}");
    assert!(active["output_psi"].as_f64().unwrap() >= 0.0, "{active}");
    assert_eq!(active["output_shares"].as_array().unwrap().len(), 10);
    // The same patients, all alike: every size the same, so the size's distribution is not
    // the training patients' (a PSI far above 0.25), shown for governance to judge.
    assert!(tsize["psi"].as_f64().unwrap() > 0.25, "{tsize}");

    // The page the governance team reads: drawn by the service, no script.
    let page = app
        .client
        .get(format!("{}/monitoring", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let policy = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(policy.starts_with("default-src 'none'"), "{policy}");
    let html = page.text().await.unwrap();
    for expected in [
        "<h1>Model monitoring</h1>",
        "Calibration: gbsg2-recurrence",
        "Discrimination over time: gbsg2-recurrence",
        "Drift by input: gbsg2-recurrence",
        "input-drift:tsize",
        "<td>override-inputs-wrong (1)</td>",
    ] {
        assert!(html.contains(expected), "{expected} in the page");
    }
    assert!(!html.contains("<script"), "the page runs no script");
    let bad = app
        .client
        .get(format!("{}/monitoring?since=yesterday", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);

    // In a browser: what a person sees, and accessible.
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    if crate::app_browser::browser_ready(&root) {
        let shots = tempfile::tempdir().unwrap();
        let seen = crate::app_browser::run_script(
            &root,
            "monitoring.mjs",
            &[
                &format!("{}/monitoring", app.address),
                &shots.path().to_string_lossy(),
            ],
        )
        .await;
        assert_eq!(seen["status"], 200, "{seen:#}");
        assert_eq!(seen["title"], "Model monitoring");
        let plots = seen["plots"].as_array().unwrap();
        assert!(plots.len() >= 5, "{seen:#}");
        for plot in plots {
            assert!(plot["width"].as_u64().unwrap() > 300, "{plot}");
            assert!(plot["marks"].as_u64().unwrap() > 0, "{plot}");
        }
        assert_eq!(seen["axeViolations"], json!([]), "{seen:#}");
        assert_eq!(seen["consoleErrors"], json!([]), "{seen:#}");
        assert_eq!(seen["cspViolations"], json!([]), "{seen:#}");
        assert_eq!(seen["failedRequests"], json!([]), "{seen:#}");
        let bytes = std::fs::read(shots.path().join("monitoring.png")).unwrap();
        if std::env::var_os("UPDATE_SCREENSHOTS").is_some() {
            std::fs::write(root.join("tests/browser/screenshots/monitoring.png"), bytes).unwrap();
        }
    }

    // The same as a report on disk, from the command line (the service stopped: the
    // embedded database belongs to one process).
    let (data, database) = app.stop().await;
    let out = tempfile::tempdir().unwrap();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_prognostics"));
    command.arg("--data-dir").arg(data.path());
    if let Some(url) = &database {
        command.arg("--database").arg(url);
    }
    let report = command
        .env("PROGNOSTICS_RISK__MODELS_DIR", &models_dir)
        .env(
            "PROGNOSTICS_RISK__MODEL",
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("models/risk/gbsg2-recurrence"),
        )
        .env("PROGNOSTICS_MONITORING__MIN_PAIRED", "5")
        .env("RUST_LOG", "warn")
        .args(["monitor", "report", "--since", &days_from_now(-1), "--out"])
        .arg(out.path())
        .output()
        .unwrap();
    assert!(
        report.status.success(),
        "{}",
        String::from_utf8_lossy(&report.stderr)
    );
    let markdown = std::fs::read_to_string(out.path().join("monitoring.md")).unwrap();
    assert!(markdown.starts_with("# Model monitoring"), "{markdown}");
    assert!(markdown.contains("| gbsg2-recurrence |"), "{markdown}");
    let linked: Vec<&str> = markdown
        .lines()
        .filter_map(|l| l.strip_prefix("![")?.split("](").nth(1)?.strip_suffix(')'))
        .collect();
    assert!(linked.len() >= 5, "{markdown}");
    for file in linked {
        let svg = std::fs::read_to_string(out.path().join(file)).unwrap();
        assert!(svg.starts_with("<svg"), "{file}");
    }
}
