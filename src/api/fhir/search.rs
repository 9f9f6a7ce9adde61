//! Type-level search.

use actix_web::web::{Data, Path};
use actix_web::{HttpRequest, HttpResponse, get};

use super::{ApiError, Preferences, base_url, query_pairs, resource_type};
use crate::api::error::FHIR_JSON;
use crate::api::{Access, ApiState};
use crate::domain::ResourceType;
use crate::pipeline::SearchRequest;

/// Search one resource type. Supported parameters per type are listed in the
/// CapabilityStatement; `_count`, `_sort` and the Bundle's `next` links page through results.
#[utoipa::path(
    tag = "FHIR",
    params(("resource_type" = String, Path, description = "A stored resource type"),
           ("_id" = Option<String>, Query, description = "Logical ids, comma-separated"),
           ("_lastUpdated" = Option<String>, Query, description = "Date with optional prefix, e.g. ge2024-01-01"),
           ("subject" = Option<String>, Query, description = "Reference, e.g. Patient/123"),
           ("patient" = Option<String>, Query, description = "Patient id or Patient/id"),
           ("code" = Option<String>, Query, description = "Token: system|code, code, or system|"),
           ("status" = Option<String>, Query, description = "Token"),
           ("date" = Option<String>, Query, description = "Date with optional prefix eq, ne, gt, lt, ge, le, sa, eb"),
           ("identifier" = Option<String>, Query, description = "Token: system|value"),
           ("_count" = Option<u32>, Query, description = "Page size"),
           ("_sort" = Option<String>, Query, description = "_id, _lastUpdated or date; '-' for descending"),
           ("Prefer" = Option<String>, Header, description = "handling=strict: unknown parameters are an error")),
    responses(
        (status = 200, description = "A searchset Bundle", body = Object, content_type = "application/fhir+json"),
        (status = 400, description = "Invalid parameter value, unsupported modifier, or an unknown parameter under handling=strict", body = Object, content_type = "application/fhir+json"),
        (status = 404, description = "Unknown resource type", body = Object, content_type = "application/fhir+json"),
    )
)]
#[get("/{resource_type}")]
pub async fn search(
    req: HttpRequest,
    state: Data<ApiState>,
    access: Access,
    path: Path<String>,
) -> Result<HttpResponse, ApiError> {
    let t = resource_type(&path.into_inner())?;
    let mut params = query_pairs(&req);
    access.confine_search(t, &mut params)?;
    if t == ResourceType::AuditEvent {
        return super::audit::search(&state, &params, &base_url(&req, &state)).await;
    }
    let base = base_url(&req, &state);
    let request = SearchRequest {
        resource_type: t,
        params: &params,
        strict: Preferences::from_request(&req).strict,
        base_url: &base,
    };
    let body = state.pipeline.search(&request).await?;
    Ok(HttpResponse::Ok().content_type(FHIR_JSON).body(body))
}
