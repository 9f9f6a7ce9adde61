//! Alerts: the monitoring's figures against thresholds of the configuration. A model version
//! whose C-index on the assessments paired with outcomes fell below its card's by more than
//! the threshold (discrimination), whose calibration-in-the-large at a horizon is off by more
//! than the threshold (calibration), or one of whose inputs is missing from more than the
//! threshold's share of its assessments (input-missing), or whose C-index differs between the
//! groups of a subgroup by more than the threshold (subgroup-gap), or whose outputs clinicians
//! accept less often than the threshold (acceptance) raises an alert: logged, shown on
//! `/metrics` (`prognostics_alert`), and filed once as a FHIR DetectedIssue naming the
//! model's Device. Too few paired assessments: no judgement yet.

use serde::Serialize;
use serde_json::{Value, json};

use super::monitoring::{ClinicianActions, InputDrift, ModelPerformance};
use super::{Pipeline, PipelineError, digest_id};
use crate::domain::ResourceType;
use crate::metrics::{AlertLabels, METRICS};
use crate::report::risk::CODE_SYSTEM;

/// When an alert is raised (`[monitoring]` in the configuration).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AlertThresholds {
    pub min_paired: usize,
    pub c_index_drop: f64,
    pub calibration_in_the_large: f64,
    pub missing_rate: f64,
    pub subgroup_gap: f64,
    pub window_days: u32,
    pub psi: f64,
    pub embedding_shift: f64,
    pub acceptance_rate: f64,
    pub min_decisions: usize,
}

impl Default for AlertThresholds {
    fn default() -> Self {
        Self {
            min_paired: 100,
            c_index_drop: 0.05,
            calibration_in_the_large: 0.5,
            missing_rate: 0.2,
            subgroup_gap: 0.1,
            window_days: 90,
            psi: 0.25,
            embedding_shift: 0.5,
            acceptance_rate: 0.5,
            min_decisions: 20,
        }
    }
}

/// An alert raised.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Alert {
    pub model: String,
    pub version: String,
    pub kind: String,
    pub detail: String,
    /// The DetectedIssue it is filed as.
    pub detected_issue: String,
}

fn issue_code(kind: &str) -> (&'static str, &'static str) {
    match kind {
        "discrimination" => (
            "model-discrimination-drift",
            "A model discriminates less well than it was validated to",
        ),
        "calibration" => (
            "model-calibration-drift",
            "A model's predicted risks no longer match the observed ones",
        ),
        kind if kind.starts_with("subgroup-gap") => (
            "model-subgroup-gap",
            "A model works less well for some patients than for others",
        ),
        kind if kind.starts_with("input-drift") => (
            "model-input-drift",
            "An input of a model is distributed unlike in its training patients",
        ),
        kind if kind.starts_with("embedding-drift") => (
            "model-embedding-drift",
            "A model's images or notes look unlike those it learnt from",
        ),
        "output-drift" => (
            "model-output-drift",
            "A model's predicted risks are distributed unlike in its training patients",
        ),
        kind if kind.starts_with("acquisition-change") => (
            "model-acquisition-change",
            "The images a model meets are acquired unlike before",
        ),
        "acceptance" => (
            "model-low-acceptance",
            "Clinicians often override or disagree with a model's output",
        ),
        _ => (
            "model-input-missingness",
            "An input of a model is often missing",
        ),
    }
}

/// An alert to raise: (model, version, kind, what crossed the threshold).
pub type Raised = (String, String, String, String);

