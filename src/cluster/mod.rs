//! A Chronik cluster under chaos: Toxiproxy with one proxy per client endpoint and per directed
//! inter-node link, node config files pointing through them, the supervisor that owns the node
//! processes, readiness, the wiring proof, teardown, and the state file for `cluster stop`.

pub mod admin;
pub mod config;
pub mod net;
pub mod state;
pub mod supervisor;
pub mod wiring;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use self::config::ClusterSettings;
use self::net::{ClusterNet, Network};
use self::supervisor::{NodeCommand, Supervisor};
use self::wiring::WiringReport;
use crate::disk::DataMounts;
use crate::os;
use crate::process::Termination;
use crate::topology::{Addressing, Plan, TopologySpec};
use crate::toxiproxy::launcher::{self, LaunchConfig, Launched};
use crate::toxiproxy::{Client, NewProxy};

/// Everything needed to bring a cluster up.
#[derive(Clone, Debug)]
pub struct ClusterSpec {
    pub topology: TopologySpec,
    pub settings: ClusterSettings,
    pub node: NodeCommand,
    /// Node configs, data and logs go under `<run_dir>/node<N>/`.
    pub run_dir: PathBuf,
    pub ready_timeout: Duration,
    /// Each node's data directory on a tmpfs of this many bytes (`crate::disk`), when a
    /// scenario fills a disk; `None`: a plain directory.
    pub data_dir_limit: Option<u64>,
    /// Loopback only, or each node in its own network namespace (`--network netns`); the
    /// topology's addressing must match (see [`Network::addressing`]).
    pub network: Network,
}

/// Which Toxiproxy server the cluster's proxies live on.
pub enum ToxiproxySource {
    /// Start one (real or embedded) and own it.
    Launch(LaunchConfig),
    /// Use a server that already runs at this API address.
    Existing(Client),
}

/// A running cluster. Dropping it tears everything down (nodes, then the Toxiproxy it started).
pub struct Cluster {
    pub plan: Plan,
    pub run_dir: PathBuf,
    pub toxiproxy: Client,
    /// Declared before `toxiproxy_server` and `data_mounts`: on drop, nodes stop before their
    /// proxies and their data directories go.
    pub supervisor: Supervisor,
    /// The nodes' network namespaces (`--network netns`), removed after the nodes stop.
    pub net: Option<ClusterNet>,
    /// The nodes' size-limited data directories, unmounted when the cluster goes.
    pub data_mounts: Option<DataMounts>,
    toxiproxy_server: Option<Launched>,
    /// The Raft leader all nodes agreed on at readiness.
    pub leader: u8,
}

/// How teardown went.
#[derive(Debug, Default)]
pub struct Teardown {
    pub nodes: Vec<(u8, Termination)>,
    pub toxiproxy: Option<Termination>,
    /// What the namespaces' teardown could not remove.
    pub net_problems: Vec<String>,
}

impl Teardown {
    /// Nodes that ignored SIGTERM past the grace period (a finding worth reporting).
    pub fn ignored_sigterm(&self) -> Vec<u8> {
        self.nodes.iter().filter(|(_, t)| t.ignored_sigterm()).map(|(id, _)| *id).collect()
    }
}

