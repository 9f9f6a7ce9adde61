//! Notes encoder throughput: all-MiniLM-L6-v2 (fetched weights) on the CPU embedding the
//! sentences of `scripts/reference-text-encoder` (short clinical and everyday sentences, 12
//! tokens on average), repeated to 512, in batches of 32, for SECONDS seconds.
//! Prints `{"sentences_per_s": …}`.
//!
//! Usage: `text_encoder SECONDS REFERENCE_JSON`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::path::Path;
use std::time::Instant;

use prognostics::encoders::{ModelManifest, TextEncoder};

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let seconds: f64 = args[0].parse().unwrap();
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&args[1]).unwrap()).unwrap();
    let sentences: Vec<&str> = reference["sentences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .cycle()
        .take(512)
        .collect();
    let manifest =
        ModelManifest::read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("models")).unwrap();
    let encoder = TextEncoder::load(&manifest, None, &candle_core::Device::Cpu).unwrap();
    encoder.embed(&sentences[..32]).unwrap();
    let started = Instant::now();
    let mut done = 0;
    while started.elapsed().as_secs_f64() < seconds {
        for batch in sentences.chunks(32) {
            std::hint::black_box(encoder.embed(batch).unwrap());
            done += batch.len();
        }
    }
    let rate = done as f64 / started.elapsed().as_secs_f64();
    println!("{{\"sentences_per_s\": {rate:.1}}}");
}
