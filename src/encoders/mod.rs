//! Image and text encoders in Candle: a model described by `models/manifest.toml`
//! (architecture, weights file and sha256, input size, normalisation, embedding size), its
//! weights checked and loaded, and decoded DICOM frames or note texts turned into embeddings.
//! Laid out as text-embeddings-inference lays out its backend: `models/` holds the model
//! definitions (architectures and weight names), `layers/` the kernels they are built from, and
//! `batcher` the thread that batches concurrent callers' work; the manifest, weights fetching,
//! `.pth` reading, preprocessing and the text encoder's tokenizer sit beside them. Imports
//! `error` only; owns candle. The one place that picks the device is [`device`].

mod batcher;
mod fetch;
mod layers;
mod manifest;
mod models;
mod preprocess;
mod pth;
mod random;
mod text;

use std::path::PathBuf;

use candle_core::{Device, Tensor};

pub use batcher::{
    Admission, BatchModel, BatchSettings, Batched, BatchedEncoder, BatchedTextEncoder,
};
pub use fetch::{fetch_text_model, fetch_weights};
pub use manifest::{ImageModelEntry, ModelManifest, Normalisation, PackagedFile, TextModelEntry};
pub use models::efficientnet::{EfficientNet, EfficientNetConfig, random_state_dict};
pub use models::resnet::{ResNet, ResNetBlock, ResNetConfig, random_resnet};
pub use models::vit::{Vit, VitConfig, VitPooling, random_vit};
pub use preprocess::{Frame, preprocess};
pub use random::write_random_model;
pub use text::TextEncoder;

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
    #[error("could not fetch weights from {package}: {reason}")]
    Fetch { package: String, reason: String },
    #[error("the inference queue is full; retry later")]
    QueueFull,
    #[error("the inference thread has stopped")]
    Stopped,
    #[error("the inference batch failed: {0}")]
    Batch(String),
}

impl EncoderError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            EncoderError::EmptyImage => ErrorKind::Invalid,
            EncoderError::UnknownModel { .. } => ErrorKind::NotFound,
            EncoderError::WeightsMissing { .. }
            | EncoderError::Stopped
            | EncoderError::Fetch { .. } => ErrorKind::Unavailable,
            EncoderError::QueueFull => ErrorKind::Overloaded,
            EncoderError::Manifest { .. }
            | EncoderError::WeightsMismatch { .. }
            | EncoderError::Weights { .. }
            | EncoderError::MissingWeight { .. }
            | EncoderError::UnsupportedArchitecture { .. }
            | EncoderError::Tensor(_)
            | EncoderError::Batch(_) => ErrorKind::Internal,
        }
    }
}

/// Where models should run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeviceChoice {
    /// The first NVIDIA GPU when the build has the `cuda` feature and one is present; else CPU.
    #[default]
    Auto,
    Cpu,
    /// The first NVIDIA GPU; CPU, with a warning, when there is none or the build lacks `cuda`.
    Cuda,
}

/// The device models run on. Every `cfg(feature = "cuda")` of the crate is here: the rest of
/// the code runs unchanged on whichever device this returns.
/// The CPU threads candle uses for a matrix product. candle 0.11 works this out afresh for
/// every product, reading /proc/cpuinfo each time unless `RAYON_NUM_THREADS` is set; a process
/// that sets that variable to this value once, before its threads start, pays it once.
pub fn cpu_thread_count() -> usize {
    candle_core::utils::get_num_threads()
}

pub fn select_device(choice: DeviceChoice) -> Device {
    match choice {
        DeviceChoice::Cpu => Device::Cpu,
        DeviceChoice::Auto | DeviceChoice::Cuda => gpu_or_cpu(choice),
    }
}

#[cfg(feature = "cuda")]
fn gpu_or_cpu(choice: DeviceChoice) -> Device {
    match Device::new_cuda(0) {
        Ok(device) => device,
        Err(e) => {
            if choice == DeviceChoice::Cuda {
                tracing::warn!(error = %e, "no usable CUDA device; models run on the CPU");
            } else {
                tracing::info!(error = %e, "no usable CUDA device; models run on the CPU");
            }
            Device::Cpu
        }
    }
}

