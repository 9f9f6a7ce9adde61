//! One model fitted on given rows of a cohort: the layout and its statistics from those rows,
//! an ensemble of networks each early-stopped on its own fold of them (or one network on a
//! held-out share), the Breslow baseline hazard from the ensemble's risks, and the
//! calibration (Platt scaling per horizon, inverse-probability-of-censoring weighted; Platt
//! for triage) and triage threshold fitted on out-of-fold predictions.

use chrono::Utc;

use super::TrainingError;
use super::dataset::{ColumnRoles, cohort_inputs, plan_layout, triage_labels};
use super::metrics::threshold_for_recall;
use super::split::{complement, stratified_folds, stratified_split};
use crate::cohort::{Cohort, Survival};
use crate::domain::{Horizon as HorizonSpec, TimeUnit};
use crate::fusion::{
    self, BINS, Bins, EpochReport, Horizon, Manifest, Model, Outcome, Reference, Rng, Targets,
    TrainSettings, Triage,
};
use crate::survival::{BaselineHazard, CensoringDistribution, fit_logistic, status_at};

/// Fewer validation rows with a known status at a horizon than this: no calibration there.
const MIN_CALIBRATION_ROWS: usize = 20;

#[derive(Debug, Clone)]
pub struct FitOptions {
    pub name: String,
    pub settings: TrainSettings,
    pub horizons: Vec<HorizonSpec>,
    /// The unit of the cohort's follow-up times.
    pub time_unit: TimeUnit,
    /// Recall of urgent findings the triage threshold is chosen for, on validation rows.
    pub triage_recall: f64,
}

/// Outputs of a model on rows of a cohort.
#[derive(Debug, Clone)]
pub struct Scores {
    pub risk: Vec<f64>,
    pub event_probability: Vec<Vec<f64>>,
    pub triage: Option<Vec<f64>>,
    /// Values of categorical columns the model never saw, taken as unknown.
    pub unseen_levels: usize,
}

pub struct Fitted {
    pub model: Model,
    /// Per member: (best epoch, epochs run).
    pub epochs: Vec<(usize, usize)>,
    /// Rows the calibration was fitted on (out-of-fold, or the validation rows).
    pub calibration_rows: usize,
}

