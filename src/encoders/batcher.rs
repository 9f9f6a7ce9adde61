//! Dynamic batching: one dedicated thread owns a loaded model (an [`ImageEncoder`] or a
//! [`TextEncoder`], see [`BatchModel`]) and runs every forward pass; callers anywhere hand it
//! inputs (preprocessed images, texts) and await their embeddings. The thread
//! takes the first waiting image, then keeps collecting until the batch is full or the oldest
//! image has waited `max_wait`, so concurrent callers share forward passes while a lone caller
//! pays at most `max_wait` of latency.
//!
//! The queue is bounded by a semaphore of `queue_capacity` permits, one per queued image. A
//! caller that must not wait (an HTTP request) is refused at once when the queue is full
//! ([`Admission::Reject`], answered 429); background work waits for room
//! ([`Admission::Wait`]). An image whose caller has gone (request cancelled, connection closed)
//! is dropped before its batch runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use candle_core::{Device, Tensor};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use super::{EncoderError, ImageEncoder, ImageModelEntry, TextEncoder, TextModelEntry};

/// A model the batching thread can run: what one input is, how a batch of them is embedded.
pub trait BatchModel: Send + 'static {
    type Input: Send + 'static;
    /// The model's manifest entry.
    type Entry: Clone + std::fmt::Debug + Send + Sync + 'static;
    fn entry(&self) -> &Self::Entry;
    fn device(&self) -> &Device;
    /// Refuses an input the model cannot take, before it is queued.
    fn check(entry: &Self::Entry, input: &Self::Input) -> Result<(), EncoderError>;
    /// One embedding per input, in order.
    fn embed_batch(&self, inputs: Vec<Self::Input>) -> Result<Vec<Vec<f32>>, EncoderError>;
}

impl BatchModel for ImageEncoder {
    /// One image, `3 × size × size`, preprocessed.
    type Input = Vec<f32>;
    type Entry = ImageModelEntry;

    fn entry(&self) -> &ImageModelEntry {
        &self.entry
    }

    fn device(&self) -> &Device {
        ImageEncoder::device(self)
    }

    fn check(entry: &ImageModelEntry, input: &Vec<f32>) -> Result<(), EncoderError> {
        let size = entry.input_size;
        if input.len() == 3 * size * size {
            Ok(())
        } else {
            Err(EncoderError::EmptyImage)
        }
    }

    fn embed_batch(&self, inputs: Vec<Vec<f32>>) -> Result<Vec<Vec<f32>>, EncoderError> {
        let size = self.entry.input_size;
        let n = inputs.len();
        let data: Vec<f32> = inputs.into_iter().flatten().collect();
        let input = Tensor::from_vec(data, (n, 3, size, size), ImageEncoder::device(self))?;
        self.embed_input(&input)
    }
}

impl BatchModel for TextEncoder {
    type Input = String;
    type Entry = TextModelEntry;

    fn entry(&self) -> &TextModelEntry {
        &self.entry
    }

    fn device(&self) -> &Device {
        TextEncoder::device(self)
    }

    fn check(_: &TextModelEntry, _: &String) -> Result<(), EncoderError> {
        Ok(())
    }

    fn embed_batch(&self, inputs: Vec<String>) -> Result<Vec<Vec<f32>>, EncoderError> {
        let texts: Vec<&str> = inputs.iter().map(String::as_str).collect();
        self.embed(&texts)
    }
}

/// How the batching thread groups work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchSettings {
    /// Most images in one forward pass.
    pub max_batch_size: usize,
    /// Longest the first image of a batch waits for others.
    pub max_wait: Duration,
    /// Most images queued, not yet taken into a batch.
    pub queue_capacity: usize,
}

/// What a caller does when the queue is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Fail at once with [`EncoderError::QueueFull`].
    Reject,
    /// Wait for room.
    Wait,
}

struct Job<I> {
    input: I,
    reply: oneshot::Sender<Result<Vec<f32>, Arc<EncoderError>>>,
    /// The caller's span: what the inference thread logs about this input is logged in it.
    span: tracing::Span,
    /// Held while queued; released when the job is taken into a batch.
    _permit: OwnedSemaphorePermit,
}

/// A handle on the batching thread; cheap to clone. The thread stops when the last handle is
/// dropped.
pub struct Batched<M: BatchModel> {
    name: Arc<str>,
    entry: Arc<M::Entry>,
    device: Arc<str>,
    jobs: mpsc::Sender<Job<M::Input>>,
    room: Arc<Semaphore>,
    queue_capacity: usize,
    max_batch_size: usize,
    stats: Arc<BatchStats>,
}

/// The image encoder behind its batching thread.
pub type BatchedEncoder = Batched<ImageEncoder>;
/// The text encoder behind its batching thread.
pub type BatchedTextEncoder = Batched<TextEncoder>;

