//! `--network netns` in real runs, with stand-in nodes (`chronik-stand-in-node`, not Chronik)
//! and the embedded Toxiproxy: a suite in which every node runs in its own network namespace
//! runs a proxy-layer isolation, an IP-layer isolation and IP-layer loss to PASS with the IP
//! faults proven by the kernel's nft counters (and a scenario that ERRORs after its cluster
//! exists); after each scenario and after the run nothing of it is left (namespace, veth,
//! bridge, nft table, state file, node process), also when the chaos process gets Ctrl-C in
//! the middle of an IP fault. Without privileges `--network netns` exits 2 before anything
//! starts, naming what is missing. The `netns_*` tests need root with `ip`, `tc` and `nft`
//! (`.ci/run` skips them by name otherwise).

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use chronik_chaos::cluster::net::Network;
use chronik_chaos::netns::Fabric;
use chronik_chaos::os;
use chronik_chaos::runner::{self, SuiteConfig, SuiteEnd};
use chronik_chaos::scenario;
use chronik_chaos::topology::TopologySpec;
use chronik_chaos::toxiproxy::server::EmbeddedServer;
use chronik_chaos::verdict::Verdict;

const STAND_IN: &str = env!("CARGO_BIN_EXE_chronik-stand-in-node");
const CHAOS: &str = env!("CARGO_BIN_EXE_chronik-chaos");
const NEEDS_ROOT: &str = "needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) and ip, tc, nft";

/// A scenario that ERRORs after its cluster exists (a target the cluster does not have), then
/// the same isolation through Toxiproxy and at the IP layer, then IP-layer loss.
const SUITE: &str = r#"
[[scenario]]
name = "kill-a-missing-node"
family = "kill"
description = "Kills n5, which a three-node cluster does not have: an error at injection."
[scenario.phases]
warmup = 1
hold = 1
recovery = 1
final_read_deadline = 5
[[scenario.faults]]
kind = "kill"
target = "n5"

[[scenario]]
name = "proxy-isolate-leader"
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
name = "ip-isolate-leader"
family = "partition"
description = "The leader cut off at the IP layer."
[scenario.phases]
warmup = 3
hold = 12
recovery = 8
[[scenario.faults]]
kind = "partition"
shape = "isolate"
target = "leader"
layer = "ip"

[[scenario]]
name = "ip-loss"
family = "loss"
description = "10% packet loss on inter-node links at the IP layer."
[scenario.phases]
warmup = 2
hold = 6
recovery = 5
[[scenario.faults]]
kind = "loss"
links = "inter-node"
percent = 10
layer = "ip"
"#;

/// The node pids a scenario's progress named (`[name] nodes started (n1=… n2=… n3=…)`).
fn node_pids(lines: &[String], scenario: &str) -> Vec<u32> {
    let prefix = format!("[{scenario}] nodes started (");
    lines
        .iter()
        .filter_map(|l| l.split_once(&prefix).map(|(_, rest)| rest))
        .flat_map(|rest| rest.split(')').next().unwrap_or_default().split_whitespace())
        .filter_map(|kv| kv.split_once('=')?.1.parse().ok())
        .collect()
}

/// The number before `what` in `text` (`234 packets dropped`).
fn number_before(text: &str, what: &str) -> Option<u64> {
    let (head, _) = text.split_once(what)?;
    head.split_whitespace().last()?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) and ip, tc, nft"]
async fn netns_suite_proves_ip_faults_by_counters_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let scenarios = scenario::parse("netns-suite.toml", SUITE).unwrap();
    let fabric = Arc::new(Fabric::create().expect(NEEDS_ROOT));
    let run = fabric.run().to_string();
    let toxiproxy = EmbeddedServer::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let client = toxiproxy.client();
    let cfg = SuiteConfig {
        // Chronik's own fixed ports: each node has them in its own namespace.
        network: Network::Netns(Arc::clone(&fabric)),
        ..support::standin_suite(TopologySpec::default(), dir.path().join("out"), 11)
    };
    drop(fabric);
    let lines = Mutex::new(Vec::<String>::new());
    let progress = |line: &str| {
        eprintln!("{line}");
        lines.lock().unwrap().push(line.to_string());
    };
    let (mut results, mut left) = (Vec::new(), Vec::new());
    let end = runner::run_suite(
        &cfg,
        &client,
        &scenarios,
        &progress,
        &mut |r| {
            // Between scenarios only the run's bridge and state file remain.
            let pids = node_pids(&lines.lock().unwrap(), &r.name);
            let objects: Vec<String> = support::netns_leftovers(&run)
                .into_iter()
                .filter(|o| o != &format!("{run}-br") && !o.ends_with(".json"))
                .collect();
            left.push((r.name.clone(), pids.len(), pids.into_iter().filter(|p| os::pid_alive(*p)).count(), objects));
            results.push(r);
            Ok(())
        },
        std::future::pending(),
    )
    .await
    .unwrap();
    assert_eq!(end, SuiteEnd::Finished);
    let verdicts: Vec<(&str, Verdict)> = results.iter().map(|r| (r.name.as_str(), r.verdict)).collect();
    assert_eq!(
        verdicts,
        [
            ("kill-a-missing-node", Verdict::Error),
            ("proxy-isolate-leader", Verdict::Pass),
            ("ip-isolate-leader", Verdict::Pass),
            ("ip-loss", Verdict::Pass)
        ],
        "{:#?}",
        results.iter().map(|r| (&r.explanation, &r.fidelity)).collect::<Vec<_>>()
    );
    for (name, started, alive, objects) in &left {
        assert_eq!(*started, 3, "{name} named its three node pids");
        assert_eq!(*alive, 0, "{name} left node processes");
        assert!(objects.is_empty(), "{name} left {objects:?}");
    }
    // The wiring proof held with every node in its own namespace.
    let lines = lines.into_inner().unwrap();
    for r in &results {
        assert!(lines.iter().any(|l| l == &format!("[{}] wiring proven", r.name)), "{}", r.name);
    }

    // The IP isolation: proven by the nft counters (packets dropped during the hold) and by the
    // sockets in the namespaces (none carried a byte across the cut after the settle time).
    let ip = &results[2].fidelity;
    assert!(ip.proven, "{ip:?}");
    let dropped = ip.evidence.iter().find(|e| e.starts_with("IP-layer drop (nft counters")).expect("counter evidence");
    assert!(number_before(dropped, "packets dropped").unwrap() > 0, "{dropped}");
    assert!(ip.evidence.iter().any(|e| e.contains("none carried a byte across the cut")), "{:?}", ip.evidence);
    let inject = results[2].timeline.iter().find(|e| e.what.contains("inject")).map(|e| e.what.clone());
    assert!(inject.is_some(), "{:?}", results[2].timeline);

    // The loss: the kernel considered packets and dropped some; retransmissions are counted.
    let loss = &results[3].fidelity;
    assert!(loss.proven, "{loss:?}");
    let line = loss.evidence.iter().find(|e| e.starts_with("IP-layer loss (nft counters")).expect("loss evidence");
    assert!(number_before(line, "of").unwrap() > 0, "{line}");
    assert!(loss.evidence.iter().any(|e| e.starts_with("TCP retransmissions in the nodes' namespaces")), "{loss:?}");

    // The run's network goes with its last handle.
    drop(cfg);
    assert_eq!(support::netns_leftovers(&run), Vec::<String>::new());
}

