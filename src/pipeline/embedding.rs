//! Image embeddings: every decodable instance received is embedded by the image encoder, and
//! the embeddings are pooled per series and per study.
//!
//! Pooling: an instance's embedding is the mean of its frames' embeddings (a multi-frame
//! instance counts as one image); a series' embedding is the mean of its instances'; a study's
//! is the mean of its series', so that a 300-slice CT series and a two-view radiograph series
//! weigh the same in the study. Every stored embedding names the model and version that made
//! it; a version change (a new manifest entry) makes them stale, and they are computed again.
//! Nothing else recomputes an instance's embedding, except a new file for the same instance.
//!
//! The embedding worker runs in the background: ingest wakes it, and at start it catches up
//! with whatever was received while it was not running (or under another model version).

use std::collections::BTreeMap;
use std::sync::Arc;

use futures_util::StreamExt;
use serde::Serialize;

use super::{Pipeline, PipelineError};
use crate::dicom::{self, DecodedImage};
use crate::domain::{DicomUid, ModelVersion};
use crate::encoders::{Admission, BatchedEncoder, Frame, ImageEncoder, preprocess};
use crate::error::error_chain;
use crate::store::{InstanceToEmbed, StudyEmbeddings, WorkKind};
use crate::telemetry::spawn_blocking_with_tracing;

/// Frames encoded in one forward pass or queued at once: bounds memory for long multi-frame
/// instances.
const FRAMES_PER_PASS: usize = 16;

/// Instances the worker takes from the database in one pass.
const WORKER_PASS: u32 = 256;

/// How long a replica's claim on an instance to embed lasts: past it, the replica is taken
/// for dead and another embeds the instance.
const EMBEDDING_LEASE: std::time::Duration = std::time::Duration::from_secs(600);

/// How often an idle worker looks for instances nobody woke it for.
const EMBEDDING_POLL: std::time::Duration = std::time::Duration::from_secs(30);

/// One instance's embedding, with the model that made it.
#[derive(Clone, Debug, Serialize)]
pub struct InstanceEmbedding {
    pub model: String,
    pub model_version: String,
    pub frames: usize,
    /// Mean of the frames' embeddings.
    pub embedding: Vec<f32>,
}

/// Decodes `bytes` (a Part 10 file) and embeds it with `encoder` (named `model`), in the
/// calling thread.
pub fn embed_dicom(
    encoder: &ImageEncoder,
    model: &str,
    bytes: &[u8],
) -> Result<InstanceEmbedding, PipelineError> {
    let image = dicom::decode_image(bytes)?;
    let frames = frames_of(&image);
    let mut sum = MeanAccumulator::new(encoder.entry.embedding_size);
    for chunk in frames.chunks(FRAMES_PER_PASS) {
        for embedding in encoder.embed(chunk)? {
            sum.add(&embedding);
        }
    }
    Ok(InstanceEmbedding {
        model: model.to_owned(),
        model_version: encoder.entry.version.clone(),
        frames: frames.len(),
        embedding: sum.mean(),
    })
}

fn frames_of(image: &DecodedImage) -> Vec<Frame<'_>> {
    image
        .frames
        .iter()
        .map(|values| Frame {
            rows: image.rows as usize,
            columns: image.columns as usize,
            channels: usize::from(image.channels),
            values,
        })
        .collect()
}

/// Running element-wise mean of equally long vectors.
struct MeanAccumulator {
    sum: Vec<f64>,
    count: usize,
}

impl MeanAccumulator {
    fn new(len: usize) -> Self {
        Self {
            sum: vec![0.0; len],
            count: 0,
        }
    }

    fn add(&mut self, v: &[f32]) {
        for (s, x) in self.sum.iter_mut().zip(v) {
            *s += f64::from(*x);
        }
        self.count += 1;
    }

    fn mean(self) -> Vec<f32> {
        let n = self.count.max(1) as f64;
        self.sum.into_iter().map(|s| (s / n) as f32).collect()
    }
}

/// A study's embeddings, as `GET /embeddings/studies/{uid}` shows them.
#[derive(Clone, Debug)]
pub struct StudyEmbeddingReport {
    pub model: ModelVersion,
    pub embeddings: StudyEmbeddings,
}

impl Pipeline {
    fn encoder(&self) -> Result<&BatchedEncoder, PipelineError> {
        self.image_encoder
            .as_ref()
            .ok_or(PipelineError::EncoderDisabled)
    }

    /// The image encoder in use, when one is loaded.
    pub fn image_model(&self) -> Option<ModelVersion> {
        self.image_encoder.as_ref().map(model_version)
    }

    /// Embeds an uploaded Part 10 file through the batching queue, refusing at once when the
    /// queue is full. Nothing is stored.
    pub async fn embed_upload(&self, bytes: Vec<u8>) -> Result<InstanceEmbedding, PipelineError> {
        let encoder = self.encoder()?.clone();
        let image = spawn_blocking_with_tracing(move || dicom::decode_image(&bytes))
            .await
            .map_err(PipelineError::Blocking)??;
        let (frames, embedding) = embed_image(&encoder, Arc::new(image), Admission::Reject).await?;
        Ok(InstanceEmbedding {
            model: encoder.name().to_owned(),
            model_version: encoder.entry().version.clone(),
            frames,
            embedding,
        })
    }

