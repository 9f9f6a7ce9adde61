//! ResNet (He et al., 2016) in Candle, with the weight names that torchvision and timm publish
//! (`conv1`, `bn1`, `layer1.0.conv1`, `layer1.0.downsample.0`, `fc`): the family of many
//! published medical image encoders. Bottleneck blocks put their stride on the 3 × 3
//! convolution (torchvision's "v1.5"). Batch norms are folded into the convolutions at load.
//! The embedding is the global average of the last stage's features.

use std::collections::HashMap;

use candle_core::{D, Tensor};
use serde::Deserialize;

use crate::encoders::EncoderError;
use crate::encoders::layers::conv::{ConvBn, ConvSpec, Padding, RandomWeights, Weights};
use crate::encoders::layers::fused::{Activation, max_pool_3x3_stride_2};

const BATCH_NORM_EPS: f64 = 1e-5;

/// Basic blocks (two 3 × 3 convolutions; ResNet-18/34) or bottlenecks (1 × 1, 3 × 3, 1 × 1 with
/// 4× expansion; ResNet-50 and deeper).
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ResNetBlock {
    Basic,
    Bottleneck,
}

/// The architecture's sizes. The default is ResNet-50.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResNetConfig {
    pub block: ResNetBlock,
    /// Blocks per stage: `[2, 2, 2, 2]` for ResNet-18, `[3, 4, 6, 3]` for ResNet-50.
    pub layers: [usize; 4],
    /// Width of each stage (before a bottleneck's expansion).
    pub widths: [usize; 4],
    /// Output channels of the 7 × 7 stem.
    pub stem_channels: usize,
}

impl Default for ResNetConfig {
    fn default() -> Self {
        Self {
            block: ResNetBlock::Bottleneck,
            layers: [3, 4, 6, 3],
            widths: [64, 128, 256, 512],
            stem_channels: 64,
        }
    }
}

impl ResNetConfig {
    fn expansion(&self) -> usize {
        match self.block {
            ResNetBlock::Basic => 1,
            ResNetBlock::Bottleneck => 4,
        }
    }

    /// Size of the embedding: the last stage's output channels.
    pub fn embedding_size(&self) -> usize {
        self.widths[3] * self.expansion()
    }
}

#[derive(Debug)]
struct Block {
    convs: Vec<ConvBn>,
    downsample: Option<ConvBn>,
}

impl Block {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let shortcut = match &self.downsample {
            Some(d) => d.forward(x, Activation::None)?,
            None => x.clone(),
        };
        let (last, inner) = self.convs.split_last().ok_or_else(|| {
            candle_core::Error::Msg("a ResNet block without convolutions".to_owned())
        })?;
        let mut h = x.clone();
        for conv in inner {
            h = conv.forward(&h, Activation::Relu)?;
        }
        // relu(conv(h) + shortcut), in the pass that writes the last convolution's output.
        last.forward_residual(&h, Some(&shortcut), Activation::Relu)
    }
}

/// A ResNet without its classifier.
#[derive(Debug)]
pub struct ResNet {
    stem: ConvBn,
    blocks: Vec<Block>,
}

fn spec<'a>(conv: &'a str, bn: &'a str, stride: usize, padding: usize) -> ConvSpec<'a> {
    ConvSpec {
        conv,
        bn,
        groups: 1,
        stride,
        padding: Padding::Symmetric(padding),
        batch_norm_eps: BATCH_NORM_EPS,
    }
}

impl ResNet {
    pub(in crate::encoders) fn load(
        weights: &Weights<'_>,
        config: &ResNetConfig,
    ) -> Result<Self, EncoderError> {
        let stem = ConvBn::load(weights, spec("conv1", "bn1", 2, 3))?;
        let mut blocks = Vec::new();
        let expansion = config.expansion();
        let mut in_channels = config.stem_channels;
        for (stage, (&count, &width)) in config.layers.iter().zip(&config.widths).enumerate() {
            for i in 0..count {
                let p = format!("layer{}.{i}", stage + 1);
                let stride = if i == 0 && stage > 0 { 2 } else { 1 };
                let name = |n: &str| format!("{p}.{n}");
                let convs = match config.block {
                    ResNetBlock::Basic => vec![
                        ConvBn::load(weights, spec(&name("conv1"), &name("bn1"), stride, 1))?,
                        ConvBn::load(weights, spec(&name("conv2"), &name("bn2"), 1, 1))?,
                    ],
                    ResNetBlock::Bottleneck => vec![
                        ConvBn::load(weights, spec(&name("conv1"), &name("bn1"), 1, 0))?,
                        ConvBn::load(weights, spec(&name("conv2"), &name("bn2"), stride, 1))?,
                        ConvBn::load(weights, spec(&name("conv3"), &name("bn3"), 1, 0))?,
                    ],
                };
                let out_channels = width * expansion;
                let downsample = (stride != 1 || in_channels != out_channels)
                    .then(|| {
                        ConvBn::load(
                            weights,
                            spec(&name("downsample.0"), &name("downsample.1"), stride, 0),
                        )
                    })
                    .transpose()?;
                blocks.push(Block { convs, downsample });
                in_channels = out_channels;
            }
        }
        Ok(Self { stem, blocks })
    }

    /// Pooled features, `(batch, channels)`, for images `(batch, 3, H, W)`.
    pub fn embed(&self, images: &Tensor) -> candle_core::Result<Tensor> {
        let x = self.stem.forward(images, Activation::Relu)?;
        let mut x = max_pool_3x3_stride_2(&x)?;
        for block in &self.blocks {
            x = block.forward(&x)?;
        }
        x.mean(D::Minus1)?.mean(D::Minus1)
    }
}

/// Random weights for `config`, named like torchvision's, for tests. Deterministic per seed.
pub fn random_resnet(config: &ResNetConfig, seed: u64) -> HashMap<String, Tensor> {
    let mut w = RandomWeights::new(seed);
    w.conv_bn("conv1", "bn1", [config.stem_channels, 3, 7, 7]);
    let expansion = config.expansion();
    let mut in_channels = config.stem_channels;
    for (stage, (&count, &width)) in config.layers.iter().zip(&config.widths).enumerate() {
        for i in 0..count {
            let p = format!("layer{}.{i}", stage + 1);
            let n = |part: &str| format!("{p}.{part}");
            let stride = if i == 0 && stage > 0 { 2 } else { 1 };
            let out_channels = width * expansion;
            match config.block {
                ResNetBlock::Basic => {
                    w.conv_bn(&n("conv1"), &n("bn1"), [width, in_channels, 3, 3]);
                    w.conv_bn(&n("conv2"), &n("bn2"), [width, width, 3, 3]);
                }
                ResNetBlock::Bottleneck => {
                    w.conv_bn(&n("conv1"), &n("bn1"), [width, in_channels, 1, 1]);
                    w.conv_bn(&n("conv2"), &n("bn2"), [width, width, 3, 3]);
                    w.conv_bn(&n("conv3"), &n("bn3"), [out_channels, width, 1, 1]);
                }
            }
            if stride != 1 || in_channels != out_channels {
                w.conv_bn(
                    &n("downsample.0"),
                    &n("downsample.1"),
                    [out_channels, in_channels, 1, 1],
                );
            }
            in_channels = out_channels;
        }
    }
    w.tensors
}
