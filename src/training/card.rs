//! The model card written beside the bundle, as JSON (for governance tools) and Markdown (for
//! people): what the model predicts and for whom, the data it learnt from, its features, how
//! it was trained, its metrics on held-out patients overall and by subgroup, and its limits.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::dataset::ColumnRoles;
use super::metrics::Metrics;
use super::subgroups::Subgroups;
use crate::cohort::{Cohort, Survival, Values};
use crate::fusion::{Horizon, Manifest, Outcome, TrainSettings, Triage};

#[derive(Debug, Clone, Serialize)]
pub struct CohortSummary {
    /// The file's name (not its location).
    pub file: String,
    pub rows: usize,
    pub events: usize,
    pub median_follow_up: f64,
    pub longest_follow_up: f64,
    /// Patients the model learnt from (early stopping and calibration included).
    pub train_rows: usize,
    pub test_rows: usize,
    /// Columns with missing values, and how many.
    pub missing: Vec<(String, usize)>,
}

impl CohortSummary {
    pub fn of(
        cohort: &Cohort,
        survival: &Survival,
        roles: &ColumnRoles,
        train: &[usize],
        test: &[usize],
    ) -> Self {
        let mut times = survival.time.clone();
        times.sort_by(f64::total_cmp);
        let missing = cohort
            .columns
            .iter()
            .filter(|c| c.name != roles.time && c.name != roles.event)
            .map(|c| {
                let count = match &c.values {
                    Values::Numeric(v) => v.iter().filter(|x| x.is_none()).count(),
                    Values::Categorical { codes, .. } => {
                        codes.iter().filter(|x| x.is_none()).count()
                    }
                };
                (c.name.clone(), count)
            })
            .filter(|(_, n)| *n > 0)
            .collect();
        Self {
            file: cohort
                .path
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default(),
            rows: cohort.rows,
            events: survival.event.iter().filter(|&&e| e).count(),
            median_follow_up: times.get(times.len() / 2).copied().unwrap_or(0.0),
            longest_follow_up: times.last().copied().unwrap_or(0.0),
            train_rows: train.len(),
            test_rows: test.len(),
            missing,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct FeatureEntry {
    pub modality: String,
    pub feature: String,
    pub column: Option<String>,
    /// Where the service finds it in FHIR (a model trained with an input spec).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fhir: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ModelCard {
    pub name: String,
    pub version: String,
    pub created: DateTime<Utc>,
    pub intended_use: String,
    /// Who the model is for and from when, in words drawn from the criteria the service
    /// checks (none: the spec declares no population).
    pub population: Option<String>,
    pub limitations: Vec<String>,
    pub outcome: Outcome,
    pub data: CohortSummary,
    pub features: Vec<FeatureEntry>,
    pub training: TrainSettings,
    /// Per member of the ensemble: (epoch kept, epochs run).
    pub epochs: Vec<(usize, usize)>,
    /// Out-of-fold predictions the calibration was fitted on.
    pub calibration_rows: usize,
    pub horizons: Vec<Horizon>,
    pub triage: Option<Triage>,
    pub test_metrics: Metrics,
    pub subgroups: Vec<Subgroups>,
}

impl ModelCard {
    pub fn new(
        manifest: &Manifest,
        data: CohortSummary,
        epochs: Vec<(usize, usize)>,
        calibration_rows: usize,
        test_metrics: Metrics,
        subgroups: Vec<Subgroups>,
    ) -> Self {
        let unit = &manifest.outcome.time_unit;
        let mut limitations = vec![
            format!(
                "Learnt from {} patients ({} events) of one cohort file and checked on {} held-out patients of the same cohort; it has not been validated on other populations or sites.",
                data.train_rows,
                data.events,
                data.test_rows
            ),
            "A Cox model: the survival probabilities assume that each patient's hazard is a fixed multiple of the baseline hazard over time.".into(),
            format!(
                "Probabilities beyond the longest follow-up ({} {unit}) are extrapolations and are not supported.",
                data.longest_follow_up
            ),
        ];
        let uncalibrated: Vec<&str> = manifest
            .horizons
            .iter()
            .filter(|h| h.calibration.is_none())
            .map(|h| h.label.as_str())
            .collect();
        if !uncalibrated.is_empty() {
            limitations.push(format!(
                "Too few validation patients with a known status to calibrate at: {}.",
                uncalibrated.join(", ")
            ));
        }
        if !data.missing.is_empty() {
            limitations.push(format!(
                "Missing values in training ({}) were learnt as unknown, not imputed; patterns of missingness at another site may differ.",
                data.missing
                    .iter()
                    .map(|(c, n)| format!("{c}: {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        Self {
            name: manifest.name.clone(),
            version: manifest.version.clone(),
            created: manifest.created,
            intended_use: format!(
                "Decision support for clinicians: an estimate of the risk of the event recorded in `{}` for patients like those of the training cohort, at {}. Not for use on its own to decide treatment, and not for patients outside the training population.",
                manifest.outcome.event_column,
                manifest
                    .horizons
                    .iter()
                    .map(|h| h.label.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            population: manifest
                .inputs
                .as_ref()
                .and_then(|spec| spec.population.as_ref())
                .map(|p| p.describe()),
            limitations,
            outcome: manifest.outcome.clone(),
            data,
            features: manifest
                .layout
                .modalities
                .iter()
                .flat_map(|m| {
                    m.features.iter().map(move |f| FeatureEntry {
                        modality: m.modality.to_string(),
                        feature: f.name.clone(),
                        column: f.source.as_ref().map(|s| s.column().to_owned()),
                        fhir: manifest
                            .inputs
                            .as_ref()
                            .and_then(|spec| spec.fhir_source(&f.name)),
                    })
                })
                .collect(),
            training: manifest.training.clone(),
            epochs,
            calibration_rows,
            horizons: manifest.horizons.clone(),
            triage: manifest.triage.clone(),
            test_metrics,
            subgroups,
        }
    }

    pub fn to_markdown(&self) -> String {
        let f = |v: Option<f64>| v.map_or("—".to_owned(), |v| format!("{v:.3}"));
        let mut md = format!("# Model card: {} ({})\n\n", self.name, self.version);
        md += &format!(
            "Created {}.\n\n## Intended use\n\n{}\n\n",
            self.created.format("%Y-%m-%d"),
            self.intended_use
        );
        md += "## Intended population\n\n";
        md += &match &self.population {
            Some(words) => format!(
                "{words} The service checks these criteria on the patient's record and answers a patient outside them with the unmet criterion, never a score.\n\n"
            ),
            None => "Not declared: the service cannot check who the model is for.\n\n".into(),
        };
        md += "## Limitations\n\n";
        for l in &self.limitations {
            md += &format!("- {l}\n");
        }
        let d = &self.data;
        md += &format!(
            "\n## Data\n\n`{}`: {} patients, {} events; median follow-up {} {}, longest {}. Split by patient (stratified by event): {} to learn from, {} held out for the metrics below.\n\n",
            d.file,
            d.rows,
            d.events,
            d.median_follow_up,
            self.outcome.time_unit,
            d.longest_follow_up,
            d.train_rows,
            d.test_rows
        );
        md += "## Features\n\n| modality | feature | column | from FHIR |\n|---|---|---|---|\n";
        for e in &self.features {
            md += &format!(
                "| {} | {} | {} | {} |\n",
                e.modality,
                e.feature,
                e.column.as_deref().unwrap_or("—"),
                e.fhir.as_deref().unwrap_or("—")
            );
        }
        let t = &self.training;
        md += &format!(
            "\n## Training\n\nAn ensemble of {} fusion networks (hidden width {}), each trained on the Cox partial likelihood with AdamW (learning rate {}, weight decay {}), dropout {} and modality dropout {}, and stopped early on its own fold of the training patients (patience {}); seed {}. Epochs kept / run per network: {}. Calibration fitted on {} out-of-fold predictions.\n\n",
            self.epochs.len(),
            t.hidden,
            t.learning_rate,
            t.weight_decay,
            t.dropout,
            t.modality_dropout,
            t.patience,
            t.seed,
            self.epochs
                .iter()
                .map(|(b, r)| format!("{b}/{r}"))
                .collect::<Vec<_>>()
                .join(", "),
            self.calibration_rows
        );
        let m = &self.test_metrics;
        md += &format!(
            "## Metrics on the {} test patients ({} events)\n\n| metric | value |\n|---|---|\n",
            m.rows, m.events
        );
        md += &format!(
            "| Harrell's C | {} |\n| Uno's C | {} |\n| mean time-dependent AUC | {} |\n| integrated Brier score | {} |\n",
            f(m.harrell_c),
            f(m.uno_c),
            f(m.mean_auc),
            f(m.integrated_brier_score)
        );
        for h in &m.horizons {
            md += &format!(
                "| AUC at {} | {} |\n| calibration slope at {} | {} |\n| calibration intercept at {} | {} |\n",
                h.label,
                f(h.auc),
                h.label,
                f(h.calibration_slope),
                h.label,
                f(h.calibration_intercept)
            );
        }
        if let Some(tr) = &m.triage {
            md += &format!(
                "| triage AUROC | {} |\n| triage average precision | {} |\n| triage precision at {:.3} | {} |\n| triage recall at {:.3} | {} |\n",
                f(tr.auroc),
                f(tr.average_precision),
                tr.threshold,
                f(tr.precision),
                tr.threshold,
                f(tr.recall)
            );
        }
        md += "\nReliability diagram: `reliability.svg`.\n";
        if !m.notes.is_empty() {
            md += "\nNot computed:\n";
            for n in &m.notes {
                md += &format!("- {n}\n");
            }
        }
        for s in &self.subgroups {
            md += &format!(
                "\n## By {}\n\n| group | patients | events | Harrell's C | Uno's C | mean AUC | IBS |\n|---|---|---|---|---|---|---|\n",
                s.column
            );
            for g in &s.groups {
                let m = &g.metrics;
                md += &format!(
                    "| {} | {} | {} | {} | {} | {} | {} |\n",
                    g.name,
                    m.rows,
                    m.events,
                    f(m.harrell_c),
                    f(m.uno_c),
                    f(m.mean_auc),
                    f(m.integrated_brier_score)
                );
            }
            md += &format!(
                "| gap (max − min) | | | {} | {} | {} | {} |\n",
                f(s.gaps.harrell_c),
                f(s.gaps.uno_c),
                f(s.gaps.mean_auc),
                f(s.gaps.integrated_brier_score)
            );
        }
        md
    }
}
