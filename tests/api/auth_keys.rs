//! The trusted issuers' keys as the service fetches them: found through the issuer's SMART
//! discovery document, cached, fetched again once for a key id it has not seen (key rotation),
//! not again for a flood of made-up key ids, and an issuer that is down or slow fails the check
//! within the time limit instead of hanging it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use prognostics::auth::keys::{IssuerKeys, KeyError, KeyStore};
use prognostics::auth::{Issuer, TokenError};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Mutex;

const RSA: &str = include_str!("../../src/auth/testdata/rsa-test-key.pem");
const EC: &str = include_str!("../../src/auth/testdata/ec-p256-test-key.pem");
const AUDIENCE: &str = "https://prognostics.example.org/fhir";

struct Issuing {
    base: String,
    keys: Arc<Mutex<JwkSet>>,
    fetches: Arc<AtomicUsize>,
    delay: Arc<Mutex<Duration>>,
}

/// A discovery document and a JWK Set, served over real HTTP.
async fn issuer_server() -> Issuing {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let keys = Arc::new(Mutex::new(JwkSet { keys: vec![] }));
    let fetches = Arc::new(AtomicUsize::new(0));
    let delay = Arc::new(Mutex::new(Duration::ZERO));
    let (k, f, d, b) = (keys.clone(), fetches.clone(), delay.clone(), base.clone());
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let (k, f, d, b) = (k.clone(), f.clone(), d.clone(), b.clone());
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 4096];
                let n = stream.read(&mut buffer).await.unwrap_or(0);
                let request = String::from_utf8_lossy(&buffer[..n]).to_string();
                let body = if request.starts_with("GET /.well-known/smart-configuration") {
                    json!({"issuer": b, "jwks_uri": format!("{b}/jwks"),
                        "token_endpoint": format!("{b}/token")})
                    .to_string()
                } else if request.starts_with("GET /jwks") {
                    f.fetch_add(1, Ordering::SeqCst);
                    serde_json::to_string(&*k.lock().await).unwrap()
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
    Issuing {
        base,
        keys,
        fetches,
        delay,
    }
}

fn jwk(key: &EncodingKey, algorithm: Algorithm, kid: &str) -> Jwk {
    let mut jwk = Jwk::from_encoding_key(key, algorithm).unwrap();
    jwk.common.key_id = Some(kid.into());
    jwk
}

fn token(issuer: &str, key: &EncodingKey, algorithm: Algorithm, kid: &str) -> String {
    let mut header = Header::new(algorithm);
    header.kid = Some(kid.into());
    let now = chrono::Utc::now().timestamp();
    let claims: Value = json!({"iss": issuer, "aud": AUDIENCE, "sub": "backend-1",
        "exp": now + 300, "scope": "system/*.rs"});
    jsonwebtoken::encode(&header, &claims, key).unwrap()
}

#[tokio::test]
async fn issuer_keys_are_discovered_cached_and_rotated() {
    let server = issuer_server().await;
    let rsa = EncodingKey::from_rsa_pem(RSA.as_bytes()).unwrap();
    let ec = EncodingKey::from_ec_pem(EC.as_bytes()).unwrap();
    server.keys.lock().await.keys = vec![jwk(&rsa, Algorithm::RS256, "key-1")];
    let store = KeyStore::new(
        vec![IssuerKeys {
            issuer: Issuer {
                issuer: server.base.clone(),
                audience: AUDIENCE.into(),
            },
            jwks_uri: None,
        }],
        Duration::from_secs(2),
    )
    .unwrap();

    let first = token(&server.base, &rsa, Algorithm::RS256, "key-1");
    assert_eq!(store.verify(&first).await.unwrap().subject, "backend-1");
    assert_eq!(store.verify(&first).await.unwrap().subject, "backend-1");
    let other = token(&server.base, &rsa, Algorithm::RS384, "key-1");
    store.verify(&other).await.unwrap();
    assert_eq!(
        server.fetches.load(Ordering::SeqCst),
        1,
        "one fetch, then the cache"
    );

    // The issuer rotates to a new key: a token signed with it makes one fetch more.
    server.keys.lock().await.keys = vec![
        jwk(&rsa, Algorithm::RS256, "key-1"),
        jwk(&ec, Algorithm::ES256, "key-2"),
    ];
    // The last fetch is under a minute old: a refresh waits, so the new key is not known yet…
    let rotated = token(&server.base, &ec, Algorithm::ES256, "key-2");
    assert_eq!(
        store.verify(&rotated).await,
        Err(KeyError::Token(TokenError::UnknownKey))
    );
    // …and a flood of made-up key ids does not become a flood of fetches.
    for n in 0..20 {
        let made_up = token(&server.base, &rsa, Algorithm::RS256, &format!("nope-{n}"));
        assert!(store.verify(&made_up).await.is_err());
    }
    assert_eq!(server.fetches.load(Ordering::SeqCst), 1);

    // A fresh store (as after a minute) fetches the rotated set once and accepts the new key.
    let fresh = KeyStore::new(
        vec![IssuerKeys {
            issuer: Issuer {
                issuer: server.base.clone(),
                audience: AUDIENCE.into(),
            },
            jwks_uri: Some(format!("{}/jwks", server.base)),
        }],
        Duration::from_secs(2),
    )
    .unwrap();
    assert_eq!(fresh.verify(&rotated).await.unwrap().subject, "backend-1");
    assert_eq!(server.fetches.load(Ordering::SeqCst), 2);

    // A token from an issuer not configured is refused without a fetch.
    let stranger = token("https://evil.example.org", &rsa, Algorithm::RS256, "key-1");
    assert_eq!(
        fresh.verify(&stranger).await,
        Err(KeyError::Token(TokenError::UnknownIssuer))
    );
}

#[tokio::test]
async fn an_issuer_that_is_slow_or_down_fails_the_check_in_time() {
    let server = issuer_server().await;
    let rsa = EncodingKey::from_rsa_pem(RSA.as_bytes()).unwrap();
    server.keys.lock().await.keys = vec![jwk(&rsa, Algorithm::RS256, "key-1")];
    *server.delay.lock().await = Duration::from_secs(10);
    let store = KeyStore::new(
        vec![IssuerKeys {
            issuer: Issuer {
                issuer: server.base.clone(),
                audience: AUDIENCE.into(),
            },
            jwks_uri: None,
        }],
        Duration::from_millis(500),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let result = store
        .verify(&token(&server.base, &rsa, Algorithm::RS256, "key-1"))
        .await;
    assert!(
        matches!(result, Err(KeyError::Unavailable(_))),
        "{result:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    // Down altogether.
    let down = KeyStore::new(
        vec![IssuerKeys {
            issuer: Issuer {
                issuer: "http://127.0.0.1:9".into(),
                audience: AUDIENCE.into(),
            },
            jwks_uri: None,
        }],
        Duration::from_millis(500),
    )
    .unwrap();
    let result = down
        .verify(&token(
            "http://127.0.0.1:9",
            &rsa,
            Algorithm::RS256,
            "key-1",
        ))
        .await;
    assert!(
        matches!(result, Err(KeyError::Unavailable(_))),
        "{result:?}"
    );
}
