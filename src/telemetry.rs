//! Logging set-up. Logs carry identifiers, counts and timings only: never resource content,
//! query strings or secrets. Imports `config`.

use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, fmt};

use crate::config::{LogFormat, LogSettings};

/// Installs the global subscriber. `RUST_LOG`, when set, takes precedence over the configured
/// filter. Calling it twice is harmless (the second call does nothing).
pub fn init(settings: &LogSettings) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    let result = match settings.format {
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    // Every enclosing span's fields, so that a line logged inside a nested span
                    // still carries the request id of the request span around it.
                    .with_span_list(true)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        LogFormat::Pretty => registry
            .with(fmt::layer().with_target(false).with_writer(std::io::stderr))
            .try_init(),
    };
    // Already installed (tests start several applications in one process): keep the first.
    let _ = result;
}

/// Runs blocking work on tokio's blocking pool inside the caller's span, so that its log lines
/// carry the request id. The bare `tokio::task::spawn_blocking` is refused by clippy
/// (`clippy.toml`): use this.
#[allow(clippy::disallowed_methods)]
pub fn spawn_blocking_with_tracing<F, R>(f: F) -> tokio::task::JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(f))
}

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The id of the request being served on this task (or of the one that started it), if any:
/// the audit trail's records carry it, so that what a request caused can be found from it.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// Runs `future` as the work of request `id`.
pub async fn with_request_id<F: std::future::Future>(id: String, future: F) -> F::Output {
    REQUEST_ID.scope(id, future).await
}

/// Spawns a task inside the caller's span and request, so that what it logs and audits (an
/// assessment finishing after its request was answered, a connection's messages) carries the
/// caller's request id. The bare `tokio::spawn` is refused by clippy (`clippy.toml`): use this.
pub fn spawn_with_tracing<F>(future: F) -> tokio::task::JoinHandle<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    spawn_with_tracing_on(&tokio::runtime::Handle::current(), future)
}

/// [`spawn_with_tracing`] on `runtime`: for work that must outlive the runtime it starts on
/// (an HTTP worker's, which stops with the server).
pub fn spawn_with_tracing_on<F>(
    runtime: &tokio::runtime::Handle,
    future: F,
) -> tokio::task::JoinHandle<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let span = tracing::Span::current();
    match current_request_id() {
        Some(id) => runtime.spawn(REQUEST_ID.scope(id, future).instrument(span)),
        None => runtime.spawn(future.instrument(span)),
    }
}
