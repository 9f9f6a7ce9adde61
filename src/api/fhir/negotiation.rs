//! Media types and preferences. Responses are FHIR JSON; `_format` overrides `Accept`; bodies
//! must be `application/fhir+json` or `application/json`. A request that accepts neither, or
//! sends another body type, is refused here before any handler runs.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpRequest, ResponseError};

use crate::api::error::ApiError;
use crate::error::ErrorKind;

const PLAIN_JSON: &str = "application/json; charset=utf-8";

/// What the caller asked for with `Prefer` (RFC 7240; FHIR R4 §3.1.0.8.5).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Preferences {
    pub return_minimal: bool,
    pub return_outcome: bool,
    pub strict: bool,
}

impl Preferences {
    pub fn from_request(req: &HttpRequest) -> Self {
        let mut prefs = Preferences::default();
        for value in req.headers().get_all("prefer") {
            let Ok(value) = value.to_str() else { continue };
            for token in value.split([',', ';']).map(str::trim) {
                match token.to_ascii_lowercase().as_str() {
                    "return=minimal" => prefs.return_minimal = true,
                    "return=operationoutcome" => prefs.return_outcome = true,
                    "handling=strict" => prefs.strict = true,
                    _ => {}
                }
            }
        }
        prefs
    }
}

/// Which JSON media type the response carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ResponseFormat {
    FhirJson,
    PlainJson,
}

fn format_param(req: &ServiceRequest) -> Option<String> {
    url::form_urlencoded::parse(req.query_string().as_bytes())
        .find(|(k, _)| k == "_format")
        .map(|(_, v)| v.into_owned())
}

fn choose_format(req: &ServiceRequest) -> Result<ResponseFormat, ApiError> {
    let not_acceptable = || {
        ApiError::new(
            ErrorKind::NotAcceptable,
            "this server produces application/fhir+json or application/json only",
        )
    };
    if let Some(format) = format_param(req) {
        let format = format
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        return match format.as_str() {
            "json" | "application/fhir+json" | "application/json+fhir" => {
                Ok(ResponseFormat::FhirJson)
            }
            "application/json" => Ok(ResponseFormat::PlainJson),
            _ => Err(not_acceptable()),
        };
    }
    let Some(accept) = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
    else {
        return Ok(ResponseFormat::FhirJson);
    };
    let mut plain = false;
    for range in accept.split(',') {
        let media = range
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        match media.as_str() {
            "application/fhir+json" | "application/json+fhir" | "*/*" | "application/*" | "" => {
                return Ok(ResponseFormat::FhirJson);
            }
            "application/json" => plain = true,
            _ => {}
        }
    }
    if plain {
        Ok(ResponseFormat::PlainJson)
    } else {
        Err(not_acceptable())
    }
}

fn check_body_type(req: &ServiceRequest) -> Result<(), ApiError> {
    let has_body = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v != "0");
    if !matches!(req.method().as_str(), "POST" | "PUT") || !has_body {
        return Ok(());
    }
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let media = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match media.as_str() {
        "application/fhir+json" | "application/json" | "application/json+fhir" => Ok(()),
        _ => Err(ApiError::new(
            ErrorKind::UnsupportedMediaType,
            "request bodies must be application/fhir+json (or application/json)",
        )),
    }
}

/// Refuses unsupported media types up front and labels successful responses with the media
/// type the caller asked for.
pub async fn content_negotiation_middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let format = match choose_format(&req).and_then(|f| check_body_type(&req).map(|_| f)) {
        Ok(f) => f,
        Err(e) => {
            let response = e.error_response();
            return Ok(req.into_response(response).map_into_right_body());
        }
    };
    req.extensions_mut().insert(format);
    let mut response = next.call(req).await?;
    if format == ResponseFormat::PlainJson
        && response
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/fhir+json"))
    {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PLAIN_JSON));
    }
    Ok(response.map_into_left_body())
}
