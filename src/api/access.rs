//! Who is calling over HTTP, whether they may, and the audit record of what they did. The
//! middleware looks up the route's rule (`policy`), takes the bearer token (SMART mode),
//! verifies it, checks its scopes against the rule and the per-client rate limit, and hands the
//! handler an [`Access`]: the caller, and the patient its grant is confined to. Handlers use it
//! to confine what they touch to that patient's compartment and to name the patients touched,
//! which the middleware writes to the audit trail with the outcome once the response is made.

use std::cell::RefCell;
use std::future::{Ready, ready};
use std::rc::Rc;
use std::sync::Arc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::web::Data;
use actix_web::{FromRequest, HttpMessage, HttpRequest, ResponseError};
use serde_json::{Map, Value};

use super::error::FailureReason;
use super::policy::{self, Needs, PatientScoped, RouteRule};
use super::rate_limit::RateLimiter;
use super::request_id::route_pattern;
use super::{ApiError, ApiState};
use crate::auth::{Caller, Interaction, KeyError, Verifier};
use crate::domain::{AuditAgent, AuditOutcome, AuditRecord, ResourceType};
use crate::error::ErrorKind;
use crate::fhir::compartment::{patient_parameter, patients_in_json, patients_named, patients_of};
use crate::telemetry::current_request_id;

/// Longest `Authorization` header read; a longer one is refused before it is parsed.
pub const MAX_AUTHORIZATION_BYTES: usize = 8 * 1024;

/// How the HTTP door decides.
#[derive(Debug)]
pub enum AccessMode {
    /// No tokens: every caller may do everything (loopback only, or open by choice).
    Unrestricted,
    /// Bearer access tokens from the configured issuers.
    Tokens(Box<Verifier>),
}

#[derive(Debug)]
pub struct AccessControl {
    pub mode: AccessMode,
    pub limiter: RateLimiter,
}

/// What the handler of one request may do, and the patients it touched.
#[derive(Debug, Clone)]
pub struct Access {
    caller: Option<Arc<Caller>>,
    /// Some: everything the request touches must be in this patient's compartment.
    confined_to: Option<String>,
    touched: Rc<RefCell<Vec<String>>>,
}

impl Access {
    fn new(caller: Option<Arc<Caller>>, confined_to: Option<String>) -> Self {
        Self {
            caller,
            confined_to,
            touched: Rc::default(),
        }
    }

    fn touch(&self, patients: impl IntoIterator<Item = String>) {
        let mut touched = self.touched.borrow_mut();
        for patient in patients {
            if !touched.contains(&patient) {
                touched.push(patient);
            }
        }
    }

    fn outside(&self) -> ApiError {
        ApiError::new(
            ErrorKind::Forbidden,
            "the token's patient/ scope covers its own patient's compartment only, and this is \
             not in it",
        )
    }

    /// A resource the request reads or writes: its patients are noted, and with a confined
    /// grant it must be in the token's patient's compartment.
    pub fn resource(&self, t: ResourceType, resource: &Map<String, Value>) -> Result<(), ApiError> {
        self.admit(patients_of(t, resource))
    }

    /// Notes the patients of what the request touches; with a confined grant, its own patient
    /// must be among them.
    fn admit(&self, patients: Vec<String>) -> Result<(), ApiError> {
        let inside = self
            .confined_to
            .as_ref()
            .is_none_or(|own| patients.contains(own));
        self.touch(patients);
        if inside { Ok(()) } else { Err(self.outside()) }
    }

    /// A stored resource, `id` with its JSON text (see [`Access::resource`]). Only what can
    /// name a patient is parsed: a Patient is its own compartment, and types outside every
    /// patient's compartment name none.
    pub fn stored(&self, t: ResourceType, id: &str, content: Option<&str>) -> Result<(), ApiError> {
        let Some(content) = content else {
            return Ok(());
        };
        if t == ResourceType::Patient {
            return self.patient(id);
        }
        if patient_parameter(t).is_none() {
            return match self.confined_to {
                None => Ok(()),
                Some(_) => Err(self.outside()),
            };
        }
        match patients_in_json(t, content) {
            Some(patients) => self.admit(patients),
            // Unreadable content names no patient: only an unconfined caller may have it.
            None if self.confined_to.is_none() => Ok(()),
            None => Err(self.outside()),
        }
    }

    /// An operation on one patient.
    pub fn patient(&self, id: &str) -> Result<(), ApiError> {
        self.touch([id.to_owned()]);
        match &self.confined_to {
            Some(own) if own != id => Err(self.outside()),
            _ => Ok(()),
        }
    }

    /// The calling client (`issuer` and client id), when a token named it.
    pub fn client(&self) -> Option<String> {
        self.caller
            .as_ref()
            .map(|c| format!("{} {}", c.issuer, c.client_id))
    }

