//! TLS on the DICOM and MLLP doors, with client certificates: dcmtk's `echoscu` and `storescu`
//! over TLS (their `+tls` options), and an MLLP sender over rustls. A caller with a certificate
//! the configured CA signed is served; one without, or speaking plain TCP, is not.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use crate::dimse::{dcmtk_available, run};
use crate::helpers::{TestApp, pydicom_path, spawn_app_with};
use crate::hl7::{ORU, exchange, segment};
use crate::https::{TestPki, test_pki};

async fn spawn_tls_app(pki: &TestPki) -> TestApp {
    let (cert, key, ca) = (
        pki.server_certificate.clone(),
        pki.server_key.clone(),
        pki.ca.clone(),
    );
    spawn_app_with(move |s| {
        s.dicom.tls_certificate = Some(cert.clone());
        s.dicom.tls_key = Some(key.clone());
        s.dicom.tls_client_ca = Some(ca.clone());
        s.hl7.tls_certificate = Some(cert);
        s.hl7.tls_key = Some(key);
        s.hl7.tls_client_ca = Some(ca);
    })
    .await
}

#[tokio::test]
async fn dicom_associations_are_over_tls_with_a_client_certificate() {
    if !dcmtk_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Some(pki) = test_pki(dir.path()) else {
        return;
    };
    let app = spawn_tls_app(&pki).await;
    let port = app.dicom_port.unwrap().to_string();
    let path = |p: &std::path::PathBuf| p.display().to_string();
    let with_certificate = [
        "+tls".to_owned(),
        path(&pki.client_key),
        path(&pki.client_certificate),
        "+cf".to_owned(),
        path(&pki.ca),
    ];
    // dcmtk's tools take their options, then the peer, then (storescu) the files.
    let dcmtk = |program: &'static str, options: Vec<String>, files: Vec<String>| {
        let mut args = options;
        args.extend(["-aec".to_owned(), "PROGNOSTICS".to_owned()]);
        args.extend(["127.0.0.1".to_owned(), port.clone()]);
        args.extend(files);
        tokio::task::spawn_blocking(move || run(program, &args))
    };
    let echo = dcmtk("echoscu", with_certificate.to_vec(), vec![]);
    assert!(echo.await.unwrap().status.success());
    let file = path(&pydicom_path("CT_small.dcm").unwrap());
    let store = dcmtk("storescu", with_certificate.to_vec(), vec![file]);
    assert!(store.await.unwrap().status.success());
    assert_eq!(app.qido("").await.len(), 1);

    // Without a certificate (anonymous TLS), or without TLS, no association.
    let anonymous = dcmtk(
        "echoscu",
        vec!["+tla".into(), "+cf".into(), path(&pki.ca)],
        vec![],
    )
    .await
    .unwrap();
    assert!(!anonymous.status.success());
    let plain = dcmtk("echoscu", vec![], vec![]).await.unwrap();
    assert!(!plain.status.success());
}

/// A client configuration trusting the test CA, presenting the sender's certificate or none.
fn client_config(pki: &TestPki, with_certificate: bool) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_file_iter(&pki.ca).unwrap() {
        roots.add(ca.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let config = if with_certificate {
        let chain = CertificateDer::pem_file_iter(&pki.client_certificate)
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(&pki.client_key).unwrap();
        builder.with_client_auth_cert(chain, key).unwrap()
    } else {
        builder.with_no_client_auth()
    };
    Arc::new(config)
}

#[tokio::test]
async fn mllp_is_over_tls_with_a_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let Some(pki) = test_pki(dir.path()) else {
        return;
    };
    let app = spawn_tls_app(&pki).await;
    let address = ("127.0.0.1", app.mllp_port.unwrap());
    let name = ServerName::try_from("127.0.0.1").unwrap();

    let sender = tokio_rustls::TlsConnector::from(client_config(&pki, true));
    let tcp = TcpStream::connect(address).await.unwrap();
    let mut stream = sender.connect(name.clone(), tcp).await.unwrap();
    let ack = exchange(&mut stream, ORU.as_bytes()).await;
    assert_eq!(&segment(&ack, "MSA")[1..3], ["AA", "MSG0001"]);

    // Without a client certificate the server ends the handshake: no message gets through.
    let stranger = tokio_rustls::TlsConnector::from(client_config(&pki, false));
    let tcp = TcpStream::connect(address).await.unwrap();
    if let Ok(mut stream) = stranger.connect(name, tcp).await {
        // TLS 1.3: the client finishes first and learns of the refusal on its first read.
        let _ = tokio::io::AsyncWriteExt::write_all(&mut stream, b"\x0bMSH|\x1c\x0d").await;
        let mut buffer = [0u8; 16];
        let read = stream.read(&mut buffer).await;
        assert!(read.is_err() || read.unwrap() == 0);
    }
    // Plain MLLP on the TLS port: closed without an ACK.
    let mut plain = TcpStream::connect(address).await.unwrap();
    let _ =
        tokio::io::AsyncWriteExt::write_all(&mut plain, format!("\x0b{ORU}\x1c\x0d").as_bytes())
            .await;
    let mut buffer = [0u8; 64];
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), plain.read(&mut buffer))
        .await
        .expect("the listener does not leave a plain connection hanging");
    assert!(!matches!(read, Ok(n) if n > 0 && buffer[0] == 0x0b));
    // The refused handshakes are in the trail.
    let refused = app.audit_events("outcome=4").await;
    assert!(
        refused.iter().any(|e| e["outcomeDesc"]
            .as_str()
            .unwrap_or_default()
            .contains("TLS handshake failed")),
        "{refused:?}"
    );
}
