//! `prognostics serve` (the default) and `prognostics migrate`.

use std::process::ExitCode;

use anyhow::Context;

use crate::config::Settings;
use crate::startup::{Application, open_store};

/// Runs the service until SIGINT or SIGTERM.
pub async fn serve(settings: &Settings) -> anyhow::Result<ExitCode> {
    let app = Application::build(settings)
        .await
        .context("could not start the service")?;
    app.run_until_stopped().await?;
    Ok(ExitCode::SUCCESS)
}

/// Applies the database migrations and exits.
pub async fn migrate(settings: &Settings) -> anyhow::Result<ExitCode> {
    let store = open_store(settings).await.context("migration failed")?;
    store.close().await;
    tracing::info!("migrations applied");
    Ok(ExitCode::SUCCESS)
}
