//! The Patient compartment as this server tells it: a Patient is in its own compartment, and a
//! resource of another type is in the compartment of each patient its `patient` search
//! parameter references. A type without that parameter belongs to no patient's compartment.
//! Used to confine `patient/` access and to name the patients an audit record is about.

use serde_json::{Map, Value};

use super::search_params::{index_entries, search_params_for};
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
    fn search_values_name_patients() {
        assert_eq!(
            patients_named("p1,Patient/p2"),
            Some(vec!["p1".into(), "p2".into()])
        );
        assert_eq!(patients_named("Group/g1"), None);
        assert_eq!(patients_named(""), None);
    }
}
