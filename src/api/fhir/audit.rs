//! The audit trail as FHIR: AuditEvents read by id and searched (`patient`, `agent`,
//! `outcome`, `date`), never written through the API. Reached through the ordinary
//! `/fhir/AuditEvent` routes, so the same rule and the `AuditEvent.rs` scope govern them.

use actix_web::HttpResponse;

use super::ApiError;
use crate::api::error::FHIR_JSON;
use crate::api::{Access, ApiState};
use crate::domain::{ResourceId, ResourceType};
use crate::error::ErrorKind;

pub(super) async fn read(
    state: &ApiState,
    access: &Access,
    id: &ResourceId,
) -> Result<HttpResponse, ApiError> {
    let Some(content) = state.pipeline.read_audit(id.as_ref()).await? else {
        return Err(ApiError::new(
            ErrorKind::NotFound,
            format!("AuditEvent/{id} not found"),
        ));
    };
    access.stored(ResourceType::AuditEvent, id.as_ref(), Some(&content))?;
    Ok(HttpResponse::Ok().content_type(FHIR_JSON).body(content))
}

pub(super) async fn search(
    state: &ApiState,
    params: &[(String, String)],
    base_url: &str,
) -> Result<HttpResponse, ApiError> {
    let body = state.pipeline.search_audit(params, base_url).await?;
    Ok(HttpResponse::Ok().content_type(FHIR_JSON).body(body))
}

/// An AuditEvent never changes, so it has one version and no history to page.
pub(super) fn one_version() -> ApiError {
    ApiError::new(
        ErrorKind::NotFound,
        "AuditEvents never change: read one by id, or search the trail",
    )
}
