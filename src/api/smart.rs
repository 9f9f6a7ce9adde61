//! How a client finds out how to get a token: `/.well-known/smart-configuration` (SMART App
//! Launch 2.x) republishes the trusted authorization server's endpoints with what this service
//! accepts, and the CapabilityStatement's `rest.security` says the same in FHIR.

use actix_web::web::Data;
use actix_web::{HttpResponse, ResponseError, get};
use serde_json::{Value, json};

use super::access::AccessMode;
use super::{ApiError, ApiState};
use crate::error::ErrorKind;

/// SMART capabilities this resource server honours.
const CAPABILITIES: &[&str] = &[
    "launch-standalone",
    "launch-ehr",
    "client-public",
    "client-confidential-symmetric",
    "client-confidential-asymmetric",
    "context-standalone-patient",
    "context-ehr-patient",
    "permission-patient",
    "permission-user",
    "permission-v1",
    "permission-v2",
];

/// The first trusted issuer's discovery document, when SMART authorization is on and the
/// issuer answers.
pub async fn issuer_discovery(state: &ApiState) -> Option<Value> {
    let AccessMode::Tokens(verifier) = &state.access.mode else {
        return None;
    };
    let issuer = verifier.keys().issuers().next()?;
    match verifier.keys().discovery(&issuer.issuer.issuer).await {
        Ok(document) => Some(document),
        Err(e) => {
            tracing::warn!(error = %e, "the issuer's discovery document could not be fetched");
            None
        }
    }
}

/// The issuer's `token`, `authorize`, `introspect` (and other) endpoints.
pub fn oauth_endpoints(discovery: &Value) -> Vec<(&'static str, String)> {
    [
        ("authorize", "authorization_endpoint"),
        ("token", "token_endpoint"),
        ("introspect", "introspection_endpoint"),
        ("revoke", "revocation_endpoint"),
    ]
    .into_iter()
    .filter_map(|(name, key)| Some((name, discovery.get(key)?.as_str()?.to_owned())))
    .collect()
}

/// The SMART configuration of this FHIR server.
#[utoipa::path(
    tag = "Authorization",
    responses(
        (status = 200, description = "Where to get an access token, and which scopes and capabilities this server honours", body = Object, content_type = "application/json"),
        (status = 404, description = "No authorization is configured", body = Object, content_type = "application/fhir+json"),
        (status = 503, description = "The authorization server's discovery document could not be fetched", body = Object, content_type = "application/fhir+json"),
    )
)]
#[get("/.well-known/smart-configuration")]
pub async fn smart_configuration(state: Data<ApiState>) -> HttpResponse {
    if !matches!(state.access.mode, AccessMode::Tokens(_)) {
        return ApiError::new(
            ErrorKind::NotFound,
            "no authorization is configured (auth.mode is not \"smart\"), so there is no SMART \
             configuration",
        )
        .error_response();
    }
    let Some(discovery) = issuer_discovery(&state).await else {
        return ApiError::new(
            ErrorKind::Unavailable,
            "the authorization server's discovery document could not be fetched",
        )
        .error_response();
    };
    let copy = |key: &str| discovery.get(key).cloned().unwrap_or(Value::Null);
    let mut out = json!({
        "issuer": copy("issuer"),
        "jwks_uri": copy("jwks_uri"),
        "authorization_endpoint": copy("authorization_endpoint"),
        "token_endpoint": copy("token_endpoint"),
        "grant_types_supported": copy("grant_types_supported"),
        "token_endpoint_auth_methods_supported": copy("token_endpoint_auth_methods_supported"),
        "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
        "introspection_endpoint": copy("introspection_endpoint"),
        "revocation_endpoint": copy("revocation_endpoint"),
        "code_challenge_methods_supported": ["S256"],
        "response_types_supported": ["code"],
        "scopes_supported": [
            "openid", "fhirUser", "launch", "launch/patient", "offline_access",
            "patient/*.rs", "user/*.cruds", "system/*.cruds",
            "patient/*.read", "user/*.read", "user/*.write", "system/*.read", "system/*.write"
        ],
        "capabilities": CAPABILITIES,
    });
    if let Some(map) = out.as_object_mut() {
        map.retain(|_, v| !v.is_null());
    }
    HttpResponse::Ok().json(out)
}
