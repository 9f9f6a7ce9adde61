//! The one table of who may do what: every route the service serves, by method and route
//! pattern, with the SMART scopes a token must grant for it and whether a `patient/` grant is
//! enough there. A route missing from the table is refused whatever the token says (deny by
//! default); a test walks the OpenAPI document to prove every documented route has its rule.

use actix_web::http::Method;

use crate::auth::Interaction::{self, Create, Read, Search, Update};
use crate::domain::AuditAction;
use crate::domain::ResourceType::{self, *};

/// What a token must grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// Nothing: served without a token.
    Public,
    /// Nothing, but audited: a step of getting a token (the SMART app's launch and code
    /// exchange), whose refusals must leave a trace.
    Anyone,
    /// The interaction on the resource type the path names (`/fhir/{resource_type}…`).
    PathType(Interaction),
    /// Every one of these.
    All(&'static [(ResourceType, Interaction)]),
    /// A valid token; the handler checks each entry of a batch or transaction Bundle as the
    /// interaction it is.
    EachEntry,
    /// A CDS Hooks client's own signed token (not a SMART access token): a trusted EHR may
    /// have the cards of any of its patients, which reads what [`ASSESSMENT`] reads and files
    /// card feedback.
    CdsClient,
}

/// Whether a grant from a `patient/` scope is enough.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatientScoped {
    /// Yes: the handler confines the request to the token's patient's compartment.
    Confined,
    /// No: this route is for `user/` and `system/` grants only.
    Refused,
}

#[derive(Debug, Clone, Copy)]
pub struct RouteRule {
    pub method: &'static str,
    /// The route pattern as registered (`/fhir/{resource_type}/{id}`).
    pub path: &'static str,
    pub needs: Needs,
    pub patient_scoped: PatientScoped,
    /// How the audit trail names what it does.
    pub audit: AuditAs,
}

/// The audit trail's words for a route: its door, interaction and action.
#[derive(Debug, Clone, Copy)]
pub struct AuditAs {
    pub door: &'static str,
    pub subtype: &'static str,
    pub action: AuditAction,
}

/// What `$risk-assessment` reads of a patient's record (and, with an EHR configured, may pull
/// from it), and the RiskAssessment it files: the caller's token must cover all of it, so that
/// the service's own EHR credential is never lent to a caller who could not read the data.
pub const ASSESSMENT: &[(ResourceType, Interaction)] = &[
    (RiskAssessment, Create),
    (Patient, Read),
    (Condition, Read),
    (Observation, Read),
    (Procedure, Read),
    (MedicationStatement, Read),
    (MedicationRequest, Read),
    (MedicationAdministration, Read),
    (DiagnosticReport, Read),
    (DocumentReference, Read),
    (ImagingStudy, Read),
];

/// What a trusted CDS client is granted: what an assessment reads and files, and the
/// feedback it files on cards.
pub const CDS_CLIENT_GRANTS: &str = "system/RiskAssessment.c system/Patient.r system/Condition.r \
    system/Observation.r system/Procedure.r system/MedicationStatement.r \
    system/MedicationRequest.r system/MedicationAdministration.r system/DiagnosticReport.r \
    system/DocumentReference.r system/ImagingStudy.r system/Basic.c";

/// What an HL7 v2 message may file: ADT patients and encounters, ORU results, ORM/OMI orders.
pub const HL7_FILING: &[(ResourceType, Interaction)] = &[
    (Patient, Create),
    (Patient, Update),
    (Encounter, Create),
    (Encounter, Update),
    (Observation, Create),
    (DiagnosticReport, Create),
    (ServiceRequest, Create),
    (ServiceRequest, Update),
];

const fn rule(
    method: &'static str,
    path: &'static str,
    needs: Needs,
    patient_scoped: PatientScoped,
    audit: (&'static str, &'static str, AuditAction),
) -> RouteRule {
    RouteRule {
        method,
        path,
        needs,
        patient_scoped,
        audit: AuditAs {
            door: audit.0,
            subtype: audit.1,
            action: audit.2,
        },
    }
}

const fn public(path: &'static str) -> RouteRule {
    rule(
        "GET",
        path,
        Needs::Public,
        PatientScoped::Refused,
        ("rest", "capabilities", AuditAction::Read),
    )
}

const fn rest(
    subtype: &'static str,
    action: AuditAction,
) -> (&'static str, &'static str, AuditAction) {
    ("rest", subtype, action)
}

use Needs::{All, CdsClient, EachEntry, PathType};
use PatientScoped::{Confined, Refused};

