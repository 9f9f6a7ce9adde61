//! One association: negotiation (over TCP, or TLS when configured), then C-ECHO and C-STORE
//! requests until release or abort.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use dicom_transfer_syntax_registry::entries::IMPLICIT_VR_LITTLE_ENDIAN;
use dicom_ul::Pdu;
use dicom_ul::association::server::AccessControl;
use dicom_ul::association::{Association, AsyncServerAssociation, ServerAssociationOptions};
use dicom_ul::pdu::{AssociationRJServiceUserReason, UserIdentity};
use dicom_ul::pdu::{PDataValue, PDataValueType};
use tokio::net::TcpStream;

use crate::config::{AllowedCaller, DicomSettings};
use crate::dicom::{Encoding, check_declared_lengths};
use crate::domain::{AuditAction, AuditAgent, AuditOutcome, AuditRecord, DicomUid};
use crate::listener::{Shutdown, stopping};
use crate::pipeline::memory_budget::ARRIVAL_WAIT;
use crate::pipeline::{DicomStatus, Held, MemoryBudget, Pipeline};

/// The Verification SOP Class (C-ECHO).
pub const VERIFICATION: &str = "1.2.840.10008.1.1";
/// Abstract syntaxes named explicitly; any other proposed SOP class is accepted too, and a
/// C-STORE of a class that is not a storage class fails with 0x0122.
pub const ABSTRACT_SYNTAXES: &[&str] = &[VERIFICATION];

const C_STORE_RQ: u16 = 0x0001;
const C_STORE_RSP: u16 = 0x8001;
const C_ECHO_RQ: u16 = 0x0030;
const C_ECHO_RSP: u16 = 0x8030;
/// Command Data Set Type (0000,0800) value meaning "no data set follows".
const NO_DATA_SET: u16 = 0x0101;
/// The largest command set accepted: a C-STORE-RQ is a few hundred bytes (its largest values
/// are two UIDs of at most 64 bytes and an AE title).
const MAX_COMMAND_BYTES: usize = 16 * 1024;

/// The C-STORE request whose data set is being received.
struct PendingStore {
    message_id: u16,
    sop_class_uid: String,
    sop_instance_uid: String,
    context_id: u8,
    data: Vec<u8>,
    /// The share of the memory budget `data` holds, given back when this is dropped.
    held: Option<Held>,
    /// Set when the data set could not be kept (over the instance limit, or no memory in the
    /// budget in time): the rest is discarded and the store fails with A700.
    refused: Option<&'static str>,
}

impl PendingStore {
    fn refuse(&mut self, reason: &'static str) {
        self.refused = Some(reason);
        self.data = Vec::new();
        self.held = None;
    }
}

/// What an association stored.
#[derive(Default)]
struct Received {
    stored: usize,
    studies: std::collections::BTreeSet<DicomUid>,
}

/// The calling AE titles (and their addresses) allowed to associate; anyone else is rejected
/// with A-ASSOCIATE-RJ, rejected-permanent, calling AE title not recognized.
struct Callers<'a> {
    allowed: &'a [AllowedCaller],
    peer: std::net::IpAddr,
}

impl AccessControl for Callers<'_> {
    fn check_access(
        &self,
        _this_ae_title: &str,
        calling_ae_title: &str,
        _called_ae_title: &str,
        _user_identity: Option<&UserIdentity>,
    ) -> Result<(), AssociationRJServiceUserReason> {
        let calling = calling_ae_title.trim();
        let known = self.allowed.is_empty()
            || self.allowed.iter().any(|caller| {
                caller.ae_title.trim() == calling
                    && (caller.addresses.is_empty()
                        || caller.addresses.iter().any(|a| a.contains(self.peer)))
            });
        if known {
            Ok(())
        } else {
            tracing::warn!(peer = %self.peer, calling_ae = %calling, "DICOM association from a caller not allowed: rejected");
            Err(AssociationRJServiceUserReason::CallingAETitleNotRecognized)
        }
    }
}

/// What an association can run over: TCP, or TLS over TCP.
trait Transport: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Transport for S {}

