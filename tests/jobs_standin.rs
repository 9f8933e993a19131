//! `chaos --jobs N` with stand-in nodes (`chronik-stand-in-node`, not Chronik) and the embedded
//! Toxiproxy: scenarios side by side, each job on its own network namespaces and Toxiproxy,
//! give the results (names, order, seeds, verdicts) of a sequential run with the same seed and
//! leave nothing behind; Ctrl-C stops every job's cluster and network; a dry run checks every
//! job's Toxiproxy API port; `--jobs` without
//! `--network netns`, or with a flag that decides one run from the last, is refused before
//! anything starts. The `netns_*` tests need root with `ip`, `tc` and `nft` (`.ci/run` skips
//! them by name otherwise).

mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use chronik_chaos::os;
use chronik_chaos::results::Results;

const STAND_IN: &str = env!("CARGO_BIN_EXE_chronik-stand-in-node");
const CHAOS: &str = env!("CARGO_BIN_EXE_chronik-chaos");

/// Three short scenarios: no fault, the leader cut off through its proxies, a follower killed.
const SUITE: &str = r#"
[[scenario]]
name = "quiet"
family = "baseline"
description = "No fault."
[scenario.phases]
warmup = 2
hold = 3
recovery = 2

[[scenario]]
name = "isolate"
family = "partition"
description = "The leader cut off through its Toxiproxy link proxies."
[scenario.phases]
warmup = 3
hold = 12
recovery = 8
[[scenario.faults]]
kind = "partition"
shape = "isolate"
target = "leader"

[[scenario]]
name = "kill-follower"
family = "kill"
description = "A follower killed and restarted."
[scenario.phases]
warmup = 3
hold = 12
recovery = 8
[[scenario.faults]]
kind = "kill"
target = "follower"
"#;

/// A `chaos` command on the stand-in with the suite above, its own Toxiproxy API ports and
/// output directory.
fn chaos(dir: &Path, out: &str, extra: &[&str]) -> Command {
    chaos_at(dir, out, free_api_base(), extra)
}

/// As [`chaos`], with the first Toxiproxy API at `api`.
fn chaos_at(dir: &Path, out: &str, api: std::net::SocketAddr, extra: &[&str]) -> Command {
    let file = dir.join("suite.toml");
    std::fs::write(&file, SUITE).unwrap();
    let mut cmd = Command::new(CHAOS);
    cmd.args(["chaos", "--chronik-bin", STAND_IN, "--comment", "never", "--seed", "17"])
        .arg("--scenarios-file")
        .arg(&file)
        .args(["--scenario", "quiet", "--scenario", "isolate", "--scenario", "kill-follower"])
        .arg("--toxiproxy-listen")
        .arg(api.to_string())
        .arg("--out")
        .arg(dir.join(out))
        .args(extra)
        .env_remove("TOXIPROXY_BIN")
        .env_remove("CHRONIK_BIN");
    cmd
}

/// A loopback address whose port and the next three are free (one Toxiproxy API per job).
fn free_api_base() -> std::net::SocketAddr {
    for _ in 0..100 {
        let a = support::free_addr();
        let all_free = (0..4u16).all(|k| {
            a.port()
                .checked_add(k)
                .is_some_and(|p| std::net::TcpListener::bind(std::net::SocketAddr::new(a.ip(), p)).is_ok())
        });
        if all_free {
            return a;
        }
    }
    panic!("no four free ports in a row");
}

/// The run prefixes (`ccXXXX`) a run's progress names, one per network it made.
fn runs_named(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter_map(|l| l.split_once("network: netns, run ").map(|(_, r)| r))
        .filter_map(|r| r.split_whitespace().next().map(str::to_string))
        .collect()
}

/// Every node pid a run's progress named (`[name] nodes started (n1=… n2=… n3=…)`).
fn node_pids(stdout: &str) -> Vec<u32> {
    stdout
        .lines()
        .filter_map(|l| l.split_once("nodes started (").map(|(_, rest)| rest))
        .flat_map(|rest| rest.split(')').next().unwrap_or_default().split_whitespace())
        .filter_map(|kv| kv.split_once('=')?.1.parse().ok())
        .collect()
}

/// Name, seed and verdict of every scenario, in results order.
fn table(results: &Results) -> Vec<(String, u64, String)> {
    results.scenarios.iter().map(|s| (s.name.clone(), s.seed, s.verdict.to_string())).collect()
}

