//! The search parameters of the clinical resource types the service has always stored (the
//! ones its models read and the ones it writes), as R4 defines them.

use super::{SearchParamDef, SearchParamKind};
use crate::domain::ResourceType;

pub(super) const PATIENT: Option<ResourceType> = Some(ResourceType::Patient);

const AUDIT_EVENT: &[SearchParamDef] = &[
    param!(
        "date",
        Date,
        ["recorded"],
        None,
        "AuditEvent.recorded",
        "http://hl7.org/fhir/SearchParameter/AuditEvent-date"
    ),
    param!(
        "patient",
        Reference,
        ["agent.who", "entity.what"],
        PATIENT,
        "AuditEvent.agent.who.where(resolve() is Patient) | AuditEvent.entity.what.where(resolve() is Patient)",
        "http://hl7.org/fhir/SearchParameter/AuditEvent-patient"
    ),
];
const CONDITION: &[SearchParamDef] = &[
    param!(
        "code",
        Token,
        ["code"],
        None,
        "Condition.code",
        "http://hl7.org/fhir/SearchParameter/clinical-code"
    ),
    param!(
        "identifier",
        Token,
        ["identifier"],
        None,
        "Condition.identifier",
        "http://hl7.org/fhir/SearchParameter/clinical-identifier"
    ),
    param!(
        "patient",
        Reference,
        ["subject"],
        PATIENT,
        "Condition.subject.where(resolve() is Patient)",
        "http://hl7.org/fhir/SearchParameter/clinical-patient"
    ),
    param!(
        "subject",
        Reference,
        ["subject"],
        None,
        "Condition.subject",
        "http://hl7.org/fhir/SearchParameter/Condition-subject"
    ),
];
const DEVICE: &[SearchParamDef] = &[
    param!(
        "identifier",
        Token,
        ["identifier"],
        None,
        "Device.identifier",
        "http://hl7.org/fhir/SearchParameter/Device-identifier"
    ),
    param!(
        "patient",
        Reference,
        ["patient"],
        PATIENT,
        "Device.patient",
        "http://hl7.org/fhir/SearchParameter/Device-patient"
    ),
    param!(
        "status",
        Token,
        ["status"],
        None,
        "Device.status",
        "http://hl7.org/fhir/SearchParameter/Device-status"
    ),
];
const DIAGNOSTIC_REPORT: &[SearchParamDef] = &[
    param!(
        "code",
        Token,
        ["code"],
        None,
        "DiagnosticReport.code",
        "http://hl7.org/fhir/SearchParameter/clinical-code"
    ),
    param!(
        "date",
        Date,
        ["effectiveDateTime", "effectivePeriod"],
        None,
        "DiagnosticReport.effective",
        "http://hl7.org/fhir/SearchParameter/clinical-date"
    ),
    param!(
        "identifier",
        Token,
        ["identifier"],
        None,
        "DiagnosticReport.identifier",
        "http://hl7.org/fhir/SearchParameter/clinical-identifier"
    ),
    param!(
        "patient",
        Reference,
        ["subject"],
        PATIENT,
        "DiagnosticReport.subject.where(resolve() is Patient)",
        "http://hl7.org/fhir/SearchParameter/clinical-patient"
    ),
    param!(
        "status",
        Token,
        ["status"],
        None,
        "DiagnosticReport.status",
        "http://hl7.org/fhir/SearchParameter/DiagnosticReport-status"
    ),
    param!(
        "subject",
        Reference,
        ["subject"],
        None,
        "DiagnosticReport.subject",
        "http://hl7.org/fhir/SearchParameter/DiagnosticReport-subject"
    ),
];
const DOCUMENT_REFERENCE: &[SearchParamDef] = &[
    param!(
        "date",
        Date,
        ["date"],
        None,
        "DocumentReference.date",
        "http://hl7.org/fhir/SearchParameter/DocumentReference-date"
    ),
    param!(
        "identifier",
        Token,
        ["masterIdentifier", "identifier"],
        None,
        "DocumentReference.masterIdentifier | DocumentReference.identifier",
        "http://hl7.org/fhir/SearchParameter/clinical-identifier"
    ),
    param!(
        "patient",
        Reference,
        ["subject"],
        PATIENT,
        "DocumentReference.subject.where(resolve() is Patient)",
        "http://hl7.org/fhir/SearchParameter/clinical-patient"
    ),
    param!(
        "status",
        Token,
        ["status"],
        None,
        "DocumentReference.status",
        "http://hl7.org/fhir/SearchParameter/DocumentReference-status"
    ),
    param!(
        "subject",
        Reference,
        ["subject"],
        None,
        "DocumentReference.subject",
        "http://hl7.org/fhir/SearchParameter/DocumentReference-subject"
    ),
];
const IMAGING_STUDY: &[SearchParamDef] = &[
    param!(
        "identifier",
        Token,
        ["identifier"],
        None,
        "ImagingStudy.identifier",
        "http://hl7.org/fhir/SearchParameter/clinical-identifier"
    ),
    param!(
        "patient",
        Reference,
        ["subject"],
        PATIENT,
        "ImagingStudy.subject.where(resolve() is Patient)",
        "http://hl7.org/fhir/SearchParameter/clinical-patient"
    ),
    param!(
        "status",
        Token,
        ["status"],
        None,
        "ImagingStudy.status",
        "http://hl7.org/fhir/SearchParameter/ImagingStudy-status"
    ),
    param!(
        "subject",
        Reference,
        ["subject"],
        None,
        "ImagingStudy.subject",
        "http://hl7.org/fhir/SearchParameter/ImagingStudy-subject"
    ),
];
const OBSERVATION: &[SearchParamDef] = &[
    param!(
        "code",
        Token,
        ["code"],
        None,
        "Observation.code",
        "http://hl7.org/fhir/SearchParameter/clinical-code"
    ),
    param!(
        "date",
        Date,
        ["effectiveDateTime", "effectivePeriod", "effectiveInstant"],
        None,
        "Observation.effective",
        "http://hl7.org/fhir/SearchParameter/clinical-date"
    ),
    param!(
        "identifier",
        Token,
        ["identifier"],
        None,
        "Observation.identifier",
        "http://hl7.org/fhir/SearchParameter/clinical-identifier"
    ),
    param!(
        "patient",
        Reference,
        ["subject"],
        PATIENT,
        "Observation.subject.where(resolve() is Patient)",
        "http://hl7.org/fhir/SearchParameter/clinical-patient"
    ),
    param!(
        "status",
        Token,
        ["status"],
        None,
        "Observation.status",
        "http://hl7.org/fhir/SearchParameter/Observation-status"
    ),
    param!(
        "subject",
        Reference,
        ["subject"],
        None,
        "Observation.subject",
        "http://hl7.org/fhir/SearchParameter/Observation-subject"
    ),
];
const PATIENT_PARAMS: &[SearchParamDef] = &[param!(
    "identifier",
    Token,
    ["identifier"],
    None,
    "Patient.identifier",
    "http://hl7.org/fhir/SearchParameter/Patient-identifier"
)];
const PROVENANCE: &[SearchParamDef] = &[
    param!(
        "patient",
        Reference,
        ["target"],
        PATIENT,
        "Provenance.target.where(resolve() is Patient)",
        "http://hl7.org/fhir/SearchParameter/Provenance-patient"
    ),
    param!(
        "target",
        Reference,
        ["target"],
        None,
        "Provenance.target",
        "http://hl7.org/fhir/SearchParameter/Provenance-target"
    ),
];
const RISK_ASSESSMENT: &[SearchParamDef] = &[
    param!(
        "date",
        Date,
        ["occurrenceDateTime", "occurrencePeriod"],
        None,
        "RiskAssessment.occurrence",
        "http://hl7.org/fhir/SearchParameter/clinical-date"
    ),
    param!(
        "identifier",
        Token,
        ["identifier"],
        None,
        "RiskAssessment.identifier",
        "http://hl7.org/fhir/SearchParameter/clinical-identifier"
    ),
    param!(
        "patient",
        Reference,
        ["subject"],
        PATIENT,
        "RiskAssessment.subject.where(resolve() is Patient)",
        "http://hl7.org/fhir/SearchParameter/clinical-patient"
    ),
    param!(
        "status",
        Token,
        ["status"],
        None,
        "RiskAssessment.status",
        "http://hl7.org/fhir/SearchParameter/RiskAssessment-status"
    ),
    param!(
        "subject",
        Reference,
        ["subject"],
        None,
        "RiskAssessment.subject",
        "http://hl7.org/fhir/SearchParameter/RiskAssessment-subject"
    ),
];
const SERVICE_REQUEST: &[SearchParamDef] = &[
    param!(
        "code",
        Token,
        ["code"],
        None,
        "ServiceRequest.code",
        "http://hl7.org/fhir/SearchParameter/clinical-code"
    ),
    param!(
        "identifier",
        Token,
        ["identifier"],
        None,
        "ServiceRequest.identifier",
        "http://hl7.org/fhir/SearchParameter/clinical-identifier"
    ),
    param!(
        "patient",
        Reference,
        ["subject"],
        PATIENT,
        "ServiceRequest.subject.where(resolve() is Patient)",
        "http://hl7.org/fhir/SearchParameter/clinical-patient"
    ),
    param!(
        "status",
        Token,
        ["status"],
        None,
        "ServiceRequest.status",
        "http://hl7.org/fhir/SearchParameter/ServiceRequest-status"
    ),
    param!(
        "subject",
        Reference,
        ["subject"],
        None,
        "ServiceRequest.subject",
        "http://hl7.org/fhir/SearchParameter/ServiceRequest-subject"
    ),
];

