//! The suite as `chronik-chaos chaos` runs it (`runner::run_suite`), against stand-in nodes
//! (`chronik-stand-in-node`, not Chronik) and the embedded Toxiproxy: a scenario that ERRORs
//! after its cluster and proxies exist leaves nothing behind (no proxy on the server, no node
//! process, no port held) before the next starts, and the next two still run and PASS. The
//! progress announces the wiring proof before it runs.

mod support;

use std::sync::Mutex;

use chronik_chaos::cluster::preflight_ports;
use chronik_chaos::os;
use chronik_chaos::runner::{self, SuiteEnd};
use chronik_chaos::scenario;
use chronik_chaos::topology::Plan;
use chronik_chaos::toxiproxy::server::EmbeddedServer;
use chronik_chaos::verdict::Verdict;

/// The first scenario targets n5 of a three-node cluster: the file parses (n1..n9 are valid
/// targets), and the run fails only at injection, after the cluster, its proxies, the topic
/// and the workload exist.
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
name = "short-baseline"
family = "baseline"
description = "No fault, short phases."
[scenario.phases]
warmup = 1
hold = 1
recovery = 1
final_read_deadline = 10

[[scenario]]
name = "short-latency"
family = "latency"
description = "10 ms on every client-facing proxy, short phases."
[scenario.phases]
warmup = 1
hold = 1
recovery = 1
final_read_deadline = 10
[[scenario.faults]]
kind = "toxic"
links = "clients"
toxic = { type = "latency", stream = "both", latency = 10 }
"#;

/// What was left of a scenario when its result arrived (before the next scenario started).
#[derive(Debug)]
struct Left {
    scenario: String,
    proxies: Vec<String>,
    live_nodes: Vec<u32>,
    ports: Result<(), String>,
}

/// The node pids a scenario's progress named (`[name] nodes started (n1=… n2=… n3=…)`).
fn node_pids(lines: &[String], scenario: &str) -> Vec<u32> {
    let prefix = format!("[{scenario}] nodes started (");
    lines
        .iter()
        .filter_map(|l| l.strip_prefix(&prefix))
        .flat_map(|rest| rest.split(')').next().unwrap_or_default().split_whitespace())
        .filter_map(|kv| kv.split_once('=')?.1.parse().ok())
        .collect()
}

fn position(lines: &[String], line: &str) -> Option<usize> {
    lines.iter().position(|l| l.starts_with(line))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scenario_that_errors_after_its_proxies_exist_leaves_nothing_and_the_next_two_pass() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("suite.toml");
    std::fs::write(&file, SUITE).unwrap();
    let scenarios = scenario::load(&file).unwrap();
    assert_eq!(scenarios.len(), 3);

    let toxiproxy = EmbeddedServer::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let client = toxiproxy.client();
    let topology = support::standin_topology(support::free_standin_base(21000));
    let cfg = support::standin_suite(topology, dir.path().join("out"), 5);
    let plan = Plan::new(cfg.topology).unwrap();
    let lines = Mutex::new(Vec::<String>::new());
    let progress = |line: &str| {
        eprintln!("{line}");
        lines.lock().unwrap().push(line.to_string());
    };
    let mut results = Vec::new();
    let mut left = Vec::new();
    let end = runner::run_suite(
        &cfg,
        &client,
        &scenarios,
        &progress,
        &mut |r| {
            let proxies = tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(client.proxies()))
                .expect("the Toxiproxy server answers between scenarios");
            let pids = node_pids(&lines.lock().unwrap(), &r.name);
            assert_eq!(pids.len(), 3, "{} named its three node pids", r.name);
            left.push(Left {
                scenario: r.name.clone(),
                proxies: proxies.keys().cloned().collect(),
                live_nodes: pids.into_iter().filter(|p| os::pid_alive(*p)).collect(),
                ports: preflight_ports(&plan, None).map_err(|e| e.to_string()),
            });
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
        [("kill-a-missing-node", Verdict::Error), ("short-baseline", Verdict::Pass), ("short-latency", Verdict::Pass)],
        "{:#?}",
        results.iter().map(|r| &r.explanation).collect::<Vec<_>>()
    );
    let why = &results[0].explanation[0];
    assert!(why.contains("could not complete this scenario: target n5 is not a node of this 3-node cluster"), "{why}");
    // The error came after the cluster and its proxies existed, and while the workload ran.
    assert!(
        results[0].node_logs.len() == 3 && results[0].timeline.iter().any(|e| e.what.starts_with("workload started"))
    );

    for l in &left {
        assert!(l.proxies.is_empty(), "{} left proxies on the server: {:?}", l.scenario, l.proxies);
        assert!(l.live_nodes.is_empty(), "{} left node processes: {:?}", l.scenario, l.live_nodes);
        assert_eq!(l.ports, Ok(()), "{} left ports held", l.scenario);
    }
    assert_eq!(left.len(), 3);

    // The wiring proof is announced before it runs (it can take ~15 s), in every scenario.
    let lines = lines.into_inner().unwrap();
    for r in &results {
        let announced = position(&lines, &format!("[{}] {}", r.name, runner::PROVING_WIRING));
        let proven = position(&lines, &format!("[{}] wiring proven", r.name));
        assert!(announced.is_some() && announced < proven, "{}: {announced:?} then {proven:?}", r.name);
    }
}
