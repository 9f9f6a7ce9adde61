use serde_json::{Value, json};

use crate::helpers::{assert_outcome, spawn_app};

#[tokio::test]
async fn a_transaction_creates_all_entries_and_resolves_urn_uuid_references() {
    let app = spawn_app().await;
    let bundle = json!({
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:0c3151bd-1cbf-4d64-b04d-cd9187a4c6e0",
                "resource": {"resourceType": "Observation", "status": "final", "code": {"text": "Hb"},
                             "subject": {"reference": "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a"}},
                "request": {"method": "POST", "url": "Observation"}
            },
            {
                "fullUrl": "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a",
                "resource": {"resourceType": "Patient", "gender": "female"},
                "request": {"method": "POST", "url": "Patient"}
            }
        ]
    });
    let r = app.post("", &bundle).await;
    assert_eq!(r.status(), 200);
    let response: Value = r.json().await.unwrap();
    assert_eq!(response["type"], "transaction-response");
    assert_eq!(response["entry"][0]["response"]["status"], "201 Created");
    assert_eq!(
        response["entry"][0]["resource"]["resourceType"], "Observation",
        "entries keep request order"
    );
    let patient_id = response["entry"][1]["resource"]["id"].as_str().unwrap();
    let observation_id = response["entry"][0]["resource"]["id"].as_str().unwrap();
    let stored: Value = app
        .get(&format!("Observation/{observation_id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        stored["subject"]["reference"],
        format!("Patient/{patient_id}")
    );
    assert_eq!(
        app.search(&format!("Observation?patient={patient_id}"))
            .await["total"],
        1
    );
}

#[tokio::test]
async fn a_failing_transaction_writes_nothing() {
    let app = spawn_app().await;
    app.put(
        "Patient/keep",
        &json!({"resourceType": "Patient", "id": "keep"}),
        None,
    )
    .await;
    let bundle = json!({
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": {"resourceType": "Patient"}, "request": {"method": "POST", "url": "Patient"}},
            {"request": {"method": "DELETE", "url": "Patient/keep"}},
            {"resource": {"resourceType": "Observation", "status": "final"}, "request": {"method": "POST", "url": "Observation"}}
        ]
    });
    let outcome = assert_outcome(app.post("", &bundle).await, 400).await;
    assert_eq!(
        outcome["issue"][0]["expression"][0],
        "Bundle.entry[2].resource.Observation.code"
    );
    assert_eq!(app.search("Patient").await["total"], 1);
    assert_eq!(app.get("Patient/keep").await.status(), 200);
}

/// A reference to a urn:uuid that is the fullUrl of no entry is 400 naming the entry and the
/// element; nothing is written. One to an update's urn: fullUrl resolves to its Type/id.
#[tokio::test]
async fn a_dangling_urn_uuid_reference_is_refused_naming_the_entry() {
    let app = spawn_app().await;
    let bundle = json!({
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"fullUrl": "urn:uuid:0c1a2b3c-0000-4000-8000-000000000001",
             "resource": {"resourceType": "Patient"}, "request": {"method": "POST", "url": "Patient"}},
            {"resource": {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                "subject": {"reference": "urn:uuid:0c1a2b3c-0000-4000-8000-000000000001"},
                "performer": [{"reference": "urn:uuid:0c1a2b3c-0000-4000-8000-00000000dead"}]},
             "request": {"method": "POST", "url": "Observation"}}
        ]
    });
    let outcome = assert_outcome(app.post("", &bundle).await, 400).await;
    let diagnostics = outcome["issue"][0]["diagnostics"].as_str().unwrap();
    assert!(
        diagnostics.contains("entry 1")
            || outcome["issue"][0]["expression"][0]
                .as_str()
                .is_some_and(|e| e.contains("entry[1]")),
        "{outcome}"
    );
    assert!(
        diagnostics.contains("Observation.performer[0].reference")
            && diagnostics.contains("00000000dead"),
        "{diagnostics}"
    );
    assert_eq!(app.search("Patient").await["total"], 0);

    let bundle = json!({
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"fullUrl": "urn:uuid:0c1a2b3c-0000-4000-8000-000000000002",
             "resource": {"resourceType": "Patient", "id": "p-put"}, "request": {"method": "PUT", "url": "Patient/p-put"}},
            {"resource": {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                "subject": {"reference": "urn:uuid:0c1a2b3c-0000-4000-8000-000000000002"}},
             "request": {"method": "POST", "url": "Observation"}}
        ]
    });
    let response = app.post("", &bundle).await;
    assert_eq!(response.status(), 200);
    let found = app.search("Observation?subject=Patient/p-put").await;
    assert_eq!(found["total"], 1, "{found}");
}

#[tokio::test]
async fn a_transaction_with_a_stale_if_match_fails_as_a_whole() {
    let app = spawn_app().await;
    app.put(
        "Patient/p1",
        &json!({"resourceType": "Patient", "id": "p1"}),
        None,
    )
    .await;
    let bundle = json!({
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": {"resourceType": "Patient"}, "request": {"method": "POST", "url": "Patient"}},
            {"resource": {"resourceType": "Patient", "id": "p1", "gender": "male"},
             "request": {"method": "PUT", "url": "Patient/p1", "ifMatch": "W/\"7\""}}
        ]
    });
    assert_outcome(app.post("", &bundle).await, 412).await;
    assert_eq!(app.search("Patient").await["total"], 1);
}

#[tokio::test]
async fn a_batch_reports_each_entry_on_its_own() {
    let app = spawn_app().await;
    let bundle = json!({
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"resource": {"resourceType": "Patient"}, "request": {"method": "POST", "url": "Patient"}},
            {"resource": {"resourceType": "Observation"}, "request": {"method": "POST", "url": "Observation"}},
            {"request": {"method": "GET", "url": "Patient/missing"}},
            {"request": {"method": "GET", "url": "Patient?_count=5"}}
        ]
    });
    let r = app.post("", &bundle).await;
    assert_eq!(r.status(), 200);
    let response: Value = r.json().await.unwrap();
    assert_eq!(response["type"], "batch-response");
    assert_eq!(response["entry"][0]["response"]["status"], "201 Created");
    assert_eq!(
        response["entry"][1]["response"]["status"],
        "400 Bad Request"
    );
    assert_eq!(
        response["entry"][1]["response"]["outcome"]["resourceType"],
        "OperationOutcome"
    );
    assert_eq!(response["entry"][2]["response"]["status"], "404 Not Found");
    assert_eq!(response["entry"][3]["resource"]["type"], "searchset");
    assert_eq!(response["entry"][3]["resource"]["total"], 1);
}

#[tokio::test]
async fn only_transaction_and_batch_bundles_are_accepted_at_the_base() {
    let app = spawn_app().await;
    assert_outcome(
        app.post("", &json!({"resourceType": "Bundle", "type": "collection"}))
            .await,
        400,
    )
    .await;
    assert_outcome(app.post("", &json!({"resourceType": "Patient"})).await, 400).await;
}
