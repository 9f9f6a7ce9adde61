//! Persistence: the only module that speaks SQL. One `AnyPool` serves SQLite (the embedded
//! default, in WAL mode) and PostgreSQL with the same portable SQL; columns are limited to TEXT,
//! integers and byte strings (BLOB, BYTEA) so that both drivers decode them alike. Functions take and return domain types.
//! Imports `domain`, `fhir` (index entries and search criteria) and `error`; owns sqlx.

mod assessment_views;
mod audit;
mod backup;
mod cache;
mod cds_cards;
mod compartments;
mod embeddings;
mod files;
mod hl7;
mod imaging;
mod leases;
mod model_deployments;
mod model_inputs;
mod pool_watch;
mod resources;
mod risk_jobs;
mod search;
mod shadow_predictions;
mod sqlite_memory;
mod write_feed;

use std::sync::Arc;
use std::time::Duration;

use secrecy::ExposeSecret;
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Row};

pub use audit::{
    AuditFilter, AuditRow, ChainCheck, GENESIS_HASH, NewAuditEvent, chain_hash, subject_terms,
};
pub use backup::{FilesCopied, snapshot_sqlite};
pub use cds_cards::ShownCard;
pub use compartments::COMPARTMENT_BATCH;
pub use embeddings::{InstanceToEmbed, StoredPooledEmbedding, StudyEmbeddings};
pub use files::FileStore;
pub use hl7::{Hl7Receipt, NewHl7Message};
pub use imaging::{StoredInstance, StoredSeries, StoredStudy, StudyFilter, StudySummary};
pub use leases::WorkKind;
pub use model_deployments::DeploymentRow;
pub use model_inputs::ModelInputs;
pub use resources::{StoreTransaction, StoredResource, WriteMethod};
pub use risk_jobs::{PendingRiskJob, RiskJobState};
pub use shadow_predictions::ShadowPrediction;

use cache::ReadCache;

/// Resources kept in the read cache unless configured (on PostgreSQL it follows the other
/// replicas' writes, see `write_feed`).
const DEFAULT_READ_CACHE: usize = 10_000;

use crate::config::{DatabaseBackend, Settings};
use crate::domain::{ResourceType, VersionId};
use crate::error::ErrorKind;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{resource_type}/{id} not found")]
    NotFound {
        resource_type: ResourceType,
        id: String,
    },
    #[error("{resource_type}/{id} version {version} not found")]
    VersionNotFound {
        resource_type: ResourceType,
        id: String,
        version: VersionId,
    },
    #[error("{resource_type}/{id} has been deleted")]
    Gone {
        resource_type: ResourceType,
        id: String,
        version: VersionId,
    },
    #[error("{resource_type}/{id} is not at version {expected}, the version the request named")]
    VersionMismatch {
        resource_type: ResourceType,
        id: String,
        expected: VersionId,
        current: Option<VersionId>,
    },
    #[error("{resource_type}/{id} was changed by a concurrent request")]
    ConcurrentWrite {
        resource_type: ResourceType,
        id: String,
    },
    #[error("stored resource {resource_type}/{id} could not be read back")]
    Corrupt {
        resource_type: ResourceType,
        id: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("a stored row of {table} could not be read back")]
    CorruptRow { table: &'static str },
    #[error(
        "the database {path} is in use by another prognostics process; stop it first, or send \
         DICOM to the running service with STOW-RS or C-STORE"
    )]
    Locked { path: std::path::PathBuf },
    #[error("the database lock file {path} cannot be used")]
    LockFile {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("database is not reachable")]
    Unavailable(#[source] sqlx::Error),
    #[error("database migration failed")]
    Migration(#[source] sqlx::migrate::MigrateError),
    #[error("the database's storage is full; writes resume once space is freed")]
    Full(#[source] sqlx::Error),
    #[error("database request failed")]
    Database(#[source] sqlx::Error),
}

impl StoreError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            StoreError::NotFound { .. } | StoreError::VersionNotFound { .. } => ErrorKind::NotFound,
            StoreError::Gone { .. } => ErrorKind::Gone,
            StoreError::VersionMismatch { .. } => ErrorKind::PreconditionFailed,
            StoreError::ConcurrentWrite { .. } => ErrorKind::Conflict,
            StoreError::Unavailable(_) | StoreError::Locked { .. } | StoreError::Full(_) => {
                ErrorKind::Unavailable
            }
            StoreError::LockFile { .. } => ErrorKind::Internal,
            StoreError::Corrupt { .. }
            | StoreError::CorruptRow { .. }
            | StoreError::Migration(_)
            | StoreError::Database(_) => ErrorKind::Internal,
        }
    }
}

