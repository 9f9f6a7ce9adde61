//! TLS for the service's listeners (HTTPS, DICOM, MLLP), with rustls and its ring provider: a
//! certificate chain and key from PEM files, and optionally a CA whose certificates clients
//! must present (mutual TLS). Each door names its own files; the checks are the same.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

use crate::config::TlsFiles;

/// A door's server configuration from its files; None when TLS is not configured there. Half
/// a configuration, an unreadable file or a key that does not fit is an error naming the
/// setting.
pub fn server_config(files: &TlsFiles<'_>) -> Result<Option<Arc<rustls::ServerConfig>>, String> {
    let p = files.setting;
    let (certificate, key) = match (files.certificate, files.key, files.client_ca) {
        (Some(certificate), Some(key), _) => (certificate, key),
        (None, None, None) => return Ok(None),
        (None, None, Some(_)) => {
            return Err(format!("{p}client_ca needs {p}certificate and {p}key"));
        }
        _ => return Err(format!("set both {p}certificate and {p}key, or neither")),
    };
    build(certificate, key, files.client_ca.map(PathBuf::as_path))
        .map(|config| Some(Arc::new(config)))
        .map_err(|e| format!("{p}certificate, {p}key: {e}"))
}

fn certificates(file: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let chain = CertificateDer::pem_file_iter(file)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", file.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: no certificate", file.display()));
    }
    Ok(chain)
}

/// A server configuration from a certificate chain (the server's first) and its key, asking
/// clients for a certificate signed by `client_ca` when one is given.
fn build(
    certificate: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<rustls::ServerConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = certificates(certificate)?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(file) => {
            let mut roots = rustls::RootCertStore::empty();
            for ca in certificates(file)? {
                roots
                    .add(ca)
                    .map_err(|e| format!("{}: {e}", file.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| format!("{}: {e}", file.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    builder
        .with_single_cert(chain, key)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files<'a>(
        certificate: Option<&'a PathBuf>,
        key: Option<&'a PathBuf>,
        client_ca: Option<&'a PathBuf>,
    ) -> TlsFiles<'a> {
        TlsFiles {
            setting: "hl7.tls_",
            certificate,
            key,
            client_ca,
        }
    }

    #[test]
    fn half_a_configuration_or_a_missing_file_is_refused_naming_the_setting() {
        let file = PathBuf::from("/nonexistent/cert.pem");
        assert!(server_config(&files(None, None, None)).unwrap().is_none());
        let half = server_config(&files(Some(&file), None, None)).unwrap_err();
        assert!(
            half.contains("hl7.tls_certificate and hl7.tls_key"),
            "{half}"
        );
        let ca_only = server_config(&files(None, None, Some(&file))).unwrap_err();
        assert!(ca_only.contains("hl7.tls_client_ca needs"), "{ca_only}");
        let missing = server_config(&files(Some(&file), Some(&file), None)).unwrap_err();
        assert!(
            missing.contains("hl7.tls_") && missing.contains("/nonexistent/cert.pem"),
            "{missing}"
        );
    }
}
