//! `$sign-off` on a risk DiagnosticReport: a clinician signs it or disagrees with it. The body
//! is a Parameters resource: `decision` (`sign` or `disagree`), `reason` (a Coding or code,
//! required to disagree), `comment`, `patient` (the patient the caller believes the report is
//! about) and `clinician` (for callers whose token names no user). The answer is a collection
//! Bundle of what was filed.

use actix_web::web::{Data, Path, Payload};
use actix_web::{HttpRequest, HttpResponse, post};
use serde_json::Value;

use super::risk_assessment::{
    bundle_response, invalid, parameters_of, text_value, unknown_parameter,
};
use super::{ApiError, base_url, read_body, resource_id};
use crate::api::{Access, ApiState};
use crate::domain::ResourceType;
use crate::error::ErrorKind;
use crate::pipeline::sign_off::SignOffRequest;
use crate::report::risk::CODE_SYSTEM;
use crate::report::sign_off::{DISAGREE_REASONS, Decision, disagree_reason};
use crate::report::{BundleEntry, BundleKind, bundle, resource_url};

/// Longest comment kept.
const MAX_COMMENT_CHARS: usize = 2000;

#[derive(Debug, Default)]
struct Asked {
    decision: Option<String>,
    reason: Option<String>,
    comment: Option<String>,
    patient: Option<String>,
    clinician: Option<String>,
}