    /// A study's embeddings by the loaded model; `None` when the study was never received.
    pub async fn study_embeddings(
        &self,
        study_uid: &DicomUid,
    ) -> Result<Option<StudyEmbeddingReport>, PipelineError> {
        let model = model_version(self.encoder()?);
        if self.store.study(study_uid).await?.is_none() {
            return Ok(None);
        }
        let embeddings = self.store.study_embeddings(study_uid, &model).await?;
        Ok(Some(StudyEmbeddingReport { model, embeddings }))
    }

    /// Wakes the embedding worker after an instance was stored.
    pub(super) fn instance_stored(&self) {
        if self.image_encoder.is_some() {
            self.embedding_wanted.notify_one();
        }
    }

    /// Embeds every decodable instance that lacks a current embedding, then sleeps until ingest
    /// wakes it. Runs until the process ends; errors are logged and retried.
    pub async fn run_embedding_worker(self) {
        let Ok(encoder) = self.encoder().cloned() else {
            return;
        };
        loop {
            match self.embed_pending(&encoder).await {
                // Woken by this replica's ingest, or after a while for what another replica
                // received (or left unfinished when it died).
                Ok(0) => {
                    let _ = tokio::time::timeout(EMBEDDING_POLL, self.embedding_wanted.notified())
                        .await;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(error = %error_chain(&e), "embedding pass failed; retrying");
                    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                }
            }
        }
    }

    /// Embeds what a study still lacks, now, and pools its series and the study: an assessment
    /// that needs the study does not wait for the worker. Returns how many instances it
    /// embedded.
    pub async fn embed_study_now(&self, study_uid: &DicomUid) -> Result<usize, PipelineError> {
        let encoder = self.encoder()?.clone();
        let model = model_version(&encoder);
        let pending = self
            .store
            .study_instances_to_embed(&model, study_uid, u32::MAX / 2)
            .await?;
        if pending.is_empty() {
            self.pool_study_if_behind(study_uid, &model).await?;
            return Ok(0);
        }
        self.embed_instances(&encoder, &model, &pending).await?;
        Ok(pending.len())
    }

    /// Pools a study whose instances are all embedded but whose pooled embedding does not
    /// count them all yet: the worker saves instance embeddings one by one and pools after
    /// its whole pass, so an assessment arriving in between would otherwise find no study
    /// embedding.
    async fn pool_study_if_behind(
        &self,
        study_uid: &DicomUid,
        model: &ModelVersion,
    ) -> Result<(), PipelineError> {
        let current = self.store.study_embeddings(study_uid, model).await?;
        let pooled = current.study.as_ref().map_or(0, |s| s.instances);
        if current.embedded == 0 || pooled == current.embedded {
            return Ok(());
        }
        let Some(study) = self.store.study(study_uid).await? else {
            return Ok(());
        };
        for series in &study.series {
            self.pool_series(&series.series_uid, study_uid, model)
                .await?;
        }
        self.pool_study(study_uid, model).await
    }

    /// One pass: embeds up to [`WORKER_PASS`] instances, several at a time so that the
    /// batching thread can fill its batches, then pools the series and studies they belong
    /// to. Returns how many instances it embedded (or recorded as failed).
    pub async fn embed_pending(&self, encoder: &BatchedEncoder) -> Result<usize, PipelineError> {
        let model = model_version(encoder);
        let listed = self.store.instances_to_embed(&model, WORKER_PASS).await?;
        // Replicas on one database each embed the instances they claim.
        let mut pending = Vec::with_capacity(listed.len());
        for instance in listed {
            let uid = instance.sop_instance_uid.to_string();
            if self
                .store
                .claim_work(WorkKind::Embedding, &uid, EMBEDDING_LEASE)
                .await?
            {
                pending.push(instance);
            }
        }
        if pending.is_empty() {
            return Ok(0);
        }
        let embedded = self.embed_instances(encoder, &model, &pending).await;
        let uids: Vec<String> = pending
            .iter()
            .map(|i| i.sop_instance_uid.to_string())
            .collect();
        let uids: Vec<&str> = uids.iter().map(String::as_str).collect();
        self.store.release_work(WorkKind::Embedding, &uids).await?;
        embedded?;
        Ok(pending.len())
    }

