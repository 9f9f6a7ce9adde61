//! `$risk-assessment` as every edge runs it (the FHIR operation now, CDS Hooks next): admission
//! (a bounded number of assessments in flight; more are refused as overloaded), then either a
//! synchronous answer within the time limit (past it the assessment goes on and is filed, and
//! asking again returns it) or an asynchronous job, recorded before it is accepted, run, and
//! found again by its status. A job is held under a lease (see `store::leases`) renewed while
//! it runs; jobs whose holder stopped or died are taken over, by another replica or by this
//! one at its next start, and a stopping replica gives its leases up at once. The
//! answer is a collection Bundle of the filed resources, with an OperationOutcome when the
//! prediction was made without part of the inputs. A failed job records the kind of its error,
//! which each edge maps to its own protocol. Every task runs in the span of the request that
//! started it, so that what it logs carries that request's id.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::Instrument;

use super::risk::{Assessment, AssessmentRequest};
use super::risk_inputs::AssessmentInputs;
use super::{Pipeline, PipelineError};
use crate::error::{ErrorKind, error_chain};
use crate::report::{
    BundleEntry, BundleKind, IssueCode, IssueSeverity, OutcomeIssue, ReportError, bundle,
    operation_outcome, resource_url,
};
use crate::store::{PendingRiskJob, RiskJobState};
use crate::telemetry::{spawn_with_tracing, spawn_with_tracing_on};

/// How many assessments may run at once (synchronous and asynchronous together) and how long
/// a synchronous caller waits for one.
#[derive(Clone)]
pub struct RiskAdmission {
    slots: Arc<Semaphore>,
    capacity: usize,
    time_limit: Duration,
    /// How long a job's lease lasts without renewal.
    job_lease: Duration,
    /// The asynchronous jobs running in this process: a pass that takes over jobs whose lease
    /// ran out (a renewal stalled) does not start a second run of one still running here.
    running: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
    /// Set when the service stops: the jobs still running end before they file anything more.
    stopping: Arc<tokio::sync::watch::Sender<bool>>,
    /// Where assessments run: the runtime the service was built on, not an HTTP worker's,
    /// which stops with the server and would drop them mid-run.
    runtime: Option<tokio::runtime::Handle>,
}

/// A job's place in [`RiskAdmission::running`], given up when its run ends however it ends.
struct RunningJob {
    running: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
    job: String,
}

impl RunningJob {
    /// `None` when the job is already running here.
    fn start(admission: &RiskAdmission, job: &str) -> Option<RunningJob> {
        let mut running = admission.running.lock().unwrap_or_else(|e| e.into_inner());
        running.insert(job.to_owned()).then(|| RunningJob {
            running: Arc::clone(&admission.running),
            job: job.to_owned(),
        })
    }
}

impl Drop for RunningJob {
    fn drop(&mut self) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running.remove(&self.job);
    }
}

/// The lease of an asynchronous job unless configured (`risk.job_lease_secs`).
pub const DEFAULT_JOB_LEASE: Duration = Duration::from_secs(30);

/// Jobs claimed from departed holders per pass.
const TAKEOVER_BATCH: u32 = 16;

impl std::fmt::Debug for RiskAdmission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RiskAdmission")
            .field("available", &self.slots.available_permits())
            .field("time_limit", &self.time_limit)
            .finish()
    }
}

impl Default for RiskAdmission {
    /// The defaults of the `risk` settings: 64 at once, 30 s.
    fn default() -> Self {
        Self::new(64, Duration::from_secs(30))
    }
}

impl RiskAdmission {
    pub fn new(max_concurrent: usize, time_limit: Duration) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(max_concurrent.max(1))),
            capacity: max_concurrent.max(1),
            time_limit,
            job_lease: DEFAULT_JOB_LEASE,
            running: Arc::default(),
            stopping: Arc::new(tokio::sync::watch::Sender::new(false)),
            runtime: tokio::runtime::Handle::try_current().ok(),
        }
    }

    /// Starts an assessment's task where assessments run.
    fn spawn<F>(&self, future: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match &self.runtime {
            Some(runtime) => spawn_with_tracing_on(runtime, future),
            None => spawn_with_tracing(future),
        }
    }

    /// How many asynchronous jobs run in this process now.
    fn jobs_running(&self) -> usize {
        self.running.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Resolves once the service is stopping.
    async fn stopped(&self) {
        let mut stopping = self.stopping.subscribe();
        // The sender lives as long as `self`.
        let _ = stopping.wait_for(|stopping| *stopping).await;
    }

    /// With asynchronous jobs held under `lease` (at least a second).
    pub fn with_job_lease(mut self, lease: Duration) -> Self {
        self.job_lease = lease.max(Duration::from_secs(1));
        self
    }

    /// Assessments running or waiting now.
    pub fn in_use(&self) -> usize {
        self.capacity.saturating_sub(self.slots.available_permits())
    }

    fn slot(&self) -> Result<OwnedSemaphorePermit, RiskJobError> {
        Arc::clone(&self.slots)
            .try_acquire_owned()
            .map_err(|_| RiskJobError::Busy)
    }
}

