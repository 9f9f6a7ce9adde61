//! Rows of image embeddings: per instance (with the file they were made from, or the error that
//! stopped them), and pooled per series and per study, each keyed by model name and tagged with
//! the model version. Vectors are stored as float32 little-endian bytes.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::imaging::{corrupt, stored_uid};
use super::{Store, StoreError};
use crate::domain::{ContentHash, DicomUid, Instant, ModelVersion};

/// An instance whose embedding for the current model is missing or stale.
#[derive(Clone, Debug)]
pub struct InstanceToEmbed {
    pub sop_instance_uid: DicomUid,
    pub series_uid: DicomUid,
    pub study_uid: DicomUid,
    pub sha256: ContentHash,
}

/// A pooled (series or study) embedding as stored.
#[derive(Clone, Debug)]
pub struct StoredPooledEmbedding {
    pub uid: DicomUid,
    pub model_version: String,
    /// Instances pooled into it.
    pub instances: i64,
    /// Series pooled into it (study embeddings only).
    pub series_count: Option<i64>,
    pub embedding: Vec<f32>,
    pub created: Instant,
}

/// Where a study's embeddings stand for one model.
#[derive(Clone, Debug)]
pub struct StudyEmbeddings {
    pub study: Option<StoredPooledEmbedding>,
    pub series: Vec<StoredPooledEmbedding>,
    /// Decodable instances not yet embedded with the current version.
    pub pending: i64,
    /// Instances embedded with the current version (pooled into `study` once it catches up).
    pub embedded: i64,
    /// Instances whose embedding failed, with the reason (no pixel values in it).
    pub failed: Vec<(DicomUid, String)>,
}

impl Store {
    /// Decodable instances with no embedding by `model` at its current version, or one made
    /// from an older file of the instance; oldest first.
    pub async fn instances_to_embed(
        &self,
        model: &ModelVersion,
        limit: u32,
    ) -> Result<Vec<InstanceToEmbed>, StoreError> {
        self.unembedded(model, None, limit).await
    }

    /// The same, of one study only (what an assessment must encode before it can use it).
    pub async fn study_instances_to_embed(
        &self,
        model: &ModelVersion,
        study: &DicomUid,
        limit: u32,
    ) -> Result<Vec<InstanceToEmbed>, StoreError> {
        self.unembedded(model, Some(study), limit).await
    }

