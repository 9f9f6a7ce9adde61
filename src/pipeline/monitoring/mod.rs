//! How each model version does once outcomes arrive: every assessment the active model filed,
//! and every shadow model's answer to the same inputs, paired with what the record says
//! happened since (`features::outcome`: the event first dated after the assessment, or no
//! event until the latest dated fact), and judged censoring-aware: Harrell's and Uno's C of
//! the risk, and by each horizon the time-dependent AUC and the expected event rate (the mean
//! predicted probability) against the observed one (one minus Kaplan–Meier), the calibration
//! slope and calibration-in-the-large, and observed against expected by risk decile. Assessments whose
//! record cannot be used (an event dated before the assessment, a death without a date, facts
//! after the death) are counted with why, never silently dropped.

mod actions;
mod inputs;
mod outcome_file;
mod plots;
mod records;
mod report;
mod subgroups;

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use serde_json::Value;

use super::{Pipeline, PipelineError};
use crate::domain::ResourceType;
use crate::features::outcome::Outcome;
pub use actions::ClinicianActions;
pub use inputs::{
    AcquisitionChange, ColumnDrift, EmbeddingDrift, InputDrift, InputMissingness, InputSnapshot,
    MissingRate, acquisition_counts, drift_of,
};
pub use outcome_file::{
    OutcomeFile, OutcomeFileError, OutcomeImport, OutcomeKind, OutcomeRow, read_outcome_file,
};
pub use report::{CardFigures, MonitoringReport, Plot};
pub use subgroups::{SubgroupColumns, context_groups};

use crate::survival::{
    CensoringDistribution, ReliabilityBin, brier_scores, cumulative_dynamic_auc, fit_logistic,
    harrell_c, kaplan_meier, reliability, status_at, uno_c,
};

/// One model version's performance on the assessments paired with outcomes.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ModelPerformance {
    pub model: String,
    pub version: String,
    /// `active` for assessments it answered; `shadow` for what it scored beside them.
    pub role: &'static str,
    pub assessments: usize,
    /// Paired with a usable outcome.
    pub paired: usize,
    pub events: usize,
    pub harrell_c: Option<f64>,
    pub uno_c: Option<f64>,
    pub horizons: Vec<HorizonPerformance>,
    /// Why assessments could not be paired, with how many.
    pub unusable: BTreeMap<String, usize>,
    /// Whose event definition the outcomes were read by: the model's `own`, or the
    /// `active model's` (a shadow that names none).
    pub outcome_definition: &'static str,
    /// The same by subgroup (sex; age band at the assessment), each with its C-index.
    pub subgroups: Vec<SubgroupPerformance>,
    /// Per subgroup column, the largest difference in Harrell's C between its groups.
    pub gaps: BTreeMap<String, f64>,
    /// The same over rolling windows: the assessments of each calendar quarter.
    pub windows: Vec<WindowPerformance>,
}

/// Discrimination on the assessments of one calendar quarter.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WindowPerformance {
    /// `2026-Q4`.
    pub window: String,
    pub paired: usize,
    pub events: usize,
    pub harrell_c: Option<f64>,
}

/// The calendar quarter of a date (`2026-Q4`).
fn quarter(at: DateTime<Utc>) -> String {
    use chrono::Datelike;
    format!("{}-Q{}", at.year(), at.month0() / 3 + 1)
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SubgroupPerformance {
    /// `sex` or `age`.
    pub column: String,
    pub group: String,
    pub paired: usize,
    pub events: usize,
    pub harrell_c: Option<f64>,
}

/// The age band of the model card's subgroups.
pub fn age_band(years: f64) -> &'static str {
    match years {
        y if y < 50.0 => "< 50",
        y if y < 65.0 => "50–64",
        y if y < 75.0 => "65–74",
        _ => "≥ 75",
    }
}

