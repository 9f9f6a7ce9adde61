//! What the resources made from HL7 v2 messages share: v2 codes as CodeableConcepts (coding
//! systems per table 0396), v2 identifiers with their assigning authorities, references.

use fhir_sdk::r4b::types::{Annotation, CodeableConcept, Coding, Identifier, Reference};

use super::{IDENTIFIER_TYPES, ReportError, build_err, coding};
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

/// A v2 coded element as a CodeableConcept: a coding (its system when the v2 coding system is
/// one the service knows) and the text sent.
pub fn codeable_concept(code: &Hl7Code) -> Result<CodeableConcept, ReportError> {
    let mut b = CodeableConcept::builder();
    if !code.code.is_empty() {
        let mut coding = Coding::builder().code(code.code.clone());
        if let Some(system) = fhir_system(&code.system) {
            coding = coding.system(system);
        }
        if !code.display.is_empty() {
            coding = coding.display(code.display.clone());
        }
        b = b.coding(vec![Some(coding.build().map_err(build_err("Coding"))?)]);
    }
    if !code.display.is_empty() {
        b = b.text(code.display.clone());
    }
    b.build().map_err(build_err("CodeableConcept"))
}

/// A CodeableConcept of one coding.
pub fn concept(system: &str, code: &str, display: &str) -> Result<CodeableConcept, ReportError> {
    let coding = Coding::builder()
        .system(system.to_owned())
        .code(code.to_owned())
        .display(display.to_owned())
        .build()
        .map_err(build_err("Coding"))?;
    CodeableConcept::builder()
        .coding(vec![Some(coding)])
        .build()
        .map_err(build_err("CodeableConcept"))
}

/// An identifier assigned by `authority`, typed with a v2 table 0203 code when given. Without
/// a known system the authority's namespace is kept as the assigner's name.
pub fn identifier(
    value: &str,
    authority: &Authority,
    type_code: &str,
    systems: IdentifierSystems<'_>,
) -> Result<Identifier, ReportError> {
    let mut b = Identifier::builder().value(value.to_owned());
    match systems.system(authority) {
        Some(system) => b = b.system(system),
        None if !authority.namespace.is_empty() => {
            b = b.assigner(
                Reference::builder()
                    .display(authority.namespace.clone())
                    .build()
                    .map_err(build_err("Identifier.assigner"))?,
            );
        }
        None => {}
    }
    if !type_code.is_empty() {
        b = b.r#type(
            CodeableConcept::builder()
                .coding(vec![Some(coding(IDENTIFIER_TYPES, type_code)?)])
                .build()
                .map_err(build_err("Identifier.type"))?,
        );
    }
    b.build().map_err(build_err("Identifier"))
}

/// `Patient/{id}`.
pub fn patient_reference(id: &ResourceId) -> Result<Reference, ReportError> {
    Reference::builder()
        .reference(format!("Patient/{id}"))
        .build()
        .map_err(build_err("Reference"))
}

/// Free-text comments (NTE) as notes.
pub fn annotations<'a>(
    texts: impl Iterator<Item = &'a String>,
) -> Result<Vec<Option<Annotation>>, ReportError> {
    texts
        .map(|text| {
            Annotation::builder()
                .text(text.clone())
                .build()
                .map(Some)
                .map_err(build_err("Annotation"))
        })
        .collect()
}
