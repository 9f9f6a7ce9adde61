//! The search parameters this server supports, per resource type, with the R4 expressions
//! they implement, and the index entries they produce from a resource. This table is the single
//! source for the search implementation and for the CapabilityStatement.

use serde_json::{Map, Value};

use super::date::parse_date_range;
use super::reference::parse_local_reference;
use crate::domain::ResourceType;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SearchParamKind {
    Token,
    Reference,
    Date,
}

impl SearchParamKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SearchParamKind::Token => "token",
            SearchParamKind::Reference => "reference",
            SearchParamKind::Date => "date",
        }
    }
}

/// One search parameter of one resource type.
#[derive(Debug)]
pub struct SearchParamDef {
    pub name: &'static str,
    pub kind: SearchParamKind,
    /// Element names (top-level, choice types spelled out) whose values are indexed.
    pub elements: &'static [&'static str],
    /// For reference parameters that only match one target type (`patient`).
    pub target: Option<ResourceType>,
    /// The R4 FHIRPath expression this implements, for documentation.
    pub expression: &'static str,
    /// Canonical URL of the R4 SearchParameter this implements.
    pub definition: &'static str,
}

/// A value extracted from a resource for one search parameter. Tokens and references use
/// `system`/`value` (for references: target type and id); dates use the millisecond range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    pub param: &'static str,
    pub system: Option<String>,
    pub value: Option<String>,
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
}

macro_rules! param {
    ($name:literal, $kind:ident, [$($el:literal),+], $target:expr, $expr:expr, $def:expr) => {
        SearchParamDef {
            name: $name,
            kind: SearchParamKind::$kind,
            elements: &[$($el),+],
            target: $target,
            expression: $expr,
            definition: $def,
        }
    };
}

mod administrative;
mod care;
mod clinical;

/// The type-specific search parameters of `resource_type`, sorted by name.
pub fn search_params_for(resource_type: ResourceType) -> &'static [SearchParamDef] {
    clinical::params(resource_type)
        .or_else(|| care::params(resource_type))
        .or_else(|| administrative::params(resource_type))
        .unwrap_or(&[])
}

/// Every index entry `resource` produces for the search parameters of its type.
pub fn index_entries(
    resource_type: ResourceType,
    resource: &Map<String, Value>,
) -> Vec<IndexEntry> {
    let mut entries = Vec::new();
    for def in search_params_for(resource_type) {
        push_entries(def, resource, &mut entries);
    }
    entries.sort_by(|a, b| {
        (a.param, &a.system, &a.value, a.start_ms).cmp(&(b.param, &b.system, &b.value, b.start_ms))
    });
    entries.dedup();
    entries
}

/// The index entries of one search parameter of `resource` (those [`index_entries`] gives
/// for it, unsorted): for a caller that needs one parameter, without the cost of all.
pub fn param_entries(def: &SearchParamDef, resource: &Map<String, Value>) -> Vec<IndexEntry> {
    let mut entries = Vec::new();
    push_entries(def, resource, &mut entries);
    entries
}

fn push_entries(def: &SearchParamDef, resource: &Map<String, Value>, out: &mut Vec<IndexEntry>) {
    for element in def.elements {
        for value in values_at(resource, element) {
            match def.kind {
                SearchParamKind::Token => push_tokens(def.name, value, out),
                SearchParamKind::Reference => push_reference(def, value, out),
                SearchParamKind::Date => push_date(def.name, value, out),
            }
        }
    }
}

/// Follows a dotted element path through objects and arrays.
fn values_at<'a>(resource: &'a Map<String, Value>, path: &str) -> Vec<&'a Value> {
    let mut current: Vec<&Value> = Vec::new();
    let mut parts = path.split('.');
    let Some(first) = parts.next() else {
        return current;
    };
    if let Some(v) = resource.get(first) {
        flatten_into(v, &mut current);
    }
    for part in parts {
        let mut next = Vec::new();
        for v in current {
            if let Some(child) = v.get(part) {
                flatten_into(child, &mut next);
            }
        }
        current = next;
    }
    current
}

fn flatten_into<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
    match v {
        Value::Array(items) => out.extend(items.iter()),
        other => out.push(other),
    }
}

