//! The ValueSets and ConceptMaps the service evaluates on its own, without a terminology
//! server: those in `fhir-profiles/` (built into the binary, so that the service needs no files
//! beside it). A ValueSet is a list of concepts per code system, or for ICD-10 and ATC a whole
//! branch by `is-a` (their hierarchies are their codes' prefixes: `C50.912` is a `C50`,
//! `L02BG03` an `L02`). Membership is by system and code; a coding without a system matches a
//! concept of any included system. A ConceptMap translates the codes charts use into the ones a
//! model's input spec names (`equivalent`, `equal`, `wider` or `subsumes` targets only).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use serde_json::Value;

use super::json::codings;

/// Code systems whose `is-a` the service evaluates by prefix.
const PREFIX_HIERARCHIES: [&str; 3] = [
    "http://hl7.org/fhir/sid/icd-10-cm",
    "http://hl7.org/fhir/sid/icd-10",
    "http://www.whocc.no/atc",
];

/// The ValueSets of `fhir-profiles/` that models refer to.
const BUNDLED: [&str; 9] = [
    include_str!("../../fhir-profiles/ValueSet-primary-breast-cancer.json"),
    include_str!("../../fhir-profiles/ValueSet-secondary-malignant-neoplasm.json"),
    include_str!("../../fhir-profiles/ValueSet-breast-cancer-surgery.json"),
    include_str!("../../fhir-profiles/ValueSet-cancer-progression.json"),
    include_str!("../../fhir-profiles/ValueSet-estrogen-receptor-results.json"),
    include_str!("../../fhir-profiles/ValueSet-progesterone-receptor-results.json"),
    include_str!("../../fhir-profiles/ValueSet-endocrine-therapy.json"),
    include_str!("../../fhir-profiles/ValueSet-histologic-grade-findings.json"),
    include_str!("../../fhir-profiles/ValueSet-regional-nodes-category.json"),
];

/// The ConceptMaps of `fhir-profiles/` that models refer to.
const BUNDLED_MAPS: [&str; 2] = [
    include_str!("../../fhir-profiles/ConceptMap-histologic-grade.json"),
    include_str!("../../fhir-profiles/ConceptMap-regional-nodes-category.json"),
];

/// Bundled conformance resources by url. One that cannot be read is left out (a unit test
/// checks that every one loads), so that a model naming it is refused when its spec is read.
fn by_url<T>(
    texts: &[&str],
    read: impl Fn(&Value) -> Result<T, ValueSetError>,
    url: impl Fn(&T) -> &str,
) -> BTreeMap<String, T> {
    texts
        .iter()
        .filter_map(|text| read(&serde_json::from_str(text).ok()?).ok())
        .map(|item| (url(&item).to_owned(), item))
        .collect()
}

static VALUE_SETS: LazyLock<BTreeMap<String, ValueSet>> =
    LazyLock::new(|| by_url(&BUNDLED, ValueSet::from_json, |v| &v.url));

