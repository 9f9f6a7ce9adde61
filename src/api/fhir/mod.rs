//! The FHIR R4 REST API under `/fhir`: content negotiation, request bodies, `Prefer`, and the
//! handlers, one file per group of interactions. Handlers stay thin: parse the request into
//! domain types, make one pipeline or store call, and shape the HTTP response.

mod audit;
mod bundle;
mod instance;
mod metadata;
mod negotiation;
mod risk_assessment;
mod search;
mod sign_off;
mod type_level;

use actix_web::HttpRequest;

pub use negotiation::{Preferences, content_negotiation_middleware};

/// Reads a `$risk-assessment` Parameters body as the operation does, for the fuzzer.
#[doc(hidden)]
pub fn check_risk_parameters(body: &[u8]) -> bool {
    risk_assessment::parameters_read(body)
}

use super::error::ApiError;
use super::{Access, ApiState, query_pairs, read_body};
use crate::domain::{ResourceId, ResourceType};
use crate::error::ErrorKind;

pub(crate) use bundle::post_bundle;
pub(crate) use instance::{delete_resource, history, read, read_within_grant, update, vread};
pub(crate) use metadata::metadata as capabilities;
pub(crate) use risk_assessment::{
    patient_risk_assessment, risk_assessment_status, type_risk_assessment,
};
pub(crate) use search::search as search_type;
pub(crate) use sign_off::sign_off as sign_off_report;
pub(crate) use type_level::create;

/// The FHIR base URL for links: the configured public base, or the address the service bound;
/// never what the request's Host or X-Forwarded-* headers claim.
fn base_url(_req: &HttpRequest, state: &ApiState) -> String {
    state.base_url.clone()
}

fn resource_type(raw: &str) -> Result<ResourceType, ApiError> {
    raw.parse().map_err(|_| {
        ApiError::new(
            ErrorKind::NotFound,
            format!(
                "resource type {} is not served here; see /fhir/metadata",
                raw.chars().take(64).collect::<String>()
            ),
        )
    })
}

fn resource_id(raw: &str) -> Result<ResourceId, ApiError> {
    ResourceId::parse(raw).map_err(|e| ApiError::new(ErrorKind::Invalid, e.to_string()))
}

/// The audit trail is written by the service alone.
fn writable(t: ResourceType) -> Result<(), ApiError> {
    if t == ResourceType::AuditEvent {
        return Err(ApiError::method_not_allowed("GET").because(
            "the audit trail is append-only and written by the service: AuditEvents can be \
             read and searched, not created, changed or deleted",
        ));
    }
    Ok(())
}

/// A body to be written must be within the caller's reach. One that is not JSON is left to
/// the pipeline, which refuses it.
fn check_body(access: &Access, t: ResourceType, body: &[u8]) -> Result<(), ApiError> {
    match serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(body) {
        Ok(resource) => access.resource(t, &resource),
        Err(_) => Ok(()),
    }
}
