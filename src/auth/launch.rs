//! The SMART app's side of a launch (SMART App Launch 2.x): which EHRs may launch it (`iss`),
//! their authorization endpoints (from `{iss}/.well-known/smart-configuration`), and the
//! exchange of an authorization code for a token at the EHR's token endpoint, on behalf of the
//! app's page (so that the page talks to its own origin only, as its content security policy
//! requires). The app is a public client with PKCE: the code verifier comes from the page, and
//! nothing here keeps a token.

use std::time::Duration;

use serde_json::Value;

/// Largest discovery document or token response read.
const MAX_ANSWER_BYTES: usize = 256 * 1024;

/// The endpoints of an EHR's authorization server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchEndpoints {
    pub authorize: String,
    pub token: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LaunchError {
    #[error("the app is not registered with the EHR at {0} (it is not in app.launch_issuers)")]
    UnknownIssuer(String),
    #[error("no EHR may launch the app here: app.launch_issuers and ehr.base_url are unset")]
    NoIssuer,
    #[error("the EHR's SMART configuration could not be read: {0}")]
    Discovery(String),
    #[error("the EHR's token endpoint could not be reached: {0}")]
    Token(String),
}

/// The EHRs that may launch the app, and how to reach their authorization servers.
#[derive(Debug, Clone)]
pub struct Launcher {
    issuers: Vec<String>,
    http: reqwest::Client,
}

fn normalised(url: &str) -> &str {
    url.trim_end_matches('/')
}

impl Launcher {
    /// `issuers`: the FHIR base URLs (`iss`) of the EHRs the app is registered with.
    pub fn new(issuers: Vec<String>, timeout: Duration) -> Result<Self, LaunchError> {
        let http = reqwest::ClientBuilder::new()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| LaunchError::Discovery(e.to_string()))?;
        Ok(Self {
            issuers: issuers.iter().map(|i| normalised(i).to_owned()).collect(),
            http,
        })
    }

    /// `iss` when it is a known EHR (compared without a trailing slash), else why not; without
    /// one (a standalone launch), the first known EHR.
    pub fn issuer(&self, iss: Option<&str>) -> Result<String, LaunchError> {
        match iss {
            Some(iss) => self
                .issuers
                .iter()
                .find(|known| known.as_str() == normalised(iss))
                .cloned()
                .ok_or_else(|| LaunchError::UnknownIssuer(iss.chars().take(200).collect())),
            None => self.issuers.first().cloned().ok_or(LaunchError::NoIssuer),
        }
    }

    /// The known EHRs.
    pub fn issuers(&self) -> &[String] {
        &self.issuers
    }

    async fn read_json(response: reqwest::Response) -> Result<(u16, Value), String> {
        let status = response.status().as_u16();
        if response
            .content_length()
            .is_some_and(|n| n > MAX_ANSWER_BYTES as u64)
        {
            return Err(format!("the answer is over {MAX_ANSWER_BYTES} bytes"));
        }
        let bytes = response.bytes().await.map_err(|e| e.to_string())?;
        if bytes.len() > MAX_ANSWER_BYTES {
            return Err(format!("the answer is over {MAX_ANSWER_BYTES} bytes"));
        }
        let value =
            serde_json::from_slice(&bytes).map_err(|_| "the answer is not JSON".to_owned())?;
        Ok((status, value))
    }

    /// The authorization and token endpoints a known EHR publishes.
    pub async fn endpoints(&self, issuer: &str) -> Result<LaunchEndpoints, LaunchError> {
        let url = format!("{issuer}/.well-known/smart-configuration");
        let response = self
            .http
            .get(&url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| LaunchError::Discovery(e.without_url().to_string()))?;
        let (status, document) = Self::read_json(response)
            .await
            .map_err(LaunchError::Discovery)?;
        if status != 200 {
            return Err(LaunchError::Discovery(format!("answered {status}")));
        }
        let endpoint = |key: &str| {
            document
                .get(key)
                .and_then(Value::as_str)
                .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
                .map(str::to_owned)
                .ok_or_else(|| LaunchError::Discovery(format!("it names no {key}")))
        };
        Ok(LaunchEndpoints {
            authorize: endpoint("authorization_endpoint")?,
            token: endpoint("token_endpoint")?,
        })
    }

    /// Exchanges an authorization code at a known EHR's token endpoint; the status and JSON
    /// body it answered (a token response, or an OAuth error) are passed back as they are.
    pub async fn exchange_code(
        &self,
        issuer: &str,
        form: &[(&str, &str)],
    ) -> Result<(u16, Value), LaunchError> {
        let endpoints = self.endpoints(issuer).await?;
        let response = self
            .http
            .post(&endpoints.token)
            .header(reqwest::header::ACCEPT, "application/json")
            .form(form)
            .send()
            .await
            .map_err(|e| LaunchError::Token(e.without_url().to_string()))?;
        Self::read_json(response).await.map_err(LaunchError::Token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_known_ehrs_launch_and_a_standalone_launch_takes_the_first() {
        let launcher = Launcher::new(
            vec![
                "https://ehr.example/fhir/".into(),
                "https://other.example/r4".into(),
            ],
            Duration::from_secs(1),
        )
        .unwrap();
        assert_eq!(
            launcher.issuer(Some("https://ehr.example/fhir")).unwrap(),
            "https://ehr.example/fhir"
        );
        assert_eq!(
            launcher.issuer(Some("https://other.example/r4/")).unwrap(),
            "https://other.example/r4"
        );
        assert!(matches!(
            launcher.issuer(Some("https://evil.example/fhir")),
            Err(LaunchError::UnknownIssuer(_))
        ));
        assert!(matches!(
            launcher.issuer(Some("https://ehr.example/fhir/extra")),
            Err(LaunchError::UnknownIssuer(_))
        ));
        assert_eq!(launcher.issuer(None).unwrap(), "https://ehr.example/fhir");
        let none = Launcher::new(Vec::new(), Duration::from_secs(1)).unwrap();
        assert_eq!(none.issuer(None), Err(LaunchError::NoIssuer));
    }
}
