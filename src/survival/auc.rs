//! Time-dependent discrimination: the cumulative/dynamic AUC at a time t (Uno et al., 2007;
//! Hung and Chiang, 2010): cases are patients with an event by t, weighted by 1 / G(their
//! time), controls those still followed after t; the area under the ROC curve of the risk
//! score separating them (ties in risk: half). The mean over several times weights each by
//! the drop of the test cohort's Kaplan–Meier curve. As scikit-survival's
//! `cumulative_dynamic_auc`, whose tie tolerance (1e-8) it shares.

use super::censoring::CensoringDistribution;

const TIED_TOLERANCE: f64 = 1e-8;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AucError {
    #[error("time {0} is outside the test follow-up (from its first to before its last time)")]
    OutsideFollowUp(f64),
    #[error("time {0}: no event by then, or nobody followed beyond it")]
    NoPairs(f64),
    #[error(
        "a test event time ({0}) is beyond the training follow-up, where the censoring distribution is not known"
    )]
    BeyondTraining(f64),
}

/// The AUC at each of `times`, and their mean weighted by the Kaplan–Meier drops.
pub fn cumulative_dynamic_auc(
    train: (&[f64], &[bool]),
    time: &[f64],
    event: &[bool],
    risk: &[f64],
    times: &[f64],
) -> Result<(Vec<f64>, f64), AucError> {
    assert!(time.len() == event.len() && time.len() == risk.len());
    let (first, last) = time
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &t| {
            (a.min(t), b.max(t))
        });
    if let Some(&t) = times.iter().find(|&&t| !(t >= first && t < last)) {
        return Err(AucError::OutsideFollowUp(t));
    }
    let censoring = CensoringDistribution::fit(train.0, train.1);
    let weight: Vec<f64> = time
        .iter()
        .zip(event)
        .map(|(&t, &e)| {
            if !e {
                return Ok(0.0);
            }
            let g = censoring.at(t).ok_or(AucError::BeyondTraining(t))?;
            Ok(if g == 0.0 { 0.0 } else { 1.0 / g })
        })
        .collect::<Result<_, _>>()?;
    let mut order: Vec<usize> = (0..risk.len()).collect();
    order.sort_by(|&a, &b| risk[b].total_cmp(&risk[a]));

    let mut scores = Vec::with_capacity(times.len());
    for &t in times {
        let case_weight = |i: usize| {
            if event[i] && time[i] <= t {
                weight[i]
            } else {
                0.0
            }
        };
        let control = |i: usize| time[i] > t;
        let cases: f64 = (0..time.len()).map(case_weight).sum();
        let controls = (0..time.len()).filter(|&i| control(i)).count();
        if cases <= 0.0 || controls == 0 {
            return Err(AucError::NoPairs(t));
        }
        // The ROC curve through one point per distinct risk (ties kept together), from (0, 0).
        let (mut tp, mut fp, mut area) = (0.0, 0.0, 0.0);
        let (mut last_tp, mut last_fp) = (0.0, 0.0);
        for (k, &i) in order.iter().enumerate() {
            tp += case_weight(i);
            fp += f64::from(u8::from(control(i)));
            let tied_with_next = order
                .get(k + 1)
                .is_some_and(|&j| (risk[i] - risk[j]).abs() <= TIED_TOLERANCE);
            if !tied_with_next {
                let (x, y) = (fp / controls as f64, tp / cases);
                area += (x - last_fp) * (y + last_tp) / 2.0;
                (last_tp, last_fp) = (y, x);
            }
        }
        scores.push(area);
    }
    let mean = if scores.len() == 1 {
        scores[0]
    } else {
        let survival: Vec<f64> = times
            .iter()
            .map(|&t| kaplan_meier(time, event, t))
            .collect();
        let mut previous = 1.0;
        let mut integral = 0.0;
        for (score, s) in scores.iter().zip(&survival) {
            integral += score * (previous - s);
            previous = *s;
        }
        integral / (1.0 - survival[survival.len() - 1])
    };
    Ok((scores, mean))
}

/// The Kaplan–Meier estimate of P(no event by t).
pub fn kaplan_meier(time: &[f64], event: &[bool], t: f64) -> f64 {
    let mut order: Vec<usize> = (0..time.len()).collect();
    order.sort_by(|&a, &b| time[a].total_cmp(&time[b]));
    let mut at_risk = time.len();
    let mut s = 1.0;
    let mut start = 0;
    while start < order.len() && time[order[start]] <= t {
        let now = time[order[start]];
        let size = order[start..]
            .iter()
            .take_while(|&&i| time[i] == now)
            .count();
        let events = order[start..start + size]
            .iter()
            .filter(|&&i| event[i])
            .count();
        if events > 0 {
            s *= 1.0 - events as f64 / at_risk as f64;
        }
        at_risk -= size;
        start += size;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_by_hand_with_a_tie_and_a_censored_control() {
        // No censoring in training: every weight 1. At t = 2.5: cases (events by 2.5) are
        // patients 0 and 1; controls (followed past 2.5) patients 3 and 4; patient 2 is
        // censored before t and counts as neither. Pairs: (0,3) right, (0,4) right, (1,3) a
        // tie → ½, (1,4) wrong: (1 + 1 + ½ + 0) / 4.
        let train = ([1.0, 2.0, 3.0, 4.0, 5.0], [true; 5]);
        let time = [1.0, 2.0, 2.2, 3.0, 4.0];
        let event = [true, true, false, true, false];
        let risk = [0.9, 0.5, 0.7, 0.5, 0.6];
        let (scores, mean) =
            cumulative_dynamic_auc((&train.0, &train.1), &time, &event, &risk, &[2.5]).unwrap();
        assert!((scores[0] - 0.625).abs() < 1e-12, "{scores:?}");
        assert_eq!(mean, scores[0]);
        assert_eq!(
            cumulative_dynamic_auc((&train.0, &train.1), &time, &event, &risk, &[4.0]),
            Err(AucError::OutsideFollowUp(4.0))
        );
    }

    #[test]
    fn kaplan_meier_by_hand() {
        let time = [1.0, 2.0, 2.0, 3.0];
        let event = [true, true, false, true];
        assert_eq!(kaplan_meier(&time, &event, 0.5), 1.0);
        assert!((kaplan_meier(&time, &event, 2.0) - 0.75 * (2.0 / 3.0)).abs() < 1e-12);
        assert_eq!(kaplan_meier(&time, &event, 3.0), 0.0);
    }
}
