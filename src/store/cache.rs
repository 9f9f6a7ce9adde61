//! A bounded in-process cache of current resource versions for reads by id, and of search
//! pages: every committed write invalidates its keys (and every search page: a write of any
//! resource may change what a search matches), and an epoch counter keeps a read or search
//! that raced with a commit from caching what it read before it. On the embedded SQLite file this process is the only writer.
//! On PostgreSQL other replicas write too: their commits arrive as notifications (see
//! `Store::follow_other_writers`), and the cache is bypassed while none are being received
//! (before the listener is up, and after its connection drops until it is up again and the
//! cache has been emptied). A read on one replica can see the previous version for as long as
//! another replica's notification takes to arrive (milliseconds on a LAN), as if it had been
//! served just before that write.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use super::resources::StoredResource;
use crate::domain::{ResourceId, ResourceType};
use crate::fhir::{Filter, SearchQuery, SortKey, SortOrder};

type Key = (ResourceType, ResourceId);

/// What decides a search page: the type, the criteria, the order and the page's place.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct SearchKey {
    resource_type: ResourceType,
    filters: Vec<Filter>,
    sort: Vec<(SortKey, SortOrder)>,
    count: u32,
    offset: u32,
}

impl SearchKey {
    pub(super) fn of(resource_type: ResourceType, query: &SearchQuery) -> Self {
        Self {
            resource_type,
            filters: query.filters.clone(),
            sort: query.sort.clone(),
            count: query.count,
            offset: query.offset,
        }
    }
}

/// A search page and the total count of matches.
pub(super) type SearchPage = (Vec<StoredResource>, u64);

#[derive(Debug)]
pub(super) struct ReadCache {
    capacity: usize,
    /// Bytes of resource text the cached search pages may hold together; 0: none cached.
    search_budget: usize,
    /// Whether every other writer's commits reach [`ReadCache::invalidate`].
    live: AtomicBool,
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
    searches: HashMap<SearchKey, SearchPage>,
    /// Search pages in insertion order, for eviction; with the bytes they hold.
    search_order: VecDeque<(SearchKey, usize)>,
    search_bytes: usize,
}

impl Inner {
    fn forget_searches(&mut self) {
        self.searches.clear();
        self.search_order.clear();
        self.search_bytes = 0;
    }
}

