//! The trusted issuers' signing keys, fetched and cached: each issuer's JWK Set from its
//! configured `jwks_uri`, else the one its discovery document names
//! (`.well-known/smart-configuration`, else `.well-known/openid-configuration`). Keys are kept
//! until a token names a key id the set lacks; the set is then fetched again, at most once a
//! minute per issuer (key rotation works; a flood of made-up key ids does not become a flood of
//! fetches). Verified tokens are kept until they expire, so that a hot path does not check the
//! same signature twice. Every fetch has a time limit: a slow or absent issuer fails a request,
//! it never hangs it.

use std::sync::Arc;

use super::cache::CallerCache;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use tokio::sync::Mutex;

use super::token::{Caller, Issuer, TokenError, claimed_issuer, header, verify};

/// A trusted issuer and where its keys are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerKeys {
    pub issuer: Issuer,
    /// None: from the issuer's discovery document.
    pub jwks_uri: Option<String>,
}

/// Why a token could not be checked, or was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The issuer's keys could not be had (its server down, slow or answering nonsense).
    #[error("the issuer's keys could not be fetched: {0}")]
    Unavailable(String),
}

const REFETCH_AT_MOST_EVERY: Duration = Duration::from_secs(60);
/// An issuer's key set and when it was fetched.
struct Cached {
    keys: JwkSet,
    fetched: Instant,
}

pub struct KeyStore {
    issuers: Vec<IssuerKeys>,
    http: reqwest::Client,
    keys: Mutex<HashMap<String, Cached>>,
    /// Each issuer's discovery document, once fetched.
    discovered: Mutex<HashMap<String, serde_json::Value>>,
    verified: CallerCache,
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyStore")
            .field("issuers", &self.issuers)
            .finish_non_exhaustive()
    }
}

impl KeyStore {
    /// `timeout` bounds each fetch.
    pub fn new(issuers: Vec<IssuerKeys>, timeout: Duration) -> Result<Self, KeyError> {
        let http = reqwest::ClientBuilder::new()
            .timeout(timeout)
            .build()
            .map_err(|e| KeyError::Unavailable(e.to_string()))?;
        Ok(Self {
            issuers,
            http,
            keys: Mutex::new(HashMap::new()),
            discovered: Mutex::new(HashMap::new()),
            verified: CallerCache::default(),
        })
    }

    /// The caller a token names, verified against its issuer's keys.
    pub async fn verify(&self, token: &str) -> Result<Arc<Caller>, KeyError> {
        let now = chrono::Utc::now().timestamp();
        if let Some(caller) = self.verified_caller(token.as_bytes(), now) {
            return Ok(caller);
        }
        let (kid, _) = header(token)?;
        let claimed = claimed_issuer(token)?;
        let issuer = self
            .issuers
            .iter()
            .find(|i| i.issuer.issuer == claimed)
            .ok_or(TokenError::UnknownIssuer)?;
        let keys = self.keys_of(issuer, false).await?;
        let knows_kid = kid.as_ref().is_none_or(|kid| keys.find(kid).is_some());
        let keys = if knows_kid {
            keys
        } else {
            self.keys_of(issuer, true).await?
        };
        let caller = Arc::new(verify(token, &issuer.issuer, &keys)?);
        self.verified.insert(token, caller.clone(), now);
        Ok(caller)
    }

    /// The caller of a token verified here before and not expired at `now`.
    pub fn verified_caller(&self, token: &[u8], now: i64) -> Option<Arc<Caller>> {
        self.verified.get(token, now)
    }

    /// The issuer's keys: cached, or fetched (again when `refresh` and the last fetch is over a
    /// minute old).
    async fn keys_of(&self, issuer: &IssuerKeys, refresh: bool) -> Result<JwkSet, KeyError> {
        let name = &issuer.issuer.issuer;
        if let Some(keys) = self.cached(name, refresh).await {
            return Ok(keys);
        }
        let keys = self.fetch(issuer).await?;
        tracing::info!(issuer = %name, keys = keys.keys.len(), "issuer keys fetched");
        self.remember(name, &keys).await;
        Ok(keys)
    }

    /// The JWK Set at `url` (a CDS client's configured or allow-listed set), cached as an
    /// issuer's is.
    pub async fn key_set_at(&self, url: &str, refresh: bool) -> Result<JwkSet, KeyError> {
        let name = format!("url:{url}");
        if let Some(keys) = self.cached(&name, refresh).await {
            return Ok(keys);
        }
        let keys = self.get_json::<JwkSet>(url).await?;
        tracing::info!(keys = keys.keys.len(), "client keys fetched");
        self.remember(&name, &keys).await;
        Ok(keys)
    }

    /// Keys fetched under `name`, unless a `refresh` is asked and allowed.
    async fn cached(&self, name: &str, refresh: bool) -> Option<JwkSet> {
        let cache = self.keys.lock().await;
        cache
            .get(name)
            .filter(|cached| !refresh || cached.fetched.elapsed() < REFETCH_AT_MOST_EVERY)
            .map(|cached| cached.keys.clone())
    }

    async fn remember(&self, name: &str, keys: &JwkSet) {
        self.keys.lock().await.insert(
            name.to_owned(),
            Cached {
                keys: keys.clone(),
                fetched: Instant::now(),
            },
        );
    }

    async fn fetch(&self, issuer: &IssuerKeys) -> Result<JwkSet, KeyError> {
        let jwks_uri = match &issuer.jwks_uri {
            Some(uri) => uri.clone(),
            None => self.discover(&issuer.issuer.issuer).await?,
        };
        self.get_json::<JwkSet>(&jwks_uri).await
    }

    /// The `jwks_uri` of the issuer's discovery document.
    async fn discover(&self, issuer: &str) -> Result<String, KeyError> {
        let document = self.discovery(issuer).await?;
        document
            .get("jwks_uri")
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| KeyError::Unavailable(format!("{issuer}: discovery names no jwks_uri")))
    }

    /// The issuer's SMART configuration, else its OpenID configuration; kept once fetched.
    pub async fn discovery(&self, issuer: &str) -> Result<serde_json::Value, KeyError> {
        if let Some(document) = self.discovered.lock().await.get(issuer) {
            return Ok(document.clone());
        }
        let base = issuer.trim_end_matches('/');
        let mut reasons = Vec::new();
        for document in ["smart-configuration", "openid-configuration"] {
            let url = format!("{base}/.well-known/{document}");
            match self.get_json::<serde_json::Value>(&url).await {
                Ok(found) if found.is_object() => {
                    self.discovered
                        .lock()
                        .await
                        .insert(issuer.to_owned(), found.clone());
                    return Ok(found);
                }
                Ok(_) => reasons.push(format!("{document} is not a JSON object")),
                Err(e) => reasons.push(format!("{document}: {e}")),
            }
        }
        Err(KeyError::Unavailable(reasons.join("; ")))
    }

    /// The trusted issuers.
    pub fn issuers(&self) -> impl Iterator<Item = &IssuerKeys> {
        self.issuers.iter()
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, KeyError> {
        let response = self
            .http
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| KeyError::Unavailable(format!("{url}: {e}")))?;
        if !response.status().is_success() {
            return Err(KeyError::Unavailable(format!(
                "{url} answered {}",
                response.status()
            )));
        }
        response
            .json::<T>()
            .await
            .map_err(|e| KeyError::Unavailable(format!("{url}: {e}")))
    }
}
