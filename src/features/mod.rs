//! From what the EHR and the feeds say about a patient to what a model takes in: a
//! `PatientContext` read out of FHIR resources (`context`, with the codes it recognises from
//! `fhir::codes`, note texts from attachments in `notes`, UCUM conversions in `units`), and the
//! typed, masked features a model's input spec (`spec`) declares (`builder`), each input read
//! the many ways charts record it (`recorded`); and who a model is for and from when
//! (`population`: the intended population and the index date). Pure functions over JSON:
//! imports `fhir` (codes, dates, element readers, terminology) only.

pub mod builder;
pub mod context;
pub mod notes;
pub mod outcome;
pub mod population;
pub mod recorded;
pub mod spec;
pub mod treatments;
pub mod units;

pub use builder::{
    AsOf, Embedded, Embeddings, FeatureSet, Modality, ModalityFeatures, Unfilled, build_features,
    notes_to_embed, pool_embeddings,
};
pub use context::PatientContext;
pub use spec::{InputSpec, OrderableTest};