#[cfg(not(feature = "cuda"))]
fn gpu_or_cpu(choice: DeviceChoice) -> Device {
    if choice == DeviceChoice::Cuda {
        tracing::warn!("built without the `cuda` feature; models run on the CPU");
    }
    Device::Cpu
}

/// `cpu`, or `cuda:N`.
pub fn device_name(device: &Device) -> String {
    match device.location() {
        candle_core::DeviceLocation::Cpu => "cpu".to_owned(),
        candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        candle_core::DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
    }
}

/// The default device for command-line use.
pub fn device() -> Device {
    select_device(DeviceChoice::Auto)
}

/// A loaded image encoder and what its inputs must look like.
#[derive(Debug)]
pub struct ImageEncoder {
    pub entry: ImageModelEntry,
    model: Model,
    device: Device,
}

#[derive(Debug)]
enum Model {
    EfficientNet(EfficientNet),
    ResNet(ResNet),
    Vit(Vit),
}

impl ImageEncoder {
    /// Loads `entry`'s weights (sha256-checked) from the folder the manifest lives in.
    pub fn load(
        manifest: &ModelManifest,
        entry: &ImageModelEntry,
        device: &Device,
    ) -> Result<Self, EncoderError> {
        let path = manifest.weights_path(entry);
        manifest::check_sha256(&path, &entry.sha256)?;
        let tensors = if path.extension().is_some_and(|e| e == "safetensors") {
            candle_core::safetensors::load(&path, &Device::Cpu).map_err(|e| {
                EncoderError::Weights {
                    path: path.clone(),
                    reason: e.to_string(),
                }
            })?
        } else {
            pth::read_state_dict(&path)?
        };
        Self::from_tensors(entry.clone(), &tensors, device)
    }

    /// Builds the encoder `entry` describes over weights already in memory (tests use random
    /// ones).
    pub fn from_tensors(
        entry: ImageModelEntry,
        tensors: &std::collections::HashMap<String, Tensor>,
        device: &Device,
    ) -> Result<Self, EncoderError> {
        let weights = layers::conv::Weights::new(tensors, device);
        let config_error = |e: toml::de::Error| EncoderError::Manifest {
            path: PathBuf::from("manifest.toml"),
            reason: format!("config of {}: {e}", entry.architecture),
        };
        let config = toml::Value::Table(entry.config.clone());
        let (model, embedding_size) = match entry.architecture.as_str() {
            "efficientnet-lite" => {
                let c: EfficientNetConfig = config.try_into().map_err(config_error)?;
                (
                    Model::EfficientNet(EfficientNet::load(&weights, &c)?),
                    c.head_channels,
                )
            }
            "resnet" => {
                let c: ResNetConfig = config.try_into().map_err(config_error)?;
                (
                    Model::ResNet(ResNet::load(&weights, &c)?),
                    c.embedding_size(),
                )
            }
            "vit-dinov2" => {
                let c: VitConfig = config.try_into().map_err(config_error)?;
                (
                    Model::Vit(Vit::load(&weights, &c, entry.input_size)?),
                    c.embedding_size(),
                )
            }
            other => {
                return Err(EncoderError::UnsupportedArchitecture {
                    name: other.to_owned(),
                });
            }
        };
        if embedding_size != entry.embedding_size {
            return Err(EncoderError::Manifest {
                path: PathBuf::from("manifest.toml"),
                reason: format!(
                    "embedding_size is {}, but the architecture gives {embedding_size}",
                    entry.embedding_size
                ),
            });
        }
        Ok(Self {
            entry,
            model,
            device: device.clone(),
        })
    }

    pub fn device(&self) -> &Device {
        &self.device
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
        let features = match &self.model {
            Model::EfficientNet(m) => m.embed(input)?,
            Model::ResNet(m) => m.embed(input)?,
            Model::Vit(m) => m.embed(input)?,
        };
        Ok(features.to_vec2::<f32>()?)
    }