impl<M: BatchModel> Clone for Batched<M> {
    fn clone(&self) -> Self {
        Self {
            name: self.name.clone(),
            entry: self.entry.clone(),
            device: self.device.clone(),
            jobs: self.jobs.clone(),
            room: self.room.clone(),
            queue_capacity: self.queue_capacity,
            max_batch_size: self.max_batch_size,
            stats: self.stats.clone(),
        }
    }
}

impl<M: BatchModel> std::fmt::Debug for Batched<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batched")
            .field("name", &self.name)
            .field("entry", &self.entry)
            .field("device", &self.device)
            .finish_non_exhaustive()
    }
}

/// Counters of the batching thread's work since it started.
#[derive(Debug, Default)]
pub struct BatchStats {
    /// Forward passes run.
    pub batches: AtomicU64,
    /// Images embedded.
    pub images: AtomicU64,
    /// Images dropped because their caller had gone.
    pub abandoned: AtomicU64,
}

impl<M: BatchModel> Batched<M> {
    /// Moves `encoder` (named `name` in the manifest) onto a new inference thread.
    pub fn spawn(name: &str, encoder: M, settings: BatchSettings) -> std::io::Result<Self> {
        let (jobs, queue) = mpsc::channel::<Job<M::Input>>();
        let entry = Arc::new(encoder.entry().clone());
        let device = Arc::from(super::device_name(encoder.device()));
        let settings = BatchSettings {
            max_batch_size: settings.max_batch_size.max(1),
            queue_capacity: settings.queue_capacity.max(1),
            ..settings
        };
        let stats = Arc::new(BatchStats::default());
        let thread_stats = stats.clone();
        std::thread::Builder::new()
            .name(format!("inference-{name}"))
            .spawn(move || run_batches(&encoder, &queue, settings, &thread_stats))?;
        Ok(Self {
            name: Arc::from(name),
            entry,
            device,
            jobs,
            room: Arc::new(Semaphore::new(settings.queue_capacity)),
            queue_capacity: settings.queue_capacity,
            max_batch_size: settings.max_batch_size,
            stats,
        })
    }

    pub fn stats(&self) -> &BatchStats {
        &self.stats
    }

    /// The model's name in the manifest.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn entry(&self) -> &M::Entry {
        &self.entry
    }

    /// Where the model runs, `cpu` or `cuda:N`.
    pub fn device(&self) -> &str {
        &self.device
    }

    pub fn max_batch_size(&self) -> usize {
        self.max_batch_size
    }

    /// Inputs queued and not yet taken into a batch.
    pub fn queued(&self) -> usize {
        self.queue_capacity - self.room.available_permits()
    }

    /// Embeds inputs (preprocessed images, each `3 × size × size`; texts), in order. With
    /// [`Admission::Reject`], either every input is queued or none is.
    pub async fn embed(
        &self,
        inputs: Vec<M::Input>,
        admission: Admission,
    ) -> Result<Vec<Vec<f32>>, EncoderError> {
        for input in &inputs {
            M::check(&self.entry, input)?;
        }
        let count = u32::try_from(inputs.len()).map_err(|_| EncoderError::QueueFull)?;
        let mut permits = match admission {
            Admission::Reject => self
                .room
                .clone()
                .try_acquire_many_owned(count)
                .map_err(|_| EncoderError::QueueFull)?,
            Admission::Wait => {
                if inputs.len() > self.queue_capacity {
                    // Larger than the whole queue: queue it in parts.
                    let mut out = Vec::with_capacity(inputs.len());
                    let mut inputs = inputs;
                    while !inputs.is_empty() {
                        let rest = inputs.split_off(inputs.len().min(self.queue_capacity));
                        out.extend(Box::pin(self.embed(inputs, admission)).await?);
                        inputs = rest;
                    }
                    return Ok(out);
                }
                self.room
                    .clone()
                    .acquire_many_owned(count)
                    .await
                    .map_err(|_| EncoderError::Stopped)?
            }
        };
        let mut replies = Vec::with_capacity(inputs.len());
        let span = tracing::Span::current();
        for input in inputs {
            let (reply, receiver) = oneshot::channel();
            let permit = permits.split(1).ok_or(EncoderError::QueueFull)?;
            self.jobs
                .send(Job {
                    input,
                    reply,
                    span: span.clone(),
                    _permit: permit,
                })
                .map_err(|_| EncoderError::Stopped)?;
            replies.push(receiver);
        }
        let mut out = Vec::with_capacity(replies.len());
        for receiver in replies {
            match receiver.await {
                Ok(Ok(embedding)) => out.push(embedding),
                Ok(Err(e)) => return Err(EncoderError::Batch(e.to_string())),
                Err(_) => return Err(EncoderError::Stopped),
            }
        }
        Ok(out)
    }
}

