//! ORM^O01 and OMI^O23 orders read into order drafts: one per ORC, with the OBR (and for OMI
//! the TQ1 timing and IPC imaging procedure control) that follow it, and NTE comments.

use super::Hl7Code;
use super::ack::{ErrorCondition, MessageProblem};
use super::content::DateContext;
use super::fields::{Repeat, SegmentReader, coded};
use super::patient::Authority;

/// An entity identifier (EI: id ^ namespace ^ universal id ^ universal id type), such as a
/// placer or filler order number or an accession number.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EntityId {
    pub value: String,
    pub authority: Authority,
}

/// Who ordered (XCN: id ^ family ^ given).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Orderer {
    pub id: String,
    pub family: String,
    pub given: String,
}

impl Orderer {
    pub fn display(&self) -> String {
        match (self.given.is_empty(), self.family.is_empty()) {
            (false, false) => format!("{} {}", self.given, self.family),
            (true, false) => self.family.clone(),
            (false, true) => self.given.clone(),
            (true, true) => self.id.clone(),
        }
    }
}

/// One order (ORC and what follows it), read.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OrderDraft {
    /// 1-based ORC occurrence in the message.
    pub occurrence: usize,
    /// ORC-1, table 0119 (NW new, CA cancel, XO change, SC status changed …).
    pub control: String,
    /// ORC-5, table 0038 (IP in process, CM completed, CA cancelled, HD on hold …).
    pub status: String,
    pub placer: Option<EntityId>,
    pub filler: Option<EntityId>,
    /// OBR-4, the universal service identifier: what is ordered.
    pub code: Option<Hl7Code>,
    /// Priority (table 0485: S stat, A asap, R routine, P pre-op, C callback, T timing
    /// critical), from TQ1-9, OBR-27.6 or ORC-7.6.
    pub priority: String,
    /// When it should happen, as FHIR dateTime (from TQ1-7, OBR-27.4 or ORC-7.4).
    pub requested_time: String,
    /// ORC-9, when the order was placed, as FHIR dateTime.
    pub authored: String,
    pub orderer: Option<Orderer>,
    /// OBR-31, the reasons for the study.
    pub reasons: Vec<Hl7Code>,
    /// OBR-13, relevant clinical information.
    pub clinical_info: String,
    /// OBR-24, diagnostic service section (table 0074: RAD, CT, MR, US, LAB, CH, HM …).
    pub section: String,
    /// IPC-1 (OMI) or the accession the order carries.
    pub accession: Option<EntityId>,
    /// IPC-3, the Study Instance UID the modality will use.
    pub study_uid: String,
    /// IPC-5, the modality (DICOM code).
    pub modality: Option<Hl7Code>,
    /// Whether the message is an imaging order (OMI, or IPC segments present).
    pub imaging: bool,
    pub notes: Vec<String>,
}

/// Order control codes (HL7 table 0119) the service takes.
const ORDER_CONTROLS: &[&str] = &[
    "NW", "OK", "UA", "CA", "OC", "CR", "UC", "DC", "OD", "DR", "UD", "HD", "OH", "HR", "UH", "RL",
    "OE", "OR", "UR", "XO", "XX", "XR", "UX", "SC", "SN", "SS", "SR", "RO", "RP", "RQ", "RU", "RE",
    "RR", "PA", "CH", "CN", "NA", "PR", "AF", "DF", "FU", "LI", "MC", "PY", "RF",
];

