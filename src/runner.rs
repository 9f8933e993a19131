//! The scenario runner: for each scenario a fresh cluster (wiring proven), the test topic, the
//! workload, then `warmup → inject → hold → heal → recovery → final read`, metrics scraped
//! before and after, the history checked, liveness measured, the fault's fidelity judged, and
//! a verdict. Everything lands in one [`ScenarioResult`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::cluster::config::ClusterSettings;
use crate::cluster::supervisor::NodeCommand;
use crate::cluster::{Cluster, ClusterSpec, ToxiproxySource};
use crate::decision::{self, SavedRun};
use crate::group_workload::GroupWorkload;
use crate::history::txn::TxnSupport;
use crate::history::History;
use crate::history::Timeline;
use crate::log_end;
use crate::nemesis;
use crate::observer::Observer;
use crate::results::{Checks, Counts, Event, MetricDelta, ScenarioResult};
use crate::scenario::Scenario;
use crate::scenario::WorkloadKind;
use crate::topology::TopologySpec;
use crate::toxiproxy::Client;
use crate::txn_workload::{self, TxnConfig, TxnRun};
use crate::verdict::{Fidelity, Verdict};
use crate::workload::{self, Recorder, Workload, WorkloadConfig};

/// Suite-wide settings.
#[derive(Clone, Debug)]
pub struct SuiteConfig {
    pub chronik_bin: PathBuf,
    pub topology: TopologySpec,
    pub node_log: String,
    pub out_dir: PathBuf,
    pub seed: u64,
    pub client_extra: Vec<(String, String)>,
    /// Metrics to scrape from every node before and after each scenario.
    pub watch_metrics: Vec<String>,
    /// Of those, the ones that must move while the workload runs.
    pub must_move: Vec<String>,
    pub ready_timeout: Duration,
    /// Cluster start-ups tried per scenario before giving up (each failure is recorded).
    pub start_attempts: u32,
    /// Extra environment for every node process (e.g. a stand-in broker's bug switches).
    pub node_env: Vec<(String, String)>,
    /// Loopback only (`proxy`) or each node in its own network namespace (`netns`).
    pub network: crate::cluster::net::Network,
}

/// The end of the progress lines that carry live counts (a terminal shows them in place).
pub const LIVE_COUNT: &str = "writes acknowledged so far";

/// Metrics watched by default (names from Chronik's source; one that a node does not export
/// is reported as missing).
pub const DEFAULT_METRICS: &[&str] = &[
    "chronik_produce_requests_total",
    "chronik_raft_election_count_total",
    "chronik_raft_leader_changes_total",
    "chronik_errors_total",
];

/// What the progress says before the wiring proof (which can take up to ~15 s).
pub const PROVING_WIRING: &str =
    "proving the wiring (OS view of node connections, proxy counters, Kafka metadata; up to 15 s)";

/// How a suite ended.
#[derive(Debug, PartialEq, Eq)]
pub enum SuiteEnd {
    /// Every scenario ran.
    Finished,
    /// `cancel` resolved during the scenario named here; its cluster was torn down and it has
    /// no result.
    Interrupted { during: String },
}

/// Runs `scenarios` one after another on the Toxiproxy server behind `toxiproxy`, each on a
/// fresh cluster that is torn down whatever way the scenario ends, so a scenario that ERRORs
/// leaves nothing for the next. `on_result` gets every result as soon as it exists (before the
/// next scenario starts); `cancel` resolving stops the suite after tearing down the running
/// scenario. This is the suite `chronik-chaos chaos` runs.
pub async fn run_suite(
    cfg: &SuiteConfig,
    toxiproxy: &Client,
    scenarios: &[Scenario],
    progress: &dyn Fn(&str),
    on_result: &mut dyn FnMut(ScenarioResult) -> anyhow::Result<()>,
    cancel: impl std::future::Future<Output = ()>,
) -> anyhow::Result<SuiteEnd> {
    tokio::pin!(cancel);
    for (i, s) in scenarios.iter().enumerate() {
        progress(&format!("scenario {}/{}: {} — {}", i + 1, scenarios.len(), s.name, s.description));
        // Dropping the scenario's future drops its cluster, which stops its nodes; its proxies
        // go with the caller's Toxiproxy server.
        let r = tokio::select! {
            r = run_scenario(cfg, toxiproxy, s, i, progress) => r,
            _ = &mut cancel => return Ok(SuiteEnd::Interrupted { during: s.name.clone() }),
        };
        for line in &r.explanation {
            progress(&format!("[{}]   {line}", s.name));
        }
        on_result(r)?;
    }
    Ok(SuiteEnd::Finished)
}