static CONCEPT_MAPS: LazyLock<BTreeMap<String, ConceptMap>> =
    LazyLock::new(|| by_url(&BUNDLED_MAPS, ConceptMap::from_json, |m| &m.url));

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueSet {
    pub url: String,
    /// Its title, for messages ("primary breast cancer").
    pub title: String,
    /// Enumerated codes per system.
    concepts: BTreeMap<String, BTreeSet<String>>,
    /// (system, code): every code of the system under this one.
    descendants_of: Vec<(String, String)>,
    /// The enumerated concepts as listed: (system, code, display).
    listed: Vec<(String, String, Option<String>)>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ValueSet {url}: {reason}")]
pub struct ValueSetError {
    pub url: String,
    pub reason: String,
}

impl ValueSet {
    /// Reads `compose.include`: concept lists, and `is-a` filters on prefix hierarchies.
    /// Anything else (other filters, `valueSet` imports, `exclude`) would need a terminology
    /// server and is refused.
    pub fn from_json(value: &Value) -> Result<Self, ValueSetError> {
        let url = value["url"].as_str().unwrap_or_default().to_owned();
        let fail = |reason: String| ValueSetError {
            url: url.clone(),
            reason,
        };
        if value.get("resourceType").and_then(Value::as_str) != Some("ValueSet") || url.is_empty() {
            return Err(fail("not a ValueSet with a url".into()));
        }
        if value.pointer("/compose/exclude").is_some() {
            return Err(fail("`compose.exclude` is not evaluated here".into()));
        }
        let mut set = ValueSet {
            title: value["title"].as_str().unwrap_or(&url).to_owned(),
            url: url.clone(),
            concepts: BTreeMap::new(),
            descendants_of: Vec::new(),
            listed: Vec::new(),
        };
        let includes = value
            .pointer("/compose/include")
            .and_then(Value::as_array)
            .ok_or_else(|| fail("no `compose.include`".into()))?;
        for include in includes {
            let system = include["system"]
                .as_str()
                .ok_or_else(|| fail("an include without a system".into()))?;
            if include.get("valueSet").is_some() {
                return Err(fail("included ValueSets are not evaluated here".into()));
            }
            for concept in include
                .get("concept")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let code = concept["code"]
                    .as_str()
                    .ok_or_else(|| fail(format!("a {system} concept without a code")))?;
                set.concepts
                    .entry(system.to_owned())
                    .or_default()
                    .insert(code.to_owned());
                set.listed.push((
                    system.to_owned(),
                    code.to_owned(),
                    concept["display"].as_str().map(str::to_owned),
                ));
            }
            for filter in include
                .get("filter")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let supported = filter["property"] == "concept"
                    && filter["op"] == "is-a"
                    && PREFIX_HIERARCHIES.contains(&system);
                match filter["value"].as_str() {
                    Some(code) if supported => {
                        set.descendants_of
                            .push((system.to_owned(), code.to_owned()));
                    }
                    _ => {
                        return Err(fail(format!(
                            "only `concept is-a` on ICD-10 is evaluated here, not this {system} filter"
                        )));
                    }
                }
            }
        }
        Ok(set)
    }

    /// Whether the code (of `system`, or of any system when none is given) is in the set.
    pub fn contains(&self, system: Option<&str>, code: &str) -> bool {
        let code = code.trim();
        let enumerated = match system {
            Some(system) => self.concepts.get(system).is_some_and(|c| c.contains(code)),
            None => self.concepts.values().any(|c| c.contains(code)),
        };
        enumerated
            || self.descendants_of.iter().any(|(s, parent)| {
                system.is_none_or(|own| own == s) && code.starts_with(parent.as_str())
            })
    }

    /// Whether every code of the set is listed (no hierarchy filter).
    pub fn is_enumerated(&self) -> bool {
        self.descendants_of.is_empty()
    }

    /// The concepts the set lists, in its order: (system, code, display). Codes taken in
    /// through an `is-a` filter are not among them.
    pub fn listed(&self) -> &[(String, String, Option<String>)] {
        &self.listed
    }

    /// Whether any coding of the CodeableConcept is in the set.
    pub fn contains_concept(&self, concept: &Value) -> bool {
        codings(concept).any(|coding| {
            coding["code"]
                .as_str()
                .is_some_and(|code| self.contains(coding["system"].as_str(), code))
        })
    }
}

/// A bundled ValueSet by its canonical url.
pub fn value_set(url: &str) -> Option<&'static ValueSet> {
    VALUE_SETS.get(url)
}

/// A bundled ConceptMap by its canonical url.
pub fn concept_map(url: &str) -> Option<&'static ConceptMap> {
    CONCEPT_MAPS.get(url)
}

/// Source (system, code) → target code, for the mappings that keep the meaning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConceptMap {
    pub url: String,
    pub title: String,
    /// (source system, source code) → target code.
    elements: BTreeMap<(String, String), String>,
}

