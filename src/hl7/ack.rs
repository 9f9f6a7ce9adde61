//! HL7 v2 acknowledgements (ACK): MSH, MSA and, on failure, ERR naming the segment and field at
//! fault (HL7 v2.5 ERR-2 error location, ERR-3 code from table 0357, ERR-4 severity), with the
//! text in ERR-8. Built from the received message's header, so that the sender can match the ACK
//! to its message (MSA-2 = MSH-10) and read it with its own separators.

use std::fmt::Write as _;

/// MSA-1: how the message was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckCode {
    /// AA: stored and processed.
    Accept,
    /// AE: the message was understood but its content is in error; sending it again unchanged
    /// will fail again.
    Error,
    /// AR: refused (unsupported type or version, or not processable at all); or the service
    /// could not store it right now.
    Reject,
}

impl AckCode {
    pub fn as_str(self) -> &'static str {
        match self {
            AckCode::Accept => "AA",
            AckCode::Error => "AE",
            AckCode::Reject => "AR",
        }
    }
}

/// HL7 table 0357, message error condition codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCondition {
    SegmentSequence,
    RequiredFieldMissing,
    DataType,
    TableValueNotFound,
    UnsupportedMessageType,
    UnsupportedEventCode,
    UnsupportedProcessingId,
    UnsupportedVersionId,
    ApplicationInternal,
}

impl ErrorCondition {
    pub fn code(self) -> u16 {
        match self {
            ErrorCondition::SegmentSequence => 100,
            ErrorCondition::RequiredFieldMissing => 101,
            ErrorCondition::DataType => 102,
            ErrorCondition::TableValueNotFound => 103,
            ErrorCondition::UnsupportedMessageType => 200,
            ErrorCondition::UnsupportedEventCode => 201,
            ErrorCondition::UnsupportedProcessingId => 202,
            ErrorCondition::UnsupportedVersionId => 203,
            ErrorCondition::ApplicationInternal => 207,
        }
    }

    pub fn text(self) -> &'static str {
        match self {
            ErrorCondition::SegmentSequence => "Segment sequence error",
            ErrorCondition::RequiredFieldMissing => "Required field missing",
            ErrorCondition::DataType => "Data type error",
            ErrorCondition::TableValueNotFound => "Table value not found",
            ErrorCondition::UnsupportedMessageType => "Unsupported message type",
            ErrorCondition::UnsupportedEventCode => "Unsupported event code",
            ErrorCondition::UnsupportedProcessingId => "Unsupported processing id",
            ErrorCondition::UnsupportedVersionId => "Unsupported version id",
            ErrorCondition::ApplicationInternal => "Application internal error",
        }
    }
}

/// Where in the message a problem lies (ERR-2, data type ERL): segment id, its occurrence
/// (1-based) and field position; 0 for "the segment as a whole".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorLocation {
    pub segment: String,
    pub occurrence: usize,
    pub field: usize,
}

/// One problem to report in an ERR segment. `text` names the problem, never a value from the
/// message (it may be PHI).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageProblem {
    pub condition: ErrorCondition,
    pub location: Option<ErrorLocation>,
    pub text: String,
}

/// What the acknowledgement needs from the received MSH. Values are kept raw (still escaped):
/// they go back into an HL7 message written with the same separators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub field_separator: char,
    pub encoding_characters: String,
    pub sending_application: String,
    pub sending_facility: String,
    pub receiving_application: String,
    pub receiving_facility: String,
    pub message_type: String,
    pub control_id: String,
    pub processing_id: String,
    pub version: String,
    /// MSH-15: when to send an accept acknowledgement (AL, NE, ER, SU); empty in original mode.
    pub accept_ack_type: String,
    /// MSH-16: when to send an application acknowledgement; empty in original mode.
    pub application_ack_type: String,
}

impl Default for Header {
    /// The header assumed when the received one cannot be read: standard separators, v2.5.
    fn default() -> Self {
        Header {
            field_separator: '|',
            encoding_characters: "^~\\&".into(),
            sending_application: String::new(),
            sending_facility: String::new(),
            receiving_application: String::new(),
            receiving_facility: String::new(),
            message_type: String::new(),
            control_id: String::new(),
            processing_id: "P".into(),
            version: "2.5".into(),
            accept_ack_type: String::new(),
            application_ack_type: String::new(),
        }
    }
}

