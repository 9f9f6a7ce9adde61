//! prognostics: multimodal prognostic risk scores for oncology, served as FHIR R4.
//!
//! Modules follow the data flow: `domain` is the shared vocabulary; `ingest` reads DICOM; `hl7`
//! reads HL7 v2; `ehr` pulls from the EHR's FHIR server; `fhir` reads and checks FHIR JSON;
//! `features` turns what is known about a patient into a model's inputs; `cohort` reads
//! training cohorts (CSV, Parquet, ARFF); `survival` holds survival statistics; `fusion` is the
//! prognostic model (network, training, bundle, predictions with explanations) and `training`
//! fits and judges it on cohorts; `encoders` embed images and text; `store` persists (database
//! rows and DICOM files); `report` builds the FHIR the service emits; `pipeline` holds the use
//! cases; `api` (HTTP), `dimse` (DICOM network), `mllp` (HL7 v2 network), `import`, `inspect`
//! and `modelling` (command line) are the edges; `startup` wires them together.

/// mimalloc for every binary built on this library (the service, its tests and benchmarks): with
/// glibc's allocator, the encoders' megabyte-sized per-layer buffers went back to the kernel and
/// were faulted in again on every forward pass (a tenth of the time in a profile).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod cli;
pub mod cohort;
pub mod config;
pub mod error;
pub mod telemetry;
pub mod training;

pub mod api;
pub mod dimse;
pub mod domain;
pub mod ehr;
pub mod encoders;
pub mod features;
pub mod fhir;
pub mod fusion;
pub mod hl7;
pub mod import;
pub mod ingest;
pub mod inspect;
pub mod listener;
pub mod mllp;
pub mod modelling;
pub mod pipeline;
pub mod report;
pub mod startup;
pub mod store;
pub mod stored_cohort;
pub mod survival;
