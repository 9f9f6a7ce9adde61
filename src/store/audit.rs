//! The audit trail's table: records appended in batches, each row chained to the one before
//! by its hash (sha256 of the previous hash, the row's sequence number and its content), never
//! updated or deleted by the service; found by patient, agent, outcome and date; walked in
//! order to check the chain and to export.

use std::str::FromStr;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{Connection, Row, Sqlite};

use super::{Store, StoreError, values_statement};
use crate::config::DatabaseBackend;

/// The hash before the first row.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One AuditEvent to append. Its texts are shared, so that binding them to a statement copies
/// nothing (and a batch that failed is still whole to try again).
#[derive(Debug, Clone)]
pub struct NewAuditEvent {
    pub id: Arc<str>,
    pub recorded_ms: i64,
    /// AuditEvent.outcome: 0, 4, 8 or 12.
    pub outcome: &'static str,
    /// The record as kept (compact JSON; the AuditEvent is drawn from it when read).
    pub content: Arc<str>,
    /// Who and whom it is about, as index terms ([`subject_terms`]).
    pub terms: Arc<str>,
}

/// What a search of the trail asks for.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub patient: Option<String>,
    pub agent: Option<String>,
    pub outcome: Option<String>,
    /// Recorded at or after (ms) …
    pub from_ms: Option<i64>,
    /// … and before (ms).
    pub until_ms: Option<i64>,
    /// Only rows before this sequence number (the next page).
    pub before_seq: Option<i64>,
    pub count: usize,
}

/// A row of the trail.
#[derive(Debug, Clone)]
pub struct AuditRow {
    pub seq: i64,
    pub id: String,
    pub content: String,
}

/// The first row that does not hash to what the chain says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainCheck {
    Intact {
        rows: i64,
    },
    Broken {
        seq: i64,
        id: String,
        reason: String,
    },
}

/// Rows in one INSERT: 6 columns × 500 stays far below the bind limits of SQLite (32,766)
/// and PostgreSQL (65,535).
const ROWS_PER_STATEMENT: usize = 500;

/// The index term of a subject: `X` and the upper-case hex of `kind:value`, one token whatever
/// the value holds (for SQLite's FTS5 table `audit_subject_terms`, PostgreSQL's GIN index of
/// the terms as an array).
fn subject_term(kind: &str, value: &str) -> String {
    let mut term = String::with_capacity(1 + 2 * (kind.len() + 1 + value.len()));
    push_subject_term(&mut term, kind, value);
    term
}

fn push_subject_term(out: &mut String, kind: &str, value: &str) {
    out.push('X');
    for part in [kind.as_bytes(), b":", value.as_bytes()] {
        push_hex(out, part, UPPER_HEX);
    }
}

const UPPER_HEX: &[u8; 16] = b"0123456789ABCDEF";
const LOWER_HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends `bytes` to `out` as hex, two digits each, in the case `digits` spells. The digits
/// are made as bytes a block at a time (pushing them as chars one by one cost more than the
/// audit record's hash).
fn push_hex(out: &mut String, bytes: &[u8], digits: &[u8; 16]) {
    let mut block = [0u8; 128];
    for chunk in bytes.chunks(block.len() / 2) {
        for (pair, byte) in block.chunks_exact_mut(2).zip(chunk) {
            pair[0] = digits[usize::from(byte >> 4)];
            pair[1] = digits[usize::from(byte & 0x0f)];
        }
        // Hex digits are ASCII, so the block is always UTF-8.
        if let Ok(hex) = std::str::from_utf8(&block[..2 * chunk.len()]) {
            out.push_str(hex);
        }
    }
}

/// A record's index terms, separated by spaces: its patients' (Patient ids) and its agents'
/// (client ids, user references, AE titles, network addresses).
pub fn subject_terms<'a>(
    patients: impl Iterator<Item = &'a str> + Clone,
    agents: impl Iterator<Item = &'a str> + Clone,
) -> String {
    let subjects = (patients.map(|p| ("patient", p))).chain(agents.map(|a| ("agent", a)));
    let length: usize = subjects
        .clone()
        .map(|(kind, value)| 2 + 2 * (kind.len() + 1 + value.len()))
        .sum();
    let mut terms = String::with_capacity(length);
    for (kind, value) in subjects {
        if !terms.is_empty() {
            terms.push(' ');
        }
        push_subject_term(&mut terms, kind, value);
    }
    terms
}