impl ReadCache {
    /// A cache of at most `capacity` resources and `search_budget` bytes of search pages; 0
    /// turns either off. `live`: whether it may serve at once (a sole writer), or only once
    /// [`ReadCache::set_live`] says other writers' commits are followed.
    pub(super) fn new(capacity: usize, search_budget: usize, live: bool) -> Self {
        Self {
            capacity,
            search_budget,
            live: AtomicBool::new(live),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Starts serving (other writers' commits are followed from now) or stops (they may be
    /// missed: everything cached is forgotten, and reads in flight will not be cached).
    pub(super) fn set_live(&self, live: bool) {
        let mut inner = self.lock();
        inner.epoch = inner.epoch.wrapping_add(1);
        inner.entries.clear();
        inner.order.clear();
        inner.forget_searches();
        self.live.store(live, Ordering::SeqCst);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the maps inconsistent with the database
        // (at worst an entry is missing), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether writes must be invalidated here (and announced to other replicas).
    pub(super) fn enabled(&self) -> bool {
        self.capacity > 0 || self.search_budget > 0
    }

    fn serving(&self) -> bool {
        self.capacity > 0 && self.live.load(Ordering::SeqCst)
    }

    fn serving_searches(&self) -> bool {
        self.search_budget > 0 && self.live.load(Ordering::SeqCst)
    }

    /// The epoch to pass to [`ReadCache::insert`] after reading from the database.
    pub(super) fn epoch(&self) -> u64 {
        self.lock().epoch
    }

    pub(super) fn get(&self, t: ResourceType, id: &ResourceId) -> Option<StoredResource> {
        if !self.serving() {
            return None;
        }
        self.lock().entries.get(&(t, id.clone())).cloned()
    }

    /// Caches what a read returned, unless a write was committed since `epoch` was taken.
    pub(super) fn insert(&self, epoch: u64, stored: &StoredResource) {
        if !self.serving() {
            return;
        }
        let mut inner = self.lock();
        if inner.epoch != epoch || !self.live.load(Ordering::SeqCst) {
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

    /// Forgets `keys`, and every search page, after their writes committed.
    pub(super) fn invalidate(&self, keys: &[Key]) {
        if !self.enabled() || keys.is_empty() {
            return;
        }
        let mut inner = self.lock();
        inner.epoch = inner.epoch.wrapping_add(1);
        for key in keys {
            inner.entries.remove(key);
        }
        if !inner.searches.is_empty() {
            inner.forget_searches();
        }
    }

    pub(super) fn search_page(&self, key: &SearchKey) -> Option<SearchPage> {
        if !self.serving_searches() {
            return None;
        }
        self.lock().searches.get(key).cloned()
    }

    /// Caches a search page, unless a write was committed since `epoch` was taken or the page
    /// alone would take over an eighth of the budget; the oldest pages go past the budget.
    pub(super) fn insert_search_page(&self, epoch: u64, key: SearchKey, page: &SearchPage) {
        if !self.serving_searches() {
            return;
        }
        let bytes = page
            .0
            .iter()
            .map(|s| s.content.as_ref().map_or(0, String::len) + 64)
            .sum::<usize>()
            + 64;
        if bytes > self.search_budget / 8 {
            return;
        }
        let mut inner = self.lock();
        if inner.epoch != epoch || !self.live.load(Ordering::SeqCst) {
            return;
        }
        if inner.searches.insert(key.clone(), page.clone()).is_some() {
            // Already cached by a search that ran beside this one: the same page.
            return;
        }
        inner.search_order.push_back((key, bytes));
        inner.search_bytes += bytes;
        while inner.search_bytes > self.search_budget {
            let Some((oldest, size)) = inner.search_order.pop_front() else {
                break;
            };
            inner.searches.remove(&oldest);
            inner.search_bytes -= size;
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
        let cache = ReadCache::new(10, 0, true);
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
        let cache = ReadCache::new(2, 0, true);
        for id in ["a", "b", "c"] {
            cache.insert(cache.epoch(), &stored(id, 1));
        }
        let get = |id: &str| cache.get(ResourceType::Patient, &ResourceId::parse(id).unwrap());
        assert!(get("a").is_none());
        assert!(get("b").is_some() && get("c").is_some());
    }

    #[test]
    fn rewriting_the_same_resources_keeps_the_cache_bounded() {
        let cache = ReadCache::new(3, 0, true);
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

    fn search_for(subject: &str) -> SearchKey {
        let params = [("subject".to_owned(), format!("Patient/{subject}"))];
        let query =
            crate::fhir::parse_search(ResourceType::Observation, &params, false, 10, 100).unwrap();
        SearchKey::of(ResourceType::Observation, &query)
    }

    #[test]
    fn a_search_page_is_served_until_any_write_commits() {
        let cache = ReadCache::new(0, 1 << 20, true);
        let page = (vec![stored("a", 1)], 1);
        cache.insert_search_page(cache.epoch(), search_for("p"), &page);
        assert_eq!(cache.search_page(&search_for("p")).unwrap().1, 1);
        assert!(cache.search_page(&search_for("q")).is_none());
        // A write of any resource, even of another type than the search's.
        cache.invalidate(&[(ResourceType::Patient, ResourceId::parse("x").unwrap())]);
        assert!(cache.search_page(&search_for("p")).is_none());
        // A search that ran while a write committed keeps what it found to itself.
        let before = cache.epoch();
        cache.invalidate(&[(ResourceType::Patient, ResourceId::parse("x").unwrap())]);
        cache.insert_search_page(before, search_for("p"), &page);
        assert!(cache.search_page(&search_for("p")).is_none());
    }

    #[test]
    fn search_pages_stay_within_their_budget_oldest_first() {
        let page = (vec![stored("a", 1)], 1);
        let one = page.0[0].content.as_ref().unwrap().len() + 128;
        let cache = ReadCache::new(0, 10 * one, true);
        for subject in [
            "p1", "p2", "p3", "p4", "p5", "p6", "p7", "p8", "p9", "p10", "p11",
        ] {
            cache.insert_search_page(cache.epoch(), search_for(subject), &page);
        }
        assert!(cache.search_page(&search_for("p1")).is_none());
        assert!(cache.search_page(&search_for("p11")).is_some());
        assert!(cache.lock().search_bytes <= 10 * one);
        // A page over an eighth of the budget is not kept at all.
        let big = (vec![stored("a", 1); 4], 4);
        cache.insert_search_page(cache.epoch(), search_for("big"), &big);
        assert!(cache.search_page(&search_for("big")).is_none());
    }

    #[test]
    fn a_cache_that_may_miss_other_writers_serves_nothing_until_it_follows_them() {
        let cache = ReadCache::new(10, 0, false);
        let a = ResourceId::parse("a").unwrap();
        cache.insert(cache.epoch(), &stored("a", 1));
        assert!(cache.get(ResourceType::Patient, &a).is_none());
        cache.set_live(true);
        cache.insert(cache.epoch(), &stored("a", 1));
        assert!(cache.get(ResourceType::Patient, &a).is_some());
        // The listener's connection dropped: what was cached may be stale.
        let before = cache.epoch();
        cache.set_live(false);
        assert!(cache.get(ResourceType::Patient, &a).is_none());
        cache.set_live(true);
        cache.insert(before, &stored("a", 1));
        assert!(cache.get(ResourceType::Patient, &a).is_none());
    }

    #[test]
    fn a_zero_capacity_cache_holds_nothing() {
        let cache = ReadCache::new(0, 0, true);
        cache.insert(cache.epoch(), &stored("a", 1));
        assert!(
            cache
                .get(ResourceType::Patient, &ResourceId::parse("a").unwrap())
                .is_none()
        );
    }
}
