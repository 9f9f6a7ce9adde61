//! Search queries: the URL's parameters parsed against a resource type's search parameters
//! into typed criteria, ready for the store to turn into SQL. Repeated parameters are ANDed;
//! comma-separated values within one are ORed (R4 §3.1.1.5).

use super::FhirError;
use super::date::{DateRange, parse_date_range};
use super::reference::parse_local_reference;
use super::search_params::{SearchParamDef, SearchParamKind, search_params_for};
use crate::domain::{ResourceId, ResourceType};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DateComparator {
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    Sa,
    Eb,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DateCriterion {
    pub comparator: DateComparator,
    pub range: DateRange,
}

/// `system|code`, `code`, `system|` or `|code`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TokenCriterion {
    /// `None`: any system; `Some("")`: no system.
    pub system: Option<String>,
    /// `None`: any code in the system.
    pub code: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Filter {
    /// `_id`: any of these ids.
    Id(Vec<ResourceId>),
    /// `_lastUpdated`: any of these criteria.
    LastUpdated(Vec<DateCriterion>),
    /// A token parameter: any of these values; `negate` for the `:not` modifier.
    Token {
        param: &'static str,
        values: Vec<TokenCriterion>,
        negate: bool,
    },
    /// A reference parameter: any of these targets (`type` absent when only an id was given).
    Reference {
        param: &'static str,
        targets: Vec<(Option<String>, ResourceId)>,
    },
    /// A date parameter: any of these criteria.
    Date {
        param: &'static str,
        values: Vec<DateCriterion>,
    },
    /// `:missing=true|false`.
    Missing { param: &'static str, missing: bool },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SortKey {
    Id,
    LastUpdated,
    /// A date search parameter, sorted by the start of its earliest value.
    Date(&'static str),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SortOrder {
    Ascending,
    Descending,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SearchQuery {
    pub filters: Vec<Filter>,
    pub sort: Vec<(SortKey, SortOrder)>,
    pub count: u32,
    pub offset: u32,
    /// The parameters that were applied, for the Bundle's `self` link.
    pub applied: Vec<(String, String)>,
    /// Parameter names that were not understood and were ignored.
    pub ignored: Vec<String>,
}

/// Parses `params` for a search on `resource_type`. Unknown parameters are ignored (and listed
/// in `ignored`) unless `strict`, when they are an error, as `Prefer: handling=strict` asks.
pub fn parse_search(
    resource_type: ResourceType,
    params: &[(String, String)],
    strict: bool,
    default_count: u32,
    max_count: u32,
) -> Result<SearchQuery, FhirError> {
    let mut query = SearchQuery {
        filters: Vec::new(),
        sort: Vec::new(),
        count: default_count,
        offset: 0,
        applied: Vec::new(),
        ignored: Vec::new(),
    };
    let defs = search_params_for(resource_type);
    let mut values = 0usize;
    for (raw_name, value) in params {
        values += value_count(value);
        if values > MAX_SEARCH_VALUES {
            return Err(FhirError::InvalidSearchValue {
                name: raw_name.chars().take(64).collect(),
                reason: "a search names at most 500 values in all (each comma-separated value \
                         and each repeated parameter counts one)",
            });
        }
        let (name, modifier) = match raw_name.split_once(':') {
            Some((n, m)) => (n, Some(m)),
            None => (raw_name.as_str(), None),
        };
        let filter = match name {
            "_count" => {
                query.count = parse_number(name, value)?.min(max_count);
                None
            }
            "_offset" => {
                query.offset = parse_number(name, value)?;
                None
            }
            "_sort" => {
                query.sort = parse_sort(resource_type, value, strict)?;
                None
            }
            "_format" | "_pretty" | "_total" => continue,
            // Only the number of matches: no page is read.
            "_summary" if value == "count" => {
                query.count = 0;
                None
            }
            "_id" => Some(match modifier {
                Some("missing") => return Err(unsupported(name, "missing")),
                Some(m) => return Err(unsupported(name, m)),
                None => Filter::Id(
                    split_values(value)
                        .map(|v| {
                            ResourceId::parse(&v).map_err(|_| FhirError::InvalidSearchValue {
                                name: name.to_owned(),
                                reason: "not a valid FHIR id",
                            })
                        })
                        .collect::<Result<_, _>>()?,
                ),
            }),
            "_lastUpdated" => {
                if let Some(m) = modifier {
                    return Err(unsupported(name, m));
                }
                Some(Filter::LastUpdated(parse_dates(name, value)?))
            }
            _ => match defs.iter().find(|d| d.name == name) {
                Some(def) => Some(parse_filter(def, modifier, value)?),
                None => {
                    if strict {
                        return Err(FhirError::UnknownSearchParameter {
                            resource: resource_type,
                            name: name.chars().take(64).collect(),
                        });
                    }
                    query.ignored.push(name.chars().take(64).collect());
                    continue;
                }
            },
        };
        if let Some(filter) = filter {
            if query.filters.len() == MAX_SEARCH_FILTERS {
                return Err(FhirError::InvalidSearchValue {
                    name: raw_name.chars().take(64).collect(),
                    reason: "a search takes at most 30 criteria (parameters other than \
                             _count, _offset and _sort)",
                });
            }
            query.filters.push(filter);
        }
        // Paging is expressed by the links themselves, not carried in `applied`.
        if name != "_offset" {
            query.applied.push((raw_name.clone(), value.clone()));
        }
    }
    Ok(query)
}

/// The most values one search may name, over all its parameters: each becomes a condition of
/// one SQL statement, and databases bound how many one expression holds (SQLite: a depth of
/// 1,000), so that a longer list is a clear 400, never a database error.
pub const MAX_SEARCH_VALUES: usize = 500;

/// The most criteria one search may AND: each is a subquery of the statement, and planning
/// grows steeply with their number (on PostgreSQL 500 took minutes).
pub const MAX_SEARCH_FILTERS: usize = 30;

/// How many values a parameter's value names: its unescaped commas, plus one.
fn value_count(value: &str) -> usize {
    let mut count = 1;
    let mut escaped = false;
    for c in value.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            ',' => count += 1,
            _ => {}
        }
    }
    count
}

fn unsupported(name: &str, modifier: &str) -> FhirError {
    FhirError::UnsupportedModifier {
        name: name.to_owned(),
        modifier: modifier.chars().take(32).collect(),
    }
}

fn parse_number(name: &str, value: &str) -> Result<u32, FhirError> {
    value
        .trim()
        .parse::<u32>()
        .map_err(|_| FhirError::InvalidSearchValue {
            name: name.to_owned(),
            reason: "must be a non-negative integer",
        })
}

/// Splits on unescaped commas and unescapes `\,` `\|` `\$` `\\` (R4 §3.1.1.4.13).
fn split_values(value: &str) -> impl Iterator<Item = String> + '_ {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    if !matches!(next, ',' | '|' | '$' | '\\') {
                        current.push('\\');
                    }
                    current.push(next);
                }
            }
            ',' => out.push(std::mem::take(&mut current)),
            other => current.push(other),
        }
    }
    out.push(current);
    out.into_iter()
}

