//! `GET /fhir/metadata`: the CapabilityStatement.

use actix_web::web::Data;
use actix_web::{HttpRequest, HttpResponse, get};

use super::base_url;
use crate::api::ApiState;
use crate::api::error::FHIR_JSON;
use crate::report::{CapabilityOptions, capability_statement};

/// What this server implements: resource types, interactions and search parameters.
#[utoipa::path(
    tag = "FHIR",
    responses((status = 200, description = "The CapabilityStatement", body = Object, content_type = "application/fhir+json"))
)]
#[get("/metadata")]
pub async fn metadata(req: HttpRequest, state: Data<ApiState>) -> HttpResponse {
    let base = base_url(&req, &state);
    let statement = capability_statement(&CapabilityOptions {
        base_url: &base,
        software_version: env!("CARGO_PKG_VERSION"),
    });
    HttpResponse::Ok()
        .content_type(FHIR_JSON)
        .body(statement.to_string())
}
