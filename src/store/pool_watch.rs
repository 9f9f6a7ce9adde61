//! The database pool under pressure, told once per interval. sqlx warns on every acquire that
//! waited over two seconds; under overload that was one line per request, thousands a minute,
//! burying everything else in the log. That warning is off (`Store::connect`), and this watch
//! says instead, at most once per [`TOLD_AT_MOST_EVERY`], that every connection has been in use
//! for two seconds, with how many such spells went untold since the last line.

use std::time::Duration;

use tokio::time::Instant;

use super::Store;

/// How often the pool is looked at.
const SAMPLE_EVERY: Duration = Duration::from_millis(500);
/// Samples in a row with every connection taken before it is told: 2 s, sqlx's own threshold
/// for a slow acquire. A moment's saturation (migrations at start on a one-connection pool) is
/// not trouble.
const SUSTAINED_SAMPLES: u32 = 4;
/// The least time between two lines.
const TOLD_AT_MOST_EVERY: Duration = Duration::from_secs(10);

impl Store {
    /// Watches the connection pool until it is closed (run in the background by `serve`).
    pub async fn watch_pool(self) {
        let max_connections = self.pool.options().get_max_connections();
        let mut last_told: Option<Instant> = None;
        let mut untold: u64 = 0;
        let mut in_a_row: u32 = 0;
        let mut ticks = tokio::time::interval(SAMPLE_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !self.pool.is_closed() {
            ticks.tick().await;
            if !is_saturated(self.pool.size(), self.pool.num_idle(), max_connections) {
                in_a_row = 0;
                continue;
            }
            in_a_row += 1;
            if in_a_row != SUSTAINED_SAMPLES {
                continue;
            }
            // A spell has reached the threshold: told, or counted for the next line.
            if last_told.is_some_and(|at| at.elapsed() < TOLD_AT_MOST_EVERY) {
                untold += 1;
                continue;
            }
            last_told = Some(Instant::now());
            tracing::warn!(
                connections = max_connections,
                for_ms = (SAMPLE_EVERY * SUSTAINED_SAMPLES).as_millis() as u64,
                spells_since_last_line = std::mem::take(&mut untold),
                "every database connection is in use: requests wait for one \
                 (database.max_connections, database.acquire_timeout_secs)"
            );
        }
    }
}

/// Whether every connection the pool may open is open and taken.
fn is_saturated(size: u32, idle: usize, max_connections: u32) -> bool {
    size >= max_connections && idle == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_is_saturated_only_when_full_and_nothing_is_idle() {
        assert!(is_saturated(16, 0, 16));
        assert!(!is_saturated(16, 1, 16));
        assert!(!is_saturated(15, 0, 16));
    }
}
