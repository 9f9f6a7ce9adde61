//! What the service knows about a patient, for an assessment: the resources filed here for the
//! patient and for any other Patient here carrying one of their identifiers (an HL7 feed or a
//! DICOM study may have filed results under a Patient of its own), and, when an EHR is
//! configured, what the EHR holds (pulled now). A patient known only to the EHR gets a copy of
//! their Patient filed here, so that the assessment's resources refer to a Patient that exists.
//! An EHR that fails is a warning, not an error: the assessment goes on with what is here.
//! The imaging embedding comes from the study asked for (or the patient's latest), encoded on
//! the spot when the embedding worker has not reached it yet.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::lookup::escape_token;
use super::risk::AssessmentError;
use super::{Pipeline, PipelineError};
use crate::domain::{
    AuditAction, AuditOutcome, AuditRecord, DicomUid, ModelVersion, ResourceId, ResourceType,
};
use crate::ehr::{EhrError, FhirClient, PatientRecord, pull_patient};
use crate::features::{Embeddings, PatientContext};
use crate::fhir::parse_search;
use crate::store::StoreError;
use crate::telemetry::spawn_blocking_with_tracing;

/// The resource types an assessment reads its inputs from.
pub(super) const INPUT_TYPES: [ResourceType; 9] = [
    ResourceType::Observation,
    ResourceType::Condition,
    ResourceType::DocumentReference,
    ResourceType::DiagnosticReport,
    ResourceType::ImagingStudy,
    ResourceType::MedicationRequest,
    ResourceType::MedicationStatement,
    ResourceType::MedicationAdministration,
    ResourceType::Procedure,
];

/// Resources per page while gathering a patient's record.
const PAGE: u32 = 500;

/// A patient's record as an assessment reads it.
pub(super) struct GatheredRecord {
    /// The subject's Patient (here; a copy of the EHR's when it was only there).
    pub patient: Value,
    /// Every input resource, from here and from the EHR.
    pub resources: Vec<Value>,
    /// `Type/id` as the feature builder names a source → the reference the basis gives it:
    /// `Type/id/_history/v` here, the absolute URL (with its version when known) on the EHR.
    pub references: BTreeMap<String, String>,
    pub warnings: Vec<String>,
    /// The copy of a Patient known only to the EHR, filed here (version 1) in the same
    /// transaction as the assessment that read it.
    pub patient_copy: Option<Map<String, Value>>,
}

/// Where an assessment reads the patient's record, besides what this service holds.
#[derive(Debug, Clone, Default)]
pub enum RecordSource {
    /// The EHR the service is configured to pull from, if any (the FHIR operation, jobs).
    #[default]
    Configured,
    /// What the caller sent (CDS Hooks prefetch) or had read for it with its own token
    /// (`fhirServer`), as read from the server at `base`.
    Given {
        record: Box<PatientRecord>,
        base: Option<String>,
    },
}

/// Where an assessment's inputs come from, and whether it waits for imaging to be encoded.
#[derive(Debug, Clone)]
pub struct AssessmentInputs {
    pub source: RecordSource,
    /// Encode now a study the embedding worker has not reached yet (the FHIR operation);
    /// false: use what is encoded and say what is not (a card, due within half a second).
    pub encode_now: bool,
}

impl Default for AssessmentInputs {
    fn default() -> Self {
        Self {
            source: RecordSource::Configured,
            encode_now: true,
        }
    }
}

