//! The `train` and `evaluate` commands: arguments into options, a progress bar, and the
//! results as tables (or JSON).

use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};

use super::stored_cohort::prepare_cohort;
use super::{CohortArgs, EvaluateArgs, ModelArgs, TrainArgs};
use crate::config::Settings;
use crate::domain::Horizon;
use crate::features::{InputSpec, Modality};
use crate::fusion::{Model, TrainSettings};
use crate::training::ablation::ablation;
use crate::training::commands::load_cohort;
use crate::training::commands::{Evaluation, Spread};
use crate::training::fit::FitOptions;
use crate::training::metrics::Metrics;
use crate::training::subgroups::Subgroups;
use crate::training::{self, ColumnRoles, EvaluateOptions, TrainOptions};

fn roles(args: &CohortArgs, time: String, event: String) -> anyhow::Result<ColumnRoles> {
    let mut modalities = Vec::new();
    for spec in &args.modality {
        let (name, columns) = spec
            .split_once('=')
            .with_context(|| format!("--modality `{spec}`: expected NAME=COL,..."))?;
        let modality = Modality::parse(name.trim())
            .filter(|m| matches!(m, Modality::Clinical | Modality::Labs | Modality::Genomics))
            .with_context(|| {
                format!("--modality `{name}`: one of clinical, labs, genomics (embeddings are named notes_<n>, imaging_<n>)")
            })?;
        modalities.push((
            modality,
            columns
                .split(',')
                .map(|c| c.trim().to_owned())
                .filter(|c| !c.is_empty())
                .collect(),
        ));
    }
    Ok(ColumnRoles {
        time,
        event,
        triage: args.triage.clone(),
        patient: args.patient.clone(),
        exclude: args.exclude.clone(),
        modalities,
        only: None,
        embedding_components: args.embedding_components,
    })
}

fn settings(args: &ModelArgs) -> anyhow::Result<TrainSettings> {
    if args.members == 0 {
        bail!("--members must be at least 1");
    }
    Ok(TrainSettings {
        seed: args.seed,
        hidden: args.hidden,
        dropout: args.dropout,
        modality_dropout: args.modality_dropout,
        feature_dropout: args.feature_dropout,
        learning_rate: args.learning_rate,
        weight_decay: args.weight_decay,
        max_epochs: args.max_epochs,
        patience: args.patience,
        members: args.members,
        batch_size: args.batch_size.max(2),
        validation_fraction: fraction("--validation-fraction", args.validation_fraction)?,
    })
}

