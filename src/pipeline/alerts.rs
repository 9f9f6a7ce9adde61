//! Alerts: the monitoring's figures against thresholds of the configuration. A model version
//! whose C-index on the assessments paired with outcomes fell below its card's by more than
//! the threshold (discrimination), whose calibration-in-the-large at a horizon is off by more
//! than the threshold (calibration), or one of whose inputs is missing from more than the
//! threshold's share of its assessments (input-missing) raises an alert: logged, shown on
//! `/metrics` (`prognostics_alert`), and filed once as a FHIR DetectedIssue naming the
//! model's Device. Too few paired assessments: no judgement yet.

use serde::Serialize;
use serde_json::{Value, json};

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
}

impl Default for AlertThresholds {
    fn default() -> Self {
        Self {
            min_paired: 100,
            c_index_drop: 0.05,
            calibration_in_the_large: 0.5,
            missing_rate: 0.2,
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
        _ => (
            "model-input-missingness",
            "An input of a model is often missing",
        ),
    }
}

impl Pipeline {
    /// Evaluates the monitoring's figures against the thresholds; files each new alert as a
    /// DetectedIssue; sets the alert gauges to what was raised now.
    pub async fn evaluate_alerts(&self) -> Result<Vec<Alert>, PipelineError> {
        let thresholds = self.alert_thresholds;
        let performance = self.monitor_performance().await?;
        let inputs = self.input_missingness().await?;
        let registry = self.models();
        // (model, version, kind, detail)
        let mut raised: Vec<(String, String, String, String)> = Vec::new();
        for p in performance
            .iter()
            .filter(|p| p.paired >= thresholds.min_paired)
        {
            let card_c = registry
                .find(&p.model, &p.version)
                .and_then(|m| m.model.card_data.as_ref())
                .and_then(|card| card.pointer("/test_metrics/harrell_c"))
                .and_then(Value::as_f64);
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
        for m in inputs
            .iter()
            .filter(|m| m.assessments >= thresholds.min_paired)
        {
            for (input, rate) in &m.missing {
                if rate.rate > thresholds.missing_rate {
                    raised.push((
                        m.model.clone(),
                        m.version.clone(),
                        format!("input-missing:{input}"),
                        format!(
                            "{input} missing from {} of {} assessments ({:.0} %)",
                            rate.count,
                            m.assessments,
                            100.0 * rate.rate
                        ),
                    ));
                }
            }
        }

        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let mut alerts = Vec::new();
        let mut tx = self.store.begin().await?;
        for (model, version, kind, detail) in raised {
            let id = digest_id("alert", &[&model, &version, &kind])
                .unwrap_or_else(|_| crate::domain::ResourceId::generate());
            if tx
                .current_version(ResourceType::DetectedIssue, &id)
                .await?
                .is_none()
            {
                let device = registry
                    .find(&model, &version)
                    .map(|m| format!("Device/{}", m.model.description.device_id));
                let (code, display) = issue_code(&kind);
                let mut issue = json!({
                    "resourceType": "DetectedIssue",
                    "status": "preliminary",
                    "code": {"coding": [{"system": CODE_SYSTEM, "code": code, "display": display}]},
                    "severity": "moderate",
                    "identifiedDateTime": now,
                    "detail": format!("{model} {version}: {detail}"),
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
            alerts.push(Alert {
                model,
                version,
                kind,
                detail,
                detected_issue: format!("DetectedIssue/{id}"),
            });
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
