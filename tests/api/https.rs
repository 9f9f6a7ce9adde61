//! HTTPS on the service's own listener (rustls), with a certificate made by openssl: a client
//! that trusts it is served over TLS, links say https, and plain HTTP on that port is not
//! answered as if it were.

use std::path::Path;
use std::process::Command;

use crate::helpers::spawn_app_with;

/// A self-signed certificate for 127.0.0.1 (EC P-256), made by openssl; None without openssl.
fn certificate(dir: &Path) -> Option<(std::path::PathBuf, std::path::PathBuf)> {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .args(["-days", "2", "-subj", "/CN=prognostics-test"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .args(["-addext", "extendedKeyUsage=serverAuth"])
        .output();
    match made {
        Ok(output) if output.status.success() => Some((cert, key)),
        _ => {
            assert!(
                std::env::var_os("TEST_REQUIRE_PEERS").is_none(),
                "openssl is needed to make the test certificate"
            );
            None
        }
    }
}

#[tokio::test]
async fn the_service_serves_https_with_its_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let Some((cert, key)) = certificate(dir.path()) else {
        return;
    };
    let (c, k) = (cert.clone(), key.clone());
    let app = spawn_app_with(move |s| {
        s.server.tls_certificate = Some(c);
        s.server.tls_key = Some(k);
    })
    .await;
    let port = app.address.rsplit(':').next().unwrap().to_owned();
    let trusted = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(&cert).unwrap()).unwrap(),
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
        assert!(error.contains("HTTPS"), "{error}");
    }
}
