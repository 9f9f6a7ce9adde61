//! What is known about one patient, read out of FHIR R4 resources whatever their source (an
//! EHR pull, HL7 v2 feeds filed as FHIR, resources posted to the service): demographics,
//! measurements, coded results (tumour markers, menopausal status, grade), the TNM stage group,
//! genomic variants, treatments given, note texts and imaging studies, each with the resource it came from and when it was observed.
//! Resources that are entered in error, cancelled or withdrawn are left out; what could not be
//! read is listed in `skipped` with the reason.

use std::collections::BTreeSet;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;

use super::notes::attachment_text;
use super::treatments::{Treatment, read_treatment};
use crate::fhir::codes::{self, StageKind};
use crate::fhir::date::parse_date_range;
use crate::fhir::json::{codes_of, codings, reference};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sex {
    Female,
    Male,
    Other,
}

/// A numeric result (`valueQuantity`, or a numeric component of a single-valued panel).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Measurement {
    /// `Observation/{id}`.
    pub source: String,
    /// Its LOINC codes.
    pub codes: Vec<String>,
    pub value: f64,
    /// UCUM code, or the unit as written when there is none.
    pub unit: Option<String>,
    pub effective: Option<DateTime<Utc>>,
}

/// A result with a coded answer (receptor status, presence).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CodedResult {
    pub source: String,
    pub codes: Vec<String>,
    /// Codes of the answer (`valueCodeableConcept`) and of `interpretation`.
    pub answer: Vec<String>,
    /// The answer in words (its text, else its first display).
    pub answer_text: Option<String>,
    pub effective: Option<DateTime<Utc>>,
}