/// Harrell's C, rows and events of each group of `labels` (one per paired row).
fn by_group(
    column: &str,
    labels: &[String],
    time: &[f64],
    event: &[bool],
    risk: &[f64],
) -> Vec<SubgroupPerformance> {
    let mut groups: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, label) in labels.iter().enumerate() {
        groups.entry(label.as_str()).or_default().push(i);
    }
    groups
        .into_iter()
        .map(|(group, rows)| {
            let pick = |v: &[f64]| rows.iter().map(|&i| v[i]).collect::<Vec<_>>();
            let e: Vec<bool> = rows.iter().map(|&i| event[i]).collect();
            SubgroupPerformance {
                column: column.to_owned(),
                group: group.to_owned(),
                paired: rows.len(),
                events: e.iter().filter(|&&x| x).count(),
                harrell_c: harrell_c(&pick(time), &e, &pick(risk)).map(|c| c.c_index),
            }
        })
        .collect()
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HorizonPerformance {
    pub label: String,
    pub days: f64,
    /// The mean predicted probability of the event by the horizon.
    pub expected: f64,
    /// One minus the Kaplan–Meier survival at the horizon.
    pub observed: f64,
    pub auc: Option<f64>,
    /// The Brier score, weighted by the inverse of the censoring distribution.
    pub brier: Option<f64>,
    /// Calibration slope (1 is perfect), censoring-weighted, when it can be fitted.
    pub calibration_slope: Option<f64>,
    /// Calibration-in-the-large: the intercept with the slope fixed at 1 (0 is perfect).
    pub calibration_in_the_large: Option<f64>,
    /// Observed against expected by risk decile (bins of equal count).
    pub deciles: Vec<ReliabilityBin>,
}

/// One prediction to pair: which assessment, who, when, and the probability by each horizon.
struct Scored {
    /// The assessment's DiagnosticReport id (its RiskAssessment's too).
    report: String,
    patient: String,
    assessed: DateTime<Utc>,
    /// (label, days, probability).
    horizons: Vec<(String, f64, f64)>,
}

fn date_of(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDate::parse_from_str(text.get(..10)?, "%Y-%m-%d")
                .ok()
                .map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc())
        })
}

/// A horizon in words from its length in days (`1 year`, `3 years`, `90 days`).
fn horizon_label(days: f64) -> String {
    let years = days / crate::domain::DAYS_PER_YEAR;
    let whole = years.round();
    if whole >= 1.0 && (years - whole).abs() < 0.01 {
        if whole == 1.0 {
            "1 year".into()
        } else {
            format!("{whole:.0} years")
        }
    } else {
        format!("{days:.0} days")
    }
}

/// A filed RiskAssessment as a prediction: (model, version, scored).
fn filed_prediction(id: &str, resource: &Value) -> Option<(String, String, Scored)> {
    let method = resource.pointer("/method/text")?.as_str()?;
    let (model, version) = method.rsplit_once(' ')?;
    let patient = resource
        .pointer("/subject/reference")?
        .as_str()?
        .strip_prefix("Patient/")?
        .to_owned();
    let mut assessed = None;
    let mut horizons = Vec::new();
    for p in resource.get("prediction")?.as_array()? {
        let start = date_of(p.pointer("/whenPeriod/start")?.as_str()?)?;
        let end = date_of(p.pointer("/whenPeriod/end")?.as_str()?)?;
        assessed.get_or_insert(start);
        let days = (end - start).num_days() as f64;
        horizons.push((
            horizon_label(days),
            days,
            p.get("probabilityDecimal")?.as_f64()?,
        ));
    }
    Some((
        model.to_owned(),
        version.to_owned(),
        Scored {
            report: id.to_owned(),
            patient,
            assessed: assessed?,
            horizons,
        },
    ))
}

/// One assessment paired with what happened since.
#[derive(Debug, Clone, PartialEq)]
pub struct PairedAssessment {
    pub assessed: DateTime<Utc>,
    /// Days from the assessment to the event, or to the last news without it.
    pub days: f64,
    pub event: bool,
    /// (label, days, probability of the event by then), by horizon, the longest last.
    pub horizons: Vec<(String, f64, f64)>,
    /// (subgroup column, group): `sex`, `age` band, `site`, `scanner`, and the inputs the
    /// model's spec names.
    pub groups: Vec<(String, String)>,
}

/// Who is judged, and what could not be paired.
#[derive(Debug, Clone)]
pub struct Judged {
    pub model: String,
    pub version: String,
    pub role: &'static str,
    pub assessments: usize,
    pub unusable: BTreeMap<String, usize>,
    pub outcome_definition: &'static str,
}

/// Groups with fewer events than this are shown but left out of the gap between groups: their
/// C-index is too uncertain to call one group worse.
pub const MIN_GROUP_EVENTS: usize = 20;