/// How the caller takes the answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Waits for the Bundle, up to the time limit.
    Wait,
    /// Is told the job's id at once and asks for its status.
    Job,
}

/// What a submitted assessment gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Submitted {
    /// The answer Bundle (JSON).
    Answered(String),
    /// Recorded and running: its status is asked for by this id.
    Accepted { job: String },
}

/// Where an asynchronous assessment stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobStatus {
    Running,
    /// Its answer Bundle (JSON).
    Done(String),
}

#[derive(Debug, thiserror::Error)]
pub enum RiskJobError {
    #[error("too many risk assessments are running; retry shortly")]
    Busy,
    #[error(
        "the assessment took longer than {secs} s; it goes on and is filed, and asking again returns it (or use Prefer: respond-async)"
    )]
    TimedOut { secs: u64 },
    #[error("no such request (results are kept a day; asking again returns the filed assessment)")]
    UnknownJob,
    /// How a job recorded as failed ended.
    #[error("{message}")]
    Failed { kind: ErrorKind, message: String },
    #[error("the assessment stopped before it finished")]
    Stopped(#[source] tokio::task::JoinError),
}

impl RiskJobError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            RiskJobError::Busy => ErrorKind::Overloaded,
            RiskJobError::TimedOut { .. } => ErrorKind::Unavailable,
            RiskJobError::UnknownJob => ErrorKind::NotFound,
            RiskJobError::Failed { kind, .. } => *kind,
            RiskJobError::Stopped(_) => ErrorKind::Internal,
        }
    }

    /// Seconds after which asking again should find the answer.
    pub fn retry_after(&self) -> Option<u32> {
        matches!(self, RiskJobError::TimedOut { .. }).then_some(5)
    }
}

impl Pipeline {
    /// Assesses `request` as the caller wants it delivered. `base` is the FHIR base URL the
    /// Bundle's entries are named under; `request_id` is recorded with a job, so that a job
    /// resumed after a stop still logs under the id its caller was told.
    pub async fn submit_assessment(
        &self,
        request: AssessmentRequest,
        base: &str,
        delivery: Delivery,
        request_id: Option<&str>,
    ) -> Result<Submitted, PipelineError> {
        let permit = self.risk_admission.slot()?;
        match delivery {
            Delivery::Job => {
                let job = uuid::Uuid::new_v4().to_string();
                let mut record = request.to_value();
                if let Some(id) = request_id {
                    record["request_id"] = Value::String(id.to_owned());
                }
                self.store
                    .insert_risk_job(
                        &job,
                        &record.to_string(),
                        base,
                        self.risk_admission.job_lease,
                    )
                    .await?;
                tracing::info!(job, "assessment accepted");
                self.risk_admission.spawn(self.clone().run_job(
                    job.clone(),
                    request,
                    base.to_owned(),
                    permit,
                ));
                Ok(Submitted::Accepted { job })
            }
            Delivery::Wait => {
                let assessment = self
                    .assess_within_limit(request, AssessmentInputs::default(), permit)
                    .await?;
                Ok(Submitted::Answered(assessment_bundle(base, &assessment)?))
            }
        }
    }

    /// Assesses `request` from what this service holds and what `inputs` names, waiting for
    /// the result within the time limit (the CDS Hooks services, which answer with cards).
    pub async fn assess_now(
        &self,
        request: AssessmentRequest,
        inputs: AssessmentInputs,
    ) -> Result<Assessment, PipelineError> {
        let permit = self.risk_admission.slot()?;
        self.assess_within_limit(request, inputs, permit).await
    }

