//! A BERT encoder forward for the CPU over packed windows: the tokens of every window in a
//! batch are stacked into one `(tokens, hidden)` matrix, so that each projection is a single
//! large matrix product with no padding, and attention, which only mixes tokens of the same
//! window, is computed window by window in plain loops (at note and sentence lengths it costs
//! a few percent of the projections). The bias and exact GELU after the first feed-forward
//! product are fused into one pass with a vectorisable erf.
//!
//! Same weights and same arithmetic as candle-transformers' `BertModel` (post-norm BERT,
//! absolute positions, token type 0, exact GELU); `TextEncoder` checks the two against each
//! other in its tests and uses this one on the CPU, candle-transformers' on other devices.

use candle_core::{CpuStorage, CustomOp1, InplaceOp1, InplaceOp2, Layout, Shape, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::Config;
use rayon::prelude::*;

/// One encoder layer's weights; projection matrices stored transposed, `(in, out)`.
struct Layer {
    /// Query, key and value side by side: `(hidden, 3 × hidden)`.
    qkv: Tensor,
    qkv_bias: Vec<f32>,
    output: Tensor,
    output_bias: Vec<f32>,
    norm1: Norm,
    intermediate: Tensor,
    intermediate_bias: Vec<f32>,
    ffn_output: Tensor,
    ffn_output_bias: Vec<f32>,
    norm2: Norm,
}

/// A layer norm's scale and shift.
struct Norm {
    weight: Vec<f32>,
    bias: Vec<f32>,
}

pub(in crate::encoders) struct PackedBert {
    words: Tensor,
    positions: Tensor,
    token_type: Tensor,
    norm: (Tensor, Tensor),
    layers: Vec<Layer>,
    heads: usize,
    eps: f32,
}

impl PackedBert {
    pub(in crate::encoders) fn load(
        vb: VarBuilder<'_>,
        config: &Config,
    ) -> candle_core::Result<Self> {
        let hidden = config.hidden_size;
        let heads = config.num_attention_heads;
        if heads == 0 || !hidden.is_multiple_of(heads) {
            candle_core::bail!("hidden_size must be a multiple of num_attention_heads");
        }
        let norm = |vb: VarBuilder<'_>| -> candle_core::Result<(Tensor, Tensor)> {
            Ok((vb.get(hidden, "weight")?, vb.get(hidden, "bias")?))
        };
        let values = |vb: VarBuilder<'_>| -> candle_core::Result<Norm> {
            let (weight, bias) = norm(vb)?;
            Ok(Norm {
                weight: weight.to_vec1()?,
                bias: bias.to_vec1()?,
            })
        };
        // (out, in) as stored → (in, out), contiguous, for `tokens × weight`.
        let transposed = |w: Tensor| w.t()?.contiguous();
        let embeddings = vb.pp("embeddings");
        let token_types = embeddings.get(
            (config.type_vocab_size, hidden),
            "token_type_embeddings.weight",
        )?;
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for i in 0..config.num_hidden_layers {
            let l = vb.pp(format!("encoder.layer.{i}"));
            let attention = l.pp("attention.self");
            let projection = |name: &str| -> candle_core::Result<(Tensor, Tensor)> {
                let p = attention.pp(name);
                Ok((p.get((hidden, hidden), "weight")?, p.get(hidden, "bias")?))
            };
            let (q, qb) = projection("query")?;
            let (k, kb) = projection("key")?;
            let (v, vb_) = projection("value")?;
            let qkv = transposed(Tensor::cat(&[&q, &k, &v], 0)?)?;
            let qkv_bias = Tensor::cat(&[&qb, &kb, &vb_], 0)?.to_vec1::<f32>()?;
            let out = l.pp("attention.output");
            let ffn = config.intermediate_size;
            layers.push(Layer {
                qkv,
                qkv_bias,
                output: transposed(out.get((hidden, hidden), "dense.weight")?)?,
                output_bias: out.get(hidden, "dense.bias")?.to_vec1()?,
                norm1: values(out.pp("LayerNorm"))?,
                intermediate: transposed(l.get((ffn, hidden), "intermediate.dense.weight")?)?,
                intermediate_bias: l.get(ffn, "intermediate.dense.bias")?.to_vec1::<f32>()?,
                ffn_output: transposed(l.get((hidden, ffn), "output.dense.weight")?)?,
                ffn_output_bias: l.get(hidden, "output.dense.bias")?.to_vec1()?,
                norm2: values(l.pp("output.LayerNorm"))?,
            });
        }
        Ok(Self {
            words: embeddings.get((config.vocab_size, hidden), "word_embeddings.weight")?,
            positions: embeddings.get(
                (config.max_position_embeddings, hidden),
                "position_embeddings.weight",
            )?,
            token_type: token_types.get(0)?,
            norm: norm(embeddings.pp("LayerNorm"))?,
            layers,
            heads,
            eps: config.layer_norm_eps as f32,
        })
    }

    /// The mean over its tokens of each window's last hidden states.
    pub(in crate::encoders) fn mean_pooled(
        &self,
        windows: &[&[u32]],
    ) -> candle_core::Result<Vec<Vec<f32>>> {
        let device = self.words.device();
        let ids: Vec<u32> = windows.iter().flat_map(|w| w.iter().copied()).collect();
        let positions: Vec<u32> = windows.iter().flat_map(|w| 0..w.len() as u32).collect();
        let lengths: Vec<usize> = windows.iter().map(|w| w.len()).collect();
        let tokens = ids.len();
        let ids = Tensor::from_vec(ids, tokens, device)?;
        let positions = Tensor::from_vec(positions, tokens, device)?;
        let x = self
            .words
            .index_select(&ids, 0)?
            .add(&self.positions.index_select(&positions, 0)?)?
            .broadcast_add(&self.token_type)?;
        let mut x = self.layer_norm(&x, &self.norm)?;
        for layer in &self.layers {
            let qkv = x.matmul(&layer.qkv)?;
            let context = qkv.apply_op1_no_bwd(&Attention {
                bias: &layer.qkv_bias,
                lengths: &lengths,
                heads: self.heads,
            })?;
            let attended = context.matmul(&layer.output)?;
            attended.inplace_op2(
                &x,
                &BiasResidualNorm {
                    bias: &layer.output_bias,
                    norm: &layer.norm1,
                    eps: self.eps,
                },
            )?;
            x = attended;
            let h = x.matmul(&layer.intermediate)?;
            h.inplace_op1(&BiasGelu {
                bias: &layer.intermediate_bias,
            })?;
            let out = h.matmul(&layer.ffn_output)?;
            out.inplace_op2(
                &x,
                &BiasResidualNorm {
                    bias: &layer.ffn_output_bias,
                    norm: &layer.norm2,
                    eps: self.eps,
                },
            )?;
            x = out;
        }
        let hidden = x.dim(1)?;
        let values = x.flatten_all()?.to_vec1::<f32>()?;
        let mut pooled = Vec::with_capacity(windows.len());
        let mut rows = values.chunks_exact(hidden);
        for &length in &lengths {
            let mut mean = vec![0f32; hidden];
            for row in rows.by_ref().take(length) {
                mean.iter_mut().zip(row).for_each(|(m, v)| *m += v);
            }
            mean.iter_mut().for_each(|m| *m /= length.max(1) as f32);
            pooled.push(mean);
        }
        Ok(pooled)
    }

    fn layer_norm(
        &self,
        x: &Tensor,
        (weight, bias): &(Tensor, Tensor),
    ) -> candle_core::Result<Tensor> {
        candle_nn::ops::layer_norm(x, weight, bias, self.eps)
    }
}

