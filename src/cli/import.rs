//! `prognostics import PATH…`: DICOM files and folders (walked recursively) stored exactly as
//! STOW-RS and C-STORE store them, with a progress bar and a summary. Files that are not DICOM
//! instances (a README, a DICOMDIR) are skipped, not failed; the command fails (exit 1) when a
//! DICOM file could not be stored.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use futures_util::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};

use super::ImportArgs;
use crate::config::Settings;
use crate::domain::{StoreOutcome, Tolerated};
use crate::pipeline::{InstanceFailure, Pipeline, PipelineError};
use crate::startup::open_pipeline;

/// Files read and stored at once: enough to overlap disk, parsing and the database.
const CONCURRENCY: usize = 4;

/// What an import did, file by file.
#[derive(Debug, Default)]
pub struct ImportReport {
    pub created: usize,
    pub unchanged: usize,
    pub replaced: usize,
    /// Stored, but their pixel data cannot be decoded, with the reason.
    pub undecodable: Vec<(PathBuf, String)>,
    /// Stored, though their file had a fault dcmtk and pydicom read past, with what it was.
    pub tolerated: Vec<(PathBuf, Tolerated)>,
    /// Not DICOM instances (no DICM prefix, or not a storage SOP class).
    pub skipped: Vec<PathBuf>,
    /// DICOM files that could not be stored, with the reason.
    pub failed: Vec<(PathBuf, String)>,
    pub seconds: f64,
}

impl ImportReport {
    pub fn stored(&self) -> usize {
        self.created + self.unchanged + self.replaced
    }
}

/// Imports the files and folders named, then prints what was stored, skipped and failed.
pub async fn run(settings: &Settings, args: ImportArgs) -> anyhow::Result<ExitCode> {
    let files = collect_files(&args.paths).context("could not list the files to import")?;
    let pipeline = open_pipeline(settings)
        .await
        .context("could not open the database")?;
    let progress = !args.quiet && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let report = import(&pipeline, files, progress).await;
    pipeline.store().close().await;
    println!(
        "stored {} instances ({} new, {} unchanged, {} replaced; {} with pixel data that cannot be decoded) in {:.1} s; skipped {} files that are not DICOM instances; {} failed",
        report.stored(),
        report.created,
        report.unchanged,
        report.replaced,
        report.undecodable.len(),
        report.seconds,
        report.skipped.len(),
        report.failed.len()
    );
    for (path, reason) in &report.failed {
        println!("failed: {}: {reason}", path.display());
    }
    for (path, reason) in &report.undecodable {
        println!(
            "stored, pixel data not decodable: {}: {reason}",
            path.display()
        );
    }
    for (path, tolerated) in &report.tolerated {
        println!("stored with a warning: {}: {tolerated}", path.display());
    }
    Ok(if report.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Every regular file under `paths`, in a stable order.
pub fn collect_files(paths: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        walk(path, &mut files)?;
    }
    Ok(files)
}

fn walk(path: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let meta = std::fs::metadata(path)?;
    if meta.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()?;
        entries.sort();
        for entry in entries {
            walk(&entry, out)?;
        }
    } else if meta.is_file() {
        out.push(path.to_path_buf());
    }
    Ok(())
}

/// Imports `files`, showing progress on the terminal when `progress` is set.
pub async fn import(pipeline: &Pipeline, files: Vec<PathBuf>, progress: bool) -> ImportReport {
    let started = Instant::now();
    let bar = if progress {
        ProgressBar::new(files.len() as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} files ({per_sec}) {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut report = ImportReport::default();
    let mut results = futures_util::stream::iter(files)
        .map(|path| async move {
            let result = match tokio::fs::read(&path).await {
                Ok(bytes) => pipeline.ingest_dicom(bytes, None).await,
                Err(e) => Err(InstanceFailure {
                    sop_class_uid: None,
                    sop_instance_uid: None,
                    error: PipelineError::FileStore(e),
                }),
            };
            (path, result)
        })
        .buffer_unordered(CONCURRENCY);
    while let Some((path, result)) = results.next().await {
        match result {
            Ok(stored) => {
                match stored.outcome {
                    StoreOutcome::Created => report.created += 1,
                    StoreOutcome::Unchanged => report.unchanged += 1,
                    StoreOutcome::Replaced => report.replaced += 1,
                }
                for tolerated in stored.tolerated {
                    report.tolerated.push((path.clone(), tolerated));
                }
                if let Some(reason) = stored.pixels.reason() {
                    report.undecodable.push((path, reason.to_owned()));
                }
            }
            Err(failure) if is_not_an_instance(&failure.error) => report.skipped.push(path),
            Err(failure) => report.failed.push((path, failure.error.to_string())),
        }
        bar.inc(1);
        bar.set_message(format!("{} failed", report.failed.len()));
    }
    bar.finish_and_clear();
    if let Err(e) = pipeline.refresh_imaging_studies().await {
        tracing::error!(error = %e, "ImagingStudy refresh failed; it will be retried at start");
    }
    report.seconds = started.elapsed().as_secs_f64();
    report
}

fn is_not_an_instance(error: &PipelineError) -> bool {
    matches!(error, PipelineError::Dicom(e) if e.is_not_an_instance())
}
