use serde_json::json;

use crate::helpers::{assert_outcome, spawn_app, spawn_app_with};

async fn post_raw(
    app: &crate::helpers::TestApp,
    path: &str,
    content_type: &str,
    body: &str,
) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .header("content-type", content_type)
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn malformed_json_is_a_400_naming_the_position() {
    let app = spawn_app().await;
    let r = post_raw(
        &app,
        "Patient",
        "application/fhir+json",
        "{\"resourceType\": \"Patient\",,}",
    )
    .await;
    let outcome = assert_outcome(r, 400).await;
    assert!(
        outcome["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("line 1"),
        "{outcome}"
    );
}

#[tokio::test]
async fn invalid_resources_are_a_400_naming_the_element() {
    let app = spawn_app().await;
    let r = app
        .post(
            "Observation",
            &json!({"resourceType": "Observation", "status": "final"}),
        )
        .await;
    let outcome = assert_outcome(r, 400).await;
    assert_eq!(outcome["issue"][0]["expression"][0], "Observation.code");

    let r = app
        .post(
            "Observation",
            &json!({"resourceType": "Observation", "status": "done", "code": {"text": "x"}}),
        )
        .await;
    let outcome = assert_outcome(r, 400).await;
    assert_eq!(outcome["issue"][0]["expression"][0], "Observation.status");

    let r = app
        .post(
            "Patient",
            &json!({"resourceType": "Patient", "birthDate": 19600401}),
        )
        .await;
    let outcome = assert_outcome(r, 400).await;
    assert_eq!(outcome["issue"][0]["expression"][0], "Patient.birthDate");

    let r = app
        .post(
            "Patient",
            &json!({"resourceType": "Patient", "favouriteColour": "blue"}),
        )
        .await;
    let outcome = assert_outcome(r, 400).await;
    assert_eq!(
        outcome["issue"][0]["expression"][0],
        "Patient.favouriteColour"
    );
}

#[tokio::test]
async fn a_body_of_another_type_than_the_url_is_refused() {
    let app = spawn_app().await;
    let r = app
        .post("Observation", &json!({"resourceType": "Patient"}))
        .await;
    assert_outcome(r, 400).await;
    assert_eq!(app.search("Patient").await["total"], 0);
}

#[tokio::test]
async fn ids_that_are_not_fhir_ids_are_refused() {
    let app = spawn_app().await;
    assert_outcome(app.get("Patient/not_an_id!").await, 400).await;
    let r = app
        .put(
            "Patient/has_underscore",
            &json!({"resourceType": "Patient", "id": "has_underscore"}),
            None,
        )
        .await;
    assert_outcome(r, 400).await;
}

#[tokio::test]
async fn unknown_types_ids_and_routes_are_404() {
    let app = spawn_app().await;
    assert_outcome(app.get("Parameters/1").await, 404).await;
    assert_outcome(app.get("Parameters").await, 404).await;
    assert_outcome(app.get("Patient/nobody").await, 404).await;
    assert_outcome(app.get("Patient/nobody/_history/1").await, 404).await;
    let r = app
        .client
        .get(format!("{}/nowhere", app.address))
        .send()
        .await
        .unwrap();
    assert_outcome(r, 404).await;
}

#[tokio::test]
async fn unsupported_methods_are_405_with_allow() {
    let app = spawn_app().await;
    let r = app
        .client
        .patch(app.url("Patient/p1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["allow"], "GET, PUT, DELETE");
    assert_outcome(r, 405).await;
    let r = app.client.delete(app.url("metadata")).send().await.unwrap();
    assert_outcome(r, 405).await;
}

#[tokio::test]
async fn bodies_over_the_limit_are_413() {
    let app = spawn_app_with(|s| s.server.max_body_bytes = 1024).await;
    let big = json!({"resourceType": "Patient", "text": {"status": "generated", "div": format!("<div xmlns=\"http://www.w3.org/1999/xhtml\">{}</div>", "x".repeat(4096))}});
    assert_outcome(app.post("Patient", &big).await, 413).await;
    assert_eq!(app.search("Patient").await["total"], 0);
}

#[tokio::test]
async fn the_default_body_limit_is_8_mib() {
    let app = spawn_app().await;
    let big = "x".repeat(8 * 1024 * 1024 + 1);
    assert_outcome(
        post_raw(&app, "Patient", "application/fhir+json", &big).await,
        413,
    )
    .await;
}

#[tokio::test]
async fn other_media_types_are_415_and_406() {
    let app = spawn_app().await;
    let r = post_raw(&app, "Patient", "application/xml", "<Patient/>").await;
    assert_outcome(r, 415).await;
    let r = app.get("metadata?_format=xml").await;
    assert_outcome(r, 406).await;
    let r = app
        .client
        .get(app.url("metadata"))
        .header("accept", "application/fhir+xml")
        .send()
        .await
        .unwrap();
    assert_outcome(r, 406).await;
}

#[tokio::test]
async fn plain_json_is_accepted_and_format_is_honoured() {
    let app = spawn_app().await;
    let r = post_raw(
        &app,
        "Patient",
        "application/json",
        "{\"resourceType\": \"Patient\"}",
    )
    .await;
    assert_eq!(r.status(), 201);
    let r = app.get("metadata?_format=application/json").await;
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let r = app.get("metadata?_format=json").await;
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/fhir+json")
    );
}

#[tokio::test]
async fn hostile_content_is_not_echoed_in_errors() {
    let app = spawn_app().await;
    let r = app.post("Observation", &json!({"resourceType": "Observation", "status": "Jane Doe MRN 12345", "code": {"text": "x"}})).await;
    let outcome = assert_outcome(r, 400).await;
    assert!(!outcome.to_string().contains("Jane Doe"), "{outcome}");
}

/// A resource of R4's long tail (no fhir-sdk model here) is checked against R4's element
/// definitions: what R4 does not allow is 400 naming the element.
#[tokio::test]
async fn a_long_tail_resource_is_checked_against_r4s_definitions() {
    let app = spawn_app().await;
    let good = json!({"resourceType": "Appointment", "status": "booked",
        "participant": [{"status": "accepted", "actor": {"reference": "Patient/p1"}}]});
    assert_eq!(app.post("Appointment", &good).await.status(), 201);
    for (bad, path) in [
        (
            json!({"resourceType": "Appointment", "status": "booked", "participant": [{"status": "accepted"}], "colour": "red"}),
            "Appointment.colour",
        ),
        (
            json!({"resourceType": "Appointment", "participant": [{"status": "accepted"}]}),
            "Appointment.status",
        ),
        (
            json!({"resourceType": "Appointment", "status": "booked", "start": "tomorrow", "participant": [{"status": "accepted"}]}),
            "Appointment.start",
        ),
    ] {
        let outcome = assert_outcome(app.post("Appointment", &bad).await, 400).await;
        assert_eq!(outcome["issue"][0]["expression"][0], path, "{outcome}");
    }
}

/// Links are built from the service's own base, never from the Host or X-Forwarded-* headers a
/// client sends (which would let one client plant links to another host in what others read).
#[tokio::test]
async fn links_ignore_the_host_a_client_claims() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(format!("{}/Patient", app.base))
        .header("Content-Type", "application/fhir+json")
        .header("Host", "evil.example.org")
        .header("X-Forwarded-Host", "evil.example.org")
        .header("X-Forwarded-Proto", "https")
        .header("Forwarded", "host=evil.example.org;proto=https")
        .body(r#"{"resourceType": "Patient"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(&app.base), "{location}");
    let found = app.search("Patient").await;
    let links = found["link"].to_string() + &found["entry"].to_string();
    assert!(!links.contains("evil"), "{links}");
}

#[tokio::test]
async fn a_search_with_thousands_of_values_is_a_400_not_a_database_error() {
    let app = spawn_app().await;
    let values = |n: usize| {
        (0..n)
            .map(|i| format!("c{i}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    // As many as a search may name: answered.
    let r = app.get(&format!("Observation?code={}", values(500))).await;
    assert_eq!(r.status(), 200);
    // Thousands OR'd in one parameter, or as many parameters: refused before any SQL.
    let outcome = assert_outcome(
        app.get(&format!("Observation?code={}", values(3000))).await,
        400,
    )
    .await;
    assert!(
        outcome["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("at most 500 values"),
        "{outcome}"
    );
    let repeated = |n: usize| {
        (0..n)
            .map(|i| format!("code=c{i}"))
            .collect::<Vec<_>>()
            .join("&")
    };
    // As many criteria as a search may AND: answered; one more, or hundreds: refused.
    assert_eq!(
        app.get(&format!("Observation?{}", repeated(30)))
            .await
            .status(),
        200
    );
    for n in [31, 600] {
        assert_outcome(app.get(&format!("Observation?{}", repeated(n))).await, 400).await;
    }
    // A conditional create whose If-None-Exist names thousands: refused, nothing created.
    let r = app
        .client
        .post(app.url("Patient"))
        .header("content-type", "application/fhir+json")
        .header("if-none-exist", format!("identifier={}", values(3000)))
        .body(json!({"resourceType": "Patient"}).to_string())
        .send()
        .await
        .unwrap();
    assert_outcome(r, 400).await;
    let total = app.search("Patient?_summary=count").await["total"].clone();
    assert_eq!(total, 0, "nothing created");
}
