//! Model monitoring for governance: each model version's performance once outcomes arrive,
//! its inputs' and outputs' drift from its training patients, what clinicians did with it, the
//! alerts; as JSON, and as the `/monitoring` page with plots drawn here (SVG).

use actix_web::web::{Data, Query};
use actix_web::{HttpResponse, get, post};
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, ApiState};
use crate::error::ErrorKind;

/// The period a report covers.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct Since {
    /// The first day of the assessments covered, `YYYY-MM-DD` (default: `monitoring.window_days`
    /// back from today).
    since: Option<String>,
}

impl Since {
    fn start(&self, state: &ApiState) -> Result<chrono::DateTime<chrono::Utc>, ApiError> {
        match &self.since {
            None => Ok(chrono::Utc::now()
                - chrono::Duration::days(i64::from(state.pipeline.alert_thresholds().window_days))),
            Some(text) => chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc())
                .map_err(|_| {
                    ApiError::new(
                        ErrorKind::Invalid,
                        format!("`since` must be a date, YYYY-MM-DD; got `{text}`"),
                    )
                }),
        }
    }
}

/// The page the governance team reads: alerts, each model version's performance on outcomes
/// beside its card's figures (calibration curve, discrimination over time), subgroups, drift
/// by input, the predicted risk against the training patients', and what clinicians did. The
/// plots are drawn by the service (SVG); the page runs no script.
#[utoipa::path(
    tag = "Models",
    params(Since),
    responses(
        (status = 200, description = "The monitoring page", body = String, content_type = "text/html"),
        (status = 400, description = "`since` is not a date", body = Object, content_type = "application/fhir+json"),
    )
)]
#[get("/monitoring")]
pub async fn page(state: Data<ApiState>, since: Query<Since>) -> Result<HttpResponse, ApiError> {
    let since = since.start(&state)?;
    let report = state.pipeline.monitoring_report(since).await?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((
            "Content-Security-Policy",
            "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'",
        ))
        .body(report.html()))
}

/// How each model version does on the assessments whose outcomes are on record: the active
/// model's and the shadows' side by side.
#[utoipa::path(
    tag = "Models",
    responses(
        (status = 200, description = "Per model version and role (active, shadow): assessments, those paired with a usable outcome, events, Harrell's and Uno's C, and by horizon the AUC and the expected against the observed event rate; and how many could not be paired, by reason", body = Object, content_type = "application/json"),
    )
)]
#[get("/monitoring/performance")]
pub async fn performance(state: Data<ApiState>) -> Result<HttpResponse, ApiError> {
    let performance = state.pipeline.monitor_performance().await?;
    Ok(HttpResponse::Ok().json(json!({"models": performance})))
}

/// What clinicians did with each model version's output: cards accepted or overridden, reports
/// signed or disagreed with, the reasons, and the acceptance rate.
#[utoipa::path(
    tag = "Models",
    responses(
        (status = 200, description = "Per model version: CDS cards accepted and overridden with the override reasons, reports signed and disagreed with the reasons, and the acceptance rate", body = Object, content_type = "application/json"),
    )
)]
#[get("/monitoring/actions")]
pub async fn clinician_actions(state: Data<ApiState>) -> Result<HttpResponse, ApiError> {
    let actions = state.pipeline.clinician_actions().await?;
    Ok(HttpResponse::Ok().json(json!({"models": actions})))
}

/// The window of recent assessments drift is measured over.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct Window {
    /// Days back from now, 1 to 36,525 (default: `monitoring.window_days`).
    #[param(minimum = 1, maximum = 36525)]
    days: Option<u32>,
}

/// The longest drift window: a century.
const MAX_WINDOW_DAYS: u32 = 36_525;

/// How each model version's recent inputs and outputs compare with its training patients':
/// the population stability index of each input and of the predicted risk, each input's
/// missingness against the training rows', how far each embedding moved, and the imaging
/// acquisition mix.
#[utoipa::path(
    tag = "Models",
    params(Window),
    responses(
        (status = 200, description = "Per model version and role: assessments in the window; per input its PSI, missing rate and training missing rate; per embedding modality the mean shift and spread of its whitened principal-component scores; the PSI of the predicted risk with the recent and training shares by bin; the acquisition mix", body = Object, content_type = "application/json"),
    )
)]
#[get("/monitoring/drift")]
pub async fn drift(state: Data<ApiState>, window: Query<Window>) -> Result<HttpResponse, ApiError> {
    let days = window
        .days
        .unwrap_or(state.pipeline.alert_thresholds().window_days);
    if !(1..=MAX_WINDOW_DAYS).contains(&days) {
        return Err(ApiError::new(
            ErrorKind::Invalid,
            format!("days: from 1 to {MAX_WINDOW_DAYS}"),
        ));
    }
    let drift = state.pipeline.input_drift(days).await?;
    Ok(HttpResponse::Ok().json(json!({"windowDays": days, "models": drift})))
}

/// How often each input was missing from each model version's assessments.
#[utoipa::path(
    tag = "Models",
    responses(
        (status = 200, description = "Per model version: the assessments, and per input the assessments it was missing from and the rate", body = Object, content_type = "application/json"),
    )
)]
#[get("/monitoring/inputs")]
pub async fn input_missingness(state: Data<ApiState>) -> Result<HttpResponse, ApiError> {
    let inputs = state.pipeline.input_missingness().await?;
    Ok(HttpResponse::Ok().json(json!({"models": inputs})))
}

/// Evaluates the monitoring's figures against the configured thresholds now (the monitoring
/// job does it every `monitoring.interval_secs`): each alert is logged, shown on `/metrics`
/// and filed once as a DetectedIssue naming the model's Device.
#[utoipa::path(
    tag = "Models",
    responses(
        (status = 200, description = "The alerts raised: model, version, kind (discrimination, calibration, input-missing:INPUT), what crossed the threshold, and the DetectedIssue", body = Object, content_type = "application/json"),
    )
)]
#[post("/monitoring/$evaluate")]
pub async fn evaluate_alerts(state: Data<ApiState>) -> Result<HttpResponse, ApiError> {
    let alerts = state.pipeline.evaluate_alerts().await?;
    Ok(HttpResponse::Ok().json(json!({"alerts": alerts})))
}
