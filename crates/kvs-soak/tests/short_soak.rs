//! The short form of the soak that `cargo xtask test` runs (issue #25): 3 sessions for 2
//! minutes against `kvs-emulator serve`, every fault of the matrix once (a 2 s keep-alive so
//! that a frozen socket is noticed within the 15 s between faults), and every goal the soak
//! judges met: no session lost, every fault recovered within 5 s, no descriptor left behind,
//! the recordings' decoded duration close to the time streamed. The 30-minute, 20-session run
//! is `cargo xtask soak`.

use std::process::Command;

use serde_json::Value;

#[test]
fn three_sessions_for_two_minutes_survive_every_fault_of_the_matrix() {
    let emulator = kvs_test_support::workspace_bin("kvs-emulator", "kvs-emulator");
    let out = Command::new(env!("CARGO_BIN_EXE_kvs-soak"))
        .args(["--minutes", "2", "--sessions", "3", "--fault-every", "15"])
        .args([
            "--warm-up",
            "10",
            "--keep-alive",
            "2",
            "--json",
            "--emulator",
        ])
        .arg(&emulator)
        .output()
        .expect("kvs-soak runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "no JSON report ({e}); stdout:\n{stdout}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let faults: Vec<&str> = report["faultResults"]
        .as_array()
        .expect("fault results")
        .iter()
        .filter_map(|r| r["fault"].as_str())
        .collect();
    for kind in [
        "GO_AWAY",
        "socket drop",
        "frozen socket",
        "RECONNECT_ICE_SERVER",
        "rejected answer",
        "throttled join",
        "impairment burst",
    ] {
        assert!(
            faults.contains(&kind),
            "{kind} was not injected: {report:#}"
        );
    }
    assert_eq!(report["sessionsLost"], 0, "{report:#}");
    assert_eq!(report["faultsRecovered"], report["faults"], "{report:#}");
    assert!(
        report["recordedShare"].as_f64().is_some_and(|s| s >= 0.9),
        "{report:#}"
    );
    assert_eq!(report["goalsMet"], true, "{report:#}");
    assert!(out.status.success(), "{report:#}");
}
