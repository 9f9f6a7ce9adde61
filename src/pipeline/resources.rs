//! Create, update, delete and search of single resources. The `_in` functions run inside a
//! caller's transaction so that transaction Bundles reuse exactly the same rules.

use serde_json::{Map, Value};

use super::{PageSizes, Pipeline, PipelineError};
use crate::domain::{ResourceId, ResourceType, VersionId};
use crate::fhir::{SearchQuery, parse_json_object, parse_search, validate_resource};
use crate::report::{BundleEntry, BundleKind, BundleLink, bundle, resource_url};
use crate::store::{StoreTransaction, StoredResource};

/// The result of a write: the stored version, and whether it created the resource.
#[derive(Clone, Debug)]
pub struct Written {
    pub stored: StoredResource,
    pub created: bool,
}

/// A search as the caller asked for it.
#[derive(Clone, Debug)]
pub struct SearchRequest<'a> {
    pub resource_type: ResourceType,
    pub params: &'a [(String, String)],
    /// `Prefer: handling=strict`: unknown parameters are an error rather than ignored.
    pub strict: bool,
    /// The FHIR base URL for `fullUrl` and links.
    pub base_url: &'a str,
}

impl Pipeline {
    /// `POST /{type}`: validates and stores a new resource under a server-assigned id.
    /// With `if_none_exist` (a query string) and one match, the match is returned instead.
    pub async fn create(
        &self,
        t: ResourceType,
        body: &[u8],
        if_none_exist: Option<&str>,
    ) -> Result<Written, PipelineError> {
        let resource = parse_json_object(body)?;
        validate_resource(&resource, Some(t))?;
        let mut tx = self.store.begin().await?;
        let written = create_in(&mut tx, self.page_sizes, t, resource, if_none_exist).await?;
        tx.commit().await?;
        tracing::info!(resource_type = %t, id = %written.stored.id, created = written.created, "resource created");
        Ok(written)
    }

    /// `PUT /{type}/{id}`: a new version, or the first one (update as create).
    pub async fn update(
        &self,
        t: ResourceType,
        id: &ResourceId,
        body: &[u8],
        if_match: Option<VersionId>,
    ) -> Result<Written, PipelineError> {
        let resource = parse_json_object(body)?;
        validate_resource(&resource, Some(t))?;
        let mut tx = self.store.begin().await?;
        let written = update_in(&mut tx, t, id, resource, if_match).await?;
        tx.commit().await?;
        tracing::info!(resource_type = %t, id = %id, version = %written.stored.version, "resource updated");
        Ok(written)
    }

    /// `DELETE /{type}/{id}`.
    pub async fn delete(
        &self,
        t: ResourceType,
        id: &ResourceId,
    ) -> Result<VersionId, PipelineError> {
        let mut tx = self.store.begin().await?;
        super::sign_off::refuse_changing_signed(&mut tx, t, id).await?;
        let version = tx.delete(t, id).await?;
        tx.commit().await?;
        tracing::info!(resource_type = %t, id = %id, "resource deleted");
        Ok(version)
    }

    /// `GET /{type}?…`: a searchset Bundle as JSON text.
    pub async fn search(&self, request: &SearchRequest<'_>) -> Result<String, PipelineError> {
        let query = self.parse_query(request)?;
        let (found, total) = self.store.search(request.resource_type, &query).await?;
        Ok(searchset(request, &query, &found, total)?)
    }

    /// `GET /{type}/{id}/_history`: the versions of one resource, newest first.
    pub async fn history(
        &self,
        t: ResourceType,
        id: &ResourceId,
        params: &[(String, String)],
        base_url: &str,
    ) -> Result<String, PipelineError> {
        let paging = parse_search(
            t,
            &paging_only(params),
            false,
            self.page_sizes.default,
            self.page_sizes.max,
        )?;
        let (versions, total) = self
            .store
            .history(t, id, paging.count, paging.offset)
            .await?;
        let entries: Vec<BundleEntry> = versions
            .iter()
            .map(|v| history_entry(base_url, v))
            .collect();
        let self_url = format!("{}/_history", resource_url(base_url, t, id));
        let links = page_links(&self_url, &[], paging.count, paging.offset, total);
        Ok(bundle(BundleKind::History, Some(total), &links, &entries)?)
    }

    pub(super) fn parse_query(
        &self,
        request: &SearchRequest<'_>,
    ) -> Result<SearchQuery, PipelineError> {
        Ok(parse_search(
            request.resource_type,
            request.params,
            request.strict,
            self.page_sizes.default,
            self.page_sizes.max,
        )?)
    }
}

fn paging_only(params: &[(String, String)]) -> Vec<(String, String)> {
    params
        .iter()
        .filter(|(k, _)| k == "_count" || k == "_offset")
        .cloned()
        .collect()
}

