//! Several models at once: every bundle the service loaded, each deployed `active` (what
//! `$risk-assessment` and the cards use unless a model is named), `shadow` (scores the same
//! inputs on every assessment, kept where only governance sees it) or `retired`. The state is
//! the `model_deployments` table; a change is one transaction that also files the model's
//! Device (its new status) and a Provenance of the change, then the in-memory registry is
//! swapped whole, so an assessment sees the models before the change or after it, never a mix.
//! A change made by another process (the `models` command) is picked up by polling.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

use serde_json::{Value, json};

use super::risk::RiskModel;
use super::{Pipeline, PipelineError};
use crate::domain::ResourceType;
use crate::error::ErrorKind;
use crate::report::risk::{CODE_SYSTEM, model_device};
use crate::store::DeploymentRow;

/// How a model is deployed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deployment {
    Active,
    Shadow,
    Retired,
}

impl Deployment {
    pub fn as_str(self) -> &'static str {
        match self {
            Deployment::Active => "active",
            Deployment::Shadow => "shadow",
            Deployment::Retired => "retired",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "active" => Some(Deployment::Active),
            "shadow" => Some(Deployment::Shadow),
            "retired" => Some(Deployment::Retired),
            _ => None,
        }
    }
}

/// A loaded model and its deployment.
#[derive(Debug, Clone)]
pub struct DeployedModel {
    pub model: Arc<RiskModel>,
    pub status: Deployment,
    /// Who made the last change (a user, client or `configuration`), when recorded.
    pub changed_by: Option<String>,
}

/// A bundle found that could not be loaded, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unloadable {
    pub path: String,
    pub reason: String,
}

/// The models as one consistent whole.
#[derive(Debug, Clone, Default)]
pub struct ModelRegistry {
    pub models: Vec<DeployedModel>,
    pub unloadable: Vec<Unloadable>,
}

impl ModelRegistry {
    /// `models`, the first active and the rest retired until the deployments table says
    /// otherwise.
    pub fn of(models: Vec<Arc<RiskModel>>, unloadable: Vec<Unloadable>) -> Self {
        let models = models
            .into_iter()
            .enumerate()
            .map(|(i, model)| DeployedModel {
                model,
                status: if i == 0 {
                    Deployment::Active
                } else {
                    Deployment::Retired
                },
                changed_by: None,
            })
            .collect();
        Self { models, unloadable }
    }

    pub fn active(&self) -> Option<&Arc<RiskModel>> {
        self.models
            .iter()
            .find(|m| m.status == Deployment::Active)
            .map(|m| &m.model)
    }

    pub fn shadows(&self) -> impl Iterator<Item = &Arc<RiskModel>> {
        self.models
            .iter()
            .filter(|m| m.status == Deployment::Shadow)
            .map(|m| &m.model)
    }

    pub fn find(&self, name: &str, version: &str) -> Option<&DeployedModel> {
        self.models
            .iter()
            .find(|m| m.model.description.name == name && m.model.description.version == version)
    }

    /// The statuses the table records; a model it does not name keeps `fallback`'s status
    /// for it (the configured model stays active until something else is).
    fn with_rows(&self, rows: &[DeploymentRow]) -> Self {
        let any_active = rows
            .iter()
            .any(|r| r.status == "active" && self.find(&r.name, &r.version).is_some());
        let mut next = self.clone();
        for deployed in &mut next.models {
            let d = &deployed.model.description;
            match rows
                .iter()
                .find(|r| r.name == d.name && r.version == d.version)
            {
                Some(row) => {
                    deployed.status = Deployment::parse(&row.status).unwrap_or(Deployment::Retired);
                    deployed.changed_by = row.changed_by.clone();
                }
                None if any_active && deployed.status == Deployment::Active => {
                    deployed.status = Deployment::Retired;
                }
                None => {}
            }
        }
        next
    }
}

