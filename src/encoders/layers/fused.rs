//! CPU kernels that fuse what candle runs as separate passes over a tensor: a per-channel bias
//! and the activation after a matrix product (in place, one pass instead of three for ReLU6:
//! add, maximum, minimum), and the depthwise convolution with its activation, reading candle's
//! storage directly instead of copying it out. Other devices take the plain candle ops.

use candle_core::{CpuStorage, InplaceOp1, Layout, Shape, Storage, Tensor};
use rayon::prelude::*;

/// Planes below this many values are processed on one thread.
const PARALLEL_MIN: usize = 1 << 14;

/// The activation that follows a convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in crate::encoders) enum Activation {
    None,
    Relu,
    Relu6,
}

impl Activation {
    #[inline(always)]
    pub(in crate::encoders) fn apply(self, x: f32) -> f32 {
        match self {
            Activation::None => x,
            Activation::Relu => x.max(0.0),
            Activation::Relu6 => x.clamp(0.0, 6.0),
        }
    }

    /// The activation with candle's ops (any device).
    pub(in crate::encoders) fn on(self, x: Tensor) -> candle_core::Result<Tensor> {
        match self {
            Activation::None => Ok(x),
            Activation::Relu => x.relu(),
            Activation::Relu6 => x.clamp(0f32, 6f32),
        }
    }
}

/// Adds `bias[channel]` and a residual, then applies the activation, in place, on
/// `(n, channels, plane…)`.
struct BiasActivation<'a> {
    bias: Option<&'a [f32]>,
    /// Values of the same shape, contiguous, added before the activation.
    residual: Option<&'a [f32]>,
    activation: Activation,
}

impl InplaceOp1 for BiasActivation<'_> {
    fn name(&self) -> &'static str {
        "bias-activation"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> candle_core::Result<()> {
        let CpuStorage::F32(data) = storage else {
            candle_core::bail!("bias-activation runs on f32 tensors");
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("bias-activation needs a contiguous tensor");
        };
        let dims = layout.dims();
        let channels = dims.get(1).copied().unwrap_or(1).max(1);
        let plane: usize = dims.iter().skip(2).product::<usize>().max(1);
        let (bias, activation, residual) = (self.bias, self.activation, self.residual);
        let data = &mut data[start..end];
        if residual.is_some_and(|r| r.len() != data.len()) {
            candle_core::bail!("bias-activation: the residual's shape differs");
        }
        let arch = pulp::Arch::new();
        let run = |(i, chunk): (usize, &mut [f32])| {
            arch.dispatch(BiasJob {
                residual: residual.map(|r| &r[i * plane..][..chunk.len()]),
                values: chunk,
                bias: bias.map_or(0.0, |b| b[i % channels]),
                activation,
            });
        };
        if data.len() >= PARALLEL_MIN {
            data.par_chunks_mut(plane).enumerate().for_each(run);
        } else {
            data.chunks_mut(plane).enumerate().for_each(run);
        }
        Ok(())
    }
}

/// One plane of [`BiasActivation`], run by `pulp` at the CPU's SIMD level.
struct BiasJob<'a> {
    values: &'a mut [f32],
    residual: Option<&'a [f32]>,
    bias: f32,
    activation: Activation,
}

impl pulp::WithSimd for BiasJob<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let (bias, activation) = (self.bias, self.activation);
        match self.residual {
            Some(residual) => {
                for (v, &r) in self.values.iter_mut().zip(residual) {
                    *v = activation.apply(*v + bias + r);
                }
            }
            None => {
                for v in self.values.iter_mut() {
                    *v = activation.apply(*v + bias);
                }
            }
        }
    }
}

