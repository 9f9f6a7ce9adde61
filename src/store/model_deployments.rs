//! The deployment state of each model bundle (`pipeline::models`): one row per name and
//! version, at most one `active` (a partial unique index), changed in the same transaction as
//! the Device and Provenance that record the change.

use sqlx::Row;

use super::resources::StoreTransaction;
use super::{Store, StoreError};
use crate::domain::Instant;

/// One bundle's deployment, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentRow {
    pub name: String,
    pub version: String,
    /// `active`, `shadow` or `retired`.
    pub status: String,
    pub changed_ms: i64,
    pub changed_by: Option<String>,
}

impl Store {
    /// Every deployment recorded.
    pub async fn model_deployments(&self) -> Result<Vec<DeploymentRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT name, version, status, changed_ms, changed_by FROM model_deployments \
             ORDER BY name, version",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(DeploymentRow {
                    name: row.try_get("name")?,
                    version: row.try_get("version")?,
                    status: row.try_get("status")?,
                    changed_ms: row.try_get("changed_ms")?,
                    changed_by: row.try_get("changed_by")?,
                })
            })
            .collect()
    }

    /// When the deployments last changed (0 when never): what a running service polls to
    /// see a change made by another process.
    pub async fn deployments_changed_ms(&self) -> Result<i64, StoreError> {
        let row =
            sqlx::query("SELECT COALESCE(MAX(changed_ms), 0) AS changed FROM model_deployments")
                .fetch_one(&self.pool)
                .await?;
        Ok(row.try_get("changed")?)
    }
}

impl StoreTransaction {
    /// Sets a bundle's status (inserting its row the first time).
    pub async fn set_model_status(
        &mut self,
        name: &str,
        version: &str,
        status: &str,
        changed_by: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO model_deployments (name, version, status, changed_ms, changed_by) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name, version) DO UPDATE SET \
             status = excluded.status, changed_ms = excluded.changed_ms, \
             changed_by = excluded.changed_by",
        )
        .bind(name)
        .bind(version)
        .bind(status)
        .bind(Instant::now().epoch_millis())
        .bind(changed_by)
        .execute(self.connection())
        .await?;
        Ok(())
    }

    /// The bundle that is active now, if any: (name, version).
    pub async fn active_model(&mut self) -> Result<Option<(String, String)>, StoreError> {
        let row =
            sqlx::query("SELECT name, version FROM model_deployments WHERE status = 'active'")
                .fetch_optional(self.connection())
                .await?;
        row.map(|row| Ok((row.try_get("name")?, row.try_get("version")?)))
            .transpose()
    }
}
