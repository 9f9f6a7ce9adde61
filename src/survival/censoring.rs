//! The censoring distribution G(t) = P(not censored by t), by the reverse Kaplan–Meier
//! estimator: at each time, events are taken to happen before censorings (they leave the risk
//! set first). The weights of Uno's C and of the Brier score are 1 / G. Same estimator and
//! step evaluation as scikit-survival's `CensoringDistributionEstimator`.

#[derive(Debug, Clone, PartialEq)]
pub struct CensoringDistribution {
    /// Distinct times, ascending, after a leading −∞ (G = 1 before any time).
    times: Vec<f64>,
    probability: Vec<f64>,
}

impl CensoringDistribution {
    pub fn fit(time: &[f64], event: &[bool]) -> Self {
        let mut order: Vec<usize> = (0..time.len()).collect();
        order.sort_by(|&a, &b| time[a].total_cmp(&time[b]));
        let mut times = vec![f64::NEG_INFINITY];
        let mut probability = vec![1.0];
        let mut at_risk = time.len();
        let mut g = 1.0;
        let mut start = 0;
        while start < order.len() {
            let t = time[order[start]];
            let size = order[start..].iter().take_while(|&&i| time[i] == t).count();
            let events = order[start..start + size]
                .iter()
                .filter(|&&i| event[i])
                .count();
            let censored = size - events;
            // Events leave first; the censorings are then out of those still at risk.
            let remaining = at_risk - events;
            if censored > 0 && remaining > 0 {
                g *= 1.0 - censored as f64 / remaining as f64;
            }
            times.push(t);
            probability.push(g);
            at_risk -= size;
            start += size;
        }
        Self { times, probability }
    }

    /// G(t): the value at the latest time not after `t`. None past the last time when G has
    /// not reached 0 there (the estimate does not extend beyond the data).
    pub fn at(&self, t: f64) -> Option<f64> {
        let last = *self.times.last()?;
        if t > last {
            return (*self.probability.last()? == 0.0).then_some(0.0);
        }
        let index = self.times.partition_point(|&s| s <= t);
        Some(self.probability[index.max(1) - 1])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_kaplan_meier_by_hand() {
        // Times 1e, 2c, 2e, 3c, 4e. At 2, 4 are at risk; the event leaves first, then 1 of
        // the remaining 3 is censored: G = 2/3. At 3, 1 of 2 is censored: G = 1/3. At 4 an
        // event: G stays 1/3, and is not known beyond.
        let time = [1.0, 2.0, 2.0, 3.0, 4.0];
        let event = [true, false, true, false, true];
        let g = CensoringDistribution::fit(&time, &event);
        let close = |t: f64, want: f64| (g.at(t).unwrap() - want).abs() < 1e-12;
        assert!(close(0.5, 1.0) && close(1.0, 1.0));
        assert!(close(2.0, 2.0 / 3.0) && close(2.5, 2.0 / 3.0));
        assert!(close(3.0, 1.0 / 3.0) && close(4.0, 1.0 / 3.0));
        assert_eq!(g.at(5.0), None);
        // When the last follow-up is censored, G reaches 0 there and stays 0.
        let g = CensoringDistribution::fit(&[1.0, 2.0], &[true, false]);
        assert_eq!((g.at(2.0), g.at(7.0)), (Some(0.0), Some(0.0)));
        // Without censoring, G stays 1 and is not defined past the last time.
        let g = CensoringDistribution::fit(&[1.0, 2.0], &[true, true]);
        assert_eq!(g.at(2.0), Some(1.0));
        assert_eq!(g.at(3.0), None);
    }
}