fn history_entry(base_url: &str, v: &StoredResource) -> BundleEntry {
    let url = resource_url(base_url, v.resource_type, &v.id);
    let request_url = match v.method.http_method() {
        "POST" => v.resource_type.to_string(),
        _ => format!("{}/{}", v.resource_type, v.id),
    };
    let status = match v.method.http_method() {
        "POST" => "201 Created",
        "DELETE" => "204 No Content",
        _ => "200 OK",
    };
    let entry = match &v.content {
        Some(content) => BundleEntry::with_resource(Some(url), content),
        None => BundleEntry {
            full_url: Some(url),
            ..BundleEntry::default()
        },
    };
    entry
        .request(v.method.http_method(), request_url)
        .response(crate::report::EntryResponse {
            status: status.to_owned(),
            etag: Some(v.version.etag()),
            last_modified: Some(v.last_updated.to_rfc3339()),
            ..Default::default()
        })
}

pub(super) fn searchset(
    request: &SearchRequest<'_>,
    query: &SearchQuery,
    found: &[StoredResource],
    total: u64,
) -> Result<String, crate::report::ReportError> {
    let entries: Vec<BundleEntry> = found
        .iter()
        .filter_map(|s| {
            let url = resource_url(request.base_url, s.resource_type, &s.id);
            s.content
                .as_deref()
                .map(|c| BundleEntry::with_resource(Some(url), c).search_match())
        })
        .collect();
    let self_url = format!(
        "{}/{}",
        request.base_url.trim_end_matches('/'),
        request.resource_type
    );
    let links = page_links(&self_url, &query.applied, query.count, query.offset, total);
    bundle(BundleKind::Searchset, Some(total), &links, &entries)
}

/// `self`, and `next`/`previous` where there are more pages, as absolute URLs.
fn page_links(
    url: &str,
    applied: &[(String, String)],
    count: u32,
    offset: u32,
    total: u64,
) -> Vec<BundleLink> {
    let link = |offset: u32| {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in applied {
            if k != "_count" {
                query.append_pair(k, v);
            }
        }
        query.append_pair("_count", &count.to_string());
        if offset > 0 {
            query.append_pair("_offset", &offset.to_string());
        }
        format!("{url}?{}", query.finish())
    };
    let mut links = vec![BundleLink {
        relation: "self",
        url: link(offset),
    }];
    if count > 0 && u64::from(offset) + u64::from(count) < total {
        links.push(BundleLink {
            relation: "next",
            url: link(offset.saturating_add(count)),
        });
    }
    if offset > 0 {
        links.push(BundleLink {
            relation: "previous",
            url: link(offset.saturating_sub(count)),
        });
    }
    links
}

pub(super) async fn create_in(
    tx: &mut StoreTransaction,
    page_sizes: PageSizes,
    t: ResourceType,
    resource: Map<String, Value>,
    if_none_exist: Option<&str>,
) -> Result<Written, PipelineError> {
    if let Some(condition) = if_none_exist {
        tx.lock_find_or_create(t).await?;
        let params: Vec<(String, String)> =
            url::form_urlencoded::parse(condition.trim_start_matches('?').as_bytes())
                .into_owned()
                .collect();
        let mut query = parse_search(t, &params, true, 2, page_sizes.max.max(2))?;
        query.count = 2;
        query.offset = 0;
        let (found, total) = tx.search(t, &query).await?;
        match (total, found.into_iter().next()) {
            (0, _) => {}
            (1, Some(existing)) => {
                return Ok(Written {
                    stored: existing,
                    created: false,
                });
            }
            (matches, _) => {
                return Err(PipelineError::AmbiguousCondition {
                    resource_type: t,
                    matches,
                });
            }
        }
    }
    let id = ResourceId::generate();
    let stored = tx.write(t, &id, resource, None).await?;
    Ok(Written {
        stored,
        created: true,
    })
}

pub(super) async fn update_in(
    tx: &mut StoreTransaction,
    t: ResourceType,
    id: &ResourceId,
    resource: Map<String, Value>,
    if_match: Option<VersionId>,
) -> Result<Written, PipelineError> {
    match resource.get("id").and_then(Value::as_str) {
        None => return Err(PipelineError::MissingId),
        Some(body_id) if body_id != id.as_ref() => return Err(PipelineError::IdMismatch),
        Some(_) => {}
    }
    if let Some(expected) = if_match
        && tx.current_version(t, id).await?.is_none()
    {
        return Err(PipelineError::IfMatchOnCreate { expected });
    }
    super::sign_off::refuse_changing_signed(tx, t, id).await?;
    let stored = tx.write(t, id, resource, if_match).await?;
    let created = stored.version == VersionId::FIRST;
    Ok(Written { stored, created })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paging_links_carry_the_applied_parameters_and_offsets() {
        let applied = vec![("code".to_owned(), "http://loinc.org|718-7".to_owned())];
        let links = page_links("http://h/fhir/Observation", &applied, 10, 10, 35);
        let rel: Vec<_> = links.iter().map(|l| l.relation).collect();
        assert_eq!(rel, ["self", "next", "previous"]);
        assert_eq!(
            links[1].url,
            "http://h/fhir/Observation?code=http%3A%2F%2Floinc.org%7C718-7&_count=10&_offset=20"
        );
        assert_eq!(
            links[2].url,
            "http://h/fhir/Observation?code=http%3A%2F%2Floinc.org%7C718-7&_count=10"
        );
        let last = page_links("http://h/fhir/Observation", &[], 10, 30, 35);
        assert_eq!(last.len(), 2);
    }
}