fn reason_code(p: &Value) -> Option<String> {
    if let Some(coding) = p.get("valueCoding") {
        let system = coding.get("system").and_then(Value::as_str);
        if system.is_some_and(|s| s != CODE_SYSTEM) {
            return None;
        }
        return coding
            .get("code")
            .and_then(Value::as_str)
            .map(str::to_owned);
    }
    p.get("valueCode")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

fn parse_parameters(body: &[u8]) -> Result<Asked, ApiError> {
    let mut asked = Asked::default();
    for (i, (name, p)) in parameters_of(body)?.iter().enumerate() {
        match name.as_str() {
            "decision" => {
                asked.decision = Some(
                    text_value(p).ok_or_else(|| invalid(i, "decision: `sign` or `disagree`"))?,
                );
            }
            "reason" => {
                asked.reason = Some(reason_code(p).ok_or_else(|| {
                    invalid(
                        i,
                        format!("reason: a Coding of {CODE_SYSTEM}, or a code of it"),
                    )
                })?);
            }
            "comment" => {
                let comment = text_value(p).ok_or_else(|| invalid(i, "comment: a string"))?;
                if comment.chars().count() > MAX_COMMENT_CHARS {
                    return Err(invalid(
                        i,
                        format!("comment: at most {MAX_COMMENT_CHARS} characters"),
                    ));
                }
                asked.comment = Some(comment);
            }
            "patient" => {
                let text = text_value(p).ok_or_else(|| invalid(i, "patient: a reference or id"))?;
                asked.patient = Some(text.trim_start_matches("Patient/").to_owned());
            }
            "clinician" => {
                asked.clinician = Some(text_value(p).ok_or_else(|| {
                    invalid(i, "clinician: a Practitioner or PractitionerRole reference")
                })?);
            }
            other => {
                return Err(unknown_parameter(
                    i,
                    other,
                    "decision, reason, comment, patient and clinician",
                ));
            }
        }
    }
    Ok(asked)
}

fn decision(asked: &mut Asked) -> Result<Decision, ApiError> {
    match asked.decision.as_deref() {
        Some("sign") => {
            if asked.reason.is_some() {
                return Err(ApiError::new(
                    ErrorKind::Invalid,
                    "a reason is given only to disagree",
                ));
            }
            Ok(Decision::Sign)
        }
        Some("disagree") => {
            let reason = asked.reason.take().ok_or_else(|| {
                ApiError::new(
                    ErrorKind::Invalid,
                    format!("to disagree, give a `reason`: one of {}", offered_reasons()),
                )
            })?;
            if disagree_reason(&reason).is_none() {
                return Err(ApiError::new(
                    ErrorKind::Invalid,
                    format!(
                        "unknown reason `{}`; one of {}",
                        reason.chars().take(64).collect::<String>(),
                        offered_reasons()
                    ),
                ));
            }
            Ok(Decision::Disagree {
                reason,
                comment: asked.comment.take(),
            })
        }
        Some(other) => Err(ApiError::new(
            ErrorKind::Invalid,
            format!(
                "decision `{}` is neither `sign` nor `disagree`",
                other.chars().take(64).collect::<String>()
            ),
        )),
        None => Err(ApiError::new(
            ErrorKind::Invalid,
            "the `decision` parameter (`sign` or `disagree`) is required",
        )),
    }
}

fn offered_reasons() -> String {
    DISAGREE_REASONS
        .iter()
        .map(|(code, _)| *code)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether `reference` names a Practitioner or PractitionerRole (relative or absolute).
fn is_practitioner(reference: &str) -> bool {
    let mut parts = reference.rsplit('/');
    let (Some(id), Some(t)) = (parts.next(), parts.next()) else {
        return false;
    };
    matches!(t, "Practitioner" | "PractitionerRole") && crate::domain::ResourceId::parse(id).is_ok()
}

/// Who signs: the token's user; a caller whose token names none (a system) names the
/// clinician, as does a caller of an unrestricted door.
fn clinician(access: &Access, named: Option<String>) -> Result<String, ApiError> {
    let clinician = match (access.user(), named) {
        (Some(user), None) => user.to_owned(),
        (Some(user), Some(named)) if named == user => named,
        (Some(_), Some(_)) => {
            return Err(ApiError::new(
                ErrorKind::Forbidden,
                "a user signs off as themselves: `clinician` must be left out or be the token's fhirUser",
            ));
        }
        (None, Some(_)) if access.is_confined() => {
            return Err(ApiError::new(
                ErrorKind::Forbidden,
                "a patient/ grant without a user (fhirUser) cannot sign off for a clinician",
            ));
        }
        (None, Some(named)) => named,
        (None, None) => {
            return Err(ApiError::new(
                ErrorKind::Invalid,
                if access.has_token() {
                    "the token names no user (fhirUser): name the clinician with `clinician`"
                } else {
                    "name the clinician with `clinician` (a Practitioner reference)"
                },
            ));
        }
    };
    if !is_practitioner(&clinician) {
        return Err(ApiError::new(
            ErrorKind::Forbidden,
            format!(
                "only a practitioner signs off a risk report, and {} is not a Practitioner or PractitionerRole",
                clinician.chars().take(128).collect::<String>()
            ),
        ));
    }
    Ok(clinician)
}

/// Sign a preliminary risk report, or disagree with it.
#[utoipa::path(
    tag = "FHIR",
    params(("id" = String, Path, description = "The DiagnosticReport's id")),
    request_body(content = Object, content_type = "application/fhir+json", description = "Parameters: decision (sign | disagree), reason (to disagree), comment, patient, clinician"),
    responses(
        (status = 200, description = "A collection Bundle: the report as it now stands, the attesting Provenance (when signed) and the review record (Basic)", body = Object, content_type = "application/fhir+json"),
        (status = 400, description = "A parameter is missing, malformed or unknown, or the report is about another patient than `patient` names", body = Object, content_type = "application/fhir+json"),
        (status = 403, description = "The caller is not a practitioner, or the report is outside its grant", body = Object, content_type = "application/fhir+json"),
        (status = 404, description = "No such report", body = Object, content_type = "application/fhir+json"),
        (status = 409, description = "The report is already signed, or the clinician already recorded this decision", body = Object, content_type = "application/fhir+json"),
        (status = 412, description = "The report changed while it was being signed", body = Object, content_type = "application/fhir+json"),
        (status = 422, description = "The report is not a risk report of this service", body = Object, content_type = "application/fhir+json"),
    )
)]
#[post("/DiagnosticReport/{id}/$sign-off")]
pub async fn sign_off(
    req: HttpRequest,
    state: Data<ApiState>,
    access: Access,
    path: Path<String>,
    payload: Payload,
) -> Result<HttpResponse, ApiError> {
    let report = resource_id(&path.into_inner())?;
    let body = read_body(&req, payload, state.max_body_bytes).await?;
    // The report first: whatever is refused after this is audited as about its patient.
    let stored =
        super::read_within_grant(&state, &access, ResourceType::DiagnosticReport, &report).await?;
    let mut asked = parse_parameters(&body)?;
    let decision = decision(&mut asked)?;
    let clinician = clinician(&access, asked.clinician.take())?;
    if let Some(patient) = &asked.patient {
        let subject = stored
            .content
            .as_deref()
            .and_then(|c| serde_json::from_str::<Value>(c).ok())
            .and_then(|r| r.pointer("/subject/reference").cloned());
        if subject.as_ref().and_then(Value::as_str) != Some(&format!("Patient/{patient}")) {
            return Err(ApiError::new(
                ErrorKind::Invalid,
                "the report is about another patient than the `patient` parameter names",
            ));
        }
    }
    let signed = state
        .pipeline
        .sign_off(&SignOffRequest {
            report,
            decision,
            clinician,
            seen_version: stored.version,
        })
        .await?;
    access.note_patient(&signed.patient);
    let base = base_url(&req, &state);
    let entries: Vec<BundleEntry> = signed
        .resources
        .iter()
        .map(|(t, id, content)| {
            BundleEntry::with_resource(Some(resource_url(&base, *t, id)), content)
        })
        .collect();
    Ok(bundle_response(bundle(
        BundleKind::Collection,
        None,
        &[],
        &entries,
    )?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn practitioners_are_told_from_other_users() {
        assert!(is_practitioner("Practitioner/onc-1"));
        assert!(is_practitioner("PractitionerRole/r1"));
        assert!(is_practitioner(
            "https://ehr.example.org/fhir/Practitioner/123"
        ));
        assert!(!is_practitioner("Patient/p1"));
        assert!(!is_practitioner("Practitioner/"));
        assert!(!is_practitioner("onc-1"));
    }

    #[test]
    fn a_disagreement_needs_a_known_reason_and_a_signature_none() {
        let mut asked = Asked {
            decision: Some("disagree".into()),
            ..Asked::default()
        };
        assert!(decision(&mut asked).is_err());
        asked.reason = Some("override-bogus".into());
        assert!(decision(&mut asked).is_err());
        asked.reason = Some("override-inputs-wrong".into());
        assert!(matches!(
            decision(&mut asked),
            Ok(Decision::Disagree { .. })
        ));
        let mut sign = Asked {
            decision: Some("sign".into()),
            reason: Some("override-inputs-wrong".into()),
            ..Asked::default()
        };
        assert!(decision(&mut sign).is_err());
        sign.reason = None;
        assert_eq!(decision(&mut sign).unwrap(), Decision::Sign);
    }
}