/// The chain's hash of a row.
pub fn chain_hash(previous: &str, seq: i64, content: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(previous.as_bytes());
    hasher.update(seq.to_be_bytes());
    hasher.update(content.as_bytes());
    let mut hex = String::with_capacity(64);
    push_hex(&mut hex, &hasher.finalize(), LOWER_HEX);
    hex
}

/// Appends `events` on SQLite: the head is read under the write lock `BEGIN IMMEDIATE`
/// takes, the rows and their terms (rows of the FTS5 table `audit_subject_terms`, by sequence
/// number) written many to a statement, and the head moved, in one transaction.
async fn append_on_sqlite(
    conn: &mut SqliteConnection,
    events: &[NewAuditEvent],
) -> Result<(), StoreError> {
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    let head = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
        .fetch_one(&mut *tx)
        .await?;
    let head_seq: i64 = head.try_get("seq")?;
    let rows = chained(head_seq, &head.try_get::<String, _>("hash")?, events);
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let sql = values_statement(
            DatabaseBackend::Sqlite,
            "INSERT INTO audit_events (seq, id, recorded_ms, outcome, content, hash) VALUES ",
            6,
            chunk.len(),
        );
        let mut query = sqlx::query::<Sqlite>(sqlx::AssertSqlSafe(sql));
        for row in chunk {
            query = query
                .bind(row.seq)
                .bind(Arc::clone(&row.event.id))
                .bind(row.event.recorded_ms)
                .bind(row.event.outcome)
                .bind(Arc::clone(&row.event.content))
                .bind(Arc::clone(&row.hash));
        }
        query.execute(&mut *tx).await?;
    }
    let indexed: Vec<&ChainedEvent> = rows.iter().filter(|r| !r.event.terms.is_empty()).collect();
    for chunk in indexed.chunks(ROWS_PER_STATEMENT) {
        let sql = values_statement(
            DatabaseBackend::Sqlite,
            "INSERT INTO audit_subject_terms (rowid, terms) VALUES ",
            2,
            chunk.len(),
        );
        let mut query = sqlx::query::<Sqlite>(sqlx::AssertSqlSafe(sql));
        for row in chunk {
            query = query.bind(row.seq).bind(Arc::clone(&row.event.terms));
        }
        query.execute(&mut *tx).await?;
    }
    let (seq, hash) = chain_end(head_seq, &rows);
    sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
        .bind(seq)
        .bind(hash)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// An event with its place in the chain.
struct ChainedEvent<'a> {
    seq: i64,
    hash: Arc<str>,
    event: &'a NewAuditEvent,
}

/// `events` numbered and hashed in order after the row `previous_seq` whose hash is `previous`.
fn chained<'a>(
    previous_seq: i64,
    previous: &str,
    events: &'a [NewAuditEvent],
) -> Vec<ChainedEvent<'a>> {
    let mut hash = previous.to_owned();
    let mut rows = Vec::with_capacity(events.len());
    for (seq, event) in (previous_seq + 1..).zip(events) {
        hash = chain_hash(&hash, seq, &event.content);
        rows.push(ChainedEvent {
            seq,
            hash: Arc::from(hash.as_str()),
            event,
        });
    }
    rows
}

/// The head after `rows` (never empty: an empty batch is not written).
fn chain_end<'a>(head_seq: i64, rows: &'a [ChainedEvent]) -> (i64, &'a str) {
    rows.last().map_or((head_seq, ""), |r| (r.seq, &*r.hash))
}

/// SQLite: the audit trail's own connection, in sqlx's SQLite types. Through `Any` each text
/// bound was copied three times and allocated four, which at the rate records arrive cost more
/// than SQLite's own work; here a record's texts are bound by reference count. It writes only
/// while holding the store's write queue, as every other writer does.
#[derive(Debug)]
pub(super) struct SqliteAppender {
    options: SqliteConnectOptions,
    connection: tokio::sync::Mutex<Option<SqliteConnection>>,
}

impl SqliteAppender {
    pub(super) fn new(url: &str) -> Result<Self, sqlx::Error> {
        Ok(Self {
            options: SqliteConnectOptions::from_str(url)?,
            connection: tokio::sync::Mutex::new(None),
        })
    }

    pub(super) async fn close(&self) {
        if let Some(connection) = self.connection.lock().await.take() {
            let _ = connection.close().await;
        }
    }
}