    async fn unembedded(
        &self,
        model: &ModelVersion,
        study: Option<&DicomUid>,
        limit: u32,
    ) -> Result<Vec<InstanceToEmbed>, StoreError> {
        let sql = format!(
            "SELECT i.sop_instance_uid, i.series_uid, i.study_uid, i.sha256 \
             FROM dicom_instances i LEFT JOIN instance_embeddings e \
               ON e.sop_instance_uid = i.sop_instance_uid AND e.model = $1 \
             WHERE i.pixel_status = 'decodable' AND (e.sop_instance_uid IS NULL \
               OR e.model_version <> $2 OR e.sha256 <> i.sha256){} \
             ORDER BY i.received_ms, i.sop_instance_uid LIMIT $3",
            if study.is_some() {
                " AND i.study_uid = $4"
            } else {
                ""
            }
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&model.name)
            .bind(&model.version)
            .bind(i64::from(limit));
        if let Some(study) = study {
            query = query.bind(study.as_str().to_owned());
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                let sha: String = row.try_get("sha256")?;
                Ok(InstanceToEmbed {
                    sop_instance_uid: stored_uid(row, "sop_instance_uid")?,
                    series_uid: stored_uid(row, "series_uid")?,
                    study_uid: stored_uid(row, "study_uid")?,
                    sha256: ContentHash::parse(&sha).ok_or(corrupt("dicom_instances"))?,
                })
            })
            .collect()
    }

    /// Records an instance's embedding (`Ok((frames, vector))`) or why it failed (`Err`).
    pub async fn save_instance_embedding(
        &self,
        instance: &InstanceToEmbed,
        model: &ModelVersion,
        result: Result<(usize, &[f32]), &str>,
    ) -> Result<(), StoreError> {
        let (frames, embedding, error) = match result {
            Ok((frames, vector)) => (frames, Some(to_bytes(vector)), None),
            Err(reason) => (0, None, Some(reason)),
        };
        sqlx::query(
            "INSERT INTO instance_embeddings (sop_instance_uid, model, model_version, sha256, \
               series_uid, study_uid, frames, embedding, error, created_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (sop_instance_uid, model) DO UPDATE SET \
               model_version = excluded.model_version, sha256 = excluded.sha256, \
               series_uid = excluded.series_uid, study_uid = excluded.study_uid, \
               frames = excluded.frames, embedding = excluded.embedding, \
               error = excluded.error, created_ms = excluded.created_ms",
        )
        .bind(instance.sop_instance_uid.as_str())
        .bind(&model.name)
        .bind(&model.version)
        .bind(instance.sha256.as_str())
        .bind(instance.series_uid.as_str())
        .bind(instance.study_uid.as_str())
        .bind(i64::try_from(frames).unwrap_or(i64::MAX))
        .bind(embedding)
        .bind(error)
        .bind(Instant::now().epoch_millis())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The current-version instance embeddings of a series.
    pub async fn series_instance_embeddings(
        &self,
        series_uid: &DicomUid,
        model: &ModelVersion,
    ) -> Result<Vec<Vec<f32>>, StoreError> {
        let rows = sqlx::query(
            "SELECT e.embedding FROM instance_embeddings e JOIN dicom_instances i \
               ON i.sop_instance_uid = e.sop_instance_uid AND i.sha256 = e.sha256 \
             WHERE i.series_uid = $1 AND e.model = $2 AND e.model_version = $3 \
               AND e.embedding IS NOT NULL ORDER BY e.sop_instance_uid",
        )
        .bind(series_uid.as_str())
        .bind(&model.name)
        .bind(&model.version)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|row| vector(row, "embedding")).collect()
    }

    /// Stores a series' pooled embedding.
    pub async fn save_series_embedding(
        &self,
        series_uid: &DicomUid,
        study_uid: &DicomUid,
        model: &ModelVersion,
        instances: usize,
        embedding: &[f32],
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO series_embeddings (series_uid, model, model_version, study_uid, \
               instances, embedding, created_ms) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (series_uid, model) DO UPDATE SET \
               model_version = excluded.model_version, study_uid = excluded.study_uid, \
               instances = excluded.instances, embedding = excluded.embedding, \
               created_ms = excluded.created_ms",
        )
        .bind(series_uid.as_str())
        .bind(&model.name)
        .bind(&model.version)
        .bind(study_uid.as_str())
        .bind(i64::try_from(instances).unwrap_or(i64::MAX))
        .bind(to_bytes(embedding))
        .bind(Instant::now().epoch_millis())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The current-version series embeddings of a study.
    pub async fn study_series_embeddings(
        &self,
        study_uid: &DicomUid,
        model: &ModelVersion,
    ) -> Result<Vec<StoredPooledEmbedding>, StoreError> {
        let rows = sqlx::query(
            "SELECT series_uid, model_version, instances, embedding, created_ms \
             FROM series_embeddings WHERE study_uid = $1 AND model = $2 \
             AND model_version = $3 ORDER BY series_uid",
        )
        .bind(study_uid.as_str())
        .bind(&model.name)
        .bind(&model.version)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| pooled(row, "series_uid", None))
            .collect()
    }

    /// Stores a study's pooled embedding.
    pub async fn save_study_embedding(
        &self,
        study_uid: &DicomUid,
        model: &ModelVersion,
        series_count: usize,
        instances: i64,
        embedding: &[f32],
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO study_embeddings (study_uid, model, model_version, series_count, \
               instances, embedding, created_ms) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (study_uid, model) DO UPDATE SET \
               model_version = excluded.model_version, series_count = excluded.series_count, \
               instances = excluded.instances, embedding = excluded.embedding, \
               created_ms = excluded.created_ms",
        )
        .bind(study_uid.as_str())
        .bind(&model.name)
        .bind(&model.version)
        .bind(i64::try_from(series_count).unwrap_or(i64::MAX))
        .bind(instances)
        .bind(to_bytes(embedding))
        .bind(Instant::now().epoch_millis())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A study's embeddings by `model` at its current version, with what is still pending and
    /// what failed.
    pub async fn study_embeddings(
        &self,
        study_uid: &DicomUid,
        model: &ModelVersion,
    ) -> Result<StudyEmbeddings, StoreError> {
        let study = sqlx::query(
            "SELECT study_uid, model_version, series_count, instances, embedding, created_ms \
             FROM study_embeddings WHERE study_uid = $1 AND model = $2 AND model_version = $3",
        )
        .bind(study_uid.as_str())
        .bind(&model.name)
        .bind(&model.version)
        .fetch_optional(&self.pool)
        .await?
        .map(|row| pooled(&row, "study_uid", Some("series_count")))
        .transpose()?;
        let series = self.study_series_embeddings(study_uid, model).await?;
        let pending: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM dicom_instances i LEFT JOIN instance_embeddings e \
               ON e.sop_instance_uid = i.sop_instance_uid AND e.model = $2 \
             WHERE i.study_uid = $1 AND i.pixel_status = 'decodable' AND \
               (e.sop_instance_uid IS NULL OR e.model_version <> $3 OR e.sha256 <> i.sha256)",
        )
        .bind(study_uid.as_str())
        .bind(&model.name)
        .bind(&model.version)
        .fetch_one(&self.pool)
        .await?
        .try_get("n")?;
        let embedded: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM instance_embeddings e JOIN dicom_instances i \
               ON i.sop_instance_uid = e.sop_instance_uid AND i.sha256 = e.sha256 \
             WHERE i.study_uid = $1 AND e.model = $2 AND e.model_version = $3 \
               AND e.embedding IS NOT NULL",
        )
        .bind(study_uid.as_str())
        .bind(&model.name)
        .bind(&model.version)
        .fetch_one(&self.pool)
        .await?
        .try_get("n")?;
        let failed_rows = sqlx::query(
            "SELECT sop_instance_uid, error FROM instance_embeddings \
             WHERE study_uid = $1 AND model = $2 AND model_version = $3 AND error IS NOT NULL \
             ORDER BY sop_instance_uid",
        )
        .bind(study_uid.as_str())
        .bind(&model.name)
        .bind(&model.version)
        .fetch_all(&self.pool)
        .await?;
        let failed = failed_rows
            .iter()
            .map(|row| {
                Ok((
                    stored_uid(row, "sop_instance_uid")?,
                    row.try_get::<String, _>("error")?,
                ))
            })
            .collect::<Result<_, StoreError>>()?;
        Ok(StudyEmbeddings {
            study,
            series,
            pending,
            embedded,
            failed,
        })
    }
}

fn pooled(
    row: &AnyRow,
    uid_column: &'static str,
    series_column: Option<&'static str>,
) -> Result<StoredPooledEmbedding, StoreError> {
    Ok(StoredPooledEmbedding {
        uid: stored_uid(row, uid_column)?,
        model_version: row.try_get("model_version")?,
        instances: row.try_get("instances")?,
        series_count: series_column.map(|c| row.try_get(c)).transpose()?,
        embedding: vector(row, "embedding")?,
        created: Instant::from_epoch_millis(row.try_get("created_ms")?),
    })
}

fn to_bytes(vector: &[f32]) -> Vec<u8> {
    vector.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn vector(row: &AnyRow, column: &str) -> Result<Vec<f32>, StoreError> {
    let bytes: Vec<u8> = row.try_get(column)?;
    if !bytes.len().is_multiple_of(4) {
        return Err(corrupt("embeddings"));
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}
