//! What the audit trail records of one thing done (IHE Basic Audit Log Patterns): who acted,
//! on which patients, what, when, with what outcome, and the request it belonged to. Values
//! are identifiers and codes, never clinical content.

use std::borrow::Cow;

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
    /// Which door: one of [`DOORS`].
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

/// The form a record is kept in: compact JSON (a quarter of the AuditEvent it is shown as),
/// written on the hot path of every request and hashed into the trail's chain. The AuditEvent
/// is drawn from it when the trail is read.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Kept<'a> {
    /// The format's version.
    v: u8,
    recorded: i64,
    #[serde(borrow)]
    door: Cow<'a, str>,
    #[serde(borrow)]
    subtype: Cow<'a, str>,
    #[serde(borrow)]
    action: Cow<'a, str>,
    #[serde(borrow)]
    outcome: Cow<'a, str>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    outcome_text: Option<Cow<'a, str>>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    client_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    subject: Option<Cow<'a, str>>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    user: Option<Cow<'a, str>>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    ae_title: Option<Cow<'a, str>>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    address: Option<Cow<'a, str>>,
    #[serde(borrow, default, skip_serializing_if = "Vec::is_empty")]
    patients: Vec<Cow<'a, str>>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    entity: Option<Cow<'a, str>>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    query: Option<Cow<'a, str>>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    request_id: Option<Cow<'a, str>>,
}

/// The doors records come through; a kept record naming another is not one of ours.
pub const DOORS: [&str; 8] = [
    "rest",
    "dicomweb",
    "dicom",
    "hl7v2",
    "ehr",
    "cds-hooks",
    "smart-app",
    "command-line",
];

fn borrowed(text: &Option<String>) -> Option<Cow<'_, str>> {
    text.as_deref().map(Cow::Borrowed)
}

impl AuditRecord {
    /// The record as the trail keeps it.
    pub fn to_kept_json(&self) -> String {
        let kept = Kept {
            v: 1,
            recorded: self.recorded.timestamp_millis(),
            door: Cow::Borrowed(self.door),
            subtype: Cow::Borrowed(&self.subtype),
            action: Cow::Borrowed(self.action.code()),
            outcome: Cow::Borrowed(self.outcome.code()),
            outcome_text: borrowed(&self.outcome_text),
            client_id: borrowed(&self.agent.client_id),
            subject: borrowed(&self.agent.subject),
            user: borrowed(&self.agent.user),
            ae_title: borrowed(&self.agent.ae_title),
            address: borrowed(&self.agent.address),
            patients: self
                .patients
                .iter()
                .map(|p| Cow::Borrowed(p.as_str()))
                .collect(),
            entity: borrowed(&self.entity),
            query: borrowed(&self.query),
            request_id: borrowed(&self.request_id),
        };
        serde_json::to_string(&kept).unwrap_or_default()
    }

    /// A record as the trail keeps it; None when `json` is not one.
    pub fn from_kept_json(json: &str) -> Option<Self> {
        let kept: Kept<'_> = serde_json::from_str(json).ok()?;
        let owned = |s: Option<Cow<'_, str>>| s.map(Cow::into_owned);
        Some(Self {
            recorded: DateTime::from_timestamp_millis(kept.recorded)?,
            door: DOORS.into_iter().find(|d| *d == kept.door)?,
            subtype: kept.subtype.into_owned(),
            action: match kept.action.as_ref() {
                "C" => AuditAction::Create,
                "R" => AuditAction::Read,
                "U" => AuditAction::Update,
                "D" => AuditAction::Delete,
                "E" => AuditAction::Execute,
                _ => return None,
            },
            outcome: match kept.outcome.as_ref() {
                "0" => AuditOutcome::Success,
                "4" => AuditOutcome::MinorFailure,
                "8" => AuditOutcome::SeriousFailure,
                _ => return None,
            },
            outcome_text: owned(kept.outcome_text),
            agent: AuditAgent {
                client_id: owned(kept.client_id),
                subject: owned(kept.subject),
                user: owned(kept.user),
                ae_title: owned(kept.ae_title),
                address: owned(kept.address),
            },
            patients: kept.patients.into_iter().map(Cow::into_owned).collect(),
            entity: owned(kept.entity),
            query: owned(kept.query),
            request_id: owned(kept.request_id),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_kept_and_read_back_as_it_was() {
        let mut record = AuditRecord::new("rest", "search-type", AuditAction::Read);
        record.recorded = DateTime::from_timestamp_millis(1_765_000_000_123).unwrap();
        record.outcome = AuditOutcome::MinorFailure;
        record.outcome_text = Some("403: \"scope\" does not cover it".into());
        record.agent = AuditAgent {
            client_id: Some("ehr-backend".into()),
            subject: Some("svc".into()),
            user: Some("Practitioner/1".into()),
            ae_title: None,
            address: Some("10.0.0.7".into()),
        };
        record.patients = vec!["p1".into(), "p2".into()];
        record.entity = Some("Observation".into());
        record.query = Some("code=1234-5&subject=Patient/p1".into());
        record.request_id = Some("r-1".into());
        let kept = record.to_kept_json();
        assert!(kept.len() < 400, "{kept}");
        let back = AuditRecord::from_kept_json(&kept).unwrap();
        assert_eq!(back.to_kept_json(), kept);
        assert_eq!(back.agent, record.agent);
        assert_eq!(back.outcome, record.outcome);
        assert_eq!(back.door, "rest");
        // Not a kept record: an AuditEvent, another door, an unknown outcome.
        assert!(AuditRecord::from_kept_json(r#"{"resourceType":"AuditEvent"}"#).is_none());
        let other_door = kept.replace("\"rest\"", "\"smtp\"");
        assert!(AuditRecord::from_kept_json(&other_door).is_none());
    }
}
