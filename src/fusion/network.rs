//! The fusion network (candle-nn): one projection per modality into a shared space, a gate
//! that weighs the modalities a patient has (a softmax over present modalities only, so an
//! absent one contributes nothing and the rest fill its place), and heads on the fused
//! representation: the log hazard ratio for the Cox survival model and, when the model is
//! trained for it, the logit of an urgent finding.
//!
//! Training regularises with dropout on the hidden layers and modality dropout: each
//! modality a patient has is hidden with some probability (never all of them), so the model
//! learns to predict from any subset it may meet in the clinic.

use candle_core::{D, DType, Device, Module, Tensor};
use candle_nn::{Linear, VarBuilder, VarMap, linear};
use serde::{Deserialize, Serialize};

use super::layout::{FeatureLayout, Inputs, ModalityKind};
use super::rng::Rng;

/// The network's shape, stored in the bundle's manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Architecture {
    /// Width of the shared space and of the heads' hidden layer.
    pub hidden: usize,
    /// Whether the network has a triage head.
    pub triage: bool,
    /// Networks in the ensemble (their outputs averaged); each under `member.<k>.`.
    #[serde(default = "Architecture::one")]
    pub members: usize,
}

impl Architecture {
    fn one() -> usize {
        1
    }
}

/// Inputs as tensors: per modality `(n, input width)`, and presence `(n, modalities)`.
pub struct Batch {
    rows: usize,
    inputs: Vec<Tensor>,
    present: Tensor,
}

impl Batch {
    pub fn new(
        layout: &FeatureLayout,
        inputs: &Inputs,
        device: &Device,
    ) -> candle_core::Result<Self> {
        let n = inputs.rows;
        let mut tensors = Vec::with_capacity(layout.modalities.len());
        let mut present = vec![0f32; n * layout.modalities.len()];
        let count = layout.modalities.len();
        for (m, (modality, values)) in layout.modalities.iter().zip(&inputs.modalities).enumerate()
        {
            let width = modality.features.len();
            let data: Vec<f32> = match modality.kind {
                ModalityKind::Tabular => {
                    let mut data = Vec::with_capacity(n * 2 * width);
                    for row in 0..n {
                        let span = row * width..(row + 1) * width;
                        data.extend(
                            values.values[span.clone()]
                                .iter()
                                .zip(&values.mask[span.clone()])
                                .map(|(v, k)| v * k),
                        );
                        data.extend_from_slice(&values.mask[span]);
                    }
                    data
                }
                ModalityKind::Embedding => values.values.clone(),
            };
            let x = match (&modality.projection, modality.kind) {
                (Some(projection), ModalityKind::Embedding) => {
                    let raw = Tensor::from_vec(data, (n, width), device)?;
                    let present: Vec<f32> = values
                        .present
                        .iter()
                        .map(|p| f32::from(u8::from(*p)))
                        .collect();
                    // Absent embeddings stay all zero rather than minus the mean.
                    projection.apply(&raw)?.broadcast_mul(&Tensor::from_vec(
                        present,
                        (n, 1),
                        device,
                    )?)?
                }
                _ => Tensor::from_vec(data, (n, modality.input_width()), device)?,
            };
            tensors.push(x);
            for (row, p) in values.present.iter().enumerate() {
                present[row * count + m] = f32::from(u8::from(*p));
            }
        }
        Ok(Self {
            rows: n,
            inputs: tensors,
            present: Tensor::from_vec(present, (n, count), device)?,
        })
    }

    /// A batch from tensors already built (`inputs` per modality, `present` as 0/1).
    pub fn from_parts(inputs: Vec<Tensor>, present: Tensor) -> Self {
        Self {
            rows: present.dims().first().copied().unwrap_or(0),
            inputs,
            present,
        }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn inputs(&self) -> &[Tensor] {
        &self.inputs
    }

    pub fn present(&self) -> &Tensor {
        &self.present
    }
}

/// What training adds to a forward pass.
pub struct Regularisation<'a> {
    pub rng: &'a mut Rng,
    pub dropout: f32,
    pub modality_dropout: f32,
    /// Probability of hiding each known tabular feature (value and mask to 0: "unknown").
    pub feature_dropout: f32,
}

pub struct Forward {
    /// Log hazard ratio per patient, `(n,)`.
    pub risk: Tensor,
    /// Logit of an urgent finding per patient, `(n,)`.
    pub triage_logit: Option<Tensor>,
    /// Each modality's weight in the fusion, `(n, modalities)`; 0 for absent ones.
    pub attention: Tensor,
}

pub struct FusionNet {
    kinds: Vec<ModalityKind>,
    projections: Vec<Linear>,
    gate: Linear,
    hidden: Linear,
    risk: Linear,
    triage: Option<Linear>,
}

impl FusionNet {
    /// Builds the network's variables under `vb` (names: `modality.<name>.projection`,
    /// `fusion.gate`, `head.hidden`, `head.risk`, `head.triage`).
    pub fn new(
        layout: &FeatureLayout,
        architecture: &Architecture,
        vb: VarBuilder,
    ) -> candle_core::Result<Self> {
        let h = architecture.hidden;
        let projections = layout
            .modalities
            .iter()
            .map(|m| {
                linear(
                    m.input_width(),
                    h,
                    vb.pp(format!("modality.{}.projection", m.modality)),
                )
            })
            .collect::<candle_core::Result<_>>()?;
        Ok(Self {
            kinds: layout.modalities.iter().map(|m| m.kind).collect(),
            projections,
            gate: linear(h, 1, vb.pp("fusion.gate"))?,
            hidden: linear(h, h, vb.pp("head.hidden"))?,
            risk: linear(h, 1, vb.pp("head.risk"))?,
            triage: if architecture.triage {
                Some(linear(h, 1, vb.pp("head.triage"))?)
            } else {
                None
            },
        })
    }

