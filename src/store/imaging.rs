//! Rows of the DICOM store: studies, series, instances and the files stored for them. An
//! instance is recorded only after its file is durable in the [`FileStore`]; recording it bumps
//! its study's generation, which marks the study's ImagingStudy resource as stale until
//! [`Store::mark_study_refreshed`] catches up.
//!
//! [`FileStore`]: super::FileStore

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::{Store, StoreError};
use crate::domain::{
    ContentHash, DicomInstance, DicomUid, Instant, PatientAttributes, PixelStatus, ResourceId,
    SeriesAttributes, StoreOutcome, StudyAttributes,
};

/// A study as stored, with its series and their instances, ordered by number.
#[derive(Clone, Debug)]
pub struct StoredStudy {
    pub study_uid: DicomUid,
    pub patient: PatientAttributes,
    pub study: StudyAttributes,
    pub imaging_study_id: ResourceId,
    /// Bumped by every stored instance; pass it back to `mark_study_refreshed`.
    pub generation: i64,
    pub updated: Instant,
    pub series: Vec<StoredSeries>,
}

#[derive(Clone, Debug)]
pub struct StoredSeries {
    pub series_uid: DicomUid,
    pub attributes: SeriesAttributes,
    pub instances: Vec<StoredInstance>,
}

#[derive(Clone, Debug)]
pub struct StoredInstance {
    pub sop_instance_uid: DicomUid,
    pub sop_class_uid: DicomUid,
    pub instance_number: Option<i64>,
    pub number_of_frames: Option<i64>,
    pub sha256: ContentHash,
}

/// One study in a study-level query answer (QIDO-RS).
#[derive(Clone, Debug)]
pub struct StudySummary {
    pub study_uid: DicomUid,
    pub patient: PatientAttributes,
    pub study: StudyAttributes,
    pub modalities: Vec<String>,
    pub series_count: i64,
    pub instance_count: i64,
}

/// Study-level matching keys; all given keys must match exactly.
#[derive(Clone, Debug, Default)]
pub struct StudyFilter {
    pub patient_id: Option<String>,
    pub study_uid: Option<DicomUid>,
    pub accession_number: Option<String>,
    pub limit: u32,
    pub offset: u32,
}

const STUDY_COLUMNS: &str = "study_uid, patient_id, patient_issuer, patient_name, \
    patient_birth_date, patient_sex, study_date, study_time, accession_number, \
    study_description, study_id, referring_physician, imaging_study_id, generation, updated_ms";

impl Store {
    /// Records an instance whose file (`sha256`, `size` bytes) is already durable. Sending the
    /// same bytes again changes nothing; other bytes for the same SOP instance become current.
    pub async fn save_instance(
        &self,
        instance: &DicomInstance,
        sha256: &ContentHash,
        size: u64,
        pixels: &PixelStatus,
    ) -> Result<StoreOutcome, StoreError> {
        let mut tx = self.begin().await?;
        let conn = tx.connection();
        let now = Instant::now().epoch_millis();
        let previous: Option<String> =
            sqlx::query("SELECT sha256 FROM dicom_instances WHERE sop_instance_uid = $1")
                .bind(instance.sop_instance_uid.as_str())
                .fetch_optional(&mut *conn)
                .await?
                .map(|row| row.try_get("sha256"))
                .transpose()?;
        if previous.as_deref() == Some(sha256.as_str()) {
            return Ok(StoreOutcome::Unchanged);
        }
        let size = i64::try_from(size).unwrap_or(i64::MAX);
        sqlx::query(
            "INSERT INTO dicom_files (sha256, sop_instance_uid, size_bytes, received_ms) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (sha256) DO NOTHING",
        )
        .bind(sha256.as_str())
        .bind(instance.sop_instance_uid.as_str())
        .bind(size)
        .bind(now)
        .execute(&mut *conn)
        .await?;
        upsert_study(conn, instance, now).await?;
        upsert_series(conn, instance, now).await?;
        upsert_instance(conn, instance, sha256, size, pixels, now).await?;
        tx.commit().await?;
        Ok(match previous {
            None => StoreOutcome::Created,
            Some(_) => StoreOutcome::Replaced,
        })
    }

