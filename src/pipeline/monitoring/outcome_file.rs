//! An outcome file for a past cohort: what a registry or a follow-up study knows happened to
//! patients assessed here, filed as the facts the monitoring reads from any record, so that it
//! pairs them like outcomes filed one by one:
//!
//! - `progression`: recurrence or progression, an mCODE CancerDiseaseStatus Observation
//!   (LOINC 97509-4) answered SNOMED CT 271299001 "Patient's condition worsened";
//! - `no-evidence-of-disease`: follow-up without the event until that day, the same
//!   Observation answered 281900007 "No abnormality detected";
//! - `death`: `Patient.deceasedDateTime`.
//!
//! The file is read by `cohort::read_outcome_file`. The
//! whole file is checked before anything is filed, and it is filed in one transaction or not
//! at all: an unknown patient, outcome or date, a date in the future, two different deaths, a
//! fact after a death (in the file or on record) or both progression and no evidence of disease
//! on one day refuse it, each with its line. A row given twice, or filed by an earlier import,
//! is filed once (each fact's id is derived from what it says).

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

pub use crate::cohort::{
    OutcomeFile, OutcomeFileError, OutcomeKind, OutcomeRow, read_outcome_file,
};
use crate::domain::{ResourceId, ResourceType};
use crate::fhir::parse_search;
use crate::pipeline::lookup::escape_token;
use crate::pipeline::{Pipeline, PipelineError};
use crate::store::StoreError;

const LOINC: &str = "http://loinc.org";
const SNOMED: &str = "http://snomed.info/sct";

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OutcomeImport {
    pub rows: usize,
    /// The patients' ids.
    pub patients: Vec<String>,
    /// Facts filed now.
    pub filed: usize,
    /// Rows that repeat another row of the file.
    pub repeated: usize,
    /// Rows filed by an earlier import.
    pub already_filed: usize,
}

/// Contradictions between the rows of one patient, and with a death already on record.
fn contradictions(rows: &[&OutcomeRow], died_on_record: Option<NaiveDate>) -> Vec<String> {
    let mut problems = Vec::new();
    let deaths: BTreeSet<NaiveDate> = rows
        .iter()
        .filter(|r| r.kind == OutcomeKind::Death)
        .map(|r| r.date)
        .chain(died_on_record)
        .collect();
    if deaths.len() > 1 {
        let lines: Vec<String> = rows
            .iter()
            .filter(|r| r.kind == OutcomeKind::Death)
            .map(|r| r.line.to_string())
            .collect();
        problems.push(format!(
            "line {}: deaths on different days ({}{})",
            lines.join(", "),
            deaths
                .iter()
                .map(NaiveDate::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            if died_on_record.is_some() {
                ", one of them on record"
            } else {
                ""
            }
        ));
    }
    if let Some(died) = deaths.first() {
        for r in rows.iter().filter(|r| r.kind != OutcomeKind::Death) {
            if r.date > *died {
                problems.push(format!(
                    "line {}: {} on {}, after the death on {died}",
                    r.line,
                    r.kind.as_str(),
                    r.date
                ));
            }
        }
    }
    for r in rows.iter().filter(|r| r.kind == OutcomeKind::Progression) {
        if let Some(other) = rows
            .iter()
            .find(|o| o.kind == OutcomeKind::NoEvidenceOfDisease && o.date == r.date)
        {
            problems.push(format!(
                "lines {} and {}: progression and no evidence of disease on the same day",
                r.line, other.line
            ));
        }
    }
    problems
}

/// The disease status a row files, under an id derived from what it says.
fn disease_status(patient: &ResourceId, row: &OutcomeRow) -> (ResourceId, Map<String, Value>) {
    let (code, display) = match row.kind {
        OutcomeKind::Progression => ("271299001", "Patient's condition worsened (finding)"),
        _ => ("281900007", "No abnormality detected (finding)"),
    };
    let digest = Sha256::digest(format!("{patient}|{}|{}", row.kind.as_str(), row.date));
    let id = digest
        .iter()
        .take(12)
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    let id = ResourceId::parse(&format!("outcome-{id}")).unwrap_or_else(|_| ResourceId::generate());
    let resource = json!({
        "resourceType": "Observation",
        "meta": {"profile": [
            "http://hl7.org/fhir/us/mcode/StructureDefinition/mcode-cancer-disease-status"
        ]},
        "status": "final",
        "category": [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": "survey"
        }]}],
        "code": {"coding": [{"system": LOINC, "code": "97509-4",
            "display": "Cancer disease progression"}]},
        "subject": {"reference": format!("Patient/{patient}")},
        "effectiveDateTime": row.date.to_string(),
        "valueCodeableConcept": {"coding": [{"system": SNOMED, "code": code, "display": display}]},
        "note": [{"text": "Filed from an outcome file."}]
    });
    let Value::Object(map) = resource else {
        unreachable!("a JSON object literal")
    };
    (id, map)
}

