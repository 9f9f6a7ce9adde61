//! Patients' records as this service holds them, many at once: the monitoring reads the record
//! of every patient assessed, and read one by one (a search and its count per resource type and
//! patient) that was most of its time and grew faster than the number of patients. Here a batch
//! of patients costs one statement per resource type, and each record is the same as an
//! assessment gathers from what is held: the patient, the patients that share one of its
//! identifiers, and every resource in their compartments but those an AI asserted.

use std::collections::BTreeMap;

use serde_json::Value;

use super::super::risk_inputs::{INPUT_TYPES, ai_asserted};
use crate::features::PatientContext;
use crate::pipeline::{Pipeline, PipelineError};
use crate::store::COMPARTMENT_BATCH;

/// What the monitoring needs of one patient's record.
pub(super) struct HeldRecord {
    pub context: PatientContext,
    /// Where the patient is cared for: `Patient.managingOrganization` (its display, else its
    /// reference).
    pub organization: Option<String>,
}

/// (system, value) of each of a Patient's identifiers.
fn identifiers(patient: &Value) -> Vec<(Option<String>, String)> {
    patient["identifier"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| {
            Some((
                i["system"].as_str().map(str::to_owned),
                i["value"].as_str()?.to_owned(),
            ))
        })
        .collect()
}

fn organization(patient: &Value) -> Option<String> {
    let org = &patient["managingOrganization"];
    org["display"]
        .as_str()
        .or_else(|| org["reference"].as_str())
        .map(str::to_owned)
}

impl Pipeline {
    /// The records of `patients` as held here; a patient no longer held has none.
    pub(super) async fn held_records(
        &self,
        patients: &[String],
    ) -> Result<BTreeMap<String, HeldRecord>, PipelineError> {
        let mut out = BTreeMap::new();
        for batch in patients.chunks(COMPARTMENT_BATCH) {
            let mut held: BTreeMap<String, Value> = BTreeMap::new();
            for stored in self.store.patients_by_id(batch).await? {
                let value = serde_json::from_str(stored.content.as_deref().unwrap_or("{}"))
                    .unwrap_or(Value::Null);
                held.insert(stored.id.to_string(), value);
            }
            // Who shares an identifier with whom (the same system, or none on both sides).
            let mut values: Vec<String> = held
                .values()
                .flat_map(identifiers)
                .map(|(_, value)| value)
                .collect();
            values.sort();
            values.dedup();
            let sharing = self.store.patients_with_identifier_values(&values).await?;
            let mut linked: BTreeMap<&str, Vec<String>> = BTreeMap::new();
            for (id, patient) in &held {
                let own = identifiers(patient);
                let others = linked.entry(id.as_str()).or_default();
                for (other, system, value) in &sharing {
                    if other != id
                        && own.iter().any(|(s, v)| s == system && v == value)
                        && !others.contains(other)
                    {
                        others.push(other.clone());
                    }
                }
            }
            let mut compartments: Vec<String> = held.keys().cloned().collect();
            compartments.extend(linked.values().flatten().cloned());
            compartments.sort();
            compartments.dedup();
            // Each patient's resources, type by type in the order an assessment reads them.
            let mut resources: BTreeMap<String, Vec<Value>> = BTreeMap::new();
            for t in INPUT_TYPES {
                for (patient, stored) in self.store.compartment_resources(t, &compartments).await? {
                    let Some(value) = stored
                        .content
                        .as_deref()
                        .and_then(|c| serde_json::from_str::<Value>(c).ok())
                    else {
                        continue;
                    };
                    if !ai_asserted(&value) {
                        resources.entry(patient).or_default().push(value);
                    }
                }
            }
            for (id, patient) in &held {
                let own = resources.get(id).into_iter().flatten();
                let others = linked
                    .get(id.as_str())
                    .into_iter()
                    .flatten()
                    .filter_map(|other| resources.get(other))
                    .flatten();
                out.insert(
                    id.clone(),
                    HeldRecord {
                        context: PatientContext::from_resources(patient, own.chain(others)),
                        organization: organization(patient),
                    },
                );
            }
        }
        tracing::debug!(
            patients = patients.len(),
            held = out.len(),
            "records read for monitoring"
        );
        Ok(out)
    }
}
