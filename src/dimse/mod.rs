//! The DICOM network edge: a storage SCP (C-ECHO, C-STORE) on the DICOM upper layer protocol.
//! Each association runs as its own task; each received instance goes through the same
//! `pipeline::ingest_dicom` as STOW-RS, and its C-STORE-RSP is sent only once it is stored.
//! Failures map to DICOM statuses through `DicomStatus`. Owns dicom-ul; imports `pipeline` and
//! `config`. The protocol steps follow PS3.7 and PS3.8;
//! dicom-rs's `dicom-storescp` shows the same steps.

mod association;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::config::DicomSettings;
use crate::listener::{Shutdown, accept_each};
use crate::pipeline::Pipeline;

pub use association::{ABSTRACT_SYNTAXES, VERIFICATION, read_command};

/// A bound, not yet serving, storage SCP.
pub struct StorageScp {
    listener: TcpListener,
    settings: Arc<DicomSettings>,
    pipeline: Pipeline,
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl StorageScp {
    /// Binds the configured address (port 0 picks a free port); with `tls`, associations are
    /// over TLS only (DICOM PS3.15 B.1).
    pub async fn bind(
        settings: &DicomSettings,
        pipeline: Pipeline,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(settings.listen).await?;
        Ok(Self {
            listener,
            settings: Arc::new(settings.clone()),
            pipeline,
            tls,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Accepts associations until `shutdown`, then lets open ones finish the instance they
    /// are taking.
    pub async fn run(self, shutdown: Shutdown) {
        let (settings, pipeline, tls) = (self.settings, self.pipeline, self.tls);
        let max_connections = settings.max_connections;
        // The bytes of instance data all associations (and STOW-RS requests) may hold in
        // memory at once.
        let buffers = Arc::clone(pipeline.arriving_instances());
        let serve = move |stream, peer, shutdown| {
            let settings = Arc::clone(&settings);
            let pipeline = pipeline.clone();
            let tls = tls.clone();
            let buffers = Arc::clone(&buffers);
            async move {
                association::serve(stream, peer, tls, &settings, &pipeline, &buffers, shutdown)
                    .await;
            }
        };
        accept_each(self.listener, "DICOM", max_connections, shutdown, serve).await;
    }
}