impl Pipeline {
    /// Gathers what is known about patient `id` (404 when neither here nor the source has
    /// them).
    pub(super) async fn gather_record(
        &self,
        id: &ResourceId,
        source: RecordSource,
    ) -> Result<GatheredRecord, PipelineError> {
        let mut record = GatheredRecord {
            patient: Value::Null,
            resources: Vec::new(),
            references: BTreeMap::new(),
            warnings: Vec::new(),
            patient_copy: None,
        };
        let (base, found) = match source {
            RecordSource::Configured => match &self.ehr {
                Some(client) => (
                    Some(client.base_url().to_owned()),
                    Some(self.pull_audited(client, id).await),
                ),
                None => (None, None),
            },
            RecordSource::Given { record, base } => (base, Some(Ok(*record))),
        };
        let local = match self.store.read(ResourceType::Patient, id).await {
            Ok(stored) => Some(stored),
            Err(StoreError::NotFound { .. }) if found.is_some() => None,
            Err(e) => return Err(e.into()),
        };
        let mut pulled = None;
        let mut ehr_failure = None;
        if let Some(found) = found {
            match found {
                Ok(found) => {
                    for missing in &found.missing {
                        record.warnings.push(format!(
                            "the EHR's {} could not be read ({}); the assessment used the rest",
                            missing.what, missing.reason
                        ));
                    }
                    for short in &found.incomplete {
                        record.warnings.push(format!(
                            "the EHR's {} search may be incomplete ({}); the assessment used what it gave",
                            short.what, short.reason
                        ));
                    }
                    pulled = Some(found);
                }
                Err(e) if e.kind() == crate::error::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(patient = %id, error = %e, "EHR pull for an assessment failed");
                    record.warnings.push(format!(
                        "the EHR could not be reached ({e}); the assessment used what this service holds"
                    ));
                    ehr_failure = Some(e);
                }
            }
        }
        // Not here, and the EHR that might know the patient did not answer: say so, rather than
        // that the patient does not exist.
        if let (None, None, Some(e)) = (&local, &pulled, ehr_failure) {
            return Err(PipelineError::Ehr(Box::new(e)));
        }
        let patient_version = match (local, &pulled) {
            (Some(stored), _) => {
                record.patient = serde_json::from_str(stored.content.as_deref().unwrap_or("{}"))
                    .unwrap_or(Value::Null);
                stored.version.to_string()
            }
            (None, Some(found)) => {
                // Known only to the EHR: file a copy of the Patient under the same id.
                let mut copy = found.patient.clone();
                if let Some(map) = copy.as_object_mut() {
                    map.remove("meta");
                    map.remove("text");
                }
                let Value::Object(map) = copy else {
                    return Err(StoreError::NotFound {
                        resource_type: ResourceType::Patient,
                        id: id.to_string(),
                    }
                    .into());
                };
                // Never here before (a deleted Patient is an error above): the copy will be
                // version 1, written with the assessment.
                let mut patient = map.clone();
                patient.insert("id".into(), Value::String(id.to_string()));
                record.patient = Value::Object(patient);
                record.patient_copy = Some(map);
                crate::domain::VersionId::FIRST.to_string()
            }
            (None, None) => {
                return Err(StoreError::NotFound {
                    resource_type: ResourceType::Patient,
                    id: id.to_string(),
                }
                .into());
            }
        };
        record.references.insert(
            format!("Patient/{id}"),
            format!("Patient/{id}/_history/{patient_version}"),
        );

