//! The Cox partial likelihood (Breslow's handling of tied times) as a loss for candle models:
//! the negative mean, over observed events, of `risk_k − log Σ_{j at risk at t_k} exp(risk_j)`,
//! where `risk` is a log hazard ratio per patient. A custom op with its own gradient, computed
//! in O(n log n) from the patients sorted by time (candle's `cumsum` would build an n × n
//! matrix). CPU only; values in f32, sums in f64.

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};

/// The follow-up the loss is computed against, sorted once.
#[derive(Debug, Clone)]
pub struct CoxTargets {
    /// Patients by time, latest first.
    descending: Vec<usize>,
    /// For each position in `descending`, the last position with the same time: the risk set
    /// of an event includes everyone tied with it.
    group_end: Vec<usize>,
    event: Vec<bool>,
    events: usize,
}

impl CoxTargets {
    /// None without any event (the likelihood is empty).
    pub fn new(time: &[f64], event: &[bool]) -> Option<Self> {
        assert_eq!(
            time.len(),
            event.len(),
            "one time and one event per patient"
        );
        let events = event.iter().filter(|e| **e).count();
        if events == 0 {
            return None;
        }
        let mut descending: Vec<usize> = (0..time.len()).collect();
        descending.sort_by(|&a, &b| time[b].total_cmp(&time[a]));
        let mut group_end = vec![0; time.len()];
        let mut end = time.len();
        for position in (0..time.len()).rev() {
            if position + 1 < time.len()
                && time[descending[position]] != time[descending[position + 1]]
            {
                end = position + 1;
            }
            group_end[position] = end - 1;
        }
        Some(Self {
            descending,
            group_end,
            event: event.to_vec(),
            events,
        })
    }

    pub fn len(&self) -> usize {
        self.event.len()
    }

    pub fn is_empty(&self) -> bool {
        self.event.is_empty()
    }

    /// log Σ_{j at risk} exp(risk_j) for each position of `descending` (shifted by `max`).
    fn log_risk_sets(&self, risk: &[f32]) -> (Vec<f64>, f64) {
        let max = risk.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let mut running = Vec::with_capacity(risk.len());
        let mut sum = 0f64;
        for &i in &self.descending {
            sum += (risk[i] as f64 - max).exp();
            running.push(sum);
        }
        let log = self
            .group_end
            .iter()
            .map(|&end| running[end].ln() + max)
            .collect();
        (log, max)
    }
}

/// The loss: a scalar tensor, differentiable with respect to `risk` (shape `(n,)`).
pub fn cox_loss(risk: &Tensor, targets: &CoxTargets) -> candle_core::Result<Tensor> {
    risk.apply_op1(CoxLoss {
        targets: targets.clone(),
    })?
    .reshape(())
}

struct CoxLoss {
    targets: CoxTargets,
}

fn values<'a>(storage: &'a CpuStorage, layout: &Layout) -> candle_core::Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else {
        candle_core::bail!("the Cox loss takes f32 risks");
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("the Cox loss needs contiguous risks");
    };
    Ok(&data[start..end])
}

