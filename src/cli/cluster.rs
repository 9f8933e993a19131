//! `chronik-chaos cluster start|status|stop`: the replacement for Chronik's tests/cluster scripts.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Subcommand;

use super::{InvokedAs, StateArgs, EXIT_OK};
use crate::cluster::admin::AdminClient;
use crate::cluster::config::ClusterSettings;
use crate::cluster::state::ClusterStateFile;
use crate::cluster::supervisor::NodeCommand;
use crate::cluster::{Cluster, ClusterSpec, ToxiproxySource};
use crate::topology::{FixedPorts, Plan, TopologySpec, DEFAULT_BASE_PORT};
use crate::toxiproxy::launcher::{self, LaunchConfig, LaunchError};
use crate::toxiproxy::Client;

/// `cluster status`: the recorded cluster runs with a node down.
pub const EXIT_NODE_DOWN: u8 = 1;

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Start Toxiproxy, one proxy per client endpoint and per directed Raft/WAL link, and N
    /// Chronik nodes wired through them; wait for a leader, prove the wiring, leave it running.
    Start(StartArgs),
    /// Show the recorded cluster: nodes, pids, leader, partitions, proxies with byte counters;
    /// exit 1 when a node is down.
    ///
    /// Exit codes: 0 every node of the recorded cluster runs (or no cluster is recorded, or
    /// every node is gone: then nothing runs); 1 the cluster runs with a node down (its
    /// process is gone); 2 the state cannot be read.
    Status {
        #[command(flatten)]
        state: StateArgs,
    },
    /// Stop every node (SIGTERM, grace, SIGKILL) and the Toxiproxy the cluster started; clear state.
    Stop {
        /// Seconds a node gets between SIGTERM and SIGKILL.
        #[arg(long, default_value_t = 10)]
        grace: u64,
        #[command(flatten)]
        state: StateArgs,
    },
}

#[derive(Debug, clap::Args)]
pub struct StartArgs {
    /// The chronik-server binary to run; `PATH version` must name Chronik (or the
    /// chronik-chaos stand-in), checked before anything starts.
    #[arg(long, env = "CHRONIK_BIN", value_name = "PATH")]
    pub chronik_bin: PathBuf,
    /// Number of nodes (3 to 9).
    #[arg(long, default_value_t = 3)]
    pub nodes: u8,
    /// First port of the plan: nodes bind base+10i.., proxies base+100.. to base+399.
    #[arg(long, default_value_t = DEFAULT_BASE_PORT)]
    pub base_port: u16,
    /// Where node configs, data and logs go (default: <state-dir>/cluster).
    #[arg(long, value_name = "DIR")]
    pub run_dir: Option<PathBuf>,
    /// Use the Toxiproxy server at this API address instead of starting one.
    #[arg(long, value_name = "ADDR", conflicts_with = "toxiproxy_bin")]
    pub toxiproxy_api: Option<String>,
    /// A real toxiproxy-server to start (else $TOXIPROXY_BIN, PATH, or the embedded server).
    #[arg(long, value_name = "PATH")]
    pub toxiproxy_bin: Option<PathBuf>,
    /// API address of the Toxiproxy server to start.
    #[arg(long, default_value = launcher::DEFAULT_LISTEN)]
    pub toxiproxy_listen: SocketAddr,
    /// RUST_LOG for the nodes.
    #[arg(long, default_value = "info,chronik_wal::group_commit=warn,tantivy=warn")]
    pub node_log: String,
    /// Extra librdkafka setting for the harness's own Kafka clients, KEY=VALUE (repeatable).
    #[arg(long = "kafka-client-config", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub kafka_client_config: Vec<(String, String)>,
    /// Seconds to wait for every node to answer and agree on a leader.
    #[arg(long, default_value_t = 90)]
    pub ready_timeout: u64,
    #[command(flatten)]
    pub state: StateArgs,
}

pub async fn run(cmd: ClusterCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ClusterCommand::Start(args) => start(args).await,
        ClusterCommand::Status { state } => status(state).await,
        ClusterCommand::Stop { grace, state } => stop(state, Duration::from_secs(grace)),
    }
}

pub(super) fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got `{s}`")),
    }
}

