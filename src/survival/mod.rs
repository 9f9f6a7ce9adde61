//! Survival analysis the models and their evaluation share: Harrell's and Uno's concordance
//! indices and the Brier score (with the censoring distribution their weights come from), the
//! Cox partial likelihood as a training loss, and Breslow's baseline hazard for survival
//! probabilities at horizons.

mod baseline;
mod brier;
mod censoring;
mod concordance;
mod cox;

pub use baseline::BaselineHazard;
pub use brier::{BrierError, brier_scores, integrated_brier_score};
pub use censoring::CensoringDistribution;
pub use concordance::{Concordance, UnoError, harrell_c, uno_c};
pub use cox::{CoxTargets, cox_loss};