impl Cluster {
    /// Plans, checks every port, starts Toxiproxy and the proxies, writes the node configs,
    /// starts the nodes and waits until they agree on a leader. Progress goes to `progress`.
    pub async fn start(
        spec: &ClusterSpec,
        toxiproxy: ToxiproxySource,
        progress: &dyn Fn(&str),
    ) -> anyhow::Result<Cluster> {
        let plan = Plan::new(spec.topology)?;
        if plan.spec.addressing != spec.network.addressing() {
            bail!("the topology's addressing does not match the {} network", spec.network.name());
        }
        // The namespaces first: the proxies listen on their front addresses, which exist from here
        // on (dropped with `net` if anything below fails).
        let net = match &spec.network {
            Network::Proxy => None,
            Network::Netns(fabric) => {
                let net = ClusterNet::create(fabric, &plan).map_err(|e| anyhow::anyhow!("network namespaces: {e}"))?;
                progress(&format!("network namespaces of run {}: {}", fabric.run(), net.describe()));
                Some(net)
            }
        };
        preflight_ports(
            &plan,
            match &toxiproxy {
                ToxiproxySource::Launch(cfg) => Some(cfg.listen),
                ToxiproxySource::Existing(_) => None,
            },
        )?;
        let (client, toxiproxy_server) = match toxiproxy {
            ToxiproxySource::Launch(cfg) => {
                progress(&format!("starting toxiproxy on {}", cfg.listen));
                let launched = launcher::launch(&cfg).await?;
                progress(&format!("toxiproxy: {}", launched.kind));
                (launched.client(), Some(launched))
            }
            ToxiproxySource::Existing(client) => {
                let v = client.version().await?;
                progress(&format!("using toxiproxy {v} at {}", client.base_url()));
                (client, None)
            }
        };
        create_proxies(&client, &plan).await?;
        progress(&format!("{} proxies created and read back", plan.proxies.len()));
        let enters = match &net {
            Some(n) => n.enters().map_err(|e| anyhow::anyhow!("network namespaces: {e}"))?,
            None => Default::default(),
        };
        match start_nodes(spec, &plan, enters, progress).await {
            Ok((supervisor, data_mounts, leader)) => Ok(Cluster {
                plan,
                run_dir: spec.run_dir.clone(),
                toxiproxy: client,
                supervisor,
                net,
                data_mounts,
                toxiproxy_server,
                leader,
            }),
            Err(e) => {
                // The nodes are already stopped (the supervisor was dropped); on a shared
                // server, take our proxies away too so that a retry finds the ports free.
                if toxiproxy_server.is_none() {
                    delete_proxies(&client, &plan).await;
                }
                Err(e)
            }
        }
    }

