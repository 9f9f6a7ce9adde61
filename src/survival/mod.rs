//! Survival analysis the models and their evaluation share: Harrell's and Uno's concordance
//! indices (with the censoring distribution Uno's weights come from), the
//! Cox partial likelihood as a training loss, and Breslow's baseline hazard for survival
//! probabilities at horizons.

mod baseline;
mod censoring;
mod concordance;
mod cox;

pub use baseline::BaselineHazard;
pub use censoring::CensoringDistribution;
pub use concordance::{Concordance, UnoError, harrell_c, uno_c};
pub use cox::{CoxTargets, cox_loss};
