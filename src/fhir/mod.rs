//! FHIR R4 JSON as this server understands it, with no I/O: validating incoming resources
//! (through fhir-sdk's models for the common types, against R4's element definitions for the
//! rest: `structure`), the search parameters each resource type supports and the index entries
//! they produce, the parsing of search queries and FHIR dates, and the ValueSets and ConceptMaps
//! the service evaluates itself (`terminology`). Imports `domain` and `error`; owns fhir-sdk's
//! models for reading (building output is `report`'s job).

pub mod codes;
pub mod compartment;
pub mod date;
pub mod json;
mod query;
mod reference;
mod search_params;
mod structure;
pub mod terminology;
mod validate;

pub use date::{DateRange, parse_date_range};
pub use query::{
    DateComparator, DateCriterion, Filter, SearchQuery, SortKey, SortOrder, TokenCriterion,
    parse_search,
};
pub use reference::{LocalReference, parse_local_reference};
pub use search_params::{
    IndexEntry, SearchParamDef, SearchParamKind, index_entries, search_params_for,
};
pub use validate::{parse_json_object, validate_resource};

use crate::domain::ResourceType;
use crate::error::ErrorKind;

/// Why incoming FHIR content or a search query was refused. Messages name element paths and
/// parameter names, never element values.
#[derive(Debug, thiserror::Error)]
pub enum FhirError {
    #[error("body is not valid JSON (line {line}, column {column})")]
    MalformedJson { line: usize, column: usize },
    #[error("body must be a JSON object")]
    NotAnObject,
    #[error("resource has no resourceType")]
    MissingResourceType,
    #[error("resource type {found} is not one this server stores")]
    UnsupportedResourceType { found: String },
    #[error("resourceType {found} does not match the {expected} endpoint")]
    ResourceTypeMismatch {
        expected: ResourceType,
        found: String,
    },
    #[error("resource id is not a valid FHIR id")]
    InvalidId,
    #[error("{path}: {reason}")]
    InvalidElement { path: String, reason: String },
    #[error("{path}: unknown element, or an empty value (FHIR JSON allows neither)")]
    UnknownElement { path: String },
    #[error("search parameter {name} is not supported for {resource}")]
    UnknownSearchParameter {
        resource: ResourceType,
        name: String,
    },
    #[error("search parameter {name}: {reason}")]
    InvalidSearchValue { name: String, reason: &'static str },
    #[error("modifier :{modifier} is not supported on search parameter {name}")]
    UnsupportedModifier { name: String, modifier: String },
}

impl FhirError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            FhirError::MalformedJson { .. }
            | FhirError::NotAnObject
            | FhirError::MissingResourceType
            | FhirError::UnsupportedResourceType { .. }
            | FhirError::ResourceTypeMismatch { .. }
            | FhirError::InvalidId
            | FhirError::InvalidElement { .. }
            | FhirError::UnknownElement { .. }
            | FhirError::UnknownSearchParameter { .. }
            | FhirError::InvalidSearchValue { .. }
            | FhirError::UnsupportedModifier { .. } => ErrorKind::Invalid,
        }
    }

    /// The FHIRPath-like location of the offending element, for `OperationOutcome.expression`.
    pub fn expression(&self) -> Option<&str> {
        match self {
            FhirError::InvalidElement { path, .. } | FhirError::UnknownElement { path } => {
                Some(path)
            }
            _ => None,
        }
    }
}
