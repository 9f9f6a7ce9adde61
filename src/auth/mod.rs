//! Who is calling and what they may do. SMART on FHIR scopes (`scopes`) say which resource
//! types and interactions a token covers and whether only within its patient's compartment.
//! Imports `domain` only.

pub mod scopes;

pub use scopes::{Context, Grant, Interaction, Scope, Scopes};