    /// The signed-in user (`fhirUser`), when a token names one.
    pub fn user(&self) -> Option<&str> {
        self.caller.as_ref().and_then(|c| c.fhir_user.as_deref())
    }

    /// Whether a token called (not an unrestricted door).
    pub fn has_token(&self) -> bool {
        self.caller.is_some()
    }

    /// Whether the grant is a `patient/` one, confined to one patient's compartment.
    pub fn is_confined(&self) -> bool {
        self.confined_to.is_some()
    }

    /// A patient the request touched (for the audit record only).
    pub fn note_patient(&self, id: &str) {
        self.touch([id.to_owned()]);
    }

    /// A search: the patients it names are noted; with a confined grant, a search naming
    /// another patient is refused and one naming none is filtered to the token's patient.
    pub fn confine_search(
        &self,
        t: ResourceType,
        params: &mut Vec<(String, String)>,
    ) -> Result<(), ApiError> {
        let parameter = patient_parameter(t);
        let mut named = Vec::new();
        for (name, value) in params.iter() {
            let base = name.split(':').next().unwrap_or(name);
            let names_patient =
                Some(base) == parameter || (base == "subject" && parameter == Some("patient"));
            if names_patient {
                match patients_named(value) {
                    Some(ids) => named.push(ids),
                    // `subject=Group/…` and the like: no patient, so nothing of the token's.
                    None if self.confined_to.is_some() => return Err(self.outside()),
                    None => {}
                }
            }
        }
        self.touch(named.iter().flatten().cloned());
        let Some(own) = &self.confined_to else {
            return Ok(());
        };
        let Some(parameter) = parameter else {
            return Err(ApiError::new(
                ErrorKind::Forbidden,
                format!(
                    "{t} resources belong to no patient's compartment, so a patient/ scope does not cover them"
                ),
            ));
        };
        if named.iter().flatten().any(|id| id != own) {
            return Err(self.outside());
        }
        self.touch([own.clone()]);
        params.push((parameter.to_owned(), own.clone()));
        Ok(())
    }

    /// Whether the token grants `interaction` on `t` (for what a handler checks itself: the
    /// entries of a Bundle). Without tokens everything is granted.
    pub fn require(&self, t: ResourceType, interaction: Interaction) -> Result<(), ApiError> {
        match &self.caller {
            None => Ok(()),
            Some(caller) => match caller.scopes.grant(t, interaction) {
                Some(grant) if !grant.patient_only || self.confined_to.is_some() => Ok(()),
                _ => Err(missing_scope(&[(t, interaction)])),
            },
        }
    }
}

impl FromRequest for Access {
    type Error = ApiError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        // Deny by default: a handler reached without the middleware's decision gets nothing.
        ready(req.extensions().get::<Access>().cloned().ok_or_else(|| {
            ApiError::new(
                ErrorKind::Forbidden,
                "no access decision was made for this request",
            )
        }))
    }
}

fn missing_scope(needed: &[(ResourceType, Interaction)]) -> ApiError {
    let names: Vec<String> = needed
        .iter()
        .map(|(t, i)| format!("{t}.{}", interaction_letter(*i)))
        .collect();
    ApiError::new(
        ErrorKind::Forbidden,
        format!(
            "the token's scopes do not cover this request; it needs {}",
            names.join(", ")
        ),
    )
}

fn interaction_letter(i: Interaction) -> char {
    match i {
        Interaction::Create => 'c',
        Interaction::Read => 'r',
        Interaction::Update => 'u',
        Interaction::Delete => 'd',
        Interaction::Search => 's',
    }
}

/// The resource type a `/fhir/{resource_type}…` path names, when it is one.
fn path_type(path: &str) -> Option<ResourceType> {
    path.strip_prefix("/fhir/")?.split('/').next()?.parse().ok()
}

/// The bearer token of the request: Ok(None) when there is no Authorization header.
fn bearer(req: &ServiceRequest) -> Result<Option<&[u8]>, ApiError> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    if value.len() > MAX_AUTHORIZATION_BYTES {
        return Err(ApiError::unauthenticated(
            Some("invalid_request"),
            format!("the Authorization header is over {MAX_AUTHORIZATION_BYTES} bytes"),
        ));
    }
    // Bytes, not text: a token already verified is found as it is, and one not seen before
    // must be RFC 6750's b64token (`well_formed`), which is ASCII, before anything else.
    let text = value.as_bytes();
    let space = text.iter().position(|&b| b == b' ').ok_or_else(malformed)?;
    let (scheme, token) = (&text[..space], text[space + 1..].trim_ascii());
    if !scheme.eq_ignore_ascii_case(b"bearer") || token.is_empty() {
        return Err(malformed());
    }
    Ok(Some(token))
}

fn malformed() -> ApiError {
    ApiError::unauthenticated(
        Some("invalid_request"),
        "the Authorization header must be `Bearer <access token>`",
    )
}

