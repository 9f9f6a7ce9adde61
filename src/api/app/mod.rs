//! The SMART app at `/app/`: a page the EHR opens in the chart, showing the risk, why, what is
//! missing, the model and the patient's earlier assessments, with the clinician's actions (run
//! a new assessment, sign, disagree). Its files are built into the service and served under a
//! content security policy that lets the page load and call its own origin only (no CDN, no
//! inline script); it may be framed by the EHRs that launch it.
//!
//! A launch (`/app/launch?iss=…&launch=…`, or without `iss` for a standalone one) is checked
//! here: an `iss` the app is not registered with is refused (and audited) before anything is
//! asked of it. The page then does the authorization code flow with PKCE itself, and the code
//! is exchanged through `/app/token` (the EHR's token endpoint, as its SMART configuration
//! names it), so that the token lives in the page only.

use actix_web::http::header::{self, HeaderValue};
use actix_web::web::{Data, Form, Path, Query};
use actix_web::{HttpResponse, get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::access::public_url;
use super::error::FailureReason;
use super::{Access, ApiError, ApiState};
use crate::auth::launch::{LaunchError, Launcher};
use crate::domain::{ResourceId, ResourceType};
use crate::error::ErrorKind;

const INDEX_HTML: &str = include_str!("static/index.html");
const LAUNCH_HTML: &str = include_str!("static/launch.html");
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("static/app.js"),
    ),
    (
        "charts.js",
        "text/javascript; charset=utf-8",
        include_str!("static/charts.js"),
    ),
    (
        "smart.js",
        "text/javascript; charset=utf-8",
        include_str!("static/smart.js"),
    ),
    (
        "launch.js",
        "text/javascript; charset=utf-8",
        include_str!("static/launch.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("static/app.css"),
    ),
];

/// The app's registration, and the EHRs that may launch it.
#[derive(Debug, Clone)]
pub struct AppState {
    pub client_id: String,
    pub scope: String,
    pub launcher: Launcher,
    /// `app.frame_ancestors`.
    pub frame_ancestors: Vec<String>,
}

/// The origins that may frame the app: those configured, else the launching EHRs'.
fn frame_ancestors(state: &ApiState) -> String {
    let mut origins = vec!["'self'".to_owned()];
    let configured = &state.app.frame_ancestors;
    let sources = if configured.is_empty() {
        state.app.launcher.issuers()
    } else {
        configured.as_slice()
    };
    for source in sources {
        if let Ok(url) = url::Url::parse(source) {
            let origin = url.origin().ascii_serialization();
            if !origins.contains(&origin) {
                origins.push(origin);
            }
        }
    }
    origins.join(" ")
}

/// A response of the app: its content security policy and the headers that keep codes and
/// tokens from leaking.
fn app_response(
    state: &ApiState,
    status: actix_web::http::StatusCode,
) -> actix_web::HttpResponseBuilder {
    let policy = format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors {}",
        frame_ancestors(state)
    );
    let mut response = HttpResponse::build(status);
    response
        .insert_header((header::CONTENT_SECURITY_POLICY, policy))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::CACHE_CONTROL, "no-store"));
    response
}

fn html(state: &ApiState, status: actix_web::http::StatusCode, body: String) -> HttpResponse {
    app_response(state, status)
        .insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        ))
        .body(body)
}

/// Text for HTML.
fn escaped(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A page saying why the app cannot start.
fn refusal_page(state: &ApiState, status: actix_web::http::StatusCode, why: &str) -> HttpResponse {
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Prognostic risk: \
         cannot launch</title><link rel=\"stylesheet\" href=\"/app/app.css\"></head><body><main \
         class=\"refusal\"><h1>The risk view cannot start</h1><p>{}</p><p>Open it again from \
         the patient's chart; if this persists, tell the team that runs the prognostics \
         service.</p></main></body></html>",
        escaped(why)
    );
    let mut response = app_response(state, status);
    // For the audit record of the refusal.
    response
        .extensions_mut()
        .insert(FailureReason(why.to_owned()));
    response
        .insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        ))
        .body(body)
}

/// The app's page.
#[utoipa::path(
    tag = "SMART app",
    responses((status = 200, description = "The app's page", body = String, content_type = "text/html"))
)]
#[get("/app/")]
pub async fn page(state: Data<ApiState>) -> HttpResponse {
    html(
        &state,
        actix_web::http::StatusCode::OK,
        INDEX_HTML.to_owned(),
    )
}

