//! Dense convolutions on the CPU as tiled im2col and a matrix product, with the folded batch
//! norm's bias and the activation applied as the result is written out.
//!
//! candle's own CPU convolution spends most of its time outside the matrix product: it copies
//! the whole input to NHWC on one thread, gathers each column value separately (a strided write
//! per value) and scatters the result back to NCHW. Here the output pixels are cut into tiles
//! (a band of rows of one image, or several whole images when their planes are small, so that
//! the late, small layers still make wide products) and, for each tile, in parallel:
//! 1. the column matrix `(C·k·k, pixels)` is filled a source row at a time (`copy_from_slice`
//!    at stride 1), small enough to stay in cache;
//! 2. `(O, C·k·k) · (C·k·k, pixels)` with the `gemm` crate (candle's GEMM), single-threaded
//!    when there are enough tiles to keep every core busy, multi-threaded otherwise;
//!
//! then every output row `(image, channel)` gathers its pixels from the tiles, in parallel,
//! as `activation(y + bias)`.

use candle_core::{CpuStorage, Device, Storage, Tensor};
use rayon::prelude::*;

use super::fused::Activation;

/// Output pixels per tile: the column matrix of a 3 × 3 convolution over 256 channels is then
/// 2304 × 512 values (4.5 MiB at most for the widest layers, 1.1 MiB for the common ones).
const TILE_PIXELS: usize = 512;

/// The geometry of one dense convolution.
#[derive(Clone, Copy, Debug)]
pub(in crate::encoders) struct ConvGeometry {
    pub kernel: usize,
    pub stride: usize,
    /// (output size, padding before) for rows and for columns.
    pub rows: (usize, usize),
    pub columns: (usize, usize),
}

/// A dense convolution's weight as an `(out, in·k·k)` matrix in PyTorch's `(c, ky, kx)` order,
/// with its bias.
#[derive(Debug)]
pub(in crate::encoders) struct ConvMatrix {
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    pub out_channels: usize,
}

/// A tile of output pixels: `images` whole images from `first_image`, or output rows
/// `first_row..first_row + rows` of one image.
#[derive(Clone, Copy, Debug)]
struct Tile {
    first_image: usize,
    images: usize,
    first_row: usize,
    rows: usize,
}

