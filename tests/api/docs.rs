//! `/docs` renders in headless Chromium with every non-loopback host unreachable, and lists
//! the API's operations: its assets are served by the service itself.

use std::process::Command;

use crate::helpers::spawn_app;

fn chromium() -> Option<&'static str> {
    let found = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|c| {
            Command::new(c)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        });
    if found.is_none() {
        assert!(
            std::env::var_os("TEST_REQUIRE_PEERS").is_none(),
            "chromium is required for this test (apt-get install chromium)"
        );
        eprintln!("skipping: chromium is not installed");
    }
    found
}

#[tokio::test]
async fn the_docs_page_renders_offline_and_lists_the_operations() {
    let Some(browser) = chromium() else { return };
    let app = spawn_app().await;
    let url = format!("{}/docs/", app.address);
    let profile = tempfile::tempdir().unwrap();
    let output = tokio::task::spawn_blocking({
        let profile = profile.path().to_path_buf();
        move || {
            Command::new(browser)
                .args([
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    // The network is off for the page: only loopback resolves.
                    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                    "--virtual-time-budget=15000",
                    "--dump-dom",
                ])
                .arg(format!("--user-data-dir={}", profile.display()))
                .arg(&url)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let dom = String::from_utf8_lossy(&output.stdout);
    assert!(
        dom.contains("swagger-ui"),
        "the UI did not load:\n{}",
        &dom[..dom.len().min(2000)]
    );
    for path in [
        "/fhir/metadata",
        "/fhir/{resource_type}/{id}/_history",
        "/readyz",
    ] {
        assert!(dom.contains(path), "{path} is not listed on /docs");
    }
    assert!(
        dom.matches("opblock-summary-method").count() >= 10,
        "operations are not listed"
    );
}
