//! `ApiError`: every failure at the HTTP edge, answered as an OperationOutcome with
//! `application/fhir+json`. The status and issue code come from the one table in
//! `report::error_status`; internal errors are opaque to the caller and name the request id,
//! while their cause chain goes to the log.

use std::fmt;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};

use crate::error::{ErrorKind, error_chain};
use crate::fhir::FhirError;
use crate::pipeline::PipelineError;
use crate::report::{OutcomeIssue, error_status, operation_outcome};
use crate::store::StoreError;
use crate::telemetry::current_request_id;

pub const FHIR_JSON: &str = "application/fhir+json; charset=utf-8";

/// Why a request failed, kept on the response for the audit record (the diagnostics the
/// caller sees: identifiers and checks, never content).
#[derive(Debug, Clone)]
pub struct FailureReason(pub String);

#[derive(Debug)]
pub struct ApiError {
    kind: ErrorKind,
    message: String,
    expression: Option<String>,
    allow: Option<String>,
    /// A `WWW-Authenticate` challenge (RFC 6750).
    challenge: Option<String>,
    /// Seconds for a `Retry-After` header.
    retry_after: Option<u32>,
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            expression: None,
            allow: None,
            challenge: None,
            retry_after: None,
        }
    }

    /// Names where in the request the problem lies (a FHIRPath).
    pub fn at(mut self, expression: String) -> Self {
        self.expression = Some(expression);
        self
    }

    /// Replaces the message with a fuller reason.
    pub fn because(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }

    /// Tells the caller when to try again.
    pub fn retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// 401 with the Bearer challenge: `error` (`invalid_token`, …) when a token was sent and
    /// refused, none when there was no token (RFC 6750 §3.1).
    pub fn unauthenticated(error: Option<&str>, message: impl Into<String>) -> Self {
        let message = message.into();
        let challenge = match error {
            Some(error) => format!(
                "Bearer realm=\"prognostics\", error=\"{error}\", error_description=\"{}\"",
                message.replace(['"', '\\'], "'")
            ),
            None => "Bearer realm=\"prognostics\"".to_owned(),
        };
        Self {
            challenge: Some(challenge),
            ..Self::new(ErrorKind::Unauthenticated, message)
        }
    }

    pub fn method_not_allowed(allow: impl Into<String>) -> Self {
        let allow = allow.into();
        Self {
            message: format!("this URL supports {allow} only"),
            allow: Some(allow),
            ..Self::new(ErrorKind::MethodNotAllowed, "")
        }
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    fn from_source(
        kind: ErrorKind,
        message: String,
        expression: Option<String>,
        source: &dyn std::error::Error,
    ) -> Self {
        if kind == ErrorKind::Internal {
            tracing::error!(error = %error_chain(source), "request failed");
        }
        Self {
            kind,
            message,
            expression,
            allow: None,
            challenge: None,
            retry_after: None,
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<PipelineError> for ApiError {
    fn from(e: PipelineError) -> Self {
        let error = Self::from_source(e.kind(), e.to_string(), e.expression(), &e);
        match e.retry_after() {
            Some(seconds) => error.retry_after(seconds),
            None => error,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        Self::from_source(e.kind(), e.to_string(), None, &e)
    }
}

impl From<FhirError> for ApiError {
    fn from(e: FhirError) -> Self {
        let expression = e.expression().map(str::to_owned);
        Self::from_source(e.kind(), e.to_string(), expression, &e)
    }
}

impl From<crate::report::ReportError> for ApiError {
    fn from(e: crate::report::ReportError) -> Self {
        Self::from_source(e.kind(), e.to_string(), None, &e)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(error_status(self.kind).0).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let (_, _, code) = error_status(self.kind);
        let diagnostics = match self.kind {
            ErrorKind::Internal => format!(
                "internal error; quote request id {} when reporting it",
                current_request_id().unwrap_or_else(|| "unknown".to_owned())
            ),
            _ => self.message.clone(),
        };
        let mut response = HttpResponse::build(self.status_code());
        response
            .extensions_mut()
            .insert(FailureReason(diagnostics.clone()));
        let issue = OutcomeIssue::error(code, diagnostics).at(self.expression.as_deref());
        if let Some(allow) = &self.allow {
            response.insert_header((header::ALLOW, allow.as_str()));
        }
        if let Some(challenge) = &self.challenge {
            response.insert_header((header::WWW_AUTHENTICATE, challenge.as_str()));
        }
        if let Some(seconds) = self.retry_after {
            response.insert_header((header::RETRY_AFTER, seconds.to_string()));
        }
        match operation_outcome(&[issue]) {
            Ok(body) => response
                .insert_header((header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON)))
                .body(body.to_string()),
            Err(_) => response.finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_gets_its_fhir_status() {
        let cases = [
            (ErrorKind::Invalid, 400),
            (ErrorKind::NotFound, 404),
            (ErrorKind::MethodNotAllowed, 405),
            (ErrorKind::Conflict, 409),
            (ErrorKind::Gone, 410),
            (ErrorKind::PreconditionFailed, 412),
            (ErrorKind::PayloadTooLarge, 413),
            (ErrorKind::UnsupportedMediaType, 415),
            (ErrorKind::Unprocessable, 422),
            (ErrorKind::TimedOut, 408),
            (ErrorKind::Overloaded, 429),
            (ErrorKind::Internal, 500),
            (ErrorKind::Unavailable, 503),
        ];
        for (kind, status) in cases {
            assert_eq!(
                ApiError::new(kind, "x").status_code().as_u16(),
                status,
                "{kind:?}"
            );
        }
    }

    #[test]
    fn internal_errors_do_not_reveal_their_message() {
        let response = ApiError::new(ErrorKind::Internal, "secret detail").error_response();
        let body = actix_web::body::to_bytes(response.into_body());
        let body = futures_util::FutureExt::now_or_never(body)
            .unwrap()
            .unwrap();
        let text = String::from_utf8_lossy(&body);
        assert!(!text.contains("secret detail"), "{text}");
        assert!(text.contains("request id"), "{text}");
    }
}
