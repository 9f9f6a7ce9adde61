//! A FHIR R4 client for the EHR's server: reads and searches with `application/fhir+json`,
//! every page of a search followed through its `next` links, a time limit per request, and
//! retries with exponential backoff (honouring `Retry-After`) on 429 and 5xx answers and on
//! connection failures. fhir-sdk's own client announces `fhirVersion=4.3` in its media type,
//! which an R4 server may refuse; this one speaks R4 and keeps resources as JSON.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use reqwest::StatusCode;
use secrecy::ExposeSecret;
use serde_json::Value;

use super::{Authorization, EhrError};

const FHIR_JSON: &str = "application/fhir+json";
/// Largest note fetched by URL.
const MAX_ATTACHMENT_BYTES: usize = 8 << 20;

/// How to reach the EHR.
#[derive(Clone, Debug)]
pub struct ClientSettings {
    /// The FHIR base URL (`https://ehr.example.org/fhir/R4`).
    pub base_url: String,
    /// Longest wait for one answer.
    pub timeout: Duration,
    /// Attempts per request after the first, for 429, 5xx and connection failures.
    pub retries: u32,
    /// First backoff; doubled on each retry.
    pub backoff: Duration,
    /// Most pages followed for one search.
    pub max_pages: usize,
    /// Matches asked for per page (`_count`); a server may give fewer, and its `next` links
    /// are followed either way.
    pub page_size: usize,
}

/// What a search gave.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Searched {
    pub resources: Vec<Value>,
    /// (the total the server announced, the matches its pages gave) when they differ and no
    /// `next` link was left to follow.
    pub shortfall: Option<(u64, usize)>,
}

/// The connection pool, TLS roots and time limit FHIR clients share; cheap to clone.
#[derive(Clone, Debug)]
pub struct HttpClient(reqwest::Client);

/// A FHIR client; cheap to clone.
#[derive(Clone, Debug)]
pub struct FhirClient {
    http: reqwest::Client,
    settings: ClientSettings,
    authorization: Arc<Authorization>,
}

impl FhirClient {
    pub fn new(settings: ClientSettings, authorization: Authorization) -> Result<Self, EhrError> {
        let http = Self::http_client(settings.timeout)?;
        Ok(Self::with_http(http, settings, authorization))
    }