/// Takes an exclusive lock beside an SQLite database file, so that one process at a time serves
/// or writes it: the read cache relies on being the only writer. `None` for in-memory databases.
fn lock_sqlite(url: &str) -> Result<Option<std::fs::File>, StoreError> {
    let path = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:")
        .split('?')
        .next()
        .unwrap_or_default();
    if path.is_empty() || path.starts_with(":memory:") {
        return Ok(None);
    }
    let database = std::path::PathBuf::from(path);
    let path = std::path::PathBuf::from(format!("{path}.lock"));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| StoreError::LockFile {
            path: path.clone(),
            source,
        })?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Locked { path: database }),
        Err(std::fs::TryLockError::Error(source)) => Err(StoreError::LockFile { path, source }),
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                StoreError::Unavailable(e)
            }
            sqlx::Error::Database(ref db) if is_storage_full(db.as_ref()) => StoreError::Full(e),
            other => StoreError::Database(other),
        }
    }
}

/// SQLite's SQLITE_FULL (13, "database or disk is full") or PostgreSQL's disk_full (53100).
fn is_storage_full(error: &dyn sqlx::error::DatabaseError) -> bool {
    matches!(error.code().as_deref(), Some("13" | "53100"))
}

/// `prefix` followed by `rows` tuples of `columns` placeholders: `?` on SQLite, whose binding of
/// numbered ones (`$n`) looks each name up in a list, which made a statement of a few thousand
/// parameters cost time quadratic in their number; `$1, $2 …` on PostgreSQL.
pub(crate) fn values_statement(
    backend: DatabaseBackend,
    prefix: &str,
    columns: usize,
    rows: usize,
) -> String {
    use std::fmt::Write;
    let mut sql = String::with_capacity(prefix.len() + rows * columns * 6);
    sql.push_str(prefix);
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for column in 0..columns {
            if column > 0 {
                sql.push_str(", ");
            }
            match backend {
                DatabaseBackend::Sqlite => sql.push('?'),
                DatabaseBackend::Postgres => {
                    let _ = write!(sql, "${}", row * columns + column + 1);
                }
            }
        }
        sql.push(')');
    }
    sql
}

/// The database, shared by every request.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: DatabaseBackend,
    cache: Arc<ReadCache>,
    /// PostgreSQL's URL, for the connection that follows the other replicas' writes.
    shared_url: Option<Arc<secrecy::SecretString>>,
    /// This process's name as the holder of leases on shared work, new at each start.
    replica: Arc<str>,
    /// The embedded database's lock, held while any clone of this store lives.
    _lock: Option<Arc<std::fs::File>>,
    /// SQLite: write transactions queue here, first come first served, instead of in SQLite's
    /// busy handler, whose growing sleeps gave a loser hundreds of milliseconds under load.
    write_queue: Option<Arc<tokio::sync::Mutex<()>>>,
    /// SQLite: the audit trail's own connection (`audit::SqliteAppender`).
    sqlite_appender: Option<Arc<audit::SqliteAppender>>,
}

