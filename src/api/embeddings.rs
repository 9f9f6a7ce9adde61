//! Image embeddings over HTTP: embed an uploaded DICOM file on the spot
//! (`POST /embeddings/image`, through the batching queue; 429 when it is full), and read the
//! pooled embeddings of a stored study (`GET /embeddings/studies/{study}`).

use actix_web::http::header;
use actix_web::web::{Data, Path, Payload};
use actix_web::{HttpRequest, HttpResponse, get, post};
use serde::Serialize;
use utoipa::ToSchema;

use super::{ApiError, ApiState, read_body};
use crate::domain::DicomUid;
use crate::error::ErrorKind;

/// How pooled embeddings are made; shown with every study's embeddings.
const POOLING: &str = "mean: an instance is the mean of its frames, a series the mean of its \
    instances, a study the mean of its series";

/// One image's embedding.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageEmbeddingBody {
    /// The image encoder's name in the model manifest.
    model: String,
    model_version: String,
    /// Frames in the file; the embedding is their mean.
    frames: usize,
    embedding: Vec<f32>,
}

/// A study's pooled embeddings by the loaded image encoder.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StudyEmbeddingBody {
    study_instance_uid: String,
    model: String,
    model_version: String,
    pooling: &'static str,
    /// `complete`, `pending` (instances still being embedded) or `none` (nothing embeddable).
    status: &'static str,
    pending_instances: i64,
    instance_count: i64,
    series_count: i64,
    /// Absent until at least one instance is embedded.
    embedding: Option<Vec<f32>>,
    series: Vec<SeriesEmbeddingBody>,
    failed_instances: Vec<FailedInstanceBody>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SeriesEmbeddingBody {
    series_instance_uid: String,
    instance_count: i64,
    embedding: Vec<f32>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FailedInstanceBody {
    sop_instance_uid: String,
    reason: String,
}

/// Embed one DICOM Part 10 file with the image encoder; nothing is stored. Requests are batched
/// with others on the inference thread.
#[utoipa::path(
    tag = "Embeddings",
    request_body(content = Vec<u8>, content_type = "application/dicom", description = "A DICOM Part 10 file"),
    responses(
        (status = 200, description = "The file's embedding (mean over its frames)", body = ImageEmbeddingBody),
        (status = 400, description = "Not a DICOM file", body = Object, content_type = "application/fhir+json"),
        (status = 413, description = "Body over the configured limit", body = Object, content_type = "application/fhir+json"),
        (status = 415, description = "Not application/dicom", body = Object, content_type = "application/fhir+json"),
        (status = 422, description = "The pixel data cannot be decoded", body = Object, content_type = "application/fhir+json"),
        (status = 429, description = "The inference queue is full; retry later", body = Object, content_type = "application/fhir+json"),
        (status = 503, description = "No image encoder is loaded", body = Object, content_type = "application/fhir+json"),
    )
)]
#[post("/image")]
pub async fn embed_image(
    req: HttpRequest,
    state: Data<ApiState>,
    payload: Payload,
) -> Result<HttpResponse, ApiError> {
    let media = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    if media.as_deref() != Some("application/dicom") {
        return Err(ApiError::new(
            ErrorKind::UnsupportedMediaType,
            "send one DICOM Part 10 file as application/dicom",
        ));
    }
    let body = read_body(&req, payload, state.dicomweb_max_body_bytes).await?;
    let embedding = state.pipeline.embed_upload(body).await?;
    Ok(HttpResponse::Ok().json(ImageEmbeddingBody {
        model: embedding.model,
        model_version: embedding.model_version,
        frames: embedding.frames,
        embedding: embedding.embedding,
    }))
}

/// A stored study's embedding (and its series') by the loaded image encoder, with what is still
/// being embedded and what failed.
#[utoipa::path(
    tag = "Embeddings",
    params(("study" = String, Path, description = "Study Instance UID")),
    responses(
        (status = 200, description = "The study's embeddings", body = StudyEmbeddingBody),
        (status = 400, description = "Invalid Study Instance UID", body = Object, content_type = "application/fhir+json"),
        (status = 404, description = "No such study", body = Object, content_type = "application/fhir+json"),
        (status = 503, description = "No image encoder is loaded", body = Object, content_type = "application/fhir+json"),
    )
)]
#[get("/studies/{study}")]
pub async fn study_embeddings(
    state: Data<ApiState>,
    path: Path<String>,
) -> Result<HttpResponse, ApiError> {
    let study_uid = DicomUid::parse(&path.into_inner())
        .map_err(|e| ApiError::new(ErrorKind::Invalid, e.to_string()))?;
    let Some(report) = state.pipeline.study_embeddings(&study_uid).await? else {
        return Err(ApiError::new(
            ErrorKind::NotFound,
            format!("study {study_uid} has not been received"),
        ));
    };
    let e = report.embeddings;
    let pooled = e.study.as_ref().map_or(0, |s| s.instances);
    let status = if e.pending > 0 || e.embedded != pooled {
        // Instances wait to be embedded, or embedded ones to be pooled.
        "pending"
    } else if e.embedded == 0 {
        "none"
    } else {
        "complete"
    };
    let (embedding, instance_count, series_count) = match e.study {
        Some(s) => (
            Some(s.embedding),
            s.instances,
            s.series_count.unwrap_or_default(),
        ),
        None => (None, 0, 0),
    };
    Ok(HttpResponse::Ok().json(StudyEmbeddingBody {
        study_instance_uid: study_uid.to_string(),
        model: report.model.name,
        model_version: report.model.version,
        pooling: POOLING,
        status,
        pending_instances: e.pending,
        instance_count,
        series_count,
        embedding,
        series: e
            .series
            .into_iter()
            .map(|s| SeriesEmbeddingBody {
                series_instance_uid: s.uid.to_string(),
                instance_count: s.instances,
                embedding: s.embedding,
            })
            .collect(),
        failed_instances: e
            .failed
            .into_iter()
            .map(|(uid, reason)| FailedInstanceBody {
                sop_instance_uid: uid.to_string(),
                reason,
            })
            .collect(),
    }))
}
