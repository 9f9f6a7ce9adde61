//! Reading requests the same way on every route: bodies up to a limit, query strings as pairs.

use actix_web::HttpRequest;
use actix_web::http::header;
use actix_web::web::{self, Payload};
use futures_util::StreamExt;

use super::{ApiError, ApiState};
use crate::error::ErrorKind;

/// The most memory taken for a body before its bytes arrive, whatever `Content-Length` says.
const INITIAL_CAPACITY: usize = 1024 * 1024;

/// Reads the request body up to `limit` bytes. A `Content-Length` over the limit is refused
/// before any of the body is read; a body that pauses longer than `server.body_timeout_secs`
/// between two pieces is answered 408.
pub(super) async fn read_body(
    req: &HttpRequest,
    payload: Payload,
    limit: usize,
) -> Result<Vec<u8>, ApiError> {
    let mut reader = BodyReader::new(req, payload, limit)?;
    let mut body = Vec::with_capacity(reader.declared.map_or(0, |n| n.min(INITIAL_CAPACITY)));
    while let Some(chunk) = reader.next_chunk().await? {
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A request body read piece by piece as it arrives, under the same rules as [`read_body`]:
/// for a handler that uses each piece without holding the whole body.
pub(super) struct BodyReader {
    payload: Payload,
    limit: usize,
    read: usize,
    declared: Option<usize>,
    pause: std::time::Duration,
}

impl BodyReader {
    /// Refuses a `Content-Length` over `limit` before anything is read.
    pub(super) fn new(req: &HttpRequest, payload: Payload, limit: usize) -> Result<Self, ApiError> {
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|length| length > limit as u64) {
            return Err(too_large(limit));
        }
        let pause = req
            .app_data::<web::Data<ApiState>>()
            .map_or(DEFAULT_BODY_TIMEOUT, |state| state.body_timeout);
        Ok(Self {
            payload,
            limit,
            read: 0,
            declared: declared.map(|n| n as usize),
            pause,
        })
    }

    /// The next piece of the body; `None` at its end. Past the limit: 413; a pause longer than
    /// the body timeout: 408.
    pub(super) async fn next_chunk(&mut self) -> Result<Option<web::Bytes>, ApiError> {
        let next = tokio::time::timeout(self.pause, self.payload.next())
            .await
            .map_err(|_| {
                ApiError::new(
                    ErrorKind::TimedOut,
                    format!(
                        "the request body stopped arriving (nothing for {} s)",
                        self.pause.as_secs()
                    ),
                )
            })?;
        let Some(chunk) = next else {
            return Ok(None);
        };
        let chunk = chunk
            .map_err(|_| ApiError::new(ErrorKind::Invalid, "request body could not be read"))?;
        self.read += chunk.len();
        if self.read > self.limit {
            return Err(too_large(self.limit));
        }
        Ok(Some(chunk))
    }
}

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        ErrorKind::PayloadTooLarge,
        format!("request body exceeds the limit of {limit} bytes"),
    )
}

/// The pause allowed when no state is configured (the default of `server.body_timeout_secs`).
const DEFAULT_BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The query string as name/value pairs, in order.
pub(super) fn query_pairs(req: &HttpRequest) -> Vec<(String, String)> {
    url::form_urlencoded::parse(req.query_string().as_bytes())
        .into_owned()
        .collect()
}