/// The inference thread's loop: gather a batch, drop abandoned inputs, run, answer.
fn run_batches<M: BatchModel>(
    encoder: &M,
    queue: &mpsc::Receiver<Job<M::Input>>,
    settings: BatchSettings,
    stats: &BatchStats,
) {
    while let Ok(first) = queue.recv() {
        let deadline = Instant::now() + settings.max_wait;
        let mut batch = vec![first];
        while batch.len() < settings.max_batch_size {
            let left = deadline.saturating_duration_since(Instant::now());
            match queue.recv_timeout(left) {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let gathered = batch.len();
        batch.retain(|job| !job.reply.is_closed());
        stats
            .abandoned
            .fetch_add((gathered - batch.len()) as u64, Ordering::Relaxed);
        if batch.is_empty() {
            continue;
        }
        let started = Instant::now();
        let n = batch.len();
        let mut inputs = Vec::with_capacity(n);
        let mut replies = Vec::with_capacity(n);
        // Each caller's span once: the batch is logged in every one of them, so that each
        // request's log has the inference it waited for.
        let mut spans: Vec<tracing::Span> = Vec::new();
        for job in batch {
            inputs.push(job.input);
            replies.push(job.reply);
            if !spans.iter().any(|s| s.id() == job.span.id()) {
                spans.push(job.span);
            }
        }
        let result = encoder.embed_batch(inputs);
        stats.batches.fetch_add(1, Ordering::Relaxed);
        stats.images.fetch_add(n as u64, Ordering::Relaxed);
        match result {
            Ok(embeddings) => {
                for (reply, embedding) in replies.into_iter().zip(embeddings) {
                    let _ = reply.send(Ok(embedding));
                }
            }
            Err(e) => {
                let error = crate::error::error_chain(&e);
                for span in &spans {
                    span.in_scope(|| tracing::error!(error, batch = n, "inference batch failed"));
                }
                let e = Arc::new(e);
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
        let elapsed_ms = started.elapsed().as_millis() as u64;
        for span in &spans {
            span.in_scope(|| tracing::debug!(batch = n, elapsed_ms, "inference batch"));
        }
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;
    use crate::encoders::{ModelManifest, write_random_model};
    use candle_core::Device;

    fn spawn(settings: BatchSettings) -> (tempfile::TempDir, BatchedEncoder) {
        let dir = tempfile::tempdir().unwrap();
        write_random_model(dir.path(), "tiny", "resnet", 3).unwrap();
        let manifest = ModelManifest::read(dir.path()).unwrap();
        let (name, entry) = manifest.image_encoder(None).unwrap();
        let encoder = ImageEncoder::load(&manifest, entry, &Device::Cpu).unwrap();
        (dir, BatchedEncoder::spawn(name, encoder, settings).unwrap())
    }

    fn image(encoder: &BatchedEncoder, value: f32) -> Vec<f32> {
        let size = encoder.entry().input_size;
        (0..3 * size * size)
            .map(|i| value * ((i % 7) as f32 - 3.0))
            .collect()
    }

    #[tokio::test]
    async fn concurrent_callers_share_a_forward_pass_and_get_their_own_answers() {
        let (_dir, encoder) = spawn(BatchSettings {
            max_batch_size: 8,
            max_wait: Duration::from_millis(500),
            queue_capacity: 16,
        });
        let alone = encoder
            .embed(vec![image(&encoder, 0.3)], Admission::Reject)
            .await
            .unwrap();
        let calls = (0..8).map(|i| {
            let encoder = encoder.clone();
            async move {
                encoder
                    .embed(vec![image(&encoder, 0.1 * i as f32)], Admission::Reject)
                    .await
                    .unwrap()
            }
        });
        let answers = futures_util::future::join_all(calls).await;
        assert_eq!(encoder.stats().batches.load(Ordering::Relaxed), 2);
        assert_eq!(encoder.stats().images.load(Ordering::Relaxed), 9);
        for (x, y) in answers[3][0].iter().zip(&alone[0]) {
            assert!((x - y).abs() < 1e-4, "{x} vs {y}");
        }
        assert_ne!(answers[1], answers[2]);
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once_and_a_departed_caller_is_dropped() {
        let (_dir, encoder) = spawn(BatchSettings {
            max_batch_size: 4,
            max_wait: Duration::from_millis(400),
            queue_capacity: 2,
        });
        let first = {
            let encoder = encoder.clone();
            tokio::spawn(async move {
                encoder
                    .embed(vec![image(&encoder, 0.5); 2], Admission::Reject)
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(encoder.queued(), 2);
        let refused = encoder
            .embed(vec![image(&encoder, 0.2)], Admission::Reject)
            .await
            .unwrap_err();
        assert!(matches!(refused, EncoderError::QueueFull), "{refused}");
        // The first caller gives up while its images wait for their batch.
        first.abort();
        let _ = first.await;
        let later = encoder
            .embed(vec![image(&encoder, 0.2)], Admission::Wait)
            .await
            .unwrap();
        assert_eq!(later.len(), 1);
        assert_eq!(encoder.stats().abandoned.load(Ordering::Relaxed), 2);
        assert_eq!(encoder.stats().images.load(Ordering::Relaxed), 1);
        assert_eq!(encoder.queued(), 0);
    }
}
