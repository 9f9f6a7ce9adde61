//! `prognostics monitor report --since DATE --out DIR`: the monitoring report of the service's
//! database as Markdown, with its plots as SVG files beside it (the `/monitoring` page's
//! content). `prognostics monitor outcomes --file F`: an outcome file for a past cohort filed
//! (`pipeline::monitoring::outcome_file`), audited. With the embedded SQLite database, run them
//! while the service is stopped.

use std::process::ExitCode;

use anyhow::Context;

use super::deployments::{close, open_audited, operator};
use super::{MonitorOutcomesArgs, MonitorReportArgs};
use crate::config::Settings;
use crate::domain::{AuditAction, AuditOutcome, AuditRecord};
use crate::pipeline::monitoring::read_outcome_file;
use crate::startup::{load_models, open_pipeline};

pub async fn report(settings: &Settings, args: MonitorReportArgs) -> anyhow::Result<ExitCode> {
    let pipeline = open_pipeline(settings)
        .await
        .context("could not open the database")?
        .with_models(load_models(&settings.risk).await?)
        .with_alert_thresholds(crate::startup::alert_thresholds(&settings.monitoring));
    pipeline.sync_models().await?;
    let since = args.since.and_time(chrono::NaiveTime::MIN).and_utc();
    let report = pipeline.monitoring_report(since).await?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("could not create {}", args.out.display()))?;
    let plots = report.plots();
    for plot in &plots {
        let path = args.out.join(&plot.file);
        std::fs::write(&path, &plot.svg)
            .with_context(|| format!("could not write {}", path.display()))?;
    }
    let path = args.out.join("monitoring.md");
    std::fs::write(&path, report.markdown())
        .with_context(|| format!("could not write {}", path.display()))?;
    let store = pipeline.store().clone();
    drop(pipeline);
    store.close().await;
    #[allow(clippy::print_stdout)]
    {
        println!(
            "wrote {} with {} plots: {} model versions on outcomes, {} with drift figures, {} alerts",
            path.display(),
            plots.len(),
            report.performance.len(),
            report.drift.len(),
            report.alerts.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The largest outcome file read (a cohort of millions of rows is well under it).
const MAX_OUTCOME_FILE: u64 = 512 * 1024 * 1024;

pub async fn outcomes(settings: &Settings, args: MonitorOutcomesArgs) -> anyhow::Result<ExitCode> {
    let size = std::fs::metadata(&args.file)
        .with_context(|| format!("could not read {}", args.file.display()))?
        .len();
    if size > MAX_OUTCOME_FILE {
        anyhow::bail!(
            "{} is {size} bytes; an outcome file is read whole, up to {MAX_OUTCOME_FILE}: split it",
            args.file.display()
        );
    }
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("could not read {} as UTF-8 text", args.file.display()))?;
    let (pipeline, writer) = open_audited(settings).await?;
    let filed = match read_outcome_file(&text, chrono::Utc::now().date_naive()) {
        Ok(file) => pipeline
            .import_outcomes(&file)
            .await
            .map_err(anyhow::Error::from),
        Err(e) => Err(e.into()),
    };
    let mut record = AuditRecord::new("command-line", "outcome-import", AuditAction::Create);
    record.entity = args
        .file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned());
    record.agent.subject = Some(operator());
    match &filed {
        Ok(summary) => record.patients = summary.patients.clone(),
        Err(e) => {
            record.outcome = AuditOutcome::MinorFailure;
            record.outcome_text = Some(e.to_string());
        }
    }
    pipeline.audit(record).await;
    close(pipeline, writer).await;
    let summary = filed?;
    #[allow(clippy::print_stdout)]
    {
        println!(
            "{} rows for {} patients: {} facts filed, {} repeated rows, {} filed before",
            summary.rows,
            summary.patients.len(),
            summary.filed,
            summary.repeated,
            summary.already_filed
        );
    }
    Ok(ExitCode::SUCCESS)
}