impl Pipeline {
    /// The Patient a row names: its id, or one identifier (`system|value`) held by exactly one.
    async fn outcome_patient(
        &self,
        who: &str,
    ) -> Result<Result<ResourceId, String>, PipelineError> {
        if let Some((system, value)) = who.split_once('|') {
            let token = format!("{}|{}", escape_token(system), escape_token(value));
            let query = parse_search(
                ResourceType::Patient,
                &[("identifier".to_owned(), token)],
                true,
                2,
                2,
            )?;
            let (found, _) = self.store.search(ResourceType::Patient, &query).await?;
            return Ok(match found.as_slice() {
                [one] => Ok(one.id.clone()),
                [] => Err("no patient held here has this identifier".into()),
                _ => Err("more than one patient has this identifier".into()),
            });
        }
        let Ok(id) = ResourceId::parse(who) else {
            return Ok(Err("not a Patient id or system|value".into()));
        };
        Ok(match self.store.read(ResourceType::Patient, &id).await {
            Ok(_) => Ok(id),
            Err(StoreError::NotFound { .. } | StoreError::Gone { .. }) => {
                Err("no patient held here has this id".into())
            }
            Err(e) => return Err(e.into()),
        })
    }

    /// Files the outcomes of `file` (see the module), all or nothing: a line it could not
    /// read refuses it, with every other problem found.
    pub async fn import_outcomes(
        &self,
        file: &OutcomeFile,
    ) -> Result<OutcomeImport, PipelineError> {
        let rows = &file.rows;
        let mut problems = file.problems.clone();
        let mut by_patient: BTreeMap<ResourceId, Vec<&OutcomeRow>> = BTreeMap::new();
        let mut resolved: BTreeMap<&str, Result<ResourceId, String>> = BTreeMap::new();
        for row in rows {
            if !resolved.contains_key(row.patient.as_str()) {
                let found = self.outcome_patient(&row.patient).await?;
                resolved.insert(&row.patient, found);
            }
            match &resolved[row.patient.as_str()] {
                Ok(id) => by_patient.entry(id.clone()).or_default().push(row),
                Err(why) => problems.push(format!("line {}: {why}", row.line)),
            }
        }
        let mut tx = self.store.begin().await?;
        let mut summary = OutcomeImport {
            rows: rows.len(),
            patients: by_patient.keys().map(ToString::to_string).collect(),
            ..OutcomeImport::default()
        };
        for (patient, rows) in &by_patient {
            let stored = tx.read(ResourceType::Patient, patient).await?;
            let mut resource: Map<String, Value> =
                serde_json::from_str(stored.content.as_deref().unwrap_or("{}")).unwrap_or_default();
            let died_on_record = resource
                .get("deceasedDateTime")
                .and_then(Value::as_str)
                .and_then(|d| NaiveDate::parse_from_str(d.get(..10)?, "%Y-%m-%d").ok());
            let found = contradictions(rows, died_on_record);
            if !found.is_empty() {
                problems.extend(found);
                continue;
            }
            let mut seen: BTreeSet<(OutcomeKind, NaiveDate)> = BTreeSet::new();
            for row in rows {
                if !seen.insert((row.kind, row.date)) {
                    summary.repeated += 1;
                    continue;
                }
                if row.kind == OutcomeKind::Death {
                    if died_on_record == Some(row.date) {
                        summary.already_filed += 1;
                        continue;
                    }
                    resource.insert(
                        "deceasedDateTime".into(),
                        Value::String(row.date.to_string()),
                    );
                    resource.remove("deceasedBoolean");
                    tx.write(
                        ResourceType::Patient,
                        patient,
                        resource.clone(),
                        Some(stored.version),
                    )
                    .await?;
                    summary.filed += 1;
                    continue;
                }
                let (id, status) = disease_status(patient, row);
                if matches!(
                    tx.current_version(ResourceType::Observation, &id).await?,
                    Some((_, false))
                ) {
                    summary.already_filed += 1;
                    continue;
                }
                tx.write(ResourceType::Observation, &id, status, None)
                    .await?;
                summary.filed += 1;
            }
        }
        if !problems.is_empty() {
            // Dropped without a commit: nothing of the file is kept.
            drop(tx);
            problems.sort_by_key(|p| line_of(p));
            return Err(OutcomeFileError(problems).into());
        }
        tx.commit().await?;
        tracing::info!(
            rows = summary.rows,
            patients = summary.patients.len(),
            filed = summary.filed,
            repeated = summary.repeated,
            already_filed = summary.already_filed,
            "outcome file filed"
        );
        Ok(summary)
    }
}

