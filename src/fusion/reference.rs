//! What the training patients looked like, kept in the bundle so that the patients a model
//! meets later can be compared with them: the distribution of each numeric input and of the
//! model's own risk in bins ([`Bins`]), compared by the population stability index ([`psi`]);
//! and, for an embedding, how far the patients' principal-component scores have moved from
//! the training patients', whose scores are centred and of unit variance by construction
//! ([`EmbeddingShift`]).

use serde::{Deserialize, Serialize};

/// Bins of the training rows kept by default: deciles.
pub const BINS: usize = 10;

/// A distribution in bins: cut points, and the share of the training rows in each bin (one
/// more share than cut points). A value equal to a cut point falls in the lower bin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bins {
    pub edges: Vec<f64>,
    pub shares: Vec<f64>,
}

impl Bins {
    /// Quantile bins of `values` (about `bins` of them; fewer where values tie), with the
    /// share of `values` in each. None without a finite value.
    pub fn of(values: &[f64], bins: usize) -> Option<Self> {
        let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        if sorted.is_empty() || bins == 0 {
            return None;
        }
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let mut edges: Vec<f64> = (1..bins)
            .map(|k| sorted[(k * n / bins).min(n - 1)])
            .collect();
        edges.dedup();
        // A cut at the largest value would leave its upper bin empty forever.
        edges.retain(|e| *e < sorted[n - 1]);
        let mut bins = Self {
            edges,
            shares: Vec::new(),
        };
        bins.shares = bins.shares_of(&sorted);
        Some(bins)
    }

    /// The bin `value` falls in.
    pub fn index(&self, value: f64) -> usize {
        self.edges.partition_point(|e| *e < value)
    }

    /// The share of `values` in each bin.
    pub fn shares_of(&self, values: &[f64]) -> Vec<f64> {
        let mut counts = vec![0usize; self.edges.len() + 1];
        let mut total = 0usize;
        for v in values.iter().filter(|v| v.is_finite()) {
            counts[self.index(*v)] += 1;
            total += 1;
        }
        counts
            .into_iter()
            .map(|c| c as f64 / total.max(1) as f64)
            .collect()
    }
}

/// Shares below this count as this in [`psi`] (an empty bin would make it infinite).
const FLOOR: f64 = 1e-4;

/// The population stability index of `actual` shares against `expected` ones (the same bins):
/// Σ (a − e) ln(a / e). Below 0.1 is usually read as stable, above 0.25 as a marked shift.
pub fn psi(expected: &[f64], actual: &[f64]) -> f64 {
    expected
        .iter()
        .zip(actual)
        .map(|(&e, &a)| {
            let (e, a) = (e.max(FLOOR), a.max(FLOOR));
            (a - e) * (a / e).ln()
        })
        .sum()
}

/// How far recent embeddings are from the training patients', in the model's whitened
/// principal components (training: every component centred, unit variance).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct EmbeddingShift {
    pub rows: usize,
    /// The root mean square, over components, of the recent mean score: how far the centre
    /// moved, in training standard deviations (about 1/√rows by chance alone).
    pub mean_shift: f64,
    /// The mean squared score per component: 1 for patients like the training ones.
    pub spread: f64,
}

impl EmbeddingShift {
    /// Of `scores`, rows of whitened principal-component scores. None without a row.
    pub fn of(scores: &[Vec<f32>]) -> Option<Self> {
        let width = scores.first()?.len();
        if width == 0 {
            return None;
        }
        let rows = scores.len();
        let mut mean = vec![0.0f64; width];
        let mut square = 0.0f64;
        for row in scores {
            for (m, &s) in mean.iter_mut().zip(row) {
                *m += f64::from(s);
                square += f64::from(s) * f64::from(s);
            }
        }
        let mean_shift =
            (mean.iter().map(|m| (m / rows as f64).powi(2)).sum::<f64>() / width as f64).sqrt();
        Some(Self {
            rows,
            mean_shift,
            spread: square / (rows * width) as f64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deciles_hold_a_tenth_each_and_ties_share_a_bin() {
        let values: Vec<f64> = (0..1000).map(f64::from).collect();
        let bins = Bins::of(&values, BINS).unwrap();
        assert_eq!(bins.edges.len(), 9);
        for share in &bins.shares {
            assert!((share - 0.1).abs() < 0.002, "{bins:?}");
        }
        // A column of few distinct values (a count): no empty bin from repeated cut points.
        let counts: Vec<f64> = (0..100).map(|i| f64::from(i % 3)).collect();
        let bins = Bins::of(&counts, BINS).unwrap();
        assert_eq!(bins.edges, [0.0, 1.0]);
        assert!(bins.shares.iter().all(|s| *s > 0.3), "{bins:?}");
    }

    #[test]
    fn the_same_distribution_is_stable_and_a_shifted_one_is_not() {
        let training: Vec<f64> = (0..2000).map(|i| f64::from(i) / 2000.0).collect();
        let bins = Bins::of(&training, BINS).unwrap();
        let same: Vec<f64> = (0..500).map(|i| f64::from(i) / 500.0).collect();
        assert!(psi(&bins.shares, &bins.shares_of(&same)) < 0.01);
        // Every value 20 % higher: the upper bins fill, the lower ones empty.
        let biased: Vec<f64> = same.iter().map(|v| v * 1.2 + 0.1).collect();
        assert!(psi(&bins.shares, &bins.shares_of(&biased)) > 0.25);
    }

    #[test]
    fn embeddings_like_the_training_ones_have_not_moved() {
        let mut rng = super::super::Rng::new(7);
        let like: Vec<Vec<f32>> = (0..400)
            .map(|_| (0..8).map(|_| rng.normal() as f32).collect())
            .collect();
        let shift = EmbeddingShift::of(&like).unwrap();
        assert!(shift.mean_shift < 0.1, "{shift:?}");
        assert!((shift.spread - 1.0).abs() < 0.15, "{shift:?}");
        let moved: Vec<Vec<f32>> = like
            .iter()
            .map(|r| r.iter().map(|s| s + 1.0).collect())
            .collect();
        assert!(EmbeddingShift::of(&moved).unwrap().mean_shift > 0.9);
    }
}
