//! `chronik-chaos chaos`: runs the scenario suite against a Chronik binary and writes `results.json`.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};

use super::{InvokedAs, EXIT_OK, EXIT_SCENARIO_FAILURES};
use crate::cluster::net::Network;
use crate::github::comment::{CommentConfig, Mode};
use crate::github::{ContextInputs, GithubContext};
use crate::report::escape::workflow_data;
use crate::results::{ChronikInfo, Results, Shard, Sharding, RESULTS_VERSION};
use crate::runner::{self, SuiteConfig};
use crate::scenario::{self, Scenario, SelectError};
use crate::topology::{FixedPorts, Plan, TopologySpec, DEFAULT_BASE_PORT};
use crate::toxiproxy::launcher::{self, LaunchConfig};
use crate::verdict::Verdict;

#[derive(Debug, clap::Args)]
pub struct ChaosArgs {
    /// The chronik-server binary to test; `PATH version` must name Chronik (or the
    /// chronik-chaos stand-in), checked before anything starts.
    #[arg(long, env = "CHRONIK_BIN", value_name = "PATH", required_unless_present_any = ["list", "dry_run"])]
    pub chronik_bin: Option<PathBuf>,
    /// Run only this scenario (repeatable; default: all).
    #[arg(long = "scenario", value_name = "NAME")]
    pub scenarios: Vec<String>,
    /// Add the scenarios of this TOML file to the catalogue (repeatable).
    #[arg(long = "scenarios-file", value_name = "FILE")]
    pub scenario_files: Vec<PathBuf>,
    /// Seed for every random choice (targets); printed and recorded so a run can be repeated.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Where results.json, histories and node logs go.
    #[arg(long, default_value = "target/chronik-chaos/run", value_name = "DIR")]
    pub out: PathBuf,
    /// A real toxiproxy-server to use (else $TOXIPROXY_BIN, PATH, or the embedded server).
    #[arg(long, value_name = "PATH")]
    pub toxiproxy_bin: Option<PathBuf>,
    /// API address for the Toxiproxy server this run starts.
    #[arg(long, default_value = launcher::DEFAULT_LISTEN)]
    pub toxiproxy_listen: SocketAddr,
    /// First port of the cluster plan.
    #[arg(long, default_value_t = DEFAULT_BASE_PORT)]
    pub base_port: u16,
    /// Nodes of each scenario's cluster (3 to 9), unless the scenario sets its own `nodes`
    /// (the 5-node splits, ring and bridge do). Shapes that need more nodes than a scenario
    /// would get are refused before anything starts.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(3..=9))]
    pub nodes: u8,
    /// RUST_LOG for the nodes.
    #[arg(long, default_value = "info,chronik_wal::group_commit=warn,tantivy=warn")]
    pub node_log: String,
    /// Extra librdkafka setting for the workload's clients, KEY=VALUE (repeatable).
    #[arg(long = "kafka-client-config", value_name = "KEY=VALUE", value_parser = super::cluster::parse_key_value)]
    pub kafka_client_config: Vec<(String, String)>,
    /// Seconds a cluster start-up may take before it counts as hung (healthy nodes need ~4 s).
    #[arg(long, default_value_t = 45)]
    pub ready_timeout: u64,
    /// Cluster start-ups tried per scenario; failed ones are recorded as findings.
    #[arg(long, default_value_t = 3)]
    pub start_attempts: u32,
    /// Run only shard K of N of the selected scenarios (1 <= K <= N): scenario i of the
    /// selection, in order, goes to shard (i mod N) + 1. Each scenario keeps the seed it has in
    /// the whole run; results.json records the shard and the whole selection, and
    /// `chronik-chaos merge` joins the N results files into one.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<Shard>,
    /// Run the fault schedules recorded in this results.json again, exactly: same faults, same
    /// windows, the same nodes (roles pinned to the nodes they resolved to). Each --scenario
    /// names a run in the file (`NAME`, `NAME#3` for a repetition, `NAME~smallest` for the
    /// smallest schedule a shrink found); without --scenario, every run in the file.
    #[arg(long, value_name = "RESULTS", conflicts_with = "shard")]
    pub replay: Option<PathBuf>,
    /// Run each selected scenario N times (named NAME#1..NAME#N, each with its own seed). A
    /// scenario that failed some runs and passed the others is FLAKY in the summary, with its
    /// failure rate.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub repeat: u32,
    /// Repeat each selected scenario until a run does not pass (at most --repeat runs when it
    /// is given, else 100).
    #[arg(long)]
    pub until_fail: bool,
    /// When a scenario with a generated schedule FAILs or HANGs, run up to this many smaller
    /// schedules (a fault dropped, a fault halved) to find the smallest that still does, and
    /// record both with their replay commands (0: no shrinking).
    #[arg(long, value_name = "RUNS", default_value_t = 0)]
    pub shrink_budget: usize,
    /// Soak: each selected scenario runs one cluster life under a generated schedule of about
    /// this long (e.g. `10m`), drawn with the seed from its faults (its own fault and gap
    /// ranges when it has a generated schedule, else 5–15 s each), checked as one history.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, conflicts_with = "replay")]
    pub soak: Option<Duration>,
    /// List the scenarios (built-in and from --scenarios-file) and exit; with --shard, only
    /// the selected scenarios (--scenario) that shard runs, with their place in the selection.
    #[arg(long)]
    pub list: bool,
    /// Check the scenario selection, scenario files, output directory, Toxiproxy choice and
    /// that every port the run binds is free (Toxiproxy API, node and proxy ports, Chronik's
    /// fixed ports), print what would run, and exit (0 when a run could start, 2 otherwise).
    /// Needs no Chronik.
    #[arg(long)]
    pub dry_run: bool,
    /// Which verdicts make the exit code 1: any (FAIL, HANG or ERROR), safety (FAIL only),
    /// never (exit 0 whatever the verdicts; harness errors still exit 2).
    #[arg(long, value_enum, default_value_t = FailOn::Any)]
    pub fail_on: FailOn,
    /// The pull request's sticky comment: auto (always when running in a GitHub Actions
    /// pull-request workflow, else never), always, on-failure, never. Token, repository and
    /// pull request come from GITHUB_TOKEN, GITHUB_REPOSITORY and GITHUB_EVENT_PATH; see
    /// `chronik-chaos comment --help`. A comment that cannot be posted is a warning, never a
    /// change of the exit code.
    #[arg(long, value_enum, default_value_t = CommentChoice::Auto)]
    pub comment: CommentChoice,
    /// Where the nodes run: proxy (every node on loopback; faults through Toxiproxy only) or
    /// netns (Linux, root: each node in its own network namespace with its own address; nodes
    /// still dial each other through the Toxiproxy link proxies, so every scenario runs
    /// unchanged, and the IP-layer faults (`layer = "ip"`, `loss`) work). Without netns the
    /// default selection leaves the IP-layer scenarios out; named ones are N/A.
    #[arg(long, value_enum, default_value_t = NetworkMode::Proxy)]
    pub network: NetworkMode,
    /// Run up to N scenarios at once, each on its own cluster (needs --network netns: every
    /// job gets its own network, so Chronik's fixed ports do not collide, and its own Toxiproxy,
    /// API on --toxiproxy-listen's port + job - 1). Seeds, results.json and the reports are those
    /// of a sequential run. Not with --until-fail or --shrink-budget, which decide from one run
    /// before the next.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=16))]
    pub jobs: u16,
    #[command(flatten)]
    pub report: super::report::ReportFlags,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum NetworkMode {
    Proxy,
    Netns,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CommentChoice {
    Auto,
    Always,
    OnFailure,
    Never,
}

impl CommentChoice {
    /// The comment mode, with `auto` decided from the Actions environment.
    fn mode(self, in_pr_workflow: bool) -> Mode {
        match self {
            CommentChoice::Auto if in_pr_workflow => Mode::Always,
            CommentChoice::Auto | CommentChoice::Never => Mode::Never,
            CommentChoice::Always => Mode::Always,
            CommentChoice::OnFailure => Mode::OnFailure,
        }
    }
}

/// Whether this process runs in a GitHub Actions workflow triggered by a pull request.
fn in_pr_workflow() -> bool {
    std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true")
        && std::env::var("GITHUB_EVENT_NAME").is_ok_and(|e| e.starts_with("pull_request"))
}

/// Posts the report as the PR comment when the mode says so; problems become warnings.
async fn comment(results: &Results, markdown: &str, choice: CommentChoice) {
    let mode = choice.mode(in_pr_workflow());
    if mode == Mode::Never {
        return;
    }
    let failed = results.worst() > Verdict::NotApplicable;
    let ctx = match GithubContext::resolve(&ContextInputs::from_env()) {
        Ok(ctx) => ctx,
        Err(e) => {
            println!("::warning title=chronik-chaos PR comment::{}", workflow_data(&format!("no comment: {e}")));
            return;
        }
    };
    let cfg = CommentConfig { mode, ..CommentConfig::default() };
    // The step summary already holds the report (written with the other reports).
    if let Err(e) = super::comment::post(&ctx, &cfg, markdown, failed, None).await {
        println!("::warning title=chronik-chaos PR comment::{}", workflow_data(&format!("{e:#}")));
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FailOn {
    Any,
    Safety,
    Never,
}

/// The exit code for a finished run.
pub fn exit_code(results: &Results, fail_on: FailOn) -> u8 {
    let failed = match fail_on {
        // A scenario that does not apply to the cluster says nothing about it: no failure.
        FailOn::Any => results.worst() > Verdict::NotApplicable,
        FailOn::Safety => results.scenarios.iter().any(|s| s.verdict == Verdict::Fail),
        FailOn::Never => false,
    };
    if failed {
        EXIT_SCENARIO_FAILURES
    } else {
        EXIT_OK
    }
}

pub async fn run(args: ChaosArgs) -> anyhow::Result<ExitCode> {
    let via = InvokedAs::from_env();
    let catalogue = catalogue(&args.scenario_files)?;
    // Columns as wide as their longest entry.
    let (name_w, family_w) = (
        catalogue.iter().map(|s| s.name.len()).max().unwrap_or(0),
        catalogue.iter().map(|s| s.family.len()).max().unwrap_or(0),
    );
    if args.list && args.shard.is_none() {
        for s in &catalogue {
            println!("{:<name_w$}  {:<family_w$}  {}", s.name, s.family, s.description);
        }
        return Ok(ExitCode::from(EXIT_OK));
    }
    // A replay runs the recorded runs of a results file; otherwise the selection by name.
    let (replay_seed, selected) = match &args.replay {
        Some(path) => {
            let (seed, runs) = super::replay::replay_runs(path, &args.scenarios, &catalogue)?;
            (Some(seed), runs)
        }
        None => (
            None,
            scenario::select(&catalogue, &args.scenarios).map_err(|e| match e {
                SelectError::Duplicate(name) => {
                    anyhow::anyhow!("--scenario {name} is given more than once; name each scenario once")
                }
                SelectError::Unknown { .. } => anyhow::anyhow!("--scenario: {e}"),
            })?,
        ),
    };
    // Without namespaces the IP-layer scenarios cannot run: the default selection leaves them
    // out (so a default run's results do not change); named ones run as N/A.
    let selected = if args.network == NetworkMode::Proxy && args.scenarios.is_empty() && args.replay.is_none() {
        let (ip, rest): (Vec<Scenario>, Vec<Scenario>) =
            selected.into_iter().partition(|s| s.faults.iter().any(|f| f.needs_netns()));
        if !ip.is_empty() && !args.list {
            progress(&format!(
                "left out (they need --network netns): {}",
                ip.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
            ));
        }
        rest
    } else {
        selected
    };
    let selected = match args.soak {
        Some(d) => selected.iter().map(|s| soaked(s, d)).collect::<anyhow::Result<Vec<_>>>()?,
        None => selected,
    };
    let mut sharding =
        Sharding { shard: args.shard, selection: selected.iter().map(|s| s.name.clone()).collect(), out_dir: None };
    // Each chosen scenario with its index in the whole selection (its seed offset).
    let chosen: Vec<(usize, Scenario)> = match args.shard {
        Some(shard) => scenario::shard_of(&selected, shard),
        None => selected.iter().cloned().enumerate().collect(),
    };
    let shard_note = match args.shard {
        Some(shard) => format!(" (shard {shard} of {} selected)", selected.len()),
        None => String::new(),
    };
    if args.list {
        for (i, s) in &chosen {
            println!("{:<name_w$}  {:<family_w$}  #{:<3} {}", s.name, s.family, i + 1, s.description);
        }
        return Ok(ExitCode::from(EXIT_OK));
    }
    for (_, s) in &chosen {
        let n = s.nodes.unwrap_or(args.nodes);
        scenario::check_cluster_size(&s.faults, Some(n), "pass a larger --nodes or set `nodes` in the scenario")
            .map_err(|e| anyhow::anyhow!("scenario `{}` ({}): {e}", s.name, s.source))?;
    }
    // Ports are checked for the largest cluster the run starts.
    let topology = TopologySpec {
        nodes: chosen.iter().map(|(_, s)| s.nodes.unwrap_or(args.nodes)).max().unwrap_or(args.nodes),
        host: IpAddr::from([127, 0, 0, 1]),
        base_port: args.base_port,
        fixed: FixedPorts::CHRONIK,
        addressing: Default::default(),
    };
    check_jobs(&args)?;
    // Before anything starts (the dry run checks it too).
    if args.network == NetworkMode::Netns {
        crate::netns::check_privileges().map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    if args.dry_run {
        let out = std::path::absolute(&args.out).unwrap_or(args.out.clone());
        check_writable(&out)?;
        let toxiproxy = launcher::locate(args.toxiproxy_bin.as_deref())?;
        if let Some(b) = &args.report.baseline {
            Results::read(b).map_err(|e| anyhow::anyhow!("--baseline: {e}"))?;
        }
        check_ports(topology, args.network, args.toxiproxy_listen, via)?;
        println!(
            "would run {} scenario(s){shard_note}: {}",
            chosen.len(),
            chosen.iter().map(|(_, s)| s.name.as_str()).collect::<Vec<_>>().join(", ")
        );
        match toxiproxy {
            launcher::ServerChoice::Real { bin, found_by } => {
                println!("toxiproxy: real toxiproxy-server {} (from {found_by})", bin.display())
            }
            launcher::ServerChoice::Embedded => println!("toxiproxy: the embedded server (no toxiproxy-server found)"),
        }
        match args.network {
            NetworkMode::Proxy => println!(
                "ports: free (toxiproxy API {}, nodes and proxies from {}, Chronik's fixed ports)",
                args.toxiproxy_listen, args.base_port
            ),
            NetworkMode::Netns => println!(
                "ports: toxiproxy API {} free; network: netns (privileges and tools present; nodes and their fixed \
                 ports in their own namespaces, proxies on their front addresses, checked per cluster)",
                args.toxiproxy_listen
            ),
        }
        if args.jobs > 1 {
            for lane in 1..args.jobs {
                let api =
                    SocketAddr::new(args.toxiproxy_listen.ip(), args.toxiproxy_listen.port().saturating_add(lane));
                if let Some(holder) = crate::os::port_holder(api) {
                    bail!(
                        "port {api} (job {}'s Toxiproxy API: --toxiproxy-listen + {lane}) is taken, {holder}; choose \
                         another --toxiproxy-listen",
                        lane + 1
                    );
                }
            }
            println!(
                "jobs: {} side by side, each with its own network and Toxiproxy (API ports {} to {})",
                args.jobs,
                args.toxiproxy_listen.port(),
                args.toxiproxy_listen.port().saturating_add(args.jobs - 1)
            );
        }
        println!("output: {}", out.display());
        return Ok(ExitCode::from(EXIT_OK));
    }
    // From here on a Ctrl-C never kills the process half-way: whatever runs is stopped first.
    let interrupts = super::Interrupts::install();
    let bin = args.chronik_bin.clone().context("--chronik-bin is required")?;
    let node_binary = super::check_chronik_bin(&bin, via)?;
    let out = std::path::absolute(&args.out).unwrap_or(args.out.clone());
    if sharding.shard.is_some() {
        sharding.out_dir = Some(out.clone());
    }
    check_writable(&out)?;
    check_ports(topology, args.network, args.toxiproxy_listen, via)?;
    let seed = args.seed.or(replay_seed).unwrap_or_else(|| fastrand::u64(..) % 1_000_000);
    progress(&format!(
        "seed {seed} (repeat with --seed {seed}); {} scenario(s){shard_note}; output in {}",
        chosen.len(),
        out.display()
    ));

    // One fabric (bridge, subnet, state file) for the whole run, after the leftovers of killed
    // runs are swept; dropped (removed) whatever way this function ends. Side by side, each
    // job makes its own.
    let network = match args.network {
        NetworkMode::Proxy => Network::Proxy,
        NetworkMode::Netns => {
            let swept =
                crate::netns::sweep(crate::netns::PRODUCT_PREFIX).context("sweeping leftovers of killed runs")?;
            if !swept.is_empty() {
                progress(&swept.to_string());
            }
            if args.jobs > 1 {
                Network::Proxy
            } else {
                let fabric =
                    crate::netns::Fabric::create().context("creating the run's network (bridge and subnet)")?;
                progress(&format!(
                    "network: netns, run {} on {} (bridge {}, host address {})",
                    fabric.run(),
                    fabric.subnet(),
                    fabric.bridge(),
                    fabric.host_addr()
                ));
                Network::Netns(std::sync::Arc::new(fabric))
            }
        }
    };
    let launch_config = LaunchConfig {
        listen: args.toxiproxy_listen,
        choice: launcher::locate(args.toxiproxy_bin.as_deref())?,
        embedded_exe: std::env::current_exe().context("cannot find the chronik-chaos executable")?,
        log: out.join("toxiproxy.log"),
        ready_timeout: Duration::from_secs(15),
    };
    let cfg = SuiteConfig {
        chronik_bin: bin.clone(),
        // Each scenario's own `nodes`, else this.
        topology: TopologySpec { nodes: args.nodes, ..topology },
        node_log: args.node_log.clone(),
        out_dir: out.clone(),
        seed,
        client_extra: args.kafka_client_config.clone(),
        watch_metrics: runner::DEFAULT_METRICS.iter().map(|s| s.to_string()).collect(),
        must_move: vec!["chronik_produce_requests_total".to_string()],
        ready_timeout: Duration::from_secs(args.ready_timeout),
        start_attempts: args.start_attempts,
        node_env: Vec::new(),
        network,
    };
    let mut results = Results {
        version: RESULTS_VERSION,
        tool: concat!("chronik-chaos ", env!("CARGO_PKG_VERSION")).to_string(),
        chronik: ChronikInfo { version: node_binary.version().to_string(), binary: bin },
        toxiproxy: String::new(),
        seed,
        started_at: now(),
        finished_at: String::new(),
        scenarios: Vec::new(),
    };
    let results_file = out.join("results.json");
    let batches = batches(&args, &chosen, seed);
    let interrupts = tokio::sync::Mutex::new(interrupts);
    let end = if args.jobs > 1 {
        for (lane, _) in (0..args.jobs).zip(&batches) {
            let l = super::jobs::lane_launch(&launch_config, usize::from(lane))?;
            if let Some(holder) = crate::os::port_holder(l.listen) {
                bail!(
                    "port {} (job {}'s Toxiproxy API: --toxiproxy-listen + {lane}) is taken, {holder}; choose another \
                     --toxiproxy-listen",
                    l.listen,
                    lane + 1
                );
            }
        }
        let jobs = batches
            .iter()
            .enumerate()
            .flat_map(|(index, b)| {
                b.scenarios.iter().map(move |s| super::jobs::Job { index, seed: b.seed, scenario: s.clone() })
            })
            .collect();
        progress(&format!("{} job(s) side by side, each with its own network, Toxiproxy and cluster", args.jobs));
        let spec = super::jobs::LaneSpec { cfg, launch: launch_config, netns: args.network == NetworkMode::Netns };
        let ended = super::jobs::run(spec, jobs, usize::from(args.jobs), progress, &interrupts, &mut |r, toxiproxy| {
            toxiproxy.clone_into(&mut results.toxiproxy);
            results.scenarios.push(r);
            results.write_with(&results_file, &sharding).context("writing results.json")
        })
        .await?;
        results.toxiproxy = ended.toxiproxy.unwrap_or_default();
        ended.end
    } else {
        sequential(&args, cfg, launch_config, &batches, &selected, &mut results, &results_file, &sharding, &interrupts)
            .await?
    };
    results.finished_at = now();
    if let runner::SuiteEnd::Interrupted { during } = end {
        let _ = results.write_with(&results_file, &sharding);
        bail!(
            "interrupted during {during}; everything started was stopped; partial results in {}",
            results_file.display()
        );
    }
    results.write_with(&results_file, &sharding).context("writing results.json")?;
    println!();
    for s in &results.scenarios {
        println!(
            "{:<6} {:<22} acked {:>6}  lost {}  unseen {}",
            s.verdict,
            s.name,
            s.counts.acked,
            s.anomalies.lost.len(),
            s.anomalies.unseen.len()
        );
    }
    for f in results.flaky() {
        println!("{f}");
    }
    for s in results.scenarios.iter().filter(|s| s.shrunk.is_some()) {
        let sh = s.shrunk.as_ref().unwrap();
        println!(
            "shrunk {}: {} step(s) → {} ({} runs{}); replay: chronik-chaos chaos --replay {} --scenario {}{}",
            s.name,
            sh.original.steps.len(),
            sh.smallest.describe().join("; "),
            sh.tries,
            if sh.exhausted_budget { ", budget used up" } else { "" },
            results_file.display(),
            s.name,
            super::replay::SMALLEST
        );
    }
    println!("results: {}", results_file.display());
    let markdown = super::report::render(&results, &out, &out, &args.report)?;
    comment(&results, &markdown, args.comment).await;
    Ok(ExitCode::from(exit_code(&results, args.fail_on)))
}

/// The scenarios one after another on one Toxiproxy server (and, with --network netns, the
/// run's one fabric): repetitions until one fails, shrinking after a failure.
#[allow(clippy::too_many_arguments)]
async fn sequential(
    args: &ChaosArgs,
    mut cfg: SuiteConfig,
    launch_config: LaunchConfig,
    batches: &[Batch],
    selected: &[Scenario],
    results: &mut Results,
    results_file: &Path,
    sharding: &Sharding,
    interrupts: &tokio::sync::Mutex<super::Interrupts>,
) -> anyhow::Result<runner::SuiteEnd> {
    let via = InvokedAs::from_env();
    let launch = launcher::launch(&launch_config);
    // Dropping a half-started launch stops the server it started.
    let launched = tokio::select! {
        l = launch => l.map_err(|e| super::launch_error(e, via, "chaos", "--toxiproxy-listen"))?,
        _ = async { interrupts.lock().await.recv().await } => {
            bail!("interrupted while starting Toxiproxy; nothing is left running")
        }
    };
    progress(&format!("toxiproxy: {}", launched.kind));
    results.toxiproxy = launched.kind.to_string();
    let client = launched.client();
    let mut end = runner::SuiteEnd::Finished;
    // Groups (a scenario's repetitions) that stopped repeating at a run that did not pass.
    let mut stopped: std::collections::BTreeSet<usize> = Default::default();
    for b in batches {
        if args.until_fail && stopped.contains(&b.group) {
            continue;
        }
        cfg.seed = b.seed;
        if let (Some(shard), [s]) = (args.shard, b.scenarios.as_slice()) {
            let i = selected.iter().position(|x| x.name == s.name).unwrap_or_default();
            progress(&format!("shard {shard}: {} is scenario {} of the {} selected", s.name, i + 1, selected.len()));
        }
        let before = results.scenarios.len();
        end = runner::run_suite(
            &cfg,
            &client,
            &b.scenarios,
            &progress,
            &mut |r| {
                results.scenarios.push(r);
                results.write_with(results_file, sharding).context("writing results.json")
            },
            async { interrupts.lock().await.recv().await },
        )
        .await?;
        if end != runner::SuiteEnd::Finished {
            break;
        }
        if results.scenarios[before..].iter().any(|r| r.verdict > Verdict::NotApplicable) {
            stopped.insert(b.group);
        }
        if args.shrink_budget > 0 {
            if let [scenario] = b.scenarios.as_slice() {
                let last = results.scenarios.len() - 1;
                let interrupted = std::cell::Cell::new(false);
                let shrunk =
                    shrink(args, &cfg, &client, scenario, &results.scenarios[last], interrupts, &interrupted).await;
                if interrupted.get() {
                    end = runner::SuiteEnd::Interrupted { during: format!("shrinking {}", scenario.name) };
                    break;
                }
                if let Some(shrunk) = shrunk {
                    results.scenarios[last].shrunk = Some(shrunk);
                    results.write_with(results_file, sharding).context("writing results.json")?;
                }
            }
        }
    }
    drop(launched);
    Ok(end)
}

/// `s` as a soak of about `d`: a generated schedule with as many faults as fit on average.
fn soaked(s: &Scenario, d: Duration) -> anyhow::Result<Scenario> {
    use crate::scenario::Timing;
    if s.faults.is_empty() {
        bail!("--soak: scenario `{}` has no faults to draw a schedule from", s.name);
    }
    let (fault, gap) = match &s.timing {
        Timing::Generated { fault, gap, .. } => (*fault, *gap),
        _ => ((Duration::from_secs(5), Duration::from_secs(15)), (Duration::from_secs(5), Duration::from_secs(15))),
    };
    let mean = |(a, b): (Duration, Duration)| (a + b) / 2;
    let each = (mean(fault) + mean(gap)).max(Duration::from_millis(1));
    let count = ((d.as_secs_f64() / each.as_secs_f64()).round() as usize).max(1);
    Ok(Scenario { timing: Timing::Generated { count, fault, gap }, ..s.clone() })
}

/// One call of the suite: its seed, its scenarios, and which selected scenario it repeats.
struct Batch {
    seed: u64,
    scenarios: Vec<Scenario>,
    group: usize,
}

/// The suites to run. A whole run is one suite. A shard, a repetition, a shrinking run or
/// jobs side by side go one scenario at a time, each seeded as in the whole run (run seed + its index in the
/// selection, + 1009 per repetition after the first), so it does what it would there.
fn batches(args: &ChaosArgs, chosen: &[(usize, Scenario)], seed: u64) -> Vec<Batch> {
    let runs = match (args.until_fail, args.repeat) {
        (true, 1) => 100,
        (_, n) => n,
    };
    if args.shard.is_none() && runs == 1 && args.shrink_budget == 0 && args.jobs == 1 {
        return vec![Batch { seed, scenarios: chosen.iter().map(|(_, s)| s.clone()).collect(), group: 0 }];
    }
    let mut out = Vec::new();
    for (i, s) in chosen {
        for k in 1..=runs {
            let scenario = if runs > 1 { super::replay::repetition(s, k) } else { s.clone() };
            let seed = seed.wrapping_add(*i as u64).wrapping_add(1009 * (k as u64 - 1));
            out.push(Batch { seed, scenarios: vec![scenario], group: *i });
        }
    }
    out
}

/// `--jobs N` above 1 needs namespaces (Chronik's fixed ports) and cannot decide the next run
/// from the last one.
fn check_jobs(args: &ChaosArgs) -> anyhow::Result<()> {
    if args.jobs == 1 {
        return Ok(());
    }
    if args.network != NetworkMode::Netns {
        bail!(
            "--jobs {} runs clusters side by side, which needs --network netns: Chronik binds fixed ports \
             (admin 10000+id, metrics 13000+id, unified API 6091+id), so on one loopback only one cluster \
             can run at a time; add --network netns (Linux, root) or drop --jobs",
            args.jobs
        );
    }
    if args.until_fail {
        bail!("--until-fail stops at the first run that does not pass, so it runs one at a time: drop --jobs");
    }
    if args.shrink_budget > 0 {
        bail!("--shrink-budget runs smaller schedules one after another on what the last run found: drop --jobs");
    }
    Ok(())
}

/// Shrinks a generated schedule that FAILed or HUNG: smaller schedules, replayed on the same
/// nodes, until none still ends with the same verdict or the budget is spent.
async fn shrink(
    args: &ChaosArgs,
    cfg: &SuiteConfig,
    client: &crate::toxiproxy::Client,
    scenario: &Scenario,
    result: &crate::results::ScenarioResult,
    interrupts: &tokio::sync::Mutex<super::Interrupts>,
    interrupted: &std::cell::Cell<bool>,
) -> Option<crate::schedule::Shrunk> {
    let generated = matches!(scenario.timing, crate::scenario::Timing::Generated { .. });
    let failing = result.schedule.clone()?;
    if !generated || !matches!(result.verdict, Verdict::Fail | Verdict::Hang) || failing.steps.is_empty() {
        return None;
    }
    progress(&format!(
        "[{}] {}: shrinking its schedule of {} step(s), at most {} runs",
        scenario.name,
        result.verdict,
        failing.steps.len(),
        args.shrink_budget
    ));
    let tries = std::cell::Cell::new(0usize);
    let shrunk = crate::schedule::shrink(failing, SHRINK_FLOOR_MS, args.shrink_budget, |candidate| {
        tries.set(tries.get() + 1);
        let name = format!("{}~shrink{}", scenario.name, tries.get());
        let s = Scenario { name, replay: Some(candidate), ..scenario.clone() };
        async move {
            if interrupted.get() {
                return false;
            }
            let mut verdict = None;
            let end = runner::run_suite(
                cfg,
                client,
                std::slice::from_ref(&s),
                &progress,
                &mut |r| {
                    verdict = Some(r.verdict);
                    Ok(())
                },
                async { interrupts.lock().await.recv().await },
            )
            .await;
            if !matches!(end, Ok(runner::SuiteEnd::Finished)) {
                interrupted.set(true);
                return false;
            }
            verdict == Some(result.verdict)
        }
    })
    .await;
    Some(shrunk)
}

/// No shrunk fault holds for less than this.
const SHRINK_FLOOR_MS: u64 = 2_000;

/// Every port the run will bind must be free now: the Toxiproxy API, every node listener and
/// proxy of the plan, and Chronik's fixed ports; otherwise who holds each and which flag moves it.
/// With `--network netns` only the Toxiproxy API binds here now: the nodes' ports are in their
/// own namespaces and the proxies' front addresses exist once the run's network does (each
/// cluster checks them when it starts).
fn check_ports(
    topology: TopologySpec,
    network: NetworkMode,
    toxiproxy_listen: SocketAddr,
    via: InvokedAs,
) -> anyhow::Result<()> {
    let plan = Plan::new(topology).map_err(|e| anyhow::anyhow!("--base-port {}: {e}", topology.base_port))?;
    if network == NetworkMode::Netns {
        if let Some(holder) = crate::os::port_holder(toxiproxy_listen) {
            bail!(
                "port {} (the Toxiproxy API) is taken, {holder}; choose another --toxiproxy-listen",
                toxiproxy_listen
            );
        }
        return Ok(());
    }
    crate::cluster::preflight_ports(&plan, Some(toxiproxy_listen))
        .map_err(|e| anyhow::anyhow!(super::ports_taken_message(&e, via, "chaos", "the run cannot start")))
}

/// Built-ins plus every `--scenarios-file`; a name defined twice is an error.
fn catalogue(files: &[PathBuf]) -> anyhow::Result<Vec<Scenario>> {
    let mut all = scenario::builtin();
    for f in files {
        for s in scenario::load(f)? {
            if let Some(prev) = all.iter().find(|x| x.name == s.name) {
                bail!("{}: scenario `{}` is already defined at {}; rename one", s.source, s.name, prev.source);
            }
            all.push(s);
        }
    }
    Ok(all)
}

fn check_writable(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create the output directory {}", dir.display()))?;
    let probe = dir.join(".write-test");
    std::fs::write(&probe, b"").with_context(|| format!("the output directory {} is not writable", dir.display()))?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// Whether the last line written to the terminal was a live count still shown in place.
static LIVE_LINE_SHOWN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
/// When the last live count was written to a log (not a terminal).
static LAST_LOGGED_LIVE: std::sync::Mutex<Option<std::time::Instant>> = std::sync::Mutex::new(None);
/// In logs, at most one live count per this interval.
const LOG_LIVE_EVERY: Duration = Duration::from_secs(5);

/// One progress line: on a terminal, a short clock and the line, with live counts updated in
/// place; otherwise (CI logs, files) every line, with a full RFC 3339 timestamp so lines from
/// different machines can be lined up.
fn progress(line: &str) {
    use std::io::{IsTerminal, Write};
    use std::sync::atomic::Ordering;
    let tty = std::io::stdout().is_terminal();
    if !tty && line.ends_with(runner::LIVE_COUNT) {
        let mut last = LAST_LOGGED_LIVE.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_some_and(|t| t.elapsed() < LOG_LIVE_EVERY) {
            return;
        }
        *last = Some(std::time::Instant::now());
    }
    let shown = LIVE_LINE_SHOWN.load(Ordering::Relaxed);
    let (text, live) = progress_text(&now(), line, tty, shown);
    LIVE_LINE_SHOWN.store(live, Ordering::Relaxed);
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// What to write for `line` at `stamp`: on a terminal a live count replaces itself (no
/// newline; the next line clears it), anything else is a whole line. Returns the text and
/// whether a live count is now shown.
fn progress_text(stamp: &str, line: &str, tty: bool, live_shown: bool) -> (String, bool) {
    if !tty {
        return (format!("{stamp} {line}\n"), false);
    }
    // `2026-11-26T14:03:31Z` → `14:03:31`
    let clock = stamp.get(11..19).unwrap_or(stamp);
    let clear = if live_shown { "\r\x1b[2K" } else { "" };
    if line.ends_with(runner::LIVE_COUNT) {
        (format!("{clear}{clock} {line}"), true)
    } else {
        (format!("{clear}{clock} {line}\n"), false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(verdicts: &[Verdict]) -> Results {
        let json = include_str!("../../tests/fixtures/results-all-pass.json");
        let mut r: Results = serde_json::from_str(json).unwrap();
        let template = r.scenarios[0].clone();
        r.scenarios =
            verdicts.iter().map(|&v| crate::results::ScenarioResult { verdict: v, ..template.clone() }).collect();
        r
    }

    #[test]
    fn live_counts_update_in_place_on_a_terminal_only() {
        let stamp = "2026-11-26T14:03:31Z";
        let live = format!("[s] hold: 12 {}", runner::LIVE_COUNT);
        assert_eq!(progress_text(stamp, &live, false, false), (format!("{stamp} {live}\n"), false));
        assert_eq!(progress_text(stamp, &live, true, false), (format!("14:03:31 {live}"), true));
        assert_eq!(progress_text(stamp, &live, true, true), (format!("\r\x1b[2K14:03:31 {live}"), true));
        assert_eq!(progress_text(stamp, "[s] healed", true, true), ("\r\x1b[2K14:03:31 [s] healed\n".into(), false));
        assert_eq!(progress_text(stamp, "[s] healed", true, false), ("14:03:31 [s] healed\n".into(), false));
    }

    #[test]
    fn auto_comments_only_in_a_pull_request_workflow() {
        assert_eq!(CommentChoice::Auto.mode(true), Mode::Always);
        assert_eq!(CommentChoice::Auto.mode(false), Mode::Never);
        assert_eq!(CommentChoice::OnFailure.mode(false), Mode::OnFailure);
        assert_eq!(CommentChoice::Never.mode(true), Mode::Never);
    }

    #[test]
    fn a_soak_is_one_generated_schedule_of_about_the_asked_length() {
        use crate::scenario::Timing;
        let all = scenario::builtin();
        let kill = all.iter().find(|s| s.name == "kill-leader").unwrap();
        let soak = soaked(kill, Duration::from_secs(600)).unwrap();
        // 5–15 s faults and gaps: 20 s a fault on average, so 30 of them.
        let Timing::Generated { count, .. } = soak.timing else { panic!("{:?}", soak.timing) };
        assert_eq!(count, 30);
        let sched = soak.schedule(4).unwrap();
        assert_eq!(sched.steps.len(), 30);
        assert!((300_000..=900_000).contains(&sched.span_ms()), "{}", sched.span_ms());
        // A generated scenario keeps its own ranges: mixed-schedule's faults 4–8 s, gaps 2–4 s.
        let mixed = all.iter().find(|s| s.name == "mixed-schedule").unwrap();
        let Timing::Generated { count, .. } = soaked(mixed, Duration::from_secs(90)).unwrap().timing else { panic!() };
        assert_eq!(count, 10);
        let e = soaked(&all[0], Duration::from_secs(60)).unwrap_err().to_string();
        assert!(e.contains("has no faults to draw a schedule from"), "{e}");
    }

    #[test]
    fn fail_on_decides_the_exit_code() {
        let hang = with(&[Verdict::Pass, Verdict::Hang]);
        let fail = with(&[Verdict::Fail, Verdict::Pass]);
        let pass = with(&[Verdict::Pass]);
        let not_applicable = with(&[Verdict::Pass, Verdict::NotApplicable]);
        assert_eq!(exit_code(&not_applicable, FailOn::Any), EXIT_OK);
        assert_eq!(exit_code(&hang, FailOn::Any), EXIT_SCENARIO_FAILURES);
        assert_eq!(exit_code(&hang, FailOn::Safety), EXIT_OK);
        assert_eq!(exit_code(&fail, FailOn::Safety), EXIT_SCENARIO_FAILURES);
        assert_eq!(exit_code(&fail, FailOn::Never), EXIT_OK);
        assert_eq!(exit_code(&pass, FailOn::Any), EXIT_OK);
    }
}
