//! The metrics a model is judged by on a cohort it did not train on: Harrell's and Uno's
//! c-index (Uno's truncated at the last horizon), the time-dependent AUC at each horizon and
//! their mean, the integrated Brier score, calibration slope and intercept with a
//! reliability table at each horizon, and for triage AUROC, average precision and
//! precision/recall at the operating threshold. A metric that cannot be computed on these
//! rows is absent, with the reason in `notes`.

use serde::Serialize;

use crate::survival::{
    BaselineHazard, CensoringDistribution, ReliabilityBin, cumulative_dynamic_auc, fit_logistic,
    harrell_c, integrated_brier_score, reliability, status_at, uno_c,
};

const RELIABILITY_BINS: usize = 10;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HorizonMetrics {
    pub label: String,
    pub time: f64,
    pub auc: Option<f64>,
    pub calibration_slope: Option<f64>,
    /// Calibration-in-the-large: the intercept with the slope fixed at 1 (0 is perfect).
    pub calibration_intercept: Option<f64>,
    pub reliability: Vec<ReliabilityBin>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TriageMetrics {
    pub labelled: usize,
    pub urgent: usize,
    pub auroc: Option<f64>,
    pub average_precision: Option<f64>,
    pub threshold: f64,
    pub precision: Option<f64>,
    pub recall: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metrics {
    pub rows: usize,
    pub events: usize,
    pub harrell_c: Option<f64>,
    pub uno_c: Option<f64>,
    pub mean_auc: Option<f64>,
    pub integrated_brier_score: Option<f64>,
    pub horizons: Vec<HorizonMetrics>,
    pub triage: Option<TriageMetrics>,
    pub notes: Vec<String>,
}

/// A model's outputs on the rows being evaluated.
pub struct Scored<'a> {
    /// Follow-up of the training rows (the censoring distribution's weights).
    pub train: (&'a [f64], &'a [bool]),
    pub time: &'a [f64],
    pub event: &'a [bool],
    pub risk: &'a [f64],
    pub baseline: &'a BaselineHazard,
    /// (label, time) of each horizon.
    pub horizons: &'a [(String, f64)],
    /// Per row, the (calibrated) event probability by each horizon.
    pub event_probability: &'a [Vec<f64>],
    pub triage: Option<TriageScores<'a>>,
}

/// The triage head's calibrated probability and the label per row, and the threshold.
#[derive(Debug, Clone, Copy)]
pub struct TriageScores<'a> {
    pub probability: &'a [f64],
    pub label: &'a [Option<bool>],
    pub threshold: f64,
}

impl Scored<'_> {
    /// The same metrics on a subset of the rows.
    pub fn metrics_of(&self, rows: &[usize]) -> Metrics {
        let pick = |v: &[f64]| rows.iter().map(|&r| v[r]).collect::<Vec<_>>();
        let time = pick(self.time);
        let event: Vec<bool> = rows.iter().map(|&r| self.event[r]).collect();
        let risk = pick(self.risk);
        let probability: Vec<Vec<f64>> = rows
            .iter()
            .map(|&r| self.event_probability[r].clone())
            .collect();
        let triage = self.triage.map(|t| {
            (
                pick(t.probability),
                rows.iter().map(|&r| t.label[r]).collect::<Vec<_>>(),
                t.threshold,
            )
        });
        let sub = Scored {
            train: self.train,
            time: &time,
            event: &event,
            risk: &risk,
            baseline: self.baseline,
            horizons: self.horizons,
            event_probability: &probability,
            triage: triage.as_ref().map(|(p, l, t)| TriageScores {
                probability: p,
                label: l,
                threshold: *t,
            }),
        };
        sub.metrics()
    }

    pub fn metrics(&self) -> Metrics {
        let mut notes = Vec::new();
        let n = self.time.len();
        let events = self.event.iter().filter(|&&e| e).count();
        let harrell = harrell_c(self.time, self.event, self.risk).map(|c| c.c_index);
        if harrell.is_none() {
            notes.push("Harrell's C: no comparable pair".into());
        }
        let tau = self.horizons.last().map(|h| h.1);
        let uno = match uno_c(self.train, self.time, self.event, self.risk, tau) {
            Ok(c) => Some(c.c_index),
            Err(e) => {
                notes.push(format!("Uno's C: {e}"));
                None
            }
        };
        let censoring = CensoringDistribution::fit(self.train.0, self.train.1);
        let mut horizons = Vec::new();
        let mut usable_times = Vec::new();
        for (k, (label, t)) in self.horizons.iter().enumerate() {
            let auc =
                match cumulative_dynamic_auc(self.train, self.time, self.event, self.risk, &[*t]) {
                    Ok((scores, _)) => {
                        usable_times.push(*t);
                        Some(scores[0])
                    }
                    Err(e) => {
                        notes.push(format!("AUC at {label}: {e}"));
                        None
                    }
                };
            let predicted: Vec<f64> = self.event_probability.iter().map(|p| p[k]).collect();
            let status = status_at(&censoring, self.time, self.event, *t);
            let slope = fit_logistic(&predicted, &status, None).map(|f| f.slope);
            let intercept = fit_logistic(&predicted, &status, Some(1.0)).map(|f| f.intercept);
            if slope.is_none() {
                notes.push(format!(
                    "calibration at {label}: needs both events by then and patients followed beyond it"
                ));
            }
            horizons.push(HorizonMetrics {
                label: label.clone(),
                time: *t,
                auc,
                calibration_slope: slope,
                calibration_intercept: intercept,
                reliability: reliability(&predicted, &status, RELIABILITY_BINS),
            });
        }
        let mean_auc = match usable_times.len() {
            0 => None,
            _ => {
                cumulative_dynamic_auc(self.train, self.time, self.event, self.risk, &usable_times)
                    .ok()
                    .map(|(_, mean)| mean)
            }
        };
        let ibs = self.integrated_brier(&mut notes);
        Metrics {
            rows: n,
            events,
            harrell_c: harrell,
            uno_c: uno,
            mean_auc,
            integrated_brier_score: ibs,
            horizons,
            triage: self
                .triage
                .map(|t| triage_metrics(t.probability, t.label, t.threshold)),
            notes,
        }
    }

    /// Over 20 times from the 10th to the 80th percentile of the follow-up, with the model's
    /// (uncalibrated) survival curve.
    fn integrated_brier(&self, notes: &mut Vec<String>) -> Option<f64> {
        let mut sorted = self.time.to_vec();
        sorted.sort_by(f64::total_cmp);
        if sorted.len() < 10 {
            notes.push("integrated Brier score: fewer than 10 rows".into());
            return None;
        }
        let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
        let (from, to) = (at(0.1), at(0.8));
        let train_last = self
            .train
            .0
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max);
        let to = to.min(train_last);
        if to <= from {
            notes.push("integrated Brier score: follow-up too short".into());
            return None;
        }
        let times: Vec<f64> = (0..20)
            .map(|i| from + (to - from) * i as f64 / 19.0)
            .collect();
        let survival: Vec<Vec<f64>> = self
            .risk
            .iter()
            .map(|&r| {
                times
                    .iter()
                    .map(|&t| self.baseline.survival(r, t))
                    .collect()
            })
            .collect();
        match integrated_brier_score(self.train, self.time, self.event, &survival, &times) {
            Ok(score) => Some(score),
            Err(e) => {
                notes.push(format!("integrated Brier score: {e}"));
                None
            }
        }
    }
}

