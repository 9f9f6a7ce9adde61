//! `prognostics monitor report --since DATE --out DIR`: the monitoring report of the service's
//! database as Markdown, with its plots as SVG files beside it (the `/monitoring` page's
//! content). With the embedded SQLite database, run it while the service is stopped.

use std::process::ExitCode;

use anyhow::Context;

use super::MonitorReportArgs;
use crate::config::Settings;
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
