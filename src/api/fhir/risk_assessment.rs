//! `$risk-assessment` on Patient (instance and type level) and the status of asynchronous
//! requests. The body is a Parameters resource: `patient` (type level), `model`,
//! `imagingStudy` and `horizon` (repeatable), all optional at instance level. The answer is a
//! collection Bundle of the filed resources, with an OperationOutcome entry when the prediction
//! was made without part of the inputs. `Prefer: respond-async` answers 202 with
//! `Content-Location` naming a status URL that answers 202 until the Bundle is ready; the
//! request is recorded in the store before the 202, and one left running by a stop is run again
//! at the next start.

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::web::{Data, Path, Payload};
use actix_web::{HttpRequest, HttpResponse, ResponseError, get, post};
use serde_json::Value;
use tokio::sync::Semaphore;

use super::{ApiError, base_url, read_body, resource_id};
use crate::api::ApiState;
use crate::api::error::FHIR_JSON;
use crate::domain::ResourceId;
use crate::error::ErrorKind;
use crate::pipeline::risk::{Assessment, AssessmentRequest};
use crate::pipeline::{Pipeline, PipelineError};
use crate::report::{
    BundleEntry, BundleKind, IssueCode, IssueSeverity, OutcomeIssue, bundle, operation_outcome,
    resource_url,
};
use crate::store::RiskJobState;

/// Assessments in flight, synchronous and asynchronous (bounded), and the synchronous time
/// limit.
#[derive(Clone)]
pub struct RiskRequests {
    slots: Arc<Semaphore>,
    time_limit: Duration,
}

impl std::fmt::Debug for RiskRequests {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RiskRequests")
            .field("available", &self.slots.available_permits())
            .field("time_limit", &self.time_limit)
            .finish()
    }
}

impl RiskRequests {
    pub fn new(max_concurrent: usize, time_limit: Duration) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(max_concurrent.max(1))),
            time_limit,
        }
    }

    fn slot(&self) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
        Arc::clone(&self.slots).try_acquire_owned().map_err(|_| {
            ApiError::new(
                ErrorKind::Overloaded,
                "too many risk assessments are running; retry shortly",
            )
        })
    }
}

/// Runs an asynchronous request and records how it ended.
async fn run_job(
    pipeline: Pipeline,
    job: String,
    request: AssessmentRequest,
    base: String,
    permit: tokio::sync::OwnedSemaphorePermit,
) {
    let state = match pipeline.assess_risk(&request).await {
        Ok(assessment) => match assessment_bundle(&base, &assessment) {
            Ok(bundle) => RiskJobState::Done { bundle },
            Err(_) => RiskJobState::Failed {
                status: 500,
                message: "the Bundle could not be written".into(),
            },
        },
        Err(e) => {
            let error = ApiError::from(e);
            let status = error.status_code().as_u16();
            RiskJobState::Failed {
                status,
                message: if status == 500 {
                    "the assessment failed; the service log has the cause".into()
                } else {
                    error.to_string()
                },
            }
        }
    };
    drop(permit);
    if let Err(e) = pipeline.store().finish_risk_job(&job, &state).await {
        tracing::error!(job, error = %crate::error::error_chain(&e), "could not record how an assessment ended");
    }
}

/// Runs again the asynchronous requests a stop left running (at start, before serving).
pub async fn resume_risk_jobs(pipeline: &Pipeline, requests: &RiskRequests) {
    let pending = match pipeline.store().pending_risk_jobs().await {
        Ok(pending) => pending,
        Err(e) => {
            tracing::error!(error = %crate::error::error_chain(&e), "could not read the pending assessments");
            return;
        }
    };
    for job in pending {
        let Some(request) = AssessmentRequest::from_json(&job.request) else {
            let failed = RiskJobState::Failed {
                status: 500,
                message: "the recorded request could not be read".into(),
            };
            let _ = pipeline.store().finish_risk_job(&job.id, &failed).await;
            continue;
        };
        let Ok(permit) = Arc::clone(&requests.slots).acquire_owned().await else {
            return;
        };
        tracing::info!(job = %job.id, "resuming an assessment left running");
        tokio::spawn(run_job(pipeline.clone(), job.id, request, job.base, permit));
    }
}

