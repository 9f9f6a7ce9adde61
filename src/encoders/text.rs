//! The clinical-notes encoder: a BERT sentence encoder (all-MiniLM-L6-v2 by default), its
//! WordPiece tokenizer from the model's own `tokenizer.json` through the tokenizers crate. On
//! the CPU the forward is the packed one of `packed_bert` (no padding, one matrix product per
//! projection for the whole batch); on other devices candle-transformers' `BertModel`, on the
//! same weights (the tests hold the two to each other). An embedding is sentence-transformers' recipe: the last hidden states
//! averaged over the attention mask, then L2-normalised.
//!
//! Notes are longer than the model's window (256 tokens): a text is cut into windows of at most
//! `max_tokens` tokens (`[CLS]` and `[SEP]` included), each window embedded, and the windows'
//! mean-pooled vectors averaged weighted by their token counts before normalising. A text that
//! fits one window is embedded exactly as sentence-transformers embeds it.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::Tokenizer;

use super::EncoderError;
use super::manifest::{self, ModelManifest, TextModelEntry};
use super::models::packed_bert::PackedBert;

/// The BERT forward in use: the packed one on the CPU, candle-transformers' elsewhere.
enum Forward {
    Packed(PackedBert),
    Candle(BertModel),
}

/// A loaded text encoder.
pub struct TextEncoder {
    pub name: String,
    pub entry: TextModelEntry,
    forward: Forward,
    tokenizer: Tokenizer,
    device: Device,
    cls: u32,
    sep: u32,
    pad: u32,
}

impl std::fmt::Debug for TextEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextEncoder")
            .field("name", &self.name)
            .field("version", &self.entry.version)
            .finish_non_exhaustive()
    }
}

/// One window of a text: its token ids, `[CLS]` and `[SEP]` included.
struct Window {
    text: usize,
    ids: Vec<u32>,
}

impl TextEncoder {
    /// Loads the text encoder `name` (the manifest's default when `None`), every file checked
    /// against its sha256.
    pub fn load(
        manifest: &ModelManifest,
        name: Option<&str>,
        device: &Device,
    ) -> Result<Self, EncoderError> {
        let (name, entry) = manifest.text_encoder(name)?;
        if entry.architecture != "bert" {
            return Err(EncoderError::UnsupportedArchitecture {
                name: entry.architecture.clone(),
            });
        }
        for file in entry.files() {
            manifest::check_sha256(&manifest.packaged_path(file), &file.sha256)?;
        }
        let config_path = manifest.packaged_path(&entry.config);
        let config: Config = read_json(&config_path)?;
        let weights_path = manifest.packaged_path(&entry.weights);
        let bytes = std::fs::read(&weights_path).map_err(|e| EncoderError::Weights {
            path: weights_path.clone(),
            reason: e.to_string(),
        })?;
        let vb = VarBuilder::from_buffered_safetensors(bytes, DType::F32, device)?;
        let tokenizer_path = manifest.packaged_path(&entry.tokenizer);
        let tokenizer =
            Tokenizer::from_file(&tokenizer_path).map_err(|e| EncoderError::Weights {
                path: tokenizer_path.clone(),
                reason: e.to_string(),
            })?;
        Self::new(name, entry.clone(), &config, vb, tokenizer, device)
    }

