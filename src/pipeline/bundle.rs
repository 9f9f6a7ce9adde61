//! Transaction and batch Bundles posted to the base (R4 §3.1.0.11). A transaction runs every
//! entry in one database transaction (deletes, then creates, then updates, then reads, as R4
//! orders them) and writes nothing if any entry fails; `urn:uuid:` and other `fullUrl`s of
//! created resources are rewritten to the ids the server assigns. A batch runs each entry on
//! its own and reports each entry's outcome.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::resources::{SearchRequest, Written, create_in, searchset, update_in};
use super::{Pipeline, PipelineError};
use crate::domain::{ResourceId, ResourceType, VersionId};
use crate::error::ErrorKind;
use crate::fhir::{parse_json_object, validate_resource};
use crate::report::{
    BundleEntry, BundleKind, EntryResponse, OutcomeIssue, bundle, error_status, operation_outcome,
};
use crate::store::StoreTransaction;

/// The response Bundle, as JSON text.
#[derive(Debug)]
pub struct BundleOutcome {
    pub body: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Method {
    // Declaration order is R4's processing order.
    Delete,
    Post,
    Put,
    Get,
}

#[derive(Debug)]
enum Target {
    Type(ResourceType),
    Instance(ResourceType, ResourceId),
    Version(ResourceType, ResourceId, VersionId),
    Search(ResourceType, Vec<(String, String)>),
}

#[derive(Debug)]
struct Entry {
    method: Method,
    target: Target,
    full_url: Option<String>,
    resource: Option<Map<String, Value>>,
    if_none_exist: Option<String>,
    if_match: Option<VersionId>,
}

impl Pipeline {
    /// Processes a transaction or batch Bundle and returns the response Bundle.
    pub async fn process_bundle(
        &self,
        body: &[u8],
        base_url: &str,
        include_resources: bool,
    ) -> Result<BundleOutcome, PipelineError> {
        let bundle_json = parse_json_object(body)?;
        if bundle_json.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
            return Err(invalid("only a Bundle can be posted to the base"));
        }
        let kind = match bundle_json.get("type").and_then(Value::as_str) {
            Some("transaction") => BundleKind::TransactionResponse,
            Some("batch") => BundleKind::BatchResponse,
            _ => return Err(invalid("Bundle.type must be transaction or batch")),
        };
        let raw_entries = match bundle_json.get("entry") {
            None => Vec::new(),
            Some(Value::Array(items)) => items.clone(),
            Some(_) => return Err(invalid("Bundle.entry must be an array")),
        };
        let mut parsed = Vec::with_capacity(raw_entries.len());
        for (index, raw) in raw_entries.into_iter().enumerate() {
            let entry = parse_entry(raw, base_url).map_err(|e| at(index, e));
            match (kind, entry) {
                (BundleKind::TransactionResponse, Err(e)) => return Err(e),
                (_, entry) => parsed.push(entry),
            }
        }
        let responses = if kind == BundleKind::TransactionResponse {
            let entries: Vec<Entry> = parsed.into_iter().collect::<Result<_, _>>()?;
            self.run_transaction(entries, base_url, include_resources)
                .await?
        } else {
            self.run_batch(parsed, base_url, include_resources).await?
        };
        let body = bundle(kind, None, &[], &responses)?;
        Ok(BundleOutcome { body })
    }

