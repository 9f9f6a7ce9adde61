//! DICOM ingest, whatever the edge (STOW-RS, C-STORE, `prognostics import`): read the file, store
//! it durably, record its rows; then keep each study's ImagingStudy resource in step with its
//! instances.

use std::sync::Arc;

use super::lookup::{find_patient, object};
use super::resources::update_in;
use super::{Pipeline, PipelineError};
use crate::dicom::{self, DicomStatus};
use crate::domain::{DicomUid, PixelStatus, ResourceId, ResourceType, StoreOutcome, Tolerated};
use crate::error::error_chain;
use crate::fhir::validate_resource;
use crate::report::{self, DICOM_UID_SYSTEM, ImagingStudyContent, SeriesContent};
use crate::store::{StoreTransaction, StoredStudy, StudyFilter, StudySummary};
use crate::telemetry::spawn_blocking_with_tracing;

/// Stale ImagingStudy resources refreshed in one pass.
const REFRESH_BATCH: u32 = 500;

/// An instance that was stored (or was already there).
#[derive(Clone, Debug)]
pub struct IngestedInstance {
    pub sop_class_uid: DicomUid,
    pub sop_instance_uid: DicomUid,
    pub study_uid: DicomUid,
    pub outcome: StoreOutcome,
    pub pixels: PixelStatus,
    /// What was wrong with the file and read anyway (see `DicomInstance::tolerated`).
    pub tolerated: Vec<Tolerated>,
}

impl IngestedInstance {
    /// The warning status to answer with, when something was tolerated to read it.
    pub fn warning(&self) -> Option<DicomStatus> {
        DicomStatus::for_tolerated(&self.tolerated)
    }
}

/// An instance that was not stored: why, and its UIDs when they could be read.
#[derive(Debug)]
pub struct InstanceFailure {
    pub sop_class_uid: Option<DicomUid>,
    pub sop_instance_uid: Option<DicomUid>,
    pub error: PipelineError,
}

impl InstanceFailure {
    fn unidentified(error: impl Into<PipelineError>) -> Self {
        Self {
            sop_class_uid: None,
            sop_instance_uid: None,
            error: error.into(),
        }
    }

    fn from_dicom_error(error: dicom::DicomError) -> Self {
        let uids = error.identified().map(|(c, i)| (c.clone(), i.clone()));
        Self {
            sop_class_uid: uids.as_ref().map(|u| u.0.clone()),
            sop_instance_uid: uids.map(|u| u.1),
            error: error.into(),
        }
    }

    /// The DICOM status (C-STORE-RSP, STOW-RS Failure Reason) for this failure.
    pub fn dicom_status(&self) -> DicomStatus {
        match &self.error {
            PipelineError::Dicom(e) => e.dicom_status(),
            other => DicomStatus::for_kind(other.kind()),
        }
    }
}

