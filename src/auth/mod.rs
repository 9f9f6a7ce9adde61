//! Who is calling and what they may do. An access token names the caller: a JWT verified
//! against its issuer's keys (`token`; the keys discovered, fetched and cached by `keys`), or an
//! opaque token its issuer vouches for (`introspect`). Its SMART on FHIR scopes (`scopes`) say
//! which resource types and interactions it covers and whether only within its patient's
//! compartment. CDS Hooks clients (an EHR asking for cards) sign their own short-lived tokens
//! instead (`cds`). Imports `domain` only.

pub mod cache;
pub mod cds;
pub mod introspect;
pub mod keys;
pub mod launch;
pub mod scopes;
pub mod token;

use std::time::Duration;

pub use cds::{CdsCaller, CdsClient, CdsVerifier};
pub use introspect::{IntrospectionEndpoint, Introspector};
pub use keys::{IssuerKeys, KeyError, KeyStore};
pub use scopes::{Context, Grant, Interaction, Scope, Scopes};
pub use token::{Caller, Issuer, TokenError};

/// Verifies access tokens of every kind the configured issuers hand out.
#[derive(Debug)]
pub struct Verifier {
    keys: KeyStore,
    introspector: Introspector,
    cds: CdsVerifier,
}

impl Verifier {
    /// `timeout` bounds each call to an issuer.
    pub fn new(
        issuers: Vec<IssuerKeys>,
        introspection: Vec<IntrospectionEndpoint>,
        cds_clients: Vec<CdsClient>,
        timeout: Duration,
    ) -> Result<Self, KeyError> {
        Ok(Self {
            keys: KeyStore::new(issuers, timeout)?,
            introspector: Introspector::new(introspection, timeout)?,
            cds: CdsVerifier::new(cds_clients, timeout)?,
        })
    }

    /// The verifier of CDS Hooks clients' tokens.
    pub fn cds(&self) -> &CdsVerifier {
        &self.cds
    }

    /// The caller of a token already verified (or introspected) and not yet expired: what a
    /// request with the same token as an earlier one costs, a hash and a map lookup.
    pub fn cached(&self, token: &[u8]) -> Option<std::sync::Arc<Caller>> {
        let now = chrono::Utc::now().timestamp();
        self.keys
            .verified_caller(token, now)
            .or_else(|| self.introspector.verified_caller(token, now))
    }

    /// The caller a token names: a JWT (three dot-separated parts) checked against its
    /// issuer's keys, anything else introspected where an issuer offers that.
    pub async fn verify(&self, token: &str) -> Result<std::sync::Arc<Caller>, KeyError> {
        if token.split('.').count() == 3 || !self.introspector.is_configured() {
            self.keys.verify(token).await
        } else {
            self.introspector.verify(token).await
        }
    }

    pub fn keys(&self) -> &KeyStore {
        &self.keys
    }
}
