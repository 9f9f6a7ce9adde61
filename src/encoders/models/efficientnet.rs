//! EfficientNet-Lite (Tan & Le, 2019; the "Lite" variants of the TensorFlow model garden:
//! ReLU6, no squeeze-and-excitation, stem and head not scaled) in Candle, with the weight names
//! of the PyTorch port that published EfficientNet-Lite0's ImageNet weights (`_conv_stem`,
//! `_blocks.N._expand_conv`, …). Convolutions pad like TensorFlow's `SAME` (asymmetric on
//! stride 2), as the weights were trained. Batch norms are folded into the preceding
//! convolutions when the model is loaded, so inference is convolutions, ReLU6 and adds.

use std::collections::HashMap;

use candle_core::{D, Module, Tensor};
use candle_nn::Linear;

use crate::encoders::EncoderError;
use crate::encoders::layers::conv::{ConvBn, ConvSpec, Padding, RandomWeights, Weights};
use crate::encoders::layers::fused::Activation;

/// One stage of MBConv blocks: (repeats, kernel, stride, expand ratio, input, output channels).
type Stage = (usize, usize, usize, usize, usize, usize);

/// EfficientNet-Lite0's stages (`efficientnet_lite_builder.py`).
const LITE0_STAGES: [Stage; 7] = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
];
const STEM_CHANNELS: usize = 32;
const HEAD_CHANNELS: usize = 1280;
const BATCH_NORM_EPS: f64 = 1e-3;

/// The architecture's sizes; `lite0()`, the default, is the published one. Tests use narrower
/// variants.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EfficientNetConfig {
    pub stages: Vec<Stage>,
    pub stem_channels: usize,
    pub head_channels: usize,
    pub num_classes: usize,
}

impl Default for EfficientNetConfig {
    fn default() -> Self {
        Self::lite0()
    }
}

impl EfficientNetConfig {
    pub fn lite0() -> Self {
        Self {
            stages: LITE0_STAGES.to_vec(),
            stem_channels: STEM_CHANNELS,
            head_channels: HEAD_CHANNELS,
            num_classes: 1000,
        }
    }
}

/// EfficientNet's convolutions: TensorFlow padding and batch-norm epsilon.
fn spec<'a>(conv: &'a str, bn: &'a str, groups: usize, stride: usize) -> ConvSpec<'a> {
    ConvSpec {
        conv,
        bn,
        groups,
        stride,
        padding: Padding::Same,
        batch_norm_eps: BATCH_NORM_EPS,
    }
}

#[derive(Debug)]
struct MbConv {
    expand: Option<ConvBn>,
    depthwise: ConvBn,
    project: ConvBn,
    residual: bool,
}

impl MbConv {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let mut h = x.clone();
        if let Some(expand) = &self.expand {
            h = expand.forward(&h, Activation::Relu6)?;
        }
        h = self.depthwise.forward(&h, Activation::Relu6)?;
        let residual = self.residual.then_some(x);
        self.project
            .forward_residual(&h, residual, Activation::None)
    }
}

/// EfficientNet-Lite: `embed` gives the 1280-d pooled features, `classify` the ImageNet logits.
#[derive(Debug)]
pub struct EfficientNet {
    stem: ConvBn,
    blocks: Vec<MbConv>,
    head: ConvBn,
    classifier: Linear,
}

impl EfficientNet {
    pub(in crate::encoders) fn load(
        weights: &Weights<'_>,
        config: &EfficientNetConfig,
    ) -> Result<Self, EncoderError> {
        let stem = ConvBn::load(weights, spec("_conv_stem", "_bn0", 1, 2))?;
        let mut blocks = Vec::new();
        for &(repeats, _kernel, stride, expand, input, output) in &config.stages {
            for r in 0..repeats {
                let i = blocks.len();
                let (stride, input) = if r == 0 { (stride, input) } else { (1, output) };
                let p = format!("_blocks.{i}");
                let hidden = input * expand;
                blocks.push(MbConv {
                    expand: (expand != 1)
                        .then(|| {
                            ConvBn::load(
                                weights,
                                spec(&format!("{p}._expand_conv"), &format!("{p}._bn0"), 1, 1),
                            )
                        })
                        .transpose()?,
                    depthwise: ConvBn::load(
                        weights,
                        spec(
                            &format!("{p}._depthwise_conv"),
                            &format!("{p}._bn1"),
                            hidden,
                            stride,
                        ),
                    )?,
                    project: ConvBn::load(
                        weights,
                        spec(&format!("{p}._project_conv"), &format!("{p}._bn2"), 1, 1),
                    )?,
                    residual: stride == 1 && input == output,
                });
            }
        }
        let head = ConvBn::load(weights, spec("_conv_head", "_bn1", 1, 1))?;
        let classifier = Linear::new(weights.get("_fc.weight")?, Some(weights.get("_fc.bias")?));
        Ok(Self {
            stem,
            blocks,
            head,
            classifier,
        })
    }

    /// Pooled features, `(batch, 1280)`, for images `(batch, 3, H, W)` normalised as the
    /// manifest says.
    pub fn embed(&self, images: &Tensor) -> candle_core::Result<Tensor> {
        let mut x = self.stem.forward(images, Activation::Relu6)?;
        for block in &self.blocks {
            x = block.forward(&x)?;
        }
        let x = self.head.forward(&x, Activation::Relu6)?;
        x.mean(D::Minus1)?.mean(D::Minus1)
    }

    /// ImageNet logits, `(batch, 1000)`, from pooled features.
    pub fn classify(&self, features: &Tensor) -> candle_core::Result<Tensor> {
        self.classifier.forward(features)
    }
}

/// A state dict of random weights for `config`, named like the published ones, for tests and
/// benchmarks that need no real weights. Deterministic for a given `seed`.
pub fn random_state_dict(config: &EfficientNetConfig, seed: u64) -> HashMap<String, Tensor> {
    let mut w = RandomWeights::new(seed);
    w.conv_bn("_conv_stem", "_bn0", [config.stem_channels, 3, 3, 3]);
    let mut i = 0;
    let mut last = config.stem_channels;
    for &(repeats, kernel, _stride, expand, input, output) in &config.stages {
        for r in 0..repeats {
            let input = if r == 0 { input } else { output };
            let hidden = input * expand;
            let p = format!("_blocks.{i}");
            if expand != 1 {
                w.conv_bn(
                    &format!("{p}._expand_conv"),
                    &format!("{p}._bn0"),
                    [hidden, input, 1, 1],
                );
            }
            w.conv_bn(
                &format!("{p}._depthwise_conv"),
                &format!("{p}._bn1"),
                [hidden, 1, kernel, kernel],
            );
            w.conv_bn(
                &format!("{p}._project_conv"),
                &format!("{p}._bn2"),
                [output, hidden, 1, 1],
            );
            i += 1;
            last = output;
        }
    }
    w.conv_bn("_conv_head", "_bn1", [config.head_channels, last, 1, 1]);
    w.linear("_fc", config.num_classes, config.head_channels);
    w.tensors
}
