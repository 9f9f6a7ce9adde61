//! Shadow models: each scores the inputs of every assessment the active model answers, by its
//! own input spec, intended population and time origin, and what it says is kept in
//! `shadow_predictions` for governance only: never filed as FHIR resources, never returned to
//! a clinician or an EHR. A shadow model that cannot answer (outside its population, nothing
//! it takes on record) is kept as a refusal with why, so that its coverage can be compared too.

use std::sync::Arc;

use super::monitoring::InputSnapshot;
use super::risk::{AssessmentError, RiskModel, model_inputs};
use super::risk_clock::horizon_risks;
use super::{Pipeline, PipelineError};
use crate::domain::ResourceId;
use crate::features::{PatientContext, build_features};
use crate::metrics::{self, METRICS};
use crate::store::{ModelInputs, ShadowPrediction};

/// What a shadow model said of one assessment's inputs.
enum ShadowAnswer {
    Scored {
        log_hazard_ratio: f64,
        /// What it was given (JSON of [`InputSnapshot`]).
        inputs: String,
        /// (label, days, probability).
        horizons: Vec<(String, f64, f64)>,
    },
    Refused(String),
}

impl Pipeline {
    /// Scores the assessment filed as `report` with every shadow model, and keeps what each
    /// said; run beside the assessment's answer. A failure is logged.
    pub(super) async fn score_shadows(
        &self,
        report: &ResourceId,
        patient: &ResourceId,
        context: &PatientContext,
        study: Option<&str>,
    ) {
        let registry = self.models();
        for shadow in registry.shadows() {
            let d = &shadow.description;
            let answer = match self.shadow_answer(shadow, patient, context, study).await {
                Ok(answer) => answer,
                Err(e) => ShadowAnswer::Refused(e.to_string()),
            };
            let outcome = if matches!(answer, ShadowAnswer::Scored { .. }) {
                "scored"
            } else {
                "refused"
            };
            METRICS
                .shadow_predictions
                .get_or_create(&metrics::outcome(&d.name, &d.version, outcome))
                .inc();
            let (log_hazard_ratio, horizons, refused) = match answer {
                ShadowAnswer::Scored {
                    log_hazard_ratio,
                    horizons,
                    inputs,
                } => {
                    let kept = ModelInputs {
                        report: report.to_string(),
                        model: d.name.clone(),
                        version: d.version.clone(),
                        role: "shadow".into(),
                        created_ms: 0,
                        content: inputs,
                    };
                    if let Err(e) = self.store.keep_model_inputs(&kept).await {
                        tracing::warn!(model = %d.name, version = %d.version, error = %e, "a shadow model's inputs could not be kept");
                    }
                    (Some(log_hazard_ratio), Some(horizons), None)
                }
                ShadowAnswer::Refused(why) => (None, None, Some(why)),
            };
            let row = ShadowPrediction {
                report: report.to_string(),
                model: d.name.clone(),
                version: d.version.clone(),
                patient: patient.to_string(),
                log_hazard_ratio,
                horizons: horizons.map(|h| {
                    serde_json::Value::Array(
                        h.into_iter()
                            .map(|(label, days, p)| {
                                serde_json::json!({"label": label, "days": days, "probability": p})
                            })
                            .collect(),
                    )
                    .to_string()
                }),
                refused,
                created_ms: 0,
            };
            if let Err(e) = self.store.keep_shadow_prediction(&row).await {
                tracing::warn!(model = %d.name, version = %d.version, error = %e, "a shadow prediction could not be kept");
            }
        }
    }

    async fn shadow_answer(
        &self,
        shadow: &Arc<RiskModel>,
        patient: &ResourceId,
        context: &PatientContext,
        study: Option<&str>,
    ) -> Result<ShadowAnswer, PipelineError> {
        let Some(spec) = shadow.model.manifest.inputs.as_ref() else {
            return Ok(ShadowAnswer::Refused("the model has no input spec".into()));
        };
        let clock = match self
            .assessment_clock(shadow, spec, context, patient, &[])
            .await
        {
            Ok(clock) => clock,
            Err(e) => return Ok(ShadowAnswer::Refused(e.to_string())),
        };
        let mut warnings = Vec::new();
        // A shadow never makes the clinician wait for an encoder: what is encoded is used.
        let (embeddings, used_study) = self
            .assessment_embeddings(spec, context, study, false, clock.as_of().at, &mut warnings)
            .await?;
        let mut features = build_features(spec, context, &embeddings, clock.as_of());
        let inputs = match model_inputs(shadow, spec, &mut features) {
            Ok((inputs, _)) => inputs,
            Err(AssessmentError::NoInputs(why)) => return Ok(ShadowAnswer::Refused(why)),
            Err(e) => return Err(e.into()),
        };
        let model = Arc::clone(shadow);
        let predicted = crate::telemetry::spawn_blocking_with_tracing(move || {
            model.model.predict(&inputs, false)
        })
        .await
        .map_err(PipelineError::Blocking)?
        .map_err(AssessmentError::from)?;
        let Some(prediction) = predicted.into_iter().next() else {
            return Ok(ShadowAnswer::Refused(
                "the model returned no prediction".into(),
            ));
        };
        let every: Vec<usize> = (0..shadow.model.manifest.horizons.len()).collect();
        let unit_days = shadow.model.manifest.outcome.time_unit.days();
        Ok(match horizon_risks(shadow, &prediction, &every, &clock) {
            Ok((horizons, _)) => ShadowAnswer::Scored {
                log_hazard_ratio: prediction.risk,
                inputs: {
                    let mut inputs = InputSnapshot::of(&shadow.model, &features, prediction.risk);
                    if let Some((study, _)) = &used_study {
                        inputs.acquisition = self.acquisition(study).await;
                    }
                    serde_json::to_string(&inputs).unwrap_or_default()
                },
                horizons: horizons
                    .into_iter()
                    .map(|h| (h.label, h.time * unit_days, h.probability))
                    .collect(),
            },
            Err(e) => ShadowAnswer::Refused(e.to_string()),
        })
    }
}