/// AUROC (ties ½), average precision (as scikit-learn's), precision and recall at
/// `threshold`, over the labelled rows.
pub fn triage_metrics(
    probability: &[f64],
    label: &[Option<bool>],
    threshold: f64,
) -> TriageMetrics {
    let mut rows: Vec<(f64, bool)> = probability
        .iter()
        .zip(label)
        .filter_map(|(&p, l)| l.map(|l| (p, l)))
        .collect();
    let positives = rows.iter().filter(|r| r.1).count();
    let negatives = rows.len() - positives;
    rows.sort_by(|a, b| b.0.total_cmp(&a.0));
    let (mut auroc, mut ap) = (None, None);
    if positives > 0 && negatives > 0 {
        // Walk thresholds from high to low, one step per distinct score.
        let (mut tp, mut fp) = (0usize, 0usize);
        let (mut area, mut precision_sum) = (0.0, 0.0);
        let (mut last_tpr, mut last_fpr, mut last_recall) = (0.0, 0.0, 0.0);
        let mut i = 0;
        while i < rows.len() {
            let score = rows[i].0;
            while i < rows.len() && rows[i].0 == score {
                if rows[i].1 {
                    tp += 1;
                } else {
                    fp += 1;
                }
                i += 1;
            }
            let tpr = tp as f64 / positives as f64;
            let fpr = fp as f64 / negatives as f64;
            area += (fpr - last_fpr) * (tpr + last_tpr) / 2.0;
            precision_sum += (tpr - last_recall) * tp as f64 / (tp + fp) as f64;
            (last_tpr, last_fpr, last_recall) = (tpr, fpr, tpr);
        }
        auroc = Some(area);
        ap = Some(precision_sum);
    }
    let flagged: Vec<&(f64, bool)> = rows.iter().filter(|r| r.0 >= threshold).collect();
    let true_flags = flagged.iter().filter(|r| r.1).count();
    TriageMetrics {
        labelled: rows.len(),
        urgent: positives,
        auroc,
        average_precision: ap,
        threshold,
        precision: (!flagged.is_empty()).then(|| true_flags as f64 / flagged.len() as f64),
        recall: (positives > 0).then(|| true_flags as f64 / positives as f64),
    }
}

/// The highest threshold whose recall on these rows reaches `recall` (0.5 when no row is
/// labelled urgent).
pub fn threshold_for_recall(probability: &[f64], label: &[Option<bool>], recall: f64) -> f64 {
    let mut urgent: Vec<f64> = probability
        .iter()
        .zip(label)
        .filter(|(_, l)| **l == Some(true))
        .map(|(&p, _)| p)
        .collect();
    if urgent.is_empty() {
        return 0.5;
    }
    urgent.sort_by(|a, b| b.total_cmp(a));
    let needed = ((urgent.len() as f64 * recall).ceil() as usize).clamp(1, urgent.len());
    urgent[needed - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triage_metrics_by_hand() {
        // Scores: urgent 0.9, 0.6; routine 0.7, 0.2. AUROC: pairs (0.9>0.7, 0.9>0.2,
        // 0.6<0.7, 0.6>0.2) = 3/4. AP: recall ½ at precision 1, then recall 1 at 2/3.
        let p = [0.9, 0.7, 0.6, 0.2];
        let l = [Some(true), Some(false), Some(true), Some(false)];
        let m = triage_metrics(&p, &l, 0.65);
        assert_eq!(m.auroc, Some(0.75));
        assert!((m.average_precision.unwrap() - (0.5 + 0.5 * 2.0 / 3.0)).abs() < 1e-12);
        assert_eq!((m.precision, m.recall), (Some(0.5), Some(0.5)));
        assert_eq!(threshold_for_recall(&p, &l, 0.9), 0.6);
        assert_eq!(threshold_for_recall(&p, &l, 0.5), 0.9);
    }
}