    /// Proves the wiring: no node connection bypasses a proxy, inter-node links are seen
    /// through their proxies (waiting up to `wait` for lazily opened links), and Metadata
    /// fetched through a proxy lists only the client-facing proxies. Any failure is an error.
    pub async fn prove_wiring(&self, wait: Duration, client_extra: &[(&str, &str)]) -> anyhow::Result<WiringReport> {
        let pids: Vec<(u8, u32)> =
            self.supervisor.nodes().iter().filter_map(|n| n.pid().map(|p| (n.id(), p))).collect();
        let deadline = Instant::now() + wait;
        let report = loop {
            let mut report = wiring::classify(&self.plan, &wiring::observe(&pids));
            // Bytes seen by the kernel on each proxy's client-facing sockets, which belong to
            // this cluster's life only (the real server's own counters outlive a deleted proxy
            // and continue under a recreated one of the same name).
            if let Ok(sockets) = crate::sock_diag::tcp_sockets() {
                report.proxies_with_bytes = self
                    .plan
                    .proxies
                    .iter()
                    .filter(|p| sockets.iter().any(|s| s.local == p.listen && s.bytes_received > 0))
                    .map(|p| p.name.clone())
                    .collect();
            }
            if !report.bypasses.is_empty() || report.verdict().is_ok() || Instant::now() > deadline {
                break report;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        if let Err(e) = report.verdict() {
            bail!("wiring proof failed: {e}\n{report}");
        }
        let allowed: BTreeSet<SocketAddr> = self.plan.nodes.iter().map(|n| n.advertised_kafka).collect();
        let bootstrap = self.plan.nodes[0].advertised_kafka;
        wiring::check_metadata(bootstrap, &allowed, client_extra, Duration::from_secs(15))
            .await
            .map_err(|e| anyhow::anyhow!("wiring proof failed: {e}"))?;
        Ok(report)
    }

    /// Stops every node (SIGTERM, grace, SIGKILL), then the Toxiproxy server if we started it;
    /// on a shared server, removes this cluster's proxies instead.
    pub async fn teardown(mut self) -> Teardown {
        let nodes = self.supervisor.teardown();
        let toxiproxy = match self.toxiproxy_server.take() {
            Some(server) => Some(server.stop()),
            None => {
                delete_proxies(&self.toxiproxy, &self.plan).await;
                None
            }
        };
        // The nodes are gone and the proxies on the front addresses too.
        let net_problems = self.net.take().map(ClusterNet::teardown).unwrap_or_default();
        Teardown { nodes, toxiproxy, net_problems }
    }

    /// Leaves everything running and returns what `cluster stop` needs to end it.
    pub fn detach(self) -> state::ClusterState {
        // Only scenarios mount data directories, and a scenario's cluster is never detached.
        // `cluster start` runs on loopback only (`net` is `None`): namespaces need an owner.
        let Cluster { plan, run_dir, toxiproxy, supervisor, net: _, data_mounts: _, toxiproxy_server, leader } = self;
        let node_files: Vec<_> = supervisor.nodes().iter().map(|n| n.files.clone()).collect();
        let pids = supervisor.detach();
        state::ClusterState::new(
            &plan,
            run_dir,
            toxiproxy.base_url(),
            toxiproxy_server.map(Launched::detach),
            &pids,
            &node_files,
            leader,
        )
    }
}

/// Writes the configs, mounts the data directories when asked, starts the nodes and waits for
/// readiness. On an error the nodes stop before their data directories are unmounted.
async fn start_nodes(
    spec: &ClusterSpec,
    plan: &Plan,
    netns: std::collections::BTreeMap<u8, crate::netns::NetnsEnter>,
    progress: &dyn Fn(&str),
) -> anyhow::Result<(Supervisor, Option<DataMounts>, u8)> {
    prepare_run_dir(&spec.run_dir, plan)?;
    let files = config::write_all(plan, &spec.run_dir, &spec.settings)
        .with_context(|| format!("cannot write node configs under {}", spec.run_dir.display()))?;
    progress(&format!("node configs written under {}", spec.run_dir.display()));
    let mounts = match spec.data_dir_limit {
        Some(size) => {
            let dirs: Vec<(u8, PathBuf)> = files.iter().map(|f| (f.id, f.data_dir.clone())).collect();
            let m = DataMounts::mount_all(&dirs, size)?;
            progress(&format!("data directories on tmpfs mounts of {} each", crate::disk::bytes(size)));
            Some(m)
        }
        None => None,
    };
    let mut supervisor = Supervisor::new(&plan.nodes, files, spec.node.clone()).with_netns(netns);
    supervisor.start_all()?;
    let pids: Vec<String> =
        supervisor.nodes().iter().map(|n| format!("n{}={}", n.id(), n.pid().unwrap_or(0))).collect();
    progress(&format!("nodes started ({}); waiting for a leader", pids.join(" ")));
    let started = Instant::now();
    let leader = supervisor.wait_ready(spec.ready_timeout).await?;
    progress(&format!("ready: all nodes agree on leader n{leader} after {:.1}s", started.elapsed().as_secs_f64()));
    Ok((supervisor, mounts, leader))
}

/// Removes the plan's proxies (best effort).
pub async fn delete_proxies(client: &Client, plan: &Plan) {
    for p in &plan.proxies {
        let _ = client.delete_proxy(&p.name).await;
    }
}

/// What a planned port is for, which decides how it can be freed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortRole {
    /// A node listener or a proxy: moves with the base port.
    Plan,
    /// Fixed by Chronik (metrics, admin API, unified API): it cannot be moved.
    Fixed,
    /// The Toxiproxy API address.
    ToxiproxyApi,
}

/// One port the run needs that something else holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TakenPort {
    pub port: u16,
    /// What the plan wanted it for, e.g. `proxy kafka-n1`.
    pub what: String,
    pub role: PortRole,
    pub holder: os::PortHolder,
}

impl std::fmt::Display for TakenPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "port {} ({}) is taken, {}", self.port, self.what, self.holder)
    }
}

/// Ports the run needs are taken (the command line adds which flag moves them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortsTaken {
    pub taken: Vec<TakenPort>,
}

