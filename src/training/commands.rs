//! The `train` and `evaluate` commands. Everything about the cohort is checked (columns,
//! follow-up, labels, one row per patient, every row with some feature) before any training
//! starts.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::TrainingError;
use super::card::{CohortSummary, ModelCard};
use super::dataset::{
    ColumnRoles, check_embedding_widths, first_row_without_features, triage_labels,
};
use super::fit::{FitOptions, Scores, fit, score};
use super::inputs::{recode_for_spec, roles_for_spec};
use super::metrics::{Metrics, Scored, TriageScores};
use super::plot::reliability_svg;
use super::split::{complement, stratified_folds, stratified_split};
use super::subgroups::{Subgroups, default_subgroup_columns, subgroup_metrics};
use crate::cohort::{Cohort, CohortError, Survival, Values, read_cohort};
use crate::domain::{Horizon, TimeUnit};
use crate::features::InputSpec;
use crate::fusion::{EpochReport, Model, Rng, TrainSettings};

#[derive(Debug, Clone)]
pub struct TrainOptions {
    pub cohort: PathBuf,
    pub roles: ColumnRoles,
    pub out: PathBuf,
    pub name: String,
    pub settings: TrainSettings,
    /// Share of patients held out for the model card's metrics.
    pub test_fraction: f64,
    pub horizons: Vec<Horizon>,
    /// The unit of the cohort's follow-up times.
    pub time_unit: TimeUnit,
    pub triage_recall: f64,
    /// Subgroup columns [default: sex/gender and age columns].
    pub subgroups: Vec<String>,
    /// Where in FHIR each column is found: decides the features and their modalities, and goes
    /// into the bundle so that the service can build the model's inputs.
    pub inputs: Option<InputSpec>,
}

pub struct TrainSummary {
    pub bundle: PathBuf,
    pub card: ModelCard,
}

/// Reads and checks a cohort for `roles` (`check_cohort`).
pub fn load_cohort(path: &Path, roles: &ColumnRoles) -> Result<(Cohort, Survival), TrainingError> {
    check_cohort(read_cohort(path)?, roles)
}

/// Checks a cohort for `roles`: follow-up, labels, unique patients, no empty row.
pub fn check_cohort(
    cohort: Cohort,
    roles: &ColumnRoles,
) -> Result<(Cohort, Survival), TrainingError> {
    roles.check(&cohort)?;
    let survival = cohort.survival(&roles.time, &roles.event)?;
    if let Some(column) = &roles.triage {
        triage_labels(&cohort, column, &(0..cohort.rows).collect::<Vec<_>>())?;
    }
    if let Some(column) = &roles.patient {
        let ids: Vec<String> = match &cohort.column(column)?.values {
            Values::Numeric(v) => v
                .iter()
                .map(|x| x.map(|x| x.to_string()).unwrap_or_default())
                .collect(),
            Values::Categorical { levels, codes } => codes
                .iter()
                .map(|c| c.map(|c| levels[c].clone()).unwrap_or_default())
                .collect(),
        };
        let mut seen = std::collections::HashMap::new();
        for (row, id) in ids.iter().enumerate() {
            if let Some(first) = seen.insert(id.clone(), row) {
                return Err(CohortError::BadValue {
                    path: cohort.path.clone(),
                    row: row + 1,
                    column: column.clone(),
                    reason: format!(
                        "patient `{id}` already has row {}: a cohort has one row per patient",
                        first + 1
                    ),
                }
                .into());
            }
        }
    }
    // Every row must have something to learn from.
    if let Some(row) = first_row_without_features(&cohort, roles) {
        return Err(CohortError::BadValue {
            path: cohort.path.clone(),
            row: row + 1,
            column: "(every feature)".into(),
            reason: "no feature has a value in this row".into(),
        }
        .into());
    }
    Ok((cohort, survival))
}

/// The columns named, or by default sex/gender and age columns and those the model's spec
/// names under `subgroups` (the groups the monitoring will judge it in).
fn subgroup_columns(
    cohort: &Cohort,
    named: &[String],
    spec: Option<&crate::features::InputSpec>,
) -> Vec<String> {
    if !named.is_empty() {
        return named.to_vec();
    }
    let mut columns = default_subgroup_columns(cohort);
    for column in spec.map(|s| s.subgroups.as_slice()).unwrap_or_default() {
        if !columns.contains(column) {
            columns.push(column.clone());
        }
    }
    columns
}

