//! CDS Hooks clients (CDS Hooks 2.0, "Trusting CDS Clients"): the EHR calling a CDS service
//! signs a short-lived JWT with its own key and sends it as the bearer token. The service trusts
//! an allow-list of client issuers; a client's keys come from the JWK Set configured for it, or
//! from the `jku` its token names when that URL is under one of the client's allow-listed
//! prefixes (never from an arbitrary `jku`). The token must be signed with ES384 or RS384, name
//! the service URL called as `aud`, expire within five minutes, and carry a `jti` not seen
//! before: a captured token cannot be replayed.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use super::keys::{KeyError, KeyStore};
use super::token::{CLOCK_SKEW_SECS, TokenError, refusal};

/// The algorithms CDS Hooks 2.0 requires services to accept.
pub const CDS_ALGORITHMS: [Algorithm; 2] = [Algorithm::ES384, Algorithm::RS384];

/// Longest lifetime a client token may have left (the spec's five minutes, plus clock skew).
const MAX_LIFETIME_SECS: i64 = 300 + CLOCK_SKEW_SECS as i64;

/// Token ids remembered at once; each is kept only until its token expires (minutes).
const REPLAY_CAPACITY: usize = 200_000;

/// A trusted CDS client (`[[auth.cds_clients]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CdsClient {
    /// Its `iss`.
    pub issuer: String,
    /// Its JWK Set; tokens naming another `jku` must match `jku_prefixes`.
    pub jwks_uri: Option<String>,
    /// URL prefixes under which a token's `jku` is trusted.
    pub jku_prefixes: Vec<String>,
}

impl CdsClient {
    /// Where the keys for a token with header `jku` are, if that may be trusted.
    fn key_source<'a>(&'a self, jku: Option<&'a str>) -> Result<&'a str, TokenError> {
        match jku {
            Some(jku) if self.jwks_uri.as_deref() == Some(jku) => Ok(jku),
            Some(jku) => self
                .jku_prefixes
                .iter()
                .any(|prefix| jku_under(jku, prefix))
                .then_some(jku)
                .ok_or(TokenError::UntrustedKeySource),
            None => self
                .jwks_uri
                .as_deref()
                .ok_or(TokenError::UntrustedKeySource),
        }
    }
}

/// Whether `jku` lies under `prefix`, compared as URLs: same scheme and host, and a path
/// under the prefix's (so `https://ehr.example.org.evil.net/` is not under
/// `https://ehr.example.org`).
fn jku_under(jku: &str, prefix: &str) -> bool {
    let (Ok(jku), Ok(prefix)) = (url::Url::parse(jku), url::Url::parse(prefix)) else {
        return false;
    };
    let base = prefix.path().trim_end_matches('/');
    jku.scheme() == prefix.scheme()
        && jku.host_str() == prefix.host_str()
        && jku.port_or_known_default() == prefix.port_or_known_default()
        && (jku.path() == base || jku.path().starts_with(&format!("{base}/")))
}

/// A CDS client as its verified token names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CdsCaller {
    pub issuer: String,
    /// `sub`: the client id the EHR registered with.
    pub client_id: String,
    pub jti: String,
    pub tenant: Option<String>,
    pub expires: i64,
}

#[derive(Debug, Deserialize)]
struct Claims {
    iss: String,
    sub: Option<String>,
    exp: i64,
    jti: Option<String>,
    tenant: Option<String>,
}

/// The `iss` and `jku` a client token claims (unverified: to choose the keys that check it).
fn claimed(token: &str) -> Result<(String, Option<String>, Option<String>), TokenError> {
    #[derive(Deserialize)]
    struct Iss {
        iss: String,
    }
    let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
    if !CDS_ALGORITHMS.contains(&header.alg) {
        return Err(TokenError::Algorithm(format!(
            "{:?} (CDS clients sign with ES384 or RS384)",
            header.alg
        )));
    }
    let iss = jsonwebtoken::dangerous::insecure_decode::<Iss>(token)
        .map_err(|_| TokenError::Malformed)?
        .claims
        .iss;
    Ok((iss, header.kid, header.jku))
}

