//! What a stored message says, read once: the patient (PID) and, by message type, the results
//! (ORU^R01) or orders (ORM^O01, OMI^O23). Dates are converted to FHIR here, where the
//! segment and field they came from are known, so that every problem names its place.

use chrono::{DateTime, Utc};
use hl7_parser::message::Separators;

use super::ack::{ErrorCondition, ErrorLocation, Header, MessageProblem};
use super::datetime::{NotADateTime, SiteZone, earliest_instant, to_fhir_datetime};
use super::fields::SegmentReader;
use super::message::{ReceivedMessage, message_kind};
use super::order::{OrderDraft, read_orders};
use super::oru::{ObservationDraft, read_observations};
use super::patient::{PatientDraft, read_patient};

/// How to read dates: the zone of the sending site for times sent without an offset, and now.
#[derive(Debug, Clone, Copy)]
pub struct DateContext {
    pub zone: SiteZone,
    pub now: DateTime<Utc>,
}

/// Dates after now by more than this are refused as in the future (clocks drift).
const FUTURE_TOLERANCE: chrono::Duration = chrono::Duration::minutes(15);

impl DateContext {
    /// A DTM as FHIR dateTime; empty stays empty. With `past`, a value after now is refused.
    pub fn datetime(
        &self,
        segment: &SegmentReader<'_>,
        field: usize,
        raw: &str,
        past: bool,
    ) -> Result<String, MessageProblem> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Ok(String::new());
        }
        let invalid = |_: NotADateTime| {
            segment.problem(
                ErrorCondition::DataType,
                field,
                &format!(
                    "{}-{field} is not an HL7 date/time (YYYY[MM[DD[HH[MM[SS]]]]][+/-ZZZZ])",
                    segment.name()
                ),
            )
        };
        let value = to_fhir_datetime(raw, self.zone).map_err(invalid)?;
        if past {
            let earliest = earliest_instant(raw, self.zone).map_err(invalid)?;
            if earliest > self.now + FUTURE_TOLERANCE {
                return Err(segment.problem(
                    ErrorCondition::DataType,
                    field,
                    &format!("{}-{field} is in the future", segment.name()),
                ));
            }
        }
        Ok(value)
    }
}

/// A message's clinical content.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MessageContent {
    pub patient: PatientDraft,
    pub observations: Vec<ObservationDraft>,
    pub orders: Vec<OrderDraft>,
    /// Problems that did not stop the message (ERR with severity W in the ACK).
    pub warnings: Vec<MessageProblem>,
}

/// Reads the content of a message `read_message` accepted, by its type (MSH-9).
pub fn read_content(
    message: &ReceivedMessage,
    dates: &DateContext,
) -> Result<MessageContent, MessageProblem> {
    let text = message.text.as_str();
    let kind = message_kind(&message.header);
    let separators = separators(&message.header);
    let mut seen: Vec<(&str, usize)> = Vec::new();
    let segments: Vec<SegmentReader<'_>> = text
        .split('\r')
        .filter(|line| !line.starts_with("MSH") && !line.is_empty())
        .map(|line| {
            let name = line.split(separators.field).next().unwrap_or_default();
            let occurrence = match seen.iter_mut().find(|(n, _)| *n == name) {
                Some((_, n)) => {
                    *n += 1;
                    *n
                }
                None => {
                    seen.push((name, 1));
                    1
                }
            };
            SegmentReader::new(line, separators, occurrence)
        })
        .collect();
    let pid = segments
        .iter()
        .find(|s| s.name() == "PID")
        .ok_or_else(|| MessageProblem {
            condition: ErrorCondition::SegmentSequence,
            location: Some(ErrorLocation {
                segment: "PID".into(),
                occurrence: 1,
                field: 0,
            }),
            text: "the message has no PID segment: every message taken is about a patient".into(),
        })?;
    let mut patient = read_patient(pid)?;
    patient.birth_date = birth_date(pid, &patient.birth_date, dates)?;
    patient.death_time = dates.datetime(pid, 29, &patient.death_time, true)?;
    let mut warnings = Vec::new();
    if !patient.sex.is_empty() && !["F", "M", "O", "U", "A", "N"].contains(&patient.sex.as_str()) {
        warnings.push(pid.problem(
            ErrorCondition::TableValueNotFound,
            8,
            "PID-8 (administrative sex) is not a code of HL7 table 0001; it is left out",
        ));
        patient.sex.clear();
    }
    let mut content = MessageContent {
        patient,
        warnings,
        ..MessageContent::default()
    };
    let message_type = kind.split('^').next().unwrap_or_default();
    match message_type {
        "ORU" => {
            let read = read_observations(&segments, dates)?;
            content.observations = read.observations;
            content.warnings.extend(read.warnings);
        }
        "ORM" | "OMI" => {
            content.orders = read_orders(&segments, message_type == "OMI", dates)?;
        }
        _ => {}
    }
    Ok(content)
}

/// PID-7 as a FHIR date: the date part of the DTM, which must not be in the future.
fn birth_date(
    pid: &SegmentReader<'_>,
    raw: &str,
    dates: &DateContext,
) -> Result<String, MessageProblem> {
    let value = dates.datetime(pid, 7, raw, true)?;
    Ok(value.split('T').next().unwrap_or_default().to_owned())
}

/// The separators the header declares (MSH-1 and MSH-2, already checked by `read_message`).
fn separators(header: &Header) -> Separators {
    let mut separators = Separators {
        field: header.field_separator,
        ..Separators::default()
    };
    for (i, c) in header.encoding_characters.chars().enumerate() {
        match i {
            0 => separators.component = c,
            1 => separators.repetition = c,
            2 => separators.escape = c,
            3 => separators.subcomponent = c,
            _ => {}
        }
    }
    separators
}
