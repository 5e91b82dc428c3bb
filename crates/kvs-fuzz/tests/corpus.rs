//! Every fuzz target on its committed corpus (`fuzz/corpus/<target>/`), then on inputs mutated
//! from it (seeded; `KVS_FUZZ_SEED` picks another seed, `KVS_FUZZ_SMOKE_RUNS` more inputs).
//! `cargo xtask fuzz` is the real fuzzing; this keeps every target working in every test run.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Inputs mutated per target at most, and the time that may take.
const SMOKE_RUNS: usize = 5_000;
const SMOKE_BUDGET: Duration = Duration::from_secs(4);

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target)
}

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = corpus_dir(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, bytes)
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn replay_and_smoke(name: &str) {
    let target = kvs_fuzz::target(name).expect("a target");
    let files = corpus(name);
    assert!(!files.is_empty(), "{name} has no seed corpus");
    for (path, bytes) in &files {
        if std::panic::catch_unwind(|| (target.run)(bytes)).is_err() {
            panic!("{name} fails on its corpus file {}", path.display());
        }
    }
    let seed = std::env::var("KVS_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(25);
    let runs = std::env::var("KVS_FUZZ_SMOKE_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(SMOKE_RUNS);
    let budget = if runs > SMOKE_RUNS {
        Duration::MAX
    } else {
        SMOKE_BUDGET
    };
    let seeds: Vec<Vec<u8>> = files.into_iter().map(|(_, b)| b).collect();
    match kvs_fuzz::smoke::run(target.run, &seeds, runs, budget, seed) {
        Ok(done) => assert!(done > 0, "{name}: no input ran"),
        Err(input) => panic!(
            "{name} fails on a mutated input (seed {seed}); save it and add a regression test: {}",
            hex(&input)
        ),
    }
}

macro_rules! targets {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                replay_and_smoke(stringify!($name));
            }
        )*

        #[test]
        fn every_target_has_a_test_here() {
            let tested = [$(stringify!($name)),*];
            for target in kvs_fuzz::TARGETS {
                assert!(tested.contains(&target.name), "{} is not replayed", target.name);
            }
            assert_eq!(tested.len(), kvs_fuzz::TARGETS.len());
        }
    };
}

targets!(
    annexb_reader,
    h264_sps,
    ogg_opus_reader,
    mkv_reader,
    signaling_message,
    ingest_offer,
    turn_allocation,
    turn_uri,
    emulator_sigv4,
    emulator_client_frame,
    emulator_request_parts,
    emulator_http,
    emulator_media_read,
    iot_credentials,
);
