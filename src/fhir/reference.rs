//! Literal references (`Patient/123`, an absolute URL ending in `Patient/123`, optionally with
//! `/_history/N`) reduced to the type and id they point at.

use crate::domain::{ResourceId, ResourceType};

/// The target of a literal reference, when it names a resource type and a valid id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalReference {
    /// The type as written; it may be a FHIR type this server does not store.
    pub resource_type: String,
    pub id: ResourceId,
}

impl LocalReference {
    pub fn stored_type(&self) -> Option<ResourceType> {
        self.resource_type.parse().ok()
    }
}

pub fn parse_local_reference(reference: &str) -> Option<LocalReference> {
    let reference = reference.split(['?', '#']).next()?;
    let mut parts: Vec<&str> = reference.trim_end_matches('/').split('/').collect();
    if parts.len() >= 4 && parts[parts.len() - 2] == "_history" {
        parts.truncate(parts.len() - 2);
    }
    if parts.len() < 2 {
        return None;
    }
    let id = ResourceId::parse(parts[parts.len() - 1]).ok()?;
    let resource_type = parts[parts.len() - 2];
    let looks_like_type = resource_type
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_uppercase())
        && resource_type.chars().all(|c| c.is_ascii_alphabetic());
    looks_like_type.then(|| LocalReference {
        resource_type: resource_type.to_owned(),
        id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_absolute_and_versioned_references_resolve() {
        for r in [
            "Patient/p1",
            "http://example.org/fhir/Patient/p1",
            "Patient/p1/_history/3",
            "https://x/fhir/Patient/p1/_history/3",
        ] {
            let parsed = parse_local_reference(r).unwrap();
            assert_eq!(parsed.resource_type, "Patient", "{r}");
            assert_eq!(parsed.id.as_ref(), "p1", "{r}");
            assert_eq!(parsed.stored_type(), Some(ResourceType::Patient));
        }
    }

    #[test]
    fn contained_and_opaque_references_do_not_resolve() {
        for r in ["#contained", "urn:uuid:1234", "p1", "patient/p1", ""] {
            assert!(parse_local_reference(r).is_none(), "{r}");
        }
    }
}