/// Negotiates an association on `stream` (over TLS when `tls` is given), then serves it. The
/// negotiation, TLS handshake included, is bounded by the handshake timeout.
pub(super) async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<Arc<rustls::ServerConfig>>,
    settings: &DicomSettings,
    pipeline: &Pipeline,
    buffers: &Arc<MemoryBudget>,
    shutdown: Shutdown,
) {
    let mut options = ServerAssociationOptions::new()
        .ae_access_control(Callers {
            allowed: &settings.allowed_callers,
            peer: peer.ip(),
        })
        .ae_title(settings.ae_title.as_str())
        .max_pdu_length(settings.max_pdu_length)
        .promiscuous(true);
    for uid in ABSTRACT_SYNTAXES {
        options = options.with_abstract_syntax(*uid);
    }
    for ts in TransferSyntaxRegistry.iter() {
        if !ts.is_unsupported() {
            options = options.with_transfer_syntax(ts.uid());
        }
    }
    let handshake = Duration::from_secs(settings.handshake_timeout_secs.max(1));
    match tls {
        None => {
            let establish = tokio::time::timeout(handshake, options.establish_async(stream));
            let Some(established) = unless_stopping(establish, shutdown.clone()).await else {
                return;
            };
            run(established, peer, settings, pipeline, buffers, shutdown).await;
        }
        Some(config) => {
            let options = options.tls_config(config);
            let establish = tokio::time::timeout(handshake, options.establish_tls_async(stream));
            let Some(established) = unless_stopping(establish, shutdown.clone()).await else {
                return;
            };
            run(established, peer, settings, pipeline, buffers, shutdown).await;
        }
    }
}

/// `work`'s result, or `None` when the service stops first (a connection still negotiating is
/// closed: nothing of it was acknowledged).
async fn unless_stopping<T>(
    work: impl std::future::Future<Output = T>,
    mut shutdown: Shutdown,
) -> Option<T> {
    tokio::select! {
        done = work => Some(done),
        () = stopping(&mut shutdown) => None,
    }
}

/// Serves an association once negotiated (or records why there is none).
async fn run<S: Transport>(
    established: Result<
        Result<AsyncServerAssociation<S>, dicom_ul::association::Error>,
        tokio::time::error::Elapsed,
    >,
    peer: SocketAddr,
    settings: &DicomSettings,
    pipeline: &Pipeline,
    buffers: &Arc<MemoryBudget>,
    shutdown: Shutdown,
) {
    let reason = match established {
        Ok(Ok(mut association)) => {
            let calling = association.peer_ae_title().to_owned();
            tracing::info!(%peer, calling_ae = %calling, "DICOM association established");
            let mut received = Received::default();
            receive_all(
                &mut association,
                settings,
                pipeline,
                buffers,
                &mut received,
                shutdown,
            )
            .await;
            let stored = received.stored;
            if stored > 0
                && let Err(e) = pipeline.refresh_imaging_studies().await
            {
                tracing::error!(error = %e, "ImagingStudy refresh failed; it will be retried");
            }
            // Once the studies have their ImagingStudy, the record names their patients.
            let mut record = association_record(peer, Some(calling.trim()));
            let studies: Vec<DicomUid> = received.studies.into_iter().collect();
            record.patients = pipeline.patients_of_studies(&studies).await;
            if let [study] = studies.as_slice() {
                record.entity = Some(study.to_string());
            }
            record.outcome_text = Some(format!(
                "instances stored: {stored}; studies: {}",
                studies.len()
            ));
            pipeline.audit(record).await;
            tracing::info!(%peer, calling_ae = %calling, instances = stored, "DICOM association ended");
            return;
        }
        Ok(Err(e)) => format!("association refused: {e}"),
        Err(_) => "no association request in time: closed".to_owned(),
    };
    tracing::warn!(%peer, reason = %reason, "DICOM association refused");
    let mut record = association_record(peer, None);
    record.outcome = AuditOutcome::MinorFailure;
    record.outcome_text = Some(reason);
    pipeline.audit(record).await;
}

/// The audit record of an association from `peer` (calling `ae_title`, once known).
fn association_record(peer: SocketAddr, ae_title: Option<&str>) -> AuditRecord {
    let mut record = AuditRecord::new("dicom", "c-store", AuditAction::Create);
    record.agent = AuditAgent {
        ae_title: ae_title.map(str::to_owned),
        address: Some(peer.ip().to_string()),
        ..AuditAgent::default()
    };
    record
}

