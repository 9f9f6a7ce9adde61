//! How the service proves itself to the EHR: nothing, a fixed bearer token, or SMART Backend
//! Services (the `client_credentials` grant with a `private_key_jwt` client assertion signed
//! RS384 or ES384, as SMART App Launch 2.x specifies). Access tokens are cached until shortly
//! before they expire; concurrent requests share one token request; a token the EHR refuses
//! (401) is dropped so that the next request gets a fresh one.

use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{Jwk, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use tokio::sync::Mutex;

use super::EhrError;

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Lifetime of a client assertion; SMART allows at most five minutes.
const ASSERTION_LIFETIME_SECS: u64 = 300;
/// Used when a token response gives no `expires_in`.
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(300);

/// A registered SMART backend client.
#[derive(Clone, Debug)]
pub struct SmartClient {
    /// The client id the EHR gave at registration.
    pub client_id: String,
    /// The private key, PEM: RSA (PKCS #1 or #8; RS384) or EC P-384 (PKCS #8; ES384).
    pub private_key_pem: SecretString,
    /// `kid` of the key as registered; when absent, the key's RFC 7638 thumbprint, the `kid`
    /// `prognostics ehr-jwks` prints.
    pub key_id: Option<String>,
    /// The token endpoint; when absent, read from `{base}/.well-known/smart-configuration`.
    pub token_url: Option<String>,
    /// Scopes asked for, space-separated.
    pub scope: String,
}

/// How requests to the EHR are authorised.
#[derive(Debug)]
pub enum Authorization {
    None,
    Bearer(SecretString),
    Smart(Box<SmartBackend>),
}

/// A SMART Backend Services client: its signing key and the cached access token.
pub struct SmartBackend {
    client: SmartClient,
    key: EncodingKey,
    algorithm: Algorithm,
    key_id: String,
    public_jwk: Jwk,
    token: Mutex<Option<CachedToken>>,
}

impl std::fmt::Debug for SmartBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmartBackend")
            .field("client_id", &self.client.client_id)
            .field("algorithm", &self.algorithm)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

struct CachedToken {
    token_url: String,
    access_token: SecretString,
    refresh_at: Instant,
}

impl SmartBackend {
    /// Reads the key and works out its algorithm (RS384 for RSA, ES384 for EC P-384).
    pub fn new(client: SmartClient) -> Result<Self, EhrError> {
        let pem = client.private_key_pem.expose_secret().as_bytes();
        let refused = |reason: String| {
            EhrError::Client(format!(
                "the SMART private key cannot be used: {reason} (an RSA key, or an EC P-384 key \
                 in PKCS #8 form, PEM-encoded)"
            ))
        };
        let (key, algorithm) = match EncodingKey::from_rsa_pem(pem) {
            Ok(key) => {
                tracing::warn!(
                    "the SMART client key is RSA: its RS384 signatures go through the rsa crate, \
                     whose private-key operations leak timing (RUSTSEC-2023-0071); an EC P-384 \
                     key (ES384) avoids it"
                );
                (key, Algorithm::RS384)
            }
            Err(_) => EncodingKey::from_ec_pem(pem)
                .map(|key| (key, Algorithm::ES384))
                .map_err(|e| refused(e.to_string()))?,
        };
        let mut public_jwk =
            Jwk::from_encoding_key(&key, algorithm).map_err(|e| refused(e.to_string()))?;
        // A trial signature: an EC key on another curve, or a damaged key, fails here rather
        // than at the first pull.
        jsonwebtoken::encode(&Header::new(algorithm), &serde_json::json!({}), &key)
            .map_err(|e| refused(e.to_string()))?;
        let key_id = client
            .key_id
            .clone()
            .unwrap_or_else(|| public_jwk.thumbprint(ThumbprintHash::SHA256));
        public_jwk.common.key_id = Some(key_id.clone());
        public_jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        Ok(Self {
            client,
            key,
            algorithm,
            key_id,
            public_jwk,
            token: Mutex::new(None),
        })
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The public key as a JWK Set, to register with the EHR.
    pub fn jwks(&self) -> Value {
        serde_json::json!({ "keys": [self.public_jwk] })
    }

    /// A valid access token: the cached one, or a new one from the token endpoint.
    pub async fn access_token(
        &self,
        http: &reqwest::Client,
        base_url: &str,
    ) -> Result<SecretString, EhrError> {
        let mut cached = self.token.lock().await;
        if let Some(token) = cached.as_ref()
            && Instant::now() < token.refresh_at
        {
            return Ok(token.access_token.clone());
        }
        let token_url = match (cached.take(), &self.client.token_url) {
            (_, Some(url)) => url.clone(),
            (Some(previous), None) => previous.token_url,
            (None, None) => discover_token_url(http, base_url).await?,
        };
        let token = self.request_token(http, &token_url).await?;
        let access_token = token.access_token.clone();
        *cached = Some(token);
        Ok(access_token)
    }

    /// Forgets the cached token (the EHR refused it).
    pub async fn invalidate(&self) {
        if let Some(token) = self.token.lock().await.as_mut() {
            token.refresh_at = Instant::now();
        }
    }

    fn assertion(&self, token_url: &str) -> Result<String, EhrError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let mut header = Header::new(self.algorithm);
        header.typ = Some("JWT".into());
        header.kid = Some(self.key_id.clone());
        let claims = serde_json::json!({
            "iss": self.client.client_id,
            "sub": self.client.client_id,
            "aud": token_url,
            "exp": now + ASSERTION_LIFETIME_SECS,
            "iat": now,
            "jti": uuid::Uuid::new_v4().to_string(),
        });
        jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|e| EhrError::Client(format!("the client assertion could not be signed: {e}")))
    }

    async fn request_token(
        &self,
        http: &reqwest::Client,
        token_url: &str,
    ) -> Result<CachedToken, EhrError> {
        let assertion = self.assertion(token_url)?;
        let form = [
            ("grant_type", "client_credentials"),
            ("scope", self.client.scope.as_str()),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", assertion.as_str()),
        ];
        let asked = Instant::now();
        let response = http
            .post(token_url)
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&form)
            .send()
            .await
            .map_err(|e| EhrError::Unreachable {
                url: token_url.to_owned(),
                reason: crate::error::error_chain(&e),
            })?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            // RFC 6749 §5.2: `error` and `error_description` say why.
            let field = |name: &str| body.get(name).and_then(Value::as_str).unwrap_or_default();
            return Err(EhrError::Auth {
                url: token_url.to_owned(),
                reason: format!(
                    "HTTP {}: {} {}",
                    status.as_u16(),
                    field("error"),
                    field("error_description")
                )
                .trim()
                .to_owned(),
            });
        }
        let access_token = body
            .get("access_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| EhrError::Auth {
                url: token_url.to_owned(),
                reason: "the answer has no access_token".into(),
            })?;
        let lifetime = body
            .get("expires_in")
            .and_then(Value::as_u64)
            .map_or(DEFAULT_TOKEN_LIFETIME, Duration::from_secs);
        // Renewed a little early, so that a token does not expire on its way to the EHR.
        let margin = (lifetime / 10).min(Duration::from_secs(60));
        tracing::info!(
            client_id = %self.client.client_id,
            expires_in_s = lifetime.as_secs(),
            "SMART access token obtained"
        );
        Ok(CachedToken {
            token_url: token_url.to_owned(),
            access_token: access_token.to_owned().into(),
            refresh_at: asked + lifetime - margin,
        })
    }
}

/// The token endpoint from the server's SMART configuration.
async fn discover_token_url(http: &reqwest::Client, base_url: &str) -> Result<String, EhrError> {
    let url = format!(
        "{}/.well-known/smart-configuration",
        base_url.trim_end_matches('/')
    );
    let refused = |reason: String| EhrError::Auth {
        url: url.clone(),
        reason: format!("{reason}; set ehr.smart.token_url"),
    };
    let response = http
        .get(&url)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| refused(crate::error::error_chain(&e)))?;
    if !response.status().is_success() {
        return Err(refused(format!("HTTP {}", response.status().as_u16())));
    }
    let configuration: Value = response
        .json()
        .await
        .map_err(|e| refused(format!("not JSON: {e}")))?;
    configuration
        .get("token_endpoint")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| refused("no token_endpoint in the SMART configuration".into()))
}