/// A token not seen before must be RFC 6750's b64token before it is verified. (A token already
/// verified is found as it is, so it is not checked again.)
fn well_formed(token: &[u8]) -> Result<&str, ApiError> {
    let token_byte = |b: &u8| {
        b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=')
    };
    match token.iter().all(token_byte) {
        // ASCII, so UTF-8.
        true => std::str::from_utf8(token).map_err(|_| malformed()),
        false => Err(malformed()),
    }
}

/// The public URL of a request: the root of the public FHIR base URL, and the path called (a
/// CDS client token's audience).
pub(crate) fn public_url(base_url: &str, path: &str) -> String {
    let root = base_url.trim_end_matches('/');
    let root = root.strip_suffix("/fhir").unwrap_or(root);
    format!("{root}{path}")
}

/// A CDS client, by its signed token: a caller granted what the CDS services do.
async fn cds_client(
    verifier: &Verifier,
    token: &str,
    audience: &str,
) -> Result<Arc<Caller>, ApiError> {
    if !verifier.cds().is_configured() {
        return Err(ApiError::unauthenticated(
            Some("invalid_token"),
            "no CDS client is trusted here (auth.cds_clients)",
        ));
    }
    let client = verifier
        .cds()
        .verify(token, audience)
        .await
        .map_err(token_refusal)?;
    Ok(Arc::new(Caller {
        issuer: client.issuer,
        subject: client.client_id.clone(),
        client_id: client.client_id,
        scopes: crate::auth::Scopes::parse(policy::CDS_CLIENT_GRANTS),
        patient: None,
        fhir_user: None,
        expires: client.expires,
    }))
}

fn token_refusal(e: KeyError) -> ApiError {
    match e {
        KeyError::Token(e) => ApiError::unauthenticated(Some("invalid_token"), e.to_string()),
        KeyError::Unavailable(reason) => {
            tracing::warn!(reason = %reason, "token issuer unavailable");
            ApiError::unauthenticated(
                Some("invalid_token"),
                "the token could not be checked: its issuer's keys are unavailable",
            )
        }
    }
}

/// The decision for one request: the access to hand on, or the refusal.
async fn decide(
    state: &ApiState,
    rule: &RouteRule,
    req: &ServiceRequest,
    caller: &mut Option<Arc<Caller>>,
) -> Result<Access, ApiError> {
    let verifier = match &state.access.mode {
        _ if rule.needs == Needs::Anyone => return Ok(Access::new(None, None)),
        AccessMode::Unrestricted => return Ok(Access::new(None, None)),
        AccessMode::Tokens(verifier) => verifier,
    };
    let Some(token) = bearer(req)? else {
        return Err(ApiError::unauthenticated(
            None,
            "this endpoint needs a bearer access token",
        ));
    };
    if rule.needs == Needs::CdsClient {
        let token = well_formed(token)?;
        let client = cds_client(verifier, token, &public_url(&state.base_url, req.path())).await?;
        *caller = Some(client.clone());
        return Ok(Access::new(Some(client), None));
    }
    let verified = match verifier.cached(token) {
        Some(verified) => verified,
        None => {
            let token = well_formed(token)?;
            verifier.verify(token).await.map_err(token_refusal)?
        }
    };
    *caller = Some(verified.clone());
    let needed: Vec<(ResourceType, Interaction)> = match rule.needs {
        Needs::Public | Needs::Anyone | Needs::EachEntry | Needs::CdsClient => Vec::new(),
        Needs::All(needs) => needs.to_vec(),
        // An unknown type: the handler answers 404, which tells nothing.
        Needs::PathType(interaction) => match path_type(req.path()) {
            Some(t) => vec![(t, interaction)],
            None => Vec::new(),
        },
    };
    let mut patient_only = false;
    for (t, interaction) in &needed {
        match verified.scopes.grant(*t, *interaction) {
            Some(grant) => patient_only |= grant.patient_only,
            None => return Err(missing_scope(&needed)),
        }
    }
    if !patient_only {
        return Ok(Access::new(Some(verified), None));
    }
    if rule.patient_scoped == PatientScoped::Refused {
        return Err(ApiError::new(
            ErrorKind::Forbidden,
            "a patient/ scope is not enough here: this endpoint needs user/ or system/ scopes",
        ));
    }
    let Some(patient) = verified.patient.clone() else {
        return Err(ApiError::new(
            ErrorKind::Forbidden,
            "the token has patient/ scopes but names no patient",
        ));
    };
    Ok(Access::new(Some(verified), Some(patient)))
}

