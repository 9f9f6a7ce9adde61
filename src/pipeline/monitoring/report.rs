//! The monitoring report: every model version's performance on outcomes beside its card's
//! validation figures, its subgroups, its drift from the training patients, what clinicians did
//! with it and the alerts raised, as one page (`/monitoring`, SVG inline) or as Markdown with
//! its plots as SVG files (`prognostics monitor report`).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use super::plots::{self, escape};
use super::{ClinicianActions, InputDrift, ModelPerformance};
use crate::pipeline::alerts::{Alert, AlertThresholds};
use crate::pipeline::{Pipeline, PipelineError};

/// A model card's validation figures, to compare with.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct CardFigures {
    pub harrell_c: Option<f64>,
    pub uno_c: Option<f64>,
    /// Per horizon label.
    pub horizons: BTreeMap<String, CardHorizon>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct CardHorizon {
    pub auc: Option<f64>,
    pub calibration_slope: Option<f64>,
    pub calibration_intercept: Option<f64>,
}

impl CardFigures {
    fn of(card: &Value) -> Self {
        let metrics = &card["test_metrics"];
        Self {
            harrell_c: metrics["harrell_c"].as_f64(),
            uno_c: metrics["uno_c"].as_f64(),
            horizons: metrics["horizons"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|h| {
                    Some((
                        h["label"].as_str()?.to_owned(),
                        CardHorizon {
                            auc: h["auc"].as_f64(),
                            calibration_slope: h["calibration_slope"].as_f64(),
                            calibration_intercept: h["calibration_intercept"].as_f64(),
                        },
                    ))
                })
                .collect(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct MonitoringReport {
    pub generated: DateTime<Utc>,
    /// Assessments from this date on (performance and drift).
    pub since: DateTime<Utc>,
    pub performance: Vec<ModelPerformance>,
    pub drift: Vec<InputDrift>,
    pub actions: Vec<ClinicianActions>,
    pub alerts: Vec<Alert>,
    /// By `name version`.
    pub cards: BTreeMap<String, CardFigures>,
    #[serde(skip)]
    pub thresholds: AlertThresholds,
}

/// One plot: a file name (for the Markdown report) and its SVG.
pub struct Plot {
    pub file: String,
    pub title: String,
    pub svg: String,
}

fn figure(value: Option<f64>) -> String {
    value.map_or("–".into(), |v| format!("{v:.3}"))
}

fn slug(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect::<String>()
        .to_lowercase()
}

impl MonitoringReport {
    fn card(&self, model: &str, version: &str) -> Option<&CardFigures> {
        self.cards.get(&format!("{model} {version}"))
    }

    /// Every plot of the report, in order.
    pub fn plots(&self) -> Vec<Plot> {
        let mut out = Vec::new();
        for p in &self.performance {
            let stem = slug(&format!("{}-{}-{}", p.model, p.version, p.role));
            out.push(Plot {
                file: format!("calibration-{stem}.svg"),
                title: format!("Calibration, {} {} ({})", p.model, p.version, p.role),
                svg: plots::calibration(p),
            });
            let card_c = self.card(&p.model, &p.version).and_then(|c| c.harrell_c);
            out.push(Plot {
                file: format!("discrimination-{stem}.svg"),
                title: format!(
                    "Discrimination over time, {} {} ({})",
                    p.model, p.version, p.role
                ),
                svg: plots::discrimination_over_time(p, card_c),
            });
        }
        for d in &self.drift {
            let stem = slug(&format!("{}-{}-{}", d.model, d.version, d.role));
            out.push(Plot {
                file: format!("drift-{stem}.svg"),
                title: format!("Drift by input, {} {} ({})", d.model, d.version, d.role),
                svg: plots::drift_by_feature(d, self.thresholds.psi),
            });
            if !d.output_shares.is_empty() {
                out.push(Plot {
                    file: format!("risk-distribution-{stem}.svg"),
                    title: format!("Predicted risk, {} {} ({})", d.model, d.version, d.role),
                    svg: plots::output_distribution(d),
                });
            }
            if !d.embeddings.is_empty() {
                out.push(Plot {
                    file: format!("embedding-drift-{stem}.svg"),
                    title: format!("Embedding drift, {} {} ({})", d.model, d.version, d.role),
                    svg: plots::embedding_drift(d, self.thresholds.embedding_shift),
                });
            }
        }
        if self.actions.iter().any(|a| a.acceptance_rate.is_some()) {
            out.push(Plot {
                file: "acceptance.svg".into(),
                title: "Acceptance by clinicians".into(),
                svg: plots::acceptance(&self.actions),
            });
        }
        out
    }

    /// The report as Markdown; `image(plot)` gives what stands for a plot (a link to its file,
    /// or the SVG inline).
    fn body(&self, image: &dyn Fn(&Plot) -> String) -> String {
        let plots = self.plots();
        let plot = |file: &str| {
            plots
                .iter()
                .find(|p| p.file == file)
                .map(image)
                .unwrap_or_default()
        };
        let mut md = String::new();
        let _ = writeln!(
            md,
            "# Model monitoring\n\nGenerated {} for the assessments since {}.\n",
            self.generated.format("%Y-%m-%d %H:%M UTC"),
            self.since.format("%Y-%m-%d"),
        );
        md += "## Alerts\n\n";
        if self.alerts.is_empty() {
            md += "No alert is raised.\n\n";
        } else {
            md += "| model | version | alert | what crossed the threshold | filed as |\n|---|---|---|---|---|\n";
            for a in &self.alerts {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} | {} |",
                    escape(&a.model),
                    escape(&a.version),
                    escape(&a.kind),
                    escape(&a.detail),
                    escape(&a.detected_issue)
                );
            }
            md += "\n";
        }
        md += "## Performance on outcomes\n\n";
        md += "| model | version | role | assessments | paired | events | Harrell's C (card) | Uno's C (card) |\n|---|---|---|---|---|---|---|---|\n";
        for p in &self.performance {
            let card = self.card(&p.model, &p.version);
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} ({}) | {} ({}) |",
                escape(&p.model),
                escape(&p.version),
                p.role,
                p.assessments,
                p.paired,
                p.events,
                figure(p.harrell_c),
                figure(card.and_then(|c| c.harrell_c)),
                figure(p.uno_c),
                figure(card.and_then(|c| c.uno_c))
            );
        }
        md += "\n";
        for p in &self.performance {
            let stem = slug(&format!("{}-{}-{}", p.model, p.version, p.role));
            let card = self.card(&p.model, &p.version);
            let _ = writeln!(
                md,
                "### {} {} ({})\n\n| horizon | expected | observed | AUC (card) | Brier | calibration slope (card) | calibration-in-the-large |\n|---|---|---|---|---|---|---|",
                escape(&p.model),
                escape(&p.version),
                p.role
            );
            for h in &p.horizons {
                let on_card = card.and_then(|c| c.horizons.get(&h.label));
                let _ = writeln!(
                    md,
                    "| {} | {:.1} % | {:.1} % | {} ({}) | {} | {} ({}) | {} |",
                    escape(&h.label),
                    100.0 * h.expected,
                    100.0 * h.observed,
                    figure(h.auc),
                    figure(on_card.and_then(|c| c.auc)),
                    figure(h.brier),
                    figure(h.calibration_slope),
                    figure(on_card.and_then(|c| c.calibration_slope)),
                    figure(h.calibration_in_the_large)
                );
            }
            if !p.unusable.is_empty() {
                md += "\nNot paired: ";
                let reasons: Vec<String> = p
                    .unusable
                    .iter()
                    .map(|(why, n)| format!("{n} ({})", escape(why)))
                    .collect();
                md += &reasons.join(", ");
                md += "\n";
            }
            md += "\n";
            md += &plot(&format!("calibration-{stem}.svg"));
            md += &plot(&format!("discrimination-{stem}.svg"));
            md += "\n#### Subgroups\n\n| subgroup | group | paired | events | Harrell's C |\n|---|---|---|---|---|\n";
            for g in &p.subgroups {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} | {} |",
                    escape(&g.column),
                    escape(&g.group),
                    g.paired,
                    g.events,
                    figure(g.harrell_c)
                );
            }
            for (column, gap) in &p.gaps {
                let _ = writeln!(
                    md,
                    "\nLargest gap in Harrell's C between {} groups: {gap:.3}.",
                    escape(column)
                );
            }
            md += "\n";
        }
        md += "## Drift from the training patients\n\n";
        for d in &self.drift {
            let stem = slug(&format!("{}-{}-{}", d.model, d.version, d.role));
            let _ = writeln!(
                md,
                "### {} {} ({}): {} assessments since {}\n\n| input | PSI | missing | missing in training |\n|---|---|---|---|",
                escape(&d.model),
                escape(&d.version),
                d.role,
                d.assessments,
                escape(&d.since)
            );
            for c in &d.inputs {
                let _ = writeln!(
                    md,
                    "| {} | {} | {:.1} % | {} |",
                    escape(&c.input),
                    figure(c.psi),
                    100.0 * c.missing_rate,
                    c.training_missing_rate
                        .map_or("–".into(), |r| format!("{:.1} %", 100.0 * r))
                );
            }
            let _ = writeln!(
                md,
                "\nPredicted risk: PSI {} against the training patients'.\n",
                figure(d.output_psi)
            );
            for e in &d.embeddings {
                let _ = writeln!(
                    md,
                    "Embedding {}: mean shift {:.2} training SDs, spread {:.2} (1 in training), over {} studies or notes.\n",
                    escape(&e.modality),
                    e.shift.mean_shift,
                    e.shift.spread,
                    e.shift.rows
                );
            }
            for (field, values) in &d.acquisition {
                let counts: Vec<String> = values
                    .iter()
                    .map(|(v, n)| format!("{} ({n})", escape(v)))
                    .collect();
                let _ = writeln!(
                    md,
                    "Acquisition {}: {}.\n",
                    escape(field),
                    counts.join(", ")
                );
            }
            md += &plot(&format!("drift-{stem}.svg"));
            md += &plot(&format!("risk-distribution-{stem}.svg"));
            md += &plot(&format!("embedding-drift-{stem}.svg"));
            md += "\n";
        }
        md += "## What clinicians did\n\n| model | version | cards accepted | cards overridden | reports signed | reports disagreed | acceptance | reasons |\n|---|---|---|---|---|---|---|---|\n";
        for a in &self.actions {
            let reasons: Vec<String> = a
                .override_reasons
                .iter()
                .chain(&a.disagree_reasons)
                .map(|(r, n)| format!("{} ({n})", escape(r)))
                .collect();
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                escape(&a.model),
                escape(&a.version),
                a.cards_accepted,
                a.cards_overridden,
                a.reports_signed,
                a.reports_disagreed,
                a.acceptance_rate
                    .map_or("–".into(), |r| format!("{:.0} %", 100.0 * r)),
                reasons.join(", ")
            );
        }
        md += "\n";
        md += &plot("acceptance.svg");
        md
    }

    /// Markdown, each plot linked as its file (write them beside it: [`Self::plots`]).
    pub fn markdown(&self) -> String {
        self.body(&|p: &Plot| format!("![{}]({})\n\n", escape(&p.title), p.file))
    }

    /// One HTML page, the plots inline.
    pub fn html(&self) -> String {
        let body = self.body(&|p: &Plot| format!("\n<figure>{}</figure>\n\n", p.svg));
        let mut html = String::from(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Model monitoring</title><link rel=\"icon\" href=\"data:,\">\n<style>body{font-family:sans-serif;margin:2rem;max-width:70rem;color:#111}table{border-collapse:collapse;margin:0.5rem 0}th,td{border:1px solid #bbb;padding:0.2rem 0.5rem;text-align:left}th{background:#eee}figure{margin:1rem 0}</style>\n</head><body><main>\n",
        );
        html += &markdown_to_html(&body);
        html += "</main></body></html>\n";
        html
    }
}