/// `activation(x + bias[channel] + residual)` for `x` of shape `(n, channels, …)` that the
/// caller owns (a fresh result): in place on the CPU, with candle's ops elsewhere.
pub(in crate::encoders) fn bias_activation(
    x: Tensor,
    bias: Option<(&[f32], &Tensor)>,
    residual: Option<&Tensor>,
    activation: Activation,
) -> candle_core::Result<Tensor> {
    if x.device().is_cpu()
        && x.is_contiguous()
        && residual.is_none_or(|r| r.is_contiguous() && r.dims() == x.dims())
    {
        let guard = residual.map(Tensor::storage_and_layout);
        let residual = match &guard {
            Some((storage, layout)) => match &**storage {
                Storage::Cpu(CpuStorage::F32(values)) => {
                    Some(&values[layout.start_offset()..][..x.elem_count()])
                }
                _ => candle_core::bail!("bias-activation: the residual is not f32 on the CPU"),
            },
            None => None,
        };
        x.inplace_op1(&BiasActivation {
            bias: bias.map(|b| b.0),
            residual,
            activation,
        })?;
        drop(guard);
        return Ok(x);
    }
    let x = match bias {
        Some((_, b)) => {
            // (channels, 1, …, 1): one bias per channel, whatever follows the channel axis.
            let mut shape = vec![b.elem_count()];
            shape.resize(x.rank().saturating_sub(1), 1);
            x.broadcast_add(&b.reshape(shape)?)?
        }
        None => x,
    };
    let x = match residual {
        Some(r) => (x + r)?,
        None => x,
    };
    activation.on(x)
}

/// A custom op's input: its values and its `(n, c, h, w)` dimensions, if contiguous f32.
fn nchw_input<'a>(
    storage: &'a CpuStorage,
    layout: &Layout,
    op: &str,
) -> candle_core::Result<(&'a [f32], [usize; 4])> {
    let values = storage.as_slice::<f32>()?;
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("{op} needs a contiguous input");
    };
    let &[n, c, h, w] = layout.dims() else {
        candle_core::bail!("{op} needs (n, c, h, w)");
    };
    Ok((&values[start..end], [n, c, h, w]))
}

/// 3 × 3 max pooling at stride 2 with one row and column of padding (ResNet's stem), windows
/// clipped to the image as PyTorch's −∞ padding makes them: in parallel over planes, without
/// copying the input into a padded tensor first.
struct MaxPool3x3Stride2;

impl candle_core::CustomOp1 for MaxPool3x3Stride2 {
    fn name(&self) -> &'static str {
        "max-pool-3x3-stride-2"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (input, [n, c, h, w]) = nchw_input(storage, layout, "max pool")?;
        if h == 0 || w == 0 {
            candle_core::bail!("max pool of an empty image");
        }
        let (oh, ow) = ((h - 1) / 2 + 1, (w - 1) / 2 + 1);
        let mut output = vec![0f32; n * c * oh * ow];
        output
            .par_chunks_mut(oh * ow)
            .zip(input.par_chunks(h * w))
            .for_each(|(out, plane)| {
                let mut rows_max = vec![0f32; w];
                for oy in 0..oh {
                    let (top, bottom) = ((2 * oy).saturating_sub(1), (2 * oy + 1).min(h - 1));
                    rows_max.copy_from_slice(&plane[top * w..(top + 1) * w]);
                    for iy in top + 1..=bottom {
                        for (m, &v) in rows_max.iter_mut().zip(&plane[iy * w..(iy + 1) * w]) {
                            *m = m.max(v);
                        }
                    }
                    for (ox, o) in out[oy * ow..(oy + 1) * ow].iter_mut().enumerate() {
                        let (left, right) = ((2 * ox).saturating_sub(1), (2 * ox + 1).min(w - 1));
                        *o = rows_max[left..=right]
                            .iter()
                            .copied()
                            .fold(f32::NEG_INFINITY, f32::max);
                    }
                }
            });
        Ok((CpuStorage::F32(output), Shape::from((n, c, oh, ow))))
    }
}