fn select(survival: &Survival, rows: &[usize]) -> (Vec<f64>, Vec<bool>) {
    (
        rows.iter().map(|&r| survival.time[r]).collect(),
        rows.iter().map(|&r| survival.event[r]).collect(),
    )
}

/// Metrics of `model` on `rows`, overall and by subgroup, with `train` the training rows'
/// follow-up.
fn judge(
    model: &Model,
    cohort: &Cohort,
    survival: &Survival,
    train: (&[f64], &[bool]),
    rows: &[usize],
    subgroup_columns: &[String],
    triage_column: Option<&str>,
) -> Result<(Metrics, Vec<Subgroups>, Scores), TrainingError> {
    let scores = score(model, cohort, rows)?;
    let (time, event) = select(survival, rows);
    let horizons: Vec<(String, f64)> = model
        .manifest
        .horizons
        .iter()
        .map(|h| (h.label.clone(), h.time))
        .collect();
    let labels = match triage_column {
        Some(column) => Some(triage_labels(cohort, column, rows)?),
        None => None,
    };
    let threshold = model.manifest.triage.as_ref().map_or(0.5, |t| t.threshold);
    let scored = Scored {
        train,
        time: &time,
        event: &event,
        risk: &scores.risk,
        baseline: &model.manifest.baseline,
        horizons: &horizons,
        event_probability: &scores.event_probability,
        triage: match (&scores.triage, &labels) {
            (Some(p), Some(l)) => Some(TriageScores {
                probability: p,
                label: l,
                threshold,
            }),
            _ => None,
        },
    };
    let metrics = scored.metrics();
    let subgroups = subgroup_columns
        .iter()
        .map(|c| subgroup_metrics(cohort, c, rows, &scored))
        .collect::<Result<_, _>>()?;
    Ok((metrics, subgroups, scores))
}

/// Reads a cohort; with an input spec, recoded as the spec reads charts, and the roles the
/// spec gives.
fn cohort_for_spec(
    path: &Path,
    roles: &ColumnRoles,
    spec: Option<&InputSpec>,
) -> Result<(Cohort, ColumnRoles), TrainingError> {
    let mut cohort = read_cohort(path)?;
    match spec {
        Some(spec) => {
            recode_for_spec(&mut cohort, spec)?;
            let roles = roles_for_spec(&cohort, roles, spec)?;
            Ok((cohort, roles))
        }
        None => Ok((cohort, roles.clone())),
    }
}

pub fn train(
    options: &TrainOptions,
    progress: &mut dyn FnMut(&EpochReport),
) -> Result<TrainSummary, TrainingError> {
    let (cohort, roles) =
        cohort_for_spec(&options.cohort, &options.roles, options.inputs.as_ref())?;
    let (cohort, survival) = check_cohort(cohort, &roles)?;
    let seed = options.settings.seed;
    let (rest, test) = stratified_split(
        &survival.event,
        options.test_fraction,
        &mut Rng::derive(seed, 10),
    );
    if test.is_empty() || rest.len() < 2 * options.settings.members.max(2) {
        return Err(TrainingError::Options(format!(
            "{} rows are too few to hold out test patients and train on the rest",
            cohort.rows
        )));
    }
    let fit_options = FitOptions {
        name: options.name.clone(),
        settings: options.settings.clone(),
        horizons: options.horizons.clone(),
        time_unit: options.time_unit,
        triage_recall: options.triage_recall,
    };
    let fitted = fit(&cohort, &survival, &roles, &rest, &fit_options, progress)?;
    let mut model = fitted.model;
    model.manifest.inputs = options.inputs.clone();
    let subgroup_columns =
        subgroup_columns(&cohort, &options.subgroups, model.manifest.inputs.as_ref());
    let (train_time, train_event) = select(&survival, &rest);
    let (metrics, subgroups, _) = judge(
        &model,
        &cohort,
        &survival,
        (&train_time, &train_event),
        &test,
        &subgroup_columns,
        roles.triage.as_deref(),
    )?;
    model.save(&options.out)?;
    let card = ModelCard::new(
        &model.manifest,
        CohortSummary::of(&cohort, &survival, &roles, &rest, &test),
        fitted.epochs,
        fitted.calibration_rows,
        metrics,
        subgroups,
    );
    let write = |name: &str, text: String| -> Result<(), TrainingError> {
        let path = options.out.join(name);
        std::fs::write(&path, text).map_err(|e| TrainingError::Output {
            path: path.clone(),
            reason: e.to_string(),
        })
    };
    write(
        "model-card.json",
        serde_json::to_string_pretty(&card).map_err(|e| TrainingError::Options(e.to_string()))?
            + "\n",
    )?;
    write("model-card.md", card.to_markdown())?;
    write(
        "reliability.svg",
        reliability_svg(&card.test_metrics, &model.manifest.name),
    )?;
    Ok(TrainSummary {
        bundle: options.out.clone(),
        card,
    })
}

