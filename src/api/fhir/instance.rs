//! Instance-level interactions: read, vread, update, delete and `_history`.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::web::{Data, Path, Payload};
use actix_web::{HttpRequest, HttpResponse, delete, get, put};

use super::{
    ApiError, Preferences, base_url, check_body, query_pairs, read_body, resource_id,
    resource_type, writable,
};
use crate::api::error::FHIR_JSON;
use crate::api::{Access, ApiState};
use crate::domain::VersionId;
use crate::domain::{ResourceId, ResourceType};
use crate::error::ErrorKind;
use crate::report::{IssueCode, IssueSeverity, OutcomeIssue, operation_outcome, resource_url};
use crate::store::StoreError;
use crate::store::StoredResource;

/// A response carrying one stored version, shaped by `Prefer: return`.
pub(super) fn resource_response(
    status: StatusCode,
    stored: &StoredResource,
    prefs: Preferences,
    location: Option<String>,
    message: &str,
) -> Result<HttpResponse, ApiError> {
    let mut response = HttpResponse::build(status);
    response
        .insert_header((header::ETAG, stored.version.etag()))
        .insert_header((header::LAST_MODIFIED, stored.last_updated.to_http_date()));
    if let Some(location) = location {
        response.insert_header((header::LOCATION, location));
    }
    if prefs.return_minimal {
        return Ok(response.finish());
    }
    response.insert_header((header::CONTENT_TYPE, FHIR_JSON));
    if prefs.return_outcome {
        let outcome = operation_outcome(&[OutcomeIssue {
            severity: IssueSeverity::Information,
            code: IssueCode::Informational,
            diagnostics: message.to_owned(),
            expression: None,
        }])?;
        return Ok(response.body(outcome.to_string()));
    }
    Ok(response.body(stored.content.clone().unwrap_or_default()))
}

/// Read the current version of a resource.
#[utoipa::path(
    tag = "FHIR",
    params(("resource_type" = String, Path, description = "A stored resource type, e.g. Patient"),
           ("id" = String, Path, description = "Logical id")),
    responses(
        (status = 200, description = "The resource; ETag carries its version", body = Object, content_type = "application/fhir+json"),
        (status = 404, description = "Unknown type or id", body = Object, content_type = "application/fhir+json"),
        (status = 410, description = "Deleted", body = Object, content_type = "application/fhir+json"),
    )
)]
#[get("/{resource_type}/{id}")]
pub async fn read(
    state: Data<ApiState>,
    access: Access,
    path: Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (t, id) = path.into_inner();
    let (t, id) = (resource_type(&t)?, resource_id(&id)?);
    if t == ResourceType::AuditEvent {
        return super::audit::read(&state, &access, &id).await;
    }
    let stored = read_within_grant(&state, &access, t, &id).await?;
    resource_response(StatusCode::OK, &stored, Preferences::default(), None, "")
}

/// The current version of a resource, when the caller's grant covers it.
pub(crate) async fn read_within_grant(
    state: &ApiState,
    access: &Access,
    t: ResourceType,
    id: &ResourceId,
) -> Result<StoredResource, ApiError> {
    let stored = state.pipeline.store().read(t, id).await?;
    access.stored(t, stored.id.as_ref(), stored.content.as_deref())?;
    Ok(stored)
}

