//! The Brier score of predicted survival probabilities under censoring (Graf et al., 1999):
//! at time t, the mean over test patients of S(t|x)² / G(t_i) for those with an event by t,
//! and (1 − S(t|x))² / G(t) for those still followed after t (those censored before t count
//! zero), G the censoring distribution of the training rows. The integrated score is the
//! trapezoidal mean over the times. As scikit-survival's `brier_score` and
//! `integrated_brier_score`.

use super::censoring::CensoringDistribution;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BrierError {
    #[error(
        "a time ({0}) is beyond the training follow-up, where the censoring distribution is not known"
    )]
    BeyondTraining(f64),
    #[error("the integrated Brier score needs at least two times, in increasing order")]
    Times,
}

/// The Brier score at each of `times`; `survival[i][k]` is patient i's predicted probability
/// of no event by `times[k]`.
pub fn brier_scores(
    train: (&[f64], &[bool]),
    time: &[f64],
    event: &[bool],
    survival: &[Vec<f64>],
    times: &[f64],
) -> Result<Vec<f64>, BrierError> {
    assert!(time.len() == event.len() && time.len() == survival.len());
    let censoring = CensoringDistribution::fit(train.0, train.1);
    let weight = |t: f64| -> Result<f64, BrierError> {
        let g = censoring.at(t).ok_or(BrierError::BeyondTraining(t))?;
        // G = 0: that patient can carry no weight (scikit-survival divides by infinity).
        Ok(if g == 0.0 { 0.0 } else { 1.0 / g })
    };
    let own: Vec<f64> = time.iter().map(|&t| weight(t)).collect::<Result<_, _>>()?;
    times
        .iter()
        .enumerate()
        .map(|(k, &t)| {
            let at_t = weight(t)?;
            let total: f64 = (0..time.len())
                .map(|i| {
                    let s = survival[i][k];
                    if event[i] && time[i] <= t {
                        s * s * own[i]
                    } else if time[i] > t {
                        (1.0 - s) * (1.0 - s) * at_t
                    } else {
                        0.0
                    }
                })
                .sum();
            Ok(total / time.len() as f64)
        })
        .collect()
}

/// The trapezoidal mean of the Brier scores over `times` (increasing, at least two).
pub fn integrated_brier_score(
    train: (&[f64], &[bool]),
    time: &[f64],
    event: &[bool],
    survival: &[Vec<f64>],
    times: &[f64],
) -> Result<f64, BrierError> {
    if times.len() < 2 || times.windows(2).any(|w| w[1] <= w[0]) {
        return Err(BrierError::Times);
    }
    let scores = brier_scores(train, time, event, survival, times)?;
    let area: f64 = times
        .windows(2)
        .zip(scores.windows(2))
        .map(|(t, s)| (t[1] - t[0]) * (s[0] + s[1]) / 2.0)
        .sum();
    Ok(area / (times[times.len() - 1] - times[0]))
}
