//! Vision Transformer as DINOv2 trains it (Oquab et al., 2023): patch embedding, a CLS token
//! (and register tokens, when the weights have them), pre-norm blocks with LayerScale, exact
//! GELU. Weight names are those of Hugging Face `transformers`' `Dinov2Model`
//! (`embeddings.cls_token`, `encoder.layer.N.attention.attention.query`, `layernorm`), the form
//! in which DINOv2-based medical encoders such as RAD-DINO publish their `model.safetensors`;
//! the attention names of transformers 5 (`attention.q_proj`, …) are read too.
//! The embedding is the final layer-normed CLS token (the model's pooler output), optionally
//! concatenated with the mean of the patch tokens.

use std::collections::HashMap;

use candle_core::{D, Module, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, LayerNorm, Linear};
use serde::Deserialize;

use crate::encoders::EncoderError;
use crate::encoders::layers::conv::{RandomWeights, Weights};

/// What the embedding is made of.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum VitPooling {
    /// The CLS token: `hidden_size` values.
    #[default]
    Cls,
    /// The CLS token, then the mean of the patch tokens: `2 × hidden_size` values.
    ClsMean,
}

/// The architecture's sizes. The default is ViT-B/14 (DINOv2-base, RAD-DINO).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VitConfig {
    pub patch_size: usize,
    pub hidden_size: usize,
    pub layers: usize,
    pub heads: usize,
    pub layer_norm_eps: f64,
    pub pooling: VitPooling,
    /// Prefix of every weight name, such as `dinov2.` in a classifier's checkpoint.
    pub prefix: String,
}

impl Default for VitConfig {
    fn default() -> Self {
        Self {
            patch_size: 14,
            hidden_size: 768,
            layers: 12,
            heads: 12,
            layer_norm_eps: 1e-6,
            pooling: VitPooling::Cls,
            prefix: String::new(),
        }
    }
}

impl VitConfig {
    pub fn embedding_size(&self) -> usize {
        match self.pooling {
            VitPooling::Cls => self.hidden_size,
            VitPooling::ClsMean => 2 * self.hidden_size,
        }
    }
}

#[derive(Debug)]
struct Layer {
    norm1: LayerNorm,
    query: Linear,
    key: Linear,
    value: Linear,
    output: Linear,
    scale1: Option<Tensor>,
    norm2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    scale2: Option<Tensor>,
}

impl Layer {
    fn attention(&self, x: &Tensor, heads: usize) -> candle_core::Result<Tensor> {
        let (n, t, dim) = x.dims3()?;
        let head_dim = dim / heads;
        let split = |y: Tensor| {
            y.reshape((n, t, heads, head_dim))?
                .transpose(1, 2)?
                .contiguous()
        };
        let q = split(self.query.forward(x)?)?;
        let k = split(self.key.forward(x)?)?;
        let v = split(self.value.forward(x)?)?;
        let scores = (q.matmul(&k.t()?)? / (head_dim as f64).sqrt())?;
        let weights = candle_nn::ops::softmax_last_dim(&scores)?;
        let context = weights.matmul(&v)?.transpose(1, 2)?.reshape((n, t, dim))?;
        self.output.forward(&context)
    }

    fn forward(&self, x: &Tensor, heads: usize) -> candle_core::Result<Tensor> {
        let scaled = |y: Tensor, scale: &Option<Tensor>| match scale {
            Some(s) => y.broadcast_mul(s),
            None => Ok(y),
        };
        let h = self.attention(&self.norm1.forward(x)?, heads)?;
        let x = (x + scaled(h, &self.scale1)?)?;
        let h = self.fc1.forward(&self.norm2.forward(&x)?)?.gelu_erf()?;
        let h = self.fc2.forward(&h)?;
        x + scaled(h, &self.scale2)?
    }
}

/// A DINOv2 ViT without any head.
#[derive(Debug)]
pub struct Vit {
    patch: Conv2d,
    cls: Tensor,
    registers: Option<Tensor>,
    positions: Tensor,
    /// Patches per side that the position embeddings were trained for.
    grid: usize,
    layers: Vec<Layer>,
    norm: LayerNorm,
    heads: usize,
    pooling: VitPooling,
}

