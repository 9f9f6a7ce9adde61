//! The FHIR R4 REST API under `/fhir`: content negotiation, request bodies, `Prefer`, and the
//! handlers, one file per group of interactions. Handlers stay thin: parse the request into
//! domain types, make one pipeline or store call, and shape the HTTP response.

mod bundle;
mod instance;
mod metadata;
mod negotiation;
mod search;
mod type_level;

use actix_web::HttpRequest;
use actix_web::http::header;
use actix_web::web::Data;
use futures_util::StreamExt;

pub use negotiation::{Preferences, content_negotiation_middleware};

use super::ApiState;
use super::error::ApiError;
use crate::domain::{ResourceId, ResourceType};
use crate::error::ErrorKind;

pub(crate) use bundle::post_bundle;
pub(crate) use instance::{delete_resource, history, read, update, vread};
pub(crate) use metadata::metadata as capabilities;
pub(crate) use search::search as search_type;
pub(crate) use type_level::create;

/// The FHIR base URL for links: the configured one, or this request's scheme and host.
fn base_url(req: &HttpRequest, state: &ApiState) -> String {
    match &state.base_url {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => {
            let info = req.connection_info();
            format!("{}://{}/fhir", info.scheme(), info.host())
        }
    }
}

fn resource_type(raw: &str) -> Result<ResourceType, ApiError> {
    raw.parse().map_err(|_| {
        ApiError::new(
            ErrorKind::NotFound,
            format!(
                "resource type {} is not served here; see /fhir/metadata",
                raw.chars().take(64).collect::<String>()
            ),
        )
    })
}

fn resource_id(raw: &str) -> Result<ResourceId, ApiError> {
    ResourceId::parse(raw).map_err(|e| ApiError::new(ErrorKind::Invalid, e.to_string()))
}

/// Reads the request body up to the configured limit. A `Content-Length` over the limit is
/// refused before any of the body is read.
async fn read_body(
    req: &HttpRequest,
    mut payload: actix_web::web::Payload,
    state: &Data<ApiState>,
) -> Result<Vec<u8>, ApiError> {
    let limit = state.max_body_bytes;
    let too_large = || {
        ApiError::new(
            ErrorKind::PayloadTooLarge,
            format!("request body exceeds the limit of {limit} bytes"),
        )
    };
    if let Some(length) = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && length > limit as u64
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk
            .map_err(|_| ApiError::new(ErrorKind::Invalid, "request body could not be read"))?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The query string as name/value pairs, in order.
fn query_pairs(req: &HttpRequest) -> Vec<(String, String)> {
    url::form_urlencoded::parse(req.query_string().as_bytes())
        .into_owned()
        .collect()
}
