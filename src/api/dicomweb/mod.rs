//! DICOMweb: STOW-RS (`POST /dicomweb/studies[/{study}]`) and the study-level QIDO-RS search
//! (`GET /dicomweb/studies`). Per-instance outcomes are answered in DICOM JSON; a request that
//! cannot be read at all (media type, multipart framing, size) is answered with an
//! OperationOutcome like every other error of the service.

mod json;
mod multipart;

use actix_web::http::header;
use actix_web::web::{Bytes, Data, Path, Payload};
use actix_web::{HttpRequest, HttpResponse, get, post};
use serde_json::Value;

use super::request::BodyReader;
use super::{Access, ApiError, ApiState};
use crate::domain::DicomUid;
use crate::error::ErrorKind;
use crate::pipeline::memory_budget::ARRIVAL_WAIT;
use crate::pipeline::{DicomStatus, Held};
use crate::store::StudyFilter;
use json::{StoreResult, store_response, study_match};

pub const DICOM_JSON: &str = "application/dicom+json";
const QIDO_DEFAULT_LIMIT: u32 = 100;
const QIDO_MAX_LIMIT: u32 = 1000;

/// Store instances (STOW-RS, PS3.18 §10.5) sent as `multipart/related; type="application/dicom"`.
#[utoipa::path(
    tag = "DICOMweb",
    request_body(content = Vec<u8>, content_type = "multipart/related; type=\"application/dicom\"",
        description = "One DICOM Part 10 file per part; each instance is stored as soon as its part has arrived"),
    responses(
        (status = 200, description = "Every instance was stored: Referenced SOP Sequence (0008,1199)", body = Object, content_type = "application/dicom+json"),
        (status = 202, description = "Some instances failed: Failed SOP Sequence (0008,1198) with a Failure Reason (0008,1197) for each; a body broken off after its first part adds one item without UIDs for the unreadable rest. Or some were stored despite a fault in the file: their Referenced SOP Sequence item carries a Warning Reason (0008,1196), B000 (the file meta was inferred) or B006 (bytes after the data set were left out)", body = Object, content_type = "application/dicom+json"),
        (status = 409, description = "No instance was stored", body = Object, content_type = "application/dicom+json"),
        (status = 400, description = "Multipart framing broken before the first part was complete; nothing was stored", body = Object, content_type = "application/fhir+json"),
        (status = 413, description = "Content-Length over the configured limit, or the body ran over it before its first part was complete", body = Object, content_type = "application/fhir+json"),
        (status = 415, description = "Not multipart/related with type application/dicom", body = Object, content_type = "application/fhir+json"),
        (status = 503, description = "Instances arriving over DIMSE and STOW-RS held all the memory they may (dicom.max_buffered_bytes) for 30 s before the first part was complete; nothing was stored", body = Object, content_type = "application/fhir+json"),
    )
)]
#[post("/studies")]
pub async fn store_instances(
    req: HttpRequest,
    state: Data<ApiState>,
    access: Access,
    payload: Payload,
) -> Result<HttpResponse, ApiError> {
    store(req, state, access, payload, None).await
}

/// Store instances of one study (STOW-RS); instances of any other study fail with 0xA900.
#[utoipa::path(
    tag = "DICOMweb",
    params(("study" = String, Path, description = "Study Instance UID")),
    request_body(content = Vec<u8>, content_type = "multipart/related; type=\"application/dicom\""),
    responses(
        (status = 200, description = "Every instance was stored", body = Object, content_type = "application/dicom+json"),
        (status = 202, description = "Some instances failed, or were stored with a Warning Reason (0008,1196)", body = Object, content_type = "application/dicom+json"),
        (status = 409, description = "No instance was stored", body = Object, content_type = "application/dicom+json"),
        (status = 400, description = "Invalid Study Instance UID or broken multipart framing", body = Object, content_type = "application/fhir+json"),
        (status = 503, description = "No memory came free for arriving instances within 30 s; nothing was stored", body = Object, content_type = "application/fhir+json"),
    )
)]
#[post("/studies/{study}")]
pub async fn store_study_instances(
    req: HttpRequest,
    state: Data<ApiState>,
    access: Access,
    path: Path<String>,
    payload: Payload,
) -> Result<HttpResponse, ApiError> {
    let study = DicomUid::parse(&path.into_inner())
        .map_err(|e| ApiError::new(ErrorKind::Invalid, e.to_string()))?;
    store(req, state, access, payload, Some(study)).await
}