/// `activation(conv(x) + bias)` for `x` of shape `(n, c, h, w)` on the CPU.
pub(in crate::encoders) fn dense_conv(
    x: &Tensor,
    matrix: &ConvMatrix,
    geometry: ConvGeometry,
    residual: Option<&Tensor>,
    activation: Activation,
) -> candle_core::Result<Tensor> {
    let x = x.contiguous()?;
    let (n, c, h, w) = x.dims4()?;
    let (o, k) = (matrix.out_channels, c * geometry.kernel * geometry.kernel);
    if matrix.weight.len() != o * k || matrix.bias.len() != o {
        candle_core::bail!(
            "dense convolution: {} weights for {o} × {c} × {} × {}",
            matrix.weight.len(),
            geometry.kernel,
            geometry.kernel
        );
    }
    let (out_h, out_w) = (geometry.rows.0, geometry.columns.0);
    let plane = out_h * out_w;
    let threads = rayon::current_num_threads();
    let tiles = tiles(n, out_h, out_w, threads);
    let parallel_gemm = tiles.len() < threads;
    let (storage, layout) = x.storage_and_layout();
    let Storage::Cpu(CpuStorage::F32(data)) = &*storage else {
        candle_core::bail!("dense convolution runs on f32 CPU tensors");
    };
    let input = &data[layout.start_offset()..][..n * c * h * w];
    // Each tile's product, (o, tile pixels).
    let products: Vec<Vec<f32>> = tiles
        .par_iter()
        .map(|tile| {
            let pixels = tile.images * tile.rows * out_w;
            let mut product = vec![0f32; o * pixels];
            let mut multiply = |columns: &mut Vec<f32>| {
                columns.clear();
                columns.resize(k * pixels, 0.0);
                fill_tile(input, (c, h, w), geometry, *tile, columns);
                if parallel_gemm {
                    matmul_split_rows(
                        &mut product,
                        &matrix.weight,
                        columns,
                        (o, pixels, k),
                        threads,
                    );
                } else {
                    matmul_into(&mut product, &matrix.weight, columns, (o, pixels, k));
                }
            };
            if parallel_gemm {
                // A thread waiting inside a parallel product may pick up another tile: no
                // thread-local buffer then.
                multiply(&mut Vec::new());
            } else {
                COLUMNS.with_borrow_mut(multiply);
            }
            product
        })
        .collect();
    drop(storage);
    let residual = residual.map(Tensor::contiguous).transpose()?;
    if residual
        .as_ref()
        .is_some_and(|r| r.dims() != [n, o, out_h, out_w])
    {
        candle_core::bail!("dense convolution: the residual's shape differs from the output's");
    }
    let guard = residual.as_ref().map(Tensor::storage_and_layout);
    let residual = match &guard {
        Some((storage, layout)) => match &**storage {
            Storage::Cpu(CpuStorage::F32(values)) => {
                Some(&values[layout.start_offset()..][..n * o * plane])
            }
            _ => candle_core::bail!("dense convolution: the residual is not f32 on the CPU"),
        },
        None => None,
    };
    let mut out = vec![0f32; n * o * plane];
    let arch = pulp::Arch::new();
    out.par_chunks_mut(plane)
        .enumerate()
        .for_each(|(row_index, out_row)| {
            let (image, channel) = (row_index / o, row_index % o);
            let residual_row = residual.map(|r| &r[row_index * plane..][..plane]);
            for (tile, product) in tiles.iter().zip(&products) {
                if image < tile.first_image || image >= tile.first_image + tile.images {
                    continue;
                }
                let tile_pixels = tile.images * tile.rows * out_w;
                let band = tile.rows * out_w;
                let from = channel * tile_pixels + (image - tile.first_image) * band;
                let to = tile.first_row * out_w;
                arch.dispatch(Epilogue {
                    from: &product[from..from + band],
                    residual: residual_row.map(|r| &r[to..to + band]),
                    to: &mut out_row[to..to + band],
                    bias: matrix.bias[channel],
                    activation,
                });
            }
        });
    drop(guard);
    Tensor::from_vec(out, (n, o, out_h, out_w), &Device::Cpu)
}

thread_local! {
    /// Each thread's column matrix, kept between tiles and layers.
    static COLUMNS: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Cuts `n` images of `out_h × out_w` output pixels into tiles of about [`TILE_PIXELS`], bands
/// of equal height, as many as a multiple of `threads` when there are few.
fn tiles(n: usize, out_h: usize, out_w: usize, threads: usize) -> Vec<Tile> {
    let plane = out_h * out_w;
    if plane * 2 <= TILE_PIXELS {
        let per_tile = TILE_PIXELS / plane;
        return (0..n)
            .step_by(per_tile)
            .map(|first_image| Tile {
                first_image,
                images: per_tile.min(n - first_image),
                first_row: 0,
                rows: out_h,
            })
            .collect();
    }
    let mut bands = out_h.div_ceil((TILE_PIXELS / out_w).clamp(1, out_h));
    if n * bands < 4 * threads {
        bands = bands.div_ceil(threads).saturating_mul(threads).min(out_h);
    }
    let rows_per_tile = out_h.div_ceil(bands);
    (0..n)
        .flat_map(|image| {
            (0..out_h)
                .step_by(rows_per_tile)
                .map(move |first_row| Tile {
                    first_image: image,
                    images: 1,
                    first_row,
                    rows: rows_per_tile.min(out_h - first_row),
                })
        })
        .collect()
}

/// The column matrix `(c·k·k, tile pixels)` of a tile, image after image within the pixels.
fn fill_tile(
    input: &[f32],
    (c, h, w): (usize, usize, usize),
    geometry: ConvGeometry,
    tile: Tile,
    columns: &mut [f32],
) {
    let out_w = geometry.columns.0;
    let band = tile.rows * out_w;
    let stride = tile.images * band;
    for local in 0..tile.images {
        let image = tile.first_image + local;
        let source = Source {
            data: &input[image * c * h * w..][..c * h * w],
            channels: c,
            height: h,
            width: w,
        };
        fill_columns(
            &source,
            geometry,
            (tile.first_row, tile.rows),
            ColumnsView {
                values: &mut *columns,
                row_stride: stride,
                offset: local * band,
            },
        );
    }
}

/// Where a band of columns goes: matrix row `r` of the band starts at `offset + r·row_stride`.
struct ColumnsView<'a> {
    values: &'a mut [f32],
    row_stride: usize,
    offset: usize,
}

