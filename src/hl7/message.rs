//! Reading one HL7 v2 message: bytes to text (UTF-8, or ISO 8859-1 where MSH-18 says so),
//! segment separators normalised (CR, LF or CRLF all become CR), and the checks every message
//! must pass before it is stored: an MSH first, segment ids of three letters or digits, the
//! message type, control id and version present. Fields are parsed (with `hl7-parser`) only
//! where `content` reads them; what each message type must hold is checked there.

use super::ack::{ErrorCondition, ErrorLocation, Header, MessageProblem};

/// A received message, its text normalised, and the header read from it.
#[derive(Debug, Clone)]
pub struct ReceivedMessage {
    /// The message with CR between segments and no trailing separator.
    pub text: String,
    pub header: Header,
}

/// A message that cannot be taken, with what is known of its header (for the ACK).
#[derive(Debug, Clone)]
pub struct Refusal {
    pub header: Header,
    pub problem: MessageProblem,
}

fn problem(
    condition: ErrorCondition,
    location: Option<(&str, usize)>,
    text: impl Into<String>,
) -> MessageProblem {
    MessageProblem {
        condition,
        location: location.map(|(segment, field)| ErrorLocation {
            segment: segment.into(),
            occurrence: 1,
            field,
        }),
        text: text.into(),
    }
}

/// Reads and checks one message's bytes.
pub fn read_message(bytes: &[u8]) -> Result<ReceivedMessage, Box<Refusal>> {
    let refuse = |header: Header, problem: MessageProblem| Box::new(Refusal { header, problem });
    let text = decode_text(bytes).map_err(|p| refuse(Header::default(), p))?;
    let text = normalise_segments(text);
    if !text.starts_with("MSH") {
        return Err(refuse(
            Header::default(),
            problem(
                ErrorCondition::SegmentSequence,
                Some(("MSH", 0)),
                "the message does not start with an MSH segment",
            ),
        ));
    }
    let header = read_header(&text).map_err(|p| refuse(Header::default(), p))?;
    for line in text.split('\r') {
        let name = line
            .split(header.field_separator)
            .next()
            .unwrap_or_default();
        if name.len() != 3
            || !name
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        {
            return Err(refuse(
                header.clone(),
                problem(
                    ErrorCondition::SegmentSequence,
                    None,
                    "a segment whose id is not three upper-case letters or digits",
                ),
            ));
        }
    }
    let missing = [
        (9, header.message_type.is_empty(), "MSH-9 (message type)"),
        (
            10,
            header.control_id.is_empty(),
            "MSH-10 (message control id)",
        ),
        (12, header.version.is_empty(), "MSH-12 (version id)"),
    ];
    for (field, absent, name) in missing {
        if absent {
            return Err(refuse(
                header.clone(),
                problem(
                    ErrorCondition::RequiredFieldMissing,
                    Some(("MSH", field)),
                    format!("{name} is required"),
                ),
            ));
        }
    }
    if !header.version.starts_with("2.") {
        return Err(refuse(
            header.clone(),
            problem(
                ErrorCondition::UnsupportedVersionId,
                Some(("MSH", 12)),
                "only HL7 version 2.x messages are accepted",
            ),
        ));
    }
    Ok(ReceivedMessage { text, header })
}

/// The header of a message that will not be read in full (too long, say), as far as it can be
/// read; the default header otherwise. For answering it.
pub fn header_of(bytes: &[u8]) -> Header {
    let text: String = match std::str::from_utf8(bytes) {
        Ok(text) => text.to_owned(),
        Err(_) => bytes.iter().map(|&b| b as char).collect(),
    };
    if !text.starts_with("MSH") {
        return Header::default();
    }
    read_header(&text).unwrap_or_default()
}

/// The message type and trigger event of MSH-9 (`ORU^R01^ORU_R01` → `ORU^R01`).
pub fn message_kind(header: &Header) -> String {
    let component = header.encoding_characters.chars().next().unwrap_or('^');
    let mut parts = header.message_type.split(component);
    let code = parts.next().unwrap_or_default();
    match parts.next() {
        Some(event) if !event.is_empty() => format!("{code}^{event}"),
        _ => code.to_owned(),
    }
}

