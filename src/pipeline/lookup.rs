//! Finding the stored resource an incoming message or study is about, by identifier, inside
//! the transaction that will write it. Shared by DICOM ingest and HL7 filing, so that a patient
//! named by a DICOM study and by an HL7 feed is one Patient.

use serde_json::{Map, Value};

use super::PipelineError;
use crate::domain::{ResourceId, ResourceType};
use crate::fhir::parse_search;
use crate::store::{StoreTransaction, StoredResource};

/// The Patient carrying identifier `value`: under `system` when one is given (or with no
/// system when none is), else the only Patient carrying that value under any system.
pub(super) async fn find_patient(
    tx: &mut StoreTransaction,
    system: Option<&str>,
    value: &str,
) -> Result<Option<StoredResource>, PipelineError> {
    // Held until the caller's transaction ends, so that what it creates when nothing is found
    // is not created by another writer, in this process or another, at the same time.
    tx.lock_find_or_create(ResourceType::Patient).await?;
    let escaped = escape_token(value);
    // First the identifier as this service writes it (`system|value`, or `|value` for no
    // system), so that a Patient it created earlier is found again; then the value under
    // any system, when exactly one Patient carries it.
    let own = format!("{}|{escaped}", system.map(escape_token).unwrap_or_default());
    for token in [own, escaped] {
        let params = [("identifier".to_owned(), token)];
        if let Some(found) = find_one(tx, ResourceType::Patient, &params).await? {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

/// The resource of type `t` for `patient` carrying exactly this identifier (`system|value`,
/// `|value` when it has no system), when there is exactly one.
pub(super) async fn find_for_patient(
    tx: &mut StoreTransaction,
    t: ResourceType,
    patient: &ResourceId,
    system: Option<&str>,
    value: &str,
) -> Result<Option<StoredResource>, PipelineError> {
    let token = format!(
        "{}|{}",
        system.map(escape_token).unwrap_or_default(),
        escape_token(value)
    );
    let params = [
        ("identifier".to_owned(), token),
        ("patient".to_owned(), format!("Patient/{patient}")),
    ];
    find_one(tx, t, &params).await
}

async fn find_one(
    tx: &mut StoreTransaction,
    t: ResourceType,
    params: &[(String, String)],
) -> Result<Option<StoredResource>, PipelineError> {
    // Two at most: enough to tell one match from several.
    let mut query = parse_search(t, params, true, 2, 2)?;
    query.offset = 0;
    let mut found = tx.search_page(t, &query).await?;
    Ok(if found.len() == 1 { found.pop() } else { None })
}

/// A resource's JSON object (an empty one for anything else).
pub(super) fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// Escapes a token search value (R4 §3.1.1.4.13).
pub(super) fn escape_token(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | ',' | '|' | '$') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
