//! The CapabilityStatement at `GET /fhir/metadata`, generated from the same tables that drive
//! the implementation (resource types, search parameters), so that it lists exactly what works.

use serde_json::{Value, json};

use crate::domain::{Instant, ResourceType};
use crate::fhir::search_params_for;

/// What the statement says about this deployment.
#[derive(Clone, Debug)]
pub struct CapabilityOptions<'a> {
    pub base_url: &'a str,
    pub software_version: &'a str,
    /// SMART on FHIR: the authorization server's endpoints by name (`authorize`, `token`,
    /// `introspect`, `revoke`); None when no authorization is configured.
    pub oauth: Option<&'a [(&'a str, String)]>,
    /// Whether browsers of some origins may call (CORS).
    pub cors: bool,
}

/// Interactions every stored type supports (R4 `TypeRestfulInteraction`).
const TYPE_INTERACTIONS: &[&str] = &[
    "read",
    "vread",
    "update",
    "delete",
    "history-instance",
    "create",
    "search-type",
];

const COMMON_SEARCH_PARAMS: &[(&str, &str, &str, &str)] = &[
    (
        "_id",
        "token",
        "http://hl7.org/fhir/SearchParameter/Resource-id",
        "Logical id; comma-separated values match any",
    ),
    (
        "_lastUpdated",
        "date",
        "http://hl7.org/fhir/SearchParameter/Resource-lastUpdated",
        "When the resource version was stored; prefixes eq, ne, gt, lt, ge, le, sa, eb",
    ),
];

pub fn capability_statement(options: &CapabilityOptions<'_>) -> Value {
    let resources: Vec<Value> = ResourceType::ALL
        .iter()
        .map(|t| resource_entry(*t))
        .collect();
    let mut statement = json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": Instant::now().to_rfc3339(),
        "publisher": "prognostics",
        "kind": "instance",
        "software": {
            "name": "prognostics",
            "version": options.software_version
        },
        "implementation": {
            "description": "prognostics: multimodal prognostic risk service (FHIR R4)",
            "url": options.base_url
        },
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [{
            "mode": "server",
            "documentation": "Search: parameters are ANDed when repeated and ORed within comma-separated values. \
                Unknown parameters are ignored (and left out of the self link) unless the request \
                carries Prefer: handling=strict. Paging follows the Bundle's next and previous links; \
                _count sets the page size and _sort accepts _id, _lastUpdated and date parameters, \
                '-' for descending.",
            "resource": resources,
            "interaction": [
                {"code": "transaction", "documentation": "All entries succeed or none are written; urn:uuid fullUrls are resolved to the assigned ids"},
                {"code": "batch", "documentation": "Each entry succeeds or fails on its own"}
            ]
        }]
    });
    statement["rest"][0]["security"] = security(options.oauth, options.cors);
    statement
}

/// `rest.security`: SMART on FHIR with the authorization server's endpoints (the OAuth URIs
/// extension), or a plain statement that no authorization is configured.
fn security(oauth: Option<&[(&str, String)]>, cors: bool) -> Value {
    let Some(endpoints) = oauth else {
        return json!({
            "cors": cors,
            "description": "No authorization is configured: the service serves loopback \
                addresses only, unless open access was chosen explicitly."
        });
    };
    let uris: Vec<Value> = endpoints
        .iter()
        .map(|(name, url)| json!({"url": name, "valueUri": url}))
        .collect();
    json!({
        "cors": cors,
        "service": [{
            "coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                "code": "SMART-on-FHIR"
            }],
            "text": "OAuth2 using SMART-on-FHIR profile (see http://docs.smarthealthit.org)"
        }],
        "extension": [{
            "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
            "extension": uris
        }],
        "description": "Every request needs a bearer access token (SMART App Launch 2.x scopes, v1 \
            or v2). patient/ scopes confine reads, searches, writes and operations to the token's \
            patient. See /.well-known/smart-configuration."
    })
}