/// UTF-8 (and its ASCII subset) by default; ISO 8859-1 when MSH-18 names it (`8859/1`), which
/// older interface engines still send. Anything else that is not valid UTF-8 is refused.
fn decode_text(bytes: &[u8]) -> Result<String, MessageProblem> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Ok(text.to_owned()),
        Err(_) => {
            let latin1 = bytes.iter().map(|&b| b as char).collect::<String>();
            let charset = if latin1.starts_with("MSH") {
                msh_field(&latin1, 18)
            } else {
                String::new()
            };
            if charset.split('~').next() == Some("8859/1") {
                Ok(latin1)
            } else {
                Err(problem(
                    ErrorCondition::DataType,
                    Some(("MSH", 18)),
                    "the message is not valid UTF-8 and MSH-18 does not name ISO 8859-1 (8859/1)",
                ))
            }
        }
    }
}

/// The messages of an HL7 batch file (FHS/BHS … BTS/FTS envelopes, HL7 v2.5 section 2.10.3),
/// each as its own bytes; `None` when `bytes` is a single message. The envelope segments are
/// dropped; each message runs from its MSH to the next MSH or envelope segment.
pub fn split_batch(bytes: &[u8]) -> Option<Vec<Vec<u8>>> {
    let starts_batch = bytes.starts_with(b"FHS") || bytes.starts_with(b"BHS");
    if !starts_batch {
        return None;
    }
    let mut messages: Vec<Vec<u8>> = Vec::new();
    let mut current: Option<Vec<u8>> = None;
    for segment in bytes.split(|&b| b == b'\r' || b == b'\n') {
        if segment.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let id = &segment[..segment.len().min(3)];
        match id {
            b"FHS" | b"BHS" | b"BTS" | b"FTS" => {
                messages.extend(current.take());
            }
            b"MSH" => {
                messages.extend(current.take());
                current = Some(segment.to_vec());
            }
            _ => match current.as_mut() {
                Some(message) => {
                    message.push(b'\r');
                    message.extend_from_slice(segment);
                }
                // A segment outside any message: kept as a message of its own, so that it is
                // refused (no MSH) rather than dropped unseen.
                None => current = Some(segment.to_vec()),
            },
        }
    }
    messages.extend(current);
    Some(messages)
}

/// CR, LF and CRLF between segments all become CR; blank lines and trailing separators go.
pub fn normalise_segments(text: String) -> String {
    let bytes = text.as_bytes();
    let clean = !text.contains('\n')
        && !text.contains("\r\r")
        && !text.ends_with('\r')
        && !text.starts_with('\r')
        && !bytes
            .split(|&b| b == b'\r')
            .any(|l| l.iter().all(u8::is_ascii_whitespace));
    if clean {
        return text;
    }
    let mut out = String::with_capacity(text.len());
    for line in text.split(['\r', '\n']) {
        if line.trim().is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push('\r');
        }
        out.push_str(line);
    }
    out
}

/// MSH field `number` (MSH-1 is the field separator itself) of the first segment, raw.
fn msh_field(text: &str, number: usize) -> String {
    let Some(separator) = text.chars().nth(3) else {
        return String::new();
    };
    let msh = text.split(['\r', '\n']).next().unwrap_or_default();
    // "MSH" + sep + MSH-2 + sep + MSH-3 …: after splitting, index 1 is MSH-2.
    if number == 1 {
        return separator.to_string();
    }
    msh.split(separator)
        .nth(number - 1)
        .unwrap_or_default()
        .to_owned()
}

