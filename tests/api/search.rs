use std::collections::HashSet;

use serde_json::{Value, json};

use crate::helpers::{assert_outcome, entry_ids, spawn_app};

fn observation(patient: &str, code: &str, date: &str, status: &str) -> Value {
    json!({
        "resourceType": "Observation",
        "status": status,
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        "subject": {"reference": format!("Patient/{patient}")},
        "effectiveDateTime": date,
        "identifier": [{"system": "urn:lab", "value": format!("{patient}-{code}-{date}")}]
    })
}

#[tokio::test]
async fn paging_follows_next_links_through_every_match_once() {
    let app = spawn_app().await;
    for day in 1..=25 {
        app.create(&observation(
            "p1",
            "718-7",
            &format!("2024-01-{day:02}"),
            "final",
        ))
        .await;
    }
    let mut seen = HashSet::new();
    let mut url = app.url("Observation?patient=p1&_count=10");
    let mut pages = 0;
    loop {
        let page: Value = app.get_url(&url).await.json().await.unwrap();
        assert_eq!(page["total"], 25);
        for id in entry_ids(&page) {
            assert!(seen.insert(id), "an entry came back twice");
        }
        pages += 1;
        let next = page["link"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["relation"] == "next")
            .map(|l| l["url"].as_str().unwrap().to_owned());
        match next {
            Some(next) => url = next,
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 25);
}

#[tokio::test]
async fn token_reference_and_status_parameters_filter() {
    let app = spawn_app().await;
    let a = app
        .create(&observation("p1", "718-7", "2024-01-01", "final"))
        .await;
    let b = app
        .create(&observation("p1", "2345-7", "2024-02-01", "preliminary"))
        .await;
    let c = app
        .create(&observation("p2", "718-7", "2024-03-01", "final"))
        .await;
    let id = |v: &Value| v["id"].as_str().unwrap().to_owned();

    let by_code = app
        .search("Observation?code=http://loinc.org|718-7&_sort=_id")
        .await;
    let mut expected = vec![id(&a), id(&c)];
    expected.sort();
    assert_eq!(entry_ids(&by_code), expected);
    assert_eq!(app.search("Observation?code=718-7").await["total"], 2);
    assert_eq!(
        app.search("Observation?code=http://snomed.info/sct|718-7")
            .await["total"],
        0
    );
    assert_eq!(
        app.search("Observation?code=http://loinc.org|").await["total"],
        3
    );
    assert_eq!(
        app.search("Observation?code=718-7,2345-7").await["total"],
        3
    );
    assert_eq!(app.search("Observation?code:not=718-7").await["total"], 1);

    assert_eq!(
        entry_ids(&app.search("Observation?subject=Patient/p2").await),
        [id(&c)]
    );
    assert_eq!(app.search("Observation?patient=p1").await["total"], 2);
    assert_eq!(
        app.search("Observation?patient=Patient/p1&status=preliminary")
            .await["total"],
        1
    );
    assert_eq!(
        entry_ids(&app.search("Observation?status=preliminary").await),
        [id(&b)]
    );
    assert_eq!(
        app.search("Observation?identifier=urn:lab|p2-718-7-2024-03-01")
            .await["total"],
        1
    );
}

#[tokio::test]
async fn date_parameters_honour_prefixes_and_precision() {
    let app = spawn_app().await;
    for date in [
        "2023-12-31",
        "2024-01-15",
        "2024-02-01T10:00:00Z",
        "2024-06-30",
    ] {
        app.create(&observation("p1", "718-7", date, "final")).await;
    }
    let total = |v: Value| v["total"].as_u64().unwrap();
    assert_eq!(total(app.search("Observation?date=2024").await), 3);
    assert_eq!(total(app.search("Observation?date=2024-01").await), 1);
    assert_eq!(total(app.search("Observation?date=ge2024-02-01").await), 2);
    assert_eq!(total(app.search("Observation?date=lt2024-01-01").await), 1);
    assert_eq!(
        total(
            app.search("Observation?date=ge2024-01-01&date=lt2024-03-01")
                .await
        ),
        2
    );
    assert_eq!(total(app.search("Observation?date=gt2024-06-30").await), 0);
    assert_eq!(
        total(app.search("Observation?date=2024-02-01T10:00:00Z").await),
        1
    );
    let sorted = app.search("Observation?_sort=-date").await;
    let dates: Vec<&str> = sorted["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"]["effectiveDateTime"].as_str().unwrap())
        .collect();
    assert_eq!(
        dates,
        [
            "2024-06-30",
            "2024-02-01T10:00:00Z",
            "2024-01-15",
            "2023-12-31"
        ]
    );
}

