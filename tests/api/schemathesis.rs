//! The API against its own description: Schemathesis (PyPI, installed into .cache/peers-venv by
//! scripts/install-test-deps) generates requests from the served `/openapi.json`, every
//! operation, and checks that none gets a server error and every response matches the
//! documented schema. Bodies it cannot generate (DICOM, STOW-RS multipart, HL7 v2) come from
//! tests/schemathesis/hooks.py. An image encoder with tiny random weights is loaded, so that
//! the embedding routes answer rather than say 503.

use std::path::PathBuf;
use std::process::Command;

use crate::helpers::spawn_app_with;

fn schemathesis() -> Option<PathBuf> {
    let st = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".cache/peers-venv/bin/st");
    if st.exists() {
        return Some(st);
    }
    assert!(
        std::env::var_os("TEST_REQUIRE_PEERS").is_none(),
        "Schemathesis is missing: run scripts/install-test-deps"
    );
    eprintln!("skipping: Schemathesis is not installed (scripts/install-test-deps)");
    None
}

#[tokio::test]
async fn generated_requests_to_every_operation_get_no_server_error_and_match_the_schema() {
    let Some(st) = schemathesis() else {
        return;
    };
    let models = tempfile::tempdir().unwrap();
    prognostics::encoders::write_random_model(models.path(), "tiny", "efficientnet-lite", 1)
        .unwrap();
    let encoders = models.path().to_path_buf();
    let app = spawn_app_with(move |s| {
        s.inference.enabled = true;
        s.inference.models_dir = encoders;
    })
    .await;
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    // Schemathesis keeps a cache of what it found under its working directory.
    let scratch = tempfile::tempdir().unwrap();
    let workdir = scratch.path().to_path_buf();
    let address = app.address.clone();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(st)
            .current_dir(&workdir)
            .env("PYTHONPATH", &root)
            .env("SCHEMATHESIS_HOOKS", "tests.schemathesis.hooks")
            .args(["run", &format!("{address}/openapi.json"), "--url", &address])
            .args(["--checks", "not_a_server_error,response_schema_conformance"])
            .args(["--phases", "examples,coverage,fuzzing"])
            .args([
                "--max-examples",
                "25",
                // One worker: CPython 3.11's ast module tracks its recursion depth in state
                // shared between threads, and Hypothesis parses lambdas while describing
                // strategies, so two workers can fail with "AST constructor recursion depth
                // mismatch" inside the tool.
                "--workers",
                "1",
                "--seed",
                "20261207",
            ])
            .args(["--no-color"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{said}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(said.contains("Tested: 42"), "every operation: {said}");
}
