//! A request id on every request and response (`X-Request-Id`, taken from the caller when it is
//! a plausible id, else generated), one span per request, and one log line per response with
//! method, route pattern, status and latency. Query strings are never logged: they may carry
//! patient identifiers.

use std::time::Instant;

use crate::metrics::{METRICS, ResponseLabels, RouteLabels};

use actix_web::HttpMessage;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use tracing::Instrument;

use crate::telemetry::with_request_id;

pub const REQUEST_ID_HEADER: &str = "x-request-id";

fn incoming_id(req: &ServiceRequest) -> Option<String> {
    let value = req.headers().get(REQUEST_ID_HEADER)?.to_str().ok()?;
    let plausible = !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    plausible.then(|| value.to_owned())
}

/// The route pattern a request matched (`/fhir/{resource_type}/{id}`), found once per request:
/// finding it walks the routes again, and every middleware asks.
#[derive(Clone)]
struct RoutePattern(Option<std::rc::Rc<str>>);

pub fn route_pattern(req: &ServiceRequest) -> Option<std::rc::Rc<str>> {
    if let Some(RoutePattern(found)) = req.extensions().get::<RoutePattern>() {
        return found.clone();
    }
    let found: Option<std::rc::Rc<str>> = req.match_pattern().map(Into::into);
    req.extensions_mut().insert(RoutePattern(found.clone()));
    found
}

pub async fn request_id_middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = incoming_id(&req).unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let method = req.method().to_string();
    let pattern = route_pattern(&req);
    let route = pattern.as_deref().unwrap_or("unmatched").to_owned();
    let span = tracing::info_span!("request", request_id = %id, method = %method, route = %route);
    let started = Instant::now();
    let result = with_request_id(id.clone(), next.call(req))
        .instrument(span.clone())
        .await;
    let elapsed = started.elapsed().as_secs_f64();
    let latency_ms = elapsed * 1000.0;
    let _entered = span.enter();
    let mut labels = RouteLabels { route, method };
    METRICS
        .http_duration
        .get_or_create(&labels)
        .observe(elapsed);
    match result {
        Ok(mut response) => {
            let status = response.status().as_u16();
            METRICS
                .http_requests
                .get_or_create(&ResponseLabels {
                    route: std::mem::take(&mut labels.route),
                    method: std::mem::take(&mut labels.method),
                    status,
                })
                .inc();
            if let Ok(value) = HeaderValue::from_str(&id) {
                response
                    .headers_mut()
                    .insert(HeaderName::from_static(REQUEST_ID_HEADER), value);
            }
            if status >= 500 {
                tracing::warn!(status, latency_ms, "request served");
            } else {
                tracing::info!(status, latency_ms, "request served");
            }
            Ok(response)
        }
        Err(e) => {
            tracing::warn!(latency_ms, "request failed before a response");
            Err(e)
        }
    }
}