/// A model version's performance on its paired assessments.
pub fn performance_of(judged: Judged, paired: &[PairedAssessment]) -> ModelPerformance {
    let time: Vec<f64> = paired.iter().map(|p| p.days).collect();
    let event: Vec<bool> = paired.iter().map(|p| p.event).collect();
    let risk: Vec<f64> = paired
        .iter()
        .map(|p| p.horizons.last().map_or(0.0, |h| h.2))
        .collect();
    let harrell = harrell_c(&time, &event, &risk).map(|c| c.c_index);
    let longest = paired
        .iter()
        .filter_map(|p| p.horizons.last().map(|h| h.1))
        .fold(0.0, f64::max);
    let uno = uno_c((&time, &event), &time, &event, &risk, Some(longest))
        .ok()
        .map(|c| c.c_index);
    let censoring = CensoringDistribution::fit(&time, &event);
    let labels: Vec<(String, f64)> = paired
        .first()
        .map(|p| p.horizons.iter().map(|h| (h.0.clone(), h.1)).collect())
        .unwrap_or_default();
    let horizons = labels
        .iter()
        .enumerate()
        .map(|(k, (label, days))| {
            let predicted: Vec<f64> = paired
                .iter()
                .map(|p| p.horizons.get(k).map_or(0.0, |h| h.2))
                .collect();
            let expected = if predicted.is_empty() {
                0.0
            } else {
                predicted.iter().sum::<f64>() / predicted.len() as f64
            };
            let auc = cumulative_dynamic_auc((&time, &event), &time, &event, &predicted, &[*days])
                .ok()
                .and_then(|(scores, _)| scores.first().copied());
            let status = status_at(&censoring, &time, &event, *days);
            let survival: Vec<Vec<f64>> = predicted.iter().map(|p| vec![1.0 - p]).collect();
            let brier = brier_scores((&time, &event), &time, &event, &survival, &[*days])
                .ok()
                .and_then(|b| b.first().copied());
            // A fit that ran away (too few patients, everyone alike) says nothing.
            let sane = |v: f64| v.is_finite() && v.abs() < 20.0;
            HorizonPerformance {
                calibration_slope: fit_logistic(&predicted, &status, None)
                    .map(|f| f.slope)
                    .filter(|v| sane(*v)),
                calibration_in_the_large: fit_logistic(&predicted, &status, Some(1.0))
                    .map(|f| f.intercept)
                    .filter(|v| sane(*v)),
                deciles: reliability(&predicted, &status, 10),
                label: label.clone(),
                days: *days,
                expected,
                observed: if time.is_empty() {
                    0.0
                } else {
                    1.0 - kaplan_meier(&time, &event, *days)
                },
                auc,
                brier,
            }
        })
        .collect();
    let mut columns: Vec<&str> = Vec::new();
    for p in paired {
        for (column, _) in &p.groups {
            if !columns.contains(&column.as_str()) {
                columns.push(column);
            }
        }
    }
    let mut subgroups = Vec::new();
    let mut gaps: BTreeMap<String, f64> = BTreeMap::new();
    for column in columns {
        let labels: Vec<String> = paired
            .iter()
            .map(|p| {
                p.groups
                    .iter()
                    .find(|(c, _)| c == column)
                    .map_or("unknown".to_owned(), |(_, g)| g.clone())
            })
            .collect();
        let groups = by_group(column, &labels, &time, &event, &risk);
        let cs: Vec<f64> = groups
            .iter()
            .filter(|g| g.events >= MIN_GROUP_EVENTS)
            .filter_map(|g| g.harrell_c)
            .collect();
        if cs.len() >= 2 {
            let (lo, hi) = cs
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &c| {
                    (a.min(c), b.max(c))
                });
            gaps.insert(column.to_owned(), hi - lo);
        }
        subgroups.extend(groups);
    }
    let quarters: Vec<String> = paired.iter().map(|p| quarter(p.assessed)).collect();
    let windows = by_group("quarter", &quarters, &time, &event, &risk)
        .into_iter()
        .map(|g| WindowPerformance {
            window: g.group,
            paired: g.paired,
            events: g.events,
            harrell_c: g.harrell_c,
        })
        .collect();
    ModelPerformance {
        model: judged.model,
        version: judged.version,
        role: judged.role,
        assessments: judged.assessments,
        paired: paired.len(),
        events: event.iter().filter(|&&e| e).count(),
        harrell_c: harrell,
        uno_c: uno,
        horizons,
        unusable: judged.unusable,
        outcome_definition: judged.outcome_definition,
        subgroups,
        gaps,
        windows,
    }
}

/// One model version's predictions on their way to being judged.
struct Judging {
    judged: Judged,
    /// Its event definition (a shadow without one: the active model's).
    population: Option<crate::features::population::PopulationSpec>,
    subgroup_columns: Option<SubgroupColumns>,
    scored: Vec<Scored>,
    paired: Vec<PairedAssessment>,
}

