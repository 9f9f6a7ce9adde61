//! The other replicas' committed writes, as PostgreSQL notifications on
//! [`WRITES_CHANNEL`](super::resources::WRITES_CHANNEL), applied to this replica's read cache.
//! While the feed is down the cache is bypassed; when it is back up the cache starts empty.

use std::time::Duration;

use secrecy::ExposeSecret;
use sqlx::postgres::PgListener;

use super::Store;
use super::resources::{WRITES_CHANNEL, notified_keys};

/// The longest wait between attempts to bring the feed back.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

impl Store {
    /// Follows the other replicas' writes for as long as it is polled (a background task
    /// of `serve`). Returns at once where there is nothing to follow: the embedded database,
    /// or the cache turned off.
    pub async fn follow_other_writers(self) {
        let Some(url) = self.shared_url.clone() else {
            return;
        };
        if !self.cache.enabled() {
            return;
        }
        let mut backoff = Duration::from_millis(250);
        loop {
            let mut listener = match PgListener::connect(url.expose_secret()).await {
                Ok(listener) => listener,
                Err(e) => {
                    tracing::warn!(error = %e, "the write feed cannot connect; the read cache is bypassed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            };
            if let Err(e) = listener.listen(WRITES_CHANNEL).await {
                tracing::warn!(error = %e, "the write feed cannot listen; the read cache is bypassed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
            // Whatever was committed before LISTEN took effect was read from the database by
            // nobody here yet: the cache starts empty from this point.
            self.cache.set_live(true);
            backoff = Duration::from_millis(250);
            tracing::info!("following the other replicas' writes; read cache on");
            // Ends when the connection drops: notifications may have been missed.
            while let Ok(Some(notification)) = listener.try_recv().await {
                self.cache
                    .invalidate(&notified_keys(notification.payload()));
            }
            self.cache.set_live(false);
            tracing::warn!("the write feed dropped; the read cache is bypassed until it is back");
        }
    }
}
