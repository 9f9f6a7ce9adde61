//! The DIMSE storage SCP against dcmtk's `echoscu` and `storescu` (Debian package dcmtk): real
//! associations, real C-ECHO and C-STORE, compressed and uncompressed instances.

use std::path::PathBuf;
use std::process::Command;

use crate::helpers::{TestApp, pydicom_path, spawn_app};

/// `true` when dcmtk's tools are installed; otherwise the test is skipped (or fails under
/// `TEST_REQUIRE_PEERS`).
pub(crate) fn dcmtk_available() -> bool {
    let found = Command::new("storescu").arg("--version").output().is_ok();
    if !found {
        assert!(
            std::env::var_os("TEST_REQUIRE_PEERS").is_none(),
            "dcmtk is not installed (Debian: apt-get install dcmtk)"
        );
        eprintln!("skipping: dcmtk is not installed");
    }
    found
}

pub(crate) fn run(program: &str, args: &[String]) -> std::process::Output {
    let output = Command::new(program).args(args).output().unwrap();
    eprintln!(
        "{program}: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

#[tokio::test]
async fn echoscu_gets_an_answer() {
    if !dcmtk_available() {
        return;
    }
    let app = spawn_app().await;
    assert!(echoes(&app).await);
}

/// Whether dcmtk's `echoscu` gets a C-ECHO answer from the service.
pub(crate) async fn echoes(app: &TestApp) -> bool {
    let port = app.dicom_port.unwrap().to_string();
    let args = ["-aec", "PROGNOSTICS", "127.0.0.1", &port].map(String::from);
    let output = tokio::task::spawn_blocking(move || run("echoscu", &args))
        .await
        .unwrap();
    output.status.success()
}

/// Sends `file` with `storescu`, proposing the transfer syntaxes that `options` select, and
/// returns whether storescu succeeded and its verbose log.
async fn storescu(app: &TestApp, options: &[&str], file: PathBuf) -> (bool, String) {
    let mut args: Vec<String> = ["-v", "-aec", "PROGNOSTICS"].map(String::from).to_vec();
    args.extend(options.iter().map(|o| o.to_string()));
    args.push("127.0.0.1".into());
    args.push(app.dicom_port.unwrap().to_string());
    args.push(file.display().to_string());
    let output = tokio::task::spawn_blocking(move || run("storescu", &args))
        .await
        .unwrap();
    let log = String::from_utf8_lossy(&output.stderr).into_owned()
        + &String::from_utf8_lossy(&output.stdout);
    (output.status.success(), log)
}

#[tokio::test]
async fn storescu_stores_uncompressed_and_compressed_instances() {
    if !dcmtk_available() {
        return;
    }
    // (file, storescu's option proposing the file's own transfer syntax)
    let sends = [
        ("CT_small.dcm", None),
        ("MR_small_jp2klossless.dcm", Some("-xv")),
        ("JPEG-lossy.dcm", Some("-xx")),
    ];
    let Some(files) = sends
        .iter()
        .map(|(name, _)| pydicom_path(name))
        .collect::<Option<Vec<PathBuf>>>()
    else {
        return;
    };
    let app = spawn_app().await;
    for ((name, option), file) in sends.iter().zip(files) {
        let options: Vec<&str> = option.iter().copied().collect();
        let (ok, log) = storescu(&app, &options, file).await;
        assert!(ok, "{name}: {log}");
        assert!(
            log.contains("Received Store Response (Success)"),
            "{name}: {log}"
        );
    }
    let ct = app.qido("PatientID=1CT1").await;
    assert_eq!(ct.len(), 1, "{ct:?}");
    assert_eq!(ct[0]["00201208"]["Value"][0], 1);
    // ImagingStudy resources follow once each association has ended.
    assert_eq!(imaging_studies_eventually(&app, 3).await, 3);

    // Sending again, over a new association, is idempotent.
    let (ok, _) = storescu(&app, &[], pydicom_path("CT_small.dcm").unwrap()).await;
    assert!(ok);
    assert_eq!(
        app.qido("PatientID=1CT1").await[0]["00201208"]["Value"][0],
        1
    );
    assert_eq!(imaging_studies_eventually(&app, 3).await, 3);

    // The association is in the audit trail under the patient its study belongs to.
    let patient = app.search("Patient?identifier=1CT1").await["entry"][0]["resource"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let events = app.audit_events(&format!("patient={patient}")).await;
    assert!(
        events.iter().any(|e| e["subtype"][0]["code"] == "c-store"
            && e["outcomeDesc"].as_str().unwrap().contains("studies: 1")),
        "{events:?}"
    );
}

/// The number of ImagingStudy resources once it reaches `expected`, or after 30 s.
async fn imaging_studies_eventually(app: &TestApp, expected: u64) -> u64 {
    let found = app.search_until_total("ImagingStudy", expected).await;
    found["total"].as_u64().unwrap()
}

#[tokio::test]
async fn an_image_without_pixel_data_gets_a_failure_status_and_is_not_stored() {
    if !dcmtk_available() {
        return;
    }
    let Some(ct) = pydicom_path("CT_small.dcm") else {
        return;
    };
    let bytes = std::fs::read(ct).unwrap();
    // Cut just before the Pixel Data element (7FE0,0010): a readable image without pixels.
    let cut = bytes
        .windows(4)
        .rposition(|w| w == [0xE0, 0x7F, 0x10, 0x00])
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("no-pixels.dcm");
    std::fs::write(&file, &bytes[..cut]).unwrap();
    let app = spawn_app().await;
    let (ok, log) = storescu(&app, &[], file).await;
    assert!(!ok);
    assert!(
        log.contains("Received Store Response (Error: DataSetDoesNotMatchSOPClass)"),
        "{log}"
    );
    assert_eq!(app.search("ImagingStudy").await["total"], 0);
    assert!(app.qido("PatientID=1CT1").await.is_empty());
}

/// A C-STORE sent with dicom-ul's client, for what storescu cannot send: storescu re-encodes
/// what it sends, and sends each instance whole.
pub(crate) mod raw {
    use dicom_dictionary_std::tags;
    use dicom_object::{InMemDicomObject, mem::InMemElement};
    use dicom_transfer_syntax_registry::entries::IMPLICIT_VR_LITTLE_ENDIAN;
    use dicom_ul::association::client::ClientAssociation;
    use dicom_ul::pdu::{PDataValue, PDataValueType, Pdu};

    /// A Part 10 file's SOP class, SOP instance, transfer syntax and data set bytes.
    pub(crate) struct Instance {
        pub class: String,
        pub uid: String,
        pub transfer_syntax: String,
        pub data_set: Vec<u8>,
    }

    pub(crate) fn instance(path: &std::path::Path) -> Instance {
        let file = dicom_object::open_file(path).unwrap();
        let meta = file.meta();
        let text = |s: &str| s.trim_end_matches('\0').to_owned();
        let bytes = std::fs::read(path).unwrap();
        let group_length = u32::from_le_bytes(bytes[140..144].try_into().unwrap()) as usize;
        Instance {
            class: text(meta.media_storage_sop_class_uid()),
            uid: text(meta.media_storage_sop_instance_uid()),
            transfer_syntax: text(meta.transfer_syntax()),
            data_set: bytes[144 + group_length..].to_vec(),
        }
    }

    pub(crate) fn associate(
        port: u16,
        instance: &Instance,
    ) -> ClientAssociation<std::net::TcpStream> {
        dicom_ul::ClientAssociationOptions::new()
            .with_presentation_context(
                instance.class.as_str(),
                vec![instance.transfer_syntax.as_str()],
            )
            .calling_ae_title("MODALITY")
            .called_ae_title("PROGNOSTICS")
            .read_timeout(std::time::Duration::from_secs(60))
            .establish(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
            .expect("association")
    }

    fn pdv(context: u8, value_type: PDataValueType, is_last: bool, data: Vec<u8>) -> Pdu {
        Pdu::PData {
            data: vec![PDataValue {
                presentation_context_id: context,
                value_type,
                is_last,
                data,
            }],
        }
    }

    /// Sends the C-STORE-RQ command set of `instance`.
    pub(crate) fn send_command(
        association: &mut ClientAssociation<std::net::TcpStream>,
        instance: &Instance,
    ) {
        let context = association.presentation_contexts()[0].id;
        let ui = |tag, v: &str| {
            InMemElement::new(tag, dicom_core::VR::UI, dicom_core::PrimitiveValue::from(v))
        };
        let us = |tag, v: u16| {
            InMemElement::new(tag, dicom_core::VR::US, dicom_core::PrimitiveValue::from(v))
        };
        let command = InMemDicomObject::command_from_element_iter([
            ui(tags::AFFECTED_SOP_CLASS_UID, &instance.class),
            us(tags::COMMAND_FIELD, 0x0001),
            us(tags::MESSAGE_ID, 1),
            us(tags::PRIORITY, 0),
            us(tags::COMMAND_DATA_SET_TYPE, 0x0000),
            ui(tags::AFFECTED_SOP_INSTANCE_UID, &instance.uid),
        ]);
        let mut bytes = Vec::new();
        command
            .write_dataset_with_ts(&mut bytes, &IMPLICIT_VR_LITTLE_ENDIAN.erased())
            .unwrap();
        association
            .send(&pdv(context, PDataValueType::Command, true, bytes))
            .unwrap();
    }

    /// Sends a fragment of the data set.
    pub(crate) fn send_data(
        association: &mut ClientAssociation<std::net::TcpStream>,
        data: &[u8],
        is_last: bool,
    ) {
        let context = association.presentation_contexts()[0].id;
        association
            .send(&pdv(context, PDataValueType::Data, is_last, data.to_vec()))
            .unwrap();
    }

    /// The status of the C-STORE-RSP received next.
    pub(crate) fn status(association: &mut ClientAssociation<std::net::TcpStream>) -> u16 {
        let Pdu::PData { data } = association.receive().unwrap() else {
            panic!("no C-STORE-RSP");
        };
        let response = InMemDicomObject::read_dataset_with_ts(
            &data[0].data[..],
            &IMPLICIT_VR_LITTLE_ENDIAN.erased(),
        )
        .unwrap();
        response
            .element(tags::STATUS)
            .unwrap()
            .to_int::<u16>()
            .unwrap()
    }
}

/// A data set with bytes after its last element (what some devices send) is stored, and the
/// C-STORE-RSP says so with warning B006 (Elements Discarded), not plain success.
#[tokio::test]
async fn a_data_set_stored_despite_trailing_bytes_is_answered_with_a_warning() {
    let Some(path) = pydicom_path("CT_small.dcm") else {
        return;
    };
    let mut instance = raw::instance(&path);
    instance.data_set.extend_from_slice(&[0; 64]);
    let app = spawn_app().await;
    let port = app.dicom_port.unwrap();
    let status = tokio::task::spawn_blocking(move || {
        let mut association = raw::associate(port, &instance);
        raw::send_command(&mut association, &instance);
        raw::send_data(&mut association, &instance.data_set, true);
        let status = raw::status(&mut association);
        let _ = association.release();
        status
    })
    .await
    .unwrap();
    assert_eq!(status, 0xB006);
    assert_eq!(app.qido("PatientID=1CT1").await.len(), 1);
}

/// Instance data held in memory by all associations together is capped: an association whose
/// next fragment does not fit is not read until another's instance is stored and its memory
/// given back; then it is stored too. (64 associations at 1 GiB each could hold 64 GiB.)
#[tokio::test]
async fn associations_share_a_memory_budget_and_wait_for_it_rather_than_grow() {
    let (Some(ct), Some(mr)) = (pydicom_path("CT_small.dcm"), pydicom_path("MR_small.dcm")) else {
        return;
    };
    let (ct, mr) = (raw::instance(&ct), raw::instance(&mr));
    // Room for either instance, not both.
    let budget = ct.data_set.len().max(mr.data_set.len()) + 1024;
    assert!(ct.data_set.len() + mr.data_set.len() > budget);
    let app = crate::helpers::spawn_app_with(|s| {
        s.dicom.max_instance_bytes = budget;
        s.dicom.max_buffered_bytes = budget;
        s.dicom.max_stow_bytes = budget;
    })
    .await;
    let port = app.dicom_port.unwrap();

    // The clients block; the service runs on this test's runtime.
    tokio::task::spawn_blocking(move || {
        // The first association holds all of its instance but its last byte.
        let mut first = raw::associate(port, &ct);
        raw::send_command(&mut first, &ct);
        let (most, last) = ct.data_set.split_at(ct.data_set.len() - 1);
        raw::send_data(&mut first, most, false);
        std::thread::sleep(std::time::Duration::from_millis(300));
        // The second sends a whole instance, and gets no answer while the first holds the memory.
        let (answered, answer) = std::sync::mpsc::channel();
        let second = std::thread::spawn(move || {
            let mut association = raw::associate(port, &mr);
            raw::send_command(&mut association, &mr);
            raw::send_data(&mut association, &mr.data_set, true);
            answered.send(raw::status(&mut association)).unwrap();
            let _ = association.release();
        });
        assert!(
            answer
                .recv_timeout(std::time::Duration::from_secs(2))
                .is_err(),
            "the second instance was taken while the budget was spent"
        );
        // The first finishes: it is stored, its memory given back, and the second goes on.
        raw::send_data(&mut first, last, true);
        assert_eq!(raw::status(&mut first), 0x0000);
        let _ = first.release();
        let status = answer
            .recv_timeout(std::time::Duration::from_secs(20))
            .unwrap();
        assert_eq!(status, 0x0000);
        second.join().unwrap();
    })
    .await
    .unwrap();
    assert_eq!(app.qido("PatientID=1CT1").await.len(), 1);
}

/// STOW-RS requests hold what arrives against the same budget as associations: a request
/// whose body does not fit while an association holds the memory is not read on, and its
/// instance is stored once the association's is and has given its memory back.
#[tokio::test]
async fn stow_requests_wait_for_memory_that_associations_hold() {
    let (Some(ct), Some(mr)) = (pydicom_path("CT_small.dcm"), pydicom_path("MR_small.dcm")) else {
        return;
    };
    let ct = raw::instance(&ct);
    let body = crate::dicomweb::multipart(&[&std::fs::read(&mr).unwrap()]);
    // Room for either, not both.
    let budget = ct.data_set.len().max(body.len()) + 1024;
    assert!(ct.data_set.len() + body.len() > budget);
    let app = crate::helpers::spawn_app_with(|s| {
        s.dicom.max_instance_bytes = budget;
        s.dicom.max_buffered_bytes = budget;
        s.dicom.max_stow_bytes = budget;
    })
    .await;
    let port = app.dicom_port.unwrap();

    // The association holds all of its instance but its last byte until told to go on.
    let (holding, held) = std::sync::mpsc::channel();
    let (go_on, told) = std::sync::mpsc::channel::<()>();
    let association = tokio::task::spawn_blocking(move || {
        let mut association = raw::associate(port, &ct);
        raw::send_command(&mut association, &ct);
        let (most, last) = ct.data_set.split_at(ct.data_set.len() - 1);
        raw::send_data(&mut association, most, false);
        holding.send(()).unwrap();
        told.recv().unwrap();
        raw::send_data(&mut association, last, true);
        let status = raw::status(&mut association);
        let _ = association.release();
        status
    });
    tokio::task::spawn_blocking(move || held.recv().unwrap())
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    let request = {
        let (client, url) = (
            app.client.clone(),
            format!("{}/dicomweb/studies", app.address),
        );
        tokio::spawn(async move {
            client
                .post(url)
                .header(
                    "content-type",
                    format!(
                        "multipart/related; type=\"application/dicom\"; boundary={}",
                        crate::dicomweb::BOUNDARY
                    ),
                )
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert!(
        !request.is_finished(),
        "the STOW-RS body was read while an association held the memory"
    );
    assert!(app.qido("PatientID=4MR1").await.is_empty());

    go_on.send(()).unwrap();
    assert_eq!(association.await.unwrap(), 0x0000);
    let status = tokio::time::timeout(std::time::Duration::from_secs(20), request)
        .await
        .expect("the STOW-RS request went on once the memory came free")
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(app.qido("PatientID=4MR1").await.len(), 1);
    assert_eq!(app.qido("PatientID=1CT1").await.len(), 1);
}

/// The README's way to send a study of mixed transfer syntaxes as it is: `scripts/send-dicom`
/// groups the files by syntax and sends each group with the storescu option proposing it.
#[tokio::test]
async fn the_send_script_stores_a_study_of_mixed_transfer_syntaxes_as_it_is() {
    if !dcmtk_available() {
        return;
    }
    let names = [
        "CT_small.dcm",
        "JPEG-lossy.dcm",
        "MR_small_jp2klossless.dcm",
        "MR_small_RLE.dcm",
        "MR_small_jpeg_ls_lossless.dcm",
        "image_dfl.dcm",
    ];
    let Some(files) = names
        .iter()
        .map(|n| pydicom_path(n))
        .collect::<Option<Vec<PathBuf>>>()
    else {
        return;
    };
    let study = tempfile::tempdir().unwrap();
    for file in &files {
        std::fs::copy(file, study.path().join(file.file_name().unwrap())).unwrap();
    }
    let app = spawn_app().await;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/send-dicom");
    let args = vec![
        "--port".to_owned(),
        app.dicom_port.unwrap().to_string(),
        study.path().display().to_string(),
    ];
    let output = tokio::task::spawn_blocking(move || run(script.to_str().unwrap(), &args))
        .await
        .unwrap();
    assert!(output.status.success());
    // Every file stored: the JPEG 2000, RLE and JPEG-LS copies of MR_small are one instance.
    let studies = app.qido("").await;
    let instances: u64 = studies
        .iter()
        .map(|s| s["00201208"]["Value"][0].as_u64().unwrap())
        .sum();
    assert_eq!(
        app.query_count("SELECT COUNT(*) FROM dicom_instances")
            .await,
        instances as i64
    );
    assert!(instances >= 4, "{studies:?}");
}

/// With an allow-list, a caller whose AE title is not on it is rejected at association
/// (A-ASSOCIATE-RJ, calling AE title not recognized); one on it, from an allowed address, is
/// answered.
#[tokio::test]
async fn only_allowed_calling_ae_titles_may_associate() {
    if !dcmtk_available() {
        return;
    }
    let app = crate::helpers::spawn_app_with(|s| {
        s.dicom.allowed_callers = vec![prognostics::config::AllowedCaller {
            ae_title: "MODALITY1".into(),
            addresses: vec!["127.0.0.0/8".to_owned().try_into().unwrap()],
        }];
    })
    .await;
    let port = app.dicom_port.unwrap().to_string();
    let echo = |calling: &str| {
        let args: Vec<String> = ["-aet", calling, "-aec", "PROGNOSTICS", "127.0.0.1", &port]
            .map(String::from)
            .to_vec();
        tokio::task::spawn_blocking(move || run("echoscu", &args))
    };
    let refused = echo("INTRUDER").await.unwrap();
    assert!(!refused.status.success());
    let log = String::from_utf8_lossy(&refused.stderr).to_lowercase();
    assert!(
        log.contains("rejected") && log.contains("calling ae title not recognized"),
        "{log}"
    );
    assert!(echo("MODALITY1").await.unwrap().status.success());
    // Both associations are in the audit trail: the refused one as a failure.
    let refused = app.audit_events("agent=127.0.0.1&outcome=4").await;
    assert!(
        refused.iter().any(|e| e["subtype"][0]["code"] == "c-store"
            && e["outcomeDesc"].as_str().unwrap().contains("refused")),
        "{refused:?}"
    );
    let accepted = app.audit_events("agent=MODALITY1").await;
    assert_eq!(accepted[0]["outcome"], "0", "{accepted:?}");
}
