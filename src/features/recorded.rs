//! One model input read the many ways charts record it: a coded finding by its codes, a
//! ValueSet of codes, or answers a ConceptMap translates (and, without any finding, a level the
//! age implies); a treatment by a drug class; a positive/negative status from a qualitative
//! result or a level at the threshold of its unit; a count as the range it falls in, or a
//! category (the TNM N category) that stands for a range. Each reader returns the level and
//! the resource it came from, or why there is none.

use chrono::{DateTime, Utc};

use super::builder::{AsOf, within};
use super::context::{CodedResult, Measurement, PatientContext};
use super::spec::{CategorySpec, RangeSpec, StatusSpec, TreatmentSpec};
use super::units::convert;
use crate::fhir::codes;
use crate::fhir::terminology::{concept_map, value_set};

/// A level read, where from, and how when it was not read as recorded (derived from the age).
#[derive(Debug, Clone, PartialEq)]
pub struct Reading<'a> {
    pub level: String,
    pub source: &'a str,
    pub derived: Option<String>,
}

impl<'a> Reading<'a> {
    fn recorded(level: impl Into<String>, source: &'a str) -> Self {
        Reading {
            level: level.into(),
            source,
            derived: None,
        }
    }
}

/// The latest of `items` up to the end of the window, by their date.
fn latest_first<T>(mut items: Vec<T>, date: impl Fn(&T) -> Option<DateTime<Utc>>) -> Vec<T> {
    items.sort_by_key(|item| std::cmp::Reverse(date(item)));
    items
}

/// The level of the latest finding of the category (its codes or its ValueSet) whose answer,
/// as recorded or as its ConceptMap translates it, names a level; without a finding, the
/// level the age at the index date implies.
pub fn category_level<'a>(
    context: &'a PatientContext,
    category: &CategorySpec,
    as_of: AsOf,
) -> Result<Reading<'a>, String> {
    let findings = category.findings.as_deref().and_then(value_set);
    let answers = category.answers.as_deref().and_then(concept_map);
    let candidates: Vec<&CodedResult> = context
        .coded_results
        .iter()
        .filter(|r| {
            r.codes.iter().any(|c| {
                category.codes.contains(c) || findings.is_some_and(|v| v.contains(None, c))
            })
        })
        .filter(|r| within(r.effective, as_of, None))
        .collect();
    let level_of = |answer: &str| {
        let code = answers
            .and_then(|m| m.translate(None, answer))
            .unwrap_or(answer);
        category
            .levels
            .iter()
            .find(|(_, codes)| codes.iter().any(|c| c == code))
            .map(|(level, _)| level.clone())
    };
    let found = !candidates.is_empty();
    for r in latest_first(candidates, |r| r.effective) {
        if let Some(level) = r.answer.iter().find_map(|a| level_of(a)) {
            return Ok(Reading::recorded(level, &r.source));
        }
    }
    if !found && let Some(reading) = level_from_age(context, category, as_of) {
        return Ok(reading);
    }
    Err(if found {
        "findings recorded, none answered with a known level".into()
    } else {
        "no finding with these codes".into()
    })
}

fn level_from_age<'a>(
    context: &'a PatientContext,
    category: &CategorySpec,
    as_of: AsOf,
) -> Option<Reading<'a>> {
    let born = context.birth_date?;
    let years = super::context::age_in_years(born, as_of.at.date_naive());
    let rule = category.from_age.iter().find(|rule| {
        rule.from.is_none_or(|from| years >= from) && rule.below.is_none_or(|below| years < below)
    })?;
    Some(Reading {
        level: rule.level.clone(),
        source: &context.patient,
        derived: Some(format!(
            "{}: no finding on record, {} taken from the age ({:.0})",
            category.name,
            rule.level,
            years.floor()
        )),
    })
}

