//! What the resources made from HL7 v2 messages share: v2 codes as CodeableConcepts (coding
//! systems per table 0396), v2 identifiers with their assigning authorities, references.
//!
//! These resources are written as JSON directly rather than through fhir-sdk's builders: a
//! feed files thousands of results a second, and building fhir-sdk's structs and converting
//! them to JSON cost three times as much as the rest of reading and mapping a message. The
//! element names and codes follow R4; every resource is checked by `fhir::validate_resource`
//! before it is stored.

use serde_json::{Map, Value, json};

use super::IDENTIFIER_TYPES;
use crate::domain::ResourceId;
use crate::hl7::Hl7Code;
use crate::hl7::codes::fhir_system;
use crate::hl7::patient::Authority;

/// How the service names the systems of v2 identifiers: assigning-authority namespaces
/// (CX-4.1, EI-2) mapped to `Identifier.system` URIs by configuration.
#[derive(Debug, Clone, Copy)]
pub struct IdentifierSystems<'a> {
    pub by_namespace: &'a std::collections::BTreeMap<String, String>,
}

impl IdentifierSystems<'_> {
    /// The system of identifiers assigned by `authority`, when one is known.
    pub fn system(&self, authority: &Authority) -> Option<String> {
        authority.system(&|namespace| self.by_namespace.get(namespace).cloned())
    }
}

/// A JSON object being written: elements set only when they have a value.
#[derive(Default)]
pub struct Element(Map<String, Value>);

impl Element {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn resource(resource_type: &str) -> Self {
        let mut e = Self(Map::with_capacity(16));
        e.0.insert("resourceType".into(), resource_type.into());
        e
    }

    /// Sets `key` to `value`.
    pub fn set(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.0.insert(key.to_owned(), value.into());
        self
    }

    /// Sets `key` to the text when it is not empty.
    pub fn text(self, key: &str, value: &str) -> Self {
        if value.is_empty() {
            self
        } else {
            self.set(key, value)
        }
    }

    /// Sets `key` when there is a value.
    pub fn some(self, key: &str, value: Option<Value>) -> Self {
        match value {
            Some(v) => self.set(key, v),
            None => self,
        }
    }

    /// Sets `key` to the array when it is not empty.
    pub fn list(self, key: &str, values: Vec<Value>) -> Self {
        if values.is_empty() {
            self
        } else {
            self.set(key, Value::Array(values))
        }
    }

    pub fn build(self) -> Value {
        Value::Object(self.0)
    }
}

/// A v2 coded element as a CodeableConcept: a coding (its system when the v2 coding system is
/// one the service knows) and the text sent.
pub fn codeable_concept(code: &Hl7Code) -> Value {
    codeable_concept_of(&[code])
}

/// A CodeableConcept of several codes of the same concept (a CE's identifier and its
/// alternate): a coding each, the text from the first with a display.
pub fn codeable_concept_of(codes: &[&Hl7Code]) -> Value {
    let codings: Vec<Value> = codes
        .iter()
        .filter(|c| !c.code.is_empty())
        .map(|code| {
            Element::new()
                .some("system", fhir_system(&code.system).map(Value::String))
                .set("code", code.code.as_str())
                .text("display", &code.display)
                .build()
        })
        .collect();
    let mut concept = Element::new();
    if !codings.is_empty() {
        concept = concept.set("coding", Value::Array(codings));
    }
    let text = codes
        .iter()
        .map(|c| c.display.as_str())
        .find(|d| !d.is_empty())
        .unwrap_or_default();
    concept.text("text", text).build()
}

/// A CodeableConcept of one coding.
pub fn concept(system: &str, code: &str, display: &str) -> Value {
    json!({"coding": [{"system": system, "code": code, "display": display}]})
}

/// An identifier assigned by `authority`, typed with a v2 table 0203 code when given. Without
/// a known system the authority's namespace is kept as the assigner's name.
pub fn identifier(
    value: &str,
    authority: &Authority,
    type_code: &str,
    systems: IdentifierSystems<'_>,
) -> Value {
    let mut e = Element::new();
    if !type_code.is_empty() {
        e = e.set(
            "type",
            json!({"coding": [{"system": IDENTIFIER_TYPES, "code": type_code}]}),
        );
    }
    match systems.system(authority) {
        Some(system) => e = e.set("system", system),
        None if !authority.namespace.is_empty() => {
            e = e.set("assigner", json!({"display": authority.namespace}));
        }
        None => {}
    }
    e.set("value", value).build()
}

/// `{"reference": "Patient/{id}"}`.
pub fn patient_reference(id: &ResourceId) -> Value {
    json!({ "reference": format!("Patient/{id}") })
}

/// Free-text comments (NTE) as notes.
pub fn annotations<'a>(texts: impl Iterator<Item = &'a String>) -> Vec<Value> {
    texts.map(|text| json!({ "text": text })).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_code_and_its_loinc_alternate_are_both_codings() {
        let local = Hl7Code {
            code: "CHOL".into(),
            display: String::new(),
            system: "L".into(),
        };
        let loinc = Hl7Code {
            code: "2093-3".into(),
            display: "Cholesterol".into(),
            system: "LN".into(),
        };
        let concept = codeable_concept_of(&[&local, &loinc]);
        assert_eq!(concept["coding"][0]["code"], "CHOL");
        assert_eq!(concept["coding"][1]["system"], "http://loinc.org");
        assert_eq!(concept["coding"][1]["code"], "2093-3");
        assert_eq!(concept["text"], "Cholesterol");
    }
}
