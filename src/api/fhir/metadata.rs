//! `GET /fhir/metadata`: the CapabilityStatement.

use actix_web::web::Data;
use actix_web::{HttpRequest, HttpResponse, get};

use super::base_url;
use crate::api::error::FHIR_JSON;
use crate::api::smart::{issuer_discovery, oauth_endpoints};
use crate::api::{AccessMode, ApiState};
use crate::report::{CapabilityOptions, capability_statement};

/// What this server implements: resource types, interactions and search parameters.
#[utoipa::path(
    tag = "FHIR",
    responses((status = 200, description = "The CapabilityStatement", body = Object, content_type = "application/fhir+json"))
)]
#[get("/metadata")]
pub async fn metadata(req: HttpRequest, state: Data<ApiState>) -> HttpResponse {
    let base = base_url(&req, &state);
    let oauth = match &state.access.mode {
        AccessMode::Tokens(_) => Some(
            issuer_discovery(&state)
                .await
                .map(|d| oauth_endpoints(&d))
                .unwrap_or_default(),
        ),
        AccessMode::Unrestricted => None,
    };
    let statement = capability_statement(&CapabilityOptions {
        base_url: &base,
        software_version: env!("CARGO_PKG_VERSION"),
        oauth: oauth.as_deref(),
        cors: !state.cors_origins.is_empty(),
    });
    HttpResponse::Ok()
        .content_type(FHIR_JSON)
        .body(statement.to_string())
}
