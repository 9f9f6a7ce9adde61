//! A clinician's review of an assessment (the human in the loop): *signing* makes the
//! preliminary DiagnosticReport `final` with the clinician as its results interpreter, attested
//! by a Provenance; *disagreeing* leaves it preliminary. Either way the decision is filed as a
//! `Basic` review record (coded by decision, with the reason and comment), so that reviews are
//! searchable by patient, author, date and decision, and countable for monitoring.

use serde_json::{Map, Value, json};

use super::risk::CODE_SYSTEM;

/// Base of the review record's extensions.
pub const REVIEW_EXTENSION: &str =
    "https://prognostics.example.org/fhir/StructureDefinition/clinician-review";
const PARTICIPANT_TYPE: &str = "http://terminology.hl7.org/CodeSystem/provenance-participant-type";
const DOCUMENT_COMPLETION: &str = "http://terminology.hl7.org/CodeSystem/v3-DocumentCompletion";

/// Why a clinician disagrees: codes of the service's CodeSystem, shared with the CDS card's
/// override reasons so that both kinds of "no" are counted in one vocabulary.
pub const DISAGREE_REASONS: &[(&str, &str)] = &[
    (
        "override-not-applicable",
        "The model does not apply to this patient",
    ),
    (
        "override-inputs-wrong",
        "The inputs the model used are wrong or out of date",
    ),
    (
        "override-information-missing",
        "Relevant information the model does not take",
    ),
    (
        "override-clinical-judgement",
        "Clinical judgement differs from the estimate",
    ),
];

/// What the clinician decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Sign,
    /// `reason`: a code of [`DISAGREE_REASONS`].
    Disagree {
        reason: String,
        comment: Option<String>,
    },
}

impl Decision {
    /// The review record's code.
    pub fn code(&self) -> &'static str {
        match self {
            Decision::Sign => "assessment-signed",
            Decision::Disagree { .. } => "assessment-disagreed",
        }
    }

    fn display(&self) -> &'static str {
        match self {
            Decision::Sign => "A clinician signed the assessment",
            Decision::Disagree { .. } => "A clinician disagreed with the assessment",
        }
    }

    /// `signed` or `disagreed`, as the operation's output names it.
    pub fn word(&self) -> &'static str {
        match self {
            Decision::Sign => "signed",
            Decision::Disagree { .. } => "disagreed",
        }
    }
}

/// The display of a disagreement reason, or None for a code that is not one.
pub fn disagree_reason(code: &str) -> Option<&'static str> {
    DISAGREE_REASONS
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, display)| *display)
}

/// Who reviewed which assessment, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Review<'a> {
    /// The DiagnosticReport's id.
    pub report: &'a str,
    /// The RiskAssessment filed with it, when there is one.
    pub risk_assessment: Option<&'a str>,
    pub patient: &'a str,
    /// The clinician: a Practitioner or PractitionerRole reference (`fhirUser`).
    pub clinician: &'a str,
    /// The model that made the assessment (`name|version`).
    pub model: Option<&'a str>,
    /// RFC 3339.
    pub at: &'a str,
}

/// The report, signed: `final`, with the clinician as its results interpreter. Everything
/// else, the AI label included, stays as the model filed it.
pub fn signed_report(mut report: Map<String, Value>, clinician: &str) -> Map<String, Value> {
    report.insert("status".into(), json!("final"));
    report.insert(
        "resultsInterpreter".into(),
        json!([{ "reference": clinician }]),
    );
    if let Some(Value::Object(meta)) = report.get_mut("meta") {
        meta.remove("versionId");
        meta.remove("lastUpdated");
    }
    report
}

/// The Provenance of a signature: the clinician as the attesting agent of the signed version,
/// made from the preliminary one.
pub fn attestation(
    id: &str,
    review: &Review<'_>,
    signed_version: &str,
    preliminary_version: &str,
) -> Value {
    json!({
        "resourceType": "Provenance",
        "id": id,
        "target": [{"reference": format!("DiagnosticReport/{}/_history/{signed_version}", review.report)}],
        "recorded": review.at,
        "activity": {"coding": [{"system": DOCUMENT_COMPLETION, "code": "LA", "display": "legally authenticated"}]},
        "agent": [{
            "type": {"coding": [{"system": PARTICIPANT_TYPE, "code": "attester", "display": "Attester"}]},
            "who": {"reference": review.clinician},
        }],
        "entity": [{
            "role": "revision",
            "what": {"reference": format!("DiagnosticReport/{}/_history/{preliminary_version}", review.report)},
        }],
    })
}