impl Header {
    /// Whether the message is itself an acknowledgement (MSH-9 ACK, or MCF of v2.1).
    pub fn is_acknowledgement(&self) -> bool {
        let component = self.encoding_characters.chars().next().unwrap_or('^');
        matches!(
            self.message_type.split(component).next().map(str::trim),
            Some("ACK" | "MCF")
        )
    }

    /// Whether the sender wants to hear about this outcome (MSH-16, else MSH-15; original
    /// mode, where both are empty, always acknowledges). NE: never; ER: only failures; SU:
    /// only successes; AL or anything else: always.
    pub fn wants_ack(&self, code: AckCode) -> bool {
        let rule = if !self.application_ack_type.is_empty() {
            &self.application_ack_type
        } else {
            &self.accept_ack_type
        };
        match rule.as_str() {
            "NE" => false,
            "ER" => code != AckCode::Accept,
            "SU" => code == AckCode::Accept,
            _ => true,
        }
    }
}

/// Who the service is in the MSH of its acknowledgements.
pub const APPLICATION: &str = "PROGNOSTICS";

/// Writes the acknowledgement of a message with `header`: `control_id` is the ACK's own MSH-10,
/// `timestamp` its MSH-7 (`YYYYMMDDHHMMSS+ZZZZ`). `errors` become ERR segments of severity E
/// (the first also in MSA-3), `warnings` ERR segments of severity W. Segments end with a
/// carriage return.
pub fn acknowledgement(
    header: &Header,
    code: AckCode,
    errors: &[MessageProblem],
    warnings: &[MessageProblem],
    control_id: &str,
    timestamp: &str,
) -> String {
    let f = header.field_separator;
    let mut components = header.encoding_characters.chars();
    let component = components.next().unwrap_or('^');
    let event = header
        .message_type
        .split(component)
        .nth(1)
        .unwrap_or_default();
    let mut ack = String::with_capacity(256);
    // The ACK goes back to the sender: sending and receiving swap.
    let _ = write!(
        ack,
        "MSH{f}{enc}{f}{ra}{f}{rf}{f}{sa}{f}{sf}{f}{timestamp}{f}{f}ACK{c}{event}{c}ACK{f}{control_id}{f}{pid}{f}{version}\r",
        enc = header.encoding_characters,
        ra = if header.receiving_application.is_empty() {
            APPLICATION
        } else {
            &header.receiving_application
        },
        rf = header.receiving_facility,
        sa = header.sending_application,
        sf = header.sending_facility,
        c = component,
        pid = header.processing_id,
        version = header.version,
    );
    let _ = write!(ack, "MSA{f}{}{f}{}", code.as_str(), header.control_id);
    if let Some(first) = errors.first() {
        // MSA-3, the text message, for senders that read only MSA (v2.3 and earlier).
        let _ = write!(ack, "{f}{}", escape(&first.text, header));
    }
    ack.push('\r');
    let problems = errors
        .iter()
        .map(|p| (p, 'E'))
        .chain(warnings.iter().map(|p| (p, 'W')));
    for (problem, severity) in problems {
        let location = problem
            .location
            .as_ref()
            .map(|l| {
                if l.field == 0 {
                    format!("{}{component}{}", l.segment, l.occurrence)
                } else {
                    format!(
                        "{}{component}{}{component}{}",
                        l.segment, l.occurrence, l.field
                    )
                }
            })
            .unwrap_or_default();
        let _ = write!(
            ack,
            "ERR{f}{f}{location}{f}{code}{component}{name}{component}HL70357{f}{severity}{f}{f}{f}{f}{text}\r",
            code = problem.condition.code(),
            name = problem.condition.text(),
            text = escape(&problem.text, header),
        );
    }
    ack
}

