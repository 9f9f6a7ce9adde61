//! The Candle EfficientNet-Lite0 against PyTorch on the same weights and images: the reference
//! comes from `scripts/reference-image-encoder` (PyTorch's own operators over `torch.load` of the
//! same .pth; real photographs and medical images). Same preprocessing, same top-5 ImageNet
//! classes, embeddings with cosine similarity ≥ 0.999. The other architectures against their
//! reference implementations (torchvision's ResNet, transformers' Dinov2Model) on small random
//! models from `scripts/reference-image-architectures`.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use prognostics::encoders::{
    Frame, ImageEncoder, ImageModelEntry, ModelManifest, Normalisation, preprocess,
};
use serde_json::Value;

fn reference_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/reference/image-encoder");
    if dir.join("reference.json").is_file() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("TEST_REQUIRE_DATA").is_none(),
        "PyTorch reference missing: run scripts/reference-image-encoder"
    );
    eprintln!("skipping: run scripts/reference-image-encoder for the PyTorch reference");
    None
}

fn read_f32(path: &Path) -> Vec<f32> {
    std::fs::read(path)
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

fn top5(probabilities: &[f32]) -> Vec<u64> {
    let mut idx: Vec<usize> = (0..probabilities.len()).collect();
    idx.sort_by(|a, b| probabilities[*b].total_cmp(&probabilities[*a]));
    idx.into_iter().take(5).map(|i| i as u64).collect()
}

#[test]
fn candle_matches_pytorch_on_real_images() {
    let Some(dir) = reference_dir() else {
        return;
    };
    let reference: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap())
            .unwrap();
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    let manifest = ModelManifest::read(&models).unwrap();
    let (_, entry) = manifest.image_encoder(None).unwrap();
    let encoder = ImageEncoder::load(&manifest, entry, &prognostics::encoders::device()).unwrap();
    let size = entry.input_size;
    let images = reference["images"].as_array().unwrap();
    assert!(images.len() >= 5);
    for image in images {
        let name = image["name"].as_str().unwrap();
        let rows = image["rows"].as_u64().unwrap() as usize;
        let columns = image["columns"].as_u64().unwrap() as usize;
        let rgb = read_f32(&dir.join(format!("{name}.rgb.f32")));
        let torch_input = read_f32(&dir.join(format!("{name}.input.f32")));

        // The same resize and normalisation as PyTorch's bilinear interpolate.
        let frame = Frame {
            rows,
            columns,
            channels: 3,
            values: &rgb,
        };
        let ours = preprocess(&frame, size, &entry.normalisation).unwrap();
        let max_diff = ours
            .iter()
            .zip(&torch_input)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(max_diff < 1e-3, "{name}: input differs by {max_diff}");

        // The same classes from the same input.
        let input = Tensor::from_vec(torch_input, (1, 3, size, size), &Device::Cpu).unwrap();
        let probabilities = &encoder.classify_input(&input).unwrap()[0];
        let expected: Vec<u64> = image["top5"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        let got = top5(probabilities);
        assert_eq!(got[0], expected[0], "{name}: top-1 {got:?} vs {expected:?}");
        let mut a = got.clone();
        let mut b = expected.clone();
        a.sort_unstable();
        b.sort_unstable();
        assert_eq!(a, b, "{name}: top-5 {got:?} vs {expected:?}");

        // Embeddings through the whole Rust path.
        let embedding = &encoder.embed(&[frame]).unwrap()[0];
        let expected: Vec<f32> = image["embedding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        let c = cosine(embedding, &expected);
        assert!(c >= 0.999, "{name}: cosine {c}");
        eprintln!("{name}: top-5 {got:?}, cosine {c:.6}");
    }
}

#[test]
fn resnet_and_dinov2_match_torchvision_and_transformers() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/reference/architectures");
    let names = [
        "resnet18",
        "resnet-bottleneck",
        "dinov2",
        "dinov2-published-names",
        "dinov2-registers",
    ];
    if !dir.join("dinov2-registers.json").is_file() {
        assert!(
            std::env::var_os("TEST_REQUIRE_DATA").is_none(),
            "references missing: run scripts/reference-image-architectures"
        );
        eprintln!("skipping: run scripts/reference-image-architectures");
        return;
    }
    for name in names {
        let description: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join(format!("{name}.json"))).unwrap(),
        )
        .unwrap();
        let size = description["input_size"].as_u64().unwrap() as usize;
        let entry = ImageModelEntry {
            architecture: description["architecture"].as_str().unwrap().to_owned(),
            version: name.to_owned(),
            file: format!("{name}.safetensors"),
            sha256: String::new(),
            package: String::new(),
            package_sha256: String::new(),
            package_path: String::new(),
            input_size: size,
            normalisation: Normalisation {
                mean: [0.0; 3],
                std: [1.0; 3],
            },
            embedding_size: description["embedding_size"].as_u64().unwrap() as usize,
            licence: String::new(),
            source: String::new(),
            config: serde_json::from_value(description["config"].clone()).unwrap(),
        };
        let tensors = candle_core::safetensors::load(dir.join(&entry.file), &Device::Cpu).unwrap();
        let encoder = ImageEncoder::from_tensors(entry, &tensors, &Device::Cpu)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let input = read_f32(&dir.join(format!("{name}.input.f32")));
        let expected = read_f32(&dir.join(format!("{name}.output.f32")));
        let batch = input.len() / (3 * size * size);
        let input = Tensor::from_vec(input, (batch, 3, size, size), &Device::Cpu).unwrap();
        let ours: Vec<f32> = encoder.embed_input(&input).unwrap().concat();
        assert_eq!(ours.len(), expected.len(), "{name}");
        let width = expected.len() / batch;
        for (i, (a, b)) in ours.chunks(width).zip(expected.chunks(width)).enumerate() {
            let similarity = cosine(a, b);
            let max_diff = a
                .iter()
                .zip(b)
                .map(|(x, y)| (x - y).abs())
                .fold(0f32, f32::max);
            assert!(
                similarity > 0.9999 && max_diff < 1e-3,
                "{name} image {i}: cosine {similarity}, max |diff| {max_diff}"
            );
            println!("{name} image {i}: cosine {similarity:.7}, max |diff| {max_diff:.2e}");
        }
    }
}