/// 3 × 3 max pooling, stride 2, padding 1, as PyTorch's `MaxPool2d(3, 2, 1)`.
pub(in crate::encoders) fn max_pool_3x3_stride_2(x: &Tensor) -> candle_core::Result<Tensor> {
    if x.device().is_cpu() {
        return x.contiguous()?.apply_op1_no_bwd(&MaxPool3x3Stride2);
    }
    // Elsewhere: pad with the lowest value, so that padding never wins a window.
    let (n, c, h, w) = x.dims4()?;
    let low = |rows, columns| Tensor::full(f32::MIN, (n, c, rows, columns), x.device());
    let x = Tensor::cat(&[&low(1, w)?, x, &low(1, w)?], 2)?;
    let x = Tensor::cat(&[&low(h + 2, 1)?, &x, &low(h + 2, 1)?], 3)?;
    x.max_pool2d_with_stride(3, 2)
}

/// A depthwise convolution's parameters, with its output geometry.
pub(in crate::encoders) struct Depthwise<'a> {
    pub weight: &'a [f32],
    pub bias: &'a [f32],
    pub kernel: usize,
    pub stride: usize,
    /// Output size and padding before, per dimension.
    pub rows: (usize, usize),
    pub columns: (usize, usize),
    pub activation: Activation,
}

impl candle_core::CustomOp1 for Depthwise<'_> {
    fn name(&self) -> &'static str {
        "depthwise"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (input, [n, c, h, w]) = nchw_input(storage, layout, "depthwise")?;
        let (kernel, stride) = (self.kernel, self.stride);
        let ((oh, pad_top), (ow, pad_left)) = (self.rows, self.columns);
        let geometry = PlaneGeometry::new(h, w, oh, ow, pad_top, pad_left, kernel, stride);
        let geometry = &geometry;
        let arch = pulp::Arch::new();
        let mut output = vec![0f32; n * c * oh * ow];
        output
            .par_chunks_mut(oh * ow)
            .enumerate()
            .for_each(|(plane, out)| {
                let channel = plane % c;
                let src = &input[plane * h * w..(plane + 1) * h * w];
                let filter =
                    &self.weight[channel * kernel * kernel..(channel + 1) * kernel * kernel];
                // Compiled for the CPU's widest vectors (AVX2 / AVX-512), chosen at run time.
                arch.dispatch(PlaneJob {
                    geometry,
                    src,
                    filter,
                    bias: self.bias[channel],
                    activation: self.activation,
                    out,
                });
            });
        Ok((CpuStorage::F32(output), Shape::from((n, c, oh, ow))))
    }
}

/// One plane's geometry. The input plane is copied into a zero-padded buffer whose rows hold
/// their columns by phase (column `j` in phase `j % stride`), so that for every tap the inner
/// loop reads consecutive values, at stride 2 as at stride 1, and the compiler vectorises it.
struct PlaneGeometry {
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
    pad_top: usize,
    pad_left: usize,
    kernel: usize,
    stride: usize,
    padded_h: usize,
    padded_w: usize,
    /// Where each phase starts within a padded row.
    starts: Vec<usize>,
    /// Where input column `x` goes within a padded row.
    destinations: Vec<usize>,
}

/// One plane's convolution, run by `pulp` inside a function compiled for the CPU's SIMD level.
struct PlaneJob<'a> {
    geometry: &'a PlaneGeometry,
    src: &'a [f32],
    filter: &'a [f32],
    bias: f32,
    activation: Activation,
    out: &'a mut [f32],
}

impl pulp::WithSimd for PlaneJob<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        self.geometry
            .convolve(self.src, self.filter, self.bias, self.activation, self.out);
    }
}

impl PlaneGeometry {
    #[allow(clippy::too_many_arguments)]
    fn new(
        h: usize,
        w: usize,
        oh: usize,
        ow: usize,
        pad_top: usize,
        pad_left: usize,
        kernel: usize,
        stride: usize,
    ) -> Self {
        let padded_w = (ow - 1) * stride + kernel;
        let starts: Vec<usize> = (0..stride)
            .map(|p| (0..p).map(|q| (padded_w - q).div_ceil(stride)).sum())
            .collect();
        let take = w.min(padded_w.saturating_sub(pad_left));
        let destinations = (0..take)
            .map(|x| {
                let col = x + pad_left;
                starts[col % stride] + col / stride
            })
            .collect();
        Self {
            h,
            w,
            oh,
            ow,
            pad_top,
            pad_left,
            kernel,
            stride,
            padded_h: (oh - 1) * stride + kernel,
            padded_w,
            starts,
            destinations,
        }
    }

