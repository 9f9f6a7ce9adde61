//! ORU^R01 results read into observations: one per OBX, with the OBR that orders it as context
//! and the NTE comments that follow it. Values by OBX-2 value type: NM (number), ST/TX/FT
//! (text), CE/CWE (coded), SN (structured numeric: comparator and number, or a range or ratio).
//! Problems name the segment occurrence and field, never the value.

use hl7_parser::Message;

use super::ack::{ErrorCondition, ErrorLocation, MessageProblem};

/// A code with its coding system as HL7 names it (`LN` for LOINC, `SCT` for SNOMED CT …).
#[derive(Debug, Clone, PartialEq)]
pub struct Hl7Code {
    pub code: String,
    pub display: String,
    pub system: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ObservationValue {
    Quantity {
        value: f64,
        /// `<`, `<=`, `>`, `>=` from an SN value; empty for a plain number.
        comparator: String,
        unit: String,
    },
    Range {
        low: f64,
        high: f64,
        unit: String,
    },
    Ratio {
        numerator: f64,
        denominator: f64,
    },
    Text(String),
    Coded(Hl7Code),
}

/// One OBX, read.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservationDraft {
    /// 1-based OBX occurrence in the message.
    pub occurrence: usize,
    pub code: Hl7Code,
    pub value: Option<ObservationValue>,
    pub reference_range: String,
    /// OBX-8 abnormal flags (H, L, A, N, HH, LL …).
    pub abnormal_flags: Vec<String>,
    /// OBX-11 result status (F, P, C, X …).
    pub status: String,
    /// OBX-14, else the OBR's observation time (OBR-7), as HL7 DTM.
    pub effective: String,
    pub order_code: Option<Hl7Code>,
    /// NTE-3 comments after this OBX.
    pub notes: Vec<String>,
}

/// The observations of an ORU^R01, or the first problem met.
pub fn read_observations(text: &str) -> Result<Vec<ObservationDraft>, MessageProblem> {
    let message = Message::parse(text).map_err(|_| MessageProblem {
        condition: ErrorCondition::SegmentSequence,
        location: None,
        text: "the message's segments cannot be parsed".into(),
    })?;
    let separators = message.separators;
    let decode = |raw: &str| separators.decode(raw).to_string();
    let mut observations: Vec<ObservationDraft> = Vec::new();
    let mut order_code = None;
    let mut order_time = String::new();
    let mut occurrence = 0;
    for segment in message.segments() {
        let field = |n: usize| segment.field(n);
        let raw = |n: usize| field(n).map(|f| f.raw_value()).unwrap_or_default();
        let component = |n: usize, c: usize| {
            field(n)
                .and_then(|f| f.component(c))
                .map(|c| decode(c.raw_value()))
                .unwrap_or_default()
        };
        match segment.name {
            "OBR" => {
                order_code = Some(Hl7Code {
                    code: component(4, 1),
                    display: component(4, 2),
                    system: component(4, 3),
                });
                order_time = raw(7).to_owned();
            }
            "OBX" => {
                occurrence += 1;
                let at = |field: usize| ErrorLocation {
                    segment: "OBX".into(),
                    occurrence,
                    field,
                };
                let code = Hl7Code {
                    code: component(3, 1),
                    display: component(3, 2),
                    system: component(3, 3),
                };
                if code.code.is_empty() {
                    return Err(MessageProblem {
                        condition: ErrorCondition::RequiredFieldMissing,
                        location: Some(at(3)),
                        text: format!(
                            "OBX #{occurrence}: OBX-3 (observation identifier) is required"
                        ),
                    });
                }
                let value_type = raw(2);
                let unit = component(6, 1);
                let value = match field(5) {
                    Some(value) if !value.is_empty() => Some(
                        read_value(value_type, value, &unit, &decode).map_err(|reason| {
                            MessageProblem {
                                condition: ErrorCondition::DataType,
                                location: Some(at(5)),
                                text: format!("OBX #{occurrence}: OBX-5 {reason}"),
                            }
                        })?,
                    ),
                    _ => None,
                };
                let effective = match raw(14) {
                    "" => order_time.clone(),
                    time => time.to_owned(),
                };
                observations.push(ObservationDraft {
                    occurrence,
                    code,
                    value,
                    reference_range: decode(raw(7)),
                    abnormal_flags: field(8)
                        .map(|f| {
                            f.repeats()
                                .map(|r| r.raw_value().to_owned())
                                .filter(|v| !v.is_empty())
                                .collect()
                        })
                        .unwrap_or_default(),
                    status: raw(11).to_owned(),
                    effective,
                    order_code: order_code.clone(),
                    notes: Vec::new(),
                });
            }
            "NTE" => {
                if let Some(last) = observations.last_mut() {
                    let comment = field(3)
                        .map(|f| {
                            f.repeats()
                                .map(|r| decode(r.raw_value()))
                                .collect::<Vec<_>>()
                                .join("\n")
                        })
                        .unwrap_or_default();
                    if !comment.is_empty() {
                        last.notes.push(comment);
                    }
                }
            }
            _ => {}
        }
    }
    Ok(observations)
}