/// Self-attention of packed windows: input `(tokens, 3 × hidden)` (query, key, value before
/// their biases), output `(tokens, hidden)`; a token attends only to its own window.
struct Attention<'a> {
    bias: &'a [f32],
    lengths: &'a [usize],
    heads: usize,
}

impl CustomOp1 for Attention<'_> {
    fn name(&self) -> &'static str {
        "packed-attention"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(data) = storage else {
            candle_core::bail!("packed attention runs on f32");
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("packed attention needs a contiguous input");
        };
        let (tokens, width) = layout.shape().dims2()?;
        let hidden = width / 3;
        if width != 3 * hidden
            || self.bias.len() != width
            || self.lengths.iter().sum::<usize>() != tokens
        {
            candle_core::bail!("packed attention: the input does not match its windows");
        }
        let qkv = &data[start..end];
        let mut out = vec![0f32; tokens * hidden];
        // Each window's rows of the output, handed to one task each.
        let mut tasks = Vec::with_capacity(self.lengths.len());
        let mut rest = out.as_mut_slice();
        let mut first = 0;
        for &length in self.lengths {
            let (own, tail) = rest.split_at_mut(length * hidden);
            tasks.push((first, length, own));
            rest = tail;
            first += length;
        }
        let head_dim = hidden / self.heads;
        let arch = pulp::Arch::new();
        tasks.into_par_iter().for_each(|(first, length, out)| {
            arch.dispatch(WindowAttention {
                qkv: &qkv[first * width..(first + length) * width],
                bias: self.bias,
                out,
                length,
                heads: self.heads,
                head_dim,
            });
        });
        Ok((CpuStorage::F32(out), Shape::from((tokens, hidden))))
    }
}

