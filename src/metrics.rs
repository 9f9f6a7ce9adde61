//! What the service counts and times, for `GET /metrics` (the OpenMetrics text format, which
//! Prometheus scrapes): requests by route and status with their latency, assessments by model
//! and outcome with their time, inference time, shadow predictions, the deployment of each
//! model, clinicians' reviews and card feedback, and queue depths sampled at each scrape.
//! Labels are route patterns, model names and codes: never a patient or a value.
//!
//! One registry for the process, as there is one tracing subscriber: the places that count
//! are many and deep (the HTTP edge, the pipeline), and a handle threaded through each would
//! only carry this same registry.

use std::sync::LazyLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// The route pattern (`/fhir/{resource_type}/{id}`), or `unmatched`.
    pub route: String,
    pub method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResponseLabels {
    pub route: String,
    pub method: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelLabels {
    pub model: String,
    pub version: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub model: String,
    pub version: String,
    /// `filed`, `reused`, `refused` for assessments; `scored`, `refused` for shadows.
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeploymentLabels {
    pub model: String,
    pub version: String,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    /// `signed`, `disagreed`; `accepted`, `overridden`.
    pub decision: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AlertLabels {
    pub model: String,
    pub version: String,
    /// `discrimination`, `calibration`, `input-missing:{input}`, `subgroup-gap:{column}`.
    pub kind: String,
}

type Timings<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency() -> Histogram {
    // 0.5 ms to about 33 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 17))
}

pub struct Metrics {
    registry: Registry,
    pub http_requests: Family<ResponseLabels, Counter>,
    pub http_duration: Timings<RouteLabels>,
    pub assessments: Family<OutcomeLabels, Counter>,
    pub assessment_duration: Timings<ModelLabels>,
    pub inference_duration: Timings<ModelLabels>,
    pub shadow_predictions: Family<OutcomeLabels, Counter>,
    pub model_deployed: Family<DeploymentLabels, Gauge>,
    pub reviews: Family<DecisionLabels, Counter>,
    pub card_feedback: Family<DecisionLabels, Counter>,
    pub audit_queue_depth: Gauge,
    pub risk_jobs_running: Gauge,
    pub alerts: Family<AlertLabels, Gauge>,
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("prognostics");
        let metrics = Self {
            registry: Registry::default(),
            http_requests: Family::default(),
            http_duration: Family::new_with_constructor(latency),
            assessments: Family::default(),
            assessment_duration: Family::new_with_constructor(latency),
            inference_duration: Family::new_with_constructor(latency),
            shadow_predictions: Family::default(),
            model_deployed: Family::default(),
            reviews: Family::default(),
            card_feedback: Family::default(),
            audit_queue_depth: Gauge::default(),
            risk_jobs_running: Gauge::default(),
            alerts: Family::default(),
        };
        registry.register(
            "http_requests",
            "HTTP requests answered, by route pattern, method and status",
            metrics.http_requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request, by route pattern and method",
            metrics.http_duration.clone(),
        );
        registry.register(
            "assessments",
            "Risk assessments by the active model: filed, reused (the same inputs, filed before) or refused",
            metrics.assessments.clone(),
        );
        registry.register(
            "assessment_duration_seconds",
            "Time to make and file an assessment, by model",
            metrics.assessment_duration.clone(),
        );
        registry.register(
            "inference_duration_seconds",
            "Time the model's forward pass took, by model",
            metrics.inference_duration.clone(),
        );
        registry.register(
            "shadow_predictions",
            "Shadow models' answers to new assessments' inputs: scored or refused",
            metrics.shadow_predictions.clone(),
        );
        registry.register(
            "model_deployed",
            "1 for each model's current deployment status (active, shadow, retired)",
            metrics.model_deployed.clone(),
        );
        registry.register(
            "reviews",
            "Clinicians' reviews of risk reports: signed or disagreed",
            metrics.reviews.clone(),
        );
        registry.register(
            "card_feedback",
            "Feedback on CDS cards: accepted or overridden",
            metrics.card_feedback.clone(),
        );
        registry.register(
            "audit_queue_depth",
            "Audit records queued, not yet committed",
            metrics.audit_queue_depth.clone(),
        );
        registry.register(
            "risk_jobs_running",
            "Assessments running or waiting now",
            metrics.risk_jobs_running.clone(),
        );
        registry.register(
            "alert",
            "1 for each monitoring alert raised at the last evaluation, by model and kind",
            metrics.alerts.clone(),
        );
        Self {
            registry,
            ..metrics
        }
    }

    /// Every metric in the OpenMetrics text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// The process's metrics.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The media type of [`Metrics::render`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Model labels.
pub fn model(name: &str, version: &str) -> ModelLabels {
    ModelLabels {
        model: name.to_owned(),
        version: version.to_owned(),
    }
}

/// Outcome labels.
pub fn outcome(name: &str, version: &str, outcome: &str) -> OutcomeLabels {
    OutcomeLabels {
        model: name.to_owned(),
        version: version.to_owned(),
        outcome: outcome.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_times_are_rendered_under_the_service_prefix() {
        let labels = ResponseLabels {
            route: "/fhir/{resource_type}/{id}".into(),
            method: "GET".into(),
            status: 200,
        };
        METRICS.http_requests.get_or_create(&labels).inc();
        METRICS
            .http_duration
            .get_or_create(&RouteLabels {
                route: labels.route.clone(),
                method: "GET".into(),
            })
            .observe(0.003);
        let text = METRICS.render();
        assert!(text.contains(
            "prognostics_http_requests_total{route=\"/fhir/{resource_type}/{id}\",method=\"GET\",status=\"200\"}"
        ), "{text}");
        assert!(text.contains("prognostics_http_request_duration_seconds_bucket"));
        assert!(text.ends_with("# EOF\n"));
    }
}
