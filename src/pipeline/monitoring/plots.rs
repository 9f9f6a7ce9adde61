//! The monitoring's plots, drawn here as SVG (no script, no external resource): the
//! calibration curve by horizon, discrimination over time against the card's, the drift of
//! each input, the predicted risk against the training patients', and what clinicians did.

use std::fmt::Write as _;

use super::{ClinicianActions, InputDrift, ModelPerformance};

const WIDTH: f64 = 560.0;
const HEIGHT: f64 = 300.0;
const LEFT: f64 = 150.0;
const TOP: f64 = 36.0;
const BOTTOM: f64 = 44.0;
const RIGHT: f64 = 24.0;
const COLOURS: [&str; 5] = ["#1f5fa8", "#b2182b", "#1b7837", "#6a3d9a", "#b35806"];

/// Text for SVG and HTML.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn open(title: &str, height: f64) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" width=\"{WIDTH}\" height=\"{height}\" viewBox=\"0 0 {WIDTH} {height}\" font-family=\"sans-serif\" font-size=\"12\" aria-label=\"{t}\">\n<title>{t}</title>\n<text x=\"{x}\" y=\"18\" font-size=\"14\" font-weight=\"bold\">{t}</text>\n",
        t = escape(title),
        x = 8.0,
    )
}

/// A square plot area with axes from 0 to `max` on both; returns (svg so far, x, y mappers).
fn axes(svg: &mut String, x_label: &str, y_label: &str, x_max: f64, y_max: f64) {
    let (w, h) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
    let _ = writeln!(
        svg,
        "<rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{w}\" height=\"{h}\" fill=\"none\" stroke=\"#333\"/>"
    );
    for tick in 0..=4 {
        let f = f64::from(tick) / 4.0;
        let _ = writeln!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{:.2}</text><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{:.2}</text>",
            LEFT + f * w,
            TOP + h + 16.0,
            f * x_max,
            LEFT - 6.0,
            TOP + (1.0 - f) * h + 4.0,
            f * y_max
        );
    }
    let _ = writeln!(
        svg,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text><text transform=\"translate({:.1} {:.1}) rotate(-90)\" text-anchor=\"middle\">{}</text>",
        LEFT + w / 2.0,
        HEIGHT - 8.0,
        escape(x_label),
        LEFT - 44.0,
        TOP + h / 2.0,
        escape(y_label)
    );
}

fn point(x: f64, y: f64, x_max: f64, y_max: f64) -> (f64, f64) {
    let (w, h) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
    (
        LEFT + (x / x_max).clamp(0.0, 1.0) * w,
        TOP + (1.0 - (y / y_max).clamp(0.0, 1.0)) * h,
    )
}

fn legend(svg: &mut String, k: usize, colour: &str, label: &str) {
    let y = TOP + 14.0 + 16.0 * k as f64;
    let _ = writeln!(
        svg,
        "<line x1=\"{:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"{colour}\" stroke-width=\"2\"/><text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
        LEFT + 10.0,
        LEFT + 28.0,
        LEFT + 32.0,
        y + 4.0,
        escape(label)
    );
}

