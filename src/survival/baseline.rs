//! Breslow's estimator of the baseline cumulative hazard of a Cox model, which turns a risk
//! score into survival probabilities: S(t | x) = exp(−H₀(t) · exp(risk(x))), with
//! H₀(t) = Σ over event times t_k ≤ t of d_k / Σ_{j at risk at t_k} exp(risk_j) (d_k events
//! at t_k). The same estimator as scikit-survival's `CoxPHSurvivalAnalysis`.

/// H₀ as a step function: at each distinct event time, the cumulative hazard from then on.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BaselineHazard {
    pub times: Vec<f64>,
    pub cumulative: Vec<f64>,
}

impl BaselineHazard {
    /// Fitted on the training rows' follow-up and the model's risks for them.
    pub fn fit(time: &[f64], event: &[bool], risk: &[f64]) -> Self {
        assert!(time.len() == event.len() && time.len() == risk.len());
        let mut order: Vec<usize> = (0..time.len()).collect();
        order.sort_by(|&a, &b| time[a].total_cmp(&time[b]));
        // Σ exp(risk) of everyone still at risk, shrinking as time passes.
        let shift = risk.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let mut at_risk: f64 = risk.iter().map(|r| (r - shift).exp()).sum();
        let mut baseline = BaselineHazard {
            times: Vec::new(),
            cumulative: Vec::new(),
        };
        let mut total = 0.0;
        let mut start = 0;
        while start < order.len() {
            let t = time[order[start]];
            let group = &order[start..];
            let size = group.iter().take_while(|&&i| time[i] == t).count();
            let events = group[..size].iter().filter(|&&i| event[i]).count();
            if events > 0 {
                // d / Σ exp(risk − shift), rescaled to exp(risk).
                total += events as f64 / at_risk * (-shift).exp();
                baseline.times.push(t);
                baseline.cumulative.push(total);
            }
            at_risk -= group[..size]
                .iter()
                .map(|&i| (risk[i] - shift).exp())
                .sum::<f64>();
            start += size;
        }
        baseline
    }

    /// H₀(t): 0 before the first event time.
    pub fn at(&self, t: f64) -> f64 {
        match self.times.partition_point(|&s| s <= t) {
            0 => 0.0,
            n => self.cumulative[n - 1],
        }
    }

    /// Probability of no event by `t` for a patient with this risk.
    pub fn survival(&self, risk: f64, t: f64) -> f64 {
        (-self.at(t) * risk.exp()).exp()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_equal_risks_it_is_the_nelson_aalen_estimator() {
        // Times 1, 2, 2, 3, 4 (3 censored): hazard 1/5 at 1, 2/4 at 2, 1/1 at 4.
        let time = [2.0, 1.0, 3.0, 2.0, 4.0];
        let event = [true, true, false, true, true];
        let h = BaselineHazard::fit(&time, &event, &[0.0; 5]);
        assert_eq!(h.times, [1.0, 2.0, 4.0]);
        let expected = [0.2, 0.7, 1.7];
        for (got, want) in h.cumulative.iter().zip(expected) {
            assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        }
        assert_eq!(h.at(0.5), 0.0);
        assert!((h.at(3.5) - 0.7).abs() < 1e-12);
        assert!((h.survival(0.0, 2.0) - (-0.7f64).exp()).abs() < 1e-12);
        // A risk shifted for everyone shifts the baseline the other way: same survival.
        let shifted = BaselineHazard::fit(&time, &event, &[3.0; 5]);
        assert!((shifted.survival(3.0, 2.5) - h.survival(0.0, 2.5)).abs() < 1e-12);
    }
}