impl CodedResult {
    /// true for a positive answer, false for a negative one, None otherwise.
    pub fn positive(&self) -> Option<bool> {
        if self
            .answer
            .iter()
            .any(|a| codes::POSITIVE.contains(&a.as_str()))
        {
            Some(true)
        } else if self
            .answer
            .iter()
            .any(|a| codes::NEGATIVE.contains(&a.as_str()))
        {
            Some(false)
        } else {
            None
        }
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StageGroup {
    pub source: String,
    pub kind: StageKind,
    /// 0 to 4.
    pub group: u8,
    pub letter: Option<char>,
    pub effective: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Variant {
    pub source: String,
    /// HGNC symbol (`BRCA1`), or the HGNC id when no symbol is given.
    pub gene: Option<String>,
    pub dna_change: Option<String>,
    pub amino_acid_change: Option<String>,
    /// Clinical-significance answer code (LOINC LL4034-6), when stated.
    pub significance: Option<String>,
    /// Found (LA9633-4) rather than reported absent (LA9634-2).
    pub present: bool,
}

impl Variant {
    /// A variant that makes its gene count as affected: present, and not classified as
    /// benign, likely benign or of uncertain significance.
    pub fn affects_gene(&self) -> bool {
        self.present
            && self
                .significance
                .as_deref()
                .is_none_or(|s| !codes::NOT_PATHOGENIC.contains(&s))
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Note {
    /// `DocumentReference/{id}` or `DiagnosticReport/{id}`.
    pub source: String,
    pub date: Option<DateTime<Utc>>,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StudyRef {
    pub source: String,
    /// The DICOM Study Instance UID, from `identifier` (`urn:dicom:uid`).
    pub study_uid: Option<String>,
    pub started: Option<DateTime<Utc>>,
}

/// A coding: its system (when stated) and code.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Coding {
    pub system: Option<String>,
    pub code: String,
}

impl Coding {
    /// The codings of a CodeableConcept.
    pub fn of(concept: &Value) -> Vec<Coding> {
        codings(concept)
            .filter_map(|c| {
                Some(Coding {
                    system: c.get("system").and_then(Value::as_str).map(str::to_owned),
                    code: c.get("code")?.as_str()?.to_owned(),
                })
            })
            .collect()
    }
}

/// A diagnosis on record (a Condition neither refuted nor entered in error).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Diagnosis {
    pub source: String,
    pub code: Vec<Coding>,
    /// `onset[x]` (the start of a period or range); none when only an age or words are given.
    pub onset: Option<DateTime<Utc>>,
    pub recorded: Option<DateTime<Utc>>,
}

impl Diagnosis {
    /// When it was diagnosed, as well as the record says: the onset, else the recorded date.
    pub fn date(&self) -> Option<DateTime<Utc>> {
        self.onset.or(self.recorded)
    }
}

/// Something read but not usable, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Skipped {
    pub source: String,
    pub reason: String,
}

/// What is known about one patient.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PatientContext {
    /// `Patient/{id}`.
    pub patient: String,
    pub birth_date: Option<NaiveDate>,
    pub sex: Option<Sex>,
    /// `Patient.deceased[x]`: died (with the date when given).
    pub deceased: Option<Option<DateTime<Utc>>>,
    /// Diagnoses on record (Conditions).
    pub diagnoses: Vec<Diagnosis>,
    pub measurements: Vec<Measurement>,
    pub coded_results: Vec<CodedResult>,
    /// Every stage group found, latest first (pathologic before clinical on the same day).
    pub stage_groups: Vec<StageGroup>,
    pub variants: Vec<Variant>,
    /// Genes covered by a genomic study of the patient (variants found, reported absent, or a
    /// region studied): only for these does "no variant" mean "not affected".
    pub genes_studied: BTreeSet<String>,
    pub notes: Vec<Note>,
    pub imaging_studies: Vec<StudyRef>,
    /// Medications and procedures on record, given or explicitly not given.
    pub treatments: Vec<Treatment>,
    pub skipped: Vec<Skipped>,
}

/// Age in years on `at` of someone born on `born` (the one definition the model inputs, the
/// population's age criterion and levels derived from age share).
pub fn age_in_years(born: NaiveDate, at: NaiveDate) -> f64 {
    (at - born).num_days() as f64 / 365.2425
}

pub(super) fn instant(value: Option<&Value>) -> Option<DateTime<Utc>> {
    let range = parse_date_range(value?.as_str()?)?;
    DateTime::from_timestamp_millis(range.start_ms)
}

/// When an Observation was made: effective[x], else `issued`.
fn effective(resource: &Value) -> Option<DateTime<Utc>> {
    instant(resource.get("effectiveDateTime"))
        .or_else(|| instant(resource.get("effectiveInstant")))
        .or_else(|| instant(resource.pointer("/effectivePeriod/start")))
        .or_else(|| instant(resource.get("issued")))
}

/// Statuses whose resources are not facts.
fn withdrawn(resource: &Value) -> bool {
    matches!(
        resource.get("status").and_then(Value::as_str),
        Some("entered-in-error" | "cancelled" | "superseded")
    )
}

impl PatientContext {
    /// Reads the patient and the resources about them (any order, any mix of types; types the
    /// context does not use are ignored).
    pub fn from_resources<'a>(
        patient: &Value,
        resources: impl IntoIterator<Item = &'a Value>,
    ) -> PatientContext {
        let mut context = PatientContext {
            patient: reference(patient),
            birth_date: patient
                .get("birthDate")
                .and_then(Value::as_str)
                .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok()),
            sex: match patient.get("gender").and_then(Value::as_str) {
                Some("female") => Some(Sex::Female),
                Some("male") => Some(Sex::Male),
                Some("other") => Some(Sex::Other),
                _ => None,
            },
            deceased: match (
                patient.get("deceasedBoolean"),
                patient.get("deceasedDateTime"),
            ) {
                (Some(Value::Bool(true)), _) => Some(None),
                (_, Some(date)) => Some(instant(Some(date))),
                _ => None,
            },
            ..PatientContext::default()
        };
        let mut condition_stages = Vec::new();
        for resource in resources {
            if withdrawn(resource) {
                context.skipped.push(Skipped {
                    source: reference(resource),
                    reason: format!("status {}", resource["status"].as_str().unwrap_or_default()),
                });
                continue;
            }
            match resource.get("resourceType").and_then(Value::as_str) {
                Some("Observation") => context.observation(resource),
                Some("DocumentReference") => {
                    let date = instant(resource.get("date"));
                    for content in resource
                        .get("content")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        context.note(resource, &content["attachment"], date);
                    }
                }
                Some("DiagnosticReport") => {
                    let date = effective(resource);
                    for form in resource
                        .get("presentedForm")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        context.note(resource, form, date);
                    }
                }
                Some("ImagingStudy") => context.imaging_studies.push(StudyRef {
                    source: reference(resource),
                    study_uid: resource
                        .get("identifier")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .find(|i| i["system"] == "urn:dicom:uid")
                        .and_then(|i| i["value"].as_str())
                        .map(|v| v.trim_start_matches("urn:oid:").to_owned()),
                    started: instant(resource.get("started")),
                }),
                Some("Condition") => {
                    let verification = codes_of(&resource["verificationStatus"]);
                    if verification
                        .iter()
                        .any(|v| v == "refuted" || v == "entered-in-error")
                    {
                        context.skipped.push(Skipped {
                            source: reference(resource),
                            reason: format!("verification status {}", verification.join(", ")),
                        });
                        continue;
                    }
                    context.diagnoses.push(Diagnosis {
                        source: reference(resource),
                        code: Coding::of(&resource["code"]),
                        onset: instant(resource.get("onsetDateTime"))
                            .or_else(|| instant(resource.pointer("/onsetPeriod/start"))),
                        recorded: instant(resource.get("recordedDate")),
                    });
                    // A stage summary on the Condition itself: used when no stage-group
                    // Observation is found.
                    for stage in resource
                        .get("stage")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        if let Some((group, letter)) = describe(&stage["summary"])
                            .as_deref()
                            .and_then(codes::parse_stage_group)
                        {
                            condition_stages.push(StageGroup {
                                source: reference(resource),
                                kind: StageKind::Unspecified,
                                group,
                                letter,
                                effective: instant(resource.get("recordedDate"))
                                    .or_else(|| instant(resource.get("onsetDateTime"))),
                            });
                        }
                    }
                }
                _ => match read_treatment(&reference(resource), resource) {
                    Ok(Some(treatment)) => context.treatments.push(treatment),
                    Ok(None) => {}
                    Err(reason) => context.skipped.push(Skipped {
                        source: reference(resource),
                        reason,
                    }),
                },
            }
        }
        if context.stage_groups.is_empty() {
            context.stage_groups = condition_stages;
        }
        context
            .stage_groups
            .sort_by_key(|s| std::cmp::Reverse((s.effective, s.kind)));
        context
    }

    fn observation(&mut self, resource: &Value) {
        let source = reference(resource);
        let code = codes_of(&resource["code"]);
        let effective = effective(resource);
        if code.iter().any(|c| c == codes::VARIANT) {
            self.variant(resource, source);
            return;
        }
        if code.iter().any(|c| c == codes::REGION_STUDIED) {
            self.genes_studied.extend(component_genes(resource));
            return;
        }
        if let Some((_, kind)) = codes::STAGE_GROUPS
            .iter()
            .find(|(c, _)| code.iter().any(|own| own == c))
        {
            match describe(&resource["valueCodeableConcept"])
                .as_deref()
                .and_then(codes::parse_stage_group)
            {
                Some((group, letter)) => self.stage_groups.push(StageGroup {
                    source,
                    kind: *kind,
                    group,
                    letter,
                    effective,
                }),
                None => self.skipped.push(Skipped {
                    source,
                    reason: "a stage group whose value names no stage".into(),
                }),
            }
            return;
        }
        if let Some(quantity) = resource.get("valueQuantity") {
            self.measurement(source, code, quantity, effective);
        } else if let Some(count) = resource.get("valueInteger").and_then(Value::as_i64) {
            // A count (positive lymph nodes): a number of unit 1.
            self.measurements.push(Measurement {
                source,
                codes: code,
                value: count as f64,
                unit: Some("1".into()),
                effective,
            });
        } else if resource.get("component").is_some()
            && !resource
                .as_object()
                .is_some_and(|o| o.keys().any(|k| k.starts_with("value")))
        {
            // A panel of numeric components (tumour size: its axes; blood pressure). Each is a
            // measurement under its own code; a single one also under the panel's code.
            let numeric: Vec<&Value> = resource["component"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|c| c.get("valueQuantity").is_some())
                .collect();
            let single = numeric.len() == 1;
            for component in numeric {
                let mut codes = codes_of(&component["code"]);
                if single {
                    codes.extend(code.iter().cloned());
                }
                self.measurement(
                    source.clone(),
                    codes,
                    &component["valueQuantity"],
                    effective,
                );
            }
        } else if let Some(concept) = resource.get("valueCodeableConcept") {
            let answer_text = describe(concept);
            let mut answer = codes_of(concept);
            for interpretation in resource
                .get("interpretation")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                answer.extend(codes_of(interpretation));
            }
            self.coded_results.push(CodedResult {
                source,
                codes: code,
                answer,
                answer_text,
                effective,
            });
        }
    }

    fn measurement(
        &mut self,
        source: String,
        codes: Vec<String>,
        quantity: &Value,
        effective: Option<DateTime<Utc>>,
    ) {
        match quantity.get("value").and_then(Value::as_f64) {
            Some(value) => self.measurements.push(Measurement {
                source,
                codes,
                value,
                // The UCUM code when the system is UCUM (or unstated); else the unit as written.
                unit: quantity
                    .get("code")
                    .filter(|_| {
                        quantity
                            .get("system")
                            .and_then(Value::as_str)
                            .is_none_or(|s| s == "http://unitsofmeasure.org")
                    })
                    .or_else(|| quantity.get("unit"))
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                effective,
            }),
            None => self.skipped.push(Skipped {
                source,
                reason: "a valueQuantity without a value".into(),
            }),
        }
    }

    fn variant(&mut self, resource: &Value, source: String) {
        let component = |loinc: &str| {
            resource
                .get("component")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .find(|c| codes_of(&c["code"]).iter().any(|own| own == loinc))
        };
        let text = |loinc: &str| {
            component(loinc).and_then(|c| {
                c.get("valueString")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .or_else(|| describe_code(&c["valueCodeableConcept"]))
            })
        };
        let gene =
            component(codes::GENE_STUDIED).and_then(|c| gene_symbol(&c["valueCodeableConcept"]));
        let present = !codes_of(&resource["valueCodeableConcept"])
            .iter()
            .any(|a| a == codes::ABSENT);
        if let Some(gene) = &gene {
            self.genes_studied.insert(gene.clone());
        }
        self.variants.push(Variant {
            source,
            gene,
            dna_change: text(codes::DNA_CHANGE).or_else(|| text(codes::GENOMIC_DNA_CHANGE)),
            amino_acid_change: text(codes::AMINO_ACID_CHANGE),
            significance: component(codes::CLINICAL_SIGNIFICANCE)
                .and_then(|c| codes_of(&c["valueCodeableConcept"]).into_iter().next()),
            present,
        });
    }

    fn note(&mut self, resource: &Value, attachment: &Value, date: Option<DateTime<Utc>>) {
        let source = reference(resource);
        match attachment_text(attachment) {
            Ok(text) => self.notes.push(Note { source, date, text }),
            Err(e) => self.skipped.push(Skipped {
                source,
                reason: format!("an attachment gave no text: {e}"),
            }),
        }
    }
}

