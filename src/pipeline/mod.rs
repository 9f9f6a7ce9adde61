//! The use cases, one async function each, that the edges call: the FHIR resource store's
//! create/update/delete/search and transaction or batch Bundles; DICOM ingest and the
//! ImagingStudy resources it keeps; HL7 v2 filing; image embedding; and the risk assessment
//! (`risk`: inputs, prediction, filing; `risk_jobs`: admission, synchronous and asynchronous
//! delivery, resumption). Imports the layers below it; knows nothing about HTTP, DIMSE or MLLP,
//! nor about cohorts and training (offline work is the command line's).

pub mod alerts;
pub mod audit;
mod bundle;
pub mod cds;
mod cds_prefetch;
mod decoded;
mod embedding;
pub mod features;
mod hl7;
mod hl7_filing;
mod imaging;
mod lookup;
pub mod memory_budget;
pub mod models;
pub mod monitoring;
mod resources;
pub mod risk;
mod risk_clock;
mod risk_inputs;
pub mod risk_jobs;
mod risk_view;
mod shadow;
pub mod sign_off;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::domain::{ResourceType, VersionId};
use crate::error::ErrorKind;
use crate::hl7::datetime::SiteZone;

use crate::dicom::DicomError;
use crate::encoders::{BatchedEncoder, EncoderError};
use crate::fhir::FhirError;
use crate::report::ReportError;
use crate::store::{FileStore, Store, StoreError};