/// The header fields the service needs, read straight from the MSH line so that a message
/// whose body is broken can still be answered.
fn read_header(text: &str) -> Result<Header, MessageProblem> {
    let mut chars = text.chars().skip(3);
    let field_separator = chars.next().ok_or_else(|| {
        problem(
            ErrorCondition::SegmentSequence,
            Some(("MSH", 1)),
            "MSH-1 (field separator) is missing",
        )
    })?;
    let msh = text.split(['\r', '\n']).next().unwrap_or_default();
    // "MSH" + sep + MSH-2 + sep + MSH-3 …: after splitting, index n - 1 is MSH-n.
    let fields: Vec<&str> = msh.split(field_separator).collect();
    let field = |n: usize| fields.get(n - 1).copied().unwrap_or_default().to_owned();
    let encoding_characters = field(2);
    let valid_encoding = (2..=5).contains(&encoding_characters.chars().count())
        && !field_separator.is_alphanumeric()
        && !encoding_characters
            .chars()
            .any(|c| c.is_alphanumeric() || c == field_separator);
    if !valid_encoding {
        return Err(problem(
            ErrorCondition::DataType,
            Some(("MSH", 2)),
            "MSH-2 (encoding characters) is not a set of 2 to 5 separators",
        ));
    }
    Ok(Header {
        field_separator,
        sending_application: field(3),
        sending_facility: field(4),
        receiving_application: field(5),
        receiving_facility: field(6),
        message_type: field(9),
        control_id: field(10),
        processing_id: field(11),
        version: field(12),
        accept_ack_type: field(15),
        application_ack_type: field(16),
        encoding_characters,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADT: &str = "MSH|^~\\&|EPIC|EPICADT|SMS|SMSADT|199912271408|CHARRIS|ADT^A04|1817457|D|2.5|\nPID||0493575^^^2^ID 1|454721||DOE^JOHN^^^^|DOE^JOHN^^^^|19480203|M\r\n";

    #[test]
    fn a_batch_file_splits_into_its_messages() {
        let batch = b"FHS|^~\\&|A\rBHS|^~\\&|A\nMSH|^~\\&|A|B|C|D|1||ADT^A04|1|P|2.5\rPID|1\r\n\
MSH|^~\\&|A|B|C|D|1||ADT^A08|2|P|2.5\rPID|2\rBTS|2\rFTS|1\r";
        let messages = split_batch(batch).unwrap();
        assert_eq!(messages.len(), 2);
        assert_eq!(
            messages[1],
            b"MSH|^~\\&|A|B|C|D|1||ADT^A08|2|P|2.5\rPID|2".to_vec()
        );
        assert!(split_batch(b"MSH|^~\\&|A").is_none());
    }

    #[test]
    fn lf_and_crlf_separated_messages_read_as_cr_separated() {
        let message = read_message(ADT.as_bytes()).unwrap();
        assert_eq!(message.text.matches('\r').count(), 1);
        assert!(!message.text.ends_with('\r'));
        assert_eq!(message.header.message_type, "ADT^A04");
        assert_eq!(message.header.control_id, "1817457");
        assert_eq!(message.header.version, "2.5");
        assert_eq!(message.header.sending_application, "EPIC");
    }

    #[test]
    fn trailing_empty_segments_and_a_missing_last_terminator_are_read() {
        let base = "MSH|^~\\&|EPIC|HOSP|PROG|HOSP|202601011200||ADT^A04|1|P|2.5\r\
                    PID|1||123^^^HOSP||DOE^JANE";
        for sent in [
            base.to_owned(),
            format!("{base}\r"),
            format!("{base}\r\r\r"),
            format!("{base}\r \r\n"),
            format!("{base}\n\n"),
        ] {
            let message = read_message(sent.as_bytes()).unwrap();
            assert_eq!(message.text, base, "{sent:?}");
        }
    }

    #[test]
    fn a_message_without_msh_is_refused_naming_msh() {
        let refusal = read_message(b"PID|1||123\r").unwrap_err();
        assert_eq!(refusal.problem.condition, ErrorCondition::SegmentSequence);
        assert_eq!(refusal.problem.location.unwrap().segment, "MSH");
    }

    #[test]
    fn a_missing_control_id_is_named_as_msh_10() {
        let refusal = read_message(b"MSH|^~\\&|A|B|C|D|20240101||ORU^R01||P|2.5\r").unwrap_err();
        assert_eq!(
            refusal.problem.condition,
            ErrorCondition::RequiredFieldMissing
        );
        assert_eq!(refusal.problem.location.unwrap().field, 10);
        assert_eq!(refusal.header.message_type, "ORU^R01");
    }

    #[test]
    fn latin1_is_read_only_when_msh_18_names_it() {
        let mut bytes =
            b"MSH|^~\\&|A|B|C|D|20240101||ADT^A08|42|P|2.5||||||8859/1\rPID|1||7||M".to_vec();
        bytes.push(0xfc); // ü in ISO 8859-1
        bytes.extend_from_slice(b"LLER^J");
        let message = read_message(&bytes).unwrap();
        assert!(message.text.contains("M\u{fc}LLER"));

        let mut bytes = b"MSH|^~\\&|A|B|C|D|20240101||ADT^A08|42|P|2.5\rPID|1||7||M".to_vec();
        bytes.push(0xfc);
        let refusal = read_message(&bytes).unwrap_err();
        assert_eq!(refusal.problem.location.unwrap().field, 18);
    }

    #[test]
    fn a_bad_segment_id_or_encoding_characters_are_refused() {
        let refusal = read_message(b"MSH|^~\\&|A|B|C|D|1||ADT^A01|1|P|2.5\rpid|1\r").unwrap_err();
        assert_eq!(refusal.problem.condition, ErrorCondition::SegmentSequence);
        let refusal = read_message(b"MSH|AB|A|B|C|D|1||ADT^A01|1|P|2.5\r").unwrap_err();
        assert_eq!(refusal.problem.location.unwrap().field, 2);
    }
}
