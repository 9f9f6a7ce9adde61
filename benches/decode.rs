//! DICOM decode throughput: every file named in a list (one path per line) decoded to display
//! values in [0, 1] (modality LUT, VOI window, MONOCHROME1 inversion, colour to RGB), as ingest
//! and the encoders do. `scripts/bench-decode` runs this and pydicom on the same files in the
//! same run and reports the ratio.
//!
//! Usage: `decode LIST OUT_OK`: files that fail to decode are skipped and the ones that decode
//! are written to OUT_OK. Settings: `BENCH_SECONDS` (default 10).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::time::{Duration, Instant};

use prognostics::dicom::decode_image;

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let seconds: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let list = std::fs::read_to_string(&args[0]).unwrap();
    let mut files = Vec::new();
    let mut ok = String::new();
    for path in list.lines().filter(|l| !l.is_empty()) {
        let bytes = std::fs::read(path).unwrap();
        if decode_image(&bytes).is_ok() {
            ok.push_str(path);
            ok.push('\n');
            files.push(bytes);
        }
    }
    std::fs::write(&args[1], ok).unwrap();
    if std::env::var_os("BENCH_PER_FILE").is_some() {
        // Milliseconds per file (best of 3), to see where the time goes.
        for (path, bytes) in ok_paths(&args[1]).iter().zip(&files) {
            let best = (0..3)
                .map(|_| {
                    let t = Instant::now();
                    decode_image(bytes).unwrap();
                    t.elapsed().as_secs_f64() * 1e3
                })
                .fold(f64::INFINITY, f64::min);
            println!("{best:.3} {path}");
        }
        return;
    }
    let input_bytes: usize = files.iter().map(Vec::len).sum();
    let started = Instant::now();
    let mut decoded = 0usize;
    let mut values = 0usize;
    while started.elapsed() < Duration::from_secs(seconds) {
        for bytes in &files {
            let image = decode_image(bytes).unwrap();
            values += image.frames.iter().map(Vec::len).sum::<usize>();
            decoded += 1;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "{{\"files\": {}, \"input_bytes\": {input_bytes}, \"decoded\": {decoded}, \"files_per_s\": {:.2}, \"mvalues_per_s\": {:.2}}}",
        files.len(),
        decoded as f64 / elapsed,
        values as f64 / elapsed / 1e6
    );
}

fn ok_paths(list: &str) -> Vec<String> {
    std::fs::read_to_string(list)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}
