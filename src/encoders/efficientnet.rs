//! EfficientNet-Lite (Tan & Le, 2019; the "Lite" variants of the TensorFlow model garden:
//! ReLU6, no squeeze-and-excitation, stem and head not scaled) in Candle, with the weight names
//! of the PyTorch port that published EfficientNet-Lite0's ImageNet weights (`_conv_stem`,
//! `_blocks.N._expand_conv`, …). Convolutions pad like TensorFlow's `SAME` (asymmetric on
//! stride 2), as the weights were trained. Batch norms are folded into the preceding
//! convolutions when the model is loaded, so inference is convolutions, ReLU6 and adds.

use std::collections::HashMap;

use candle_core::{D, DType, Device, Module, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, Linear};

use super::EncoderError;

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

/// The architecture's sizes; `lite0()` is the published one. Tests use narrower variants.
#[derive(Clone, Debug)]
pub struct EfficientNetConfig {
    pub stages: Vec<Stage>,
    pub stem_channels: usize,
    pub head_channels: usize,
    pub num_classes: usize,
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

/// A convolution with its batch norm folded in, and TensorFlow `SAME` padding.
#[derive(Debug)]
enum ConvBn {
    /// A general convolution (the stem): candle's conv2d.
    Dense {
        conv: Conv2d,
        kernel: usize,
        stride: usize,
    },
    /// 1 × 1, stride 1: a matrix product over the pixels, `(out, in) · (in, H·W)`.
    Pointwise { weight: Tensor, bias: Tensor },
    /// One filter per channel: a direct loop (candle runs grouped convolutions one group at a
    /// time, which costs a kernel launch per channel).
    Depthwise {
        weight: Vec<f32>,
        bias: Vec<f32>,
        kernel: usize,
        stride: usize,
    },
}

impl ConvBn {
    fn load(
        weights: &Weights<'_>,
        conv: &str,
        bn: &str,
        groups: usize,
        stride: usize,
    ) -> Result<Self, EncoderError> {
        let w = weights.get(&format!("{conv}.weight"))?;
        let gamma = weights.get(&format!("{bn}.weight"))?;
        let beta = weights.get(&format!("{bn}.bias"))?;
        let mean = weights.get(&format!("{bn}.running_mean"))?;
        let var = weights.get(&format!("{bn}.running_var"))?;
        // y = gamma (conv(x) - mean) / sqrt(var + eps) + beta
        let scale = (gamma / (var + BATCH_NORM_EPS)?.sqrt()?)?;
        let bias = (beta - (mean * &scale)?)?;
        let w = w.broadcast_mul(&scale.reshape(((), 1, 1, 1))?)?;
        let (out_channels, in_per_group, kernel, _) = w.dims4()?;
        if groups > 1 && groups == out_channels && in_per_group == 1 {
            return Ok(ConvBn::Depthwise {
                weight: w.flatten_all()?.to_vec1::<f32>()?,
                bias: bias.to_vec1::<f32>()?,
                kernel,
                stride,
            });
        }
        if kernel == 1 && stride == 1 && groups == 1 {
            return Ok(ConvBn::Pointwise {
                weight: w.reshape((out_channels, in_per_group))?,
                bias: bias.reshape((out_channels, 1))?,
            });
        }
        let config = Conv2dConfig {
            padding: 0,
            stride,
            dilation: 1,
            groups,
            cudnn_fwd_algo: None,
        };
        Ok(ConvBn::Dense {
            conv: Conv2d::new(w, Some(bias), config),
            kernel,
            stride,
        })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            ConvBn::Dense {
                conv,
                kernel,
                stride,
            } => conv.forward(&same_padding(x, *kernel, *stride)?),
            ConvBn::Pointwise { weight, bias } => {
                let (n, c, h, w) = x.dims4()?;
                let y = weight
                    .broadcast_matmul(&x.reshape((n, c, h * w))?)?
                    .broadcast_add(bias)?;
                y.reshape((n, (), h, w))
            }
            ConvBn::Depthwise {
                weight,
                bias,
                kernel,
                stride,
            } => depthwise(x, weight, bias, *kernel, *stride),
        }
    }
}

/// TensorFlow `SAME` padding for one dimension: (output size, padding before).
fn same_geometry(size: usize, kernel: usize, stride: usize) -> (usize, usize) {
    let out = size.div_ceil(stride);
    let total = ((out - 1) * stride + kernel).saturating_sub(size);
    (out, total / 2)
}

