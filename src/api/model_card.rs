//! The active model's card (Markdown), as shipped with its bundle: intended use and
//! population, limitations, data, features and validation figures. Public: it describes the
//! model, never a patient. CDS cards link to it as their source.

use actix_web::web::Data;
use actix_web::{HttpRequest, HttpResponse, get};

use super::{ApiError, ApiState};
use crate::error::ErrorKind;

/// The active model's card.
#[utoipa::path(
    tag = "Operations",
    responses(
        (status = 200, description = "The model card: Markdown, or its data as JSON when `Accept` names application/json", body = String, content_type = "text/markdown"),
        (status = 404, description = "No model is loaded, or it has no card", body = Object, content_type = "application/fhir+json"),
    )
)]
#[get("/model-card")]
pub async fn model_card(req: HttpRequest, state: Data<ApiState>) -> Result<HttpResponse, ApiError> {
    let wants_json = req
        .headers()
        .get(actix_web::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"));
    if wants_json {
        let data = state
            .pipeline
            .risk_model()
            .and_then(|m| m.card_data.clone())
            .ok_or_else(|| {
                ApiError::new(
                    ErrorKind::NotFound,
                    "the loaded model has no model card data",
                )
            })?;
        return Ok(HttpResponse::Ok().json(data));
    }
    let card = state
        .pipeline
        .risk_model()
        .and_then(|m| m.card.clone())
        .ok_or_else(|| ApiError::new(ErrorKind::NotFound, "the loaded model has no model card"))?;
    Ok(HttpResponse::Ok()
        .content_type("text/markdown; charset=utf-8")
        .body(card))
}