#[test]
#[ignore = "needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) and ip, tc, nft"]
fn netns_jobs_2_gives_the_sequential_results_and_leaves_nothing() {
    chronik_chaos::netns::check_privileges().expect("needs root and ip, tc, nft");
    let dir = tempfile::tempdir().unwrap();
    let mut runs = Vec::new();
    let mut tables = Vec::new();
    for (out, jobs) in [("sequential", "1"), ("side-by-side", "2")] {
        let output = chaos(dir.path(), out, &["--network", "netns", "--jobs", jobs]).output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).to_string();
        let stderr = String::from_utf8_lossy(&output.stderr);
        eprintln!("--- {out} ---\n{stdout}{stderr}");
        assert_eq!(output.status.code(), Some(0), "{out}: {stderr}");
        let named = runs_named(&stdout);
        assert_eq!(named.len(), if jobs == "1" { 1 } else { 2 }, "{out}: one network per job: {named:?}");
        let pids = node_pids(&stdout);
        assert_eq!(pids.len(), 9, "{out}: three scenarios of three nodes: {pids:?}");
        let alive: Vec<u32> = pids.into_iter().filter(|p| os::pid_alive(*p)).collect();
        assert!(alive.is_empty(), "{out}: node processes left: {alive:?}");
        runs.extend(named);
        tables.push(table(&Results::read(&dir.path().join(out).join("results.json")).unwrap()));
    }
    // Same scenarios, same order, same seeds, same verdicts; and every one passed (the stand-in
    // in correct mode), so the comparison compares something.
    assert_eq!(tables[0], tables[1]);
    assert_eq!(tables[0].iter().map(|(n, _, _)| n.as_str()).collect::<Vec<_>>(), ["quiet", "isolate", "kill-follower"]);
    assert!(tables[1].iter().all(|(_, _, v)| v == "PASS"), "{:?}", tables[1]);
    // Side by side, both jobs ran scenarios, each on its own Toxiproxy.
    let side = dir.path().join("side-by-side");
    assert!(side.join("toxiproxy.log").exists() && side.join("toxiproxy-2.log").exists());
    for run in &runs {
        assert_eq!(support::netns_leftovers(run), Vec::<String>::new(), "run {run}");
    }
}

#[test]
#[ignore = "needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) and ip, tc, nft"]
fn netns_ctrl_c_during_jobs_stops_every_cluster_and_leaves_nothing() {
    chronik_chaos::netns::check_privileges().expect("needs root and ip, tc, nft");
    let dir = tempfile::tempdir().unwrap();
    let mut child = chaos(dir.path(), "out", &["--network", "netns", "--jobs", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut seen = String::new();
    for line in stdout.lines() {
        let line = line.unwrap();
        eprintln!("{line}");
        seen.push_str(&line);
        seen.push('\n');
        // Both jobs have a cluster up.
        if node_pids(&seen).len() == 6 {
            break;
        }
    }
    let (runs, pids) = (runs_named(&seen), node_pids(&seen));
    assert_eq!((runs.len(), pids.len()), (2, 6), "{seen}");
    let (status, stderr) = support::interrupt_and_wait(&mut child);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    let alive: Vec<u32> = pids.into_iter().filter(|p| os::pid_alive(*p)).collect();
    assert!(alive.is_empty(), "node processes left: {alive:?}");
    for run in &runs {
        assert_eq!(support::netns_leftovers(run), Vec::<String>::new(), "run {run}");
    }
}

#[test]
fn jobs_are_refused_before_anything_starts_without_netns_or_with_a_one_at_a_time_flag() {
    let dir = tempfile::tempdir().unwrap();
    for (extra, needed) in [
        (&["--jobs", "2"][..], "needs --network netns"),
        (&["--jobs", "2", "--network", "netns", "--until-fail"][..], "--until-fail"),
        (&["--jobs", "3", "--network", "netns", "--shrink-budget", "4"][..], "--shrink-budget"),
    ] {
        let output = chaos(dir.path(), "out", extra).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{extra:?}: {stderr}");
        assert!(stderr.contains(needed) && stderr.contains("--jobs"), "{extra:?}: {stderr}");
        assert!(!dir.path().join("out").exists(), "{extra:?}: nothing started");
    }
}

#[test]
#[ignore = "needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) and ip, tc, nft"]
fn netns_a_dry_run_with_jobs_checks_every_jobs_toxiproxy_port() {
    chronik_chaos::netns::check_privileges().expect("needs root and ip, tc, nft");
    let dir = tempfile::tempdir().unwrap();
    let api = free_api_base();
    let dry =
        |dir: &Path| chaos_at(dir, "out", api, &["--network", "netns", "--jobs", "3", "--dry-run"]).output().unwrap();
    let free = dry(dir.path());
    let text = support::text(&free);
    assert_eq!(free.status.code(), Some(0), "{text}");
    let ports = format!("API ports {} to {}", api.port(), api.port() + 2);
    assert!(text.contains("jobs: 3 side by side") && text.contains(&ports), "{text}");
    // Job 2's API port taken: named, with the flag that moves it.
    let taken = std::net::SocketAddr::new(api.ip(), api.port() + 1);
    let _holder = std::net::TcpListener::bind(taken).unwrap();
    let busy = dry(dir.path());
    let text = support::text(&busy);
    assert_eq!(busy.status.code(), Some(2), "{text}");
    assert!(
        text.contains(&format!("port {taken} (job 2's Toxiproxy API")) && text.contains("--toxiproxy-listen"),
        "{text}"
    );
    assert!(!dir.path().join("out").join("results.json").exists(), "a dry run runs nothing");
}
