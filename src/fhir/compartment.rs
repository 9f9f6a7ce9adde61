//! The Patient compartment as this server tells it: a Patient is in its own compartment, and a
//! resource of another type is in the compartment of each patient its `patient` search
//! parameter references. A type without that parameter belongs to no patient's compartment.
//! Used to confine `patient/` access and to name the patients an audit record is about.

use serde_json::{Map, Value};

use super::search_params::{index_entries, param_entries, search_params_for};
use crate::domain::ResourceType;

/// The search parameter that names a resource's patient: `_id` for Patient, else `patient`
/// where the type has it.
pub fn patient_parameter(resource_type: ResourceType) -> Option<&'static str> {
    if resource_type == ResourceType::Patient {
        return Some("_id");
    }
    search_params_for(resource_type)
        .iter()
        .any(|p| p.name == "patient")
        .then_some("patient")
}

/// The ids of the patients whose compartment `resource` is in.
pub fn patients_of(resource_type: ResourceType, resource: &Map<String, Value>) -> Vec<String> {
    if resource_type == ResourceType::Patient {
        return resource
            .get("id")
            .and_then(Value::as_str)
            .map(|id| vec![id.to_owned()])
            .unwrap_or_default();
    }
    if patient_parameter(resource_type).is_none() {
        return Vec::new();
    }
    index_entries(resource_type, resource)
        .into_iter()
        .filter(|e| e.param == "patient" && e.system.as_deref() == Some("Patient"))
        .filter_map(|e| e.value)
        .collect()
}

/// The ids of the patients whose compartment the resource stored as `content` (its JSON text)
/// is in, as [`patients_of`] tells, parsing only the elements its `patient` parameter reads (a
/// read checked and audited for its patients parses a reference, not the whole resource).
/// None when the text is not a JSON object.
pub fn patients_in_json(resource_type: ResourceType, content: &str) -> Option<Vec<String>> {
    use serde_json::value::RawValue;
    use std::collections::HashMap;
    if resource_type == ResourceType::Patient {
        let map: Map<String, Value> = serde_json::from_str(content).ok()?;
        return Some(patients_of(resource_type, &map));
    }
    let Some(def) = search_params_for(resource_type)
        .iter()
        .find(|p| p.name == "patient")
    else {
        // Still refuse what is not JSON, as a full parse would.
        serde_json::from_str::<&RawValue>(content).ok()?;
        return Some(Vec::new());
    };
    // The top level only, its values left as text; keys with escapes (never FHIR's) cannot be
    // borrowed, and such a resource is parsed whole.
    let top: HashMap<&str, &RawValue> = match serde_json::from_str(content) {
        Ok(top) => top,
        Err(_) => {
            let map: Map<String, Value> = serde_json::from_str(content).ok()?;
            return Some(patients_of(resource_type, &map));
        }
    };
    let mut read = Map::new();
    for element in def.elements {
        let key = element.split('.').next().unwrap_or(element);
        if let Some(raw) = top.get(key)
            && !read.contains_key(key)
        {
            read.insert(key.to_owned(), serde_json::from_str(raw.get()).ok()?);
        }
    }
    let mut patients: Vec<String> = param_entries(def, &read)
        .into_iter()
        .filter(|e| e.system.as_deref() == Some("Patient"))
        .filter_map(|e| e.value)
        .collect();
    patients.sort();
    patients.dedup();
    Some(patients)
}

/// The patient ids a search parameter value names (`p1`, `Patient/p1`, `p1,p2`); None when one
/// of them is not a plain patient reference.
pub fn patients_named(value: &str) -> Option<Vec<String>> {
    value
        .split(',')
        .map(|v| {
            let id = v.strip_prefix("Patient/").unwrap_or(v);
            (!id.is_empty() && !id.contains('/')).then(|| id.to_owned())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn a_resource_is_in_its_patients_compartment() {
        let patient = map(json!({"resourceType": "Patient", "id": "p1"}));
        assert_eq!(patients_of(ResourceType::Patient, &patient), ["p1"]);
        let observation = map(json!({"resourceType": "Observation", "status": "final",
            "code": {"text": "x"}, "subject": {"reference": "Patient/p2"}}));
        assert_eq!(patients_of(ResourceType::Observation, &observation), ["p2"]);
        let grouped = map(json!({"resourceType": "Observation", "status": "final",
            "code": {"text": "x"}, "subject": {"reference": "Group/g1"}}));
        assert!(patients_of(ResourceType::Observation, &grouped).is_empty());
        assert_eq!(
            patient_parameter(ResourceType::Observation),
            Some("patient")
        );
        assert_eq!(patient_parameter(ResourceType::Patient), Some("_id"));
        assert_eq!(patient_parameter(ResourceType::Organization), None);
    }

    #[test]
    fn patients_read_from_json_text_are_those_of_the_whole_resource() {
        for (t, resource) in [
            (
                ResourceType::Observation,
                json!({"resourceType": "Observation", "status": "final",
                "code": {"text": "x"}, "subject": {"reference": "Patient/p2"},
                "performer": [{"reference": "Patient/p3"}]}),
            ),
            (
                ResourceType::Observation,
                json!({"resourceType": "Observation", "status": "final",
                "code": {"text": "x"}, "subject": {"reference": "Group/g1"}}),
            ),
            (
                ResourceType::Condition,
                json!({"resourceType": "Condition",
                "subject": {"reference": "Patient/p4"}}),
            ),
            (
                ResourceType::Patient,
                json!({"resourceType": "Patient", "id": "p5"}),
            ),
            (
                ResourceType::Organization,
                json!({"resourceType": "Organization", "id": "o1"}),
            ),
        ] {
            let text = resource.to_string();
            assert_eq!(
                patients_in_json(t, &text).unwrap(),
                patients_of(t, &map(resource)),
                "{text}"
            );
        }
        assert_eq!(
            patients_in_json(ResourceType::Observation, "not json"),
            None
        );
        assert_eq!(patients_in_json(ResourceType::Organization, "[1"), None);
        // An escaped key is read all the same.
        let escaped =
            r#"{"resourceType": "Observation", "subj\u0065ct": {"reference": "Patient/p6"}}"#;
        assert_eq!(
            patients_in_json(ResourceType::Observation, escaped).unwrap(),
            ["p6"]
        );
    }

    #[test]
    fn search_values_name_patients() {
        assert_eq!(
            patients_named("p1,Patient/p2"),
            Some(vec!["p1".into(), "p2".into()])
        );
        assert_eq!(patients_named("Group/g1"), None);
        assert_eq!(patients_named(""), None);
    }
}
