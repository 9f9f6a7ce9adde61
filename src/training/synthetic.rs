//! A synthetic multimodal cohort whose hazard is known, to check that a model uses every
//! modality and how close it comes to the truth. Deterministic for a seed.
//!
//! Each patient has five independent risk factors, one per modality, and a log hazard that
//! adds them up:
//!
//! | modality | what is generated | effect on the log hazard |
//! |---|---|---|
//! | clinical | age ~ N(62, 10) years; sex (no effect) | +0.03 per year over 62 |
//! | labs | LDH = 200 · exp(0.35 z) U/L, z ~ N(0, 1); albumin ~ N(40, 5) g/L (no effect) | +0.6 z |
//! | genomics | TP53 pathogenic variant, p = 0.3; BRCA2, p = 0.1 (no effect) | +0.9 if TP53 |
//! | notes | a radiology sentence of severity 0, 1 or 2 (p = 0.4, 0.35, 0.25), among paraphrases, after a neutral sentence | +0.6 per step |
//! | imaging | a real DICOM background with a bright disc whose radius is 0.04 + 0.04 (z + 3) of the image's smaller side, z ~ N(0, 1) clipped to ±3 | +0.8 z |
//!
//! Event times are exponential with a baseline hazard of 0.15 per year (times in days);
//! censoring is uniform between 1 and 10 years. A study is an urgent finding when the disc's
//! radius is at least 0.2 (z ≥ 1). Modalities go missing at random: imaging 15 %, notes 15 %,
//! genomics 10 %, labs 10 % of patients. `log_hazard` is the truth (the oracle's risk).

use crate::fusion::Rng;

pub const BASELINE_HAZARD_PER_YEAR: f64 = 0.15;
const DAYS_PER_YEAR: f64 = 365.25;

const NEUTRAL: [&str; 4] = [
    "CT of the chest, abdomen and pelvis with contrast.",
    "Comparison is made with the prior examination.",
    "Follow-up imaging after the last treatment cycle.",
    "Staging examination requested by the oncology clinic.",
];

const SEVERITY: [[&str; 3]; 3] = [
    [
        "No evidence of metastatic disease.",
        "No suspicious lesion is seen; findings are reassuring.",
        "Complete response without residual disease.",
    ],
    [
        "A few small indeterminate nodules, stable in size.",
        "Stable disease with minor residual nodularity.",
        "Small lymph nodes of uncertain significance, unchanged.",
    ],
    [
        "Extensive metastatic disease with marked progression.",
        "Numerous new liver and bone metastases, rapidly enlarging.",
        "Widespread disease progression with new pleural effusion.",
    ],
];