impl Judging {
    /// Pairs prediction `k` with its patient's record as held (none: the patient is gone), or
    /// counts why it cannot be.
    fn pair(
        &mut self,
        k: usize,
        record: Option<&records::HeldRecord>,
        given: Option<&BTreeMap<String, InputSnapshot>>,
    ) {
        let s = &self.scored[k];
        let unusable = &mut self.judged.unusable;
        let Some(population) = &self.population else {
            *unusable
                .entry("no event is defined for the model".into())
                .or_default() += 1;
            return;
        };
        let Some(record) = record else {
            *unusable
                .entry("the patient is no longer held".into())
                .or_default() += 1;
            return;
        };
        let context = &record.context;
        let (until, happened) = match population.outcome_after(context, s.assessed) {
            Outcome::Event { at, .. } => (at, true),
            Outcome::Censored { until } => (until, false),
            Outcome::Unusable(why) => {
                // The kind of reason, without the resource it names: a count per kind.
                let kind = why.split(':').next().unwrap_or(&why).to_owned();
                *unusable.entry(kind).or_default() += 1;
                return;
            }
        };
        if s.horizons.is_empty() {
            return;
        }
        let sex = context
            .sex
            .map_or("unknown".to_owned(), |x| format!("{x:?}").to_lowercase());
        let age = context.birth_date.map_or("unknown", |born| {
            age_band(crate::features::context::age_in_years(
                born,
                s.assessed.date_naive(),
            ))
        });
        let mut groups = vec![("sex".into(), sex), ("age".into(), age.to_owned())];
        groups.extend(context_groups(
            given.and_then(|by_report| by_report.get(&s.report)),
            record.organization.as_deref(),
            self.subgroup_columns.as_ref(),
        ));
        self.paired.push(PairedAssessment {
            assessed: s.assessed,
            days: ((until - s.assessed).num_seconds() as f64 / 86_400.0).max(0.0),
            event: happened,
            horizons: s.horizons.clone(),
            groups,
        });
    }
}

impl Pipeline {
    /// The performance of every model version that has answered or shadowed assessments.
    pub async fn monitor_performance(&self) -> Result<Vec<ModelPerformance>, PipelineError> {
        self.monitor_performance_since(None).await
    }