/// `/app` without its slash: the page's relative links need it.
#[utoipa::path(
    tag = "SMART app",
    responses((status = 308, description = "To /app/"))
)]
#[get("/app")]
pub async fn page_without_slash() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, "/app/"))
        .finish()
}

/// One of the app's script and style files.
#[utoipa::path(
    tag = "SMART app",
    params(("file" = String, Path, description = "app.js, charts.js, smart.js, launch.js or app.css")),
    responses(
        (status = 200, description = "The file", body = String),
        (status = 404, description = "No such file", body = Object, content_type = "application/fhir+json"),
    )
)]
#[get("/app/{file}")]
pub async fn asset(state: Data<ApiState>, path: Path<String>) -> Result<HttpResponse, ApiError> {
    let name = path.into_inner();
    let (_, content_type, body) = ASSETS
        .iter()
        .find(|(file, _, _)| *file == name)
        .ok_or_else(|| ApiError::new(ErrorKind::NotFound, "no such file of the app"))?;
    Ok(app_response(&state, actix_web::http::StatusCode::OK)
        .insert_header((header::CONTENT_TYPE, *content_type))
        .body(*body))
}

#[derive(Debug, Deserialize)]
pub struct LaunchQuery {
    iss: Option<String>,
    launch: Option<String>,
}

/// Starts a launch: an EHR launch (`iss` and `launch`) from a known EHR, or a standalone one
/// (no `iss`) at the first. The page it answers sends the browser to the EHR's authorization
/// endpoint with PKCE.
#[utoipa::path(
    tag = "SMART app",
    params(("iss" = Option<String>, Query, description = "The launching EHR's FHIR base URL"),
           ("launch" = Option<String>, Query, description = "The EHR's launch context handle")),
    responses(
        (status = 200, description = "The page that goes on to the EHR's authorization server", body = String, content_type = "text/html"),
        (status = 400, description = "An EHR the app is not registered with, or a launch without its handle", body = String, content_type = "text/html"),
        (status = 502, description = "The EHR's SMART configuration could not be read", body = String, content_type = "text/html"),
    )
)]
#[get("/app/launch")]
pub async fn launch(state: Data<ApiState>, query: Query<LaunchQuery>) -> HttpResponse {
    use actix_web::http::StatusCode;
    let query = query.into_inner();
    if query.iss.is_some() != query.launch.is_some() {
        return refusal_page(
            &state,
            StatusCode::BAD_REQUEST,
            "An EHR launch names both the EHR (iss) and the launch context (launch); this one \
             names only one of them.",
        );
    }
    let issuer = match state.app.launcher.issuer(query.iss.as_deref()) {
        Ok(issuer) => issuer,
        Err(e) => {
            tracing::warn!(reason = %e, "SMART app launch refused");
            return refusal_page(&state, StatusCode::BAD_REQUEST, &e.to_string());
        }
    };
    let endpoints = match state.app.launcher.endpoints(&issuer).await {
        Ok(endpoints) => endpoints,
        Err(e) => {
            tracing::warn!(reason = %e, "SMART app launch: EHR discovery failed");
            return refusal_page(&state, StatusCode::BAD_GATEWAY, &e.to_string());
        }
    };
    let scope = match query.launch {
        Some(_) => state.app.scope.clone(),
        None => state
            .app
            .scope
            .split_whitespace()
            .map(|s| if s == "launch" { "launch/patient" } else { s })
            .collect::<Vec<_>>()
            .join(" "),
    };
    let config = json!({
        "iss": issuer,
        "launch": query.launch,
        "authorizeEndpoint": endpoints.authorize,
        "clientId": state.app.client_id,
        "scope": scope,
        "redirectUri": public_url(&state.base_url, "/app/"),
    });
    // Inside a data block: `<` escaped so that no value can close it.
    let config = config.to_string().replace('<', "\\u003c");
    html(
        &state,
        StatusCode::OK,
        LAUNCH_HTML.replace("{{LAUNCH_CONFIG}}", &config),
    )
}

#[derive(Debug, Deserialize)]
pub struct CodeExchange {
    iss: String,
    code: String,
    code_verifier: String,
}