/// A disc painted on a background image.
#[derive(Debug, Clone, PartialEq)]
pub struct Lesion {
    /// Index of the background image.
    pub background: usize,
    /// Centre, as fractions of the width and height.
    pub centre: (f64, f64),
    /// Radius as a fraction of the image's smaller side.
    pub radius: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticPatient {
    pub id: String,
    pub age: f64,
    pub female: bool,
    pub ldh: Option<f64>,
    pub albumin: Option<f64>,
    pub tp53: Option<bool>,
    pub brca2: Option<bool>,
    pub note: Option<String>,
    pub lesion: Option<Lesion>,
    /// Urgent finding (known only when there is an image).
    pub urgent: Option<bool>,
    pub log_hazard: f64,
    /// Days.
    pub time: f64,
    pub event: bool,
}

pub fn generate(patients: usize, backgrounds: usize, seed: u64) -> Vec<SyntheticPatient> {
    let mut rng = Rng::derive(seed, 500);
    (0..patients)
        .map(|i| {
            let age = 62.0 + 10.0 * rng.normal();
            let female = rng.uniform() < 0.5;
            let z_lab = rng.normal();
            let albumin = 40.0 + 5.0 * rng.normal();
            let tp53 = rng.uniform() < 0.3;
            let brca2 = rng.uniform() < 0.1;
            let u = rng.uniform();
            let severity = if u < 0.4 {
                0
            } else if u < 0.75 {
                1
            } else {
                2
            };
            let note = format!(
                "{} {}",
                NEUTRAL[rng.below(NEUTRAL.len())],
                SEVERITY[severity][rng.below(3)]
            );
            let z_img = rng.normal().clamp(-3.0, 3.0);
            let lesion = Lesion {
                background: i % backgrounds.max(1),
                centre: (0.3 + 0.4 * rng.uniform(), 0.3 + 0.4 * rng.uniform()),
                radius: 0.04 + 0.04 * (z_img + 3.0),
            };
            let log_hazard = 0.03 * (age - 62.0)
                + 0.6 * z_lab
                + if tp53 { 0.9 } else { 0.0 }
                + 0.6 * severity as f64
                + 0.8 * z_img;
            let rate = BASELINE_HAZARD_PER_YEAR / DAYS_PER_YEAR * log_hazard.exp();
            let event_time = -(1.0 - rng.uniform()).ln() / rate;
            let censoring = DAYS_PER_YEAR * (1.0 + 9.0 * rng.uniform());
            let mut keep = |p: f64| rng.uniform() >= p;
            let (has_image, has_note, has_genomics, has_labs) =
                (keep(0.15), keep(0.15), keep(0.10), keep(0.10));
            SyntheticPatient {
                id: format!("synthetic-{i:05}"),
                age,
                female,
                ldh: has_labs.then(|| 200.0 * (0.35 * z_lab).exp()),
                albumin: has_labs.then_some(albumin),
                tp53: has_genomics.then_some(tp53),
                brca2: has_genomics.then_some(brca2),
                note: has_note.then_some(note),
                urgent: has_image.then_some(z_img >= 1.0),
                lesion: has_image.then_some(lesion),
                log_hazard,
                time: event_time.min(censoring).max(1.0),
                event: event_time <= censoring,
            }
        })
        .collect()
}

/// Paints `lesion` on a frame (`rows × columns × channels`, values in [0, 1]): a bright disc
/// with a soft edge two pixels wide.
pub fn paint_lesion(
    values: &mut [f32],
    rows: usize,
    columns: usize,
    channels: usize,
    lesion: &Lesion,
) {
    let side = rows.min(columns) as f64;
    let radius = lesion.radius * side;
    let (cx, cy) = (
        lesion.centre.0 * columns as f64,
        lesion.centre.1 * rows as f64,
    );
    for y in 0..rows {
        for x in 0..columns {
            let d = ((x as f64 + 0.5 - cx).powi(2) + (y as f64 + 0.5 - cy).powi(2)).sqrt();
            let weight = ((radius + 1.0 - d) / 2.0).clamp(0.0, 1.0) as f32;
            if weight > 0.0 {
                for c in 0..channels {
                    let v = &mut values[(y * columns + x) * channels + c];
                    *v = *v * (1.0 - weight) + 0.95 * weight;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::survival::harrell_c;

    #[test]
    fn the_cohort_is_deterministic_and_its_hazard_orders_the_events() {
        let a = generate(2000, 3, 5);
        assert_eq!(a, generate(2000, 3, 5));
        assert_ne!(a[0], generate(1, 3, 6)[0]);
        let time: Vec<f64> = a.iter().map(|p| p.time).collect();
        let event: Vec<bool> = a.iter().map(|p| p.event).collect();
        let risk: Vec<f64> = a.iter().map(|p| p.log_hazard).collect();
        let events = event.iter().filter(|&&e| e).count();
        assert!((600..1600).contains(&events), "{events} events");
        let oracle = harrell_c(&time, &event, &risk).unwrap().c_index;
        assert!(oracle > 0.75, "oracle {oracle}");
        let missing_images = a.iter().filter(|p| p.lesion.is_none()).count();
        assert!((200..400).contains(&missing_images), "{missing_images}");
    }

    #[test]
    fn a_lesion_is_a_bright_disc_of_its_radius() {
        let mut frame = vec![0.1f32; 100 * 100];
        let lesion = Lesion {
            background: 0,
            centre: (0.5, 0.5),
            radius: 0.2,
        };
        paint_lesion(&mut frame, 100, 100, 1, &lesion);
        let bright = frame.iter().filter(|&&v| v > 0.5).count() as f64;
        let area = std::f64::consts::PI * 20.0 * 20.0;
        assert!((bright - area).abs() / area < 0.1, "{bright} vs {area}");
        assert!(frame[50 * 100 + 50] > 0.9 && frame[0] < 0.2);
    }
}
