//! Prefetch (CDS Hooks 2.0): the templates each service declares, generated from the active
//! model's input spec (the Patient, its Observations by the codes the spec reads, Conditions,
//! treatments, imaging studies and notes where the spec takes them), and the reading of what a
//! CDS client sent for them. A key whose value is `null` means the client has no such data; a
//! key left out, or answered with an OperationOutcome, means the client could not get it, and
//! it has to be read from `fhirServer`. What is sent must be of the key's resource type and
//! about the patient in context.

use serde_json::{Map, Value};

use super::cds::CdsError;
use crate::domain::ResourceType;
use crate::ehr::{Missing, PatientRecord};
use crate::features::InputSpec;
use crate::fhir::compartment::patients_of;

/// Every prefetch key the services may declare, and the resource type it holds.
const KEYS: [(&str, ResourceType); 10] = [
    ("patient", ResourceType::Patient),
    ("observations", ResourceType::Observation),
    ("conditions", ResourceType::Condition),
    ("medicationRequests", ResourceType::MedicationRequest),
    ("medicationStatements", ResourceType::MedicationStatement),
    (
        "medicationAdministrations",
        ResourceType::MedicationAdministration,
    ),
    ("procedures", ResourceType::Procedure),
    ("imagingStudies", ResourceType::ImagingStudy),
    ("documents", ResourceType::DocumentReference),
    ("reports", ResourceType::DiagnosticReport),
];

/// The prefetch keys a model with `spec` needs.
fn needed(spec: &InputSpec) -> Vec<(&'static str, ResourceType)> {
    let treatments = spec
        .clinical
        .as_ref()
        .is_some_and(|c| !c.treatments.is_empty());
    let surgery = spec
        .population
        .as_ref()
        .is_some_and(|p| p.index.surgery.is_some());
    KEYS.iter()
        .copied()
        .filter(|(_, t)| match t {
            ResourceType::Patient | ResourceType::Observation | ResourceType::Condition => true,
            ResourceType::MedicationRequest
            | ResourceType::MedicationStatement
            | ResourceType::MedicationAdministration => treatments,
            ResourceType::Procedure => treatments || surgery,
            ResourceType::ImagingStudy => spec.imaging.is_some(),
            _ => spec.notes.is_some(),
        })
        .collect()
}

/// The prefetch templates for a model with `spec`: key → FHIR query.
pub fn templates(spec: &InputSpec) -> Map<String, Value> {
    needed(spec)
        .into_iter()
        .map(|(key, t)| {
            let query = match t {
                ResourceType::Patient => "Patient/{{context.patientId}}".to_owned(),
                ResourceType::Observation => match spec.observation_codes() {
                    Some(codes) if !codes.is_empty() => format!(
                        "Observation?patient={{{{context.patientId}}}}&code={}",
                        codes.join(",")
                    ),
                    _ => "Observation?patient={{context.patientId}}".to_owned(),
                },
                other => format!("{other}?patient={{{{context.patientId}}}}"),
            };
            (key.to_owned(), Value::String(query))
        })
        .collect()
}

/// What the prefetch gave.
#[derive(Debug)]
pub enum Prefetched {
    /// Nothing was prefetched.
    Nothing,
    /// Every key the model needs: the patient's record.
    Complete(Box<PatientRecord>),
    /// Some keys were left out or failed (named); what was given is not used.
    Partial(Vec<String>),
}

fn invalid(key: &str, message: String) -> CdsError {
    CdsError::Request {
        at: format!("prefetch.{key}"),
        message,
    }
}

