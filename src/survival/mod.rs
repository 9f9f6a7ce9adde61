//! Survival analysis the models and their evaluation share: Harrell's and Uno's concordance
//! indices, the time-dependent AUC, calibration at a horizon and the Brier score (with the
//! censoring distribution their weights come from), the Cox partial likelihood as a training
//! loss, and Breslow's baseline hazard for survival probabilities at horizons.

mod auc;
mod baseline;
mod brier;
mod calibration;
mod censoring;
mod concordance;
mod cox;

pub use auc::{AucError, cumulative_dynamic_auc, kaplan_meier};
pub use baseline::BaselineHazard;
pub use brier::{BrierError, brier_scores, integrated_brier_score};
pub use calibration::{Platt, ReliabilityBin, fit_logistic, reliability, status_at};
pub use censoring::CensoringDistribution;
pub use concordance::{Concordance, UnoError, harrell_c, uno_c};
pub use cox::{CoxTargets, cox_loss};