/// The access middleware (see the module documentation).
pub async fn access_middleware<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    let Some(pattern) = route_pattern(&req) else {
        // No route: the default service answers 404 or 405, and tells nothing.
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    };
    let Some(rule) = policy::rule_for(req.method(), &pattern) else {
        let allow: Vec<&str> = policy::RULES
            .iter()
            .filter(|r| r.path == &*pattern)
            .map(|r| r.method)
            .collect();
        let refusal = if allow.is_empty() {
            ApiError::new(ErrorKind::Forbidden, "no access rule covers this route")
        } else {
            ApiError::method_not_allowed(allow.join(", "))
        };
        return Ok(req
            .into_response(refusal.error_response())
            .map_into_right_body());
    };
    if rule.needs == Needs::Public {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    }
    let Some(state) = req.app_data::<Data<ApiState>>().cloned() else {
        let refusal = ApiError::new(ErrorKind::Internal, "no service state");
        return Ok(req
            .into_response(refusal.error_response())
            .map_into_right_body());
    };
    let address = req.peer_addr().map(|a| a.ip().to_string());
    let mut caller = None;
    let decision = decide(&state, rule, &req, &mut caller).await;
    // Clients are told apart by their token; without one, by their address. Callers on this
    // host without a token (a local tool, a reverse proxy that authorizes) are not limited.
    let limiter = &state.access.limiter;
    let client_key = match (&caller, req.peer_addr()) {
        _ if !limiter.enabled() => None,
        (Some(c), _) => Some(format!("client:{}", c.client_id)),
        (None, Some(peer)) if !peer.ip().is_loopback() => Some(format!("address:{}", peer.ip())),
        (None, _) => None,
    };
    let limited = client_key.map(|key| limiter.take(&key));
    let decision = decision.and_then(|access| match limited {
        Some(Err(seconds)) => Err(ApiError::new(
            ErrorKind::Overloaded,
            "too many requests from this client; try again after Retry-After seconds",
        )
        .retry_after(seconds)),
        _ => Ok(access),
    });
    let mut record = AuditRecord::new(rule.audit.door, rule.audit.subtype, rule.audit.action);
    record.agent = AuditAgent {
        client_id: caller.as_ref().map(|c| c.client_id.clone()),
        subject: caller.as_ref().map(|c| c.subject.clone()),
        user: caller.as_ref().and_then(|c| c.fhir_user.clone()),
        ae_title: None,
        address,
    };
    record.entity = audit_entity(req.path());
    if rule.audit.subtype == "search-type" && !req.query_string().is_empty() {
        record.query = Some(req.query_string().to_owned());
    }
    record.request_id = current_request_id();
    let (response, touched) = match decision {
        Err(refusal) => {
            record.outcome_text = Some(format!("{}: {refusal}", refusal.status_code().as_u16()));
            let response = req.into_response(refusal.error_response());
            (response.map_into_right_body(), Vec::new())
        }
        Ok(access) => {
            let touched = access.touched.clone();
            req.extensions_mut().insert(access);
            let response = next.call(req).await?.map_into_left_body();
            let touched = std::mem::take(&mut *touched.borrow_mut());
            (response, touched)
        }
    };
    let status = response.status().as_u16();
    record.outcome = AuditOutcome::of_status(status);
    if record.outcome != AuditOutcome::Success && record.outcome_text.is_none() {
        let reason = response
            .response()
            .extensions()
            .get::<FailureReason>()
            .cloned();
        record.outcome_text = Some(match reason {
            Some(FailureReason(reason)) => format!("{status}: {reason}"),
            None => status.to_string(),
        });
    }
    record.patients = touched;
    state.pipeline.audit(record).await;
    Ok(response)
}

/// What a request acts on, from its path: `Type/id`, `Type`, or a study UID.
fn audit_entity(path: &str) -> Option<String> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segments.as_slice() {
        ["fhir", t, id, ..] if !t.starts_with('$') && !id.starts_with('$') => {
            Some(format!("{t}/{id}"))
        }
        ["fhir", t, ..] if !t.starts_with('$') => Some((*t).to_owned()),
        ["dicomweb" | "embeddings", "studies", study, ..] => Some((*study).to_owned()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_audited_entity_comes_from_the_path() {
        assert_eq!(
            audit_entity("/fhir/Observation/o1").as_deref(),
            Some("Observation/o1")
        );
        assert_eq!(
            audit_entity("/fhir/Observation").as_deref(),
            Some("Observation")
        );
        assert_eq!(
            audit_entity("/fhir/Patient/p1/$risk-assessment").as_deref(),
            Some("Patient/p1")
        );
        assert_eq!(
            audit_entity("/fhir/Patient/$risk-assessment").as_deref(),
            Some("Patient")
        );
        assert_eq!(audit_entity("/fhir/$risk-assessment-status/j1"), None);
        assert_eq!(
            audit_entity("/dicomweb/studies/1.2.3").as_deref(),
            Some("1.2.3")
        );
        assert_eq!(audit_entity("/hl7/v2"), None);
    }
}
