//! Integration tests: the service on a real port over a temporary SQLite file, or on
//! PostgreSQL when `TEST_DATABASE_URL` is set (one fresh database per test).
// Tests are the service's clients: their own tasks need no request span.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod acceptance;
mod app_browser;
mod audit_trail;
mod auth_keys;
mod auth_server;
mod authorization;
mod backup;
mod bad_input;
mod bundles;
mod cds;
mod cohort_embeddings;
mod cors;
mod crash;
mod crud;
mod dicomweb;
mod dimse;
mod disk_full;
mod docs;
mod ehr;
mod ehr_smart;
mod embed;
mod embeddings;
mod example_bundles;
mod examples;
mod features;
mod health;
mod helpers;
mod hl7;
mod hl7_filing;
mod hostile_input;
mod https;
mod import;
mod issuer;
mod load_balanced;
mod mcode_patients;
mod metrics;
mod models;
mod monitoring;
mod notes_model;
mod openapi;
mod outcome_file;
mod phi_in_logs;
mod population;
mod replicas;
mod request_log;
mod risk_assessment;
mod schemathesis;
mod search;
mod shutdown;
mod sign_off;
mod smart_app;
mod standalone;
mod tls_doors;
