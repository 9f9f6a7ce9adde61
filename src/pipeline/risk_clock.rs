//! Who an assessment may be made for and from when its risk counts: the model's intended
//! population checked on the patient's record (a refusal is audited and nothing is filed as a
//! risk), the features built as of the index date, and each horizon's probability made
//! conditional on the patient having been event-free from the index date until now.

use chrono::{DateTime, Duration, Utc};

use super::risk::{AssessmentError, RiskModel};
use super::{Pipeline, PipelineError};
use crate::domain::{AuditAction, AuditOutcome, AuditRecord, ResourceId, TimeUnit};
use crate::features::population::{Eligible, Ineligible};
use crate::features::{AsOf, InputSpec, PatientContext};
use crate::fusion::Prediction;
use crate::report::risk::HorizonRisk;

/// Less than this after the index date (in days), the patient is at the origin: the
/// calibrated probabilities apply as they are.
const AT_ORIGIN_DAYS: f64 = 1.0;

/// From when an assessment counts.
#[derive(Debug, Clone)]
pub(super) struct Clock {
    pub now: DateTime<Utc>,
    /// None for a model without a time origin: it predicts from now.
    pub eligible: Option<Eligible>,
}

impl Clock {
    /// What the features describe: the patient at the index date (facts recorded within the
    /// index window, and not after now), or now.
    pub fn as_of(&self) -> AsOf {
        match &self.eligible {
            Some(e) => AsOf {
                at: e.index.min(self.now),
                until: e.window_end.min(self.now),
            },
            None => self.now.into(),
        }
    }

    /// Days from the index date to now (0 without one).
    pub fn elapsed_days(&self) -> f64 {
        self.eligible.as_ref().map_or(0.0, |e| {
            ((self.now - e.index).num_seconds() as f64 / 86_400.0).max(0.0)
        })
    }

    /// The origin in words, for the rationale and the conclusion.
    pub fn describe(&self) -> Option<String> {
        let e = self.eligible.as_ref()?;
        let date = e.index.format("%Y-%m-%d");
        let elapsed = self.elapsed_days();
        Some(if elapsed < AT_ORIGIN_DAYS {
            format!(
                "Counted from the date of {} ({date}, {}).",
                e.origin.words(),
                e.source
            )
        } else {
            format!(
                "Counted from the date of {} ({date}, {}); event-free for {:.1} years since, \
                 each probability is of the event within its horizon from {}, given none so far \
                 (from the model's survival curve: its calibration was fitted at the origin only).",
                e.origin.words(),
                e.source,
                elapsed / crate::domain::DAYS_PER_YEAR,
                self.now.format("%Y-%m-%d")
            )
        })
    }
}

impl Pipeline {
    /// The clock of an assessment; a patient outside the model's population is refused, with
    /// every unmet criterion, and the refusal audited.
    pub(super) async fn assessment_clock(
        &self,
        risk: &RiskModel,
        spec: &InputSpec,
        context: &PatientContext,
        patient: &ResourceId,
        record_warnings: &[String],
    ) -> Result<Clock, PipelineError> {
        let now = Utc::now();
        let Some(population) = &spec.population else {
            return Ok(Clock {
                now,
                eligible: None,
            });
        };
        match population.evaluate(context, now) {
            Ok(eligible) => Ok(Clock {
                now,
                eligible: Some(eligible),
            }),
            Err(Ineligible { reasons }) => {
                let unmet = reasons.len();
                let error = AssessmentError::OutsidePopulation {
                    reasons,
                    record_warnings: record_warnings.to_vec(),
                };
                self.audit_refusal(risk, patient, &error.to_string(), now)
                    .await?;
                tracing::info!(
                    patient = %patient,
                    unmet,
                    model = %risk.description.name,
                    "risk assessment refused: outside the model's population"
                );
                Err(error.into())
            }
        }
    }

    /// Records a refused `$risk-assessment` in the audit trail: the patient, the model's
    /// Device, and every unmet criterion.
    async fn audit_refusal(
        &self,
        risk: &RiskModel,
        patient: &ResourceId,
        why: &str,
        now: DateTime<Utc>,
    ) -> Result<(), PipelineError> {
        let mut record = AuditRecord::new("rest", "risk-assessment", AuditAction::Execute);
        record.recorded = now;
        record.outcome = AuditOutcome::MinorFailure;
        record.outcome_text = Some(why.to_owned());
        record.patients = vec![patient.as_ref().to_owned()];
        record.entity = Some(format!("Device/{}", risk.description.device_id));
        self.audit(record).await;
        Ok(())
    }
}

/// The probability of each selected horizon from now: as predicted at the origin, or
/// conditional on no event since it. A horizon past the model's follow-up is left out with a
/// caution; when every one is, the assessment is refused.
pub(super) fn horizon_risks(
    risk: &RiskModel,
    prediction: &Prediction,
    selected: &[usize],
    clock: &Clock,
) -> Result<(Vec<HorizonRisk>, Vec<String>), AssessmentError> {
    let unit: TimeUnit = risk.model.manifest.outcome.time_unit;
    let elapsed_days = clock.elapsed_days();
    let elapsed = elapsed_days / unit.days();
    let mut out = Vec::new();
    let mut cautions = Vec::new();
    for &at in selected {
        let h = &prediction.horizons[at];
        let probability = if elapsed_days < AT_ORIGIN_DAYS {
            Some(h.event_probability)
        } else {
            risk.model
                .conditional_event_probability(prediction.risk, elapsed, h.time)
        };
        let Some(probability) = probability else {
            cautions.push(format!(
                "no probability by {}: {:.1} years after the origin lies past the model's \
                 follow-up ({:.1} years)",
                h.label,
                (elapsed + h.time) * unit.days() / crate::domain::DAYS_PER_YEAR,
                risk.model.follow_up_limit() * unit.days() / crate::domain::DAYS_PER_YEAR
            ));
            continue;
        };
        let end = clock.now + Duration::seconds((h.time * unit.days() * 86_400.0) as i64);
        out.push(HorizonRisk {
            label: h.label.clone(),
            time: h.time,
            unit: unit.ucum(),
            probability,
            period: (
                clock.now.format("%Y-%m-%d").to_string(),
                end.format("%Y-%m-%d").to_string(),
            ),
        });
    }
    if out.is_empty() {
        return Err(AssessmentError::BeyondFollowUp { reasons: cautions });
    }
    Ok((out, cautions))
}
