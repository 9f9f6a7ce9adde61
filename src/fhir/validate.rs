//! Validation of incoming resources. For the types the service reads or writes itself (and the
//! common ones real records carry), structure, cardinality of required elements and
//! required-binding codes come from fhir-sdk's generated models: a resource must deserialise into
//! its model. The models ignore elements they do not know, so a second pass compares the input
//! with the model's own serialisation and refuses any element the model dropped (a misspelt
//! element, a `null`, an empty object or array). Every other R4 type is checked against R4's
//! own element definitions (`structure`).

use fhir_sdk::r4b::resources as r4b;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::FhirError;
use crate::domain::{ResourceId, ResourceType};

/// Parses a request body as a JSON object, reporting the position of a syntax error.
pub fn parse_json_object(body: &[u8]) -> Result<Map<String, Value>, FhirError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(FhirError::NotAnObject),
        Err(e) => Err(FhirError::MalformedJson {
            line: e.line(),
            column: e.column(),
        }),
    }
}

/// Checks that `resource` is a valid R4 resource of a stored type and returns that type.
/// When `expected` is given, the resource's own `resourceType` must agree with it.
pub fn validate_resource(
    resource: &Map<String, Value>,
    expected: Option<ResourceType>,
) -> Result<ResourceType, FhirError> {
    let found = match resource.get("resourceType") {
        Some(Value::String(t)) => t.as_str(),
        Some(_) => {
            return Err(FhirError::InvalidElement {
                path: "resourceType".to_owned(),
                reason: "must be a string".to_owned(),
            });
        }
        None => return Err(FhirError::MissingResourceType),
    };
    let resource_type = match (found.parse::<ResourceType>(), expected) {
        (Ok(t), Some(e)) if t != e => {
            return Err(FhirError::ResourceTypeMismatch {
                expected: e,
                found: found.to_owned(),
            });
        }
        (Err(_), Some(e)) => {
            return Err(FhirError::ResourceTypeMismatch {
                expected: e,
                found: truncated(found),
            });
        }
        (Ok(t), _) => t,
        (Err(_), None) => {
            return Err(FhirError::UnsupportedResourceType {
                found: truncated(found),
            });
        }
    };
    if let Some(id) = resource.get("id") {
        match id {
            Value::String(s) if ResourceId::parse(s).is_ok() => {}
            _ => return Err(FhirError::InvalidId),
        }
    }
    let value = Value::Object(resource.clone());
    match resource_type {
        ResourceType::AuditEvent => check_model::<r4b::AuditEvent>(resource_type, &value),
        ResourceType::Condition => check_model::<r4b::Condition>(resource_type, &value),
        ResourceType::Device => check_model::<r4b::Device>(resource_type, &value),
        ResourceType::DiagnosticReport => {
            check_model::<r4b::DiagnosticReport>(resource_type, &value)
        }
        ResourceType::DocumentReference => {
            check_model::<r4b::DocumentReference>(resource_type, &value)
        }
        ResourceType::ImagingStudy => check_model::<r4b::ImagingStudy>(resource_type, &value),
        ResourceType::MedicationAdministration => {
            check_model::<r4b::MedicationAdministration>(resource_type, &value)
        }
        ResourceType::MedicationRequest => {
            check_model::<r4b::MedicationRequest>(resource_type, &value)
        }
        ResourceType::MedicationStatement => {
            check_model::<r4b::MedicationStatement>(resource_type, &value)
        }
        ResourceType::Observation => check_model::<r4b::Observation>(resource_type, &value),
        ResourceType::Patient => check_model::<r4b::Patient>(resource_type, &value),
        ResourceType::Procedure => check_model::<r4b::Procedure>(resource_type, &value),
        ResourceType::Provenance => check_model::<r4b::Provenance>(resource_type, &value),
        ResourceType::RiskAssessment => check_model::<r4b::RiskAssessment>(resource_type, &value),
        ResourceType::ServiceRequest => check_model::<r4b::ServiceRequest>(resource_type, &value),
        ResourceType::AllergyIntolerance => {
            check_model::<r4b::AllergyIntolerance>(resource_type, &value)
        }
        ResourceType::BodyStructure => check_model::<r4b::BodyStructure>(resource_type, &value),
        ResourceType::CarePlan => check_model::<r4b::CarePlan>(resource_type, &value),
        ResourceType::CareTeam => check_model::<r4b::CareTeam>(resource_type, &value),
        ResourceType::Encounter => check_model::<r4b::Encounter>(resource_type, &value),
        ResourceType::FamilyMemberHistory => {
            check_model::<r4b::FamilyMemberHistory>(resource_type, &value)
        }
        ResourceType::Goal => check_model::<r4b::Goal>(resource_type, &value),
        ResourceType::Group => check_model::<r4b::Group>(resource_type, &value),
        ResourceType::Immunization => check_model::<r4b::Immunization>(resource_type, &value),
        ResourceType::Location => check_model::<r4b::Location>(resource_type, &value),
        ResourceType::Medication => check_model::<r4b::Medication>(resource_type, &value),
        ResourceType::MolecularSequence => {
            check_model::<r4b::MolecularSequence>(resource_type, &value)
        }
        ResourceType::Organization => check_model::<r4b::Organization>(resource_type, &value),
        ResourceType::Practitioner => check_model::<r4b::Practitioner>(resource_type, &value),
        ResourceType::PractitionerRole => {
            check_model::<r4b::PractitionerRole>(resource_type, &value)
        }
        ResourceType::Specimen => check_model::<r4b::Specimen>(resource_type, &value),
        ResourceType::Task => check_model::<r4b::Task>(resource_type, &value),
        // The long tail of R4: checked against R4's own element definitions.
        other => super::structure::validate_structure(resource, other.as_str()),
    }?;
    Ok(resource_type)
}

