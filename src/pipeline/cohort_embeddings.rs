//! Cohort columns that refer to what this service holds, turned into the embedding columns a
//! model trains on: a column of Study Instance UIDs becomes `imaging_0…` (the study's pooled
//! embedding by the image encoder, as the service computed it), a column of note references
//! (`DocumentReference/{id}` or `DiagnosticReport/{id}`, several separated by spaces or `;`)
//! becomes `notes_0…` (each note's text embedded by the text encoder, pooled, as the feature
//! builder does for a prediction). A row whose study has no embedding, or whose notes cannot be
//! read, gets empty cells: that modality is missing for the patient.

use serde_json::Value;

use super::{Pipeline, PipelineError};
use crate::cohort::{Cohort, CohortError, Column, Values};
use crate::domain::{DicomUid, ModelVersion, ResourceId, ResourceType};
use crate::encoders::TextEncoder;
use crate::features::notes::attachment_text;
use crate::features::pool_embeddings;

/// How many rows got each embedding.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttachedEmbeddings {
    pub studies_found: usize,
    pub studies_missing: usize,
    pub notes_found: usize,
    pub notes_missing: usize,
}

/// The text of a row's cell, whatever the column's kind.
fn cell(column: &Column, row: usize) -> Option<String> {
    match &column.values {
        Values::Categorical { levels, codes } => codes[row].map(|c| levels[c].clone()),
        Values::Numeric(v) => v[row].map(|x| x.to_string()),
    }
}

fn unusable(cohort: &Cohort, reason: String) -> PipelineError {
    CohortError::Unusable {
        path: cohort.path.clone(),
        reason,
    }
    .into()
}

/// Appends `{prefix}_0…` numeric columns from per-row vectors (None: empty cells).
fn append(cohort: &mut Cohort, prefix: &str, rows: Vec<Option<Vec<f32>>>) {
    let width = rows.iter().flatten().map(Vec::len).next().unwrap_or(0);
    for i in 0..width {
        cohort.columns.push(Column {
            name: format!("{prefix}_{i}"),
            values: Values::Numeric(
                rows.iter()
                    .map(|r| r.as_ref().map(|v| f64::from(v[i])))
                    .collect(),
            ),
        });
    }
}

impl Pipeline {
    /// Adds the embedding columns that `studies` and `notes` (column names) refer to.
    pub async fn attach_stored_embeddings(
        &self,
        cohort: &mut Cohort,
        studies: Option<(&str, &ModelVersion)>,
        notes: Option<(&str, &TextEncoder)>,
    ) -> Result<AttachedEmbeddings, PipelineError> {
        let mut report = AttachedEmbeddings::default();
        for prefix in ["imaging_", "notes_"] {
            let wanted = if prefix == "imaging_" {
                studies.is_some()
            } else {
                notes.is_some()
            };
            if wanted && cohort.columns.iter().any(|c| c.name.starts_with(prefix)) {
                return Err(unusable(
                    cohort,
                    format!("the cohort already has {prefix}… columns; they would be replaced"),
                ));
            }
        }
        if let Some((name, model)) = studies {
            let column = cohort.column(name)?.clone();
            let mut rows = Vec::with_capacity(cohort.rows);
            for row in 0..cohort.rows {
                let embedding = match cell(&column, row) {
                    Some(uid) => {
                        let uid =
                            DicomUid::parse(uid.trim_start_matches("urn:oid:")).map_err(|_| {
                                PipelineError::from(CohortError::BadValue {
                                    path: cohort.path.clone(),
                                    row: row + 1,
                                    column: name.to_owned(),
                                    reason: "not a Study Instance UID".into(),
                                })
                            })?;
                        self.store
                            .study_embeddings(&uid, model)
                            .await?
                            .study
                            .map(|s| s.embedding)
                    }
                    None => None,
                };
                match embedding {
                    Some(_) => report.studies_found += 1,
                    None => report.studies_missing += 1,
                }
                rows.push(embedding);
            }
            if report.studies_found == 0 {
                return Err(unusable(
                    cohort,
                    format!(
                        "no study in `{name}` has a {} {} embedding here (received and embedded by this service?)",
                        model.name, model.version
                    ),
                ));
            }
            append(cohort, "imaging", rows);
        }
        if let Some((name, encoder)) = notes {
            let column = cohort.column(name)?.clone();
            let mut rows = Vec::with_capacity(cohort.rows);
            for row in 0..cohort.rows {
                let mut texts = Vec::new();
                for reference in cell(&column, row)
                    .unwrap_or_default()
                    .split([';', ' '])
                    .filter(|r| !r.is_empty())
                {
                    texts.extend(self.note_texts(reference).await?);
                }
                let embedding = if texts.is_empty() {
                    None
                } else {
                    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
                    pool_embeddings(&encoder.embed(&texts)?)
                };
                match embedding {
                    Some(_) => report.notes_found += 1,
                    None => report.notes_missing += 1,
                }
                rows.push(embedding);
            }
            append(cohort, "notes", rows);
        }
        tracing::info!(
            studies = report.studies_found,
            studies_missing = report.studies_missing,
            notes = report.notes_found,
            notes_missing = report.notes_missing,
            "stored embeddings attached to a cohort"
        );
        Ok(report)
    }

    /// The texts of a stored DocumentReference or DiagnosticReport; none when it is absent or
    /// holds no readable text.
    async fn note_texts(&self, reference: &str) -> Result<Vec<String>, PipelineError> {
        let Some((t, id)) = reference.split_once('/') else {
            return Ok(Vec::new());
        };
        let (t, field) = match t {
            "DocumentReference" => (ResourceType::DocumentReference, "content"),
            "DiagnosticReport" => (ResourceType::DiagnosticReport, "presentedForm"),
            _ => return Ok(Vec::new()),
        };
        let Ok(id) = ResourceId::parse(id) else {
            return Ok(Vec::new());
        };
        let stored = match self.store.read(t, &id).await {
            Ok(stored) => stored,
            Err(e) if e.kind() == crate::error::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) if e.kind() == crate::error::ErrorKind::Gone => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let resource: Value =
            serde_json::from_str(stored.content.as_deref().unwrap_or("{}")).unwrap_or(Value::Null);
        Ok(resource
            .get(field)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|item| {
                let attachment = if field == "content" {
                    &item["attachment"]
                } else {
                    item
                };
                attachment_text(attachment).ok()
            })
            .collect())
    }
}