/// One window's attention, run by `pulp` inside a function compiled for the CPU's SIMD level
/// (the loops below are written so that the compiler vectorises them there).
struct WindowAttention<'a> {
    /// The window's rows of query, key and value, before their biases.
    qkv: &'a [f32],
    bias: &'a [f32],
    /// The window's rows of the output, zeroed.
    out: &'a mut [f32],
    length: usize,
    heads: usize,
    head_dim: usize,
}

impl pulp::WithSimd for WindowAttention<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let (length, head_dim) = (self.length, self.head_dim);
        let hidden = self.heads * head_dim;
        let width = 3 * hidden;
        let mut window = self.qkv.to_vec();
        for row in window.chunks_exact_mut(width) {
            row.iter_mut().zip(self.bias).for_each(|(v, b)| *v += b);
        }
        let scale = 1.0 / (head_dim as f32).sqrt();
        let mut scores = vec![0f32; length];
        for head in 0..self.heads {
            let offset = head * head_dim;
            for i in 0..length {
                let q = &window[i * width + offset..][..head_dim];
                let mut max = f32::NEG_INFINITY;
                for (j, score) in scores.iter_mut().enumerate() {
                    let k = &window[j * width + hidden + offset..][..head_dim];
                    *score = dot(q, k) * scale;
                    max = max.max(*score);
                }
                let mut total = 0f32;
                for score in scores.iter_mut() {
                    *score = (*score - max).exp();
                    total += *score;
                }
                let context = &mut self.out[i * hidden + offset..][..head_dim];
                for (j, score) in scores.iter().enumerate() {
                    let weight = score / total;
                    let v = &window[j * width + 2 * hidden + offset..][..head_dim];
                    context
                        .iter_mut()
                        .zip(v)
                        .for_each(|(c, v)| *c += weight * v);
                }
            }
        }
    }
}

/// A dot product with eight running sums, which the compiler keeps in vector lanes (one
/// running sum would have to be added in order, value by value).
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut sums = [0f32; 8];
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a8
        .remainder()
        .iter()
        .zip(b8.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in a8.zip(b8) {
        for lane in 0..8 {
            sums[lane] += x[lane] * y[lane];
        }
    }
    sums.iter().sum::<f32>() + tail
}

/// `x = layer_norm(x + bias + residual)` row by row, in place on `(rows, hidden)`: the three
/// passes after an output projection in one, on the rayon threads the matrix products use
/// (candle's own element-wise ops would wake its second thread pool after every product).
struct BiasResidualNorm<'a> {
    bias: &'a [f32],
    norm: &'a Norm,
    eps: f32,
}

impl InplaceOp2 for BiasResidualNorm<'_> {
    fn name(&self) -> &'static str {
        "bias-residual-norm"
    }

    fn cpu_fwd(
        &self,
        storage: &mut CpuStorage,
        layout: &Layout,
        residual: &CpuStorage,
        residual_layout: &Layout,
    ) -> candle_core::Result<()> {
        let (CpuStorage::F32(data), CpuStorage::F32(residual)) = (storage, residual) else {
            candle_core::bail!("bias-residual-norm runs on f32");
        };
        let (Some((start, end)), Some((r_start, r_end))) = (
            layout.contiguous_offsets(),
            residual_layout.contiguous_offsets(),
        ) else {
            candle_core::bail!("bias-residual-norm needs contiguous tensors");
        };
        let hidden = self.bias.len();
        if hidden == 0
            || layout.shape() != residual_layout.shape()
            || layout.shape().dims().last() != Some(&hidden)
            || self.norm.weight.len() != hidden
        {
            candle_core::bail!("bias-residual-norm: the shapes do not match");
        }
        let arch = pulp::Arch::new();
        let rows_per_task = 16;
        data[start..end]
            .par_chunks_mut(hidden * rows_per_task)
            .zip(residual[r_start..r_end].par_chunks(hidden * rows_per_task))
            .for_each(|(rows, residual)| {
                arch.dispatch(BiasResidualNormJob {
                    rows,
                    residual,
                    op: self,
                })
            });
        Ok(())
    }
}

struct BiasResidualNormJob<'a> {
    rows: &'a mut [f32],
    residual: &'a [f32],
    op: &'a BiasResidualNorm<'a>,
}

