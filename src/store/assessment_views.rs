//! The explanation kept beside each filed assessment (`report::risk_view`), as JSON, by its
//! DiagnosticReport id.

use sqlx::Row;

use super::resources::StoreTransaction;
use super::{Store, StoreError};
use crate::domain::Instant;

impl StoreTransaction {
    /// Keeps an assessment's explanation; one kept before is left as it was.
    pub async fn keep_assessment_view(
        &mut self,
        report: &str,
        patient: &str,
        content: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO assessment_views (report, patient, content, created_ms) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (report) DO NOTHING",
        )
        .bind(report)
        .bind(patient)
        .bind(content)
        .bind(Instant::now().epoch_millis())
        .execute(self.connection())
        .await?;
        Ok(())
    }
}

impl Store {
    /// The explanation of the assessment filed as DiagnosticReport `report`: (patient, JSON).
    pub async fn assessment_view(
        &self,
        report: &str,
    ) -> Result<Option<(String, String)>, StoreError> {
        let row = sqlx::query("SELECT patient, content FROM assessment_views WHERE report = $1")
            .bind(report)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| Ok((row.try_get("patient")?, row.try_get("content")?)))
            .transpose()
    }

    /// Every explanation kept, oldest first, as JSON.
    pub async fn all_assessment_views(&self) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT content FROM assessment_views ORDER BY created_ms")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|row| Ok(row.try_get("content")?)).collect()
    }
}
