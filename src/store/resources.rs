//! Reads and writes of FHIR resources: current versions, version history and the search index,
//! kept consistent by writing all three in one database transaction.

use serde_json::{Map, Value};
use sqlx::AnyConnection;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use std::sync::Arc;

use super::cache::ReadCache;
use super::search::{page_without_total, search_on};
use super::{Store, StoreError, values_statement};
use crate::config::DatabaseBackend;
use crate::domain::{Instant, ResourceId, ResourceType, VersionId};
use crate::fhir::{SearchQuery, index_entries};

/// What produced a version, as FHIR history reports it (`Bundle.entry.request.method`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteMethod {
    Create,
    Update,
    Delete,
}

impl WriteMethod {
    pub fn http_method(self) -> &'static str {
        match self {
            WriteMethod::Create => "POST",
            WriteMethod::Update => "PUT",
            WriteMethod::Delete => "DELETE",
        }
    }

    fn parse(s: &str) -> WriteMethod {
        match s {
            "POST" => WriteMethod::Create,
            "DELETE" => WriteMethod::Delete,
            _ => WriteMethod::Update,
        }
    }
}

/// One version of a resource as stored. `content` is the resource's JSON with `id` and `meta`
/// filled in; it is `None` for a deletion.
#[derive(Clone, Debug)]
pub struct StoredResource {
    pub resource_type: ResourceType,
    pub id: ResourceId,
    pub version: VersionId,
    pub last_updated: Instant,
    pub method: WriteMethod,
    pub content: Option<String>,
}

impl StoredResource {
    pub fn is_deleted(&self) -> bool {
        self.content.is_none()
    }
}

const CURRENT_COLUMNS: &str = "resource_type, id, version_id, last_updated_ms, deleted, content";

impl Store {
    /// The current version of a resource; deleted resources are `Gone`.
    pub async fn read(
        &self,
        t: ResourceType,
        id: &ResourceId,
    ) -> Result<StoredResource, StoreError> {
        let stored = match self.cache.get(t, id) {
            Some(hit) => hit,
            None => {
                let epoch = self.cache.epoch();
                let mut conn = self.pool.acquire().await?;
                let stored = read_current(&mut conn, t, id)
                    .await?
                    .ok_or_else(|| not_found(t, id))?;
                self.cache.insert(epoch, &stored);
                stored
            }
        };
        if stored.is_deleted() {
            return Err(StoreError::Gone {
                resource_type: t,
                id: id.to_string(),
                version: stored.version,
            });
        }
        Ok(stored)
    }

