//! Image encoders in Candle: a model described by `models/manifest.toml` (architecture, weights
//! file and sha256, input size, normalisation, embedding size), its weights checked and loaded,
//! and decoded DICOM frames turned into embeddings. Imports `domain` (nothing clinical) and
//! `error`; owns candle. The one place that picks the device is [`device`].

mod efficientnet;
mod manifest;
mod preprocess;
mod pth;

use std::path::PathBuf;

use candle_core::{Device, Tensor};

pub use efficientnet::{EfficientNet, EfficientNetConfig, random_state_dict};
pub use manifest::{ImageModelEntry, ModelManifest, Normalisation};
pub use preprocess::{Frame, preprocess};

use crate::error::ErrorKind;

#[derive(Debug, thiserror::Error)]
pub enum EncoderError {
    #[error("model manifest {path} could not be read: {reason}")]
    Manifest { path: PathBuf, reason: String },
    #[error("model {name} is not in the manifest")]
    UnknownModel { name: String },
    #[error("weights file {path} is missing; run scripts/fetch-models")]
    WeightsMissing { path: PathBuf },
    #[error("weights file {path} has sha256 {actual}, the manifest expects {expected}")]
    WeightsMismatch {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("weights file {path} could not be read: {reason}")]
    Weights { path: PathBuf, reason: String },
    #[error("weight {name} is missing from the weights file")]
    MissingWeight { name: String },
    #[error("architecture {name} is not supported")]
    UnsupportedArchitecture { name: String },
    #[error("an image has no pixels")]
    EmptyImage,
    #[error("tensor computation failed")]
    Tensor(#[from] candle_core::Error),
}

impl EncoderError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            EncoderError::EmptyImage => ErrorKind::Invalid,
            EncoderError::UnknownModel { .. } => ErrorKind::NotFound,
            EncoderError::WeightsMissing { .. } => ErrorKind::Unavailable,
            EncoderError::Manifest { .. }
            | EncoderError::WeightsMismatch { .. }
            | EncoderError::Weights { .. }
            | EncoderError::MissingWeight { .. }
            | EncoderError::UnsupportedArchitecture { .. }
            | EncoderError::Tensor(_) => ErrorKind::Internal,
        }
    }
}

/// The device models run on: CPU in this build.
pub fn device() -> Device {
    Device::Cpu
}

/// A loaded image encoder and what its inputs must look like.
#[derive(Debug)]
pub struct ImageEncoder {
    pub entry: ImageModelEntry,
    model: EfficientNet,
    device: Device,
}

impl ImageEncoder {
    /// Loads `entry`'s weights (sha256-checked) from the folder the manifest lives in.
    pub fn load(manifest: &ModelManifest, entry: &ImageModelEntry) -> Result<Self, EncoderError> {
        let path = manifest.weights_path(entry);
        manifest::check_sha256(&path, &entry.sha256)?;
        let tensors = pth::read_state_dict(&path)?;
        let device = device();
        let model = match entry.architecture.as_str() {
            "efficientnet-lite" => {
                let weights = efficientnet::Weights::new(&tensors, &device);
                EfficientNet::load(&weights, &EfficientNetConfig::lite0())?
            }
            other => {
                return Err(EncoderError::UnsupportedArchitecture {
                    name: other.to_owned(),
                });
            }
        };
        Ok(Self {
            entry: entry.clone(),
            model,
            device,
        })
    }

    /// Builds an encoder over weights already in memory (tests use random ones).
    pub fn from_tensors(
        entry: ImageModelEntry,
        tensors: &std::collections::HashMap<String, Tensor>,
        config: &EfficientNetConfig,
    ) -> Result<Self, EncoderError> {
        let device = device();
        let weights = efficientnet::Weights::new(tensors, &device);
        let model = EfficientNet::load(&weights, config)?;
        Ok(Self {
            entry,
            model,
            device,
        })
    }

