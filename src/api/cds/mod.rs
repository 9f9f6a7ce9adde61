//! CDS Hooks 2.0: the discovery document (`GET /cds-services`), the services (`POST
//! /cds-services/{id}`) and their feedback endpoint. Two services: `prognostics-risk` on
//! `patient-view` (the patient's risk, with why and what is missing) and
//! `prognostics-order-value` on `order-select` (what the order being placed would add to the
//! model's inputs, and the risk as it stands; no card when the order adds nothing). Inputs come
//! from the prefetch when it is complete, else from `fhirServer` with the client's
//! `fhirAuthorization`, else from what the service holds; the assessment is the one
//! `$risk-assessment` files (same ids: a chart opened twice files nothing new), made without
//! waiting for imaging that is not encoded yet. Callers are CDS clients with their own signed
//! tokens (`auth::cds`); errors are OperationOutcomes with the CDS Hooks statuses (400, 401,
//! 404, 412).

mod feedback;
mod hook;

pub use feedback::service_feedback;

use actix_web::web::{Data, Path, Payload};
use actix_web::{HttpRequest, HttpResponse, get, post};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{Access, ApiError, ApiState, read_body};
use crate::domain::ResourceType;
use crate::error::ErrorKind;
use crate::pipeline::cds::HookRecord;
use crate::pipeline::risk::{Assessment, AssessmentError, AssessmentRequest, RiskModel};
use crate::pipeline::{AssessmentInputs, PipelineError};
use crate::report::cds_card::{CardParts, order_suggestion, risk_card, summary};
use crate::store::{ShownCard, StoreError};
use hook::HookCall;

/// A CDS service of this service.
#[derive(Debug)]
pub struct CdsService {
    pub id: &'static str,
    pub hook: &'static str,
    pub title: &'static str,
    pub description: &'static str,
}

pub const SERVICES: [CdsService; 2] = [
    CdsService {
        id: "prognostics-risk",
        hook: "patient-view",
        title: "Prognostic risk",
        description: "The patient's risk of the model's outcome by each horizon, from the \
            record: each modality's part, the features that moved it, what was missing and \
            the orders that would fill it. AI-generated, preliminary.",
    },
    CdsService {
        id: "prognostics-order-value",
        hook: "order-select",
        title: "What this order adds to the prognostic risk",
        description: "When a test or imaging order being placed would give the risk model an \
            input the record lacks: which, and the risk as it stands without it.",
    },
];

fn service(id: &str) -> Result<&'static CdsService, ApiError> {
    SERVICES.iter().find(|s| s.id == id).ok_or_else(|| {
        ApiError::new(
            ErrorKind::NotFound,
            format!(
                "no CDS service {}; GET /cds-services lists them",
                id.chars().take(64).collect::<String>()
            ),
        )
    })
}

/// The public URL of a path of this service (the root of the public FHIR base URL).
fn public(state: &ApiState, path: &str) -> String {
    super::access::public_url(&state.base_url, path)
}

/// The CDS services, with the prefetch the active model needs.
#[utoipa::path(
    tag = "CDS Hooks",
    responses((status = 200, description = "The discovery document: one service per hook, each with its prefetch templates (none when no model is loaded)", body = Object))
)]
#[get("/cds-services")]
pub async fn discovery(state: Data<ApiState>) -> HttpResponse {
    let services: Vec<Value> = match state.pipeline.cds_prefetch() {
        None => Vec::new(),
        Some(prefetch) => SERVICES
            .iter()
            .map(|s| {
                json!({
                    "hook": s.hook,
                    "id": s.id,
                    "title": s.title,
                    "description": s.description,
                    "prefetch": prefetch,
                    "usageRequirements": "Calls must carry a JWT signed by a CDS client this \
                        service trusts (auth.cds_clients). fhirServer with fhirAuthorization \
                        (patient/*.rs) is read when the prefetch is incomplete.",
                })
            })
            .collect(),
    };
    HttpResponse::Ok().json(json!({"services": services}))
}

