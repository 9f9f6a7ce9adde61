//! What each modality brings: on one held-out split, the fused model against a model of each
//! modality alone, and the fused model with each modality taken away at prediction time; and,
//! when the cohort carries the true risk (a synthetic cohort's `true_log_hazard`), how close
//! the fused model comes to it (the oracle's c-index). Single-modality models learn from, and
//! every comparison is made on, the patients who have that modality: the complete test
//! patients for the comparisons between models.

use serde::Serialize;

use super::TrainingError;
use super::dataset::{ColumnRoles, cohort_inputs};
use super::fit::{FitOptions, fit};
use super::split::stratified_split;
use crate::cohort::{Cohort, Survival, Values};
use crate::features::Modality;
use crate::fusion::{EpochReport, Rng};
use crate::survival::harrell_c;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModalityAblation {
    pub modality: Modality,
    /// A model of this modality alone, on the complete test patients.
    pub alone: Option<f64>,
    /// The fused model with this modality taken away, on the complete test patients.
    pub fused_without: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ablation {
    pub test_patients: usize,
    /// Test patients with every modality.
    pub complete_test_patients: usize,
    /// Harrell's C of the fused model on every test patient, and on the complete ones.
    pub fused: Option<f64>,
    pub fused_complete: Option<f64>,
    /// Harrell's C of the true risk column, if given: every test patient, complete ones.
    pub oracle: Option<f64>,
    pub oracle_complete: Option<f64>,
    pub modalities: Vec<ModalityAblation>,
}

fn c_index(survival: &Survival, rows: &[usize], risk: &[f64]) -> Option<f64> {
    let time: Vec<f64> = rows.iter().map(|&r| survival.time[r]).collect();
    let event: Vec<bool> = rows.iter().map(|&r| survival.event[r]).collect();
    harrell_c(&time, &event, risk).map(|c| c.c_index)
}

/// Runs the ablation; `oracle` names a column of true risks (excluded from the features).
pub fn ablation(
    cohort: &Cohort,
    survival: &Survival,
    roles: &ColumnRoles,
    options: &FitOptions,
    test_fraction: f64,
    oracle: Option<&str>,
    progress: &mut dyn FnMut(&str, &EpochReport),
) -> Result<Ablation, TrainingError> {
    let mut roles = roles.clone();
    if let Some(column) = oracle {
        roles.exclude.push(column.to_owned());
    }
    let oracle_risk: Option<Vec<f64>> = match oracle {
        Some(column) => match &cohort.column(column)?.values {
            Values::Numeric(v) => Some(v.iter().map(|x| x.unwrap_or(f64::NAN)).collect()),
            Values::Categorical { .. } => {
                return Err(TrainingError::Options(format!(
                    "the oracle column `{column}` is not numeric"
                )));
            }
        },
        None => None,
    };
    let seed = options.settings.seed;
    let (rest, test) = stratified_split(&survival.event, test_fraction, &mut Rng::derive(seed, 10));
    let fused = fit(cohort, survival, &roles, &rest, options, &mut |e| {
        progress("fused", e)
    })?;
    let layout = &fused.model.manifest.layout;
    let (test_inputs, _) = cohort_inputs(cohort, layout, &test)?;
    let complete_at: Vec<usize> = (0..test.len())
        .filter(|&i| test_inputs.modalities.iter().all(|m| m.present[i]))
        .collect();
    let complete: Vec<usize> = complete_at.iter().map(|&i| test[i]).collect();
    let complete_inputs = test_inputs.select(&complete_at);
    let fused_risk = fused.model.risk(&test_inputs)?;
    let fused_complete_risk = fused.model.risk(&complete_inputs)?;
    let pick = |risk: &[f64], rows: &[usize]| rows.iter().map(|&r| risk[r]).collect::<Vec<_>>();

    let (rest_inputs, _) = cohort_inputs(cohort, layout, &rest)?;
    let mut modalities = Vec::new();
    for (m, modality) in layout.modalities.iter().enumerate() {
        // Learn from the patients who have this modality.
        let single_roles = ColumnRoles {
            only: Some(modality.modality),
            ..roles.clone()
        };
        let having: Vec<usize> = (0..rest.len())
            .filter(|&i| rest_inputs.modalities[m].present[i])
            .map(|i| rest[i])
            .collect();
        let name = modality.modality.to_string();
        let alone = match fit(
            cohort,
            survival,
            &single_roles,
            &having,
            options,
            &mut |e| progress(&name, e),
        ) {
            Ok(single) => {
                let (inputs, _) = cohort_inputs(cohort, &single.model.manifest.layout, &complete)?;
                c_index(survival, &complete, &single.model.risk(&inputs)?)
            }
            Err(TrainingError::Options(_)) => None,
            Err(e) => return Err(e),
        };
        let without = if layout.modalities.len() > 1 {
            c_index(
                survival,
                &complete,
                &fused.model.risk(&complete_inputs.without(m))?,
            )
        } else {
            None
        };
        modalities.push(ModalityAblation {
            modality: modality.modality,
            alone,
            fused_without: without,
        });
    }
    Ok(Ablation {
        test_patients: test.len(),
        complete_test_patients: complete.len(),
        fused: c_index(survival, &test, &fused_risk),
        fused_complete: c_index(survival, &complete, &fused_complete_risk),
        oracle: oracle_risk
            .as_ref()
            .and_then(|r| c_index(survival, &test, &pick(r, &test))),
        oracle_complete: oracle_risk
            .as_ref()
            .and_then(|r| c_index(survival, &complete, &pick(r, &complete))),
        modalities,
    })
}
