//! Training and evaluating prognostic models from cohort files: which columns feed which
//! modality (`dataset`), patient splits and folds (`split`), fitting one model with its
//! baseline hazard, calibration and triage threshold (`fit`), the metrics it is judged by,
//! overall and by subgroup (`metrics`, `subgroups`), and the `train` and `evaluate` commands
//! with their model card and reliability plot (`commands`, `card`, `plot`); a synthetic
//! multimodal cohort with a known hazard (`synthetic`).

pub mod ablation;
pub mod card;
pub mod commands;
pub mod dataset;
pub mod fit;
pub mod inputs;
pub mod metrics;
pub mod plot;
pub mod split;
pub mod subgroups;
pub mod synthetic;

pub use commands::{EvaluateOptions, TrainOptions, evaluate, train};
pub use dataset::ColumnRoles;

use crate::cohort::CohortError;
use crate::fusion::{PackageError, PredictError, TrainError};

#[derive(Debug, thiserror::Error)]
pub enum TrainingError {
    #[error(transparent)]
    Cohort(#[from] CohortError),
    #[error(transparent)]
    Train(#[from] TrainError),
    #[error(transparent)]
    Predict(#[from] PredictError),
    #[error(transparent)]
    Package(#[from] PackageError),
    #[error("{0}")]
    Options(String),
    #[error("{path}: {reason}")]
    Output {
        path: std::path::PathBuf,
        reason: String,
    },
}