    /// The model's input for frames, `(n, 3, size, size)`.
    pub fn input(&self, frames: &[Frame<'_>]) -> Result<Tensor, EncoderError> {
        let size = self.entry.input_size;
        let mut data = Vec::with_capacity(frames.len() * 3 * size * size);
        for frame in frames {
            data.extend(preprocess(frame, size, &self.entry.normalisation)?);
        }
        Ok(Tensor::from_vec(
            data,
            (frames.len(), 3, size, size),
            &self.device,
        )?)
    }

    /// One embedding per frame.
    pub fn embed(&self, frames: &[Frame<'_>]) -> Result<Vec<Vec<f32>>, EncoderError> {
        let input = self.input(frames)?;
        self.embed_input(&input)
    }

    /// Embeddings of an already prepared input batch.
    pub fn embed_input(&self, input: &Tensor) -> Result<Vec<Vec<f32>>, EncoderError> {
        Ok(self.model.embed(input)?.to_vec2::<f32>()?)
    }

    /// ImageNet class probabilities (softmax of the logits) for an input batch.
    pub fn classify_input(&self, input: &Tensor) -> Result<Vec<Vec<f32>>, EncoderError> {
        let features = self.model.embed(input)?;
        let logits = self.model.classify(&features)?;
        Ok(candle_nn::ops::softmax_last_dim(&logits)?.to_vec2::<f32>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny_entry() -> ImageModelEntry {
        ImageModelEntry {
            architecture: "efficientnet-lite".to_owned(),
            version: "random".to_owned(),
            file: String::new(),
            sha256: String::new(),
            package: String::new(),
            package_sha256: String::new(),
            package_path: String::new(),
            input_size: 32,
            normalisation: Normalisation {
                mean: [0.5; 3],
                std: [0.5; 3],
            },
            embedding_size: 64,
            licence: String::new(),
            source: String::new(),
        }
    }

    fn tiny_config() -> EfficientNetConfig {
        EfficientNetConfig {
            stages: vec![
                (1, 3, 1, 1, 8, 8),
                (2, 3, 2, 2, 8, 12),
                (1, 5, 2, 2, 12, 16),
            ],
            stem_channels: 8,
            head_channels: 64,
            num_classes: 10,
        }
    }

    fn frame(values: &[f32]) -> Frame<'_> {
        Frame {
            rows: 20,
            columns: 30,
            channels: 1,
            values,
        }
    }

    #[test]
    fn tiny_random_weights_embed_deterministically_and_batch_like_single_images() {
        let config = tiny_config();
        let encoder =
            ImageEncoder::from_tensors(tiny_entry(), &random_state_dict(&config, 7), &config)
                .unwrap();
        let a: Vec<f32> = (0..600).map(|i| (i % 37) as f32 / 36.0).collect();
        let b: Vec<f32> = (0..600).map(|i| (i % 11) as f32 / 10.0).collect();
        let single_a = encoder.embed(&[frame(&a)]).unwrap();
        let single_b = encoder.embed(&[frame(&b)]).unwrap();
        let batch = encoder.embed(&[frame(&a), frame(&b)]).unwrap();
        assert_eq!(single_a[0].len(), 64);
        assert_ne!(single_a[0], single_b[0]);
        for (x, y) in batch[0].iter().zip(&single_a[0]) {
            assert!((x - y).abs() < 1e-5);
        }
        for (x, y) in batch[1].iter().zip(&single_b[0]) {
            assert!((x - y).abs() < 1e-5);
        }
        assert_eq!(encoder.embed(&[frame(&a)]).unwrap(), single_a);
    }

    #[test]
    fn a_missing_weight_is_named() {
        let config = tiny_config();
        let mut weights = random_state_dict(&config, 1);
        weights.remove("_blocks.1._depthwise_conv.weight");
        let error = ImageEncoder::from_tensors(tiny_entry(), &weights, &config).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("_blocks.1._depthwise_conv.weight"),
            "{error}"
        );
    }
}
