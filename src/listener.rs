//! The accept loop the TCP protocol edges share (the DICOM storage SCP, the MLLP listener):
//! every connection runs as its own task; a failed accept is logged and the loop goes on.

use std::future::Future;
use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};

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
                tokio::spawn(serve(stream, peer));
            }
            Err(e) => tracing::warn!(protocol, error = %e, "accept failed"),
        }
    }
}
