//! A closed-loop load driver the HTTP benchmarks share: `clients` concurrent clients, each
//! taking the next request when its last is answered, and the latencies they saw.
// Each benchmark binary uses its own part of the shared helpers.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

pub struct Run {
    pub latencies: Vec<Duration>,
    pub elapsed: Duration,
}

impl Run {
    /// The `p` quantile (0 to 1), in milliseconds.
    pub fn percentile(&self, p: f64) -> f64 {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
        sorted[at].as_secs_f64() * 1000.0
    }

    pub fn per_second(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }
}

/// Runs `jobs` (a URL and an optional JSON body: POST it as `content_type`, else GET) from
/// `clients` concurrent clients. Every answer must be 200; `check` sees each POST's body.
pub async fn drive(
    client: &reqwest::Client,
    clients: usize,
    jobs: Vec<(String, Option<Value>)>,
    content_type: &'static str,
    check: fn(&str),
) -> Run {
    let queue = Arc::new(Mutex::new(jobs.into_iter().rev().collect::<Vec<_>>()));
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let queue = Arc::clone(&queue);
            let client = client.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let Some((url, body)) = queue.lock().unwrap().pop() else {
                        break;
                    };
                    let t = Instant::now();
                    let request = match &body {
                        Some(body) => client
                            .post(&url)
                            .header("content-type", content_type)
                            .body(body.to_string()),
                        None => client.get(&url),
                    };
                    let response = request.send().await.unwrap();
                    let status = response.status();
                    let text = response.text().await.unwrap();
                    latencies.push(t.elapsed());
                    assert_eq!(status, 200, "{url}: {text}");
                    if body.is_some() {
                        check(&text);
                    }
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    Run {
        latencies,
        elapsed: started.elapsed(),
    }
}
