//! Online backups of the embedded database and the received files, taken while the service
//! runs: the database first (SQLite's `VACUUM INTO`, one consistent snapshot read beside the
//! service's writers), then every file it can name (files are written and flushed before their
//! rows commit, so the snapshot never names a file that is not there yet; files stored since
//! are copied too, harmlessly).

use std::path::Path;

use sqlx::Connection;

use super::{FileStore, StoreError};

/// Writes a consistent copy of the SQLite database at `database_url` to `destination` (which
/// must not exist). Reads without the service's lock, so it runs beside a serving process.
pub async fn snapshot_sqlite(database_url: &str, destination: &Path) -> Result<(), StoreError> {
    sqlx::any::install_default_drivers();
    let path = database_url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:")
        .split('?')
        .next()
        .unwrap_or_default();
    let read_only = format!("sqlite://{path}?mode=ro");
    let mut conn = sqlx::AnyConnection::connect(&read_only)
        .await
        .map_err(StoreError::Unavailable)?;
    let target = destination.display().to_string();
    sqlx::query("VACUUM INTO $1")
        .bind(target)
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    Ok(())
}

/// What a copy of the received files did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FilesCopied {
    pub copied: usize,
    /// Already in the destination (same content-addressed name and size).
    pub present: usize,
    pub bytes: u64,
}

impl FileStore {
    /// Copies every stored file into `destination` (same layout), each flushed; files already
    /// there are skipped. Blocking.
    pub fn copy_into(&self, destination: &Path) -> std::io::Result<FilesCopied> {
        let mut done = FilesCopied::default();
        if !self.root().exists() {
            return Ok(done);
        }
        let mut folders = vec![self.root().to_path_buf()];
        while let Some(folder) = folders.pop() {
            for entry in std::fs::read_dir(&folder)? {
                let entry = entry?;
                let path = entry.path();
                if entry.file_type()?.is_dir() {
                    folders.push(path);
                    continue;
                }
                let name = entry.file_name();
                // Temporary files of writes in progress (`.<hash>.<uuid>.tmp`) are not stored.
                if name.to_string_lossy().starts_with('.') {
                    continue;
                }
                let relative = path.strip_prefix(self.root()).unwrap_or(&path);
                let target = destination.join(relative);
                let size = entry.metadata()?.len();
                if target.metadata().is_ok_and(|m| m.len() == size) {
                    done.present += 1;
                    continue;
                }
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                std::fs::copy(&path, &target)?;
                std::fs::File::open(&target)?.sync_all()?;
                done.copied += 1;
                done.bytes += size;
            }
        }
        Ok(done)
    }
}
