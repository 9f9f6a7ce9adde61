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
    pub fn identifiers(&self) -> impl Iterator<Item = &str> {
        [
            &self.client_id,
            &self.subject,
            &self.user,
            &self.ae_title,
            &self.address,
        ]
        .into_iter()
        .flatten()
        .map(String::as_str)
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
#[derive(serde::Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
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

/// Appends `,"name":"value"` when there is a value.
fn push_json_field(out: &mut String, name: &str, value: Option<&str>) {
    if let Some(value) = value {
        out.push_str(",\"");
        out.push_str(name);
        out.push_str("\":");
        push_json_string(out, value);
    }
}

/// Appends `text` as a JSON string. Most values need no escape, and are found so at once.
fn push_json_string(out: &mut String, text: &str) {
    use std::fmt::Write as _;
    let needs_escape = |b: u8| b < 0x20 || b == b'"' || b == b'\\';
    // A fold without an early exit, which the compiler can vectorise; the values are short.
    let plain = !text.bytes().fold(false, |found, b| found | needs_escape(b));
    out.push('"');
    if plain {
        out.push_str(text);
    } else {
        for c in text.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                c if u32::from(c) < 0x20 => {
                    let _ = write!(out, "\\u{:04x}", u32::from(c));
                }
                c => out.push(c),
            }
        }
    }
    out.push('"');
}

impl AuditRecord {
    /// The record as the trail keeps it: the JSON that `Kept` reads, written by hand because it is
    /// written for every request (serde's writer escaped each string byte by byte, and was
    /// the audit writer's largest cost after the database).
    pub fn to_kept_json(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::with_capacity(384);
        let _ = write!(
            out,
            "{{\"v\":1,\"recorded\":{}",
            self.recorded.timestamp_millis()
        );
        push_json_field(&mut out, "door", Some(self.door));
        push_json_field(&mut out, "subtype", Some(&self.subtype));
        push_json_field(&mut out, "action", Some(self.action.code()));
        push_json_field(&mut out, "outcome", Some(self.outcome.code()));
        push_json_field(&mut out, "outcomeText", self.outcome_text.as_deref());
        let agent = &self.agent;
        push_json_field(&mut out, "clientId", agent.client_id.as_deref());
        push_json_field(&mut out, "subject", agent.subject.as_deref());
        push_json_field(&mut out, "user", agent.user.as_deref());
        push_json_field(&mut out, "aeTitle", agent.ae_title.as_deref());
        push_json_field(&mut out, "address", agent.address.as_deref());
        if !self.patients.is_empty() {
            out.push_str(",\"patients\":[");
            for (i, patient) in self.patients.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_json_string(&mut out, patient);
            }
            out.push(']');
        }
        push_json_field(&mut out, "entity", self.entity.as_deref());
        push_json_field(&mut out, "query", self.query.as_deref());
        push_json_field(&mut out, "requestId", self.request_id.as_deref());
        out.push('}');
        out
    }

    /// A record as the trail keeps it; None when `json` is not one.
    pub fn from_kept_json(json: &str) -> Option<Self> {
        let kept: Kept<'_> = serde_json::from_str(json).ok()?;
        if kept.v != 1 {
            return None;
        }
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
        let other_version = kept.replace("{\"v\":1,", "{\"v\":2,");
        assert!(AuditRecord::from_kept_json(&other_version).is_none());
    }

    /// The kept form as serde writes it.
    fn serde_kept(record: &AuditRecord) -> String {
        fn text(t: &Option<String>) -> Option<Cow<'_, str>> {
            t.as_deref().map(Cow::Borrowed)
        }
        serde_json::to_string(&Kept {
            v: 1,
            recorded: record.recorded.timestamp_millis(),
            door: Cow::Borrowed(record.door),
            subtype: Cow::Borrowed(&record.subtype),
            action: Cow::Borrowed(record.action.code()),
            outcome: Cow::Borrowed(record.outcome.code()),
            outcome_text: text(&record.outcome_text),
            client_id: text(&record.agent.client_id),
            subject: text(&record.agent.subject),
            user: text(&record.agent.user),
            ae_title: text(&record.agent.ae_title),
            address: text(&record.agent.address),
            patients: record
                .patients
                .iter()
                .map(|p| Cow::Borrowed(p.as_str()))
                .collect(),
            entity: text(&record.entity),
            query: text(&record.query),
            request_id: text(&record.request_id),
        })
        .unwrap()
    }

    #[test]
    fn the_kept_form_is_the_json_serde_writes_whatever_the_values_hold() {
        let awkward = [
            "",
            "plain",
            "quote \" and backslash \\",
            "new\nline, tab\t, return\r",
            "\u{0}\u{1}\u{8}\u{c}\u{1f} controls, \u{7f} delete",
            "é, 漢字, 🙂",
            "</script>",
        ];
        for value in awkward {
            let mut record = AuditRecord::new("hl7v2", value, AuditAction::Execute);
            record.outcome_text = Some(value.into());
            record.agent.ae_title = Some(value.into());
            record.patients = vec![value.into(), "p2".into()];
            record.query = Some(value.into());
            let kept = record.to_kept_json();
            assert_eq!(kept, serde_kept(&record), "{value:?}");
            let back = AuditRecord::from_kept_json(&kept).unwrap();
            assert_eq!(back.subtype, value);
            assert_eq!(back.query.as_deref(), Some(value));
        }
        // Fields left out when empty, as serde leaves them out.
        let bare = AuditRecord::new("rest", "read", AuditAction::Read);
        assert_eq!(bare.to_kept_json(), serde_kept(&bare));
    }
}