        let mut patients = vec![id.clone()];
        patients.extend(self.linked_patients(id, &record.patient).await?);
        for patient in &patients {
            self.local_resources(patient, &mut record).await?;
        }
        if let Some(found) = pulled {
            let base = base.map(|b| format!("{}/", b.trim_end_matches('/')));
            for resource in found.resources().skip(1) {
                if ai_asserted(resource) {
                    continue;
                }
                let (Some(t), Some(rid)) =
                    (resource["resourceType"].as_str(), resource["id"].as_str())
                else {
                    continue;
                };
                let mut reference = format!("{}{t}/{rid}", base.as_deref().unwrap_or_default());
                if let Some(version) = resource.pointer("/meta/versionId").and_then(Value::as_str) {
                    reference = format!("{reference}/_history/{version}");
                }
                record
                    .references
                    .entry(format!("{t}/{rid}"))
                    .or_insert(reference);
                record.resources.push(resource.clone());
            }
        }
        tracing::info!(
            patient = %id,
            linked = patients.len() - 1,
            resources = record.resources.len(),
            warnings = record.warnings.len(),
            "patient record gathered for an assessment"
        );
        Ok(record)
    }

    /// Pulls patient `id` from `client` (the configured EHR, or a caller's FHIR server with the
    /// caller's token), with its audit record.
    pub async fn pull_audited(
        &self,
        client: &FhirClient,
        id: &ResourceId,
    ) -> Result<PatientRecord, EhrError> {
        let found = pull_patient(client, id.as_ref()).await;
        self.audit(pull_record(client.base_url(), id, &found)).await;
        found
    }

    /// The embeddings the spec takes, from what the service has already encoded; a missing one
    /// is a warning, not an error. Returns the imaging study used (id, version).
    pub(super) async fn assessment_embeddings(
        &self,
        spec: &crate::features::InputSpec,
        context: &PatientContext,
        asked: Option<&str>,
        encode_now: bool,
        as_of: chrono::DateTime<chrono::Utc>,
        warnings: &mut Vec<String>,
    ) -> Result<(Embeddings, Option<(ResourceId, String)>), PipelineError> {
        let mut embeddings = Embeddings::default();
        if let Some(notes) = &spec.notes {
            match &self.text_encoder {
                Some(encoder) if encoder.name == notes.encoder => {
                    let (encoder, notes, context) =
                        (Arc::clone(encoder), notes.clone(), context.clone());
                    embeddings.notes = spawn_blocking_with_tracing(move || {
                        super::features::embed_notes(&encoder, &notes, &context, as_of)
                    })
                    .await
                    .map_err(PipelineError::Blocking)??;
                }
                Some(encoder) => warnings.push(format!(
                    "the model's notes encoder is {}, the service has {} loaded; notes were not used",
                    notes.encoder, encoder.name
                )),
                None => warnings.push(
                    "the notes encoder is not loaded by the service; notes were not used".into(),
                ),
            }
        }
        let Some(imaging) = &spec.imaging else {
            return Ok((embeddings, None));
        };
        let Some(encoder) = &self.image_encoder else {
            warnings.push("no image encoder is loaded; imaging was not used".into());
            return Ok((embeddings, None));
        };
        if encoder.name() != imaging.encoder {
            warnings.push(format!(
                "the model takes {} embeddings, the service runs {}; imaging was not used",
                imaging.encoder,
                encoder.name()
            ));
            return Ok((embeddings, None));
        }
        let (uid, study_ref) = match asked {
            Some(asked) => match asked.strip_prefix("ImagingStudy/") {
                Some(id) => {
                    let found = context
                        .imaging_studies
                        .iter()
                        .find(|s| s.source == format!("ImagingStudy/{id}"));
                    (found.and_then(|s| s.study_uid.clone()), Some(id.to_owned()))
                }
                None => (Some(asked.trim_start_matches("urn:oid:").to_owned()), None),
            },
            None => {
                let latest = context.imaging_studies.iter().max_by_key(|s| s.started);
                (
                    latest.and_then(|s| s.study_uid.clone()),
                    latest.and_then(|s| s.source.strip_prefix("ImagingStudy/").map(str::to_owned)),
                )
            }
        };
        let Some(uid) = uid else {
            if let Some(asked) = asked {
                return Err(AssessmentError::BadStudy(asked.to_owned()).into());
            }
            return Ok((embeddings, None));
        };
        let uid = DicomUid::parse(&uid).map_err(|_| AssessmentError::BadStudy(uid.clone()))?;
        let version = ModelVersion {
            name: encoder.name().to_owned(),
            version: encoder.entry().version.clone(),
        };
        // Encode now what the worker has not reached yet (a study just received).
        if encode_now {
            match self.embed_study_now(&uid).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(study_instances = n, "study encoded for an assessment"),
                Err(e) => warnings.push(format!("the study could not be encoded now ({e})")),
            }
        }
        embeddings.imaging =
            super::features::stored_study_embedding(&self.store, &uid, &version).await?;
        if embeddings.imaging.is_none() && !encode_now {
            warnings.push(format!(
                "the study {} is not encoded yet; the risk was estimated without imaging and \
                 will include it when asked again once encoding is done",
                uid.as_str()
            ));
        } else if embeddings.imaging.is_none() {
            warnings.push(format!(
                "the study {} has no {} embedding yet; imaging was not used",
                uid.as_str(),
                encoder.name()
            ));
        }
        let study = match study_ref.and_then(|id| ResourceId::parse(&id).ok()) {
            Some(id) => {
                let stored = self.store.read(ResourceType::ImagingStudy, &id).await.ok();
                stored.map(|s| (id, s.version.to_string()))
            }
            None => None,
        };
        Ok((embeddings, study))
    }

    /// Other Patients here carrying one of `patient`'s identifiers.
    async fn linked_patients(
        &self,
        id: &ResourceId,
        patient: &Value,
    ) -> Result<Vec<ResourceId>, PipelineError> {
        let mut linked = Vec::new();
        for identifier in patient
            .get("identifier")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(value) = identifier.get("value").and_then(Value::as_str) else {
                continue;
            };
            let system = identifier
                .get("system")
                .and_then(Value::as_str)
                .unwrap_or("");
            let token = format!("{}|{}", escape_token(system), escape_token(value));
            let params = [("identifier".to_owned(), token)];
            let query = parse_search(ResourceType::Patient, &params, true, 20, 20)?;
            let (found, _) = self.store.search(ResourceType::Patient, &query).await?;
            for stored in found {
                if stored.id != *id && !linked.contains(&stored.id) {
                    linked.push(stored.id);
                }
            }
        }
        Ok(linked)
    }

    /// The resources of the input types filed here for `patient` (AI-made ones left out: a
    /// model's output is never its input).
    async fn local_resources(
        &self,
        patient: &ResourceId,
        record: &mut GatheredRecord,
    ) -> Result<(), PipelineError> {
        for t in INPUT_TYPES {
            let params = [("patient".to_owned(), format!("Patient/{patient}"))];
            let mut query = parse_search(t, &params, true, PAGE, PAGE)?;
            loop {
                let (page, total) = self.store.search(t, &query).await?;
                let read = page.len();
                for stored in page {
                    let Some(content) = stored.content else {
                        continue;
                    };
                    let Ok(value) = serde_json::from_str::<Value>(&content) else {
                        continue;
                    };
                    if ai_asserted(&value) {
                        continue;
                    }
                    record.references.insert(
                        format!("{t}/{}", stored.id),
                        format!("{t}/{}/_history/{}", stored.id, stored.version),
                    );
                    record.resources.push(value);
                }
                query.offset += read as u32;
                if read == 0 || u64::from(query.offset) >= total {
                    break;
                }
            }
        }
        Ok(())
    }
}