fn parse_filter(
    def: &'static SearchParamDef,
    modifier: Option<&str>,
    value: &str,
) -> Result<Filter, FhirError> {
    if modifier == Some("missing") {
        let missing = match value {
            "true" => true,
            "false" => false,
            _ => {
                return Err(FhirError::InvalidSearchValue {
                    name: def.name.to_owned(),
                    reason: ":missing takes true or false",
                });
            }
        };
        return Ok(Filter::Missing {
            param: def.name,
            missing,
        });
    }
    match def.kind {
        SearchParamKind::Token => {
            let negate = match modifier {
                None => false,
                Some("not") => true,
                Some(m) => return Err(unsupported(def.name, m)),
            };
            let values = split_values(value).map(|v| parse_token(&v)).collect();
            Ok(Filter::Token {
                param: def.name,
                values,
                negate,
            })
        }
        SearchParamKind::Reference => {
            let modifier_type = match modifier {
                None => None,
                Some(m) if m.parse::<ResourceType>().is_ok() => Some(m.to_owned()),
                Some(m) => return Err(unsupported(def.name, m)),
            };
            let targets = split_values(value)
                .map(|v| parse_reference_value(def, modifier_type.as_deref(), &v))
                .collect::<Result<_, _>>()?;
            Ok(Filter::Reference {
                param: def.name,
                targets,
            })
        }
        SearchParamKind::Date => {
            if let Some(m) = modifier {
                return Err(unsupported(def.name, m));
            }
            Ok(Filter::Date {
                param: def.name,
                values: parse_dates(def.name, value)?,
            })
        }
    }
}