/// The alerts `performance` and `drift` raise at `thresholds`; `card_c` is the Harrell's C a
/// model's card reports on its held-out patients.
pub fn judge(
    performance: &[ModelPerformance],
    drift: &[InputDrift],
    actions: &[ClinicianActions],
    thresholds: &AlertThresholds,
    card_c: impl Fn(&str, &str) -> Option<f64>,
) -> Vec<Raised> {
    let mut raised: Vec<(String, String, String, String)> = Vec::new();
    for p in performance
        .iter()
        .filter(|p| p.paired >= thresholds.min_paired)
    {
        let card_c = card_c(&p.model, &p.version);
        if let (Some(c), Some(card_c)) = (p.harrell_c, card_c)
            && card_c - c > thresholds.c_index_drop
        {
            raised.push((
                p.model.clone(),
                p.version.clone(),
                "discrimination".into(),
                format!(
                    "Harrell's C {c:.3} on {} assessments paired with outcomes ({}), against {card_c:.3} on the card's held-out patients",
                    p.paired, p.role
                ),
            ));
        }
        for (column, gap) in &p.gaps {
            if *gap > thresholds.subgroup_gap {
                let groups: Vec<String> = p
                    .subgroups
                    .iter()
                    .filter(|g| &g.column == column)
                    .filter_map(|g| Some(format!("{} {:.3}", g.group, g.harrell_c?)))
                    .collect();
                raised.push((
                    p.model.clone(),
                    p.version.clone(),
                    format!("subgroup-gap:{column}"),
                    format!(
                        "Harrell's C differs by {gap:.3} between {column} groups ({}): {}",
                        p.role,
                        groups.join(", ")
                    ),
                ));
            }
        }
        if let Some(h) = p.horizons.iter().find(|h| {
            h.calibration_in_the_large
                .is_some_and(|citl| citl.abs() > thresholds.calibration_in_the_large)
        }) {
            raised.push((
                p.model.clone(),
                p.version.clone(),
                "calibration".into(),
                format!(
                    "calibration-in-the-large {:.2} at {} ({}): expected {:.1} %, observed {:.1} %",
                    h.calibration_in_the_large.unwrap_or_default(),
                    h.label,
                    p.role,
                    100.0 * h.expected,
                    100.0 * h.observed
                ),
            ));
        }
    }
    for d in drift
        .iter()
        .filter(|d| d.assessments >= thresholds.min_paired)
    {
        let mut raise = |kind: String, detail: String| {
            raised.push((d.model.clone(), d.version.clone(), kind, detail));
        };
        for c in &d.inputs {
            let training = c.training_missing_rate.unwrap_or(0.0);
            if c.missing_rate - training > thresholds.missing_rate {
                raise(
                    format!("input-missing:{}", c.input),
                    format!(
                        "{} missing from {:.0} % of {} assessments since {} ({}), against {:.0} % of the training patients",
                        c.input,
                        100.0 * c.missing_rate,
                        d.assessments,
                        d.since,
                        d.role,
                        100.0 * training
                    ),
                );
            }
            if let Some(psi) = c.psi.filter(|psi| *psi > thresholds.psi) {
                raise(
                    format!("input-drift:{}", c.input),
                    format!(
                        "{}: population stability index {psi:.2} against the training patients, over {} assessments since {} ({})",
                        c.input, d.assessments, d.since, d.role
                    ),
                );
            }
        }
        for e in &d.embeddings {
            if e.shift.mean_shift > thresholds.embedding_shift {
                raise(
                    format!("embedding-drift:{}", e.modality),
                    format!(
                        "{} embeddings moved {:.2} training standard deviations from the training patients' (spread {:.2}), over {} assessments since {} ({})",
                        e.modality,
                        e.shift.mean_shift,
                        e.shift.spread,
                        e.shift.rows,
                        d.since,
                        d.role
                    ),
                );
            }
        }
        for (field, change) in &d.acquisition_change {
            if change.psi > thresholds.psi && change.before >= thresholds.min_paired {
                raise(
                    format!("acquisition-change:{field}"),
                    format!(
                        "imaging {field}: population stability index {:.2} of the {} studies since {} ({}) against the {} before",
                        change.psi, change.recent, d.since, d.role, change.before
                    ),
                );
            }
        }
        if let Some(psi) = d.output_psi.filter(|psi| *psi > thresholds.psi) {
            raise(
                "output-drift".into(),
                format!(
                    "predicted risks: population stability index {psi:.2} against the training patients', over {} assessments since {} ({})",
                    d.assessments, d.since, d.role
                ),
            );
        }
    }
    for a in actions {
        let decided =
            a.cards_accepted + a.cards_overridden + a.reports_signed + a.reports_disagreed;
        if decided < thresholds.min_decisions {
            continue;
        }
        if let Some(rate) = a
            .acceptance_rate
            .filter(|rate| *rate < thresholds.acceptance_rate)
        {
            let reasons: Vec<String> = a
                .override_reasons
                .iter()
                .chain(&a.disagree_reasons)
                .map(|(reason, n)| format!("{reason} {n}"))
                .collect();
            raised.push((
                a.model.clone(),
                a.version.clone(),
                "acceptance".into(),
                format!(
                    "clinicians accepted {:.0} % of {decided} decisions ({} cards overridden, {} reports disagreed with{})",
                    100.0 * rate,
                    a.cards_overridden,
                    a.reports_disagreed,
                    if reasons.is_empty() {
                        String::new()
                    } else {
                        format!("; reasons: {}", reasons.join(", "))
                    }
                ),
            ));
        }
    }
    raised
}

/// The DetectedIssue an alert is filed as: one per model version and kind.
fn alert_id(model: &str, version: &str, kind: &str) -> crate::domain::ResourceId {
    digest_id("alert", &[model, version, kind])
        .unwrap_or_else(|_| crate::domain::ResourceId::generate())
}