/// One image of the input, `(channels, height, width)`.
struct Source<'a> {
    data: &'a [f32],
    channels: usize,
    height: usize,
    width: usize,
}

/// [`matmul_into`] with the rows of `lhs` (output channels) shared among `parts` threads, each
/// a single-threaded product over the same `rhs`. For the few large tiles of one image, this
/// beats the GEMM's own threading, which splits finer and synchronises more.
fn matmul_split_rows(
    dst: &mut [f32],
    lhs: &[f32],
    rhs: &[f32],
    (m, n, k): (usize, usize, usize),
    parts: usize,
) {
    // Whole register blocks of 16 rows per part.
    let rows = m.div_ceil(parts.max(1)).div_ceil(16) * 16;
    dst.par_chunks_mut(rows * n)
        .zip(lhs.par_chunks(rows * k))
        .for_each(|(dst, lhs)| matmul_into(dst, lhs, rhs, (lhs.len() / k, n, k)));
}

/// `dst (m × n) = lhs (m × k) · rhs (k × n)`, all row-major and dense, with the `gemm` crate,
/// on the calling thread.
#[allow(unsafe_code)]
fn matmul_into(dst: &mut [f32], lhs: &[f32], rhs: &[f32], (m, n, k): (usize, usize, usize)) {
    assert!(dst.len() == m * n && lhs.len() == m * k && rhs.len() == k * n);
    // SAFETY: the three slices hold exactly m·n, m·k and k·n values (asserted above), and the
    // strides below describe dense row-major matrices of those shapes, so every access is in
    // bounds; `dst` is borrowed mutably and does not alias the inputs. `read_dst` is false, so
    // `dst` is only written.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            false,
            lhs.as_ptr(),
            1,
            k as isize,
            rhs.as_ptr(),
            1,
            n as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// Fills an image's band of the column matrix for output rows `first_row..first_row + rows`
/// (zero where the kernel overlaps the padding; the matrix arrives zeroed).
fn fill_columns(
    source: &Source<'_>,
    geometry: ConvGeometry,
    (first_row, rows): (usize, usize),
    columns: ColumnsView<'_>,
) {
    let ConvGeometry {
        kernel,
        stride,
        rows: (_, pad_top),
        columns: (out_w, pad_left),
    } = geometry;
    let (h, w) = (source.height, source.width);
    let band = rows * out_w;
    let mut matrix_row_index = 0;
    for channel in 0..source.channels {
        let plane = &source.data[channel * h * w..][..h * w];
        for ky in 0..kernel {
            for kx in 0..kernel {
                let start = matrix_row_index * columns.row_stride + columns.offset;
                matrix_row_index += 1;
                let matrix_row = &mut columns.values[start..start + band];
                // Output columns whose input column `ox·stride + kx - pad_left` is inside.
                if kx >= w + pad_left {
                    continue;
                }
                let first = pad_left.saturating_sub(kx).div_ceil(stride);
                let last = ((w + pad_left - kx - 1) / stride + 1).min(out_w);
                if first >= last {
                    continue;
                }
                for r in 0..rows {
                    let iy = (first_row + r) * stride + ky;
                    if iy < pad_top || iy - pad_top >= h {
                        continue;
                    }
                    let input_row = &plane[(iy - pad_top) * w..][..w];
                    let out = &mut matrix_row[r * out_w..][..out_w];
                    let ix = first * stride + kx - pad_left;
                    if stride == 1 {
                        out[first..last].copy_from_slice(&input_row[ix..ix + (last - first)]);
                    } else {
                        for (value, x) in out[first..last]
                            .iter_mut()
                            .zip(input_row[ix..].iter().step_by(stride))
                        {
                            *value = *x;
                        }
                    }
                }
            }
        }
    }
}

/// `to = activation(from + bias + residual)`, run by `pulp` at the CPU's SIMD level.
struct Epilogue<'a> {
    from: &'a [f32],
    residual: Option<&'a [f32]>,
    to: &'a mut [f32],
    bias: f32,
    activation: Activation,
}

