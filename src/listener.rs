//! The accept loop the TCP protocol edges share (the DICOM storage SCP, the MLLP listener):
//! every connection runs as its own task, inside a span naming the protocol and the peer, so
//! that every line it logs says which connection it came from; a failed accept is logged and
//! the loop goes on.

use std::future::Future;
use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tracing::Instrument;

use crate::telemetry::spawn_with_tracing;

/// Accepts connections until the task is dropped, handing each to `serve` on a task of its own.
/// `protocol` names the edge in logs.
pub async fn accept_each<F, Fut>(listener: TcpListener, protocol: &'static str, serve: F)
where
    F: Fn(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let span = tracing::info_span!(
                    "connection",
                    protocol,
                    peer = %peer,
                    connection_id = %uuid::Uuid::new_v4()
                );
                spawn_with_tracing(serve(stream, peer).instrument(span));
            }
            Err(e) => tracing::warn!(protocol, error = %e, "accept failed"),
        }
    }
}