async fn store(
    req: HttpRequest,
    state: Data<ApiState>,
    access: Access,
    payload: Payload,
    study: Option<DicomUid>,
) -> Result<HttpResponse, ApiError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let part_type = multipart::parameter(&content_type, "type").map(|t| t.to_ascii_lowercase());
    if essence != "multipart/related"
        || part_type
            .as_deref()
            .is_some_and(|t| t != "application/dicom")
    {
        return Err(ApiError::new(
            ErrorKind::UnsupportedMediaType,
            "STOW-RS takes multipart/related; type=\"application/dicom\" (metadata and bulk data requests are not supported)",
        ));
    }
    let boundary = multipart::boundary(&content_type)
        .map_err(|e| ApiError::new(ErrorKind::Invalid, e.to_string()))?;
    // The body is read as it arrives and each instance stored once its part is complete: a
    // request holds one instance in memory at a time, not the whole study. What it holds is
    // taken from the memory budget DIMSE associations share too: while there is none, the
    // body is not read, and the sender waits.
    let mut body = BodyReader::new(&req, payload, state.dicomweb_max_body_bytes)?;
    let mut reader = multipart::PartReader::new(&boundary);
    let budget = state.pipeline.arriving_instances();
    let mut held: Option<Held> = None;
    let mut results = Vec::new();
    let mut studies = std::collections::BTreeSet::new();
    let broken: Option<ApiError> = loop {
        match reader.next_part() {
            Ok(Some(part)) => {
                let (result, stored_study) = store_part(&state, part, study.as_ref()).await;
                // The part's bytes are gone once it is stored or refused.
                if let Some(held) = held.as_mut() {
                    held.keep_only(reader.buffered());
                }
                studies.extend(stored_study);
                results.push(result);
                continue;
            }
            Ok(None) => {}
            Err(e) => break Some(ApiError::new(ErrorKind::Invalid, e.to_string())),
        }
        match body.next_chunk().await {
            Ok(Some(chunk)) => {
                if !budget.take(&mut held, chunk.len(), ARRIVAL_WAIT).await {
                    break Some(ApiError::new(
                        ErrorKind::Unavailable,
                        "arriving instances hold all the memory the service gives them \
                         (dicom.max_buffered_bytes); try again later",
                    ));
                }
                reader.push(&chunk);
            }
            Ok(None) => {
                break reader
                    .finish()
                    .err()
                    .map(|e| ApiError::new(ErrorKind::Invalid, e.to_string()));
            }
            Err(e) => break Some(e),
        }
    };
    drop(held);
    if let Some(error) = broken {
        // Nothing read yet: the request is refused whole, as before any instance is touched.
        // Otherwise the instances already stored stay stored, and the answer says which were
        // and that the rest of the body could not be read.
        if reader.parts_read() == 0 {
            return Err(error);
        }
        tracing::warn!(parts = reader.parts_read(), error = %error, "STOW-RS body broken off after some of its instances");
        results.push(StoreResult::Failed {
            sop_class_uid: None,
            sop_instance_uid: None,
            reason: DicomStatus::for_kind(error.kind()),
        });
    }

    // The instances are safe whatever happens here; a failed refresh is retried later.
    if let Err(e) = state.pipeline.refresh_imaging_studies().await {
        tracing::error!(error = %e, "ImagingStudy refresh failed; it will be retried");
    }
    // The audit record names the patients the stored studies belong to.
    let studies: Vec<DicomUid> = studies.into_iter().collect();
    for patient in state.pipeline.patients_of_studies(&studies).await {
        access.note_patient(&patient);
    }
    let stored = results
        .iter()
        .filter(|r| matches!(r, StoreResult::Stored { .. }))
        .count();
    // PS3.18 Table 10.5.3-1: 202 when some instances were not stored or were stored with a
    // warning.
    let warned = results.iter().any(|r| {
        matches!(
            r,
            StoreResult::Stored {
                warning: Some(_),
                ..
            }
        )
    });
    let mut response = if stored == results.len() && !warned {
        HttpResponse::Ok()
    } else if stored > 0 {
        HttpResponse::Accepted()
    } else {
        HttpResponse::Conflict()
    };
    Ok(response
        .content_type(DICOM_JSON)
        .body(store_response(&results).to_string()))
}

