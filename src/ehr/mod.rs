//! The EHR's FHIR server as a source of patient data: a FHIR R4 client (`client`) and the pull
//! of what a risk model needs about one patient (`pull`), with what could not be had named
//! rather than silently missing. Imports `error`; owns the HTTP client to the EHR.

mod client;
mod pull;

pub use client::{ClientSettings, FhirClient};
pub use pull::{Missing, PatientRecord, pull_patient};

use crate::error::ErrorKind;

#[derive(Debug, thiserror::Error)]
pub enum EhrError {
    #[error("the FHIR client could not be built: {0}")]
    Client(String),
    #[error("the EHR did not answer {url} in time")]
    Timeout { url: String },
    #[error("the EHR could not be reached at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("the EHR answered {url} with HTTP {status}{}", hint(*status))]
    Status { url: String, status: u16 },
    #[error("the EHR's answer to {url} is not usable: {reason}")]
    Malformed { url: String, reason: String },
    #[error("a search for {resource_type} ran past {pages} pages")]
    TooManyPages { resource_type: String, pages: usize },
}

/// What to do about an EHR's refusal, where the status says.
fn hint(status: u16) -> &'static str {
    match status {
        401 => ": it wants credentials (set ehr.bearer_token)",
        403 => ": the credentials sent may not read this (check the token's scopes)",
        404 => ": no such resource on that server (check the id and ehr.base_url)",
        _ => "",
    }
}

impl EhrError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            EhrError::Status { status: 404, .. } => ErrorKind::NotFound,
            EhrError::Client(_) => ErrorKind::Internal,
            _ => ErrorKind::Unavailable,
        }
    }
}
