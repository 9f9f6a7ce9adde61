//! What happened after an assessment, as the record says now: the model's event (a diagnosis of
//! its event sets, a finding of its event answers, death when death is part of it) first dated
//! after the assessment, or no event with follow-up up to the latest dated fact on record
//! (censored there). A record that cannot be used for this says why: an event dated before the
//! assessment (it was back-dated, or the assessment should not have been made), a death
//! without a date, or facts dated after the death.

use chrono::{DateTime, Utc};

use super::context::PatientContext;
use super::population::PopulationSpec;
use crate::fhir::terminology::value_set;

/// The outcome of one assessment. An unusable one says why as `kind: detail`.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The event, first dated `at`, read from `source`; `also` counts further records of it.
    Event {
        at: DateTime<Utc>,
        source: String,
        also: usize,
    },
    /// No event on record; the patient was followed until `until`.
    Censored { until: DateTime<Utc> },
    /// Not usable, and why.
    Unusable(String),
}

impl PatientContext {
    /// The latest date of any fact on record (the last sign of follow-up).
    pub fn latest_fact(&self) -> Option<DateTime<Utc>> {
        let diagnoses = self.diagnoses.iter().filter_map(|d| d.date());
        let measurements = self.measurements.iter().filter_map(|m| m.effective);
        let results = self.coded_results.iter().filter_map(|r| r.effective);
        let stages = self.stage_groups.iter().filter_map(|s| s.effective);
        let notes = self.notes.iter().filter_map(|n| n.date);
        let studies = self.imaging_studies.iter().filter_map(|s| s.started);
        diagnoses
            .chain(measurements)
            .chain(results)
            .chain(stages)
            .chain(notes)
            .chain(studies)
            .max()
    }
}

impl PopulationSpec {
    /// The outcome of an assessment made at `assessed`, from `context` as it is now.
    pub fn outcome_after(&self, context: &PatientContext, assessed: DateTime<Utc>) -> Outcome {
        let mut events: Vec<(DateTime<Utc>, String)> = Vec::new();
        let mut undated = Vec::new();
        for url in &self.event.diagnoses {
            let Some(set) = value_set(url) else { continue };
            for d in &context.diagnoses {
                if d.code
                    .iter()
                    .any(|c| set.contains(c.system.as_deref(), &c.code))
                {
                    match d.date() {
                        Some(at) => events.push((at, d.source.clone())),
                        None => undated.push(d.source.clone()),
                    }
                }
            }
        }
        for url in &self.event.findings {
            let Some(set) = value_set(url) else { continue };
            for r in &context.coded_results {
                if r.answer.iter().any(|a| set.contains(None, a)) {
                    match r.effective {
                        Some(at) => events.push((at, r.source.clone())),
                        None => undated.push(r.source.clone()),
                    }
                }
            }
        }
        if self.event.death {
            match context.deceased {
                Some(Some(at)) => events.push((at, context.patient.clone())),
                Some(None) => {
                    return Outcome::Unusable(
                        "a death without a date: the record gives no date of death".into(),
                    );
                }
                None => {}
            }
        }
        if let Some(source) = undated.first() {
            return Outcome::Unusable(format!("an event without a date: {source}"));
        }
        events.sort();
        if let Some((at, source)) = events.iter().find(|(at, _)| *at <= assessed) {
            return Outcome::Unusable(format!(
                "an event dated before the assessment: {} ({source})",
                at.format("%Y-%m-%d")
            ));
        }
        if let (Some(Some(died)), Some(latest)) = (context.deceased, context.latest_fact())
            && latest > died + chrono::Duration::days(1)
        {
            return Outcome::Unusable(format!(
                "facts dated after the death: {} on record, death on {}",
                latest.format("%Y-%m-%d"),
                died.format("%Y-%m-%d")
            ));
        }
        match events.split_first() {
            Some(((at, source), rest)) => Outcome::Event {
                at: *at,
                source: source.clone(),
                also: rest.len(),
            },
            None => Outcome::Censored {
                until: context.latest_fact().unwrap_or(assessed).max(assessed),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::context::{Coding, Diagnosis};
    use chrono::TimeZone;

    const METASTASIS: &str =
        "https://prognostics.example.org/fhir/ValueSet/secondary-malignant-neoplasm";

    fn spec() -> PopulationSpec {
        toml::from_str(&format!(
            "[index]\nfrom = [\"diagnosis\"]\n[event]\ndeath = true\ndiagnoses = [\"{METASTASIS}\"]\n"
        ))
        .unwrap()
    }

    fn day(y: i32, m: u32, d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, 0, 0, 0).unwrap()
    }

    fn metastasis(id: &str, at: Option<DateTime<Utc>>) -> Diagnosis {
        Diagnosis {
            source: format!("Condition/{id}"),
            code: vec![Coding {
                system: Some("http://hl7.org/fhir/sid/icd-10".into()),
                code: "C78.0".into(),
            }],
            onset: at,
            recorded: None,
        }
    }

    #[test]
    fn the_first_event_after_the_assessment_is_the_outcome() {
        let assessed = day(2025, 1, 1);
        let mut context = PatientContext {
            patient: "Patient/p".into(),
            ..PatientContext::default()
        };
        assert_eq!(
            spec().outcome_after(&context, assessed),
            Outcome::Censored { until: assessed }
        );
        context
            .diagnoses
            .push(metastasis("m2", Some(day(2026, 3, 1))));
        context
            .diagnoses
            .push(metastasis("m1", Some(day(2025, 6, 1))));
        assert_eq!(
            spec().outcome_after(&context, assessed),
            Outcome::Event {
                at: day(2025, 6, 1),
                source: "Condition/m1".into(),
                also: 1
            }
        );
        context.deceased = Some(Some(day(2025, 3, 1)));
        let Outcome::Unusable(why) = spec().outcome_after(&context, assessed) else {
            panic!("facts after death")
        };
        assert!(why.contains("after the death"), "{why}");
    }

    #[test]
    fn events_before_the_assessment_and_undated_deaths_are_not_used() {
        let assessed = day(2025, 1, 1);
        let mut context = PatientContext {
            patient: "Patient/p".into(),
            ..PatientContext::default()
        };
        context
            .diagnoses
            .push(metastasis("m0", Some(day(2024, 12, 1))));
        let Outcome::Unusable(why) = spec().outcome_after(&context, assessed) else {
            panic!("an event before the assessment")
        };
        assert!(
            why.starts_with("an event dated before the assessment:"),
            "{why}"
        );
        let context = PatientContext {
            patient: "Patient/p".into(),
            deceased: Some(None),
            ..PatientContext::default()
        };
        assert!(matches!(
            spec().outcome_after(&context, assessed),
            Outcome::Unusable(_)
        ));
    }
}