    /// One version of a resource.
    pub async fn vread(
        &self,
        t: ResourceType,
        id: &ResourceId,
        version: VersionId,
    ) -> Result<StoredResource, StoreError> {
        let row = sqlx::query(
            "SELECT resource_type, id, version_id, last_updated_ms, deleted, method, content \
             FROM resource_versions WHERE resource_type = $1 AND id = $2 AND version_id = $3",
        )
        .bind(t.as_str())
        .bind(id.as_ref())
        .bind(version.get() as i64)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Err(
                match read_current(&mut *self.pool.acquire().await?, t, id).await? {
                    Some(_) => StoreError::VersionNotFound {
                        resource_type: t,
                        id: id.to_string(),
                        version,
                    },
                    None => not_found(t, id),
                },
            );
        };
        let stored = version_from_row(t, &row)?;
        if stored.is_deleted() {
            return Err(StoreError::Gone {
                resource_type: t,
                id: id.to_string(),
                version,
            });
        }
        Ok(stored)
    }

    /// Versions of one resource, newest first, and how many there are in all.
    pub async fn history(
        &self,
        t: ResourceType,
        id: &ResourceId,
        count: u32,
        offset: u32,
    ) -> Result<(Vec<StoredResource>, u64), StoreError> {
        let mut conn = self.pool.acquire().await?;
        let total: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM resource_versions WHERE resource_type = $1 AND id = $2",
        )
        .bind(t.as_str())
        .bind(id.as_ref())
        .fetch_one(&mut *conn)
        .await?
        .try_get("n")?;
        if total == 0 {
            return Err(not_found(t, id));
        }
        let rows = sqlx::query(
            "SELECT resource_type, id, version_id, last_updated_ms, deleted, method, content \
             FROM resource_versions WHERE resource_type = $1 AND id = $2 \
             ORDER BY version_id DESC LIMIT $3 OFFSET $4",
        )
        .bind(t.as_str())
        .bind(id.as_ref())
        .bind(i64::from(count))
        .bind(i64::from(offset))
        .fetch_all(&mut *conn)
        .await?;
        let versions = rows
            .iter()
            .map(|row| version_from_row(t, row))
            .collect::<Result<_, _>>()?;
        Ok((versions, total as u64))
    }

    /// Current, non-deleted resources matching `query`, one page of them, and the total count.
    pub async fn search(
        &self,
        t: ResourceType,
        query: &SearchQuery,
    ) -> Result<(Vec<StoredResource>, u64), StoreError> {
        // A page asked for again is served from memory until a write may have changed it.
        let key = super::cache::SearchKey::of(t, query);
        if let Some(page) = self.cache.search_page(&key) {
            return Ok(page);
        }
        let epoch = self.cache.epoch();
        let mut conn = self.pool.acquire().await?;
        let page = search_on(&mut conn, t, query).await?;
        self.cache.insert_search_page(epoch, key, &page);
        Ok(page)
    }

    /// Every current resource of type `t`, `limit` at a time by id after `after` (a job that
    /// reads them all: each page costs its rows, where a page at an offset costs the offset).
    pub async fn contents_after(
        &self,
        t: ResourceType,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, content FROM resources WHERE resource_type = $1 AND deleted = 0 \
             AND id > $2 ORDER BY id LIMIT $3",
        )
        .bind(t.as_str())
        .bind(after.unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let content: Option<String> = row.try_get("content")?;
                Ok((row.try_get("id")?, content.unwrap_or_default()))
            })
            .collect()
    }

    /// Starts a write transaction. On SQLite it takes the write lock at once, so that a
    /// read-then-write never fails half-way on a lock upgrade.
    pub async fn begin(&self) -> Result<StoreTransaction, StoreError> {
        let queued = match &self.write_queue {
            Some(queue) => Some(Arc::clone(queue).lock_owned().await),
            None => None,
        };
        let tx = match self.backend {
            DatabaseBackend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            DatabaseBackend::Postgres => self.pool.begin().await?,
        };
        Ok(StoreTransaction {
            tx,
            backend: self.backend,
            cache: Arc::clone(&self.cache),
            written: Vec::new(),
            _queued: queued,
        })
    }
}

/// The PostgreSQL notification channel on which committed writes are announced to the other
/// replicas' read caches.
pub(super) const WRITES_CHANNEL: &str = "prognostics_writes";

/// PostgreSQL caps a notification's payload below 8000 bytes.
const NOTIFICATION_BYTES: usize = 7000;

/// `written` as notification payloads: `Type/id` keys separated by spaces.
fn write_notifications(written: &[(ResourceType, ResourceId)]) -> Vec<String> {
    let mut payloads = Vec::new();
    let mut payload = String::new();
    for (t, id) in written {
        let key = format!("{}/{}", t.as_str(), id);
        if !payload.is_empty() && payload.len() + 1 + key.len() > NOTIFICATION_BYTES {
            payloads.push(std::mem::take(&mut payload));
        }
        if !payload.is_empty() {
            payload.push(' ');
        }
        payload.push_str(&key);
    }
    if !payload.is_empty() {
        payloads.push(payload);
    }
    payloads
}

/// The keys of a notification's payload; what does not read as one is skipped.
pub(super) fn notified_keys(payload: &str) -> Vec<(ResourceType, ResourceId)> {
    payload
        .split(' ')
        .filter_map(|key| {
            let (t, id) = key.split_once('/')?;
            Some((t.parse().ok()?, ResourceId::parse(id).ok()?))
        })
        .collect()
}

