//! Survival analysis the models and their evaluation share: Harrell's concordance index and
//! the Cox partial likelihood as a training loss.

mod concordance;
mod cox;

pub use concordance::{Concordance, harrell_c};
pub use cox::{CoxTargets, cox_loss};
