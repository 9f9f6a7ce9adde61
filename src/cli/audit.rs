//! `prognostics audit verify` and `prognostics audit export`: the audit trail checked link by
//! link, and written out as NDJSON (one AuditEvent a line) for a SIEM.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;

use crate::config::Settings;
use crate::startup::open_store;
use crate::store::ChainCheck;

/// Walks the chain; exit 0 when intact, 1 naming the first broken record.
pub async fn verify(settings: &Settings) -> anyhow::Result<ExitCode> {
    let store = open_store(settings)
        .await
        .context("could not open the database")?;
    let check = store.verify_audit_chain().await;
    store.close().await;
    match check.context("could not read the audit trail")? {
        ChainCheck::Intact { rows } => {
            println!("audit trail intact: {rows} records, each chained to the one before");
            Ok(ExitCode::SUCCESS)
        }
        ChainCheck::Broken { seq, id, reason } => {
            let named = if id.is_empty() {
                String::new()
            } else {
                format!(" (AuditEvent/{id})")
            };
            println!("audit trail BROKEN at record {seq}{named}: {reason}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Writes every AuditEvent recorded at or after `since` (a date, UTC, or an RFC 3339 time), oldest
/// first, to standard output.
pub async fn export(settings: &Settings, since: &str) -> anyhow::Result<ExitCode> {
    let since_ms = chrono::DateTime::parse_from_rfc3339(since)
        .map(|t| t.timestamp_millis())
        .or_else(|_| {
            chrono::NaiveDate::parse_from_str(since, "%Y-%m-%d").map(|d| {
                d.and_time(chrono::NaiveTime::MIN)
                    .and_utc()
                    .timestamp_millis()
            })
        })
        .with_context(|| {
            format!("--since {since:?} is not a date (2026-12-01) or an RFC 3339 time")
        })?;
    let store = open_store(settings)
        .await
        .context("could not open the database")?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut after = 0;
    let mut written = 0usize;
    loop {
        let rows = store.audit_since(since_ms, after, 1_000).await?;
        let Some(last) = rows.last() else { break };
        after = last.seq;
        for row in &rows {
            writeln!(
                out,
                "{}",
                crate::pipeline::audit::shown(&row.id, &row.content)
            )?;
        }
        written += rows.len();
    }
    out.flush()?;
    store.close().await;
    tracing::info!(records = written, "audit trail exported");
    Ok(ExitCode::SUCCESS)
}
