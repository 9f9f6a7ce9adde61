//! Building blocks shared by the convolutional encoders: named weights, convolutions with
//! their batch norm folded in (padded like TensorFlow's `SAME` or symmetrically like PyTorch),
//! the direct depthwise loop, and deterministic random numbers for test weights.

use std::collections::HashMap;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Conv2d, Conv2dConfig};

use super::fused::{Activation, Depthwise, bias_activation};
use super::im2col::{ConvGeometry, ConvMatrix, dense_conv};
use crate::encoders::EncoderError;

/// How a convolution pads its input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in crate::encoders) enum Padding {
    /// TensorFlow's `SAME`: output `ceil(input / stride)`, an odd total pad at the bottom/right.
    Same,
    /// PyTorch's `padding=p`: `p` on every side.
    Symmetric(usize),
}

/// A convolution with its batch norm folded in.
#[derive(Debug)]
pub(in crate::encoders) enum ConvBn {
    /// A general convolution: tiled im2col and GEMM on the CPU, candle's conv2d elsewhere.
    Dense {
        /// Without bias: the bias is added with the activation, in one pass.
        conv: Conv2d,
        /// The weight as an `(out, in·k·k)` matrix, on the CPU.
        matrix: Option<ConvMatrix>,
        bias: (Vec<f32>, Tensor),
        kernel: usize,
        stride: usize,
        padding: Padding,
    },
    /// 1 × 1, stride 1: a matrix product over the pixels, `(out, in) · (in, H·W)`.
    Pointwise {
        weight: Tensor,
        bias: (Vec<f32>, Tensor),
    },
    /// One filter per channel: a direct loop (candle runs grouped convolutions one group at a
    /// time, which costs a kernel launch per channel).
    Depthwise {
        weight: Vec<f32>,
        bias: Vec<f32>,
        kernel: usize,
        stride: usize,
        padding: Padding,
    },
}

/// Where a convolution's weights are and how it runs.
#[derive(Clone, Copy, Debug)]
pub(in crate::encoders) struct ConvSpec<'a> {
    pub conv: &'a str,
    pub bn: &'a str,
    pub groups: usize,
    pub stride: usize,
    pub padding: Padding,
    pub batch_norm_eps: f64,
}

impl ConvBn {
    pub(in crate::encoders) fn load(
        weights: &Weights<'_>,
        spec: ConvSpec<'_>,
    ) -> Result<Self, EncoderError> {
        let ConvSpec {
            conv,
            bn,
            groups,
            stride,
            padding,
            batch_norm_eps,
        } = spec;
        let w = weights.get(&format!("{conv}.weight"))?;
        let gamma = weights.get(&format!("{bn}.weight"))?;
        let beta = weights.get(&format!("{bn}.bias"))?;
        let mean = weights.get(&format!("{bn}.running_mean"))?;
        let var = weights.get(&format!("{bn}.running_var"))?;
        // y = gamma (conv(x) - mean) / sqrt(var + eps) + beta
        let scale = (gamma / (var + batch_norm_eps)?.sqrt()?)?;
        let bias = (beta - (mean * &scale)?)?;
        let w = w.broadcast_mul(&scale.reshape(((), 1, 1, 1))?)?;
        let (out_channels, in_per_group, kernel, _) = w.dims4()?;
        // The direct loop is CPU code; on a GPU, candle's grouped convolution runs instead.
        if groups > 1 && groups == out_channels && in_per_group == 1 && weights.device.is_cpu() {
            return Ok(ConvBn::Depthwise {
                weight: w.flatten_all()?.to_vec1::<f32>()?,
                bias: bias.to_vec1::<f32>()?,
                kernel,
                stride,
                padding,
            });
        }
        if kernel == 1
            && stride == 1
            && groups == 1
            && matches!(padding, Padding::Same | Padding::Symmetric(0))
        {
            return Ok(ConvBn::Pointwise {
                weight: w.reshape((out_channels, in_per_group))?,
                bias: (bias.to_vec1::<f32>()?, bias),
            });
        }
        let config = Conv2dConfig {
            padding: match padding {
                Padding::Same => 0,
                Padding::Symmetric(p) => p,
            },
            stride,
            dilation: 1,
            groups,
            cudnn_fwd_algo: None,
        };
        let matrix = (weights.device.is_cpu() && groups == 1)
            .then(|| -> candle_core::Result<_> {
                Ok(ConvMatrix {
                    weight: w.flatten_all()?.to_vec1::<f32>()?,
                    bias: bias.to_vec1::<f32>()?,
                    out_channels,
                })
            })
            .transpose()?;
        Ok(ConvBn::Dense {
            matrix,
            conv: Conv2d::new(w, None, config),
            bias: (bias.to_vec1::<f32>()?, bias),
            kernel,
            stride,
            padding,
        })
    }

