use crate::helpers::spawn_app;

#[tokio::test]
async fn healthz_and_readyz_pass_on_a_fresh_database() {
    let app = spawn_app().await;
    let live = app
        .client
        .get(format!("{}/healthz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200);
    let ready = app
        .client
        .get(format!("{}/readyz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["checks"]["migrations"], "pass");
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let app = spawn_app().await;
    let response = app.get("metadata").await;
    let id = response.headers()["x-request-id"].to_str().unwrap();
    assert!(!id.is_empty());
    let echoed = app
        .client
        .get(app.url("metadata"))
        .header("x-request-id", "trace-abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "trace-abc-123");
}

#[tokio::test]
async fn the_capability_statement_lists_every_type_with_its_interactions_and_parameters() {
    let app = spawn_app().await;
    let response = app.get("metadata").await;
    assert_eq!(response.status(), 200);
    let cs: serde_json::Value = response.json().await.unwrap();
    assert_eq!(cs["resourceType"], "CapabilityStatement");
    assert_eq!(cs["fhirVersion"], "4.0.1");
    let resources = cs["rest"][0]["resource"].as_array().unwrap();
    assert_eq!(resources.len(), 145);
    let patient = resources.iter().find(|r| r["type"] == "Patient").unwrap();
    assert_eq!(patient["operation"][0]["name"], "risk-assessment");
    assert!(
        patient["operation"][0]["definition"]
            .as_str()
            .unwrap()
            .ends_with("/OperationDefinition/risk-assessment")
    );
    let observation = resources
        .iter()
        .find(|r| r["type"] == "Observation")
        .unwrap();
    let params: Vec<&str> = observation["searchParam"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for p in [
        "_id",
        "_lastUpdated",
        "code",
        "date",
        "identifier",
        "patient",
        "status",
        "subject",
    ] {
        assert!(params.contains(&p), "{p} missing from {params:?}");
    }
    let interactions: Vec<&str> = observation["interaction"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["code"].as_str().unwrap())
        .collect();
    assert!(!interactions.contains(&"patch"));
    assert!(interactions.contains(&"vread"));
}
