//! `POST /cds-services/{id}/feedback` (CDS Hooks 2.0 "Feedback"): what the clinician did with
//! each card (accepted, with the suggestions taken, or overridden, with a reason and comment).
//! Filed as FHIR Basic resources naming the patient, the assessment, the model and the user the
//! card was shown to, searchable at `/fhir/Basic?code=cds-feedback`; the request's audit record
//! names the patients. All entries are filed or none.

use actix_web::web::{Data, Path, Payload};
use actix_web::{HttpRequest, HttpResponse, post};
use serde_json::Value;

use super::service;
use crate::api::{Access, ApiError, ApiState, read_body};
use crate::error::ErrorKind;
use crate::report::cds_card::CardFeedback;

/// Most entries in one feedback request, and the longest comment kept.
const MAX_ENTRIES: usize = 100;
const MAX_COMMENT_CHARS: usize = 4000;

fn invalid(at: String, message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorKind::Invalid, message).at(at)
}

fn parse(body: &[u8]) -> Result<Vec<CardFeedback>, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            ErrorKind::Invalid,
            format!("the body is not JSON feedback: {e}"),
        )
    })?;
    let Some(entries) = value.get("feedback").and_then(Value::as_array) else {
        return Err(invalid(
            "feedback".into(),
            "feedback is required, as an array",
        ));
    };
    if entries.is_empty() || entries.len() > MAX_ENTRIES {
        return Err(invalid(
            "feedback".into(),
            format!("feedback must hold 1 to {MAX_ENTRIES} entries"),
        ));
    }
    entries
        .iter()
        .enumerate()
        .map(|(i, entry)| {
            let at = |field: &str| format!("feedback[{i}].{field}");
            let text = |field: &str| entry.get(field).and_then(Value::as_str);
            let card = text("card")
                .filter(|c| uuid::Uuid::parse_str(c).is_ok())
                .ok_or_else(|| invalid(at("card"), "card is required: the card's uuid"))?;
            let outcome = text("outcome")
                .filter(|o| matches!(*o, "accepted" | "overridden"))
                .ok_or_else(|| {
                    invalid(at("outcome"), "outcome is required: accepted or overridden")
                })?;
            let timestamp = text("outcomeTimestamp")
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .ok_or_else(|| {
                    invalid(
                        at("outcomeTimestamp"),
                        "outcomeTimestamp is required, as an ISO 8601 date and time with its offset",
                    )
                })?;
            let accepted_suggestions = entry
                .get("acceptedSuggestions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|s| {
                    s.get("id")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                        .ok_or_else(|| {
                            invalid(at("acceptedSuggestions"), "each accepted suggestion needs its id")
                        })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let (override_reason, comment) = match entry.get("overrideReason") {
                None | Some(Value::Null) => (None, None),
                Some(reason) if outcome == "overridden" => {
                    let coding = reason.get("reason").cloned().filter(|c| {
                        c.get("code").and_then(Value::as_str).is_some_and(|c| !c.is_empty())
                    });
                    let comment = reason.get("userComment").and_then(Value::as_str);
                    if coding.is_none() && comment.is_none() {
                        return Err(invalid(
                            at("overrideReason"),
                            "overrideReason needs a reason Coding with a code, or a userComment",
                        ));
                    }
                    if comment.is_some_and(|c| c.chars().count() > MAX_COMMENT_CHARS) {
                        return Err(invalid(
                            at("overrideReason.userComment"),
                            format!("userComment is over {MAX_COMMENT_CHARS} characters"),
                        ));
                    }
                    (coding, comment.map(str::to_owned))
                }
                Some(_) => {
                    return Err(invalid(
                        at("overrideReason"),
                        "overrideReason goes with the outcome overridden only",
                    ));
                }
            };
            Ok(CardFeedback {
                card: card.to_owned(),
                outcome: outcome.to_owned(),
                accepted_suggestions,
                override_reason,
                comment,
                at: timestamp
                    .with_timezone(&chrono::Utc)
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            })
        })
        .collect()
}

