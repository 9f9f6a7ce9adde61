//! The official FHIR R4 examples (npm hl7.fhir.r4.examples 4.0.1) of every stored type
//! round-trip: POST, then GET returns the same content apart from `id` and `meta`.

use prognostics::domain::ResourceType;
use serde_json::Value;

use crate::helpers::{r4_examples_dir, spawn_app};

fn without_id_and_meta(mut v: Value) -> Value {
    if let Some(map) = v.as_object_mut() {
        map.remove("id");
        map.remove("meta");
    }
    v
}

#[tokio::test]
async fn official_r4_examples_round_trip() {
    let Some(dir) = r4_examples_dir() else { return };
    let app = spawn_app().await;
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            ResourceType::ALL
                .iter()
                .any(|t| name.starts_with(&format!("{t}-")))
                && name.ends_with(".json")
        })
        .collect();
    files.sort();
    let mut failures = Vec::new();
    let mut checked = 0;
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let original: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        let t = original["resourceType"].as_str().unwrap().to_owned();
        if t.parse::<ResourceType>().is_err() {
            continue;
        }
        let response = app.post(&t, &original).await;
        if response.status() != 201 {
            let body = response.text().await.unwrap();
            failures.push(format!("{name}: {body}"));
            continue;
        }
        let created: Value = response.json().await.unwrap();
        let id = created["id"].as_str().unwrap();
        let read: Value = app.get(&format!("{t}/{id}")).await.json().await.unwrap();
        if without_id_and_meta(read) != without_id_and_meta(original.clone()) {
            failures.push(format!("{name}: content changed on the way through"));
        }
        checked += 1;
    }
    assert!(
        failures.is_empty(),
        "{} of {} examples failed:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
    assert!(checked >= 140, "only {checked} examples were checked");
    eprintln!("{checked} official R4 examples round-tripped");
}