/// HL7 escape sequences for the delimiters in free text (\F\ \S\ \R\ \E\ \T\, and \P\
/// for v2.7's truncation character), with the message's own encoding characters: only those
/// its MSH-2 declares are delimiters. Without an escape character nothing can be escaped, and a
/// delimiter in the text becomes a space.
fn escape(text: &str, header: &Header) -> String {
    let declared: Vec<char> = header.encoding_characters.chars().collect();
    let at = |i: usize| declared.get(i).copied();
    let escape = at(2);
    let delimiters = [
        (Some(header.field_separator), 'F'),
        (at(0), 'S'),
        (at(1), 'R'),
        (escape, 'E'),
        (at(3), 'T'),
        (at(4), 'P'),
    ];
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        if ch == '\r' || ch == '\n' {
            out.push(' ');
            continue;
        }
        match delimiters.iter().find(|(d, _)| *d == Some(ch)) {
            Some((_, name)) => match escape {
                Some(e) => out.extend([e, *name, e]),
                None => out.push(' '),
            },
            None => out.push(ch),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            sending_application: "LAB".into(),
            sending_facility: "HOSP".into(),
            receiving_application: "PROGNOSTICS".into(),
            receiving_facility: "ONC".into(),
            message_type: "ORU^R01^ORU_R01".into(),
            control_id: "MSG00001".into(),
            version: "2.5.1".into(),
            ..Header::default()
        }
    }

    #[test]
    fn text_is_escaped_with_the_messages_own_delimiters() {
        let with = |field: char, encoding: &str| Header {
            field_separator: field,
            encoding_characters: encoding.into(),
            ..Header::default()
        };
        let text = "a|b^c~d\\e&f#g$h";
        assert_eq!(
            escape(text, &header()),
            "a\\F\\b\\S\\c\\R\\d\\E\\e\\T\\f#g$h"
        );
        // Unusual delimiters: # for fields, $ as the escape character, v2.7's truncation %.
        assert_eq!(escape("a#b$c%d|e", &with('#', "^~$&%")), "a$F$b$E$c$P$d|e");
        // No subcomponent separator declared: & is text.
        assert_eq!(escape("a&b^c", &with('|', "^~\\")), "a&b\\S\\c");
        // No escape character: a delimiter cannot be escaped, and is not passed on as one.
        assert_eq!(escape("a^b\\c", &with('|', "^~")), "a b\\c");
    }

    #[test]
    fn an_accept_ack_answers_the_control_id_with_the_parties_swapped() {
        let ack = acknowledgement(
            &header(),
            AckCode::Accept,
            &[],
            &[],
            "ACK1",
            "20261123120000+0000",
        );
        assert_eq!(
            ack,
            "MSH|^~\\&|PROGNOSTICS|ONC|LAB|HOSP|20261123120000+0000||ACK^R01^ACK|ACK1|P|2.5.1\r\
             MSA|AA|MSG00001\r"
        );
    }

    #[test]
    fn an_error_ack_names_segment_and_field_in_err() {
        let problem = MessageProblem {
            condition: ErrorCondition::DataType,
            location: Some(ErrorLocation {
                segment: "OBX".into(),
                occurrence: 2,
                field: 5,
            }),
            text: "OBX-5 is not a number|as OBX-2 (NM) says".into(),
        };
        let warning = MessageProblem {
            condition: ErrorCondition::RequiredFieldMissing,
            location: Some(ErrorLocation {
                segment: "OBX".into(),
                occurrence: 1,
                field: 6,
            }),
            text: "no units".into(),
        };
        let ack = acknowledgement(
            &header(),
            AckCode::Error,
            &[problem],
            &[warning],
            "A2",
            "20261123",
        );
        let segments: Vec<&str> = ack.split_terminator('\r').collect();
        assert_eq!(
            segments[1],
            "MSA|AE|MSG00001|OBX-5 is not a number\\F\\as OBX-2 (NM) says"
        );
        assert_eq!(
            segments[2],
            "ERR||OBX^2^5|102^Data type error^HL70357|E||||OBX-5 is not a number\\F\\as OBX-2 (NM) says"
        );
        assert_eq!(
            segments[3],
            "ERR||OBX^1^6|101^Required field missing^HL70357|W||||no units"
        );
    }

    #[test]
    fn enhanced_mode_fields_decide_whether_an_ack_is_sent() {
        let mut h = header();
        assert!(h.wants_ack(AckCode::Accept) && h.wants_ack(AckCode::Error));
        h.application_ack_type = "NE".into();
        assert!(!h.wants_ack(AckCode::Accept) && !h.wants_ack(AckCode::Reject));
        h.application_ack_type = "ER".into();
        assert!(!h.wants_ack(AckCode::Accept) && h.wants_ack(AckCode::Error));
        h.application_ack_type = String::new();
        h.accept_ack_type = "SU".into();
        assert!(h.wants_ack(AckCode::Accept) && !h.wants_ack(AckCode::Reject));
    }
}