    pub fn forward(
        &self,
        batch: &Batch,
        mut training: Option<Regularisation<'_>>,
    ) -> candle_core::Result<Forward> {
        let mut projected = Vec::with_capacity(self.projections.len());
        for ((projection, x), kind) in self.projections.iter().zip(&batch.inputs).zip(&self.kinds) {
            let x = match training.as_mut() {
                Some(t) if t.feature_dropout > 0.0 && *kind == ModalityKind::Tabular => {
                    hide_features(x, t.feature_dropout, t.rng)?
                }
                _ => x.clone(),
            };
            let z = projection.forward(&x)?.gelu()?;
            projected.push(match training.as_mut() {
                Some(t) => dropout(&z, t.dropout, t.rng)?,
                None => z,
            });
        }
        let z = Tensor::stack(&projected, 1)?; // (n, M, h)
        let scores = self.gate.forward(&z.tanh()?)?.squeeze(2)?; // (n, M)
        let present = match training.as_mut() {
            Some(t) if t.modality_dropout > 0.0 => {
                modality_dropout(&batch.present, t.modality_dropout, t.rng)?
            }
            _ => batch.present.clone(),
        };
        // Absent modalities get −10⁴ before the softmax, then exactly 0 after it.
        let scores = (scores + present.affine(1e4, -1e4)?)?;
        let attention = (candle_nn::ops::softmax(&scores, D::Minus1)? * &present)?;
        let fused = attention.unsqueeze(2)?.broadcast_mul(&z)?.sum(1)?; // (n, h)
        let mut hidden = self.hidden.forward(&fused)?.gelu()?;
        if let Some(t) = training.as_mut() {
            hidden = dropout(&hidden, t.dropout, t.rng)?;
        }
        let risk = self.risk.forward(&hidden)?.squeeze(1)?;
        let triage_logit = match &self.triage {
            Some(head) => Some(head.forward(&hidden)?.squeeze(1)?),
            None => None,
        };
        Ok(Forward {
            risk,
            triage_logit,
            attention,
        })
    }
}

/// Inverted dropout with a mask from our own generator (candle's would not follow the seed).
fn dropout(x: &Tensor, p: f32, rng: &mut Rng) -> candle_core::Result<Tensor> {
    if p <= 0.0 {
        return Ok(x.clone());
    }
    let scale = 1.0 / (1.0 - p);
    let mask: Vec<f32> = (0..x.elem_count())
        .map(|_| {
            if rng.uniform() < f64::from(p) {
                0.0
            } else {
                scale
            }
        })
        .collect();
    x * Tensor::from_vec(mask, x.shape(), x.device())?
}

/// Hides known features at random: the same keep mask on a tabular input's values and its
/// mask bits (`[v·m, m]`), so a hidden feature looks exactly like an unknown one.
fn hide_features(x: &Tensor, p: f32, rng: &mut Rng) -> candle_core::Result<Tensor> {
    let (n, width) = x.dims2()?;
    let d = width / 2;
    let mut keep = vec![1f32; n * width];
    for row in 0..n {
        for j in 0..d {
            if rng.uniform() < f64::from(p) {
                keep[row * width + j] = 0.0;
                keep[row * width + d + j] = 0.0;
            }
        }
    }
    x * Tensor::from_vec(keep, (n, width), x.device())?
}

/// Hides each present modality with probability `p`, keeping at least one per patient.
fn modality_dropout(present: &Tensor, p: f32, rng: &mut Rng) -> candle_core::Result<Tensor> {
    let (n, m) = present.dims2()?;
    let mut kept = present.flatten_all()?.to_vec1::<f32>()?;
    for row in kept.chunks_mut(m) {
        let had: Vec<usize> = (0..m).filter(|&i| row[i] > 0.0).collect();
        if had.len() < 2 {
            continue;
        }
        for &i in &had {
            if rng.uniform() < f64::from(p) {
                row[i] = 0.0;
            }
        }
        if row.iter().all(|&v| v == 0.0) {
            row[had[rng.below(had.len())]] = 1.0;
        }
    }
    Tensor::from_vec(kept, (n, m), present.device())
}

/// Fills every variable in `vars` from `rng`, in name order: weights uniform in
/// ±1/√fan_in (PyTorch's default for linear layers), biases zero.
pub fn initialise(vars: &VarMap, rng: &mut Rng) -> candle_core::Result<()> {
    let data = vars
        .data()
        .lock()
        .map_err(|_| candle_core::Error::Msg("poisoned".into()))?;
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    for name in names {
        let var = &data[name];
        let shape = var.shape().clone();
        let values: Vec<f32> = match shape.dims() {
            [_, fan_in] => {
                let bound = 1.0 / (*fan_in as f64).sqrt();
                (0..shape.elem_count())
                    .map(|_| ((rng.uniform() * 2.0 - 1.0) * bound) as f32)
                    .collect()
            }
            _ => vec![0.0; shape.elem_count()],
        };
        var.set(&Tensor::from_vec(values, shape, var.device())?.to_dtype(DType::F32)?)?;
    }
    Ok(())
}
