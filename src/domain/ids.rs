use std::fmt;
use std::str::FromStr;

/// Why an identifier could not be parsed. Carries no value: ids may come from untrusted input.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdError {
    #[error("resource id must be 1 to 64 characters of A-Z, a-z, 0-9, '-' and '.'")]
    InvalidResourceId,
    #[error("version id must be a positive integer")]
    InvalidVersionId,
    #[error("resource type is not one this server stores")]
    UnsupportedResourceType,
}

/// A FHIR logical id (`[A-Za-z0-9\-\.]{1,64}`, FHIR R4 §2.24.0.1 `id`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceId(String);

impl ResourceId {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let valid = !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if valid {
            Ok(Self(s.to_owned()))
        } else {
            Err(IdError::InvalidResourceId)
        }
    }

    /// A fresh server-assigned id (a UUID v4, which is a valid FHIR id).
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }

    /// A new id that sorts after the ids made before it (UUID version 7: time first), for rows
    /// appended at a high rate: an index of such ids grows at its end.
    pub fn generate_ordered() -> Self {
        Self(uuid::Uuid::now_v7().to_string())
    }
}

impl AsRef<str> for ResourceId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A resource version, counting from 1 for each logical id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VersionId(u64);

impl VersionId {
    pub const FIRST: VersionId = VersionId(1);

    pub fn parse(s: &str) -> Result<Self, IdError> {
        match s.parse::<u64>() {
            Ok(n) if n >= 1 => Ok(Self(n)),
            _ => Err(IdError::InvalidVersionId),
        }
    }

    /// Parses an HTTP entity tag as FHIR uses it: `W/"3"` or `"3"`.
    pub fn from_etag(etag: &str) -> Result<Self, IdError> {
        let tag = etag.trim();
        let tag = tag.strip_prefix("W/").unwrap_or(tag);
        let tag = tag
            .strip_prefix('"')
            .and_then(|t| t.strip_suffix('"'))
            .unwrap_or(tag);
        Self::parse(tag)
    }

    pub fn new(n: u64) -> Option<Self> {
        (n >= 1).then_some(Self(n))
    }

    pub fn get(self) -> u64 {
        self.0
    }

    pub fn next(self) -> Self {
        Self(self.0 + 1)
    }

    /// The weak entity tag FHIR servers send in `ETag`.
    pub fn etag(self) -> String {
        format!("W/\"{}\"", self.0)
    }
}

impl fmt::Display for VersionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

macro_rules! resource_types {
    ($($variant:ident),+ $(,)?) => {
        /// The FHIR R4 resource types this service stores and serves: every one but Parameters (the
        /// body of operations, never stored).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum ResourceType {
            $($variant),+
        }

        impl ResourceType {
            pub const ALL: &'static [ResourceType] = &[$(ResourceType::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(ResourceType::$variant => stringify!($variant)),+
                }
            }
        }

        impl FromStr for ResourceType {
            type Err = IdError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $(stringify!($variant) => Ok(ResourceType::$variant),)+
                    _ => Err(IdError::UnsupportedResourceType),
                }
            }
        }
    };
}