/// Reads the orders of an ORM^O01 or OMI^O23, whose segments are given in order.
pub fn read_orders(
    segments: &[SegmentReader<'_>],
    imaging_message: bool,
    dates: &DateContext,
) -> Result<Vec<OrderDraft>, MessageProblem> {
    let mut orders: Vec<OrderDraft> = Vec::new();
    for segment in segments {
        match segment.name() {
            "ORC" => {
                let control = segment.raw(1).trim().to_ascii_uppercase();
                if control.is_empty() {
                    return Err(segment.problem(
                        ErrorCondition::RequiredFieldMissing,
                        1,
                        "ORC-1 (order control) is required",
                    ));
                }
                if !ORDER_CONTROLS.contains(&control.as_str()) {
                    return Err(segment.problem(
                        ErrorCondition::TableValueNotFound,
                        1,
                        "ORC-1 (order control) is not a code of HL7 table 0119",
                    ));
                }
                orders.push(OrderDraft {
                    occurrence: segment.occurrence,
                    control,
                    status: segment.raw(5).trim().to_ascii_uppercase(),
                    placer: entity_id(segment, 2),
                    filler: entity_id(segment, 3),
                    priority: segment.component(7, 6).trim().to_ascii_uppercase(),
                    requested_time: dates.datetime(segment, 7, &segment.component(7, 4), false)?,
                    authored: dates.datetime(segment, 9, segment.raw(9), true)?,
                    orderer: orderer(segment, 12),
                    imaging: imaging_message,
                    ..OrderDraft::default()
                });
            }
            "TQ1" => {
                if let Some(order) = orders.last_mut() {
                    let priority = segment.component(9, 1).trim().to_ascii_uppercase();
                    if !priority.is_empty() {
                        order.priority = priority;
                    }
                    let start = dates.datetime(segment, 7, &segment.component(7, 1), false)?;
                    if !start.is_empty() {
                        order.requested_time = start;
                    }
                }
            }
            "OBR" => {
                let Some(order) = orders.last_mut() else {
                    return Err(MessageProblem {
                        condition: ErrorCondition::SegmentSequence,
                        location: Some(segment.at(0)),
                        text: format!(
                            "OBR #{} comes before any ORC; each order starts with an ORC",
                            segment.occurrence
                        ),
                    });
                };
                if order.placer.is_none() {
                    order.placer = entity_id(segment, 2);
                }
                if order.filler.is_none() {
                    order.filler = entity_id(segment, 3);
                }
                let code = segment
                    .repeats(4)
                    .first()
                    .map(|r| coded(segment, r, 1))
                    .filter(|c| !c.code.is_empty() || !c.display.is_empty());
                order.code = code;
                order.clinical_info = segment.text(13).trim().to_owned();
                if order.orderer.is_none() {
                    order.orderer = orderer(segment, 16);
                }
                order.section = segment.raw(24).trim().to_ascii_uppercase();
                if order.priority.is_empty() {
                    order.priority = segment.component(27, 6).trim().to_ascii_uppercase();
                }
                if order.requested_time.is_empty() {
                    order.requested_time =
                        dates.datetime(segment, 27, &segment.component(27, 4), false)?;
                }
                order.reasons = segment
                    .repeats(31)
                    .iter()
                    .map(|r| coded(segment, r, 1))
                    .filter(|c| !c.code.is_empty() || !c.display.is_empty())
                    .collect();
            }
            "IPC" => {
                if let Some(order) = orders.last_mut() {
                    order.imaging = true;
                    if order.accession.is_none() {
                        order.accession = entity_id(segment, 1);
                    }
                    if order.study_uid.is_empty() {
                        order.study_uid = segment.component(3, 1).trim().to_owned();
                    }
                    if order.modality.is_none() {
                        order.modality = segment
                            .repeats(5)
                            .first()
                            .map(|r| coded(segment, r, 1))
                            .filter(|c| !c.code.is_empty());
                    }
                }
            }
            "NTE" => {
                if let Some(order) = orders.last_mut() {
                    let comment = notes(segment);
                    if !comment.is_empty() {
                        order.notes.push(comment);
                    }
                }
            }
            _ => {}
        }
    }
    if orders.is_empty() {
        return Err(MessageProblem {
            condition: ErrorCondition::SegmentSequence,
            location: Some(super::ack::ErrorLocation {
                segment: "ORC".into(),
                occurrence: 1,
                field: 0,
            }),
            text: "the message holds no order (ORC segment)".into(),
        });
    }
    for order in &orders {
        if order.placer.is_none() && order.filler.is_none() {
            return Err(MessageProblem {
                condition: ErrorCondition::RequiredFieldMissing,
                location: Some(super::ack::ErrorLocation {
                    segment: "ORC".into(),
                    occurrence: order.occurrence,
                    field: 2,
                }),
                text: format!(
                    "ORC #{}: neither a placer (ORC-2, OBR-2) nor a filler (ORC-3, OBR-3) order \
                     number is given",
                    order.occurrence
                ),
            });
        }
        if order.control == "NW" && order.code.is_none() {
            return Err(MessageProblem {
                condition: ErrorCondition::RequiredFieldMissing,
                location: Some(super::ack::ErrorLocation {
                    segment: "OBR".into(),
                    occurrence: order.occurrence,
                    field: 4,
                }),
                text: format!(
                    "ORC #{}: a new order needs OBR-4 (universal service identifier)",
                    order.occurrence
                ),
            });
        }
    }
    Ok(orders)
}

/// NTE-3, its repetitions joined by line breaks.
pub fn notes(segment: &SegmentReader<'_>) -> String {
    segment
        .repeats(3)
        .iter()
        .map(|r| segment.decode(r.raw_value()))
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_owned()
}

/// An EI in field `n` (first repetition).
pub fn entity_id(segment: &SegmentReader<'_>, n: usize) -> Option<EntityId> {
    let repeats = segment.repeats(n);
    let r: &Repeat<'_> = repeats.first()?;
    let value = segment.repeat_component(r, 1).trim().to_owned();
    (!value.is_empty()).then(|| EntityId {
        value,
        authority: Authority {
            namespace: segment.repeat_component(r, 2).trim().to_owned(),
            universal_id: segment.repeat_component(r, 3).trim().to_owned(),
            universal_id_type: segment.repeat_component(r, 4).trim().to_owned(),
        },
    })
}

fn orderer(segment: &SegmentReader<'_>, n: usize) -> Option<Orderer> {
    let repeats = segment.repeats(n);
    let r = repeats.first()?;
    let o = Orderer {
        id: segment.repeat_component(r, 1).trim().to_owned(),
        family: segment.repeat_subcomponent(r, 2, 1).trim().to_owned(),
        given: segment.repeat_component(r, 3).trim().to_owned(),
    };
    (!o.id.is_empty() || !o.family.is_empty()).then_some(o)
}