/// Verifies a client token with `keys` for `audience` (the URL called), at the current time.
/// The `jti` is returned, not checked against earlier tokens: [`CdsVerifier`] does that.
pub fn verify_client_token(
    token: &str,
    client: &CdsClient,
    keys: &JwkSet,
    audience: &str,
) -> Result<CdsCaller, TokenError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
    let algorithm = header.alg;
    if !CDS_ALGORITHMS.contains(&algorithm) {
        return Err(TokenError::Algorithm(format!("{algorithm:?}")));
    }
    let jwk = match &header.kid {
        Some(kid) => keys.find(kid).ok_or(TokenError::UnknownKey)?,
        None => match keys.keys.as_slice() {
            [only] => only,
            _ => return Err(TokenError::UnknownKey),
        },
    };
    let fits = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => algorithm == Algorithm::RS384,
        AlgorithmParameters::EllipticCurve(ec) => {
            ec.curve == EllipticCurve::P384 && algorithm == Algorithm::ES384
        }
        _ => false,
    };
    if !fits {
        return Err(TokenError::KeyMismatch);
    }
    let key = DecodingKey::from_jwk(jwk).map_err(|_| TokenError::KeyMismatch)?;
    let mut validation = Validation::new(algorithm);
    validation.set_issuer(&[&client.issuer]);
    validation.set_audience(&[audience]);
    validation.set_required_spec_claims(&["exp", "iss", "aud"]);
    validation.leeway = CLOCK_SKEW_SECS;
    let data = jsonwebtoken::decode::<Claims>(token, &key, &validation).map_err(|e| refusal(&e))?;
    let claims = data.claims;
    if claims.exp > chrono::Utc::now().timestamp() + MAX_LIFETIME_SECS {
        return Err(TokenError::TooLongLived);
    }
    let jti = claims
        .jti
        .filter(|j| !j.is_empty())
        .ok_or_else(|| TokenError::Claims("jti".into()))?;
    Ok(CdsCaller {
        client_id: claims.sub.unwrap_or_else(|| claims.iss.clone()),
        issuer: claims.iss,
        jti,
        tenant: claims.tenant,
        expires: claims.exp,
    })
}

/// Verifies CDS client tokens: the trusted clients, their keys (fetched and cached), and the
/// token ids already used.
pub struct CdsVerifier {
    clients: Vec<CdsClient>,
    keys: KeyStore,
    /// `iss` NUL `jti` → when the token expires.
    seen: Mutex<HashMap<String, i64>>,
}

impl std::fmt::Debug for CdsVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CdsVerifier")
            .field("clients", &self.clients)
            .finish_non_exhaustive()
    }
}

impl CdsVerifier {
    /// `timeout` bounds each key fetch.
    pub fn new(clients: Vec<CdsClient>, timeout: Duration) -> Result<Self, KeyError> {
        Ok(Self {
            clients,
            keys: KeyStore::new(Vec::new(), timeout)?,
            seen: Mutex::new(HashMap::new()),
        })
    }

    pub fn is_configured(&self) -> bool {
        !self.clients.is_empty()
    }

    /// The client a token names, verified for `audience` (the URL called), its `jti` then
    /// marked as used.
    pub async fn verify(&self, token: &str, audience: &str) -> Result<CdsCaller, KeyError> {
        let (iss, kid, jku) = claimed(token)?;
        let client = self
            .clients
            .iter()
            .find(|c| c.issuer == iss)
            .ok_or(TokenError::UnknownIssuer)?;
        let source = client.key_source(jku.as_deref())?;
        let keys = self.keys.key_set_at(source, false).await?;
        let knows_kid = kid.as_ref().is_none_or(|kid| keys.find(kid).is_some());
        let keys = if knows_kid {
            keys
        } else {
            self.keys.key_set_at(source, true).await?
        };
        let caller = verify_client_token(token, client, &keys, audience)?;
        self.first_use(&caller)?;
        Ok(caller)
    }