    /// The convolution, its folded batch norm and then `activation`.
    pub(in crate::encoders) fn forward(
        &self,
        x: &Tensor,
        activation: Activation,
    ) -> candle_core::Result<Tensor> {
        self.forward_residual(x, None, activation)
    }

    /// The convolution and its folded batch norm, plus `residual` (of the output's shape), then
    /// `activation`: on the CPU in the pass that writes the result.
    pub(in crate::encoders) fn forward_residual(
        &self,
        x: &Tensor,
        residual: Option<&Tensor>,
        activation: Activation,
    ) -> candle_core::Result<Tensor> {
        match self {
            ConvBn::Dense {
                conv,
                matrix,
                bias,
                kernel,
                stride,
                padding,
            } => {
                if let (Some(matrix), true) = (matrix, x.device().is_cpu()) {
                    let (_, _, h, w) = x.dims4()?;
                    let geometry = ConvGeometry {
                        kernel: *kernel,
                        stride: *stride,
                        rows: geometry(*padding, h, *kernel, *stride),
                        columns: geometry(*padding, w, *kernel, *stride),
                    };
                    return dense_conv(x, matrix, geometry, residual, activation);
                }
                let y = match padding {
                    Padding::Same => conv.forward(&same_padding(x, *kernel, *stride)?)?,
                    Padding::Symmetric(_) => conv.forward(x)?,
                };
                bias_activation(y, Some((&bias.0, &bias.1)), residual, activation)
            }
            ConvBn::Pointwise { weight, bias } => {
                let (n, c, h, w) = x.dims4()?;
                let y = weight.broadcast_matmul(&x.reshape((n, c, h * w))?)?;
                let residual = residual.map(|r| r.reshape(y.dims())).transpose()?;
                let y =
                    bias_activation(y, Some((&bias.0, &bias.1)), residual.as_ref(), activation)?;
                y.reshape((n, (), h, w))
            }
            ConvBn::Depthwise {
                weight,
                bias,
                kernel,
                stride,
                padding,
            } => match residual {
                None => depthwise(x, weight, bias, *kernel, *stride, *padding, activation),
                Some(r) => {
                    let y = depthwise(
                        x,
                        weight,
                        bias,
                        *kernel,
                        *stride,
                        *padding,
                        Activation::None,
                    )?;
                    bias_activation(y, None, Some(r), activation)
                }
            },
        }
    }
}

/// Output size and padding before, for one dimension.
fn geometry(padding: Padding, size: usize, kernel: usize, stride: usize) -> (usize, usize) {
    match padding {
        Padding::Same => {
            let out = size.div_ceil(stride);
            let total = ((out - 1) * stride + kernel).saturating_sub(size);
            (out, total / 2)
        }
        Padding::Symmetric(p) => ((size + 2 * p).saturating_sub(kernel) / stride + 1, p),
    }
}

