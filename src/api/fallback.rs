//! Answers for what no handler took: 405 with `Allow` where the path is a FHIR route but the
//! method is not, 404 otherwise, and OperationOutcome bodies for errors that actix-web itself
//! produced (malformed paths, bodies it refused) so that no error leaves as plain text.

use actix_web::body::MessageBody;
use actix_web::dev::ServiceResponse;
use actix_web::http::header;
use actix_web::middleware::ErrorHandlerResponse;
use actix_web::{HttpRequest, HttpResponse, ResponseError};

use super::error::ApiError;
use crate::error::ErrorKind;

/// The default service: 405 for a known path with another method, else 404.
pub async fn not_found_or_not_allowed(req: HttpRequest) -> HttpResponse {
    let segments: Vec<&str> = req
        .path()
        .trim_end_matches('/')
        .split('/')
        .skip(1)
        .collect();
    let allow = match segments.as_slice() {
        ["fhir"] => Some("POST"),
        ["fhir", "metadata"] => Some("GET"),
        ["fhir", _] => Some("GET, POST"),
        ["fhir", _, _] => Some("GET, PUT, DELETE"),
        ["fhir", _, _, "_history"] | ["fhir", _, _, "_history", _] => Some("GET"),
        ["healthz"] | ["readyz"] | ["openapi.json"] => Some("GET"),
        _ => None,
    };
    match allow {
        Some(allow) => ApiError::method_not_allowed(allow).error_response(),
        None => ApiError::new(
            ErrorKind::NotFound,
            "no such endpoint; the FHIR API is under /fhir",
        )
        .error_response(),
    }
}

/// Replaces an error response that is not already JSON with an OperationOutcome.
pub fn render_plain_errors<B: MessageBody + 'static>(
    res: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    // JSON errors are already in their protocol's form; HTML ones are the SMART app's pages
    // for a person in the chart.
    let is_formed = res.headers().get(header::CONTENT_TYPE).is_some_and(|v| {
        v.to_str()
            .is_ok_and(|v| v.contains("json") || v.starts_with("text/html"))
    });
    if is_formed {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status().as_u16();
    let kind = match status {
        404 => ErrorKind::NotFound,
        405 => ErrorKind::MethodNotAllowed,
        406 => ErrorKind::NotAcceptable,
        409 => ErrorKind::Conflict,
        412 => ErrorKind::PreconditionFailed,
        413 => ErrorKind::PayloadTooLarge,
        415 => ErrorKind::UnsupportedMediaType,
        429 => ErrorKind::Overloaded,
        503 => ErrorKind::Unavailable,
        400..=499 => ErrorKind::Invalid,
        _ => ErrorKind::Internal,
    };
    let message = res
        .status()
        .canonical_reason()
        .unwrap_or("request failed")
        .to_owned();
    let (req, _) = res.into_parts();
    let response = ApiError::new(kind, message).error_response();
    Ok(ErrorHandlerResponse::Response(
        ServiceResponse::new(req, response).map_into_right_body(),
    ))
}