/// The parameters R4 defines alike for MedicationAdministration, MedicationRequest and
/// MedicationStatement (`medications-*`, plus each type's own `subject`).
macro_rules! medication_params {
    ($t:literal) => {
        &[
            param!(
                "code",
                Token,
                ["medicationCodeableConcept"],
                None,
                concat!("(", $t, ".medication as CodeableConcept)"),
                "http://hl7.org/fhir/SearchParameter/medications-code"
            ),
            param!(
                "identifier",
                Token,
                ["identifier"],
                None,
                concat!($t, ".identifier"),
                "http://hl7.org/fhir/SearchParameter/medications-identifier"
            ),
            param!(
                "patient",
                Reference,
                ["subject"],
                PATIENT,
                concat!($t, ".subject.where(resolve() is Patient)"),
                "http://hl7.org/fhir/SearchParameter/medications-patient"
            ),
            param!(
                "status",
                Token,
                ["status"],
                None,
                concat!($t, ".status"),
                "http://hl7.org/fhir/SearchParameter/medications-status"
            ),
            param!(
                "subject",
                Reference,
                ["subject"],
                None,
                concat!($t, ".subject"),
                concat!("http://hl7.org/fhir/SearchParameter/", $t, "-subject")
            ),
        ]
    };
}
const MEDICATION_ADMINISTRATION: &[SearchParamDef] = medication_params!("MedicationAdministration");
const MEDICATION_REQUEST: &[SearchParamDef] = medication_params!("MedicationRequest");
const MEDICATION_STATEMENT: &[SearchParamDef] = medication_params!("MedicationStatement");
const PROCEDURE: &[SearchParamDef] = &[
    param!(
        "code",
        Token,
        ["code"],
        None,
        "Procedure.code",
        "http://hl7.org/fhir/SearchParameter/clinical-code"
    ),
    param!(
        "identifier",
        Token,
        ["identifier"],
        None,
        "Procedure.identifier",
        "http://hl7.org/fhir/SearchParameter/clinical-identifier"
    ),
    param!(
        "patient",
        Reference,
        ["subject"],
        PATIENT,
        "Procedure.subject.where(resolve() is Patient)",
        "http://hl7.org/fhir/SearchParameter/clinical-patient"
    ),
    param!(
        "status",
        Token,
        ["status"],
        None,
        "Procedure.status",
        "http://hl7.org/fhir/SearchParameter/Procedure-status"
    ),
    param!(
        "subject",
        Reference,
        ["subject"],
        None,
        "Procedure.subject",
        "http://hl7.org/fhir/SearchParameter/Procedure-subject"
    ),
];

/// The parameters of `resource_type`, when it is one of this module's.
pub(super) fn params(resource_type: ResourceType) -> Option<&'static [SearchParamDef]> {
    Some(match resource_type {
        ResourceType::AuditEvent => AUDIT_EVENT,
        ResourceType::Condition => CONDITION,
        ResourceType::Device => DEVICE,
        ResourceType::DiagnosticReport => DIAGNOSTIC_REPORT,
        ResourceType::DocumentReference => DOCUMENT_REFERENCE,
        ResourceType::ImagingStudy => IMAGING_STUDY,
        ResourceType::MedicationAdministration => MEDICATION_ADMINISTRATION,
        ResourceType::MedicationRequest => MEDICATION_REQUEST,
        ResourceType::MedicationStatement => MEDICATION_STATEMENT,
        ResourceType::Observation => OBSERVATION,
        ResourceType::Patient => PATIENT_PARAMS,
        ResourceType::Procedure => PROCEDURE,
        ResourceType::Provenance => PROVENANCE,
        ResourceType::RiskAssessment => RISK_ASSESSMENT,
        ResourceType::ServiceRequest => SERVICE_REQUEST,
        _ => return None,
    })
}