    /// Marks the token's `jti` as used; a second use is a replay.
    fn first_use(&self, caller: &CdsCaller) -> Result<(), KeyError> {
        let now = chrono::Utc::now().timestamp();
        let key = format!("{}\u{0}{}", caller.issuer, caller.jti);
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen
            .get(&key)
            .is_some_and(|expires| *expires + CLOCK_SKEW_SECS as i64 >= now)
        {
            return Err(TokenError::Replayed.into());
        }
        if seen.len() >= REPLAY_CAPACITY {
            seen.retain(|_, expires| *expires + CLOCK_SKEW_SECS as i64 >= now);
            if seen.len() >= REPLAY_CAPACITY {
                // Forgetting would let a replay through: refuse instead, until tokens expire.
                return Err(KeyError::Unavailable(
                    "too many client tokens in the last minutes to check for replay".into(),
                ));
            }
        }
        seen.insert(key, caller.expires);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::jwk::Jwk;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::{Value, json};

    const EC384: &str = include_str!("testdata/ec-p384-test-key.pem");
    const EC256: &str = include_str!("testdata/ec-p256-test-key.pem");
    const RSA: &str = include_str!("testdata/rsa-test-key.pem");
    const EHR: &str = "https://ehr.example.org";
    const SERVICE: &str = "https://prognostics.example.org/cds-services/risk-patient-view";

    fn client() -> CdsClient {
        CdsClient {
            issuer: EHR.into(),
            jwks_uri: Some(format!("{EHR}/jwks")),
            jku_prefixes: vec![format!("{EHR}/keys")],
        }
    }

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    fn claims() -> Value {
        json!({"iss": EHR, "sub": "ehr-client", "aud": SERVICE, "exp": now() + 120,
            "iat": now(), "jti": uuid::Uuid::new_v4().to_string()})
    }

    fn keys() -> (EncodingKey, EncodingKey, EncodingKey, JwkSet) {
        let ec = EncodingKey::from_ec_pem(EC384.as_bytes()).unwrap();
        let ec256 = EncodingKey::from_ec_pem(EC256.as_bytes()).unwrap();
        let rsa = EncodingKey::from_rsa_pem(RSA.as_bytes()).unwrap();
        let jwk = |key: &EncodingKey, algorithm, kid: &str| {
            let mut jwk = Jwk::from_encoding_key(key, algorithm).unwrap();
            jwk.common.key_id = Some(kid.into());
            jwk
        };
        let set = JwkSet {
            keys: vec![
                jwk(&ec, Algorithm::ES384, "ec"),
                jwk(&rsa, Algorithm::RS384, "rsa"),
                jwk(&ec256, Algorithm::ES256, "ec256"),
            ],
        };
        (ec, rsa, ec256, set)
    }

    fn sign(algorithm: Algorithm, kid: &str, key: &EncodingKey, claims: &Value) -> String {
        let mut header = Header::new(algorithm);
        header.kid = Some(kid.into());
        jsonwebtoken::encode(&header, claims, key).unwrap()
    }

    #[test]
    fn es384_and_rs384_tokens_name_their_client() {
        let (ec, rsa, _, set) = keys();
        for token in [
            sign(Algorithm::ES384, "ec", &ec, &claims()),
            sign(Algorithm::RS384, "rsa", &rsa, &claims()),
        ] {
            let caller = verify_client_token(&token, &client(), &set, SERVICE).unwrap();
            assert_eq!(caller.client_id, "ehr-client");
            assert_eq!(caller.issuer, EHR);
        }
    }

    #[test]
    fn bad_client_tokens_are_refused_with_their_reason() {
        let (ec, rsa, ec256, set) = keys();
        let with = |change: &dyn Fn(&mut Value)| {
            let mut c = claims();
            change(&mut c);
            sign(Algorithm::ES384, "ec", &ec, &c)
        };
        let cases: Vec<(&str, String, TokenError)> = vec![
            (
                "another service's URL",
                with(&|c| c["aud"] = json!("https://prognostics.example.org/cds-services/other")),
                TokenError::Audience,
            ),
            (
                "expired",
                with(&|c| c["exp"] = json!(now() - 600)),
                TokenError::Expired,
            ),
            (
                "a day long",
                with(&|c| c["exp"] = json!(now() + 86_400)),
                TokenError::TooLongLived,
            ),
            (
                "no jti",
                with(&|c| {
                    c.as_object_mut().unwrap().remove("jti");
                }),
                TokenError::Claims("jti".into()),
            ),
            (
                "another issuer",
                with(&|c| c["iss"] = json!("https://evil.example.org")),
                TokenError::UnknownIssuer,
            ),
            (
                "ES256",
                sign(Algorithm::ES256, "ec256", &ec256, &claims()),
                TokenError::Algorithm("ES256".into()),
            ),
            (
                "RS256",
                sign(Algorithm::RS256, "rsa", &rsa, &claims()),
                TokenError::Algorithm("RS256".into()),
            ),
            (
                "signed by another key than its kid names",
                sign(Algorithm::RS384, "ec", &rsa, &claims()),
                TokenError::KeyMismatch,
            ),
            (
                "unknown kid",
                sign(Algorithm::ES384, "ec-9", &ec, &claims()),
                TokenError::UnknownKey,
            ),
        ];
        for (what, token, expected) in cases {
            assert_eq!(
                verify_client_token(&token, &client(), &set, SERVICE),
                Err(expected),
                "{what}"
            );
        }
    }

    #[test]
    fn a_jku_is_trusted_only_under_an_allow_listed_prefix() {
        let c = client();
        assert_eq!(c.key_source(None), Ok("https://ehr.example.org/jwks"));
        assert_eq!(
            c.key_source(Some("https://ehr.example.org/keys/2026.json")),
            Ok("https://ehr.example.org/keys/2026.json")
        );
        for untrusted in [
            "https://ehr.example.org/keysmith.json",
            "https://ehr.example.org.evil.net/keys/a.json",
            "http://ehr.example.org/keys/a.json",
            "https://evil.example.org/keys/a.json",
            "not a url",
        ] {
            assert_eq!(
                c.key_source(Some(untrusted)),
                Err(TokenError::UntrustedKeySource),
                "{untrusted}"
            );
        }
        let no_set = CdsClient {
            jwks_uri: None,
            ..client()
        };
        assert_eq!(no_set.key_source(None), Err(TokenError::UntrustedKeySource));
    }

    #[test]
    fn a_token_id_is_accepted_once() {
        let verifier = CdsVerifier::new(vec![client()], Duration::from_secs(1)).unwrap();
        let caller = CdsCaller {
            issuer: EHR.into(),
            client_id: "ehr-client".into(),
            jti: "j-1".into(),
            tenant: None,
            expires: now() + 60,
        };
        verifier.first_use(&caller).unwrap();
        assert_eq!(
            verifier.first_use(&caller),
            Err(KeyError::Token(TokenError::Replayed))
        );
        let other_client = CdsCaller {
            issuer: "https://other-ehr.example.org".into(),
            ..caller.clone()
        };
        verifier.first_use(&other_client).unwrap();
    }
}
