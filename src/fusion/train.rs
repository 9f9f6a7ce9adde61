//! Fitting the fusion network: AdamW on the Cox partial likelihood (plus binary cross-entropy
//! of the triage head when urgent findings are labelled), whole-cohort batches up to
//! `batch_size` rows (the Cox risk sets are then exact), dropout and modality dropout, and
//! early stopping on the validation loss with the best epoch's weights kept. Every random
//! draw comes from the seed, so the same seed gives the same weights.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarBuilder, VarMap};
use serde::{Deserialize, Serialize};

use super::layout::{FeatureLayout, Inputs};
use super::network::{Architecture, Batch, FusionNet, Regularisation, initialise};
use super::rng::Rng;
use crate::survival::{CoxTargets, cox_loss};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainSettings {
    pub seed: u64,
    pub hidden: usize,
    pub dropout: f32,
    pub modality_dropout: f32,
    /// Probability of hiding each known tabular feature during training.
    #[serde(default)]
    pub feature_dropout: f32,
    pub learning_rate: f64,
    pub weight_decay: f64,
    pub max_epochs: usize,
    /// Epochs without a better validation loss before stopping.
    pub patience: usize,
    pub batch_size: usize,
    /// Networks in the ensemble. With more than one, the training rows are cut into this many
    /// folds (stratified by event); each network early-stops on its own fold and learns from
    /// the others, so every row serves both and each has an out-of-fold prediction for
    /// calibration. With one, `validation_fraction` of the rows are held out.
    #[serde(default = "TrainSettings::default_members")]
    pub members: usize,
    #[serde(default = "TrainSettings::default_validation_fraction")]
    pub validation_fraction: f64,
}

impl TrainSettings {
    fn default_members() -> usize {
        5
    }

    fn default_validation_fraction() -> f64 {
        0.2
    }
}

impl Default for TrainSettings {
    fn default() -> Self {
        Self {
            seed: 0,
            hidden: 32,
            dropout: 0.1,
            modality_dropout: 0.2,
            feature_dropout: 0.0,
            learning_rate: 3e-3,
            weight_decay: 1e-2,
            max_epochs: 500,
            patience: 40,
            batch_size: 2048,
            members: Self::default_members(),
            validation_fraction: Self::default_validation_fraction(),
        }
    }
}

/// What the network learns from, one entry per row of the inputs.
#[derive(Debug, Clone, PartialEq)]
pub struct Targets {
    pub time: Vec<f64>,
    pub event: Vec<bool>,
    /// Urgent finding or not, where known; none: no triage head.
    pub urgent: Option<Vec<Option<bool>>>,
}

