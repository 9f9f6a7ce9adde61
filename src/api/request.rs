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
    mut payload: Payload,
    limit: usize,
) -> Result<Vec<u8>, ApiError> {
    let too_large = || {
        ApiError::new(
            ErrorKind::PayloadTooLarge,
            format!("request body exceeds the limit of {limit} bytes"),
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(too_large());
    }
    let pause = req
        .app_data::<web::Data<ApiState>>()
        .map_or(DEFAULT_BODY_TIMEOUT, |state| state.body_timeout);
    let mut body = Vec::with_capacity(declared.map_or(0, |n| (n as usize).min(INITIAL_CAPACITY)));
    loop {
        let next = tokio::time::timeout(pause, payload.next())
            .await
            .map_err(|_| {
                ApiError::new(
                    ErrorKind::TimedOut,
                    format!(
                        "the request body stopped arriving (nothing for {} s)",
                        pause.as_secs()
                    ),
                )
            })?;
        let Some(chunk) = next else {
            return Ok(body);
        };
        let chunk = chunk
            .map_err(|_| ApiError::new(ErrorKind::Invalid, "request body could not be read"))?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
}

/// The pause allowed when no state is configured (the default of `server.body_timeout_secs`).
const DEFAULT_BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The query string as name/value pairs, in order.
pub(super) fn query_pairs(req: &HttpRequest) -> Vec<(String, String)> {
    url::form_urlencoded::parse(req.query_string().as_bytes())
        .into_owned()
        .collect()
}