/// The advisory lock key of find-or-create on `t`: FNV-1a of a name of this service's own, so
/// that it does not collide with another application's keys on a shared database.
fn find_or_create_lock_key(t: ResourceType) -> i64 {
    let name = format!("prognostics/find-or-create/{}", t.as_str());
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    hash as i64
}

/// Index rows written per INSERT statement (7 parameters each; SQLite allows 32766).
const INDEX_ROWS_PER_INSERT: usize = 100;

/// A unit of writes that commits or rolls back as a whole (dropped without `commit`, it rolls
/// back).
pub struct StoreTransaction {
    tx: Transaction<'static, Any>,
    backend: DatabaseBackend,
    cache: Arc<ReadCache>,
    /// Resources written, whose cached reads the commit invalidates.
    written: Vec<(ResourceType, ResourceId)>,
    /// This transaction's turn in the SQLite write queue, given up when it ends.
    _queued: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl StoreTransaction {
    pub async fn commit(mut self) -> Result<(), StoreError> {
        if self.backend == DatabaseBackend::Postgres {
            // Delivered to the other replicas' caches when, and only if, this commits (sent
            // whether or not this replica caches: the others may).
            for payload in write_notifications(&self.written) {
                sqlx::query("SELECT pg_notify($1, $2)")
                    .bind(WRITES_CHANNEL)
                    .bind(payload)
                    .execute(&mut *self.tx)
                    .await?;
            }
        }
        self.tx.commit().await.map_err(StoreError::from)?;
        self.cache.invalidate(&self.written);
        Ok(())
    }

    /// Holds, until this transaction ends, the lock under which every find-or-create of a
    /// `t` runs (patient matching, conditional create), so that two writers cannot both find
    /// nothing and both create. On PostgreSQL that is a transaction-level advisory lock, which
    /// other processes on the database honour too; on SQLite the transaction already holds
    /// the database's write lock.
    pub async fn lock_find_or_create(&mut self, t: ResourceType) -> Result<(), StoreError> {
        if self.backend == DatabaseBackend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(find_or_create_lock_key(t))
                .execute(&mut *self.tx)
                .await?;
        }
        Ok(())
    }

    /// The transaction's connection, for the other tables' writes in this module.
    pub(super) fn connection(&mut self) -> &mut AnyConnection {
        &mut self.tx
    }

    /// The current version and whether it is a deletion, or `None` if the id was never used.
    pub async fn current_version(
        &mut self,
        t: ResourceType,
        id: &ResourceId,
    ) -> Result<Option<(VersionId, bool)>, StoreError> {
        Ok(read_current(&mut self.tx, t, id)
            .await?
            .map(|s| (s.version, s.is_deleted())))
    }

    pub async fn read(
        &mut self,
        t: ResourceType,
        id: &ResourceId,
    ) -> Result<StoredResource, StoreError> {
        let stored = read_current(&mut self.tx, t, id)
            .await?
            .ok_or_else(|| not_found(t, id))?;
        if stored.is_deleted() {
            return Err(StoreError::Gone {
                resource_type: t,
                id: id.to_string(),
                version: stored.version,
            });
        }
        Ok(stored)
    }

    pub async fn search(
        &mut self,
        t: ResourceType,
        query: &SearchQuery,
    ) -> Result<(Vec<StoredResource>, u64), StoreError> {
        search_on(&mut self.tx, t, query).await
    }

    /// One page of a search, without its total.
    pub async fn search_page(
        &mut self,
        t: ResourceType,
        query: &SearchQuery,
    ) -> Result<Vec<StoredResource>, StoreError> {
        page_without_total(&mut self.tx, t, query).await
    }

