//! The EHR's FHIR server as a source of patient data: a FHIR R4 client (`client`) and the pull
//! of what a risk model needs about one patient (`pull`), with what could not be had named
//! rather than silently missing. Imports `error`; owns the HTTP client to the EHR.

mod auth;
mod client;
mod pull;

pub use auth::{Authorization, SmartBackend, SmartClient};
pub use client::{ClientSettings, FhirClient, HttpClient, Searched};
pub use pull::{Missing, PatientRecord, pull_patient};

use std::time::Duration;

use secrecy::SecretString;

use crate::config::EhrSettings;
use crate::error::ErrorKind;

/// The client the settings describe; `base_url` overrides `ehr.base_url`.
pub fn client_from_settings(
    settings: &EhrSettings,
    base_url: Option<String>,
) -> Result<FhirClient, EhrError> {
    let base_url = base_url.or(settings.base_url.clone()).ok_or_else(|| {
        EhrError::Client("no EHR to pull from: set ehr.base_url or pass --base-url".into())
    })?;
    FhirClient::new(
        ClientSettings {
            base_url,
            timeout: Duration::from_secs(settings.timeout_secs),
            retries: settings.retries,
            backoff: Duration::from_millis(settings.backoff_ms),
            max_pages: settings.max_pages,
            page_size: settings.page_size,
        },
        authorization_from_settings(settings)?,
    )
}

/// Bearer token, SMART Backend Services, or nothing, as the settings say.
pub fn authorization_from_settings(settings: &EhrSettings) -> Result<Authorization, EhrError> {
    match (&settings.bearer_token, &settings.smart) {
        (Some(_), Some(_)) => Err(EhrError::Client(
            "set either ehr.bearer_token or ehr.smart, not both".into(),
        )),
        (Some(token), None) => Ok(Authorization::Bearer(token.clone())),
        (None, None) => Ok(Authorization::None),
        (None, Some(smart)) => {
            let pem = std::fs::read_to_string(&smart.private_key_file).map_err(|e| {
                EhrError::Client(format!(
                    "ehr.smart.private_key_file {}: {e}",
                    smart.private_key_file.display()
                ))
            })?;
            Ok(Authorization::Smart(Box::new(SmartBackend::new(
                SmartClient {
                    client_id: smart.client_id.clone(),
                    private_key_pem: SecretString::from(pem),
                    key_id: smart.key_id.clone(),
                    token_url: smart.token_url.clone(),
                    scope: smart.scope.clone(),
                },
            )?)))
        }
    }
}

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
    #[error("the EHR's authorisation server refused at {url}: {reason}")]
    Auth { url: String, reason: String },
    #[error("a search for {resource_type} ran past {pages} pages")]
    TooManyPages { resource_type: String, pages: usize },
}

/// What to do about an EHR's refusal, where the status says.
fn hint(status: u16) -> &'static str {
    match status {
        401 => {
            ": it wants credentials (set ehr.bearer_token, or ehr.smart for SMART Backend Services)"
        }
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
