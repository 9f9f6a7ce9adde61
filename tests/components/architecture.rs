//! The architecture as an allow-list: for each top-level module of `src/`, what it holds and
//! the modules it may import. Every `use crate::…` (groups included: `use crate::{a, b::c}`)
//! and every `crate::…` path written in code is read, and one outside its module's list fails
//! with the file, the line and the offending text. Each heavyweight external crate belongs to
//! the modules that own it. The README's map of the code is drawn from the same table
//! (`UPDATE_README=1 cargo test --test components architecture` redraws it).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// (module, what it holds, the modules it may import). Ordered as the data flows.
const MODULES: &[(&str, &str, &[&str])] = &[
    (
        "error",
        "`ErrorKind`, the one classification of failures",
        &[],
    ),
    (
        "domain",
        "the vocabulary: ids, UIDs, instants, time units and horizons",
        &["error"],
    ),
    ("config", "`Settings`: defaults, file, environment", &[]),
    (
        "auth",
        "who is calling and what they may do: SMART scopes, access tokens",
        &["domain"],
    ),
    (
        "telemetry",
        "logging; spawning inside the caller's span",
        &["config"],
    ),
    (
        "metrics",
        "the Prometheus registry: requests, assessments, models, queues",
        &[],
    ),
    (
        "dicom",
        "DICOM Part 10 files and pixel data (dicom-rs, codecs)",
        &["domain", "error"],
    ),
    ("hl7", "HL7 v2 messages, their ACKs and MLLP framing", &[]),
    (
        "fhir",
        "FHIR JSON: validation, search parameters, codes, element readers",
        &["domain", "error"],
    ),
    (
        "ehr",
        "the EHR's FHIR server: client, SMART auth, the patient pull",
        &["config", "error", "fhir"],
    ),
    (
        "cohort",
        "training cohorts (CSV, Parquet, ARFF) and a past cohort's outcome file",
        &[],
    ),
    (
        "features",
        "what is known of a patient, into a model's inputs",
        &["fhir"],
    ),
    (
        "encoders",
        "image and text encoders (candle): models, layers, batching",
        &["error"],
    ),
    (
        "survival",
        "survival statistics: Cox, Breslow, C, AUC, Brier",
        &[],
    ),
    (
        "fusion",
        "the prognostic model: network, training, package, predictions",
        &["domain", "features", "survival"],
    ),
    (
        "training",
        "fitting and judging models on cohorts; model cards",
        &["cohort", "domain", "features", "fusion", "survival"],
    ),
    (
        "report",
        "the FHIR the service emits (fhir-sdk builders)",
        &["domain", "error", "fhir", "hl7"],
    ),
    (
        "store",
        "the database (sqlx) and the DICOM file store",
        &["config", "domain", "error", "fhir"],
    ),
    (
        "pipeline",
        "the use cases: FHIR CRUD and search, DICOM and HL7 intake, embedding, risk assessment and its jobs",
        &[
            "cohort",
            "dicom",
            "domain",
            "ehr",
            "encoders",
            "error",
            "features",
            "fhir",
            "fusion",
            "hl7",
            "metrics",
            "report",
            "store",
            "survival",
            "telemetry",
        ],
    ),
    (
        "api",
        "the HTTP edge (actix-web, utoipa): thin handlers, errors as OperationOutcome, the access policy and audit of every request",
        &[
            "auth",
            "domain",
            "error",
            "fhir",
            "metrics",
            "pipeline",
            "report",
            "store",
            "telemetry",
        ],
    ),
    (
        "listener",
        "the TCP accept loop the DICOM and MLLP edges share",
        &["telemetry"],
    ),
    (
        "tls",
        "TLS for the listeners: certificates, keys, client CAs (rustls)",
        &["config"],
    ),
    (
        "dimse",
        "the DICOM network edge: C-ECHO and C-STORE (dicom-ul)",
        &[
            "config",
            "dicom",
            "domain",
            "listener",
            "pipeline",
            "telemetry",
        ],
    ),
    (
        "mllp_listener",
        "the HL7 v2 network edge: MLLP connections",
        &[
            "config",
            "domain",
            "hl7",
            "listener",
            "pipeline",
            "telemetry",
        ],
    ),
    (
        "startup",
        "wiring the service: database, models, listeners, HTTP server",
        &[
            "api",
            "auth",
            "config",
            "dimse",
            "ehr",
            "encoders",
            "error",
            "hl7",
            "mllp_listener",
            "pipeline",
            "store",
            "telemetry",
            "tls",
        ],
    ),
    (
        "cli",
        "the commands: dispatch, argument types, a file per command family",
        &[
            "cohort",
            "config",
            "dicom",
            "domain",
            "ehr",
            "encoders",
            "error",
            "features",
            "fusion",
            "pipeline",
            "startup",
            "store",
            "telemetry",
            "training",
        ],
    ),
    (
        "fuzzing",
        "the parsers fed to the fuzzer (fuzz/) and to the replay of its inputs",
        &["api", "dicom", "dimse", "domain", "fhir", "hl7", "report"],
    ),
    (
        "main",
        "the binary: settings, telemetry, run",
        &["cli", "encoders", "telemetry"],
    ),
];

