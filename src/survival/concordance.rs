//! Harrell's concordance index: of the pairs whose order of events is known (the earlier time
//! is an observed event, and the other patient was followed longer, or as long without an
//! event), the share where the earlier one has the higher predicted risk, a tie in risk
//! counting one half. The same definition, tie rule
//! and tolerance (1e-8) as scikit-survival's `concordance_index_censored`, so figures compare.

use super::censoring::CensoringDistribution;

/// Risk scores closer than this are tied.
const TIED_TOLERANCE: f64 = 1e-8;

/// The index with the pair counts it was computed from.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Concordance {
    pub c_index: f64,
    pub concordant: u64,
    pub discordant: u64,
    pub tied_risk: u64,
    /// Comparable pairs at the same time (an event and a censoring).
    pub tied_time: u64,
}

/// Harrell's C of `risk` (higher: earlier event) against follow-up `time` and `event`. None
/// when no pair is comparable (no events, or every event at the last time).
pub fn harrell_c(time: &[f64], event: &[bool], risk: &[f64]) -> Option<Concordance> {
    weighted(time, event, risk, &vec![1.0; time.len()])
}

/// Why Uno's C cannot be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum UnoError {
    #[error(
        "a test time ({0}) is beyond the training follow-up, where the censoring distribution is not known"
    )]
    BeyondTraining(f64),
    #[error("the censoring distribution is 0 at an event time ({0}): no weight can be given")]
    ZeroCensoringProbability(f64),
    #[error("no pair of test patients is comparable")]
    NoComparablePair,
}

/// Uno's C (Uno et al., 2011): Harrell's pairs weighted by 1 / G(t_i)², G the censoring
/// distribution of the training rows, events at or after `tau` given no weight; consistent
/// under censoring that does not depend on the covariates. As scikit-survival's
/// `concordance_index_ipcw`.
pub fn uno_c(
    train: (&[f64], &[bool]),
    time: &[f64],
    event: &[bool],
    risk: &[f64],
    tau: Option<f64>,
) -> Result<Concordance, UnoError> {
    let censoring = CensoringDistribution::fit(train.0, train.1);
    let mut weights = vec![0.0; time.len()];
    for (i, w) in weights.iter_mut().enumerate() {
        if !event[i] || tau.is_some_and(|tau| time[i] >= tau) {
            continue;
        }
        let g = censoring
            .at(time[i])
            .ok_or(UnoError::BeyondTraining(time[i]))?;
        if g == 0.0 {
            return Err(UnoError::ZeroCensoringProbability(time[i]));
        }
        *w = 1.0 / (g * g);
    }
    weighted(time, event, risk, &weights).ok_or(UnoError::NoComparablePair)
}

fn weighted(time: &[f64], event: &[bool], risk: &[f64], weights: &[f64]) -> Option<Concordance> {
    assert!(
        time.len() == event.len() && time.len() == risk.len() && time.len() == weights.len(),
        "time, event and risk have one value per patient"
    );
    // Risks as ranks, those within the tolerance of a rank's first value sharing it.
    let mut by_risk: Vec<usize> = (0..risk.len()).collect();
    by_risk.sort_by(|&a, &b| risk[a].total_cmp(&risk[b]));
    let mut rank = vec![0usize; risk.len()];
    let (mut current, mut first) = (0usize, f64::NAN);
    for (k, &i) in by_risk.iter().enumerate() {
        if k == 0 {
            first = risk[i];
        } else if risk[i] - first > TIED_TOLERANCE {
            current += 1;
            first = risk[i];
        }
        rank[i] = current;
    }
    // From the latest time back: the tree holds the risks of everyone followed longer. Each
    // event is compared with them and with those censored at its own time (followed as long
    // without the event); events at the same time are not comparable.
    let mut later = Fenwick::new(current + 1);
    let mut order: Vec<usize> = (0..time.len()).collect();
    order.sort_by(|&a, &b| time[b].total_cmp(&time[a]));
    let (mut concordant, mut discordant, mut tied_risk, mut tied_time) = (0u64, 0u64, 0u64, 0u64);
    let (mut numerator, mut denominator) = (0f64, 0f64);
    let mut start = 0;
    while start < order.len() {
        let t = time[order[start]];
        let end = start + order[start..].iter().take_while(|&&i| time[i] == t).count();
        let group = &order[start..end];
        let events_here = group.iter().filter(|&&i| event[i]).count() as u64;
        tied_time += events_here * (group.len() as u64 - events_here);
        for &j in group.iter().filter(|&&j| !event[j]) {
            later.add(rank[j]);
        }
        for &i in group.iter().filter(|&&i| event[i]) {
            let below = later.count_below(rank[i]);
            let equal = later.count_below(rank[i] + 1) - below;
            let total = later.total();
            concordant += below;
            tied_risk += equal;
            discordant += total - below - equal;
            numerator += weights[i] * (below as f64 + 0.5 * equal as f64);
            denominator += weights[i] * total as f64;
        }
        for &i in group.iter().filter(|&&i| event[i]) {
            later.add(rank[i]);
        }
        start = end;
    }
    let comparable = concordant + discordant + tied_risk;
    (comparable > 0 && denominator > 0.0).then(|| Concordance {
        c_index: numerator / denominator,
        concordant,
        discordant,
        tied_risk,
        tied_time,
    })
}

