//! The database pool under pressure is told in the log once, not once per waiting request.

use std::time::Duration;

use serde_json::json;
use sqlx::Connection;

use crate::request_log::Service;

/// sqlx's own line for an acquire that waited over its threshold (2 s).
const SQLX_SLOW_ACQUIRE: &str = "time to acquire exceeded slow threshold";
const SATURATED: &str = "every database connection is in use";

#[tokio::test]
async fn requests_waiting_for_a_connection_are_told_once_not_once_each() {
    let service = Service::start_with(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")),
        &[
            ("PROGNOSTICS_INFERENCE__ENABLED", "false"),
            ("PROGNOSTICS_DATABASE__MAX_CONNECTIONS", "1"),
            ("PROGNOSTICS_DATABASE__ACQUIRE_TIMEOUT_SECS", "30"),
        ],
        false,
    )
    .await;
    let client = reqwest::Client::new();
    let create = || {
        client
            .post(format!("{}/fhir/Patient", service.address))
            .header("Content-Type", "application/fhir+json")
            .body(json!({"resourceType": "Patient", "gender": "other"}).to_string())
            .send()
    };
    assert_eq!(create().await.unwrap().status(), 201);
    let from = service.logged();

    // Another process holds the database's write lock for 4 s: the service's one connection
    // waits in a write, and every request behind it waits for that connection.
    sqlx::any::install_default_drivers();
    let mut holder = sqlx::AnyConnection::connect(&service.database_url())
        .await
        .unwrap();
    let lock = if service.database.is_some() {
        "LOCK TABLE resources IN ACCESS EXCLUSIVE MODE"
    } else {
        "INSERT INTO resources (resource_type, id, version_id, last_updated_ms, content) \
         VALUES ('Basic', 'lock-holder', 1, 0, NULL)"
    };
    let mut held = holder.begin().await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(lock))
        .execute(&mut *held)
        .await
        .unwrap();
    // A write takes the one connection and waits for the lock; searches, which read the
    // database (not the read cache), wait for that connection.
    let writing = create();
    let searches = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let search = |_| {
            client
                .get(format!("{}/fhir/Patient?gender=other", service.address))
                .send()
        };
        futures_util::future::join_all((0..20).map(search)).await
    };
    let release = async {
        tokio::time::sleep(Duration::from_secs(4)).await;
        held.rollback().await.unwrap();
    };
    let (written, searched, ()) = tokio::join!(writing, searches, release);
    assert_eq!(written.unwrap().status(), 201);
    for answer in searched {
        assert_eq!(answer.unwrap().status(), 200, "a waiting request fails");
    }

    let lines: Vec<String> = service
        .since(from)
        .iter()
        .map(|line| line.to_string())
        .collect();
    let count = |text: &str| lines.iter().filter(|l| l.contains(text)).count();
    assert_eq!(count(SQLX_SLOW_ACQUIRE), 0, "{lines:#?}");
    assert_eq!(count(SATURATED), 1, "{lines:#?}");
}