impl PortsTaken {
    /// One line per taken port.
    pub fn lines(&self) -> String {
        self.taken.iter().map(ToString::to_string).collect::<Vec<_>>().join(";\n  ")
    }

    pub fn any(&self, role: PortRole) -> bool {
        self.taken.iter().any(|t| t.role == role)
    }
}

impl std::fmt::Display for PortsTaken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cannot start the cluster: {}.\nStop what holds them (a cluster from another shell: `cluster stop`) \
             or choose another base port",
            self.lines()
        )
    }
}

impl std::error::Error for PortsTaken {}

/// Every port the plan (and the Toxiproxy API) needs must be free; otherwise one error
/// naming each taken port, what the plan wanted it for, and who holds it.
pub fn preflight_ports(plan: &Plan, toxiproxy_api: Option<SocketAddr>) -> Result<(), PortsTaken> {
    let mut wanted: Vec<(SocketAddr, String, PortRole)> = match plan.spec.addressing {
        Addressing::Shared => plan
            .ports()
            .into_iter()
            .map(|(port, who)| {
                let role = if who.contains("fixed by Chronik") { PortRole::Fixed } else { PortRole::Plan };
                (SocketAddr::new(plan.spec.host, port), who, role)
            })
            .collect(),
        // Node listeners and fixed ports are in the nodes' fresh namespaces; only the proxies
        // bind in ours (on front addresses, which a listener on 0.0.0.0 would shadow).
        Addressing::PerNode { .. } => {
            plan.proxies.iter().map(|p| (p.listen, format!("proxy {}", p.name), PortRole::Plan)).collect()
        }
    };
    if let Some(api) = toxiproxy_api {
        wanted.push((api, "the Toxiproxy API".to_string(), PortRole::ToxiproxyApi));
    }
    // Chronik binds its fixed ports on 0.0.0.0: check those on every interface.
    let taken: Vec<TakenPort> = wanted
        .into_iter()
        .filter_map(|(addr, what, role)| {
            let probe = if role == PortRole::Fixed { SocketAddr::new([0, 0, 0, 0].into(), addr.port()) } else { addr };
            os::port_holder(probe).map(|holder| TakenPort { port: addr.port(), what, role, holder })
        })
        .collect();
    if taken.is_empty() {
        Ok(())
    } else {
        Err(PortsTaken { taken })
    }
}

/// Creates the plan's proxies in one call and reads them back: each must exist, listen where
/// planned, point at the planned upstream and be enabled, with no toxics.
pub async fn create_proxies(client: &Client, plan: &Plan) -> anyhow::Result<()> {
    let wanted: Vec<NewProxy> =
        plan.proxies.iter().map(|p| NewProxy::new(&p.name, p.listen.to_string(), p.upstream.to_string())).collect();
    client.populate(&wanted).await.context("creating the proxies")?;
    client.reset().await.context("clearing toxics left on the proxies")?;
    let have = client.proxies().await?;
    for p in &plan.proxies {
        let Some(got) = have.get(&p.name) else { bail!("proxy {} missing after creating it", p.name) };
        if got.listen != p.listen.to_string()
            || got.upstream != p.upstream.to_string()
            || !got.enabled
            || !got.toxics.is_empty()
        {
            bail!(
                "proxy {} read back as listen {} upstream {} enabled {} with {} toxics; planned listen {} upstream {}",
                p.name,
                got.listen,
                got.upstream,
                got.enabled,
                got.toxics.len(),
                p.listen,
                p.upstream
            );
        }
    }
    Ok(())
}

/// Fresh node directories: old data would carry a previous cluster's Raft state.
fn prepare_run_dir(run_dir: &std::path::Path, plan: &Plan) -> anyhow::Result<()> {
    for n in &plan.nodes {
        let dir = run_dir.join(format!("node{}", n.id));
        if dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("cannot clear {}", dir.display()))?;
        }
    }
    std::fs::create_dir_all(run_dir).with_context(|| format!("cannot create {}", run_dir.display()))
}