/// What the Parameters body asked for.
#[derive(Debug, Default)]
struct Asked {
    patient: Option<String>,
    model: Option<String>,
    study: Option<String>,
    horizons_days: Vec<f64>,
}

fn invalid(index: usize, message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorKind::Invalid, message).at(format!("Parameters.parameter[{index}]"))
}

/// A reference, id or string parameter's text.
fn text_value(p: &Value) -> Option<String> {
    [
        "valueString",
        "valueId",
        "valueUri",
        "valueCanonical",
        "valueCode",
    ]
    .iter()
    .find_map(|k| p.get(*k).and_then(Value::as_str))
    .or_else(|| {
        p.pointer("/valueReference/reference")
            .and_then(Value::as_str)
    })
    .map(str::to_owned)
}

/// Days in a horizon given as a Quantity (UCUM `a`, `mo`, `wk`, `d`) or a string (`5y`,
/// `36mo`, `90d`).
fn horizon_days(p: &Value) -> Option<f64> {
    let (value, unit) = match p.get("valueQuantity") {
        Some(q) => (
            q.get("value")?.as_f64()?,
            q.get("code")
                .or_else(|| q.get("unit"))?
                .as_str()?
                .to_owned(),
        ),
        None => {
            let s = p.get("valueString")?.as_str()?.trim();
            let at = s.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
            (s[..at].parse().ok()?, s[at..].trim().to_owned())
        }
    };
    let per = match unit.as_str() {
        "a" | "y" | "yr" | "year" | "years" => 365.25,
        "mo" | "m" | "month" | "months" => 365.25 / 12.0,
        "wk" | "w" | "week" | "weeks" => 7.0,
        "d" | "day" | "days" => 1.0,
        _ => return None,
    };
    (value > 0.0).then_some(value * per)
}

fn parse_parameters(body: &[u8]) -> Result<Asked, ApiError> {
    let mut asked = Asked::default();
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(asked);
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::new(ErrorKind::Invalid, format!("the body is not JSON: {e}")))?;
    if value["resourceType"] != "Parameters" {
        return Err(
            ApiError::new(ErrorKind::Invalid, "the body must be a Parameters resource")
                .at("resourceType".into()),
        );
    }
    let parameters = value
        .get("parameter")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for (i, p) in parameters.iter().enumerate() {
        let name = p.get("name").and_then(Value::as_str).unwrap_or_default();
        match name {
            "patient" => {
                let text = text_value(p).ok_or_else(|| invalid(i, "patient: a reference or id"))?;
                asked.patient = Some(text.trim_start_matches("Patient/").to_owned());
            }
            "model" => {
                asked.model = Some(text_value(p).ok_or_else(|| invalid(i, "model: a string"))?)
            }
            "imagingStudy" | "study" => {
                asked.study = Some(text_value(p).ok_or_else(|| {
                    invalid(
                        i,
                        "imagingStudy: a Study Instance UID or ImagingStudy reference",
                    )
                })?);
            }
            "horizon" => asked.horizons_days.push(horizon_days(p).ok_or_else(|| {
                invalid(
                    i,
                    "horizon: a Quantity in a, mo, wk or d (or a string such as 5y)",
                )
            })?),
            other => {
                return Err(invalid(
                    i,
                    format!(
                        "unknown parameter `{}`; this operation takes patient, model, imagingStudy and horizon",
                        other.chars().take(64).collect::<String>()
                    ),
                ));
            }
        }
    }
    Ok(asked)
}

/// The Bundle an assessment answers with.
fn assessment_bundle(base: &str, assessment: &Assessment) -> Result<String, ApiError> {
    let mut entries: Vec<BundleEntry> = assessment
        .resources
        .iter()
        .map(|(t, id, content)| {
            BundleEntry::with_resource(Some(resource_url(base, *t, id)), content)
        })
        .collect();
    if !assessment.warnings.is_empty() {
        let issues: Vec<OutcomeIssue> = assessment
            .warnings
            .iter()
            .map(|w| OutcomeIssue {
                severity: IssueSeverity::Warning,
                code: IssueCode::Incomplete,
                diagnostics: w.clone(),
                expression: None,
            })
            .collect();
        let outcome = operation_outcome(&issues)
            .map_err(|e| ApiError::new(ErrorKind::Internal, e.to_string()))?;
        entries.push(BundleEntry::with_resource(
            Some(format!("urn:uuid:{}", uuid::Uuid::new_v4())),
            &outcome.to_string(),
        ));
    }
    bundle(BundleKind::Collection, None, &[], &entries)
        .map_err(|e| ApiError::new(ErrorKind::Internal, e.to_string()))
}

