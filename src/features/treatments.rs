//! Treatments on record: MedicationRequest, MedicationStatement, MedicationAdministration and
//! Procedure, read into what a model needs to know: which codes, whether the record says the
//! treatment was given or explicitly not given, and when. Records that state neither (a draft
//! order, a planned procedure, an unknown status) are not facts and are skipped.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::context::instant;
use crate::fhir::json::codes_of;

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Treatment {
    /// `MedicationRequest/{id}`, `Procedure/{id}` …
    pub source: String,
    /// The medication's codes (RxNorm, SNOMED CT) or the procedure's.
    pub codes: Vec<String>,
    /// true: given (ordered, taken, administered, performed); false: the record says it was not.
    pub given: bool,
    pub date: Option<DateTime<Utc>>,
}

/// The treatment a resource records; Ok(None) for a resource type that records none; Err with
/// the reason for one that cannot be used.
pub fn read_treatment(source: &str, resource: &Value) -> Result<Option<Treatment>, String> {
    let status = resource.get("status").and_then(Value::as_str).unwrap_or("");
    let (given, codes, date) = match resource.get("resourceType").and_then(Value::as_str) {
        Some("MedicationRequest") => {
            let given = match status {
                _ if resource["doNotPerform"] == Value::Bool(true) => false,
                "active" | "completed" | "on-hold" | "stopped" => true,
                other => return Err(format!("an order with status `{other}`")),
            };
            (
                given,
                medication_codes(resource)?,
                instant(resource.get("authoredOn")),
            )
        }
        Some("MedicationStatement") => {
            let given = match status {
                "not-taken" => false,
                "active" | "completed" | "on-hold" | "stopped" => true,
                other => return Err(format!("a statement with status `{other}`")),
            };
            let date =
                effective(resource, "effective").or_else(|| instant(resource.get("dateAsserted")));
            (given, medication_codes(resource)?, date)
        }
        Some("MedicationAdministration") => {
            let given = match status {
                "not-done" => false,
                "completed" | "in-progress" | "on-hold" | "stopped" => true,
                other => return Err(format!("an administration with status `{other}`")),
            };
            (
                given,
                medication_codes(resource)?,
                effective(resource, "effective"),
            )
        }
        Some("Procedure") => {
            let given = match status {
                "not-done" => false,
                "completed" | "in-progress" | "on-hold" | "stopped" => true,
                other => return Err(format!("a procedure with status `{other}`")),
            };
            let codes = codes_of(&resource["code"]);
            if codes.is_empty() {
                return Err("a procedure without a code".into());
            }
            (given, codes, effective(resource, "performed"))
        }
        _ => return Ok(None),
    };
    Ok(Some(Treatment {
        source: source.to_owned(),
        codes,
        given,
        date,
    }))
}

/// `{prefix}DateTime`, else the start of `{prefix}Period`.
fn effective(resource: &Value, prefix: &str) -> Option<DateTime<Utc>> {
    instant(resource.get(format!("{prefix}DateTime").as_str()))
        .or_else(|| instant(resource.pointer(&format!("/{prefix}Period/start"))))
}

/// `medicationCodeableConcept`'s codes, or those of the contained Medication that
/// `medicationReference` points to.
fn medication_codes(resource: &Value) -> Result<Vec<String>, String> {
    if let Some(concept) = resource.get("medicationCodeableConcept") {
        let codes = codes_of(concept);
        return if codes.is_empty() {
            Err("a medication without a code".into())
        } else {
            Ok(codes)
        };
    }
    let Some(reference) = resource
        .pointer("/medicationReference/reference")
        .and_then(Value::as_str)
    else {
        return Err("no medication named".into());
    };
    let Some(local) = reference.strip_prefix('#') else {
        return Err(format!(
            "the medication is a separate resource ({reference})"
        ));
    };
    resource
        .get("contained")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|c| c["resourceType"] == "Medication" && c["id"] == local)
        .map(|m| codes_of(&m["code"]))
        .filter(|codes| !codes.is_empty())
        .ok_or_else(|| format!("the contained medication {reference} has no code"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn read(resource: Value) -> Result<Option<Treatment>, String> {
        read_treatment("X/1", &resource)
    }

    #[test]
    fn each_record_type_says_given_or_not_given() {
        let tamoxifen = json!({"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "10324"}]});
        let request = read(
            json!({"resourceType": "MedicationRequest", "status": "active",
            "medicationCodeableConcept": tamoxifen, "authoredOn": "2024-02-01"}),
        )
        .unwrap()
        .unwrap();
        assert!(request.given);
        assert_eq!(request.codes, ["10324"]);
        assert!(request.date.is_some());
        let refused = read(
            json!({"resourceType": "MedicationRequest", "status": "active",
            "doNotPerform": true, "medicationCodeableConcept": tamoxifen}),
        )
        .unwrap()
        .unwrap();
        assert!(!refused.given);
        let not_taken = read(
            json!({"resourceType": "MedicationStatement", "status": "not-taken",
            "medicationCodeableConcept": tamoxifen, "effectivePeriod": {"start": "2024-01-01"}}),
        )
        .unwrap()
        .unwrap();
        assert!(!not_taken.given && not_taken.date.is_some());
        let contained = read(
            json!({"resourceType": "MedicationAdministration", "status": "completed",
            "contained": [{"resourceType": "Medication", "id": "m", "code": tamoxifen}],
            "medicationReference": {"reference": "#m"}, "effectiveDateTime": "2024-03-01"}),
        )
        .unwrap()
        .unwrap();
        assert!(contained.given);
        assert_eq!(contained.codes, ["10324"]);
        let procedure = read(json!({"resourceType": "Procedure", "status": "not-done",
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "169413002"}]}}))
        .unwrap()
        .unwrap();
        assert!(!procedure.given);
        assert_eq!(read(json!({"resourceType": "Observation"})), Ok(None));
    }

    #[test]
    fn records_that_state_nothing_are_refused_with_the_reason() {
        let cases = [
            (
                json!({"resourceType": "MedicationRequest", "status": "draft",
                "medicationCodeableConcept": {"coding": [{"code": "10324"}]}}),
                "status `draft`",
            ),
            (
                json!({"resourceType": "Procedure", "status": "preparation",
                "code": {"coding": [{"code": "169413002"}]}}),
                "status `preparation`",
            ),
            (
                json!({"resourceType": "MedicationStatement", "status": "active",
                "medicationReference": {"reference": "Medication/7"}}),
                "separate resource",
            ),
            (
                json!({"resourceType": "MedicationStatement", "status": "active"}),
                "no medication",
            ),
            (
                json!({"resourceType": "Procedure", "status": "completed"}),
                "without a code",
            ),
        ];
        for (resource, expected) in cases {
            let error = read(resource.clone()).unwrap_err();
            assert!(error.contains(expected), "{resource}: {error}");
        }
    }
}
