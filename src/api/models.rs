//! The models and their deployment, for the people who govern them: `GET /models` lists every
//! loaded bundle with its status (and the bundles that could not be loaded, with why);
//! `POST /models/{name@version}/$deploy` makes one active, shadow or retired. Each change files
//! the model's Device and a Provenance naming who made it, and is audited; the switch is
//! atomic and needs no restart.

use actix_web::web::{Data, Path, Payload};
use actix_web::{HttpRequest, HttpResponse, get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Access, ApiError, ApiState, read_body};
use crate::error::ErrorKind;
use crate::pipeline::models::{DeployRequest, Deployment};

fn listing(state: &ApiState) -> Value {
    let registry = state.pipeline.models();
    let models: Vec<Value> = registry
        .models
        .iter()
        .map(|m| {
            let d = &m.model.description;
            json!({
                "name": d.name,
                "version": d.version,
                "status": m.status.as_str(),
                "device": format!("Device/{}", d.device_id),
                "weightsSha256": d.weights_sha256,
                "changedBy": m.changed_by,
            })
        })
        .collect();
    let unloadable: Vec<Value> = registry
        .unloadable
        .iter()
        .map(|u| json!({"bundle": u.path, "reason": u.reason}))
        .collect();
    json!({"models": models, "unloadable": unloadable})
}

/// Every model loaded, and how it is deployed.
#[utoipa::path(
    tag = "Models",
    responses(
        (status = 200, description = "The models: name, version, status (active, shadow, retired), their Device, who changed them last; and the bundles that could not be loaded, with why", body = Object, content_type = "application/json"),
    )
)]
#[get("/models")]
pub async fn list_models(state: Data<ApiState>) -> HttpResponse {
    HttpResponse::Ok().json(listing(&state))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeployBody {
    status: String,
    reason: Option<String>,
}

/// Deploys a loaded model: `active` (retiring the one active before), `shadow` or `retired`.
#[utoipa::path(
    tag = "Models",
    params(("model" = String, Path, description = "NAME@VERSION, as `GET /models` lists it")),
    request_body(content = Object, content_type = "application/json", description = "{\"status\": \"active\" | \"shadow\" | \"retired\", \"reason\": \"…\"}"),
    responses(
        (status = 200, description = "The models as they now are", body = Object, content_type = "application/json"),
        (status = 400, description = "A malformed body or NAME@VERSION", body = Object, content_type = "application/fhir+json"),
        (status = 404, description = "No such model is loaded", body = Object, content_type = "application/fhir+json"),
        (status = 409, description = "It already has that status, it is the active model and would leave none, or another change is being made", body = Object, content_type = "application/fhir+json"),
    )
)]
#[post("/models/{model}/$deploy")]
pub async fn deploy_model(
    req: HttpRequest,
    state: Data<ApiState>,
    access: Access,
    path: Path<String>,
    payload: Payload,
) -> Result<HttpResponse, ApiError> {
    let model = path.into_inner();
    let (name, version) = model
        .split_once('@')
        .ok_or_else(|| ApiError::new(ErrorKind::Invalid, "name the model as NAME@VERSION"))?;
    let body = read_body(&req, payload, state.max_body_bytes).await?;
    let asked: DeployBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            ErrorKind::Invalid,
            format!("the body must be {{\"status\": …, \"reason\": …}}: {e}"),
        )
    })?;
    let status = Deployment::parse(&asked.status).ok_or_else(|| {
        ApiError::new(
            ErrorKind::Invalid,
            "status is one of active, shadow, retired",
        )
    })?;
    let by = access
        .user()
        .map(str::to_owned)
        .or_else(|| access.client())
        .unwrap_or_else(|| "an operator on an unrestricted door".to_owned());
    state
        .pipeline
        .deploy_model(&DeployRequest {
            name: name.to_owned(),
            version: version.to_owned(),
            status,
            by,
            reason: asked.reason,
        })
        .await?;
    Ok(HttpResponse::Ok().json(listing(&state)))
}

/// What the shadow models said of one assessment: governance's view, never the chart's.
#[utoipa::path(
    tag = "Models",
    params(("report" = String, Path, description = "The assessment's DiagnosticReport id")),
    responses(
        (status = 200, description = "Each shadow model's log hazard ratio and probabilities by horizon, or why it did not answer", body = Object, content_type = "application/json"),
    )
)]
#[get("/models/shadow-predictions/{report}")]
pub async fn shadow_predictions(
    state: Data<ApiState>,
    path: Path<String>,
) -> Result<HttpResponse, ApiError> {
    let rows = state
        .pipeline
        .store()
        .shadow_predictions(&path.into_inner())
        .await
        .map_err(crate::pipeline::PipelineError::from)?;
    let predictions: Vec<Value> = rows
        .into_iter()
        .map(|p| {
            json!({
                "model": p.model,
                "version": p.version,
                "patient": p.patient,
                "logHazardRatio": p.log_hazard_ratio,
                "horizons": p.horizons.and_then(|h| serde_json::from_str::<Value>(&h).ok()),
                "refused": p.refused,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({"predictions": predictions})))
}

/// The service's metrics in the OpenMetrics text format, for Prometheus.
#[utoipa::path(
    tag = "Operations",
    responses(
        (status = 200, description = "Requests by route and status with their latency, assessments by model and outcome, inference time, shadow predictions, each model's deployment, reviews, card feedback, queue depths", body = String, content_type = "application/openmetrics-text"),
    )
)]
#[get("/metrics")]
pub async fn metrics(state: Data<ApiState>) -> HttpResponse {
    state.pipeline.sample_metrics();
    HttpResponse::Ok()
        .content_type(crate::metrics::CONTENT_TYPE)
        .body(crate::metrics::METRICS.render())
}
