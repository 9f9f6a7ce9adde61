//! Observation from an ORU^R01 OBX: status, category, code, subject, effective and issued
//! times, the value by type, interpretation from the abnormal flags, reference range, notes.

use fhir_sdk::r4b::codes::{ObservationStatus, QuantityComparator};
use fhir_sdk::r4b::resources::{Observation, ObservationReferenceRange, ObservationValue};
use fhir_sdk::r4b::types::{Identifier, Quantity, Range, Ratio};
use serde_json::Value;

use super::v2::{IdentifierSystems, annotations, codeable_concept, concept, patient_reference};
use super::{ReportError, build_err, to_value};
use crate::domain::ResourceId;
use crate::hl7::codes::{fhir_system, interpretation};
use crate::hl7::oru::{self, ObservationDraft, Unit};

const CATEGORIES: &str = "http://terminology.hl7.org/CodeSystem/observation-category";
const INTERPRETATIONS: &str = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation";
const UCUM: &str = "http://unitsofmeasure.org";

/// What an Observation made from a message needs beyond its OBX.
#[derive(Debug, Clone, Copy)]
pub struct ResultContext<'a> {
    pub subject: &'a ResourceId,
    /// MSH-10, for results that come without an order number to identify them by.
    pub control_id: &'a str,
    pub systems: IdentifierSystems<'a>,
}

/// The identifier an OBX's Observation carries, so that a corrected result sent later finds
/// it: the order number (filler, else placer) with the observation code and OBX-4 sub-id, or
/// without an order number the message control id and OBX occurrence.
pub fn result_identifier(
    draft: &ObservationDraft,
    context: &ResultContext<'_>,
) -> Result<Identifier, ReportError> {
    match &draft.order_number {
        Some(order) => {
            let mut value = format!("{}/{}", order.value, draft.code.code);
            if !draft.sub_id.is_empty() {
                value.push('/');
                value.push_str(&draft.sub_id);
            }
            super::v2::identifier(&value, &order.authority, "", context.systems)
        }
        None => Identifier::builder()
            .value(format!("{}/{}", context.control_id, draft.occurrence))
            .build()
            .map_err(build_err("Observation.identifier")),
    }
}

/// OBX-11 (table 0085) as an Observation status.
pub fn observation_status(result_status: &str) -> ObservationStatus {
    match result_status {
        "F" | "U" => ObservationStatus::Final,
        "C" => ObservationStatus::Corrected,
        "P" | "R" | "S" => ObservationStatus::Preliminary,
        "I" | "O" => ObservationStatus::Registered,
        "X" | "N" => ObservationStatus::Cancelled,
        "W" | "D" => ObservationStatus::EnteredInError,
        _ => ObservationStatus::Unknown,
    }
}

/// An Observation as R4 JSON (without an id: the caller finds or assigns one).
pub fn observation_from_hl7(
    draft: &ObservationDraft,
    context: &ResultContext<'_>,
) -> Result<Value, ReportError> {
    let category = match draft.section.as_str() {
        "RAD" | "CT" | "MR" | "US" | "NMR" | "NMS" | "RX" | "XRC" | "VUS" | "CUS" | "OUS" => {
            ("imaging", "Imaging")
        }
        _ => ("laboratory", "Laboratory"),
    };
    let mut b = Observation::builder()
        .identifier(vec![Some(result_identifier(draft, context)?)])
        .status(observation_status(&draft.status))
        .category(vec![Some(concept(CATEGORIES, category.0, category.1)?)])
        .code(codeable_concept(&draft.code)?)
        .subject(patient_reference(context.subject)?);
    if let Some(value) = &draft.value
        && let Some(value) = value_of(value)?
    {
        b = b.value(value);
    }
    let interpretations = draft
        .abnormal_flags
        .iter()
        .filter_map(|f| interpretation(f))
        .map(|(code, display)| concept(INTERPRETATIONS, code, display).map(Some))
        .collect::<Result<Vec<_>, _>>()?;
    if !interpretations.is_empty() {
        b = b.interpretation(interpretations);
    }
    if !draft.reference_range.is_empty() {
        b = b.reference_range(vec![Some(reference_range(
            &draft.reference_range,
            unit_of(draft),
        )?)]);
    }
    let notes = annotations(draft.notes.iter())?;
    if !notes.is_empty() {
        b = b.note(notes);
    }
    let observation = b.build().map_err(build_err("Observation"))?;
    let mut value = to_value("Observation", &observation)?;
    if let Some(object) = value.as_object_mut() {
        // Times as converted from HL7, at the precision sent.
        if !draft.effective.is_empty() {
            object.insert(
                "effectiveDateTime".into(),
                Value::String(draft.effective.clone()),
            );
        }
        if draft.issued.contains('T') {
            object.insert("issued".into(), Value::String(draft.issued.clone()));
        }
        if let Some(oru::ObservationValue::DateTime(when)) = &draft.value {
            object.insert("valueDateTime".into(), Value::String(when.clone()));
        }
    }
    Ok(value)
}

fn unit_of(draft: &ObservationDraft) -> Option<&Unit> {
    match &draft.value {
        Some(
            oru::ObservationValue::Quantity { unit, .. }
            | oru::ObservationValue::Range { unit, .. },
        ) => Some(unit),
        _ => None,
    }
}

