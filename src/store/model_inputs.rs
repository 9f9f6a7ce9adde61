//! What each model version was given for each assessment (`pipeline::monitoring::inputs`), as
//! JSON, one row per assessment and model version.

use sqlx::Row;

use super::resources::StoreTransaction;
use super::{Store, StoreError};
use crate::domain::Instant;

/// One model version's inputs to one assessment.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInputs {
    /// The assessment's DiagnosticReport id.
    pub report: String,
    pub model: String,
    pub version: String,
    /// `active` or `shadow`.
    pub role: String,
    /// When it was kept (set by the store when written).
    pub created_ms: i64,
    pub content: String,
}

const INSERT: &str = "INSERT INTO model_inputs (report, model, version, role, created_ms, content) \
     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (report, model, version) DO NOTHING";

impl StoreTransaction {
    /// Keeps a model's inputs to an assessment; the same kept before is left as it was.
    pub async fn keep_model_inputs(&mut self, inputs: &ModelInputs) -> Result<(), StoreError> {
        bind(inputs).execute(self.connection()).await?;
        Ok(())
    }
}

fn bind(inputs: &ModelInputs) -> sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments> {
    sqlx::query(INSERT)
        .bind(&inputs.report)
        .bind(&inputs.model)
        .bind(&inputs.version)
        .bind(&inputs.role)
        .bind(Instant::now().epoch_millis())
        .bind(&inputs.content)
}

impl Store {
    /// Keeps a model's inputs to an assessment (see [`StoreTransaction::keep_model_inputs`]).
    pub async fn keep_model_inputs(&self, inputs: &ModelInputs) -> Result<(), StoreError> {
        bind(inputs).execute(&self.pool).await?;
        Ok(())
    }

    /// Every model's inputs kept at or after `since_ms`, oldest first.
    pub async fn model_inputs_since(&self, since_ms: i64) -> Result<Vec<ModelInputs>, StoreError> {
        let rows = sqlx::query(
            "SELECT report, model, version, role, created_ms, content FROM model_inputs \
             WHERE created_ms >= $1 ORDER BY created_ms",
        )
        .bind(since_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ModelInputs {
                    report: row.try_get("report")?,
                    model: row.try_get("model")?,
                    version: row.try_get("version")?,
                    role: row.try_get("role")?,
                    created_ms: row.try_get("created_ms")?,
                    content: row.try_get("content")?,
                })
            })
            .collect()
    }
}