    async fn run_transaction(
        &self,
        mut entries: Vec<Entry>,
        base_url: &str,
        include_resources: bool,
    ) -> Result<Vec<BundleEntry>, PipelineError> {
        // Assign ids to creates up front so that references between entries can be rewritten
        // before anything is validated or written.
        let mut assigned: HashMap<String, String> = HashMap::new();
        let mut new_ids: Vec<Option<ResourceId>> = Vec::with_capacity(entries.len());
        for entry in &entries {
            let new_id = match (&entry.method, &entry.target) {
                (Method::Post, Target::Type(t)) => {
                    let id = ResourceId::generate();
                    if let Some(full_url) = &entry.full_url {
                        assigned.insert(full_url.clone(), format!("{t}/{id}"));
                    }
                    Some(id)
                }
                // An update named by a urn: fullUrl is referred to by its Type/id.
                (Method::Put, Target::Instance(t, id)) => {
                    if let Some(full_url) =
                        entry.full_url.as_ref().filter(|u| u.starts_with("urn:"))
                    {
                        assigned.insert(full_url.clone(), format!("{t}/{id}"));
                    }
                    None
                }
                _ => None,
            };
            new_ids.push(new_id);
        }
        for (index, entry) in entries.iter_mut().enumerate() {
            if let Some(resource) = &mut entry.resource {
                rewrite_references(resource, &assigned);
                // A urn: reference left over names nothing in this Bundle, nor anything a
                // server could resolve: refused, naming where it is.
                let kind = resource
                    .get("resourceType")
                    .and_then(Value::as_str)
                    .unwrap_or("resource")
                    .to_owned();
                if let Some((path, reference)) = dangling_reference(resource, &kind) {
                    return Err(at(
                        index,
                        invalid(&format!(
                            "{path} refers to {reference}, which is the fullUrl of no entry of this Bundle"
                        )),
                    ));
                }
            }
        }
        let mut order: Vec<usize> = (0..entries.len()).collect();
        order.sort_by_key(|&i| entries[i].method);

        let mut tx = self.store.begin().await?;
        let mut responses: Vec<Option<BundleEntry>> = vec![None; entries.len()];
        for index in order {
            let entry = &mut entries[index];
            let response = self
                .run_entry(
                    &mut tx,
                    entry,
                    new_ids[index].take(),
                    base_url,
                    include_resources,
                )
                .await
                .map_err(|e| at(index, e))?;
            // A conditional create that matched: later entries point at the existing resource.
            if let (Some(full_url), Some(location)) = (&entry.full_url, &response.1) {
                assigned.insert(full_url.clone(), location.clone());
            }
            responses[index] = Some(response.0);
        }
        tx.commit().await?;
        tracing::info!(entries = responses.len(), "transaction committed");
        Ok(responses.into_iter().flatten().collect())
    }

    async fn run_batch(
        &self,
        entries: Vec<Result<Entry, PipelineError>>,
        base_url: &str,
        include_resources: bool,
    ) -> Result<Vec<BundleEntry>, PipelineError> {
        let mut responses = Vec::with_capacity(entries.len());
        let mut failures = 0usize;
        for entry in entries {
            let result = match entry {
                Err(e) => Err(e),
                Ok(mut entry) => {
                    let new_id = matches!(entry.method, Method::Post).then(ResourceId::generate);
                    let mut tx = self.store.begin().await?;
                    match self
                        .run_entry(&mut tx, &mut entry, new_id, base_url, include_resources)
                        .await
                    {
                        Ok((response, _)) => {
                            tx.commit().await.map(|_| response).map_err(Into::into)
                        }
                        Err(e) => Err(e),
                    }
                }
            };
            responses.push(result.unwrap_or_else(|e| {
                failures += 1;
                error_entry(&e)
            }));
        }
        tracing::info!(entries = responses.len(), failures, "batch processed");
        Ok(responses)
    }

    /// Runs one entry; returns its response entry and, for creates, the `Type/id` it now has.
    async fn run_entry(
        &self,
        tx: &mut StoreTransaction,
        entry: &mut Entry,
        new_id: Option<ResourceId>,
        base_url: &str,
        include_resources: bool,
    ) -> Result<(BundleEntry, Option<String>), PipelineError> {
        let written_entry = |w: Written| {
            let s = &w.stored;
            let location = format!("{}/{}/_history/{}", s.resource_type, s.id, s.version);
            let full_url = crate::report::resource_url(base_url, s.resource_type, &s.id);
            let mut out = match (&s.content, include_resources) {
                (Some(c), true) => BundleEntry::with_resource(Some(full_url), c),
                _ => BundleEntry {
                    full_url: Some(full_url),
                    ..BundleEntry::default()
                },
            };
            out.response = Some(EntryResponse {
                status: if w.created { "201 Created" } else { "200 OK" }.to_owned(),
                location: Some(location),
                etag: Some(s.version.etag()),
                last_modified: Some(s.last_updated.to_rfc3339()),
                outcome: None,
            });
            (out, Some(format!("{}/{}", s.resource_type, s.id)))
        };
        let resource = entry.resource.take();
        match (&entry.method, &entry.target) {
            (Method::Post, Target::Type(t)) => {
                let resource = require_resource(resource)?;
                validate_resource(&resource, Some(*t))?;
                let written = match (&entry.if_none_exist, new_id) {
                    (Some(condition), _) => {
                        create_in(tx, self.page_sizes, *t, resource, Some(condition)).await?
                    }
                    (None, Some(id)) => Written {
                        stored: tx.write(*t, &id, resource, None).await?,
                        created: true,
                    },
                    (None, None) => create_in(tx, self.page_sizes, *t, resource, None).await?,
                };
                Ok(written_entry(written))
            }
            (Method::Put, Target::Instance(t, id)) => {
                let (t, id) = (*t, id.clone());
                let resource = require_resource(resource)?;
                validate_resource(&resource, Some(t))?;
                let written = update_in(tx, t, &id, resource, entry.if_match).await?;
                Ok(written_entry(written))
            }
            (Method::Delete, Target::Instance(t, id)) => {
                super::sign_off::refuse_changing_signed(tx, *t, id).await?;
                tx.delete(*t, id).await?;
                Ok((
                    BundleEntry::default().response(EntryResponse {
                        status: "204 No Content".to_owned(),
                        ..EntryResponse::default()
                    }),
                    None,
                ))
            }
            (Method::Get, Target::Instance(t, id)) => {
                let stored = tx.read(*t, id).await?;
                Ok((read_entry(base_url, &stored), None))
            }
            (Method::Get, Target::Version(t, id, v)) => {
                let stored = self.store.vread(*t, id, *v).await?;
                Ok((read_entry(base_url, &stored), None))
            }
            (Method::Get, Target::Search(t, params)) => {
                let request = SearchRequest {
                    resource_type: *t,
                    params,
                    strict: false,
                    base_url,
                };
                let query = self.parse_query(&request)?;
                let (found, total) = tx.search(*t, &query).await?;
                let body = searchset(&request, &query, &found, total)?;
                let mut out = BundleEntry::with_resource(None, &body);
                out.response = Some(EntryResponse {
                    status: "200 OK".to_owned(),
                    ..EntryResponse::default()
                });
                Ok((out, None))
            }
            _ => Err(invalid(
                "this combination of request.method and request.url is not supported",
            )),
        }
    }
}

