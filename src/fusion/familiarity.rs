//! A patient's inputs against what the model learnt from: a number outside the training range,
//! a level no training patient had (zero positive nodes for a model of node-positive women),
//! an input unknown where every training patient had it. The first two put the patient outside
//! the training population; the last is a caution.

use super::layout::{ModalityKind, Source};
use super::package::Model;
use crate::features::FeatureSet;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Familiarity {
    /// Inputs outside what the training data held, in words.
    pub outside: Vec<String>,
    /// Categorical columns whose level no training patient had: the network never saw that
    /// pattern of indicators, so the column is better given to it as unknown.
    pub unseen_levels: Vec<String>,
    /// Inputs unknown for the patient that every training patient had.
    pub unknown_but_always_seen: Vec<String>,
}

impl Familiarity {
    pub fn outside_training(&self) -> bool {
        !self.outside.is_empty()
    }

    /// Every caution in words.
    pub fn cautions(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .outside
            .iter()
            .map(|o| format!("outside the model's training data: {o}"))
            .collect();
        if !self.unknown_but_always_seen.is_empty() {
            out.push(format!(
                "not on record, though every training patient had it: {}",
                self.unknown_but_always_seen.join(", ")
            ));
        }
        out
    }
}

fn number(value: f64) -> String {
    let rounded = (value * 100.0).round() / 100.0;
    format!("{rounded}")
}

impl Model {
    /// Compares one patient's features with the training rows' (models trained before the
    /// statistics were kept have none, and nothing is said).
    pub fn familiarity(&self, features: &FeatureSet) -> Familiarity {
        let mut familiarity = Familiarity::default();
        for modality in &self.manifest.layout.modalities {
            if modality.kind != ModalityKind::Tabular {
                continue;
            }
            for feature in &modality.features {
                let (Some(seen), Some(source)) = (&feature.seen, &feature.source) else {
                    continue;
                };
                let Some((value, known)) = features.value(&feature.name) else {
                    continue;
                };
                let value = f64::from(value);
                let column = source.column();
                if !known {
                    if seen.known == seen.rows
                        && !familiarity
                            .unknown_but_always_seen
                            .iter()
                            .any(|c| c == column)
                    {
                        familiarity.unknown_but_always_seen.push(column.to_owned());
                    }
                    continue;
                }
                match (source, seen.range, seen.count) {
                    (Source::Numeric { .. }, Some((low, high)), _)
                        if value < low || value > high =>
                    {
                        familiarity.outside.push(format!(
                            "{column} {} lies outside the training range {} to {}",
                            number(value),
                            number(low),
                            number(high)
                        ));
                    }
                    (Source::Level { level, .. }, _, Some(0)) if value > 0.5 => {
                        familiarity.outside.push(format!(
                            "{column} {level}: no training patient had it, so it was taken as unknown"
                        ));
                        familiarity.unseen_levels.push(column.to_owned());
                    }
                    _ => {}
                }
            }
        }
        familiarity
    }
}
