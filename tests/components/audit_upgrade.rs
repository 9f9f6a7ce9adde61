//! A database whose audit trail was written before records were kept compact (each row holding
//! its AuditEvent) is upgraded in place by the SQLite migrations: every row is kept, the chain
//! still verifies, and the old rows are found and shown beside new ones.

use std::path::Path;

use prognostics::config::Settings;
use prognostics::store::{
    ChainCheck, GENESIS_HASH, NewAuditEvent, Store, chain_hash, subject_terms,
};
use sqlx::Connection;

/// The migrations as they stood before the compact trail (the first eight).
fn earlier_migrations(into: &Path) {
    let all = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite");
    let mut names: Vec<_> = std::fs::read_dir(&all)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let upto = names
        .iter()
        .position(|n| n.starts_with("20261205000008"))
        .unwrap();
    for name in &names[..=upto] {
        std::fs::copy(all.join(name), into.join(name)).unwrap();
    }
}

#[tokio::test]
async fn an_older_audit_trail_is_kept_through_the_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let migrations = dir.path().join("migrations");
    std::fs::create_dir(&migrations).unwrap();
    earlier_migrations(&migrations);
    let database = dir.path().join("prognostics.db");
    let url = format!("sqlite://{}?mode=rwc", database.display());
    sqlx::any::install_default_drivers();
    {
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::migrate::Migrator::new(migrations.as_path())
            .await
            .unwrap()
            .run(&mut conn)
            .await
            .unwrap();
        // Two rows as the trail wrote them then: the AuditEvent itself, chained.
        let mut hash = GENESIS_HASH.to_owned();
        for seq in 1..=2_i64 {
            let content = format!(
                r#"{{"resourceType":"AuditEvent","id":"old-{seq}","outcome":"0","entity":[{{"what":{{"reference":"Patient/p1"}}}}]}}"#
            );
            hash = chain_hash(&hash, seq, &content);
            sqlx::query(
                "INSERT INTO audit_events (seq, id, recorded_ms, outcome, content, hash) \
                 VALUES (?, ?, ?, '0', ?, ?)",
            )
            .bind(seq)
            .bind(format!("old-{seq}"))
            .bind(1_700_000_000_000 + seq)
            .bind(&content)
            .bind(&hash)
            .execute(&mut conn)
            .await
            .unwrap();
            sqlx::query(
                "INSERT INTO audit_subjects (seq, kind, value) VALUES (?, 'patient', 'p1')",
            )
            .bind(seq)
            .execute(&mut conn)
            .await
            .unwrap();
        }
        sqlx::query("UPDATE audit_head SET seq = 2, hash = ? WHERE id = 1")
            .bind(&hash)
            .execute(&mut conn)
            .await
            .unwrap();
    }

    let mut settings = Settings::default();
    settings.storage.data_dir = dir.path().to_path_buf();
    let store = Store::connect(&settings).await.unwrap();
    store.migrate().await.unwrap();
    // A new record chains onto the old ones.
    store
        .append_audit(&[NewAuditEvent {
            id: "new-1".into(),
            recorded_ms: 1_800_000_000_000,
            outcome: "0",
            content: r#"{"v":1,"recorded":1800000000000,"door":"rest","subtype":"read","action":"R","outcome":"0","patients":["p1"]}"#.into(),
            terms: subject_terms(["p1"].into_iter(), ["client"].into_iter()).into(),
        }])
        .await
        .unwrap();
    assert_eq!(
        store.verify_audit_chain().await.unwrap(),
        ChainCheck::Intact { rows: 3 }
    );
    let found = store
        .search_audit(&prognostics::store::AuditFilter {
            patient: Some("p1".into()),
            count: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    let ids: Vec<&str> = found.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["new-1", "old-2", "old-1"]);
    let shown = prognostics::pipeline::audit::shown(&found[2].id, &found[2].content);
    assert!(
        shown.starts_with(r#"{"resourceType":"AuditEvent","id":"old-1""#),
        "{shown}"
    );
    store.close().await;
}