    #[inline(always)]
    fn convolve(
        &self,
        src: &[f32],
        filter: &[f32],
        bias: f32,
        activation: Activation,
        out: &mut [f32],
    ) {
        let Self {
            h,
            w,
            oh,
            ow,
            pad_top,
            pad_left,
            kernel,
            stride,
            padded_h,
            padded_w,
            ref starts,
            ref destinations,
        } = *self;
        let mut padded = vec![0f32; padded_h * padded_w];
        let take = destinations.len();
        for y in 0..h {
            let py = y + pad_top;
            if py >= padded_h {
                break;
            }
            let row = &mut padded[py * padded_w..(py + 1) * padded_w];
            let values = &src[y * w..y * w + take];
            if stride == 1 {
                row[pad_left..pad_left + take].copy_from_slice(values);
            } else {
                for (&to, v) in destinations.iter().zip(values) {
                    row[to] = *v;
                }
            }
        }
        out.fill(bias);
        for oy in 0..oh {
            let out_row = &mut out[oy * ow..(oy + 1) * ow];
            for ky in 0..kernel {
                let in_row = &padded[(oy * stride + ky) * padded_w..][..padded_w];
                for kx in 0..kernel {
                    let tap = filter[ky * kernel + kx];
                    let from = starts[kx % stride] + kx / stride;
                    for (o, v) in out_row.iter_mut().zip(&in_row[from..from + ow]) {
                        *o += tap * v;
                    }
                }
            }
            if activation != Activation::None {
                for o in out_row.iter_mut() {
                    *o = activation.apply(*o);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn max_pool_matches_padding_with_the_lowest_value() {
        let device = Device::Cpu;
        for (h, w) in [(7, 9), (8, 8), (1, 3), (2, 1)] {
            let x = Tensor::randn(0f32, 1.0, (2, 3, h, w), &device).unwrap();
            let fast = max_pool_3x3_stride_2(&x).unwrap();
            let low = |rows, columns| Tensor::full(f32::MIN, (2, 3, rows, columns), &device);
            let padded = Tensor::cat(&[&low(1, w).unwrap(), &x, &low(1, w).unwrap()], 2).unwrap();
            let padded = Tensor::cat(
                &[&low(h + 2, 1).unwrap(), &padded, &low(h + 2, 1).unwrap()],
                3,
            )
            .unwrap();
            let reference = padded.max_pool2d_with_stride(3, 2).unwrap();
            assert_eq!(fast.dims(), reference.dims(), "{h} × {w}");
            let same = fast.flatten_all().unwrap().to_vec1::<f32>().unwrap()
                == reference.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert!(same, "{h} × {w}");
        }
    }

    #[test]
    fn the_in_place_kernel_and_the_other_devices_path_agree_on_four_dimensions() {
        let device = Device::Cpu;
        let bias_values = vec![0.5f32, -2.0, 7.0];
        let bias = Tensor::new(bias_values.as_slice(), &device).unwrap();
        // (n, c, h, w) = (2, 3, 4, 5), with values either side of the ReLU6 bounds.
        let x = Tensor::randn(0f32, 4.0, (2, 3, 4, 5), &device).unwrap();
        let residual = Tensor::randn(0f32, 1.0, (2, 3, 4, 5), &device).unwrap();
        let fused = bias_activation(
            x.copy().unwrap(),
            Some((&bias_values, &bias)),
            Some(&residual),
            Activation::Relu6,
        )
        .unwrap();
        // A non-contiguous view takes the path other devices take.
        let strided = x.transpose(2, 3).unwrap();
        assert!(!strided.is_contiguous());
        let residual_t = residual.transpose(2, 3).unwrap();
        let plain = bias_activation(
            strided,
            Some((&bias_values, &bias)),
            Some(&residual_t),
            Activation::Relu6,
        )
        .unwrap()
        .transpose(2, 3)
        .unwrap();
        let diff = (fused - plain)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(diff < 1e-6, "{diff}");
    }
}