/// Resource type names in errors are echoed back; keep a hostile one short.
fn truncated(s: &str) -> String {
    s.chars().take(64).collect()
}

fn check_model<T: DeserializeOwned + Serialize>(
    resource_type: ResourceType,
    value: &Value,
) -> Result<(), FhirError> {
    let model: T = serde_path_to_error::deserialize(value).map_err(|e| {
        let mut path = element_path(resource_type, &e.path().to_string());
        let message = e.into_inner().to_string();
        // A missing element is reported at its parent; name the element itself.
        if let Some(field) = message.strip_prefix("missing field `")
            && let Some(name) = field.split('`').next()
        {
            path = format!("{path}.{name}");
        }
        FhirError::InvalidElement {
            path,
            reason: sanitise_reason(&message),
        }
    })?;
    let echoed = serde_json::to_value(&model).map_err(|e| FhirError::InvalidElement {
        path: resource_type.as_str().to_owned(),
        reason: sanitise_reason(&e.to_string()),
    })?;
    match find_dropped_element(value, &echoed, resource_type.as_str().to_owned()) {
        Some(path) => Err(FhirError::UnknownElement { path }),
        None => Ok(()),
    }
}

fn element_path(resource_type: ResourceType, inner: &str) -> String {
    if inner.is_empty() || inner == "." {
        resource_type.as_str().to_owned()
    } else {
        format!("{}.{}", resource_type.as_str(), inner)
    }
}

/// serde's messages quote the offending value (`invalid value: string "xyz"`). Values may be
/// PHI and end up in logs, so keep only the text before the first quote or backtick-quoted part.
fn sanitise_reason(message: &str) -> String {
    let message = message.split(" at line ").next().unwrap_or(message);
    if let Some(field) = message.strip_prefix("missing field `") {
        let name = field.split('`').next().unwrap_or_default();
        return format!("required element {name} is missing");
    }
    if message.starts_with("unknown variant")
        || message.starts_with("Unknown value")
        || message.contains("expected one of")
    {
        return "code is not in the required value set".to_owned();
    }
    if message.starts_with("invalid type") {
        let expected = message.rsplit("expected ").next().unwrap_or("another type");
        return format!("wrong JSON type, expected {expected}");
    }
    // Anything else: keep words up to the first quoted fragment or colon (what follows one is
    // often the offending value).
    let cut = message.find(['"', '`', ':']).unwrap_or(message.len());
    let kept = message[..cut].trim_end_matches([':', ' ']);
    if kept.is_empty() {
        "invalid value".to_owned()
    } else {
        kept.to_owned()
    }
}

