//! The HTTP edge (actix-web): the FHIR REST API under `/fhir`, health probes, the OpenAPI
//! document and its interactive UI. Handlers call `pipeline` (or `store` for plain reads) and
//! never reach into lower layers. Every error leaves as an OperationOutcome. Owns actix-web and
//! utoipa.

pub mod dicomweb;
mod embeddings;
mod error;
mod fallback;
pub mod fhir;
mod health;
mod hl7;
mod request;
mod request_id;

use actix_web::middleware::from_fn;
use utoipa::OpenApi;
use utoipa_actix_web::AppExt;
use utoipa_actix_web::service_config::ServiceConfig;

pub use error::{ApiError, FHIR_JSON};
pub use fallback::{not_found_or_not_allowed, render_plain_errors};
use request::{query_pairs, read_body};
pub use request_id::{REQUEST_ID_HEADER, request_id_middleware};

use crate::pipeline::Pipeline;

/// What every handler shares.
#[derive(Clone, Debug)]
pub struct ApiState {
    pub pipeline: Pipeline,
    /// The public FHIR base URL links are built from (configured, else the bound address).
    pub base_url: String,
    pub max_body_bytes: usize,
    /// Largest STOW-RS body.
    pub dicomweb_max_body_bytes: usize,
    /// Largest HL7 v2 message.
    pub hl7_max_message_bytes: usize,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "prognostics",
        description = "Multimodal prognostic risk service for oncology. Speaks FHIR R4 (4.0.1) JSON \
            under /fhir: every error is an OperationOutcome with application/fhir+json. \
            Resource bodies follow the FHIR R4 specification (http://hl7.org/fhir/R4) and are \
            shown here as free-form objects.",
        license(name = "Apache-2.0")
    ),
    tags(
        (name = "FHIR", description = "FHIR R4 REST interactions on the stored resource types"),
        (name = "DICOMweb", description = "STOW-RS ingest and QIDO-RS study search (DICOM PS3.18)"),
        (name = "Embeddings", description = "Image embeddings: one uploaded file, or a stored study's pooled embeddings"),
        (name = "HL7 v2", description = "HL7 v2 messages posted over HTTP, answered with their ACK"),
        (name = "Operations", description = "Liveness and readiness probes")
    )
)]
pub struct ApiDoc;

/// Registers every documented route. Used by the server and by [`openapi`], so the document
/// always describes exactly the routes served.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(health::healthz)
        .service(health::readyz)
        .service(
            utoipa_actix_web::scope("/fhir")
                .wrap(from_fn(fhir::content_negotiation_middleware))
                .service(fhir::capabilities)
                .service(fhir::type_risk_assessment)
                .service(fhir::patient_risk_assessment)
                .service(fhir::risk_assessment_status)
                .service(fhir::post_bundle)
                .service(fhir::search_type)
                .service(fhir::create)
                .service(fhir::read)
                .service(fhir::update)
                .service(fhir::delete_resource)
                .service(fhir::history)
                .service(fhir::vread),
        )
        .service(
            utoipa_actix_web::scope("/dicomweb")
                .service(dicomweb::store_instances)
                .service(dicomweb::store_study_instances)
                .service(dicomweb::search_studies),
        )
        .service(
            utoipa_actix_web::scope("/embeddings")
                .service(embeddings::embed_image)
                .service(embeddings::study_embeddings),
        )
        .service(utoipa_actix_web::scope("/hl7").service(hl7::receive_message));
}

/// The OpenAPI document of the routes [`configure`] registers.
pub fn openapi() -> utoipa::openapi::OpenApi {
    actix_web::App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .configure(configure)
        .split_for_parts()
        .1
}
