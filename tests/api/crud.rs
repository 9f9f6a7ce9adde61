use serde_json::{Value, json};

use crate::helpers::{assert_outcome, entry_ids, minimal_resources, spawn_app};

#[tokio::test]
async fn every_resource_type_supports_create_read_update_vread_history_delete_and_search() {
    let app = spawn_app().await;
    let patient = app.create(&minimal_resources("unused")[0]).await;
    let patient_id = patient["id"].as_str().unwrap().to_owned();
    // Every type with search parameters of its own is exercised, and some of the long tail
    // (checked against R4's element definitions).
    let covered: Vec<String> = minimal_resources(&patient_id)
        .iter()
        .map(|r| r["resourceType"].as_str().unwrap().to_owned())
        .collect();
    // AuditEvent is the audit trail, written by the service alone.
    for method in [
        reqwest::Method::POST,
        reqwest::Method::PUT,
        reqwest::Method::DELETE,
    ] {
        let url = match method {
            reqwest::Method::POST => format!("{}/AuditEvent", app.base),
            _ => format!("{}/AuditEvent/a1", app.base),
        };
        let response = app
            .client
            .request(method.clone(), url)
            .header("content-type", "application/fhir+json")
            .body(r#"{"resourceType": "AuditEvent", "id": "a1"}"#)
            .send()
            .await
            .unwrap();
        let outcome = assert_outcome(response, 405).await;
        assert!(outcome.to_string().contains("append-only"), "{method}");
    }
    for t in prognostics::domain::ResourceType::ALL {
        if *t != prognostics::domain::ResourceType::AuditEvent
            && !prognostics::fhir::search_params_for(*t).is_empty()
        {
            assert!(
                covered.iter().any(|c| c == t.as_str()),
                "{t} is not exercised"
            );
        }
    }
    for t in ["Appointment", "Basic", "Claim", "Questionnaire"] {
        assert!(covered.iter().any(|c| c == t), "{t}");
    }
    for resource in minimal_resources(&patient_id) {
        let t = resource["resourceType"].as_str().unwrap().to_owned();

        let created = app.post(&t, &resource).await;
        assert_eq!(created.status(), 201, "{t}");
        assert_eq!(created.headers()["etag"], "W/\"1\"", "{t}");
        let location = created.headers()["location"].to_str().unwrap().to_owned();
        let v1: Value = created.json().await.unwrap();
        let id = v1["id"].as_str().unwrap().to_owned();
        assert!(
            location.ends_with(&format!("/fhir/{t}/{id}/_history/1")),
            "{location}"
        );
        assert_eq!(v1["meta"]["versionId"], "1");

        let read = app.get(&format!("{t}/{id}")).await;
        assert_eq!(read.status(), 200, "{t}");
        assert_eq!(read.headers()["etag"], "W/\"1\"");
        assert_eq!(read.json::<Value>().await.unwrap(), v1);

        let mut changed = v1.clone();
        changed["text"] = json!({"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">v2</div>"});
        let updated = app
            .put(&format!("{t}/{id}"), &changed, Some("W/\"1\""))
            .await;
        assert_eq!(updated.status(), 200, "{t}");
        assert_eq!(updated.headers()["etag"], "W/\"2\"");

        let stale = app
            .put(&format!("{t}/{id}"), &changed, Some("W/\"1\""))
            .await;
        assert_outcome(stale, 412).await;

        let vread = app.get(&format!("{t}/{id}/_history/1")).await;
        assert_eq!(vread.status(), 200);
        assert!(vread.json::<Value>().await.unwrap().get("text").is_none());

        let history: Value = app
            .get(&format!("{t}/{id}/_history"))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(history["type"], "history");
        assert_eq!(history["total"], 2);
        assert_eq!(history["entry"][0]["resource"]["meta"]["versionId"], "2");

        let found = app.search(&format!("{t}?_id={id}")).await;
        assert_eq!(entry_ids(&found), std::slice::from_ref(&id), "{t}");

        let deleted = app.delete(&format!("{t}/{id}")).await;
        assert_eq!(deleted.status(), 204, "{t}");
        assert_outcome(app.get(&format!("{t}/{id}")).await, 410).await;
        let found = app.search(&format!("{t}?_id={id}")).await;
        assert_eq!(found["total"], 0, "{t}");
        let history: Value = app
            .get(&format!("{t}/{id}/_history"))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(history["total"], 3);
        assert_eq!(history["entry"][0]["request"]["method"], "DELETE");
    }
}

#[tokio::test]
async fn put_to_a_new_id_creates_the_resource_under_that_id() {
    let app = spawn_app().await;
    let patient = json!({"resourceType": "Patient", "id": "chosen-id", "gender": "male"});
    let response = app.put("Patient/chosen-id", &patient, None).await;
    assert_eq!(response.status(), 201);
    assert_eq!(app.get("Patient/chosen-id").await.status(), 200);
}

#[tokio::test]
async fn a_deleted_resource_can_be_recreated_by_update() {
    let app = spawn_app().await;
    let patient = json!({"resourceType": "Patient", "id": "p1"});
    app.put("Patient/p1", &patient, None).await;
    assert_eq!(app.delete("Patient/p1").await.status(), 204);
    assert_eq!(
        app.delete("Patient/p1").await.status(),
        204,
        "deleting twice succeeds"
    );
    let again = app.put("Patient/p1", &patient, None).await;
    assert_eq!(again.status(), 200);
    assert_eq!(again.headers()["etag"], "W/\"3\"");
}

#[tokio::test]
async fn updates_need_the_body_id_to_match_the_url() {
    let app = spawn_app().await;
    let missing = app
        .put("Patient/p1", &json!({"resourceType": "Patient"}), None)
        .await;
    assert_outcome(missing, 400).await;
    let other = app
        .put(
            "Patient/p1",
            &json!({"resourceType": "Patient", "id": "p2"}),
            None,
        )
        .await;
    assert_outcome(other, 400).await;
}

#[tokio::test]
async fn if_match_on_a_missing_resource_fails_its_precondition() {
    let app = spawn_app().await;
    let r = app
        .put(
            "Patient/nobody",
            &json!({"resourceType": "Patient", "id": "nobody"}),
            Some("W/\"1\""),
        )
        .await;
    assert_outcome(r, 412).await;
    let bad = app
        .put(
            "Patient/nobody",
            &json!({"resourceType": "Patient", "id": "nobody"}),
            Some("yesterday"),
        )
        .await;
    assert_outcome(bad, 400).await;
}

#[tokio::test]
async fn conditional_create_returns_the_existing_match_instead_of_a_duplicate() {
    let app = spawn_app().await;
    let patient =
        json!({"resourceType": "Patient", "identifier": [{"system": "urn:mrn", "value": "77"}]});
    let send = || {
        app.client
            .post(app.url("Patient"))
            .header("content-type", "application/fhir+json")
            .header("if-none-exist", "identifier=urn:mrn|77")
            .body(patient.to_string())
            .send()
    };
    let first = send().await.unwrap();
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let second = send().await.unwrap();
    assert_eq!(second.status(), 200);
    let second: Value = second.json().await.unwrap();
    assert_eq!(first["id"], second["id"]);
    assert_eq!(
        app.search("Patient?identifier=urn:mrn|77").await["total"],
        1
    );

    app.create(&patient).await;
    let ambiguous = send().await.unwrap();
    assert_outcome(ambiguous, 412).await;
}

#[tokio::test]
async fn prefer_return_shapes_the_write_response() {
    let app = spawn_app().await;
    let patient = json!({"resourceType": "Patient"});
    let minimal = app
        .client
        .post(app.url("Patient"))
        .header("content-type", "application/fhir+json")
        .header("prefer", "return=minimal")
        .body(patient.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(minimal.status(), 201);
    assert!(minimal.headers().contains_key("location"));
    assert!(minimal.bytes().await.unwrap().is_empty());

    let outcome = app
        .client
        .post(app.url("Patient"))
        .header("content-type", "application/fhir+json")
        .header("prefer", "return=OperationOutcome")
        .body(patient.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(outcome.status(), 201);
    let body: Value = outcome.json().await.unwrap();
    assert_eq!(body["resourceType"], "OperationOutcome");
    assert_eq!(body["issue"][0]["severity"], "information");
}

#[tokio::test]
async fn client_meta_is_kept_and_server_meta_is_set() {
    let app = spawn_app().await;
    let created = app
        .create(&json!({
            "resourceType": "RiskAssessment",
            "id": "ignored-on-create",
            "meta": {"versionId": "99", "security": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "AIAST"}]},
            "status": "final",
            "subject": {"reference": "Patient/x"}
        }))
        .await;
    assert_ne!(created["id"], "ignored-on-create");
    assert_eq!(created["meta"]["versionId"], "1");
    assert_eq!(created["meta"]["security"][0]["code"], "AIAST");
    assert!(
        created["meta"]["lastUpdated"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
}

#[tokio::test]
async fn concurrent_updates_of_one_resource_never_lose_a_version() {
    let app = spawn_app().await;
    let patient = json!({"resourceType": "Patient", "id": "shared"});
    app.put("Patient/shared", &patient, None).await;
    let mut handles = Vec::new();
    for _ in 0..16 {
        let client = app.client.clone();
        let url = app.url("Patient/shared");
        let body = patient.to_string();
        handles.push(tokio::spawn(async move {
            client
                .put(url)
                .header("content-type", "application/fhir+json")
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut ok = 0;
    for h in handles {
        let status = h.await.unwrap();
        assert!(status == 200 || status == 409, "unexpected {status}");
        if status == 200 {
            ok += 1;
        }
    }
    let history: Value = app
        .get("Patient/shared/_history?_count=100")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        history["total"],
        ok + 1,
        "every acknowledged update is a version"
    );
}
