//! What clinicians do with each model version's output: CDS cards accepted or overridden, and
//! risk reports signed or disagreed with, each with the reasons given.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::domain::ResourceType;
use crate::fhir::parse_search;
use crate::pipeline::{Pipeline, PipelineError};

/// What clinicians did with one model version's output: CDS cards accepted or overridden (with
/// the reasons given), and risk reports signed or disagreed with (with the reasons).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ClinicianActions {
    pub model: String,
    pub version: String,
    pub cards_accepted: usize,
    pub cards_overridden: usize,
    pub override_reasons: BTreeMap<String, usize>,
    pub reports_signed: usize,
    pub reports_disagreed: usize,
    pub disagree_reasons: BTreeMap<String, usize>,
    /// Accepted cards and signed reports among every card answered and report reviewed.
    pub acceptance_rate: Option<f64>,
}

/// The value of a Basic's extension whose URL ends with `#{name}`.
fn extension<'a>(resource: &'a Value, name: &str, key: &str) -> Option<&'a Value> {
    resource["extension"]
        .as_array()?
        .iter()
        .find(|e| {
            e["url"]
                .as_str()
                .is_some_and(|u| u.ends_with(&format!("#{name}")))
        })?
        .get(key)
}

/// `name|version` (a card's) or `name version` (a report's).
fn model_named(text: &str) -> (String, String) {
    let (name, version) = text
        .split_once('|')
        .or_else(|| text.rsplit_once(' '))
        .unwrap_or((text, ""));
    (name.to_owned(), version.to_owned())
}

impl Pipeline {
    /// Clinicians' answers per model version, from the feedback and review records filed.
    pub async fn clinician_actions(&self) -> Result<Vec<ClinicianActions>, PipelineError> {
        let mut by_model: BTreeMap<(String, String), ClinicianActions> = BTreeMap::new();
        for code in ["cds-feedback", "assessment-signed", "assessment-disagreed"] {
            let params = [(
                "code".to_owned(),
                format!("{}|{code}", crate::report::risk::CODE_SYSTEM),
            )];
            let mut query = parse_search(ResourceType::Basic, &params, true, 500, 500)?;
            loop {
                let (page, total) = self.store.search(ResourceType::Basic, &query).await?;
                let read = page.len();
                for stored in page {
                    let Some(resource) = stored
                        .content
                        .as_deref()
                        .and_then(|c| serde_json::from_str::<Value>(c).ok())
                    else {
                        continue;
                    };
                    let Some(model) =
                        extension(&resource, "model", "valueString").and_then(Value::as_str)
                    else {
                        continue;
                    };
                    let (name, version) = model_named(model);
                    let actions = by_model
                        .entry((name.clone(), version.clone()))
                        .or_insert_with(|| ClinicianActions {
                            model: name,
                            version,
                            ..ClinicianActions::default()
                        });
                    let reason = |key: &str| {
                        extension(&resource, key, "valueCoding")
                            .and_then(|c| c["code"].as_str())
                            .unwrap_or("none given")
                            .to_owned()
                    };
                    match code {
                        "cds-feedback" => {
                            match extension(&resource, "outcome", "valueCode")
                                .and_then(Value::as_str)
                            {
                                Some("accepted") => actions.cards_accepted += 1,
                                Some("overridden") => {
                                    actions.cards_overridden += 1;
                                    *actions
                                        .override_reasons
                                        .entry(reason("overrideReason"))
                                        .or_default() += 1;
                                }
                                _ => {}
                            }
                        }
                        "assessment-signed" => actions.reports_signed += 1,
                        _ => {
                            actions.reports_disagreed += 1;
                            *actions
                                .disagree_reasons
                                .entry(reason("reason"))
                                .or_default() += 1;
                        }
                    }
                }
                query.offset += read as u32;
                if read == 0 || u64::from(query.offset) >= total {
                    break;
                }
            }
        }
        Ok(by_model
            .into_values()
            .map(|mut a| {
                let answered =
                    a.cards_accepted + a.cards_overridden + a.reports_signed + a.reports_disagreed;
                a.acceptance_rate = (answered > 0)
                    .then(|| (a.cards_accepted + a.reports_signed) as f64 / answered as f64);
                a
            })
            .collect())
    }
}
