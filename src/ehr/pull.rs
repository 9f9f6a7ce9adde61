//! Gathering what the EHR knows about one patient: the Patient, its Observations sorted into
//! labs, vital signs, tumour markers (ER, PR, HER2, Ki-67 as mCODE codes them) and genomic
//! variants (Genomics Reporting), Conditions, notes (DocumentReference, DiagnosticReport) and
//! ImagingStudy. The searches run concurrently; one that fails is named in `missing` and the
//! rest are kept (partial data), except the Patient itself, without which there is nothing.

use serde_json::Value;

use super::{EhrError, FhirClient};

/// LOINC codes of the tumour markers mCODE models (receptor status and Ki-67).
const TUMOUR_MARKERS: &[&str] = &[
    "16112-5", "85337-4", "40556-3", // oestrogen receptor
    "16113-3", "85339-0", "40557-1", // progesterone receptor
    "48676-1", "85319-2", "85318-4", "18474-7", "72383-3", // HER2
    "85330-9", "29593-9", // Ki-67
];
/// LOINC 69548-6, "Genetic variant assessment": the code of a Genomics Reporting variant.
const VARIANT: &str = "69548-6";

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
    pub variants: Vec<Value>,
    /// Observations of other kinds (staging, social history …).
    pub other_observations: Vec<Value>,
    pub conditions: Vec<Value>,
    pub documents: Vec<Value>,
    pub reports: Vec<Value>,
    pub imaging_studies: Vec<Value>,
    pub missing: Vec<Missing>,
}

fn codes<'a>(resource: &'a Value, path: &str) -> impl Iterator<Item = &'a str> {
    resource
        .pointer(path)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("code").and_then(Value::as_str))
}

fn categories(observation: &Value) -> Vec<&str> {
    observation
        .get("category")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .flat_map(|c| codes(c, "/coding"))
        .collect()
}

/// Pulls patient `id`. Fails only when the Patient cannot be read.
pub async fn pull_patient(client: &FhirClient, id: &str) -> Result<PatientRecord, EhrError> {
    let patient = client.read("Patient", id).await?;
    let subject = format!("Patient/{id}");
    let by_patient = [("patient", subject.as_str()), ("_count", "100")];
    let (observations, conditions, documents, reports, studies) = tokio::join!(
        client.search_all("Observation", &by_patient),
        client.search_all("Condition", &by_patient),
        client.search_all("DocumentReference", &by_patient),
        client.search_all("DiagnosticReport", &by_patient),
        client.search_all("ImagingStudy", &by_patient),
    );
    let mut record = PatientRecord {
        patient,
        ..PatientRecord::default()
    };
    let mut keep = |what: &str, result: Result<Vec<Value>, EhrError>| match result {
        Ok(found) => found,
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
    for observation in observations {
        let code: Vec<&str> = codes(&observation, "/code/coding").collect();
        let category = categories(&observation);
        if code.contains(&VARIANT) {
            record.variants.push(observation);
        } else if code.iter().any(|c| TUMOUR_MARKERS.contains(c)) {
            record.tumour_markers.push(observation);
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
    record.imaging_studies = studies;
    tracing::info!(
        patient = id,
        labs = record.labs.len(),
        vital_signs = record.vital_signs.len(),
        tumour_markers = record.tumour_markers.len(),
        variants = record.variants.len(),
        conditions = record.conditions.len(),
        documents = record.documents.len(),
        reports = record.reports.len(),
        imaging_studies = record.imaging_studies.len(),
        missing = record.missing.len(),
        "patient pulled from the EHR"
    );
    Ok(record)
}