impl pulp::WithSimd for Epilogue<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let (bias, activation) = (self.bias, self.activation);
        match self.residual {
            Some(residual) => {
                for ((to, &from), &r) in self.to.iter_mut().zip(self.from).zip(residual) {
                    *to = activation.apply(from + bias + r);
                }
            }
            None => {
                for (to, &from) in self.to.iter_mut().zip(self.from) {
                    *to = activation.apply(from + bias);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use candle_nn::{Conv2d, Conv2dConfig, Module};

    use super::*;

    fn random(len: usize, seed: u64) -> Vec<f32> {
        let mut state = seed;
        (0..len)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 40) as f32 / (1u64 << 24) as f32) - 0.5
            })
            .collect()
    }

    /// Against candle's own conv2d, every kernel/stride/padding the encoders use, odd sizes.
    #[test]
    fn matches_candle_conv2d() {
        let cases = [
            // (c, o, h, w, kernel, stride, pad)
            (3, 8, 17, 23, 7, 2, 3),
            (5, 6, 9, 11, 3, 1, 1),
            (5, 6, 9, 11, 3, 2, 1),
            (4, 7, 10, 9, 1, 2, 0),
            (4, 3, 6, 5, 3, 1, 0),
            (2, 3, 40, 33, 3, 1, 1), // several row tiles per image
            (6, 4, 7, 7, 3, 1, 1),   // all images in one tile
            (3, 4, 15, 15, 3, 1, 1), // two images per tile, five images
        ];
        for (i, &(c, o, h, w, kernel, stride, pad)) in cases.iter().enumerate() {
            let wt = Tensor::from_vec(
                random(o * c * kernel * kernel, 100 + i as u64),
                (o, c, kernel, kernel),
                &Device::Cpu,
            )
            .unwrap();
            let bias = random(o, 200 + i as u64);
            let config = Conv2dConfig {
                padding: pad,
                stride,
                dilation: 1,
                groups: 1,
                cudnn_fwd_algo: None,
            };
            let bias_t = Tensor::from_vec(bias.clone(), o, &Device::Cpu).unwrap();
            let n = if i % 2 == 0 { 2 } else { 5 };
            let x = Tensor::from_vec(random(n * c * h * w, i as u64), (n, c, h, w), &Device::Cpu)
                .unwrap();
            let conv = Conv2d::new(wt.clone(), Some(bias_t), config)
                .forward(&x)
                .unwrap();
            let residual = (i % 2 == 1).then(|| conv.randn_like(0.0, 1.0).unwrap());
            let expected = match &residual {
                Some(r) => (&conv + r).unwrap(),
                None => conv,
            }
            .relu()
            .unwrap();
            let out_size = |size: usize| (size + 2 * pad - kernel) / stride + 1;
            let geometry = ConvGeometry {
                kernel,
                stride,
                rows: (out_size(h), pad),
                columns: (out_size(w), pad),
            };
            let matrix = ConvMatrix {
                weight: wt.flatten_all().unwrap().to_vec1().unwrap(),
                bias,
                out_channels: o,
            };
            let got =
                dense_conv(&x, &matrix, geometry, residual.as_ref(), Activation::Relu).unwrap();
            assert_eq!(got.dims(), expected.dims(), "case {i}");
            let diff = (got - expected)
                .unwrap()
                .abs()
                .unwrap()
                .flatten_all()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(diff < 1e-5, "case {i}: max difference {diff}");
        }
    }
}