    /// Embeds `pending`, several at a time so that the batching thread can fill its batches,
    /// then pools the series and studies they belong to.
    async fn embed_instances(
        &self,
        encoder: &BatchedEncoder,
        model: &ModelVersion,
        pending: &[InstanceToEmbed],
    ) -> Result<(), PipelineError> {
        let started = std::time::Instant::now();
        let concurrency = (encoder.max_batch_size() / 2).max(2);
        // Futures do nothing until polled: at most `concurrency` run at once.
        let jobs: Vec<_> = pending
            .iter()
            .map(|instance| self.embed_stored_instance(encoder, model, instance))
            .collect();
        let results: Vec<Result<(), PipelineError>> = futures_util::stream::iter(jobs)
            .buffer_unordered(concurrency)
            .collect()
            .await;
        results.into_iter().collect::<Result<(), _>>()?;
        let mut series: BTreeMap<&DicomUid, &DicomUid> = BTreeMap::new();
        for instance in pending {
            series.insert(&instance.series_uid, &instance.study_uid);
        }
        let mut studies: Vec<&DicomUid> = series.values().copied().collect();
        studies.sort();
        studies.dedup();
        for (series_uid, study_uid) in &series {
            self.pool_series(series_uid, study_uid, model).await?;
        }
        for study_uid in studies {
            self.pool_study(study_uid, model).await?;
        }
        tracing::info!(
            instances = pending.len(),
            series = series.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            model = %model.name,
            "instances embedded"
        );
        Ok(())
    }

    /// Embeds one stored instance and records the embedding, or the reason it failed. Only a
    /// database failure is an error: a file that no longer decodes is recorded, not retried.
    async fn embed_stored_instance(
        &self,
        encoder: &BatchedEncoder,
        model: &ModelVersion,
        instance: &InstanceToEmbed,
    ) -> Result<(), PipelineError> {
        // Decoded at ingest by this process (the common case), or read back and decoded.
        let kept = self
            .decoded
            .as_ref()
            .and_then(|handoff| handoff.take(&instance.sha256));
        let decoded = match kept {
            Some(image) => Ok(image),
            None => {
                let files = self.files.clone();
                let hash = instance.sha256.clone();
                spawn_blocking_with_tracing(move || {
                    let bytes = files.read(&hash).map_err(PipelineError::FileStore)?;
                    Ok::<_, PipelineError>(Arc::new(dicom::decode_image(&bytes)?))
                })
                .await
                .map_err(PipelineError::Blocking)?
            }
        };
        let result = match decoded {
            Ok(image) => embed_image(encoder, image, Admission::Wait).await,
            Err(e) => Err(e),
        };
        match result {
            Ok((frames, embedding)) => {
                self.store
                    .save_instance_embedding(instance, model, Ok((frames, &embedding)))
                    .await?;
            }
            Err(e) if e.kind() == crate::error::ErrorKind::Unavailable => return Err(e),
            Err(e) => {
                let reason = error_chain(&e);
                tracing::warn!(sop_instance_uid = %instance.sop_instance_uid, reason, "instance could not be embedded");
                self.store
                    .save_instance_embedding(instance, model, Err(&reason))
                    .await?;
            }
        }
        Ok(())
    }

    async fn pool_series(
        &self,
        series_uid: &DicomUid,
        study_uid: &DicomUid,
        model: &ModelVersion,
    ) -> Result<(), PipelineError> {
        let embeddings = self
            .store
            .series_instance_embeddings(series_uid, model)
            .await?;
        let Some(first) = embeddings.first() else {
            return Ok(());
        };
        let mut mean = MeanAccumulator::new(first.len());
        for e in &embeddings {
            mean.add(e);
        }
        self.store
            .save_series_embedding(series_uid, study_uid, model, embeddings.len(), &mean.mean())
            .await?;
        Ok(())
    }

    async fn pool_study(
        &self,
        study_uid: &DicomUid,
        model: &ModelVersion,
    ) -> Result<(), PipelineError> {
        let series = self.store.study_series_embeddings(study_uid, model).await?;
        let Some(first) = series.first() else {
            return Ok(());
        };
        let mut mean = MeanAccumulator::new(first.embedding.len());
        for s in &series {
            mean.add(&s.embedding);
        }
        let instances = series.iter().map(|s| s.instances).sum();
        self.store
            .save_study_embedding(study_uid, model, series.len(), instances, &mean.mean())
            .await?;
        Ok(())
    }
}

fn model_version(encoder: &BatchedEncoder) -> ModelVersion {
    ModelVersion {
        name: encoder.name().to_owned(),
        version: encoder.entry().version.clone(),
    }
}

/// Embeds every frame of `image`, [`FRAMES_PER_PASS`] at a time, and returns the frame count
/// and the frames' mean embedding.
async fn embed_image(
    encoder: &BatchedEncoder,
    image: Arc<DecodedImage>,
    admission: Admission,
) -> Result<(usize, Vec<f32>), PipelineError> {
    let entry = encoder.entry().clone();
    let count = image.frames.len();
    if count == 0 {
        return Err(crate::encoders::EncoderError::EmptyImage.into());
    }
    let mut mean = MeanAccumulator::new(entry.embedding_size);
    for start in (0..count).step_by(FRAMES_PER_PASS) {
        let end = (start + FRAMES_PER_PASS).min(count);
        let image = image.clone();
        let entry = entry.clone();
        let inputs = spawn_blocking_with_tracing(move || {
            frames_of(&image)[start..end]
                .iter()
                .map(|frame| preprocess(frame, entry.input_size, &entry.normalisation))
                .collect::<Result<Vec<_>, _>>()
        })
        .await
        .map_err(PipelineError::Blocking)??;
        for embedding in encoder.embed(inputs, admission).await? {
            mean.add(&embedding);
        }
    }
    Ok((count, mean.mean()))
}
