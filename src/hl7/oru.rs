//! ORU^R01 results read into observations: one per OBX, with the OBR that orders it as context
//! and the NTE comments that follow it. Values by OBX-2 value type: NM (number), ST/TX/FT
//! (text), CE/CWE/CNE (coded), SN (structured numeric: comparator and number, or a range or
//! ratio), DT/TS/DTM (a date or time). Problems name the segment occurrence and field, never
//! the value.

use super::Hl7Code;
use super::ack::{ErrorCondition, MessageProblem};
use super::codes::is_well_formed_loinc;
use super::content::DateContext;
use super::fields::{Field, SegmentReader, coded};
use super::order::{EntityId, entity_id, notes};

#[derive(Debug, Clone, PartialEq)]
pub enum ObservationValue {
    Quantity {
        value: f64,
        /// `<`, `<=`, `>`, `>=` from an SN value; empty for a plain number.
        comparator: String,
        unit: Unit,
    },
    Range {
        low: f64,
        high: f64,
        unit: Unit,
    },
    Ratio {
        numerator: f64,
        denominator: f64,
    },
    Text(String),
    Coded(Hl7Code),
    /// A date or time, already as FHIR dateTime.
    DateTime(String),
}

/// OBX-6: the unit as sent (identifier ^ text ^ coding system).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Unit {
    pub code: String,
    pub text: String,
    pub system: String,
}

impl Unit {
    pub fn is_empty(&self) -> bool {
        self.code.is_empty() && self.text.is_empty()
    }

    /// What a person reads: the text when sent, else the identifier.
    pub fn display(&self) -> &str {
        if self.text.is_empty() {
            &self.code
        } else {
            &self.text
        }
    }
}

/// One OBX, read.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservationDraft {
    /// 1-based OBX occurrence in the message.
    pub occurrence: usize,
    /// OBX-3's identifier; its alternate triplet when only that is given.
    pub code: Hl7Code,
    /// OBX-3's alternate identifier (components 4 to 6) beside a primary one: often the LOINC
    /// code of a local test code.
    pub alternate_code: Option<Hl7Code>,
    /// OBX-4, which tells apart observations with the same code under one order.
    pub sub_id: String,
    pub value: Option<ObservationValue>,
    pub reference_range: String,
    /// OBX-8 abnormal flags (H, L, A, N, HH, LL …).
    pub abnormal_flags: Vec<String>,
    /// OBX-11 result status (F, P, C, X …); empty when not sent.
    pub status: String,
    /// OBX-14, else the OBR's observation time (OBR-7), as FHIR dateTime.
    pub effective: String,
    /// OBR-22, when the results were reported, as FHIR dateTime.
    pub issued: String,
    pub order_code: Option<Hl7Code>,
    /// The OBR's filler order number (OBR-3), else its placer order number (OBR-2).
    pub order_number: Option<EntityId>,
    /// Every order number the OBR gives (placer, then filler), to find the order it answers.
    pub order_numbers: Vec<EntityId>,
    /// OBR-24, the diagnostic service section (LAB, CH, HM, RAD …).
    pub section: String,
    /// NTE-3 comments after this OBX.
    pub notes: Vec<String>,
}

/// The observations of an ORU^R01, and what was wrong with them without stopping them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ReadObservations {
    pub observations: Vec<ObservationDraft>,
    pub warnings: Vec<MessageProblem>,
}

/// OBX-11 result status codes (HL7 table 0085).
const RESULT_STATUSES: &[&str] = &["C", "D", "F", "I", "N", "O", "P", "R", "S", "U", "W", "X"];