impl Store {
    /// Appends events, in order, in one transaction that holds the chain's head.
    pub async fn append_audit(&self, events: &[NewAuditEvent]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        match &self.sqlite_appender {
            Some(appender) => self.append_audit_sqlite(appender, events).await,
            None => self.append_audit_postgres(events).await,
        }
    }

    async fn append_audit_sqlite(
        &self,
        appender: &SqliteAppender,
        events: &[NewAuditEvent],
    ) -> Result<(), StoreError> {
        let _queued = match &self.write_queue {
            Some(queue) => Some(queue.lock().await),
            None => None,
        };
        let mut connection = appender.connection.lock().await;
        let conn = match &mut *connection {
            Some(conn) => conn,
            None => connection.insert(SqliteConnection::connect_with(&appender.options).await?),
        };
        let appended = append_on_sqlite(conn, events).await;
        if appended.is_err() {
            // A connection whose transaction failed (a full disk) may be left inside it: the
            // next batch opens a fresh one.
            if let Some(failed) = connection.take() {
                let _ = failed.close().await;
            }
        }
        appended
    }

    /// PostgreSQL: the terms are a column of the row, under a GIN index.
    async fn append_audit_postgres(&self, events: &[NewAuditEvent]) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        // Writing the head first takes its row lock, so that two writers (two replicas) never
        // chain onto the same row.
        sqlx::query("UPDATE audit_head SET seq = seq WHERE id = 1")
            .execute(tx.connection())
            .await?;
        let head = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_one(tx.connection())
            .await?;
        let head_seq: i64 = head.try_get("seq")?;
        let rows = chained(head_seq, &head.try_get::<String, _>("hash")?, events);
        // Many rows per statement: a statement is a round trip to the database.
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let sql = values_statement(
                self.backend,
                "INSERT INTO audit_events \
                 (seq, id, recorded_ms, outcome, content, hash, subject_terms) VALUES ",
                7,
                chunk.len(),
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for row in chunk {
                query = query
                    .bind(row.seq)
                    .bind(&*row.event.id)
                    .bind(row.event.recorded_ms)
                    .bind(row.event.outcome)
                    .bind(&*row.event.content)
                    .bind(&*row.hash)
                    .bind(&*row.event.terms);
            }
            query.execute(tx.connection()).await?;
        }
        let (seq, hash) = chain_end(head_seq, &rows);
        sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
            .bind(seq)
            .bind(hash)
            .execute(tx.connection())
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Events matching `filter`, newest first, at most `filter.count`.
    pub async fn search_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRow>, StoreError> {
        enum Bind<'a> {
            Text(&'a str),
            Number(i64),
        }
        let mut sql = String::from("SELECT e.seq, e.id, e.content FROM audit_events e WHERE 1 = 1");
        let mut binds = Vec::new();
        let terms: Vec<String> = [("patient", &filter.patient), ("agent", &filter.agent)]
            .into_iter()
            .filter_map(|(kind, value)| value.as_deref().map(|v| subject_term(kind, v)))
            .collect();
        for term in &terms {
            binds.push(Bind::Text(term));
            sql.push_str(&match self.backend {
                DatabaseBackend::Sqlite => format!(
                    " AND e.seq IN (SELECT rowid FROM audit_subject_terms \
                     WHERE audit_subject_terms MATCH ${})",
                    binds.len()
                ),
                DatabaseBackend::Postgres => format!(
                    " AND string_to_array(e.subject_terms, ' ') @> ARRAY[${}::text]",
                    binds.len()
                ),
            });
        }
        if let Some(outcome) = &filter.outcome {
            binds.push(Bind::Text(outcome));
            sql.push_str(&format!(" AND e.outcome = ${}", binds.len()));
        }
        for (value, column) in [
            (filter.from_ms, "e.recorded_ms >="),
            (filter.until_ms, "e.recorded_ms <"),
            (filter.before_seq, "e.seq <"),
        ] {
            if let Some(value) = value {
                binds.push(Bind::Number(value));
                sql.push_str(&format!(" AND {column} ${}", binds.len()));
            }
        }
        sql.push_str(&format!(
            " ORDER BY e.seq DESC LIMIT {}",
            filter.count.max(1)
        ));
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for bind in binds {
            query = match bind {
                Bind::Text(text) => query.bind(text),
                Bind::Number(number) => query.bind(number),
            };
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter().map(audit_row).collect()
    }

    /// One event by id.
    pub async fn read_audit(&self, id: &str) -> Result<Option<AuditRow>, StoreError> {
        let row = sqlx::query("SELECT seq, id, content FROM audit_events WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(audit_row).transpose()
    }

    /// Events after sequence number `after_seq` recorded at or after `since_ms`, oldest
    /// first, at most `limit`: the export's pages.
    pub async fn audit_since(
        &self,
        since_ms: i64,
        after_seq: i64,
        limit: usize,
    ) -> Result<Vec<AuditRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, id, content FROM audit_events WHERE seq > $1 AND recorded_ms >= $2 \
             ORDER BY seq LIMIT $3",
        )
        .bind(after_seq)
        .bind(since_ms)
        .bind(limit.max(1) as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(audit_row).collect()
    }

    /// Walks the whole chain and names the first row that breaks it.
    pub async fn verify_audit_chain(&self) -> Result<ChainCheck, StoreError> {
        const PAGE: i64 = 1_000;
        let mut previous = GENESIS_HASH.to_owned();
        let mut expected_seq = 1i64;
        loop {
            let rows = sqlx::query(
                "SELECT seq, id, content, hash FROM audit_events WHERE seq >= $1 \
                 ORDER BY seq LIMIT $2",
            )
            .bind(expected_seq)
            .bind(PAGE)
            .fetch_all(&self.pool)
            .await?;
            let done = (rows.len() as i64) < PAGE;
            for row in &rows {
                let seq: i64 = row.try_get("seq")?;
                let id: String = row.try_get("id")?;
                if seq != expected_seq {
                    return Ok(ChainCheck::Broken {
                        seq: expected_seq,
                        id,
                        reason: format!("row {expected_seq} is missing"),
                    });
                }
                let content: String = row.try_get("content")?;
                let hash: String = row.try_get("hash")?;
                let recomputed = chain_hash(&previous, seq, &content);
                if recomputed != hash {
                    return Ok(ChainCheck::Broken {
                        seq,
                        id,
                        reason: "its content or hash was changed".into(),
                    });
                }
                previous = hash;
                expected_seq += 1;
            }
            if done {
                break;
            }
        }
        let head = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        let head_seq: i64 = head.try_get("seq")?;
        let head_hash: String = head.try_get("hash")?;
        if head_seq != expected_seq - 1 || head_hash != previous {
            return Ok(ChainCheck::Broken {
                seq: expected_seq,
                id: String::new(),
                reason: format!(
                    "the chain ends at row {} but its head names row {head_seq}: rows were \
                     removed from the end",
                    expected_seq - 1
                ),
            });
        }
        Ok(ChainCheck::Intact {
            rows: expected_seq - 1,
        })
    }
}

fn audit_row(row: &sqlx::any::AnyRow) -> Result<AuditRow, StoreError> {
    Ok(AuditRow {
        seq: row.try_get("seq")?,
        id: row.try_get("id")?,
        content: row.try_get("content")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_terms_are_one_hex_token_each() {
        assert_eq!(subject_term("agent", "a b"), "X6167656E743A612062");
        assert_eq!(
            subject_terms(["p1"].into_iter(), ["c", "10.0.0.1"].into_iter()),
            format!(
                "{} {} {}",
                subject_term("patient", "p1"),
                subject_term("agent", "c"),
                subject_term("agent", "10.0.0.1")
            )
        );
        assert_eq!(subject_terms([].into_iter(), [].into_iter()), "");
        // Longer than one block of the hex writer.
        let long = "é".repeat(100);
        let term = subject_term("patient", &long);
        assert_eq!(term.len(), 1 + 2 * ("patient:".len() + long.len()));
        assert!(term.ends_with(&"C3A9".repeat(100)));
    }

    #[test]
    fn the_chain_hash_depends_on_all_three_parts() {
        let h = chain_hash(GENESIS_HASH, 1, "{}");
        // sha256 of the previous hash, the big-endian sequence number and the content.
        assert_eq!(
            h,
            "cad1cc1d6e29a46e00c2a45f04f4f8fbf914d4fc91bbc8597ce6320e98ad6d9d"
        );
        assert_ne!(h, chain_hash(GENESIS_HASH, 2, "{}"));
        assert_ne!(h, chain_hash(GENESIS_HASH, 1, "{ }"));
        assert_ne!(h, chain_hash(&h, 1, "{}"));
    }
}
