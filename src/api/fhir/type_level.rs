//! Type-level create, with `If-None-Exist` for conditional create.

use actix_web::http::StatusCode;
use actix_web::web::{Data, Path, Payload};
use actix_web::{HttpRequest, HttpResponse, post};

use super::instance::resource_response;
use super::{ApiError, Preferences, base_url, check_body, read_body, resource_type, writable};
use crate::api::{Access, ApiState};
use crate::report::resource_url;

/// Create a resource with a server-assigned id. With `If-None-Exist: <search>`, an existing
/// single match is returned (200) instead of creating a duplicate.
#[utoipa::path(
    tag = "FHIR",
    params(("resource_type" = String, Path, description = "A stored resource type"),
           ("If-None-Exist" = Option<String>, Header, description = "Search parameters, e.g. identifier=http://hospital|123"),
           ("Prefer" = Option<String>, Header, description = "return=minimal | representation | OperationOutcome")),
    request_body(content = Object, content_type = "application/fhir+json", description = "The resource, without id"),
    responses(
        (status = 201, description = "Created; Location and ETag name the new version", body = Object, content_type = "application/fhir+json"),
        (status = 200, description = "If-None-Exist matched one resource, which is returned", body = Object, content_type = "application/fhir+json"),
        (status = 400, description = "Malformed JSON or invalid resource; the OperationOutcome names the element", body = Object, content_type = "application/fhir+json"),
        (status = 404, description = "Unknown resource type", body = Object, content_type = "application/fhir+json"),
        (status = 412, description = "If-None-Exist matched more than one resource", body = Object, content_type = "application/fhir+json"),
        (status = 413, description = "Body too large", body = Object, content_type = "application/fhir+json"),
        (status = 415, description = "Body is not FHIR JSON", body = Object, content_type = "application/fhir+json"),
    )
)]
#[post("/{resource_type}")]
pub async fn create(
    req: HttpRequest,
    state: Data<ApiState>,
    access: Access,
    path: Path<String>,
    payload: Payload,
) -> Result<HttpResponse, ApiError> {
    let t = resource_type(&path.into_inner())?;
    writable(t)?;
    let if_none_exist = req
        .headers()
        .get("if-none-exist")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = read_body(&req, payload, state.max_body_bytes).await?;
    check_body(&access, t, &body)?;
    let written = state
        .pipeline
        .create(t, &body, if_none_exist.as_deref())
        .await?;
    let s = &written.stored;
    // A conditional create may answer with a resource already there.
    access.stored(t, s.id.as_ref(), s.content.as_deref())?;
    let location = format!(
        "{}/_history/{}",
        resource_url(&base_url(&req, &state), t, &s.id),
        s.version
    );
    let (status, message) = if written.created {
        (StatusCode::CREATED, "created")
    } else {
        (StatusCode::OK, "an existing resource matched If-None-Exist")
    };
    resource_response(
        status,
        s,
        Preferences::from_request(&req),
        Some(location),
        message,
    )
}
