//! Who a model is for and from when it counts, as its input spec declares them, evaluated on
//! what is on record: the intended population (required diagnoses, sex, age at the index date,
//! diagnoses that must not be present), the index date (the time origin its follow-up was
//! counted from: a diagnosis, a primary surgery or a staging, the first of these the spec
//! lists that is on record) and whether the outcome it predicts has already happened. A patient
//! outside the population gets every unmet criterion named, never a score.
//!
//! ```toml
//! [population]
//! sex = ["female"]
//! age = { min = 21, max = 80 }
//! require = ["https://prognostics.example.org/fhir/ValueSet/primary-breast-cancer"]
//! exclude = ["https://prognostics.example.org/fhir/ValueSet/secondary-malignant-neoplasm"]
//!
//! [population.index]
//! from = ["diagnosis", "surgery", "staging"]
//! surgery = "https://prognostics.example.org/fhir/ValueSet/breast-cancer-surgery"
//! after_days = 180
//!
//! [population.event]
//! death = true
//! diagnoses = ["https://prognostics.example.org/fhir/ValueSet/secondary-malignant-neoplasm"]
//! findings = ["https://prognostics.example.org/fhir/ValueSet/cancer-progression"]
//! ```

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::context::{Diagnosis, PatientContext, Sex};
use crate::fhir::terminology::{ValueSet, value_set};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PopulationSpec {
    /// The administrative sexes the model is for; empty: any.
    #[serde(default)]
    pub sex: Vec<Sex>,
    /// Age in years at the index date.
    pub age: Option<AgeRange>,
    /// The TNM stage group (0 to 4) by the end of the index window, when one is on record (a
    /// record without one is not refused for it).
    pub stage: Option<StageRange>,
    /// ValueSets of diagnoses, one of each of which must be on record.
    #[serde(default)]
    pub require: Vec<String>,
    /// ValueSets of diagnoses that must not be on record by the end of the index window.
    #[serde(default)]
    pub exclude: Vec<String>,
    pub index: IndexSpec,
    /// What counts as the predicted event having happened already.
    #[serde(default)]
    pub event: EventSpec,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AgeRange {
    pub min: Option<f64>,
    pub max: Option<f64>,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StageRange {
    pub min: Option<u8>,
    pub max: Option<u8>,
}

/// A stage group in roman numerals, as clinicians write it.
fn roman(group: u8) -> &'static str {
    ["0", "I", "II", "III", "IV"]
        .get(usize::from(group))
        .copied()
        .unwrap_or("?")
}

/// Where the time origin is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// The onset (else the recorded date) of the earliest required diagnosis.
    Diagnosis,
    /// The earliest Procedure of the `surgery` ValueSet.
    Surgery,
    /// The earliest TNM stage-group Observation (or Condition stage).
    Staging,
}