/// Read one version of a resource (vread).
#[utoipa::path(
    tag = "FHIR",
    params(("resource_type" = String, Path, description = "A stored resource type"),
           ("id" = String, Path, description = "Logical id"),
           ("version_id" = String, Path, description = "Version, as in meta.versionId")),
    responses(
        (status = 200, description = "That version", body = Object, content_type = "application/fhir+json"),
        (status = 404, description = "Unknown type, id or version", body = Object, content_type = "application/fhir+json"),
        (status = 410, description = "That version is a deletion", body = Object, content_type = "application/fhir+json"),
    )
)]
#[get("/{resource_type}/{id}/_history/{version_id}")]
pub async fn vread(
    state: Data<ApiState>,
    access: Access,
    path: Path<(String, String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (t, id, v) = path.into_inner();
    let (t, id) = (resource_type(&t)?, resource_id(&id)?);
    if t == ResourceType::AuditEvent {
        return Err(super::audit::one_version());
    }
    let version = VersionId::parse(&v)
        .map_err(|_| ApiError::new(ErrorKind::NotFound, "version id must be a positive integer"))?;
    let stored = state.pipeline.store().vread(t, &id, version).await?;
    access.stored(t, stored.id.as_ref(), stored.content.as_deref())?;
    resource_response(StatusCode::OK, &stored, Preferences::default(), None, "")
}

/// Update a resource, or create it with the given id. `If-Match: W/"n"` makes the update
/// conditional on the current version.
#[utoipa::path(
    tag = "FHIR",
    params(("resource_type" = String, Path, description = "A stored resource type"),
           ("id" = String, Path, description = "Logical id; must equal the body's id"),
           ("If-Match" = Option<String>, Header, description = "W/\"<versionId>\": update only that version"),
           ("Prefer" = Option<String>, Header, description = "return=minimal | representation | OperationOutcome")),
    request_body(content = Object, content_type = "application/fhir+json", description = "The resource"),
    responses(
        (status = 200, description = "Updated", body = Object, content_type = "application/fhir+json"),
        (status = 201, description = "Created with the given id", body = Object, content_type = "application/fhir+json"),
        (status = 400, description = "Invalid resource, or id missing or different from the URL", body = Object, content_type = "application/fhir+json"),
        (status = 404, description = "Unknown resource type", body = Object, content_type = "application/fhir+json"),
        (status = 409, description = "A concurrent update won", body = Object, content_type = "application/fhir+json"),
        (status = 412, description = "If-Match does not name the current version", body = Object, content_type = "application/fhir+json"),
        (status = 413, description = "Body too large", body = Object, content_type = "application/fhir+json"),
        (status = 415, description = "Body is not FHIR JSON", body = Object, content_type = "application/fhir+json"),
    )
)]
#[put("/{resource_type}/{id}")]
pub async fn update(
    req: HttpRequest,
    state: Data<ApiState>,
    access: Access,
    path: Path<(String, String)>,
    payload: Payload,
) -> Result<HttpResponse, ApiError> {
    let (t, id) = path.into_inner();
    let (t, id) = (resource_type(&t)?, resource_id(&id)?);
    writable(t)?;
    let if_match = match req.headers().get(header::IF_MATCH) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|v| VersionId::from_etag(v).ok())
                .ok_or_else(|| {
                    ApiError::new(
                        ErrorKind::Invalid,
                        "If-Match must be a version ETag such as W/\"3\"",
                    )
                })?,
        ),
    };
    let body = read_body(&req, payload, state.max_body_bytes).await?;
    // Both what is there and what replaces it must be the caller's to change.
    current_in_reach(&state, &access, t, &id).await?;
    check_body(&access, t, &body)?;
    let written = state.pipeline.update(t, &id, &body, if_match).await?;
    let s = &written.stored;
    let location = format!(
        "{}/_history/{}",
        resource_url(&base_url(&req, &state), t, &s.id),
        s.version
    );
    let (status, message) = if written.created {
        (StatusCode::CREATED, "created")
    } else {
        (StatusCode::OK, "updated")
    };
    resource_response(
        status,
        s,
        Preferences::from_request(&req),
        Some(location),
        message,
    )
}

/// Delete a resource. Deleting a deleted resource succeeds again.
#[utoipa::path(
    tag = "FHIR",
    params(("resource_type" = String, Path, description = "A stored resource type"),
           ("id" = String, Path, description = "Logical id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "Unknown type or id", body = Object, content_type = "application/fhir+json"),
    )
)]
#[delete("/{resource_type}/{id}")]
pub async fn delete_resource(
    state: Data<ApiState>,
    access: Access,
    path: Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (t, id) = path.into_inner();
    let (t, id) = (resource_type(&t)?, resource_id(&id)?);
    writable(t)?;
    current_in_reach(&state, &access, t, &id).await?;
    let version = state.pipeline.delete(t, &id).await?;
    Ok(HttpResponse::NoContent()
        .insert_header((header::ETAG, version.etag()))
        .finish())
}

/// The versions of a resource, newest first, paged with `_count`.
#[utoipa::path(
    tag = "FHIR",
    params(("resource_type" = String, Path, description = "A stored resource type"),
           ("id" = String, Path, description = "Logical id"),
           ("_count" = Option<u32>, Query, description = "Page size")),
    responses(
        (status = 200, description = "A history Bundle", body = Object, content_type = "application/fhir+json"),
        (status = 404, description = "Unknown type or id", body = Object, content_type = "application/fhir+json"),
    )
)]
#[get("/{resource_type}/{id}/_history")]
pub async fn history(
    req: HttpRequest,
    state: Data<ApiState>,
    access: Access,
    path: Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (t, id) = path.into_inner();
    let (t, id) = (resource_type(&t)?, resource_id(&id)?);
    if t == ResourceType::AuditEvent {
        return Err(super::audit::one_version());
    }
    current_in_reach(&state, &access, t, &id).await?;
    let body = state
        .pipeline
        .history(t, &id, &query_pairs(&req), &base_url(&req, &state))
        .await?;
    Ok(HttpResponse::Ok().content_type(FHIR_JSON).body(body))
}

/// The current version of a resource, when there is one, must be within the caller's reach
/// (a deleted or absent one names no patient).
async fn current_in_reach(
    state: &ApiState,
    access: &Access,
    t: ResourceType,
    id: &ResourceId,
) -> Result<(), ApiError> {
    match state.pipeline.store().read(t, id).await {
        Ok(stored) => access.stored(t, stored.id.as_ref(), stored.content.as_deref()),
        Err(StoreError::NotFound { .. } | StoreError::Gone { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