/// Genes named by the gene-studied components of a region-studied Observation.
fn component_genes(resource: &Value) -> Vec<String> {
    resource
        .get("component")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|c| {
            codes_of(&c["code"])
                .iter()
                .any(|own| own == codes::GENE_STUDIED)
        })
        .flat_map(|c| codings(&c["valueCodeableConcept"]).filter_map(coding_symbol))
        .collect()
}

fn coding_symbol(coding: &Value) -> Option<String> {
    coding
        .get("display")
        .and_then(Value::as_str)
        .or_else(|| coding.get("code").and_then(Value::as_str))
        .map(|s| s.trim().to_owned())
}

/// The HGNC symbol of a gene concept: its display (`PALB2`), else the code (`HGNC:26144`).
fn gene_symbol(concept: &Value) -> Option<String> {
    coding_symbol(codings(concept).next()?)
}

/// A concept's code (for HGVS expressions, which are codes), else its display or text.
fn describe_code(concept: &Value) -> Option<String> {
    let coding = codings(concept).next();
    coding
        .and_then(|c| c.get("code").and_then(Value::as_str))
        .or_else(|| coding.and_then(|c| c.get("display").and_then(Value::as_str)))
        .or_else(|| concept.get("text").and_then(Value::as_str))
        .map(str::to_owned)
}

/// A concept's words: its text, else the first display; else its code.
fn describe(concept: &Value) -> Option<String> {
    concept
        .get("text")
        .and_then(Value::as_str)
        .or_else(|| codings(concept).find_map(|c| c.get("display").and_then(Value::as_str)))
        .or_else(|| codings(concept).find_map(|c| c.get("code").and_then(Value::as_str)))
        .map(str::to_owned)
}