    /// Studies whose ImagingStudy resource lags behind their instances.
    pub async fn stale_studies(&self, limit: u32) -> Result<Vec<DicomUid>, StoreError> {
        let rows = sqlx::query(
            "SELECT study_uid FROM dicom_studies WHERE refreshed_generation < generation \
             ORDER BY updated_ms LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| stored_uid(row, "study_uid"))
            .collect()
    }

    /// A study with all its series and instances, or `None` when it was never received.
    pub async fn study(&self, study_uid: &DicomUid) -> Result<Option<StoredStudy>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let sql = format!("SELECT {STUDY_COLUMNS} FROM dicom_studies WHERE study_uid = $1");
        let Some(row) = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(study_uid.as_str())
            .fetch_optional(&mut *conn)
            .await?
        else {
            return Ok(None);
        };
        let (patient, study) = study_attributes(&row)?;
        let imaging_study_id: String = row.try_get("imaging_study_id")?;
        let series_rows = sqlx::query(
            "SELECT series_uid, modality, series_number, series_description, body_part \
             FROM dicom_series WHERE study_uid = $1 ORDER BY series_number, series_uid",
        )
        .bind(study_uid.as_str())
        .fetch_all(&mut *conn)
        .await?;
        let instance_rows = sqlx::query(
            "SELECT sop_instance_uid, series_uid, sop_class_uid, instance_number, \
             number_of_frames, sha256 FROM dicom_instances WHERE study_uid = $1 \
             ORDER BY instance_number, sop_instance_uid",
        )
        .bind(study_uid.as_str())
        .fetch_all(&mut *conn)
        .await?;
        let mut series = Vec::with_capacity(series_rows.len());
        for row in &series_rows {
            series.push(StoredSeries {
                series_uid: stored_uid(row, "series_uid")?,
                attributes: SeriesAttributes {
                    modality: row.try_get("modality")?,
                    number: row.try_get("series_number")?,
                    description: row.try_get("series_description")?,
                    body_part: row.try_get("body_part")?,
                },
                instances: Vec::new(),
            });
        }
        for row in &instance_rows {
            let series_uid = stored_uid(row, "series_uid")?;
            let sha: String = row.try_get("sha256")?;
            let instance = StoredInstance {
                sop_instance_uid: stored_uid(row, "sop_instance_uid")?,
                sop_class_uid: stored_uid(row, "sop_class_uid")?,
                instance_number: row.try_get("instance_number")?,
                number_of_frames: row.try_get("number_of_frames")?,
                sha256: ContentHash::parse(&sha).ok_or(corrupt("dicom_instances"))?,
            };
            if let Some(s) = series.iter_mut().find(|s| s.series_uid == series_uid) {
                s.instances.push(instance);
            }
        }
        Ok(Some(StoredStudy {
            study_uid: study_uid.clone(),
            patient,
            study,
            imaging_study_id: ResourceId::parse(&imaging_study_id)
                .map_err(|_| corrupt("dicom_studies"))?,
            generation: row.try_get("generation")?,
            updated: Instant::from_epoch_millis(row.try_get("updated_ms")?),
            series,
        }))
    }