/// The little Markdown the report writes (headings, tables, paragraphs, inline SVG figures)
/// as HTML; text is escaped where it is written.
fn markdown_to_html(md: &str) -> String {
    let mut html = String::new();
    let mut in_table = false;
    let mut header_row = false;
    for line in md.lines() {
        if line.starts_with('|') {
            if !in_table {
                html += "<table>\n";
                in_table = true;
                header_row = true;
            }
            if line.starts_with("|---") {
                continue;
            }
            let cells: Vec<&str> = line.trim_matches('|').split(" | ").collect();
            let tag = if header_row { "th" } else { "td" };
            html += "<tr>";
            for cell in cells {
                let _ = write!(html, "<{tag}>{}</{tag}>", cell.trim());
            }
            html += "</tr>\n";
            header_row = false;
            continue;
        }
        if in_table {
            html += "</table>\n";
            in_table = false;
        }
        let hashes = line.chars().take_while(|c| *c == '#').count();
        if (1..=4).contains(&hashes) && line[hashes..].starts_with(' ') {
            let _ = writeln!(html, "<h{hashes}>{}</h{hashes}>", &line[hashes + 1..]);
        } else if line.starts_with("<figure>")
            || line.starts_with("<svg")
            || line.starts_with('<')
            || line.starts_with("</")
        {
            html += line;
            html += "\n";
        } else if !line.trim().is_empty() {
            let _ = writeln!(html, "<p>{line}</p>");
        }
    }
    if in_table {
        html += "</table>\n";
    }
    html
}

impl Pipeline {
    /// Everything the monitoring knows about the assessments since `since`, with the alerts
    /// those figures raise (nothing is filed: `evaluate_alerts` files them).
    pub async fn monitoring_report(
        &self,
        since: DateTime<Utc>,
    ) -> Result<MonitoringReport, PipelineError> {
        let thresholds = *self.alert_thresholds();
        let performance = self.monitor_performance_since(Some(since)).await?;
        let window = (Utc::now() - since)
            .num_days()
            .clamp(1, i64::from(u32::MAX)) as u32;
        let drift = self.input_drift(window).await?;
        let actions = self.clinician_actions().await?;
        let alerts = self.alerts_of(&performance, &drift, &actions);
        let registry = self.models();
        let cards = registry
            .models
            .iter()
            .filter_map(|m| {
                let d = &m.model.description;
                Some((
                    format!("{} {}", d.name, d.version),
                    CardFigures::of(m.model.card_data.as_ref()?),
                ))
            })
            .collect();
        Ok(MonitoringReport {
            generated: Utc::now(),
            since,
            performance,
            drift,
            actions,
            alerts,
            cards,
            thresholds,
        })
    }
}
