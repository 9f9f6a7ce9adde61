//! CORS: closed unless `server.cors_origins` names the web origins whose pages may call the API
//! (an EHR's SMART app host, say). A preflight from one of them is answered here, before any
//! token is asked for, as the Fetch standard needs; a request from any other origin is served
//! as usual but without CORS headers, so the browser keeps its page from reading the answer.
//! Tokens travel in `Authorization`, never in cookies, so credentials are not allowed.

use actix_cors::Cors;
use actix_web::http::header;
use actix_web::middleware::Condition;

use super::REQUEST_ID_HEADER;

/// How long a browser may reuse a preflight's answer.
const PREFLIGHT_MAX_AGE_SECS: usize = 600;

/// The CORS middleware for `origins` (as [`crate::config::Settings::cors_origins`] gives them);
/// none at all when there are none.
pub fn cors(origins: &[String]) -> Condition<Cors> {
    let mut cors = Cors::default()
        .allowed_methods(["GET", "POST", "PUT", "DELETE"])
        .allowed_headers([
            header::AUTHORIZATION,
            header::ACCEPT,
            header::CONTENT_TYPE,
            header::IF_MATCH,
            header::IF_NONE_MATCH,
            header::HeaderName::from_static("if-none-exist"),
            header::HeaderName::from_static("prefer"),
            header::HeaderName::from_static(REQUEST_ID_HEADER),
        ])
        .expose_headers([
            header::LOCATION,
            header::CONTENT_LOCATION,
            header::ETAG,
            header::LAST_MODIFIED,
            header::RETRY_AFTER,
            header::WWW_AUTHENTICATE,
            header::HeaderName::from_static(REQUEST_ID_HEADER),
        ])
        .max_age(PREFLIGHT_MAX_AGE_SECS);
    for origin in origins {
        cors = cors.allowed_origin(origin);
    }
    Condition::new(!origins.is_empty(), cors)
}