impl Vit {
    /// Loads the weights; `input_size` must give the patch grid the position embeddings cover.
    pub(in crate::encoders) fn load(
        weights: &Weights<'_>,
        config: &VitConfig,
        input_size: usize,
    ) -> Result<Self, EncoderError> {
        let p = &config.prefix;
        let get = |name: &str| weights.get(&format!("{p}{name}"));
        let linear = |name: &str| -> Result<Linear, EncoderError> {
            Ok(Linear::new(
                get(&format!("{name}.weight"))?,
                Some(get(&format!("{name}.bias"))?),
            ))
        };
        let norm = |name: &str| -> Result<LayerNorm, EncoderError> {
            Ok(LayerNorm::new(
                get(&format!("{name}.weight"))?,
                get(&format!("{name}.bias"))?,
                config.layer_norm_eps,
            ))
        };
        let optional = |name: &str| -> Result<Option<Tensor>, EncoderError> {
            if weights.has(&format!("{p}{name}")) {
                get(name).map(Some)
            } else {
                Ok(None)
            }
        };
        let patch = Conv2d::new(
            get("embeddings.patch_embeddings.projection.weight")?,
            Some(get("embeddings.patch_embeddings.projection.bias")?),
            Conv2dConfig {
                padding: 0,
                stride: config.patch_size,
                dilation: 1,
                groups: 1,
                cudnn_fwd_algo: None,
            },
        );
        let positions = get("embeddings.position_embeddings")?;
        let trained_patches = positions.dim(1)?.saturating_sub(1);
        let grid = input_size / config.patch_size.max(1);
        if grid * grid != trained_patches || grid * config.patch_size != input_size {
            return Err(EncoderError::Manifest {
                path: "manifest.toml".into(),
                reason: format!(
                    "input_size {input_size} with patch_size {} gives {} patches, but the \
                     position embeddings cover {trained_patches}",
                    config.patch_size,
                    grid * grid
                ),
            });
        }
        if config.heads == 0 || !config.hidden_size.is_multiple_of(config.heads) {
            return Err(EncoderError::Manifest {
                path: "manifest.toml".into(),
                reason: "hidden_size must be a multiple of heads".to_owned(),
            });
        }
        // Attention projections under the names of transformers 4 (the published checkpoints:
        // `attention.attention.query`, `attention.output.dense`) or of transformers 5
        // (`attention.q_proj`, `attention.o_proj`).
        let attention = |l: &str, published: &str, current: &str| {
            let published = format!("{l}.attention.{published}");
            if weights.has(&format!("{p}{published}.weight")) {
                linear(&published)
            } else {
                linear(&format!("{l}.attention.{current}"))
            }
        };
        let mut layers = Vec::with_capacity(config.layers);
        for i in 0..config.layers {
            let l = format!("encoder.layer.{i}");
            layers.push(Layer {
                norm1: norm(&format!("{l}.norm1"))?,
                query: attention(&l, "attention.query", "q_proj")?,
                key: attention(&l, "attention.key", "k_proj")?,
                value: attention(&l, "attention.value", "v_proj")?,
                output: attention(&l, "output.dense", "o_proj")?,
                scale1: optional(&format!("{l}.layer_scale1.lambda1"))?,
                norm2: norm(&format!("{l}.norm2"))?,
                fc1: linear(&format!("{l}.mlp.fc1"))?,
                fc2: linear(&format!("{l}.mlp.fc2"))?,
                scale2: optional(&format!("{l}.layer_scale2.lambda1"))?,
            });
        }
        Ok(Self {
            patch,
            cls: get("embeddings.cls_token")?,
            registers: optional("embeddings.register_tokens")?,
            positions,
            grid,
            layers,
            norm: norm("layernorm")?,
            heads: config.heads,
            pooling: config.pooling,
        })
    }

