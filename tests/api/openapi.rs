//! `openapi/openapi.json` is generated from the code; this fails when it is stale.
//! `UPDATE_OPENAPI=1 cargo test --test api openapi` rewrites it.

use std::path::PathBuf;

use crate::helpers::spawn_app;

fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("openapi/openapi.json")
}

#[test]
fn spec_is_up_to_date() {
    let generated = prognostics::api::openapi().to_pretty_json().unwrap() + "\n";
    let path = committed_path();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "openapi/openapi.json is stale: run UPDATE_OPENAPI=1 cargo test --test api openapi"
    );
}

#[test]
fn every_fhir_interaction_is_documented() {
    let spec = prognostics::api::openapi();
    let paths: Vec<&String> = spec.paths.paths.keys().collect();
    for expected in [
        "/fhir",
        "/fhir/metadata",
        "/fhir/{resource_type}",
        "/fhir/{resource_type}/{id}",
        "/fhir/{resource_type}/{id}/_history",
        "/fhir/{resource_type}/{id}/_history/{version_id}",
        "/healthz",
        "/readyz",
    ] {
        assert!(
            paths.iter().any(|p| *p == expected),
            "{expected} missing from {paths:?}"
        );
    }
}

#[tokio::test]
async fn the_served_document_is_the_committed_one() {
    let app = spawn_app().await;
    let served: serde_json::Value = app
        .client
        .get(format!("{}/openapi.json", app.address))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let committed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(committed_path()).unwrap()).unwrap();
    assert_eq!(served, committed);
}