/// Observed against expected by risk decile, one line per horizon, with the diagonal.
pub fn calibration(p: &ModelPerformance) -> String {
    let title = format!("Calibration: {} {} ({})", p.model, p.version, p.role);
    let mut svg = open(&title, HEIGHT);
    let top = p
        .horizons
        .iter()
        .flat_map(|h| &h.deciles)
        .map(|b| b.predicted.max(b.observed))
        .fold(0.1f64, f64::max)
        .min(1.0);
    axes(
        &mut svg,
        "predicted probability of the event",
        "observed share",
        top,
        top,
    );
    let (x0, y0) = point(0.0, 0.0, top, top);
    let (x1, y1) = point(top, top, top, top);
    let _ = writeln!(
        svg,
        "<line x1=\"{x0:.1}\" y1=\"{y0:.1}\" x2=\"{x1:.1}\" y2=\"{y1:.1}\" stroke=\"#999\" stroke-dasharray=\"4 4\"/>"
    );
    for (k, h) in p.horizons.iter().enumerate() {
        let colour = COLOURS[k % COLOURS.len()];
        let points: Vec<String> = h
            .deciles
            .iter()
            .map(|b| {
                let (x, y) = point(b.predicted, b.observed, top, top);
                format!("{x:.1},{y:.1}")
            })
            .collect();
        if points.is_empty() {
            continue;
        }
        let _ = writeln!(
            svg,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"/>",
            points.join(" ")
        );
        for b in &h.deciles {
            let (x, y) = point(b.predicted, b.observed, top, top);
            let _ = writeln!(
                svg,
                "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"3\" fill=\"{colour}\"><title>{} patients</title></circle>",
                b.count
            );
        }
        legend(&mut svg, k, colour, &h.label);
    }
    svg + "</svg>\n"
}

/// Harrell's C by quarter, with the card's as a dashed line.
pub fn discrimination_over_time(p: &ModelPerformance, card_c: Option<f64>) -> String {
    let title = format!(
        "Discrimination over time: {} {} ({})",
        p.model, p.version, p.role
    );
    let mut svg = open(&title, HEIGHT);
    let n = p.windows.len().max(1) as f64;
    axes(&mut svg, "quarter of the assessment", "Harrell's C", n, 1.0);
    if let Some(c) = card_c {
        let (x0, y) = point(0.0, c, n, 1.0);
        let (x1, _) = point(n, c, n, 1.0);
        let _ = writeln!(
            svg,
            "<line x1=\"{x0:.1}\" y1=\"{y:.1}\" x2=\"{x1:.1}\" y2=\"{y:.1}\" stroke=\"#999\" stroke-dasharray=\"4 4\"/>"
        );
        legend(&mut svg, 1, "#999", &format!("model card {c:.3}"));
    }
    let mut points = Vec::new();
    for (k, w) in p.windows.iter().enumerate() {
        let (x, _) = point(k as f64 + 0.5, 0.0, n, 1.0);
        let _ = writeln!(
            svg,
            "<text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"10\">{}</text>",
            HEIGHT - BOTTOM + 28.0,
            escape(&w.window)
        );
        if let Some(c) = w.harrell_c {
            let (x, y) = point(k as f64 + 0.5, c, n, 1.0);
            points.push(format!("{x:.1},{y:.1}"));
            let _ = writeln!(
                svg,
                "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"4\" fill=\"{}\"><title>{}: {c:.3} on {} paired, {} events</title></circle>",
                COLOURS[0],
                escape(&w.window),
                w.paired,
                w.events
            );
        }
    }
    if points.len() > 1 {
        let _ = writeln!(
            svg,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\"/>",
            points.join(" "),
            COLOURS[0]
        );
    }
    legend(&mut svg, 0, COLOURS[0], "on outcomes since");
    svg + "</svg>\n"
}

/// Horizontal bars, one per label, with a threshold line.
fn bars(title: &str, rows: &[(String, f64)], threshold: Option<f64>, x_label: &str) -> String {
    let height = TOP + BOTTOM + 22.0 * rows.len().max(1) as f64;
    let mut svg = open(title, height);
    let top = rows
        .iter()
        .map(|r| r.1)
        .fold(threshold.map_or(1.0, |t| t * 1.5), f64::max)
        .max(1e-9);
    let w = WIDTH - LEFT - RIGHT;
    for (k, (label, value)) in rows.iter().enumerate() {
        let y = TOP + 22.0 * k as f64;
        let over = threshold.is_some_and(|t| *value > t);
        let _ = writeln!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text><rect x=\"{LEFT}\" y=\"{:.1}\" width=\"{:.1}\" height=\"16\" fill=\"{}\"><title>{}: {value:.3}</title></rect><text x=\"{:.1}\" y=\"{:.1}\">{value:.2}</text>",
            LEFT - 6.0,
            y + 12.0,
            escape(label),
            y,
            (value / top).clamp(0.0, 1.0) * w,
            if over { COLOURS[1] } else { COLOURS[0] },
            escape(label),
            LEFT + (value / top).clamp(0.0, 1.0) * w + 4.0,
            y + 12.0
        );
    }
    let bottom = height - BOTTOM + 4.0;
    if let Some(threshold) = threshold {
        let x = LEFT + (threshold / top).clamp(0.0, 1.0) * w;
        let _ = writeln!(
            svg,
            "<line x1=\"{x:.1}\" y1=\"{TOP}\" x2=\"{x:.1}\" y2=\"{bottom:.1}\" stroke=\"#333\" stroke-dasharray=\"4 4\"/><text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">alert above {threshold}</text>",
            bottom + 14.0,
        );
    }
    let _ = writeln!(
        svg,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
        LEFT + w / 2.0,
        height - 6.0,
        escape(x_label)
    );
    svg + "</svg>\n"
}

