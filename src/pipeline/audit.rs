//! The audit trail's writer: records from every door are queued and written off the request
//! path, in batches, chained by their hashes (`store::append_audit`). A record is kept as
//! compact JSON ([`AuditRecord::to_kept_json`]) and shown as the AuditEvent drawn from it.
//!
//! Durability: a batch is committed when it holds [`BATCH_MAX`] records or its oldest record
//! has waited [`FLUSH_WINDOW`], so a record reaches the database at most [`DURABLE_WITHIN`]
//! after it was queued; a kill -9 loses at most the records queued in that time. The queue is
//! bounded: when the database falls behind, a full queue makes requests wait for room rather
//! than drop a record. A failed write is tried again, never skipped.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::{Pipeline, PipelineError};
use crate::domain::{AuditRecord, ResourceId};
use crate::fhir::{FhirError, parse_date_range};
use crate::report::{BundleEntry, BundleKind, BundleLink, audit_event, bundle};
use crate::store::{AuditFilter, NewAuditEvent, Store, subject_terms};
use crate::telemetry::spawn_with_tracing;

/// Longest a record waits in a batch before it is written.
pub const FLUSH_WINDOW: Duration = Duration::from_millis(50);
/// Most records written in one transaction.
pub const BATCH_MAX: usize = 4_096;
/// The stated bound: a queued record is committed within this (the window, plus a commit).
pub const DURABLE_WITHIN: Duration = Duration::from_millis(250);
/// Records queued at most; past it, whoever records waits.
const QUEUE_CAPACITY: usize = 8_192;

enum Message {
    Record(Box<AuditRecord>),
    /// Write everything queued before this, then answer.
    Flush(oneshot::Sender<()>),
}

/// A handle to the trail's queue; cheap to clone.
#[derive(Clone, Debug)]
pub struct Auditor {
    queue: mpsc::Sender<Message>,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("audit message")
    }
}

impl Auditor {
    /// Starts the writer over `store`.
    pub fn start(store: Store) -> (Auditor, tokio::task::JoinHandle<()>) {
        let (queue, receiver) = mpsc::channel(QUEUE_CAPACITY);
        let writer = spawn_with_tracing(write_batches(store, receiver));
        (Auditor { queue }, writer)
    }

    /// Records queued, not yet taken by the writer.
    pub fn depth(&self) -> usize {
        self.queue.max_capacity() - self.queue.capacity()
    }

    /// Queues a record; waits while the queue is full.
    pub async fn record(&self, record: AuditRecord) {
        if self
            .queue
            .send(Message::Record(Box::new(record)))
            .await
            .is_err()
        {
            tracing::error!("the audit writer has stopped; an audit record could not be queued");
        }
    }

    /// Returns once every record queued before the call is committed.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.queue.send(Message::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

async fn write_batches(store: Store, mut receiver: mpsc::Receiver<Message>) {
    let mut batch: Vec<NewAuditEvent> = Vec::with_capacity(BATCH_MAX);
    let mut waiting: Vec<oneshot::Sender<()>> = Vec::new();
    let mut open = true;
    while open {
        // The first record opens a batch; the writer then sleeps out the window and takes
        // everything queued meanwhile. Not waking for each record keeps the cost of a record
        // to the request that queues it at a channel send.
        let Some(first) = receiver.recv().await else {
            break;
        };
        let mut next = Some(first);
        let mut slept = false;
        loop {
            match next.take() {
                Some(Message::Record(record)) => batch.push(new_event(&record)),
                Some(Message::Flush(done)) => waiting.push(done),
                None => {}
            }
            if batch.len() >= BATCH_MAX {
                break;
            }
            match receiver.try_recv() {
                Ok(message) => next = Some(message),
                Err(mpsc::error::TryRecvError::Empty) if !slept && waiting.is_empty() => {
                    tokio::time::sleep(FLUSH_WINDOW).await;
                    slept = true;
                }
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    open = false;
                    break;
                }
            }
        }
        write(&store, &mut batch).await;
        for done in waiting.drain(..) {
            let _ = done.send(());
        }
    }
    write(&store, &mut batch).await;
}

