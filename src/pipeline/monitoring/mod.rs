//! How each model version does once outcomes arrive: every assessment the active model filed,
//! and every shadow model's answer to the same inputs, paired with what the record says
//! happened since (`features::outcome`: the event first dated after the assessment, or no
//! event until the latest dated fact), and judged censoring-aware: Harrell's and Uno's C of
//! the risk, and by each horizon the time-dependent AUC and the expected event rate (the mean
//! predicted probability) against the observed one (one minus Kaplan–Meier), the calibration
//! slope and calibration-in-the-large, and observed against expected by risk decile. Assessments whose
//! record cannot be used (an event dated before the assessment, a death without a date, facts
//! after the death) are counted with why, never silently dropped.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use serde_json::Value;

use super::risk_inputs::RecordSource;
use super::{Pipeline, PipelineError};
use crate::domain::{ResourceId, ResourceType};
use crate::features::PatientContext;
use crate::features::outcome::Outcome;
use crate::fhir::parse_search;
use crate::survival::{
    CensoringDistribution, ReliabilityBin, cumulative_dynamic_auc, fit_logistic, harrell_c,
    kaplan_meier, reliability, status_at, uno_c,
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
fn age_band(years: f64) -> &'static str {
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
    /// Calibration slope (1 is perfect), censoring-weighted, when it can be fitted.
    pub calibration_slope: Option<f64>,
    /// Calibration-in-the-large: the intercept with the slope fixed at 1 (0 is perfect).
    pub calibration_in_the_large: Option<f64>,
    /// Observed against expected by risk decile (bins of equal count).
    pub deciles: Vec<ReliabilityBin>,
}

/// One prediction to pair: who, when, and the probability by each horizon.
struct Scored {
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
fn filed_prediction(resource: &Value) -> Option<(String, String, Scored)> {
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
            patient,
            assessed: assessed?,
            horizons,
        },
    ))
}

