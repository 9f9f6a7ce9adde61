//! `prognostics backup --to DIR`: an online backup of what the service holds, taken while it
//! runs. The embedded SQLite database is snapshotted with `VACUUM INTO`; on PostgreSQL,
//! `pg_dump --format=custom` writes the dump. Then the received DICOM files are copied. The
//! folder restores by serving from it (`--data-dir DIR`; on PostgreSQL, `pg_restore` first).

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use secrecy::ExposeSecret;

use super::args::BackupArgs;
use crate::config::{DatabaseBackend, Settings};
use crate::store::{FileStore, snapshot_sqlite};

pub async fn run(settings: &Settings, args: BackupArgs) -> anyhow::Result<ExitCode> {
    let to = args.to;
    if to
        .read_dir()
        .is_ok_and(|mut entries| entries.next().is_some())
    {
        bail!("{} is not empty: back up into a new folder", to.display());
    }
    std::fs::create_dir_all(&to).with_context(|| format!("could not create {}", to.display()))?;
    let url = settings.database_url();
    let database = match settings.database_backend()? {
        DatabaseBackend::Sqlite => {
            let file = to.join("prognostics.db");
            snapshot_sqlite(url.expose_secret(), &file)
                .await
                .context("could not snapshot the database")?;
            file
        }
        DatabaseBackend::Postgres => pg_dump(url.expose_secret(), &to)?,
    };
    let size = std::fs::metadata(&database).map(|m| m.len()).unwrap_or(0);
    let files = FileStore::new(settings.dicom_dir());
    let destination = to.join("dicom");
    let copied =
        crate::telemetry::spawn_blocking_with_tracing(move || files.copy_into(&destination))
            .await?
            .context("could not copy the DICOM files")?;
    println!(
        "backed up the database ({size} bytes, {}) and {} DICOM files ({} bytes) into {}",
        database.display(),
        copied.copied,
        copied.bytes,
        to.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Dumps the PostgreSQL database with `pg_dump` (custom format, for `pg_restore`).
fn pg_dump(url: &str, to: &Path) -> anyhow::Result<std::path::PathBuf> {
    let file = to.join("prognostics.pgdump");
    let status = std::process::Command::new("pg_dump")
        .args(["--format=custom", "--no-owner", "--file"])
        .arg(&file)
        .arg(url)
        .status();
    match status {
        Ok(status) if status.success() => Ok(file),
        Ok(status) => bail!("pg_dump failed ({status})"),
        Err(e) => bail!(
            "pg_dump could not be run ({e}): install PostgreSQL's client tools (Debian: \
             postgresql-client) of the server's version or newer"
        ),
    }
}