    /// ImageNet class probabilities (softmax of the logits) for an input batch, for models
    /// that keep their classifier (EfficientNet).
    pub fn classify_input(&self, input: &Tensor) -> Result<Vec<Vec<f32>>, EncoderError> {
        let Model::EfficientNet(model) = &self.model else {
            return Err(EncoderError::UnsupportedArchitecture {
                name: format!("{} has no classifier", self.entry.architecture),
            });
        };
        let logits = model.classify(&model.embed(input)?)?;
        Ok(candle_nn::ops::softmax_last_dim(&logits)?.to_vec2::<f32>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARCHITECTURES: [&str; 3] = ["efficientnet-lite", "resnet", "vit-dinov2"];

    fn load_random(architecture: &str, seed: u64) -> (tempfile::TempDir, ImageEncoder) {
        let dir = tempfile::tempdir().unwrap();
        write_random_model(dir.path(), "tiny", architecture, seed).unwrap();
        let manifest = ModelManifest::read(dir.path()).unwrap();
        let (_, entry) = manifest.image_encoder(None).unwrap();
        let encoder = ImageEncoder::load(&manifest, entry, &Device::Cpu).unwrap();
        (dir, encoder)
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
    fn every_architecture_loads_from_safetensors_and_batches_like_single_images() {
        let a: Vec<f32> = (0..600).map(|i| (i % 37) as f32 / 36.0).collect();
        let b: Vec<f32> = (0..600).map(|i| (i % 11) as f32 / 10.0).collect();
        for architecture in ARCHITECTURES {
            let (_dir, encoder) = load_random(architecture, 7);
            let single_a = encoder.embed(&[frame(&a)]).unwrap();
            let single_b = encoder.embed(&[frame(&b)]).unwrap();
            let batch = encoder.embed(&[frame(&a), frame(&b)]).unwrap();
            assert_eq!(
                single_a[0].len(),
                encoder.entry.embedding_size,
                "{architecture}"
            );
            assert!(single_a[0].iter().all(|v| v.is_finite()), "{architecture}");
            assert_ne!(single_a[0], single_b[0], "{architecture}");
            for (single, batched) in [(&single_a[0], &batch[0]), (&single_b[0], &batch[1])] {
                for (x, y) in single.iter().zip(batched) {
                    assert!((x - y).abs() < 1e-4, "{architecture}: {x} vs {y}");
                }
            }
            assert_eq!(
                encoder.embed(&[frame(&a)]).unwrap(),
                single_a,
                "{architecture}"
            );
        }
    }

    #[test]
    fn weights_that_fail_their_sha256_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        write_random_model(dir.path(), "tiny", "resnet", 1).unwrap();
        let weights = dir.path().join("weights/tiny.safetensors");
        let mut bytes = std::fs::read(&weights).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&weights, bytes).unwrap();
        let manifest = ModelManifest::read(dir.path()).unwrap();
        let (_, entry) = manifest.image_encoder(None).unwrap();
        let error = ImageEncoder::load(&manifest, entry, &Device::Cpu).unwrap_err();
        assert!(
            matches!(error, EncoderError::WeightsMismatch { .. }),
            "{error}"
        );
    }

    #[test]
    fn a_missing_weight_is_named() {
        for (architecture, name) in [
            ("efficientnet-lite", "_blocks.1._depthwise_conv.weight"),
            ("resnet", "layer2.0.downsample.0.weight"),
            ("vit-dinov2", "encoder.layer.1.attention.attention.key.bias"),
        ] {
            let dir = tempfile::tempdir().unwrap();
            write_random_model(dir.path(), "tiny", architecture, 1).unwrap();
            let manifest = ModelManifest::read(dir.path()).unwrap();
            let (_, entry) = manifest.image_encoder(None).unwrap();
            let path = manifest.weights_path(entry);
            let mut tensors = candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
            assert!(tensors.remove(name).is_some(), "{name}");
            let error =
                ImageEncoder::from_tensors(entry.clone(), &tensors, &Device::Cpu).unwrap_err();
            assert!(error.to_string().contains(name), "{error}");
        }
    }

    #[test]
    fn a_vit_whose_input_size_misses_its_position_embeddings_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        write_random_model(dir.path(), "tiny", "vit-dinov2", 1).unwrap();
        let manifest = ModelManifest::read(dir.path()).unwrap();
        let (_, entry) = manifest.image_encoder(None).unwrap();
        let mut entry = entry.clone();
        entry.input_size = 48;
        let tensors =
            candle_core::safetensors::load(manifest.weights_path(&entry), &Device::Cpu).unwrap();
        let error = ImageEncoder::from_tensors(entry, &tensors, &Device::Cpu).unwrap_err();
        assert!(error.to_string().contains("position embeddings"), "{error}");
    }
}
