//! The CDS Hooks 2.0 card of a risk assessment: a summary under 140 characters (the risk by the
//! main horizon and its band), an indicator by that band, the model as the source, a Markdown
//! detail (risk by each horizon, each modality's contribution, the features that moved it, what
//! was missing and why, the AI-generated notice), the reasons a clinician may give for
//! overriding it, and suggestions that draft the orders for missing inputs. Pure: the edge
//! (`api::cds`) decides what goes in.

use serde_json::{Value, json};

use super::risk::{AssessmentContent, CODE_SYSTEM, OUTSIDE_TRAINING, qualitative_risk};
const LOINC: &str = "http://loinc.org";

/// A test to order: its LOINC code and display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestToOrder {
    pub code: String,
    pub display: Option<String>,
}

/// CDS Hooks limits `summary` to fewer than 140 characters.
pub const SUMMARY_MAX_CHARS: usize = 139;

/// The reasons offered for overriding a card (codes of the service's code system).
pub const OVERRIDE_REASONS: [(&str, &str); 4] = [
    (
        "override-not-applicable",
        "The model does not apply to this patient",
    ),
    (
        "override-inputs-wrong",
        "The inputs the model used are wrong or out of date",
    ),
    (
        "override-clinical-judgement",
        "Clinical judgement differs from the estimate",
    ),
    ("override-already-addressed", "Already known and addressed"),
];

/// What a card is made of besides the assessment.
#[derive(Debug, Clone, Default)]
pub struct CardParts {
    pub uuid: String,
    /// The model card's URL, for `source.url`.
    pub model_card_url: Option<String>,
    /// A first paragraph of the detail, before the risk (what an order being placed would
    /// add).
    pub lead: Option<String>,
    /// The assessment's warnings (what limited the record, what was derived).
    pub warnings: Vec<String>,
    /// A SMART app link: (label, launch URL, appContext).
    pub app_link: Option<(String, String, String)>,
    pub suggestions: Vec<Value>,
}

fn percent(p: f64) -> String {
    format!("{:.1} %", (p * 1000.0).round() / 10.0)
}

/// The band of the main horizon (the longest), or none for a patient unlike the training
/// patients.
fn main_band(c: &AssessmentContent) -> Option<&'static str> {
    let main = c.horizons.last()?;
    (!c.outside_training).then(|| qualitative_risk(main.probability).0)
}

/// The summary: the outcome's probability by the main horizon and its band.
pub fn summary(c: &AssessmentContent) -> String {
    let text = match c.horizons.last() {
        Some(h) => {
            let band = match main_band(c) {
                Some(band) => format!("{band} risk"),
                None => "outside the model's training population".into(),
            };
            format!(
                "{}: {} by {} ({band}) — AI estimate",
                c.outcome.1,
                percent(h.probability),
                h.label
            )
        }
        None => format!("{}: no horizon to report — AI estimate", c.outcome.1),
    };
    truncate(&text, SUMMARY_MAX_CHARS)
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max - 1).collect();
    out.push('…');
    out
}

/// `info`, `warning` or `critical` by the main horizon's band; a patient unlike the training
/// patients is a warning (the number is not to be trusted as a band).
pub fn indicator(c: &AssessmentContent) -> &'static str {
    match main_band(c) {
        Some("low") => "info",
        Some("moderate") | None => "warning",
        Some(_) => "critical",
    }
}

