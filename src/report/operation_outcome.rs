//! OperationOutcome, the body of every FHIR error and of warnings inside Bundles.

use fhir_sdk::r4b::codes;
use fhir_sdk::r4b::resources::{OperationOutcome, OperationOutcomeIssue};

use super::ReportError;
use crate::error::ErrorKind;

/// The one table from a failure's kind to its HTTP status and `OperationOutcome.issue.code`.
/// The HTTP edge and batch-response entries both answer through it.
pub fn error_status(kind: ErrorKind) -> (u16, &'static str, IssueCode) {
    match kind {
        ErrorKind::Invalid => (400, "400 Bad Request", IssueCode::Invalid),
        ErrorKind::Unprocessable => (422, "422 Unprocessable Entity", IssueCode::BusinessRule),
        ErrorKind::NotFound => (404, "404 Not Found", IssueCode::NotFound),
        ErrorKind::Gone => (410, "410 Gone", IssueCode::Deleted),
        ErrorKind::Conflict => (409, "409 Conflict", IssueCode::Conflict),
        ErrorKind::PreconditionFailed => (412, "412 Precondition Failed", IssueCode::Conflict),
        ErrorKind::PayloadTooLarge => (413, "413 Payload Too Large", IssueCode::TooCostly),
        ErrorKind::UnsupportedMediaType => {
            (415, "415 Unsupported Media Type", IssueCode::NotSupported)
        }
        ErrorKind::NotAcceptable => (406, "406 Not Acceptable", IssueCode::NotSupported),
        ErrorKind::MethodNotAllowed => (405, "405 Method Not Allowed", IssueCode::NotSupported),
        ErrorKind::Unauthenticated => (401, "401 Unauthorized", IssueCode::Login),
        ErrorKind::Forbidden => (403, "403 Forbidden", IssueCode::Forbidden),
        ErrorKind::TimedOut => (408, "408 Request Timeout", IssueCode::Timeout),
        ErrorKind::Overloaded => (429, "429 Too Many Requests", IssueCode::Throttled),
        ErrorKind::Unavailable => (503, "503 Service Unavailable", IssueCode::Transient),
        ErrorKind::Internal => (500, "500 Internal Server Error", IssueCode::Exception),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IssueSeverity {
    Fatal,
    Error,
    Warning,
    Information,
}

/// `OperationOutcome.issue.code` (value set issue-type, required binding).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IssueCode {
    Invalid,
    Structure,
    Required,
    Value,
    NotFound,
    Deleted,
    Conflict,
    Processing,
    BusinessRule,
    NotSupported,
    TooCostly,
    Throttled,
    Timeout,
    Transient,
    Exception,
    Informational,
    /// The caller must authenticate first.
    Login,
    /// The caller is not allowed this.
    Forbidden,
    /// Part of the content the operation needed was missing.
    Incomplete,
}

/// One issue: what happened, and where in the request (a FHIRPath, when known).
#[derive(Clone, Debug)]
pub struct OutcomeIssue {
    pub severity: IssueSeverity,
    pub code: IssueCode,
    pub diagnostics: String,
    pub expression: Option<String>,
}

impl OutcomeIssue {
    pub fn error(code: IssueCode, diagnostics: impl Into<String>) -> Self {
        Self {
            severity: IssueSeverity::Error,
            code,
            diagnostics: diagnostics.into(),
            expression: None,
        }
    }

    pub fn at(mut self, expression: Option<&str>) -> Self {
        self.expression = expression.map(str::to_owned);
        self
    }
}

fn severity(s: IssueSeverity) -> codes::IssueSeverity {
    match s {
        IssueSeverity::Fatal => codes::IssueSeverity::Fatal,
        IssueSeverity::Error => codes::IssueSeverity::Error,
        IssueSeverity::Warning => codes::IssueSeverity::Warning,
        IssueSeverity::Information => codes::IssueSeverity::Information,
    }
}

fn issue_type(c: IssueCode) -> codes::IssueType {
    match c {
        IssueCode::Invalid => codes::IssueType::Invalid,
        IssueCode::Structure => codes::IssueType::Structure,
        IssueCode::Required => codes::IssueType::Required,
        IssueCode::Value => codes::IssueType::Value,
        IssueCode::NotFound => codes::IssueType::NotFound,
        IssueCode::Deleted => codes::IssueType::Deleted,
        IssueCode::Conflict => codes::IssueType::Conflict,
        IssueCode::Processing => codes::IssueType::Processing,
        IssueCode::BusinessRule => codes::IssueType::BusinessRule,
        IssueCode::NotSupported => codes::IssueType::NotSupported,
        IssueCode::TooCostly => codes::IssueType::TooCostly,
        IssueCode::Throttled => codes::IssueType::Throttled,
        IssueCode::Timeout => codes::IssueType::Timeout,
        IssueCode::Transient => codes::IssueType::Transient,
        IssueCode::Exception => codes::IssueType::Exception,
        IssueCode::Informational => codes::IssueType::Informational,
        IssueCode::Incomplete => codes::IssueType::Incomplete,
        IssueCode::Login => codes::IssueType::Login,
        IssueCode::Forbidden => codes::IssueType::Forbidden,
    }
}

/// An OperationOutcome as R4 JSON.
pub fn operation_outcome(issues: &[OutcomeIssue]) -> Result<serde_json::Value, ReportError> {
    let built = issues
        .iter()
        .map(|i| {
            let mut b = OperationOutcomeIssue::builder()
                .severity(severity(i.severity))
                .code(issue_type(i.code))
                .diagnostics(i.diagnostics.clone());
            if let Some(e) = &i.expression {
                b = b.expression(vec![Some(e.clone())]);
            }
            b.build().map(Some)
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| ReportError::Build {
            resource: "OperationOutcome.issue",
            source,
        })?;
    let outcome = OperationOutcome::builder()
        .issue(built)
        .build()
        .map_err(|source| ReportError::Build {
            resource: "OperationOutcome",
            source,
        })?;
    serde_json::to_value(&outcome).map_err(|source| ReportError::Serialise {
        resource: "OperationOutcome",
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outcome_carries_severity_code_diagnostics_and_expression() {
        let v = operation_outcome(&[
            OutcomeIssue::error(IssueCode::Required, "status is missing")
                .at(Some("Observation.status")),
        ])
        .unwrap();
        assert_eq!(v["resourceType"], "OperationOutcome");
        assert_eq!(v["issue"][0]["severity"], "error");
        assert_eq!(v["issue"][0]["code"], "required");
        assert_eq!(v["issue"][0]["diagnostics"], "status is missing");
        assert_eq!(v["issue"][0]["expression"][0], "Observation.status");
    }
}