/// A Quantity with the unit as sent; UCUM system and code when OBX-6 names UCUM.
fn quantity(
    value: f64,
    comparator: Option<QuantityComparator>,
    unit: Option<&Unit>,
) -> Result<Quantity, ReportError> {
    let mut b = Quantity::builder().value(value);
    if let Some(c) = comparator {
        b = b.comparator(c);
    }
    if let Some(unit) = unit.filter(|u| !u.is_empty()) {
        b = b.unit(unit.display().to_owned());
        if fhir_system(&unit.system).as_deref() == Some(UCUM) {
            b = b.system(UCUM.to_owned()).code(unit.code.clone());
        }
    }
    b.build().map_err(build_err("Quantity"))
}

fn value_of(value: &oru::ObservationValue) -> Result<Option<ObservationValue>, ReportError> {
    Ok(Some(match value {
        oru::ObservationValue::Quantity {
            value,
            comparator,
            unit,
        } => {
            let comparator = match comparator.as_str() {
                "<" => Some(QuantityComparator::Less),
                "<=" => Some(QuantityComparator::LessOrEqual),
                ">" => Some(QuantityComparator::Greater),
                ">=" => Some(QuantityComparator::GreaterOrEqual),
                _ => None,
            };
            ObservationValue::Quantity(quantity(*value, comparator, Some(unit))?)
        }
        oru::ObservationValue::Range { low, high, unit } => ObservationValue::Range(
            Range::builder()
                .low(quantity(*low, None, Some(unit))?)
                .high(quantity(*high, None, Some(unit))?)
                .build()
                .map_err(build_err("Range"))?,
        ),
        oru::ObservationValue::Ratio {
            numerator,
            denominator,
        } => ObservationValue::Ratio(
            Ratio::builder()
                .numerator(quantity(*numerator, None, None)?)
                .denominator(quantity(*denominator, None, None)?)
                .build()
                .map_err(build_err("Ratio"))?,
        ),
        oru::ObservationValue::Text(text) => ObservationValue::String(text.clone()),
        oru::ObservationValue::Coded(code) => {
            ObservationValue::CodeableConcept(codeable_concept(code)?)
        }
        // Written into the JSON as sent (see `observation_from_hl7`).
        oru::ObservationValue::DateTime(_) => return Ok(None),
    }))
}

/// OBX-7 as a reference range: always its text; low and high too when it reads as
/// `low-high`, `<high`, `<=high`, `>low` or `>=low`.
fn reference_range(
    text: &str,
    unit: Option<&Unit>,
) -> Result<ObservationReferenceRange, ReportError> {
    let mut b = ObservationReferenceRange::builder().text(text.to_owned());
    let number = |s: &str| s.trim().parse::<f64>().ok().filter(|v| v.is_finite());
    let t = text.trim();
    let (low, high) = if let Some(rest) = t.strip_prefix("<=").or_else(|| t.strip_prefix('<')) {
        (None, number(rest))
    } else if let Some(rest) = t.strip_prefix(">=").or_else(|| t.strip_prefix('>')) {
        (number(rest), None)
    } else {
        // The hyphen between the bounds, not a leading minus sign.
        match t.char_indices().skip(1).find(|&(_, c)| c == '-') {
            Some((at, _)) => match (number(&t[..at]), number(&t[at + 1..])) {
                (Some(low), Some(high)) if low <= high => (Some(low), Some(high)),
                _ => (None, None),
            },
            None => (None, None),
        }
    };
    if let Some(low) = low {
        b = b.low(quantity(low, None, unit)?);
    }
    if let Some(high) = high {
        b = b.high(quantity(high, None, unit)?);
    }
    b.build().map_err(build_err("Observation.referenceRange"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds(text: &str) -> (Option<f64>, Option<f64>) {
        let range = serde_json::to_value(reference_range(text, None).unwrap()).unwrap();
        (
            range["low"]["value"].as_f64(),
            range["high"]["value"].as_f64(),
        )
    }

    #[test]
    fn reference_ranges_read_their_bounds_when_they_have_them() {
        assert_eq!(bounds("3.5-5.1"), (Some(3.5), Some(5.1)));
        assert_eq!(bounds("-2-2"), (Some(-2.0), Some(2.0)));
        assert_eq!(bounds("<200"), (None, Some(200.0)));
        assert_eq!(bounds(">=40"), (Some(40.0), None));
        assert_eq!(bounds("70_105"), (None, None));
        assert_eq!(bounds("negative"), (None, None));
        assert_eq!(bounds("9-3"), (None, None));
    }

    #[test]
    fn result_statuses_map_onto_observation_statuses() {
        assert_eq!(observation_status("F"), ObservationStatus::Final);
        assert_eq!(observation_status("C"), ObservationStatus::Corrected);
        assert_eq!(observation_status("P"), ObservationStatus::Preliminary);
        assert_eq!(observation_status("W"), ObservationStatus::EnteredInError);
        assert_eq!(observation_status("X"), ObservationStatus::Cancelled);
        assert_eq!(observation_status(""), ObservationStatus::Unknown);
    }
}
