//! prognostics: multimodal prognostic risk scores for oncology, served as FHIR R4.
//!
//! Modules follow the data flow. `config`, `error` and `telemetry` serve every layer,
//! `domain` is the shared vocabulary and `auth` says who is calling and what they may do. Readers of outside formats: `dicom` (DICOM Part 10 and
//! pixel data), `hl7` (HL7 v2 and its MLLP framing), `fhir` (FHIR JSON, codes, search), `ehr`
//! (pulls from the EHR's FHIR server) and `cohort` (training cohorts: CSV, Parquet, ARFF).
//! Models: `features` turns what is known about a patient into a model's inputs; `encoders`
//! embed images and text; `survival` holds survival statistics; `fusion` is the prognostic model
//! (network, training, package, predictions with explanations) and `training` fits and judges
//! it on cohorts. `report` builds the FHIR the service emits and `store` persists (database
//! rows and DICOM files). `pipeline` holds the use cases. The edges: `api` (HTTP), `dimse`
//! (DICOM network), `mllp_listener` (HL7 v2 network) over the shared `listener` and `tls`, and
//! `cli` (the commands); `startup` wires the service together; `fuzzing` feeds the parsers to the
//! fuzzer. `tests/components/architecture.rs` holds
//! the table of which module may import which.

/// mimalloc for every binary built on this library (the service, its tests and benchmarks): with
/// glibc's allocator, the encoders' megabyte-sized per-layer buffers went back to the kernel and
/// were faulted in again on every forward pass (a tenth of the time in a profile). Not under
/// the fuzzer (`cfg(fuzzing)`), whose sanitizer must see every allocation.
#[cfg(not(fuzzing))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod auth;
pub mod config;
pub mod domain;
pub mod error;
pub mod metrics;
pub mod telemetry;

pub mod cohort;
pub mod dicom;
pub mod ehr;
pub mod fhir;
pub mod hl7;

pub mod encoders;
pub mod features;
pub mod fusion;
pub mod survival;
pub mod training;

pub mod report;
pub mod store;

pub mod pipeline;

pub mod api;
pub mod cli;
pub mod dimse;
pub mod listener;
pub mod mllp_listener;
pub mod startup;
pub mod tls;

#[doc(hidden)]
pub mod fuzzing;
