//! `cargo xtask chaos` end to end, with the stand-in broker in place of chronik-server (a small
//! replicating Kafka-protocol broker, not Chronik) and the embedded Toxiproxy: the whole
//! pipeline runs (workload, fault with its measured proof, checker, verdict), the scenario
//! passes with no anomaly, every output is written, and nothing is left running. Also the
//! xtask's error paths.

use std::path::Path;
use std::process::{Command, Output};

fn xtask(args: &[&str], dir: &Path) -> Output {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    Command::new(cargo)
        .args(["run", "--quiet", "--package", "xtask", "--"])
        .args(args)
        .current_dir(dir)
        .env("CHRONIK_CHAOS_PROFILE", "dev")
        .env_remove("TOXIPROXY_BIN")
        .env_remove("CHRONIK_BIN")
        .env_remove("GITHUB_ACTIONS")
        .env_remove("GITHUB_STEP_SUMMARY")
        .env_remove("GITHUB_TOKEN")
        .output()
        .expect("running cargo xtask")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

#[test]
fn no_chronik_is_explained_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = xtask(&["chaos", "--scenario", "baseline", "--out", dir.path().to_str().unwrap()], Path::new(ROOT));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("no Chronik given") && t.contains("--chronik-dir DIR") && t.contains("--clone"), "{t}");
}

#[test]
fn a_bad_scenario_name_lists_the_valid_ones_before_any_build() {
    let out = xtask(&["chaos", "--chronik-dir", "/nonexistent", "--scenario", "no-such"], Path::new(ROOT));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("no scenario named `no-such`; valid names: baseline, client-latency"), "{t}");
    assert!(!t.contains("cargo metadata"), "nothing was built: {t}");
}

#[test]
fn an_unwritable_out_dir_is_refused_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let out_dir = file.join("out");
    let out = xtask(&["chaos", "--chronik-bin", "/bin/true", "--out", out_dir.to_str().unwrap()], Path::new(ROOT));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("cannot create the output directory"), "{}", text(&out));
}

#[test]
fn list_needs_no_chronik() {
    let out = xtask(&["chaos", "--list"], Path::new(ROOT));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("cascading-failure"));
}

/// Processes whose executable is the stand-in node or chronik-chaos, other than this test.
fn leftovers(marker: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(marker.to_str().unwrap()) {
            found.push(format!("{}: {cmdline}", entry.file_name().to_string_lossy()));
        }
    }
    found
}

#[test]
fn the_whole_pipeline_runs_writes_every_output_and_tears_down() {
    let dir = tempfile::tempdir().unwrap();
    let scenarios = dir.path().join("e2e.toml");
    std::fs::write(
        &scenarios,
        r#"
[[scenario]]
name = "e2e-latency"
family = "latency"
description = "End-to-end check of the pipeline with stand-in nodes."
[scenario.phases]
warmup = 1
hold = 1
recovery = 1
final_read_deadline = 2
[[scenario.faults]]
kind = "toxic"
links = "clients"
toxic = { type = "latency", stream = "both", latency = 10 }
"#,
    )
    .unwrap();
    let out_dir = dir.path().join("out");
    let standin = env!("CARGO_BIN_EXE_chronik-stand-in-node");
    let out = xtask(
        &[
            "chaos",
            "--chronik-bin",
            standin,
            "--scenarios-file",
            scenarios.to_str().unwrap(),
            "--scenario",
            "e2e-latency",
            "--seed",
            "7",
            "--out",
            out_dir.to_str().unwrap(),
            "--comment",
            "never",
            "--",
            "--base-port",
            "24000",
            "--toxiproxy-listen",
            "127.0.0.1:24474",
            "--ready-timeout",
            "20",
            "--start-attempts",
            "1",
        ],
        Path::new(ROOT),
    );
    let t = text(&out);
    // The stand-in broker is correct: the scenario passes, so the exit code is 0.
    assert_eq!(out.status.code(), Some(0), "{t}");
    for f in ["results.json", "junit.xml", "report.md", "toxiproxy.log"] {
        assert!(out_dir.join(f).is_file(), "{f} missing; output:\n{t}");
    }
    let results = chronik_chaos::results::Results::read(&out_dir.join("results.json")).unwrap();
    assert_eq!(results.seed, 7);
    assert!(results.chronik.version.starts_with("chronik-chaos stand-in broker"), "{:?}", results.chronik);
    assert_eq!(results.scenarios.len(), 1);
    let s = &results.scenarios[0];
    assert_eq!(s.verdict, chronik_chaos::verdict::Verdict::Pass, "{:?}", s.explanation);
    assert!(s.counts.acked > 0 && s.anomalies == Default::default(), "{:?} {:?}", s.counts, s.anomalies.summary());
    assert!(s.fidelity.proven, "{:?}", s.fidelity);
    assert!(!s.node_logs.is_empty(), "node logs are kept");
    let md = std::fs::read_to_string(out_dir.join("report.md")).unwrap();
    assert!(md.contains("| e2e-latency | ✅ PASS |"), "{md}");
    let junit = std::fs::read_to_string(out_dir.join("junit.xml")).unwrap();
    assert!(junit.contains(r#"tests="1" failures="0" errors="0""#), "{junit}");
    assert!(t.contains("seed 7"), "progress names the seed: {t}");
    // Nothing left: no stand-in node, no embedded Toxiproxy.
    let left = leftovers(Path::new(standin));
    assert!(left.is_empty(), "processes left behind: {left:?}");
    for port in [24474u16, 24000 + 10, 24000 + 100 + 1] {
        assert!(std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(), "port {port} still taken");
    }
}
