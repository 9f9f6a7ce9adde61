//! The command line: one `Command` per task, each run by the file of its family (`serve`,
//! `import`, `embed`, `ehr`, `models`, `synthesize`; argument types in `args`). Flags override the
//! configuration file and environment. The edge of the offline commands: it may import every
//! layer, as `startup` does for the service.

mod args;
mod audit;
mod backup;
mod deployments;
mod ehr;
mod embed;
mod import;
mod models;
mod monitor;
mod serve;
pub mod stored_cohort;
pub mod synthesize;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use secrecy::SecretString;

pub use args::{
    BackupArgs, CohortArgs, CommonArgs, EmbedCommand, EmbedImageArgs, EmbedTextArgs, EvaluateArgs,
    FeaturesArgs, ImportArgs, ModelArgs, PullArgs, ServeArgs, SynthesizeArgs, TrainArgs,
};

use crate::config::{ConfigError, Settings};

#[derive(Debug, Parser)]
#[command(
    name = "prognostics",
    version,
    about = "Multimodal prognostic risk scores for oncology, served as FHIR R4",
    long_about = "Multimodal prognostic risk scores for oncology, served as FHIR R4.\n\n\
        Configuration is read from built-in defaults, then the TOML file given with --config, \
        then PROGNOSTICS_<SECTION>__<KEY> environment variables (for example \
        PROGNOSTICS_DATABASE__URL), then the flags below."
)]
pub struct Cli {
    #[command(flatten)]
    pub common: CommonArgs,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP service (the default when no command is given).
    Serve(ServeArgs),
    /// Apply database migrations and exit.
    Migrate,
    /// Store DICOM files (and every file under the folders given) as STOW-RS and C-STORE
    /// would, then exit. Files that are not DICOM instances are skipped.
    Import(ImportArgs),
    /// Pull what the EHR's FHIR server (`ehr.base_url`) holds about a patient and show it:
    /// labs, vital signs, tumour markers, variants, conditions, notes, imaging studies, and
    /// whatever could not be had.
    Pull(PullArgs),
    /// Build the features a model's input spec declares for a patient pulled from the EHR, and
    /// say which could not be filled and why. Notes are embedded with the spec's text encoder
    /// (fetched when missing); imaging comes from a study already received and embedded here.
    Features(FeaturesArgs),
    /// Print the public key of `ehr.smart.private_key_file` as a JWK Set, with its `kid` and
    /// algorithm: what to register with the EHR for SMART Backend Services.
    EhrJwks,
    /// Train a prognostic model on a cohort file (CSV or ARFF; one row per patient with a
    /// follow-up time, an event indicator and features) and write a model bundle: weights,
    /// manifest, calibration, and a model card (JSON, Markdown) with its held-out metrics.
    Train(TrainArgs),
    /// Evaluate a model bundle on a cohort (`--model`), or cross-validate training on a cohort
    /// (`--cv 5x5`): c-indices, time-dependent AUC, integrated Brier score, calibration,
    /// triage metrics, by subgroup.
    Evaluate(EvaluateArgs),
    /// Write a synthetic multimodal cohort with a known hazard (CSV): a lesion on a real DICOM
    /// background (embedded by the image encoder), a radiology sentence (embedded by the text
    /// encoder), laboratory, genomic and clinical columns, follow-up, an urgent-finding label
    /// and the true log hazard. See `training::synthetic` for how it is made.
    Synthesize(SynthesizeArgs),
    /// Compute embeddings and print them as JSON, one object per line.
    #[command(subcommand)]
    Embed(EmbedCommand),
    /// Back up the database and the received DICOM files into a new folder, while the service
    /// runs: SQLite is snapshotted (`VACUUM INTO`), PostgreSQL dumped with `pg_dump`. Serve
    /// from the folder (`--data-dir`) to restore; on PostgreSQL, `pg_restore` the dump first.
    Backup(BackupArgs),
    /// The audit trail: check its hash chain, or export it as NDJSON.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// The models loaded (`risk.model` and the bundles of `risk.models_dir`) and how each is
    /// deployed: list them, or make one active, shadow or retired. A running service applies a
    /// change within seconds; with the embedded SQLite database, stop it first (or use the
    /// running service's `POST /models/{NAME@VERSION}/$deploy`).
    #[command(subcommand)]
    Models(ModelsCommand),
    /// How the models do once outcomes arrive, and how their inputs drift: write the
    /// monitoring report.
    #[command(subcommand)]
    Monitor(MonitorCommand),
}

#[derive(Debug, clap::Subcommand)]
pub enum MonitorCommand {
    /// Write the monitoring report as Markdown (`monitoring.md`) with its plots as SVG files
    /// beside it: alerts, performance on outcomes against each model card, subgroups, drift
    /// from the training patients, what clinicians did.
    Report(MonitorReportArgs),
    /// File an outcome file for a past cohort (CSV: patient, outcome, date) as the facts the
    /// monitoring pairs assessments with; checked whole first, filed all or nothing.
    Outcomes(MonitorOutcomesArgs),
}

