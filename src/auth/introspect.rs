//! Opaque access tokens, checked by asking their issuer (RFC 7662 token introspection, as SMART
//! App Launch describes it: `active`, `scope`, `client_id`, `sub`, `exp`, `patient`,
//! `fhirUser`). The service authenticates to the endpoint with its own client id and secret
//! (HTTP Basic). Active answers are kept until the token expires, so a token is introspected
//! once, not on every request; inactive ones are not kept.

use std::sync::Arc;

use super::cache::CallerCache;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::keys::KeyError;
use super::scopes::Scopes;
use super::token::{Caller, Issuer, TokenError};

/// Where an issuer introspects its tokens, and the service's credentials there.
#[derive(Debug, Clone)]
pub struct IntrospectionEndpoint {
    pub issuer: Issuer,
    pub url: String,
    pub client_id: Option<String>,
    pub client_secret: Option<SecretString>,
}

#[derive(Debug, Deserialize)]
struct Answer {
    active: bool,
    #[serde(default)]
    scope: String,
    client_id: Option<String>,
    sub: Option<String>,
    exp: Option<i64>,
    iss: Option<String>,
    aud: Option<serde_json::Value>,
    patient: Option<String>,
    #[serde(rename = "fhirUser")]
    fhir_user: Option<String>,
}

pub struct Introspector {
    endpoints: Vec<IntrospectionEndpoint>,
    http: reqwest::Client,
    active: CallerCache,
}

impl std::fmt::Debug for Introspector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Introspector")
            .field("endpoints", &self.endpoints.len())
            .finish_non_exhaustive()
    }
}

impl Introspector {
    pub fn new(endpoints: Vec<IntrospectionEndpoint>, timeout: Duration) -> Result<Self, KeyError> {
        let http = reqwest::ClientBuilder::new()
            .timeout(timeout)
            .build()
            .map_err(|e| KeyError::Unavailable(e.to_string()))?;
        Ok(Self {
            endpoints,
            http,
            active: CallerCache::default(),
        })
    }

    pub fn is_configured(&self) -> bool {
        !self.endpoints.is_empty()
    }

    /// The caller of a token found active before, until its expiry at `now`.
    pub fn verified_caller(&self, token: &[u8], now: i64) -> Option<Arc<Caller>> {
        self.active.get(token, now)
    }

    /// The caller an opaque token names, as the first issuer that knows it as active says.
    pub async fn verify(&self, token: &str) -> Result<Arc<Caller>, KeyError> {
        let now = chrono::Utc::now().timestamp();
        if let Some(caller) = self.verified_caller(token.as_bytes(), now) {
            return Ok(caller);
        }
        let mut unavailable = None;
        for endpoint in &self.endpoints {
            match self.ask(endpoint, token).await {
                Ok(Some(caller)) => {
                    let caller = Arc::new(caller);
                    self.active.insert(token, caller.clone(), now);
                    return Ok(caller);
                }
                Ok(None) => {}
                Err(e) => unavailable = Some(e),
            }
        }
        Err(unavailable.unwrap_or(KeyError::Token(TokenError::Inactive)))
    }

    /// Some(caller) when the endpoint says the token is active and meant for this service.
    async fn ask(
        &self,
        endpoint: &IntrospectionEndpoint,
        token: &str,
    ) -> Result<Option<Caller>, KeyError> {
        let mut request = self
            .http
            .post(&endpoint.url)
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&[("token", token), ("token_type_hint", "access_token")]);
        if let Some(id) = &endpoint.client_id {
            request = request.basic_auth(
                id,
                endpoint
                    .client_secret
                    .as_ref()
                    .map(|s| s.expose_secret().to_owned()),
            );
        }
        let unavailable = |e: String| KeyError::Unavailable(format!("{}: {e}", endpoint.url));
        let response = request
            .send()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        if !response.status().is_success() {
            return Err(unavailable(format!("answered {}", response.status())));
        }
        let answer: Answer = response
            .json()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        Ok(caller_of(answer, &endpoint.issuer))
    }
}

fn caller_of(answer: Answer, issuer: &Issuer) -> Option<Caller> {
    let now = chrono::Utc::now().timestamp();
    if !answer.active || answer.exp.is_none_or(|exp| exp <= now) {
        return None;
    }
    if answer
        .iss
        .as_deref()
        .is_some_and(|iss| iss != issuer.issuer)
    {
        return None;
    }
    let for_us = match &answer.aud {
        None => true,
        Some(serde_json::Value::String(aud)) => *aud == issuer.audience,
        Some(serde_json::Value::Array(auds)) => auds
            .iter()
            .any(|a| a.as_str() == Some(issuer.audience.as_str())),
        Some(_) => false,
    };
    if !for_us {
        return None;
    }
    let subject = answer.sub.or_else(|| answer.client_id.clone())?;
    Some(Caller {
        issuer: issuer.issuer.clone(),
        client_id: answer.client_id.unwrap_or_else(|| subject.clone()),
        subject,
        scopes: Scopes::parse(&answer.scope),
        patient: answer.patient,
        fhir_user: answer.fhir_user,
        expires: answer.exp?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn issuer() -> Issuer {
        Issuer {
            issuer: "https://auth.example.org".into(),
            audience: "https://prognostics.example.org/fhir".into(),
        }
    }

    fn answer(v: serde_json::Value) -> Answer {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn an_active_answer_names_the_caller() {
        let exp = chrono::Utc::now().timestamp() + 300;
        let caller = caller_of(
            answer(
                json!({"active": true, "scope": "patient/Observation.rs", "client_id": "app",
                "sub": "u1", "exp": exp, "patient": "p1",
                "aud": ["https://prognostics.example.org/fhir"]}),
            ),
            &issuer(),
        )
        .unwrap();
        assert_eq!(
            (caller.client_id.as_str(), caller.patient.as_deref()),
            ("app", Some("p1"))
        );
        assert_eq!(caller.scopes.resource.len(), 1);
    }

    #[test]
    fn inactive_expired_or_foreign_answers_name_no_one() {
        let exp = chrono::Utc::now().timestamp() + 300;
        for v in [
            json!({"active": false}),
            json!({"active": true, "sub": "u1", "exp": exp - 600}),
            json!({"active": true, "sub": "u1"}),
            json!({"active": true, "sub": "u1", "exp": exp, "aud": "https://other.example.org"}),
            json!({"active": true, "sub": "u1", "exp": exp, "iss": "https://evil.example.org"}),
        ] {
            assert!(caller_of(answer(v.clone()), &issuer()).is_none(), "{v}");
        }
    }
}
