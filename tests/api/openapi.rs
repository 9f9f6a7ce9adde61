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

/// Deny by default, proved: every documented operation has its rule in the access policy
/// (a route without one is refused), and declares what it needs (a bearer token with the
/// listed scopes, or nothing for the public ones).
#[test]
fn every_documented_operation_has_an_access_rule() {
    use prognostics::api::policy::{Needs, RULES, rule_for};
    let spec: serde_json::Value =
        serde_json::from_str(&prognostics::api::openapi().to_json().unwrap()).unwrap();
    let mut operations = 0;
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let Ok(verb) = actix_web::http::Method::from_bytes(method.to_uppercase().as_bytes())
            else {
                continue;
            };
            operations += 1;
            let rule = rule_for(&verb, path)
                .unwrap_or_else(|| panic!("{method} {path} has no access rule"));
            let security = &operation["security"];
            match rule.needs {
                Needs::Public => assert_eq!(security, &serde_json::json!([{}]), "{path}"),
                _ => assert!(security[0]["bearer"].is_array(), "{method} {path}"),
            }
        }
    }
    // Every rule but the document's own pages is a documented operation.
    let undocumented = ["/openapi.json", "/docs", "/docs/{_:.*}"];
    assert_eq!(operations, RULES.len() - undocumented.len());
}