/// The review record: a `Basic` coded by the decision, about the patient, by the clinician.
pub fn review_record(id: &str, review: &Review<'_>, decision: &Decision) -> Value {
    let extension = |name: &str, key: &str, value: Value| json!({"url": format!("{REVIEW_EXTENSION}#{name}"), key: value});
    let mut extensions = vec![
        extension(
            "assessment",
            "valueReference",
            json!({"reference": format!("DiagnosticReport/{}", review.report)}),
        ),
        extension("decisionTimestamp", "valueDateTime", json!(review.at)),
    ];
    if let Some(risk) = review.risk_assessment {
        extensions.push(extension(
            "riskAssessment",
            "valueReference",
            json!({"reference": format!("RiskAssessment/{risk}")}),
        ));
    }
    if let Some(model) = review.model {
        extensions.push(extension("model", "valueString", json!(model)));
    }
    if let Decision::Disagree { reason, comment } = decision {
        extensions.push(extension(
            "reason",
            "valueCoding",
            json!({"system": CODE_SYSTEM, "code": reason, "display": disagree_reason(reason).unwrap_or(reason)}),
        ));
        if let Some(comment) = comment {
            extensions.push(extension("comment", "valueString", json!(comment)));
        }
    }
    json!({
        "resourceType": "Basic",
        "id": id,
        "code": {"coding": [{"system": CODE_SYSTEM, "code": decision.code(), "display": decision.display()}]},
        "subject": {"reference": format!("Patient/{}", review.patient)},
        // Basic.created is a date; the moment is in the decisionTimestamp extension.
        "created": review.at.get(..10).unwrap_or(review.at),
        "author": {"reference": review.clinician},
        "extension": extensions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn review() -> Review<'static> {
        Review {
            report: "risk-abc",
            risk_assessment: Some("risk-abc"),
            patient: "p1",
            clinician: "Practitioner/onc-1",
            model: Some("gbsg2-recurrence|1.0.0"),
            at: "2026-12-06T10:00:00Z",
        }
    }

    #[test]
    fn signing_makes_the_report_final_with_the_clinician_and_keeps_the_rest() {
        let filed = json!({
            "resourceType": "DiagnosticReport", "id": "risk-abc", "status": "preliminary",
            "meta": {"versionId": "1", "lastUpdated": "x", "security": [{"code": "AIAST"}]},
            "conclusion": "c",
        });
        let Value::Object(filed) = filed else {
            unreachable!()
        };
        let signed = signed_report(filed, "Practitioner/onc-1");
        assert_eq!(signed["status"], "final");
        assert_eq!(
            signed["resultsInterpreter"][0]["reference"],
            "Practitioner/onc-1"
        );
        assert_eq!(signed["meta"]["security"][0]["code"], "AIAST");
        assert!(signed["meta"].get("versionId").is_none());
        assert_eq!(signed["conclusion"], "c");
    }

    #[test]
    fn the_attestation_names_the_clinician_and_both_versions() {
        let p = attestation("sign-abc", &review(), "2", "1");
        assert_eq!(
            p["target"][0]["reference"],
            "DiagnosticReport/risk-abc/_history/2"
        );
        assert_eq!(p["agent"][0]["type"]["coding"][0]["code"], "attester");
        assert_eq!(p["agent"][0]["who"]["reference"], "Practitioner/onc-1");
        assert_eq!(
            p["entity"][0]["what"]["reference"],
            "DiagnosticReport/risk-abc/_history/1"
        );
    }

    #[test]
    fn a_disagreement_carries_its_coded_reason_and_comment() {
        let decision = Decision::Disagree {
            reason: "override-inputs-wrong".into(),
            comment: Some("grade is 2 since the revised pathology".into()),
        };
        let basic = review_record("review-1", &review(), &decision);
        assert_eq!(basic["code"]["coding"][0]["code"], "assessment-disagreed");
        assert_eq!(basic["created"], "2026-12-06");
        let extensions = basic["extension"].as_array().unwrap();
        let reason = extensions
            .iter()
            .find(|e| e["url"].as_str().unwrap().ends_with("#reason"))
            .unwrap();
        assert_eq!(reason["valueCoding"]["code"], "override-inputs-wrong");
        assert_eq!(
            reason["valueCoding"]["display"],
            "The inputs the model used are wrong or out of date"
        );
        assert!(
            extensions
                .iter()
                .any(|e| e["valueString"] == "grade is 2 since the revised pathology")
        );
        let signed = review_record("review-2", &review(), &Decision::Sign);
        assert_eq!(signed["code"]["coding"][0]["code"], "assessment-signed");
        assert!(
            !signed["extension"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["url"].as_str().unwrap().ends_with("#reason"))
        );
    }
}
