//! Bundles: search results, histories, and the responses to transaction and batch Bundles.

use serde::Serialize;
use serde_json::value::RawValue;

use super::ReportError;
use crate::domain::{Instant, ResourceId, ResourceType};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BundleKind {
    Searchset,
    History,
    TransactionResponse,
    BatchResponse,
    /// Resources returned together by an operation (`$risk-assessment`).
    Collection,
}

impl BundleKind {
    fn as_str(self) -> &'static str {
        match self {
            BundleKind::Searchset => "searchset",
            BundleKind::History => "history",
            BundleKind::TransactionResponse => "transaction-response",
            BundleKind::BatchResponse => "batch-response",
            BundleKind::Collection => "collection",
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct BundleLink {
    pub relation: &'static str,
    pub url: String,
}

/// `Bundle.entry.response`.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EntryResponse {
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<serde_json::Value>,
}

#[derive(Clone, Debug, Serialize)]
pub struct EntryRequest {
    pub method: &'static str,
    pub url: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct EntrySearch {
    pub mode: &'static str,
}

/// One entry; `resource` is stored JSON, embedded without re-parsing.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BundleEntry {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub full_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<Box<RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub search: Option<EntrySearch>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<EntryRequest>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<EntryResponse>,
}

impl BundleEntry {
    /// An entry holding stored resource JSON.
    pub fn with_resource(full_url: Option<String>, content: &str) -> Self {
        Self {
            full_url,
            resource: RawValue::from_string(content.to_owned()).ok(),
            ..Self::default()
        }
    }

    pub fn search_match(mut self) -> Self {
        self.search = Some(EntrySearch { mode: "match" });
        self
    }

    pub fn request(mut self, method: &'static str, url: String) -> Self {
        self.request = Some(EntryRequest { method, url });
        self
    }

    pub fn response(mut self, response: EntryResponse) -> Self {
        self.response = Some(response);
        self
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BundleOut<'a> {
    resource_type: &'static str,
    id: String,
    meta: Meta,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    total: Option<u64>,
    #[serde(skip_serializing_if = "<[BundleLink]>::is_empty")]
    link: &'a [BundleLink],
    #[serde(skip_serializing_if = "<[BundleEntry]>::is_empty")]
    entry: &'a [BundleEntry],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Meta {
    last_updated: String,
}

/// A Bundle as R4 JSON text.
pub fn bundle(
    kind: BundleKind,
    total: Option<u64>,
    links: &[BundleLink],
    entries: &[BundleEntry],
) -> Result<String, ReportError> {
    let out = BundleOut {
        resource_type: "Bundle",
        id: ResourceId::generate().to_string(),
        meta: Meta {
            last_updated: Instant::now().to_rfc3339(),
        },
        kind: kind.as_str(),
        total,
        link: links,
        entry: entries,
    };
    serde_json::to_string(&out).map_err(|source| ReportError::Serialise {
        resource: "Bundle",
        source,
    })
}

/// `{base}/{type}/{id}`, the resource's absolute URL.
pub fn resource_url(base: &str, t: ResourceType, id: &ResourceId) -> String {
    format!("{}/{}/{}", base.trim_end_matches('/'), t, id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_searchset_embeds_stored_json_unchanged() {
        let stored = r#"{"resourceType":"Patient","id":"p1","gender":"female"}"#;
        let entry = BundleEntry::with_resource(Some("http://x/fhir/Patient/p1".into()), stored)
            .search_match();
        let json = bundle(BundleKind::Searchset, Some(1), &[], &[entry]).unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["type"], "searchset");
        assert_eq!(v["total"], 1);
        assert_eq!(v["entry"][0]["resource"]["gender"], "female");
        assert_eq!(v["entry"][0]["search"]["mode"], "match");
        assert!(v.get("link").is_none());
    }
}
