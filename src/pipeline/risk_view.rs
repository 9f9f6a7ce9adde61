//! The assessment's explanation for the app (`report::risk_view`), made when the assessment is,
//! from what only then is at hand: the model's survival curve for this patient, the features
//! with the resources they were read from, and the tests that would fill what was missing.

use super::Pipeline;
use super::risk::RiskModel;
use super::risk_clock::Clock;
use crate::features::{FeatureSet, PatientContext};
use crate::report::risk::AssessmentContent;
use crate::report::risk_view::{
    AssessmentView, Coded, ContributionView, CurvePoint, FeatureView, HorizonView, MissingView,
    ModelRef, TriageView,
};

/// Points of the curve drawn.
const CURVE_POINTS: usize = 60;

/// What the record says of one feature's source: (value in words, unit, date).
type Recorded = (Option<String>, Option<String>, Option<String>);

fn date(at: Option<chrono::DateTime<chrono::Utc>>) -> Option<String> {
    at.map(|d| d.format("%Y-%m-%d").to_string())
}

/// The value, unit and date of `source` as the record holds it.
fn recorded(context: &PatientContext, source: &str) -> Recorded {
    if let Some(m) = context.measurements.iter().find(|m| m.source == source) {
        return (Some(trimmed(m.value)), m.unit.clone(), date(m.effective));
    }
    if let Some(r) = context.coded_results.iter().find(|r| r.source == source) {
        return (r.answer_text.clone(), None, date(r.effective));
    }
    if let Some(s) = context.stage_groups.iter().find(|s| s.source == source) {
        let letter = s.letter.map(String::from).unwrap_or_default();
        return (
            Some(format!("stage {}{letter}", s.group)),
            None,
            date(s.effective),
        );
    }
    if let Some(v) = context.variants.iter().find(|v| v.source == source) {
        let change = v
            .dna_change
            .as_deref()
            .or(v.amino_acid_change.as_deref())
            .unwrap_or(if v.present { "variant" } else { "no variant" });
        let gene = v.gene.as_deref().unwrap_or_default();
        return (
            Some(format!("{gene} {change}").trim().to_owned()),
            None,
            None,
        );
    }
    (None, None, None)
}