/// Every route, and what it needs.
pub const RULES: &[RouteRule] = &[
    public("/healthz"),
    public("/readyz"),
    public("/fhir/metadata"),
    public("/.well-known/smart-configuration"),
    public("/openapi.json"),
    public("/docs"),
    public("/docs/{_:.*}"),
    public("/model-card"),
    public("/cds-services"),
    public("/app"),
    public("/app/"),
    public("/app/{file}"),
    rule(
        "GET",
        "/app/launch",
        Needs::Anyone,
        Refused,
        ("smart-app", "app-launch", AuditAction::Execute),
    ),
    rule(
        "POST",
        "/app/token",
        Needs::Anyone,
        Refused,
        ("smart-app", "app-token", AuditAction::Execute),
    ),
    rule(
        "GET",
        "/app/api/explanations/{report}",
        All(&[(DiagnosticReport, Read), (RiskAssessment, Read)]),
        Confined,
        ("smart-app", "explanation", AuditAction::Read),
    ),
    rule(
        "POST",
        "/cds-services/{id}",
        CdsClient,
        Refused,
        ("cds-hooks", "cds-service", AuditAction::Execute),
    ),
    rule(
        "POST",
        "/cds-services/{id}/feedback",
        CdsClient,
        Refused,
        ("cds-hooks", "cds-feedback", AuditAction::Create),
    ),
    rule(
        "GET",
        "/metrics",
        // Counts and timings, never a patient; for the people who run and govern the models.
        All(&[(Device, Read), (Provenance, Read)]),
        Refused,
        rest("metrics", AuditAction::Read),
    ),
    rule(
        "GET",
        "/monitoring/performance",
        // Governance reads the assessments and outcomes it pairs, as figures only.
        All(&[(Device, Read), (Provenance, Read), (RiskAssessment, Read)]),
        Refused,
        rest("monitoring", AuditAction::Read),
    ),
    rule(
        "POST",
        "/monitoring/$evaluate",
        All(&[
            (Device, Read),
            (Provenance, Read),
            (RiskAssessment, Read),
            (DetectedIssue, Create),
        ]),
        Refused,
        rest("monitoring-evaluate", AuditAction::Execute),
    ),
    rule(
        "GET",
        "/monitoring",
        // The page: everything below at once (figures only, never a patient).
        All(&[
            (Device, Read),
            (Provenance, Read),
            (RiskAssessment, Read),
            (Basic, Read),
        ]),
        Refused,
        rest("monitoring", AuditAction::Read),
    ),
    rule(
        "GET",
        "/monitoring/drift",
        All(&[(Device, Read), (Provenance, Read), (RiskAssessment, Read)]),
        Refused,
        rest("monitoring", AuditAction::Read),
    ),
    rule(
        "GET",
        "/monitoring/inputs",
        All(&[(Device, Read), (Provenance, Read), (RiskAssessment, Read)]),
        Refused,
        rest("monitoring", AuditAction::Read),
    ),
    rule(
        "GET",
        "/monitoring/actions",
        // Counts of the feedback and review records (Basic), by model.
        All(&[(Device, Read), (Provenance, Read), (Basic, Read)]),
        Refused,
        rest("monitoring", AuditAction::Read),
    ),
    rule(
        "GET",
        "/models",
        // The models and who changed them last: what their Devices and Provenance say.
        All(&[(Device, Read), (Provenance, Read)]),
        Refused,
        rest("models", AuditAction::Read),
    ),
    rule(
        "GET",
        "/models/shadow-predictions/{report}",
        // What shadow models said of patients' records: governance reads it as it reads
        // the filed risk assessments, for user/ and system/ grants only.
        All(&[(Device, Read), (Provenance, Read), (RiskAssessment, Read)]),
        Refused,
        rest("shadow-predictions", AuditAction::Read),
    ),
    rule(
        "POST",
        "/models/{model}/$deploy",
        All(&[(Device, Update), (Provenance, Create)]),
        Refused,
        rest("model-deploy", AuditAction::Update),
    ),
    rule(
        "GET",
        "/fhir/{resource_type}",
        PathType(Search),
        Confined,
        rest("search-type", AuditAction::Execute),
    ),
    rule(
        "POST",
        "/fhir/{resource_type}",
        PathType(Create),
        Confined,
        rest("create", AuditAction::Create),
    ),
    rule(
        "GET",
        "/fhir/{resource_type}/{id}",
        PathType(Read),
        Confined,
        rest("read", AuditAction::Read),
    ),
    rule(
        "PUT",
        "/fhir/{resource_type}/{id}",
        PathType(Update),
        Confined,
        rest("update", AuditAction::Update),
    ),
    rule(
        "DELETE",
        "/fhir/{resource_type}/{id}",
        PathType(Interaction::Delete),
        Confined,
        rest("delete", AuditAction::Delete),
    ),
    rule(
        "GET",
        "/fhir/{resource_type}/{id}/_history",
        PathType(Read),
        Confined,
        rest("history-instance", AuditAction::Read),
    ),
    rule(
        "GET",
        "/fhir/{resource_type}/{id}/_history/{version_id}",
        PathType(Read),
        Confined,
        rest("vread", AuditAction::Read),
    ),
    rule(
        "POST",
        "/fhir",
        EachEntry,
        Refused,
        rest("batch", AuditAction::Execute),
    ),
    rule(
        "POST",
        "/fhir/Patient/{id}/$risk-assessment",
        All(ASSESSMENT),
        Confined,
        rest("risk-assessment", AuditAction::Execute),
    ),
    rule(
        "POST",
        "/fhir/Patient/$risk-assessment",
        All(ASSESSMENT),
        Confined,
        rest("risk-assessment", AuditAction::Execute),
    ),
    rule(
        "POST",
        "/fhir/DiagnosticReport/{id}/$sign-off",
        All(&[(DiagnosticReport, Read), (DiagnosticReport, Update)]),
        Confined,
        rest("sign-off", AuditAction::Update),
    ),
    rule(
        "GET",
        "/fhir/$risk-assessment-status/{job}",
        All(&[(RiskAssessment, Read)]),
        Refused,
        rest("risk-assessment-status", AuditAction::Read),
    ),
    rule(
        "POST",
        "/dicomweb/studies",
        All(&[(ImagingStudy, Create)]),
        Refused,
        ("dicomweb", "stow-rs", AuditAction::Create),
    ),
    rule(
        "POST",
        "/dicomweb/studies/{study}",
        All(&[(ImagingStudy, Create)]),
        Refused,
        ("dicomweb", "stow-rs", AuditAction::Create),
    ),
    rule(
        "GET",
        "/dicomweb/studies",
        All(&[(ImagingStudy, Search)]),
        Refused,
        ("dicomweb", "qido-rs", AuditAction::Execute),
    ),
    rule(
        "POST",
        "/embeddings/image",
        All(&[(ImagingStudy, Read)]),
        Refused,
        rest("embed-image", AuditAction::Execute),
    ),
    rule(
        "GET",
        "/embeddings/studies/{study}",
        All(&[(ImagingStudy, Read)]),
        Refused,
        rest("study-embeddings", AuditAction::Read),
    ),
    rule(
        "POST",
        "/hl7/v2",
        All(HL7_FILING),
        Refused,
        ("hl7v2", "hl7v2", AuditAction::Create),
    ),
];