fn push_tokens(param: &'static str, value: &Value, out: &mut Vec<IndexEntry>) {
    let token = |system: Option<&Value>, code: Option<&Value>| IndexEntry {
        param,
        system: system.and_then(Value::as_str).map(str::to_owned),
        value: code.and_then(Value::as_str).map(str::to_owned),
        start_ms: None,
        end_ms: None,
    };
    match value {
        Value::String(_) => out.push(token(None, Some(value))),
        Value::Bool(b) => out.push(token(None, Some(&Value::String(b.to_string())))),
        Value::Object(o) if o.contains_key("coding") => {
            if let Some(Value::Array(codings)) = o.get("coding") {
                for c in codings {
                    if c.get("code").is_some() {
                        out.push(token(c.get("system"), c.get("code")));
                    }
                }
            }
        }
        // Identifier
        Value::Object(o) if o.contains_key("value") => {
            out.push(token(o.get("system"), o.get("value")))
        }
        // Coding
        Value::Object(o) if o.contains_key("code") => {
            out.push(token(o.get("system"), o.get("code")))
        }
        _ => {}
    }
}

fn push_reference(def: &SearchParamDef, value: &Value, out: &mut Vec<IndexEntry>) {
    let Some(target) = value
        .get("reference")
        .and_then(Value::as_str)
        .and_then(parse_local_reference)
    else {
        return;
    };
    if let Some(only) = def.target
        && target.resource_type != only.as_str()
    {
        return;
    }
    out.push(IndexEntry {
        param: def.name,
        system: Some(target.resource_type),
        value: Some(target.id.as_ref().to_owned()),
        start_ms: None,
        end_ms: None,
    });
}

fn push_date(param: &'static str, value: &Value, out: &mut Vec<IndexEntry>) {
    let (start, end) = match value {
        Value::String(s) => match parse_date_range(s) {
            Some(r) => (r.start_ms, r.end_ms),
            None => return,
        },
        // Period: an open end extends to the end of representable time.
        Value::Object(o) => {
            let start = o
                .get("start")
                .and_then(Value::as_str)
                .and_then(parse_date_range);
            let end = o
                .get("end")
                .and_then(Value::as_str)
                .and_then(parse_date_range);
            if start.is_none() && end.is_none() {
                return;
            }
            (
                start.map_or(i64::MIN / 2, |r| r.start_ms),
                end.map_or(i64::MAX / 2, |r| r.end_ms),
            )
        }
        _ => return,
    };
    out.push(IndexEntry {
        param,
        system: None,
        value: None,
        start_ms: Some(start),
        end_ms: Some(end),
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entries(v: Value) -> Vec<IndexEntry> {
        let map = v.as_object().unwrap().clone();
        let t = map["resourceType"].as_str().unwrap().parse().unwrap();
        index_entries(t, &map)
    }

    #[test]
    fn an_observation_is_indexed_by_code_status_subject_patient_and_date() {
        let e = entries(json!({
            "resourceType": "Observation",
            "status": "final",
            "code": {"coding": [
                {"system": "http://loinc.org", "code": "718-7"},
                {"system": "http://snomed.info/sct", "code": "441689006"}
            ]},
            "subject": {"reference": "Patient/p1"},
            "effectiveDateTime": "2024-03-01",
            "identifier": [{"system": "urn:lab", "value": "A1"}]
        }));
        let names: Vec<_> = e.iter().map(|e| e.param).collect();
        assert_eq!(
            names,
            [
                "code",
                "code",
                "date",
                "identifier",
                "patient",
                "status",
                "subject"
            ]
        );
        let patient = e.iter().find(|e| e.param == "patient").unwrap();
        assert_eq!(patient.system.as_deref(), Some("Patient"));
        assert_eq!(patient.value.as_deref(), Some("p1"));
    }

    #[test]
    fn patient_only_matches_references_to_patients() {
        let e = entries(json!({
            "resourceType": "Observation", "status": "final", "code": {"text": "x"},
            "subject": {"reference": "Group/g1"}
        }));
        assert!(e.iter().any(|e| e.param == "subject"));
        assert!(!e.iter().any(|e| e.param == "patient"));
    }

    #[test]
    fn open_periods_extend_without_bound() {
        let e = entries(json!({
            "resourceType": "DiagnosticReport", "status": "final", "code": {"text": "x"},
            "effectivePeriod": {"start": "2020-01-01"}
        }));
        let date = e.iter().find(|e| e.param == "date").unwrap();
        assert!(date.end_ms.unwrap() > 4_000_000_000_000);
    }

    #[test]
    fn provenance_is_found_through_nested_references() {
        let e = entries(json!({
            "resourceType": "AuditEvent",
            "agent": [{"who": {"reference": "Patient/p9"}, "requestor": false}],
            "entity": [{"what": {"reference": "Patient/p9"}}]
        }));
        assert_eq!(e.iter().filter(|e| e.param == "patient").count(), 1);
    }
}
