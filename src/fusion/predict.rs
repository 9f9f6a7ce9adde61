//! Predictions of a loaded model: the log hazard ratio, the probability of the event by each
//! horizon (Breslow baseline, then the horizon's calibration, kept non-decreasing over the
//! horizons), the triage probability, and why: each modality's weight in the fusion and its
//! contribution (the risk with it minus the risk re-predicted without it), which modalities
//! were missing, and the features that moved the risk most (integrated gradients from "all
//! unknown" to the patient's values).

use candle_core::{Device, Tensor, Var};
use serde::Serialize;

use super::layout::{Inputs, ModalityKind};
use super::network::{Batch, Forward};
use super::package::Model;
use crate::features::Modality;

const INTEGRATION_STEPS: usize = 32;
const TOP_FEATURES: usize = 5;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HorizonProbability {
    pub time: f64,
    pub label: String,
    /// Probability of the event by this horizon.
    pub event_probability: f64,
    pub survival: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModalityContribution {
    pub modality: Modality,
    pub present: bool,
    /// Its weight in the fusion (0 when absent).
    pub weight: f64,
    /// Risk with the modality minus risk without it; none when it is absent or the only one.
    pub contribution: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FeatureAttribution {
    pub modality: Modality,
    /// The feature, or for an embedding the modality's name.
    pub feature: String,
    /// Share of the log hazard ratio attributed to it.
    pub attribution: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prediction {
    /// Log hazard ratio (the Cox model's linear predictor).
    pub risk: f64,
    pub horizons: Vec<HorizonProbability>,
    pub triage_probability: Option<f64>,
    pub urgent: Option<bool>,
    pub modalities: Vec<ModalityContribution>,
    pub missing: Vec<Modality>,
    pub top_features: Vec<FeatureAttribution>,
}

#[derive(Debug, thiserror::Error)]
pub enum PredictError {
    #[error("row {0} has none of the model's modalities: nothing to predict from")]
    NoInputs(usize),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

impl Model {
    pub(super) fn forward(&self, inputs: &Inputs) -> candle_core::Result<Forward> {
        let batch = Batch::new(&self.manifest.layout, inputs, &Device::Cpu)?;
        self.forward_batch(&batch)
    }

    /// The ensemble's outputs: the members' averaged.
    fn forward_batch(&self, batch: &Batch) -> candle_core::Result<Forward> {
        let outs = self
            .members
            .iter()
            .map(|m| m.forward(batch, None))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let scale = 1.0 / outs.len().max(1) as f64;
        let mean = |tensors: Vec<&Tensor>| -> candle_core::Result<Tensor> {
            Tensor::stack(&tensors, 0)?.sum(0)? * scale
        };
        let triage_logit = if outs.iter().all(|o| o.triage_logit.is_some()) && !outs.is_empty() {
            Some(mean(
                outs.iter()
                    .filter_map(|o| o.triage_logit.as_ref())
                    .collect(),
            )?)
        } else {
            None
        };
        Ok(Forward {
            risk: mean(outs.iter().map(|o| &o.risk).collect())?,
            triage_logit,
            attention: mean(outs.iter().map(|o| &o.attention).collect())?,
        })
    }

    /// The log hazard ratio of every row (rows without any modality get NaN).
    pub fn risk(&self, inputs: &Inputs) -> Result<Vec<f64>, PredictError> {
        let risk = self.forward(inputs)?.risk.to_vec1::<f32>()?;
        Ok(risk
            .into_iter()
            .enumerate()
            .map(|(row, r)| {
                if inputs.any_present(row) {
                    f64::from(r)
                } else {
                    f64::NAN
                }
            })
            .collect())
    }

    /// Calibrated event probability by each horizon for a risk, non-decreasing over horizons.
    pub fn event_probabilities(&self, risk: f64) -> Vec<f64> {
        let mut floor: f64 = 0.0;
        self.manifest
            .horizons
            .iter()
            .map(|h| {
                let p = 1.0 - self.manifest.baseline.survival(risk, h.time);
                let p = h.calibration.map_or(p, |c| c.apply(p));
                floor = floor.max(p);
                floor
            })
            .collect()
    }

    /// The probability of the event within `horizon` of a moment `elapsed` after the time
    /// origin, given none by then: 1 − S(elapsed + horizon) / S(elapsed), from the Breslow
    /// survival (the horizons' calibrations were fitted from the origin and do not apply).
    /// None when `elapsed + horizon` lies past the last event time of the training data: the
    /// model knows nothing of the hazard there.
    pub fn conditional_event_probability(
        &self,
        risk: f64,
        elapsed: f64,
        horizon: f64,
    ) -> Option<f64> {
        let baseline = &self.manifest.baseline;
        if elapsed + horizon > self.follow_up_limit() {
            return None;
        }
        let before = baseline.survival(risk, elapsed);
        if before <= 0.0 {
            return None;
        }
        Some((1.0 - baseline.survival(risk, elapsed + horizon) / before).clamp(0.0, 1.0))
    }

    /// The last event time of the training data, in the model's time unit: the model's
    /// survival curve says nothing beyond it.
    pub fn follow_up_limit(&self) -> f64 {
        self.manifest.baseline.times.last().copied().unwrap_or(0.0)
    }

    /// Calibrated triage probability from the head's logit.
    fn triage_probability(&self, logit: f64) -> f64 {
        let p = 1.0 / (1.0 + (-logit).exp());
        match self.manifest.triage.as_ref().and_then(|t| t.calibration) {
            Some(c) => c.apply(p),
            None => p,
        }
    }

    /// Predictions for every row; with `explain`, modality contributions and top features.
    pub fn predict(&self, inputs: &Inputs, explain: bool) -> Result<Vec<Prediction>, PredictError> {
        if let Some(row) = (0..inputs.rows).find(|&r| !inputs.any_present(r)) {
            return Err(PredictError::NoInputs(row));
        }
        let full = self.forward(inputs)?;
        let risk = full.risk.to_vec1::<f32>()?;
        let attention = full.attention.to_vec2::<f32>()?;
        let triage = match &full.triage_logit {
            Some(t) => Some(t.to_vec1::<f32>()?),
            None => None,
        };
        let layout = &self.manifest.layout;
        // Risk re-predicted without each modality, for the rows that keep another one.
        let without: Vec<Vec<f32>> = if explain {
            (0..layout.modalities.len())
                .map(|m| self.forward(&inputs.without(m))?.risk.to_vec1::<f32>())
                .collect::<candle_core::Result<_>>()?
        } else {
            Vec::new()
        };
        let mut predictions = Vec::with_capacity(inputs.rows);
        for row in 0..inputs.rows {
            let r = f64::from(risk[row]);
            let horizons = self
                .manifest
                .horizons
                .iter()
                .zip(self.event_probabilities(r))
                .map(|(h, p)| HorizonProbability {
                    time: h.time,
                    label: h.label.clone(),
                    event_probability: p,
                    survival: 1.0 - p,
                })
                .collect();
            let present_count = inputs.modalities.iter().filter(|m| m.present[row]).count();
            let modalities = layout
                .modalities
                .iter()
                .enumerate()
                .map(|(m, layout)| {
                    let present = inputs.modalities[m].present[row];
                    ModalityContribution {
                        modality: layout.modality,
                        present,
                        weight: f64::from(attention[row][m]),
                        contribution: (explain && present && present_count > 1)
                            .then(|| r - f64::from(without[m][row])),
                    }
                })
                .collect();
            let missing = layout
                .modalities
                .iter()
                .zip(&inputs.modalities)
                .filter(|(_, i)| !i.present[row])
                .map(|(l, _)| l.modality)
                .collect();
            let triage_probability = triage
                .as_ref()
                .map(|t| self.triage_probability(f64::from(t[row])));
            predictions.push(Prediction {
                risk: r,
                horizons,
                urgent: triage_probability
                    .zip(self.manifest.triage.as_ref())
                    .map(|(p, t)| p >= t.threshold),
                triage_probability,
                modalities,
                missing,
                top_features: if explain {
                    self.integrated_gradients(inputs, row)?
                } else {
                    Vec::new()
                },
            });
        }
        Ok(predictions)
    }

    /// Integrated gradients of the risk for one row, from every input at 0 ("unknown") to
    /// the row's inputs, by the midpoint rule; a tabular feature's share is its value's and
    /// its mask's together, an embedding's the sum over its components.
    fn integrated_gradients(
        &self,
        inputs: &Inputs,
        row: usize,
    ) -> candle_core::Result<Vec<FeatureAttribution>> {
        let device = Device::Cpu;
        let layout = &self.manifest.layout;
        let one = Batch::new(layout, &inputs.select(&[row]), &device)?;
        let alphas: Vec<f32> = (0..INTEGRATION_STEPS)
            .map(|k| (k as f32 + 0.5) / INTEGRATION_STEPS as f32)
            .collect();
        let alphas = Tensor::from_vec(alphas, (INTEGRATION_STEPS, 1), &device)?;
        let scaled: Vec<Var> = one
            .inputs()
            .iter()
            .map(|x| Var::from_tensor(&alphas.broadcast_mul(x)?))
            .collect::<candle_core::Result<_>>()?;
        let present = one.present().repeat((INTEGRATION_STEPS, 1))?;
        let batch = Batch::from_parts(
            scaled.iter().map(|v| v.as_tensor().clone()).collect(),
            present,
        );
        let out = self.forward_batch(&batch)?;
        let grads = out.risk.sum_all()?.backward()?;
        let mut attributions = Vec::new();
        for ((m, var), x) in layout.modalities.iter().zip(&scaled).zip(one.inputs()) {
            let Some(grad) = grads.get(var.as_tensor()) else {
                continue;
            };
            let mean_grad = grad.mean_keepdim(0)?;
            let ig = (mean_grad * x)?.squeeze(0)?.to_vec1::<f32>()?;
            match m.kind {
                ModalityKind::Tabular => {
                    let d = m.features.len();
                    for (j, feature) in m.features.iter().enumerate() {
                        let share = f64::from(ig[j] + ig[d + j]);
                        if share != 0.0 {
                            attributions.push(FeatureAttribution {
                                modality: m.modality,
                                feature: feature.name.clone(),
                                attribution: share,
                            });
                        }
                    }
                }
                ModalityKind::Embedding => {
                    let share: f64 = ig.iter().map(|&v| f64::from(v)).sum();
                    if share != 0.0 {
                        attributions.push(FeatureAttribution {
                            modality: m.modality,
                            feature: m.modality.to_string(),
                            attribution: share,
                        });
                    }
                }
            }
        }
        attributions.sort_by(|a, b| b.attribution.abs().total_cmp(&a.attribution.abs()));
        attributions.truncate(TOP_FEATURES);
        Ok(attributions)
    }
}