fn respond_async(req: &HttpRequest) -> bool {
    req.headers().get_all("prefer").any(|v| {
        v.to_str().is_ok_and(|v| {
            v.split([',', ';'])
                .any(|t| t.trim().eq_ignore_ascii_case("respond-async"))
        })
    })
}

fn bundle_response(body: String) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON)))
        .body(body)
}

async fn run(
    req: HttpRequest,
    state: Data<ApiState>,
    request: AssessmentRequest,
) -> Result<HttpResponse, ApiError> {
    let permit = state.risk.slot()?;
    let base = base_url(&req, &state);
    let pipeline = state.pipeline.clone();
    if respond_async(&req) {
        let job = uuid::Uuid::new_v4().to_string();
        pipeline
            .store()
            .insert_risk_job(&job, &request.to_json(), &base)
            .await?;
        tokio::spawn(run_job(
            pipeline,
            job.clone(),
            request,
            base.clone(),
            permit,
        ));
        return Ok(HttpResponse::Accepted()
            .insert_header((
                header::CONTENT_LOCATION,
                format!("{base}/$risk-assessment-status/{job}"),
            ))
            .insert_header((header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON)))
            .body(accepted_outcome()?));
    }
    let task = tokio::spawn(async move {
        let _permit = permit;
        let assessment = pipeline.assess_risk(&request).await?;
        Ok::<_, PipelineError>(assessment)
    });
    match tokio::time::timeout(state.risk.time_limit, task).await {
        Ok(Ok(Ok(assessment))) => Ok(bundle_response(assessment_bundle(&base, &assessment)?)),
        Ok(Ok(Err(e))) => Err(e.into()),
        Ok(Err(_)) => Err(ApiError::new(ErrorKind::Internal, "the assessment failed")),
        Err(_) => Err(ApiError::new(
            ErrorKind::Unavailable,
            format!(
                "the assessment took longer than {} s; it goes on and is filed, and asking again returns it (or use Prefer: respond-async)",
                state.risk.time_limit.as_secs()
            ),
        )
        .retry_after(5)),
    }
}

/// The error kind an HTTP status was made from (for a recorded failure).
fn kind_of_status(status: u16) -> ErrorKind {
    match status {
        400 => ErrorKind::Invalid,
        404 => ErrorKind::NotFound,
        410 => ErrorKind::Gone,
        422 => ErrorKind::Unprocessable,
        429 => ErrorKind::Overloaded,
        503 => ErrorKind::Unavailable,
        _ => ErrorKind::Internal,
    }
}

fn accepted_outcome() -> Result<String, ApiError> {
    let issue = OutcomeIssue {
        severity: IssueSeverity::Information,
        code: IssueCode::Informational,
        diagnostics: "accepted; poll the Content-Location URL for the result".into(),
        expression: None,
    };
    operation_outcome(&[issue])
        .map(|o| o.to_string())
        .map_err(|e| ApiError::new(ErrorKind::Internal, e.to_string()))
}

fn request_for(patient: ResourceId, asked: Asked) -> AssessmentRequest {
    AssessmentRequest {
        patient,
        model: asked.model,
        study: asked.study,
        horizons_days: asked.horizons_days,
    }
}

