//! Callers already vouched for, by the sha256 of their token (the token itself is not kept),
//! until their token expires: a hot path does not check the same signature, or ask the same
//! introspection endpoint, twice. Read under a shared lock and handed out by reference count,
//! so that a cached check costs a hash and a map lookup.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use sha2::{Digest, Sha256};

use super::Caller;

/// Callers remembered at once; past it the expired ones, then all, are forgotten.
const CAPACITY: usize = 10_000;

/// A token's key in the cache.
pub type TokenDigest = [u8; 32];

pub fn digest(token: &str) -> TokenDigest {
    Sha256::digest(token.as_bytes()).into()
}

#[derive(Default)]
pub struct CallerCache {
    callers: RwLock<HashMap<TokenDigest, Arc<Caller>>>,
}

impl CallerCache {
    /// The caller of a token still valid at `now` (seconds since the epoch).
    pub fn get(&self, digest: &TokenDigest, now: i64) -> Option<Arc<Caller>> {
        let callers = self.callers.read().unwrap_or_else(|e| e.into_inner());
        callers.get(digest).filter(|c| c.expires > now).cloned()
    }

    pub fn insert(&self, digest: TokenDigest, caller: Arc<Caller>, now: i64) {
        let mut callers = self.callers.write().unwrap_or_else(|e| e.into_inner());
        if callers.len() >= CAPACITY {
            callers.retain(|_, c| c.expires > now);
            if callers.len() >= CAPACITY {
                callers.clear();
            }
        }
        callers.insert(digest, caller);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Scopes;

    fn caller(expires: i64) -> Arc<Caller> {
        Arc::new(Caller {
            issuer: "https://issuer.example".into(),
            subject: "s".into(),
            client_id: "c".into(),
            scopes: Scopes::parse("system/*.rs"),
            patient: None,
            fhir_user: None,
            expires,
        })
    }

    #[test]
    fn a_caller_is_remembered_until_its_token_expires() {
        let cache = CallerCache::default();
        let key = digest("token");
        cache.insert(key, caller(100), 50);
        assert!(cache.get(&key, 99).is_some());
        assert!(cache.get(&key, 100).is_none());
        assert!(cache.get(&digest("other"), 50).is_none());
    }

    #[test]
    fn a_full_cache_forgets_the_expired_first() {
        let cache = CallerCache::default();
        for n in 0..CAPACITY {
            cache.insert(
                digest(&n.to_string()),
                caller(if n == 0 { 200 } else { 10 }),
                5,
            );
        }
        cache.insert(digest("new"), caller(200), 20);
        assert!(cache.get(&digest("0"), 20).is_some());
        assert!(cache.get(&digest("new"), 20).is_some());
    }
}