/// The registry a pipeline and its clones share.
#[derive(Debug, Default)]
pub struct ModelSlot {
    current: RwLock<Arc<ModelRegistry>>,
    /// Held while a change is made: a second change waits for the first.
    changing: tokio::sync::Mutex<()>,
    /// The deployments table's last change this process has applied.
    seen_changed_ms: AtomicI64,
}

impl ModelSlot {
    pub fn new(registry: ModelRegistry) -> Self {
        Self {
            current: RwLock::new(Arc::new(registry)),
            ..Self::default()
        }
    }

    /// The registry now (a snapshot: later changes do not touch it).
    pub fn current(&self) -> Arc<ModelRegistry> {
        match self.current.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    fn replace(&self, registry: ModelRegistry) {
        let registry = Arc::new(registry);
        match self.current.write() {
            Ok(mut guard) => *guard = registry,
            Err(poisoned) => *poisoned.into_inner() = registry,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("no model {name}@{version} is loaded here; loaded: {loaded}")]
    Unknown {
        name: String,
        version: String,
        loaded: String,
    },
    #[error("{name}@{version} is already {status}")]
    Unchanged {
        name: String,
        version: String,
        status: &'static str,
    },
    #[error("another change of the models is taking too long; try again when it is done")]
    Busy,
    #[error(
        "retiring {0} would leave no active model: promote another first (the change is refused, \
         nothing was switched)"
    )]
    LastActive(String),
    #[error(
        "{model} cannot be given its inputs here: {reason}; as the active model every answer \
         would lack them (the change is refused, nothing was switched)"
    )]
    CannotFill { model: String, reason: String },
}

impl ModelError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            ModelError::Unknown { .. } => ErrorKind::NotFound,
            ModelError::Unchanged { .. } | ModelError::Busy | ModelError::LastActive(_) => {
                ErrorKind::Conflict
            }
            ModelError::CannotFill { .. } => ErrorKind::Unprocessable,
        }
    }
}

/// The encoders a service started with the configuration would run: the image encoder when
/// inference is on, and every text encoder it can load for a model that takes notes.
#[derive(Debug, Clone, Default)]
pub struct ConfiguredEncoders {
    pub image: Option<String>,
    pub text: Vec<String>,
}

/// What a change asks.
#[derive(Debug, Clone)]
pub struct DeployRequest {
    pub name: String,
    pub version: String,
    pub status: Deployment,
    /// Who asks: a user or client (`Practitioner/…`, `client issuer id`), or the operator of
    /// the command line.
    pub by: String,
    pub reason: Option<String>,
}

/// The model's Device with its deployment.
fn deployed_device(model: &RiskModel, status: Deployment) -> Value {
    let mut device = model_device(&model.description);
    device["status"] = json!(if status == Deployment::Retired {
        "inactive"
    } else {
        "active"
    });
    device["property"] = json!([{
        "type": {"coding": [{"system": CODE_SYSTEM, "code": "deployment-status", "display": "Deployment status"}]},
        "valueCode": [{"coding": [{"system": CODE_SYSTEM, "code": format!("deployment-{}", status.as_str())}]}],
    }]);
    device
}

/// The Provenance of a change: the Device's new version, who, when and why.
fn change_provenance(
    device_id: &str,
    device_version: &str,
    request: &DeployRequest,
    at: &str,
) -> Value {
    let mut provenance = json!({
        "resourceType": "Provenance",
        "target": [{"reference": format!("Device/{device_id}/_history/{device_version}")}],
        "recorded": at,
        "activity": {"coding": [{"system": CODE_SYSTEM, "code": format!("deployment-{}", request.status.as_str()),
            "display": format!("model deployed {}", request.status.as_str())}]},
        "agent": [{
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type", "code": "author", "display": "Author"}]},
            "who": if request.by.contains('/') && !request.by.contains(' ') {
                json!({"reference": request.by})
            } else {
                json!({"display": request.by})
            },
        }],
    });
    if let Some(reason) = &request.reason {
        provenance["reason"] = json!([{"text": reason}]);
    }
    provenance
}