/// Reads the OBX segments of an ORU^R01 (segments in message order), or the first problem met.
pub fn read_observations(
    segments: &[SegmentReader<'_>],
    dates: &DateContext,
) -> Result<ReadObservations, MessageProblem> {
    let mut read = ReadObservations::default();
    let mut order_code = None;
    let mut order_number = None;
    let mut order_numbers = Vec::new();
    let mut order_time = String::new();
    let mut issued = String::new();
    let mut section = String::new();
    for segment in segments {
        match segment.name() {
            "OBR" => {
                order_code = segment
                    .repeats(4)
                    .first()
                    .map(|r| coded(segment, r, 1))
                    .filter(|c| !c.code.is_empty() || !c.display.is_empty());
                order_number = entity_id(segment, 3).or_else(|| entity_id(segment, 2));
                order_numbers = [entity_id(segment, 2), entity_id(segment, 3)]
                    .into_iter()
                    .flatten()
                    .collect();
                order_time = dates.datetime(segment, 7, segment.raw(7), true)?;
                issued = dates.datetime(segment, 22, segment.raw(22), true)?;
                section = segment.raw(24).trim().to_ascii_uppercase();
            }
            "OBX" => {
                let observation = read_obx(segment, dates, &mut read.warnings)?;
                read.observations.push(ObservationDraft {
                    effective: if observation.effective.is_empty() {
                        order_time.clone()
                    } else {
                        observation.effective
                    },
                    issued: issued.clone(),
                    order_code: order_code.clone(),
                    order_number: order_number.clone(),
                    order_numbers: order_numbers.clone(),
                    section: section.clone(),
                    ..observation
                });
            }
            "NTE" => {
                if let Some(last) = read.observations.last_mut() {
                    let comment = notes(segment);
                    if !comment.is_empty() {
                        last.notes.push(comment);
                    }
                }
            }
            _ => {}
        }
    }
    if read.observations.is_empty() {
        return Err(MessageProblem {
            condition: ErrorCondition::SegmentSequence,
            location: Some(super::ack::ErrorLocation {
                segment: "OBX".into(),
                occurrence: 1,
                field: 0,
            }),
            text: "the message holds no result (OBX segment)".into(),
        });
    }
    Ok(read)
}

fn read_obx(
    obx: &SegmentReader<'_>,
    dates: &DateContext,
    warnings: &mut Vec<MessageProblem>,
) -> Result<ObservationDraft, MessageProblem> {
    let (primary, alternate) = obx
        .repeats(3)
        .first()
        .map(|r| (coded(obx, r, 1), coded(obx, r, 4)))
        .unwrap_or_default();
    let (code, alternate_code) = match (primary.code.is_empty(), alternate.code.is_empty()) {
        (true, _) => (alternate, None),
        (false, true) => (primary, None),
        (false, false) => (primary, Some(alternate)),
    };
    if code.code.is_empty() {
        return Err(obx.problem(
            ErrorCondition::RequiredFieldMissing,
            3,
            "OBX-3 (observation identifier) is required",
        ));
    }
    let loinc_malformed =
        |c: &Hl7Code| c.system.eq_ignore_ascii_case("LN") && !is_well_formed_loinc(&c.code);
    if loinc_malformed(&code) || alternate_code.as_ref().is_some_and(loinc_malformed) {
        warnings.push(obx.problem(
            ErrorCondition::TableValueNotFound,
            3,
            "OBX-3 names LOINC (LN) but its code is not a well-formed LOINC code; stored, \
             not used as a feature",
        ));
    }
    let value_type = obx.raw(2).trim().to_ascii_uppercase();
    let unit = obx
        .repeats(6)
        .first()
        .map(|r| {
            let c = coded(obx, r, 1);
            Unit {
                code: c.code,
                text: c.display,
                system: c.system,
            }
        })
        .unwrap_or_default();
    let value = match obx_value(obx) {
        Some(value) => Some(read_value(obx, &value_type, &value, &unit, dates).map_err(
            |reason| obx.problem(ErrorCondition::DataType, 5, &format!("OBX-5 {reason}")),
        )?),
        None => None,
    };
    if matches!(
        value,
        Some(ObservationValue::Quantity { .. } | ObservationValue::Range { .. })
    ) && unit.is_empty()
    {
        warnings.push(obx.problem(
            ErrorCondition::RequiredFieldMissing,
            6,
            "a numeric result without units (OBX-6); stored, not used as a feature",
        ));
    }
    let status = obx.raw(11).trim().to_ascii_uppercase();
    if !status.is_empty() && !RESULT_STATUSES.contains(&status.as_str()) {
        return Err(obx.problem(
            ErrorCondition::TableValueNotFound,
            11,
            "OBX-11 (result status) is not a code of HL7 table 0085",
        ));
    }
    let mut abnormal_flags = Vec::new();
    for r in obx.repeats(8) {
        let flag = obx.decode(r.raw_value()).trim().to_owned();
        if flag.is_empty() {
            continue;
        }
        if super::codes::interpretation(&flag).is_some() {
            abnormal_flags.push(flag);
        } else {
            warnings.push(obx.problem(
                ErrorCondition::TableValueNotFound,
                8,
                "OBX-8 holds a flag that is not in HL7 table 0078; the flag is dropped",
            ));
        }
    }
    Ok(ObservationDraft {
        occurrence: obx.occurrence,
        code,
        alternate_code,
        sub_id: obx.text(4).trim().to_owned(),
        value,
        // Some senders add low and high as components (`0-100^0^100`): the text is the first.
        reference_range: obx.component(7, 1).trim().to_owned(),
        abnormal_flags,
        status,
        effective: dates.datetime(obx, 14, obx.raw(14), true)?,
        issued: String::new(),
        order_code: None,
        order_number: None,
        order_numbers: Vec::new(),
        section: String::new(),
        notes: Vec::new(),
    })
}

/// OBX-5 when it holds something.
fn obx_value<'m>(obx: &SegmentReader<'m>) -> Option<Field<'m>> {
    obx.field(5).filter(|f| !f.is_empty())
}