/// The rule for a request, by its method and the pattern of the route it matched. `HEAD` is
/// served as `GET`.
pub fn rule_for(method: &Method, pattern: &str) -> Option<&'static RouteRule> {
    let method = if method == Method::HEAD {
        "GET"
    } else {
        method.as_str()
    };
    RULES
        .iter()
        .find(|r| r.method == method && r.path == pattern)
}

/// The scopes a route needs, in SMART v2 form for the OpenAPI document and the README
/// (`system/` shown; `user/`, and `patient/` where it is confined, grant the same).
pub fn scopes_named(rule: &RouteRule) -> Vec<String> {
    let letter = |i: Interaction| match i {
        Create => 'c',
        Read => 'r',
        Update => 'u',
        Interaction::Delete => 'd',
        Search => 's',
    };
    match rule.needs {
        Needs::Public | Needs::Anyone | Needs::EachEntry | Needs::CdsClient => Vec::new(),
        Needs::PathType(i) => vec![format!("system/{{resource_type}}.{}", letter(i))],
        Needs::All(needs) => {
            let mut out: Vec<(ResourceType, String)> = Vec::new();
            for (t, i) in needs {
                match out.iter_mut().find(|(seen, _)| seen == t) {
                    Some((_, letters)) => letters.push(letter(*i)),
                    None => out.push((*t, letter(*i).to_string())),
                }
            }
            out.into_iter()
                .map(|(t, mut letters)| {
                    let mut sorted: Vec<char> = letters.drain(..).collect();
                    sorted.sort_by_key(|c| "cruds".find(*c));
                    format!("system/{t}.{}", sorted.into_iter().collect::<String>())
                })
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_route_has_one_rule() {
        for (i, a) in RULES.iter().enumerate() {
            for b in &RULES[i + 1..] {
                assert!(
                    !(a.method == b.method && a.path == b.path),
                    "{} {} twice",
                    a.method,
                    a.path
                );
            }
        }
    }

    #[test]
    fn every_rule_audits_through_a_known_door() {
        for rule in RULES {
            assert!(
                crate::domain::audit::DOORS.contains(&rule.audit.door),
                "{} {}: door {} is not in DOORS, so its records could not be read back",
                rule.method,
                rule.path,
                rule.audit.door
            );
        }
    }

    #[test]
    fn unknown_routes_have_no_rule_and_head_is_get() {
        assert!(rule_for(&Method::GET, "/fhir/{resource_type}/{id}/$everything").is_none());
        assert!(rule_for(&Method::PATCH, "/fhir/{resource_type}/{id}").is_none());
        assert!(rule_for(&Method::HEAD, "/healthz").is_some());
    }

    #[test]
    fn scopes_are_named_in_smart_v2_form() {
        let hl7 = rule_for(&Method::POST, "/hl7/v2").unwrap();
        assert_eq!(
            scopes_named(hl7),
            [
                "system/Patient.cu",
                "system/Encounter.cu",
                "system/Observation.c",
                "system/DiagnosticReport.c",
                "system/ServiceRequest.cu"
            ]
        );
        let search = rule_for(&Method::GET, "/fhir/{resource_type}").unwrap();
        assert_eq!(scopes_named(search), ["system/{resource_type}.s"]);
    }
}