impl Pipeline {
    /// Reads, stores and records one DICOM Part 10 file. With `expected_study` (STOW-RS to
    /// `/studies/{uid}`), an instance of another study is refused. Success means the file is
    /// on disk and its rows are committed.
    pub async fn ingest_dicom(
        &self,
        bytes: Vec<u8>,
        expected_study: Option<&DicomUid>,
    ) -> Result<IngestedInstance, InstanceFailure> {
        let files = self.files.clone();
        let expected = expected_study.cloned();
        let size = bytes.len() as u64;
        let read = spawn_blocking_with_tracing(move || {
            let instance =
                dicom::read_instance(&bytes).map_err(InstanceFailure::from_dicom_error)?;
            let fail = |error: PipelineError| InstanceFailure {
                sop_class_uid: Some(instance.sop_class_uid.clone()),
                sop_instance_uid: Some(instance.sop_instance_uid.clone()),
                error,
            };
            if expected.as_ref().is_some_and(|e| *e != instance.study_uid) {
                return Err(fail(PipelineError::StudyMismatch));
            }
            let hash = files
                .put(&bytes)
                .map_err(|e| fail(PipelineError::FileStore(e)))?;
            // The file is safe whatever the decoder says: an instance no decoder handles is
            // kept, and marked so that later stages skip it with a reason.
            let mut decoded = None;
            let pixels = if instance.has_pixel_data {
                match dicom::decode_image(&bytes) {
                    Ok(image) => {
                        decoded = Some(Arc::new(image));
                        PixelStatus::Decodable
                    }
                    Err(e) => PixelStatus::Undecodable {
                        reason: error_chain(&e),
                    },
                }
            } else {
                PixelStatus::None
            };
            Ok((instance, hash, pixels, decoded))
        })
        .await
        .map_err(|e| InstanceFailure::unidentified(PipelineError::Blocking(e)))?;
        let (instance, hash, pixels, decoded) = read?;
        // Handed to the embedding worker before the instance is committed, so that the worker
        // never finds the instance without its image (it would decode the file again).
        let handoff = self.decoded.as_ref().zip(decoded);
        if let Some((handoff, image)) = &handoff {
            handoff.keep(hash.clone(), image.clone());
        }
        if let Some(reason) = pixels.reason() {
            tracing::warn!(sop_instance_uid = %instance.sop_instance_uid, reason, "stored instance cannot be decoded");
        }
        for tolerated in &instance.tolerated {
            tracing::warn!(sop_instance_uid = %instance.sop_instance_uid, tolerated = %tolerated, "instance read despite a fault in its file");
        }
        let saved = self
            .store
            .save_instance(&instance, &hash, size, &pixels)
            .await;
        if saved.is_err()
            && let Some((handoff, _)) = &handoff
        {
            handoff.take(&hash);
        }
        let outcome = saved.map_err(|e| InstanceFailure {
            sop_class_uid: Some(instance.sop_class_uid.clone()),
            sop_instance_uid: Some(instance.sop_instance_uid.clone()),
            error: e.into(),
        })?;
        tracing::info!(
            sop_instance_uid = %instance.sop_instance_uid,
            study_uid = %instance.study_uid,
            sha256 = %hash,
            bytes = size,
            outcome = ?outcome,
            "DICOM instance stored"
        );
        if outcome != StoreOutcome::Unchanged && pixels == PixelStatus::Decodable {
            self.instance_stored();
        } else if let Some((handoff, _)) = &handoff {
            // Nothing new to embed: the image is not kept waiting for the worker.
            handoff.take(&hash);
        }
        Ok(IngestedInstance {
            sop_class_uid: instance.sop_class_uid,
            sop_instance_uid: instance.sop_instance_uid,
            study_uid: instance.study_uid,
            outcome,
            pixels,
            tolerated: instance.tolerated,
        })
    }

    /// Stores a data set received over DIMSE in `transfer_syntax`, wrapped into a Part 10 file
    /// byte for byte.
    pub async fn ingest_data_set(
        &self,
        data_set: &[u8],
        sop_class_uid: &str,
        sop_instance_uid: &str,
        transfer_syntax: &str,
    ) -> Result<IngestedInstance, InstanceFailure> {
        let file = dicom::part10_file(data_set, sop_class_uid, sop_instance_uid, transfer_syntax)
            .map_err(|e| InstanceFailure {
            sop_class_uid: DicomUid::parse(sop_class_uid).ok(),
            sop_instance_uid: DicomUid::parse(sop_instance_uid).ok(),
            error: e.into(),
        })?;
        self.ingest_dicom(file, None).await
    }

    /// Brings stale ImagingStudy resources up to date with their stored instances; returns how
    /// many were written. Edges call it after each request or association; startup calls it
    /// once for studies left stale by an interruption.
    pub async fn refresh_imaging_studies(&self) -> Result<usize, PipelineError> {
        // One refresher at a time in this process: two would race on the same resource.
        let _guard = self.imaging_refresh.lock().await;
        let stale = self.store.stale_studies(REFRESH_BATCH).await?;
        for study_uid in &stale {
            if let Some(study) = self.store.study(study_uid).await? {
                self.write_imaging_study(&study).await?;
                self.store
                    .mark_study_refreshed(study_uid, study.generation)
                    .await?;
            }
        }
        Ok(stale.len())
    }

