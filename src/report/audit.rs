//! AuditEvents the service files about its own operations (FHIR R4, DICOM-derived audit
//! vocabularies): who or what acted, on which patient, and the outcome.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::domain::ResourceId;

const AUDIT_EVENT_TYPE: &str = "http://terminology.hl7.org/CodeSystem/audit-event-type";
const RESTFUL_INTERACTION: &str = "http://hl7.org/fhir/restful-interaction";
const SOURCE_TYPE: &str = "http://terminology.hl7.org/CodeSystem/security-source-type";
const ENTITY_TYPE: &str = "http://terminology.hl7.org/CodeSystem/audit-entity-type";
const OBJECT_ROLE: &str = "http://terminology.hl7.org/CodeSystem/object-role";

/// An operation (`$name`) on a patient that the service refused for a business reason:
/// outcome 4 (minor failure), the reason in `outcomeDesc`, the model's Device as the agent.
pub fn refused_operation_audit(
    operation: &str,
    patient: &ResourceId,
    device: &ResourceId,
    why: &str,
    recorded: DateTime<Utc>,
) -> Value {
    let device = json!({"reference": format!("Device/{device}")});
    json!({
        "resourceType": "AuditEvent",
        "type": {"system": AUDIT_EVENT_TYPE, "code": "rest", "display": "RESTful Operation"},
        "subtype": [
            {"system": RESTFUL_INTERACTION, "code": "operation", "display": "operation"},
            {"system": "urn:prognostics:operation", "code": operation}
        ],
        "action": "E",
        "recorded": recorded.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "outcome": "4",
        "outcomeDesc": why,
        "agent": [{"who": device, "requestor": false}],
        "source": {
            "observer": device,
            "type": [{"system": SOURCE_TYPE, "code": "4", "display": "Application Server"}]
        },
        "entity": [{
            "what": {"reference": format!("Patient/{patient}")},
            "type": {"system": ENTITY_TYPE, "code": "1", "display": "Person"},
            "role": {"system": OBJECT_ROLE, "code": "1", "display": "Patient"}
        }]
    })
}