fn resource_entry(t: ResourceType) -> Value {
    if t == ResourceType::AuditEvent {
        return audit_trail_entry();
    }
    let mut params: Vec<Value> = COMMON_SEARCH_PARAMS
        .iter()
        .map(|(name, kind, definition, doc)| {
            json!({"name": name, "definition": definition, "type": kind, "documentation": doc})
        })
        .collect();
    for def in search_params_for(t) {
        params.push(json!({
            "name": def.name,
            "definition": def.definition,
            "type": def.kind.as_str(),
            "documentation": format!("{} (modifiers: {})", def.expression, modifiers(def.kind)),
        }));
    }
    let mut entry = json!({
        "type": t.as_str(),
        "profile": format!("http://hl7.org/fhir/StructureDefinition/{}", t.as_str()),
        "interaction": TYPE_INTERACTIONS.iter().map(|code| json!({"code": code})).collect::<Vec<_>>(),
        "versioning": "versioned-update",
        "readHistory": true,
        "updateCreate": true,
        "conditionalCreate": true,
        "conditionalRead": "not-supported",
        "conditionalUpdate": false,
        "conditionalDelete": "not-supported",
        "searchParam": params,
    });
    if t == ResourceType::Patient {
        entry["operation"] = json!([{
            "name": "risk-assessment",
            "definition": format!("{}/OperationDefinition/risk-assessment", super::risk::CANONICAL),
            "documentation": "The patient's risk by the active model, filed as a DiagnosticReport, Observations, a RiskAssessment and a Provenance, and returned in a collection Bundle",
        }]);
    }
    if t == ResourceType::DiagnosticReport {
        entry["operation"] = json!([{
            "name": "sign-off",
            "definition": format!("{}/OperationDefinition/sign-off", super::risk::CANONICAL),
            "documentation": "A clinician signs a preliminary risk report (it becomes final, attested by a Provenance) or disagrees with it (a coded reason and a comment)",
        }]);
    }
    entry
}

/// AuditEvent is the service's audit trail: read and searched, never written through the API.
fn audit_trail_entry() -> Value {
    let param = |name: &str, kind: &str, definition: &str, doc: &str| json!({"name": name, "type": kind, "definition": definition, "documentation": doc});
    json!({
        "type": "AuditEvent",
        "profile": "http://hl7.org/fhir/StructureDefinition/AuditEvent",
        "documentation": "The audit trail: one AuditEvent per request, message and association, \
            append-only and hash-chained. Needs the AuditEvent.rs scope.",
        "interaction": [{"code": "read"}, {"code": "search-type"}],
        "versioning": "no-version",
        "readHistory": false,
        "updateCreate": false,
        "conditionalCreate": false,
        "conditionalRead": "not-supported",
        "conditionalUpdate": false,
        "conditionalDelete": "not-supported",
        "searchParam": [
            param("patient", "reference", "http://hl7.org/fhir/SearchParameter/AuditEvent-patient", "A patient the event is about"),
            param("agent", "token", "http://hl7.org/fhir/SearchParameter/AuditEvent-agent", "Who acted: client id, token subject, user (fhirUser), AE title or network address"),
            param("outcome", "token", "http://hl7.org/fhir/SearchParameter/AuditEvent-outcome", "0 success, 4 refused or failed request, 8 service failure"),
            param("date", "date", "http://hl7.org/fhir/SearchParameter/AuditEvent-date", "When it was recorded; prefixes eq, ge, gt, le, lt"),
        ]
    })
}

fn modifiers(kind: crate::fhir::SearchParamKind) -> &'static str {
    match kind {
        crate::fhir::SearchParamKind::Token => ":not, :missing",
        crate::fhir::SearchParamKind::Reference => ":missing, :[type]",
        crate::fhir::SearchParamKind::Date => ":missing",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_statement_is_a_valid_r4_capability_statement() {
        let v = capability_statement(&CapabilityOptions {
            base_url: "http://127.0.0.1:8080/fhir",
            software_version: "0.1.0",
            oauth: None,
            cors: false,
        });
        let parsed: Result<fhir_sdk::r4b::resources::CapabilityStatement, _> =
            serde_json::from_value(v.clone());
        assert!(parsed.is_ok(), "{parsed:?}");
        assert_eq!(v["fhirVersion"], "4.0.1");
        assert_eq!(
            v["rest"][0]["resource"].as_array().unwrap().len(),
            ResourceType::ALL.len()
        );
    }
}