    /// Runs an admitted assessment; past the time limit it goes on and is filed, and the
    /// caller is told so.
    async fn assess_within_limit(
        &self,
        request: AssessmentRequest,
        inputs: AssessmentInputs,
        permit: OwnedSemaphorePermit,
    ) -> Result<Assessment, PipelineError> {
        let pipeline = self.clone();
        let task = self.risk_admission.spawn(async move {
            let _permit = permit;
            pipeline.assess_risk(&request, inputs).await
        });
        let time_limit = self.risk_admission.time_limit;
        match tokio::time::timeout(time_limit, task).await {
            Ok(Ok(assessment)) => assessment,
            Ok(Err(stopped)) => Err(RiskJobError::Stopped(stopped).into()),
            Err(_) => {
                tracing::warn!(
                    time_limit_secs = time_limit.as_secs(),
                    "assessment past its time limit; it goes on"
                );
                Err(RiskJobError::TimedOut {
                    secs: time_limit.as_secs(),
                }
                .into())
            }
        }
    }

    /// The state of an asynchronous assessment: running, its Bundle, or the error it ended
    /// with ([`RiskJobError::Failed`]); unknown or expired: [`RiskJobError::UnknownJob`].
    pub async fn assessment_status(&self, job: &str) -> Result<JobStatus, PipelineError> {
        match self.store.risk_job(job).await? {
            None => Err(RiskJobError::UnknownJob.into()),
            Some(RiskJobState::Running) => Ok(JobStatus::Running),
            Some(RiskJobState::Done { bundle }) => Ok(JobStatus::Done(bundle)),
            Some(RiskJobState::Failed { kind, message }) => {
                Err(RiskJobError::Failed { kind, message }.into())
            }
        }
    }

    /// Takes over, for as long as the service runs, the asynchronous assessments whose holder
    /// is gone: at once (those a stop or crash left running), then every half lease.
    pub async fn take_over_risk_jobs(self) {
        let every = self.risk_admission.job_lease / 2;
        loop {
            self.take_over_abandoned_jobs().await;
            tokio::time::sleep(every).await;
        }
    }

    /// One pass of [`Pipeline::take_over_risk_jobs`]: claims what it can run now, each run in
    /// a span carrying the request id it was accepted under.
    async fn take_over_abandoned_jobs(&self) {
        loop {
            let free = self
                .risk_admission
                .slots
                .available_permits()
                .min(TAKEOVER_BATCH as usize);
            if free == 0 {
                return;
            }
            let claimed = match self
                .store
                .claim_abandoned_risk_jobs(self.risk_admission.job_lease, free as u32)
                .await
            {
                Ok(claimed) => claimed,
                Err(e) => {
                    tracing::error!(error = %error_chain(&e), "could not claim the abandoned assessments");
                    return;
                }
            };
            let last = claimed.len() < free;
            for job in claimed {
                self.resume_job(job).await;
            }
            if last {
                return;
            }
        }
    }

    async fn resume_job(&self, job: PendingRiskJob) {
        let recorded: Option<Value> = serde_json::from_str(&job.request).ok();
        let request_id = recorded
            .as_ref()
            .and_then(|r| r.get("request_id"))
            .and_then(Value::as_str)
            .unwrap_or(&job.id)
            .to_owned();
        let span = tracing::info_span!("request", request_id = %request_id, job = %job.id);
        let Some(request) = AssessmentRequest::from_json(&job.request) else {
            span.in_scope(|| tracing::error!("a recorded assessment could not be read"));
            let failed = RiskJobState::Failed {
                kind: ErrorKind::Internal,
                message: "the recorded request could not be read".into(),
            };
            if let Err(e) = self.store.finish_risk_job(&job.id, &failed).await {
                span.in_scope(|| {
                    tracing::error!(error = %error_chain(&e), "could not record how an assessment ended");
                });
            }
            return;
        };
        let Ok(permit) = Arc::clone(&self.risk_admission.slots).acquire_owned().await else {
            return;
        };
        span.in_scope(|| tracing::info!("taking over an assessment whose holder is gone"));
        self.risk_admission.spawn(
            crate::telemetry::with_request_id(
                request_id,
                self.clone().run_job(job.id, request, job.base, permit),
            )
            .instrument(span),
        );
    }