/// Reads the prefetch for the patient `patient` of a model with `spec`.
pub fn read(
    prefetch: Option<&Map<String, Value>>,
    spec: &InputSpec,
    patient: &str,
) -> Result<Prefetched, CdsError> {
    let Some(prefetch) = prefetch.filter(|p| !p.is_empty()) else {
        return Ok(Prefetched::Nothing);
    };
    let mut record = PatientRecord::default();
    let mut lacking = Vec::new();
    for (key, t) in needed(spec) {
        let value = match prefetch.get(key) {
            None => {
                lacking.push(format!("{key} (not sent)"));
                continue;
            }
            Some(Value::Null) => continue,
            Some(value) => value,
        };
        let Some(object) = value.as_object() else {
            return Err(invalid(
                key,
                format!("prefetch.{key} must be a resource or null"),
            ));
        };
        match object.get("resourceType").and_then(Value::as_str) {
            Some("OperationOutcome") => {
                lacking.push(format!("{key} (the client could not read it)"));
                continue;
            }
            Some("Patient") if t == ResourceType::Patient => {
                if object.get("id").and_then(Value::as_str) != Some(patient) {
                    return Err(invalid(
                        key,
                        "prefetch.patient is another patient than context.patientId".into(),
                    ));
                }
                record.patient = value.clone();
            }
            Some("Bundle") if t != ResourceType::Patient => {
                let (resources, more) = bundle_resources(key, t, object, patient)?;
                if more {
                    record.incomplete.push(Missing {
                        what: t.to_string(),
                        reason: "the prefetched search has further pages".into(),
                    });
                }
                sort_into(&mut record, t, resources);
            }
            other => {
                let expected = if t == ResourceType::Patient {
                    "a Patient"
                } else {
                    "a Bundle"
                };
                return Err(invalid(
                    key,
                    format!(
                        "prefetch.{key} must be {expected} (or an OperationOutcome, or null), not {}",
                        other.unwrap_or("an object without resourceType")
                    ),
                ));
            }
        }
    }
    if !lacking.is_empty() {
        return Ok(Prefetched::Partial(lacking));
    }
    if record.patient.is_null() {
        // `patient: null`: the client holds no such patient.
        return Ok(Prefetched::Partial(vec!["patient (null)".into()]));
    }
    Ok(Prefetched::Complete(Box::new(record)))
}

/// The matches of a prefetched search Bundle, each checked to be of type `t` and about
/// `patient`; and whether the Bundle has further pages.
fn bundle_resources(
    key: &str,
    t: ResourceType,
    bundle: &Map<String, Value>,
    patient: &str,
) -> Result<(Vec<Value>, bool), CdsError> {
    let mut out = Vec::new();
    let entries = bundle
        .get("entry")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for (i, entry) in entries.iter().enumerate() {
        if entry.pointer("/search/mode").and_then(Value::as_str) == Some("outcome") {
            continue;
        }
        let Some(resource) = entry.get("resource").and_then(Value::as_object) else {
            continue;
        };
        let at = |message: String| CdsError::Request {
            at: format!("prefetch.{key}.entry[{i}]"),
            message,
        };
        let found = resource.get("resourceType").and_then(Value::as_str);
        if found != Some(t.as_str()) {
            return Err(at(format!(
                "prefetch.{key} holds {t} resources, not {}",
                found.unwrap_or("an object without resourceType")
            )));
        }
        if !patients_of(t, resource).iter().any(|p| p == patient) {
            return Err(at(format!(
                "prefetch.{key}.entry[{i}] is not about the patient in context"
            )));
        }
        out.push(Value::Object(resource.clone()));
    }
    let more = bundle
        .get("link")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|l| l["relation"] == "next");
    Ok((out, more))
}

