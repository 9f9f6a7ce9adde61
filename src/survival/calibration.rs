//! Calibration of predicted event probabilities at a horizon t under censoring. A patient's
//! status at t is known when the event happened by t (outcome 1, weight 1 / G(own time)) or
//! follow-up went beyond t (outcome 0, weight 1 / G(t)); those censored before t are
//! represented by these inverse-probability-of-censoring weights (G: the censoring
//! distribution of the training rows). On these weighted outcomes:
//! - the calibration slope is b and the intercept a of `logit P(event) = a + b · logit(p)`;
//!   calibration-in-the-large is a with b fixed at 1 (perfect: 0 and 1);
//! - Platt scaling applies the fitted (a, b) to new predictions;
//! - the reliability diagram compares, per bin of predicted probability, the mean prediction
//!   with the weighted share of events.

use serde::{Deserialize, Serialize};

use super::censoring::CensoringDistribution;

/// Known status at a horizon: (event by t, weight), or none when censored before t.
pub fn status_at(
    censoring: &CensoringDistribution,
    time: &[f64],
    event: &[bool],
    t: f64,
) -> Vec<Option<(bool, f64)>> {
    let weight = |s: f64| match censoring.at(s) {
        Some(g) if g > 0.0 => 1.0 / g,
        _ => 0.0,
    };
    time.iter()
        .zip(event)
        .map(|(&ti, &ei)| {
            if ei && ti <= t {
                Some((true, weight(ti)))
            } else if ti > t {
                Some((false, weight(t)))
            } else {
                None
            }
        })
        .collect()
}

/// `logit P = intercept + slope · logit(p)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Platt {
    pub intercept: f64,
    pub slope: f64,
}

impl Platt {
    pub fn apply(&self, p: f64) -> f64 {
        sigmoid(self.intercept + self.slope * logit(p))
    }
}

fn logit(p: f64) -> f64 {
    let p = p.clamp(1e-6, 1.0 - 1e-6);
    (p / (1.0 - p)).ln()
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Weighted logistic regression of the outcome on logit(p) by Newton's method; with
/// `fixed_slope`, only the intercept is fitted (the slope held there). None when the
/// outcomes are all one kind or the weights vanish.
pub fn fit_logistic(
    predicted: &[f64],
    outcomes: &[Option<(bool, f64)>],
    fixed_slope: Option<f64>,
) -> Option<Platt> {
    let rows: Vec<(f64, f64, f64)> = predicted
        .iter()
        .zip(outcomes)
        .filter_map(|(&p, o)| o.map(|(y, w)| (logit(p), f64::from(u8::from(y)), w)))
        .filter(|(_, _, w)| *w > 0.0)
        .collect();
    let total: f64 = rows.iter().map(|r| r.2).sum();
    let events: f64 = rows.iter().map(|r| r.1 * r.2).sum();
    if total <= 0.0 || events <= 0.0 || events >= total {
        return None;
    }
    let (mut a, mut b) = (0.0, fixed_slope.unwrap_or(1.0));
    for _ in 0..200 {
        // Gradient and Hessian of the weighted log-likelihood.
        let (mut ga, mut gb, mut haa, mut hab, mut hbb) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for &(x, y, w) in &rows {
            let p = sigmoid(a + b * x);
            let r = w * (y - p);
            let v = w * p * (1.0 - p);
            ga += r;
            gb += r * x;
            haa += v;
            hab += v * x;
            hbb += v * x * x;
        }
        let (da, db) = if fixed_slope.is_some() {
            (ga / haa.max(1e-12), 0.0)
        } else {
            let det = haa * hbb - hab * hab;
            if det.abs() < 1e-12 {
                return None;
            }
            ((hbb * ga - hab * gb) / det, (haa * gb - hab * ga) / det)
        };
        // Steps kept short: where every patient has about the same prediction, a full
        // Newton step from a poor start overshoots into the flat tails and never returns.
        let (da, db) = (da.clamp(-2.0, 2.0), db.clamp(-2.0, 2.0));
        a += da;
        b += db;
        if !(a.is_finite() && b.is_finite()) {
            return None;
        }
        if da.abs() < 1e-10 && db.abs() < 1e-10 {
            break;
        }
    }
    Some(Platt {
        intercept: a,
        slope: b,
    })
}

/// One bin of a reliability diagram.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ReliabilityBin {
    pub predicted: f64,
    pub observed: f64,
    /// Patients with a known status in the bin.
    pub count: usize,
}

