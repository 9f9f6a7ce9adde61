//! Image encoder throughput: the Candle EfficientNet-Lite0 on the real weights, batches of 1
//! and 16 at 224 × 224, images per second. `scripts/bench-encoder` runs this and PyTorch on the
//! same weights in the same run and reports the ratio.
//!
//! Settings: `BENCH_SECONDS` (per batch size, default 10), `BENCH_BATCHES` (default `1,16`),
//! `BENCH_MODELS_DIR` (a models folder other than the project's, for its default encoder).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use candle_core::{Device, Tensor};
use prognostics::encoders::{ImageEncoder, ModelManifest};

fn main() {
    let seconds: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let models = std::env::var_os("BENCH_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("models"));
    let manifest = ModelManifest::read(&models).unwrap();
    let (name, entry) = manifest.image_encoder(None).unwrap();
    let encoder = ImageEncoder::load(&manifest, entry, &prognostics::encoders::device())
        .unwrap_or_else(|e| panic!("{e} (run scripts/fetch-models)"));
    let size = entry.input_size;
    let batches: Vec<usize> = std::env::var("BENCH_BATCHES")
        .ok()
        .map(|v| v.split(',').filter_map(|b| b.parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 16]);
    for batch in batches {
        let n = batch * 3 * size * size;
        let data: Vec<f32> = (0..n)
            .map(|i| ((i * 7919) % 255) as f32 / 128.0 - 1.0)
            .collect();
        let input = Tensor::from_vec(data, (batch, 3, size, size), &Device::Cpu).unwrap();
        encoder.embed_input(&input).unwrap(); // warm-up
        let started = Instant::now();
        let mut images = 0usize;
        while started.elapsed() < Duration::from_secs(seconds) {
            encoder.embed_input(&input).unwrap();
            images += batch;
        }
        let per_second = images as f64 / started.elapsed().as_secs_f64();
        println!("candle {name} batch {batch}: {per_second:.1} images/s");
    }
}