/// Walks `input` beside the model's echo of it and returns the path of the first element the
/// model did not keep.
fn find_dropped_element(input: &Value, echoed: &Value, path: String) -> Option<String> {
    match (input, echoed) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, value) in a {
                let child = format!("{path}.{key}");
                match b.get(key) {
                    Some(echo) => {
                        if let Some(p) = find_dropped_element(value, echo, child) {
                            return Some(p);
                        }
                    }
                    None => return Some(child),
                }
            }
            None
        }
        (Value::Array(a), Value::Array(b)) => {
            if a.is_empty() {
                return Some(path);
            }
            for (i, value) in a.iter().enumerate() {
                let child = format!("{path}[{i}]");
                match b.get(i) {
                    Some(echo) => {
                        if let Some(p) = find_dropped_element(value, echo, child) {
                            return Some(p);
                        }
                    }
                    None => return Some(child),
                }
            }
            None
        }
        (Value::Object(a), _) if a.is_empty() => Some(path),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn validate(v: Value, expected: Option<ResourceType>) -> Result<ResourceType, FhirError> {
        match v {
            Value::Object(map) => validate_resource(&map, expected),
            _ => Err(FhirError::NotAnObject),
        }
    }

    #[test]
    fn a_minimal_observation_is_valid() {
        let obs = json!({
            "resourceType": "Observation",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]},
            "subject": {"reference": "Patient/p1"},
            "valueQuantity": {"value": 13.2, "unit": "g/dL"}
        });
        assert_eq!(
            validate(obs, Some(ResourceType::Observation)).unwrap(),
            ResourceType::Observation
        );
    }

    #[test]
    fn a_missing_required_element_names_its_path() {
        let obs = json!({"resourceType": "Observation", "code": {"text": "x"}});
        let err = validate(obs, None).unwrap_err();
        assert_eq!(err.expression(), Some("Observation.status"));
        assert!(err.to_string().contains("required"), "{err}");
    }

    #[test]
    fn a_code_outside_a_required_binding_is_refused_without_echoing_it() {
        let obs =
            json!({"resourceType": "Observation", "status": "secret-value", "code": {"text": "x"}});
        let err = validate(obs, None).unwrap_err();
        assert_eq!(err.expression(), Some("Observation.status"));
        assert!(!err.to_string().contains("secret-value"), "{err}");
    }

    #[test]
    fn misspelt_and_empty_elements_are_refused() {
        let p = json!({"resourceType": "Patient", "gendr": "male"});
        assert_eq!(
            validate(p, None).unwrap_err().expression(),
            Some("Patient.gendr")
        );
        let p = json!({"resourceType": "Patient", "name": []});
        assert_eq!(
            validate(p, None).unwrap_err().expression(),
            Some("Patient.name")
        );
        let p = json!({"resourceType": "Patient", "name": [{"family": "X", "givn": ["A"]}]});
        assert_eq!(
            validate(p, None).unwrap_err().expression(),
            Some("Patient.name[0].givn")
        );
    }

    #[test]
    fn type_mismatches_and_unknown_types_are_told_apart() {
        let p = json!({"resourceType": "Patient"});
        assert!(matches!(
            validate(p, Some(ResourceType::Observation)),
            Err(FhirError::ResourceTypeMismatch { .. })
        ));
        let e =
            json!({"resourceType": "Parameters", "parameter": [{"name": "x", "valueString": "y"}]});
        assert!(matches!(
            validate(e, None),
            Err(FhirError::UnsupportedResourceType { .. })
        ));
        assert!(matches!(
            validate(json!({}), None),
            Err(FhirError::MissingResourceType)
        ));
    }

    #[test]
    fn ids_must_be_fhir_ids() {
        let p = json!({"resourceType": "Patient", "id": "not valid!"});
        assert!(matches!(validate(p, None), Err(FhirError::InvalidId)));
    }

    #[test]
    fn malformed_json_reports_its_position() {
        let err = parse_json_object(b"{\n  \"resourceType\": \"Patient\",,\n}").unwrap_err();
        assert!(
            matches!(err, FhirError::MalformedJson { line: 2, .. }),
            "{err}"
        );
        assert!(matches!(
            parse_json_object(b"[1]"),
            Err(FhirError::NotAnObject)
        ));
    }
}