/// `given` when any record in the window says the treatment (its codes or its ValueSet) was
/// given; `not_given` when records only say it was not; unknown without a record.
pub fn treatment_level<'a>(
    context: &'a PatientContext,
    treatment: &TreatmentSpec,
    as_of: AsOf,
) -> Result<Reading<'a>, String> {
    let class = treatment.value_set.as_deref().and_then(value_set);
    let records: Vec<_> = context
        .treatments
        .iter()
        .filter(|t| {
            t.codes
                .iter()
                .any(|c| treatment.codes.contains(c) || class.is_some_and(|v| v.contains(None, c)))
        })
        .filter(|t| within(t.date, as_of, None))
        .collect();
    if let Some(given) = records.iter().find(|t| t.given) {
        Ok(Reading::recorded(&treatment.given, &given.source))
    } else if let Some(refused) = records.first() {
        Ok(Reading::recorded(&treatment.not_given, &refused.source))
    } else {
        Err("no record of it being given or not given".into())
    }
}

/// `positive` or `negative` from the latest result of the status's ValueSet: its answer, or
/// its level against the threshold of a unit it converts to.
pub fn status_level<'a>(
    context: &'a PatientContext,
    status: &StatusSpec,
    as_of: AsOf,
) -> Result<Reading<'a>, String> {
    let Some(results) = value_set(&status.results) else {
        return Err(format!("the ValueSet {} is not known", status.results));
    };
    let coded = |codes: &[String]| codes.iter().any(|c| results.contains(None, c));
    enum Found<'b> {
        Answer(&'b CodedResult),
        Level(&'b Measurement),
    }
    let mut found: Vec<(Option<DateTime<Utc>>, Found)> = Vec::new();
    for r in &context.coded_results {
        if coded(&r.codes) && within(r.effective, as_of, None) {
            found.push((r.effective, Found::Answer(r)));
        }
    }
    for m in &context.measurements {
        if coded(&m.codes) && within(m.effective, as_of, None) {
            found.push((m.effective, Found::Level(m)));
        }
    }
    if found.is_empty() {
        return Err("no result with these codes".into());
    }
    let mut reasons = Vec::new();
    for (_, result) in latest_first(found, |(date, _)| *date) {
        match result {
            Found::Answer(r) => match r.positive() {
                Some(positive) => {
                    return Ok(Reading::recorded(polarity(positive), &r.source));
                }
                None => reasons.push(format!("{} is neither positive nor negative", r.source)),
            },
            Found::Level(m) => {
                let Some(unit) = &m.unit else {
                    reasons.push(format!("{} has no unit", m.source));
                    continue;
                };
                // The same unit as written; else a conversion between units with a dimension
                // (`%`, a score and a count are all numbers, and never stand for each other).
                let dimensionless = |u: &str| convert(1.0, u, "1", None).is_ok();
                let compared = status
                    .positive_at
                    .iter()
                    .find(|t| t.unit.eq_ignore_ascii_case(unit))
                    .map(|t| m.value >= t.value)
                    .or_else(|| {
                        status.positive_at.iter().find_map(|t| {
                            if dimensionless(unit) || dimensionless(&t.unit) {
                                return None;
                            }
                            let value = convert(m.value, unit, &t.unit, None).ok()?;
                            Some(value >= t.value)
                        })
                    });
                match compared {
                    Some(positive) => return Ok(Reading::recorded(polarity(positive), &m.source)),
                    None => reasons.push(format!(
                        "{}: no threshold for a level in `{unit}`",
                        m.source
                    )),
                }
            }
        }
    }
    Err(reasons.join("; "))
}

fn polarity(positive: bool) -> &'static str {
    if positive { "positive" } else { "negative" }
}

