//! `train` and `evaluate` with `--studies` or `--notes`: cohort columns that refer to what this
//! service holds become the embedding columns a model trains on. A column of Study Instance
//! UIDs becomes `imaging_0…` (the study's pooled embedding by the image encoder, as the service
//! computed it); a column of note references (`DocumentReference/{id}` or
//! `DiagnosticReport/{id}`, several separated by spaces or `;`) becomes `notes_0…` (each note's
//! text embedded by the text encoder, pooled, as the feature builder does for a prediction). A
//! row whose study has no embedding, or whose notes cannot be read, gets empty cells: that
//! modality is missing for the patient. The commands then run on that cohort, written under the
//! same name in a private temporary folder.

use anyhow::Context;
use serde_json::Value;

use super::CohortArgs;
use crate::cohort::{Cohort, CohortError, Column, Values};
use crate::domain::{DicomUid, ModelVersion, ResourceId, ResourceType};
use crate::encoders::{ModelManifest, TextEncoder};
use crate::error::ErrorKind;
use crate::features::notes::attachment_text;
use crate::features::pool_embeddings;
use crate::store::Store;

/// A cohort prepared in a folder of its own, removed when dropped.
pub struct PreparedCohort {
    dir: std::path::PathBuf,
}

impl Drop for PreparedCohort {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// With `--studies` or `--notes`: reads the cohort, adds the embeddings those columns refer to
/// from this service's store (the configured database and encoders), writes it under the same
/// name in a private temporary folder and points `args` at it; the reference columns are left
/// out of the features. Keep the returned value alive while the cohort is used.
pub async fn prepare_cohort(
    args: &mut CohortArgs,
    settings: &crate::config::Settings,
) -> anyhow::Result<Option<PreparedCohort>> {
    if args.studies.is_none() && args.notes.is_none() {
        return Ok(None);
    }
    let mut cohort = crate::cohort::read_cohort(&args.cohort)?;
    let manifest = ModelManifest::read(&settings.inference.models_dir)?;
    let image_model = match &args.studies {
        Some(_) => {
            let (name, entry) =
                manifest.image_encoder(settings.inference.image_encoder.as_deref())?;
            Some(crate::domain::ModelVersion {
                name: name.to_owned(),
                version: entry.version.clone(),
            })
        }
        None => None,
    };
    let text_encoder = match &args.notes {
        Some(_) => Some(TextEncoder::load(
            &manifest,
            None,
            &crate::encoders::device(),
        )?),
        None => None,
    };
    let pipeline = crate::startup::open_pipeline(settings)
        .await
        .context("could not open the service's database")?;
    let attached = attach_stored_embeddings(
        pipeline.store(),
        &mut cohort,
        args.studies.as_deref().zip(image_model.as_ref()),
        args.notes.as_deref().zip(text_encoder.as_ref()),
    )
    .await;
    pipeline.store().close().await;
    let attached = attached?;
    if args.studies.is_some() {
        eprintln!(
            "studies: {} rows with an image embedding, {} without",
            attached.studies_found, attached.studies_missing
        );
    }
    if args.notes.is_some() {
        eprintln!(
            "notes: {} rows with a notes embedding, {} without",
            attached.notes_found, attached.notes_missing
        );
    }
    let dir = std::env::temp_dir().join(format!(
        "prognostics-cohort-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
    ));
    std::fs::create_dir_all(&dir)?;
    let prepared = PreparedCohort { dir };
    let stem = args
        .cohort
        .file_stem()
        .map_or("cohort".into(), |s| s.to_string_lossy().into_owned());
    let path = prepared.dir.join(format!("{stem}.csv"));
    crate::cohort::write_csv(&path, &cohort.columns)?;
    args.cohort = path;
    args.exclude
        .extend(args.studies.iter().chain(&args.notes).cloned());
    Ok(Some(prepared))
}

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

fn unusable(cohort: &Cohort, reason: String) -> CohortError {
    CohortError::Unusable {
        path: cohort.path.clone(),
        reason,
    }
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

/// Adds the embedding columns that `studies` and `notes` (column names) refer to.
pub async fn attach_stored_embeddings(
    store: &Store,
    cohort: &mut Cohort,
    studies: Option<(&str, &ModelVersion)>,
    notes: Option<(&str, &TextEncoder)>,
) -> anyhow::Result<AttachedEmbeddings> {
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
            )
            .into());
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
                            CohortError::BadValue {
                                path: cohort.path.clone(),
                                row: row + 1,
                                column: name.to_owned(),
                                reason: "not a Study Instance UID".into(),
                            }
                        })?;
                    store
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
                )
                .into());
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
                texts.extend(note_texts(store, reference).await?);
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
async fn note_texts(store: &Store, reference: &str) -> anyhow::Result<Vec<String>> {
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
    let stored = match store.read(t, &id).await {
        Ok(stored) => stored,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) if e.kind() == ErrorKind::Gone => return Ok(Vec::new()),
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