impl Pipeline {
    /// The models now.
    pub fn models(&self) -> Arc<ModelRegistry> {
        self.models.current()
    }

    /// Applies what the deployments table records (at start, and when another process
    /// changed it); with nothing recorded, records the configured model as active. Files a
    /// Device for every loaded model whose Device does not say its deployment yet.
    pub async fn sync_models(&self) -> Result<(), PipelineError> {
        let changed = self.store.deployments_changed_ms().await?;
        let rows = self.store.model_deployments().await?;
        let mut registry = self.models.current().with_rows(&rows);
        let recorded_active = rows
            .iter()
            .any(|r| r.status == "active" && registry.find(&r.name, &r.version).is_some());
        let mut tx = self.store.begin().await?;
        if !recorded_active
            && let Some(active) = registry
                .models
                .iter_mut()
                .find(|m| m.status == Deployment::Active)
        {
            let d = &active.model.description;
            if tx.active_model().await?.is_none() {
                tx.set_model_status(&d.name, &d.version, "active", Some("configuration"))
                    .await?;
                active.changed_by = Some("configuration".into());
            }
        }
        for deployed in &registry.models {
            let device = deployed_device(&deployed.model, deployed.status);
            let id = &deployed.model.description.device_id;
            let current = match tx.read(ResourceType::Device, id).await {
                Ok(stored) => stored
                    .content
                    .and_then(|c| serde_json::from_str::<Value>(&c).ok()),
                Err(_) => None,
            };
            if current.as_ref().map(|c| (&c["status"], &c["property"]))
                != Some((&device["status"], &device["property"]))
                && let Value::Object(map) = device
            {
                tx.write(ResourceType::Device, id, map, None).await?;
            }
        }
        tx.commit().await?;
        // What this process applied, including a row it has just written.
        let changed = changed.max(self.store.deployments_changed_ms().await?);
        self.models.seen_changed_ms.store(changed, Ordering::SeqCst);
        let summary: Vec<String> = registry
            .models
            .iter()
            .map(|m| {
                format!(
                    "{}@{} {}",
                    m.model.description.name,
                    m.model.description.version,
                    m.status.as_str()
                )
            })
            .collect();
        tracing::info!(models = %summary.join(", "), "model deployments applied");
        self.models.replace(registry);
        Ok(())
    }

    /// Picks up a change another process recorded since this one last looked.
    pub async fn refresh_models(&self) -> Result<bool, PipelineError> {
        let changed = self.store.deployments_changed_ms().await?;
        if changed <= self.models.seen_changed_ms.load(Ordering::SeqCst) {
            return Ok(false);
        }
        let _changing = self.models.changing.lock().await;
        self.sync_models().await?;
        Ok(true)
    }

    /// Why `model` could not be given an input modality here, if it could not: it takes
    /// embeddings of an encoder this service does not run (notes encoded by another text
    /// encoder, or none loaded; studies by another image encoder, or inference off). A shadow
    /// may lack them (what it lacked shows in its monitoring); the active model may not.
    fn unfillable(&self, model: &RiskModel) -> Option<String> {
        let spec = model.model.manifest.inputs.as_ref()?;
        let configured = self.encoders_configured.as_ref();
        let text: Vec<&str> = match (&self.text_encoder, configured) {
            (Some(loaded), _) => vec![loaded.name.as_str()],
            (None, Some(c)) => c.text.iter().map(String::as_str).collect(),
            (None, None) => Vec::new(),
        };
        let image: Option<&str> = match (&self.image_encoder, configured) {
            (Some(loaded), _) => Some(loaded.name()),
            (None, Some(c)) => c.image.as_deref(),
            (None, None) => None,
        };
        let mut lacking = Vec::new();
        if let Some(notes) = &spec.notes
            && !text.contains(&notes.encoder.as_str())
        {
            lacking.push(match text.first() {
                Some(other) => format!(
                    "it takes notes encoded by `{}`, and this service encodes them with `{other}`",
                    notes.encoder
                ),
                None => format!(
                    "it takes notes encoded by `{}`, and no text encoder is loaded (one is \
                     loaded at start when a model that is not retired takes notes)",
                    notes.encoder
                ),
            });
        }
        if let Some(imaging) = &spec.imaging
            && image != Some(imaging.encoder.as_str())
        {
            lacking.push(match image {
                Some(other) => format!(
                    "it takes studies encoded by `{}`, and this service encodes them with `{other}`",
                    imaging.encoder
                ),
                None => format!(
                    "it takes studies encoded by `{}`, and no image encoder runs here \
                     (inference is off)",
                    imaging.encoder
                ),
            });
        }
        (!lacking.is_empty()).then(|| lacking.join("; "))
    }