impl Store {
    /// Connects to the configured database; the SQLite file is created on first use.
    pub async fn connect(settings: &Settings) -> Result<Store, StoreError> {
        sqlite_memory::configure_sqlite_memory();
        install_default_drivers();
        let backend = settings
            .database_backend()
            .map_err(|e| StoreError::Database(sqlx::Error::Configuration(Box::new(e))))?;
        let url = settings.database_url();
        let lock = match backend {
            DatabaseBackend::Sqlite => lock_sqlite(url.expose_secret())?.map(Arc::new),
            DatabaseBackend::Postgres => None,
        };
        let max_connections = settings.database.max_connections.max(1);
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(settings.database.acquire_timeout_secs))
            // One line per slow acquire flooded the log under overload; `Store::watch_pool`
            // says it once per interval instead.
            .acquire_slow_level(log::LevelFilter::Off)
            // A pooled connection is checked before it is handed out only where it can have
            // died: a PostgreSQL server restarts or drops idle sessions. An embedded SQLite
            // connection lives in this process, and the check was a round trip to its worker
            // thread before every query (a quarter of a search's database time).
            .test_before_acquire(backend == DatabaseBackend::Postgres)
            // A connection whose COMMIT failed (a full disk) and whose rollback did not take
            // can come back still counting a transaction; reused, it would refuse every later
            // transaction ("begin_with at non-zero transaction depth") until a restart. Such a
            // connection is closed instead and the pool opens a fresh one.
            .after_release(|conn, _| {
                Box::pin(async move {
                    let clean = !sqlx::Connection::is_in_transaction(conn);
                    if !clean {
                        tracing::warn!("a database connection left in a transaction: closed");
                    }
                    Ok(clean)
                })
            })
            .connect(url.expose_secret())
            .await
            .map_err(StoreError::Unavailable)?;
        if backend == DatabaseBackend::Sqlite {
            // WAL lets readers proceed while a write commits; the mode is stored in the file.
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&pool)
                .await?;
        }
        let cache_entries = settings
            .database
            .read_cache_entries
            .unwrap_or(DEFAULT_READ_CACHE);
        // The embedded database has one writer, this process; on PostgreSQL the cache serves
        // once `follow_other_writers` is receiving the other replicas' writes.
        let sole_writer = backend == DatabaseBackend::Sqlite;
        Ok(Store {
            pool,
            backend,
            cache: Arc::new(ReadCache::new(
                cache_entries,
                settings
                    .database
                    .search_cache_mib
                    .saturating_mul(1024 * 1024),
                sole_writer,
            )),
            shared_url: (!sole_writer).then(|| Arc::new(url.clone())),
            replica: uuid::Uuid::new_v4().to_string().into(),
            _lock: lock,
            write_queue: (backend == DatabaseBackend::Sqlite)
                .then(|| Arc::new(tokio::sync::Mutex::new(()))),
            sqlite_appender: match backend {
                DatabaseBackend::Sqlite => Some(Arc::new(
                    audit::SqliteAppender::new(url.expose_secret())
                        .map_err(StoreError::Unavailable)?,
                )),
                DatabaseBackend::Postgres => None,
            },
        })
    }

    pub fn backend(&self) -> DatabaseBackend {
        self.backend
    }

    fn migrator(&self) -> &'static Migrator {
        match self.backend {
            DatabaseBackend::Sqlite => &SQLITE_MIGRATIONS,
            DatabaseBackend::Postgres => &POSTGRES_MIGRATIONS,
        }
    }

    /// Applies pending migrations; applied ones are checked against their recorded checksums.
    pub async fn migrate(&self) -> Result<usize, StoreError> {
        let migrator = self.migrator();
        migrator
            .run(&self.pool)
            .await
            .map_err(StoreError::Migration)?;
        Ok(migrator.iter().count())
    }

    /// Ready means: the database answers and every migration this build knows is applied.
    pub async fn check_ready(&self) -> Result<bool, StoreError> {
        let expected = self.migrator().iter().count() as i64;
        let row = sqlx::query("SELECT COUNT(*) AS n FROM _sqlx_migrations WHERE success = TRUE")
            .fetch_one(&self.pool)
            .await;
        match row {
            Ok(row) => Ok(row.try_get::<i64, _>("n")? >= expected),
            Err(sqlx::Error::Database(_)) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn close(&self) {
        if let Some(appender) = &self.sqlite_appender {
            appender.close().await;
        }
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_row_statements_number_parameters_only_for_postgres() {
        let prefix = "INSERT INTO t (a, b) VALUES ";
        assert_eq!(
            values_statement(DatabaseBackend::Sqlite, prefix, 2, 2),
            "INSERT INTO t (a, b) VALUES (?, ?), (?, ?)"
        );
        assert_eq!(
            values_statement(DatabaseBackend::Postgres, prefix, 2, 2),
            "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4)"
        );
    }
}