    /// The HTTP client a FHIR client with time limit `timeout` uses; building one loads TLS
    /// roots, so a caller making many short-lived FHIR clients builds it once.
    pub fn http_client(timeout: Duration) -> Result<HttpClient, EhrError> {
        reqwest::ClientBuilder::new()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("prognostics/", env!("CARGO_PKG_VERSION")))
            .build()
            .map(HttpClient)
            .map_err(|e| EhrError::Client(e.to_string()))
    }

    /// A FHIR client over an HTTP client made by [`FhirClient::http_client`] (its time limit is
    /// the one it was made with).
    pub fn with_http(
        http: HttpClient,
        settings: ClientSettings,
        authorization: Authorization,
    ) -> Self {
        Self {
            http: http.0,
            settings,
            authorization: Arc::new(authorization),
        }
    }

    /// The FHIR base URL this client talks to.
    pub fn base_url(&self) -> &str {
        &self.settings.base_url
    }

    pub fn page_size(&self) -> usize {
        self.settings.page_size
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{}", self.settings.base_url.trim_end_matches('/'), path)
    }

    /// `GET {base}/{type}/{id}`.
    pub async fn read(&self, resource_type: &str, id: &str) -> Result<Value, EhrError> {
        self.get(&self.url(&format!("{resource_type}/{id}"))).await
    }

    /// Every match of a search, page after page, and whether the server gave fewer than the
    /// `total` it announced.
    pub async fn search_all(
        &self,
        resource_type: &str,
        params: &[(&str, &str)],
    ) -> Result<Searched, EhrError> {
        let mut url = reqwest::Url::parse_with_params(&self.url(resource_type), params)
            .map_err(|e| EhrError::Client(e.to_string()))?
            .to_string();
        let mut found = Vec::new();
        let mut total = None;
        for _ in 0..self.settings.max_pages {
            let bundle = self.get(&url).await?;
            if total.is_none() {
                total = bundle.get("total").and_then(Value::as_u64);
            }
            if bundle.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
                return Err(EhrError::Malformed {
                    url,
                    reason: "a search did not answer with a Bundle".into(),
                });
            }
            for entry in bundle
                .get("entry")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                // Search results only: `include`d resources and OperationOutcomes are not matches.
                let mode = entry.pointer("/search/mode").and_then(Value::as_str);
                if let Some(resource) = entry.get("resource")
                    && resource.get("resourceType").and_then(Value::as_str) == Some(resource_type)
                    && mode.is_none_or(|m| m == "match")
                {
                    found.push(resource.clone());
                }
            }
            let next = bundle
                .get("link")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .find(|l| l.get("relation").and_then(Value::as_str) == Some("next"))
                .and_then(|l| l.get("url").and_then(Value::as_str));
            match next {
                Some(next) => url = next.to_owned(),
                None => {
                    return Ok(Searched {
                        shortfall: total
                            .filter(|&t| t > found.len() as u64)
                            .map(|announced| (announced, found.len())),
                        resources: found,
                    });
                }
            }
        }
        Err(EhrError::TooManyPages {
            resource_type: resource_type.to_owned(),
            pages: self.settings.max_pages,
        })
    }

    /// One GET, retried as the settings say; with SMART, once more with a fresh token when
    /// the EHR refuses the cached one.
    async fn get_bytes(
        &self,
        url: &str,
        accept: &str,
    ) -> Result<(Option<String>, Vec<u8>), EhrError> {
        let mut attempt = 0;
        let mut token_refreshed = false;
        loop {
            let mut request = self.http.get(url).header(reqwest::header::ACCEPT, accept);
            match self.authorization.as_ref() {
                Authorization::None => {}
                Authorization::Bearer(token) => {
                    request = request.bearer_auth(token.expose_secret());
                }
                Authorization::Smart(smart) => {
                    let token = smart
                        .access_token(&self.http, &self.settings.base_url)
                        .await?;
                    request = request.bearer_auth(token.expose_secret());
                }
            }
            let outcome = request.send().await;
            if let (Authorization::Smart(smart), Ok(response)) =
                (self.authorization.as_ref(), &outcome)
                && response.status() == StatusCode::UNAUTHORIZED
                && !token_refreshed
            {
                tracing::warn!("the EHR refused its access token; asking for a new one");
                smart.invalidate().await;
                token_refreshed = true;
                continue;
            }
            let retry_after = match &outcome {
                Ok(response)
                    if response.status() == StatusCode::TOO_MANY_REQUESTS
                        || response.status().is_server_error() =>
                {
                    Some(
                        response
                            .headers()
                            .get(reqwest::header::RETRY_AFTER)
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.trim().parse::<u64>().ok())
                            .map(Duration::from_secs),
                    )
                }
                Err(e) if e.is_timeout() || e.is_connect() || e.is_request() => Some(None),
                _ => None,
            };
            if let Some(after) = retry_after
                && attempt < self.settings.retries
            {
                let backoff = self.settings.backoff * 2u32.pow(attempt);
                let wait = after.unwrap_or(backoff).min(Duration::from_secs(30));
                tracing::warn!(
                    attempt = attempt + 1,
                    wait_ms = wait.as_millis() as u64,
                    "EHR request retried"
                );
                tokio::time::sleep(wait).await;
                attempt += 1;
                continue;
            }
            let response = outcome.map_err(|e| {
                if e.is_timeout() {
                    EhrError::Timeout {
                        url: url.to_owned(),
                    }
                } else {
                    EhrError::Unreachable {
                        url: url.to_owned(),
                        reason: crate::error::error_chain(&e),
                    }
                }
            })?;
            let status = response.status();
            if !status.is_success() {
                return Err(EhrError::Status {
                    url: url.to_owned(),
                    status: status.as_u16(),
                });
            }
            let content_type = response
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let bytes = response.bytes().await.map_err(|e| EhrError::Unreachable {
                url: url.to_owned(),
                reason: crate::error::error_chain(&e),
            })?;
            return Ok((content_type, bytes.to_vec()));
        }
    }

    /// One FHIR JSON GET.
    async fn get(&self, url: &str) -> Result<Value, EhrError> {
        let (_, bytes) = self.get_bytes(url, FHIR_JSON).await?;
        serde_json::from_slice(&bytes).map_err(|e| EhrError::Malformed {
            url: url.to_owned(),
            reason: format!("not JSON: {e}"),
        })
    }

    /// The content of an attachment given by URL (absolute, or relative to the FHIR base, as
    /// `Binary/123`), base64-encoded, with its content type. A FHIR Binary answer is
    /// unwrapped; anything larger than `MAX_ATTACHMENT_BYTES` is refused.
    pub async fn fetch_attachment(&self, url: &str) -> Result<(Option<String>, String), EhrError> {
        let absolute = if url.contains("://") {
            url.to_owned()
        } else {
            self.url(url.trim_start_matches('/'))
        };
        let (content_type, bytes) = self
            .get_bytes(
                &absolute,
                "text/plain, text/html, application/fhir+json;q=0.9, */*;q=0.1",
            )
            .await?;
        if bytes.len() > MAX_ATTACHMENT_BYTES {
            return Err(EhrError::Malformed {
                url: absolute,
                reason: format!("the attachment is larger than {MAX_ATTACHMENT_BYTES} bytes"),
            });
        }
        let is_json = content_type.as_deref().is_some_and(|t| t.contains("json"));
        if is_json
            && let Ok(binary) = serde_json::from_slice::<Value>(&bytes)
            && binary.get("resourceType").and_then(Value::as_str) == Some("Binary")
        {
            let data =
                binary
                    .get("data")
                    .and_then(Value::as_str)
                    .ok_or_else(|| EhrError::Malformed {
                        url: absolute.clone(),
                        reason: "a Binary without data".into(),
                    })?;
            let content_type = binary
                .get("contentType")
                .and_then(Value::as_str)
                .map(str::to_owned);
            return Ok((content_type, data.to_owned()));
        }
        Ok((
            content_type,
            base64::engine::general_purpose::STANDARD.encode(&bytes),
        ))
    }
}