    /// Records that the study's ImagingStudy reflects `generation`; a later instance keeps it
    /// stale.
    pub async fn mark_study_refreshed(
        &self,
        study_uid: &DicomUid,
        generation: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE dicom_studies SET refreshed_generation = $1 \
             WHERE study_uid = $2 AND refreshed_generation < $1",
        )
        .bind(generation)
        .bind(study_uid.as_str())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Studies matching `filter`, newest study date first, with their series and instance
    /// counts and modalities.
    pub async fn find_studies(
        &self,
        filter: &StudyFilter,
    ) -> Result<Vec<StudySummary>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let mut sql = format!("SELECT {STUDY_COLUMNS} FROM dicom_studies WHERE 1 = 1");
        let mut binds: Vec<String> = Vec::new();
        for (column, value) in [
            ("patient_id", filter.patient_id.clone()),
            (
                "study_uid",
                filter.study_uid.as_ref().map(|u| u.to_string()),
            ),
            ("accession_number", filter.accession_number.clone()),
        ] {
            if let Some(v) = value {
                binds.push(v);
                sql.push_str(&format!(" AND {column} = ${}", binds.len()));
            }
        }
        sql.push_str(&format!(
            " ORDER BY study_date DESC, study_uid LIMIT {} OFFSET {}",
            filter.limit, filter.offset
        ));
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for b in &binds {
            query = query.bind(b.as_str());
        }
        let rows = query.fetch_all(&mut *conn).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let study_uid = stored_uid(row, "study_uid")?;
            let (patient, study) = study_attributes(row)?;
            let counts = sqlx::query(
                "SELECT COUNT(*) AS instances, COUNT(DISTINCT series_uid) AS series \
                 FROM dicom_instances WHERE study_uid = $1",
            )
            .bind(study_uid.as_str())
            .fetch_one(&mut *conn)
            .await?;
            let modalities = sqlx::query(
                "SELECT DISTINCT modality FROM dicom_series \
                 WHERE study_uid = $1 AND modality IS NOT NULL ORDER BY modality",
            )
            .bind(study_uid.as_str())
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|r| r.try_get::<String, _>("modality"))
            .collect::<Result<Vec<_>, _>>()?;
            out.push(StudySummary {
                study_uid,
                patient,
                study,
                modalities,
                series_count: counts.try_get("series")?,
                instance_count: counts.try_get("instances")?,
            });
        }
        Ok(out)
    }
}