/// Fits the ensemble on `rows` of the cohort (see `TrainSettings::members`).
pub fn fit(
    cohort: &Cohort,
    survival: &Survival,
    roles: &ColumnRoles,
    rows: &[usize],
    options: &FitOptions,
    progress: &mut dyn FnMut(&EpochReport),
) -> Result<Fitted, TrainingError> {
    let settings = &options.settings;
    let layout = plan_layout(cohort, roles, rows)?;
    let targets = |rows: &[usize]| -> Result<Targets, TrainingError> {
        Ok(Targets {
            time: rows.iter().map(|&r| survival.time[r]).collect(),
            event: rows.iter().map(|&r| survival.event[r]).collect(),
            urgent: match &roles.triage {
                Some(column) => Some(triage_labels(cohort, column, rows)?),
                None => None,
            },
        })
    };
    let (inputs, _) = cohort_inputs(cohort, &layout, rows)?;
    let all = targets(rows)?;
    let events: Vec<bool> = all.event.clone();
    let event_count = events.iter().filter(|&&e| e).count();
    if event_count < 2 * settings.members.max(1) {
        return Err(TrainingError::Options(format!(
            "{event_count} events among the {} patients to learn from are too few for {} networks: each needs events to learn from and to stop on (fewer --members, or a larger cohort)",
            rows.len(),
            settings.members.max(1)
        )));
    }
    // Positions (in `rows`) each member validates on.
    let held_out: Vec<Vec<usize>> = if settings.members <= 1 {
        let (_, validation) = stratified_split(
            &events,
            settings.validation_fraction,
            &mut Rng::derive(settings.seed, 11),
        );
        vec![validation]
    } else {
        stratified_folds(
            &events,
            settings.members,
            &mut Rng::derive(settings.seed, 11),
        )
    };
    let mut members = Vec::with_capacity(held_out.len());
    let mut epochs = Vec::with_capacity(held_out.len());
    // Out-of-fold outputs: each row's risk (and triage logit) from the member that did not
    // learn from it.
    let mut oof_risk = vec![f64::NAN; rows.len()];
    let mut oof_triage = vec![f64::NAN; rows.len()];
    for (member, validation) in held_out.iter().enumerate() {
        let train_at = complement(rows.len(), validation);
        let train_inputs = inputs.select(&train_at);
        let validation_inputs = inputs.select(validation);
        let trained = fusion::train(
            &layout,
            settings,
            member,
            (&train_inputs, &all.select(&train_at)),
            (&validation_inputs, &all.select(validation)),
            progress,
        )?;
        let (risk, triage) = trained.outputs(&layout, &validation_inputs)?;
        for (k, &at) in validation.iter().enumerate() {
            oof_risk[at] = risk[k];
            if let Some(t) = &triage {
                oof_triage[at] = t[k];
            }
        }
        epochs.push((trained.best_epoch, trained.epochs_run));
        members.push(trained);
    }
    let architecture = members[0].architecture.clone();
    let manifest = Manifest {
        format: fusion::FORMAT.into(),
        name: options.name.clone(),
        version: format!("{}-seed{}", Utc::now().format("%Y%m%d"), settings.seed),
        created: Utc::now(),
        outcome: Outcome {
            time_column: roles.time.clone(),
            event_column: roles.event.clone(),
            time_unit: options.time_unit,
        },
        layout,
        architecture,
        training: settings.clone(),
        baseline: BaselineHazard {
            times: Vec::new(),
            cumulative: Vec::new(),
        },
        horizons: options
            .horizons
            .iter()
            .map(|h| Horizon {
                time: h.in_unit(options.time_unit),
                label: h.label(),
                calibration: None,
            })
            .collect(),
        triage: None,
        inputs: None,
        reference: None,
        weights_sha256: String::new(),
    };
    let mut model = Model::new(
        manifest,
        members.into_iter().map(|t| (t.network, t.vars)).collect(),
    )?;

    // The baseline hazard from the ensemble's risks on all its rows (as a Cox model's is
    // from its training rows).
    let risk = model.risk(&inputs)?;
    model.manifest.baseline = BaselineHazard::fit(&all.time, &all.event, &risk);
    model.manifest.reference = Bins::of(&risk, BINS).map(|risk| Reference { risk });

    // Calibration on the out-of-fold predictions.
    let calibrated: Vec<usize> = (0..rows.len())
        .filter(|&i| oof_risk[i].is_finite())
        .collect();
    let time: Vec<f64> = calibrated.iter().map(|&i| all.time[i]).collect();
    let event: Vec<bool> = calibrated.iter().map(|&i| all.event[i]).collect();
    let censoring = CensoringDistribution::fit(&all.time, &all.event);
    for k in 0..model.manifest.horizons.len() {
        let t = model.manifest.horizons[k].time;
        let predicted: Vec<f64> = calibrated
            .iter()
            .map(|&i| 1.0 - model.manifest.baseline.survival(oof_risk[i], t))
            .collect();
        let status = status_at(&censoring, &time, &event, t);
        if status.iter().flatten().count() >= MIN_CALIBRATION_ROWS {
            model.manifest.horizons[k].calibration = fit_logistic(&predicted, &status, None);
        }
    }
    if let (Some(column), Some(labels)) = (&roles.triage, &all.urgent) {
        let labels: Vec<Option<bool>> = calibrated.iter().map(|&i| labels[i]).collect();
        let raw: Vec<f64> = calibrated
            .iter()
            .map(|&i| 1.0 / (1.0 + (-oof_triage[i]).exp()))
            .collect();
        let outcomes: Vec<Option<(bool, f64)>> =
            labels.iter().map(|l| l.map(|y| (y, 1.0))).collect();
        let calibration = fit_logistic(&raw, &outcomes, None);
        let probability: Vec<f64> = raw
            .iter()
            .map(|&p| calibration.map_or(p, |c| c.apply(p)))
            .collect();
        model.manifest.triage = Some(Triage {
            label_column: column.clone(),
            threshold: threshold_for_recall(&probability, &labels, options.triage_recall),
            calibration,
        });
    }
    Ok(Fitted {
        model,
        epochs,
        calibration_rows: calibrated.len(),
    })
}

/// The model's outputs on `rows` of a cohort prepared with the model's own layout.
pub fn score(model: &Model, cohort: &Cohort, rows: &[usize]) -> Result<Scores, TrainingError> {
    let (inputs, unseen_levels) = cohort_inputs(cohort, &model.manifest.layout, rows)?;
    let predictions = model.predict(&inputs, false)?;
    Ok(Scores {
        risk: predictions.iter().map(|p| p.risk).collect(),
        event_probability: predictions
            .iter()
            .map(|p| p.horizons.iter().map(|h| h.event_probability).collect())
            .collect(),
        triage: model.manifest.triage.is_some().then(|| {
            predictions
                .iter()
                .map(|p| p.triage_probability.unwrap_or(0.0))
                .collect()
        }),
        unseen_levels,
    })
}
