//! The HL7 v2 network edge: an MLLP listener. Each connection runs as its own task and may
//! carry any number of messages, one after another; each message goes through
//! `pipeline::receive_hl7` and its ACK is written only once the message is stored. A connection
//! that sends bytes outside a frame, or stays silent past the idle timeout, is closed. With TLS
//! configured every connection is TLS (optionally with a client certificate), the handshake
//! bounded by the idle timeout. Imports `hl7::mllp_framing`, `pipeline` and `config`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use crate::config::Hl7Settings;
use crate::domain::{AuditAction, AuditAgent, AuditOutcome, AuditRecord};
use crate::hl7::ack::AckCode;
use crate::hl7::mllp_framing::{Frame, FrameError, read_frame, write_frame};
use crate::listener::{Shutdown, accept_each, stopping};
use crate::pipeline::Pipeline;

/// A bound, not yet serving, MLLP listener.
pub struct MllpListener {
    listener: TcpListener,
    settings: Arc<Hl7Settings>,
    pipeline: Pipeline,
    tls: Option<TlsAcceptor>,
}

impl MllpListener {
    /// Binds the configured address (port 0 picks a free port); with `tls`, connections are
    /// TLS only.
    pub async fn bind(
        settings: &Hl7Settings,
        pipeline: Pipeline,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(settings.listen).await?;
        Ok(Self {
            listener,
            settings: Arc::new(settings.clone()),
            pipeline,
            tls: tls.map(TlsAcceptor::from),
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Accepts connections until `shutdown`, then lets open ones finish their message.
    pub async fn run(self, shutdown: Shutdown) {
        let (settings, pipeline, tls) = (self.settings, self.pipeline, self.tls);
        let max_connections = settings.max_connections;
        let serve = move |stream, peer, shutdown| {
            let settings = Arc::clone(&settings);
            let pipeline = pipeline.clone();
            let tls = tls.clone();
            async move { accept(stream, peer, tls, &settings, &pipeline, shutdown).await }
        };
        accept_each(self.listener, "MLLP", max_connections, shutdown, serve).await;
    }
}

/// Checks the peer's address, then serves the connection, over TLS when it is configured.
async fn accept(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    settings: &Hl7Settings,
    pipeline: &Pipeline,
    shutdown: Shutdown,
) {
    // An engine not on the allow-list is disconnected before a byte is read: nothing it sends
    // is taken, and it learns nothing from an answer.
    if !settings.allowed_sources.is_empty()
        && !settings
            .allowed_sources
            .iter()
            .any(|rule| rule.contains(peer.ip()))
    {
        tracing::warn!(%peer, "MLLP connection from an address not allowed: closed");
        let mut record = message_record(peer);
        record.outcome = AuditOutcome::MinorFailure;
        record.outcome_text = Some("connection from an address not allowed: closed".into());
        pipeline.audit(record).await;
        return;
    }
    let _ = stream.set_nodelay(true);
    let Some(tls) = tls else {
        return serve(stream, peer, settings, pipeline, shutdown).await;
    };
    let idle = Duration::from_secs(settings.idle_timeout_secs.max(1));
    match tokio::time::timeout(idle, tls.accept(stream)).await {
        Ok(Ok(stream)) => serve(stream, peer, settings, pipeline, shutdown).await,
        Ok(Err(e)) => {
            tracing::warn!(%peer, error = %e, "MLLP TLS handshake failed: closed");
            let mut record = message_record(peer);
            record.outcome = AuditOutcome::MinorFailure;
            record.outcome_text = Some(format!("TLS handshake failed: {e}"));
            pipeline.audit(record).await;
        }
        Err(_) => tracing::info!(%peer, "MLLP TLS handshake not finished in time: closed"),
    }
}

/// Reads messages and answers each until the peer closes, breaks the framing or goes quiet, or
/// the service stops (between messages: one being taken is answered first).
async fn serve<S>(
    stream: S,
    peer: SocketAddr,
    settings: &Hl7Settings,
    pipeline: &Pipeline,
    mut shutdown: Shutdown,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (reader, mut writer) = tokio::io::split(stream);
    let mut reader = BufReader::new(reader);
    let idle = Duration::from_secs(settings.idle_timeout_secs.max(1));
    let mut messages = 0usize;
    loop {
        let next = tokio::time::timeout(idle, read_frame(&mut reader, settings.max_message_bytes));
        let frame = tokio::select! {
            frame = next => frame,
            () = stopping(&mut shutdown) => {
                tracing::info!(%peer, messages, "MLLP connection closed: the service is stopping");
                return;
            }
        };
        let frame = match frame {
            Err(_) => {
                tracing::info!(%peer, messages, "MLLP connection idle: closed");
                return;
            }
            Ok(frame) => frame,
        };
        let answer = match frame {
            Ok(Frame::Closed) => {
                tracing::debug!(%peer, messages, "MLLP connection closed by the peer");
                return;
            }
            Ok(Frame::Message(bytes)) => pipeline.receive_hl7(&bytes).await,
            Err(FrameError::TooLong { limit, head }) => pipeline.refuse_oversized_hl7(&head, limit),
            Err(e) => {
                tracing::warn!(%peer, messages, error = %e, "MLLP connection broken: closed");
                return;
            }
        };
        messages += 1;
        let mut record = message_record(peer);
        if answer.code != AckCode::Accept {
            record.outcome = AuditOutcome::MinorFailure;
            record.outcome_text = Some(format!("answered {}", answer.code.as_str()));
        }
        record.entity = answer
            .message_id
            .as_ref()
            .map(|id| format!("hl7-message-{id}"));
        pipeline.audit(record).await;
        if let Some(ack) = answer.ack
            && let Err(e) = write_frame(&mut writer, ack.as_bytes()).await
        {
            // The message is stored; the sender will send it again and be answered then.
            tracing::warn!(%peer, error = %e, "MLLP ACK could not be sent");
            return;
        }
    }
}

/// The audit record of one message (or a refused connection) from `peer`.
fn message_record(peer: SocketAddr) -> AuditRecord {
    let mut record = AuditRecord::new("hl7v2", "mllp", AuditAction::Create);
    record.agent = AuditAgent {
        address: Some(peer.ip().to_string()),
        ..AuditAgent::default()
    };
    record
}