/// Assess this patient's risk with the active model; the result is filed and returned.
#[utoipa::path(
    tag = "FHIR",
    params(("id" = String, Path, description = "Patient id"),
           ("Prefer" = Option<String>, Header, description = "respond-async: answer 202 with a status URL")),
    request_body(content = Object, content_type = "application/fhir+json", description = "Parameters: model, imagingStudy, horizon (all optional)"),
    responses(
        (status = 200, description = "A collection Bundle: DiagnosticReport, Observations, RiskAssessment, Provenance, the model's Device, and an OperationOutcome when inputs were missing", body = Object, content_type = "application/fhir+json"),
        (status = 202, description = "Accepted (Prefer: respond-async); Content-Location names the status URL", body = Object, content_type = "application/fhir+json"),
        (status = 400, description = "A parameter is malformed or unknown", body = Object, content_type = "application/fhir+json"),
        (status = 404, description = "No such patient", body = Object, content_type = "application/fhir+json"),
        (status = 422, description = "Nothing on record that the model can use", body = Object, content_type = "application/fhir+json"),
        (status = 429, description = "Too many assessments at once", body = Object, content_type = "application/fhir+json"),
        (status = 503, description = "No model loaded, or the time limit passed", body = Object, content_type = "application/fhir+json"),
    )
)]
#[post("/Patient/{id}/$risk-assessment")]
pub async fn patient_risk_assessment(
    req: HttpRequest,
    state: Data<ApiState>,
    path: Path<String>,
    payload: Payload,
) -> Result<HttpResponse, ApiError> {
    let patient = resource_id(&path.into_inner())?;
    let body = read_body(&req, payload, state.max_body_bytes).await?;
    let asked = parse_parameters(&body)?;
    if asked
        .patient
        .as_deref()
        .is_some_and(|p| p != patient.as_ref())
    {
        return Err(ApiError::new(
            ErrorKind::Invalid,
            "the `patient` parameter names another patient than the URL",
        ));
    }
    run(req, state, request_for(patient, asked)).await
}

/// Assess the risk of the patient the `patient` parameter names.
#[utoipa::path(
    tag = "FHIR",
    params(("Prefer" = Option<String>, Header, description = "respond-async: answer 202 with a status URL")),
    request_body(content = Object, content_type = "application/fhir+json", description = "Parameters: patient (required), model, imagingStudy, horizon"),
    responses(
        (status = 200, description = "A collection Bundle of the filed resources", body = Object, content_type = "application/fhir+json"),
        (status = 202, description = "Accepted (Prefer: respond-async)", body = Object, content_type = "application/fhir+json"),
        (status = 400, description = "No patient parameter, or a parameter is malformed", body = Object, content_type = "application/fhir+json"),
        (status = 404, description = "No such patient", body = Object, content_type = "application/fhir+json"),
        (status = 422, description = "Nothing on record that the model can use", body = Object, content_type = "application/fhir+json"),
        (status = 429, description = "Too many assessments at once", body = Object, content_type = "application/fhir+json"),
        (status = 503, description = "No model loaded, or the time limit passed", body = Object, content_type = "application/fhir+json"),
    )
)]
#[post("/Patient/$risk-assessment")]
pub async fn type_risk_assessment(
    req: HttpRequest,
    state: Data<ApiState>,
    payload: Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(&req, payload, state.max_body_bytes).await?;
    let mut asked = parse_parameters(&body)?;
    let patient = asked.patient.take().ok_or_else(|| {
        ApiError::new(
            ErrorKind::Invalid,
            "the `patient` parameter is required at type level",
        )
    })?;
    let patient = resource_id(&patient)?;
    run(req, state, request_for(patient, asked)).await
}

/// The state of an asynchronous `$risk-assessment`: 202 while it runs, then its Bundle (200)
/// or its error.
#[utoipa::path(
    tag = "FHIR",
    params(("job" = String, Path, description = "The id in Content-Location")),
    responses(
        (status = 200, description = "The result Bundle", body = Object, content_type = "application/fhir+json"),
        (status = 202, description = "Still running", body = Object, content_type = "application/fhir+json"),
        (status = 404, description = "No such request (results are kept a day: asking again returns the filed assessment)", body = Object, content_type = "application/fhir+json"),
    )
)]
#[get("/$risk-assessment-status/{job}")]
pub async fn risk_assessment_status(
    state: Data<ApiState>,
    path: Path<String>,
) -> Result<HttpResponse, ApiError> {
    let job = path.into_inner();
    match state.pipeline.store().risk_job(&job).await? {
        None => Err(ApiError::new(
            ErrorKind::NotFound,
            "no such request (results are kept a day; asking again returns the filed assessment)",
        )),
        Some(RiskJobState::Running) => Ok(HttpResponse::build(StatusCode::ACCEPTED)
            .insert_header(("X-Progress", "running"))
            .insert_header((header::RETRY_AFTER, "1"))
            .finish()),
        Some(RiskJobState::Done { bundle }) => Ok(bundle_response(bundle)),
        Some(RiskJobState::Failed { status, message }) => {
            Err(ApiError::new(kind_of_status(status), message))
        }
    }
}