fn parse_token(value: &str) -> TokenCriterion {
    match value.split_once('|') {
        None => TokenCriterion {
            system: None,
            code: Some(value.to_owned()),
        },
        Some((system, code)) => TokenCriterion {
            system: Some(system.to_owned()),
            code: (!code.is_empty()).then(|| code.to_owned()),
        },
    }
}

fn parse_reference_value(
    def: &SearchParamDef,
    modifier_type: Option<&str>,
    value: &str,
) -> Result<(Option<String>, ResourceId), FhirError> {
    let invalid = || FhirError::InvalidSearchValue {
        name: def.name.to_owned(),
        reason: "expected an id, Type/id or an absolute reference",
    };
    let (resource_type, id) = match parse_local_reference(value) {
        Some(r) => (Some(r.resource_type), r.id),
        None => (None, ResourceId::parse(value).map_err(|_| invalid())?),
    };
    let resource_type = resource_type
        .or_else(|| modifier_type.map(str::to_owned))
        .or_else(|| def.target.map(|t| t.as_str().to_owned()));
    Ok((resource_type, id))
}

fn parse_dates(name: &str, value: &str) -> Result<Vec<DateCriterion>, FhirError> {
    split_values(value)
        .map(|v| {
            let (comparator, rest) = split_prefix(&v);
            let range = parse_date_range(rest).ok_or_else(|| FhirError::InvalidSearchValue {
                name: name.to_owned(),
                reason: "not a FHIR date, dateTime or instant",
            })?;
            Ok(DateCriterion { comparator, range })
        })
        .collect()
}

fn split_prefix(v: &str) -> (DateComparator, &str) {
    let prefixes = [
        ("eq", DateComparator::Eq),
        ("ne", DateComparator::Ne),
        ("gt", DateComparator::Gt),
        ("lt", DateComparator::Lt),
        ("ge", DateComparator::Ge),
        ("le", DateComparator::Le),
        ("sa", DateComparator::Sa),
        ("eb", DateComparator::Eb),
    ];
    for (p, c) in prefixes {
        if let Some(rest) = v.strip_prefix(p) {
            return (c, rest);
        }
    }
    (DateComparator::Eq, v)
}

