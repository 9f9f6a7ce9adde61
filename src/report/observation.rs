//! Observation from an ORU^R01 OBX: status, category, code, subject, effective and issued
//! times, the value by type, interpretation from the abnormal flags, reference range, notes.

use serde_json::{Value, json};

use super::v2::{
    Element, IdentifierSystems, annotations, codeable_concept, codeable_concept_of, concept,
    identifier, patient_reference,
};
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
pub fn result_identifier(draft: &ObservationDraft, context: &ResultContext<'_>) -> Value {
    match &draft.order_number {
        Some(order) => {
            let mut value = format!("{}/{}", order.value, draft.code.code);
            if !draft.sub_id.is_empty() {
                value.push('/');
                value.push_str(&draft.sub_id);
            }
            identifier(&value, &order.authority, "", context.systems)
        }
        None => json!({ "value": format!("{}/{}", context.control_id, draft.occurrence) }),
    }
}

/// OBX-11 (table 0085) as an Observation status.
pub fn observation_status(result_status: &str) -> &'static str {
    match result_status {
        "F" | "U" => "final",
        "C" => "corrected",
        "P" | "R" | "S" => "preliminary",
        "I" | "O" => "registered",
        "X" | "N" => "cancelled",
        "W" | "D" => "entered-in-error",
        _ => "unknown",
    }
}

/// An Observation as R4 JSON (without an id: the caller finds or assigns one).
pub fn observation_from_hl7(draft: &ObservationDraft, context: &ResultContext<'_>) -> Value {
    let category = match draft.section.as_str() {
        "RAD" | "CT" | "MR" | "US" | "NMR" | "NMS" | "RX" | "XRC" | "VUS" | "CUS" | "OUS" => {
            ("imaging", "Imaging")
        }
        _ => ("laboratory", "Laboratory"),
    };
    let interpretations: Vec<Value> = draft
        .abnormal_flags
        .iter()
        .filter_map(|f| interpretation(f))
        .map(|(code, display)| concept(INTERPRETATIONS, code, display))
        .collect();
    let (value_key, value) = match &draft.value {
        Some(value) => value_of(value),
        None => ("", Value::Null),
    };
    let mut observation = Element::resource("Observation")
        .set("identifier", json!([result_identifier(draft, context)]))
        .set("status", observation_status(&draft.status))
        .set(
            "category",
            json!([concept(CATEGORIES, category.0, category.1)]),
        )
        .set(
            "code",
            codeable_concept_of(
                &std::iter::once(&draft.code)
                    .chain(draft.alternate_code.as_ref())
                    .collect::<Vec<_>>(),
            ),
        )
        .set("subject", patient_reference(context.subject))
        // Times as converted from HL7, at the precision sent; `issued` is an instant.
        .text("effectiveDateTime", &draft.effective);
    if draft.issued.contains('T') {
        observation = observation.set("issued", draft.issued.as_str());
    }
    if !value_key.is_empty() {
        observation = observation.set(value_key, value);
    }
    observation
        .list("interpretation", interpretations)
        .list(
            "referenceRange",
            if draft.reference_range.is_empty() {
                Vec::new()
            } else {
                vec![reference_range(&draft.reference_range, unit_of(draft))]
            },
        )
        .list("note", annotations(draft.notes.iter()))
        .build()
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
fn quantity(value: f64, comparator: &str, unit: Option<&Unit>) -> Value {
    let mut q = Element::new()
        .set("value", value)
        .text("comparator", comparator);
    if let Some(unit) = unit.filter(|u| !u.is_empty()) {
        q = q.set("unit", unit.display());
        if fhir_system(&unit.system).as_deref() == Some(UCUM) {
            q = q.set("system", UCUM).set("code", unit.code.as_str());
        }
    }
    q.build()
}

/// The `value[x]` element name and its value.
fn value_of(value: &oru::ObservationValue) -> (&'static str, Value) {
    match value {
        oru::ObservationValue::Quantity {
            value,
            comparator,
            unit,
        } => ("valueQuantity", quantity(*value, comparator, Some(unit))),
        oru::ObservationValue::Range { low, high, unit } => (
            "valueRange",
            json!({"low": quantity(*low, "", Some(unit)), "high": quantity(*high, "", Some(unit))}),
        ),
        oru::ObservationValue::Ratio {
            numerator,
            denominator,
        } => (
            "valueRatio",
            json!({"numerator": quantity(*numerator, "", None), "denominator": quantity(*denominator, "", None)}),
        ),
        oru::ObservationValue::Text(text) => ("valueString", Value::String(text.clone())),
        oru::ObservationValue::Coded(code) => ("valueCodeableConcept", codeable_concept(code)),
        oru::ObservationValue::DateTime(when) => ("valueDateTime", Value::String(when.clone())),
    }
}

/// OBX-7 as a reference range: always its text; low and high too when it reads as
/// `low-high`, `<high`, `<=high`, `>low` or `>=low`.
fn reference_range(text: &str, unit: Option<&Unit>) -> Value {
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
    Element::new()
        .some("low", low.map(|v| quantity(v, "", unit)))
        .some("high", high.map(|v| quantity(v, "", unit)))
        .set("text", text)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds(text: &str) -> (Option<f64>, Option<f64>) {
        let range = reference_range(text, None);
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
        assert_eq!(observation_status("F"), "final");
        assert_eq!(observation_status("C"), "corrected");
        assert_eq!(observation_status("P"), "preliminary");
        assert_eq!(observation_status("W"), "entered-in-error");
        assert_eq!(observation_status("X"), "cancelled");
        assert_eq!(observation_status(""), "unknown");
    }
}
