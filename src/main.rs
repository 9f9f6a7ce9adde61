use anyhow::Context;
use clap::Parser;

use prognostics::cli::{Cli, Command};
use prognostics::startup::{Application, open_store};
use prognostics::telemetry;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings = cli.settings()?;
    telemetry::init(&settings.log);
    match cli.command {
        Some(Command::Migrate) => {
            let store = open_store(&settings).await.context("migration failed")?;
            store.close().await;
            tracing::info!("migrations applied");
        }
        Some(Command::Serve(_)) | None => {
            let app = Application::build(&settings)
                .await
                .context("could not start the service")?;
            app.run_until_stopped().await?;
        }
    }
    Ok(())
}