/// Counts by rank (a Fenwick tree): how many were added below a rank, in O(log n).
struct Fenwick {
    counts: Vec<u64>,
    total: u64,
}

impl Fenwick {
    fn new(ranks: usize) -> Self {
        Self {
            counts: vec![0; ranks + 1],
            total: 0,
        }
    }

    fn add(&mut self, rank: usize) {
        let mut k = rank + 1;
        while k < self.counts.len() {
            self.counts[k] += 1;
            k += k & k.wrapping_neg();
        }
        self.total += 1;
    }

    /// How many were added with a rank below `rank`.
    fn count_below(&self, rank: usize) -> u64 {
        let mut k = rank.min(self.counts.len() - 1);
        let mut sum = 0;
        while k > 0 {
            sum += self.counts[k];
            k -= k & k.wrapping_neg();
        }
        sum
    }

    fn total(&self) -> u64 {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_counted_as_harrell_defines_them() {
        // Times 1..5; patient 2 (time 2) censored; risks mostly in order, one swap, one tie.
        let time = [1.0, 2.0, 3.0, 4.0, 5.0];
        let event = [true, false, true, true, false];
        let risk = [5.0, 4.0, 2.0, 3.0, 2.0];
        let c = harrell_c(&time, &event, &risk).unwrap();
        // Comparable: (0,1..4) 4 pairs, (2,3) (2,4), (3,4) = 7; patient 1 is censored.
        // Concordant: 0 vs all (4), 3 vs 4 (1); discordant: 2 vs 3; tied: 2 vs 4.
        assert_eq!((c.concordant, c.discordant, c.tied_risk), (5, 1, 1));
        assert!((c.c_index - 5.5 / 7.0).abs() < 1e-12);
    }

    /// Every comparable pair by hand, as Harrell defines them: the reference the fast count
    /// is held to.
    fn by_pairs(
        time: &[f64],
        event: &[bool],
        risk: &[f64],
        weights: &[f64],
    ) -> (u64, u64, u64, f64) {
        let (mut concordant, mut discordant, mut tied) = (0, 0, 0);
        let (mut numerator, mut denominator) = (0.0, 0.0);
        for i in 0..time.len() {
            for j in 0..time.len() {
                let comparable =
                    event[i] && (time[j] > time[i] || (time[j] == time[i] && !event[j]));
                if !comparable {
                    continue;
                }
                denominator += weights[i];
                if (risk[i] - risk[j]).abs() <= TIED_TOLERANCE {
                    tied += 1;
                    numerator += 0.5 * weights[i];
                } else if risk[i] > risk[j] {
                    concordant += 1;
                    numerator += weights[i];
                } else {
                    discordant += 1;
                }
            }
        }
        (concordant, discordant, tied, numerator / denominator)
    }

    #[test]
    fn the_fast_count_agrees_with_every_pair_counted() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut uniform = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        for n in [1, 2, 7, 60, 400] {
            // Coarse times and risks: many ties of both kinds.
            let time: Vec<f64> = (0..n).map(|_| (uniform() * 20.0).floor()).collect();
            let event: Vec<bool> = (0..n).map(|_| uniform() < 0.6).collect();
            let risk: Vec<f64> = (0..n).map(|_| (uniform() * 10.0).floor() / 10.0).collect();
            let weights: Vec<f64> = (0..n).map(|_| 0.5 + uniform()).collect();
            let expected = by_pairs(&time, &event, &risk, &weights);
            match weighted(&time, &event, &risk, &weights) {
                Some(c) => {
                    assert_eq!(
                        (c.concordant, c.discordant, c.tied_risk),
                        (expected.0, expected.1, expected.2),
                        "n = {n}"
                    );
                    assert!((c.c_index - expected.3).abs() < 1e-12, "n = {n}");
                }
                None => assert_eq!(expected.0 + expected.1 + expected.2, 0, "n = {n}"),
            }
        }
    }

    #[test]
    fn perfect_reversed_and_constant_risks() {
        let time = [3.0, 1.0, 4.0, 1.5, 9.0, 2.6];
        let event = [true, true, false, true, true, false];
        let perfect: Vec<f64> = time.iter().map(|t| -t).collect();
        assert_eq!(harrell_c(&time, &event, &perfect).unwrap().c_index, 1.0);
        let reversed: Vec<f64> = time.to_vec();
        assert_eq!(harrell_c(&time, &event, &reversed).unwrap().c_index, 0.0);
        assert_eq!(harrell_c(&time, &event, &[1.0; 6]).unwrap().c_index, 0.5);
        // Two events at the same time are not comparable; an event and a censoring at the
        // same time are (the censored patient was followed as long without the event).
        assert!(harrell_c(&[2.0, 2.0], &[true, true], &[1.0, 0.0]).is_none());
        let c = harrell_c(&[2.0, 2.0], &[true, false], &[1.0, 0.0]).unwrap();
        assert_eq!((c.c_index, c.tied_time), (1.0, 1));
        assert!(harrell_c(&time, &[false; 6], &perfect).is_none());
    }
}