/// Bins of equal count (by predicted probability) over the patients with a known status.
pub fn reliability(
    predicted: &[f64],
    outcomes: &[Option<(bool, f64)>],
    bins: usize,
) -> Vec<ReliabilityBin> {
    let mut known: Vec<(f64, f64, f64)> = predicted
        .iter()
        .zip(outcomes)
        .filter_map(|(&p, o)| o.map(|(y, w)| (p, f64::from(u8::from(y)), w)))
        .filter(|(_, _, w)| *w > 0.0)
        .collect();
    known.sort_by(|a, b| a.0.total_cmp(&b.0));
    let bins = bins.clamp(1, known.len().max(1));
    (0..bins)
        .filter_map(|k| {
            let part = &known[k * known.len() / bins..(k + 1) * known.len() / bins];
            if part.is_empty() {
                return None;
            }
            let weight: f64 = part.iter().map(|r| r.2).sum();
            Some(ReliabilityBin {
                predicted: part.iter().map(|r| r.0).sum::<f64>() / part.len() as f64,
                observed: part.iter().map(|r| r.1 * r.2).sum::<f64>() / weight,
                count: part.len(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_calibrated_predictor_has_slope_one_and_intercept_zero() {
        // Outcomes drawn exactly at the predicted rates (as weights): p = 0.2 with 2 of 10
        // events, p = 0.5 with 5 of 10, p = 0.8 with 8 of 10.
        let mut predicted = Vec::new();
        let mut outcomes = Vec::new();
        for (p, events) in [(0.2, 2), (0.5, 5), (0.8, 8)] {
            for i in 0..10 {
                predicted.push(p);
                outcomes.push(Some((i < events, 1.0)));
            }
        }
        let fit = fit_logistic(&predicted, &outcomes, None).unwrap();
        assert!(
            (fit.slope - 1.0).abs() < 1e-9 && fit.intercept.abs() < 1e-9,
            "{fit:?}"
        );
        let large = fit_logistic(&predicted, &outcomes, Some(1.0)).unwrap();
        assert!(large.intercept.abs() < 1e-9);
        // Predictions twice as extreme on the logit scale: slope ½.
        let extreme: Vec<f64> = predicted.iter().map(|&p| sigmoid(2.0 * logit(p))).collect();
        let fit = fit_logistic(&extreme, &outcomes, None).unwrap();
        assert!((fit.slope - 0.5).abs() < 1e-9, "{fit:?}");
        assert!((fit.apply(extreme[25]) - 0.8).abs() < 1e-9);
        let bins = reliability(&predicted, &outcomes, 3);
        assert_eq!(bins.len(), 3);
        assert!((bins[2].observed - 0.8).abs() < 1e-12 && bins[2].count == 10);
    }

    #[test]
    fn everyone_predicted_alike_still_gets_the_intercept_of_their_observed_rate() {
        // Nine patients at 1 %, two events: the intercept is logit(2/9) − logit(0.01) (a full
        // Newton step from 0 overshoots this one into the flat tail).
        let predicted = [0.01; 9];
        let outcomes: Vec<Option<(bool, f64)>> = (0..9).map(|i| Some((i < 2, 1.0))).collect();
        let fit = fit_logistic(&predicted, &outcomes, Some(1.0)).unwrap();
        let expected = logit(2.0 / 9.0) - logit(0.01);
        assert!((fit.intercept - expected).abs() < 1e-6, "{fit:?}");
    }

    #[test]
    fn status_at_a_horizon_follows_censoring() {
        let time = [1.0, 2.0, 3.0, 4.0];
        let event = [true, false, true, false];
        let g = CensoringDistribution::fit(&time, &event);
        let status = status_at(&g, &time, &event, 2.5);
        assert_eq!(status[0], Some((true, 1.0)));
        assert_eq!(status[1], None);
        // G(2.5) = 1 − 1/3 (one of three at risk censored at 2).
        let (event, weight) = status[2].unwrap();
        assert!(!event && (weight - 1.5).abs() < 1e-12, "{weight}");
        assert!(fit_logistic(&[0.5; 4], &[Some((true, 1.0)); 4], None).is_none());
    }
}
