//! A model package, the folder `train` writes and the service loads (not a FHIR Bundle): the
//! network's weights (`model.safetensors`) and a manifest (`manifest.json`) saying everything
//! needed to use them: the feature layout and how cohort columns become features, the
//! architecture, the training settings, the outcome and its time unit, the Breslow baseline
//! hazard, the horizons with their calibration, the triage head's threshold, optionally the FHIR
//! input spec the service fills it from, and the weights' sha256. Loading checks the manifest
//! against the weights, tensor by tensor, before anything is predicted.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device};

use crate::domain::TimeUnit;
use candle_nn::{VarBuilder, VarMap};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::layout::FeatureLayout;
use super::network::{Architecture, FusionNet};
use super::train::TrainSettings;
use crate::features::InputSpec;
use crate::features::builder::spec_features;
use crate::survival::{BaselineHazard, Platt};

pub const FORMAT: &str = "prognostics-model/1";
pub const MANIFEST_FILE: &str = "manifest.json";
pub const WEIGHTS_FILE: &str = "model.safetensors";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub time_column: String,
    pub event_column: String,
    /// The unit of follow-up times and horizons; a manifest naming another is refused.
    pub time_unit: TimeUnit,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Horizon {
    /// In the outcome's time unit.
    pub time: f64,
    pub label: String,
    /// Platt scaling of the event probability by this horizon, fitted on validation rows;
    /// none when they were too few to fit it.
    pub calibration: Option<Platt>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Triage {
    pub label_column: String,
    /// Calibrated probability at or above which a study is flagged urgent.
    pub threshold: f64,
    pub calibration: Option<Platt>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub name: String,
    pub version: String,
    pub created: DateTime<Utc>,
    pub outcome: Outcome,
    pub layout: FeatureLayout,
    pub architecture: Architecture,
    pub training: TrainSettings,
    pub baseline: BaselineHazard,
    pub horizons: Vec<Horizon>,
    pub triage: Option<Triage>,
    /// How the service fills the layout's features from FHIR (names equal to the layout's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<InputSpec>,
    /// What the training patients looked like, to tell drift (bundles trained before it was
    /// kept have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<Reference>,
    /// sha256 of the weights file, hex.
    pub weights_sha256: String,
}

/// The training patients' distribution of what the model says of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reference {
    /// The model's log hazard ratio over the training rows.
    pub risk: super::reference::Bins,
}

#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error("{path}: {reason}")]
    Io { path: PathBuf, reason: String },
    #[error("{path}: not a model manifest: {reason}")]
    Manifest { path: PathBuf, reason: String },
    #[error("{path}: the manifest and the weights disagree: {reason}")]
    Mismatch { path: PathBuf, reason: String },
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// A loaded model: its manifest and the networks of its ensemble.
pub struct Model {
    pub manifest: Manifest,
    pub(super) members: Vec<FusionNet>,
    vars: VarMap,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> PackageError + '_ {
    move |e| PackageError::Io {
        path: path.to_owned(),
        reason: e.to_string(),
    }
}

impl Model {
    /// A model from trained networks, each with its own variables; they are stored
    /// together under `member.<k>.`.
    pub fn new(
        manifest: Manifest,
        members: Vec<(FusionNet, VarMap)>,
    ) -> Result<Self, PackageError> {
        let vars = VarMap::new();
        let mut networks = Vec::with_capacity(members.len());
        {
            let mut all = vars
                .data()
                .lock()
                .map_err(|_| candle_core::Error::Msg("poisoned".into()))?;
            for (k, (network, member_vars)) in members.into_iter().enumerate() {
                let data = member_vars
                    .data()
                    .lock()
                    .map_err(|_| candle_core::Error::Msg("poisoned".into()))?;
                for (name, var) in data.iter() {
                    all.insert(format!("member.{k}.{name}"), var.clone());
                }
                networks.push(network);
            }
        }
        Ok(Self {
            manifest,
            members: networks,
            vars,
        })
    }