/// (crate path as written in code, the modules allowed to use it)
const OWNERS: &[(&str, &[&str])] = &[
    ("actix_web", &["api", "startup"]),
    ("utoipa", &["api", "startup"]),
    ("sqlx", &["store"]),
    ("dicom_ul", &["dimse"]),
    ("dicom_object", &["dicom", "dimse"]),
    ("dicom_pixeldata", &["dicom"]),
    ("indicatif", &["cli"]),
    ("clap", &["cli", "config", "main"]),
    ("candle", &["encoders", "fusion", "survival"]),
    ("tokenizers::", &["encoders"]),
    ("reqwest::", &["auth", "ehr", "encoders"]),
    ("prometheus_client", &["metrics"]),
    ("jsonwebtoken", &["auth", "ehr"]),
    ("csv::", &["cohort"]),
    ("parquet::", &["cohort"]),
    ("fhir_sdk::r4b::resources", &["report", "fhir"]),
    ("builder()", &["report"]),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Rust source with comments, string and character literals blanked (newlines kept, so that
/// positions keep their line numbers).
fn code_only(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
        } else if c == 'r'
            && (next == Some('"') || (next == Some('#') && !prev_is_ident(&chars, i)))
            && !prev_is_ident(&chars, i)
        {
            // Raw string: r"…", r#"…"#.
            let mut hashes = 0;
            let mut j = i + 1;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            let close: String = std::iter::once('"')
                .chain(std::iter::repeat_n('#', hashes))
                .collect();
            let rest: String = chars[j + 1..].iter().collect();
            let end = rest.find(&close).map_or(chars.len(), |at| {
                j + 1 + rest[..at].chars().count() + close.chars().count()
            });
            for &k in &chars[i..end.min(chars.len())] {
                out.push(blank(k));
            }
            i = end;
        } else if c == '"' {
            out.push(' ');
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                if i < chars.len() {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
            out.push(' ');
            i += 1;
        } else if c == '\'' && is_char_literal(&chars, i) {
            // After an escape's backslash and its first character, up to the closing quote.
            let mut j = if chars.get(i + 1) == Some(&'\\') {
                i + 3
            } else {
                i + 2
            };
            while j < chars.len() && chars[j] != '\'' {
                j += 1;
            }
            for _ in i..=j.min(chars.len() - 1) {
                out.push(' ');
            }
            i = j + 1;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn prev_is_ident(chars: &[char], i: usize) -> bool {
    i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_')
}

/// A `'` that opens a character literal (`'a'`, `'\n'`, `'\u{1F600}'`), not a lifetime.
fn is_char_literal(chars: &[char], i: usize) -> bool {
    matches!(
        (chars.get(i + 1), chars.get(i + 2)),
        (Some('\\'), _) | (Some(_), Some('\''))
    )
}

/// The paths a use tree names, each as its segments (`a::{b, c::d as e}` gives `a::b` and
/// `a::c::d`).
fn use_tree_paths(tree: &str) -> Vec<Vec<String>> {
    fn parse(tokens: &[String], at: &mut usize, prefix: &[String], out: &mut Vec<Vec<String>>) {
        let mut path = prefix.to_vec();
        while *at < tokens.len() {
            let token = tokens[*at].as_str();
            match token {
                "::" => *at += 1,
                "{" => {
                    *at += 1;
                    loop {
                        parse(tokens, at, &path, out);
                        match tokens.get(*at).map(String::as_str) {
                            Some(",") => {
                                *at += 1;
                                if tokens.get(*at).map(String::as_str) == Some("}") {
                                    *at += 1;
                                    return;
                                }
                            }
                            Some("}") => {
                                *at += 1;
                                return;
                            }
                            _ => return,
                        }
                    }
                }
                "," | "}" => break,
                "as" => *at += 2,
                _ => {
                    path.push(token.to_owned());
                    *at += 1;
                }
            }
        }
        if path.len() > prefix.len() {
            out.push(path);
        }
    }
    let mut tokens = Vec::new();
    let mut word = String::new();
    let mut chars = tree.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_alphanumeric() || c == '_' || c == '*' {
            word.push(c);
            continue;
        }
        if !word.is_empty() {
            tokens.push(std::mem::take(&mut word));
        }
        match c {
            ':' if chars.peek() == Some(&':') => {
                chars.next();
                tokens.push("::".into());
            }
            '{' | '}' | ',' => tokens.push(c.to_string()),
            _ => {}
        }
    }
    if !word.is_empty() {
        tokens.push(word);
    }
    let mut out = Vec::new();
    let mut at = 0;
    while at < tokens.len() {
        let before = at;
        parse(&tokens, &mut at, &[], &mut out);
        if at == before {
            at += 1;
        }
    }
    out
}

/// One reference from a file to a top-level module of the crate.
struct Import {
    line: usize,
    module: String,
    text: String,
}

fn line_of(code: &str, at: usize) -> usize {
    code[..at].matches('\n').count() + 1
}

fn is_word_start(code: &str, at: usize) -> bool {
    code[..at]
        .chars()
        .next_back()
        .is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == ':'))
}

/// The crate's top-level modules a file imports: from its `use` items (groups parsed; `super`
/// resolved against the file's own module path) and from `crate::` paths in its code. In the
/// binary, the library is `prognostics`.
fn imports(
    code: &str,
    module_path: &[String],
    root: &str,
    modules: &BTreeSet<&str>,
) -> Vec<Import> {
    let mut out = Vec::new();
    let mut in_use = vec![false; code.len()];
    let mut search = 0;
    while let Some(found) = code[search..].find("use ") {
        let at = search + found;
        search = at + 4;
        if !is_word_start(code, at) {
            continue;
        }
        let Some(end) = code[at..].find(';').map(|e| at + e) else {
            break;
        };
        for flag in &mut in_use[at..end] {
            *flag = true;
        }
        let tree = &code[at + 4..end];
        for path in use_tree_paths(tree) {
            let resolved = resolve(&path, module_path, root);
            if let Some(first) = resolved.first()
                && modules.contains(first.as_str())
            {
                out.push(Import {
                    line: line_of(code, at),
                    module: first.clone(),
                    text: format!(
                        "use {};",
                        tree.split_whitespace().collect::<Vec<_>>().join(" ")
                    ),
                });
            }
        }
    }
    let needle = format!("{root}::");
    let mut search = 0;
    while let Some(found) = code[search..].find(&needle) {
        let at = search + found;
        search = at + needle.len();
        if in_use[at] || !is_word_start(code, at) {
            continue;
        }
        let name: String = code[search..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if modules.contains(name.as_str()) {
            out.push(Import {
                line: line_of(code, at),
                module: name.clone(),
                text: format!("{root}::{name}"),
            });
        }
    }
    out
}

/// A use path from the crate root: `crate::a::b` is `a::b`; `super::x` climbs from the file's
/// module. Other paths (external crates, `self`) are not the crate's.
fn resolve(path: &[String], module_path: &[String], root: &str) -> Vec<String> {
    match path.first().map(String::as_str) {
        Some(first) if first == root => path[1..].to_vec(),
        Some("super") => {
            let mut base = module_path.to_vec();
            let mut rest = path;
            while rest.first().map(String::as_str) == Some("super") {
                base.pop();
                rest = &rest[1..];
            }
            if base.is_empty() {
                rest.to_vec()
            } else {
                Vec::new()
            }
        }
        _ => Vec::new(),
    }
}

/// `src/pipeline/risk.rs` is `pipeline::risk`; `src/pipeline/mod.rs` is `pipeline`.
fn module_path(relative: &Path) -> Vec<String> {
    let mut parts: Vec<String> = relative
        .iter()
        .skip(1)
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

struct Source {
    relative: String,
    module_path: Vec<String>,
    text: String,
}

fn sources() -> Vec<Source> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    files.sort();
    files
        .iter()
        .map(|file| {
            let relative = file.strip_prefix(&root).unwrap();
            Source {
                relative: relative.to_string_lossy().replace('\\', "/"),
                module_path: module_path(relative),
                text: std::fs::read_to_string(file).unwrap(),
            }
        })
        .collect()
}

/// The allow-list's violations in these sources, one line each.
fn violations(sources: &[Source]) -> Vec<String> {
    let modules: BTreeSet<&str> = MODULES.iter().map(|(m, _, _)| *m).collect();
    let mut out = Vec::new();
    for source in sources {
        let Some(own) = source.module_path.first() else {
            continue;
        };
        if own == "lib" {
            continue;
        }
        let Some((_, _, allowed)) = MODULES.iter().find(|(m, _, _)| m == own) else {
            out.push(format!(
                "{}: module `{own}` has no row in the architecture table (tests/components/architecture.rs)",
                source.relative
            ));
            continue;
        };
        let root = if own == "main" {
            "prognostics"
        } else {
            "crate"
        };
        let code = code_only(&source.text);
        for import in imports(&code, &source.module_path, root, &modules) {
            if import.module != *own && !allowed.contains(&import.module.as_str()) {
                out.push(format!(
                    "{}:{}: `{own}` may not import `{}`: {}",
                    source.relative, import.line, import.module, import.text
                ));
            }
        }
    }
    out
}

#[test]
fn every_module_imports_only_what_the_table_allows() {
    let sources = sources();
    assert!(sources.len() > 100);
    let violations = violations(&sources);
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn every_module_of_the_crate_has_a_row() {
    let lib = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/lib.rs")).unwrap();
    let declared: Vec<&str> = lib
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod "))
        .map(|l| l.trim_end_matches(';'))
        .collect();
    assert!(declared.len() > 20);
    for module in declared {
        assert!(
            MODULES.iter().any(|(m, _, _)| *m == module),
            "`{module}` has no row in the architecture table"
        );
    }
}

#[test]
fn a_wrong_import_is_found_in_any_form() {
    let wrong = |text: &str| Source {
        relative: "src/store/mod.rs".into(),
        module_path: vec!["store".into()],
        text: text.into(),
    };
    let cases = [
        "use crate::api::ApiError;",
        "use crate::{domain::ResourceId, api};",
        "pub use crate::{\n    domain::{ResourceId, ResourceType},\n    pipeline::{Pipeline as P},\n};",
        "fn f() { let _ = crate::report::bundle; }",
        "mod inner { use super::super::api::ApiState; }",
    ];
    for case in cases {
        let found = violations(&[wrong(case)]);
        assert_eq!(found.len(), 1, "{case}: {found:?}");
        assert!(found[0].starts_with("src/store/mod.rs:"), "{}", found[0]);
    }
    // What is not an import: comments, strings, the module's own paths, other crates.
    let fine = wrong(
        "// use crate::api::ApiError;\n/* crate::pipeline */\nconst URL: &str = \"crate::api\";\n\
         use crate::store::Store;\nuse crate::{domain::ResourceId, error::ErrorKind};\n\
         use sqlx::Row;\nfn f<'a>(x: &'a str) -> char { 'a' }",
    );
    assert_eq!(violations(&[fine]), Vec::<String>::new());
}

#[test]
fn heavyweight_crates_stay_in_the_modules_that_own_them() {
    let mut violations = Vec::new();
    for source in sources() {
        let Some(own) = source.module_path.first() else {
            continue;
        };
        let code = code_only(&source.text);
        for (needle, allowed) in OWNERS {
            if allowed.contains(&own.as_str()) {
                continue;
            }
            for (n, line) in code.lines().enumerate() {
                if line.contains(needle) {
                    violations.push(format!("{}:{}: uses {needle}", source.relative, n + 1));
                }
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

/// The README's map of the code, as the table says it.
fn module_map() -> String {
    let mut out = String::from("| Module | Holds | May import |\n|---|---|---|\n");
    for (module, holds, allowed) in MODULES {
        let allowed = if allowed.is_empty() {
            "nothing".to_owned()
        } else {
            allowed
                .iter()
                .map(|m| format!("`{m}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        out += &format!("| `{module}` | {holds} | {allowed} |\n");
    }
    out
}

#[test]
fn the_readme_draws_the_same_map() {
    const START: &str = "<!-- module map: drawn from tests/components/architecture.rs -->\n";
    const END: &str = "<!-- end of module map -->";
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
    let readme = std::fs::read_to_string(path).unwrap();
    let (Some(start), Some(end)) = (readme.find(START), readme.find(END)) else {
        panic!("README.md has no module map between `{START}` and `{END}`");
    };
    let current = &readme[start + START.len()..end];
    let expected = module_map();
    if current != expected {
        if std::env::var_os("UPDATE_README").is_some() {
            let updated = format!("{}{START}{expected}{}", &readme[..start], &readme[end..]);
            std::fs::write(path, updated).unwrap();
        } else {
            panic!(
                "README.md's module map is stale; run UPDATE_README=1 cargo test --test components architecture\n{expected}"
            );
        }
    }
}
