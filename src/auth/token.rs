//! Verifying a JWT access token against the keys of the issuer that signed it: the algorithm
//! from an allow-list (RS256, RS384, ES256, ES384: never `none`, never an HMAC, so that a public
//! key cannot be used as a shared secret), the key named by `kid` in the issuer's JWK Set, the
//! signature, `iss`, `aud` (this service's FHIR base), `exp` and `nbf` with a small clock skew;
//! then the caller it names: subject, client, scopes, and the patient in context. Fetching and
//! caching the JWK Set is the caller's business: this is the pure part, tested on its own.

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use super::scopes::Scopes;

/// The algorithms an access token may be signed with.
pub const ALGORITHMS: [Algorithm; 4] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::ES256,
    Algorithm::ES384,
];

/// Seconds of clock difference tolerated on `exp` and `nbf`.
pub const CLOCK_SKEW_SECS: u64 = 60;

/// A trusted issuer: its `iss` and the audience its tokens must name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issuer {
    pub issuer: String,
    pub audience: String,
}

/// Who is calling, as a verified token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub issuer: String,
    pub subject: String,
    /// `client_id` (or `azp`), else the subject.
    pub client_id: String,
    pub scopes: Scopes,
    /// The patient in context (`patient` claim) for `patient/` scopes.
    pub patient: Option<String>,
    /// The user (`fhirUser`), when there is one.
    pub fhir_user: Option<String>,
    /// Seconds since the epoch.
    pub expires: i64,
}

/// Why a token was refused. Messages name the check, never the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is not a well-formed JWT")]
    Malformed,
    #[error("tokens signed with {0} are not accepted (RS256, RS384, ES256, ES384 are)")]
    Algorithm(String),
    #[error("the token's issuer is not one this service trusts")]
    UnknownIssuer,
    #[error("no key of the issuer has the token's key id")]
    UnknownKey,
    #[error("the key does not fit the token's algorithm")]
    KeyMismatch,
    #[error("the token's signature is not valid")]
    Signature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token is for another audience")]
    Audience,
    #[error("the token is not active (unknown to its issuer, revoked or expired)")]
    Inactive,
    #[error("the token lacks a required claim ({0})")]
    Claims(String),
    #[error("the token's keys are not at a place trusted for its issuer (jku)")]
    UntrustedKeySource,
    #[error("the token lives longer than the five minutes a CDS client token may")]
    TooLongLived,
    #[error("the token was used before (jti)")]
    Replayed,
}

#[derive(Debug, Deserialize)]
struct Claims {
    iss: String,
    // Optional here so that a missing one is reported as such (the validation requires it).
    sub: Option<String>,
    exp: i64,
    #[serde(default)]
    scope: String,
    client_id: Option<String>,
    azp: Option<String>,
    patient: Option<String>,
    #[serde(rename = "fhirUser")]
    fhir_user: Option<String>,
}

/// The `iss` a token claims (unverified: to choose the issuer whose keys check it).
pub fn claimed_issuer(token: &str) -> Result<String, TokenError> {
    #[derive(Deserialize)]
    struct Iss {
        iss: String,
    }
    jsonwebtoken::dangerous::insecure_decode::<Iss>(token)
        .map(|data| data.claims.iss)
        .map_err(|_| TokenError::Malformed)
}

/// The key id and algorithm a token names, the algorithm checked against the allow-list.
pub fn header(token: &str) -> Result<(Option<String>, Algorithm), TokenError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
    if !ALGORITHMS.contains(&header.alg) {
        return Err(TokenError::Algorithm(format!("{:?}", header.alg)));
    }
    Ok((header.kid, header.alg))
}

