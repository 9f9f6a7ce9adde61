//! Who is calling and what they may do. A JWT access token verified against its issuer's keys
//! (`token`; the keys discovered, fetched and cached by `keys`) names the caller; its SMART on
//! FHIR scopes (`scopes`) say which resource types and interactions it covers and whether only
//! within its patient's compartment. Imports `domain` only.

pub mod keys;
pub mod scopes;
pub mod token;

pub use scopes::{Context, Grant, Interaction, Scope, Scopes};
pub use token::{Caller, Issuer, TokenError};