/// The first line number a problem names, to list problems in file order.
fn line_of(problem: &str) -> usize {
    problem
        .split(|c: char| !c.is_ascii_digit())
        .find(|s| !s.is_empty())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn contradictions_are_found_and_repeats_are_not_contradictions() {
        let row = |line, kind, date: &str| OutcomeRow {
            line,
            patient: "p".into(),
            kind,
            date: day(date),
        };
        let deaths = [
            row(2, OutcomeKind::Death, "2025-01-01"),
            row(3, OutcomeKind::Death, "2025-02-01"),
        ];
        let refs: Vec<&OutcomeRow> = deaths.iter().collect();
        assert_eq!(contradictions(&refs, None).len(), 1);
        let after = [
            row(2, OutcomeKind::Death, "2025-01-01"),
            row(3, OutcomeKind::NoEvidenceOfDisease, "2025-06-01"),
        ];
        let refs: Vec<&OutcomeRow> = after.iter().collect();
        let found = contradictions(&refs, None);
        assert_eq!(
            found,
            ["line 3: no-evidence-of-disease on 2025-06-01, after the death on 2025-01-01"]
        );
        // A death on record on another day than the file's.
        let refs: Vec<&OutcomeRow> = after[..1].iter().collect();
        assert_eq!(contradictions(&refs, Some(day("2024-12-01"))).len(), 1);
        let same_day = [
            row(2, OutcomeKind::Progression, "2025-01-01"),
            row(3, OutcomeKind::NoEvidenceOfDisease, "2025-01-01"),
        ];
        let refs: Vec<&OutcomeRow> = same_day.iter().collect();
        assert_eq!(contradictions(&refs, None).len(), 1);
        let repeated = [
            row(2, OutcomeKind::Progression, "2025-01-01"),
            row(3, OutcomeKind::Progression, "2025-01-01"),
            row(4, OutcomeKind::Death, "2025-05-01"),
            row(5, OutcomeKind::Death, "2025-05-01"),
        ];
        let refs: Vec<&OutcomeRow> = repeated.iter().collect();
        assert!(contradictions(&refs, None).is_empty());
    }

    #[test]
    fn a_rows_fact_has_the_same_id_each_time() {
        let patient = ResourceId::parse("p1").unwrap();
        let row = OutcomeRow {
            line: 2,
            patient: "p1".into(),
            kind: OutcomeKind::Progression,
            date: day("2025-01-01"),
        };
        let (a, resource) = disease_status(&patient, &row);
        let (b, _) = disease_status(
            &patient,
            &OutcomeRow {
                line: 9,
                ..row.clone()
            },
        );
        assert_eq!(a, b);
        assert_eq!(
            resource["valueCodeableConcept"]["coding"][0]["code"],
            "271299001"
        );
        let (c, _) = disease_status(
            &patient,
            &OutcomeRow {
                kind: OutcomeKind::NoEvidenceOfDisease,
                ..row
            },
        );
        assert_ne!(a, c);
    }
}
