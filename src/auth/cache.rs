//! Callers already vouched for, by their token, until it expires: a hot path does not check the
//! same signature, or ask the same introspection endpoint, twice. Read under a shared lock and
//! handed out by reference count, so that a cached check costs a hash and a map lookup.
//!
//! The key is the token itself, hashed with a fast randomly seeded hash (foldhash) and compared
//! in full: a sha256 of each token (what was kept before) was the largest single cost of an
//! authorized request after the audit trail. Only tokens that were verified are ever inserted,
//! so a caller cannot fill the map with keys of its choosing. The cached caller lives exactly as
//! long as the token could be replayed anyway.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use super::Caller;

/// Callers remembered at once; past it the expired ones, then all, are forgotten.
const CAPACITY: usize = 10_000;

#[derive(Default)]
pub struct CallerCache {
    callers: RwLock<HashMap<Box<[u8]>, Arc<Caller>, foldhash::fast::RandomState>>,
}

impl CallerCache {
    /// The caller of a token still valid at `now` (seconds since the epoch).
    pub fn get(&self, token: &[u8], now: i64) -> Option<Arc<Caller>> {
        let callers = self.callers.read().unwrap_or_else(|e| e.into_inner());
        callers.get(token).filter(|c| c.expires > now).cloned()
    }

    /// Remembers the caller of a token just verified.
    pub fn insert(&self, token: &str, caller: Arc<Caller>, now: i64) {
        let mut callers = self.callers.write().unwrap_or_else(|e| e.into_inner());
        if callers.len() >= CAPACITY {
            callers.retain(|_, c| c.expires > now);
            if callers.len() >= CAPACITY {
                callers.clear();
            }
        }
        callers.insert(token.as_bytes().into(), caller);
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
        let key = "token";
        cache.insert(key, caller(100), 50);
        assert!(cache.get(key.as_bytes(), 99).is_some());
        assert!(cache.get(key.as_bytes(), 100).is_none());
        assert!(cache.get(b"other", 50).is_none());
    }

    #[test]
    fn a_full_cache_forgets_the_expired_first() {
        let cache = CallerCache::default();
        for n in 0..CAPACITY {
            cache.insert(&n.to_string(), caller(if n == 0 { 200 } else { 10 }), 5);
        }
        cache.insert("new", caller(200), 20);
        assert!(cache.get(b"0", 20).is_some());
        assert!(cache.get(b"new", 20).is_some());
    }
}