    /// Writes the bundle into `dir` (created if needed); the manifest records the weights'
    /// sha256.
    pub fn save(&mut self, dir: &Path) -> Result<(), PackageError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let weights = dir.join(WEIGHTS_FILE);
        self.vars.save(&weights)?;
        let bytes = std::fs::read(&weights).map_err(io(&weights))?;
        self.manifest.weights_sha256 = hex(&Sha256::digest(&bytes));
        let manifest = dir.join(MANIFEST_FILE);
        let json =
            serde_json::to_string_pretty(&self.manifest).map_err(|e| PackageError::Manifest {
                path: manifest.clone(),
                reason: e.to_string(),
            })?;
        std::fs::write(&manifest, json + "\n").map_err(io(&manifest))
    }

    /// Reads a bundle, refusing one whose weights are not the manifest's (checksum, tensor
    /// names, shapes).
    pub fn load(dir: &Path) -> Result<Self, PackageError> {
        let manifest_path = dir.join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&manifest_path).map_err(io(&manifest_path))?;
        let weights = dir.join(WEIGHTS_FILE);
        let bytes = std::fs::read(&weights).map_err(io(&weights))?;
        Self::from_package(dir, &text, &bytes)
    }

    /// A bundle given as its manifest's text and its weights' bytes (one built into the
    /// binary); `dir` names it in errors. The same checks as [`Model::load`].
    pub fn from_package(dir: &Path, text: &str, bytes: &[u8]) -> Result<Self, PackageError> {
        let manifest_path = dir.join(MANIFEST_FILE);
        let manifest: Manifest =
            serde_json::from_str(text).map_err(|e| PackageError::Manifest {
                path: manifest_path.clone(),
                reason: e.to_string(),
            })?;
        if manifest.format != FORMAT {
            return Err(PackageError::Manifest {
                path: manifest_path,
                reason: format!(
                    "format `{}`, this version reads `{FORMAT}`",
                    manifest.format
                ),
            });
        }
        if let Some(spec) = &manifest.inputs {
            let refuse = |reason: String| PackageError::Manifest {
                path: manifest_path.clone(),
                reason,
            };
            spec.validate().map_err(|e| refuse(e.to_string()))?;
            // Every feature the network takes must be one the spec fills from FHIR.
            let filled = spec_features(spec);
            for feature in manifest.layout.modalities.iter().flat_map(|m| &m.features) {
                if !filled.iter().any(|(_, name)| *name == feature.name) {
                    return Err(refuse(format!(
                        "the input spec does not fill the feature `{}`",
                        feature.name
                    )));
                }
            }
        }
        let weights = dir.join(WEIGHTS_FILE);
        let mismatch = |reason: String| PackageError::Mismatch {
            path: weights.clone(),
            reason,
        };
        let digest = hex(&Sha256::digest(bytes));
        if digest != manifest.weights_sha256 {
            return Err(mismatch(format!(
                "sha256 {digest}, the manifest says {}",
                manifest.weights_sha256
            )));
        }
        let device = Device::Cpu;
        let stored = candle_core::safetensors::load_buffer(bytes, &device)?;
        let vars = VarMap::new();
        if manifest.architecture.members == 0 {
            return Err(mismatch(
                "the manifest's architecture has no member network".into(),
            ));
        }
        let vb = VarBuilder::from_varmap(&vars, DType::F32, &device);
        let members = (0..manifest.architecture.members)
            .map(|k| {
                FusionNet::new(
                    &manifest.layout,
                    &manifest.architecture,
                    vb.pp(format!("member.{k}")),
                )
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        {
            let expected = vars
                .data()
                .lock()
                .map_err(|_| candle_core::Error::Msg("poisoned".into()))?;
            check_tensors(&expected, &stored).map_err(mismatch)?;
            for (name, var) in expected.iter() {
                var.set(&stored[name].to_dtype(DType::F32)?)?;
            }
        }
        Ok(Self {
            manifest,
            members,
            vars,
        })
    }
}

fn check_tensors(
    expected: &HashMap<String, candle_core::Var>,
    stored: &HashMap<String, candle_core::Tensor>,
) -> Result<(), String> {
    let mut names: Vec<&String> = expected.keys().collect();
    names.sort();
    for name in names {
        let Some(tensor) = stored.get(name) else {
            return Err(format!("no tensor `{name}` in the weights"));
        };
        if tensor.dims() != expected[name].dims() {
            return Err(format!(
                "`{name}` has shape {:?}, the manifest's layout needs {:?}",
                tensor.dims(),
                expected[name].dims()
            ));
        }
    }
    if let Some(extra) = stored.keys().find(|k| !expected.contains_key(*k)) {
        return Err(format!(
            "tensor `{extra}` is not part of the manifest's network"
        ));
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