    /// Builds an encoder over weights and a tokenizer already at hand (tests use random ones).
    pub fn new(
        name: &str,
        entry: TextModelEntry,
        config: &Config,
        vb: VarBuilder<'_>,
        mut tokenizer: Tokenizer,
        device: &Device,
    ) -> Result<Self, EncoderError> {
        let missing = |e: candle_core::Error| EncoderError::MissingWeight {
            name: e.to_string(),
        };
        let forward = if device.is_cpu() {
            Forward::Packed(PackedBert::load(vb, config).map_err(missing)?)
        } else {
            Forward::Candle(BertModel::load(vb, config).map_err(missing)?)
        };
        // Windows are cut and padded here; the file's own truncation (at 128) and fixed padding
        // would cut notes short.
        tokenizer
            .with_truncation(None)
            .map_err(|e| EncoderError::Batch(e.to_string()))?;
        tokenizer.with_padding(None);
        let token = |t: &str| {
            tokenizer
                .token_to_id(t)
                .ok_or_else(|| EncoderError::MissingWeight {
                    name: format!("tokenizer token {t}"),
                })
        };
        let (cls, sep, pad) = (token("[CLS]")?, token("[SEP]")?, token("[PAD]")?);
        if entry.max_tokens < 3 || entry.max_tokens > config.max_position_embeddings {
            return Err(EncoderError::Manifest {
                path: "manifest.toml".into(),
                reason: format!(
                    "max_tokens of {name} must be between 3 and {}",
                    config.max_position_embeddings
                ),
            });
        }
        Ok(Self {
            name: name.to_owned(),
            entry,
            forward,
            tokenizer,
            device: device.clone(),
            cls,
            sep,
            pad,
        })
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The tokens of `text` cut into windows of at most `max_tokens`.
    fn windows(&self, index: usize, text: &str) -> Result<Vec<Window>, EncoderError> {
        let encoding = self
            .tokenizer
            .encode(text, false)
            .map_err(|e| EncoderError::Batch(format!("tokenising: {e}")))?;
        let ids = encoding.get_ids();
        let room = self.entry.max_tokens - 2;
        let mut windows = Vec::with_capacity(ids.len() / room + 1);
        let mut chunks = ids.chunks(room).peekable();
        if chunks.peek().is_none() {
            // An empty text is `[CLS] [SEP]`, as sentence-transformers embeds it.
            windows.push(Window {
                text: index,
                ids: vec![self.cls, self.sep],
            });
        }
        for chunk in chunks {
            let mut window = Vec::with_capacity(chunk.len() + 2);
            window.push(self.cls);
            window.extend_from_slice(chunk);
            window.push(self.sep);
            windows.push(Window {
                text: index,
                ids: window,
            });
        }
        Ok(windows)
    }

    /// Embeds each text: one L2-normalised vector of `embedding_size` per text.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EncoderError> {
        let mut windows = Vec::new();
        for (i, text) in texts.iter().enumerate() {
            windows.extend(self.windows(i, text)?);
        }
        let size = self.entry.embedding_size;
        let mut sums = vec![vec![0f32; size]; texts.len()];
        let mut weights = vec![0f32; texts.len()];
        // Windows of similar length together, so that little of each batch is padding.
        windows.sort_by_key(|w| w.ids.len());
        for batch in windows.chunks(32) {
            let pooled = self.pool(batch)?;
            for (window, vector) in batch.iter().zip(pooled) {
                let weight = window.ids.len() as f32;
                for (s, v) in sums[window.text].iter_mut().zip(vector) {
                    *s += weight * v;
                }
                weights[window.text] += weight;
            }
        }
        Ok(sums
            .into_iter()
            .zip(weights)
            .map(|(mut sum, weight)| {
                sum.iter_mut().for_each(|s| *s /= weight.max(1.0));
                normalise(&mut sum);
                sum
            })
            .collect())
    }

