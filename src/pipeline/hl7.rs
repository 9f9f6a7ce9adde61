//! HL7 v2 messages in, from MLLP or HTTP: read and checked, their content filed as FHIR
//! resources in the transaction that stores the message, then answered with an ACK the sender
//! can match to its message: AA only once both are committed.

use super::Pipeline;
use crate::hl7::ack::{self, AckCode, ErrorCondition, Header, MessageProblem};
use crate::hl7::content::{DateContext, read_content};
use crate::hl7::message::{header_of, message_kind, read_message, split_batch};
use crate::store::NewHl7Message;

/// The message types and events the service takes.
pub const SUPPORTED_MESSAGES: &[&str] = &[
    "ORU^R01", "ORM^O01", "OMI^O23", "ADT^A01", "ADT^A04", "ADT^A08",
];

/// How a message was answered.
#[derive(Debug, Clone)]
pub struct Hl7Answer {
    pub code: AckCode,
    /// The acknowledgement to send back; `None` when MSH-15/16 ask for none in this case.
    pub ack: Option<String>,
    /// The stored message's id, when it was stored.
    pub message_id: Option<String>,
}

impl Pipeline {
    /// Reads, checks and stores one message. AA only once it is committed to the database; AR
    /// with ERR 207 when it could not be stored (the sender should send it again); AE or AR
    /// naming segment and field when it is not acceptable.
    ///
    /// A batch file (FHS/BHS envelopes) is taken message by message and answered with a batch
    /// of ACKs (BHS, each message's ACK, BTS with the count); its code is the worst of theirs.
    pub async fn receive_hl7(&self, bytes: &[u8]) -> Hl7Answer {
        let Some(messages) = split_batch(bytes) else {
            return self.receive_one_hl7(bytes).await;
        };
        let mut code = AckCode::Accept;
        let mut acks = Vec::with_capacity(messages.len());
        for message in &messages {
            let answer = self.receive_one_hl7(message).await;
            code = match (code, answer.code) {
                (AckCode::Reject, _) | (_, AckCode::Reject) => AckCode::Reject,
                (AckCode::Error, _) | (_, AckCode::Error) => AckCode::Error,
                _ => AckCode::Accept,
            };
            acks.extend(answer.ack);
        }
        tracing::info!(
            messages = messages.len(),
            code = code.as_str(),
            "HL7 batch received"
        );
        let now = chrono::Utc::now().format("%Y%m%d%H%M%S+0000");
        let mut batch = format!("BHS|^~\\&|{}||||{now}\r", ack::APPLICATION);
        for ack in &acks {
            batch.push_str(ack);
        }
        batch.push_str(&format!("BTS|{}\r", acks.len()));
        Hl7Answer {
            code,
            ack: Some(batch),
            message_id: None,
        }
    }

