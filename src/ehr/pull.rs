//! Gathering what the EHR knows about one patient: the Patient, its Observations sorted into
//! labs, vital signs, tumour markers (ER, PR, HER2, Ki-67 as mCODE codes them) and genomic
//! variants (Genomics Reporting), Conditions, treatments (MedicationRequest,
//! MedicationStatement, MedicationAdministration, Procedure), notes (DocumentReference,
//! DiagnosticReport) and ImagingStudy. The searches run concurrently; one that fails is named in `missing` and the
//! rest are kept (partial data), except the Patient itself, without which there is nothing.

use serde_json::Value;

use super::{EhrError, FhirClient, Searched};
use crate::fhir::codes::{STAGE_GROUPS, STAGING, TUMOUR_MARKERS, VARIANT};
use crate::fhir::json::{codes_of, reference};

/// Something the pull could not get, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Missing {
    /// What was asked for (`Condition`, `DocumentReference` …).
    pub what: String,
    pub reason: String,
}

/// What the EHR gave for one patient.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PatientRecord {
    pub patient: Value,
    pub labs: Vec<Value>,
    pub vital_signs: Vec<Value>,
    pub tumour_markers: Vec<Value>,
    /// TNM stage groups (mCODE).
    pub staging: Vec<Value>,
    pub variants: Vec<Value>,
    /// Observations of other kinds (TNM categories, social history …).
    pub other_observations: Vec<Value>,
    pub conditions: Vec<Value>,
    /// Medication orders, statements and administrations, and procedures.
    pub treatments: Vec<Value>,
    pub documents: Vec<Value>,
    pub reports: Vec<Value>,
    pub imaging_studies: Vec<Value>,
    pub missing: Vec<Missing>,
    /// Searches whose pages gave fewer matches than the total the server announced.
    pub incomplete: Vec<Missing>,
}