pub(super) fn ai_asserted(resource: &Value) -> bool {
    resource
        .pointer("/meta/security")
        .and_then(Value::as_array)
        .is_some_and(|labels| labels.iter().any(|l| l["code"] == "AIAST"))
}

/// The audit record of a pull from the EHR for patient `id`: what was asked of which server,
/// how much came back and what could not be read (counts and resource types, no content). The
/// request id ties it to the request that caused it, whose record names the caller.
fn pull_record(ehr: &str, id: &ResourceId, found: &Result<PatientRecord, EhrError>) -> AuditRecord {
    let mut record = AuditRecord::new("ehr", "pull", AuditAction::Read);
    record.patients = vec![id.as_ref().to_owned()];
    record.entity = Some(format!("{}/Patient/{id}", ehr.trim_end_matches('/')));
    match found {
        Ok(pulled) => {
            let mut text = format!("{} resources read", pulled.resources().count());
            for missing in pulled.missing.iter().chain(&pulled.incomplete) {
                text.push_str(&format!("; {} not read in full", missing.what));
            }
            record.outcome_text = Some(text);
        }
        Err(e) if e.kind() == crate::error::ErrorKind::NotFound => {
            record.outcome = AuditOutcome::MinorFailure;
            record.outcome_text = Some("the EHR has no such patient".into());
        }
        Err(_) => {
            record.outcome = AuditOutcome::SeriousFailure;
            record.outcome_text = Some("the EHR could not be read".into());
        }
    }
    record
}
