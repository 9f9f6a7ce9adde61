//! Many patients' compartments at once, for jobs that read every patient's record (the
//! monitoring): one statement per resource type for a batch of patients, where a record read
//! patient by patient costs a search (and its count) per type and patient.

use sqlx::Row;

use super::resources::{StoredResource, current_from_row};
use super::{Store, StoreError, values_statement};
use crate::domain::ResourceType;

/// Patients per statement: well under SQLite's limit on bound values.
pub const COMPARTMENT_BATCH: usize = 500;

impl Store {
    /// The current resources of type `t` in the compartment of each of `patients` (as the
    /// `patient` search parameter names them), as (patient id, resource), by patient, then in
    /// the order a search gives by default (`_lastUpdated`, then id). A resource in several of
    /// these compartments comes once for each.
    pub async fn compartment_resources(
        &self,
        t: ResourceType,
        patients: &[String],
    ) -> Result<Vec<(String, StoredResource)>, StoreError> {
        let mut out = Vec::new();
        for batch in patients.chunks(COMPARTMENT_BATCH) {
            // The type is one of the service's own names, never the caller's text.
            let prefix = format!(
                "SELECT s.value AS patient, r.id, r.version_id, r.last_updated_ms, r.deleted, \
                 r.content FROM search_index s JOIN resources r \
                 ON r.resource_type = s.resource_type AND r.id = s.id \
                 WHERE s.resource_type = '{}' AND s.param = 'patient' AND s.system = 'Patient' \
                 AND r.deleted = 0 AND s.value IN ",
                t.as_str()
            );
            let mut sql = values_statement(self.backend, &prefix, batch.len(), 1);
            sql.push_str(" ORDER BY s.value, r.last_updated_ms, r.id");
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for patient in batch {
                query = query.bind(patient);
            }
            for row in query.fetch_all(&self.pool).await? {
                let patient: String = row.try_get("patient")?;
                out.push((patient, current_from_row(t, &row)?));
            }
        }
        Ok(out)
    }

    /// The current Patients among `ids`, by id.
    pub async fn patients_by_id(&self, ids: &[String]) -> Result<Vec<StoredResource>, StoreError> {
        let mut out = Vec::new();
        for batch in ids.chunks(COMPARTMENT_BATCH) {
            let prefix = "SELECT id, version_id, last_updated_ms, deleted, content FROM resources \
                 WHERE resource_type = 'Patient' AND deleted = 0 AND id IN ";
            let sql = values_statement(self.backend, prefix, batch.len(), 1);
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for id in batch {
                query = query.bind(id);
            }
            for row in query.fetch_all(&self.pool).await? {
                out.push(current_from_row(ResourceType::Patient, &row)?);
            }
        }
        Ok(out)
    }

    /// The Patients (ids) whose `identifier` search entries have one of `values`, with the
    /// entry's system and value: who may be the same person as a patient holding that value.
    pub async fn patients_with_identifier_values(
        &self,
        values: &[String],
    ) -> Result<Vec<(String, Option<String>, String)>, StoreError> {
        let mut out = Vec::new();
        for batch in values.chunks(COMPARTMENT_BATCH) {
            let prefix = "SELECT s.id, s.system, s.value FROM search_index s JOIN resources r \
                 ON r.resource_type = s.resource_type AND r.id = s.id \
                 WHERE s.resource_type = 'Patient' AND s.param = 'identifier' \
                 AND r.deleted = 0 AND s.value IN ";
            let sql = values_statement(self.backend, prefix, batch.len(), 1);
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for value in batch {
                query = query.bind(value);
            }
            for row in query.fetch_all(&self.pool).await? {
                out.push((
                    row.try_get("id")?,
                    row.try_get("system")?,
                    row.try_get("value")?,
                ));
            }
        }
        Ok(out)
    }
}
