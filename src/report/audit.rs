//! AuditEvents the service files about what is done through it (FHIR R4, IHE Basic Audit Log
//! Patterns, DICOM audit vocabularies): who or what acted, on which patient, and the outcome.

use serde_json::{Value, json};

use crate::domain::{AuditRecord, ResourceId};

const AUDIT_EVENT_TYPE: &str = "http://terminology.hl7.org/CodeSystem/audit-event-type";
const RESTFUL_INTERACTION: &str = "http://hl7.org/fhir/restful-interaction";
const SOURCE_TYPE: &str = "http://terminology.hl7.org/CodeSystem/security-source-type";
const ENTITY_TYPE: &str = "http://terminology.hl7.org/CodeSystem/audit-entity-type";
const OBJECT_ROLE: &str = "http://terminology.hl7.org/CodeSystem/object-role";

const DCM: &str = "http://dicom.nema.org/resources/ontology/DCM";
const BALP_ENTITY_TYPE: &str = "http://hl7.org/fhir/uv/ihe-balp/CodeSystem/BasicAuditEntityType";
/// The REST interactions that have a code in `restful-interaction`.
const RESTFUL_CODES: [&str; 11] = [
    "read",
    "vread",
    "update",
    "delete",
    "history-instance",
    "create",
    "search-type",
    "batch",
    "transaction",
    "operation",
    "capabilities",
];

/// The AuditEvent (R4) of one audited event, as IHE Basic Audit Log Patterns shapes it: the
/// client (and user) as requesting agents with their network address, the service as source,
/// each patient as a Patient-role entity, the thing acted on, the search query (base64) and the
/// request id (`XrequestId`).
pub fn audit_event(id: &ResourceId, record: &AuditRecord) -> Value {
    let event_type = match record.door {
        "dicom" => {
            json!({"system": DCM, "code": "110104", "display": "DICOM Instances Transferred"})
        }
        "hl7v2" | "ehr" => json!({"system": DCM, "code": "110107", "display": "Import"}),
        _ => json!({"system": AUDIT_EVENT_TYPE, "code": "rest", "display": "RESTful Operation"}),
    };
    let subtype = if RESTFUL_CODES.contains(&record.subtype.as_str()) {
        json!({"system": RESTFUL_INTERACTION, "code": record.subtype})
    } else {
        json!({"system": "urn:prognostics:interaction", "code": record.subtype})
    };
    let agent = &record.agent;
    let mut requestor = json!({
        "type": {"coding": [{"system": DCM, "code": "110153", "display": "Source Role ID"}]},
        "requestor": true
    });
    let who = match (&agent.client_id, &agent.ae_title) {
        (Some(client), _) => Some(json!({"identifier": {"value": client}})),
        (None, Some(ae)) => {
            Some(json!({"identifier": {"system": "urn:dicom:ae-title", "value": ae}}))
        }
        (None, None) => None,
    };
    if let Some(who) = who {
        requestor["who"] = who;
    }
    if let Some(subject) = &agent.subject {
        requestor["altId"] = json!(subject);
    }
    if let Some(address) = &agent.address {
        requestor["network"] = json!({"address": address, "type": "2"});
    }
    let mut agents = vec![requestor];
    if let Some(user) = &agent.user {
        agents.push(json!({
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/extra-security-role-type",
                "code": "humanuser", "display": "human user"}]},
            "who": {"reference": user},
            "requestor": true
        }));
    }
    agents.push(json!({
        "type": {"coding": [{"system": DCM, "code": "110152", "display": "Destination Role ID"}]},
        "who": {"display": "prognostics"},
        "requestor": false
    }));
    let mut entities: Vec<Value> = record
        .patients
        .iter()
        .map(|p| {
            json!({
                "what": {"reference": format!("Patient/{p}")},
                "type": {"system": ENTITY_TYPE, "code": "1", "display": "Person"},
                "role": {"system": OBJECT_ROLE, "code": "1", "display": "Patient"}
            })
        })
        .collect();
    let system_object = json!({"system": ENTITY_TYPE, "code": "2", "display": "System Object"});
    if let Some(entity) = &record.entity {
        let query = &record.query;
        {
            let mut e = json!({"type": system_object});
            if entity.contains('/') {
                e["what"] = json!({"reference": entity});
            } else if entity.starts_with(|c: char| c.is_ascii_digit()) {
                e["what"] = json!({"identifier": {"system": "urn:dicom:uid", "value": format!("urn:oid:{entity}")}});
            } else {
                e["name"] = json!(entity);
            }
            if let Some(query) = query {
                use base64::Engine;
                e["role"] = json!({"system": OBJECT_ROLE, "code": "24", "display": "Query"});
                e["query"] =
                    json!(base64::engine::general_purpose::STANDARD.encode(query.as_bytes()));
            }
            entities.push(e);
        }
    }
    if let Some(request_id) = &record.request_id {
        entities.push(json!({
            "what": {"identifier": {"value": request_id}},
            "type": {"system": BALP_ENTITY_TYPE, "code": "XrequestId"}
        }));
    }
    let mut event = json!({
        "resourceType": "AuditEvent",
        "id": id.as_ref(),
        "type": event_type,
        "subtype": [subtype],
        "action": record.action.code(),
        "recorded": record.recorded.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "outcome": record.outcome.code(),
        "agent": agents,
        "source": {
            "site": record.door,
            "observer": {"display": "prognostics"},
            "type": [{"system": SOURCE_TYPE, "code": "4", "display": "Application Server"}]
        }
    });
    if let Some(text) = &record.outcome_text {
        event["outcomeDesc"] = json!(text);
    }
    if !entities.is_empty() {
        event["entity"] = json!(entities);
    }
    event
}
