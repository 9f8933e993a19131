//! The cluster layer against a stand-in node (`chronik-stand-in-node`, a tiny program with
//! Chronik's command line and config file, not Chronik) and the embedded Toxiproxy: readiness,
//! the wiring proof (and that it catches a bypass), crash detection, kill, pause/resume,
//! restart, a node ignoring SIGTERM, a taken port, and teardown after SIGINT to the harness.
//! The same layer runs against real Chronik in `tests/chronik_live.rs` when `CHRONIK_BIN` is set.

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chronik_chaos::cluster::config::{self, ClusterSettings};
use chronik_chaos::cluster::supervisor::{NodeState, Supervisor};
use chronik_chaos::cluster::{create_proxies, wiring, Cluster, ClusterSpec, ToxiproxySource};
use chronik_chaos::os;
use chronik_chaos::topology::Plan;
use chronik_chaos::toxiproxy::server::EmbeddedServer;

const STAND_IN: &str = env!("CARGO_BIN_EXE_chronik-stand-in-node");

/// The command-line tests plan Chronik's fixed admin ports (10000+id) for the stand-in, as
/// `cluster start` does: one of them at a time.
static FIXED_PORTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn cluster_spec(run_dir: PathBuf, env: &[(&str, &str)]) -> ClusterSpec {
    support::standin_cluster_spec(21000, run_dir, env)
}

async fn start(run_dir: PathBuf, env: &[(&str, &str)]) -> (Cluster, EmbeddedServer) {
    let toxi = EmbeddedServer::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let spec = cluster_spec(run_dir, env);
    let cluster = Cluster::start(&spec, ToxiproxySource::Existing(toxi.client()), &|_| {}).await.unwrap();
    (cluster, toxi)
}

fn pids(c: &Cluster) -> Vec<u32> {
    c.supervisor.nodes().iter().filter_map(|n| n.pid()).collect()
}