fn read_entry(base_url: &str, stored: &crate::store::StoredResource) -> BundleEntry {
    let full_url = crate::report::resource_url(base_url, stored.resource_type, &stored.id);
    let mut out =
        BundleEntry::with_resource(Some(full_url), stored.content.as_deref().unwrap_or("{}"));
    out.response = Some(EntryResponse {
        status: "200 OK".to_owned(),
        etag: Some(stored.version.etag()),
        last_modified: Some(stored.last_updated.to_rfc3339()),
        ..EntryResponse::default()
    });
    out
}

fn require_resource(
    resource: Option<Map<String, Value>>,
) -> Result<Map<String, Value>, PipelineError> {
    resource.ok_or_else(|| invalid("POST and PUT entries must carry a resource"))
}

fn invalid(reason: &str) -> PipelineError {
    PipelineError::InvalidBundle {
        reason: reason.to_owned(),
    }
}

fn at(index: usize, e: PipelineError) -> PipelineError {
    PipelineError::BundleEntry {
        index,
        source: Box::new(e),
    }
}

fn error_entry(e: &PipelineError) -> BundleEntry {
    let (_, status, code) = error_status(e.kind());
    // Internal failures are opaque to the caller, as at the HTTP edge; the cause goes to the log.
    let diagnostics = if e.kind() == ErrorKind::Internal {
        tracing::error!(error = %e, "batch entry failed");
        "internal error; quote the response's X-Request-Id when reporting it".to_owned()
    } else {
        e.to_string()
    };
    let outcome =
        operation_outcome(&[OutcomeIssue::error(code, diagnostics).at(e.expression().as_deref())])
            .ok();
    BundleEntry::default().response(EntryResponse {
        status: status.to_owned(),
        outcome,
        ..EntryResponse::default()
    })
}

fn parse_entry(raw: Value, base_url: &str) -> Result<Entry, PipelineError> {
    let Value::Object(mut raw) = raw else {
        return Err(invalid("each entry must be an object"));
    };
    let request = match raw.remove("request") {
        Some(Value::Object(r)) => r,
        _ => {
            return Err(invalid(
                "entry.request is required in transaction and batch Bundles",
            ));
        }
    };
    let method = match request.get("method").and_then(Value::as_str) {
        Some("GET") => Method::Get,
        Some("POST") => Method::Post,
        Some("PUT") => Method::Put,
        Some("DELETE") => Method::Delete,
        _ => {
            return Err(invalid(
                "entry.request.method must be GET, POST, PUT or DELETE",
            ));
        }
    };
    let url = request
        .get("url")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("entry.request.url is required"))?;
    let target = parse_target(url, base_url)?;
    let resource = match raw.remove("resource") {
        None => None,
        Some(Value::Object(r)) => Some(r),
        Some(_) => return Err(invalid("entry.resource must be an object")),
    };
    let if_match = match request.get("ifMatch").and_then(Value::as_str) {
        None => None,
        Some(tag) => Some(
            VersionId::from_etag(tag)
                .map_err(|_| invalid("entry.request.ifMatch is not a version ETag"))?,
        ),
    };
    Ok(Entry {
        method,
        target,
        full_url: raw
            .get("fullUrl")
            .and_then(Value::as_str)
            .map(str::to_owned),
        resource,
        if_none_exist: request
            .get("ifNoneExist")
            .and_then(Value::as_str)
            .map(str::to_owned),
        if_match,
    })
}

