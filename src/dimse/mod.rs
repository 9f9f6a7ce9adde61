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
use crate::pipeline::Pipeline;

pub use association::{ABSTRACT_SYNTAXES, VERIFICATION};

/// A bound, not yet serving, storage SCP.
pub struct StorageScp {
    listener: TcpListener,
    settings: Arc<DicomSettings>,
    pipeline: Pipeline,
}

impl StorageScp {
    /// Binds the configured address (port 0 picks a free port).
    pub async fn bind(settings: &DicomSettings, pipeline: Pipeline) -> std::io::Result<Self> {
        let listener = TcpListener::bind(settings.listen).await?;
        Ok(Self {
            listener,
            settings: Arc::new(settings.clone()),
            pipeline,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Accepts associations until the task is dropped.
    pub async fn run(self) {
        let (settings, pipeline) = (self.settings, self.pipeline);
        crate::listener::accept_each(self.listener, "DICOM", move |stream, peer| {
            let settings = Arc::clone(&settings);
            let pipeline = pipeline.clone();
            async move { association::serve(stream, peer, &settings, &pipeline).await }
        })
        .await;
    }
}
