//! Tiny image encoders with random weights, written as a model folder (`manifest.toml` and
//! `weights/NAME.safetensors`) exactly as real ones are: for tests and for trying the service
//! without fetching weights. Their embeddings mean nothing.

use std::collections::HashMap;
use std::path::Path;

use candle_core::Tensor;

use super::{
    EfficientNetConfig, EncoderError, ResNetConfig, VitConfig, random_resnet, random_state_dict,
    random_vit,
};

/// Side of the tiny models' square input.
const INPUT_SIZE: usize = 32;

/// The tiny configuration of `architecture` (TOML, as in a manifest) and its embedding size.
fn tiny_config(architecture: &str) -> Option<(&'static str, usize)> {
    Some(match architecture {
        "efficientnet-lite" => (
            "stages = [[1, 3, 1, 1, 8, 8], [2, 3, 2, 2, 8, 12], [1, 5, 2, 2, 12, 16]]\n\
             stem_channels = 8\nhead_channels = 64\nnum_classes = 10\n",
            64,
        ),
        "resnet" => (
            "block = \"basic\"\nlayers = [1, 1, 1, 1]\nwidths = [4, 8, 8, 16]\nstem_channels = 4\n",
            16,
        ),
        "vit-dinov2" => (
            "patch_size = 4\nhidden_size = 16\nlayers = 2\nheads = 2\n",
            16,
        ),
        _ => return None,
    })
}

/// Writes a model folder at `dir` with one tiny random encoder named `name` of `architecture`
/// (`efficientnet-lite`, `resnet` or `vit-dinov2`), the manifest's default. Deterministic per
/// seed.
pub fn write_random_model(
    dir: &Path,
    name: &str,
    architecture: &str,
    seed: u64,
) -> Result<(), EncoderError> {
    let (config_toml, embedding_size) =
        tiny_config(architecture).ok_or_else(|| EncoderError::UnsupportedArchitecture {
            name: architecture.to_owned(),
        })?;
    let invalid = |reason: String| EncoderError::Manifest {
        path: dir.join("manifest.toml"),
        reason,
    };
    let config: toml::Value = toml::from_str(config_toml).map_err(|e| invalid(e.to_string()))?;
    let tensors: HashMap<String, Tensor> = match architecture {
        "efficientnet-lite" => {
            let c: EfficientNetConfig = config.try_into().map_err(|e| invalid(e.to_string()))?;
            random_state_dict(&c, seed)
        }
        "resnet" => {
            let c: ResNetConfig = config.try_into().map_err(|e| invalid(e.to_string()))?;
            random_resnet(&c, seed)
        }
        _ => {
            let c: VitConfig = config.try_into().map_err(|e| invalid(e.to_string()))?;
            random_vit(&c, INPUT_SIZE, 2, seed)
        }
    };
    let weights_dir = dir.join("weights");
    std::fs::create_dir_all(&weights_dir).map_err(|e| invalid(e.to_string()))?;
    let file = format!("{name}.safetensors");
    let path = weights_dir.join(&file);
    candle_core::safetensors::save(&tensors, &path)?;
    let sha256 = super::manifest::sha256_of(&path)?;
    let mut config_lines = String::new();
    for line in config_toml.lines() {
        config_lines.push_str(line);
        config_lines.push('\n');
    }
    let manifest = format!(
        "default_image_encoder = \"{name}\"\n\n\
         [image_encoder.{name}]\n\
         architecture = \"{architecture}\"\n\
         version = \"random-{seed}\"\n\
         file = \"{file}\"\n\
         sha256 = \"{sha256}\"\n\
         package = \"\"\npackage_sha256 = \"\"\npackage_path = \"\"\n\
         input_size = {INPUT_SIZE}\n\
         normalisation = {{ mean = [0.5, 0.5, 0.5], std = [0.25, 0.25, 0.25] }}\n\
         embedding_size = {embedding_size}\n\
         licence = \"none: random weights\"\n\
         source = \"random weights, seed {seed}\"\n\n\
         [image_encoder.{name}.config]\n{config_lines}"
    );
    std::fs::write(dir.join("manifest.toml"), manifest).map_err(|e| invalid(e.to_string()))?;
    Ok(())
}