#[test]
#[ignore = "needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) and ip, tc, nft"]
fn netns_ctrl_c_of_the_chaos_process_during_an_ip_fault_leaves_nothing() {
    chronik_chaos::netns::check_privileges().expect(NEEDS_ROOT);
    let dir = tempfile::tempdir().unwrap();
    let api = support::free_addr();
    let mut child = Command::new(CHAOS)
        .args(["chaos", "--network", "netns", "--chronik-bin", STAND_IN, "--scenario", "ip-isolate-leader"])
        .args(["--seed", "3", "--comment", "never", "--toxiproxy-listen", &api.to_string()])
        .arg("--out")
        .arg(dir.path().join("out"))
        .env_remove("TOXIPROXY_BIN")
        .env_remove("CHRONIK_BIN")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let (mut run, mut pids, mut seen) = (None, Vec::new(), Vec::new());
    for line in stdout.lines() {
        let line = line.unwrap();
        eprintln!("{line}");
        if let Some(rest) = line.split_once("network: netns, run ").map(|(_, r)| r) {
            run = rest.split_whitespace().next().map(str::to_string);
        }
        if line.contains("nodes started (") {
            pids = node_pids(std::slice::from_ref(&line), "ip-isolate-leader");
        }
        seen.push(line.clone());
        if line.contains("fault injected") {
            break;
        }
    }
    let run = run.unwrap_or_else(|| panic!("no run prefix in the progress: {seen:#?}"));
    assert_eq!(pids.len(), 3, "{seen:#?}");
    // The IP fault holds now: the run's namespaces exist, with rules in them.
    assert!(
        support::netns_leftovers(&run).iter().any(|o| o == &format!("{run}-n1")),
        "{:?}",
        support::netns_leftovers(&run)
    );
    let (status, stderr) = support::interrupt_and_wait(&mut child);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    let alive: Vec<u32> = pids.into_iter().filter(|p| os::pid_alive(*p)).collect();
    assert!(alive.is_empty(), "node processes left: {alive:?}");
    assert_eq!(support::netns_leftovers(&run), Vec::<String>::new());
}

#[test]
fn network_netns_without_privileges_exits_2_naming_what_is_missing_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    // As root it runs as nobody, who may not reach the binaries where they were built (a
    // checkout under a 0700 directory): copies, in a directory nobody may enter.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let copy = |bin: &str, name: &str| {
        let to = dir.path().join(name);
        std::fs::copy(bin, &to).unwrap();
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o755)).unwrap();
        to
    };
    let (chaos, stand_in) = (copy(CHAOS, "chronik-chaos"), copy(STAND_IN, "chronik-stand-in-node"));
    let mut cmd = Command::new(&chaos);
    cmd.args(["chaos", "--network", "netns", "--scenario", "baseline"])
        .arg("--chronik-bin")
        .arg(&stand_in)
        .arg("--out")
        .arg(&out)
        .current_dir(dir.path())
        .env_remove("CHRONIK_BIN");
    if nix::unistd::geteuid().is_root() {
        // As root, run it as nobody: no capabilities.
        std::os::unix::process::CommandExt::uid(&mut cmd, 65534);
        std::os::unix::process::CommandExt::gid(&mut cmd, 65534);
    } else if chronik_chaos::netns::check_privileges().is_ok() {
        eprintln!("skipped: this unprivileged user has the capabilities after all");
        return;
    }
    let output = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    for needed in ["--network netns cannot run here", "CAP_NET_ADMIN", "--network proxy"] {
        assert!(stderr.contains(needed), "{stderr}");
    }
    assert!(!out.exists(), "nothing started, not even the output directory");
}
