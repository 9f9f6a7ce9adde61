//! HL7 v2 messages as received: one row per distinct message, written before the ACK.

use sha2::{Digest, Sha256};
use sqlx::Row;

use super::{Store, StoreError};
use crate::domain::Instant;

/// A message to record. `sender` is MSH-3 and MSH-4 (application and facility) joined by `|`.
#[derive(Debug, Clone)]
pub struct NewHl7Message<'a> {
    pub sender: &'a str,
    pub control_id: &'a str,
    pub message_type: &'a str,
    pub version: &'a str,
    pub body: &'a [u8],
}

/// Where a message stands once recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hl7Receipt {
    pub id: String,
    /// False when the same message (sender, control id and content) was already stored.
    pub new: bool,
    /// `received`, `processed` or `failed`.
    pub status: String,
}

impl Store {
    /// Stores a message durably (committed before this returns), or finds the copy already
    /// stored.
    pub async fn record_hl7_message(
        &self,
        message: &NewHl7Message<'_>,
    ) -> Result<Hl7Receipt, StoreError> {
        let sha256 = format!("{:x}", Sha256::digest(message.body));
        let id = uuid::Uuid::new_v4().to_string();
        let inserted = sqlx::query(
            "INSERT INTO hl7_messages (id, sender, control_id, message_type, version, sha256, \
               body, status, error, received_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'received', NULL, $8) \
             ON CONFLICT (sender, control_id, sha256) DO NOTHING",
        )
        .bind(&id)
        .bind(message.sender)
        .bind(message.control_id)
        .bind(message.message_type)
        .bind(message.version)
        .bind(&sha256)
        .bind(message.body)
        .bind(Instant::now().epoch_millis())
        .execute(&self.pool)
        .await?
        .rows_affected();
        if inserted == 1 {
            return Ok(Hl7Receipt {
                id,
                new: true,
                status: "received".into(),
            });
        }
        let row = sqlx::query(
            "SELECT id, status FROM hl7_messages \
             WHERE sender = $1 AND control_id = $2 AND sha256 = $3",
        )
        .bind(message.sender)
        .bind(message.control_id)
        .bind(&sha256)
        .fetch_one(&self.pool)
        .await?;
        Ok(Hl7Receipt {
            id: row.try_get("id")?,
            new: false,
            status: row.try_get("status")?,
        })
    }

    /// Records the outcome of processing a stored message.
    pub async fn mark_hl7_message(
        &self,
        id: &str,
        outcome: Result<(), &str>,
    ) -> Result<(), StoreError> {
        let (status, error) = match outcome {
            Ok(()) => ("processed", None),
            Err(reason) => ("failed", Some(reason)),
        };
        sqlx::query("UPDATE hl7_messages SET status = $1, error = $2 WHERE id = $3")
            .bind(status)
            .bind(error)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A stored message's body, by id.
    pub async fn hl7_message_body(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let row = sqlx::query("SELECT body FROM hl7_messages WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(row) => Some(row.try_get("body")?),
            None => None,
        })
    }
}
