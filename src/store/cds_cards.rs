//! The CDS Hooks cards shown: what each card's uuid stands for (service, patient, assessment,
//! model, user, client), so that feedback naming only the uuid can be tied to all of it. A card
//! shown again (the same uuid) adds nothing.

use sqlx::Row;

use super::{Store, StoreError};
use crate::domain::Instant;

/// A card as it was shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShownCard {
    pub uuid: String,
    pub service: String,
    pub patient: String,
    /// The DiagnosticReport id of the assessment it showed.
    pub report: String,
    /// `name|version`.
    pub model: String,
    /// The hook context's `userId` (`Practitioner/123`).
    pub user: Option<String>,
    /// The CDS client (its token's `iss`) that asked.
    pub client: Option<String>,
}

impl Store {
    /// Records a card shown; one shown before is left as it was.
    pub async fn record_card(&self, card: &ShownCard) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO cds_cards (uuid, service, patient, report, model, user_ref, client, issued_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (uuid) DO NOTHING",
        )
        .bind(&card.uuid)
        .bind(&card.service)
        .bind(&card.patient)
        .bind(&card.report)
        .bind(&card.model)
        .bind(&card.user)
        .bind(&card.client)
        .bind(Instant::now().epoch_millis())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The card with this uuid, if the service showed it.
    pub async fn shown_card(&self, uuid: &str) -> Result<Option<ShownCard>, StoreError> {
        let row = sqlx::query(
            "SELECT uuid, service, patient, report, model, user_ref, client FROM cds_cards \
             WHERE uuid = $1",
        )
        .bind(uuid)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(ShownCard {
                uuid: row.try_get("uuid")?,
                service: row.try_get("service")?,
                patient: row.try_get("patient")?,
                report: row.try_get("report")?,
                model: row.try_get("model")?,
                user: row.try_get("user_ref")?,
                client: row.try_get("client")?,
            })
        })
        .transpose()
    }
}