/// Runs one scenario end to end. Harness problems become an ERROR result, never a panic.
pub async fn run_scenario(
    cfg: &SuiteConfig,
    toxiproxy: &Client,
    s: &Scenario,
    index: usize,
    progress: &dyn Fn(&str),
) -> ScenarioResult {
    let started = Instant::now();
    let seed = cfg.seed.wrapping_add(index as u64);
    let mut r = ScenarioResult {
        name: s.name.clone(),
        family: s.family.clone(),
        description: s.description.clone(),
        source: s.source.clone(),
        verdict: Verdict::Error,
        explanation: Vec::new(),
        seed,
        duration_ms: 0.0,
        timeline: Vec::new(),
        targets: BTreeMap::new(),
        toxics: Vec::new(),
        fidelity: Fidelity::default(),
        counts: Counts::default(),
        anomalies: Default::default(),
        checks: None,
        liveness: None,
        metrics: Vec::new(),
        history_file: None,
        node_logs: Vec::new(),
        startup_failures: Vec::new(),
        nodes: Some(s.nodes.unwrap_or(cfg.topology.nodes)),
        schedule: None,
        shrunk: None,
    };
    let say = |line: &str| progress(&format!("[{}] {line}", s.name));
    if let Err(e) = run_inner(cfg, toxiproxy, s, seed, &mut r, &say).await {
        r.verdict = Verdict::Error;
        r.explanation.insert(0, format!("The harness could not complete this scenario: {e}"));
    }
    r.duration_ms = started.elapsed().as_secs_f64() * 1e3;
    say(&format!("{} in {:.0} s", r.verdict, r.duration_ms / 1e3));
    r
}

async fn run_inner(
    cfg: &SuiteConfig,
    toxiproxy: &Client,
    s: &Scenario,
    seed: u64,
    r: &mut ScenarioResult,
    say: &dyn Fn(&str),
) -> Result<(), String> {
    let run_dir = cfg.out_dir.join("nodes").join(&s.name);
    let needs_netns = s.faults.iter().chain(s.replay.iter().flat_map(|r| r.steps.iter().map(|st| &st.fault)));
    if matches!(cfg.network, crate::cluster::net::Network::Proxy) && needs_netns.into_iter().any(|f| f.needs_netns()) {
        r.verdict = Verdict::NotApplicable;
        r.explanation =
            vec!["N/A: an IP-layer fault (layer = \"ip\", loss) needs --network netns (each node in its own network \
             namespace; Linux, root), and this run uses --network proxy, so this scenario cannot run; it says \
             nothing about the cluster."
                .to_string()];
        return Ok(());
    }
    let (faketime, data_dir_limit) = match node_needs(s, &cfg.out_dir) {
        Ok(needs) => needs,
        Err(why) => {
            r.verdict = Verdict::NotApplicable;
            r.explanation =
                vec![format!("N/A: {why}, so this scenario cannot run; it says nothing about the cluster.")];
            return Ok(());
        }
    };
    let spec = ClusterSpec {
        topology: TopologySpec {
            nodes: s.nodes.unwrap_or(cfg.topology.nodes),
            addressing: cfg.network.addressing(),
            ..cfg.topology
        },
        settings: ClusterSettings::default(),
        node: NodeCommand {
            program: cfg.chronik_bin.clone(),
            rust_log: cfg.node_log.clone(),
            stop_grace: Duration::from_secs(30),
            extra_env: cfg.node_env.clone(),
            faketime,
        },
        run_dir: run_dir.clone(),
        ready_timeout: cfg.ready_timeout,
        data_dir_limit,
        network: cfg.network.clone(),
    };
    let mut cluster = start_with_retries(&spec, toxiproxy, cfg.start_attempts, r, say).await?;
    r.node_logs = cluster.supervisor.nodes().iter().map(|n| n.files.log.clone()).collect();
    // Whatever happens in the scenario, the cluster is torn down and its proxies removed, so
    // the next scenario starts clean.
    let result = drive(cfg, s, seed, r, say, &mut cluster).await;
    let teardown = cluster.teardown().await;
    for id in teardown.ignored_sigterm() {
        r.explanation.push(format!("n{id} ignored SIGTERM for 30 s at teardown and was killed."));
    }
    for p in &teardown.net_problems {
        say(&format!("warning: teardown of the network namespaces: {p}"));
    }
    result
}

