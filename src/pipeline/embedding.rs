//! Image embeddings of DICOM files: decode every frame, encode each, and pool them into one
//! embedding per instance (the mean of its frames' embeddings, so a multi-frame instance counts
//! as one image of its series). Blocking: callers run it off the async executor.

use serde::Serialize;

use super::PipelineError;
use crate::encoders::{Frame, ImageEncoder};
use crate::ingest;

/// Frames encoded in one forward pass: bounds memory for long multi-frame instances.
const FRAMES_PER_PASS: usize = 16;

/// One instance's embedding, with the model that made it.
#[derive(Clone, Debug, Serialize)]
pub struct InstanceEmbedding {
    pub model: String,
    pub model_version: String,
    pub frames: usize,
    /// Mean of the frames' embeddings.
    pub embedding: Vec<f32>,
}

/// Decodes `bytes` (a Part 10 file) and embeds it with `encoder` (named `model`).
pub fn embed_dicom(
    encoder: &ImageEncoder,
    model: &str,
    bytes: &[u8],
) -> Result<InstanceEmbedding, PipelineError> {
    let image = ingest::decode_image(bytes)?;
    let frames: Vec<Frame<'_>> = image
        .frames
        .iter()
        .map(|values| Frame {
            rows: image.rows as usize,
            columns: image.columns as usize,
            channels: usize::from(image.channels),
            values,
        })
        .collect();
    let mut sum = vec![0f32; encoder.entry.embedding_size];
    for chunk in frames.chunks(FRAMES_PER_PASS) {
        for embedding in encoder.embed(chunk)? {
            for (s, v) in sum.iter_mut().zip(embedding) {
                *s += v;
            }
        }
    }
    let n = frames.len().max(1) as f32;
    Ok(InstanceEmbedding {
        model: model.to_owned(),
        model_version: encoder.entry.version.clone(),
        frames: frames.len(),
        embedding: sum.into_iter().map(|s| s / n).collect(),
    })
}
