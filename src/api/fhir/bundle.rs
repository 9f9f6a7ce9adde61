//! `POST /fhir`: transaction and batch Bundles.

use actix_web::web::{Data, Payload};
use actix_web::{HttpRequest, HttpResponse, post};

use super::{ApiError, Preferences, base_url, read_body};
use crate::api::ApiState;
use crate::api::error::FHIR_JSON;

/// Process a transaction (all or nothing) or batch (entry by entry) Bundle.
#[utoipa::path(
    tag = "FHIR",
    request_body(content = Object, content_type = "application/fhir+json", description = "A Bundle of type transaction or batch"),
    params(("Prefer" = Option<String>, Header, description = "return=minimal leaves resources out of the response entries")),
    responses(
        (status = 200, description = "A transaction-response or batch-response Bundle", body = Object, content_type = "application/fhir+json"),
        (status = 400, description = "Not a transaction or batch Bundle, or (transaction) an invalid entry; nothing was written", body = Object, content_type = "application/fhir+json"),
        (status = 404, description = "(transaction) an entry names an unknown resource; nothing was written", body = Object, content_type = "application/fhir+json"),
        (status = 412, description = "(transaction) an entry's precondition failed; nothing was written", body = Object, content_type = "application/fhir+json"),
        (status = 413, description = "Body too large", body = Object, content_type = "application/fhir+json"),
    )
)]
#[post("")]
pub async fn post_bundle(
    req: HttpRequest,
    state: Data<ApiState>,
    payload: Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(&req, payload, state.max_body_bytes).await?;
    let include = !Preferences::from_request(&req).return_minimal;
    let outcome = state
        .pipeline
        .process_bundle(&body, &base_url(&req, &state), include)
        .await?;
    Ok(HttpResponse::Ok()
        .content_type(FHIR_JSON)
        .body(outcome.body))
}