impl Targets {
    pub fn select(&self, rows: &[usize]) -> Self {
        Self {
            time: rows.iter().map(|&r| self.time[r]).collect(),
            event: rows.iter().map(|&r| self.event[r]).collect(),
            urgent: self
                .urgent
                .as_ref()
                .map(|u| rows.iter().map(|&r| u[r]).collect()),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct EpochReport {
    /// 1-based member of the ensemble being trained, of `members`.
    pub member: usize,
    pub members: usize,
    pub epoch: usize,
    pub max_epochs: usize,
    pub train_loss: f64,
    pub validation_loss: f64,
    pub best_epoch: usize,
}

pub struct Trained {
    pub vars: VarMap,
    pub network: FusionNet,
    pub architecture: Architecture,
    /// 1-based epoch whose weights were kept.
    pub best_epoch: usize,
    pub epochs_run: usize,
    pub best_validation_loss: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("the {0} rows have no event: the Cox loss needs at least one")]
    NoEvents(&'static str),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// One split's tensors and targets, prepared once.
struct Prepared {
    batch: Batch,
    cox: CoxTargets,
    urgent: Option<(Tensor, Tensor)>,
}

fn prepare(
    layout: &FeatureLayout,
    inputs: &Inputs,
    targets: &Targets,
    device: &Device,
) -> Result<Option<Prepared>, TrainError> {
    let Some(cox) = CoxTargets::new(&targets.time, &targets.event) else {
        return Ok(None);
    };
    let urgent = match &targets.urgent {
        Some(labels) => {
            let y: Vec<f32> = labels
                .iter()
                .map(|l| f32::from(u8::from(*l == Some(true))))
                .collect();
            let w: Vec<f32> = labels
                .iter()
                .map(|l| f32::from(u8::from(l.is_some())))
                .collect();
            let n = y.len();
            Some((
                Tensor::from_vec(y, n, device)?,
                Tensor::from_vec(w, n, device)?,
            ))
        }
        None => None,
    };
    Ok(Some(Prepared {
        batch: Batch::new(layout, inputs, device)?,
        cox,
        urgent,
    }))
}

fn loss(
    network: &FusionNet,
    prepared: &Prepared,
    training: Option<Regularisation<'_>>,
) -> candle_core::Result<Tensor> {
    let out = network.forward(&prepared.batch, training)?;
    let mut total = cox_loss(&out.risk, &prepared.cox)?;
    if let (Some(logit), Some((y, w))) = (&out.triage_logit, &prepared.urgent) {
        let labelled = w.sum_all()?.to_scalar::<f32>()?;
        if labelled > 0.0 {
            // Binary cross-entropy from logits, stable form: max(x,0) − x·y + log(1 + e^−|x|).
            let bce =
                ((logit.relu()? - (logit * y)?)? + (logit.abs()?.neg()?.exp()? + 1.0)?.log()?)?;
            total = (total + ((bce * w)?.sum_all()? / f64::from(labelled))?)?;
        }
    }
    Ok(total)
}

fn snapshot(vars: &VarMap) -> candle_core::Result<HashMap<String, Tensor>> {
    let data = vars
        .data()
        .lock()
        .map_err(|_| candle_core::Error::Msg("poisoned".into()))?;
    data.iter()
        .map(|(name, var)| Ok((name.clone(), var.as_tensor().copy()?)))
        .collect()
}

fn restore(vars: &VarMap, saved: &HashMap<String, Tensor>) -> candle_core::Result<()> {
    let data = vars
        .data()
        .lock()
        .map_err(|_| candle_core::Error::Msg("poisoned".into()))?;
    for (name, var) in data.iter() {
        if let Some(tensor) = saved.get(name) {
            var.set(tensor)?;
        }
    }
    Ok(())
}

impl Trained {
    /// This network's log hazard ratios and triage logits for `inputs`.
    pub fn outputs(
        &self,
        layout: &FeatureLayout,
        inputs: &Inputs,
    ) -> Result<(Vec<f64>, Option<Vec<f64>>), TrainError> {
        let out = self
            .network
            .forward(&Batch::new(layout, inputs, &Device::Cpu)?, None)?;
        let to = |t: &Tensor| -> candle_core::Result<Vec<f64>> {
            Ok(t.to_vec1::<f32>()?.into_iter().map(f64::from).collect())
        };
        Ok((
            to(&out.risk)?,
            match &out.triage_logit {
                Some(t) => Some(to(t)?),
                None => None,
            },
        ))
    }
}

/// Trains one network (member `member` of the ensemble: its initial weights and random
/// draws come from the seed and the member's number).
pub fn train(
    layout: &FeatureLayout,
    settings: &TrainSettings,
    member: usize,
    train: (&Inputs, &Targets),
    validation: (&Inputs, &Targets),
    progress: &mut dyn FnMut(&EpochReport),
) -> Result<Trained, TrainError> {
    let seed = settings.seed ^ (member as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let device = Device::Cpu;
    let architecture = Architecture {
        hidden: settings.hidden,
        triage: train.1.urgent.is_some(),
        members: settings.members.max(1),
    };
    let vars = VarMap::new();
    let network = FusionNet::new(
        layout,
        &architecture,
        VarBuilder::from_varmap(&vars, DType::F32, &device),
    )?;
    initialise(&vars, &mut Rng::derive(seed, 1))?;
    let mut regulariser = Rng::derive(seed, 2);
    let mut order = Rng::derive(seed, 3);

    let validation = prepare(layout, validation.0, validation.1, &device)?
        .ok_or(TrainError::NoEvents("validation"))?;
    let whole =
        prepare(layout, train.0, train.1, &device)?.ok_or(TrainError::NoEvents("training"))?;
    let rows = train.0.rows;
    let full_batch = rows <= settings.batch_size;

    let mut optimiser = AdamW::new(
        vars.all_vars(),
        ParamsAdamW {
            lr: settings.learning_rate,
            weight_decay: settings.weight_decay,
            ..ParamsAdamW::default()
        },
    )?;
    let mut best = (f64::INFINITY, 0usize, snapshot(&vars)?);
    let mut epochs_run = 0;
    for epoch in 1..=settings.max_epochs {
        epochs_run = epoch;
        let mut train_loss = 0.0;
        // The whole cohort as one batch, or shuffled batches of `batch_size`.
        let mut shuffled = Vec::new();
        if !full_batch {
            let mut indices: Vec<usize> = (0..rows).collect();
            order.shuffle(&mut indices);
            for chunk in indices.chunks(settings.batch_size) {
                let part = prepare(
                    layout,
                    &train.0.select(chunk),
                    &train.1.select(chunk),
                    &device,
                )?;
                shuffled.extend(part);
            }
        }
        let batches: Vec<&Prepared> = if full_batch {
            vec![&whole]
        } else {
            shuffled.iter().collect()
        };
        for batch in &batches {
            let l = loss(
                &network,
                batch,
                Some(Regularisation {
                    rng: &mut regulariser,
                    dropout: settings.dropout,
                    modality_dropout: settings.modality_dropout,
                    feature_dropout: settings.feature_dropout,
                }),
            )?;
            optimiser.backward_step(&l)?;
            train_loss += f64::from(l.to_scalar::<f32>()?);
        }
        let validation_loss = f64::from(loss(&network, &validation, None)?.to_scalar::<f32>()?);
        if validation_loss < best.0 {
            best = (validation_loss, epoch, snapshot(&vars)?);
        }
        progress(&EpochReport {
            member: member + 1,
            members: settings.members.max(1),
            epoch,
            max_epochs: settings.max_epochs,
            train_loss: train_loss / batches.len().max(1) as f64,
            validation_loss,
            best_epoch: best.1,
        });
        if epoch - best.1 >= settings.patience {
            break;
        }
    }
    restore(&vars, &best.2)?;
    Ok(Trained {
        vars,
        network,
        architecture,
        best_epoch: best.1,
        epochs_run,
        best_validation_loss: best.0,
    })
}