impl Pipeline {
    /// The performance of every model version that has answered or shadowed assessments.
    pub async fn monitor_performance(&self) -> Result<Vec<ModelPerformance>, PipelineError> {
        let mut groups: BTreeMap<(String, String, &'static str), Vec<Scored>> = BTreeMap::new();
        let mut query = parse_search(ResourceType::RiskAssessment, &[], false, 500, 500)?;
        loop {
            let (page, total) = self
                .store
                .search(ResourceType::RiskAssessment, &query)
                .await?;
            let read = page.len();
            for stored in page {
                let Some(content) = stored.content else {
                    continue;
                };
                let Ok(resource) = serde_json::from_str::<Value>(&content) else {
                    continue;
                };
                if let Some((model, version, scored)) = filed_prediction(&resource) {
                    groups
                        .entry((model, version, "active"))
                        .or_default()
                        .push(scored);
                }
            }
            query.offset += read as u32;
            if read == 0 || u64::from(query.offset) >= total {
                break;
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
                    patient: row.patient,
                    assessed: created,
                    horizons,
                });
        }

        let registry = self.models();
        let mut contexts: BTreeMap<String, Option<PatientContext>> = BTreeMap::new();
        let mut out = Vec::new();
        for ((model, version, role), scored) in groups {
            let own = registry
                .find(&model, &version)
                .and_then(|m| m.model.model.manifest.inputs.as_ref())
                .and_then(|spec| spec.population.clone());
            // A shadow that names no event of its own is judged by the active model's: it is
            // a candidate answer to the same clinical question.
            let outcome_from = if own.is_some() {
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
            let mut unusable: BTreeMap<String, usize> = BTreeMap::new();
            let (mut time, mut event, mut risk) = (Vec::new(), Vec::new(), Vec::new());
            let mut probabilities: Vec<&[(String, f64, f64)]> = Vec::new();
            let (mut sexes, mut ages) = (Vec::new(), Vec::new());
            for s in &scored {
                let Some(population) = &population else {
                    *unusable
                        .entry("no event is defined for the model".into())
                        .or_default() += 1;
                    continue;
                };
                if !contexts.contains_key(&s.patient) {
                    let context = self.held_context(&s.patient).await?;
                    contexts.insert(s.patient.clone(), context);
                }
                let Some(Some(context)) = contexts.get(&s.patient) else {
                    *unusable
                        .entry("the patient is no longer held".into())
                        .or_default() += 1;
                    continue;
                };
                let (until, happened) = match population.outcome_after(context, s.assessed) {
                    Outcome::Event { at, .. } => (at, true),
                    Outcome::Censored { until } => (until, false),
                    Outcome::Unusable(why) => {
                        // The kind of reason, without the resource it names: a count per kind.
                        let kind = why.split(':').next().unwrap_or(&why).to_owned();
                        *unusable.entry(kind).or_default() += 1;
                        continue;
                    }
                };
                let Some(last) = s.horizons.last() else {
                    continue;
                };
                time.push(((until - s.assessed).num_seconds() as f64 / 86_400.0).max(0.0));
                event.push(happened);
                risk.push(last.2);
                probabilities.push(&s.horizons);
                sexes.push(
                    context
                        .sex
                        .map_or("unknown".to_owned(), |x| format!("{x:?}").to_lowercase()),
                );
                ages.push(
                    context
                        .birth_date
                        .map_or("unknown", |born| {
                            age_band(crate::features::context::age_in_years(
                                born,
                                s.assessed.date_naive(),
                            ))
                        })
                        .to_owned(),
                );
            }
            let harrell = harrell_c(&time, &event, &risk).map(|c| c.c_index);
            let longest = scored
                .iter()
                .filter_map(|s| s.horizons.last().map(|h| h.1))
                .fold(0.0, f64::max);
            let uno = uno_c((&time, &event), &time, &event, &risk, Some(longest))
                .ok()
                .map(|c| c.c_index);
            let censoring = CensoringDistribution::fit(&time, &event);
            let labels: Vec<(String, f64)> = scored
                .first()
                .map(|s| s.horizons.iter().map(|h| (h.0.clone(), h.1)).collect())
                .unwrap_or_default();
            let horizons = labels
                .iter()
                .enumerate()
                .map(|(k, (label, days))| {
                    let predicted: Vec<f64> = probabilities
                        .iter()
                        .map(|p| p.get(k).map_or(0.0, |h| h.2))
                        .collect();
                    let expected = if predicted.is_empty() {
                        0.0
                    } else {
                        predicted.iter().sum::<f64>() / predicted.len() as f64
                    };
                    let auc = cumulative_dynamic_auc(
                        (&time, &event),
                        &time,
                        &event,
                        &predicted,
                        &[*days],
                    )
                    .ok()
                    .and_then(|(scores, _)| scores.first().copied());
                    let status = status_at(&censoring, &time, &event, *days);
                    HorizonPerformance {
                        calibration_slope: fit_logistic(&predicted, &status, None).map(|f| f.slope),
                        calibration_in_the_large: fit_logistic(&predicted, &status, Some(1.0))
                            .map(|f| f.intercept),
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
                    }
                })
                .collect();
            let mut subgroups = by_group("sex", &sexes, &time, &event, &risk);
            subgroups.extend(by_group("age", &ages, &time, &event, &risk));
            let mut gaps: BTreeMap<String, f64> = BTreeMap::new();
            for column in ["sex", "age"] {
                let cs: Vec<f64> = subgroups
                    .iter()
                    .filter(|g| g.column == column)
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
            }
            out.push(ModelPerformance {
                subgroups,
                gaps,
                model,
                version,
                role,
                assessments: scored.len(),
                paired: time.len(),
                events: event.iter().filter(|&&e| e).count(),
                harrell_c: harrell,
                uno_c: uno,
                horizons,
                unusable,
                outcome_definition: outcome_from,
            });
        }
        tracing::info!(models = out.len(), "model performance computed");
        Ok(out)
    }

    /// What this service holds about a patient now (never the EHR: outcomes are what was
    /// filed here), or None when the patient is gone.
    async fn held_context(&self, patient: &str) -> Result<Option<PatientContext>, PipelineError> {
        let Ok(id) = ResourceId::parse(patient) else {
            return Ok(None);
        };
        match self.gather_record(&id, RecordSource::Held).await {
            Ok(record) => Ok(Some(PatientContext::from_resources(
                &record.patient,
                record.resources.iter(),
            ))),
            Err(e) if e.kind() == crate::error::ErrorKind::NotFound => Ok(None),
            Err(e) if e.kind() == crate::error::ErrorKind::Gone => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// What clinicians did with one model version's output: CDS cards accepted or overridden (with
/// the reasons given), and risk reports signed or disagreed with (with the reasons).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ClinicianActions {
    pub model: String,
    pub version: String,
    pub cards_accepted: usize,
    pub cards_overridden: usize,
    pub override_reasons: BTreeMap<String, usize>,
    pub reports_signed: usize,
    pub reports_disagreed: usize,
    pub disagree_reasons: BTreeMap<String, usize>,
    /// Accepted cards and signed reports among every card answered and report reviewed.
    pub acceptance_rate: Option<f64>,
}

/// The value of a Basic's extension whose URL ends with `#{name}`.
fn extension<'a>(resource: &'a Value, name: &str, key: &str) -> Option<&'a Value> {
    resource["extension"]
        .as_array()?
        .iter()
        .find(|e| {
            e["url"]
                .as_str()
                .is_some_and(|u| u.ends_with(&format!("#{name}")))
        })?
        .get(key)
}

/// `name|version` (a card's) or `name version` (a report's).
fn model_named(text: &str) -> (String, String) {
    let (name, version) = text
        .split_once('|')
        .or_else(|| text.rsplit_once(' '))
        .unwrap_or((text, ""));
    (name.to_owned(), version.to_owned())
}

impl Pipeline {
    /// Clinicians' answers per model version, from the feedback and review records filed.
    pub async fn clinician_actions(&self) -> Result<Vec<ClinicianActions>, PipelineError> {
        let mut by_model: BTreeMap<(String, String), ClinicianActions> = BTreeMap::new();
        for code in ["cds-feedback", "assessment-signed", "assessment-disagreed"] {
            let params = [(
                "code".to_owned(),
                format!("{}|{code}", crate::report::risk::CODE_SYSTEM),
            )];
            let mut query = parse_search(ResourceType::Basic, &params, true, 500, 500)?;
            loop {
                let (page, total) = self.store.search(ResourceType::Basic, &query).await?;
                let read = page.len();
                for stored in page {
                    let Some(resource) = stored
                        .content
                        .as_deref()
                        .and_then(|c| serde_json::from_str::<Value>(c).ok())
                    else {
                        continue;
                    };
                    let Some(model) =
                        extension(&resource, "model", "valueString").and_then(Value::as_str)
                    else {
                        continue;
                    };
                    let (name, version) = model_named(model);
                    let actions = by_model
                        .entry((name.clone(), version.clone()))
                        .or_insert_with(|| ClinicianActions {
                            model: name,
                            version,
                            ..ClinicianActions::default()
                        });
                    let reason = |key: &str| {
                        extension(&resource, key, "valueCoding")
                            .and_then(|c| c["code"].as_str())
                            .unwrap_or("none given")
                            .to_owned()
                    };
                    match code {
                        "cds-feedback" => {
                            match extension(&resource, "outcome", "valueCode")
                                .and_then(Value::as_str)
                            {
                                Some("accepted") => actions.cards_accepted += 1,
                                Some("overridden") => {
                                    actions.cards_overridden += 1;
                                    *actions
                                        .override_reasons
                                        .entry(reason("overrideReason"))
                                        .or_default() += 1;
                                }
                                _ => {}
                            }
                        }
                        "assessment-signed" => actions.reports_signed += 1,
                        _ => {
                            actions.reports_disagreed += 1;
                            *actions
                                .disagree_reasons
                                .entry(reason("reason"))
                                .or_default() += 1;
                        }
                    }
                }
                query.offset += read as u32;
                if read == 0 || u64::from(query.offset) >= total {
                    break;
                }
            }
        }
        Ok(by_model
            .into_values()
            .map(|mut a| {
                let answered =
                    a.cards_accepted + a.cards_overridden + a.reports_signed + a.reports_disagreed;
                a.acceptance_rate = (answered > 0)
                    .then(|| (a.cards_accepted + a.reports_signed) as f64 / answered as f64);
                a
            })
            .collect())
    }
}

/// How often each input was missing from one model version's assessments.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct InputMissingness {
    pub model: String,
    pub version: String,
    pub assessments: usize,
    /// Per input (as the model names it): the assessments it was missing from, and the rate.
    pub missing: BTreeMap<String, MissingRate>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct MissingRate {
    pub count: usize,
    pub rate: f64,
}

impl Pipeline {
    /// The missingness of each input, per model version, over the assessments filed (from the
    /// explanation kept beside each).
    pub async fn input_missingness(&self) -> Result<Vec<InputMissingness>, PipelineError> {
        let mut by_model: BTreeMap<(String, String), InputMissingness> = BTreeMap::new();
        for content in self.store.all_assessment_views().await? {
            let Ok(view) =
                serde_json::from_str::<crate::report::risk_view::AssessmentView>(&content)
            else {
                continue;
            };
            let key = (view.model.name.clone(), view.model.version.clone());
            let entry = by_model.entry(key).or_insert_with(|| InputMissingness {
                model: view.model.name.clone(),
                version: view.model.version.clone(),
                ..InputMissingness::default()
            });
            entry.assessments += 1;
            let mut seen: Vec<&str> = Vec::new();
            for m in &view.missing {
                let input = m.feature.split('=').next().unwrap_or(&m.feature);
                if !seen.contains(&input) {
                    seen.push(input);
                    entry.missing.entry(input.to_owned()).or_default().count += 1;
                }
            }
        }
        Ok(by_model
            .into_values()
            .map(|mut m| {
                let total = m.assessments.max(1) as f64;
                for rate in m.missing.values_mut() {
                    rate.rate = rate.count as f64 / total;
                }
                m
            })
            .collect())
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