/// What the nodes need for the scenario's faults (its replayed schedule's too), decided before
/// its cluster starts: libfaketime for a clock skew, tmpfs data directories for a full disk
/// (a trial mount under `scratch`). `Err`: why this machine cannot run it (N/A).
fn node_needs(s: &Scenario, scratch: &std::path::Path) -> Result<(Option<PathBuf>, Option<u64>), String> {
    let replayed = s.replay.iter().flat_map(|r| r.steps.iter().map(|st| &st.fault));
    let faults: Vec<&crate::scenario::Fault> = s.faults.iter().chain(replayed).collect();
    let any = |want: fn(&crate::scenario::Fault) -> bool| faults.iter().any(|f| want(f));
    let faketime = if any(|f| matches!(f, crate::scenario::Fault::ClockSkew { .. })) {
        Some(crate::clock::locate()?)
    } else {
        None
    };
    let limit = if any(|f| matches!(f, crate::scenario::Fault::DiskFull(_))) {
        crate::disk::check_mountable(scratch)?;
        Some(crate::disk::DATA_DIR_LIMIT)
    } else {
        None
    };
    Ok((faketime, limit))
}

/// The scenario on a started cluster: wiring proof, topic, workload and phases, decision.
async fn drive(
    cfg: &SuiteConfig,
    s: &Scenario,
    seed: u64,
    r: &mut ScenarioResult,
    say: &dyn Fn(&str),
    cluster: &mut Cluster,
) -> Result<(), String> {
    let extra: Vec<(&str, &str)> = cfg.client_extra.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    say(PROVING_WIRING);
    cluster.prove_wiring(Duration::from_secs(15), &extra).await.map_err(|e| format!("{e:#}"))?;
    say("wiring proven");

    let mut wl = WorkloadConfig::new(cluster.plan.bootstrap_servers(), s.kafka_name());
    wl.client_extra = cfg.client_extra.clone();
    if let Some(p) = s.workload.producers {
        wl.producers = p;
    }
    if let Some(rate) = s.workload.rate {
        wl.rate_per_producer = rate;
    }
    if let Some(i) = s.workload.idempotence {
        wl.idempotence = i;
    }
    wl.keys = s.workload.keys;
    let with_min_isr = create_topic_with_retry(&wl, Duration::from_secs(60), say).await?;
    let topic = workload::read_topic_settings(&wl, with_min_isr, Duration::from_secs(5)).await;
    say(&format!(
        "topic {} created ({} partitions; replication factor {}; min.insync.replicas {})",
        wl.topic,
        wl.partitions,
        topic.replication_factor.describe(),
        topic.min_insync_replicas.describe()
    ));
    let txn = match s.workload.kind {
        WorkloadKind::Transactions => match prepare_transactions(&wl, say).await? {
            Ok(t) => Some(t),
            Err(missing) => {
                r.verdict = Verdict::NotApplicable;
                r.explanation = vec![format!(
                    "N/A: the cluster does not advertise what transactions need ({}), so this scenario cannot run; \
                     it says nothing about the cluster.",
                    missing.join("; ")
                )];
                return Ok(());
            }
        },
        _ => None,
    };
    let before = scrape(cluster, &cfg.watch_metrics).await;

    let rec = Recorder::new(Instant::now());
    let event = |r: &mut ScenarioResult, rec: &Recorder, what: String| {
        r.timeline.push(Event { t_ms: rec.now_us() as f64 / 1e3, what });
    };
    let admins = cluster.supervisor.nodes().iter().map(|n| (n.id(), n.admin().clone())).collect();
    let observer = Observer::start(admins, &wl.topic, rec.clone(), Duration::from_millis(300));
    // The workload and the observer run as tasks that outlive a drop: every early return from
    // here on stops them first, or they would go on against the next scenario's proxies.
    let running = match Workload::start(&wl, rec.clone()) {
        Ok(w) => w,
        Err(e) => {
            observer.stop().await;
            return Err(e);
        }
    };
    // The queue workload's group; dropped on an early return, which stops its members.
    let group = match s.workload.group(&s.name).map(|g| GroupWorkload::start(&wl, &g, rec.start())).transpose() {
        Ok(g) => g,
        Err(e) => {
            drop(running);
            observer.stop().await;
            return Err(e);
        }
    };
    if let Some(g) = s.workload.group(&s.name) {
        event(r, &rec, format!("consumer group {} started: {} members, {} commits", g.group_id, g.members, g.commit));
    }
    let txn = match txn.map(|(c, support)| TxnRun::start(c, support, rec.start())).transpose() {
        Ok(t) => t,
        Err(e) => {
            drop((running, group));
            observer.stop().await;
            return Err(e);
        }
    };
    if txn.is_some() {
        event(r, &rec, format!("transactional producers started: {} on topic {}-txn", wl.producers, wl.topic));
    }
    event(
        r,
        &rec,
        format!(
            "workload started: {} producers × {}/s, acks=all, idempotence {}",
            wl.producers, wl.rate_per_producer, wl.idempotence
        ),
    );
    tick(s.phases.warmup, "warmup", &rec, say).await;

    // The nemesis runs the scenario's schedule (roles resolved when each step starts).
    let schedule = match s.schedule(seed) {
        Ok(x) => x,
        Err(e) => {
            drop((running, group, txn));
            observer.stop().await;
            return Err(e);
        }
    };
    let mut rng = fastrand::Rng::with_seed(seed);
    let ids: Vec<u8> = cluster.plan.nodes.iter().map(|n| n.id).collect();
    let ctx = nemesis::Context { workload: &wl, observer: &observer, rec: &rec, say };
    let fault_phase = Instant::now();
    let ran = match nemesis::run(cluster, &schedule, &ctx, &mut rng).await {
        Ok(ran) => ran,
        Err(e) => {
            // The schedule as planned, so `--replay` can run it again (roles drawn anew).
            r.schedule = Some(schedule.clone());
            running.stop().await;
            observer.stop().await;
            return Err(e);
        }
    };
    // A hold longer than the schedule's windows runs out (a generated schedule is its own hold).
    if !matches!(s.timing, crate::scenario::Timing::Generated { .. }) && s.replay.is_none() {
        let left = (fault_phase + s.phases.hold).saturating_duration_since(Instant::now());
        tick(left, "hold", &rec, say).await;
    }
    for (at_us, what) in &ran.notes {
        r.timeline.push(Event { t_ms: *at_us as f64 / 1e3, what: what.clone() });
    }
    for step in &ran.ran.steps {
        for (role, node) in &step.targets {
            r.targets.entry(role.clone()).or_insert(*node);
        }
    }
    r.toxics = ran.toxics.clone();
    let fidelity = ran.fidelity.clone();
    let nemesis = ran.events.clone();
    let died_during_fault = ran.exits;
    let cluster_failures = ran.cluster_failures.clone();
    let faulted = !schedule.steps.is_empty();
    let t_inject = ran.first_inject_us.unwrap_or_else(|| rec.now_us());
    let t_heal = ran.last_heal_us.unwrap_or_else(|| rec.now_us());
    r.schedule = faulted.then_some(ran.ran);
    tick(s.phases.recovery, "recovery", &rec, say).await;
    let rec = running.stop().await;
    let t_end = rec.now_us();
    event(r, &rec, "workload stopped".to_string());
    // Convergence: the observer keeps asking until every node answers and they agree on each
    // partition's leader (or 10 s pass); the final read starts after that.
    let converged = wait_converged(&observer, &ids, Duration::from_secs(10)).await;
    let observations = observer.stop().await;
    event(
        r,
        &rec,
        format!(
            "observer: {} ({} observations)",
            if converged { "nodes agree on every partition's leader" } else { "nodes still disagree after 10 s" },
            observations.len()
        ),
    );

    let (sends, live_reads) = rec.take();
    let mut h = History {
        ordered_producers: true,
        sends,
        reads: live_reads,
        nodes: ids.clone(),
        timeline: Timeline { inject_us: t_inject, heal_us: t_heal, end_us: t_end },
        topic,
        nemesis,
        observations,
        ..History::default()
    };
    say("final read");
    let log_end = workload::log_ends(&wl, Duration::from_secs(5)).await;
    let mut per_node = std::collections::BTreeMap::new();
    let partitions: Vec<i32> = (0..wl.partitions).collect();
    for n in &cluster.plan.nodes {
        per_node.insert(n.id, log_end::ask(n.advertised_kafka, &wl.topic, &partitions, Duration::from_secs(5)).await);
    }
    h.final_read = workload::final_read(&wl, &rec, h.highest_acked(), log_end, s.phases.final_read_deadline).await?;
    h.final_read.per_node_log_end = per_node;
    h.reads.extend(rec.take().1);
    h.reader_events = rec.take_reader_events();
    h.origins = duplicate_origins(&h, &wl.topic, cluster).await;
    event(r, &rec, format!("final read {}", if h.final_read.complete { "complete" } else { "hit its deadline" }));
    if let Some(g) = group {
        say("draining the consumer group");
        let g = g.drain(&h.final_read.targets, s.phases.final_read_deadline).await;
        event(
            r,
            &rec,
            format!(
                "consumer group {} ({} polls, {} commits)",
                if g.drained { "drained" } else { "did not drain before the deadline" },
                g.polls.len(),
                g.commits.len()
            ),
        );
        h.group = Some(g);
    }
    if let Some(t) = txn {
        say("transactions: closing transaction and read_committed final read");
        let t = t.finish(s.phases.final_read_deadline).await?;
        event(
            r,
            &rec,
            format!(
                "transactions: {} committed, {} aborted, final read {}",
                t.committed(),
                t.aborted(),
                if t.final_read.complete { "complete" } else { "hit its deadline" }
            ),
        );
        h.txn = Some(t);
    }
    let after = scrape(cluster, &cfg.watch_metrics).await;
    let died_later = cluster.supervisor.check_exits();

    let saved = SavedRun {
        scenario: s.name.clone(),
        expect: s.expect.clone(),
        idempotence: wl.idempotence,
        faulted,
        fidelity,
        node_exits: died_during_fault
            .iter()
            .chain(&died_later)
            .map(|d| format!("n{} exited on its own ({})", d.id, d.status))
            .collect(),
        cluster_failures,
        history: h,
    };
    let d = decision::decide(&saved);
    let h = &saved.history;
    r.counts = Counts {
        sends: h.sends.len(),
        acked: h.acked(),
        failed: h.failed(),
        indeterminate: h.indeterminate(),
        acked_during_fault: d.checked.partitions.iter().map(|p| p.acked_during_fault).sum(),
        reads: h.reads.iter().filter(|x| !x.final_read).count(),
        final_reads: h.reads.iter().filter(|x| x.final_read).count(),
    };
    let (verdict, mut why) = (d.verdict, d.reasons);
    r.metrics = deltas(&before, &after, &cfg.must_move);
    let history_file = cfg.out_dir.join("histories").join(format!("{}.json", s.name));
    if std::fs::create_dir_all(history_file.parent().unwrap()).is_ok()
        && std::fs::write(&history_file, serde_json::to_vec(&saved).unwrap_or_default()).is_ok()
    {
        r.history_file = Some(history_file);
    }
    if !r.startup_failures.is_empty() {
        why.push(format!(
            "Finding: {} cluster start-up(s) never became ready and were retried (see startup_failures).",
            r.startup_failures.len()
        ));
    }
    r.verdict = verdict;
    r.explanation = why;
    let c = d.checked;
    r.anomalies = c.anomalies;
    r.checks = Some(Checks {
        faulted: saved.faulted,
        quorum: c.quorum,
        polls: c.polls,
        partitions: c.partitions,
        metadata: c.metadata,
        topic: h.topic.clone(),
        group: c.group,
        keys: c.keys,
        txn: c.txn,
    });
    r.liveness = Some(d.liveness);
    r.fidelity = d.fidelity;
    Ok(())
}