/// Handles requests until the peer releases or aborts, counting in `received` what was stored.
async fn receive_all<S: Transport>(
    association: &mut AsyncServerAssociation<S>,
    settings: &DicomSettings,
    pipeline: &Pipeline,
    buffers: &Arc<MemoryBudget>,
    received: &mut Received,
    mut shutdown: Shutdown,
) {
    let idle = Duration::from_secs(settings.idle_timeout_secs.max(1));
    let mut command = Vec::new();
    let mut pending: Option<PendingStore> = None;
    loop {
        let between_messages = pending.is_none() && command.is_empty();
        let next = tokio::time::timeout(idle, association.receive());
        let received_pdu = if between_messages {
            tokio::select! {
                pdu = next => pdu,
                () = stopping(&mut shutdown) => {
                    // Everything answered so far is stored; the caller may associate again.
                    tracing::info!("DICOM association aborted between messages: the service is stopping");
                    let _ = abort(association).await;
                    return;
                }
            }
        } else {
            next.await
        };
        let pdu = match received_pdu {
            Ok(Ok(pdu)) => pdu,
            Ok(Err(e)) => {
                tracing::info!(error = %e, "DICOM association closed");
                return;
            }
            Err(_) => {
                tracing::warn!("DICOM association idle too long; aborting");
                let _ = association
                    .send(&Pdu::AbortRQ {
                        source: dicom_ul::pdu::AbortRQSource::ServiceUser,
                    })
                    .await;
                return;
            }
        };
        match pdu {
            Pdu::PData { data } => {
                for value in data {
                    match value.value_type {
                        PDataValueType::Command => {
                            if command.len() + value.data.len() > MAX_COMMAND_BYTES {
                                tracing::warn!(
                                    bytes = command.len() + value.data.len(),
                                    "DIMSE command set over the limit; aborting"
                                );
                                let _ = abort(association).await;
                                return;
                            }
                            command.extend_from_slice(&value.data);
                            if !value.is_last {
                                continue;
                            }
                            let bytes = std::mem::take(&mut command);
                            match on_command(association, &bytes, value.presentation_context_id)
                                .await
                            {
                                Ok(next) => pending = next,
                                Err(()) => return,
                            }
                        }
                        PDataValueType::Data => {
                            let Some(p) = pending.as_mut() else {
                                tracing::warn!("data set without a C-STORE request; aborting");
                                let _ = abort(association).await;
                                return;
                            };
                            if p.data.len() + value.data.len() > settings.max_instance_bytes {
                                p.refuse("over dicom.max_instance_bytes");
                            } else if p.refused.is_none() {
                                // Memory for the fragment is taken from the budget all
                                // associations share before it is kept; while there is none,
                                // this association's socket is not read.
                                let bytes = value.data.len();
                                if buffers.take(&mut p.held, bytes, ARRIVAL_WAIT).await {
                                    p.data.extend_from_slice(&value.data);
                                } else {
                                    p.refuse("over dicom.max_buffered_bytes");
                                }
                            }
                            if value.is_last
                                && let Some(p) = pending.take()
                            {
                                let status = match store(association, pipeline, &p).await {
                                    Ok((study, warning)) => {
                                        received.stored += 1;
                                        received.studies.insert(study);
                                        warning.unwrap_or(DicomStatus::SUCCESS)
                                    }
                                    Err(status) => status,
                                };
                                if respond_store(association, &p, status).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                }
            }
            Pdu::ReleaseRQ => {
                let _ = association.send(&Pdu::ReleaseRP).await;
                return;
            }
            Pdu::AbortRQ { .. } => {
                tracing::warn!("DICOM association aborted by the peer");
                return;
            }
            other => {
                tracing::warn!(pdu = %other.short_description(), "unexpected PDU; aborting");
                let _ = abort(association).await;
                return;
            }
        }
    }
}

/// Acts on a complete command set: answers C-ECHO, prepares for a C-STORE's data set. Any
/// other command aborts the association (this SCP offers storage and verification only).
async fn on_command<S: Transport>(
    association: &mut AsyncServerAssociation<S>,
    bytes: &[u8],
    context_id: u8,
) -> Result<Option<PendingStore>, ()> {
    let cmd = match read_command(bytes) {
        Ok(cmd) => cmd,
        Err(reason) => {
            tracing::warn!(reason, "malformed DIMSE command; aborting");
            let _ = abort(association).await;
            return Err(());
        }
    };
    let field = cmd
        .get(tags::COMMAND_FIELD)
        .and_then(|e| e.to_int::<u16>().ok());
    let message_id = cmd
        .get(tags::MESSAGE_ID)
        .and_then(|e| e.to_int::<u16>().ok())
        .unwrap_or(0);
    let uid = |tag| {
        cmd.get(tag)
            .and_then(|e| e.to_str().ok())
            .map(|s| s.trim_end_matches(['\0', ' ']).to_owned())
            .unwrap_or_default()
    };
    match field {
        Some(C_ECHO_RQ) => {
            let response = InMemDicomObject::command_from_element_iter([
                us(tags::COMMAND_FIELD, C_ECHO_RSP),
                us(tags::MESSAGE_ID_BEING_RESPONDED_TO, message_id),
                us(tags::COMMAND_DATA_SET_TYPE, NO_DATA_SET),
                us(tags::STATUS, DicomStatus::SUCCESS.0),
                ui(tags::AFFECTED_SOP_CLASS_UID, VERIFICATION),
            ]);
            send_command(association, context_id, &response).await?;
            Ok(None)
        }
        Some(C_STORE_RQ) => Ok(Some(PendingStore {
            message_id,
            sop_class_uid: uid(tags::AFFECTED_SOP_CLASS_UID),
            sop_instance_uid: uid(tags::AFFECTED_SOP_INSTANCE_UID),
            context_id,
            data: Vec::new(),
            held: None,
            refused: None,
        })),
        _ => {
            tracing::warn!(command = ?field, "unsupported DIMSE command; aborting");
            let _ = abort(association).await;
            Err(())
        }
    }
}

/// Reads a command set (implicit VR little endian, PS3.7 6.3.1), its declared lengths checked
/// before the parser reserves memory for them.
pub fn read_command(bytes: &[u8]) -> Result<InMemDicomObject, String> {
    check_declared_lengths(bytes, Encoding::IMPLICIT_LITTLE).map_err(|e| e.to_string())?;
    let ts = IMPLICIT_VR_LITTLE_ENDIAN.erased();
    InMemDicomObject::read_dataset_with_ts(bytes, &ts).map_err(|e| e.to_string())
}

/// Stores a received instance: its study's UID and the warning to answer with when a fault in
/// it was tolerated, or the failure status to answer.
async fn store<S: Transport>(
    association: &AsyncServerAssociation<S>,
    pipeline: &Pipeline,
    p: &PendingStore,
) -> Result<(DicomUid, Option<DicomStatus>), DicomStatus> {
    if let Some(reason) = p.refused {
        tracing::warn!(sop_instance_uid = %p.sop_instance_uid, reason, "instance refused: out of resources");
        return Err(DicomStatus::OUT_OF_RESOURCES);
    }
    let Some(context) = association
        .presentation_contexts()
        .iter()
        .find(|pc| pc.id == p.context_id)
    else {
        return Err(DicomStatus::CANNOT_UNDERSTAND);
    };
    let stored = pipeline
        .ingest_data_set(
            &p.data,
            &p.sop_class_uid,
            &p.sop_instance_uid,
            &context.transfer_syntax,
        )
        .await;
    match stored {
        Ok(instance) => {
            let warning = instance.warning();
            Ok((instance.study_uid, warning))
        }
        Err(failure) => {
            tracing::warn!(error = %failure.error, sop_instance_uid = %p.sop_instance_uid, "C-STORE refused");
            Err(failure.dicom_status())
        }
    }
}

async fn respond_store<S: Transport>(
    association: &mut AsyncServerAssociation<S>,
    p: &PendingStore,
    status: DicomStatus,
) -> Result<(), ()> {
    let response = InMemDicomObject::command_from_element_iter([
        ui(tags::AFFECTED_SOP_CLASS_UID, &p.sop_class_uid),
        us(tags::COMMAND_FIELD, C_STORE_RSP),
        us(tags::MESSAGE_ID_BEING_RESPONDED_TO, p.message_id),
        us(tags::COMMAND_DATA_SET_TYPE, NO_DATA_SET),
        us(tags::STATUS, status.0),
        ui(tags::AFFECTED_SOP_INSTANCE_UID, &p.sop_instance_uid),
    ]);
    send_command(association, p.context_id, &response).await
}

async fn send_command<S: Transport>(
    association: &mut AsyncServerAssociation<S>,
    context_id: u8,
    command: &InMemDicomObject,
) -> Result<(), ()> {
    let mut data = Vec::new();
    let ts = IMPLICIT_VR_LITTLE_ENDIAN.erased();
    if command.write_dataset_with_ts(&mut data, &ts).is_err() {
        tracing::error!("could not encode a DIMSE response");
        return Err(());
    }
    let pdu = Pdu::PData {
        data: vec![PDataValue {
            presentation_context_id: context_id,
            value_type: PDataValueType::Command,
            is_last: true,
            data,
        }],
    };
    association.send(&pdu).await.map_err(|e| {
        tracing::warn!(error = %e, "could not send a DIMSE response");
    })
}

async fn abort<S: Transport>(association: &mut AsyncServerAssociation<S>) -> Result<(), ()> {
    association
        .send(&Pdu::AbortRQ {
            source: dicom_ul::pdu::AbortRQSource::ServiceProvider(
                dicom_ul::pdu::AbortRQServiceProviderReason::ReasonNotSpecified,
            ),
        })
        .await
        .map_err(|_| ())
}

fn us(tag: dicom_core::Tag, value: u16) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, VR::US, PrimitiveValue::from(value))
}

fn ui(tag: dicom_core::Tag, value: &str) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, VR::UI, PrimitiveValue::from(value))
}