    /// The mean over its tokens of each window's last hidden states (not yet normalised).
    fn pool(&self, batch: &[Window]) -> Result<Vec<Vec<f32>>, EncoderError> {
        let model = match &self.forward {
            Forward::Packed(packed) => {
                let windows: Vec<&[u32]> = batch.iter().map(|w| w.ids.as_slice()).collect();
                return Ok(packed.mean_pooled(&windows)?);
            }
            Forward::Candle(model) => model,
        };
        let longest = batch.iter().map(|w| w.ids.len()).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(batch.len() * longest);
        let mut mask = Vec::with_capacity(batch.len() * longest);
        for window in batch {
            ids.extend_from_slice(&window.ids);
            ids.extend(std::iter::repeat_n(self.pad, longest - window.ids.len()));
            mask.extend(std::iter::repeat_n(1u32, window.ids.len()));
            mask.extend(std::iter::repeat_n(0u32, longest - window.ids.len()));
        }
        let shape = (batch.len(), longest);
        let ids = Tensor::from_vec(ids, shape, &self.device)?;
        let mask = Tensor::from_vec(mask, shape, &self.device)?;
        let token_types = ids.zeros_like()?;
        let hidden = model.forward(&ids, &token_types, Some(&mask))?;
        let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
        let counts = mask.sum(1)?;
        let mean = summed.broadcast_div(&counts)?;
        Ok(mean.to_vec2::<f32>()?)
    }
}