    async fn receive_one_hl7(&self, bytes: &[u8]) -> Hl7Answer {
        let message = match read_message(bytes) {
            Ok(message) => message,
            Err(refusal) => {
                tracing::warn!(
                    control_id = %refusal.header.control_id,
                    condition = refusal.problem.condition.code(),
                    "HL7 message refused"
                );
                let code = code_for(&refusal.problem);
                return answer(&refusal.header, code, &[refusal.problem], &[], None);
            }
        };
        let header = &message.header;
        let kind = message_kind(header);
        if header.is_acknowledgement() {
            // An acknowledgement is never acknowledged (that would loop between two systems);
            // it is not stored either: it answers a message this service did not send.
            tracing::warn!(control_id = %header.control_id, kind = %kind, "HL7 acknowledgement received and not answered");
            return Hl7Answer {
                code: AckCode::Accept,
                ack: None,
                message_id: None,
            };
        }
        if !SUPPORTED_MESSAGES.contains(&kind.as_str()) {
            let known_type = SUPPORTED_MESSAGES
                .iter()
                .any(|m| m.split('^').next() == kind.split('^').next());
            let problem = MessageProblem {
                condition: if known_type {
                    ErrorCondition::UnsupportedEventCode
                } else {
                    ErrorCondition::UnsupportedMessageType
                },
                location: Some(ack::ErrorLocation {
                    segment: "MSH".into(),
                    occurrence: 1,
                    field: 9,
                }),
                text: format!(
                    "message type {kind} is not taken; this service takes {}",
                    SUPPORTED_MESSAGES.join(", ")
                ),
            };
            tracing::warn!(control_id = %header.control_id, kind = %kind, "HL7 message type not taken");
            return answer(header, AckCode::Reject, &[problem], &[], None);
        }
        let dates = DateContext {
            zone: self.hl7.zone,
            now: chrono::Utc::now(),
        };
        let content = read_content(&message, &dates);
        let sender = format!("{}|{}", header.sending_application, header.sending_facility);
        let record = NewHl7Message {
            sender: &sender,
            control_id: &header.control_id,
            message_type: &kind,
            version: &header.version,
            body: message.text.as_bytes(),
        };
        // A message whose content is in error is stored too (status failed, with the reason),
        // so that what was sent and what it was answered can be looked up.
        let filed = match &content {
            Ok(content) => self.file_hl7(&record, header, content).await,
            Err(problem) => self.record_failed_hl7(&record, &problem.text).await,
        };
        let receipt = match filed {
            Ok(receipt) => receipt,
            Err(e) => {
                tracing::error!(control_id = %header.control_id, error = %e, "HL7 message not stored");
                let problem = MessageProblem {
                    condition: ErrorCondition::ApplicationInternal,
                    location: None,
                    text: "the message could not be stored; send it again".into(),
                };
                return answer(header, AckCode::Reject, &[problem], &[], None);
            }
        };
        match content {
            Ok(content) => {
                tracing::info!(
                    message_id = %receipt.id,
                    control_id = %header.control_id,
                    kind = %kind,
                    bytes = message.text.len(),
                    observations = content.observations.len(),
                    orders = content.orders.len(),
                    warnings = content.warnings.len(),
                    duplicate = !receipt.new,
                    "HL7 message filed"
                );
                answer(
                    header,
                    AckCode::Accept,
                    &[],
                    &content.warnings,
                    Some(receipt.id),
                )
            }
            Err(problem) => {
                tracing::warn!(
                    message_id = %receipt.id,
                    control_id = %header.control_id,
                    kind = %kind,
                    condition = problem.condition.code(),
                    "HL7 message content in error"
                );
                let code = code_for(&problem);
                answer(header, code, &[problem], &[], Some(receipt.id))
            }
        }
    }

    /// Answers a message that was too long to take, from as much of it as was kept.
    pub fn refuse_oversized_hl7(&self, head: &[u8], limit: usize) -> Hl7Answer {
        let header = header_of(head);
        tracing::warn!(control_id = %header.control_id, limit, "HL7 message over the size limit");
        let problem = MessageProblem {
            condition: ErrorCondition::ApplicationInternal,
            location: None,
            text: format!("the message is longer than the limit of {limit} bytes"),
        };
        answer(&header, AckCode::Reject, &[problem], &[], None)
    }
}

/// AE when the sender can correct the content (a missing field, a value of the wrong type or
/// outside its table); AR when the message is not one the service can process at all.
fn code_for(problem: &MessageProblem) -> AckCode {
    match problem.condition {
        ErrorCondition::RequiredFieldMissing
        | ErrorCondition::DataType
        | ErrorCondition::TableValueNotFound => AckCode::Error,
        _ => AckCode::Reject,
    }
}

fn answer(
    header: &Header,
    code: AckCode,
    errors: &[MessageProblem],
    warnings: &[MessageProblem],
    message_id: Option<String>,
) -> Hl7Answer {
    // An acknowledgement, even one that could not be read, is never acknowledged.
    let ack = (header.wants_ack(code) && !header.is_acknowledgement()).then(|| {
        let now = chrono::Utc::now();
        ack::acknowledgement(
            header,
            code,
            errors,
            warnings,
            &format!("ACK{}", now.format("%Y%m%d%H%M%S%3f")),
            &now.format("%Y%m%d%H%M%S+0000").to_string(),
        )
    });
    Hl7Answer {
        code,
        ack,
        message_id,
    }
}
