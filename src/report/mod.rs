//! The FHIR resources this service emits: OperationOutcome and ImagingStudy (through fhir-sdk's
//! builders), the CapabilityStatement, Bundles (searchset, history, transaction and batch
//! responses), and the Patient, Observation and ServiceRequest resources HL7 v2 messages become.
//! Bundles embed stored resources as they are, as raw JSON, rather than through fhir-sdk's
//! `Bundle` model: going through the model would parse and re-serialise every resource of every
//! page and compile the generic `Resource` enum's deserialiser into the service. The HL7-made
//! resources are written as JSON too, for speed (see `v2`). Imports `domain`, `fhir`, `hl7`
//! (the content read from messages) and `error`; computes nothing clinical.

mod audit;
mod bundle;
mod capability;
pub mod cds_card;
mod imaging_study;
mod observation;
mod operation_outcome;
mod patient;
pub mod risk;
pub mod risk_view;
mod service_request;
pub mod sign_off;
mod v2;

pub use audit::audit_event;
pub use bundle::{BundleEntry, BundleKind, BundleLink, EntryResponse, bundle, resource_url};
pub use capability::{CapabilityOptions, capability_statement};
pub use imaging_study::{
    DICOM_UID_SYSTEM, ImagingStudyContent, SeriesContent, imaging_study, patient_from_dicom,
};
pub use observation::{ResultContext, observation_from_hl7, result_identifier};
pub use operation_outcome::{
    IssueCode, IssueSeverity, OutcomeIssue, error_status, operation_outcome,
};
pub use patient::{merge_patient, patient_from_hl7};
pub use service_request::{order_identifier_key, order_identifiers, service_request_from_hl7};
pub use v2::IdentifierSystems;

use fhir_sdk::r4b::types::Coding;
use serde_json::Value;

use crate::error::ErrorKind;

/// HL7 v2 table 0203, identifier types (`MR`, `ACSN`, `PLAC`, `FILL` …).
const IDENTIFIER_TYPES: &str = "http://terminology.hl7.org/CodeSystem/v2-0203";

fn build_err(resource: &'static str) -> impl FnOnce(fhir_sdk::BuilderError) -> ReportError {
    move |source| ReportError::Build { resource, source }
}

fn to_value<T: serde::Serialize>(resource: &'static str, r: &T) -> Result<Value, ReportError> {
    serde_json::to_value(r).map_err(|source| ReportError::Serialise { resource, source })
}

fn coding(system: &str, code: &str) -> Result<Coding, ReportError> {
    Coding::builder()
        .system(system.to_owned())
        .code(code.to_owned())
        .build()
        .map_err(build_err("Coding"))
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("could not build {resource}")]
    Build {
        resource: &'static str,
        #[source]
        source: fhir_sdk::BuilderError,
    },
    #[error("could not serialise {resource}")]
    Serialise {
        resource: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

impl ReportError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            ReportError::Build { .. } | ReportError::Serialise { .. } => ErrorKind::Internal,
        }
    }
}