fn sort_into(record: &mut PatientRecord, t: ResourceType, resources: Vec<Value>) {
    let list = match t {
        ResourceType::Observation => &mut record.other_observations,
        ResourceType::Condition => &mut record.conditions,
        ResourceType::DocumentReference => &mut record.documents,
        ResourceType::DiagnosticReport => &mut record.reports,
        ResourceType::ImagingStudy => &mut record.imaging_studies,
        _ => &mut record.treatments,
    };
    list.extend(resources);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec() -> InputSpec {
        let manifest: Value = serde_json::from_str(include_str!(
            "../../models/risk/gbsg2-recurrence/manifest.json"
        ))
        .unwrap();
        serde_json::from_value(manifest["inputs"].clone()).unwrap()
    }

    fn searchset(resources: Vec<Value>) -> Value {
        json!({"resourceType": "Bundle", "type": "searchset",
            "entry": resources.into_iter().map(|r| json!({"resource": r})).collect::<Vec<_>>()})
    }

    fn full(patient: &str) -> Map<String, Value> {
        let subject = json!({"reference": format!("Patient/{patient}")});
        let mut prefetch = Map::new();
        for (key, _) in needed(&spec()) {
            prefetch.insert(key.into(), searchset(vec![]));
        }
        prefetch.insert(
            "patient".into(),
            json!({"resourceType": "Patient", "id": patient}),
        );
        prefetch.insert(
            "observations".into(),
            searchset(vec![
                json!({"resourceType": "Observation", "status": "final",
                "code": {"text": "x"}, "subject": subject}),
            ]),
        );
        prefetch
    }

    #[test]
    fn templates_follow_the_models_inputs() {
        let templates = templates(&spec());
        assert_eq!(templates["patient"], "Patient/{{context.patientId}}");
        assert_eq!(
            templates["observations"],
            "Observation?patient={{context.patientId}}"
        );
        assert_eq!(
            templates["medicationStatements"],
            "MedicationStatement?patient={{context.patientId}}"
        );
        // The default model takes neither imaging nor notes.
        assert!(!templates.contains_key("imagingStudies"));
        assert!(!templates.contains_key("documents"));
        let mut by_code = spec();
        by_code.population = None;
        let observations = super::templates(&by_code)["observations"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(observations.contains("&code=21889-1,"), "{observations}");
    }

    #[test]
    fn a_full_prefetch_is_the_record() {
        let Prefetched::Complete(record) = read(Some(&full("p1")), &spec(), "p1").unwrap() else {
            panic!("complete expected");
        };
        assert_eq!(record.patient["id"], "p1");
        assert_eq!(record.resources().count(), 2);
        assert!(matches!(
            read(None, &spec(), "p1").unwrap(),
            Prefetched::Nothing
        ));
    }

    #[test]
    fn failed_or_missing_keys_are_named_and_null_is_no_data() {
        let mut prefetch = full("p1");
        prefetch.insert("conditions".into(), Value::Null);
        assert!(matches!(
            read(Some(&prefetch), &spec(), "p1").unwrap(),
            Prefetched::Complete(_)
        ));
        prefetch.insert(
            "observations".into(),
            json!({"resourceType": "OperationOutcome", "issue": []}),
        );
        prefetch.remove("procedures");
        let Prefetched::Partial(lacking) = read(Some(&prefetch), &spec(), "p1").unwrap() else {
            panic!("partial expected");
        };
        assert_eq!(lacking.len(), 2, "{lacking:?}");
    }

    #[test]
    fn wrong_types_and_other_patients_are_refused() {
        let mut other_patient = full("p1");
        other_patient.insert(
            "patient".into(),
            json!({"resourceType": "Patient", "id": "p2"}),
        );
        let mut wrong_type = full("p1");
        wrong_type.insert(
            "conditions".into(),
            searchset(vec![
                json!({"resourceType": "Observation", "status": "final",
                "code": {"text": "x"}, "subject": {"reference": "Patient/p1"}}),
            ]),
        );
        let mut not_a_bundle = full("p1");
        not_a_bundle.insert(
            "observations".into(),
            json!({"resourceType": "Observation"}),
        );
        let mut about_another = full("p1");
        about_another.insert(
            "observations".into(),
            searchset(vec![
                json!({"resourceType": "Observation", "status": "final",
                "code": {"text": "x"}, "subject": {"reference": "Patient/p2"}}),
            ]),
        );
        for (what, prefetch) in [
            ("other patient", other_patient),
            ("wrong type", wrong_type),
            ("not a bundle", not_a_bundle),
            ("about another", about_another),
        ] {
            let error = read(Some(&prefetch), &spec(), "p1").unwrap_err();
            assert!(matches!(error, CdsError::Request { .. }), "{what}");
        }
    }
}