/// Text safe inside Markdown (and a table cell).
fn md(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        if "\\`*_[]<>|#".contains(ch) {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

fn signed(x: f64) -> String {
    format!("{x:+.2}")
}

/// The card's Markdown detail.
pub fn detail(c: &AssessmentContent, parts: &CardParts) -> String {
    let mut out = String::new();
    if let Some(lead) = &parts.lead {
        out += &format!("{}\n\n", md(lead));
    }
    out += &format!(
        "**{}**, predicted by {} {}\n\n",
        md(&c.outcome.1),
        md(&c.model.name),
        md(&c.model.version)
    );
    out += "| By | Probability | Band |\n|---|---|---|\n";
    for h in &c.horizons {
        let band = if c.outside_training {
            OUTSIDE_TRAINING.to_lowercase()
        } else {
            qualitative_risk(h.probability).0.to_owned()
        };
        out += &format!(
            "| {} ({}) | {} | {band} |\n",
            md(&h.label),
            h.period.1,
            percent(h.probability)
        );
    }
    if let Some(origin) = &c.origin {
        out += &format!("\n{}\n", md(origin));
    }
    if !c.contributions.is_empty() {
        out += "\n**Each modality's part**\n\n";
        for (modality, weight, contribution) in &c.contributions {
            out += &match contribution {
                Some(x) => format!(
                    "- {}: {} to the log hazard (weight {weight:.2})\n",
                    md(modality),
                    signed(*x)
                ),
                None => format!("- {} (weight {weight:.2})\n", md(modality)),
            };
        }
    }
    if !c.top_features.is_empty() {
        out += "\n**What moved the risk most**\n\n";
        for (feature, attribution) in &c.top_features {
            let way = if *attribution >= 0.0 {
                "raises"
            } else {
                "lowers"
            };
            out += &format!(
                "- {}: {way} it ({} to the log hazard)\n",
                md(feature),
                signed(*attribution)
            );
        }
    }
    if !c.missing.is_empty() || !c.unfilled.is_empty() {
        out += "\n**Missing, and why**\n\n";
        for (modality, why) in &c.missing {
            out += &format!(
                "- the {} modality: predicted without it ({})\n",
                md(modality),
                md(why)
            );
        }
        for u in c
            .unfilled
            .iter()
            .filter(|u| !c.missing.iter().any(|(m, _)| *m == u.modality))
        {
            out += &format!("- {}: {}\n", md(&u.feature), md(&u.reason));
        }
    }
    let notes: Vec<&String> = parts
        .warnings
        .iter()
        .filter(|w| {
            let said_above = w.starts_with("inputs not on record")
                || (w.starts_with("the ") && w.contains(" modality is missing"));
            !said_above && !c.cautions.contains(w)
        })
        .collect();
    if !c.cautions.is_empty() || !notes.is_empty() {
        out += "\n**Cautions**\n\n";
        for caution in c.cautions.iter().chain(notes) {
            out += &format!("- {}\n", md(caution));
        }
    }
    out += &format!(
        "\n*AI-generated and preliminary*: a statistical estimate by the model {} {}, not a \
         diagnosis, and not yet reviewed by a clinician. It is filed as a preliminary \
         DiagnosticReport for sign-off.",
        md(&c.model.name),
        md(&c.model.version)
    );
    if let Some(url) = &parts.model_card_url {
        out +=
            &format!(" See the [model card]({url}) for whom it was made and how it was validated.");
    }
    out.push('\n');
    out
}

/// The card (CDS Hooks 2.0): no nulls and no empty arrays.
pub fn risk_card(c: &AssessmentContent, parts: &CardParts) -> Value {
    let mut source = json!({
        "label": format!("prognostics: {} {}", c.model.name, c.model.version),
        "topic": {"system": CODE_SYSTEM, "code": "prognostic-risk", "display": "Prognostic risk"},
    });
    if let Some(url) = &parts.model_card_url {
        source["url"] = json!(url);
    }
    let mut card = json!({
        "uuid": parts.uuid,
        "summary": summary(c),
        "indicator": indicator(c),
        "detail": detail(c, parts),
        "source": source,
        "overrideReasons": OVERRIDE_REASONS
            .iter()
            .map(|(code, display)| json!({"system": CODE_SYSTEM, "code": code, "display": display}))
            .collect::<Vec<_>>(),
    });
    if !parts.suggestions.is_empty() {
        card["suggestions"] = Value::Array(parts.suggestions.clone());
        card["selectionBehavior"] = json!("any");
    }
    if let Some((label, url, context)) = &parts.app_link {
        card["links"] =
            json!([{"label": label, "url": url, "type": "smart", "appContext": context}]);
    }
    card
}

/// A suggestion that drafts the order for a test whose result the model lacks: a
/// ServiceRequest (draft, proposal) for the patient.
pub fn order_suggestion(
    patient: &str,
    feature: &str,
    test: &TestToOrder,
    model: &str,
    uuid: String,
) -> Value {
    let name = test
        .display
        .clone()
        .unwrap_or_else(|| format!("LOINC {}", test.code));
    let mut coding = json!({"system": LOINC, "code": test.code});
    if let Some(display) = &test.display {
        coding["display"] = json!(display);
    }
    json!({
        "label": truncate(&format!("Order {name}"), 80),
        "uuid": uuid,
        "isRecommended": false,
        "actions": [{
            "type": "create",
            "description": format!(
                "Draft an order for {name}: its result is the input `{feature}` of {model}, which the record lacks"
            ),
            "resource": {
                "resourceType": "ServiceRequest",
                "status": "draft",
                "intent": "proposal",
                "code": {"coding": [coding], "text": name},
                "subject": {"reference": format!("Patient/{patient}")},
                "note": [{"text": format!(
                    "Suggested by the prognostics risk service: the result fills the input `{feature}` of {model}"
                )}],
            },
        }],
    })
}

/// `Identifier.system` of a CDS Hooks card's uuid.
pub const CDS_CARD_SYSTEM: &str = "https://prognostics.example.org/fhir/sid/cds-card";
/// Base of the feedback's extensions.
const FEEDBACK_EXTENSION: &str =
    "https://prognostics.example.org/fhir/StructureDefinition/cds-feedback";

/// A clinician's answer to a card, as the CDS client reported it.
#[derive(Debug, Clone, PartialEq)]
pub struct CardFeedback {
    pub card: String,
    /// `accepted` or `overridden`.
    pub outcome: String,
    pub accepted_suggestions: Vec<String>,
    /// The override reason's Coding, as sent.
    pub override_reason: Option<Value>,
    pub comment: Option<String>,
    /// When the clinician acted (RFC 3339).
    pub at: String,
}

/// What the card the feedback is about showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardShown<'a> {
    pub service: &'a str,
    pub patient: &'a str,
    pub report: &'a str,
    pub model: &'a str,
    pub user: Option<&'a str>,
}

/// Feedback on a card as a FHIR Basic resource, searchable by patient (`subject`), author,
/// date (`created`) and card (`identifier`).
pub fn feedback_resource(id: &str, shown: &CardShown<'_>, feedback: &CardFeedback) -> Value {
    let extension = |name: &str, key: &str, value: Value| json!({"url": format!("{FEEDBACK_EXTENSION}#{name}"), key: value});
    let mut extensions = vec![
        extension("outcome", "valueCode", json!(feedback.outcome)),
        extension("outcomeTimestamp", "valueDateTime", json!(feedback.at)),
        extension(
            "assessment",
            "valueReference",
            json!({"reference": format!("DiagnosticReport/{}", shown.report)}),
        ),
        extension("service", "valueString", json!(shown.service)),
        extension("model", "valueString", json!(shown.model)),
    ];
    if let Some(reason) = &feedback.override_reason {
        extensions.push(extension("overrideReason", "valueCoding", reason.clone()));
    }
    if let Some(comment) = &feedback.comment {
        extensions.push(extension("userComment", "valueString", json!(comment)));
    }
    for suggestion in &feedback.accepted_suggestions {
        extensions.push(extension(
            "acceptedSuggestion",
            "valueString",
            json!(suggestion),
        ));
    }
    let mut resource = json!({
        "resourceType": "Basic",
        "id": id,
        "identifier": [{"system": CDS_CARD_SYSTEM, "value": feedback.card}],
        "code": {"coding": [{"system": CODE_SYSTEM, "code": "cds-feedback", "display": "Feedback on a decision support card"}]},
        "subject": {"reference": format!("Patient/{}", shown.patient)},
        // Basic.created is a date; the moment is in the outcomeTimestamp extension.
        "created": feedback.at.get(..10).unwrap_or(&feedback.at),
        "extension": extensions,
    });
    if let Some(user) = shown.user {
        resource["author"] = json!({"reference": user});
    }
    resource
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ResourceId;
    use crate::report::risk::{HorizonRisk, ModelDescription, Unfilled};

    fn content(probability: f64, outside: bool) -> AssessmentContent {
        AssessmentContent {
            patient: ResourceId::parse("p1").unwrap(),
            model: ModelDescription {
                device_id: ResourceId::parse("model-1").unwrap(),
                name: "gbsg2-recurrence".into(),
                version: "1.0.0".into(),
                weights_sha256: "ab".repeat(32),
            },
            outcome: ("recurrence-or-death".into(), "Recurrence or death".into()),
            effective: "2026-01-01T00:00:00Z".into(),
            issued: "2026-01-01T00:00:00.000Z".into(),
            log_hazard_ratio: 0.3,
            horizons: vec![
                HorizonRisk {
                    label: "1 year".into(),
                    time: 1.0,
                    unit: "a",
                    probability: probability / 3.0,
                    period: ("2026-01-01".into(), "2027-01-01".into()),
                },
                HorizonRisk {
                    label: "5 years".into(),
                    time: 5.0,
                    unit: "a",
                    probability,
                    period: ("2026-01-01".into(), "2031-01-01".into()),
                },
            ],
            origin: Some("Counted from diagnosis on 2025-12-01.".into()),
            cautions: vec![],
            outside_training: outside,
            triage: None,
            contributions: vec![("clinical".into(), 1.0, Some(0.3))],
            top_features: vec![("pnodes=4-9".into(), 0.42), ("age".into(), -0.1)],
            missing: vec![],
            unfilled: vec![Unfilled {
                feature: "progrec".into(),
                modality: "clinical".into(),
                reason: "no progesterone receptor result on record".into(),
            }],
            basis: vec![],
            imaging_study: None,
            key: "k".into(),
        }
    }

    #[test]
    fn the_summary_gives_the_main_horizon_and_band_in_under_140_characters() {
        let c = content(0.234, false);
        assert_eq!(
            summary(&c),
            "Recurrence or death: 23.4 % by 5 years (moderate risk) — AI estimate"
        );
        assert_eq!(indicator(&c), "warning");
        assert_eq!(indicator(&content(0.05, false)), "info");
        assert_eq!(indicator(&content(0.5, false)), "critical");
        let outside = content(0.5, true);
        assert!(summary(&outside).contains("outside the model's training population"));
        assert_eq!(indicator(&outside), "warning");
        let mut long = content(0.5, false);
        long.outcome.1 = "A".repeat(300);
        assert_eq!(summary(&long).chars().count(), SUMMARY_MAX_CHARS);
    }

    #[test]
    fn the_detail_explains_the_risk_and_says_it_is_ai_generated() {
        let c = content(0.234, false);
        let parts = CardParts {
            uuid: "u".into(),
            model_card_url: Some("https://svc.example.org/model-card".into()),
            warnings: vec!["the study 1.2.3 is not encoded yet; imaging was not used".into()],
            ..CardParts::default()
        };
        let detail = detail(&c, &parts);
        for expected in [
            "| 5 years (2031-01-01) | 23.4 % | moderate |",
            "- clinical: +0.30 to the log hazard",
            "- pnodes=4-9: raises it (+0.42",
            "- age: lowers it (-0.10",
            "- progrec: no progesterone receptor result on record",
            "imaging was not used",
            "*AI-generated and preliminary*",
            "[model card](https://svc.example.org/model-card)",
        ] {
            assert!(detail.contains(expected), "{expected} in {detail}");
        }
    }

    #[test]
    fn the_card_has_no_nulls_or_empty_arrays() {
        fn check(v: &Value, path: &str) {
            match v {
                Value::Null => panic!("null at {path}"),
                Value::Array(items) => {
                    assert!(!items.is_empty(), "empty array at {path}");
                    items.iter().for_each(|i| check(i, path));
                }
                Value::Object(map) => map
                    .iter()
                    .for_each(|(k, v)| check(v, &format!("{path}.{k}"))),
                _ => {}
            }
        }
        let c = content(0.1, false);
        let bare = risk_card(&c, &CardParts::default());
        check(&bare, "card");
        assert!(bare.get("suggestions").is_none());
        let test = TestToOrder {
            code: "31207-4".into(),
            display: Some("Progesterone receptor [Moles/mass] in Tissue".into()),
        };
        let full = risk_card(
            &c,
            &CardParts {
                uuid: "u".into(),
                model_card_url: Some("https://x/model-card".into()),
                suggestions: vec![order_suggestion("p1", "progrec", &test, "m 1", "s1".into())],
                app_link: Some(("Open".into(), "https://x/app/launch".into(), "{}".into())),
                ..CardParts::default()
            },
        );
        check(&full, "card");
        assert_eq!(full["selectionBehavior"], "any");
        let order = &full["suggestions"][0]["actions"][0]["resource"];
        assert_eq!(order["status"], "draft");
        assert_eq!(order["code"]["coding"][0]["code"], "31207-4");
        assert_eq!(order["subject"]["reference"], "Patient/p1");
    }
}