resource_types!(
    Account,
    ActivityDefinition,
    AdverseEvent,
    AllergyIntolerance,
    Appointment,
    AppointmentResponse,
    AuditEvent,
    Basic,
    Binary,
    BiologicallyDerivedProduct,
    BodyStructure,
    Bundle,
    CapabilityStatement,
    CarePlan,
    CareTeam,
    CatalogEntry,
    ChargeItem,
    ChargeItemDefinition,
    Claim,
    ClaimResponse,
    ClinicalImpression,
    CodeSystem,
    Communication,
    CommunicationRequest,
    CompartmentDefinition,
    Composition,
    ConceptMap,
    Condition,
    Consent,
    Contract,
    Coverage,
    CoverageEligibilityRequest,
    CoverageEligibilityResponse,
    DetectedIssue,
    Device,
    DeviceDefinition,
    DeviceMetric,
    DeviceRequest,
    DeviceUseStatement,
    DiagnosticReport,
    DocumentManifest,
    DocumentReference,
    EffectEvidenceSynthesis,
    Encounter,
    Endpoint,
    EnrollmentRequest,
    EnrollmentResponse,
    EpisodeOfCare,
    EventDefinition,
    Evidence,
    EvidenceVariable,
    ExampleScenario,
    ExplanationOfBenefit,
    FamilyMemberHistory,
    Flag,
    Goal,
    GraphDefinition,
    Group,
    GuidanceResponse,
    HealthcareService,
    ImagingStudy,
    Immunization,
    ImmunizationEvaluation,
    ImmunizationRecommendation,
    ImplementationGuide,
    InsurancePlan,
    Invoice,
    Library,
    Linkage,
    List,
    Location,
    Measure,
    MeasureReport,
    Media,
    Medication,
    MedicationAdministration,
    MedicationDispense,
    MedicationKnowledge,
    MedicationRequest,
    MedicationStatement,
    MedicinalProduct,
    MedicinalProductAuthorization,
    MedicinalProductContraindication,
    MedicinalProductIndication,
    MedicinalProductIngredient,
    MedicinalProductInteraction,
    MedicinalProductManufactured,
    MedicinalProductPackaged,
    MedicinalProductPharmaceutical,
    MedicinalProductUndesirableEffect,
    MessageDefinition,
    MessageHeader,
    MolecularSequence,
    NamingSystem,
    NutritionOrder,
    Observation,
    ObservationDefinition,
    OperationDefinition,
    OperationOutcome,
    Organization,
    OrganizationAffiliation,
    Patient,
    PaymentNotice,
    PaymentReconciliation,
    Person,
    PlanDefinition,
    Practitioner,
    PractitionerRole,
    Procedure,
    Provenance,
    Questionnaire,
    QuestionnaireResponse,
    RelatedPerson,
    RequestGroup,
    ResearchDefinition,
    ResearchElementDefinition,
    ResearchStudy,
    ResearchSubject,
    RiskAssessment,
    RiskEvidenceSynthesis,
    Schedule,
    SearchParameter,
    ServiceRequest,
    Slot,
    Specimen,
    SpecimenDefinition,
    StructureDefinition,
    StructureMap,
    Subscription,
    Substance,
    SubstanceNucleicAcid,
    SubstancePolymer,
    SubstanceProtein,
    SubstanceReferenceInformation,
    SubstanceSourceMaterial,
    SubstanceSpecification,
    SupplyDelivery,
    SupplyRequest,
    Task,
    TerminologyCapabilities,
    TestReport,
    TestScript,
    ValueSet,
    VerificationResult,
    VisionPrescription,
);

impl fmt::Display for ResourceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fhir_ids_follow_the_r4_pattern() {
        assert!(ResourceId::parse("example").is_ok());
        assert!(ResourceId::parse("a.b-C9").is_ok());
        assert!(ResourceId::parse(&"x".repeat(64)).is_ok());
        assert!(ResourceId::parse(&"x".repeat(65)).is_err());
        assert!(ResourceId::parse("").is_err());
        assert!(ResourceId::parse("has space").is_err());
        assert!(ResourceId::parse("under_score").is_err());
        assert!(ResourceId::parse("../etc").is_err());
    }

    #[test]
    fn version_ids_come_from_weak_and_strong_etags() {
        assert_eq!(VersionId::from_etag("W/\"3\"").unwrap().get(), 3);
        assert_eq!(VersionId::from_etag("\"12\"").unwrap().get(), 12);
        assert_eq!(VersionId::from_etag("7").unwrap().get(), 7);
        assert!(VersionId::from_etag("W/\"0\"").is_err());
        assert!(VersionId::from_etag("W/\"abc\"").is_err());
        assert_eq!(VersionId::new(4).unwrap().etag(), "W/\"4\"");
    }

    #[test]
    fn every_resource_type_parses_from_its_own_name() {
        for t in ResourceType::ALL {
            assert_eq!(t.as_str().parse::<ResourceType>().unwrap(), *t);
        }
        assert!("Parameters".parse::<ResourceType>().is_err());
        assert!("patient".parse::<ResourceType>().is_err());
    }
}