#[tokio::test]
async fn last_updated_finds_recent_writes() {
    let app = spawn_app().await;
    app.create(&json!({"resourceType": "Patient"})).await;
    assert_eq!(
        app.search("Patient?_lastUpdated=ge2020-01-01").await["total"],
        1
    );
    assert_eq!(
        app.search("Patient?_lastUpdated=lt2020-01-01").await["total"],
        0
    );
}

#[tokio::test]
async fn unknown_parameters_are_ignored_unless_handling_is_strict() {
    let app = spawn_app().await;
    app.create(&json!({"resourceType": "Patient"})).await;
    let lenient = app.search("Patient?family=Smith").await;
    assert_eq!(lenient["total"], 1);
    let self_link = lenient["link"][0]["url"].as_str().unwrap();
    assert!(
        !self_link.contains("family"),
        "ignored parameters are left out of self: {self_link}"
    );

    let strict = app
        .client
        .get(app.url("Patient?family=Smith"))
        .header("prefer", "handling=strict")
        .send()
        .await
        .unwrap();
    assert_outcome(strict, 400).await;
}

#[tokio::test]
async fn invalid_search_values_are_refused() {
    let app = spawn_app().await;
    assert_outcome(app.get("Observation?date=last-tuesday").await, 400).await;
    assert_outcome(app.get("Observation?_count=many").await, 400).await;
    assert_outcome(app.get("Observation?code:text=x").await, 400).await;
}

#[tokio::test]
async fn the_total_is_right_whether_read_from_the_page_or_counted() {
    let app = spawn_app().await;
    let patient = app
        .create(&json!({"resourceType": "Patient", "gender": "female"}))
        .await;
    let id = patient["id"].as_str().unwrap();
    for day in 1..=25 {
        app.create(&observation(
            id,
            "2093-3",
            &format!("2025-01-{day:02}"),
            "final",
        ))
        .await;
    }
    // A page not full tells the total; a full one, or one past the end, is counted.
    for (query, total, entries) in [
        ("_count=30", 25, 25),
        ("_count=25", 25, 25),
        ("_count=10", 25, 10),
        ("_count=10&_offset=20", 25, 5),
        ("_count=10&_offset=10", 25, 10),
        ("_count=10&_offset=40", 25, 0),
        ("_summary=count", 25, 0),
    ] {
        let bundle = app
            .search(&format!("Observation?subject=Patient/{id}&{query}"))
            .await;
        assert_eq!(bundle["total"], total, "{query}");
        let found = bundle["entry"].as_array().map_or(0, Vec::len);
        assert_eq!(found, entries, "{query}");
    }
}

/// A search asked again is answered from memory until a write may change it: every write
/// (create, update, delete, transaction) shows in the next search at once.
#[tokio::test]
async fn a_search_asked_again_shows_every_write_since() {
    let app = spawn_app().await;
    let search = "Observation?subject=Patient/p1&_total=accurate";
    let total = |page: Value| page["total"].as_u64().unwrap();
    assert_eq!(total(app.search(search).await), 0);
    assert_eq!(total(app.search(search).await), 0);

    let first = app
        .create(&observation("p1", "718-7", "2024-01-01", "final"))
        .await;
    assert_eq!(total(app.search(search).await), 1);

    // Moved to another patient by an update.
    let id = first["id"].as_str().unwrap();
    let mut moved = first.clone();
    moved["subject"] = json!({"reference": "Patient/p2"});
    let updated = app.put(&format!("Observation/{id}"), &moved, None).await;
    assert_eq!(updated.status(), 200);
    assert_eq!(total(app.search(search).await), 0);

    // Two in one transaction.
    let entry = |date: &str| {
        json!({
            "resource": observation("p1", "2532-0", date, "final"),
            "request": {"method": "POST", "url": "Observation"},
        })
    };
    let transaction = json!({
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [entry("2024-02-01"), entry("2024-02-02")],
    });
    assert_eq!(app.post("", &transaction).await.status(), 200);
    let page = app.search(search).await;
    assert_eq!(total(page.clone()), 2);

    // One deleted.
    let gone = entry_ids(&page).into_iter().next().unwrap();
    assert!(
        app.delete(&format!("Observation/{gone}"))
            .await
            .status()
            .is_success()
    );
    assert_eq!(total(app.search(search).await), 1);
}
