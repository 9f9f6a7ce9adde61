//! Every fuzz target's inputs replayed through the same functions the fuzzer calls
//! (`prognostics::fuzzing`), without a sanitizer: the committed seeds and regressions
//! (`fuzz/seeds/`, `fuzz/regressions/`: each a crash the fuzzer found, kept fixed), a local
//! corpus when `scripts/fuzz` has left one, and the pinned test data the corpora are seeded
//! from. Nothing may panic or take seconds.
//!
//! libFuzzer's panic hook aborts on any panic, even one the service catches and answers as an
//! error (a decoder's panic taken as the image's error), so the replay runs in a child process
//! whose panic hook aborts too: an input the fuzzer reports as a crash fails here as well.
//! Memory is not limited here (the library sets the global allocator); the inputs the fuzzer
//! found taking gigabytes are each pinned by a unit test of the check that now refuses them
//! (`dicom::lengths`).

use std::path::{Path, PathBuf};
use std::process::Command;

use prognostics::fuzzing;

type Target = fn(&[u8]);

const TARGETS: [(&str, Target); 8] = [
    ("hl7_message", fuzzing::hl7_message),
    ("mllp_frames", fuzzing::mllp_frames),
    ("dicom_file", fuzzing::dicom_file),
    ("dimse_command", fuzzing::dimse_command),
    ("stow_multipart", fuzzing::stow_multipart),
    ("fhir_resource", fuzzing::fhir_resource),
    ("search_query", fuzzing::search_query),
    ("risk_parameters", fuzzing::risk_parameters),
];

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

fn replay(name: &str, target: Target, files: &[PathBuf]) -> usize {
    for file in files {
        // A running fuzzer replaces the local corpus's files as it shrinks them.
        let Ok(data) = std::fs::read(file) else {
            continue;
        };
        eprintln!("replaying {name} {}", file.display());
        let started = std::time::Instant::now();
        target(&data);
        // A small input that takes seconds (even unoptimised) is a denial of service: a
        // 674-byte file once made the parser reserve 4 GiB.
        let took = started.elapsed();
        assert!(
            took < std::time::Duration::from_secs(5),
            "{name} took {took:?} on {}",
            file.display()
        );
    }
    files.len()
}

/// Set in the child process to the replay it runs.
const CHILD: &str = "FUZZ_REPLAY_CHILD";

/// Runs `replay_child` in a child process of this test binary, with `which` replay.
fn in_child(which: &str) {
    let test = format!(
        "{}::replay_child",
        module_path!().split_once("::").map_or("", |(_, m)| m)
    );
    let output = Command::new(std::env::current_exe().unwrap())
        .args([test.as_str(), "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, which)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    // The input being replayed when it failed, and the panic's place and message.
    let input = stderr
        .lines()
        .rfind(|l| l.starts_with("replaying "))
        .unwrap_or("before any input");
    let panic: Vec<&str> = stderr
        .lines()
        .skip_while(|l| !l.contains("panicked at"))
        .take(2)
        .collect();
    assert!(
        output.status.success(),
        "the {which} replay failed ({}), {input}:\n{}",
        output.status,
        panic.join("\n")
    );
    assert!(
        stderr.contains(&format!("{which} replay done")),
        "the {which} replay did not run"
    );
}

/// The replays themselves, in the child process `in_child` starts; nothing outside it.
#[test]
fn replay_child() {
    let Ok(which) = std::env::var(CHILD) else {
        return;
    };
    // As libFuzzer: any panic, caught or not, on any thread, is a crash.
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default(info);
        std::process::abort();
    }));
    match which.as_str() {
        "corpus" => replay_corpus(),
        "test data" => replay_test_data(),
        other => panic!("no replay {other}"),
    }
    eprintln!("{which} replay done");
}

#[test]
fn the_seeds_regressions_and_local_corpus_of_every_target_replay_without_a_panic() {
    in_child("corpus");
}

#[test]
fn the_test_data_the_corpora_are_seeded_from_replays_without_a_panic() {
    in_child("test data");
}

fn replay_corpus() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    for (name, target) in TARGETS {
        let mut files = files_in(&fuzz.join("seeds").join(name));
        assert!(
            !files.is_empty() || name == "dicom_file" || name == "stow_multipart",
            "{name} has seeds"
        );
        files.extend(files_in(&fuzz.join("regressions").join(name)));
        files.extend(files_in(&fuzz.join("corpus").join(name)));
        replay(name, target, &files);
    }
}

fn replay_test_data() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/test-data");
    let pydicom = data.join("pydicom-3.0.2/pydicom/data/test_files");
    let dicom: Vec<PathBuf> = files_in(&pydicom)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "dcm"))
        .filter(|p| p.metadata().is_ok_and(|m| m.len() < 64 * 1024))
        .collect();
    if dicom.is_empty() {
        assert!(
            std::env::var_os("TEST_REQUIRE_DATA").is_none(),
            "test data missing: run scripts/fetch-test-data"
        );
        return;
    }
    let replayed = replay("dicom_file", fuzzing::dicom_file, &dicom);
    assert!(replayed > 40, "{replayed}");
    // The same files as STOW-RS bodies.
    for file in &dicom {
        let mut body = format!(
            "--{0}\r\nContent-Type: application/dicom\r\n\r\n",
            fuzzing::STOW_BOUNDARY
        )
        .into_bytes();
        body.extend_from_slice(&std::fs::read(file).unwrap());
        body.extend_from_slice(format!("\r\n--{}--\r\n", fuzzing::STOW_BOUNDARY).as_bytes());
        fuzzing::stow_multipart(&body);
    }
    let hl7 = files_in(&data.join("simple-hl7-3.3.0/package/test/samples"));
    replay("hl7_message", fuzzing::hl7_message, &hl7);
    replay("mllp_frames", fuzzing::mllp_frames, &hl7);
}