    /// Writes a new version of `resource` under `id`. With `if_match`, the current version must
    /// be exactly that one. `id` and `meta.versionId`/`meta.lastUpdated` are set here.
    pub async fn write(
        &mut self,
        t: ResourceType,
        id: &ResourceId,
        resource: Map<String, Value>,
        if_match: Option<VersionId>,
    ) -> Result<StoredResource, StoreError> {
        let current = self.current_version(t, id).await?;
        if let Some(expected) = if_match {
            match current {
                Some((v, false)) if v == expected => {}
                other => {
                    return Err(StoreError::VersionMismatch {
                        resource_type: t,
                        id: id.to_string(),
                        expected,
                        current: other.filter(|(_, deleted)| !deleted).map(|(v, _)| v),
                    });
                }
            }
        }
        let (version, method) = match current {
            Some((v, _)) => (v.next(), WriteMethod::Update),
            None => (VersionId::FIRST, WriteMethod::Create),
        };
        let now = Instant::now();
        let resource = stamp(resource, id, version, now);
        let entries = index_entries(t, &resource);
        let content = Value::Object(resource).to_string();
        self.put_version(t, id, version, now, method, Some(&content))
            .await?;
        sqlx::query("DELETE FROM search_index WHERE resource_type = $1 AND id = $2")
            .bind(t.as_str())
            .bind(id.as_ref())
            .execute(&mut *self.tx)
            .await?;
        // Index rows in multi-row INSERTs: one statement per resource rather than one per row.
        for chunk in entries.chunks(INDEX_ROWS_PER_INSERT) {
            let sql = values_statement(
                self.backend,
                "INSERT INTO search_index (resource_type, id, param, system, value, start_ms, end_ms) VALUES ",
                7,
                chunk.len(),
            );
            let mut insert = sqlx::query(sqlx::AssertSqlSafe(sql));
            for e in chunk {
                insert = insert
                    .bind(t.as_str())
                    .bind(id.as_ref())
                    .bind(e.param)
                    .bind(e.system.clone())
                    .bind(e.value.clone())
                    .bind(e.start_ms)
                    .bind(e.end_ms);
            }
            insert.execute(&mut *self.tx).await?;
        }
        Ok(StoredResource {
            resource_type: t,
            id: id.clone(),
            version,
            last_updated: now,
            method,
            content: Some(content),
        })
    }

    /// Deletes the current version. Returns the deletion's version, or the earlier deletion's
    /// when the resource was already deleted (deleting twice changes nothing); `NotFound` when
    /// the id was never used.
    pub async fn delete(
        &mut self,
        t: ResourceType,
        id: &ResourceId,
    ) -> Result<VersionId, StoreError> {
        let (version, version_id) = match self.current_version(t, id).await? {
            None => return Err(not_found(t, id)),
            Some((v, true)) => return Ok(v),
            Some((v, false)) => (v.next(), v.next()),
        };
        let now = Instant::now();
        self.put_version(t, id, version, now, WriteMethod::Delete, None)
            .await?;
        sqlx::query("DELETE FROM search_index WHERE resource_type = $1 AND id = $2")
            .bind(t.as_str())
            .bind(id.as_ref())
            .execute(&mut *self.tx)
            .await?;
        Ok(version_id)
    }

