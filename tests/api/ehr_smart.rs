//! SMART Backend Services against the FHIR test server acting as the EHR's authorisation
//! server: client assertions signed RS384 and ES384 are checked by Node's crypto against the
//! registered public keys; tokens are cached, renewed when they expire, and renewed once when
//! the EHR refuses one.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use prognostics::ehr::{Authorization, FhirClient, SmartBackend, SmartClient, pull_patient};

use crate::ehr::{FhirServer, node, start_fhir_server, test_settings};

/// A key pair made by Node's crypto: (private PKCS #8 PEM, public SPKI PEM file).
pub(crate) fn key_pair(kind: &str, dir: &Path, name: &str) -> (String, std::path::PathBuf) {
    let options = match kind {
        "rsa" => "{modulusLength: 2048}",
        _ => "{namedCurve: 'P-384'}",
    };
    let script = format!(
        "const c = require('node:crypto'); const k = c.generateKeyPairSync('{kind}', {options}); \
         console.log(JSON.stringify([k.privateKey.export({{type: 'pkcs8', format: 'pem'}}), \
         k.publicKey.export({{type: 'spki', format: 'pem'}})]))"
    );
    let output = Command::new(node()).args(["-e", &script]).output().unwrap();
    let [private, public]: [String; 2] = serde_json::from_slice(&output.stdout).unwrap();
    let public_file = dir.join(format!("{name}.pem"));
    std::fs::write(&public_file, public).unwrap();
    (private, public_file)
}

fn smart_client(client_id: &str, private_pem: &str) -> SmartBackend {
    SmartBackend::new(SmartClient {
        client_id: client_id.to_owned(),
        private_key_pem: private_pem.to_owned().into(),
        key_id: None,
        token_url: None,
        scope: "system/Patient.read system/Observation.read".into(),
    })
    .unwrap()
}

struct Setup {
    server: FhirServer,
    rsa_private: String,
    ec_private: String,
    _keys: tempfile::TempDir,
}

async fn setup(token_lifetime_secs: u32) -> Option<Setup> {
    if !node().exists() {
        // Skips, or fails where the peers are required.
        assert!(start_fhir_server(&[]).is_none());
        return None;
    }
    let keys = tempfile::tempdir().unwrap();
    let (rsa_private, rsa_public) = key_pair("rsa", keys.path(), "rsa");
    let (ec_private, ec_public) = key_pair("ec", keys.path(), "ec");
    let options = vec![
        "--smart-client".to_owned(),
        format!("rsa-client={}", rsa_public.display()),
        "--smart-client".to_owned(),
        format!("ec-client={}", ec_public.display()),
        "--token-lifetime".to_owned(),
        token_lifetime_secs.to_string(),
    ];
    let server = tokio::task::spawn_blocking(move || start_fhir_server(&options))
        .await
        .unwrap()?;
    Some(Setup {
        server,
        rsa_private,
        ec_private,
        _keys: keys,
    })
}

async fn tokens_issued(base_url: &str) -> u64 {
    let stats = base_url.replace("/fhir/R4", "/auth/stats");
    let body: serde_json::Value = reqwest::get(stats).await.unwrap().json().await.unwrap();
    body["tokens_issued"].as_u64().unwrap()
}

#[tokio::test]
async fn rs384_and_es384_assertions_get_tokens_that_are_cached() {
    let Some(setup) = setup(300).await else {
        return;
    };
    let base = &setup.server.base_url;
    // Without a token the EHR refuses: the test server really enforces authorisation.
    let anonymous = FhirClient::new(test_settings(base), Authorization::None).unwrap();
    let refused = anonymous
        .read("Patient", "cancer-patient-john-anyperson")
        .await;
    assert!(refused.unwrap_err().to_string().contains("401"));

    for (client_id, private, algorithm) in [
        ("rsa-client", &setup.rsa_private, "RS384"),
        ("ec-client", &setup.ec_private, "ES384"),
    ] {
        let smart = smart_client(client_id, private);
        assert_eq!(format!("{:?}", smart.algorithm()), algorithm);
        let client =
            FhirClient::new(test_settings(base), Authorization::Smart(Box::new(smart))).unwrap();
        let before = tokens_issued(base).await;
        // A whole pull (a read and five concurrent searches), twice: one token for all.
        for _ in 0..2 {
            let record = pull_patient(&client, "cancer-patient-john-anyperson")
                .await
                .unwrap();
            assert!(record.missing.is_empty(), "{:?}", record.missing);
            assert!(!record.labs.is_empty());
        }
        assert_eq!(tokens_issued(base).await - before, 1, "{algorithm}");
    }
}

#[tokio::test]
async fn expired_and_refused_tokens_are_renewed() {
    let Some(setup) = setup(1).await else {
        return;
    };
    let base = &setup.server.base_url;
    let client = FhirClient::new(
        test_settings(base),
        Authorization::Smart(Box::new(smart_client("ec-client", &setup.ec_private))),
    )
    .unwrap();
    client
        .read("Patient", "cancer-patient-john-anyperson")
        .await
        .unwrap();
    assert_eq!(tokens_issued(base).await, 1);
    // Past its expiry, the cached token is not used: a new one is asked for.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    client
        .read("Patient", "cancer-patient-john-anyperson")
        .await
        .unwrap();
    assert_eq!(tokens_issued(base).await, 2);

    // The EHR revokes every token: the refused request is repeated once with a fresh token.
    let setup = self::setup(300).await.unwrap();
    let base = &setup.server.base_url;
    let client = FhirClient::new(
        test_settings(base),
        Authorization::Smart(Box::new(smart_client("rsa-client", &setup.rsa_private))),
    )
    .unwrap();
    client
        .read("Patient", "cancer-patient-john-anyperson")
        .await
        .unwrap();
    reqwest::Client::new()
        .post(base.replace("/fhir/R4", "/auth/revoke"))
        .send()
        .await
        .unwrap();
    client
        .read("Patient", "cancer-patient-john-anyperson")
        .await
        .unwrap();
    assert_eq!(tokens_issued(base).await, 2);
}

#[tokio::test]
async fn a_client_whose_key_is_not_registered_is_refused_with_the_reason() {
    let Some(setup) = setup(300).await else {
        return;
    };
    // The EC key signs, but the server holds the RSA key for this client id.
    let client = FhirClient::new(
        test_settings(&setup.server.base_url),
        Authorization::Smart(Box::new(smart_client("rsa-client", &setup.ec_private))),
    )
    .unwrap();
    let error = client
        .read("Patient", "cancer-patient-john-anyperson")
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("/auth/token"), "{error}");
    assert!(error.contains("invalid_client"), "{error}");

    // A key that is not a private key is refused when the client is made, not at first use.
    let error = SmartBackend::new(SmartClient {
        client_id: "x".into(),
        private_key_pem: "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"
            .to_owned()
            .into(),
        key_id: None,
        token_url: None,
        scope: String::new(),
    })
    .unwrap_err();
    assert!(error.to_string().contains("private key"), "{error}");
}