/// A number without trailing zeros (`21`, `0.5`).
fn trimmed(value: f64) -> String {
    let text = format!("{value:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// One feature the model named, with what the record says of it.
fn feature_view(inputs: &ViewInputs<'_>, feature: &str, attribution: f64) -> FeatureView {
    let (context, features) = (inputs.context, inputs.features);
    let modality = features
        .modalities
        .iter()
        .find(|m| m.names.iter().any(|n| n == feature));
    let index = modality.and_then(|m| m.names.iter().position(|n| n == feature));
    let (value, source) = match (modality, index) {
        (Some(m), Some(i)) => (Some(m.values[i]), m.origins.get(i).cloned().flatten()),
        _ => (None, None),
    };
    let (answer, mut unit, date) = source
        .as_deref()
        .map(|s| recorded(context, s))
        .unwrap_or_default();
    let shown = match feature.split_once('=') {
        // One of a variable's levels: the value is the level the record gave the variable.
        Some((variable, _)) => {
            let prefix = format!("{variable}=");
            let level = modality.and_then(|m| {
                m.names
                    .iter()
                    .zip(&m.values)
                    .zip(&m.mask)
                    .find(|((n, v), known)| **known && **v > 0.5 && n.starts_with(&prefix))
                    .map(|((n, _), _)| n[prefix.len()..].to_owned())
            });
            // The recorded value, when it says more than the level: `4-9 (5)`, `III (Grade 3)`.
            let recorded = answer.map(|a| match unit.take().filter(|u| u != "1") {
                Some(u) => format!("{a} {u}"),
                None => a,
            });
            match (level, recorded) {
                (Some(level), Some(recorded)) if recorded != level => {
                    Some(format!("{level} ({recorded})"))
                }
                (Some(level), _) => Some(level),
                (None, recorded) => recorded,
            }
        }
        None if feature == "age" => {
            unit = Some("years".into());
            value.map(|v| format!("{}", v.floor()))
        }
        None => answer.or_else(|| value.map(|v| trimmed(f64::from(v)))),
    };
    FeatureView {
        feature: feature.to_owned(),
        attribution,
        value: shown,
        unit,
        date,
        reference: source
            .as_ref()
            .and_then(|s| inputs.references.get(s).cloned()),
        source,
    }
}

/// The probability of the event within each of [`CURVE_POINTS`] spans from now, over the
/// model's follow-up left after the time already elapsed.
fn curve(risk: &RiskModel, log_hazard_ratio: f64, clock: &Clock) -> Vec<CurvePoint> {
    let unit_days = risk.model.manifest.outcome.time_unit.days();
    let elapsed = clock.elapsed_days() / unit_days;
    let left = risk.model.follow_up_limit() - elapsed;
    if left <= 0.0 {
        return Vec::new();
    }
    (0..=CURVE_POINTS)
        .filter_map(|i| {
            let t = left * i as f64 / CURVE_POINTS as f64;
            let probability =
                risk.model
                    .conditional_event_probability(log_hazard_ratio, elapsed, t)?;
            Some(CurvePoint {
                days: t * unit_days,
                probability,
            })
        })
        .collect()
}

/// What the app shows of an assessment.
pub(super) struct ViewInputs<'a> {
    pub risk: &'a RiskModel,
    pub content: &'a AssessmentContent,
    pub context: &'a PatientContext,
    pub features: &'a FeatureSet,
    pub clock: &'a Clock,
    pub report: &'a str,
    /// `Type/id` → the reference the assessment's basis gives it.
    pub references: &'a std::collections::BTreeMap<String, String>,
}

impl Pipeline {
    pub(super) fn assessment_view(&self, inputs: &ViewInputs<'_>) -> AssessmentView {
        let (risk, content, clock, report) =
            (inputs.risk, inputs.content, inputs.clock, inputs.report);
        let unit_days = risk.model.manifest.outcome.time_unit.days();
        let tests = self.orders_for_missing(content);
        AssessmentView {
            report: report.to_owned(),
            patient: content.patient.to_string(),
            issued: content.issued.clone(),
            effective: content.effective.clone(),
            model: ModelRef {
                name: content.model.name.clone(),
                version: content.model.version.clone(),
            },
            outcome: Coded {
                code: content.outcome.0.clone(),
                display: content.outcome.1.clone(),
            },
            origin: content.origin.clone(),
            horizons: content
                .horizons
                .iter()
                .map(|h| {
                    HorizonView::new(
                        h.label.clone(),
                        h.time * unit_days,
                        h.probability,
                        h.period.1.clone(),
                    )
                })
                .collect(),
            curve: curve(risk, content.log_hazard_ratio, clock),
            contributions: content
                .contributions
                .iter()
                .map(|(modality, weight, contribution)| ContributionView {
                    modality: modality.clone(),
                    weight: *weight,
                    contribution: *contribution,
                })
                .collect(),
            features: content
                .top_features
                .iter()
                .map(|(f, a)| feature_view(inputs, f, *a))
                .collect(),
            missing: content
                .unfilled
                .iter()
                .map(|u| {
                    let column = u.feature.split('=').next().unwrap_or(&u.feature);
                    MissingView {
                        feature: u.feature.clone(),
                        modality: u.modality.clone(),
                        reason: u.reason.clone(),
                        test: tests.iter().find(|(c, _)| c == column).map(|(_, t)| Coded {
                            code: t.code.clone(),
                            display: t.display.clone().unwrap_or_else(|| t.code.clone()),
                        }),
                    }
                })
                .collect(),
            cautions: content.cautions.clone(),
            outside_training: content.outside_training,
            triage: content.triage.map(|(probability, urgent)| TriageView {
                probability,
                urgent,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_shown_without_trailing_zeros() {
        assert_eq!(trimmed(21.0), "21");
        assert_eq!(trimmed(0.5), "0.5");
        assert_eq!(trimmed(48.125), "48.125");
    }
}
