//! A fixed projection of an embedding onto its leading principal components, fitted on the
//! training patients and whitened (each component scaled to unit variance). A cohort of
//! hundreds of patients cannot teach a network which of 1,280 embedding components matter; a
//! handful of directions of largest variance carries what differs between patients (in the
//! synthetic cohort, the lesion), and the network learns from those.

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use super::rng::Rng;

const ITERATIONS: usize = 40;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Projection {
    /// The training mean, one value per embedding component.
    pub mean: Vec<f32>,
    /// `components × dimension`, row-major, each row divided by the standard deviation of the
    /// patients' scores on it.
    pub components: Vec<f32>,
    pub count: usize,
}

impl Projection {
    /// Leading `count` principal components of `rows` (`n × dimension`, row-major) by
    /// subspace iteration on the covariance matrix, from a seeded start.
    pub fn fit(
        rows: &[f32],
        dimension: usize,
        count: usize,
        rng: &mut Rng,
    ) -> candle_core::Result<Self> {
        let n = rows.len() / dimension.max(1);
        let count = count.min(dimension).min(n.saturating_sub(1)).max(1);
        let device = Device::Cpu;
        let x = Tensor::from_slice(rows, (n, dimension), &device)?.to_dtype(DType::F64)?;
        let mean = x.mean_keepdim(0)?;
        let centred = x.broadcast_sub(&mean)?;
        let covariance = (centred.t()?.matmul(&centred)? / (n.max(2) - 1) as f64)?;
        let start: Vec<f64> = (0..dimension * count).map(|_| rng.normal()).collect();
        let mut basis = orthonormalise(start, dimension, count);
        for _ in 0..ITERATIONS {
            let q = Tensor::from_vec(basis, (dimension, count), &device)?;
            basis = orthonormalise(
                covariance.matmul(&q)?.flatten_all()?.to_vec1::<f64>()?,
                dimension,
                count,
            );
        }
        // Scores' standard deviations, for whitening.
        let q = Tensor::from_vec(basis.clone(), (dimension, count), &device)?;
        let scores = centred.matmul(&q)?;
        let sd: Vec<f64> = scores
            .sqr()?
            .mean(0)?
            .to_vec1::<f64>()?
            .into_iter()
            .map(|v| v.sqrt().max(1e-12))
            .collect();
        let mut components = vec![0f32; count * dimension];
        for k in 0..count {
            for d in 0..dimension {
                components[k * dimension + d] = (basis[d * count + k] / sd[k]) as f32;
            }
        }
        Ok(Self {
            mean: mean
                .flatten_all()?
                .to_vec1::<f64>()?
                .into_iter()
                .map(|v| v as f32)
                .collect(),
            components,
            count,
        })
    }

    /// Scores of `rows` (`n × dimension`) on the components: `n × count`.
    /// One row's scores (None when its width is not the projection's).
    pub fn scores(&self, row: &[f32]) -> Option<Vec<f32>> {
        let dimension = self.mean.len();
        if row.len() != dimension || dimension == 0 {
            return None;
        }
        Some(
            self.components
                .chunks_exact(dimension)
                .take(self.count)
                .map(|component| {
                    component
                        .iter()
                        .zip(row.iter().zip(&self.mean))
                        .map(|(c, (x, m))| c * (x - m))
                        .sum()
                })
                .collect(),
        )
    }

    pub fn apply(&self, rows: &Tensor) -> candle_core::Result<Tensor> {
        let dimension = self.mean.len();
        let mean = Tensor::from_slice(&self.mean, (1, dimension), rows.device())?;
        let components =
            Tensor::from_slice(&self.components, (self.count, dimension), rows.device())?;
        rows.broadcast_sub(&mean)?.matmul(&components.t()?)
    }
}

/// Gram–Schmidt on the columns of a `dimension × count` row-major matrix.
fn orthonormalise(mut m: Vec<f64>, dimension: usize, count: usize) -> Vec<f64> {
    for k in 0..count {
        for j in 0..k {
            let dot: f64 = (0..dimension)
                .map(|d| m[d * count + k] * m[d * count + j])
                .sum();
            for d in 0..dimension {
                m[d * count + k] -= dot * m[d * count + j];
            }
        }
        let norm: f64 = (0..dimension)
            .map(|d| m[d * count + k].powi(2))
            .sum::<f64>()
            .sqrt();
        let norm = if norm > 0.0 { norm } else { 1.0 };
        for d in 0..dimension {
            m[d * count + k] /= norm;
        }
    }
    m
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_leading_component_is_the_direction_of_largest_variance() {
        // Points spread along (1, 1, 0)/√2 with sd 3, and along (0, 0, 1) with sd 1.
        let mut rng = Rng::new(3);
        let mut rows = Vec::new();
        for _ in 0..500 {
            let (a, b) = (3.0 * rng.normal(), rng.normal());
            rows.extend([
                (a / 2f64.sqrt() + 5.0) as f32,
                (a / 2f64.sqrt()) as f32,
                b as f32,
            ]);
        }
        let p = Projection::fit(&rows, 3, 2, &mut Rng::new(1)).unwrap();
        let first = &p.components[..3];
        let norm = first.iter().map(|v| v * v).sum::<f32>().sqrt();
        let cosine = (first[0] + first[1]).abs() / norm / 2f32.sqrt();
        assert!(cosine > 0.99, "{first:?}");
        assert!((p.mean[0] - 5.0).abs() < 0.4);
        // Whitened: unit variance scores.
        let x = Tensor::from_slice(&rows, (500, 3), &Device::Cpu).unwrap();
        let scores = p.apply(&x).unwrap().to_vec2::<f32>().unwrap();
        let var = scores.iter().map(|s| s[0] * s[0]).sum::<f32>() / 500.0;
        assert!((var - 1.0).abs() < 0.02, "{var}");
        // One row at a time, the same scores.
        for (row, expected) in rows.chunks(3).zip(&scores).take(5) {
            let one = p.scores(row).unwrap();
            for (a, b) in one.iter().zip(expected) {
                assert!((a - b).abs() < 1e-4, "{one:?} {expected:?}");
            }
        }
        assert!(p.scores(&[1.0]).is_none());
    }
}