/// Stores one part's instance: its outcome for the response, and its study when stored.
async fn store_part(
    state: &ApiState,
    part: multipart::Part,
    study: Option<&DicomUid>,
) -> (StoreResult, Option<DicomUid>) {
    let media = part
        .content_type
        .as_deref()
        .map(|t| t.split(';').next().unwrap_or_default().trim().to_owned());
    if media.as_deref().is_some_and(|m| m != "application/dicom") {
        let failed = StoreResult::Failed {
            sop_class_uid: None,
            sop_instance_uid: None,
            reason: DicomStatus::CANNOT_UNDERSTAND,
        };
        return (failed, None);
    }
    match state
        .pipeline
        .ingest_dicom(Vec::from(part.body), study)
        .await
    {
        Ok(stored) => (
            StoreResult::Stored {
                warning: stored.warning(),
                sop_class_uid: stored.sop_class_uid,
                sop_instance_uid: stored.sop_instance_uid,
            },
            Some(stored.study_uid),
        ),
        Err(failure) => {
            tracing::warn!(error = %failure.error, "STOW-RS instance refused");
            let failed = StoreResult::Failed {
                reason: failure.dicom_status(),
                sop_class_uid: failure.sop_class_uid,
                sop_instance_uid: failure.sop_instance_uid,
            };
            (failed, None)
        }
    }
}

/// Search for studies (QIDO-RS, PS3.18 §10.6), matching exactly on `PatientID`,
/// `StudyInstanceUID` and `AccessionNumber` (by keyword or tag), with `limit` and `offset`.
#[utoipa::path(
    tag = "DICOMweb",
    params(
        ("PatientID" = Option<String>, Query, description = "Patient ID (0010,0020), exact match"),
        ("StudyInstanceUID" = Option<String>, Query, description = "Study Instance UID (0020,000D)"),
        ("AccessionNumber" = Option<String>, Query, description = "Accession Number (0008,0050)"),
        ("limit" = Option<u32>, Query, description = "At most this many matches (default 100, at most 1000)"),
        ("offset" = Option<u32>, Query, description = "Skip this many matches"),
    ),
    responses(
        (status = 200, description = "Matching studies as DICOM JSON (an empty array when none match)", body = Vec<Object>, content_type = "application/dicom+json"),
        (status = 400, description = "A matching key or paging value is invalid", body = Object, content_type = "application/fhir+json"),
    )
)]
#[get("/studies")]
pub async fn search_studies(
    req: HttpRequest,
    state: Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    let filter = study_filter(&super::query_pairs(&req))?;
    let matches = state.pipeline.find_studies(&filter).await?;
    let body: Vec<Value> = matches.iter().map(study_match).collect();
    Ok(HttpResponse::Ok()
        .content_type(DICOM_JSON)
        .body(Value::Array(body).to_string()))
}

fn study_filter(params: &[(String, String)]) -> Result<StudyFilter, ApiError> {
    let mut filter = StudyFilter {
        limit: QIDO_DEFAULT_LIMIT,
        ..StudyFilter::default()
    };
    let invalid = |what: &str| ApiError::new(ErrorKind::Invalid, format!("invalid {what}"));
    for (key, value) in params {
        match key.as_str() {
            "PatientID" | "00100020" => filter.patient_id = Some(value.clone()),
            "StudyInstanceUID" | "0020000D" => {
                filter.study_uid =
                    Some(DicomUid::parse(value).map_err(|_| invalid("StudyInstanceUID"))?);
            }
            "AccessionNumber" | "00080050" => filter.accession_number = Some(value.clone()),
            "limit" => {
                filter.limit = value
                    .parse::<u32>()
                    .map_err(|_| invalid("limit"))?
                    .min(QIDO_MAX_LIMIT);
            }
            "offset" => filter.offset = value.parse().map_err(|_| invalid("offset"))?,
            // includefield, fuzzymatching and other keys do not narrow the match.
            _ => {}
        }
    }
    Ok(filter)
}

/// Splits a STOW-RS body as the endpoint does, for the fuzzer: the parts' bodies (none when the
/// framing is broken).
#[doc(hidden)]
pub fn stow_parts(body: &[u8], boundary: &str) -> Vec<Bytes> {
    let body = Bytes::copy_from_slice(body);
    multipart::parse(&body, boundary)
        .map(|parts| parts.into_iter().map(|part| part.body).collect())
        .unwrap_or_default()
}
