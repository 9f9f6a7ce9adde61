//! The prognostic model: a fusion network over the modalities a patient has (candle), its
//! training (Cox partial likelihood, modality dropout, early stopping), its package on disk
//! (safetensors weights and a manifest) and its predictions with their explanations.

mod familiarity;
mod layout;
mod network;
mod package;
mod pca;
mod predict;
mod reference;
mod rng;
mod train;

pub use familiarity::Familiarity;
pub use layout::{
    Feature, FeatureLayout, Inputs, LayoutError, ModalityInputs, ModalityKind, ModalityLayout,
    Seen, Source,
};
pub use network::{Architecture, Batch, FusionNet};
pub use package::{
    FORMAT, Horizon, MANIFEST_FILE, Manifest, Model, Outcome, PackageError, Reference, Triage,
    WEIGHTS_FILE,
};
pub use pca::Projection;
pub use predict::{
    FeatureAttribution, HorizonProbability, ModalityContribution, PredictError, Prediction,
};
pub use reference::{BINS, Bins, EmbeddingShift, psi};
pub use rng::Rng;
pub use train::{EpochReport, Targets, TrainError, TrainSettings, Trained, train};

#[cfg(test)]
mod tests;
