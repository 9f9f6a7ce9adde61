//! Metrics by subgroup, with the gap between the best and worst group: categorical columns
//! by level, an age column by band (< 50, 50–64, 65–74, ≥ 75), other numeric columns at
//! their median; rows without a value form their own group.

use serde::Serialize;

use super::metrics::{Metrics, Scored};
use crate::cohort::{Cohort, CohortError, Values};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Group {
    pub name: String,
    pub metrics: Metrics,
}

/// max − min over the groups where the metric exists.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Gaps {
    pub harrell_c: Option<f64>,
    pub uno_c: Option<f64>,
    pub mean_auc: Option<f64>,
    pub integrated_brier_score: Option<f64>,
    /// At the first horizon.
    pub calibration_slope: Option<f64>,
    pub triage_auroc: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Subgroups {
    pub column: String,
    pub groups: Vec<Group>,
    pub gaps: Gaps,
}

fn is_age(column: &str) -> bool {
    column.eq_ignore_ascii_case("age") || column.to_ascii_lowercase().starts_with("age_")
}

/// Groups of positions in `rows` (the evaluated rows, in order).
fn groups(
    cohort: &Cohort,
    column: &str,
    rows: &[usize],
) -> Result<Vec<(String, Vec<usize>)>, CohortError> {
    let mut named: Vec<(String, Vec<usize>)> = Vec::new();
    let mut put = |name: String, at: usize| match named.iter_mut().find(|(n, _)| *n == name) {
        Some((_, members)) => members.push(at),
        None => named.push((name, vec![at])),
    };
    match &cohort.column(column)?.values {
        Values::Categorical { levels, codes } => {
            for (at, &row) in rows.iter().enumerate() {
                put(
                    codes[row].map_or("missing".into(), |c| levels[c].clone()),
                    at,
                );
            }
        }
        Values::Numeric(values) if is_age(column) => {
            for (at, &row) in rows.iter().enumerate() {
                let band = match values[row] {
                    None => "missing",
                    Some(a) if a < 50.0 => "< 50",
                    Some(a) if a < 65.0 => "50–64",
                    Some(a) if a < 75.0 => "65–74",
                    Some(_) => "≥ 75",
                };
                put(band.into(), at);
            }
        }
        Values::Numeric(values) => {
            let mut known: Vec<f64> = rows.iter().filter_map(|&r| values[r]).collect();
            known.sort_by(f64::total_cmp);
            let median = known.get(known.len() / 2).copied().unwrap_or(0.0);
            for (at, &row) in rows.iter().enumerate() {
                let name = match values[row] {
                    None => "missing".into(),
                    Some(v) if v <= median => format!("≤ {median}"),
                    Some(_) => format!("> {median}"),
                };
                put(name, at);
            }
        }
    }
    named.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(named)
}

fn gap(values: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    let known: Vec<f64> = values.flatten().collect();
    if known.len() < 2 {
        return None;
    }
    let max = known.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let min = known.iter().copied().fold(f64::INFINITY, f64::min);
    Some(max - min)
}

pub fn subgroup_metrics(
    cohort: &Cohort,
    column: &str,
    rows: &[usize],
    scored: &Scored<'_>,
) -> Result<Subgroups, CohortError> {
    let groups: Vec<Group> = groups(cohort, column, rows)?
        .into_iter()
        .map(|(name, members)| Group {
            name,
            metrics: scored.metrics_of(&members),
        })
        .collect();
    let gaps = Gaps {
        harrell_c: gap(groups.iter().map(|g| g.metrics.harrell_c)),
        uno_c: gap(groups.iter().map(|g| g.metrics.uno_c)),
        mean_auc: gap(groups.iter().map(|g| g.metrics.mean_auc)),
        integrated_brier_score: gap(groups.iter().map(|g| g.metrics.integrated_brier_score)),
        calibration_slope: gap(groups
            .iter()
            .map(|g| g.metrics.horizons.first().and_then(|h| h.calibration_slope))),
        triage_auroc: gap(groups
            .iter()
            .map(|g| g.metrics.triage.as_ref().and_then(|t| t.auroc))),
    };
    Ok(Subgroups {
        column: column.to_owned(),
        groups,
        gaps,
    })
}

/// The columns evaluated by subgroup when none are named: sex or gender, and age.
pub fn default_subgroup_columns(cohort: &Cohort) -> Vec<String> {
    cohort
        .columns
        .iter()
        .filter(|c| {
            let name = c.name.to_ascii_lowercase();
            matches!(name.as_str(), "sex" | "gender") || is_age(&c.name)
        })
        .map(|c| c.name.clone())
        .collect()
}