#[derive(Debug, clap::Args)]
pub struct MonitorOutcomesArgs {
    /// The CSV file: a header naming `patient` (a Patient id, or `system|value` of one of its
    /// identifiers), `outcome` (progression, no-evidence-of-disease, death) and `date`
    /// (YYYY-MM-DD).
    #[arg(long)]
    pub file: std::path::PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct MonitorReportArgs {
    /// The first day of the assessments covered, e.g. 2026-01-01 (UTC).
    #[arg(long)]
    pub since: chrono::NaiveDate,
    /// The folder to write into (created when missing).
    #[arg(long)]
    pub out: std::path::PathBuf,
}

#[derive(Debug, clap::Subcommand)]
pub enum ModelsCommand {
    /// Every model with its status, and the bundles that could not be loaded.
    List,
    /// Make NAME@VERSION the active model (the one active before is retired).
    Promote(DeployArgs),
    /// Let NAME@VERSION score every assessment's inputs where only governance sees it.
    Shadow(DeployArgs),
    /// Stop using NAME@VERSION.
    Retire(DeployArgs),
}

#[derive(Debug, clap::Args)]
pub struct DeployArgs {
    /// The model, as `models list` names it.
    pub model: String,
    /// Why, for the record (the change's Provenance).
    #[arg(long)]
    pub reason: Option<String>,
}

#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// Recompute the hash chain of every AuditEvent; exit 1 naming the first record that was
    /// changed, removed or inserted by hand.
    Verify,
    /// Write the AuditEvents recorded since a date, oldest first, one JSON object per line.
    Export {
        /// A date (UTC) or an RFC 3339 time, e.g. 2026-12-01 or 2026-12-01T08:00:00Z.
        #[arg(long)]
        since: String,
    },
}

impl Cli {
    /// Layers this command line over the file and environment configuration.
    pub fn settings(&self) -> Result<Settings, ConfigError> {
        let mut settings = Settings::load(self.common.config.as_deref())?;
        if let Some(url) = &self.common.database {
            settings.database.url = Some(SecretString::from(url.clone()));
        }
        if let Some(dir) = &self.common.data_dir {
            settings.storage.data_dir = dir.clone();
        }
        if let Some(format) = self.common.log_format {
            settings.log.format = format;
        }
        if let Some(Command::Serve(serve)) = &self.command {
            if let Some(listen) = serve.listen {
                settings.server.listen = listen;
            }
            if let Some(listen) = serve.dicom_listen {
                settings.dicom.listen = listen;
                settings.dicom.enabled = true;
            }
            if serve.no_dicom {
                settings.dicom.enabled = false;
            }
            if let Some(listen) = serve.mllp_listen {
                settings.hl7.listen = listen;
                settings.hl7.enabled = true;
            }
            if serve.no_mllp {
                settings.hl7.enabled = false;
            }
        }
        Ok(settings)
    }
}

/// Runs the command with the settings it was given (serving when there is none).
pub async fn run(command: Option<Command>, settings: Settings) -> anyhow::Result<ExitCode> {
    match command {
        Some(Command::Serve(_)) | None => serve::serve(&settings).await,
        Some(Command::Migrate) => serve::migrate(&settings).await,
        Some(Command::Import(args)) => import::run(&settings, args).await,
        Some(Command::Backup(args)) => backup::run(&settings, args).await,
        Some(Command::Embed(EmbedCommand::Image(args))) => embed::image(args),
        Some(Command::Embed(EmbedCommand::Text(args))) => embed::text(args).await,
        Some(Command::Train(args)) => models::train(&settings, args).await,
        Some(Command::Evaluate(args)) => models::evaluate(&settings, args).await,
        Some(Command::Synthesize(args)) => synthesize::run(args).await,
        Some(Command::Pull(args)) => ehr::pull(&settings, args).await,
        Some(Command::Features(args)) => ehr::features(&settings, args).await,
        Some(Command::EhrJwks) => ehr::jwks(&settings),
        Some(Command::Audit(AuditCommand::Verify)) => audit::verify(&settings).await,
        Some(Command::Audit(AuditCommand::Export { since })) => {
            audit::export(&settings, &since).await
        }
        Some(Command::Models(command)) => deployments::run(&settings, command).await,
        Some(Command::Monitor(MonitorCommand::Report(args))) => {
            monitor::report(&settings, args).await
        }
        Some(Command::Monitor(MonitorCommand::Outcomes(args))) => {
            monitor::outcomes(&settings, args).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn flags_override_configuration() {
        let cli = Cli::parse_from([
            "prognostics",
            "--data-dir",
            "/tmp/x",
            "serve",
            "--listen",
            "127.0.0.1:9999",
            "--dicom-listen",
            "0.0.0.0:4242",
        ]);
        let s = cli.settings().unwrap();
        assert_eq!(s.server.listen.port(), 9999);
        assert_eq!(s.dicom.listen.to_string(), "0.0.0.0:4242");
        assert_eq!(s.storage.data_dir, std::path::PathBuf::from("/tmp/x"));
    }

    #[test]
    fn no_command_means_serve() {
        let cli = Cli::parse_from(["prognostics"]);
        assert!(cli.command.is_none());
    }
}
