//! `train` and `evaluate` with `--studies` or `--notes`: the cohort's reference columns are
//! resolved against this service's store (its configured database and encoders) into embedding
//! columns, and the commands run on that cohort, written under the same name in a private
//! temporary folder.

use anyhow::Context;

use crate::cli::CohortArgs;
use crate::encoders::{ModelManifest, TextEncoder};

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
pub async fn attach_stored_embeddings(
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
    let attached = pipeline
        .attach_stored_embeddings(
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
