//! The trusted issuers' keys as the service fetches them: found through the issuer's SMART
//! discovery document, cached, fetched again once for a key id it has not seen (key rotation),
//! not again for a flood of made-up key ids, and an issuer that is down or slow fails the check
//! within the time limit instead of hanging it.

use std::sync::atomic::Ordering;
use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey};
use prognostics::auth::keys::{IssuerKeys, KeyError, KeyStore};
use prognostics::auth::{Issuer, TokenError};
use serde_json::json;

use crate::issuer::{TestIssuer as Issuing, ec_key, jwk, now, rsa_key, sign};

const AUDIENCE: &str = "https://prognostics.example.org/fhir";

async fn issuer_server() -> Issuing {
    Issuing::start().await
}

fn token(issuer: &str, key: &EncodingKey, algorithm: Algorithm, kid: &str) -> String {
    let claims = json!({"iss": issuer, "aud": AUDIENCE, "sub": "backend-1",
        "exp": now() + 300, "scope": "system/*.rs"});
    sign(&claims, key, algorithm, kid)
}

#[tokio::test]
async fn issuer_keys_are_discovered_cached_and_rotated() {
    let server = issuer_server().await;
    let rsa = rsa_key();
    let ec = ec_key();
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
    let rsa = rsa_key();
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
