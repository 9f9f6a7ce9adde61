//! HTTPS on the service's own listener (rustls), with a certificate from a test CA made by
//! openssl: a client that trusts the CA is served over TLS, links say https, and plain HTTP on
//! that port is not answered as if it were.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::helpers::spawn_app_with;

/// A test CA and two certificates it signed, made by openssl: the service's (for 127.0.0.1)
/// and a client's (for mutual TLS).
pub(crate) struct TestPki {
    pub ca: PathBuf,
    pub server_certificate: PathBuf,
    pub server_key: PathBuf,
    pub client_certificate: PathBuf,
    pub client_key: PathBuf,
}

/// A new EC P-256 key, unencrypted, as `openssl req` makes it.
const P256: [&str; 5] = [
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
];

fn succeeds(command: &mut Command) -> bool {
    command.output().is_ok_and(|o| o.status.success())
}

/// Makes the test PKI in `dir`; None without openssl.
pub(crate) fn test_pki(dir: &Path) -> Option<TestPki> {
    let file = |name: &str| dir.join(name);
    let (ca, ca_key) = (file("ca.pem"), file("ca.key"));
    let mut made = succeeds(
        Command::new("openssl")
            .args(["req", "-x509"])
            .args(P256)
            .args(["-days", "2", "-subj", "/CN=prognostics-test-ca"])
            .args(["-addext", "basicConstraints=critical,CA:TRUE"])
            .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"])
            .arg("-keyout")
            .arg(&ca_key)
            .arg("-out")
            .arg(&ca),
    );
    let mut signed = |name: &str, extensions: &str| {
        let (cert, key, csr, ext) = (
            file(&format!("{name}.pem")),
            file(&format!("{name}.key")),
            file(&format!("{name}.csr")),
            file(&format!("{name}.ext")),
        );
        std::fs::write(&ext, extensions).unwrap();
        made &= succeeds(
            Command::new("openssl")
                .arg("req")
                .args(P256)
                .args(["-subj", &format!("/CN={name}")])
                .arg("-keyout")
                .arg(&key)
                .arg("-out")
                .arg(&csr),
        );
        made &= succeeds(
            Command::new("openssl")
                .args(["x509", "-req", "-days", "2", "-CAcreateserial"])
                .arg("-in")
                .arg(&csr)
                .arg("-CA")
                .arg(&ca)
                .arg("-CAkey")
                .arg(&ca_key)
                .arg("-extfile")
                .arg(&ext)
                .arg("-out")
                .arg(&cert),
        );
        (cert, key)
    };
    let (server_certificate, server_key) = signed(
        "server",
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n\
         extendedKeyUsage=serverAuth\n",
    );
    let (client_certificate, client_key) = signed(
        "sender",
        "basicConstraints=critical,CA:FALSE\nextendedKeyUsage=clientAuth\n",
    );
    if !made {
        assert!(
            std::env::var_os("TEST_REQUIRE_PEERS").is_none(),
            "openssl is needed to make the test certificates"
        );
        return None;
    }
    Some(TestPki {
        ca,
        server_certificate,
        server_key,
        client_certificate,
        client_key,
    })
}

#[tokio::test]
async fn the_service_serves_https_with_its_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let Some(pki) = test_pki(dir.path()) else {
        return;
    };
    let (cert, key) = (pki.server_certificate.clone(), pki.server_key.clone());
    let (c, k) = (cert.clone(), key.clone());
    let app = spawn_app_with(move |s| {
        s.server.tls_certificate = Some(c);
        s.server.tls_key = Some(k);
    })
    .await;
    let port = app.address.rsplit(':').next().unwrap().to_owned();
    let trusted = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(&pki.ca).unwrap()).unwrap(),
        )
        .build()
        .unwrap();
    let https = format!("https://127.0.0.1:{port}/fhir");
    let response = trusted
        .get(format!("{https}/metadata"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let created = trusted
        .post(format!("{https}/Patient"))
        .header("Content-Type", "application/fhir+json")
        .body(r#"{"resourceType": "Patient"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    assert!(
        created.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with(&https)
    );

    // A client that does not trust the certificate is refused at the handshake; plain HTTP
    // on the port gets no HTTP answer.
    assert!(reqwest::get(format!("{https}/metadata")).await.is_err());
    let plain = reqwest::get(format!("http://127.0.0.1:{port}/fhir/metadata")).await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());

    // Half a configuration, or a key that is not one, stops the start with the reason.
    let settings_error = |cert: Option<std::path::PathBuf>, key: Option<std::path::PathBuf>| {
        let mut settings = prognostics::config::Settings::default();
        settings.server.listen = "127.0.0.1:0".parse().unwrap();
        settings.server.tls_certificate = cert;
        settings.server.tls_key = key;
        settings
    };
    let data = tempfile::tempdir().unwrap();
    for settings in [
        settings_error(Some(cert.clone()), None),
        settings_error(Some(cert.clone()), Some(cert.clone())),
    ] {
        let mut settings = settings;
        settings.storage.data_dir = data.path().to_path_buf();
        settings.inference.enabled = false;
        settings.dicom.enabled = false;
        settings.hl7.enabled = false;
        let error = prognostics::startup::Application::build(&settings)
            .await
            .err()
            .expect("refused")
            .to_string();
        assert!(error.contains("server.tls_"), "{error}");
    }
}