fn horizons(args: &ModelArgs) -> anyhow::Result<Vec<Horizon>> {
    let mut horizons = args
        .horizons
        .iter()
        .map(|h| {
            Horizon::parse(h, Some(args.time_unit)).with_context(|| format!("--horizons `{h}`"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    horizons.sort_by(|a, b| a.days().total_cmp(&b.days()));
    horizons.dedup_by(|a, b| a.days() == b.days());
    if horizons.is_empty() {
        bail!("--horizons: at least one");
    }
    Ok(horizons)
}

fn fraction(name: &str, value: f64) -> anyhow::Result<f64> {
    if value > 0.0 && value < 1.0 {
        Ok(value)
    } else {
        bail!("{name} must be between 0 and 1, not {value}")
    }
}

/// A progress bar on standard error, hidden with `--quiet`.
pub(super) fn bar(len: u64, quiet: bool, template: &str) -> ProgressBar {
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(len)
    };
    bar.set_style(
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

fn read_input_spec(path: &std::path::Path) -> anyhow::Result<InputSpec> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("could not read {}", path.display()))?;
    let spec: InputSpec = toml::from_str(&text)
        .with_context(|| format!("{} is not an input spec", path.display()))?;
    spec.validate()
        .with_context(|| format!("{} is not a usable input spec", path.display()))?;
    Ok(spec)
}

/// `prognostics train`: with `--studies` or `--notes`, the embeddings those columns refer to are
/// added from this service's store first.
pub async fn train(settings: &Settings, mut args: TrainArgs) -> anyhow::Result<ExitCode> {
    let _prepared = prepare_cohort(&mut args.cohort, settings).await?;
    run_train(args)?;
    Ok(ExitCode::SUCCESS)
}

/// `prognostics evaluate`, with stored embeddings as for `train`.
pub async fn evaluate(settings: &Settings, mut args: EvaluateArgs) -> anyhow::Result<ExitCode> {
    let _prepared = prepare_cohort(&mut args.cohort, settings).await?;
    run_evaluate(args)?;
    Ok(ExitCode::SUCCESS)
}

fn run_train(args: TrainArgs) -> anyhow::Result<()> {
    let (Some(time), Some(event)) = (args.cohort.time.clone(), args.cohort.event.clone()) else {
        bail!("train needs --time COL and --event COL");
    };
    let options = TrainOptions {
        cohort: args.cohort.cohort.clone(),
        roles: roles(&args.cohort, time, event)?,
        out: args.out.clone(),
        name: args.name.clone().unwrap_or_else(|| {
            args.cohort
                .cohort
                .file_stem()
                .map_or("model".into(), |s| s.to_string_lossy().into_owned())
        }),
        settings: settings(&args.model)?,
        test_fraction: fraction("--test-fraction", args.test_fraction)?,
        horizons: horizons(&args.model)?,
        time_unit: args.model.time_unit,
        triage_recall: fraction("--triage-recall", args.model.triage_recall)?,
        subgroups: args.cohort.subgroup.clone(),
        inputs: args.inputs.as_deref().map(read_input_spec).transpose()?,
    };
    let started = Instant::now();
    let progress = bar(
        options.settings.max_epochs as u64,
        args.quiet,
        "{spinner} [{elapsed_precise}] {prefix} {bar:40} epoch {pos}/{len} {msg}",
    );
    let summary = training::train(&options, &mut |epoch| {
        progress.set_prefix(format!("network {}/{}", epoch.member, epoch.members));
        progress.set_position(epoch.epoch as u64);
        progress.set_message(format!(
            "loss {:.4}, validation {:.4} (best epoch {})",
            epoch.train_loss, epoch.validation_loss, epoch.best_epoch
        ));
    })?;
    progress.finish_and_clear();
    let card = &summary.card;
    println!(
        "trained `{}` ({} networks) in {:.1} s; bundle in {}",
        card.name,
        card.epochs.len(),
        started.elapsed().as_secs_f64(),
        summary.bundle.display()
    );
    println!(
        "patients: {} to learn from, {} held out",
        card.data.train_rows, card.data.test_rows
    );
    print_metrics("held-out test patients", &card.test_metrics);
    print_subgroups(&card.subgroups);
    Ok(())
}

fn run_evaluate(args: EvaluateArgs) -> anyhow::Result<()> {
    // With a bundle, the outcome and triage columns default to the ones it was trained on.
    let manifest = match &args.bundle {
        Some(dir) => Some(Model::load(dir)?.manifest),
        None => None,
    };
    let time = args
        .cohort
        .time
        .clone()
        .or_else(|| manifest.as_ref().map(|m| m.outcome.time_column.clone()))
        .context("evaluate needs --time COL (or --model)")?;
    let event = args
        .cohort
        .event
        .clone()
        .or_else(|| manifest.as_ref().map(|m| m.outcome.event_column.clone()))
        .context("evaluate needs --event COL (or --model)")?;
    let mut roles = roles(&args.cohort, time, event)?;
    if roles.triage.is_none() {
        roles.triage = manifest
            .as_ref()
            .and_then(|m| m.triage.as_ref().map(|t| t.label_column.clone()));
    }
    if args.ablation {
        return run_ablation(&args, roles);
    }
    let cv = match (&args.cv, &args.bundle) {
        (_, Some(_)) => (0, 0),
        (Some(text), None) => {
            let (r, k) = text
                .split_once(['x', 'X'])
                .and_then(|(r, k)| Some((r.parse().ok()?, k.parse().ok()?)))
                .with_context(|| format!("--cv `{text}`: expected REPEATSxFOLDS, e.g. 5x5"))?;
            (r, k)
        }
        (None, None) => bail!("evaluate needs --model DIR, --cv RxK or --ablation"),
    };
    let horizons = match &manifest {
        Some(m) => m
            .horizons
            .iter()
            .map(|h| Horizon::new(h.time, m.outcome.time_unit))
            .collect::<Result<_, _>>()?,
        None => horizons(&args.model)?,
    };
    let options = EvaluateOptions {
        cohort: args.cohort.cohort.clone(),
        bundle: args.bundle.clone(),
        roles,
        cv,
        settings: settings(&args.model)?,
        horizons,
        time_unit: args.model.time_unit,
        triage_recall: fraction("--triage-recall", args.model.triage_recall)?,
        subgroups: args.cohort.subgroup.clone(),
        plot: args.plot.clone(),
        inputs: args.inputs.as_deref().map(read_input_spec).transpose()?,
    };
    let started = Instant::now();
    let progress = bar(
        (cv.0 * cv.1) as u64,
        args.quiet || args.bundle.is_some(),
        "{spinner} [{elapsed_precise}] {bar:40} fold {pos}/{len}",
    );
    let evaluation =
        training::evaluate(&options, &mut |done, _| progress.set_position(done as u64))?;
    progress.finish_and_clear();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&evaluation)?);
        return Ok(());
    }
    match &evaluation {
        Evaluation::Bundle {
            model,
            version,
            metrics,
            subgroups,
            unseen_levels,
            ..
        } => {
            println!("model `{model}` ({version})");
            if *unseen_levels > 0 {
                println!(
                    "{unseen_levels} values of categorical columns were never seen in training and were taken as unknown"
                );
            }
            print_metrics("cohort", metrics);
            print_subgroups(subgroups);
        }
        Evaluation::CrossValidation {
            repeats,
            folds,
            seed,
            summary,
            ..
        } => {
            println!(
                "{repeats} × {folds}-fold cross-validation (seed {seed}) in {:.1} s: mean ± sd [min, max] over folds",
                started.elapsed().as_secs_f64()
            );
            let row = |name: &str, s: &Option<Spread>| match s {
                Some(s) => println!(
                    "  {name:<34} {:.4} ± {:.4} [{:.4}, {:.4}]",
                    s.mean, s.sd, s.min, s.max
                ),
                None => println!("  {name:<34} —"),
            };
            row("Harrell's C", &summary.harrell_c);
            row("Uno's C", &summary.uno_c);
            row("mean time-dependent AUC", &summary.mean_auc);
            row("integrated Brier score", &summary.integrated_brier_score);
            for h in &summary.horizons {
                row(&format!("AUC at {}", h.label), &h.auc);
                row(
                    &format!("calibration slope at {}", h.label),
                    &h.calibration_slope,
                );
                row(
                    &format!("calibration intercept at {}", h.label),
                    &h.calibration_intercept,
                );
            }
            if summary.triage_auroc.is_some() {
                row("triage AUROC", &summary.triage_auroc);
            }
            for (column, gap) in &summary.subgroup_gaps {
                row(&format!("gap in Harrell's C by {column}"), gap);
            }
        }
    }
    Ok(())
}

