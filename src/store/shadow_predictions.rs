//! What shadow models said (`pipeline::shadow`), one row per assessment and shadow model.

use sqlx::Row;

use super::{Store, StoreError};
use crate::domain::Instant;

/// A shadow model's answer to one assessment's inputs.
#[derive(Debug, Clone, PartialEq)]
pub struct ShadowPrediction {
    /// The assessment's DiagnosticReport id.
    pub report: String,
    pub model: String,
    pub version: String,
    pub patient: String,
    pub log_hazard_ratio: Option<f64>,
    /// JSON: `[{"label", "days", "probability"}]`.
    pub horizons: Option<String>,
    /// Why it did not answer.
    pub refused: Option<String>,
    /// When it was kept (set by the store).
    pub created_ms: i64,
}

impl Store {
    /// Keeps a shadow model's answer; the same assessment scored again keeps the first.
    pub async fn keep_shadow_prediction(&self, p: &ShadowPrediction) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO shadow_predictions (report, model, version, patient, created_ms, \
             log_hazard_ratio, horizons, refused) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (report, model, version) DO NOTHING",
        )
        .bind(&p.report)
        .bind(&p.model)
        .bind(&p.version)
        .bind(&p.patient)
        .bind(Instant::now().epoch_millis())
        .bind(p.log_hazard_ratio)
        .bind(&p.horizons)
        .bind(&p.refused)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// What the shadow models said of the assessment filed as `report`.
    pub async fn shadow_predictions(
        &self,
        report: &str,
    ) -> Result<Vec<ShadowPrediction>, StoreError> {
        let rows = sqlx::query(
            "SELECT report, model, version, patient, log_hazard_ratio, horizons, refused, \
             created_ms FROM shadow_predictions WHERE report = $1 ORDER BY model, version",
        )
        .bind(report)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(shadow_row).collect()
    }

    /// Every shadow prediction kept, oldest first.
    pub async fn all_shadow_predictions(&self) -> Result<Vec<ShadowPrediction>, StoreError> {
        let rows = sqlx::query(
            "SELECT report, model, version, patient, log_hazard_ratio, horizons, refused, \
             created_ms FROM shadow_predictions ORDER BY created_ms",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(shadow_row).collect()
    }
}

fn shadow_row(row: &sqlx::any::AnyRow) -> Result<ShadowPrediction, StoreError> {
    Ok(ShadowPrediction {
        report: row.try_get("report")?,
        model: row.try_get("model")?,
        version: row.try_get("version")?,
        patient: row.try_get("patient")?,
        log_hazard_ratio: row.try_get("log_hazard_ratio")?,
        horizons: row.try_get("horizons")?,
        refused: row.try_get("refused")?,
        created_ms: row.try_get("created_ms")?,
    })
}