/// The population stability index of each input and of the predicted risk.
pub fn drift_by_feature(d: &InputDrift, psi_threshold: f64) -> String {
    let mut rows: Vec<(String, f64)> = d
        .inputs
        .iter()
        .filter_map(|c| Some((c.input.clone(), c.psi?)))
        .collect();
    if let Some(psi) = d.output_psi {
        rows.push(("predicted risk".into(), psi));
    }
    bars(
        &format!(
            "Drift by input: {} {} ({}), {} assessments",
            d.model, d.version, d.role, d.assessments
        ),
        &rows,
        Some(psi_threshold),
        "population stability index against the training patients",
    )
}

/// The embeddings' shift from the training patients'.
pub fn embedding_drift(d: &InputDrift, threshold: f64) -> String {
    let rows: Vec<(String, f64)> = d
        .embeddings
        .iter()
        .map(|e| (e.modality.clone(), e.shift.mean_shift))
        .collect();
    bars(
        &format!("Embedding drift: {} {} ({})", d.model, d.version, d.role),
        &rows,
        Some(threshold),
        "mean shift, in training standard deviations",
    )
}

/// The predicted risk's distribution in the training patients' deciles: training and recent.
pub fn output_distribution(d: &InputDrift) -> String {
    let title = format!(
        "Predicted risk against the training patients': {} {} ({})",
        d.model, d.version, d.role
    );
    let mut svg = open(&title, HEIGHT);
    let n = d.output_shares.len().max(1) as f64;
    let top = d
        .output_shares
        .iter()
        .map(|(a, b)| a.max(*b))
        .fold(0.1f64, f64::max);
    axes(
        &mut svg,
        "training risk decile (lowest to highest)",
        "share of patients",
        n,
        top,
    );
    for (k, (training, recent)) in d.output_shares.iter().enumerate() {
        for (offset, value, colour) in [(0.1, training, "#999"), (0.5, recent, COLOURS[0])] {
            let (x, y) = point(k as f64 + offset, *value, n, top);
            let (_, y0) = point(0.0, 0.0, n, top);
            let (x1, _) = point(k as f64 + offset + 0.4, 0.0, n, top);
            let _ = writeln!(
                svg,
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{colour}\"><title>decile {}: {:.1} %</title></rect>",
                x1 - x,
                y0 - y,
                k + 1,
                100.0 * value
            );
        }
    }
    legend(&mut svg, 0, "#999", "training patients");
    legend(&mut svg, 1, COLOURS[0], "recent assessments");
    svg + "</svg>\n"
}

/// Acceptance and override counts per model version.
pub fn acceptance(actions: &[ClinicianActions]) -> String {
    let rows: Vec<(String, f64)> = actions
        .iter()
        .filter_map(|a| Some((format!("{} {}", a.model, a.version), a.acceptance_rate?)))
        .collect();
    bars(
        "Acceptance by clinicians (cards accepted and reports signed, of those answered)",
        &rows,
        None,
        "acceptance rate",
    )
}