/// Depthwise convolution with `SAME` padding, computed directly on the CPU, channels in
/// parallel.
fn depthwise(
    x: &Tensor,
    weight: &[f32],
    bias: &[f32],
    kernel: usize,
    stride: usize,
) -> candle_core::Result<Tensor> {
    use rayon::prelude::*;
    let (n, c, h, w) = x.dims4()?;
    let (oh, pad_top) = same_geometry(h, kernel, stride);
    let (ow, pad_left) = same_geometry(w, kernel, stride);
    let input = x.flatten_all()?.to_vec1::<f32>()?;
    // Each plane is copied into a zero-padded buffer, so that the inner loop runs over a row of
    // outputs with no bounds checks and, at stride 1, over contiguous memory the compiler
    // vectorises.
    let padded_h = (oh - 1) * stride + kernel;
    let padded_w = (ow - 1) * stride + kernel;
    let mut output = vec![0f32; n * c * oh * ow];
    output
        .par_chunks_mut(oh * ow)
        .enumerate()
        .for_each(|(plane, out)| {
            let channel = plane % c;
            let src = &input[plane * h * w..(plane + 1) * h * w];
            let filter = &weight[channel * kernel * kernel..(channel + 1) * kernel * kernel];
            let mut padded = vec![0f32; padded_h * padded_w];
            for y in 0..h {
                let py = y + pad_top;
                if py >= padded_h {
                    break;
                }
                let row = &src[y * w..(y + 1) * w];
                let take = w.min(padded_w.saturating_sub(pad_left));
                padded[py * padded_w + pad_left..py * padded_w + pad_left + take]
                    .copy_from_slice(&row[..take]);
            }
            out.fill(bias[channel]);
            for oy in 0..oh {
                let out_row = &mut out[oy * ow..(oy + 1) * ow];
                for ky in 0..kernel {
                    let in_row = &padded[(oy * stride + ky) * padded_w..][..padded_w];
                    for kx in 0..kernel {
                        let tap = filter[ky * kernel + kx];
                        if stride == 1 {
                            for (o, v) in out_row.iter_mut().zip(&in_row[kx..kx + ow]) {
                                *o += tap * v;
                            }
                        } else {
                            for (ox, o) in out_row.iter_mut().enumerate() {
                                *o += tap * in_row[ox * stride + kx];
                            }
                        }
                    }
                }
            }
        });
    Tensor::from_vec(output, (n, c, oh, ow), x.device())
}

/// TensorFlow `SAME` padding: the output is `ceil(input / stride)`; an odd total pad puts the
/// extra row and column at the bottom and right.
fn same_padding(x: &Tensor, kernel: usize, stride: usize) -> candle_core::Result<Tensor> {
    let pad = |size: usize| {
        let out = size.div_ceil(stride);
        ((out - 1) * stride + kernel).saturating_sub(size)
    };
    let (h, w) = (x.dim(2)?, x.dim(3)?);
    let (ph, pw) = (pad(h), pad(w));
    if ph == 0 && pw == 0 {
        return Ok(x.clone());
    }
    x.pad_with_zeros(2, ph / 2, ph - ph / 2)?
        .pad_with_zeros(3, pw / 2, pw - pw / 2)
}

fn relu6(x: &Tensor) -> candle_core::Result<Tensor> {
    x.clamp(0f32, 6f32)
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
            h = relu6(&expand.forward(&h)?)?;
        }
        h = relu6(&self.depthwise.forward(&h)?)?;
        h = self.project.forward(&h)?;
        if self.residual { h + x } else { Ok(h) }
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

/// Named weights being consumed; a missing or misshapen one is a clear error.
pub(super) struct Weights<'a> {
    tensors: &'a HashMap<String, Tensor>,
    device: &'a Device,
}

impl<'a> Weights<'a> {
    pub(super) fn new(tensors: &'a HashMap<String, Tensor>, device: &'a Device) -> Self {
        Self { tensors, device }
    }

    fn get(&self, name: &str) -> Result<Tensor, EncoderError> {
        let t = self
            .tensors
            .get(name)
            .ok_or_else(|| EncoderError::MissingWeight {
                name: name.to_owned(),
            })?;
        Ok(t.to_dtype(DType::F32)?.to_device(self.device)?)
    }
}