async fn eventually_leader(c: &Cluster, want: u8) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = c.supervisor.raft_leader().await;
        if got == Some(want) {
            return;
        }
        assert!(Instant::now() < deadline, "leader never became n{want}, last {got:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_proves_wiring_and_tears_down() {
    let dir = tempfile::tempdir().unwrap();
    let (cluster, _toxi) = start(dir.path().to_path_buf(), &[]).await;
    assert_eq!(cluster.leader, 1);
    // Every stand-in dials every peer's Raft and WAL through its own outgoing proxy; the
    // proof passes as soon as inter-node traffic is seen, so wait until all links are up.
    let deadline = Instant::now() + Duration::from_secs(20);
    let report = loop {
        let report = cluster.prove_wiring(Duration::from_secs(10), &[]).await.unwrap();
        let wal = report.via_proxy.keys().filter(|k| k.starts_with("wal-")).count();
        if (report.raft_links_seen() == 6 && wal == 6) || Instant::now() > deadline {
            break report;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(report.bypasses.is_empty());
    assert_eq!(report.raft_links_seen(), 6, "{report}");
    assert_eq!(report.via_proxy.keys().filter(|k| k.starts_with("wal-")).count(), 6, "{report}");
    // Live counters of the embedded server saw the inter-node bytes.
    assert!(report.proxies_with_bytes.contains("raft-n2-to-n3"), "{report}");
    // The configs on disk are the ones the nodes run.
    let n2 = std::fs::read_to_string(dir.path().join("node2/node2.toml")).unwrap();
    assert!(n2.contains(&cluster.plan.link(2, 3, true).unwrap().listen.to_string()));

    let pids = pids(&cluster);
    assert_eq!(pids.len(), 3);
    let toxi_client = cluster.toxiproxy.clone();
    let teardown = cluster.teardown().await;
    assert_eq!(teardown.nodes.len(), 3);
    assert!(toxi_client.proxies().await.unwrap().is_empty(), "a cluster on a shared server removes its proxies");
    assert!(teardown.ignored_sigterm().is_empty());
    for pid in pids {
        assert!(!os::pid_alive(pid), "node pid {pid} survived teardown");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wiring_proof_catches_a_node_dialling_a_peer_directly() {
    let dir = tempfile::tempdir().unwrap();
    let toxi = EmbeddedServer::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let spec = cluster_spec(dir.path().to_path_buf(), &[]);
    let plan = Plan::new(spec.topology).unwrap();
    create_proxies(&toxi.client(), &plan).await.unwrap();
    let files = config::write_all(&plan, dir.path(), &ClusterSettings::default()).unwrap();
    // Node 1 is told node 2's real Raft port instead of its proxy: the old scripts' mistake.
    let text = std::fs::read_to_string(&files[0].config).unwrap();
    let proxy = plan.link(1, 2, true).unwrap().listen.to_string();
    std::fs::write(&files[0].config, text.replace(&proxy, &plan.node(2).unwrap().raft.to_string())).unwrap();
    let mut sup = Supervisor::new(&plan.nodes, files, spec.node.clone());
    sup.start_all().unwrap();
    sup.wait_ready(Duration::from_secs(30)).await.unwrap();
    let pids: Vec<(u8, u32)> = sup.nodes().iter().map(|n| (n.id(), n.pid().unwrap())).collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    let report = loop {
        let r = wiring::classify(&plan, &wiring::observe(&pids));
        if !r.bypasses.is_empty() || Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let err = report.verdict().unwrap_err();
    assert!(err.contains(&format!("{} (node 2 raft)", plan.node(2).unwrap().raft)), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_is_detected_with_exit_status_and_log() {
    let dir = tempfile::tempdir().unwrap();
    let (mut cluster, _toxi) = start(dir.path().to_path_buf(), &[]).await;
    let victim = cluster.supervisor.node(2).unwrap().pid().unwrap();
    // Killed from outside the supervisor: a crash it did not ask for.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(victim as i32), nix::sys::signal::Signal::SIGKILL).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let exits = loop {
        let e = cluster.supervisor.check_exits();
        if !e.is_empty() {
            break e;
        }
        assert!(Instant::now() < deadline, "the crash was never noticed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(exits[0].id, 2);
    assert_eq!(exits[0].status, "killed by SIGKILL");
    assert!(exits[0].tail.contains("stand-in node 2"), "log tail: {}", exits[0].tail);
    assert_eq!(cluster.supervisor.node(2).unwrap().state(), NodeState::Died);
    cluster.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_dies_during_startup_fails_readiness_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let toxi = EmbeddedServer::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let spec = cluster_spec(dir.path().to_path_buf(), &[("STAND_IN_EXIT_AFTER_MS", "200")]);
    let err = match Cluster::start(&spec, ToxiproxySource::Existing(toxi.client()), &|_| {}).await {
        Ok(_) => panic!("a cluster whose nodes crash must not become ready"),
        Err(e) => format!("{e:#}"),
    };
    assert!(toxi.client().proxies().await.unwrap().is_empty(), "a failed start removes its proxies");
    assert!(err.contains("exited on its own (exit code 3)"), "{err}");
    assert!(err.contains("crashing on purpose"), "the log tail is shown: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_pause_resume_restart_follow_the_leader() {
    let dir = tempfile::tempdir().unwrap();
    let (mut cluster, _toxi) = start(dir.path().to_path_buf(), &[]).await;
    eventually_leader(&cluster, 1).await;

    // Pause the leader: the others (a majority) move on to n2.
    let pid1 = cluster.supervisor.node(1).unwrap().pid().unwrap();
    cluster.supervisor.pause(1).unwrap();
    assert_eq!(cluster.supervisor.node(1).unwrap().state(), NodeState::Paused);
    eventually_leader(&cluster, 2).await;
    cluster.supervisor.resume(1).unwrap();
    eventually_leader(&cluster, 1).await;
    assert_eq!(cluster.supervisor.node(1).unwrap().pid(), Some(pid1), "pause/resume keeps the process");

    // Kill n1 (a crash on request): gone at once; n2 leads.
    let status = cluster.supervisor.kill(1).unwrap();
    assert_eq!(chronik_chaos::process::describe_exit(status), "killed by SIGKILL");
    assert!(!os::pid_alive(pid1));
    eventually_leader(&cluster, 2).await;

    // Restart n1 on the same data dir: back, and leading again.
    cluster.supervisor.restart(1).unwrap();
    let new_pid = cluster.supervisor.node(1).unwrap().pid().unwrap();
    assert_ne!(new_pid, pid1);
    assert!(dir.path().join("node1/data").is_dir());
    eventually_leader(&cluster, 1).await;
    assert_eq!(cluster.supervisor.wait_ready(Duration::from_secs(20)).await.unwrap(), 1);
    cluster.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_ignoring_sigterm_is_killed_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (mut cluster, _toxi) = start(dir.path().to_path_buf(), &[("STAND_IN_IGNORE_SIGTERM", "1")]).await;
    let pid = cluster.supervisor.node(3).unwrap().pid().unwrap();
    let how = cluster.supervisor.stop(3).unwrap();
    assert!(how.ignored_sigterm(), "{how:?}");
    assert!(!os::pid_alive(pid));
    let teardown = cluster.teardown().await;
    assert_eq!(teardown.ignored_sigterm(), vec![1, 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_port_is_named_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let toxi = EmbeddedServer::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let spec = cluster_spec(dir.path().to_path_buf(), &[]);
    let plan = Plan::new(spec.topology).unwrap();
    let squatter = std::net::TcpListener::bind(plan.link(3, 1, false).unwrap().listen).unwrap();
    let err = match Cluster::start(&spec, ToxiproxySource::Existing(toxi.client()), &|_| {}).await {
        Ok(_) => panic!("must refuse a taken port"),
        Err(e) => e.to_string(),
    };
    let port = squatter.local_addr().unwrap().port();
    assert!(
        err.contains(&format!("port {port} (proxy wal-n3-to-n1) is taken, held by pid {}", std::process::id())),
        "{err}"
    );
    assert!(toxi.client().proxies().await.unwrap().is_empty(), "nothing was created");
}

#[test]
fn sigint_during_start_tears_everything_down() {
    use std::io::{BufRead, BufReader};
    let _turn = FIXED_PORTS.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let base = support::free_standin_base(21000);
    let toxi_listen = support::free_addr();
    // The CLI plans Chronik's fixed admin ports (10000+id) for the stand-in too.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_chronik-chaos"))
        .args(["cluster", "start", "--chronik-bin", STAND_IN, "--base-port", &base.to_string()])
        .args(["--toxiproxy-listen", &toxi_listen.to_string(), "--state-dir"])
        .arg(dir.path())
        .env_remove("TOXIPROXY_BIN")
        .env("PATH", "/usr/bin:/bin")
        // The nodes (which inherit this) report no leader for a minute, so the start is still
        // waiting when the SIGINT comes, however slowly this test reads.
        .env("STAND_IN_EXIT_AFTER_MS", "60000")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let started = loop {
        let line = lines.next().expect("the harness stopped printing before starting nodes").unwrap();
        if line.contains("nodes started (") {
            break line;
        }
    };
    let pids: Vec<u32> = started
        .split(['(', ')'])
        .nth(1)
        .unwrap()
        .split_whitespace()
        .map(|kv| kv.split_once('=').unwrap().1.parse().unwrap())
        .collect();
    assert_eq!(pids.len(), 3, "{started}");
    let toxi_pid = os::port_holder(toxi_listen).and_then(|h| match h {
        os::PortHolder::Process(p) => Some(p.pid),
        os::PortHolder::Unknown => None,
    });
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGINT).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(2), "an interrupted start is a harness error");
    for pid in pids.iter().chain(toxi_pid.iter()) {
        assert!(!os::pid_alive(*pid), "pid {pid} survived SIGINT to the harness");
    }
    assert_eq!(os::port_holder(toxi_listen), None);
    assert!(!dir.path().join("cluster.json").exists(), "no state recorded for an interrupted start");
}

/// Runs `chronik-chaos <args> --state-dir <dir>` as `invoked_as` (xtask's
/// `CHRONIK_CHAOS_INVOKED_AS`) with no real Toxiproxy to be found.
fn cli(args: &[&str], dir: &std::path::Path, invoked_as: Option<&str>) -> std::process::Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_chronik-chaos"));
    cmd.args(args).arg("--state-dir").arg(dir).env_remove("TOXIPROXY_BIN").env("PATH", "/usr/bin:/bin");
    match invoked_as {
        Some(v) => cmd.env("CHRONIK_CHAOS_INVOKED_AS", v),
        None => cmd.env_remove("CHRONIK_CHAOS_INVOKED_AS"),
    };
    cmd.output().unwrap()
}

fn text(o: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// `cluster start` with the stand-in and only the flags `cargo xtask cluster start` forwards
/// (no client settings), then what a user does with it: `toxiproxy status` and `toxiproxy
/// start` recognise the cluster's Toxiproxy, `cluster status` exits 1 once a node is down,
/// `cluster stop` ends everything.
#[test]
fn cluster_start_with_the_stand_in_then_status_tells_a_node_down() {
    let _turn = FIXED_PORTS.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path();
    let base = support::free_standin_base(21000).to_string();
    let api = support::free_addr().to_string();
    let xtask = Some("cargo xtask cluster");
    let start = cli(
        &[
            "cluster",
            "start",
            "--chronik-bin",
            STAND_IN,
            "--nodes",
            "3",
            "--base-port",
            &base,
            "--toxiproxy-listen",
            &api,
        ],
        state,
        xtask,
    );
    let recorded: Option<chronik_chaos::cluster::state::ClusterState> =
        chronik_chaos::cluster::state::ClusterStateFile::in_dir(state).load().unwrap();
    // Whatever fails below, nothing is left running.
    struct Stop<'a>(&'a std::path::Path);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            cli(&["cluster", "stop", "--grace", "2"], self.0, None);
        }
    }
    let _stop = Stop(state);
    assert_eq!(start.status.code(), Some(0), "{}", text(&start));
    let t = text(&start);
    let announced = t.find(chronik_chaos::runner::PROVING_WIRING).expect("the proof is announced");
    assert!(announced < t.find("wiring proven").unwrap(), "{t}");
    let recorded = recorded.expect("cluster start records its state");
    let toxi = recorded.toxiproxy.clone().expect("cluster start started its own toxiproxy");

    let status = cli(&["cluster", "status"], state, xtask);
    assert_eq!(status.status.code(), Some(0), "{}", text(&status));
    assert!(text(&status).contains("cluster: 3/3 nodes alive"), "{}", text(&status));

    // The cluster's Toxiproxy is recorded in the cluster's state, not in toxiproxy.json.
    let status = cli(&["toxiproxy", "status"], state, Some("cargo xtask toxiproxy"));
    assert_eq!(status.status.code(), Some(0), "{}", text(&status));
    let t = text(&status);
    assert!(t.contains("toxiproxy: the cluster's server, started by `cluster start`"), "{t}");
    assert!(t.contains("`cargo xtask cluster stop` stops it with the cluster"), "{t}");
    assert!(t.contains(&format!("(pid {}", toxi.pid)) && t.contains("proxies (15)"), "{t}");
    let stop = cli(&["toxiproxy", "stop"], state, Some("cargo xtask toxiproxy"));
    assert_eq!(stop.status.code(), Some(0), "{}", text(&stop));
    assert!(text(&stop).contains("belongs to the cluster started from"), "{}", text(&stop));
    assert!(text(&stop).contains("`cargo xtask cluster stop` stops it with the cluster"), "{}", text(&stop));
    assert!(os::pid_alive(toxi.pid), "`toxiproxy stop` leaves the cluster's server alone");
    let again = cli(&["toxiproxy", "start", "--listen", &api], state, None);
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));
    let t = text(&again);
    assert!(t.contains(&format!("the toxiproxy of the cluster started from {} runs there", state.display())), "{t}");
    assert!(t.contains(&format!("`chronik-chaos cluster stop --state-dir {}` stops it", state.display())), "{t}");

    // A node down: status says which, and exits 1.
    let victim = recorded.members.iter().find(|m| m.id == 2).unwrap().pid;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(victim as i32), nix::sys::signal::Signal::SIGKILL).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while os::pid_alive(victim) {
        assert!(Instant::now() < deadline, "node 2 (pid {victim}) survived SIGKILL");
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = cli(&["cluster", "status"], state, xtask);
    assert_eq!(status.status.code(), Some(1), "{}", text(&status));
    let t = text(&status);
    assert!(t.contains("cluster: 2/3 nodes alive") && t.contains(&format!("n2  pid {victim:<8} DOWN")), "{t}");
    assert!(t.contains("cluster degraded: n2 down (exit 1)"), "{t}");

    let stop = cli(&["cluster", "stop", "--grace", "2"], state, xtask);
    assert_eq!(stop.status.code(), Some(0), "{}", text(&stop));
    for pid in recorded.members.iter().map(|m| m.pid).chain([toxi.pid]) {
        assert!(!os::pid_alive(pid), "pid {pid} survived cluster stop");
    }
}
