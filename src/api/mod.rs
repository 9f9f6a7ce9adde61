//! The HTTP edge (actix-web): the FHIR REST API under `/fhir`, health probes, the OpenAPI
//! document and its interactive UI. Handlers call `pipeline` (or `store` for plain reads) and
//! never reach into lower layers. Every error leaves as an OperationOutcome. Owns actix-web and
//! utoipa.

mod access;
pub mod app;
pub mod cds;
mod cors;
pub mod dicomweb;
mod embeddings;
mod error;
mod fallback;
pub mod fhir;
mod health;
mod hl7;
mod model_card;
mod models;
mod monitoring;
pub mod policy;
mod rate_limit;
mod request;
mod request_id;
pub(crate) mod smart;

use actix_web::middleware::from_fn;
use utoipa::OpenApi;
use utoipa_actix_web::AppExt;
use utoipa_actix_web::service_config::ServiceConfig;

pub use access::{Access, AccessControl, AccessMode, access_middleware};
pub use cors::cors;
pub use error::{ApiError, FHIR_JSON};
pub use fallback::{not_found_or_not_allowed, render_plain_errors};
pub use rate_limit::RateLimiter;
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
    /// The longest a request body may pause between two of its pieces.
    pub body_timeout: std::time::Duration,
    /// Largest STOW-RS body.
    pub dicomweb_max_body_bytes: usize,
    /// Largest HL7 v2 message.
    pub hl7_max_message_bytes: usize,
    /// Who may call, and how fast.
    pub access: std::sync::Arc<AccessControl>,
    /// Web origins whose pages may call from a browser (`server.cors_origins`).
    pub cors_origins: Vec<String>,
    /// The SMART app's registration and launching EHRs.
    pub app: app::AppState,
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
        (name = "Operations", description = "Liveness and readiness probes"),
        (name = "Authorization", description = "Where to get a SMART on FHIR access token"),
        (name = "Models", description = "The models loaded and how each is deployed: active, shadow or retired"),
        (name = "SMART app", description = "The risk view clinicians open in the chart: its page, its launch and code exchange, and the explanations it shows"),
        (name = "CDS Hooks", description = "CDS Hooks 2.0 services: the risk card in the chart, and what clinicians did with it")
    )
)]
pub struct ApiDoc;

/// Registers every documented route. Used by the server and by [`openapi`], so the document
/// always describes exactly the routes served.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(health::healthz)
        .service(health::readyz)
        .service(smart::smart_configuration)
        .service(model_card::model_card)
        .service(models::list_models)
        .service(models::deploy_model)
        .service(models::shadow_predictions)
        .service(models::metrics)
        .service(monitoring::page)
        .service(monitoring::performance)
        .service(monitoring::drift)
        .service(monitoring::clinician_actions)
        .service(monitoring::input_missingness)
        .service(monitoring::evaluate_alerts)
        .service(cds::discovery)
        .service(cds::call_service)
        .service(cds::service_feedback)
        .service(app::page_without_slash)
        .service(app::page)
        .service(app::launch)
        .service(app::token)
        .service(app::explanation)
        .service(app::asset)
        .service(
            utoipa_actix_web::scope("/fhir")
                .wrap(from_fn(fhir::content_negotiation_middleware))
                .service(fhir::capabilities)
                .service(fhir::type_risk_assessment)
                .service(fhir::patient_risk_assessment)
                .service(fhir::risk_assessment_status)
                .service(fhir::sign_off_report)
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

/// The OpenAPI document of the routes [`configure`] registers, with each operation's security
/// requirement from the access policy.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = actix_web::App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .configure(configure)
        .split_for_parts()
        .1;
    declare_security(&mut doc, None);
    doc
}

/// Declares how to authenticate: a bearer access token on every operation whose rule needs
/// one, with the SMART scopes it needs; and, when the authorization server's token endpoint
/// is known (the served document, SMART mode), an OAuth 2.0 client-credentials flow the
/// `/docs` page can use to get a token.
pub fn declare_security(doc: &mut utoipa::openapi::OpenApi, token_url: Option<&str>) {
    use utoipa::openapi::security::{
        ClientCredentials, Flow, HttpAuthScheme, HttpBuilder, OAuth2, Scopes, SecurityRequirement,
        SecurityScheme,
    };
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .description(Some(
                    "A SMART on FHIR access token (JWT, or opaque where the issuer offers \
                     introspection). Each operation lists the scopes it needs in SMART v2 \
                     form; user/ grants the same, and patient/ where the operation is confined \
                     to the token's patient.",
                ))
                .build(),
        ),
    );
    let scheme = match token_url {
        Some(url) => {
            components.add_security_scheme(
                "smart",
                SecurityScheme::OAuth2(OAuth2::new([Flow::ClientCredentials(
                    ClientCredentials::new(
                        url,
                        Scopes::from_iter([
                            ("system/*.rs", "read and search everything"),
                            ("system/*.cruds", "read and write everything"),
                        ]),
                    ),
                )])),
            );
            "smart"
        }
        None => "bearer",
    };
    for (path, item) in doc.paths.paths.iter_mut() {
        let operations = [
            ("GET", &mut item.get),
            ("PUT", &mut item.put),
            ("POST", &mut item.post),
            ("DELETE", &mut item.delete),
        ];
        for (method, operation) in operations {
            let Some(operation) = operation else { continue };
            let method = actix_web::http::Method::from_bytes(method.as_bytes())
                .unwrap_or(actix_web::http::Method::GET);
            let Some(rule) = policy::rule_for(&method, path) else {
                continue;
            };
            operation.security = Some(match rule.needs {
                policy::Needs::Public => vec![SecurityRequirement::default()],
                _ => vec![SecurityRequirement::new(scheme, policy::scopes_named(rule))],
            });
        }
    }
}
