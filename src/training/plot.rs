//! The reliability diagram as SVG: per horizon, mean predicted probability against the
//! observed (censoring-weighted) share of events in bins of patients, with the diagonal of
//! perfect calibration.

use super::metrics::Metrics;

const SIZE: f64 = 360.0;
const MARGIN: f64 = 48.0;
const COLOURS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
];

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

pub fn reliability_svg(metrics: &Metrics, title: &str) -> String {
    let x = |p: f64| MARGIN + p.clamp(0.0, 1.0) * SIZE;
    let y = |p: f64| MARGIN + (1.0 - p.clamp(0.0, 1.0)) * SIZE;
    let width = SIZE + 2.0 * MARGIN + 150.0;
    let height = SIZE + 2.0 * MARGIN;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"12\">\n"
    );
    svg += &format!(
        "<title>Reliability: {}</title>\n<rect x=\"{MARGIN}\" y=\"{MARGIN}\" width=\"{SIZE}\" height=\"{SIZE}\" fill=\"none\" stroke=\"#333\"/>\n",
        escape(title)
    );
    for tick in 0..=5 {
        let p = f64::from(tick) / 5.0;
        svg += &format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{p:.1}</text>\n<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{p:.1}</text>\n",
            x(p),
            MARGIN + SIZE + 16.0,
            MARGIN - 6.0,
            y(p) + 4.0
        );
    }
    svg += &format!(
        "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#999\" stroke-dasharray=\"4 4\"/>\n",
        x(0.0),
        y(0.0),
        x(1.0),
        y(1.0)
    );
    svg += &format!(
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">predicted probability of the event</text>\n<text transform=\"translate(14 {:.1}) rotate(-90)\" text-anchor=\"middle\">observed share</text>\n",
        MARGIN + SIZE / 2.0,
        height - 8.0,
        MARGIN + SIZE / 2.0
    );
    for (k, horizon) in metrics.horizons.iter().enumerate() {
        let colour = COLOURS[k % COLOURS.len()];
        let points: Vec<String> = horizon
            .reliability
            .iter()
            .map(|b| format!("{:.1},{:.1}", x(b.predicted), y(b.observed)))
            .collect();
        if points.is_empty() {
            continue;
        }
        svg += &format!(
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"/>\n",
            points.join(" ")
        );
        for b in &horizon.reliability {
            svg += &format!(
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{colour}\"><title>{} patients</title></circle>\n",
                x(b.predicted),
                y(b.observed),
                b.count
            );
        }
        let legend_y = MARGIN + 16.0 + 18.0 * k as f64;
        svg += &format!(
            "<line x1=\"{:.1}\" y1=\"{legend_y:.1}\" x2=\"{:.1}\" y2=\"{legend_y:.1}\" stroke=\"{colour}\" stroke-width=\"2\"/><text x=\"{:.1}\" y=\"{:.1}\">{}</text>\n",
            MARGIN + SIZE + 16.0,
            MARGIN + SIZE + 36.0,
            MARGIN + SIZE + 42.0,
            legend_y + 4.0,
            escape(&horizon.label)
        );
    }
    svg += "</svg>\n";
    svg
}
