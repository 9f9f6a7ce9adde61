//! A bounded in-process cache of current resource versions for reads by id. Correct only while
//! this process is the database's sole writer (always so for the embedded SQLite file; for
//! PostgreSQL it is off unless configured): every committed write invalidates its keys, and an
//! epoch counter keeps a read that raced with a commit from caching what it read before it.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use super::resources::StoredResource;
use crate::domain::{ResourceId, ResourceType};

type Key = (ResourceType, ResourceId);

#[derive(Debug)]
pub(super) struct ReadCache {
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Bumped by every invalidation.
    epoch: u64,
    entries: HashMap<Key, StoredResource>,
    /// Insertion order, for eviction of the oldest entries first. Invalidation leaves its keys
    /// here (removing them would cost a scan per write); eviction skips them, and the queue is
    /// compacted when it grows past twice the capacity.
    order: VecDeque<Key>,
}

impl ReadCache {
    /// A cache of at most `capacity` resources; 0 turns it off.
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the maps inconsistent with the database
        // (at worst an entry is missing), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn enabled(&self) -> bool {
        self.capacity > 0
    }

    /// The epoch to pass to [`ReadCache::insert`] after reading from the database.
    pub(super) fn epoch(&self) -> u64 {
        self.lock().epoch
    }

    pub(super) fn get(&self, t: ResourceType, id: &ResourceId) -> Option<StoredResource> {
        if !self.enabled() {
            return None;
        }
        self.lock().entries.get(&(t, id.clone())).cloned()
    }

    /// Caches what a read returned, unless a write was committed since `epoch` was taken.
    pub(super) fn insert(&self, epoch: u64, stored: &StoredResource) {
        if !self.enabled() {
            return;
        }
        let mut inner = self.lock();
        if inner.epoch != epoch {
            return;
        }
        let key = (stored.resource_type, stored.id.clone());
        if inner.entries.insert(key.clone(), stored.clone()).is_none() {
            inner.order.push_back(key);
        }
        while inner.entries.len() > self.capacity {
            match inner.order.pop_front() {
                Some(oldest) => {
                    inner.entries.remove(&oldest);
                }
                None => break,
            }
        }
        if inner.order.len() > 2 * self.capacity {
            let Inner { entries, order, .. } = &mut *inner;
            let mut seen = std::collections::HashSet::with_capacity(entries.len());
            order.retain(|k| entries.contains_key(k) && seen.insert(k.clone()));
        }
    }

    /// Forgets `keys` after their writes committed.
    pub(super) fn invalidate(&self, keys: &[Key]) {
        if !self.enabled() || keys.is_empty() {
            return;
        }
        let mut inner = self.lock();
        inner.epoch = inner.epoch.wrapping_add(1);
        for key in keys {
            inner.entries.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Instant, VersionId};
    use crate::store::WriteMethod;

    fn stored(id: &str, version: u64) -> StoredResource {
        StoredResource {
            resource_type: ResourceType::Patient,
            id: ResourceId::parse(id).unwrap(),
            version: VersionId::new(version).unwrap(),
            last_updated: Instant::now(),
            method: WriteMethod::Create,
            content: Some("{}".to_owned()),
        }
    }

    #[test]
    fn a_read_that_raced_with_a_commit_is_not_cached() {
        let cache = ReadCache::new(10);
        let before = cache.epoch();
        let a = ResourceId::parse("a").unwrap();
        cache.invalidate(&[(ResourceType::Patient, a.clone())]);
        cache.insert(before, &stored("a", 1));
        assert!(cache.get(ResourceType::Patient, &a).is_none());
        cache.insert(cache.epoch(), &stored("a", 2));
        assert_eq!(
            cache.get(ResourceType::Patient, &a).unwrap().version,
            VersionId::new(2).unwrap()
        );
    }

    #[test]
    fn the_oldest_entries_are_evicted_past_capacity() {
        let cache = ReadCache::new(2);
        for id in ["a", "b", "c"] {
            cache.insert(cache.epoch(), &stored(id, 1));
        }
        let get = |id: &str| cache.get(ResourceType::Patient, &ResourceId::parse(id).unwrap());
        assert!(get("a").is_none());
        assert!(get("b").is_some() && get("c").is_some());
    }

    #[test]
    fn rewriting_the_same_resources_keeps_the_cache_bounded() {
        let cache = ReadCache::new(3);
        let a = ResourceId::parse("a").unwrap();
        for v in 1..=100 {
            cache.insert(cache.epoch(), &stored("a", v));
            cache.invalidate(&[(ResourceType::Patient, a.clone())]);
        }
        cache.insert(cache.epoch(), &stored("a", 101));
        for id in ["b", "c"] {
            cache.insert(cache.epoch(), &stored(id, 1));
        }
        let inner = cache.lock();
        assert!(inner.order.len() <= 6, "{}", inner.order.len());
        assert_eq!(inner.entries.len(), 3);
        assert_eq!(
            inner.entries[&(ResourceType::Patient, a)].version,
            VersionId::new(101).unwrap()
        );
    }

    #[test]
    fn a_zero_capacity_cache_holds_nothing() {
        let cache = ReadCache::new(0);
        cache.insert(cache.epoch(), &stored("a", 1));
        assert!(
            cache
                .get(ResourceType::Patient, &ResourceId::parse("a").unwrap())
                .is_none()
        );
    }
}