    /// Embeddings, `(batch, embedding size)`, for images `(batch, 3, H, W)`.
    pub fn embed(&self, images: &Tensor) -> candle_core::Result<Tensor> {
        let n = images.dim(0)?;
        let patches = self.patch.forward(images)?; // (n, dim, grid, grid)
        let (_, dim, gh, gw) = patches.dims4()?;
        if gh != self.grid || gw != self.grid {
            candle_core::bail!(
                "input gives a {gh}×{gw} patch grid, the model needs {0}×{0}",
                self.grid
            );
        }
        let patches = patches.flatten_from(2)?.transpose(1, 2)?; // (n, grid², dim)
        let cls = self.cls.expand((n, 1, dim))?;
        let mut x = Tensor::cat(&[&cls, &patches], 1)?.broadcast_add(&self.positions)?;
        let prefix_tokens = 1 + match &self.registers {
            Some(r) => {
                let r = r.expand((n, r.dim(1)?, dim))?;
                let count = r.dim(1)?;
                x = Tensor::cat(&[&x.narrow(1, 0, 1)?, &r, &x.narrow(1, 1, gh * gw)?], 1)?;
                count
            }
            None => 0,
        };
        for layer in &self.layers {
            x = layer.forward(&x, self.heads)?;
        }
        let x = self.norm.forward(&x)?;
        let cls = x.narrow(1, 0, 1)?.squeeze(1)?;
        match self.pooling {
            VitPooling::Cls => Ok(cls),
            VitPooling::ClsMean => {
                let mean = x.narrow(1, prefix_tokens, gh * gw)?.mean(D::Minus2)?;
                Tensor::cat(&[&cls, &mean], 1)
            }
        }
    }
}

/// Random weights for `config` at `input_size`, named like `transformers`' Dinov2Model, for
/// tests. Deterministic per seed; `mlp_ratio` sets the MLP width.
pub fn random_vit(
    config: &VitConfig,
    input_size: usize,
    mlp_ratio: usize,
    seed: u64,
) -> HashMap<String, Tensor> {
    let mut w = RandomWeights::new(seed);
    let d = config.hidden_size;
    let p = config.patch_size;
    let grid = input_size / p;
    let name = |n: &str| format!("{}{n}", config.prefix);
    w.tensor(name("embeddings.cls_token"), &[1, 1, d], 0.5, 0.0);
    w.tensor(name("embeddings.mask_token"), &[1, d], 0.5, 0.0);
    w.tensor(
        name("embeddings.position_embeddings"),
        &[1, 1 + grid * grid, d],
        0.5,
        0.0,
    );
    let projection = name("embeddings.patch_embeddings.projection");
    let scale = (1.0 / (p * p) as f32).sqrt();
    w.tensor(format!("{projection}.weight"), &[d, 3, p, p], scale, 0.0);
    w.tensor(format!("{projection}.bias"), &[d], 0.1, 0.0);
    let hidden = d * mlp_ratio;
    for i in 0..config.layers {
        let l = name(&format!("encoder.layer.{i}"));
        for (part, out, input) in [
            ("attention.attention.query", d, d),
            ("attention.attention.key", d, d),
            ("attention.attention.value", d, d),
            ("attention.output.dense", d, d),
            ("mlp.fc1", hidden, d),
            ("mlp.fc2", d, hidden),
        ] {
            w.linear(&format!("{l}.{part}"), out, input);
        }
        for norm in ["norm1", "norm2"] {
            w.tensor(format!("{l}.{norm}.weight"), &[d], 0.1, 1.0);
            w.tensor(format!("{l}.{norm}.bias"), &[d], 0.1, 0.0);
        }
        w.tensor(format!("{l}.layer_scale1.lambda1"), &[d], 0.1, 0.5);
        w.tensor(format!("{l}.layer_scale2.lambda1"), &[d], 0.1, 0.5);
    }
    w.tensor(name("layernorm.weight"), &[d], 0.1, 1.0);
    w.tensor(name("layernorm.bias"), &[d], 0.1, 0.0);
    w.tensors
}
