//! The memory all DICOM intake together may hold in instance data while it arrives, over
//! DIMSE associations and STOW-RS requests alike (`dicom.max_buffered_bytes`). A fragment
//! takes its bytes before it is kept; what an instance holds is given back when it is stored
//! or dropped. Not first come, first served: a fragment that fits is taken at once,
//! so an instance nearly done is not held up behind a large one waiting for room (with a
//! queue, the waiter took the bytes the nearly-done instance needed, and both waited).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

/// Longest a piece of an instance waits for memory before its instance is refused;
/// meanwhile its connection is not read, so the sender waits too.
pub const ARRIVAL_WAIT: Duration = Duration::from_secs(30);

#[derive(Debug)]
pub struct MemoryBudget {
    limit: usize,
    used: Mutex<usize>,
    freed: Notify,
}

/// Bytes taken from a budget, given back when dropped.
#[derive(Debug)]
pub struct Held {
    budget: Arc<MemoryBudget>,
    bytes: usize,
}

impl MemoryBudget {
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit,
            used: Mutex::new(0),
            freed: Notify::new(),
        })
    }

    /// Adds `bytes` to `held` (a new hold when `None`), waiting up to `wait` for them to come
    /// free; `false` when they did not.
    pub async fn take(
        self: &Arc<Self>,
        held: &mut Option<Held>,
        bytes: usize,
        wait: Duration,
    ) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Registered before the check, so that a release between the two is not missed.
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            {
                let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
                if used.saturating_add(bytes) <= self.limit {
                    *used += bytes;
                    match held {
                        Some(held) => held.bytes += bytes,
                        None => {
                            *held = Some(Held {
                                budget: Arc::clone(self),
                                bytes,
                            });
                        }
                    }
                    return true;
                }
            }
            if tokio::time::timeout_at(deadline, freed).await.is_err() {
                return false;
            }
        }
    }

    #[cfg(test)]
    fn used(&self) -> usize {
        *self.used.lock().unwrap()
    }
}

impl Held {
    /// Gives back all but `bytes` of what this holds (nothing when it holds no more).
    pub fn keep_only(&mut self, bytes: usize) {
        let Some(freed) = self.bytes.checked_sub(bytes).filter(|&n| n > 0) else {
            return;
        };
        self.bytes = bytes;
        let mut used = self.budget.used.lock().unwrap_or_else(|e| e.into_inner());
        *used = used.saturating_sub(freed);
        drop(used);
        self.budget.freed.notify_waiters();
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut used = self.budget.used.lock().unwrap_or_else(|e| e.into_inner());
        *used = used.saturating_sub(self.bytes);
        drop(used);
        self.budget.freed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bytes_are_taken_while_they_fit_and_given_back_when_dropped() {
        let budget = MemoryBudget::new(100);
        let mut first = None;
        assert!(budget.take(&mut first, 60, Duration::ZERO).await);
        assert!(budget.take(&mut first, 30, Duration::ZERO).await);
        let mut second = None;
        assert!(
            !budget
                .take(&mut second, 20, Duration::from_millis(10))
                .await
        );
        assert!(second.is_none());
        assert_eq!(budget.used(), 90);
        // A small fragment still fits while a large one waits.
        let waiting = {
            let budget = Arc::clone(&budget);
            crate::telemetry::spawn_with_tracing(async move {
                let mut held = None;
                budget.take(&mut held, 50, Duration::from_secs(10)).await
            })
        };
        tokio::task::yield_now().await;
        assert!(budget.take(&mut first, 10, Duration::ZERO).await);
        // Giving back all but some leaves room for the waiter.
        first.as_mut().unwrap().keep_only(40);
        assert_eq!(budget.used(), 40);
        assert!(waiting.await.unwrap());
        assert_eq!(budget.used(), 40);
        drop(first);
        assert_eq!(budget.used(), 0);
    }
}