impl Origin {
    pub fn words(self) -> &'static str {
        match self {
            Origin::Diagnosis => "diagnosis",
            Origin::Surgery => "primary surgery",
            Origin::Staging => "staging",
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IndexSpec {
    /// In order of preference: the first one on record is the index date.
    pub from: Vec<Origin>,
    /// ValueSet of the procedures that count as primary surgery.
    pub surgery: Option<String>,
    /// Facts recorded up to this many days after the index date describe the patient at it
    /// (the pathology of the resected tumour, the adjuvant therapy decided after surgery).
    #[serde(default)]
    pub after_days: u32,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EventSpec {
    /// Death is (part of) the event.
    #[serde(default)]
    pub death: bool,
    /// ValueSets of diagnoses that, with an onset after the index window, are the event.
    #[serde(default)]
    pub diagnoses: Vec<String>,
    /// ValueSets of Observation answers (a cancer disease status) that are the event.
    #[serde(default)]
    pub findings: Vec<String>,
}

/// The patient is in the population: the time origin, and the moment features describe.
#[derive(Debug, Clone, PartialEq)]
pub struct Eligible {
    pub origin: Origin,
    /// The index date.
    pub index: DateTime<Utc>,
    /// The resource it was read from.
    pub source: String,
    /// The latest moment a fact may come from to describe the patient at the index date.
    pub window_end: DateTime<Utc>,
}

/// Why the model may not answer for the patient: every unmet criterion, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ineligible {
    pub reasons: Vec<String>,
}

impl PopulationSpec {
    /// Checks that every ValueSet named is one the service evaluates.
    pub fn validate(&self) -> Result<(), String> {
        let urls = self
            .require
            .iter()
            .chain(&self.exclude)
            .chain(&self.index.surgery)
            .chain(&self.event.diagnoses)
            .chain(&self.event.findings);
        for url in urls {
            if value_set(url).is_none() {
                return Err(format!("the ValueSet {url} is not one the service has"));
            }
        }
        if self.index.from.is_empty() {
            return Err("`population.index.from` names no time origin".into());
        }
        if self.index.from.contains(&Origin::Surgery) && self.index.surgery.is_none() {
            return Err(
                "the index date may be a surgery, but no `surgery` ValueSet is named".into(),
            );
        }
        if let Some(AgeRange {
            min: Some(min),
            max: Some(max),
        }) = self.age
            && min > max
        {
            return Err("`population.age`: min is above max".into());
        }
        Ok(())
    }

    /// Who the model is for, in words (for model cards): generated from the same criteria
    /// that are evaluated.
    pub fn describe(&self) -> String {
        let who = match self.sex.as_slice() {
            [Sex::Female] => "Women",
            [Sex::Male] => "Men",
            _ => "Patients",
        };
        let mut out = who.to_owned();
        if let Some(age) = self.age {
            let at = self
                .index
                .from
                .first()
                .map_or("the index date", |o| o.words());
            match (age.min, age.max) {
                (Some(min), Some(max)) => out.push_str(&format!(" aged {min} to {max} at {at}")),
                (Some(min), None) => out.push_str(&format!(" aged {min} or more at {at}")),
                (None, Some(max)) => out.push_str(&format!(" aged up to {max} at {at}")),
                (None, None) => {}
            }
        }
        let titles = |urls: &[String]| -> Vec<String> {
            urls.iter()
                .map(|u| value_set(u).map_or_else(|| u.clone(), |v| v.title.clone()))
                .collect()
        };
        let required = titles(&self.require);
        if !required.is_empty() {
            out.push_str(&format!(" with {}", required.join(" and ")));
        }
        if let Some(stage) = self.stage {
            match (stage.min, stage.max) {
                (Some(min), Some(max)) => {
                    out.push_str(&format!(" at stage {} to {}", roman(min), roman(max)));
                }
                (Some(min), None) => out.push_str(&format!(" at stage {} or beyond", roman(min))),
                (None, Some(max)) => out.push_str(&format!(" at stage {} or below", roman(max))),
                (None, None) => {}
            }
        }
        let excluded = titles(&self.exclude);
        if !excluded.is_empty() {
            out.push_str(&format!(", without {}", excluded.join(" or ")));
        }
        let origins: Vec<&str> = self.index.from.iter().map(|o| o.words()).collect();
        out.push_str(&format!(
            ". Risk is counted from the date of {}{}",
            origins.join(", else of "),
            if self.index.after_days > 0 {
                format!(
                    ", with facts recorded up to {} days after it describing the patient at it",
                    self.index.after_days
                )
            } else {
                String::new()
            }
        ));
        let mut events = Vec::new();
        if self.event.death {
            events.push("death".to_owned());
        }
        events.extend(titles(&self.event.diagnoses));
        events.extend(titles(&self.event.findings));
        if !events.is_empty() {
            out.push_str(&format!(
                "; a patient with {} already on record gets no prediction",
                events.join(", ")
            ));
        }
        out.push('.');
        out
    }

    /// The patient's index date when they are in the population and event-free; otherwise
    /// every criterion they do not meet.
    pub fn evaluate(
        &self,
        context: &PatientContext,
        now: DateTime<Utc>,
    ) -> Result<Eligible, Ineligible> {
        let mut reasons = Vec::new();
        let sets = |urls: &[String]| -> Vec<&'static ValueSet> {
            urls.iter().filter_map(|u| value_set(u)).collect()
        };
        let in_set = |d: &Diagnosis, set: &ValueSet| {
            d.code
                .iter()
                .any(|c| set.contains(c.system.as_deref(), &c.code))
        };

        if !self.sex.is_empty() {
            match context.sex {
                Some(sex) if self.sex.contains(&sex) => {}
                Some(sex) => reasons.push(format!("{sex:?}").to_lowercase()),
                None => reasons.push("administrative sex not recorded".into()),
            }
        }
        let mut required: Vec<&Diagnosis> = Vec::new();
        for set in sets(&self.require) {
            let found: Vec<&Diagnosis> = context
                .diagnoses
                .iter()
                .filter(|d| in_set(d, set))
                .collect();
            if found.is_empty() {
                reasons.push(format!("no {} on record", set.title));
            }
            required.extend(found);
        }

        let index = self.index_date(context, &required);
        let Some((origin, index, source)) = index else {
            let origins: Vec<&str> = self.index.from.iter().map(|o| o.words()).collect();
            reasons.push(format!("no date of {} on record", origins.join(" or ")));
            return Err(Ineligible { reasons });
        };
        if index > now {
            reasons.push(format!("the date of {} is in the future", origin.words()));
        }
        let window_end = index + Duration::days(i64::from(self.index.after_days));

        if let Some(age) = self.age {
            match context.birth_date {
                Some(born) => {
                    let years = super::context::age_in_years(born, index.date_naive());
                    let at = origin.words();
                    if age.min.is_some_and(|min| years < min) {
                        reasons.push(format!(
                            "aged {:.0} at {at}, below {}",
                            years.floor(),
                            age.min.unwrap_or_default()
                        ));
                    }
                    if age.max.is_some_and(|max| years >= max + 1.0) {
                        reasons.push(format!(
                            "aged {:.0} at {at}, above {}",
                            years.floor(),
                            age.max.unwrap_or_default()
                        ));
                    }
                }
                None => reasons.push("no birth date on record".into()),
            }
        }

        if let Some(range) = self.stage
            && let Some(stage) = context
                .stage_groups
                .iter()
                .find(|s| s.effective.is_none_or(|t| t <= window_end))
        {
            let below = range.min.is_some_and(|min| stage.group < min);
            let above = range.max.is_some_and(|max| stage.group > max);
            if below || above {
                reasons.push(format!(
                    "stage {} ({}), outside the model's stages",
                    roman(stage.group),
                    stage.source
                ));
            }
        }

        // The event after the index window; an excluded diagnosis before its end.
        let event_sets = sets(&self.event.diagnoses);
        for set in sets(&self.exclude) {
            let at_index = context.diagnoses.iter().find(|d| {
                in_set(d, set)
                    && !(event_sets.contains(&set) && d.date().is_some_and(|t| t > window_end))
            });
            if let Some(d) = at_index {
                reasons.push(format!("{} on record ({})", set.title, d.source));
            }
        }
        for set in event_sets {
            if let Some(d) = context
                .diagnoses
                .iter()
                .find(|d| in_set(d, set) && d.date().is_some_and(|t| t > window_end))
            {
                reasons.push(format!(
                    "the predicted event has happened: {} on record ({})",
                    set.title, d.source
                ));
            }
        }
        for set in sets(&self.event.findings) {
            if let Some(r) = context.coded_results.iter().find(|r| {
                r.effective.is_none_or(|t| t > index)
                    && r.answer.iter().any(|a| set.contains(None, a))
            }) {
                reasons.push(format!(
                    "the predicted event has happened: {} on record ({})",
                    set.title, r.source
                ));
            }
        }
        if self.event.death && context.deceased.is_some() {
            reasons.push("the patient has died".into());
        }

        if reasons.is_empty() {
            Ok(Eligible {
                origin,
                index,
                source,
                window_end,
            })
        } else {
            Err(Ineligible { reasons })
        }
    }

    /// The first origin of `from` that is on record: (origin, date, resource).
    fn index_date(
        &self,
        context: &PatientContext,
        required: &[&Diagnosis],
    ) -> Option<(Origin, DateTime<Utc>, String)> {
        self.index.from.iter().find_map(|origin| {
            let (date, source) = match origin {
                Origin::Diagnosis => required
                    .iter()
                    .filter_map(|d| Some((d.date()?, d.source.clone())))
                    .min_by_key(|(date, _)| *date)?,
                Origin::Surgery => {
                    let set = value_set(self.index.surgery.as_deref()?)?;
                    context
                        .treatments
                        .iter()
                        .filter(|t| t.given && t.codes.iter().any(|c| set.contains(None, c)))
                        .filter_map(|t| Some((t.date?, t.source.clone())))
                        .min_by_key(|(date, _)| *date)?
                }
                Origin::Staging => context
                    .stage_groups
                    .iter()
                    .filter_map(|s| Some((s.effective?, s.source.clone())))
                    .min_by_key(|(date, _)| *date)?,
            };
            Some((*origin, date, source))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::context::Coding;
    use chrono::NaiveDate;

    const BREAST: &str = "https://prognostics.example.org/fhir/ValueSet/primary-breast-cancer";
    const METASTASIS: &str =
        "https://prognostics.example.org/fhir/ValueSet/secondary-malignant-neoplasm";
    const SURGERY: &str = "https://prognostics.example.org/fhir/ValueSet/breast-cancer-surgery";

    fn at(date: &str) -> DateTime<Utc> {
        format!("{date}T00:00:00Z").parse().unwrap()
    }

    fn spec() -> PopulationSpec {
        toml::from_str(&format!(
            r#"
            sex = ["female"]
            age = {{ min = 21, max = 80 }}
            stage = {{ max = 3 }}
            require = ["{BREAST}"]
            exclude = ["{METASTASIS}"]
            [index]
            from = ["diagnosis", "surgery"]
            surgery = "{SURGERY}"
            after_days = 90
            [event]
            death = true
            diagnoses = ["{METASTASIS}"]
            "#
        ))
        .unwrap()
    }

    fn diagnosis(id: &str, system: &str, code: &str, onset: Option<&str>) -> Diagnosis {
        Diagnosis {
            source: format!("Condition/{id}"),
            code: vec![Coding {
                system: Some(system.into()),
                code: code.into(),
            }],
            onset: onset.map(at),
            recorded: None,
        }
    }

    fn woman_with_breast_cancer() -> PatientContext {
        PatientContext {
            patient: "Patient/p".into(),
            birth_date: NaiveDate::from_ymd_opt(1965, 1, 1),
            sex: Some(Sex::Female),
            diagnoses: vec![diagnosis(
                "bc",
                "http://snomed.info/sct",
                "353431000119107",
                Some("2018-03-16"),
            )],
            ..PatientContext::default()
        }
    }

    #[test]
    fn a_woman_with_breast_cancer_is_counted_from_her_diagnosis() {
        spec().validate().unwrap();
        let eligible = spec()
            .evaluate(&woman_with_breast_cancer(), at("2024-01-01"))
            .unwrap();
        assert_eq!(eligible.origin, Origin::Diagnosis);
        assert_eq!(eligible.index, at("2018-03-16"));
        assert_eq!(eligible.source, "Condition/bc");
        assert_eq!(eligible.window_end, at("2018-06-14"));
    }

    #[test]
    fn every_unmet_criterion_is_named() {
        let mut man = woman_with_breast_cancer();
        man.sex = Some(Sex::Male);
        man.diagnoses = vec![diagnosis(
            "lung",
            "http://snomed.info/sct",
            "254637007",
            Some("2019-04-01"),
        )];
        let refused = spec().evaluate(&man, at("2024-01-01")).unwrap_err();
        assert_eq!(
            refused.reasons,
            [
                "male",
                "no primary breast cancer on record",
                "no date of diagnosis or primary surgery on record"
            ]
        );

        let mut young = woman_with_breast_cancer();
        young.birth_date = NaiveDate::from_ymd_opt(2000, 1, 1);
        let refused = spec().evaluate(&young, at("2024-01-01")).unwrap_err();
        assert_eq!(refused.reasons, ["aged 18 at diagnosis, below 21"]);
    }

    #[test]
    fn metastasis_at_diagnosis_excludes_and_later_is_the_event() {
        let icd = "http://hl7.org/fhir/sid/icd-10-cm";
        let mut at_diagnosis = woman_with_breast_cancer();
        at_diagnosis
            .diagnoses
            .push(diagnosis("m", icd, "C78.01", Some("2018-04-01")));
        let refused = spec()
            .evaluate(&at_diagnosis, at("2024-01-01"))
            .unwrap_err();
        assert_eq!(
            refused.reasons,
            ["distant metastasis on record (Condition/m)"]
        );

        let mut later = woman_with_breast_cancer();
        later
            .diagnoses
            .push(diagnosis("m", icd, "C78.01", Some("2021-04-01")));
        later.deceased = Some(None);
        let refused = spec().evaluate(&later, at("2024-01-01")).unwrap_err();
        assert_eq!(
            refused.reasons,
            [
                "the predicted event has happened: distant metastasis on record (Condition/m)",
                "the patient has died"
            ]
        );
    }

    #[test]
    fn a_stage_outside_the_models_is_named() {
        let mut context = woman_with_breast_cancer();
        context
            .stage_groups
            .push(crate::features::context::StageGroup {
                source: "Observation/s".into(),
                kind: crate::fhir::codes::StageKind::Pathologic,
                group: 4,
                letter: None,
                effective: Some(at("2018-04-01")),
            });
        let refused = spec().evaluate(&context, at("2024-01-01")).unwrap_err();
        assert_eq!(
            refused.reasons,
            ["stage IV (Observation/s), outside the model's stages"]
        );
        context.stage_groups[0].group = 2;
        assert!(spec().evaluate(&context, at("2024-01-01")).is_ok());
    }

    #[test]
    fn without_a_dated_diagnosis_the_surgery_is_the_origin() {
        let mut context = woman_with_breast_cancer();
        context.diagnoses[0].onset = None;
        context
            .treatments
            .push(crate::features::treatments::Treatment {
                source: "Procedure/s".into(),
                codes: vec!["64368001".into()],
                given: true,
                date: Some(at("2018-04-01")),
            });
        let eligible = spec().evaluate(&context, at("2024-01-01")).unwrap();
        assert_eq!(
            (eligible.origin, eligible.index),
            (Origin::Surgery, at("2018-04-01"))
        );
    }

    #[test]
    fn the_description_is_drawn_from_the_criteria() {
        assert_eq!(
            spec().describe(),
            "Women aged 21 to 80 at diagnosis with primary breast cancer at stage III or below, \
             without distant metastasis. Risk is counted from the date of diagnosis, else of primary surgery, \
             with facts recorded up to 90 days after it describing the patient at it; a patient \
             with death, distant metastasis already on record gets no prediction."
        );
    }
}
