//! `prognostics models list | promote | shadow | retire`: the deployments of the loaded models,
//! changed as `POST /models/{NAME@VERSION}/$deploy` changes them (the Device, a Provenance, an
//! AuditEvent through the `command-line` door), by the operator at this terminal.

use std::process::ExitCode;

use anyhow::{Context, bail};

use super::{DeployArgs, ModelsCommand};
use crate::config::Settings;
use crate::domain::{AuditAction, AuditOutcome, AuditRecord};
use crate::pipeline::models::{DeployRequest, Deployment};
use crate::pipeline::{Auditor, Pipeline};
use crate::startup::{configured_encoders, load_models, open_pipeline};

pub async fn run(settings: &Settings, command: ModelsCommand) -> anyhow::Result<ExitCode> {
    let (pipeline, writer) = open_audited(settings).await?;
    let pipeline = pipeline.with_configured_encoders(configured_encoders(&settings.inference));
    pipeline.sync_models().await?;
    let (args, status) = match command {
        ModelsCommand::List => {
            list(&pipeline);
            close(pipeline, writer).await;
            return Ok(ExitCode::SUCCESS);
        }
        ModelsCommand::Promote(args) => (args, Deployment::Active),
        ModelsCommand::Shadow(args) => (args, Deployment::Shadow),
        ModelsCommand::Retire(args) => (args, Deployment::Retired),
    };
    let outcome = deploy(&pipeline, &args, status).await;
    let mut record = AuditRecord::new("command-line", "model-deploy", AuditAction::Update);
    record.entity = Some(args.model.clone());
    record.agent.subject = Some(operator());
    if let Err(e) = &outcome {
        record.outcome = AuditOutcome::MinorFailure;
        record.outcome_text = Some(e.to_string());
    }
    pipeline.audit(record).await;
    pipeline.flush_audit().await;
    if outcome.is_ok() {
        list(&pipeline);
    }
    close(pipeline, writer).await;
    outcome?;
    Ok(ExitCode::SUCCESS)
}

/// The service's database with its models, and its audit trail's writer when the service keeps
/// one (a command's changes are audited like the API's).
pub(super) async fn open_audited(
    settings: &Settings,
) -> anyhow::Result<(Pipeline, Option<tokio::task::JoinHandle<()>>)> {
    let pipeline = open_pipeline(settings)
        .await
        .context("could not open the database")?
        .with_models(load_models(&settings.risk).await?);
    Ok(if settings.audit.enabled {
        let (auditor, writer) = Auditor::start(pipeline.store().clone());
        (pipeline.with_auditor(auditor), Some(writer))
    } else {
        (pipeline, None)
    })
}

/// Lets go of the database (and the embedded database's lock): the audit writer is stopped
/// after what was queued is committed.
pub(super) async fn close(pipeline: Pipeline, writer: Option<tokio::task::JoinHandle<()>>) {
    pipeline.flush_audit().await;
    if let Some(writer) = writer {
        writer.abort();
        let _ = writer.await;
    }
    let store = pipeline.store().clone();
    drop(pipeline);
    store.close().await;
}

/// Who runs the command, as the record names them.
pub(super) fn operator() -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown user".into());
    format!("command line ({user})")
}

async fn deploy(pipeline: &Pipeline, args: &DeployArgs, status: Deployment) -> anyhow::Result<()> {
    let Some((name, version)) = args.model.split_once('@') else {
        bail!("name the model as NAME@VERSION (see `prognostics models list`)");
    };
    pipeline
        .deploy_model(&DeployRequest {
            name: name.to_owned(),
            version: version.to_owned(),
            status,
            by: operator(),
            reason: args.reason.clone(),
        })
        .await?;
    Ok(())
}

fn list(pipeline: &Pipeline) {
    let registry = pipeline.models();
    println!(
        "{:<32} {:<24} {:<8} changed by",
        "model", "version", "status"
    );
    for m in &registry.models {
        let d = &m.model.description;
        println!(
            "{:<32} {:<24} {:<8} {}",
            d.name,
            d.version,
            m.status.as_str(),
            m.changed_by.as_deref().unwrap_or("")
        );
    }
    for u in &registry.unloadable {
        println!("not loaded: {} ({})", u.path, u.reason);
    }
}