    /// Runs an asynchronous assessment and records how it ended.
    async fn run_job(
        self,
        job: String,
        request: AssessmentRequest,
        base: String,
        permit: OwnedSemaphorePermit,
    ) {
        let assessed = async {
            match self
                .assess_risk(&request, AssessmentInputs::default())
                .await
            {
                Ok(assessment) => {
                    assessment_bundle(&base, &assessment).map_err(PipelineError::from)
                }
                Err(e) => Err(e),
            }
        };
        let Some(_running) = RunningJob::start(&self.risk_admission, &job) else {
            tracing::info!(job, "the assessment is already running here");
            return;
        };
        let result = tokio::select! {
            result = assessed => result,
            () = self.risk_admission.stopped() => {
                // The service stops: its lease is given up next, and the replica that takes
                // the job over runs it whole.
                tracing::info!(job, "the service stops; the assessment is left to another run");
                return;
            }
            () = self.keep_lease(&job) => {
                // Stopped before it files anything more: another replica holds the job now,
                // and its run is the one that counts.
                tracing::warn!(job, "the assessment's lease was lost; stopped here");
                return;
            }
        };
        drop(permit);
        let state = match result {
            Ok(bundle) => RiskJobState::Done { bundle },
            Err(e) => {
                let kind = e.kind();
                if kind == ErrorKind::Internal {
                    tracing::error!(job, error = %error_chain(&e), "assessment failed");
                } else {
                    tracing::info!(job, error_kind = kind.name(), "assessment refused");
                }
                RiskJobState::Failed {
                    kind,
                    message: if kind == ErrorKind::Internal {
                        "the assessment failed; the service log has the cause".into()
                    } else {
                        e.to_string()
                    },
                }
            }
        };
        match self.store.finish_risk_job(&job, &state).await {
            Ok(true) => {}
            Ok(false) => tracing::warn!(
                job,
                "another replica holds the assessment now; its result is the one kept"
            ),
            Err(e) => {
                tracing::error!(job, error = %error_chain(&e), "could not record how an assessment ended");
            }
        }
    }

    /// For a stop: lets the asynchronous assessments running here finish for up to `grace`,
    /// then ends the rest before they file anything more, so that when this process gives up
    /// its leases no job is still running here while another replica takes it over. The
    /// number ended unfinished.
    pub async fn stop_risk_jobs(&self, grace: Duration) -> usize {
        let admission = &self.risk_admission;
        let deadline = tokio::time::Instant::now() + grace;
        while admission.jobs_running() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let unfinished = admission.jobs_running();
        admission.stopping.send_replace(true);
        // Each ends at its next await; none holds the thread for long.
        while admission.jobs_running() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        unfinished
    }

    /// Renews a running job's lease every third of it, for as long as it is polled; returns
    /// when the lease is lost: another holder has the job, or no renewal has succeeded for a
    /// whole lease (after which another replica may have taken it over).
    async fn keep_lease(&self, job: &str) {
        let lease = self.risk_admission.job_lease;
        let mut renewed = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(lease / 3).await;
            match self.store.renew_risk_job(job, lease).await {
                Ok(true) => renewed = tokio::time::Instant::now(),
                Ok(false) => return,
                Err(e) => {
                    tracing::warn!(job, error = %error_chain(&e), "the assessment's lease could not be renewed");
                    if renewed.elapsed() >= lease {
                        return;
                    }
                }
            }
        }
    }
}

/// The Bundle an assessment answers with: its filed resources under `base`, and its warnings
/// as an OperationOutcome.
fn assessment_bundle(base: &str, assessment: &Assessment) -> Result<String, ReportError> {
    let mut entries: Vec<BundleEntry> = assessment
        .resources
        .iter()
        .map(|(t, id, content)| {
            BundleEntry::with_resource(Some(resource_url(base, *t, id)), content)
        })
        .collect();
    if !assessment.warnings.is_empty() {
        let issues: Vec<OutcomeIssue> = assessment
            .warnings
            .iter()
            .map(|w| OutcomeIssue {
                severity: IssueSeverity::Warning,
                code: IssueCode::Incomplete,
                diagnostics: w.clone(),
                expression: None,
            })
            .collect();
        let outcome = operation_outcome(&issues)?;
        entries.push(BundleEntry::with_resource(
            Some(format!("urn:uuid:{}", uuid::Uuid::new_v4())),
            &outcome.to_string(),
        ));
    }
    bundle(BundleKind::Collection, None, &[], &entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_runs_once_at_a_time_in_a_process() {
        let admission = RiskAdmission::default();
        let first = RunningJob::start(&admission, "j1").expect("not running yet");
        assert!(RunningJob::start(&admission, "j1").is_none());
        assert!(RunningJob::start(&admission, "j2").is_some());
        drop(first);
        assert!(RunningJob::start(&admission, "j1").is_some());
    }
}
