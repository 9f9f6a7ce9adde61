//! Survival analysis the models and their evaluation share. So far: Harrell's concordance
//! index.

mod concordance;

pub use concordance::{Concordance, harrell_c};
