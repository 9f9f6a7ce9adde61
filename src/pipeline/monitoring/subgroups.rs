//! The groups an assessment is judged in besides sex and age band: the site (the imaging
//! study's institution, else the patient's managing organization), the scanner (manufacturer
//! and model of the study the model was given), and each input the model's spec names under
//! `subgroups` (a categorical input by level, a numeric one at the training patients' median),
//! read from what the model was given for that assessment ([`InputSnapshot`]).

use std::collections::BTreeMap;

use super::InputSnapshot;
use crate::fusion::{ModalityKind, Model};

/// The inputs a model is judged in groups of, with each numeric one's training median.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SubgroupColumns {
    /// (column, median of the training rows for a numeric column).
    pub columns: Vec<(String, Option<f64>)>,
}

impl SubgroupColumns {
    pub fn of(model: &Model) -> Self {
        let named = model
            .manifest
            .inputs
            .as_ref()
            .map(|spec| spec.subgroups.clone())
            .unwrap_or_default();
        let columns = named
            .into_iter()
            .map(|column| {
                let median = model
                    .manifest
                    .layout
                    .modalities
                    .iter()
                    .filter(|m| m.kind == ModalityKind::Tabular)
                    .flat_map(|m| &m.features)
                    .filter(|f| f.source.as_ref().is_some_and(|s| s.column() == column))
                    .find_map(|f| f.seen.as_ref()?.bins.as_ref())
                    .and_then(|bins| {
                        // The first cut point at or past half the training rows.
                        let mut below = 0.0;
                        bins.edges
                            .iter()
                            .zip(&bins.shares)
                            .find_map(|(edge, share)| {
                                below += share;
                                (below >= 0.5).then_some(*edge)
                            })
                    });
                (column, median)
            })
            .collect();
        Self { columns }
    }
}

/// (column, group) of one assessment beyond sex and age band; a column whose group is not known
/// is left out (the assessment counts as `unknown` there).
pub fn context_groups(
    given: Option<&InputSnapshot>,
    organization: Option<&str>,
    columns: Option<&SubgroupColumns>,
) -> Vec<(String, String)> {
    let empty = BTreeMap::new();
    let acquisition = given.map_or(&empty, |g| &g.acquisition);
    let mut groups = Vec::new();
    if let Some(site) = acquisition
        .get("institution")
        .map(String::as_str)
        .or(organization)
    {
        groups.push(("site".to_owned(), site.to_owned()));
    }
    if let Some(manufacturer) = acquisition.get("manufacturer") {
        let scanner = match acquisition.get("model") {
            Some(model) => format!("{manufacturer} {model}"),
            None => manufacturer.clone(),
        };
        groups.push(("scanner".to_owned(), scanner));
    }
    let (Some(given), Some(columns)) = (given, columns) else {
        return groups;
    };
    for (column, median) in &columns.columns {
        let group = if let Some(level) = given.levels.get(column) {
            level.clone()
        } else if let Some(value) = given.numbers.get(column) {
            match median {
                Some(m) if value <= m => format!("≤ {m}"),
                Some(m) => format!("> {m}"),
                None => continue,
            }
        } else if given.missing.contains(column) {
            "missing".to_owned()
        } else {
            continue;
        };
        groups.push((column.clone(), group));
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    fn given() -> InputSnapshot {
        let mut g = InputSnapshot::default();
        g.levels.insert("tgrade".into(), "III".into());
        g.numbers.insert("tsize".into(), 30.0);
        g.missing.push("menostat".into());
        g.acquisition.insert("manufacturer".into(), "GE".into());
        g.acquisition.insert("model".into(), "LightSpeed".into());
        g
    }

    #[test]
    fn an_assessment_is_grouped_by_what_it_was_given() {
        let columns = SubgroupColumns {
            columns: vec![
                ("tgrade".into(), None),
                ("tsize".into(), Some(25.0)),
                ("menostat".into(), None),
                ("horTh".into(), None),
            ],
        };
        let groups = context_groups(Some(&given()), Some("North clinic"), Some(&columns));
        let pairs: Vec<(&str, &str)> = groups
            .iter()
            .map(|(c, g)| (c.as_str(), g.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("site", "North clinic"),
                ("scanner", "GE LightSpeed"),
                ("tgrade", "III"),
                ("tsize", "> 25"),
                ("menostat", "missing"),
            ]
        );
    }

    #[test]
    fn the_studys_institution_is_the_site_when_there_is_one() {
        let mut g = given();
        g.acquisition
            .insert("institution".into(), "Central hospital".into());
        let groups = context_groups(Some(&g), Some("North clinic"), None);
        assert_eq!(groups[0], ("site".into(), "Central hospital".into()));
        // Nothing given: no site, no scanner; never a made-up group.
        assert!(context_groups(None, None, None).is_empty());
    }
}