fn number(text: &str) -> Result<f64, String> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| "is not a number".to_owned())
}

fn read_value(
    value_type: &str,
    value: &hl7_parser::message::Field<'_>,
    unit: &str,
    decode: &dyn Fn(&str) -> String,
) -> Result<ObservationValue, String> {
    let component = |c: usize| {
        value
            .component(c)
            .map(|c| decode(c.raw_value()))
            .unwrap_or_default()
    };
    match value_type {
        "NM" => Ok(ObservationValue::Quantity {
            value: number(value.raw_value())
                .map_err(|e| format!("{e}, as OBX-2 (NM) says it must be"))?,
            comparator: String::new(),
            unit: unit.to_owned(),
        }),
        "ST" | "TX" | "FT" => Ok(ObservationValue::Text(
            value
                .repeats()
                .map(|r| decode(r.raw_value()))
                .collect::<Vec<_>>()
                .join("\n"),
        )),
        "CE" | "CWE" | "CNE" => Ok(ObservationValue::Coded(Hl7Code {
            code: component(1),
            display: component(2),
            system: component(3),
        })),
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
                        unit: unit.to_owned(),
                    })
                }
                "-" => Ok(ObservationValue::Range {
                    low: first,
                    high: number(&second).map_err(|e| format!("(SN) second number {e}"))?,
                    unit: unit.to_owned(),
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
            "has value type {other}, which is not taken (NM, ST, TX, FT, CE, CWE, CNE, SN)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORU: &str = "MSH|^~\\&|LAB|HOSP|PROGNOSTICS|ONC|20240105083000||ORU^R01|M1|P|2.5.1\r\
PID|1||MRN123^^^HOSP^MR||DOE^JANE\r\
OBR|1||LAB555|24331-1^Lipid panel^LN|||20240105070000\r\
OBX|1|NM|2093-3^Cholesterol^LN||196|mg/dL^^UCUM|<200|N|||F\r\
NTE|1||Fasting \\T\\ rested\r\
OBX|2|SN|2857-1^PSA^LN||<^0.1|ng/mL|0-4||||F|||20240105071500\r\
OBX|3|CWE|85319-2^HER2^LN||260385009^Negative^SCT||||||P\r\
OBX|4|SN|11111-1^Titer^LN||^1^:^64\r\
OBX|5|ST|8251-1^Comment^LN||Line one~Line two||||||C\r";

    #[test]
    fn each_value_type_is_read_with_its_context() {
        let obs = read_observations(ORU).unwrap();
        assert_eq!(obs.len(), 5);
        assert_eq!(obs[0].code.code, "2093-3");
        assert_eq!(obs[0].code.system, "LN");
        assert_eq!(
            obs[0].value,
            Some(ObservationValue::Quantity {
                value: 196.0,
                comparator: String::new(),
                unit: "mg/dL".into()
            })
        );
        assert_eq!(obs[0].reference_range, "<200");
        assert_eq!(obs[0].abnormal_flags, ["N"]);
        assert_eq!(obs[0].effective, "20240105070000");
        assert_eq!(obs[0].notes, ["Fasting & rested"]);
        assert_eq!(obs[0].order_code.as_ref().unwrap().code, "24331-1");
        assert_eq!(
            obs[1].value,
            Some(ObservationValue::Quantity {
                value: 0.1,
                comparator: "<".into(),
                unit: "ng/mL".into()
            })
        );
        assert_eq!(obs[1].effective, "20240105071500");
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
    }

    #[test]
    fn an_unparseable_number_is_named_by_obx_occurrence_and_field() {
        let text = ORU.replace("||196|", "||one ninety-six|");
        let problem = read_observations(&text).unwrap_err();
        assert_eq!(problem.condition, ErrorCondition::DataType);
        let at = problem.location.unwrap();
        assert_eq!(
            (at.segment.as_str(), at.occurrence, at.field),
            ("OBX", 1, 5)
        );
        assert!(!problem.text.contains("ninety"), "no values in problems");
    }

    #[test]
    fn an_unknown_value_type_and_a_missing_code_are_problems() {
        let problem = read_observations(&ORU.replace("|5|ST|", "|5|ZZ|")).unwrap_err();
        assert_eq!(problem.location.unwrap().occurrence, 5);
        let problem = read_observations(&ORU.replace("|2093-3^Cholesterol^LN|", "||")).unwrap_err();
        assert_eq!(problem.condition, ErrorCondition::RequiredFieldMissing);
    }
}
