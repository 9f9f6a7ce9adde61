//! The FHIR resources this service emits: OperationOutcome (through fhir-sdk's builders), the
//! CapabilityStatement, and Bundles (searchset, history, transaction and batch responses).
//! Bundles embed stored resources as they are, as raw JSON, rather than through fhir-sdk's
//! `Bundle` model: going through the model would parse and re-serialise every resource of every
//! page and compile the generic `Resource` enum's deserialiser into the service. Imports
//! `domain`, `fhir` and `error`; computes nothing clinical.

mod bundle;
mod capability;
mod imaging_study;
mod operation_outcome;

pub use bundle::{BundleEntry, BundleKind, BundleLink, EntryResponse, bundle, resource_url};
pub use capability::{CapabilityOptions, capability_statement};
pub use imaging_study::{
    DICOM_UID_SYSTEM, ImagingStudyContent, SeriesContent, imaging_study, patient_from_dicom,
};
pub use operation_outcome::{
    IssueCode, IssueSeverity, OutcomeIssue, error_status, operation_outcome,
};

use crate::error::ErrorKind;

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