/// Calls a CDS service: the cards for the patient in context.
#[utoipa::path(
    tag = "CDS Hooks",
    params(("id" = String, Path, description = "The service id from the discovery document")),
    request_body(content = Object, content_type = "application/json", description = "A CDS Hooks 2.0 request: hook, hookInstance, context (patientId, userId; order-select: selections, draftOrders), optional fhirServer, fhirAuthorization and prefetch"),
    responses(
        (status = 200, description = "The cards (none when the model does not apply, or the order adds nothing)", body = Object),
        (status = 400, description = "The request is malformed (no hookInstance, no patientId, a prefetch of the wrong type or for another patient …)", body = Object, content_type = "application/fhir+json"),
        (status = 401, description = "No valid CDS client JWT", body = Object, content_type = "application/fhir+json"),
        (status = 404, description = "No such service", body = Object, content_type = "application/fhir+json"),
        (status = 412, description = "The FHIR data the model needs could not be had (prefetch incomplete and fhirServer absent, unreachable or refusing)", body = Object, content_type = "application/fhir+json"),
        (status = 429, description = "Too many assessments at once", body = Object, content_type = "application/fhir+json"),
        (status = 503, description = "No model loaded, or the time limit passed", body = Object, content_type = "application/fhir+json"),
    )
)]
#[post("/cds-services/{id}")]
pub async fn call_service(
    req: HttpRequest,
    state: Data<ApiState>,
    access: Access,
    path: Path<String>,
    payload: Payload,
) -> Result<HttpResponse, ApiError> {
    let service = service(&path.into_inner())?;
    let body = read_body(&req, payload, state.max_body_bytes).await?;
    let call = hook::parse(&body, service)?;
    access.patient(call.patient.as_ref())?;
    let Some(risk) = state.pipeline.risk_model() else {
        return Err(ApiError::new(
            ErrorKind::Unavailable,
            "no risk model is loaded",
        ));
    };
    let source = state
        .pipeline
        .hook_record_source(HookRecord {
            patient: call.patient.clone(),
            prefetch: call.prefetch.clone(),
            fhir_server: call.fhir_server.clone(),
            access_token: call.access_token.clone(),
        })
        .await?;
    let request = AssessmentRequest {
        patient: call.patient.clone(),
        model: None,
        study: None,
        horizons: Vec::new(),
    };
    let inputs = AssessmentInputs {
        source,
        encode_now: false,
    };
    let assessment = match state.pipeline.assess_now(request, inputs).await {
        Ok(assessment) => assessment,
        Err(e) => return refusal(&state, service, &risk, e),
    };
    let cards = match cards(&state, service, &call, &risk, &assessment) {
        Some((card, mut shown)) => {
            shown.client = access.client();
            state.pipeline.record_card(&shown).await?;
            vec![card]
        }
        None => Vec::new(),
    };
    tracing::info!(
        service = service.id,
        hook_instance = %call.hook_instance,
        cards = cards.len(),
        filed = assessment.created,
        "CDS hook answered"
    );
    Ok(HttpResponse::Ok().json(json!({"cards": cards})))
}

/// What a refused assessment becomes: no card for a patient the model is not made for (a
/// patient-view service fires on every chart), a card without a number for one it is made for
/// but cannot answer; 412 for a patient nobody holds; an error otherwise.
fn refusal(
    state: &ApiState,
    service: &CdsService,
    risk: &RiskModel,
    e: PipelineError,
) -> Result<HttpResponse, ApiError> {
    let no_answer = match &e {
        PipelineError::Assessment(a) => match a.as_ref() {
            AssessmentError::OutsidePopulation { .. } => {
                tracing::info!(service = service.id, "CDS hook: the model does not apply");
                return Ok(HttpResponse::Ok().json(json!({"cards": []})));
            }
            AssessmentError::NoInputs(_) | AssessmentError::BeyondFollowUp { .. } => {
                Some(a.to_string())
            }
            _ => None,
        },
        PipelineError::Store(StoreError::NotFound {
            resource_type: ResourceType::Patient,
            ..
        })
        | PipelineError::Ehr(_) => {
            return Err(ApiError::new(
                ErrorKind::PreconditionFailed,
                format!("{e}: the patient's record could not be had"),
            ));
        }
        _ => None,
    };
    let Some(reason) = no_answer else {
        return Err(e.into());
    };
    if service.hook == "order-select" {
        return Ok(HttpResponse::Ok().json(json!({"cards": []})));
    }
    let d = &risk.description;
    let mut source = json!({"label": format!("prognostics: {} {}", d.name, d.version)});
    if risk.card.is_some() {
        source["url"] = json!(public(state, "/model-card"));
    }
    // No uuid: there is no assessment to give feedback on.
    let card = json!({
        "summary": "No risk estimate: the record lacks what the model needs",
        "indicator": "info",
        "detail": format!(
            "The model {} {} gives no number for this patient: {}.\n\n*AI decision support*: nothing was estimated or filed.",
            d.name, d.version, reason
        ),
        "source": source,
    });
    Ok(HttpResponse::Ok().json(json!({"cards": [card]})))
}