pub use crate::dicom::DicomStatus;
pub use audit::Auditor;
pub use bundle::BundleOutcome;
pub use embedding::{InstanceEmbedding, StudyEmbeddingReport, embed_dicom};
pub use hl7::{Hl7Answer, SUPPORTED_MESSAGES};
pub use imaging::{IngestedInstance, InstanceFailure};
pub use memory_budget::{Held, MemoryBudget};
pub use resources::{SearchRequest, Written};
pub use risk_inputs::{AssessmentInputs, RecordSource};

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Fhir(#[from] FhirError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Report(#[from] ReportError),
    #[error(transparent)]
    Dicom(#[from] DicomError),
    #[error(transparent)]
    Encoder(Box<EncoderError>),
    #[error("could not write to or read from the DICOM file store")]
    FileStore(#[source] std::io::Error),
    #[error("no image encoder is loaded (inference is disabled or its weights are missing)")]
    EncoderDisabled,
    #[error("a blocking task failed")]
    Blocking(#[source] tokio::task::JoinError),
    #[error("the instance belongs to another study than the one in the URL")]
    StudyMismatch,
    #[error("an update must carry the id of the resource it updates in the body")]
    MissingId,
    #[error("the id in the body does not match the id in the URL")]
    IdMismatch,
    #[error("If-None-Exist matched {matches} {resource_type} resources; it must match at most one")]
    AmbiguousCondition {
        resource_type: ResourceType,
        matches: u64,
    },
    #[error("If-Match names version {expected}, but the resource does not exist yet")]
    IfMatchOnCreate { expected: VersionId },
    #[error("the HL7 message names no patient identifier (PID-3)")]
    NoPatientIdentifier,
    #[error("invalid Bundle: {reason}")]
    InvalidBundle { reason: String },
    #[error(transparent)]
    Assessment(Box<risk::AssessmentError>),
    #[error(transparent)]
    RiskJob(Box<risk_jobs::RiskJobError>),
    #[error("the patient is not held here and the EHR could not be asked: {0}")]
    Ehr(Box<crate::ehr::EhrError>),
    #[error(transparent)]
    Cds(#[from] cds::CdsError),
    #[error(transparent)]
    SignOff(#[from] sign_off::SignOffError),
    #[error(transparent)]
    Model(#[from] models::ModelError),
    #[error(transparent)]
    OutcomeFile(#[from] monitoring::OutcomeFileError),
    #[error("Bundle.entry[{index}]: {source}")]
    BundleEntry {
        index: usize,
        #[source]
        source: Box<PipelineError>,
    },
}

impl From<risk_jobs::RiskJobError> for PipelineError {
    fn from(e: risk_jobs::RiskJobError) -> Self {
        PipelineError::RiskJob(Box::new(e))
    }
}

impl From<risk::AssessmentError> for PipelineError {
    fn from(e: risk::AssessmentError) -> Self {
        PipelineError::Assessment(Box::new(e))
    }
}

impl From<EncoderError> for PipelineError {
    fn from(e: EncoderError) -> Self {
        PipelineError::Encoder(Box::new(e))
    }
}

impl PipelineError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            PipelineError::Fhir(e) => e.kind(),
            PipelineError::Store(e) => e.kind(),
            PipelineError::Report(e) => e.kind(),
            PipelineError::Dicom(e) => e.kind(),
            PipelineError::Encoder(e) => e.kind(),
            PipelineError::FileStore(_) | PipelineError::EncoderDisabled => ErrorKind::Unavailable,
            PipelineError::Blocking(_) => ErrorKind::Internal,
            PipelineError::StudyMismatch => ErrorKind::Conflict,
            PipelineError::MissingId
            | PipelineError::IdMismatch
            | PipelineError::NoPatientIdentifier
            | PipelineError::InvalidBundle { .. }
            | PipelineError::OutcomeFile(_) => ErrorKind::Invalid,
            PipelineError::AmbiguousCondition { .. } | PipelineError::IfMatchOnCreate { .. } => {
                ErrorKind::PreconditionFailed
            }
            PipelineError::BundleEntry { source, .. } => source.kind(),
            PipelineError::Cds(e) => e.kind(),
            PipelineError::SignOff(e) => e.kind(),
            PipelineError::Model(e) => e.kind(),
            PipelineError::RiskJob(e) => e.kind(),
            PipelineError::Ehr(e) => match e.kind() {
                ErrorKind::NotFound | ErrorKind::Internal => ErrorKind::Unavailable,
                other => other,
            },
            PipelineError::Assessment(e) => match e.as_ref() {
                risk::AssessmentError::NoModel | risk::AssessmentError::UnknownModel { .. } => {
                    ErrorKind::Unavailable
                }
                risk::AssessmentError::UnknownHorizon { .. }
                | risk::AssessmentError::BadStudy(_) => ErrorKind::Invalid,
                risk::AssessmentError::NoInputs(_)
                | risk::AssessmentError::OutsidePopulation { .. }
                | risk::AssessmentError::BeyondFollowUp { .. } => ErrorKind::Unprocessable,
                risk::AssessmentError::Predict(_) | risk::AssessmentError::Ids(_) => {
                    ErrorKind::Internal
                }
            },
        }
    }

    /// Seconds after which the caller may ask again and find what it asked for, when known.
    pub fn retry_after(&self) -> Option<u32> {
        match self {
            PipelineError::RiskJob(e) => e.retry_after(),
            _ => None,
        }
    }

    /// Where in the request the problem lies, as a FHIRPath expression, when known.
    pub fn expression(&self) -> Option<String> {
        match self {
            PipelineError::Fhir(e) => e.expression().map(str::to_owned),
            PipelineError::Cds(e) => e.expression(),
            PipelineError::BundleEntry { index, source } => Some(match source.expression() {
                Some(inner) => format!("Bundle.entry[{index}].resource.{inner}"),
                None => format!("Bundle.entry[{index}]"),
            }),
            _ => None,
        }
    }
}

/// The application's use cases over its store.
#[derive(Clone, Debug)]
pub struct Pipeline {
    store: Store,
    page_sizes: PageSizes,
    files: FileStore,
    imaging: ImagingOptions,
    /// The memory instances arriving over DIMSE and STOW-RS may hold, all together.
    arriving_instances: Arc<MemoryBudget>,
    /// Serialises ImagingStudy refreshes within this process.
    imaging_refresh: Arc<tokio::sync::Mutex<()>>,
    /// The text encoder of the notes, when a loaded model takes notes.
    text_encoder: Option<Arc<crate::encoders::TextEncoder>>,
    /// The image encoder behind its batching thread, when inference is on.
    image_encoder: Option<BatchedEncoder>,
    /// The encoders a service started with this configuration runs, for a pipeline that loads
    /// none itself (the command line deciding whether a model can be promoted).
    encoders_configured: Option<models::ConfiguredEncoders>,
    /// Wakes the embedding worker.
    embedding_wanted: Arc<tokio::sync::Notify>,
    /// Images decoded at ingest for the embedding worker, when one runs in this process.
    decoded: Option<Arc<decoded::DecodedHandoff>>,
    hl7: Hl7Options,
    /// The models loaded and how each is deployed (the active one answers).
    models: Arc<models::ModelSlot>,
    /// When the monitoring raises an alert.
    alert_thresholds: alerts::AlertThresholds,
    /// The EHR an assessment pulls the patient's record from, when one is configured.
    ehr: Option<crate::ehr::FhirClient>,
    /// How many assessments run at once, and how long a synchronous caller waits.
    risk_admission: risk_jobs::RiskAdmission,
    /// The audit trail's queue, when the service keeps one.
    auditor: Option<audit::Auditor>,
}

/// How HL7 v2 content maps onto FHIR (see `Hl7Settings`).
#[derive(Clone, Debug)]
pub struct Hl7Options {
    /// The sending sites' zone, for times sent without an offset.
    pub zone: SiteZone,
    /// `Identifier.system` by assigning-authority namespace.
    pub identifier_systems: BTreeMap<String, String>,
}

impl Default for Hl7Options {
    fn default() -> Self {
        Self {
            zone: SiteZone::System,
            identifier_systems: BTreeMap::new(),
        }
    }
}

/// How DICOM studies map onto FHIR, and what their intake may hold in memory.
#[derive(Clone, Debug)]
pub struct ImagingOptions {
    /// `Identifier.system` of the DICOM Patient ID on Patients (see `DicomSettings`).
    pub patient_id_system: Option<String>,
    /// The bytes of instance data DIMSE associations and STOW-RS requests together may hold
    /// in memory while it arrives (`dicom.max_buffered_bytes`).
    pub max_buffered_bytes: usize,
}

/// Search page sizes: the default when `_count` is absent, and the most `_count` may ask for.
#[derive(Clone, Copy, Debug)]
pub struct PageSizes {
    pub default: u32,
    pub max: u32,
}

impl Pipeline {
    pub fn new(
        store: Store,
        page_sizes: PageSizes,
        files: FileStore,
        imaging: ImagingOptions,
    ) -> Self {
        Self {
            store,
            page_sizes,
            files,
            arriving_instances: MemoryBudget::new(imaging.max_buffered_bytes),
            imaging,
            imaging_refresh: Arc::new(tokio::sync::Mutex::new(())),
            image_encoder: None,
            text_encoder: None,
            encoders_configured: None,
            embedding_wanted: Arc::new(tokio::sync::Notify::new()),
            decoded: None,
            hl7: Hl7Options::default(),
            models: Arc::new(models::ModelSlot::default()),
            alert_thresholds: alerts::AlertThresholds::default(),
            ehr: None,
            risk_admission: risk_jobs::RiskAdmission::default(),
            auditor: None,
        }
    }

    /// The memory budget instances arriving over DIMSE and STOW-RS share: a piece of an
    /// instance takes its bytes before it is kept.
    pub fn arriving_instances(&self) -> &Arc<MemoryBudget> {
        &self.arriving_instances
    }

    /// Pulls the patient's record from this EHR for each assessment.
    pub fn with_ehr_client(mut self, client: crate::ehr::FhirClient) -> Self {
        self.ehr = Some(client);
        self
    }

    /// Assesses risk with `model` (see [`Pipeline::assess_risk`]), the only one loaded.
    pub fn with_risk_model(self, model: Arc<risk::RiskModel>) -> Self {
        self.with_models(models::ModelRegistry::of(vec![model], Vec::new()))
    }

    /// The models loaded; the first is active until the deployments recorded say otherwise
    /// ([`Pipeline::sync_models`]).
    pub fn with_models(mut self, registry: models::ModelRegistry) -> Self {
        self.models = Arc::new(models::ModelSlot::new(registry));
        self
    }

    /// Admits assessments within these limits (see [`Pipeline::submit_assessment`]).
    pub fn with_risk_admission(mut self, admission: risk_jobs::RiskAdmission) -> Self {
        self.risk_admission = admission;
        self
    }

    /// Embeds notes for the models that take them with `encoder`.
    pub fn with_text_encoder(mut self, encoder: Arc<crate::encoders::TextEncoder>) -> Self {
        self.text_encoder = Some(encoder);
        self
    }

    /// Raises monitoring alerts at these thresholds.
    /// When the monitoring raises an alert, and over which window it measures drift.
    pub fn alert_thresholds(&self) -> &alerts::AlertThresholds {
        &self.alert_thresholds
    }

    pub fn with_alert_thresholds(mut self, thresholds: alerts::AlertThresholds) -> Self {
        self.alert_thresholds = thresholds;
        self
    }

    /// The active model, if any.
    pub fn risk_model(&self) -> Option<Arc<risk::RiskModel>> {
        self.models.current().active().cloned()
    }

    /// Maps HL7 v2 content with these options.
    pub fn with_hl7_options(mut self, options: Hl7Options) -> Self {
        self.hl7 = options;
        self
    }

    /// Embeds received images with `encoder` (see [`Pipeline::run_embedding_worker`]).
    pub fn with_image_encoder(mut self, encoder: BatchedEncoder) -> Self {
        self.image_encoder = Some(encoder);
        self
    }

    /// Hands the images ingest decodes to this process's embedding worker (see
    /// [`decoded::DecodedHandoff`]), so that each is decoded once; for a pipeline that runs the
    /// worker.
    pub fn with_decoded_handoff(mut self) -> Self {
        self.decoded = Some(Arc::new(decoded::DecodedHandoff::new(
            decoded::DEFAULT_HANDOFF_BYTES,
        )));
        self
    }

    /// Judges models by `encoders` rather than by the encoders loaded (see
    /// [`models::ConfiguredEncoders`]).
    pub fn with_configured_encoders(mut self, encoders: models::ConfiguredEncoders) -> Self {
        self.encoders_configured = Some(encoders);
        self
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Whether received files can be written now (see [`crate::store::FileStore::check_writable`]).
    pub async fn storage_writable(&self) -> Result<(), PipelineError> {
        let files = self.files.clone();
        crate::telemetry::spawn_blocking_with_tracing(move || files.check_writable())
            .await
            .map_err(PipelineError::Blocking)?
            .map_err(PipelineError::FileStore)
    }
}

/// An id made from `parts`: `{prefix}-` and 40 hex digits of their digest, so that the same
/// parts always name the same resource.
fn digest_id(
    prefix: &str,
    parts: &[&str],
) -> Result<crate::domain::ResourceId, crate::domain::IdError> {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    for part in parts {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    let hex: String = hash.finalize()[..20]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    crate::domain::ResourceId::parse(&format!("{prefix}-{hex}"))
}
