//! Everything outside the HTTP API, in one test binary (each integration-test file would
//! otherwise link its own copy of the crate and its dependencies): layering rules, pixel
//! decoding, the encoders and survival code against their Python references, and the
//! `train`, `evaluate` and `synthesize` commands, and the upgrade of an older audit trail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod architecture;
mod audit_upgrade;
mod data;
mod decoding;
mod default_model;
mod encoder_reference;
mod fuzz_replay;
mod lenient_reading;
mod monitoring_scenarios;
mod r4_definitions;
mod survival_reference;
mod synthetic;
mod text_encoder_reference;
mod training;
