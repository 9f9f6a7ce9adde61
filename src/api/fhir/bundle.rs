//! `POST /fhir`: transaction and batch Bundles.

use actix_web::web::{Data, Payload};
use actix_web::{HttpRequest, HttpResponse, post};

use serde_json::Value;

use super::{ApiError, Preferences, base_url, read_body};
use crate::api::error::FHIR_JSON;
use crate::api::{Access, ApiState};
use crate::auth::Interaction;
use crate::domain::ResourceType;

/// Process a transaction (all or nothing) or batch (entry by entry) Bundle.
#[utoipa::path(
    tag = "FHIR",
    request_body(content = Object, content_type = "application/fhir+json", description = "A Bundle of type transaction or batch"),
    params(("Prefer" = Option<String>, Header, description = "return=minimal leaves resources out of the response entries")),
    responses(
        (status = 200, description = "A transaction-response or batch-response Bundle", body = Object, content_type = "application/fhir+json"),
        (status = 400, description = "Not a transaction or batch Bundle, or (transaction) an invalid entry; nothing was written", body = Object, content_type = "application/fhir+json"),
        (status = 404, description = "(transaction) an entry names an unknown resource; nothing was written", body = Object, content_type = "application/fhir+json"),
        (status = 412, description = "(transaction) an entry's precondition failed; nothing was written", body = Object, content_type = "application/fhir+json"),
        (status = 413, description = "Body too large", body = Object, content_type = "application/fhir+json"),
    )
)]
#[post("")]
pub async fn post_bundle(
    req: HttpRequest,
    state: Data<ApiState>,
    access: Access,
    payload: Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(&req, payload, state.max_body_bytes).await?;
    for (t, interaction) in entry_interactions(&body) {
        access.require(t, interaction)?;
    }
    let include = !Preferences::from_request(&req).return_minimal;
    let outcome = state
        .pipeline
        .process_bundle(&body, &base_url(&req, &state), include)
        .await?;
    Ok(HttpResponse::Ok()
        .content_type(FHIR_JSON)
        .body(outcome.body))
}

/// What each entry of a Bundle does: its resource type and interaction, from `request.method`
/// and `request.url`. Entries that name neither are left to the pipeline, which refuses them.
fn entry_interactions(body: &[u8]) -> Vec<(ResourceType, Interaction)> {
    let Ok(bundle) = serde_json::from_slice::<Value>(body) else {
        return Vec::new();
    };
    let Some(entries) = bundle.get("entry").and_then(Value::as_array) else {
        return Vec::new();
    };
    entries
        .iter()
        .filter_map(|entry| {
            let request = entry.get("request")?;
            let url = request.get("url")?.as_str()?;
            let relative = url.rsplit_once("/fhir/").map_or(url, |(_, rest)| rest);
            let relative = relative.trim_start_matches('/');
            let t: ResourceType = relative.split(['/', '?']).next()?.parse().ok()?;
            let interaction = match request.get("method")?.as_str()? {
                "GET" if relative.contains('?') => Interaction::Search,
                "GET" => Interaction::Read,
                "POST" => Interaction::Create,
                "PUT" => Interaction::Update,
                "DELETE" => Interaction::Delete,
                _ => return None,
            };
            Some((t, interaction))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_entry_is_the_interaction_it_asks_for() {
        let body = br#"{"resourceType": "Bundle", "type": "batch", "entry": [
            {"request": {"method": "GET", "url": "Observation?patient=p1"}},
            {"request": {"method": "GET", "url": "http://h/fhir/Patient/p1"}},
            {"request": {"method": "POST", "url": "Observation"}},
            {"request": {"method": "PUT", "url": "Condition/c1"}},
            {"request": {"method": "DELETE", "url": "Condition/c1"}},
            {"request": {"method": "PATCH", "url": "Condition/c1"}}
        ]}"#;
        assert_eq!(
            entry_interactions(body),
            [
                (ResourceType::Observation, Interaction::Search),
                (ResourceType::Patient, Interaction::Read),
                (ResourceType::Observation, Interaction::Create),
                (ResourceType::Condition, Interaction::Update),
                (ResourceType::Condition, Interaction::Delete),
            ]
        );
    }
}
