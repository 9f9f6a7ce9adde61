//! Small readers of FHIR JSON elements that every consumer of resources needs: the
//! `Type/id` reference of a resource and the codes of a CodeableConcept.

use serde_json::Value;

/// `{resourceType}/{id}` of a resource.
pub fn reference(resource: &Value) -> String {
    format!(
        "{}/{}",
        resource["resourceType"].as_str().unwrap_or_default(),
        resource["id"].as_str().unwrap_or_default()
    )
}

/// The codings of a CodeableConcept.
pub fn codings(concept: &Value) -> impl Iterator<Item = &Value> {
    concept
        .get("coding")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// The codes of a CodeableConcept's codings.
pub fn codes_of(concept: &Value) -> Vec<String> {
    codings(concept)
        .filter_map(|c| c.get("code").and_then(Value::as_str))
        .map(str::to_owned)
        .collect()
}
