//! The embeddings a model's features need, computed or read for the feature builder: the notes
//! the input spec selects, embedded by the text encoder and pooled; a stored study's pooled
//! image embedding.

use chrono::{DateTime, Utc};

use crate::domain::{DicomUid, ModelVersion};
use crate::encoders::{EncoderError, TextEncoder};
use crate::features::spec::EmbeddingSpec;
use crate::features::{Embedded, PatientContext, notes_to_embed, pool_embeddings};
use crate::store::{Store, StoreError};

/// The notes in the spec's window, each embedded (long notes windowed by the encoder), then
/// pooled into one vector; `None` when there are none.
pub fn embed_notes(
    encoder: &TextEncoder,
    spec: &EmbeddingSpec,
    context: &PatientContext,
    as_of: DateTime<Utc>,
) -> Result<Option<Embedded>, EncoderError> {
    let notes = notes_to_embed(spec, context, as_of);
    if notes.is_empty() {
        return Ok(None);
    }
    let texts: Vec<&str> = notes.iter().map(|n| n.text.as_str()).collect();
    let embeddings = encoder.embed(&texts)?;
    tracing::info!(
        patient = %context.patient,
        notes = notes.len(),
        model = %encoder.name,
        "notes embedded for features"
    );
    Ok(pool_embeddings(&embeddings).map(|vector| Embedded {
        vector,
        sources: notes.iter().map(|n| n.source.clone()).collect(),
    }))
}

/// The study's pooled embedding by `model` at its current version; `None` when the study has
/// none (never received, or not yet embedded).
pub async fn stored_study_embedding(
    store: &Store,
    study_uid: &DicomUid,
    model: &ModelVersion,
) -> Result<Option<Embedded>, StoreError> {
    let embeddings = store.study_embeddings(study_uid, model).await?;
    Ok(embeddings.study.map(|study| Embedded {
        vector: study.embedding,
        sources: vec![format!("urn:oid:{}", study_uid.as_str())],
    }))
}