/// The card of an assessment for `service`, and what the card registry keeps of it; none for
/// an order that adds nothing the model lacks.
fn cards(
    state: &ApiState,
    service: &CdsService,
    call: &HookCall,
    risk: &RiskModel,
    assessment: &Assessment,
) -> Option<(Value, ShownCard)> {
    let content = &assessment.content;
    let report = assessment
        .resources
        .iter()
        .find(|(t, _, _)| *t == ResourceType::DiagnosticReport)
        .map(|(_, id, _)| id.to_string())?;
    let d = &risk.description;
    let model = format!("{} {}", d.name, d.version);
    let mut parts = CardParts {
        model_card_url: risk.card.as_ref().map(|_| public(state, "/model-card")),
        warnings: assessment.warnings.clone(),
        // The EHR launches the app with this context: it opens on this assessment.
        app_link: Some((
            "Open the risk view: why, what is missing, sign".into(),
            public(state, "/app/launch"),
            json!({"report": report}).to_string(),
        )),
        ..CardParts::default()
    };
    let mut summary_text = None;
    if service.hook == "order-select" {
        let gains = state.pipeline.order_gains(content, &call.selected_orders);
        if gains.is_empty() {
            return None;
        }
        let described: Vec<String> = gains
            .iter()
            .map(|(order, inputs)| format!("{order} would give it {}", inputs.join(", ")))
            .collect();
        parts.lead = Some(format!(
            "The model lacks inputs this order fills: {}. The risk as it stands, without them:",
            described.join("; ")
        ));
        summary_text = Some(format!(
            "{} would fill {} for the risk model; now {}",
            gains[0].0,
            gains[0].1.join(", "),
            summary(content)
        ));
    } else {
        parts.suggestions = state
            .pipeline
            .orders_for_missing(content)
            .into_iter()
            .map(|(column, test)| {
                let uuid = card_uuid("suggestion", content.patient.as_ref(), Some(&column), None);
                order_suggestion(content.patient.as_ref(), &column, &test, &model, uuid)
            })
            .collect();
    }
    let uuid = card_uuid(
        service.id,
        &report,
        call.user.as_deref(),
        parts.lead.as_deref(),
    );
    parts.uuid = uuid.clone();
    let mut card = risk_card(content, &parts);
    if let Some(text) = summary_text {
        card["summary"] = json!(truncate_summary(&text));
    }
    let shown = ShownCard {
        uuid,
        service: service.id.to_owned(),
        patient: call.patient.to_string(),
        report,
        model: format!("{}|{}", d.name, d.version),
        user: call.user.clone(),
        client: None,
    };
    Some((card, shown))
}

fn truncate_summary(text: &str) -> String {
    use crate::report::cds_card::SUMMARY_MAX_CHARS;
    if text.chars().count() <= SUMMARY_MAX_CHARS {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(SUMMARY_MAX_CHARS - 1).collect();
    out.push('…');
    out
}

/// A card's uuid: derived from what it shows and to whom, so the same chart opened again by
/// the same user shows the same card.
fn card_uuid(service: &str, report: &str, user: Option<&str>, lead: Option<&str>) -> String {
    let mut hash = Sha256::new();
    for part in [service, report, user.unwrap_or(""), lead.unwrap_or("")] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    let digest = hash.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes)
        .into_uuid()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn card_uuids_are_stable_and_differ_by_user_and_service() {
        let a = card_uuid("prognostics-risk", "risk-1", Some("Practitioner/1"), None);
        assert_eq!(
            a,
            card_uuid("prognostics-risk", "risk-1", Some("Practitioner/1"), None)
        );
        assert_ne!(
            a,
            card_uuid("prognostics-risk", "risk-1", Some("Practitioner/2"), None)
        );
        assert_ne!(
            a,
            card_uuid(
                "prognostics-order-value",
                "risk-1",
                Some("Practitioner/1"),
                None
            )
        );
        assert!(uuid::Uuid::parse_str(&a).is_ok());
    }
}
