//! Test data the scripts fetch, located once.

use std::path::PathBuf;

/// GBSG2 as scikit-survival 0.28.0 ships it (scripts/fetch-test-data); None when it is absent,
/// or a failure where data is required (`TEST_REQUIRE_DATA`).
pub fn gbsg2_path() -> Option<PathBuf> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(".cache/test-data/scikit-survival-0.28.0/GBSG2.arff");
    if !path.exists() {
        assert!(
            std::env::var_os("TEST_REQUIRE_DATA").is_none(),
            "GBSG2.arff is missing: run scripts/fetch-test-data"
        );
        return None;
    }
    Some(path)
}