impl pulp::WithSimd for BiasResidualNormJob<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let op = self.op;
        let hidden = op.bias.len();
        for (row, residual) in self
            .rows
            .chunks_exact_mut(hidden)
            .zip(self.residual.chunks_exact(hidden))
        {
            for ((v, b), r) in row.iter_mut().zip(op.bias).zip(residual) {
                *v += b + r;
            }
            let mean = sum8(row) / hidden as f32;
            row.iter_mut().for_each(|v| *v -= mean);
            let variance = dot(row, row) / hidden as f32;
            let scale = 1.0 / (variance + op.eps).sqrt();
            for ((v, w), b) in row.iter_mut().zip(&op.norm.weight).zip(&op.norm.bias) {
                *v = *v * scale * w + b;
            }
        }
    }
}

/// A sum with eight running sums (see [`dot`]).
#[inline(always)]
fn sum8(a: &[f32]) -> f32 {
    let mut sums = [0f32; 8];
    let chunks = a.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().sum();
    for x in chunks {
        for lane in 0..8 {
            sums[lane] += x[lane];
        }
    }
    sums.iter().sum::<f32>() + tail
}

/// Adds a per-column bias and applies the exact GELU, in place, on `(rows, columns)`.
struct BiasGelu<'a> {
    bias: &'a [f32],
}

impl InplaceOp1 for BiasGelu<'_> {
    fn name(&self) -> &'static str {
        "bias-gelu"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> candle_core::Result<()> {
        let CpuStorage::F32(data) = storage else {
            candle_core::bail!("bias-gelu runs on f32");
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("bias-gelu needs a contiguous tensor");
        };
        let columns = self.bias.len();
        if columns == 0 || layout.shape().dims().last() != Some(&columns) {
            candle_core::bail!("bias-gelu: the bias does not match the columns");
        }
        let arch = pulp::Arch::new();
        data[start..end]
            .par_chunks_mut(columns * 64)
            .for_each(|rows| {
                arch.dispatch(BiasGeluJob {
                    rows,
                    bias: self.bias,
                })
            });
        Ok(())
    }
}

/// Rows of [`BiasGelu`], run by `pulp` at the CPU's SIMD level.
struct BiasGeluJob<'a> {
    rows: &'a mut [f32],
    bias: &'a [f32],
}

impl pulp::WithSimd for BiasGeluJob<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        for row in self.rows.chunks_exact_mut(self.bias.len()) {
            for (x, b) in row.iter_mut().zip(self.bias) {
                let v = *x + b;
                *x = 0.5 * v * (1.0 + erf(v * std::f32::consts::FRAC_1_SQRT_2));
            }
        }
    }
}

/// erf for f32 as a rational function on [-4, 4] (beyond, ±1 to f32 precision): only
/// multiplications, additions and one division (no `mul_add`, which is a library call on
/// CPUs the build does not assume FMA for), so that the compiler vectorises the loop that
/// calls it. Absolute error below 2e-7 (checked against the series in the tests).
#[inline(always)]
fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = -2.726_142_3e-10_f32;
    p = p * x2 + 2.770_681_4e-8;
    p = p * x2 + -2.101_024e-6;
    p = p * x2 + -5.692_506_4e-5;
    p = p * x2 + -7.349_906_3e-4;
    p = p * x2 + -2.954_6e-3;
    p = p * x2 + -1.609_603_3e-2;
    let mut q = -1.456_607_2e-5_f32;
    q = q * x2 + -2.133_740_6e-4;
    q = q * x2 + -1.682_827e-3;
    q = q * x2 + -7.373_329e-3;
    q = q * x2 + -1.426_474e-2;
    x * p / q
}

#[cfg(test)]
mod tests {
    use super::erf;

    /// erf by its Taylor series in f64 (converges everywhere; enough terms for |x| ≤ 4).
    fn reference_erf(x: f64) -> f64 {
        let mut term = x;
        let mut sum = x;
        for n in 1..200 {
            term *= -x * x / n as f64;
            sum += term / (2 * n + 1) as f64;
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn erf_is_accurate_to_single_precision() {
        let mut worst = 0f64;
        for i in -6000..=6000 {
            let x = i as f64 / 1000.0;
            let expected = if x.abs() > 4.5 {
                x.signum()
            } else {
                reference_erf(x)
            };
            worst = worst.max((f64::from(erf(x as f32)) - expected).abs());
        }
        assert!(worst < 2e-6, "worst error {worst}");
    }
}