fn normalise(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= norm);
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, EncoderError> {
    let invalid = |reason: String| EncoderError::Weights {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| invalid(e.to_string()))?;
    serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_nn::VarMap;

    const WORDS: &[&str] = &[
        "[PAD]", "[UNK]", "[CLS]", "[SEP]", "no", "acute", "mass", "seen", "in", "the", "left",
        "breast", ".", ",",
    ];

    /// A random 2-layer BERT and a WordPiece tokenizer over a few words; windows of 8 tokens.
    fn tiny_encoder() -> TextEncoder {
        tiny_encoders().0
    }

    /// The tiny encoder twice over the same weights: the packed forward (the CPU default),
    /// and candle-transformers' `BertModel`.
    fn tiny_encoders() -> (TextEncoder, TextEncoder) {
        let vocab: serde_json::Map<String, serde_json::Value> = WORDS
            .iter()
            .enumerate()
            .map(|(i, w)| ((*w).to_owned(), serde_json::json!(i)))
            .collect();
        // A tokenizer.json of the same shape as the real model's.
        let tokenizer = serde_json::json!({
            "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
            "normalizer": {"type": "BertNormalizer", "clean_text": true,
                           "handle_chinese_chars": true, "strip_accents": null, "lowercase": true},
            "pre_tokenizer": {"type": "BertPreTokenizer"},
            "post_processor": null, "decoder": null,
            "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                      "max_input_chars_per_word": 100, "vocab": vocab}
        });
        let tokenizer = Tokenizer::from_bytes(tokenizer.to_string()).unwrap();
        let config: Config = serde_json::from_value(serde_json::json!({
            "vocab_size": WORDS.len(), "hidden_size": 16, "num_hidden_layers": 2,
            "num_attention_heads": 2, "intermediate_size": 32, "hidden_act": "gelu",
            "hidden_dropout_prob": 0.0, "max_position_embeddings": 16, "type_vocab_size": 2,
            "initializer_range": 0.02, "layer_norm_eps": 1e-12, "pad_token_id": 0
        }))
        .unwrap();
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let file = |name: &str| manifest::PackagedFile {
            file: name.into(),
            package_path: name.into(),
            sha256: String::new(),
        };
        let entry = TextModelEntry {
            architecture: "bert".into(),
            version: "tiny".into(),
            package: String::new(),
            package_sha256: String::new(),
            max_tokens: 8,
            embedding_size: 16,
            licence: String::new(),
            source: String::new(),
            weights: file("model.safetensors"),
            tokenizer: file("tokenizer.json"),
            config: file("config.json"),
        };
        // candle-transformers' loader first: it creates the random weights (with its own
        // initialisation, layer norms at 1); the packed loader then reads the same ones.
        let bert = BertModel::load(vb.clone(), &config).unwrap();
        let packed =
            TextEncoder::new("tiny", entry, &config, vb.clone(), tokenizer, &Device::Cpu).unwrap();
        let mut candle = TextEncoder::new(
            "tiny",
            packed.entry.clone(),
            &config,
            vb.clone(),
            packed.tokenizer.clone(),
            &Device::Cpu,
        )
        .unwrap();
        candle.forward = Forward::Candle(bert);
        (packed, candle)
    }

    #[test]
    fn the_packed_forward_matches_candle_transformers_bert() {
        let (packed, candle) = tiny_encoders();
        assert!(matches!(packed.forward, Forward::Packed(_)));
        let texts = [
            "No acute mass.",
            "Mass seen in the left breast, no mass in the left breast, no acute mass.",
            "",
            "left",
        ];
        let a = packed.embed(&texts).unwrap();
        let b = candle.embed(&texts).unwrap();
        for (x, y) in a.iter().zip(&b) {
            let norm: f32 = x.iter().map(|v| v * v).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-5, "{norm}");
            let gap = x
                .iter()
                .zip(y)
                .map(|(p, q)| (p - q).abs())
                .fold(0f32, f32::max);
            assert!(gap < 1e-5, "packed and candle-transformers differ by {gap}");
        }
        assert!(a[0] != a[3], "different texts, different embeddings");
    }

    #[test]
    fn texts_are_cut_into_windows_of_at_most_max_tokens() {
        let encoder = tiny_encoder();
        let six = encoder.windows(0, "No acute mass seen in the").unwrap();
        assert_eq!(six.len(), 1);
        assert_eq!(six[0].ids.len(), 8);
        assert_eq!((six[0].ids[0], six[0].ids[7]), (encoder.cls, encoder.sep));
        let seven = encoder
            .windows(0, "No acute mass seen in the left")
            .unwrap();
        assert_eq!(
            seven.iter().map(|w| w.ids.len()).collect::<Vec<_>>(),
            [8, 3]
        );
        let empty = encoder.windows(0, "").unwrap();
        assert_eq!(empty[0].ids, [encoder.cls, encoder.sep]);
    }

    #[test]
    fn an_embedding_does_not_depend_on_what_it_is_batched_with() {
        let encoder = tiny_encoder();
        let texts = [
            "No acute mass.",
            "Mass seen in the left breast, no mass in the left breast, no acute mass.",
            "",
            "left",
        ];
        let together = encoder.embed(&texts).unwrap();
        assert_eq!(together.len(), texts.len());
        for (text, batched) in texts.iter().zip(&together) {
            let alone = encoder.embed(&[text]).unwrap().remove(0);
            assert_eq!(alone.len(), 16);
            let norm: f32 = alone.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-5);
            let gap = alone
                .iter()
                .zip(batched)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(
                gap < 1e-5,
                "{text:?}: padding changed the embedding by {gap}"
            );
        }
        // The long text spans three windows and still gives one vector.
        assert_eq!(encoder.windows(0, texts[1]).unwrap().len(), 3);
    }

    #[tokio::test]
    async fn texts_are_batched_on_the_inference_thread_like_images() {
        use crate::encoders::{Admission, BatchSettings, Batched};
        let encoder = tiny_encoder();
        let direct = encoder.embed(&["no acute mass", "left breast"]).unwrap();
        let batched = Batched::spawn(
            "tiny",
            encoder,
            BatchSettings {
                max_batch_size: 8,
                max_wait: std::time::Duration::from_millis(200),
                queue_capacity: 8,
            },
        )
        .unwrap();
        let calls = ["no acute mass", "left breast"].map(|text| {
            let batched = batched.clone();
            async move {
                batched
                    .embed(vec![text.to_owned()], Admission::Reject)
                    .await
                    .unwrap()
                    .remove(0)
            }
        });
        let answers = futures_util::future::join_all(calls).await;
        assert_eq!(
            batched
                .stats()
                .batches
                .load(std::sync::atomic::Ordering::Relaxed),
            1,
            "two concurrent callers share one pass"
        );
        for (answer, expected) in answers.iter().zip(&direct) {
            let gap = answer
                .iter()
                .zip(expected)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(gap < 1e-5);
        }
    }
}