/// Records what the clinician did with this service's cards.
#[utoipa::path(
    tag = "CDS Hooks",
    params(("id" = String, Path, description = "The service whose cards the feedback is about")),
    request_body(content = Object, content_type = "application/json", description = "{\"feedback\": [{card, outcome (accepted | overridden), acceptedSuggestions, overrideReason {reason, userComment}, outcomeTimestamp}]}"),
    responses(
        (status = 200, description = "Filed"),
        (status = 400, description = "Malformed, or a card this service did not show", body = Object, content_type = "application/fhir+json"),
        (status = 401, description = "No valid CDS client JWT", body = Object, content_type = "application/fhir+json"),
        (status = 404, description = "No such service", body = Object, content_type = "application/fhir+json"),
    )
)]
#[post("/cds-services/{id}/feedback")]
pub async fn service_feedback(
    req: HttpRequest,
    state: Data<ApiState>,
    access: Access,
    path: Path<String>,
    payload: Payload,
) -> Result<HttpResponse, ApiError> {
    let service = service(&path.into_inner())?;
    let body = read_body(&req, payload, state.max_body_bytes).await?;
    let feedback = parse(&body)?;
    let patients = state
        .pipeline
        .file_card_feedback(service.id, &feedback)
        .await?;
    for patient in &patients {
        access.note_patient(patient);
    }
    Ok(HttpResponse::Ok().finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CARD: &str = "7b0d3b6e-1c2f-4c55-9a49-5f2b1a6a2c11";

    #[test]
    fn accepted_and_overridden_feedback_is_read() {
        let body = json!({"feedback": [
            {"card": CARD, "outcome": "accepted", "acceptedSuggestions": [{"id": "s1"}],
             "outcomeTimestamp": "2026-12-06T10:00:00+01:00"},
            {"card": CARD, "outcome": "overridden", "outcomeTimestamp": "2026-12-06T10:01:00Z",
             "overrideReason": {"reason": {"system": "x", "code": "override-clinical-judgement"},
                "userComment": "seen in clinic"}}]});
        let parsed = parse(body.to_string().as_bytes()).unwrap();
        assert_eq!(parsed[0].accepted_suggestions, ["s1"]);
        assert_eq!(parsed[0].at, "2026-12-06T09:00:00Z");
        assert_eq!(parsed[1].comment.as_deref(), Some("seen in clinic"));
    }

    #[test]
    fn malformed_feedback_names_its_fault() {
        let good = json!({"card": CARD, "outcome": "accepted", "outcomeTimestamp": "2026-12-06T10:00:00Z"});
        let cases: Vec<(&str, Value)> = vec![
            ("feedback", json!({})),
            ("feedback", json!({"feedback": []})),
            (
                "feedback[0].card",
                json!({"feedback": [{"outcome": "accepted", "outcomeTimestamp": "2026-12-06T10:00:00Z"}]}),
            ),
            (
                "feedback[0].outcome",
                json!({"feedback": [{"card": CARD, "outcome": "ignored", "outcomeTimestamp": "2026-12-06T10:00:00Z"}]}),
            ),
            (
                "feedback[0].outcomeTimestamp",
                json!({"feedback": [{"card": CARD, "outcome": "accepted", "outcomeTimestamp": "yesterday"}]}),
            ),
            (
                "feedback[1].overrideReason",
                json!({"feedback": [good, {"card": CARD, "outcome": "accepted", "outcomeTimestamp": "2026-12-06T10:00:00Z", "overrideReason": {"userComment": "x"}}]}),
            ),
        ];
        for (at, body) in cases {
            let error = parse(body.to_string().as_bytes()).unwrap_err();
            assert!(
                format!("{error:?}").contains(&format!("\"{at}\"")),
                "{at}: {error:?}"
            );
        }
    }
}