async fn upsert_study(
    conn: &mut AnyConnection,
    i: &DicomInstance,
    now: i64,
) -> Result<(), StoreError> {
    // Later instances refine, never erase, what earlier ones said about the patient and study.
    sqlx::query(
        "INSERT INTO dicom_studies (study_uid, patient_id, patient_issuer, patient_name, \
         patient_birth_date, patient_sex, study_date, study_time, accession_number, \
         study_description, study_id, referring_physician, imaging_study_id, generation, \
         refreshed_generation, updated_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 1, 0, $14) \
         ON CONFLICT (study_uid) DO UPDATE SET \
         patient_id = COALESCE(excluded.patient_id, dicom_studies.patient_id), \
         patient_issuer = COALESCE(excluded.patient_issuer, dicom_studies.patient_issuer), \
         patient_name = COALESCE(excluded.patient_name, dicom_studies.patient_name), \
         patient_birth_date = COALESCE(excluded.patient_birth_date, dicom_studies.patient_birth_date), \
         patient_sex = COALESCE(excluded.patient_sex, dicom_studies.patient_sex), \
         study_date = COALESCE(excluded.study_date, dicom_studies.study_date), \
         study_time = COALESCE(excluded.study_time, dicom_studies.study_time), \
         accession_number = COALESCE(excluded.accession_number, dicom_studies.accession_number), \
         study_description = COALESCE(excluded.study_description, dicom_studies.study_description), \
         study_id = COALESCE(excluded.study_id, dicom_studies.study_id), \
         referring_physician = COALESCE(excluded.referring_physician, dicom_studies.referring_physician), \
         generation = dicom_studies.generation + 1, \
         updated_ms = excluded.updated_ms",
    )
    .bind(i.study_uid.as_str())
    .bind(i.patient.id.as_deref())
    .bind(i.patient.issuer.as_deref())
    .bind(i.patient.name.as_deref())
    .bind(i.patient.birth_date.as_deref())
    .bind(i.patient.sex.as_deref())
    .bind(i.study.date.as_deref())
    .bind(i.study.time.as_deref())
    .bind(i.study.accession_number.as_deref())
    .bind(i.study.description.as_deref())
    .bind(i.study.study_id.as_deref())
    .bind(i.study.referring_physician.as_deref())
    .bind(ResourceId::generate().to_string())
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn upsert_series(
    conn: &mut AnyConnection,
    i: &DicomInstance,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO dicom_series (series_uid, study_uid, modality, series_number, \
         series_description, body_part, updated_ms) VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (series_uid) DO UPDATE SET study_uid = excluded.study_uid, \
         modality = COALESCE(excluded.modality, dicom_series.modality), \
         series_number = COALESCE(excluded.series_number, dicom_series.series_number), \
         series_description = COALESCE(excluded.series_description, dicom_series.series_description), \
         body_part = COALESCE(excluded.body_part, dicom_series.body_part), \
         updated_ms = excluded.updated_ms",
    )
    .bind(i.series_uid.as_str())
    .bind(i.study_uid.as_str())
    .bind(i.series.modality.as_deref())
    .bind(i.series.number)
    .bind(i.series.description.as_deref())
    .bind(i.series.body_part.as_deref())
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn upsert_instance(
    conn: &mut AnyConnection,
    i: &DicomInstance,
    sha256: &ContentHash,
    size: i64,
    pixels: &PixelStatus,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO dicom_instances (sop_instance_uid, series_uid, study_uid, sop_class_uid, \
         instance_number, number_of_frames, rows_count, columns_count, transfer_syntax, sha256, \
         size_bytes, received_ms, pixel_status, pixel_error) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
         ON CONFLICT (sop_instance_uid) DO UPDATE SET series_uid = excluded.series_uid, \
         study_uid = excluded.study_uid, sop_class_uid = excluded.sop_class_uid, \
         instance_number = excluded.instance_number, number_of_frames = excluded.number_of_frames, \
         rows_count = excluded.rows_count, columns_count = excluded.columns_count, \
         transfer_syntax = excluded.transfer_syntax, sha256 = excluded.sha256, \
         size_bytes = excluded.size_bytes, received_ms = excluded.received_ms, \
         pixel_status = excluded.pixel_status, pixel_error = excluded.pixel_error",
    )
    .bind(i.sop_instance_uid.as_str())
    .bind(i.series_uid.as_str())
    .bind(i.study_uid.as_str())
    .bind(i.sop_class_uid.as_str())
    .bind(i.instance_number)
    .bind(i.number_of_frames)
    .bind(i.rows)
    .bind(i.columns)
    .bind(i.transfer_syntax_uid.as_str())
    .bind(sha256.as_str())
    .bind(size)
    .bind(now)
    .bind(pixels.as_str())
    .bind(pixels.reason())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

fn study_attributes(row: &AnyRow) -> Result<(PatientAttributes, StudyAttributes), StoreError> {
    Ok((
        PatientAttributes {
            id: row.try_get("patient_id")?,
            issuer: row.try_get("patient_issuer")?,
            name: row.try_get("patient_name")?,
            birth_date: row.try_get("patient_birth_date")?,
            sex: row.try_get("patient_sex")?,
        },
        StudyAttributes {
            date: row.try_get("study_date")?,
            time: row.try_get("study_time")?,
            accession_number: row.try_get("accession_number")?,
            description: row.try_get("study_description")?,
            study_id: row.try_get("study_id")?,
            referring_physician: row.try_get("referring_physician")?,
        },
    ))
}

pub(super) fn stored_uid(row: &AnyRow, column: &'static str) -> Result<DicomUid, StoreError> {
    let value: String = row.try_get(column)?;
    DicomUid::parse(&value).map_err(|_| corrupt("dicom store"))
}

pub(super) fn corrupt(table: &'static str) -> StoreError {
    StoreError::CorruptRow { table }
}
