//! A small authorization server for tests that need one in-process: a SMART discovery
//! document, a JWK Set (counted, replaceable, slowed on demand) and an RFC 7662 introspection
//! endpoint, over real HTTP; and access tokens signed with the test keys. The real
//! authorization server (oidc-provider) is `tests/auth-server`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Mutex;

pub const RSA: &str = include_str!("../../src/auth/testdata/rsa-test-key.pem");
pub const EC: &str = include_str!("../../src/auth/testdata/ec-p256-test-key.pem");

pub struct TestIssuer {
    pub base: String,
    pub keys: Arc<Mutex<JwkSet>>,
    /// JWK Set fetches so far.
    pub fetches: Arc<AtomicUsize>,
    /// How long every answer waits.
    pub delay: Arc<Mutex<Duration>>,
    /// What introspection answers, by opaque token.
    pub opaque: Arc<Mutex<HashMap<String, Value>>>,
}

pub fn rsa_key() -> EncodingKey {
    EncodingKey::from_rsa_pem(RSA.as_bytes()).unwrap()
}

pub fn ec_key() -> EncodingKey {
    EncodingKey::from_ec_pem(EC.as_bytes()).unwrap()
}

pub fn jwk(key: &EncodingKey, algorithm: Algorithm, kid: &str) -> Jwk {
    let mut jwk = Jwk::from_encoding_key(key, algorithm).unwrap();
    jwk.common.key_id = Some(kid.into());
    jwk
}

/// A JWT with `claims`, signed with `key` as `algorithm`, naming key id `kid`.
pub fn sign(claims: &Value, key: &EncodingKey, algorithm: Algorithm, kid: &str) -> String {
    let mut header = Header::new(algorithm);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl TestIssuer {
    /// Serves with no keys yet.
    pub async fn start() -> TestIssuer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let issuer = TestIssuer {
            base: base.clone(),
            keys: Arc::new(Mutex::new(JwkSet { keys: vec![] })),
            fetches: Arc::new(AtomicUsize::new(0)),
            delay: Arc::new(Mutex::new(Duration::ZERO)),
            opaque: Arc::new(Mutex::new(HashMap::new())),
        };
        let (k, f, d, o) = (
            issuer.keys.clone(),
            issuer.fetches.clone(),
            issuer.delay.clone(),
            issuer.opaque.clone(),
        );
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let (k, f, d, o, b) = (k.clone(), f.clone(), d.clone(), o.clone(), base.clone());
                tokio::spawn(async move {
                    let mut buffer = vec![0u8; 16 * 1024];
                    let n = stream.read(&mut buffer).await.unwrap_or(0);
                    let request = String::from_utf8_lossy(&buffer[..n]).to_string();
                    let body = if request.starts_with("GET /.well-known/smart-configuration") {
                        json!({"issuer": b, "jwks_uri": format!("{b}/jwks"),
                            "token_endpoint": format!("{b}/token"),
                            "authorization_endpoint": format!("{b}/authorize"),
                            "introspection_endpoint": format!("{b}/introspect"),
                            "grant_types_supported": ["client_credentials", "authorization_code"]})
                        .to_string()
                    } else if request.starts_with("GET /jwks") {
                        f.fetch_add(1, Ordering::SeqCst);
                        serde_json::to_string(&*k.lock().await).unwrap()
                    } else if request.starts_with("POST /introspect") {
                        let form = request.split("\r\n\r\n").nth(1).unwrap_or_default();
                        let token = url::form_urlencoded::parse(form.as_bytes())
                            .find(|(name, _)| name == "token")
                            .map(|(_, value)| value.into_owned())
                            .unwrap_or_default();
                        o.lock()
                            .await
                            .get(&token)
                            .cloned()
                            .unwrap_or(json!({"active": false}))
                            .to_string()
                    } else {
                        String::new()
                    };
                    tokio::time::sleep(*d.lock().await).await;
                    let status = if body.is_empty() {
                        "404 Not Found"
                    } else {
                        "200 OK"
                    };
                    let response = format!(
                        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(response.as_bytes()).await;
                });
            }
        });
        issuer
    }

    /// Serves with the RSA test key published as `key-1`.
    pub async fn with_rsa_key() -> TestIssuer {
        let issuer = TestIssuer::start().await;
        issuer.keys.lock().await.keys = vec![jwk(&rsa_key(), Algorithm::RS256, "key-1")];
        issuer
    }

    /// Claims of a token for `audience` from client `client` with `scope` (and `patient`).
    pub fn claims(
        &self,
        audience: &str,
        client: &str,
        scope: &str,
        patient: Option<&str>,
    ) -> Value {
        let mut claims = json!({"iss": self.base, "aud": audience, "sub": client,
            "client_id": client, "exp": now() + 300, "iat": now(), "scope": scope});
        if let Some(patient) = patient {
            claims["patient"] = json!(patient);
        }
        claims
    }

    /// A token with `claims`, signed with the published RSA key.
    pub fn token(&self, claims: &Value) -> String {
        sign(claims, &rsa_key(), Algorithm::RS256, "key-1")
    }
}