impl CustomOp1 for CoxLoss {
    fn name(&self) -> &'static str {
        "cox-partial-likelihood"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let risk = values(storage, layout)?;
        let t = &self.targets;
        if risk.len() != t.len() {
            candle_core::bail!("{} risks for {} patients", risk.len(), t.len());
        }
        let (log_sets, _) = t.log_risk_sets(risk);
        let mut total = 0f64;
        for (position, &i) in t.descending.iter().enumerate() {
            if t.event[i] {
                total += risk[i] as f64 - log_sets[position];
            }
        }
        let loss = -(total / t.events as f64) as f32;
        Ok((CpuStorage::F32(vec![loss]), Shape::from(1)))
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let risk: Vec<f32> = arg.to_vec1()?;
        let upstream = grad_res.flatten_all()?.to_vec1::<f32>()?[0] as f64;
        let t = &self.targets;
        let (log_sets, _) = t.log_risk_sets(&risk);
        // d loss / d risk_i = −(1/E) (δ_i − exp(risk_i) Σ_{events k with i at risk} 1/S_k).
        // Patient i is at risk for every event at or before its time: accumulate 1/S_k from
        // the earliest time (the end of `descending`), a tie group at a time.
        let n = t.len();
        let mut hazard_sum = vec![0f64; n];
        let mut accumulated = 0f64;
        let mut position = n;
        while position > 0 {
            let end = position - 1;
            let mut start = end;
            while start > 0 && t.group_end[start - 1] == end {
                start -= 1;
            }
            for (&i, log_set) in t.descending[start..=end].iter().zip(&log_sets[start..=end]) {
                if t.event[i] {
                    accumulated += (-log_set).exp();
                }
            }
            for &i in &t.descending[start..=end] {
                hazard_sum[i] = accumulated;
            }
            position = start;
        }
        let events = t.events as f64;
        let gradient: Vec<f32> = (0..n)
            .map(|i| {
                let observed = if t.event[i] { 1.0 } else { 0.0 };
                let expected = (risk[i] as f64).exp() * hazard_sum[i];
                (-(observed - expected) / events * upstream) as f32
            })
            .collect();
        Ok(Some(Tensor::from_vec(gradient, n, arg.device())?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// The partial likelihood written out pair by pair.
    fn naive(time: &[f64], event: &[bool], risk: &[f64]) -> f64 {
        let events = event.iter().filter(|e| **e).count() as f64;
        let mut total = 0.0;
        for k in 0..time.len() {
            if event[k] {
                let at_risk: f64 = (0..time.len())
                    .filter(|&j| time[j] >= time[k])
                    .map(|j| risk[j].exp())
                    .sum();
                total += risk[k] - at_risk.ln();
            }
        }
        -total / events
    }

    const TIME: [f64; 8] = [5.0, 3.0, 3.0, 8.0, 1.0, 3.0, 9.0, 2.0];
    const EVENT: [bool; 8] = [true, true, false, true, false, true, false, true];
    const RISK: [f64; 8] = [0.3, -1.2, 0.8, 0.05, 2.0, -0.4, 1.1, 0.6];

    #[test]
    fn the_loss_is_breslow_partial_likelihood() {
        let targets = CoxTargets::new(&TIME, &EVENT).unwrap();
        let risk: Vec<f32> = RISK.iter().map(|r| *r as f32).collect();
        let risk = Tensor::from_vec(risk, 8, &Device::Cpu).unwrap();
        let loss = cox_loss(&risk, &targets)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let expected = naive(&TIME, &EVENT, &RISK);
        assert!(
            (f64::from(loss) - expected).abs() < 1e-5,
            "{loss} vs {expected}"
        );
        assert!(CoxTargets::new(&TIME, &[false; 8]).is_none());
    }

    #[test]
    fn the_gradient_matches_finite_differences() {
        let targets = CoxTargets::new(&TIME, &EVENT).unwrap();
        let risk: Vec<f32> = RISK.iter().map(|r| *r as f32).collect();
        let var = Var::from_vec(risk, 8, &Device::Cpu).unwrap();
        let loss = cox_loss(var.as_tensor(), &targets).unwrap();
        let gradients = loss.backward().unwrap();
        let gradient: Vec<f32> = gradients.get(var.as_tensor()).unwrap().to_vec1().unwrap();
        for i in 0..8 {
            let h = 1e-5;
            let mut up = RISK;
            up[i] += h;
            let mut down = RISK;
            down[i] -= h;
            let numeric = (naive(&TIME, &EVENT, &up) - naive(&TIME, &EVENT, &down)) / (2.0 * h);
            assert!(
                (f64::from(gradient[i]) - numeric).abs() < 1e-4,
                "risk {i}: {} vs {numeric}",
                gradient[i]
            );
        }
    }
}