    async fn put_version(
        &mut self,
        t: ResourceType,
        id: &ResourceId,
        version: VersionId,
        at: Instant,
        method: WriteMethod,
        content: Option<&str>,
    ) -> Result<(), StoreError> {
        self.written.push((t, id.clone()));
        let deleted = i32::from(content.is_none());
        // The version row goes first: its primary key turns a lost race into a clean conflict.
        let inserted = sqlx::query(
            "INSERT INTO resource_versions \
             (resource_type, id, version_id, last_updated_ms, deleted, method, content) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(t.as_str())
        .bind(id.as_ref())
        .bind(version.get() as i64)
        .bind(at.epoch_millis())
        .bind(deleted)
        .bind(method.http_method())
        .bind(content)
        .execute(&mut *self.tx)
        .await;
        if let Err(sqlx::Error::Database(db)) = &inserted
            && db.is_unique_violation()
        {
            return Err(StoreError::ConcurrentWrite {
                resource_type: t,
                id: id.to_string(),
            });
        }
        inserted?;
        sqlx::query(
            "INSERT INTO resources (resource_type, id, version_id, last_updated_ms, deleted, content) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (resource_type, id) DO UPDATE SET version_id = excluded.version_id, \
             last_updated_ms = excluded.last_updated_ms, deleted = excluded.deleted, \
             content = excluded.content",
        )
        .bind(t.as_str())
        .bind(id.as_ref())
        .bind(version.get() as i64)
        .bind(at.epoch_millis())
        .bind(deleted)
        .bind(content)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }
}

/// Puts `resourceType`, `id` and `meta` first and sets the server-maintained fields of `meta`,
/// keeping any profile, security label or tag the client sent.
fn stamp(
    mut resource: Map<String, Value>,
    id: &ResourceId,
    version: VersionId,
    at: Instant,
) -> Map<String, Value> {
    let mut meta = match resource.shift_remove("meta") {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    meta.insert("versionId".to_owned(), Value::String(version.to_string()));
    meta.insert("lastUpdated".to_owned(), Value::String(at.to_rfc3339()));
    let mut out = Map::with_capacity(resource.len() + 2);
    if let Some(rt) = resource.shift_remove("resourceType") {
        out.insert("resourceType".to_owned(), rt);
    }
    resource.shift_remove("id");
    out.insert("id".to_owned(), Value::String(id.to_string()));
    out.insert("meta".to_owned(), Value::Object(meta));
    out.extend(resource);
    out
}

fn not_found(t: ResourceType, id: &ResourceId) -> StoreError {
    StoreError::NotFound {
        resource_type: t,
        id: id.to_string(),
    }
}

async fn read_current(
    conn: &mut AnyConnection,
    t: ResourceType,
    id: &ResourceId,
) -> Result<Option<StoredResource>, StoreError> {
    let sql =
        format!("SELECT {CURRENT_COLUMNS} FROM resources WHERE resource_type = $1 AND id = $2");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(t.as_str())
        .bind(id.as_ref())
        .fetch_optional(&mut *conn)
        .await?;
    row.map(|row| current_from_row(t, &row)).transpose()
}

pub(super) fn current_from_row(
    t: ResourceType,
    row: &AnyRow,
) -> Result<StoredResource, StoreError> {
    let id: String = row.try_get("id")?;
    let version: i64 = row.try_get("version_id")?;
    let deleted: i32 = row.try_get("deleted")?;
    let content: Option<String> = row.try_get("content")?;
    Ok(StoredResource {
        resource_type: t,
        id: stored_id(t, &id)?,
        version: stored_version(t, &id, version)?,
        last_updated: Instant::from_epoch_millis(row.try_get("last_updated_ms")?),
        method: if deleted != 0 {
            WriteMethod::Delete
        } else {
            WriteMethod::Update
        },
        content: if deleted != 0 { None } else { content },
    })
}

fn version_from_row(t: ResourceType, row: &AnyRow) -> Result<StoredResource, StoreError> {
    let mut stored = current_from_row(t, row)?;
    let method: String = row.try_get("method")?;
    stored.method = WriteMethod::parse(&method);
    Ok(stored)
}

fn stored_id(t: ResourceType, id: &str) -> Result<ResourceId, StoreError> {
    ResourceId::parse(id).map_err(|_| corrupt(t, id))
}

fn stored_version(t: ResourceType, id: &str, v: i64) -> Result<VersionId, StoreError> {
    u64::try_from(v)
        .ok()
        .and_then(VersionId::new)
        .ok_or_else(|| corrupt(t, id))
}

fn corrupt(t: ResourceType, id: &str) -> StoreError {
    StoreError::Corrupt {
        resource_type: t,
        id: id.chars().take(64).collect(),
        source: <serde_json::Error as serde::de::Error>::custom("invalid id or version column"),
    }
}
