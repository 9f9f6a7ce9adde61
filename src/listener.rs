//! The accept loop the TCP protocol edges share (the DICOM storage SCP, the MLLP listener):
//! every connection runs as its own task, inside a span naming the protocol and the peer, so
//! that every line it logs says which connection it came from. Connections per port are capped:
//! past the cap a new connection is closed at once, so that one door cannot take every file
//! descriptor of the process (and with them the HTTP door). A failed accept (out of file
//! descriptors: EMFILE, ENFILE) backs off instead of spinning, and each kind of trouble is
//! logged at most once per [`LOG_INTERVAL`] with a count of what happened in between.
//!
//! On shutdown (the [`Shutdown`] signal) the loop stops accepting and waits, up to
//! [`DRAIN_TIMEOUT`], for its connections to finish the message they are taking and close.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tracing::Instrument;

use crate::telemetry::spawn_with_tracing;

/// The longest an accept loop waits after a failed accept (the wait doubles from 10 ms).
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// Repeated trouble is logged at most once per interval.
pub const LOG_INTERVAL: Duration = Duration::from_secs(10);
/// The longest a stopping listener waits for its connections to finish.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// The stop signal every door and connection watches: `true` once the service is stopping.
pub type Shutdown = watch::Receiver<bool>;

/// Resolves once `shutdown` says the service is stopping (or its sender is gone).
pub async fn stopping(shutdown: &mut Shutdown) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Accepts connections until `shutdown`, handing each to `serve` (with the signal, so that it
/// can stop between messages) on a task of its own, at most `max_connections` at once; then
/// waits for them to finish. `protocol` names the edge in logs.
pub async fn accept_each<F, Fut>(
    listener: TcpListener,
    protocol: &'static str,
    max_connections: usize,
    mut shutdown: Shutdown,
    serve: F,
) where
    F: Fn(TcpStream, SocketAddr, Shutdown) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let max_connections = max_connections.max(1);
    let slots = Arc::new(Semaphore::new(max_connections));
    let mut refused = RateLimitedLog::default();
    let mut failed = RateLimitedLog::default();
    let mut backoff = Duration::from_millis(10);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stopping(&mut shutdown) => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => {
                backoff = Duration::from_millis(10);
                accepted
            }
            Err(e) => {
                if let Some(suppressed) = failed.due() {
                    tracing::warn!(protocol, error = %e, suppressed, "accept failed; backing off");
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            drop(stream);
            if let Some(suppressed) = refused.due() {
                tracing::warn!(
                    protocol,
                    %peer,
                    max_connections,
                    suppressed,
                    "connection limit reached: new connections are closed"
                );
            }
            continue;
        };
        let span = tracing::info_span!(
            "connection",
            protocol,
            peer = %peer,
            connection_id = %uuid::Uuid::new_v4()
        );
        let connection = serve(stream, peer, shutdown.clone());
        spawn_with_tracing(
            async move {
                connection.await;
                drop(slot);
            }
            .instrument(span),
        );
    }
    drop(listener);
    let open = max_connections - slots.available_permits();
    tracing::info!(
        protocol,
        open,
        "stopping: no new connections; open ones finish"
    );
    let all = u32::try_from(max_connections).unwrap_or(u32::MAX);
    match tokio::time::timeout(DRAIN_TIMEOUT, slots.acquire_many(all)).await {
        Ok(_) => tracing::info!(protocol, "stopped: every connection finished"),
        Err(_) => tracing::warn!(
            protocol,
            open = max_connections - slots.available_permits(),
            "stopped with connections still open after the drain time"
        ),
    }
}

/// Says when a repeated event is due to be logged again: the first time, then once per
/// [`LOG_INTERVAL`], with how many were not logged in between.
#[derive(Default)]
pub struct RateLimitedLog {
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLimitedLog {
    /// `Some(events not logged since the last line)` when this one should be logged.
    pub fn due(&mut self) -> Option<u64> {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|last| now.duration_since(last) < LOG_INTERVAL)
        {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_event_is_logged_once_per_interval_with_the_count_between() {
        let mut log = RateLimitedLog::default();
        assert_eq!(log.due(), Some(0));
        for _ in 0..1_000 {
            assert_eq!(log.due(), None);
        }
        log.last = Some(Instant::now() - LOG_INTERVAL);
        assert_eq!(log.due(), Some(1_000));
    }
}