fn run_ablation(args: &EvaluateArgs, roles: ColumnRoles) -> anyhow::Result<()> {
    let (cohort, survival) = load_cohort(&args.cohort.cohort, &roles)?;
    let options = FitOptions {
        name: "ablation".into(),
        settings: settings(&args.model)?,
        horizons: horizons(&args.model)?,
        time_unit: args.model.time_unit,
        triage_recall: fraction("--triage-recall", args.model.triage_recall)?,
    };
    let progress = bar(
        options.settings.max_epochs as u64,
        args.quiet,
        "{spinner} [{elapsed_precise}] {prefix} {bar:40} epoch {pos}/{len}",
    );
    let result = ablation(
        &cohort,
        &survival,
        &roles,
        &options,
        0.2,
        args.oracle.as_deref(),
        &mut |what, epoch| {
            progress.set_prefix(format!("{what} network {}/{}", epoch.member, epoch.members));
            progress.set_position(epoch.epoch as u64);
        },
    )?;
    progress.finish_and_clear();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&result)?);
        return Ok(());
    }
    let f = |v: Option<f64>| v.map_or("—".to_owned(), |v| format!("{v:.4}"));
    println!(
        "Harrell's C on {} held-out patients ({} with every modality)",
        result.test_patients, result.complete_test_patients
    );
    println!("  {:<28} {:>10} {:>16}", "", "all", "complete only");
    println!(
        "  {:<28} {:>10} {:>16}",
        "fused",
        f(result.fused),
        f(result.fused_complete)
    );
    if args.oracle.is_some() {
        println!(
            "  {:<28} {:>10} {:>16}",
            "oracle (true risk)",
            f(result.oracle),
            f(result.oracle_complete)
        );
    }
    for m in &result.modalities {
        println!(
            "  {:<28} {:>10} {:>16}",
            format!("{} alone", m.modality),
            "",
            f(m.alone)
        );
        println!(
            "  {:<28} {:>10} {:>16}",
            format!("fused without {}", m.modality),
            "",
            f(m.fused_without)
        );
    }
    Ok(())
}

fn print_metrics(what: &str, m: &Metrics) {
    let f = |v: Option<f64>| v.map_or("—".to_owned(), |v| format!("{v:.4}"));
    println!("{what}: {} patients, {} events", m.rows, m.events);
    println!("  Harrell's C                        {}", f(m.harrell_c));
    println!("  Uno's C                            {}", f(m.uno_c));
    println!("  mean time-dependent AUC            {}", f(m.mean_auc));
    println!(
        "  integrated Brier score             {}",
        f(m.integrated_brier_score)
    );
    for h in &m.horizons {
        println!(
            "  at {:<12} AUC {}  calibration slope {}  intercept {}",
            h.label,
            f(h.auc),
            f(h.calibration_slope),
            f(h.calibration_intercept)
        );
    }
    if let Some(t) = &m.triage {
        println!(
            "  triage: AUROC {}, average precision {}, at threshold {:.3}: precision {}, recall {} ({} urgent of {} labelled)",
            f(t.auroc),
            f(t.average_precision),
            t.threshold,
            f(t.precision),
            f(t.recall),
            t.urgent,
            t.labelled
        );
    }
    for note in &m.notes {
        println!("  not computed: {note}");
    }
}

fn print_subgroups(subgroups: &[Subgroups]) {
    let f = |v: Option<f64>| v.map_or("—".to_owned(), |v| format!("{v:.4}"));
    for s in subgroups {
        println!("by {}:", s.column);
        for g in &s.groups {
            println!(
                "  {:<16} {:>5} patients {:>4} events  Harrell's C {}  Uno's C {}  IBS {}",
                g.name,
                g.metrics.rows,
                g.metrics.events,
                f(g.metrics.harrell_c),
                f(g.metrics.uno_c),
                f(g.metrics.integrated_brier_score)
            );
        }
        println!(
            "  gap (max − min): Harrell's C {}, Uno's C {}, IBS {}",
            f(s.gaps.harrell_c),
            f(s.gaps.uno_c),
            f(s.gaps.integrated_brier_score)
        );
    }
}
