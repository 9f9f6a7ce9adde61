//! HL7 v2 messages as received: one row per distinct message, written in the transaction that
//! files its content, before the ACK.

use sha2::{Digest, Sha256};
use sqlx::Row;

use super::{StoreError, StoreTransaction};
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
    /// `processed` or `failed` (with the reason, which names fields, never values).
    pub status: String,
    pub error: Option<String>,
}

impl StoreTransaction {
    /// Records a message with the outcome of reading it: `Ok(())` when its content is filed in
    /// this same transaction, `Err(reason)` when it was answered with an error. A message
    /// already stored is found rather than stored twice (`new` is false); its content must
    /// not then be filed again.
    pub async fn record_hl7_message(
        &mut self,
        message: &NewHl7Message<'_>,
        outcome: Result<(), &str>,
    ) -> Result<Hl7Receipt, StoreError> {
        let sha256 = format!("{:x}", Sha256::digest(message.body));
        let id = uuid::Uuid::new_v4().to_string();
        let (status, error) = match outcome {
            Ok(()) => ("processed", None),
            Err(reason) => ("failed", Some(reason)),
        };
        let inserted = sqlx::query(
            "INSERT INTO hl7_messages (id, sender, control_id, message_type, version, sha256, \
               body, status, error, received_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (sender, control_id, sha256) DO NOTHING",
        )
        .bind(&id)
        .bind(message.sender)
        .bind(message.control_id)
        .bind(message.message_type)
        .bind(message.version)
        .bind(&sha256)
        .bind(message.body)
        .bind(status)
        .bind(error)
        .bind(Instant::now().epoch_millis())
        .execute(self.connection())
        .await?
        .rows_affected();
        if inserted == 1 {
            return Ok(Hl7Receipt {
                id,
                new: true,
                status: status.into(),
                error: error.map(str::to_owned),
            });
        }
        let row = sqlx::query(
            "SELECT id, status, error FROM hl7_messages \
             WHERE sender = $1 AND control_id = $2 AND sha256 = $3",
        )
        .bind(message.sender)
        .bind(message.control_id)
        .bind(&sha256)
        .fetch_one(self.connection())
        .await?;
        Ok(Hl7Receipt {
            id: row.try_get("id")?,
            new: false,
            status: row.try_get("status")?,
            error: row.try_get("error")?,
        })
    }
}
