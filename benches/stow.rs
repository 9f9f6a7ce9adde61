//! STOW-RS ingest of 20-slice series with the image encoder loaded: the service in this process
//! (release build, SQLite in a temporary folder, the default EfficientNet-Lite0 on the CPU),
//! one STOW-RS request per series over loopback. Reports instances/s stored (acknowledged:
//! files fsynced, rows committed), instances/s embedded by the background worker, and the
//! process's peak resident memory (VmHWM).
//!
//! Usage: `stow FILE` (a single-frame DICOM file, re-identified into each slice).
//! Settings: `BENCH_SERIES` (series sent, default 10), `BENCH_EMBED` (`0` to not load the
//! encoder, for the ingest figure alone).
// A load generator is the service's client: its tasks need no request span.
#![allow(clippy::disallowed_methods)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod common;

use std::time::{Duration, Instant};

use prognostics::config::Settings;

use prognostics::startup::Application;
use serde_json::Value;

use common::{reidentify, uid_of};

const SLICES: usize = 20;
const BOUNDARY: &str = "stow-bench-boundary";

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: f64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib / 1024.0
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let file = std::fs::read(&args[0]).unwrap();
    let series: usize = std::env::var("BENCH_SERIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let embed = std::env::var("BENCH_EMBED").map_or(true, |v| v != "0");
    let sop = uid_of(&file, [0x08, 0x00, 0x18, 0x00]);
    let series_uid = uid_of(&file, [0x20, 0x00, 0x0e, 0x00]);
    let study_uid = uid_of(&file, [0x20, 0x00, 0x0d, 0x00]);

    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::default();
    settings.server.listen = "127.0.0.1:0".parse().unwrap();
    settings.storage.data_dir = dir.path().to_path_buf();
    settings.dicom.enabled = false;
    settings.hl7.enabled = false;
    settings.inference.enabled = embed;
    settings.inference.models_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    let app = Application::build(&settings).await.expect("service starts");
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    let client = reqwest::Client::new();

    let bodies: Vec<Vec<u8>> = (0..series)
        .map(|s| {
            let mut body = Vec::new();
            for slice in 0..SLICES {
                let one = reidentify(&file, &series_uid, &format!("{s:03}"));
                let one = reidentify(&one, &sop, &format!("{s:03}{slice:03}"));
                body.extend_from_slice(
                    format!("--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n").as_bytes(),
                );
                body.extend_from_slice(&one);
                body.extend_from_slice(b"\r\n");
            }
            body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
            body
        })
        .collect();

    let started = Instant::now();
    for body in bodies {
        let response = client
            .post(format!("{base}/dicomweb/studies"))
            .header(
                "Content-Type",
                format!("multipart/related; type=\"application/dicom\"; boundary={BOUNDARY}"),
            )
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    }
    let stored = started.elapsed().as_secs_f64();
    let instances = series * SLICES;
    println!(
        "stored: {instances} instances in {stored:.2} s = {:.1} instances/s (STOW-RS, {SLICES} per request)",
        instances as f64 / stored
    );
    if embed {
        loop {
            let body: Value = client
                .get(format!("{base}/embeddings/studies/{study_uid}"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if body["status"] == "complete" && body["instanceCount"] == instances {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let total = started.elapsed().as_secs_f64();
        println!(
            "embedded: {instances} instances {total:.2} s after the first request = {:.1} instances/s end to end",
            instances as f64 / total
        );
    }
    println!(
        "peak RSS: {:.0} MiB (encoder loaded: {embed})",
        peak_rss_mib()
    );
}