/// Pulls patient `id`. Fails only when the Patient cannot be read.
pub async fn pull_patient(client: &FhirClient, id: &str) -> Result<PatientRecord, EhrError> {
    let patient = client.read("Patient", id).await?;
    let subject = format!("Patient/{id}");
    let count = client.page_size().to_string();
    let by_patient = [("patient", subject.as_str()), ("_count", count.as_str())];
    let (observations, conditions, documents, reports, studies) = tokio::join!(
        client.search_all("Observation", &by_patient),
        client.search_all("Condition", &by_patient),
        client.search_all("DocumentReference", &by_patient),
        client.search_all("DiagnosticReport", &by_patient),
        client.search_all("ImagingStudy", &by_patient),
    );
    let treatment_searches = tokio::join!(
        client.search_all("MedicationRequest", &by_patient),
        client.search_all("MedicationStatement", &by_patient),
        client.search_all("MedicationAdministration", &by_patient),
        client.search_all("Procedure", &by_patient),
    );
    let mut record = PatientRecord {
        patient,
        ..PatientRecord::default()
    };
    let mut keep = |what: &str, result: Result<Searched, EhrError>| match result {
        Ok(found) => {
            if let Some((announced, given)) = found.shortfall {
                tracing::warn!(
                    what,
                    announced,
                    given,
                    "an EHR search gave fewer than its total"
                );
                record.incomplete.push(Missing {
                    what: what.to_owned(),
                    reason: format!(
                        "the server announced {announced} matches and its pages gave {given}"
                    ),
                });
            }
            found.resources
        }
        Err(e) => {
            tracing::warn!(what, error = %e, "part of a patient pull failed");
            record.missing.push(Missing {
                what: what.to_owned(),
                reason: e.to_string(),
            });
            Vec::new()
        }
    };
    let observations = keep("Observation", observations);
    let conditions = keep("Condition", conditions);
    let documents = keep("DocumentReference", documents);
    let reports = keep("DiagnosticReport", reports);
    let studies = keep("ImagingStudy", studies);
    let (requests, statements, administrations, procedures) = treatment_searches;
    record.treatments = [
        keep("MedicationRequest", requests),
        keep("MedicationStatement", statements),
        keep("MedicationAdministration", administrations),
        keep("Procedure", procedures),
    ]
    .into_iter()
    .flatten()
    .collect();
    for observation in observations {
        let code = codes_of(&observation["code"]);
        let category: Vec<String> = observation["category"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(codes_of)
            .collect();
        let code: Vec<&str> = code.iter().map(String::as_str).collect();
        let category: Vec<&str> = category.iter().map(String::as_str).collect();
        if code.contains(&VARIANT) {
            record.variants.push(observation);
        } else if code.iter().any(|c| TUMOUR_MARKERS.contains(c)) {
            record.tumour_markers.push(observation);
        } else if code
            .iter()
            .any(|c| STAGING.contains(c) || STAGE_GROUPS.iter().any(|(s, _)| s == c))
        {
            record.staging.push(observation);
        } else if category.contains(&"vital-signs") {
            record.vital_signs.push(observation);
        } else if category.contains(&"laboratory") {
            record.labs.push(observation);
        } else {
            record.other_observations.push(observation);
        }
    }
    record.conditions = conditions;
    record.documents = documents;
    record.reports = reports;
    fetch_attachments(client, &mut record).await;
    record.imaging_studies = studies;
    tracing::info!(
        patient = id,
        labs = record.labs.len(),
        vital_signs = record.vital_signs.len(),
        tumour_markers = record.tumour_markers.len(),
        staging = record.staging.len(),
        variants = record.variants.len(),
        conditions = record.conditions.len(),
        treatments = record.treatments.len(),
        documents = record.documents.len(),
        reports = record.reports.len(),
        imaging_studies = record.imaging_studies.len(),
        missing = record.missing.len(),
        "patient pulled from the EHR"
    );
    Ok(record)
}

impl PatientRecord {
    /// Every resource gathered, the Patient first.
    pub fn resources(&self) -> impl Iterator<Item = &Value> {
        std::iter::once(&self.patient).chain(
            [
                &self.labs,
                &self.vital_signs,
                &self.tumour_markers,
                &self.staging,
                &self.variants,
                &self.other_observations,
                &self.conditions,
                &self.treatments,
                &self.documents,
                &self.reports,
                &self.imaging_studies,
            ]
            .into_iter()
            .flatten(),
        )
    }
}

/// Notes given by URL (DocumentReference.content.attachment.url,
/// DiagnosticReport.presentedForm.url) are fetched and put inline (`data`), so that the record
/// holds their text; one that cannot be fetched is named in `missing`.
async fn fetch_attachments(client: &FhirClient, record: &mut PatientRecord) {
    let mut missing = Vec::new();
    let notes = record.documents.iter_mut().chain(record.reports.iter_mut());
    for (source, attachment) in notes.flat_map(attachments) {
        let wanted = attachment.get("data").is_none()
            && attachment
                .get("contentType")
                .and_then(Value::as_str)
                .is_none_or(|t| t.starts_with("text/"));
        let Some(url) = attachment
            .get("url")
            .and_then(Value::as_str)
            .filter(|_| wanted)
        else {
            continue;
        };
        match client.fetch_attachment(url).await {
            Ok((content_type, data)) => {
                attachment["data"] = Value::String(data);
                if attachment.get("contentType").is_none()
                    && let Some(content_type) = content_type
                {
                    attachment["contentType"] = Value::String(content_type);
                }
            }
            Err(e) => {
                tracing::warn!(source = %source, error = %e, "a note could not be fetched");
                missing.push(Missing {
                    what: format!("{source} attachment"),
                    reason: e.to_string(),
                });
            }
        }
    }
    record.missing.extend(missing);
}

/// A note resource's attachments with its reference: DocumentReference.content.attachment,
/// DiagnosticReport.presentedForm.
fn attachments(resource: &mut Value) -> Vec<(String, &mut Value)> {
    let source = reference(resource);
    let (list, inner) = match resource["resourceType"].as_str() {
        Some("DocumentReference") => ("content", Some("attachment")),
        _ => ("presentedForm", None),
    };
    resource
        .get_mut(list)
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(|item| match inner {
            Some(field) => item.get_mut(field),
            None => Some(item),
        })
        .map(|a| (source.clone(), a))
        .collect()
}
