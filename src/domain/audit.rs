//! What the audit trail records of one thing done (IHE Basic Audit Log Patterns): who acted,
//! on which patients, what, when, with what outcome, and the request it belonged to. Values
//! are identifiers and codes, never clinical content.

use chrono::{DateTime, Utc};

/// AuditEvent.action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditAction {
    Create,
    Read,
    Update,
    Delete,
    Execute,
}

impl AuditAction {
    pub fn code(self) -> &'static str {
        match self {
            AuditAction::Create => "C",
            AuditAction::Read => "R",
            AuditAction::Update => "U",
            AuditAction::Delete => "D",
            AuditAction::Execute => "E",
        }
    }
}

/// AuditEvent.outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditOutcome {
    Success,
    /// The request was refused or could not be met (4xx, an HL7 AE/AR, a DICOM failure).
    MinorFailure,
    /// The service failed (5xx).
    SeriousFailure,
}

impl AuditOutcome {
    pub fn code(self) -> &'static str {
        match self {
            AuditOutcome::Success => "0",
            AuditOutcome::MinorFailure => "4",
            AuditOutcome::SeriousFailure => "8",
        }
    }

    /// The outcome an HTTP status stands for.
    pub fn of_status(status: u16) -> Self {
        match status {
            ..400 => AuditOutcome::Success,
            400..500 => AuditOutcome::MinorFailure,
            _ => AuditOutcome::SeriousFailure,
        }
    }
}

/// Who acted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditAgent {
    /// The OAuth client (token `client_id`).
    pub client_id: Option<String>,
    /// The token's subject.
    pub subject: Option<String>,
    /// The user (`fhirUser`, a reference such as `Practitioner/123`).
    pub user: Option<String>,
    /// The calling DICOM application entity.
    pub ae_title: Option<String>,
    /// The peer's network address.
    pub address: Option<String>,
}

impl AuditAgent {
    /// Every identifier the agent can be searched by.
    pub fn identifiers(&self) -> Vec<String> {
        [
            &self.client_id,
            &self.subject,
            &self.user,
            &self.ae_title,
            &self.address,
        ]
        .into_iter()
        .flatten()
        .cloned()
        .collect()
    }
}

/// One audited event.
#[derive(Debug, Clone)]
pub struct AuditRecord {
    pub recorded: DateTime<Utc>,
    /// Which door: `rest`, `dicomweb`, `dicom`, `hl7v2`, `ehr`.
    pub door: &'static str,
    /// The interaction or operation: `read`, `search-type`, `create`, `risk-assessment`,
    /// `c-store`, `ORU^R01` …
    pub subtype: String,
    pub action: AuditAction,
    pub outcome: AuditOutcome,
    /// Why it failed (a status and the check that refused it), never content.
    pub outcome_text: Option<String>,
    pub agent: AuditAgent,
    pub patients: Vec<String>,
    /// What was acted on: `Observation/123`, `Observation`, a study UID.
    pub entity: Option<String>,
    /// The query string of a search (kept in the trail, never in the logs).
    pub query: Option<String>,
    pub request_id: Option<String>,
}

impl AuditRecord {
    /// A record of `subtype` through `door`, now, successful until said otherwise.
    pub fn new(door: &'static str, subtype: impl Into<String>, action: AuditAction) -> Self {
        Self {
            recorded: Utc::now(),
            door,
            subtype: subtype.into(),
            action,
            outcome: AuditOutcome::Success,
            outcome_text: None,
            agent: AuditAgent::default(),
            patients: Vec::new(),
            entity: None,
            query: None,
            request_id: None,
        }
    }
}
