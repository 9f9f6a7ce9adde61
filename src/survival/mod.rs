//! Survival analysis the models and their evaluation share: Harrell's concordance index, the
//! Cox partial likelihood as a training loss, and Breslow's baseline hazard for survival
//! probabilities at horizons.

mod baseline;
mod concordance;
mod cox;

pub use baseline::BaselineHazard;
pub use concordance::{Concordance, harrell_c};
pub use cox::{CoxTargets, cox_loss};