/// Writes the batch, trying again until the database takes it.
async fn write(store: &Store, batch: &mut Vec<NewAuditEvent>) {
    if batch.is_empty() {
        return;
    }
    let mut delay = Duration::from_millis(100);
    loop {
        match store.append_audit(batch).await {
            Ok(()) => break,
            Err(e) => {
                tracing::error!(error = %crate::error::error_chain(&e), records = batch.len(), "audit records could not be written; trying again");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
    batch.clear();
}

/// The AuditEvent a row of the trail is shown as: drawn from the record it keeps (rows written
/// before records were kept compact hold the AuditEvent itself).
pub fn shown(id: &str, content: &str) -> String {
    let record = AuditRecord::from_kept_json(content);
    match (record, ResourceId::parse(id)) {
        (Some(record), Ok(id)) => audit_event(&id, &record).to_string(),
        _ => content.to_owned(),
    }
}

fn new_event(record: &AuditRecord) -> NewAuditEvent {
    let id = ResourceId::generate_ordered();
    let mut agents: Vec<&str> = record.agent.identifiers().collect();
    agents.sort_unstable();
    agents.dedup();
    let mut patients: Vec<&str> = record.patients.iter().map(String::as_str).collect();
    patients.sort_unstable();
    patients.dedup();
    NewAuditEvent {
        id: Arc::from(id.as_ref()),
        recorded_ms: record.recorded.timestamp_millis(),
        outcome: record.outcome.code(),
        content: Arc::from(record.to_kept_json()),
        terms: Arc::from(subject_terms(
            patients.iter().copied(),
            agents.iter().copied(),
        )),
    }
}

impl Pipeline {
    /// Writes audit records to the trail through `auditor`.
    pub fn with_auditor(mut self, auditor: Auditor) -> Self {
        self.auditor = Some(auditor);
        self
    }

    /// Queues a record for the trail (none is kept when no trail is configured: tools that
    /// open the store for one command). A record made while serving a request carries its id.
    pub async fn audit(&self, mut record: AuditRecord) {
        if let Some(auditor) = &self.auditor {
            if record.request_id.is_none() {
                record.request_id = crate::telemetry::current_request_id();
            }
            auditor.record(record).await;
        }
    }

    /// Samples the queue depths and the models' deployments into the metrics (at a scrape).
    pub fn sample_metrics(&self) {
        use crate::metrics::{DeploymentLabels, METRICS};
        let audit = self.auditor.as_ref().map_or(0, Auditor::depth);
        METRICS.audit_queue_depth.set(audit as i64);
        METRICS
            .risk_jobs_running
            .set(self.risk_admission.in_use() as i64);
        for deployed in &self.models().models {
            let d = &deployed.model.description;
            for status in ["active", "shadow", "retired"] {
                METRICS
                    .model_deployed
                    .get_or_create(&DeploymentLabels {
                        model: d.name.clone(),
                        version: d.version.clone(),
                        status: status.to_owned(),
                    })
                    .set(i64::from(deployed.status.as_str() == status));
            }
        }
    }

    /// Returns once every record queued so far is committed.
    pub async fn flush_audit(&self) {
        if let Some(auditor) = &self.auditor {
            auditor.flush().await;
        }
    }
}

impl Pipeline {
    /// Searches the trail: `patient`, `agent` (client id, user, AE title or address),
    /// `outcome` (0, 4, 8, 12), `date` (with prefixes ge, gt, le, lt, eq; repeatable), newest
    /// first, `_count` a page, the `next` link carrying a `_cursor`.
    pub async fn search_audit(
        &self,
        params: &[(String, String)],
        base_url: &str,
    ) -> Result<String, PipelineError> {
        let invalid = |name: &str, reason: &'static str| {
            PipelineError::Fhir(FhirError::InvalidSearchValue {
                name: name.to_owned(),
                reason,
            })
        };
        let mut filter = AuditFilter {
            count: self.page_sizes.default as usize,
            ..AuditFilter::default()
        };
        for (name, value) in params {
            match name.as_str() {
                "patient" => {
                    let id = value.strip_prefix("Patient/").unwrap_or(value);
                    filter.patient = Some(id.to_owned());
                }
                "agent" => filter.agent = Some(value.clone()),
                "outcome" => {
                    if !["0", "4", "8", "12"].contains(&value.as_str()) {
                        return Err(invalid(name, "must be 0, 4, 8 or 12"));
                    }
                    filter.outcome = Some(value.clone());
                }
                "date" => {
                    let (prefix, date) = match value.get(..2) {
                        Some(p @ ("ge" | "gt" | "le" | "lt" | "eq")) => (p, &value[2..]),
                        _ => ("eq", value.as_str()),
                    };
                    let range = parse_date_range(date)
                        .ok_or_else(|| invalid(name, "must be a FHIR date or dateTime"))?;
                    let (from, until) = match prefix {
                        "ge" => (Some(range.start_ms), None),
                        "gt" => (Some(range.end_ms), None),
                        "le" => (None, Some(range.end_ms)),
                        "lt" => (None, Some(range.start_ms)),
                        _ => (Some(range.start_ms), Some(range.end_ms)),
                    };
                    if let Some(from) = from {
                        filter.from_ms = Some(filter.from_ms.map_or(from, |f| f.max(from)));
                    }
                    if let Some(until) = until {
                        filter.until_ms = Some(filter.until_ms.map_or(until, |u| u.min(until)));
                    }
                }
                "_count" => {
                    let count: u32 = value
                        .parse()
                        .map_err(|_| invalid(name, "must be a whole number"))?;
                    filter.count = count.clamp(1, self.page_sizes.max) as usize;
                }
                "_cursor" => {
                    filter.before_seq = Some(
                        value
                            .parse()
                            .map_err(|_| invalid(name, "must be a cursor from a next link"))?,
                    );
                }
                _ => {
                    return Err(PipelineError::Fhir(FhirError::InvalidSearchValue {
                        name: name.clone(),
                        reason: "not a search parameter of the audit trail (patient, agent, \
                                 outcome, date, _count)",
                    }));
                }
            }
        }
        let wanted = filter.count;
        filter.count = wanted + 1;
        let mut rows = self.store.search_audit(&filter).await?;
        let more = rows.len() > wanted;
        rows.truncate(wanted);
        let link = |extra: Option<i64>| {
            let mut query = url::form_urlencoded::Serializer::new(String::new());
            for (name, value) in params.iter().filter(|(n, _)| n != "_cursor") {
                query.append_pair(name, value);
            }
            if let Some(cursor) = extra {
                query.append_pair("_cursor", &cursor.to_string());
            }
            format!("{base_url}/AuditEvent?{}", query.finish())
        };
        let mut links = vec![BundleLink {
            relation: "self",
            url: link(filter.before_seq),
        }];
        if more && let Some(last) = rows.last() {
            links.push(BundleLink {
                relation: "next",
                url: link(Some(last.seq)),
            });
        }
        let entries: Vec<BundleEntry> = rows
            .iter()
            .map(|row| {
                BundleEntry::with_resource(
                    Some(format!("{base_url}/AuditEvent/{}", row.id)),
                    &shown(&row.id, &row.content),
                )
                .search_match()
            })
            .collect();
        Ok(bundle(BundleKind::Searchset, None, &links, &entries)?)
    }

    /// One AuditEvent of the trail, with the patients it is about.
    pub async fn read_audit(&self, id: &str) -> Result<Option<String>, PipelineError> {
        Ok(self
            .store
            .read_audit(id)
            .await?
            .map(|row| shown(&row.id, &row.content)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::AuditAction;

    #[test]
    fn kept_records_are_shown_as_audit_events_and_older_rows_as_they_are() {
        let mut record = AuditRecord::new("rest", "read", AuditAction::Read);
        record.patients = vec!["p1".into()];
        let id = ResourceId::generate_ordered();
        let shown_event: serde_json::Value =
            serde_json::from_str(&shown(id.as_ref(), &record.to_kept_json())).unwrap();
        assert_eq!(shown_event["resourceType"], "AuditEvent");
        assert_eq!(shown_event["id"], id.as_ref());
        assert_eq!(shown_event["subtype"][0]["code"], "read");
        // A row written when the trail kept AuditEvents whole.
        let older = r#"{"resourceType":"AuditEvent","id":"x","outcome":"0"}"#;
        assert_eq!(shown("x", older), older);
    }
}