/// Why jsonwebtoken refused a token, in this module's words.
pub(super) fn refusal(e: &jsonwebtoken::errors::Error) -> TokenError {
    use jsonwebtoken::errors::ErrorKind as K;
    match e.kind() {
        K::InvalidSignature => TokenError::Signature,
        K::ExpiredSignature => TokenError::Expired,
        K::ImmatureSignature => TokenError::NotYetValid,
        K::InvalidAudience => TokenError::Audience,
        K::InvalidIssuer => TokenError::UnknownIssuer,
        K::MissingRequiredClaim(claim) => TokenError::Claims(claim.clone()),
        K::InvalidAlgorithm => TokenError::KeyMismatch,
        _ => TokenError::Malformed,
    }
}

/// Verifies `token` with `keys`, the JWK Set of `issuer`, at the current time.
pub fn verify(token: &str, issuer: &Issuer, keys: &JwkSet) -> Result<Caller, TokenError> {
    let (kid, algorithm) = header(token)?;
    let jwk = match &kid {
        Some(kid) => keys.find(kid).ok_or(TokenError::UnknownKey)?,
        // No key id: only an issuer with a single key can be meant.
        None => match keys.keys.as_slice() {
            [only] => only,
            _ => return Err(TokenError::UnknownKey),
        },
    };
    // The key's own type decides which algorithms it can verify.
    let fits = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => matches!(algorithm, Algorithm::RS256 | Algorithm::RS384),
        AlgorithmParameters::EllipticCurve(ec) => matches!(
            (&ec.curve, algorithm),
            (EllipticCurve::P256, Algorithm::ES256) | (EllipticCurve::P384, Algorithm::ES384)
        ),
        _ => false,
    };
    if !fits {
        return Err(TokenError::KeyMismatch);
    }
    let key = DecodingKey::from_jwk(jwk).map_err(|_| TokenError::KeyMismatch)?;
    let mut validation = Validation::new(algorithm);
    validation.set_issuer(&[&issuer.issuer]);
    validation.set_audience(&[&issuer.audience]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    validation.leeway = CLOCK_SKEW_SECS;
    validation.validate_nbf = true;
    let data = jsonwebtoken::decode::<Claims>(token, &key, &validation).map_err(|e| refusal(&e))?;
    let claims = data.claims;
    let Some(subject) = claims.sub else {
        return Err(TokenError::Claims("sub".into()));
    };
    Ok(Caller {
        client_id: claims
            .client_id
            .or(claims.azp)
            .unwrap_or_else(|| subject.clone()),
        issuer: claims.iss,
        subject,
        scopes: Scopes::parse(&claims.scope),
        patient: claims.patient,
        fhir_user: claims.fhir_user,
        expires: claims.exp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::jwk::Jwk;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::{Value, json};

    const RSA: &str = include_str!("testdata/rsa-test-key.pem");
    const RSA_PUBLIC: &str = include_str!("testdata/rsa-test-key.pub.pem");
    const EC: &str = include_str!("testdata/ec-p256-test-key.pem");
    const ISSUER: &str = "https://auth.example.org";
    const AUDIENCE: &str = "https://prognostics.example.org/fhir";

    fn issuer() -> Issuer {
        Issuer {
            issuer: ISSUER.into(),
            audience: AUDIENCE.into(),
        }
    }

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    fn claims() -> Value {
        json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "backend-1", "client_id": "backend-1",
            "exp": now() + 300, "nbf": now() - 10,
            "scope": "system/Observation.rs patient/Patient.r", "patient": "p1"})
    }

    fn keys() -> (EncodingKey, EncodingKey, JwkSet) {
        let rsa = EncodingKey::from_rsa_pem(RSA.as_bytes()).unwrap();
        let ec = EncodingKey::from_ec_pem(EC.as_bytes()).unwrap();
        let mut rsa_jwk = Jwk::from_encoding_key(&rsa, Algorithm::RS256).unwrap();
        rsa_jwk.common.key_id = Some("rsa-1".into());
        let mut ec_jwk = Jwk::from_encoding_key(&ec, Algorithm::ES256).unwrap();
        ec_jwk.common.key_id = Some("ec-1".into());
        (
            rsa,
            ec,
            JwkSet {
                keys: vec![rsa_jwk, ec_jwk],
            },
        )
    }

    fn sign(algorithm: Algorithm, kid: &str, key: &EncodingKey, claims: &Value) -> String {
        let mut header = Header::new(algorithm);
        header.kid = Some(kid.into());
        jsonwebtoken::encode(&header, claims, key).unwrap()
    }

    #[test]
    fn a_valid_token_names_its_caller() {
        let (rsa, ec, jwks) = keys();
        for token in [
            sign(Algorithm::RS256, "rsa-1", &rsa, &claims()),
            sign(Algorithm::RS384, "rsa-1", &rsa, &claims()),
            sign(Algorithm::ES256, "ec-1", &ec, &claims()),
        ] {
            let caller = verify(&token, &issuer(), &jwks).unwrap();
            assert_eq!(caller.subject, "backend-1");
            assert_eq!(caller.patient.as_deref(), Some("p1"));
            assert_eq!(caller.scopes.resource.len(), 2);
            assert_eq!(claimed_issuer(&token).unwrap(), ISSUER);
        }
    }

    #[test]
    fn every_bad_token_is_refused_with_its_reason() {
        let (rsa, ec, jwks) = keys();
        let with = |change: &dyn Fn(&mut Value)| {
            let mut c = claims();
            change(&mut c);
            sign(Algorithm::RS256, "rsa-1", &rsa, &c)
        };
        let expired = with(&|c| c["exp"] = json!(now() - 600));
        let early = with(&|c| c["nbf"] = json!(now() + 600));
        let elsewhere = with(&|c| c["aud"] = json!("https://other.example.org/fhir"));
        let stranger = with(&|c| c["iss"] = json!("https://evil.example.org"));
        let no_subject = with(&|c| {
            c.as_object_mut().unwrap().remove("sub");
        });
        // Signed by the EC key but claiming the RSA key's id.
        let forged = sign(Algorithm::ES256, "rsa-1", &ec, &claims());
        let unknown_kid = sign(Algorithm::RS256, "rsa-9", &rsa, &claims());
        // The RSA public key used as an HMAC secret (algorithm confusion).
        let confused = sign(
            Algorithm::HS256,
            "rsa-1",
            &EncodingKey::from_secret(RSA_PUBLIC.as_bytes()),
            &claims(),
        );
        // alg none: a header and claims with no signature.
        let b64 = |v: &Value| {
            use base64::Engine;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        let none = format!(
            "{}.{}.",
            b64(&json!({"alg": "none", "kid": "rsa-1"})),
            b64(&claims())
        );
        // Claims changed after signing (another patient), the signature kept.
        let good = sign(Algorithm::RS256, "rsa-1", &rsa, &claims());
        let parts: Vec<&str> = good.split('.').collect();
        let mut other = claims();
        other["patient"] = json!("p2");
        let tampered = format!("{}.{}.{}", parts[0], b64(&other), parts[2]);
        let cases: [(&str, String, TokenError); 11] = [
            ("expired", expired, TokenError::Expired),
            ("not yet valid", early, TokenError::NotYetValid),
            ("other audience", elsewhere, TokenError::Audience),
            ("other issuer", stranger, TokenError::UnknownIssuer),
            ("no subject", no_subject, TokenError::Claims("sub".into())),
            ("forged", forged, TokenError::KeyMismatch),
            ("unknown kid", unknown_kid, TokenError::UnknownKey),
            ("HS256", confused, TokenError::Algorithm("HS256".into())),
            ("none", none, TokenError::Malformed),
            ("tampered", tampered, TokenError::Signature),
            ("garbage", "not.a.token".into(), TokenError::Malformed),
        ];
        for (what, token, expected) in cases {
            assert_eq!(verify(&token, &issuer(), &jwks), Err(expected), "{what}");
        }
    }
}
