//! `$risk-assessment` on Patient (instance and type level) and the status of asynchronous
//! requests. The body is a Parameters resource: `patient` (type level), `model`,
//! `imagingStudy` and `horizon` (repeatable), all optional at instance level. The handlers
//! parse the request and map the pipeline's answer (`pipeline::risk_jobs`): a collection Bundle
//! of the filed resources; with `Prefer: respond-async`, 202 with `Content-Location` naming a
//! status URL that answers 202 until the Bundle is ready.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::web::{Data, Path, Payload};
use actix_web::{HttpRequest, HttpResponse, get, post};
use serde_json::Value;

use super::{ApiError, base_url, read_body, resource_id};
use crate::api::error::FHIR_JSON;
use crate::api::{Access, ApiState};
use crate::domain::{Horizon, ResourceId, TimeUnit};
use crate::error::ErrorKind;
use crate::pipeline::risk::AssessmentRequest;
use crate::pipeline::risk_jobs::{Delivery, JobStatus, Submitted};
use crate::report::{IssueCode, IssueSeverity, OutcomeIssue, operation_outcome};
use crate::telemetry::current_request_id;

/// What the Parameters body asked for.
#[derive(Debug, Default)]
struct Asked {
    patient: Option<String>,
    model: Option<String>,
    study: Option<String>,
    horizons: Vec<Horizon>,
}

pub(super) fn invalid(index: usize, message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorKind::Invalid, message).at(format!("Parameters.parameter[{index}]"))
}

/// The `parameter`s of a Parameters body, each with its name.
pub(super) fn parameters_of(body: &[u8]) -> Result<Vec<(String, Value)>, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::new(ErrorKind::Invalid, format!("the body is not JSON: {e}")))?;
    if value["resourceType"] != "Parameters" {
        return Err(
            ApiError::new(ErrorKind::Invalid, "the body must be a Parameters resource")
                .at("resourceType".into()),
        );
    }
    let Value::Object(mut map) = value else {
        return Ok(Vec::new());
    };
    let Some(Value::Array(parameters)) = map.remove("parameter") else {
        return Ok(Vec::new());
    };
    Ok(parameters
        .into_iter()
        .map(|p| {
            let name = p.get("name").and_then(Value::as_str).unwrap_or_default();
            (name.to_owned(), p)
        })
        .collect())
}

/// A parameter the operation does not take; `takes` names those it does.
pub(super) fn unknown_parameter(index: usize, name: &str, takes: &str) -> ApiError {
    invalid(
        index,
        format!(
            "unknown parameter `{}`; this operation takes {takes}",
            name.chars().take(64).collect::<String>()
        ),
    )
}

/// A reference, id or string parameter's text.
pub(super) fn text_value(p: &Value) -> Option<String> {
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

/// A horizon given as a Quantity (UCUM `a`, `mo`, `wk`, `d`) or a string (`5y`, `36mo`,
/// `90d`), in the one grammar of `domain::Horizon`: a unit is required.
fn horizon(p: &Value) -> Option<Horizon> {
    match p.get("valueQuantity") {
        Some(q) => {
            let value = q.get("value")?.as_f64()?;
            let unit: TimeUnit = q
                .get("code")
                .or_else(|| q.get("unit"))?
                .as_str()?
                .parse()
                .ok()?;
            Horizon::new(value, unit).ok()
        }
        None => Horizon::parse(p.get("valueString")?.as_str()?, None).ok(),
    }
}

/// Whether a Parameters body reads (for the fuzzer, through `check_risk_parameters`).
pub(super) fn parameters_read(body: &[u8]) -> bool {
    parse_parameters(body).is_ok()
}

fn parse_parameters(body: &[u8]) -> Result<Asked, ApiError> {
    let mut asked = Asked::default();
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(asked);
    }
    for (i, (name, p)) in parameters_of(body)?.iter().enumerate() {
        match name.as_str() {
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
            "horizon" => asked.horizons.push(horizon(p).ok_or_else(|| {
                invalid(
                    i,
                    "horizon: a Quantity in a, mo, wk or d (or a string such as 5y)",
                )
            })?),
            other => {
                return Err(unknown_parameter(
                    i,
                    other,
                    "patient, model, imagingStudy and horizon",
                ));
            }
        }
    }
    Ok(asked)
}

fn respond_async(req: &HttpRequest) -> bool {
    req.headers().get_all("prefer").any(|v| {
        v.to_str().is_ok_and(|v| {
            v.split([',', ';'])
                .any(|t| t.trim().eq_ignore_ascii_case("respond-async"))
        })
    })
}

pub(super) fn bundle_response(body: String) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON)))
        .body(body)
}

/// Submits the assessment and answers as the caller asked: the Bundle, or 202.
async fn run(
    req: HttpRequest,
    state: Data<ApiState>,
    access: Access,
    patient: ResourceId,
    asked: Asked,
) -> Result<HttpResponse, ApiError> {
    // Before anything is read, here or from the EHR: the caller's token must cover this
    // patient (the route's rule has checked it covers what the assessment reads).
    access.patient(patient.as_ref())?;
    let request = AssessmentRequest {
        patient,
        model: asked.model,
        study: asked.study,
        horizons: asked.horizons,
    };
    let base = base_url(&req, &state);
    let delivery = if respond_async(&req) {
        Delivery::Job
    } else {
        Delivery::Wait
    };
    let request_id = current_request_id();
    let submitted = state
        .pipeline
        .submit_assessment(request, &base, delivery, request_id.as_deref())
        .await?;
    match submitted {
        Submitted::Answered(bundle) => Ok(bundle_response(bundle)),
        Submitted::Accepted { job } => {
            let issue = OutcomeIssue {
                severity: IssueSeverity::Information,
                code: IssueCode::Informational,
                diagnostics: "accepted; poll the Content-Location URL for the result".into(),
                expression: None,
            };
            let outcome = operation_outcome(&[issue])?;
            Ok(HttpResponse::Accepted()
                .insert_header((
                    header::CONTENT_LOCATION,
                    format!("{base}/$risk-assessment-status/{job}"),
                ))
                .insert_header((header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON)))
                .body(outcome.to_string()))
        }
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
    access: Access,
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
    run(req, state, access, patient, asked).await
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
    access: Access,
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
    run(req, state, access, patient, asked).await
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
    match state.pipeline.assessment_status(&path.into_inner()).await? {
        JobStatus::Running => Ok(HttpResponse::build(StatusCode::ACCEPTED)
            .insert_header(("X-Progress", "running"))
            .insert_header((header::RETRY_AFTER, "1"))
            .finish()),
        JobStatus::Done(bundle) => Ok(bundle_response(bundle)),
    }
}
