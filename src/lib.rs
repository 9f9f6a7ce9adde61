//! prognostics: multimodal prognostic risk scores for oncology, served as FHIR R4.
//!
//! Modules follow the data flow: `domain` is the shared vocabulary; `fhir` reads and checks
//! FHIR JSON; `store` persists; `report` builds the FHIR the service emits; `pipeline` holds the
//! use cases; `api` is the HTTP edge; `startup` wires them together.

pub mod cli;
pub mod config;
pub mod error;
pub mod telemetry;

pub mod api;
pub mod domain;
pub mod fhir;
pub mod pipeline;
pub mod report;
pub mod startup;
pub mod store;