/// The producer of each copy of a value read at more than one offset, from the batch headers
/// of the nodes' logs (see `record_origin`): what tells a client's re-send from a broker's
/// duplicate. Nothing to ask when no value was read twice.
async fn duplicate_origins(h: &History, topic: &str, cluster: &Cluster) -> Vec<crate::record_origin::RecordOrigin> {
    let mut places: BTreeMap<&str, BTreeSet<(i32, i64)>> = BTreeMap::new();
    for r in &h.reads {
        places.entry(r.value.as_str()).or_default().insert((r.partition, r.offset));
    }
    let twice: BTreeSet<(i32, i64)> = places.into_values().filter(|p| p.len() > 1).flatten().collect();
    if twice.is_empty() {
        return Vec::new();
    }
    let nodes: Vec<std::net::SocketAddr> = cluster.plan.nodes.iter().map(|n| n.advertised_kafka).collect();
    crate::record_origin::ask(&nodes, topic, &twice, Duration::from_secs(3)).await
}

/// Samples until every node answers and all agree on each partition's leader, or `within` passes.
async fn wait_converged(observer: &Observer, ids: &[u8], within: Duration) -> bool {
    let deadline = Instant::now() + within;
    loop {
        observer.sample().await;
        // The observer keeps its own record; agreement is judged by the checker from it. Here
        // a fresh round decides only whether to wait longer.
        let agreed = observer.last_round_agrees(ids);
        if agreed || Instant::now() >= deadline {
            return agreed;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Starts the cluster; a start-up that never becomes ready is retried (up to `attempts` in all)
/// and every failed attempt is recorded in the result as a finding, with the stuck node's log.
async fn start_with_retries(
    spec: &ClusterSpec,
    toxiproxy: &Client,
    attempts: u32,
    r: &mut ScenarioResult,
    say: &dyn Fn(&str),
) -> Result<Cluster, String> {
    let mut attempt = 1;
    loop {
        match Cluster::start(spec, ToxiproxySource::Existing(toxiproxy.clone()), say).await {
            Ok(c) => return Ok(c),
            Err(e) => {
                let not_ready = matches!(
                    e.downcast_ref::<crate::cluster::supervisor::ClusterError>(),
                    Some(crate::cluster::supervisor::ClusterError::NotReady { .. })
                );
                if !not_ready || attempt >= attempts.max(1) {
                    return Err(format!("{e:#}"));
                }
                let first_line = format!("{e:#}").lines().next().unwrap_or_default().to_string();
                r.startup_failures.push(format!("{e:#}"));
                say(&format!("start-up attempt {attempt} failed ({first_line}); retrying with fresh data"));
                attempt += 1;
            }
        }
    }
}

/// Creates the test topic with `min.insync.replicas` set, or without it when the cluster refuses
/// the setting (said, and returned as `false`), and waits until every partition has a leader.
/// A transactional scenario: whether the cluster advertises what transactions need
/// (`Ok(Err(missing))`: it does not, and the scenario is not applicable), and its own topic.
async fn prepare_transactions(
    wl: &WorkloadConfig,
    say: &dyn Fn(&str),
) -> Result<Result<(TxnConfig, TxnSupport), Vec<String>>, String> {
    let support = txn_workload::transactions_supported(&wl.bootstrap, Duration::from_secs(10)).await?;
    if !support.supported() {
        return Ok(Err(support.missing()));
    }
    let mut topic = wl.clone();
    topic.topic = format!("{}-txn", wl.topic);
    create_topic_with_retry(&topic, Duration::from_secs(60), say).await?;
    let mut c = TxnConfig::new(&wl.bootstrap, &topic.topic);
    c.partitions = wl.partitions;
    c.producers = wl.producers;
    c.client_extra = wl.client_extra.clone();
    Ok(Ok((c, support)))
}

async fn create_topic_with_retry(wl: &WorkloadConfig, within: Duration, say: &dyn Fn(&str)) -> Result<bool, String> {
    let started = Instant::now();
    let mut with_min_isr = true;
    loop {
        match workload::create_topic(wl, with_min_isr, Duration::from_secs(10)).await {
            Err(e) if with_min_isr && e.to_lowercase().contains("config") => {
                say(&format!("the cluster refused min.insync.replicas on the topic ({e}); creating it without"));
                with_min_isr = false;
                continue;
            }
            Ok(()) => match workload::partition_leaders(wl, Duration::from_secs(5)).await {
                Ok(l) if l.len() == wl.partitions as usize && l.values().all(|x| *x >= 0) => return Ok(with_min_isr),
                Ok(l) => {
                    if started.elapsed() > within {
                        return Err(format!("topic {} has partitions without a leader: {l:?}", wl.topic));
                    }
                }
                Err(e) if started.elapsed() > within => return Err(e),
                Err(_) => {}
            },
            Err(e) if started.elapsed() > within => return Err(e),
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Sleeps through a phase, reporting acknowledged counts every second (the command line
/// decides how many of these live counts to show: all in place on a terminal, fewer in logs).
pub(crate) async fn tick(d: Duration, phase: &str, rec: &Recorder, say: &dyn Fn(&str)) {
    let end = Instant::now() + d;
    // What is left of a phase after a fault's heal ran over it is not worth a line.
    if d >= Duration::from_millis(500) {
        say(&format!("{phase} {:.0} s", d.as_secs_f64()));
    }
    while Instant::now() < end {
        let left = end - Instant::now();
        tokio::time::sleep(left.min(Duration::from_secs(1))).await;
        if Instant::now() < end {
            let elapsed = d.saturating_sub(end.saturating_duration_since(Instant::now()));
            say(&format!(
                "{phase} {:.0}/{:.0} s: {} {LIVE_COUNT}",
                elapsed.as_secs_f64(),
                d.as_secs_f64(),
                rec.acked()
            ));
        }
    }
}

/// Per node: the summed value of each watched metric, `None` when not exported or unreachable.
async fn scrape(cluster: &Cluster, names: &[String]) -> BTreeMap<(u8, String), Option<f64>> {
    let http =
        reqwest::Client::builder().timeout(Duration::from_secs(3)).no_proxy().build().expect("plain HTTP client");
    let mut out = BTreeMap::new();
    for n in &cluster.plan.nodes {
        let text = match http.get(format!("http://{}/metrics", n.metrics())).send().await {
            Ok(resp) => resp.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        let samples = crate::toxiproxy::metrics::parse_samples(&text);
        for name in names {
            let vals: Vec<f64> = samples.iter().filter(|s| &s.name == name).map(|s| s.value).collect();
            out.insert((n.id, name.clone()), if vals.is_empty() { None } else { Some(vals.iter().sum()) });
        }
    }
    out
}

fn deltas(
    before: &BTreeMap<(u8, String), Option<f64>>,
    after: &BTreeMap<(u8, String), Option<f64>>,
    must_move: &[String],
) -> Vec<MetricDelta> {
    before
        .iter()
        .map(|((node, name), b)| {
            let a = after.get(&(*node, name.clone())).copied().flatten();
            MetricDelta {
                node: *node,
                name: name.clone(),
                before: *b,
                after: a,
                flagged_static: must_move.contains(name) && matches!((b, a), (Some(x), Some(y)) if x == &y),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_metrics_stay_missing_and_static_ones_are_flagged() {
        let before: BTreeMap<(u8, String), Option<f64>> =
            [((1, "a".to_string()), Some(5.0)), ((1, "gone".to_string()), None), ((2, "a".to_string()), Some(1.0))]
                .into();
        let after: BTreeMap<(u8, String), Option<f64>> =
            [((1, "a".to_string()), Some(5.0)), ((1, "gone".to_string()), None), ((2, "a".to_string()), Some(9.0))]
                .into();
        let d = deltas(&before, &after, &["a".to_string()]);
        assert_eq!(d.len(), 3);
        let n1a = d.iter().find(|m| m.node == 1 && m.name == "a").unwrap();
        assert!(n1a.flagged_static);
        let gone = d.iter().find(|m| m.name == "gone").unwrap();
        assert_eq!((gone.before, gone.after, gone.flagged_static), (None, None, false));
        assert!(!d.iter().find(|m| m.node == 2).unwrap().flagged_static);
    }
}
