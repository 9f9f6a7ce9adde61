//! Leases on shared work, so that replicas on one database each do a piece of work once: a
//! claim succeeds when nobody holds the item or its lease has run out, and the holder claims it
//! again to renew. Each store has its replica id, new at each start, as the holder's name.
//! Embedded SQLite has one process by construction (its lock file), so every claim there is
//! this process's own and succeeds without a write.

use std::time::Duration;

use super::{Store, StoreError};
use crate::config::DatabaseBackend;
use crate::domain::Instant;

/// Kinds of work held in `work_leases`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkKind {
    /// Embedding one instance (the item is its SOP Instance UID).
    Embedding,
    /// The periodic monitoring pass (one item).
    Monitoring,
}

impl WorkKind {
    fn name(self) -> &'static str {
        match self {
            WorkKind::Embedding => "embedding",
            WorkKind::Monitoring => "monitoring",
        }
    }
}

/// Leases that ran out this long ago are removed as new claims arrive.
const FORGET_AFTER_MS: i64 = 24 * 3600 * 1000;

impl Store {
    /// This process's name as a lease holder.
    pub fn replica_id(&self) -> &str {
        &self.replica
    }

    /// Whether other processes may share this database (and work must be claimed).
    pub fn shared(&self) -> bool {
        self.backend == DatabaseBackend::Postgres
    }

    /// Claims `item` for `lease`, or renews this replica's claim; false when another replica
    /// holds it and its lease has not run out.
    pub async fn claim_work(
        &self,
        kind: WorkKind,
        item: &str,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        if !self.shared() {
            return Ok(true);
        }
        let now = Instant::now().epoch_millis();
        let claimed = sqlx::query(
            "INSERT INTO work_leases (kind, item, holder, until_ms) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (kind, item) DO UPDATE SET holder = excluded.holder, \
               until_ms = excluded.until_ms \
             WHERE work_leases.holder = excluded.holder OR work_leases.until_ms < $5",
        )
        .bind(kind.name())
        .bind(item)
        .bind(self.replica_id())
        .bind(now + lease.as_millis() as i64)
        .bind(now)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(claimed == 1)
    }

    /// Gives up this replica's claims on `items` (their work is done).
    pub async fn release_work(&self, kind: WorkKind, items: &[&str]) -> Result<(), StoreError> {
        if !self.shared() || items.is_empty() {
            return Ok(());
        }
        for chunk in items.chunks(500) {
            let list = (0..chunk.len())
                .map(|i| format!("${}", i + 3))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "DELETE FROM work_leases WHERE kind = $1 AND holder = $2 AND item IN ({list})"
            );
            // Only numbered placeholders are formatted in; the items are bound.
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(kind.name())
                .bind(self.replica_id());
            for item in chunk {
                query = query.bind(*item);
            }
            query.execute(&self.pool).await?;
        }
        sqlx::query("DELETE FROM work_leases WHERE until_ms < $1")
            .bind(Instant::now().epoch_millis() - FORGET_AFTER_MS)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Gives up every lease this replica holds (it is stopping), so that the others take its
    /// unfinished work over at once rather than when the leases run out.
    pub async fn release_all_leases(&self) -> Result<u64, StoreError> {
        let mut released = sqlx::query(
            "UPDATE risk_jobs SET lease_until_ms = 0 WHERE lease_holder = $1 AND status = 'running'",
        )
        .bind(self.replica_id())
        .execute(&self.pool)
        .await?
        .rows_affected();
        if self.shared() {
            released += sqlx::query("DELETE FROM work_leases WHERE holder = $1")
                .bind(self.replica_id())
                .execute(&self.pool)
                .await?
                .rows_affected();
        }
        Ok(released)
    }
}
