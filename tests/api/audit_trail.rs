//! The audit trail as an operator meets it: what was served is in it within the stated bound
//! even when the process is killed (kill -9), `prognostics audit export` writes it as NDJSON,
//! and `prognostics audit verify` finds a record changed in the database by hand.

use std::time::Duration;

use serde_json::{Value, json};

use crate::request_log::Service;

#[tokio::test]
async fn what_was_served_survives_kill_9_and_a_changed_record_is_found() {
    let mut service = Service::start_in(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")),
        &[("PROGNOSTICS_INFERENCE__ENABLED", "false")],
    )
    .await;
    let client = reqwest::Client::new();
    let patient: Value = client
        .post(format!("{}/fhir/Patient", service.address))
        .header("content-type", "application/fhir+json")
        .body(json!({"resourceType": "Patient", "gender": "female"}).to_string())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = patient["id"].as_str().unwrap().to_owned();
    const READS: usize = 40;
    for _ in 0..READS {
        let response = client
            .get(format!("{}/fhir/Patient/{id}", service.address))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    // The stated bound: a record is committed within this of its request's answer.
    tokio::time::sleep(prognostics::pipeline::audit::DURABLE_WITHIN).await;
    service.kill();

    let export = service.command(&["audit", "export", "--since", "2000-01-01"]);
    assert!(export.status.success(), "{export:?}");
    let events: Vec<Value> = String::from_utf8(export.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let about = |subtype: &str| {
        events
            .iter()
            .filter(|e| {
                e["subtype"][0]["code"] == subtype
                    && e["entity"].as_array().is_some_and(|es| {
                        es.iter()
                            .any(|x| x["what"]["reference"] == format!("Patient/{id}"))
                    })
            })
            .count()
    };
    assert_eq!(
        about("read"),
        READS,
        "every read answered before the kill is in the trail"
    );
    assert_eq!(about("create"), 1);

    let verify = service.command(&["audit", "verify"]);
    let said = String::from_utf8_lossy(&verify.stdout).to_string();
    assert!(verify.status.success(), "{said}");
    assert!(said.contains("intact"), "{said}");

    // Someone changes a read's outcome in the database.
    sqlx::any::install_default_drivers();
    let mut db = <sqlx::AnyConnection as sqlx::Connection>::connect(&service.database_url())
        .await
        .unwrap();
    let changed = sqlx::query(
        "UPDATE audit_events SET content = REPLACE(content, '\"outcome\":\"0\"', '\"outcome\":\"4\"') WHERE seq = 7",
    )
    .execute(&mut db)
    .await
    .unwrap();
    assert_eq!(changed.rows_affected(), 1);
    drop(db);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let verify = service.command(&["audit", "verify"]);
    let said = String::from_utf8_lossy(&verify.stdout).to_string();
    assert!(!verify.status.success(), "{said}");
    assert!(said.contains("BROKEN at record 7"), "{said}");
}