/// The range of the latest count; else of the latest category (pathological before clinical),
/// by its ConceptMap or its AJCC notation.
pub fn range_level<'a>(
    context: &'a PatientContext,
    range: &RangeSpec,
    as_of: AsOf,
) -> Result<Reading<'a>, String> {
    let counts: Vec<&Measurement> = context
        .measurements
        .iter()
        .filter(|m| m.codes.iter().any(|c| range.counts.contains(c)))
        .filter(|m| within(m.effective, as_of, None))
        .collect();
    for m in latest_first(counts, |m| m.effective) {
        if let Some(level) = range.levels.iter().find(|l| l.contains(m.value)) {
            return Ok(Reading::recorded(&level.name, &m.source));
        }
    }
    let categories = range.categories.as_deref().and_then(value_set);
    let map = range.category_map.as_deref().and_then(concept_map);
    let mut recorded: Vec<(&CodedResult, Option<u8>)> = Vec::new();
    for r in &context.coded_results {
        if categories.is_some_and(|v| r.codes.iter().any(|c| v.contains(None, c)))
            && within(r.effective, as_of, None)
        {
            let category = r
                .answer
                .iter()
                .find_map(|a| map.and_then(|m| m.translate(None, a)))
                .and_then(codes::node_range_category)
                .or_else(|| r.answer_text.as_deref().and_then(codes::parse_n_category));
            recorded.push((r, category));
        }
    }
    if recorded.is_empty() {
        return Err("no count or category with these codes".into());
    }
    // Pathological (pN) before clinical (cN); the latest of each.
    recorded.sort_by_key(|(r, _)| {
        (
            !r.codes
                .iter()
                .any(|c| codes::PATHOLOGIC_N_CATEGORY.contains(&c.as_str())),
            std::cmp::Reverse(r.effective),
        )
    });
    for (r, category) in recorded {
        let Some(category) = category else { continue };
        let code = codes::NODE_RANGE_CODES[usize::from(category)];
        if let Some(level) = range
            .levels
            .iter()
            .find(|l| l.code.as_deref() == Some(code))
        {
            return Ok(Reading::recorded(&level.name, &r.source));
        }
    }
    Err("categories recorded, none with a known N category".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::InputSpec;
    use crate::features::treatments::Treatment;
    use chrono::NaiveDate;

    /// The default model's spec: the readers as the service uses them.
    fn spec() -> InputSpec {
        let spec: InputSpec =
            toml::from_str(include_str!("../../models/risk/gbsg2-recurrence.toml")).unwrap();
        spec.validate().unwrap();
        spec
    }

    fn at(date: &str) -> DateTime<Utc> {
        format!("{date}T00:00:00Z").parse().unwrap()
    }

    fn as_of() -> AsOf {
        AsOf {
            at: at("2018-03-16"),
            until: at("2018-09-12"),
        }
    }

    fn coded(id: &str, code: &str, answer: &str, text: Option<&str>) -> CodedResult {
        CodedResult {
            source: format!("Observation/{id}"),
            codes: vec![code.into()],
            answer: vec![answer.into()],
            answer_text: text.map(str::to_owned),
            effective: Some(at("2018-04-01")),
        }
    }

    fn level(id: &str, code: &str, value: f64, unit: &str) -> Measurement {
        Measurement {
            source: format!("Observation/{id}"),
            codes: vec![code.into()],
            value,
            unit: Some(unit.into()),
            effective: Some(at("2018-04-01")),
        }
    }

    fn woman() -> PatientContext {
        PatientContext {
            patient: "Patient/p".into(),
            birth_date: NaiveDate::from_ymd_opt(1965, 1, 1),
            ..PatientContext::default()
        }
    }

    fn read<'a>(context: &'a PatientContext, name: &str) -> Result<Reading<'a>, String> {
        let spec = spec();
        let clinical = spec.clinical.as_ref().unwrap();
        if let Some(s) = clinical.statuses.iter().find(|s| s.name == name) {
            status_level(context, s, as_of())
        } else if let Some(r) = clinical.ranges.iter().find(|r| r.name == name) {
            range_level(context, r, as_of())
        } else if let Some(t) = clinical.treatments.iter().find(|t| t.name == name) {
            treatment_level(context, t, as_of())
        } else {
            let c = clinical.categories.iter().find(|c| c.name == name).unwrap();
            category_level(context, c, as_of())
        }
    }

    #[test]
    fn receptor_status_from_a_qualitative_result_or_a_level_in_any_unit() {
        let mut context = woman();
        // mCODE TumorMarkerTest by immunohistochemistry: ER positive, PR negative.
        context.coded_results = vec![
            coded("er", "85337-4", "LA6576-8", Some("Positive")),
            coded("pr", "85339-0", "LA6577-6", Some("Negative")),
        ];
        assert_eq!(read(&context, "estrec").unwrap().level, "positive");
        assert_eq!(read(&context, "progrec").unwrap().level, "negative");

        let cases = [
            (level("er", "14130-9", 66.0, "fmol/mg"), "positive"),
            (level("er", "14130-9", 9.0, "fmol/mg"), "negative"),
            (level("er", "14130-9", 0.066, "pmol/mg"), "positive"),
            (level("er", "16112-5", 30.0, "%"), "positive"),
            (level("er", "16112-5", 0.5, "%"), "negative"),
            (level("er", "16112-5", 2.0, "{Allred_score}"), "negative"),
            (level("er", "16112-5", 6.0, "{Allred_score}"), "positive"),
        ];
        for (measurement, expected) in cases {
            let mut context = woman();
            let unit = measurement.unit.clone();
            context.measurements = vec![measurement];
            assert_eq!(
                read(&context, "estrec").unwrap().level,
                expected,
                "{unit:?}"
            );
        }
        // A score without a threshold of its own is not read as a percentage.
        let mut context = woman();
        context.measurements = vec![level("er", "16112-5", 2.0, "{H_score}")];
        let why = read(&context, "estrec").unwrap_err();
        assert!(why.contains("no threshold"), "{why}");
    }

    #[test]
    fn any_endocrine_therapy_counts_as_hormone_therapy() {
        let mut context = woman();
        context.treatments = vec![Treatment {
            source: "MedicationRequest/anastrozole".into(),
            codes: vec!["84857".into()],
            given: true,
            date: Some(at("2018-05-01")),
        }];
        let reading = read(&context, "horTh").unwrap();
        assert_eq!(
            (reading.level.as_str(), reading.source),
            ("yes", "MedicationRequest/anastrozole")
        );
        // Chemotherapy is not endocrine therapy.
        context.treatments[0].codes = vec!["56946".into()];
        assert!(read(&context, "horTh").is_err());
    }

    #[test]
    fn grade_as_mcode_and_nottingham_record_it() {
        let mut context = woman();
        context.coded_results = vec![coded(
            "g",
            "44648-4",
            "LA27824-4",
            Some("Nottingham grade 2"),
        )];
        assert_eq!(read(&context, "tgrade").unwrap().level, "II");
        context.coded_results = vec![coded("g", "C18000", "1155707008", None)];
        assert_eq!(read(&context, "tgrade").unwrap().level, "III");
    }

    #[test]
    fn nodes_as_a_count_or_the_range_of_an_n_category() {
        let mut context = woman();
        context.measurements = vec![level("n", "21893-3", 2.0, "1")];
        assert_eq!(read(&context, "pnodes").unwrap().level, "1-3");

        // pN0 by its code; a clinical cN2a known only by its words; pathological first.
        let mut context = woman();
        context.coded_results = vec![
            coded(
                "cn",
                "399534004",
                "1229966003",
                Some("American Joint Committee on Cancer cN2a (qualifier value)"),
            ),
            coded("pn", "371494008", "1229947003", None),
        ];
        let reading = read(&context, "pnodes").unwrap();
        assert_eq!(
            (reading.level.as_str(), reading.source),
            ("0", "Observation/pn")
        );
        context.coded_results.pop();
        assert_eq!(read(&context, "pnodes").unwrap().level, "4-9");
        // NX: no range.
        context.coded_results = vec![coded("n", "371494008", "x", Some("pNX"))];
        assert!(read(&context, "pnodes").is_err());
    }

    #[test]
    fn menopausal_status_from_age_only_where_the_age_tells_and_saying_so() {
        let mut context = woman();
        // 53 at diagnosis: between 45 and 55, unknown.
        assert!(read(&context, "menostat").is_err());
        context.birth_date = NaiveDate::from_ymd_opt(1960, 1, 1);
        let reading = read(&context, "menostat").unwrap();
        assert_eq!(reading.level, "Post");
        assert!(
            reading
                .derived
                .as_deref()
                .unwrap()
                .contains("taken from the age (58)"),
            "{reading:?}"
        );
        // A finding on record wins over the age.
        context.coded_results = vec![coded("m", "161712005", "22636003", None)];
        let reading = read(&context, "menostat").unwrap();
        assert_eq!((reading.level.as_str(), reading.derived), ("Pre", None));
    }
}