    /// The same, over the assessments made at or after `since` only.
    pub async fn monitor_performance_since(
        &self,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<ModelPerformance>, PipelineError> {
        let mut groups: BTreeMap<(String, String, &'static str), Vec<Scored>> = BTreeMap::new();
        let mut after: Option<String> = None;
        loop {
            let page = self
                .store
                .contents_after(ResourceType::RiskAssessment, after.as_deref(), 1_000)
                .await?;
            let Some((last, _)) = page.last() else {
                break;
            };
            after = Some(last.clone());
            for (id, content) in &page {
                let Ok(resource) = serde_json::from_str::<Value>(content) else {
                    continue;
                };
                if let Some((model, version, scored)) = filed_prediction(id, &resource) {
                    groups
                        .entry((model, version, "active"))
                        .or_default()
                        .push(scored);
                }
            }
        }
        for row in self.store.all_shadow_predictions().await? {
            let (Some(horizons), Some(created)) = (
                row.horizons
                    .as_deref()
                    .and_then(|h| serde_json::from_str::<Value>(h).ok()),
                DateTime::from_timestamp_millis(row.created_ms),
            ) else {
                continue;
            };
            let horizons = horizons
                .as_array()
                .map(|hs| {
                    hs.iter()
                        .filter_map(|h| {
                            Some((
                                h["label"].as_str()?.to_owned(),
                                h["days"].as_f64()?,
                                h["probability"].as_f64()?,
                            ))
                        })
                        .collect()
                })
                .unwrap_or_default();
            groups
                .entry((row.model, row.version, "shadow"))
                .or_default()
                .push(Scored {
                    report: row.report,
                    patient: row.patient,
                    assessed: created,
                    horizons,
                });
        }

        if let Some(since) = since {
            for scored in groups.values_mut() {
                scored.retain(|s| s.assessed >= since);
            }
            groups.retain(|_, scored| !scored.is_empty());
        }
        // What each model was given for each assessment (its acquisition and inputs), kept
        // by the service in the assessment's transaction: a RiskAssessment without it was not
        // filed by this service's model (written through the FHIR API, say), and is not judged.
        let since_ms = since.map_or(0, |t| t.timestamp_millis());
        // By model version, then by report.
        let mut given: BTreeMap<(String, String), BTreeMap<String, InputSnapshot>> =
            BTreeMap::new();
        for row in self.store.model_inputs_since(since_ms).await? {
            // Unreadable inputs still say the service filed the assessment; only its groups
            // beyond sex and age are then unknown.
            let snapshot = serde_json::from_str::<InputSnapshot>(&row.content).unwrap_or_default();
            given
                .entry((row.model, row.version))
                .or_default()
                .insert(row.report, snapshot);
        }
        let mut not_filed_here = 0usize;
        for ((model, version, role), scored) in groups.iter_mut() {
            if *role == "active" {
                let before = scored.len();
                let filed = given.get(&(model.clone(), version.clone()));
                scored.retain(|s| filed.is_some_and(|by_report| by_report.contains_key(&s.report)));
                not_filed_here += before - scored.len();
            }
        }
        groups.retain(|_, scored| !scored.is_empty());
        if not_filed_here > 0 {
            tracing::warn!(
                risk_assessments = not_filed_here,
                "RiskAssessments not filed by a model of this service were left out of the monitoring"
            );
        }
        let registry = self.models();
        // How each model version is judged: its event definition and subgroups.
        let mut judging: Vec<Judging> = groups
            .into_iter()
            .map(|((model, version, role), scored)| {
                let own = registry
                    .find(&model, &version)
                    .and_then(|m| m.model.model.manifest.inputs.as_ref())
                    .and_then(|spec| spec.population.clone());
                // A shadow that names no event of its own is judged by the active model's: it
                // is a candidate answer to the same clinical question.
                let outcome_definition = if own.is_some() {
                    "own"
                } else {
                    "active model's"
                };
                let population = own.or_else(|| {
                    registry
                        .active()
                        .and_then(|m| m.model.manifest.inputs.as_ref())
                        .and_then(|spec| spec.population.clone())
                });
                let subgroup_columns = registry
                    .find(&model, &version)
                    .map(|m| SubgroupColumns::of(&m.model.model));
                Judging {
                    judged: Judged {
                        model,
                        version,
                        role,
                        assessments: scored.len(),
                        unusable: BTreeMap::new(),
                        outcome_definition,
                    },
                    population,
                    subgroup_columns,
                    scored,
                    paired: Vec::new(),
                }
            })
            .collect();
        // Every patient's record read once, a batch at a time (most of the job's time), each
        // batch's assessments paired and the records let go: memory holds the pairs only.
        let mut by_patient: BTreeMap<String, Vec<(usize, usize)>> = BTreeMap::new();
        for (g, j) in judging.iter().enumerate() {
            for (k, scored) in j.scored.iter().enumerate() {
                by_patient
                    .entry(scored.patient.clone())
                    .or_default()
                    .push((g, k));
            }
        }
        let patients: Vec<String> = by_patient.keys().cloned().collect();
        let given_to: Vec<Option<&BTreeMap<String, InputSnapshot>>> = judging
            .iter()
            .map(|j| given.get(&(j.judged.model.clone(), j.judged.version.clone())))
            .collect();
        for batch in patients.chunks(crate::store::COMPARTMENT_BATCH) {
            let records = self.held_records(batch).await?;
            for patient in batch {
                for &(g, k) in &by_patient[patient] {
                    judging[g].pair(k, records.get(patient), given_to[g]);
                }
            }
        }
        let out: Vec<ModelPerformance> = judging
            .into_iter()
            .map(|j| performance_of(j.judged, &j.paired))
            .collect();

        tracing::info!(models = out.len(), "model performance computed");
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn age_bands_are_the_model_cards() {
        assert_eq!(age_band(49.9), "< 50");
        assert_eq!(age_band(50.0), "50–64");
        assert_eq!(age_band(74.99), "65–74");
        assert_eq!(age_band(75.0), "≥ 75");
    }

    #[test]
    fn each_group_is_judged_on_its_own_rows() {
        let labels: Vec<String> = ["a", "a", "a", "b", "b", "b"].map(String::from).to_vec();
        let time = [1.0, 2.0, 3.0, 1.0, 2.0, 3.0];
        let event = [true, true, false, true, true, false];
        // Group a ranked right (higher risk, earlier event), group b wrong.
        let risk = [0.9, 0.5, 0.1, 0.1, 0.5, 0.9];
        let groups = by_group("g", &labels, &time, &event, &risk);
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].harrell_c, Some(1.0));
        assert_eq!(groups[1].harrell_c, Some(0.0));
        assert_eq!(groups[0].events, 2);
    }

    #[test]
    fn horizons_are_named_in_years_when_whole() {
        assert_eq!(horizon_label(365.25), "1 year");
        assert_eq!(horizon_label(1096.0), "3 years");
        assert_eq!(horizon_label(90.0), "90 days");
    }
}
