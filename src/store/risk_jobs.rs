//! Asynchronous `$risk-assessment` requests: recorded before they are accepted, finished with
//! their Bundle or error, and found again by the status URL or, when left running by a stop,
//! at the next start. Finished ones older than a day are removed as new ones arrive.

use sqlx::Row;

use super::{Store, StoreError};
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
    /// Records an accepted request as running.
    pub async fn insert_risk_job(
        &self,
        id: &str,
        request: &str,
        base: &str,
    ) -> Result<(), StoreError> {
        let now = Instant::now().epoch_millis();
        sqlx::query("DELETE FROM risk_jobs WHERE status <> 'running' AND finished_ms < $1")
            .bind(now - KEEP_MS)
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "INSERT INTO risk_jobs (id, request, base, status, created_ms) \
             VALUES ($1, $2, $3, 'running', $4)",
        )
        .bind(id)
        .bind(request)
        .bind(base)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records how a request ended.
    pub async fn finish_risk_job(&self, id: &str, state: &RiskJobState) -> Result<(), StoreError> {
        let (status, result, error_kind, error) = match state {
            RiskJobState::Running => return Ok(()),
            RiskJobState::Done { bundle } => ("done", Some(bundle.as_str()), None, None),
            RiskJobState::Failed { kind, message } => {
                ("failed", None, Some(kind.name()), Some(message.as_str()))
            }
        };
        sqlx::query(
            "UPDATE risk_jobs SET status = $1, result = $2, error_kind = $3, error = $4, \
               finished_ms = $5 WHERE id = $6",
        )
        .bind(status)
        .bind(result)
        .bind(error_kind)
        .bind(error)
        .bind(Instant::now().epoch_millis())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
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

    /// Requests still marked running (left so by a stop), oldest first.
    pub async fn pending_risk_jobs(&self) -> Result<Vec<PendingRiskJob>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, request, base FROM risk_jobs WHERE status = 'running' ORDER BY created_ms",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(PendingRiskJob {
                    id: row.try_get("id")?,
                    request: row.try_get("request")?,
                    base: row.try_get("base")?,
                })
            })
            .collect()
    }
}