impl Pipeline {
    /// The alerts `performance` and `drift` raise at the configured thresholds, each with the
    /// DetectedIssue it is (or would be) filed as; nothing is filed.
    pub fn alerts_of(
        &self,
        performance: &[ModelPerformance],
        drift: &[InputDrift],
        actions: &[ClinicianActions],
    ) -> Vec<Alert> {
        let registry = self.models();
        judge(
            performance,
            drift,
            actions,
            &self.alert_thresholds,
            |model, version| {
                registry
                    .find(model, version)
                    .and_then(|m| m.model.card_data.as_ref())
                    .and_then(|card| card.pointer("/test_metrics/harrell_c"))
                    .and_then(Value::as_f64)
            },
        )
        .into_iter()
        .map(|(model, version, kind, detail)| {
            let id = alert_id(&model, &version, &kind);
            Alert {
                model,
                version,
                kind,
                detail,
                detected_issue: format!("DetectedIssue/{id}"),
            }
        })
        .collect()
    }

    /// Evaluates the monitoring's figures against the thresholds; files each new alert as a
    /// DetectedIssue; sets the alert gauges to what was raised now.
    pub async fn evaluate_alerts(&self) -> Result<Vec<Alert>, PipelineError> {
        let performance = self.monitor_performance().await?;
        let drift = self.input_drift(self.alert_thresholds.window_days).await?;
        let actions = self.clinician_actions().await?;
        let raised = self.alerts_of(&performance, &drift, &actions);
        let registry = self.models();
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let mut alerts = Vec::new();
        let mut tx = self.store.begin().await?;
        for alert in raised {
            let (model, version, kind) = (&alert.model, &alert.version, &alert.kind);
            let id = alert_id(model, version, kind);
            if tx
                .current_version(ResourceType::DetectedIssue, &id)
                .await?
                .is_none()
            {
                let device = registry
                    .find(model, version)
                    .map(|m| format!("Device/{}", m.model.description.device_id));
                let (code, display) = issue_code(kind);
                let mut issue = json!({
                    "resourceType": "DetectedIssue",
                    "status": "preliminary",
                    "code": {"coding": [{"system": CODE_SYSTEM, "code": code, "display": display}]},
                    "severity": "moderate",
                    "identifiedDateTime": now,
                    "detail": format!("{model} {version}: {}", alert.detail),
                });
                if let Some(device) = device {
                    issue["implicated"] = json!([{"reference": device}]);
                }
                if let Value::Object(map) = issue {
                    tx.write(ResourceType::DetectedIssue, &id, map, None)
                        .await?;
                }
                tracing::warn!(model = %model, version = %version, kind = %kind, "monitoring alert raised");
            }
            alerts.push(alert);
        }
        tx.commit().await?;
        METRICS.alerts.clear();
        for a in &alerts {
            METRICS
                .alerts
                .get_or_create(&AlertLabels {
                    model: a.model.clone(),
                    version: a.version.clone(),
                    kind: a.kind.clone(),
                })
                .set(1);
        }
        Ok(alerts)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::fusion::EmbeddingShift;
    use crate::pipeline::monitoring::{ColumnDrift, EmbeddingDrift, SubgroupPerformance};

    fn performance(paired: usize, c: f64, gaps: &[(&str, f64)]) -> ModelPerformance {
        ModelPerformance {
            model: "m".into(),
            version: "1".into(),
            role: "active",
            assessments: paired,
            paired,
            events: paired / 2,
            harrell_c: Some(c),
            uno_c: None,
            horizons: Vec::new(),
            unusable: BTreeMap::new(),
            outcome_definition: "own",
            subgroups: vec![
                SubgroupPerformance {
                    column: "age".into(),
                    group: "< 50".into(),
                    paired: paired / 2,
                    events: 1,
                    harrell_c: Some(0.8),
                },
                SubgroupPerformance {
                    column: "age".into(),
                    group: "≥ 75".into(),
                    paired: paired / 2,
                    events: 1,
                    harrell_c: Some(0.6),
                },
            ],
            gaps: gaps.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
            windows: Vec::new(),
        }
    }

    fn drift(assessments: usize) -> InputDrift {
        InputDrift {
            model: "m".into(),
            version: "1".into(),
            role: "active".into(),
            assessments,
            since: "2026-01-01T00:00:00Z".into(),
            inputs: vec![ColumnDrift {
                input: "tsize".into(),
                psi: Some(0.05),
                missing_rate: 0.1,
                training_missing_rate: Some(0.0),
            }],
            embeddings: vec![EmbeddingDrift {
                modality: "imaging".into(),
                shift: EmbeddingShift {
                    rows: assessments,
                    mean_shift: 0.1,
                    spread: 1.0,
                },
            }],
            output_psi: Some(0.02),
            output_shares: Vec::new(),
            acquisition: BTreeMap::new(),
            acquisition_change: BTreeMap::new(),
        }
    }

    fn kinds(raised: &[Raised]) -> Vec<&str> {
        raised.iter().map(|r| r.2.as_str()).collect()
    }

    #[test]
    fn each_threshold_raises_its_own_alert_and_no_other() {
        let thresholds = AlertThresholds {
            min_paired: 10,
            ..AlertThresholds::default()
        };
        let card = |_: &str, _: &str| Some(0.74);
        // Within every threshold: nothing.
        let fine = [performance(50, 0.72, &[("age", 0.05)])];
        assert!(judge(&fine, &[], &[], &thresholds, card).is_empty());
        // A subgroup apart by more than 0.1: that alert alone, naming the groups.
        let apart = [performance(50, 0.72, &[("age", 0.2)])];
        let raised = judge(&apart, &[], &[], &thresholds, card);
        assert_eq!(kinds(&raised), ["subgroup-gap:age"]);
        assert!(raised[0].3.contains("< 50 0.800"), "{}", raised[0].3);
        // Discrimination down from the card's.
        let worse = [performance(50, 0.6, &[])];
        assert_eq!(
            kinds(&judge(&worse, &[], &[], &thresholds, card)),
            ["discrimination"]
        );
        // Too few paired: not judged.
        let few = [performance(5, 0.5, &[("age", 0.5)])];
        assert!(judge(&few, &[], &[], &thresholds, card).is_empty());
        // Drift: an input missing more often than in training, an input and the risk
        // distributed otherwise, an embedding moved; each its own alert.
        let mut drifted = drift(40);
        assert!(judge(&fine, &[drifted.clone()], &[], &thresholds, card).is_empty());
        drifted.inputs[0].missing_rate = 0.5;
        assert_eq!(
            kinds(&judge(&fine, &[drifted.clone()], &[], &thresholds, card)),
            ["input-missing:tsize"]
        );
        drifted.inputs[0].missing_rate = 0.0;
        drifted.inputs[0].psi = Some(0.4);
        drifted.output_psi = Some(0.3);
        drifted.embeddings[0].shift.mean_shift = 0.8;
        assert_eq!(
            kinds(&judge(&fine, &[drifted.clone()], &[], &thresholds, card)),
            [
                "input-drift:tsize",
                "embedding-drift:imaging",
                "output-drift"
            ]
        );
        // The scanners' mix changed against the studies before the window.
        let mut rescanned = drift(40);
        rescanned.acquisition_change.insert(
            "model".into(),
            crate::pipeline::monitoring::AcquisitionChange {
                psi: 0.9,
                before: 30,
                recent: 40,
            },
        );
        assert_eq!(
            kinds(&judge(&fine, &[rescanned.clone()], &[], &thresholds, card)),
            ["acquisition-change:model"]
        );
        rescanned
            .acquisition_change
            .get_mut("model")
            .unwrap()
            .before = 5;
        assert!(judge(&fine, &[rescanned], &[], &thresholds, card).is_empty());
        // Too few recent assessments: not judged.
        let mut few = drifted;
        few.assessments = 5;
        assert!(judge(&fine, &[few], &[], &thresholds, card).is_empty());
        // What clinicians do: 8 of 30 decisions accepted is below half; 30 % of 10 is too few
        // decisions to judge.
        let mut actions = ClinicianActions {
            model: "m".into(),
            version: "1".into(),
            cards_accepted: 5,
            cards_overridden: 12,
            override_reasons: BTreeMap::from([("override-inputs-wrong".into(), 12)]),
            reports_signed: 3,
            reports_disagreed: 10,
            disagree_reasons: BTreeMap::new(),
            acceptance_rate: Some(8.0 / 30.0),
        };
        let raised = judge(
            &fine,
            &[],
            std::slice::from_ref(&actions),
            &thresholds,
            card,
        );
        assert_eq!(kinds(&raised), ["acceptance"]);
        assert!(
            raised[0].3.contains("override-inputs-wrong 12"),
            "{}",
            raised[0].3
        );
        actions.cards_overridden = 2;
        actions.reports_disagreed = 0;
        actions.reports_signed = 0;
        actions.acceptance_rate = Some(5.0 / 7.0);
        assert!(judge(&fine, &[], &[actions.clone()], &thresholds, card).is_empty());
        actions.acceptance_rate = Some(0.3);
        actions.cards_accepted = 3;
        actions.cards_overridden = 7;
        assert!(judge(&fine, &[], &[actions], &thresholds, card).is_empty());
    }
}
