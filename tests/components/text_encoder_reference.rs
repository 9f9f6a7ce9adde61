//! The Candle notes encoder (all-MiniLM-L6-v2) against sentence-transformers on the same
//! weights: the reference comes from `scripts/reference-text-encoder`. Every sentence, and a
//! note four times longer than the model's window, within cosine 0.999 (the bar; in
//! practice they agree to 1e-6).

use std::path::Path;

use prognostics::encoders::{ModelManifest, TextEncoder};
use serde_json::Value;

fn reference() -> Option<Value> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/reference/text-encoder/reference.json");
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/weights/all-minilm-l6-v2");
    if path.is_file() && models.join("model.safetensors").is_file() {
        return Some(serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap());
    }
    assert!(
        std::env::var_os("TEST_REQUIRE_DATA").is_none(),
        "text reference missing: run scripts/fetch-models and scripts/reference-text-encoder"
    );
    eprintln!("skipping: run scripts/fetch-models and scripts/reference-text-encoder");
    None
}

fn cosine(a: &[f32], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| f64::from(*x) * y).sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| x.powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn encoder() -> TextEncoder {
    let manifest =
        ModelManifest::read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("models")).unwrap();
    TextEncoder::load(&manifest, None, &candle_core::Device::Cpu).unwrap()
}

#[test]
fn the_notes_encoder_matches_sentence_transformers_sentence_by_sentence() {
    let Some(reference) = reference() else {
        return;
    };
    let encoder = encoder();
    let sentences: Vec<&str> = reference["sentences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert!(sentences.len() >= 10);
    // All together (padded batches) and one by one give the same answers.
    let together = encoder.embed(&sentences).unwrap();
    let (mut lowest, mut widest) = (1f64, 0f64);
    for (i, sentence) in sentences.iter().enumerate() {
        let expected = floats(&reference["embeddings"][i]);
        let alone = encoder.embed(&[sentence]).unwrap().remove(0);
        assert_eq!(alone.len(), 384);
        for ours in [&together[i], &alone] {
            let c = cosine(ours, &expected);
            assert!(c >= 0.999, "sentence {i}: cosine {c}");
            // Far tighter than the cosine: the same arithmetic, to float rounding.
            let gap = ours
                .iter()
                .zip(&expected)
                .map(|(a, b)| (f64::from(*a) - b).abs())
                .fold(0f64, f64::max);
            assert!(gap < 1e-4, "sentence {i}: a value differs by {gap}");
            lowest = lowest.min(c);
            widest = widest.max(gap);
        }
        let norm: f32 = alone.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "L2-normalised");
    }
    eprintln!("lowest cosine {lowest:.10}, largest difference {widest:.2e}");
}

#[test]
fn a_note_longer_than_the_window_is_pooled_over_its_windows() {
    let Some(reference) = reference() else {
        return;
    };
    assert!(reference["long_note_tokens"].as_u64().unwrap() > 3 * 256);
    let note = reference["long_note"].as_str().unwrap();
    let ours = encoder().embed(&[note]).unwrap().remove(0);
    let c = cosine(&ours, &floats(&reference["long_note_embedding"]));
    assert!(c >= 0.999, "cosine {c}");
}