#[derive(Debug, Clone)]
pub struct EvaluateOptions {
    pub cohort: PathBuf,
    /// A trained bundle to score on the cohort; none: cross-validate.
    pub bundle: Option<PathBuf>,
    pub roles: ColumnRoles,
    /// (repeats, folds).
    pub cv: (usize, usize),
    pub settings: TrainSettings,
    pub horizons: Vec<Horizon>,
    /// The unit of the cohort's follow-up times.
    pub time_unit: TimeUnit,
    pub triage_recall: f64,
    pub subgroups: Vec<String>,
    /// Where to write the reliability plot (SVG) of a bundle's evaluation.
    pub plot: Option<PathBuf>,
    /// For cross-validation: the input spec to train each fold with (as `train --inputs`).
    /// A bundle's own spec recodes the cohort when a bundle is evaluated.
    pub inputs: Option<InputSpec>,
}

/// Mean and spread of one metric over the folds where it exists.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Spread {
    pub mean: f64,
    pub sd: f64,
    pub min: f64,
    pub max: f64,
    pub folds: usize,
}

impl Spread {
    pub fn of(values: impl Iterator<Item = Option<f64>>) -> Option<Self> {
        let known: Vec<f64> = values.flatten().collect();
        if known.is_empty() {
            return None;
        }
        let mean = known.iter().sum::<f64>() / known.len() as f64;
        let sd = if known.len() > 1 {
            (known.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (known.len() - 1) as f64)
                .sqrt()
        } else {
            0.0
        };
        Some(Self {
            mean,
            sd,
            min: known.iter().copied().fold(f64::INFINITY, f64::min),
            max: known.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            folds: known.len(),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HorizonSpread {
    pub label: String,
    pub auc: Option<Spread>,
    pub calibration_slope: Option<Spread>,
    pub calibration_intercept: Option<Spread>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CrossValidationSummary {
    pub harrell_c: Option<Spread>,
    pub uno_c: Option<Spread>,
    pub mean_auc: Option<Spread>,
    pub integrated_brier_score: Option<Spread>,
    pub horizons: Vec<HorizonSpread>,
    pub triage_auroc: Option<Spread>,
    /// Per subgroup column: the gap in Harrell's C between its groups.
    pub subgroup_gaps: Vec<(String, Option<Spread>)>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fold {
    pub repeat: usize,
    pub fold: usize,
    pub test_rows: Vec<usize>,
    pub risk: Vec<f64>,
    pub metrics: Metrics,
    pub subgroups: Vec<Subgroups>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Evaluation {
    Bundle {
        model: String,
        version: String,
        cohort: String,
        metrics: Metrics,
        subgroups: Vec<Subgroups>,
        /// Rows whose level of a categorical column the model never saw (taken as unknown).
        unseen_levels: usize,
    },
    CrossValidation {
        cohort: String,
        repeats: usize,
        folds: usize,
        seed: u64,
        summary: CrossValidationSummary,
        results: Vec<Fold>,
    },
}

pub fn evaluate(
    options: &EvaluateOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Evaluation, TrainingError> {
    match &options.bundle {
        Some(bundle) => evaluate_bundle(options, bundle),
        None => cross_validate(options, progress),
    }
}

fn evaluate_bundle(options: &EvaluateOptions, bundle: &Path) -> Result<Evaluation, TrainingError> {
    let model = Model::load(bundle)?;
    let mut cohort = read_cohort(&options.cohort)?;
    if let Some(spec) = &model.manifest.inputs {
        recode_for_spec(&mut cohort, spec)?;
    }
    let (cohort, survival) = check_cohort(cohort, &options.roles)?;
    check_embedding_widths(&cohort, &model.manifest.layout, &options.roles)?;
    let rows: Vec<usize> = (0..cohort.rows).collect();
    let subgroup_columns =
        subgroup_columns(&cohort, &options.subgroups, model.manifest.inputs.as_ref());
    // The censoring weights come from the cohort itself: the bundle does not carry its
    // training rows.
    let (metrics, subgroups, scores) = judge(
        &model,
        &cohort,
        &survival,
        (&survival.time, &survival.event),
        &rows,
        &subgroup_columns,
        options.roles.triage.as_deref(),
    )?;
    if let Some(path) = &options.plot {
        std::fs::write(path, reliability_svg(&metrics, &model.manifest.name)).map_err(|e| {
            TrainingError::Output {
                path: path.clone(),
                reason: e.to_string(),
            }
        })?;
    }
    Ok(Evaluation::Bundle {
        model: model.manifest.name.clone(),
        version: model.manifest.version.clone(),
        cohort: cohort.path.display().to_string(),
        metrics,
        subgroups,
        unseen_levels: scores.unseen_levels,
    })
}

fn cross_validate(
    options: &EvaluateOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Evaluation, TrainingError> {
    let (cohort, roles) =
        cohort_for_spec(&options.cohort, &options.roles, options.inputs.as_ref())?;
    let (cohort, survival) = check_cohort(cohort, &roles)?;
    let (repeats, k) = options.cv;
    if k < 2 || repeats < 1 {
        return Err(TrainingError::Options(
            "--cv needs at least 1 repeat of 2 folds".into(),
        ));
    }
    let seed = options.settings.seed;
    let subgroup_columns = subgroup_columns(&cohort, &options.subgroups, options.inputs.as_ref());
    let fit_options = FitOptions {
        name: "cross-validation".into(),
        settings: options.settings.clone(),
        horizons: options.horizons.clone(),
        time_unit: options.time_unit,
        triage_recall: options.triage_recall,
    };
    let total = repeats * k;
    let mut results = Vec::with_capacity(total);
    for repeat in 0..repeats {
        let folds = stratified_folds(
            &survival.event,
            k,
            &mut Rng::derive(seed, 100 + repeat as u64),
        );
        for (f, test) in folds.iter().enumerate() {
            let rest = complement(cohort.rows, test);
            let fitted = fit(&cohort, &survival, &roles, &rest, &fit_options, &mut |_| {})?;
            let (train_time, train_event) = select(&survival, &rest);
            let (metrics, subgroups, scores) = judge(
                &fitted.model,
                &cohort,
                &survival,
                (&train_time, &train_event),
                test,
                &subgroup_columns,
                options.roles.triage.as_deref(),
            )?;
            results.push(Fold {
                repeat: repeat + 1,
                fold: f + 1,
                test_rows: test.clone(),
                risk: scores.risk,
                metrics,
                subgroups,
            });
            progress(results.len(), total);
        }
    }
    let summary = CrossValidationSummary {
        harrell_c: Spread::of(results.iter().map(|r| r.metrics.harrell_c)),
        uno_c: Spread::of(results.iter().map(|r| r.metrics.uno_c)),
        mean_auc: Spread::of(results.iter().map(|r| r.metrics.mean_auc)),
        integrated_brier_score: Spread::of(
            results.iter().map(|r| r.metrics.integrated_brier_score),
        ),
        horizons: options
            .horizons
            .iter()
            .enumerate()
            .map(|(h, horizon)| {
                let at = |f: &dyn Fn(&super::metrics::HorizonMetrics) -> Option<f64>| {
                    Spread::of(
                        results
                            .iter()
                            .map(|r| r.metrics.horizons.get(h).and_then(f)),
                    )
                };
                HorizonSpread {
                    label: horizon.label(),
                    auc: at(&|m| m.auc),
                    calibration_slope: at(&|m| m.calibration_slope),
                    calibration_intercept: at(&|m| m.calibration_intercept),
                }
            })
            .collect(),
        triage_auroc: Spread::of(
            results
                .iter()
                .map(|r| r.metrics.triage.as_ref().and_then(|t| t.auroc)),
        ),
        subgroup_gaps: subgroup_columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                (
                    c.clone(),
                    Spread::of(
                        results
                            .iter()
                            .map(|r| r.subgroups.get(i).and_then(|s| s.gaps.harrell_c)),
                    ),
                )
            })
            .collect(),
    };
    Ok(Evaluation::CrossValidation {
        cohort: cohort.path.display().to_string(),
        repeats,
        folds: k,
        seed,
        summary,
        results,
    })
}