fn progress(line: &str) {
    println!("{} {line}", humantime::format_rfc3339_seconds(std::time::SystemTime::now()));
}

async fn start(args: StartArgs) -> anyhow::Result<ExitCode> {
    let via = InvokedAs::from_env();
    let state_file = ClusterStateFile::in_dir(&args.state.state_dir);
    if let Some(old) = state_file.load()? {
        if old.members.iter().any(|m| m.alive()) {
            bail!(
                "a cluster started from {} still runs (pids {}); {} first",
                args.state.state_dir.display(),
                old.members.iter().map(|m| m.pid.to_string()).collect::<Vec<_>>().join(", "),
                via.command("cluster stop", &args.state.state_dir)
            );
        }
        progress("note: cleaned a stale cluster state file (its processes are gone)");
        old.stop(Duration::from_secs(5));
        state_file.clear()?;
    }
    super::check_chronik_bin(&args.chronik_bin, via)?;
    let run_dir = args.run_dir.clone().unwrap_or_else(|| args.state.state_dir.join("cluster"));
    let run_dir = std::path::absolute(&run_dir).unwrap_or(run_dir);
    let spec = ClusterSpec {
        topology: TopologySpec {
            nodes: args.nodes,
            host: IpAddr::from([127, 0, 0, 1]),
            base_port: args.base_port,
            fixed: FixedPorts::CHRONIK,
            addressing: Default::default(),
        },
        settings: ClusterSettings::default(),
        node: NodeCommand {
            program: args.chronik_bin.clone(),
            rust_log: args.node_log.clone(),
            stop_grace: Duration::from_secs(30),
            extra_env: Vec::new(),
            faketime: None,
        },
        run_dir,
        ready_timeout: Duration::from_secs(args.ready_timeout),
        data_dir_limit: None,
        network: Default::default(),
    };
    let toxiproxy = match &args.toxiproxy_api {
        Some(api) => ToxiproxySource::Existing(Client::new(api)),
        None => ToxiproxySource::Launch(LaunchConfig {
            listen: args.toxiproxy_listen,
            choice: launcher::locate(args.toxiproxy_bin.as_deref())?,
            embedded_exe: std::env::current_exe().context("cannot find the chronik-chaos executable")?,
            log: args.state.state_dir.join("cluster-toxiproxy.log"),
            ready_timeout: Duration::from_secs(15),
        }),
    };
    let plan = Plan::new(spec.topology).map_err(|e| anyhow::anyhow!("--nodes/--base-port: {e}"))?;
    let api = if args.toxiproxy_api.is_some() { None } else { Some(args.toxiproxy_listen) };
    crate::cluster::preflight_ports(&plan, api).map_err(|e| {
        anyhow::anyhow!(super::ports_taken_message(&e, via, "cluster start", "cannot start the cluster"))
    })?;
    // Ctrl-C during start drops the half-built cluster, which stops what was started.
    let cluster = tokio::select! {
        c = Cluster::start(&spec, toxiproxy, &progress) => c.map_err(|e| match e.downcast::<LaunchError>() {
            Ok(e) => super::launch_error(e, via, "cluster start", "--toxiproxy-listen"),
            Err(e) => e,
        })?,
        _ = super::interrupted() => bail!("interrupted; everything started so far was stopped"),
    };
    progress(crate::runner::PROVING_WIRING);
    let extra: Vec<(&str, &str)> = args.kafka_client_config.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let report = tokio::select! {
        r = cluster.prove_wiring(Duration::from_secs(15), &extra) => r?,
        _ = super::interrupted() => bail!("interrupted; everything started so far was stopped"),
    };
    for line in report.to_string().lines() {
        progress(line);
    }
    progress("wiring proven: every client and inter-node connection crosses a proxy");
    let state = cluster.detach();
    state_file.save(&state)?;
    progress(&format!("cluster running; state in {}", state_file.path().display()));
    progress(&format!("bootstrap servers (proxies): {}", state_bootstrap(&state)));
    Ok(ExitCode::from(EXIT_OK))
}