impl EfficientNet {
    pub(super) fn load(
        weights: &Weights<'_>,
        config: &EfficientNetConfig,
    ) -> Result<Self, EncoderError> {
        let stem = ConvBn::load(weights, "_conv_stem", "_bn0", 1, 2)?;
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
                                &format!("{p}._expand_conv"),
                                &format!("{p}._bn0"),
                                1,
                                1,
                            )
                        })
                        .transpose()?,
                    depthwise: ConvBn::load(
                        weights,
                        &format!("{p}._depthwise_conv"),
                        &format!("{p}._bn1"),
                        hidden,
                        stride,
                    )?,
                    project: ConvBn::load(
                        weights,
                        &format!("{p}._project_conv"),
                        &format!("{p}._bn2"),
                        1,
                        1,
                    )?,
                    residual: stride == 1 && input == output,
                });
            }
        }
        let head = ConvBn::load(weights, "_conv_head", "_bn1", 1, 1)?;
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
        let mut x = relu6(&self.stem.forward(images)?)?;
        for block in &self.blocks {
            x = block.forward(&x)?;
        }
        let x = relu6(&self.head.forward(&x)?)?;
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
    let mut state = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    let mut uniform = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    };
    let mut out = HashMap::new();
    let mut tensor = |name: String, shape: &[usize], scale: f32, offset: f32| {
        let n: usize = shape.iter().product();
        let data: Vec<f32> = (0..n).map(|_| offset + scale * uniform()).collect();
        #[expect(
            clippy::expect_used,
            reason = "the shape matches the data by construction"
        )]
        let t = Tensor::from_vec(data, shape, &Device::Cpu).expect("shape and data agree");
        out.insert(name, t);
    };
    let mut conv_bn = |conv: String, bn: String, shape: [usize; 4]| {
        let fan_in = (shape[1] * shape[2] * shape[3]) as f32;
        tensor(format!("{conv}.weight"), &shape, (3.0 / fan_in).sqrt(), 0.0);
        tensor(format!("{bn}.weight"), &[shape[0]], 0.1, 1.0);
        tensor(format!("{bn}.bias"), &[shape[0]], 0.1, 0.0);
        tensor(format!("{bn}.running_mean"), &[shape[0]], 0.1, 0.0);
        tensor(format!("{bn}.running_var"), &[shape[0]], 0.1, 1.0);
    };
    conv_bn(
        "_conv_stem".into(),
        "_bn0".into(),
        [config.stem_channels, 3, 3, 3],
    );
    let mut i = 0;
    let mut last = config.stem_channels;
    for &(repeats, kernel, _stride, expand, input, output) in &config.stages {
        for r in 0..repeats {
            let input = if r == 0 { input } else { output };
            let hidden = input * expand;
            let p = format!("_blocks.{i}");
            if expand != 1 {
                conv_bn(
                    format!("{p}._expand_conv"),
                    format!("{p}._bn0"),
                    [hidden, input, 1, 1],
                );
            }
            conv_bn(
                format!("{p}._depthwise_conv"),
                format!("{p}._bn1"),
                [hidden, 1, kernel, kernel],
            );
            conv_bn(
                format!("{p}._project_conv"),
                format!("{p}._bn2"),
                [output, hidden, 1, 1],
            );
            i += 1;
            last = output;
        }
    }
    conv_bn(
        "_conv_head".into(),
        "_bn1".into(),
        [config.head_channels, last, 1, 1],
    );
    tensor(
        "_fc.weight".into(),
        &[config.num_classes, config.head_channels],
        0.05,
        0.0,
    );
    tensor("_fc.bias".into(), &[config.num_classes], 0.05, 0.0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_direct_depthwise_loop_matches_candles_grouped_convolution() {
        let device = Device::Cpu;
        for (kernel, stride, size) in [(3, 1, 9), (3, 2, 10), (5, 2, 11), (5, 1, 7)] {
            let channels = 4;
            let x = Tensor::randn(0f32, 1.0, (2, channels, size, size + 1), &device).unwrap();
            let w = Tensor::randn(0f32, 1.0, (channels, 1, kernel, kernel), &device).unwrap();
            let b = Tensor::randn(0f32, 1.0, channels, &device).unwrap();
            let ours = depthwise(
                &x,
                &w.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                &b.to_vec1::<f32>().unwrap(),
                kernel,
                stride,
            )
            .unwrap();
            let config = Conv2dConfig {
                padding: 0,
                stride,
                dilation: 1,
                groups: channels,
                cudnn_fwd_algo: None,
            };
            let reference = Conv2d::new(w, Some(b), config)
                .forward(&same_padding(&x, kernel, stride).unwrap())
                .unwrap();
            assert_eq!(ours.dims(), reference.dims(), "k{kernel} s{stride}");
            let diff = (ours - reference)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(diff < 1e-4, "k{kernel} s{stride}: {diff}");
        }
    }

    #[test]
    fn same_padding_matches_tensorflow() {
        let x = Tensor::zeros((1, 1, 224, 224), DType::F32, &Device::Cpu).unwrap();
        // 3x3 stride 2 on 224: one extra row and column, at the bottom and right.
        let p = same_padding(&x, 3, 2).unwrap();
        assert_eq!(p.dims(), &[1, 1, 225, 225]);
        let p = same_padding(&x, 5, 1).unwrap();
        assert_eq!(p.dims(), &[1, 1, 228, 228]);
    }
}