impl ConceptMap {
    /// Reads `group[].element[].target[]`; targets that narrow or lose the meaning
    /// (`narrower`, `inexact`, `unmatched`, `disjoint`) are not translations and are skipped.
    pub fn from_json(value: &Value) -> Result<Self, ValueSetError> {
        let url = value["url"].as_str().unwrap_or_default().to_owned();
        let fail = |reason: &str| ValueSetError {
            url: url.clone(),
            reason: reason.to_owned(),
        };
        if value.get("resourceType").and_then(Value::as_str) != Some("ConceptMap") || url.is_empty()
        {
            return Err(fail("not a ConceptMap with a url"));
        }
        let mut elements = BTreeMap::new();
        for group in value
            .get("group")
            .and_then(Value::as_array)
            .ok_or_else(|| fail("no `group`"))?
        {
            let source = group["source"]
                .as_str()
                .ok_or_else(|| fail("a group without a source system"))?;
            for element in group
                .get("element")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let Some(code) = element["code"].as_str() else {
                    return Err(fail("an element without a code"));
                };
                let target = element
                    .get("target")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .find(|t| {
                        matches!(
                            t["equivalence"].as_str(),
                            Some("equivalent" | "equal" | "wider" | "subsumes")
                        )
                    })
                    .and_then(|t| t["code"].as_str());
                if let Some(target) = target {
                    elements.insert((source.to_owned(), code.to_owned()), target.to_owned());
                }
            }
        }
        Ok(ConceptMap {
            title: value["title"].as_str().unwrap_or(&url).to_owned(),
            url,
            elements,
        })
    }

    /// The target of a code (of `system`, or of any source system when none is given).
    pub fn translate(&self, system: Option<&str>, code: &str) -> Option<&str> {
        let code = code.trim();
        match system {
            Some(system) => self
                .elements
                .get(&(system.to_owned(), code.to_owned()))
                .map(String::as_str),
            None => self
                .elements
                .iter()
                .find(|((_, c), _)| c == code)
                .map(|(_, target)| target.as_str()),
        }
    }

    /// The target of the first coding of a CodeableConcept that has one.
    pub fn translate_concept(&self, concept: &Value) -> Option<&str> {
        codings(concept)
            .find_map(|coding| self.translate(coding["system"].as_str(), coding["code"].as_str()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SNOMED: &str = "http://snomed.info/sct";
    const ICD10CM: &str = "http://hl7.org/fhir/sid/icd-10-cm";

    #[test]
    fn every_bundled_value_set_and_concept_map_loads() {
        assert_eq!(VALUE_SETS.len(), BUNDLED.len());
        assert_eq!(CONCEPT_MAPS.len(), BUNDLED_MAPS.len());
    }

    #[test]
    fn atc_branches_and_concept_maps_translate() {
        let endocrine =
            value_set("https://prognostics.example.org/fhir/ValueSet/endocrine-therapy").unwrap();
        assert!(endocrine.contains(Some("http://www.whocc.no/atc"), "L02BG03"));
        assert!(endocrine.contains(None, "84857"), "anastrozole by RxNorm");
        assert!(!endocrine.contains(Some("http://www.whocc.no/atc"), "L01XC03"));
        let grade = concept_map("https://prognostics.example.org/fhir/ConceptMap/histologic-grade")
            .unwrap();
        assert_eq!(grade.translate(Some(SNOMED), "1286893008"), Some("1663004"));
        assert_eq!(grade.translate(None, "LA27824-4"), Some("1663004"));
        assert_eq!(grade.translate(Some(SNOMED), "1663004"), None);
    }

    #[test]
    fn membership_by_enumerated_code_and_by_icd_chapter() {
        let set = value_set(PRIMARY_BREAST_CANCER).unwrap();
        assert!(set.contains(Some(SNOMED), "353431000119107"));
        assert!(set.contains(None, "353431000119107"));
        // Malignant neoplastic disease, not said to be of the breast.
        assert!(!set.contains(Some(SNOMED), "363346000"));
        assert!(set.contains(Some(ICD10CM), "C50.912"));
        assert!(set.contains(Some(ICD10CM), "C50"));
        assert!(set.contains(Some(ICD10CM), "C509"));
        // C50 is not C500x's parent in another system, nor the prefix of C5A.
        assert!(!set.contains(Some(SNOMED), "C50.912"));
        assert!(!set.contains(Some(ICD10CM), "C5A"));
        assert!(!set.contains(Some(ICD10CM), "D05.1"));
        let concept = json!({"coding": [
            {"system": SNOMED, "code": "363346000"},
            {"system": ICD10CM, "code": "C50.411"}
        ]});
        assert!(set.contains_concept(&concept));
    }

    const PRIMARY_BREAST_CANCER: &str =
        "https://prognostics.example.org/fhir/ValueSet/primary-breast-cancer";

    #[test]
    fn what_needs_a_terminology_server_is_refused() {
        let with = |include: Value| {
            ValueSet::from_json(&json!({
                "resourceType": "ValueSet", "url": "urn:x",
                "compose": {"include": [include]}
            }))
        };
        let e = with(json!({"system": SNOMED,
            "filter": [{"property": "concept", "op": "is-a", "value": "254837009"}]}))
        .unwrap_err();
        assert!(e.reason.contains("is-a"), "{e}");
        assert!(with(json!({"system": SNOMED, "valueSet": ["urn:y"]})).is_err());
        assert!(with(json!({"system": SNOMED, "concept": [{"code": "1"}]})).is_ok());
    }
}