    /// Deploys a loaded model as asked: one transaction for the table, the Device and the
    /// Provenance (promoting a model retires the one active before it), then the registry is
    /// swapped. Returns the Device and the Provenance filed, as JSON.
    pub async fn deploy_model(
        &self,
        request: &DeployRequest,
    ) -> Result<(String, String), PipelineError> {
        // Changes are made one after the other: the second sees what the first made.
        let Ok(_changing) = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            self.models.changing.lock(),
        )
        .await
        else {
            return Err(ModelError::Busy.into());
        };
        let registry = self.models.current();
        let Some(target) = registry.find(&request.name, &request.version) else {
            let loaded: Vec<String> = registry
                .models
                .iter()
                .map(|m| {
                    format!(
                        "{}@{}",
                        m.model.description.name, m.model.description.version
                    )
                })
                .collect();
            return Err(ModelError::Unknown {
                name: request.name.clone(),
                version: request.version.clone(),
                loaded: if loaded.is_empty() {
                    "none".into()
                } else {
                    loaded.join(", ")
                },
            }
            .into());
        };
        if target.status == request.status {
            return Err(ModelError::Unchanged {
                name: request.name.clone(),
                version: request.version.clone(),
                status: request.status.as_str(),
            }
            .into());
        }
        if target.status == Deployment::Active && request.status != Deployment::Active {
            return Err(
                ModelError::LastActive(format!("{}@{}", request.name, request.version)).into(),
            );
        }
        if request.status == Deployment::Active
            && let Some(reason) = self.unfillable(&target.model)
        {
            return Err(ModelError::CannotFill {
                model: format!("{}@{}", request.name, request.version),
                reason,
            }
            .into());
        }
        let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let mut tx = self.store.begin().await?;
        let mut changed = vec![(Arc::clone(&target.model), request.status)];
        if request.status == Deployment::Active
            && let Some(previous) = registry.active()
        {
            let d = &previous.description;
            tx.set_model_status(&d.name, &d.version, "retired", Some(&request.by))
                .await?;
            changed.push((Arc::clone(previous), Deployment::Retired));
        }
        tx.set_model_status(
            &request.name,
            &request.version,
            request.status.as_str(),
            Some(&request.by),
        )
        .await?;
        let mut filed = None;
        for (model, status) in &changed {
            let Value::Object(device) = deployed_device(model, *status) else {
                continue;
            };
            let id = &model.description.device_id;
            let stored = tx.write(ResourceType::Device, id, device, None).await?;
            let Value::Object(provenance) = change_provenance(
                id.as_ref(),
                &stored.version.to_string(),
                &DeployRequest {
                    status: *status,
                    ..request.clone()
                },
                &at,
            ) else {
                continue;
            };
            let provenance_id = crate::domain::ResourceId::generate();
            let provenance = tx
                .write(ResourceType::Provenance, &provenance_id, provenance, None)
                .await?;
            if filed.is_none() {
                filed = Some((
                    stored.content.unwrap_or_default(),
                    provenance.content.unwrap_or_default(),
                ));
            }
        }
        tx.commit().await?;
        tracing::info!(
            model = %request.name,
            version = %request.version,
            status = request.status.as_str(),
            "model deployment changed"
        );
        self.sync_models().await?;
        Ok(filed.unwrap_or_default())
    }
}