fn state_bootstrap(state: &crate::cluster::state::ClusterState) -> String {
    (1..=state.nodes).map(|i| format!("127.0.0.1:{}", state.base_port + 100 + i as u16)).collect::<Vec<_>>().join(",")
}

async fn status(state: StateArgs) -> anyhow::Result<ExitCode> {
    let file = ClusterStateFile::in_dir(&state.state_dir);
    let Some(s) = file.load()? else {
        println!("cluster: not running (no state in {})", state.state_dir.display());
        return Ok(ExitCode::from(EXIT_OK));
    };
    let alive = s.members.iter().filter(|m| m.alive()).count();
    if alive == 0 {
        println!(
            "cluster: not running (stale state from {}: every node is gone; `cluster stop` cleans it)",
            s.started_at
        );
        return Ok(ExitCode::from(EXIT_OK));
    }
    println!(
        "cluster: {alive}/{} nodes alive, started {}, run dir {}",
        s.members.len(),
        s.started_at,
        s.run_dir.display()
    );
    println!("bootstrap servers (proxies): {}", state_bootstrap(&s));
    let mut partitions = Vec::new();
    for m in &s.members {
        let view = if m.alive() {
            match AdminClient::new(std::net::SocketAddr::from(([127, 0, 0, 1], m.admin_port))).status().await {
                Ok(st) => {
                    if partitions.is_empty() {
                        partitions = st.partitions.clone();
                    }
                    format!("leader {}", st.leader_id.map_or("unknown".into(), |l| format!("n{l}")))
                }
                Err(e) => format!("admin API: {e}"),
            }
        } else {
            "DOWN".to_string()
        };
        println!("  n{}  pid {:<8} {view}   log {}", m.id, m.pid, m.log.display());
    }
    let down: Vec<String> = s.members.iter().filter(|m| !m.alive()).map(|m| format!("n{}", m.id)).collect();
    if !partitions.is_empty() {
        println!("partitions:");
        for p in &partitions {
            println!(
                "  {}/{}  leader {:?}  replicas {:?}  isr {:?}",
                p.topic, p.partition, p.leader, p.replicas, p.isr
            );
        }
    }
    let client = Client::new(&s.toxiproxy_api);
    match client.proxies().await {
        Ok(proxies) => {
            let bytes = client.proxy_bytes().await.ok();
            println!("proxies at {}:", client.base_url());
            for p in proxies.values() {
                let b = bytes.as_ref().and_then(|b| b.get(&p.name));
                let counted =
                    b.map_or(String::new(), |b| format!("  bytes {}↑ {}↓", b.upstream_sent, b.downstream_sent));
                let toxics: Vec<String> = p.toxics.iter().map(ToString::to_string).collect();
                println!(
                    "  {:<14} {} -> {} {}{counted}{}",
                    p.name,
                    p.listen,
                    p.upstream,
                    if p.enabled { "" } else { "DISABLED" },
                    if toxics.is_empty() { String::new() } else { format!("  toxics: {}", toxics.join(", ")) }
                );
            }
        }
        Err(e) => println!("proxies: {e}"),
    }
    if !down.is_empty() {
        println!(
            "cluster degraded: {} down (exit {EXIT_NODE_DOWN}); see the log named above; {} stops the rest",
            down.join(", "),
            InvokedAs::from_env().command("cluster stop", &state.state_dir)
        );
        return Ok(ExitCode::from(EXIT_NODE_DOWN));
    }
    Ok(ExitCode::from(EXIT_OK))
}

fn stop(state: StateArgs, grace: Duration) -> anyhow::Result<ExitCode> {
    let file = ClusterStateFile::in_dir(&state.state_dir);
    let Some(s) = file.load()? else {
        println!("cluster: nothing to stop (no state in {})", state.state_dir.display());
        return Ok(ExitCode::from(EXIT_OK));
    };
    for line in s.stop(grace) {
        println!("{line}");
    }
    let left: Vec<u32> = s.members.iter().filter(|m| m.alive()).map(|m| m.pid).collect();
    if !left.is_empty() {
        bail!("pids {left:?} are still alive after SIGKILL; state kept in {}", file.path().display());
    }
    file.clear()?;
    println!("cluster stopped; state cleared");
    Ok(ExitCode::from(EXIT_OK))
}