    /// The Patients the studies belong to, as their ImagingStudy resources name them (for the
    /// audit trail; a study not yet written is left out).
    pub async fn patients_of_studies(&self, studies: &[DicomUid]) -> Vec<String> {
        let mut patients = Vec::new();
        for uid in studies {
            let Ok(Some(study)) = self.store.study(uid).await else {
                continue;
            };
            let Ok(stored) = self
                .store
                .read(ResourceType::ImagingStudy, &study.imaging_study_id)
                .await
            else {
                continue;
            };
            let subject = stored
                .content
                .as_deref()
                .and_then(|c| serde_json::from_str::<serde_json::Value>(c).ok())
                .and_then(|v| v["subject"]["reference"].as_str().map(str::to_owned));
            if let Some(id) = subject.as_deref().and_then(|r| r.strip_prefix("Patient/")) {
                patients.push(id.to_owned());
            }
        }
        patients.sort();
        patients.dedup();
        patients
    }

    /// Study-level query over the DICOM store (QIDO-RS).
    pub async fn find_studies(
        &self,
        filter: &StudyFilter,
    ) -> Result<Vec<StudySummary>, PipelineError> {
        Ok(self.store.find_studies(filter).await?)
    }

    async fn write_imaging_study(&self, study: &StoredStudy) -> Result<(), PipelineError> {
        let mut tx = self.store.begin().await?;
        let patient = self.patient_for(&mut tx, study).await?;
        let content = ImagingStudyContent {
            id: &study.imaging_study_id,
            study_uid: &study.study_uid,
            study: &study.study,
            patient: &patient,
            series: study
                .series
                .iter()
                .map(|s| SeriesContent {
                    uid: &s.series_uid,
                    attributes: &s.attributes,
                    instances: s
                        .instances
                        .iter()
                        .map(|i| (&i.sop_instance_uid, &i.sop_class_uid, i.instance_number))
                        .collect(),
                })
                .collect(),
        };
        let resource = object(report::imaging_study(&content)?);
        validate_resource(&resource, Some(ResourceType::ImagingStudy))?;
        update_in(
            &mut tx,
            ResourceType::ImagingStudy,
            &study.imaging_study_id,
            resource,
            None,
        )
        .await?;
        tx.commit().await?;
        tracing::info!(
            study_uid = %study.study_uid,
            imaging_study = %study.imaging_study_id,
            series = study.series.len(),
            "ImagingStudy updated"
        );
        Ok(())
    }

    /// The Patient a study belongs to: the one carrying its DICOM Patient ID under the
    /// configured system; else the only Patient carrying that value under any system; else a
    /// new Patient made from the study's patient attributes.
    async fn patient_for(
        &self,
        tx: &mut StoreTransaction,
        study: &StoredStudy,
    ) -> Result<ResourceId, PipelineError> {
        // Type 2 in DICOM: it may be empty. Such a study gets a Patient of its own, identified
        // by the study's UID, rather than being merged with other anonymous studies.
        let (system, value) = match study.patient.id.as_deref() {
            Some(id) => (self.imaging.patient_id_system.as_deref(), id.to_owned()),
            None => (Some(DICOM_UID_SYSTEM), study.study_uid.urn()),
        };
        if let Some(found) = find_patient(tx, system, &value).await? {
            return Ok(found.id);
        }
        let id = ResourceId::generate();
        let resource = object(report::patient_from_dicom(
            &id,
            system,
            &value,
            &study.patient,
        )?);
        validate_resource(&resource, Some(ResourceType::Patient))?;
        update_in(tx, ResourceType::Patient, &id, resource, None).await?;
        tracing::info!(patient = %id, study_uid = %study.study_uid, "Patient created from DICOM");
        Ok(id)
    }
}