fn number(text: &str) -> Result<f64, String> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| "is not a number".to_owned())
}

fn read_value(
    obx: &SegmentReader<'_>,
    value_type: &str,
    value: &Field<'_>,
    unit: &Unit,
    dates: &DateContext,
) -> Result<ObservationValue, String> {
    let component = |c: usize| {
        value
            .component(c)
            .map(|c| obx.decode(c.raw_value()))
            .unwrap_or_default()
    };
    match value_type {
        "NM" => Ok(ObservationValue::Quantity {
            value: number(value.raw_value())
                .map_err(|e| format!("{e}, as OBX-2 (NM) says it must be"))?,
            comparator: String::new(),
            unit: unit.clone(),
        }),
        "ST" | "TX" | "FT" => Ok(ObservationValue::Text(
            value
                .repeats()
                .map(|r| obx.decode(r.raw_value()))
                .collect::<Vec<_>>()
                .join("\n"),
        )),
        "CE" | "CWE" | "CNE" => Ok(ObservationValue::Coded(Hl7Code {
            code: component(1).trim().to_owned(),
            display: component(2).trim().to_owned(),
            system: component(3).trim().to_owned(),
        })),
        "DT" | "TS" | "DTM" => {
            let raw = component(1);
            super::datetime::to_fhir_datetime(&raw, dates.zone)
                .map(ObservationValue::DateTime)
                .map_err(|_| {
                    format!("is not an HL7 date/time, as OBX-2 ({value_type}) says it must be")
                })
        }
        "SN" => {
            // comparator ^ num1 ^ separator/suffix ^ num2
            let (comparator, first, separator, second) =
                (component(1), component(2), component(3), component(4));
            let first = number(&first).map_err(|e| format!("(SN) first number {e}"))?;
            match separator.as_str() {
                "" => {
                    if !matches!(
                        comparator.as_str(),
                        "" | "<" | "<=" | ">" | ">=" | "=" | "<>"
                    ) {
                        return Err("(SN) comparator is not one of < <= > >= = <>".into());
                    }
                    Ok(ObservationValue::Quantity {
                        value: first,
                        comparator: if comparator == "=" {
                            String::new()
                        } else {
                            comparator
                        },
                        unit: unit.clone(),
                    })
                }
                "-" => Ok(ObservationValue::Range {
                    low: first,
                    high: number(&second).map_err(|e| format!("(SN) second number {e}"))?,
                    unit: unit.clone(),
                }),
                ":" | "/" => Ok(ObservationValue::Ratio {
                    numerator: first,
                    denominator: number(&second).map_err(|e| format!("(SN) second number {e}"))?,
                }),
                _ => Err("(SN) separator is not one of - : /".into()),
            }
        }
        "" => Err("has a value but OBX-2 (value type) is empty".into()),
        other => Err(format!(
            "has value type {other}, which is not taken (NM, ST, TX, FT, CE, CWE, CNE, SN, DT, \
             TS, DTM)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hl7::content::read_content;

    const ORU: &str = "MSH|^~\\&|LAB|HOSP|PROGNOSTICS|ONC|20240105083000||ORU^R01|M1|P|2.5.1\r\
PID|1||MRN123^^^HOSP^MR||DOE^JANE\r\
OBR|1|PL1|LAB555|24331-1^Lipid panel^LN|||20240105070000\r\
OBX|1|NM|2093-3^Cholesterol^LN||196|mg/dL^^UCUM|<200|N|||F\r\
NTE|1||Fasting \\T\\ rested\r\
OBX|2|SN|2857-1^PSA^LN||<^0.1|ng/mL|0-4||||F|||20240105071500\r\
OBX|3|CWE|85319-2^HER2^LN||260385009^Negative^SCT||||||P\r\
OBX|4|SN|11111-1^Titer^LN||^1^:^64\r\
OBX|5|ST|8251-1^Comment^LN||Line one~Line two||||||C\r\
OBX|6|TS|21612-7^Date^LN||20231224\r";

    fn dates() -> DateContext {
        DateContext {
            zone: chrono::FixedOffset::east_opt(3600).unwrap().into(),
            now: chrono::DateTime::parse_from_rfc3339("2024-06-01T00:00:00Z")
                .unwrap()
                .with_timezone(&chrono::Utc),
        }
    }

    fn read(text: &str) -> Result<ReadObservations, MessageProblem> {
        let message = crate::hl7::message::read_message(text.as_bytes()).unwrap();
        read_content(&message, &dates()).map(|c| ReadObservations {
            observations: c.observations,
            warnings: c.warnings,
        })
    }

    #[test]
    fn each_value_type_is_read_with_its_context() {
        let read = read(ORU).unwrap();
        let obs = &read.observations;
        assert_eq!(obs.len(), 6);
        assert_eq!(obs[0].code.code, "2093-3");
        assert_eq!(obs[0].code.system, "LN");
        let Some(ObservationValue::Quantity { value, unit, .. }) = &obs[0].value else {
            panic!("NM is a quantity");
        };
        assert_eq!(*value, 196.0);
        assert_eq!(
            (unit.code.as_str(), unit.system.as_str()),
            ("mg/dL", "UCUM")
        );
        assert_eq!(obs[0].reference_range, "<200");
        assert_eq!(obs[0].abnormal_flags, ["N"]);
        assert_eq!(obs[0].effective, "2024-01-05T07:00:00+01:00");
        assert_eq!(obs[0].notes, ["Fasting & rested"]);
        assert_eq!(obs[0].order_code.as_ref().unwrap().code, "24331-1");
        assert_eq!(obs[0].order_number.as_ref().unwrap().value, "LAB555");
        let Some(ObservationValue::Quantity {
            value, comparator, ..
        }) = &obs[1].value
        else {
            panic!("SN with a comparator is a quantity");
        };
        assert_eq!((*value, comparator.as_str()), (0.1, "<"));
        assert_eq!(obs[1].effective, "2024-01-05T07:15:00+01:00");
        assert!(
            matches!(&obs[2].value, Some(ObservationValue::Coded(c)) if c.code == "260385009" && c.system == "SCT")
        );
        assert_eq!(obs[2].status, "P");
        assert_eq!(
            obs[3].value,
            Some(ObservationValue::Ratio {
                numerator: 1.0,
                denominator: 64.0
            })
        );
        assert_eq!(
            obs[4].value,
            Some(ObservationValue::Text("Line one\nLine two".into()))
        );
        assert_eq!(
            obs[5].value,
            Some(ObservationValue::DateTime("2023-12-24".into()))
        );
        // 11111-1 fails LOINC's check digit; the SN quantity of OBX 2 has a unit.
        assert_eq!(read.warnings.len(), 1, "{:?}", read.warnings);
        assert_eq!(read.warnings[0].location.as_ref().unwrap().occurrence, 4);
    }

    #[test]
    fn an_identifier_in_the_alternate_components_is_read() {
        // Only the alternate triplet: it is the code.
        let read_only =
            read(&ORU.replace("|2093-3^Cholesterol^LN|", "|^^^2093-3^Cholesterol^LN|")).unwrap();
        let code = &read_only.observations[0].code;
        assert_eq!((code.code.as_str(), code.system.as_str()), ("2093-3", "LN"));
        assert_eq!(read_only.observations[0].alternate_code, None);
        // A local code with its LOINC alternate: both kept (the Observation codes both).
        let both = read(&ORU.replace(
            "|2093-3^Cholesterol^LN|",
            "|CHOL^Cholesterol^L^2093-3^Cholesterol, total^LN|",
        ))
        .unwrap();
        let obs = &both.observations[0];
        assert_eq!(obs.code.code, "CHOL");
        assert_eq!(obs.alternate_code.as_ref().unwrap().code, "2093-3");
        assert!(
            both.warnings
                .iter()
                .all(|w| w.location.as_ref().unwrap().occurrence != 1),
            "{:?}",
            both.warnings
        );
    }

    #[test]
    fn an_unparseable_number_is_named_by_obx_occurrence_and_field() {
        let text = ORU.replace("||196|", "||one ninety-six|");
        let problem = read(&text).unwrap_err();
        assert_eq!(problem.condition, ErrorCondition::DataType);
        let at = problem.location.unwrap();
        assert_eq!(
            (at.segment.as_str(), at.occurrence, at.field),
            ("OBX", 1, 5)
        );
        assert!(!problem.text.contains("ninety"), "no values in problems");
    }

    #[test]
    fn an_unknown_value_type_status_or_missing_code_is_a_problem() {
        let problem = read(&ORU.replace("|5|ST|", "|5|ZZ|")).unwrap_err();
        assert_eq!(problem.location.unwrap().occurrence, 5);
        let problem = read(&ORU.replace("|2093-3^Cholesterol^LN|", "||")).unwrap_err();
        assert_eq!(problem.condition, ErrorCondition::RequiredFieldMissing);
        let problem = read(&ORU.replace("||||||P\r", "||||||Q\r")).unwrap_err();
        assert_eq!(problem.condition, ErrorCondition::TableValueNotFound);
        assert_eq!(problem.location.unwrap().field, 11);
    }

    #[test]
    fn future_times_are_refused_and_missing_units_warned() {
        let problem = read(&ORU.replace("|||20240105071500", "|||20300105071500")).unwrap_err();
        let at = problem.location.unwrap();
        assert_eq!((at.occurrence, at.field), (2, 14));
        assert!(problem.text.contains("future"));

        let read = read(&ORU.replace("|196|mg/dL^^UCUM|", "|196||")).unwrap();
        assert!(
            read.warnings
                .iter()
                .any(|w| w.location.as_ref().unwrap().field == 6)
        );
    }

    #[test]
    fn unknown_flags_are_dropped_with_a_warning_and_nulls_read_as_empty() {
        let read = read(&ORU.replace("|<200|N|", "|\"\"|ZZ|")).unwrap();
        assert!(read.observations[0].abnormal_flags.is_empty());
        assert_eq!(read.observations[0].reference_range, "");
        assert!(
            read.warnings
                .iter()
                .any(|w| w.location.as_ref().unwrap().field == 8)
        );
    }
}
