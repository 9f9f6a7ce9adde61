//! Requests per client: a token bucket per key (the token's client, else the peer address),
//! `rate` requests a second on average with bursts up to `burst`. A request over the limit is
//! told how many seconds until it would be taken (`Retry-After`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// Buckets kept at once; past it, the full (idle) ones are forgotten.
const MAX_KEYS: usize = 100_000;

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    /// `burst` 0 or `rate` not above 0: no limit.
    pub fn new(rate: f64, burst: u32) -> Self {
        Self {
            rate,
            burst: f64::from(burst),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Whether any limit is set.
    pub fn enabled(&self) -> bool {
        self.burst > 0.0 && self.rate > 0.0
    }

    /// Takes one request for `key`: Ok, or Err(seconds until one would be taken).
    pub fn take(&self, key: &str) -> Result<(), u32> {
        if !self.enabled() {
            return Ok(());
        }
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= MAX_KEYS && !buckets.contains_key(key) {
            let (rate, burst) = (self.rate, self.burst);
            buckets.retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * rate < burst);
        }
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let refilled = (bucket.tokens + now.duration_since(bucket.at).as_secs_f64() * self.rate)
            .min(self.burst);
        bucket.at = now;
        if refilled >= 1.0 {
            bucket.tokens = refilled - 1.0;
            Ok(())
        } else {
            bucket.tokens = refilled;
            Err(((1.0 - refilled) / self.rate).ceil().max(1.0) as u32)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_taken_then_the_rest_waits() {
        let limiter = RateLimiter::new(1.0, 3);
        for _ in 0..3 {
            assert!(limiter.take("a").is_ok());
        }
        assert_eq!(limiter.take("a"), Err(1));
        assert!(limiter.take("b").is_ok(), "each client has its own bucket");
    }

    #[test]
    fn slow_rates_tell_a_longer_wait_and_zero_means_no_limit() {
        let limiter = RateLimiter::new(0.1, 1);
        assert!(limiter.take("a").is_ok());
        assert_eq!(limiter.take("a"), Err(10));
        let off = RateLimiter::new(1.0, 0);
        for _ in 0..1000 {
            assert!(off.take("a").is_ok());
        }
    }
}