fn parse_sort(
    resource_type: ResourceType,
    value: &str,
    strict: bool,
) -> Result<Vec<(SortKey, SortOrder)>, FhirError> {
    let mut keys = Vec::new();
    for field in value.split(',').filter(|f| !f.is_empty()) {
        let (order, name) = match field.strip_prefix('-') {
            Some(n) => (SortOrder::Descending, n),
            None => (SortOrder::Ascending, field),
        };
        let key = match name {
            "_id" => Some(SortKey::Id),
            "_lastUpdated" => Some(SortKey::LastUpdated),
            _ => search_params_for(resource_type)
                .iter()
                .find(|d| d.name == name && d.kind == SearchParamKind::Date)
                .map(|d| SortKey::Date(d.name)),
        };
        match key {
            Some(k) => keys.push((k, order)),
            None if strict => {
                return Err(FhirError::InvalidSearchValue {
                    name: "_sort".to_owned(),
                    reason: "sorting is supported on _id, _lastUpdated and date parameters",
                });
            }
            None => {}
        }
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(t: ResourceType, q: &[(&str, &str)], strict: bool) -> Result<SearchQuery, FhirError> {
        let params: Vec<(String, String)> = q
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        parse_search(t, &params, strict, 20, 100)
    }

    #[test]
    fn tokens_take_system_and_code_forms() {
        let q = parse(
            ResourceType::Observation,
            &[("code", "http://loinc.org|718-7,8480-6")],
            false,
        )
        .unwrap();
        let Filter::Token { values, .. } = &q.filters[0] else {
            panic!()
        };
        assert_eq!(values[0].system.as_deref(), Some("http://loinc.org"));
        assert_eq!(values[0].code.as_deref(), Some("718-7"));
        assert_eq!(values[1].system, None);
    }

    #[test]
    fn references_accept_ids_and_typed_ids() {
        let q = parse(
            ResourceType::Observation,
            &[("patient", "p1"), ("subject", "Patient/p2")],
            false,
        )
        .unwrap();
        assert_eq!(
            q.filters[0],
            Filter::Reference {
                param: "patient",
                targets: vec![(Some("Patient".into()), ResourceId::parse("p1").unwrap())]
            }
        );
        assert_eq!(
            q.filters[1],
            Filter::Reference {
                param: "subject",
                targets: vec![(Some("Patient".into()), ResourceId::parse("p2").unwrap())]
            }
        );
    }

    #[test]
    fn unknown_parameters_are_ignored_unless_strict() {
        let q = parse(
            ResourceType::Patient,
            &[("name", "x"), ("_count", "5")],
            false,
        )
        .unwrap();
        assert_eq!(q.ignored, ["name"]);
        assert_eq!(q.count, 5);
        assert!(matches!(
            parse(ResourceType::Patient, &[("name", "x")], true),
            Err(FhirError::UnknownSearchParameter { .. })
        ));
    }

    #[test]
    fn count_is_capped_and_must_be_a_number() {
        assert_eq!(
            parse(ResourceType::Patient, &[("_count", "100000")], false)
                .unwrap()
                .count,
            100
        );
        assert!(parse(ResourceType::Patient, &[("_count", "-1")], false).is_err());
    }

    #[test]
    fn dates_take_prefixes() {
        let q = parse(
            ResourceType::Observation,
            &[("date", "ge2024-01-01"), ("date", "lt2025")],
            false,
        )
        .unwrap();
        let Filter::Date { values, .. } = &q.filters[1] else {
            panic!()
        };
        assert_eq!(values[0].comparator, DateComparator::Lt);
        assert!(
            parse(
                ResourceType::Observation,
                &[("date", "ge-yesterday")],
                false
            )
            .is_err()
        );
    }

    #[test]
    fn unsupported_modifiers_are_refused() {
        assert!(matches!(
            parse(ResourceType::Observation, &[("code:text", "x")], false),
            Err(FhirError::UnsupportedModifier { .. })
        ));
    }

    #[test]
    fn escaped_commas_stay_inside_one_value() {
        let q = parse(
            ResourceType::Patient,
            &[("identifier", "urn:x|a\\,b")],
            false,
        )
        .unwrap();
        let Filter::Token { values, .. } = &q.filters[0] else {
            panic!()
        };
        assert_eq!(values.len(), 1);
        assert_eq!(values[0].code.as_deref(), Some("a,b"));
    }

    #[test]
    fn a_search_names_a_bounded_number_of_values() {
        assert_eq!(value_count("a"), 1);
        assert_eq!(value_count("a,b,c"), 3);
        assert_eq!(value_count(r"a\,b,c"), 2);
        let many = |n: usize| {
            (0..n)
                .map(|i| format!("c{i}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        assert!(parse(ResourceType::Observation, &[("code", &many(500))], false).is_ok());
        let err = parse(ResourceType::Observation, &[("code", &many(3000))], false).unwrap_err();
        assert!(err.to_string().contains("at most 500 values"), "{err}");
        // Repeated parameters count too, and a search ANDs a bounded number of criteria.
        let repeated: Vec<(&str, &str)> = (0..501).map(|_| ("code", "x")).collect();
        assert!(parse(ResourceType::Observation, &repeated, false).is_err());
        let criteria: Vec<(&str, &str)> = (0..30).map(|_| ("code", "x")).collect();
        assert!(parse(ResourceType::Observation, &criteria, false).is_ok());
        let criteria: Vec<(&str, &str)> = (0..31).map(|_| ("code", "x")).collect();
        let err = parse(ResourceType::Observation, &criteria, false).unwrap_err();
        assert!(err.to_string().contains("at most 30 criteria"), "{err}");
    }

    #[test]
    fn sort_accepts_id_last_updated_and_dates() {
        let q = parse(ResourceType::Observation, &[("_sort", "-date,_id")], false).unwrap();
        assert_eq!(
            q.sort,
            vec![
                (SortKey::Date("date"), SortOrder::Descending),
                (SortKey::Id, SortOrder::Ascending)
            ]
        );
    }
}
