//! `models/manifest.toml`: which image encoders exist, where their weights come from and what
//! their inputs look like. Weights are not in the repository; `scripts/fetch-models` fetches
//! them from their registry packages into `models/weights/` and checks each sha256, which is
//! checked again here before a model loads.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::EncoderError;

/// The manifest, and the folder it was read from.
#[derive(Clone, Debug)]
pub struct ModelManifest {
    dir: PathBuf,
    pub default_image_encoder: String,
    pub image_encoders: BTreeMap<String, ImageModelEntry>,
    pub default_text_encoder: Option<String>,
    pub text_encoders: BTreeMap<String, TextModelEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestFile {
    default_image_encoder: String,
    #[serde(default)]
    image_encoder: BTreeMap<String, ImageModelEntry>,
    default_text_encoder: Option<String>,
    #[serde(default)]
    text_encoder: BTreeMap<String, TextModelEntry>,
}

/// One text encoder: a BERT model whose weights, tokenizer and configuration come from one
/// registry package.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TextModelEntry {
    /// `bert`.
    pub architecture: String,
    /// Recorded with every embedding; a new version means embeddings are recomputed.
    pub version: String,
    pub package: String,
    pub package_sha256: String,
    /// Tokens per window (special tokens included); longer texts are cut into windows.
    pub max_tokens: usize,
    pub embedding_size: usize,
    pub licence: String,
    pub source: String,
    /// `model.safetensors`.
    pub weights: PackagedFile,
    /// The Hugging Face `tokenizer.json`.
    pub tokenizer: PackagedFile,
    /// The BERT `config.json`.
    pub config: PackagedFile,
}

impl TextModelEntry {
    pub fn files(&self) -> [&PackagedFile; 3] {
        [&self.weights, &self.tokenizer, &self.config]
    }
}

/// A file taken out of a model's package.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PackagedFile {
    /// Where it goes, relative to `models/weights/`.
    pub file: String,
    /// Its path inside the package.
    pub package_path: String,
    pub sha256: String,
}

/// One image encoder.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ImageModelEntry {
    /// `efficientnet-lite`, `resnet` or `vit-dinov2`.
    pub architecture: String,
    /// Recorded with every embedding; a new version means embeddings are recomputed.
    pub version: String,
    /// The weights file, relative to `models/weights/`: a PyTorch `.pth`/`.pt` state dict or
    /// `.safetensors`.
    pub file: String,
    pub sha256: String,
    /// Registry package the weights come from (`pip` requirement), its sha256 and the file's
    /// path inside it.
    pub package: String,
    pub package_sha256: String,
    pub package_path: String,
    /// Square input side in pixels.
    pub input_size: usize,
    pub normalisation: Normalisation,
    pub embedding_size: usize,
    pub licence: String,
    pub source: String,
    /// The architecture's sizes when they differ from its default (EfficientNet-Lite0,
    /// ResNet-50, ViT-B/14): see each architecture's config.
    #[serde(default)]
    pub config: toml::Table,
}

/// Per-channel normalisation of RGB values in [0, 1]: `(x - mean) / std`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Normalisation {
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

/// `models/manifest.toml` as the binary was built with it.
const BUILT_IN: &str = include_str!("../../models/manifest.toml");

impl ModelManifest {
    /// Reads `DIR/manifest.toml`; without one (a service started outside the repository), the
    /// manifest built into the binary, whose weights are then fetched into `DIR/weights/`.
    pub fn read(dir: &Path) -> Result<Self, EncoderError> {
        let path = dir.join("manifest.toml");
        let invalid = |reason: String| EncoderError::Manifest {
            path: path.clone(),
            reason,
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::info!(path = %path.display(), "no model manifest there: using the built-in one");
                BUILT_IN.to_owned()
            }
            Err(e) => return Err(invalid(e.to_string())),
        };
        let file: ManifestFile = toml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        if !file.image_encoder.contains_key(&file.default_image_encoder) {
            return Err(invalid(format!(
                "default_image_encoder {} is not listed",
                file.default_image_encoder
            )));
        }
        if let Some(default) = &file.default_text_encoder
            && !file.text_encoder.contains_key(default)
        {
            return Err(invalid(format!(
                "default_text_encoder {default} is not listed"
            )));
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            default_image_encoder: file.default_image_encoder,
            image_encoders: file.image_encoder,
            default_text_encoder: file.default_text_encoder,
            text_encoders: file.text_encoder,
        })
    }

    /// The text encoder called `name`, or the default one.
    pub fn text_encoder(
        &self,
        name: Option<&str>,
    ) -> Result<(&str, &TextModelEntry), EncoderError> {
        let name = name
            .or(self.default_text_encoder.as_deref())
            .unwrap_or_default();
        self.text_encoders
            .get_key_value(name)
            .map(|(k, v)| (k.as_str(), v))
            .ok_or_else(|| EncoderError::UnknownModel {
                name: name.to_owned(),
            })
    }

    /// Where a packaged file lives once fetched.
    pub fn packaged_path(&self, file: &PackagedFile) -> PathBuf {
        self.dir.join("weights").join(&file.file)
    }

    pub fn image_encoder(
        &self,
        name: Option<&str>,
    ) -> Result<(&str, &ImageModelEntry), EncoderError> {
        let name = name.unwrap_or(&self.default_image_encoder);
        self.image_encoders
            .get_key_value(name)
            .map(|(k, v)| (k.as_str(), v))
            .ok_or_else(|| EncoderError::UnknownModel {
                name: name.to_owned(),
            })
    }

    pub fn weights_path(&self, entry: &ImageModelEntry) -> PathBuf {
        self.dir.join("weights").join(&entry.file)
    }
}

/// Fails unless the file at `path` has the expected sha256.
pub fn check_sha256(path: &Path, expected: &str) -> Result<(), EncoderError> {
    let actual = sha256_of(path)?;
    if actual != expected {
        return Err(EncoderError::WeightsMismatch {
            path: path.to_path_buf(),
            expected: expected.to_owned(),
            actual,
        });
    }
    Ok(())
}

/// The sha256 of the file at `path`, in lowercase hex.
pub fn sha256_of(path: &Path) -> Result<String, EncoderError> {
    let mut file = std::fs::File::open(path).map_err(|_| EncoderError::WeightsMissing {
        path: path.to_path_buf(),
    })?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buffer).map_err(|e| EncoderError::Weights {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_manifest_reads_and_names_its_default() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
        let manifest = ModelManifest::read(&dir).unwrap();
        let (name, entry) = manifest.image_encoder(None).unwrap();
        assert_eq!(name, "efficientnet-lite0");
        assert_eq!(entry.embedding_size, 1280);
        assert_eq!(entry.sha256.len(), 64);
        let (name, text) = manifest.text_encoder(None).unwrap();
        assert_eq!(name, "all-minilm-l6-v2");
        assert_eq!((text.max_tokens, text.embedding_size), (256, 384));
        assert!(text.files().iter().all(|f| f.sha256.len() == 64));
    }
}
