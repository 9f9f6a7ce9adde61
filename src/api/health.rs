//! Liveness and readiness probes.

use actix_web::web::Data;
use actix_web::{HttpResponse, get};
use serde_json::json;

use super::ApiState;
use crate::error::error_chain;

/// Alive: the process answers HTTP.
#[utoipa::path(
    tag = "Operations",
    responses((status = 200, description = "The service is running", body = Object, example = json!({"status": "pass"})))
)]
#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "pass"}))
}

/// Ready: the database answers, every migration is applied, and received files can be written
/// (a full disk or a read-only mount says not ready).
#[utoipa::path(
    tag = "Operations",
    responses(
        (status = 200, description = "Ready to serve", body = Object, example = json!({"status": "pass", "checks": {"database": "pass", "migrations": "pass", "storage": "pass"}})),
        (status = 503, description = "Not ready; `checks` says which dependency failed", body = Object),
    )
)]
#[get("/readyz")]
pub async fn readyz(state: Data<ApiState>) -> HttpResponse {
    let (database, migrations) = match state.pipeline.store().check_ready().await {
        Ok(true) => ("pass", "pass"),
        Ok(false) => ("pass", "fail"),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            ("fail", "unknown")
        }
    };
    let storage = match state.pipeline.storage_writable().await {
        Ok(()) => "pass",
        Err(e) => {
            tracing::warn!(error = %error_chain(&e), "storage is not writable");
            "fail"
        }
    };
    let ready = database == "pass" && migrations == "pass" && storage == "pass";
    let body = json!({
        "status": if ready { "pass" } else { "fail" },
        "checks": {"database": database, "migrations": migrations, "storage": storage}
    });
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}