/// Depthwise convolution computed directly on the CPU, channels in parallel, followed by
/// `activation`.
fn depthwise(
    x: &Tensor,
    weight: &[f32],
    bias: &[f32],
    kernel: usize,
    stride: usize,
    padding: Padding,
    activation: Activation,
) -> candle_core::Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    x.contiguous()?.apply_op1_no_bwd(&Depthwise {
        weight,
        bias,
        kernel,
        stride,
        rows: geometry(padding, h, kernel, stride),
        columns: geometry(padding, w, kernel, stride),
        activation,
    })
}

/// TensorFlow `SAME` padding: the output is `ceil(input / stride)`; an odd total pad puts the
/// extra row and column at the bottom and right.
pub(in crate::encoders) fn same_padding(
    x: &Tensor,
    kernel: usize,
    stride: usize,
) -> candle_core::Result<Tensor> {
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

/// Named weights being consumed; a missing or misshapen one is a clear error.
pub(in crate::encoders) struct Weights<'a> {
    tensors: &'a HashMap<String, Tensor>,
    device: &'a Device,
}

impl<'a> Weights<'a> {
    pub(in crate::encoders) fn has(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    pub(in crate::encoders) fn new(
        tensors: &'a HashMap<String, Tensor>,
        device: &'a Device,
    ) -> Self {
        Self { tensors, device }
    }

    pub(in crate::encoders) fn get(&self, name: &str) -> Result<Tensor, EncoderError> {
        let t = self
            .tensors
            .get(name)
            .ok_or_else(|| EncoderError::MissingWeight {
                name: name.to_owned(),
            })?;
        Ok(t.to_dtype(DType::F32)?.to_device(self.device)?)
    }
}

/// Random test weights, named and shaped like published ones, the same on every machine: a
/// 64-bit LCG gives uniform numbers in [-1, 1).
pub(in crate::encoders) struct RandomWeights {
    state: u64,
    pub(in crate::encoders) tensors: HashMap<String, Tensor>,
}

impl RandomWeights {
    pub(in crate::encoders) fn new(seed: u64) -> Self {
        Self {
            state: seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1),
            tensors: HashMap::new(),
        }
    }

    fn uniform(&mut self) -> f32 {
        self.state = self
            .state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    /// `offset + scale × uniform` for every element.
    pub(in crate::encoders) fn tensor(
        &mut self,
        name: String,
        dims: &[usize],
        scale: f32,
        offset: f32,
    ) {
        let n: usize = dims.iter().product();
        let data: Vec<f32> = (0..n).map(|_| offset + scale * self.uniform()).collect();
        if let Ok(t) = Tensor::from_vec(data, dims, &Device::Cpu) {
            self.tensors.insert(name, t);
        }
    }

    /// A linear layer's `weight` (`out × in`, scaled for its fan-in) and `bias`.
    pub(in crate::encoders) fn linear(&mut self, name: &str, out: usize, input: usize) {
        self.tensor(
            format!("{name}.weight"),
            &[out, input],
            (3.0 / input as f32).sqrt(),
            0.0,
        );
        self.tensor(format!("{name}.bias"), &[out], 0.1, 0.0);
    }

    /// A convolution (`shape` = out, in, kh, kw) and its batch norm.
    pub(in crate::encoders) fn conv_bn(&mut self, conv: &str, bn: &str, shape: [usize; 4]) {
        let fan_in = (shape[1] * shape[2] * shape[3]) as f32;
        self.tensor(format!("{conv}.weight"), &shape, (3.0 / fan_in).sqrt(), 0.0);
        self.tensor(format!("{bn}.weight"), &[shape[0]], 0.1, 1.0);
        self.tensor(format!("{bn}.bias"), &[shape[0]], 0.1, 0.0);
        self.tensor(format!("{bn}.running_mean"), &[shape[0]], 0.1, 0.0);
        self.tensor(format!("{bn}.running_var"), &[shape[0]], 0.1, 1.0);
    }
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
                Padding::Same,
                Activation::None,
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