fn parse_target(url: &str, base_url: &str) -> Result<Target, PipelineError> {
    let relative = url
        .strip_prefix(base_url.trim_end_matches('/'))
        .unwrap_or(url)
        .trim_start_matches('/');
    let (path, query) = match relative.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (relative, None),
    };
    let parts: Vec<&str> = path.split('/').collect();
    let unknown = || invalid("entry.request.url names a resource type this server does not store");
    let bad_id = || invalid("entry.request.url has an invalid id or version");
    let t: ResourceType = parts[0].parse().map_err(|_| unknown())?;
    match (parts.as_slice(), query) {
        ([_], Some(q)) => Ok(Target::Search(
            t,
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect(),
        )),
        ([_], None) => Ok(Target::Type(t)),
        ([_, id], None) => Ok(Target::Instance(
            t,
            ResourceId::parse(id).map_err(|_| bad_id())?,
        )),
        ([_, id, "_history", v], None) => Ok(Target::Version(
            t,
            ResourceId::parse(id).map_err(|_| bad_id())?,
            VersionId::parse(v).map_err(|_| bad_id())?,
        )),
        _ => Err(invalid(
            "entry.request.url is not a supported form (Type, Type/id, Type/id/_history/v or Type?query)",
        )),
    }
}

/// The first `reference` still in `urn:uuid:` or `urn:oid:` form, with its element path.
fn dangling_reference(value: &Map<String, Value>, path: &str) -> Option<(String, String)> {
    value.iter().find_map(|(key, child)| {
        let here = format!("{path}.{key}");
        match child {
            Value::String(s)
                if key == "reference"
                    && (s.starts_with("urn:uuid:") || s.starts_with("urn:oid:")) =>
            {
                Some((here, s.clone()))
            }
            Value::Object(map) => dangling_reference(map, &here),
            Value::Array(items) => items.iter().enumerate().find_map(|(i, item)| match item {
                Value::Object(map) => dangling_reference(map, &format!("{here}[{i}]")),
                _ => None,
            }),
            _ => None,
        }
    })
}

/// Replaces every `reference` that names a `fullUrl` of this Bundle with the server's `Type/id`.
fn rewrite_references(value: &mut Map<String, Value>, assigned: &HashMap<String, String>) {
    for (key, child) in value.iter_mut() {
        match child {
            Value::String(s) if key == "reference" => {
                if let Some(target) = assigned.get(s.as_str()) {
                    *s = target.clone();
                }
            }
            Value::Object(map) => rewrite_references(map, assigned),
            Value::Array(items) => {
                for item in items {
                    if let Value::Object(map) = item {
                        rewrite_references(map, assigned);
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn references_to_full_urls_are_rewritten_at_any_depth() {
        let mut assigned = HashMap::new();
        assigned.insert("urn:uuid:a".to_owned(), "Patient/123".to_owned());
        let mut obs = json!({
            "resourceType": "Observation",
            "subject": {"reference": "urn:uuid:a"},
            "performer": [{"reference": "urn:uuid:a"}, {"reference": "Practitioner/x"}]
        });
        rewrite_references(obs.as_object_mut().unwrap(), &assigned);
        assert_eq!(obs["subject"]["reference"], "Patient/123");
        assert_eq!(obs["performer"][0]["reference"], "Patient/123");
        assert_eq!(obs["performer"][1]["reference"], "Practitioner/x");
    }

    #[test]
    fn entry_urls_parse_into_targets() {
        let base = "http://h/fhir";
        assert!(matches!(
            parse_target("Patient", base),
            Ok(Target::Type(ResourceType::Patient))
        ));
        assert!(matches!(
            parse_target("http://h/fhir/Patient/p1", base),
            Ok(Target::Instance(_, _))
        ));
        assert!(matches!(
            parse_target("Patient/p1/_history/2", base),
            Ok(Target::Version(_, _, _))
        ));
        assert!(matches!(
            parse_target("Observation?code=1", base),
            Ok(Target::Search(_, _))
        ));
        assert!(parse_target("Parameters/e1", base).is_err());
        assert!(parse_target("Patient/bad id", base).is_err());
    }
}
