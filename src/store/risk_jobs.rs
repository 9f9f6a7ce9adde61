//! Asynchronous `$risk-assessment` requests: recorded before they are accepted, finished with
//! their Bundle or error, and found again by the status URL or, when left running by a stop,
//! at the next start. Finished ones older than a day are removed as new ones arrive. Each
//! running request carries the lease of the replica running it (see `leases`): renewed while
//! it runs, and taken over by another replica, or by this one after a restart, once it has run
//! out; only the holder records how it ended.

use std::time::Duration;

use sqlx::Row;

use super::{Store, StoreError};
use crate::config::DatabaseBackend;
use crate::domain::Instant;
use crate::error::ErrorKind;

/// How long a finished request's result is kept.
const KEEP_MS: i64 = 24 * 3600 * 1000;

/// A request's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RiskJobState {
    Running,
    Done {
        bundle: String,
    },
    /// The kind and message of the error it ended with.
    Failed {
        kind: ErrorKind,
        message: String,
    },
}

/// A request left running.
#[derive(Debug, Clone)]
pub struct PendingRiskJob {
    pub id: String,
    /// The request as it was recorded (JSON).
    pub request: String,
    /// The FHIR base its Bundle's URLs use.
    pub base: String,
}

impl Store {
    /// Records an accepted request as running, held by this replica for `lease`.
    pub async fn insert_risk_job(
        &self,
        id: &str,
        request: &str,
        base: &str,
        lease: Duration,
    ) -> Result<(), StoreError> {
        let now = Instant::now().epoch_millis();
        sqlx::query("DELETE FROM risk_jobs WHERE status <> 'running' AND finished_ms < $1")
            .bind(now - KEEP_MS)
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "INSERT INTO risk_jobs (id, request, base, status, created_ms, lease_holder, \
               lease_until_ms) VALUES ($1, $2, $3, 'running', $4, $5, $6)",
        )
        .bind(id)
        .bind(request)
        .bind(base)
        .bind(now)
        .bind(self.replica_id())
        .bind(now + lease.as_millis() as i64)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Extends this replica's lease on a running request; false when it is no longer the
    /// holder (another replica took it over) or the request has ended.
    pub async fn renew_risk_job(&self, id: &str, lease: Duration) -> Result<bool, StoreError> {
        let until = Instant::now().epoch_millis() + lease.as_millis() as i64;
        let renewed = sqlx::query(
            "UPDATE risk_jobs SET lease_until_ms = $1 \
             WHERE id = $2 AND lease_holder = $3 AND status = 'running'",
        )
        .bind(until)
        .bind(id)
        .bind(self.replica_id())
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(renewed == 1)
    }

    /// Records how a request ended; false (and nothing written) when this replica no longer
    /// holds it.
    pub async fn finish_risk_job(
        &self,
        id: &str,
        state: &RiskJobState,
    ) -> Result<bool, StoreError> {
        let (status, result, error_kind, error) = match state {
            RiskJobState::Running => return Ok(true),
            RiskJobState::Done { bundle } => ("done", Some(bundle.as_str()), None, None),
            RiskJobState::Failed { kind, message } => {
                ("failed", None, Some(kind.name()), Some(message.as_str()))
            }
        };
        let finished = sqlx::query(
            "UPDATE risk_jobs SET status = $1, result = $2, error_kind = $3, error = $4, \
               finished_ms = $5 \
             WHERE id = $6 AND status = 'running' AND lease_holder = $7",
        )
        .bind(status)
        .bind(result)
        .bind(error_kind)
        .bind(error)
        .bind(Instant::now().epoch_millis())
        .bind(id)
        .bind(self.replica_id())
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(finished == 1)
    }

    /// A request's state; None for an unknown (or expired) id.
    pub async fn risk_job(&self, id: &str) -> Result<Option<RiskJobState>, StoreError> {
        let row =
            sqlx::query("SELECT status, result, error_kind, error FROM risk_jobs WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        let Some(row) = row else { return Ok(None) };
        let status: String = row.try_get("status")?;
        Ok(Some(match status.as_str() {
            "done" => RiskJobState::Done {
                bundle: row
                    .try_get::<Option<String>, _>("result")?
                    .unwrap_or_default(),
            },
            "failed" => RiskJobState::Failed {
                kind: row
                    .try_get::<Option<String>, _>("error_kind")?
                    .as_deref()
                    .and_then(ErrorKind::from_name)
                    .unwrap_or(ErrorKind::Internal),
                message: row
                    .try_get::<Option<String>, _>("error")?
                    .unwrap_or_default(),
            },
            _ => RiskJobState::Running,
        }))
    }

    /// Claims, for `lease`, up to `limit` running requests whose holder is gone, oldest first:
    /// on PostgreSQL those whose lease has run out (rows another replica is claiming at the
    /// same moment are skipped, not waited for); on the embedded database, whose lock file
    /// admits one process, every one this process does not hold.
    pub async fn claim_abandoned_risk_jobs(
        &self,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<PendingRiskJob>, StoreError> {
        let now = Instant::now().epoch_millis();
        let until = now + lease.as_millis() as i64;
        let query = match self.backend {
            DatabaseBackend::Postgres => sqlx::query(
                "UPDATE risk_jobs SET lease_holder = $1, lease_until_ms = $2 WHERE id IN ( \
                   SELECT id FROM risk_jobs WHERE status = 'running' AND lease_until_ms < $3 \
                   ORDER BY created_ms LIMIT $4 FOR UPDATE SKIP LOCKED) \
                 RETURNING id, request, base, created_ms",
            )
            .bind(self.replica_id())
            .bind(until)
            .bind(now)
            .bind(i64::from(limit)),
            DatabaseBackend::Sqlite => sqlx::query(
                "UPDATE risk_jobs SET lease_holder = $1, lease_until_ms = $2 WHERE id IN ( \
                   SELECT id FROM risk_jobs WHERE status = 'running' AND \
                   (lease_holder IS NULL OR lease_holder <> $3) \
                   ORDER BY created_ms LIMIT $4) \
                 RETURNING id, request, base, created_ms",
            )
            .bind(self.replica_id())
            .bind(until)
            .bind(self.replica_id())
            .bind(i64::from(limit)),
        };
        let rows = query.fetch_all(&self.pool).await?;
        let mut jobs = rows
            .iter()
            .map(|row| {
                Ok((
                    row.try_get::<i64, _>("created_ms")?,
                    PendingRiskJob {
                        id: row.try_get("id")?,
                        request: row.try_get("request")?,
                        base: row.try_get("base")?,
                    },
                ))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        jobs.sort_by_key(|(created, _)| *created);
        Ok(jobs.into_iter().map(|(_, job)| job).collect())
    }
}