fn oauth_error(
    state: &ApiState,
    status: actix_web::http::StatusCode,
    error: &str,
    description: &str,
) -> HttpResponse {
    let mut response = app_response(state, status);
    // For the audit record of the refusal.
    response
        .extensions_mut()
        .insert(FailureReason(description.to_owned()));
    response.json(json!({"error": error, "error_description": description}))
}

/// Exchanges the authorization code the EHR gave the page for a token, at the token endpoint
/// of the EHR that launched it (a known one), as the app's public client with the page's PKCE
/// verifier. The EHR's answer is passed back as it is; nothing is kept.
#[utoipa::path(
    tag = "SMART app",
    request_body(content = Object, content_type = "application/x-www-form-urlencoded", description = "iss, code, code_verifier"),
    responses(
        (status = 200, description = "The EHR's token response", body = Object, content_type = "application/json"),
        (status = 400, description = "An EHR the app is not registered with, a malformed request, or the EHR's refusal", body = Object, content_type = "application/json"),
        (status = 502, description = "The EHR's authorization server could not be reached", body = Object, content_type = "application/json"),
    )
)]
#[post("/app/token")]
pub async fn token(state: Data<ApiState>, form: Form<CodeExchange>) -> HttpResponse {
    use actix_web::http::StatusCode;
    let form = form.into_inner();
    let issuer = match state.app.launcher.issuer(Some(&form.iss)) {
        Ok(issuer) => issuer,
        Err(e) => {
            return oauth_error(
                &state,
                StatusCode::BAD_REQUEST,
                "invalid_request",
                &e.to_string(),
            );
        }
    };
    let redirect_uri = public_url(&state.base_url, "/app/");
    let answer = state
        .app
        .launcher
        .exchange_code(
            &issuer,
            &[
                ("grant_type", "authorization_code"),
                ("code", &form.code),
                ("redirect_uri", &redirect_uri),
                ("client_id", &state.app.client_id),
                ("code_verifier", &form.code_verifier),
            ],
        )
        .await;
    match answer {
        Ok((status, body)) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
            let status = if status.is_success() || status.is_client_error() {
                status
            } else {
                StatusCode::BAD_GATEWAY
            };
            app_response(&state, status).json(body)
        }
        Err(e @ (LaunchError::Discovery(_) | LaunchError::Token(_))) => {
            tracing::warn!(reason = %e, "SMART app code exchange failed");
            oauth_error(
                &state,
                StatusCode::BAD_GATEWAY,
                "temporarily_unavailable",
                &e.to_string(),
            )
        }
        Err(e) => oauth_error(
            &state,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            &e.to_string(),
        ),
    }
}

/// The explanation of one assessment, as the app shows it: the curve, the features with
/// their sources, what was missing and the test that would fill it.
#[utoipa::path(
    tag = "SMART app",
    params(("report" = String, Path, description = "The assessment's DiagnosticReport id")),
    responses(
        (status = 200, description = "The explanation", body = Object, content_type = "application/json"),
        (status = 403, description = "The report is outside the token's grant", body = Object, content_type = "application/fhir+json"),
        (status = 404, description = "No explanation was kept for this report (an assessment filed before explanations were)", body = Object, content_type = "application/fhir+json"),
    )
)]
#[get("/app/api/explanations/{report}")]
pub async fn explanation(
    state: Data<ApiState>,
    access: Access,
    path: Path<String>,
) -> Result<HttpResponse, ApiError> {
    let report = ResourceId::parse(&path.into_inner())
        .map_err(|e| ApiError::new(ErrorKind::Invalid, e.to_string()))?;
    super::fhir::read_within_grant(&state, &access, ResourceType::DiagnosticReport, &report)
        .await?;
    let (_, content) = state
        .pipeline
        .store()
        .assessment_view(report.as_ref())
        .await?
        .ok_or_else(|| {
            ApiError::new(
                ErrorKind::NotFound,
                "no explanation was kept for this report; run a new assessment",
            )
        })?;
    let view: Value = serde_json::from_str(&content)
        .map_err(|_| ApiError::new(ErrorKind::Internal, "the kept explanation is unreadable"))?;
    Ok(app_response(&state, actix_web::http::StatusCode::OK).json(view))
}
