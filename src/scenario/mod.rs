//! Scenarios as data: the TOML format, its validation (errors name file, line and problem), the
//! built-in catalogue (`builtin.toml`), and the typed model the runner executes.

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::toxiproxy::{Stream, ToxicKind};

/// The built-in catalogue's text.
pub const BUILTIN: &str = include_str!("builtin.toml");
pub const BUILTIN_NAME: &str = "<built-in scenarios>";

/// A node chosen by role when the fault is injected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    /// The current Raft leader.
    Leader,
    /// The current leader of partition 0 of the test topic.
    Partition0Leader,
    /// The current leader of one partition of the test topic (picked with the seed), as the
    /// nodes report it at injection time.
    PartitionLeader,
    /// A node that is not the Raft leader (picked with the seed).
    Follower,
    /// A follower other than the one `Follower` picked.
    OtherFollower,
    /// A named node.
    Node(u8),
}

impl Target {
    pub fn parse(s: &str) -> Result<Target, String> {
        Ok(match s {
            "leader" => Target::Leader,
            "partition-0-leader" => Target::Partition0Leader,
            "partition-leader" => Target::PartitionLeader,
            "follower" => Target::Follower,
            "other-follower" => Target::OtherFollower,
            n if n.starts_with('n') && n[1..].parse::<u8>().is_ok_and(|i| (1..=9).contains(&i)) => {
                Target::Node(n[1..].parse().unwrap())
            }
            other => {
                return Err(format!(
                    "unknown target `{other}`; use leader, partition-leader, partition-0-leader, follower, other-follower or n1..n9"
                ))
            }
        })
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Leader => f.write_str("leader"),
            Target::Partition0Leader => f.write_str("partition-0-leader"),
            Target::PartitionLeader => f.write_str("partition-leader"),
            Target::Follower => f.write_str("follower"),
            Target::OtherFollower => f.write_str("other-follower"),
            Target::Node(n) => write!(f, "n{n}"),
        }
    }
}

/// Which proxies a toxic goes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkSet {
    /// Every client-facing Kafka proxy.
    Clients,
    /// Every Raft and WAL link between nodes.
    InterNode,
}

/// The shape of a partition (all of them leave TCP open: data is black-holed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Shape {
    /// Every link to and from the target, Raft and WAL.
    Isolate(Target),
    /// Messages from `from` to `to` are dropped; the other way flows.
    OneWay { from: Target, to: Target },
    /// `a` and `b` cannot talk to each other, both ways.
    Between { a: Target, b: Target },
    /// Every client connection to the target is cut, both ways (its `kafka-nX` proxy); its
    /// links to its peers stay up. Chronik forwards requests to a partition's leader through
    /// that leader's client address, so those are cut too.
    ClientCut(Target),
    /// The cluster splits in two: these nodes on one side, every other node on the other;
    /// nothing crosses (Raft and WAL, both ways). Clients still reach every node.
    Split { side: Vec<Target> },
    /// Nodes in a ring (by id): each still reaches the nodes nearest it on both sides, enough
    /// for a majority with itself, and no other; no two nodes see the same majority (Jepsen's
    /// majorities ring). Needs 5 nodes or more.
    Ring,
    /// The other nodes split in two halves (by id) that cannot talk to each other; `via` is
    /// in both and reaches every node.
    Bridge { via: Target },
}

impl Shape {
    /// The fewest nodes a cluster needs for this shape to mean what it says.
    pub fn min_nodes(&self) -> u8 {
        match self {
            Shape::Ring => 5,
            Shape::Split { side } => (side.len() as u8 + 1).max(3),
            _ => 3,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    Toxic {
        links: LinkSet,
        streams: Vec<Stream>,
        kind: ToxicKind,
        toxicity: f32,
    },
    Partition(Shape),
    /// SIGKILL at inject; restart with the same data directory at heal.
    Kill(Target),
    /// SIGSTOP at inject; SIGCONT at heal.
    Pause(Target),
    /// At inject, every node in turn: SIGTERM (killed only if it ignores it for the grace
    /// period), started again on its data, and the cluster must be ready again before the next
    /// (a node that does not rejoin is a HANG). Nothing to undo at heal.
    RollingRestart,
    /// The target's wall clock (`CLOCK_REALTIME`; monotonic clocks untouched) jumps by
    /// `offset_ms` at inject and back at heal (libfaketime, preloaded into every node).
    ClockSkew {
        target: Target,
        offset_ms: i64,
    },
    /// The target's data directory (a size-limited tmpfs) is filled until ENOSPC at inject and
    /// freed at heal.
    DiskFull(Target),
    /// A partition at the IP layer (`layer = "ip"`): nftables rules in the nodes' network
    /// namespaces drop every packet between the separated nodes, on every port (Chronik's fixed
    /// ports too). Needs `--network netns`; every shape but `client-cut`.
    IpPartition(Shape),
    /// Random packet loss at the IP layer on every inter-node link, both ways: the kernel drops
    /// each packet with probability `percent`/100 (`kind = "loss"`). Needs `--network netns`.
    IpLoss {
        percent: u8,
    },
    /// A bandwidth limit at the IP layer on every inter-node link (`kind = "bandwidth"`): in each
    /// node's namespace, tc tbf lets through at most `rate_kb_s` KB/s (1000 bytes, as Toxiproxy's
    /// bandwidth toxic) of what the node sends to its peers and of what it receives from them;
    /// its traffic with clients and the harness is not shaped. Needs `--network netns`.
    IpBandwidth {
        rate_kb_s: u32,
    },
}

/// The highest `rate` of an IP-layer bandwidth limit, in KB/s (8 Gbit/s).
pub const MAX_IP_BANDWIDTH_KB_S: u32 = 1_000_000;

impl Fault {
    /// Whether the fault works at the IP layer, which only `--network netns` has.
    pub fn needs_netns(&self) -> bool {
        matches!(self, Fault::IpPartition(_) | Fault::IpLoss { .. } | Fault::IpBandwidth { .. })
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Phases {
    pub warmup: Duration,
    pub hold: Duration,
    pub recovery: Duration,
    pub final_read_deadline: Duration,
}

/// What must hold for a PASS beyond safety.
#[derive(Clone, Debug, PartialEq, serde::Serialize, Deserialize)]
pub struct Expect {
    /// Writes must keep succeeding during the fault (else HANG).
    pub progress_during_fault: bool,
    /// Longest allowed gap without an acknowledged write (else HANG).
    pub max_unavailability_ms: Option<f64>,
    /// Throughput must recover within this long after heal (else HANG).
    pub recovery_within_ms: f64,
    /// The fault must add at least this much p50 write latency (fidelity; else ERROR).
    pub min_added_latency_ms: Option<f64>,
    /// How long after a node is lost the nodes that can still reach each other may go on
    /// naming it a partition's leader (else HANG).
    pub max_stale_leader_ms: f64,
}

/// `max_stale_leader_ms` when a scenario does not set it.
pub const DEFAULT_MAX_STALE_LEADER_MS: f64 = 10_000.0;
/// `recovery_within_ms` when a scenario does not set it.
pub const DEFAULT_RECOVERY_WITHIN_MS: f64 = 30_000.0;

/// What a scenario expects when its file sets nothing under `[scenario.expect]`.
impl Default for Expect {
    fn default() -> Expect {
        Expect {
            progress_during_fault: false,
            max_unavailability_ms: None,
            recovery_within_ms: DEFAULT_RECOVERY_WITHIN_MS,
            min_added_latency_ms: None,
            max_stale_leader_ms: DEFAULT_MAX_STALE_LEADER_MS,
        }
    }
}

/// What the clients do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WorkloadKind {
    /// Producers, a group-less live reader and the final read.
    #[default]
    Produce,
    /// As `Produce`, plus a consumer group that consumes through the fault and commits.
    Queue,
    /// Transactional producers and read_committed readers.
    Transactions,
}

impl WorkloadKind {
    fn parse(s: &str) -> Result<WorkloadKind, String> {
        Ok(match s {
            "produce" => WorkloadKind::Produce,
            "queue" => WorkloadKind::Queue,
            "transactions" => WorkloadKind::Transactions,
            other => return Err(format!("workload.kind `{other}`: use produce, queue or transactions")),
        })
    }
}

impl fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WorkloadKind::Produce => "produce",
            WorkloadKind::Queue => "queue",
            WorkloadKind::Transactions => "transactions",
        })
    }
}

/// Group members when a queue scenario does not say.
pub const DEFAULT_CONSUMERS: u32 = 3;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct WorkloadOverrides {
    pub kind: WorkloadKind,
    pub producers: Option<u32>,
    pub rate: Option<f64>,
    pub idempotence: Option<bool>,
    /// Queue: group members, and how they commit.
    pub consumers: u32,
    pub commit: crate::history::group::CommitMode,
    /// Keyed writes: this many keys.
    pub keys: Option<u32>,
}

impl WorkloadOverrides {
    /// The consumer group a queue scenario runs (`None` for the other kinds).
    pub fn group(&self, scenario: &str) -> Option<crate::group_workload::GroupConfig> {
        (self.kind == WorkloadKind::Queue).then(|| crate::group_workload::GroupConfig {
            group_id: kafka_name(scenario),
            members: self.consumers,
            commit: self.commit,
        })
    }
}

/// When the faults run.
#[derive(Clone, Debug, PartialEq)]
pub enum Timing {
    /// Every fault from the start of the hold to its end (the default).
    AllAtOnce,
    /// Each fault in its own window (`at`, `until`: seconds after the warmup), in file order.
    Windows(Vec<(Duration, Duration)>),
    /// A seeded sequence of `count` faults drawn from the scenario's faults, each held for a
    /// time in `fault` and separated by gaps in `gap` (inclusive ranges).
    Generated { count: usize, fault: (Duration, Duration), gap: (Duration, Duration) },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    pub name: String,
    pub family: String,
    pub description: String,
    pub phases: Phases,
    pub faults: Vec<Fault>,
    pub timing: Timing,
    /// A schedule to run instead (a replay of a recorded run), roles pinned to its nodes.
    pub replay: Option<crate::schedule::Schedule>,
    pub expect: Expect,
    pub workload: WorkloadOverrides,
    /// The cluster size this scenario runs on (`nodes = 5`); `None`: the run's `--nodes`.
    pub nodes: Option<u8>,
    /// `file:line` where it was defined.
    pub source: String,
}

/// A scenario file that cannot be used, with where and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct ScenarioError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDef {
    #[serde(default)]
    scenario: Vec<toml::Spanned<ScenarioDef>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioDef {
    name: String,
    family: Option<String>,
    description: String,
    nodes: Option<u8>,
    #[serde(default)]
    phases: PhasesDef,
    #[serde(default)]
    faults: Vec<FaultDef>,
    schedule: Option<ScheduleDef>,
    #[serde(default)]
    expect: ExpectDef,
    #[serde(default)]
    workload: WorkloadDef,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PhasesDef {
    #[serde(default = "d5")]
    warmup: f64,
    #[serde(default = "d10")]
    hold: f64,
    #[serde(default = "d10")]
    recovery: f64,
    #[serde(default = "d60")]
    final_read_deadline: f64,
}

impl Default for PhasesDef {
    fn default() -> Self {
        PhasesDef { warmup: 5.0, hold: 10.0, recovery: 10.0, final_read_deadline: 60.0 }
    }
}

fn d5() -> f64 {
    5.0
}
fn d10() -> f64 {
    10.0
}
fn d60() -> f64 {
    60.0
}

#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
enum FaultDef {
    Toxic {
        links: String,
        toxic: toml::Table,
        at: Option<f64>,
        until: Option<f64>,
    },
    Partition {
        shape: String,
        target: Option<String>,
        from: Option<String>,
        to: Option<String>,
        side: Option<Vec<String>>,
        /// `proxy` (default: Toxiproxy black holes) or `ip` (nftables, `--network netns`).
        layer: Option<String>,
        at: Option<f64>,
        until: Option<f64>,
    },
    Kill {
        target: String,
        at: Option<f64>,
        until: Option<f64>,
    },
    Pause {
        target: String,
        at: Option<f64>,
        until: Option<f64>,
    },
    RollingRestart {
        at: Option<f64>,
        until: Option<f64>,
    },
    ClockSkew {
        target: String,
        offset_ms: Option<i64>,
        at: Option<f64>,
        until: Option<f64>,
    },
    DiskFull {
        target: String,
        at: Option<f64>,
        until: Option<f64>,
    },
    Loss {
        links: String,
        percent: Option<u8>,
        layer: Option<String>,
        at: Option<f64>,
        until: Option<f64>,
    },
    Bandwidth {
        links: String,
        /// KB/s (1000 bytes), as the `rate` of Toxiproxy's bandwidth toxic.
        rate: Option<i64>,
        layer: Option<String>,
        at: Option<f64>,
        until: Option<f64>,
    },
}

impl FaultDef {
    fn window(&self) -> (Option<f64>, Option<f64>) {
        match self {
            FaultDef::Toxic { at, until, .. }
            | FaultDef::Partition { at, until, .. }
            | FaultDef::Kill { at, until, .. }
            | FaultDef::Pause { at, until, .. }
            | FaultDef::ClockSkew { at, until, .. }
            | FaultDef::DiskFull { at, until, .. }
            | FaultDef::Loss { at, until, .. }
            | FaultDef::Bandwidth { at, until, .. }
            | FaultDef::RollingRestart { at, until } => (*at, *until),
        }
    }
}

/// `[scenario.schedule]`: a generated schedule.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScheduleDef {
    /// How many faults to draw from the scenario's faults.
    generate: usize,
    /// Seconds each fault holds: [min, max].
    fault: [f64; 2],
    /// Seconds before each fault: [min, max].
    gap: [f64; 2],
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ExpectDef {
    #[serde(default)]
    progress_during_fault: bool,
    max_unavailability_ms: Option<f64>,
    recovery_within_ms: Option<f64>,
    min_added_latency_ms: Option<f64>,
    max_stale_leader_ms: Option<f64>,
    /// Replaced by the acknowledged-without-quorum rule; refused with a hint.
    writes_must_stop: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct WorkloadDef {
    kind: Option<String>,
    producers: Option<u32>,
    rate: Option<f64>,
    idempotence: Option<bool>,
    consumers: Option<u32>,
    commit: Option<String>,
    keys: Option<u32>,
}

/// The built-in catalogue.
pub fn builtin() -> Vec<Scenario> {
    parse(BUILTIN_NAME, BUILTIN).expect("the built-in catalogue is valid (checked by tests)")
}

/// Reads a user's scenario file.
pub fn load(path: &Path) -> Result<Vec<Scenario>, ScenarioError> {
    let text = std::fs::read_to_string(path).map_err(|e| ScenarioError {
        file: path.display().to_string(),
        line: 0,
        column: 0,
        message: format!("cannot read the file: {e}"),
    })?;
    parse(&path.display().to_string(), &text)
}

/// Parses and validates scenario TOML.
pub fn parse(file: &str, text: &str) -> Result<Vec<Scenario>, ScenarioError> {
    let at = |offset: usize, message: String| {
        let before = &text[..offset.min(text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
        ScenarioError { file: file.to_string(), line, column, message }
    };
    let def: FileDef = toml::from_str(text).map_err(|e| {
        let offset = e.span().map_or(0, |s| s.start);
        at(offset, e.message().trim().to_string())
    })?;
    if def.scenario.is_empty() {
        return Err(at(0, "no [[scenario]] tables in this file".to_string()));
    }
    let mut names = BTreeSet::new();
    let mut out = Vec::new();
    for spanned in def.scenario {
        let offset = spanned.span().start;
        let d = spanned.into_inner();
        let fail = |msg: String| at(offset, format!("scenario `{}`: {msg}", d.name));
        if d.name.is_empty() || !d.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(fail("a name is letters, digits, `-` and `_` only".into()));
        }
        if !names.insert(d.name.clone()) {
            return Err(fail("defined twice in this file".into()));
        }
        let p = &d.phases;
        for (what, v) in [
            ("warmup", p.warmup),
            ("hold", p.hold),
            ("recovery", p.recovery),
            ("final_read_deadline", p.final_read_deadline),
        ] {
            if !(v.is_finite() && v > 0.0 && v <= 3600.0) {
                return Err(fail(format!("phases.{what} = {v}: must be between 0 and 3600 seconds")));
            }
        }
        let faults = d.faults.iter().map(fault).collect::<Result<Vec<_>, _>>().map_err(fail)?;
        if let Some(n) = d.nodes {
            crate::topology::check_node_count(n).map_err(|e| fail(format!("nodes = {n}: {e}")))?;
        }
        if d.nodes.is_some() {
            check_cluster_size(&faults, d.nodes, "raise `nodes`").map_err(fail)?;
        }
        let timing = timing(&d.faults, d.schedule.as_ref(), p.hold).map_err(fail)?;
        let e = &d.expect;
        if e.writes_must_stop.is_some() {
            return Err(fail(
                "expect.writes_must_stop is gone: every scenario now fails a write acknowledged while its \
                 leader could not reach min.insync.replicas replicas (the acknowledged-without-quorum rule); \
                 remove the line"
                    .into(),
            ));
        }
        let line = text[..offset.min(text.len())].matches('\n').count() + 1;
        out.push(Scenario {
            family: d.family.clone().unwrap_or_else(|| d.name.clone()),
            description: d.description.clone(),
            phases: Phases {
                warmup: secs(p.warmup),
                hold: secs(p.hold),
                recovery: secs(p.recovery),
                final_read_deadline: secs(p.final_read_deadline),
            },
            faults,
            timing,
            replay: None,
            expect: Expect {
                progress_during_fault: e.progress_during_fault,
                max_unavailability_ms: e.max_unavailability_ms,
                recovery_within_ms: e.recovery_within_ms.unwrap_or(DEFAULT_RECOVERY_WITHIN_MS),
                min_added_latency_ms: e.min_added_latency_ms,
                max_stale_leader_ms: e.max_stale_leader_ms.unwrap_or(DEFAULT_MAX_STALE_LEADER_MS),
            },
            workload: workload(&d.workload).map_err(fail)?,
            nodes: d.nodes,
            source: format!("{file}:{line}"),
            name: d.name,
        });
    }
    Ok(out)
}

/// When the faults run: windows from `at`/`until` (seconds after the warmup, within the hold),
/// a generated schedule from `[scenario.schedule]`, else all at once for the hold.
fn timing(faults: &[FaultDef], schedule: Option<&ScheduleDef>, hold: f64) -> Result<Timing, String> {
    let windowed = faults.iter().any(|f| f.window() != (None, None));
    if let Some(g) = schedule {
        if windowed {
            return Err("a generated [scenario.schedule] picks each fault's window: remove `at`/`until`".into());
        }
        if faults.is_empty() {
            return Err("[scenario.schedule] draws from the scenario's faults: list at least one".into());
        }
        if !(1..=100).contains(&g.generate) {
            return Err(format!("schedule.generate = {}: use 1 to 100 faults", g.generate));
        }
        for (what, [lo, hi], floor) in [("fault", g.fault, 0.5), ("gap", g.gap, 0.0)] {
            if !(lo.is_finite() && hi.is_finite() && lo >= floor && lo <= hi && hi <= 3600.0) {
                return Err(format!(
                    "schedule.{what} = [{lo}, {hi}]: [min, max] seconds with {floor} <= min <= max <= 3600"
                ));
            }
        }
        let range = |[lo, hi]: [f64; 2]| (secs(lo), secs(hi));
        return Ok(Timing::Generated { count: g.generate, fault: range(g.fault), gap: range(g.gap) });
    }
    if !windowed {
        return Ok(Timing::AllAtOnce);
    }
    faults
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let (at, until) = f.window();
            let (at, until) = (at.unwrap_or(0.0), until.unwrap_or(hold));
            if !(at.is_finite() && until.is_finite() && 0.0 <= at && at < until && until <= hold) {
                return Err(format!(
                    "fault {} has at = {at}, until = {until}: it needs 0 <= at < until <= phases.hold ({hold})",
                    i + 1
                ));
            }
            Ok((secs(at), secs(until)))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Timing::Windows)
}

/// A Kafka name for a run (`chaos-<name>`): topics and group ids allow letters, digits, `.`,
/// `_` and `-`, so a repetition's `#` and a shrink's `~` become `.` (`chaos-kill-leader.3`).
pub fn kafka_name(run: &str) -> String {
    format!("chaos-{}", run.replace(['#', '~'], "."))
}

impl Scenario {
    /// The test topic's name (see [`kafka_name`]).
    pub fn kafka_name(&self) -> String {
        kafka_name(&self.name)
    }

    /// The schedule this scenario runs with `seed`: the replayed one, a generated one, its
    /// windows, or every fault for the whole hold.
    pub fn schedule(&self, seed: u64) -> Result<crate::schedule::Schedule, String> {
        use crate::schedule::{Generator, Schedule, Step};
        let ms = |d: Duration| d.as_millis() as u64;
        if let Some(r) = &self.replay {
            return Ok(r.clone());
        }
        match &self.timing {
            Timing::AllAtOnce => Ok(Schedule::all_at_once(&self.faults, ms(self.phases.hold))),
            Timing::Windows(w) => Ok(Schedule::new(
                self.faults
                    .iter()
                    .zip(w)
                    .map(|(f, (at, until))| Step {
                        fault: f.clone(),
                        start_ms: ms(*at),
                        end_ms: ms(*until),
                        targets: Default::default(),
                    })
                    .collect(),
            )),
            Timing::Generated { count, fault, gap } => crate::schedule::generate(
                &Generator {
                    nemeses: self.faults.clone(),
                    count: *count,
                    min_fault_ms: ms(fault.0),
                    max_fault_ms: ms(fault.1),
                    min_gap_ms: ms(gap.0),
                    max_gap_ms: ms(gap.1),
                },
                seed,
            ),
        }
    }
}

/// The `[scenario.workload]` table, checked: settings that belong to another kind are refused.
fn workload(d: &WorkloadDef) -> Result<WorkloadOverrides, String> {
    let kind = d.kind.as_deref().map(WorkloadKind::parse).transpose()?.unwrap_or_default();
    let producers = d.producers.unwrap_or(2);
    if kind != WorkloadKind::Queue {
        if let Some(what) = [("consumers", d.consumers.is_some()), ("commit", d.commit.is_some())]
            .iter()
            .find(|(_, set)| *set)
            .map(|(w, _)| w)
        {
            return Err(format!("workload.{what} is for kind = \"queue\" (this workload is {kind})"));
        }
    }
    let consumers = d.consumers.unwrap_or(DEFAULT_CONSUMERS);
    if !(1..=16).contains(&consumers) {
        return Err(format!("workload.consumers = {consumers}: use 1 to 16"));
    }
    let commit = match d.commit.as_deref() {
        None | Some("auto") => crate::history::group::CommitMode::Auto,
        Some("manual") => crate::history::group::CommitMode::Manual,
        Some(other) => return Err(format!("workload.commit `{other}`: use auto or manual")),
    };
    if let Some(k) = d.keys {
        if kind == WorkloadKind::Transactions {
            return Err("workload.keys is for kind = \"produce\" or \"queue\"".into());
        }
        if k < producers {
            return Err(format!(
                "workload.keys = {k} is fewer than the {producers} producers: each key has one producer, so every producer needs one"
            ));
        }
    }
    Ok(WorkloadOverrides {
        kind,
        producers: d.producers,
        rate: d.rate,
        idempotence: d.idempotence,
        consumers,
        commit,
        keys: d.keys,
    })
}

fn secs(v: f64) -> Duration {
    Duration::from_secs_f64(v)
}

fn fault(d: &FaultDef) -> Result<Fault, String> {
    Ok(match d {
        FaultDef::Toxic { links, toxic, .. } => {
            let links = match links.as_str() {
                "clients" => LinkSet::Clients,
                "inter-node" => LinkSet::InterNode,
                other => return Err(format!("unknown links `{other}`; use clients or inter-node")),
            };
            let mut attrs = toxic.clone();
            let type_name = match attrs.remove("type") {
                Some(toml::Value::String(s)) => s,
                _ => return Err(
                    "a toxic needs `type` (latency, bandwidth, slow_close, timeout, reset_peer, slicer, limit_data)"
                        .into(),
                ),
            };
            let streams = match attrs.remove("stream").as_ref().and_then(|v| v.as_str()) {
                None | Some("downstream") => vec![Stream::Downstream],
                Some("upstream") => vec![Stream::Upstream],
                Some("both") => vec![Stream::Upstream, Stream::Downstream],
                Some(other) => return Err(format!("stream `{other}`: use upstream, downstream or both")),
            };
            let toxicity = match attrs.remove("toxicity") {
                None => 1.0,
                Some(v) => v.as_float().or_else(|| v.as_integer().map(|i| i as f64)).filter(|t| (0.0..=1.0).contains(t)).ok_or(
                    "toxicity must be a number between 0 and 1 (the share of connections, drawn once per connection)",
                )? as f32,
            };
            let json = serde_json::to_value(&attrs).map_err(|e| e.to_string())?;
            let kind = ToxicKind::from_parts(&type_name, &json)?.ok_or_else(|| {
                if type_name == "packet_loss" || type_name == "loss" {
                    "Toxiproxy has no packet loss at L4 (TCP turns loss into delay): model it with latency + jitter and reset_peer".to_string()
                } else {
                    format!("unknown toxic type `{type_name}`")
                }
            })?;
            let known: &[&str] = match &kind {
                ToxicKind::Latency { .. } => &["latency", "jitter"],
                ToxicKind::Bandwidth { .. } => &["rate"],
                ToxicKind::SlowClose { .. } => &["delay"],
                ToxicKind::Timeout { .. } | ToxicKind::ResetPeer { .. } => &["timeout"],
                ToxicKind::Slicer { .. } => &["average_size", "size_variation", "delay"],
                ToxicKind::LimitData { .. } => &["bytes"],
                ToxicKind::Unknown { .. } => &[],
            };
            if let Some(extra) = attrs.keys().find(|k| !known.contains(&k.as_str())) {
                return Err(format!("`{extra}` is not an attribute of {type_name} (it has: {})", known.join(", ")));
            }
            if let ToxicKind::Slicer { average_size, size_variation, .. } = kind {
                // The real toxiproxy-server 2.12 crashes (panic or stack overflow) on these.
                if average_size <= 0 || size_variation > average_size || size_variation < 0 {
                    return Err(format!(
                        "slicer needs average_size > 0 and 0 <= size_variation <= average_size \
                         (got {average_size} and {size_variation}): the real toxiproxy-server crashes otherwise"
                    ));
                }
            }
            Fault::Toxic { links, streams, kind, toxicity }
        }
        FaultDef::Partition { shape, target, from, to, side, layer, .. } => {
            let ip = match layer.as_deref() {
                None | Some("proxy") => false,
                Some("ip") if shape == "client-cut" => {
                    return Err("partition shape `client-cut` has no IP-layer form (clients reach the nodes through \
                                Toxiproxy from the host address): use layer = \"proxy\""
                        .into())
                }
                Some("ip") => true,
                Some(other) => return Err(format!("layer `{other}`: use proxy (Toxiproxy, the default) or ip")),
            };
            let need = |v: &Option<String>, what: &str| -> Result<Target, String> {
                Target::parse(v.as_deref().ok_or_else(|| format!("partition shape `{shape}` needs `{what}`"))?)
            };
            let takes: &[&str] = match shape.as_str() {
                "isolate" | "client-cut" | "bridge" => &["target"],
                "one-way" | "between" => &["from", "to"],
                "split" => &["side"],
                "ring" => &[],
                other => {
                    return Err(format!(
                        "unknown partition shape `{other}`; use isolate, one-way, between, client-cut, split, \
                         ring or bridge"
                    ))
                }
            };
            let given = [("target", target.is_some()), ("from", from.is_some()), ("to", to.is_some())];
            if let Some((extra, _)) =
                given.iter().chain([("side", side.is_some())].iter()).find(|(k, set)| *set && !takes.contains(k))
            {
                return Err(format!(
                    "partition shape `{shape}` takes {}; remove `{extra}`",
                    if takes.is_empty() { "no nodes".to_string() } else { format!("`{}`", takes.join("` and `")) }
                ));
            }
            let shape = match shape.as_str() {
                "isolate" => Shape::Isolate(need(target, "target")?),
                "one-way" => Shape::OneWay { from: need(from, "from")?, to: need(to, "to")? },
                "between" => Shape::Between { a: need(from, "from")?, b: need(to, "to")? },
                "client-cut" => Shape::ClientCut(need(target, "target")?),
                "bridge" => Shape::Bridge { via: need(target, "target")? },
                "ring" => Shape::Ring,
                _ => Shape::Split { side: split_side(side.as_deref())? },
            };
            if ip {
                Fault::IpPartition(shape)
            } else {
                Fault::Partition(shape)
            }
        }
        FaultDef::Kill { target, .. } => Fault::Kill(Target::parse(target)?),
        FaultDef::Pause { target, .. } => Fault::Pause(Target::parse(target)?),
        FaultDef::RollingRestart { .. } => Fault::RollingRestart,
        FaultDef::ClockSkew { target, offset_ms, .. } => {
            Fault::ClockSkew { target: Target::parse(target)?, offset_ms: clock_offset(*offset_ms)? }
        }
        FaultDef::DiskFull { target, .. } => Fault::DiskFull(Target::parse(target)?),
        FaultDef::Loss { links, percent, layer, .. } => {
            if layer.as_deref() != Some("ip") {
                return Err("loss works at the IP layer only (Toxiproxy has no packet loss): add layer = \"ip\" \
                            (needs --network netns)"
                    .into());
            }
            if links != "inter-node" {
                return Err(format!(
                    "loss on links `{links}`: the IP layer has loss on inter-node links only (links = \"inter-node\")"
                ));
            }
            match percent {
                Some(p @ 1..=100) => Fault::IpLoss { percent: *p },
                Some(p) => return Err(format!("loss percent = {p}: use 1 to 100")),
                None => return Err("loss needs `percent`, the share of packets dropped (1 to 100), e.g. 10".into()),
            }
        }
        FaultDef::Bandwidth { links, rate, layer, .. } => {
            if layer.as_deref() != Some("ip") {
                return Err(format!(
                    "kind = \"bandwidth\" works at the IP layer only (tc tbf; needs --network netns): add layer = \"ip\"{}; \
                     through Toxiproxy, use kind = \"toxic\" with toxic = {{ type = \"bandwidth\", rate = N }}",
                    match layer {
                        Some(other) => format!(" (not `{other}`)"),
                        None => String::new(),
                    }
                ));
            }
            if links != "inter-node" {
                return Err(format!(
                    "bandwidth on links `{links}`: the IP layer limits inter-node links only (links = \"inter-node\"); \
                     for client links use kind = \"toxic\", links = \"{links}\", toxic = {{ type = \"bandwidth\", rate = N }}"
                ));
            }
            match rate {
                Some(r) if (1..=i64::from(MAX_IP_BANDWIDTH_KB_S)).contains(r) => {
                    Fault::IpBandwidth { rate_kb_s: *r as u32 }
                }
                Some(r) => {
                    return Err(format!(
                        "bandwidth rate = {r}: use 1 to {MAX_IP_BANDWIDTH_KB_S} (KB/s, 1000 bytes per second); to stop \
                         the traffic altogether use kind = \"partition\" with layer = \"ip\""
                    ))
                }
                None => {
                    return Err("bandwidth needs `rate`, in KB/s (1000 bytes per second, as Toxiproxy's bandwidth \
                                toxic), e.g. rate = 32"
                        .into())
                }
            }
        }
    })
}

/// The targets of one side of a split: at least one, each named once.
fn split_side(side: Option<&[String]>) -> Result<Vec<Target>, String> {
    let side = side.filter(|s| !s.is_empty()).ok_or(
        "partition shape `split` needs `side`, the nodes on one side (e.g. side = [\"leader\", \"follower\"]); \
         every other node is on the other",
    )?;
    let targets = side.iter().map(|t| Target::parse(t)).collect::<Result<Vec<_>, _>>()?;
    if let Some(t) = targets.iter().enumerate().find(|(i, t)| targets[..*i].contains(t)).map(|(_, t)| t) {
        return Err(format!("split: `{t}` is named twice in `side`"));
    }
    Ok(targets)
}

/// Whether a cluster of `nodes` (`None`: the default of 3) is big enough for every fault;
/// `fix` says how to make it so.
pub fn check_cluster_size(faults: &[Fault], nodes: Option<u8>, fix: &str) -> Result<(), String> {
    let n = nodes.unwrap_or(crate::topology::MIN_NODES);
    match faults
        .iter()
        .filter_map(|f| if let Fault::Partition(s) | Fault::IpPartition(s) = f { Some(s) } else { None })
        .max_by_key(|s| s.min_nodes())
    {
        Some(shape) if shape.min_nodes() > n => Err(format!(
            "a {} partition needs at least {} nodes and this scenario runs on {n}: {fix} (e.g. nodes = {})",
            shape_name(shape),
            shape.min_nodes(),
            shape.min_nodes()
        )),
        _ => Ok(()),
    }
}

/// The TOML name of a partition shape.
pub fn shape_name(shape: &Shape) -> &'static str {
    match shape {
        Shape::Isolate(_) => "isolate",
        Shape::OneWay { .. } => "one-way",
        Shape::Between { .. } => "between",
        Shape::ClientCut(_) => "client-cut",
        Shape::Split { .. } => "split",
        Shape::Ring => "ring",
        Shape::Bridge { .. } => "bridge",
    }
}

/// A clock skew's `offset_ms`: given, and between [`crate::clock::MIN_OFFSET_MS`] and
/// [`crate::clock::MAX_OFFSET_MS`] either way.
fn clock_offset(offset_ms: Option<i64>) -> Result<i64, String> {
    use crate::clock::{MAX_OFFSET_MS, MIN_OFFSET_MS};
    let ms = offset_ms.ok_or("clock-skew needs `offset_ms`: how far the target's clock jumps, e.g. 30000 or -30000")?;
    if !(MIN_OFFSET_MS.unsigned_abs()..=MAX_OFFSET_MS.unsigned_abs()).contains(&ms.unsigned_abs()) {
        return Err(format!(
            "clock-skew offset_ms = {ms}: use {MIN_OFFSET_MS} to {MAX_OFFSET_MS} either way (the node's clock is read \
             from an HTTP Date header, in whole seconds, so a smaller skew could not be proven)"
        ));
    }
    Ok(ms)
}

/// Why a selection of scenarios by name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    #[error("no scenario named `{name}`; valid names: {}", .valid.join(", "))]
    Unknown { name: String, valid: Vec<String> },
    /// A name asked for twice would run the scenario twice and overwrite its history.
    #[error("scenario `{0}` is selected more than once")]
    Duplicate(String),
}

/// The scenarios named in `names` (in that order), or all of `catalogue` when `names` is empty.
/// An unknown name lists the valid ones; a name given twice is refused.
pub fn select(catalogue: &[Scenario], names: &[String]) -> Result<Vec<Scenario>, SelectError> {
    if names.is_empty() {
        return Ok(catalogue.to_vec());
    }
    let mut seen = BTreeSet::new();
    names
        .iter()
        .map(|n| {
            if !seen.insert(n.as_str()) {
                return Err(SelectError::Duplicate(n.clone()));
            }
            catalogue.iter().find(|s| &s.name == n).cloned().ok_or_else(|| SelectError::Unknown {
                name: n.clone(),
                valid: catalogue.iter().map(|s| s.name.clone()).collect(),
            })
        })
        .collect()
}

/// The part of `selected` that `shard` runs, each with its index in `selected` (scenario `i`
/// goes to shard `(i mod n) + 1`), in selection order. Deterministic: the same selection and
/// shard always give the same scenarios, and shards `1..=n` together hold each exactly once.
pub fn shard_of<T: Clone>(selected: &[T], shard: crate::results::Shard) -> Vec<(usize, T)> {
    selected.iter().enumerate().filter(|(i, _)| shard.owns(*i)).map(|(i, s)| (i, s.clone())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::history::group::CommitMode;

    #[test]
    fn shards_partition_the_selection_in_order() {
        use crate::results::Shard;
        let all = builtin();
        let names: Vec<String> = all.iter().map(|s| s.name.clone()).collect();
        let picked = shard_of(&all, Shard { k: 2, n: 3 });
        let want: Vec<(usize, String)> = (0..all.len()).filter(|i| i % 3 == 1).map(|i| (i, names[i].clone())).collect();
        assert_eq!(&want[..2], &[(1, names[1].clone()), (4, names[4].clone())]);
        assert_eq!(picked.iter().map(|(i, s)| (*i, s.name.clone())).collect::<Vec<_>>(), want);
        for n in [1, 2, 3, 5, 40] {
            let mut union: Vec<(usize, String)> = (1..=n).flat_map(|k| shard_of(&names, Shard { k, n })).collect();
            union.sort();
            assert_eq!(union.into_iter().map(|(_, s)| s).collect::<Vec<_>>(), names, "n = {n}");
        }
        // More shards than scenarios: the extra shards are empty.
        assert!(shard_of(&names, Shard { k: 40, n: 40 }).is_empty());
    }

    #[test]
    fn the_builtin_catalogue_parses_and_covers_every_fault_family() {
        let all = builtin();
        let names: Vec<&str> = all.iter().map(|s| s.name.as_str()).collect();
        for want in [
            "baseline",
            "client-latency",
            "isolate-leader",
            "isolate-follower",
            "one-way-partition",
            "bridge",
            "inter-node-loss",
            "slow-close",
            "bandwidth-throttle",
            "kill-leader",
            "kill-partition-leader",
            "pause-leader",
            "cascading-failure",
            "queue-baseline",
            "queue-manual-commit",
            "queue-isolate-leader",
            "queue-kill-leader",
            "txn-baseline",
            "txn-kill-leader",
            "txn-isolate-leader",
            "mixed-schedule",
            "client-cut",
            "rolling-restart",
            "kill-restart-loop",
            "split-leader-minority",
            "split-leader-majority",
            "majorities-ring",
            "bridge-5",
            "clock-skew-leader",
            "clock-skew-leader-backwards",
            "disk-full-leader",
        ] {
            assert!(names.contains(&want), "missing {want}: {names:?}");
        }
        let latency = all.iter().find(|s| s.name == "client-latency").unwrap();
        assert_eq!(
            latency.faults,
            vec![Fault::Toxic {
                links: LinkSet::Clients,
                streams: vec![Stream::Upstream, Stream::Downstream],
                kind: ToxicKind::Latency { latency: 100, jitter: 20 },
                toxicity: 1.0
            }]
        );
        assert_eq!(latency.phases.hold, Duration::from_secs(10));
        assert!(latency.source.starts_with("<built-in scenarios>:"));
        let cascade = all.iter().find(|s| s.name == "cascading-failure").unwrap();
        assert_eq!(cascade.faults, vec![Fault::Kill(Target::Leader), Fault::Kill(Target::Follower)]);
        let back = all.iter().find(|s| s.name == "clock-skew-leader-backwards").unwrap();
        assert_eq!(back.faults, vec![Fault::ClockSkew { target: Target::Leader, offset_ms: -120_000 }]);
        let full = all.iter().find(|s| s.name == "disk-full-leader").unwrap();
        assert_eq!(
            (full.faults.clone(), full.expect.max_unavailability_ms),
            (vec![Fault::DiskFull(Target::Leader)], Some(10_000.0))
        );
        assert_eq!(cascade.faults.len(), 2);
    }

    fn err(text: &str) -> String {
        parse("my.toml", text).unwrap_err().to_string()
    }

    #[test]
    fn five_node_shapes_parse_and_say_what_cluster_they_need() {
        let base = "[[scenario]]\nname = \"x\"\ndescription = \"d\"\n";
        let part =
            |extra: &str, shape: &str| format!("{base}{extra}[[scenario.faults]]\nkind = \"partition\"\n{shape}");
        let ok = parse("my.toml", &part("nodes = 5\n", "shape = \"split\"\nside = [\"leader\", \"n4\"]\n")).unwrap();
        assert_eq!(ok[0].nodes, Some(5));
        assert_eq!(ok[0].faults, vec![Fault::Partition(Shape::Split { side: vec![Target::Leader, Target::Node(4)] })]);
        let ring = parse("my.toml", &part("", "shape = \"ring\"\n")).unwrap();
        assert_eq!((ring[0].nodes, &ring[0].faults[..]), (None, &[Fault::Partition(Shape::Ring)][..]));
        // Too small a cluster: refused at parse when the file sets `nodes`, at selection otherwise.
        let e = err(&part("nodes = 3\n", "shape = \"ring\"\n"));
        assert!(
            e.contains("a ring partition needs at least 5 nodes and this scenario runs on 3: raise `nodes`"),
            "{e}"
        );
        assert!(check_cluster_size(&ring[0].faults, Some(3), "pass --nodes").unwrap_err().contains("pass --nodes"));
        assert!(check_cluster_size(&ring[0].faults, Some(5), "pass --nodes").is_ok());
        let e = err(&part("nodes = 12\n", "shape = \"ring\"\n"));
        assert!(e.contains("nodes = 12: at most 9 nodes"), "{e}");
        let e = err(&part("", "shape = \"ring\"\ntarget = \"leader\"\n"));
        assert!(e.contains("partition shape `ring` takes no nodes; remove `target`"), "{e}");
        let e = err(&part("", "shape = \"bridge\"\nside = [\"leader\"]\n"));
        assert!(e.contains("partition shape `bridge` takes `target`; remove `side`"), "{e}");
        let e = err(&part("", "shape = \"split\"\n"));
        assert!(e.contains("partition shape `split` needs `side`"), "{e}");
        let e = err(&part("", "shape = \"split\"\nside = [\"leader\", \"leader\"]\n"));
        assert!(e.contains("`leader` is named twice"), "{e}");
        let e = err(&part("", "shape = \"halves\"\n"));
        assert!(e.contains("use isolate, one-way, between, client-cut, split, ring or bridge"), "{e}");
        // A split needs a node on the other side.
        let split3 =
            Fault::Partition(Shape::Split { side: vec![Target::Leader, Target::Follower, Target::OtherFollower] });
        assert!(check_cluster_size(&[split3], Some(3), "f").unwrap_err().contains("at least 4 nodes"));
    }

    #[test]
    fn ip_layer_faults_name_their_layer_and_say_what_they_cannot_do() {
        let base = "[[scenario]]\nname = \"x\"\ndescription = \"d\"\n[[scenario.faults]]\n";
        let check = |fault: &str, expected: Result<Fault, &str>| {
            let got = parse("my.toml", &format!("{base}{fault}")).map(|s| s[0].faults[0].clone());
            match (got, expected) {
                (Ok(f), Ok(want)) => assert_eq!(f, want, "{fault}"),
                (Err(e), Err(want)) => assert!(e.to_string().contains(want), "{fault}: {e}"),
                (got, want) => panic!("{fault}: got {got:?}, wanted {want:?}"),
            }
        };
        let isolate = "kind = \"partition\"\nshape = \"isolate\"\ntarget = \"leader\"\n";
        check(&format!("{isolate}layer = \"ip\"\n"), Ok(Fault::IpPartition(Shape::Isolate(Target::Leader))));
        check(&format!("{isolate}layer = \"proxy\"\n"), Ok(Fault::Partition(Shape::Isolate(Target::Leader))));
        check(isolate, Ok(Fault::Partition(Shape::Isolate(Target::Leader))));
        check(&format!("{isolate}layer = \"tcp\"\n"), Err("layer `tcp`: use proxy (Toxiproxy, the default) or ip"));
        check(
            "kind = \"partition\"\nshape = \"client-cut\"\ntarget = \"leader\"\nlayer = \"ip\"\n",
            Err("`client-cut` has no IP-layer form"),
        );
        let loss = "kind = \"loss\"\nlinks = \"inter-node\"\n";
        check(&format!("{loss}percent = 10\nlayer = \"ip\"\n"), Ok(Fault::IpLoss { percent: 10 }));
        check(&format!("{loss}percent = 10\n"), Err("loss works at the IP layer only"));
        check(&format!("{loss}layer = \"ip\"\n"), Err("loss needs `percent`"));
        check(&format!("{loss}percent = 0\nlayer = \"ip\"\n"), Err("loss percent = 0: use 1 to 100"));
        check(
            "kind = \"loss\"\nlinks = \"clients\"\npercent = 5\nlayer = \"ip\"\n",
            Err("the IP layer has loss on inter-node links only"),
        );
        let bw = "kind = \"bandwidth\"\nlinks = \"inter-node\"\n";
        check(&format!("{bw}rate = 32\nlayer = \"ip\"\n"), Ok(Fault::IpBandwidth { rate_kb_s: 32 }));
        check(
            &format!("{bw}rate = 1000000\nlayer = \"ip\"\nat = 1\n"),
            Ok(Fault::IpBandwidth { rate_kb_s: 1_000_000 }),
        );
        check(
            &format!("{bw}rate = 32\n"),
            Err(
                "kind = \"bandwidth\" works at the IP layer only (tc tbf; needs --network netns): add layer = \"ip\"; \
                 through Toxiproxy, use kind = \"toxic\" with toxic = { type = \"bandwidth\", rate = N }",
            ),
        );
        check(&format!("{bw}rate = 32\nlayer = \"proxy\"\n"), Err("add layer = \"ip\" (not `proxy`)"));
        check(
            &format!("{bw}layer = \"ip\"\n"),
            Err("bandwidth needs `rate`, in KB/s (1000 bytes per second, as Toxiproxy's bandwidth toxic), e.g. rate = 32"),
        );
        for bad in ["0", "-5", "1000001"] {
            check(
                &format!("{bw}rate = {bad}\nlayer = \"ip\"\n"),
                Err(format!("bandwidth rate = {bad}: use 1 to 1000000 (KB/s, 1000 bytes per second)").as_str()),
            );
        }
        check(
            "kind = \"bandwidth\"\nlinks = \"clients\"\nrate = 32\nlayer = \"ip\"\n",
            Err("bandwidth on links `clients`: the IP layer limits inter-node links only (links = \"inter-node\"); for \
                 client links use kind = \"toxic\", links = \"clients\", toxic = { type = \"bandwidth\", rate = N }"),
        );
        // Where the file is wrong: the scenario's line, for a value; the key's line, for a type.
        let e = parse("my.toml", &format!("{base}{bw}layer = \"ip\"\n")).unwrap_err().to_string();
        assert!(e.starts_with("my.toml:1:1: scenario `x`: bandwidth needs `rate`"), "{e}");
        let e = parse("my.toml", &format!("{base}{bw}rate = 1.5\nlayer = \"ip\"\n")).unwrap_err().to_string();
        assert!(e.starts_with("my.toml:4:1:") && e.contains("invalid type: floating point"), "{e}");
        let e = parse("my.toml", &format!("{base}{bw}rate = 32\nlayer = \"ip\"\nburst = 5\n")).unwrap_err().to_string();
        assert!(e.contains("unknown field `burst`"), "{e}");
        assert!(Fault::IpBandwidth { rate_kb_s: 32 }.needs_netns());
        // The built-in, left out of a default run without namespaces like the other IP faults.
        let all = builtin();
        let bw = all.iter().find(|s| s.name == "ip-inter-node-bandwidth").expect("the built-in");
        assert_eq!(bw.faults, vec![Fault::IpBandwidth { rate_kb_s: 1 }]);
        let ip: Vec<&str> =
            all.iter().filter(|s| s.faults.iter().any(Fault::needs_netns)).map(|s| s.name.as_str()).collect();
        assert_eq!(ip, ["ip-isolate-leader", "ip-inter-node-loss", "ip-inter-node-bandwidth"]);
        // A five-node IP shape needs five nodes too.
        let ring =
            parse("my.toml", &format!("{base}kind = \"partition\"\nshape = \"ring\"\nlayer = \"ip\"\n")).unwrap();
        assert!(check_cluster_size(&ring[0].faults, Some(3), "f").unwrap_err().contains("at least 5 nodes"));
        assert!(ring[0].faults[0].needs_netns() && !Fault::Partition(Shape::Ring).needs_netns());
    }

    #[test]
    fn malformed_files_name_file_line_and_problem() {
        let base = "[[scenario]]\nname = \"x\"\ndescription = \"d\"\n";
        assert_eq!(err("[[scenario]]\nname = \"x\"\n"), "my.toml:1:1: missing field `description`");
        let e = err(&format!("{base}[scenario.phases]\nhold = \"long\"\n"));
        assert!(e.starts_with("my.toml:5:"), "{e}");
        assert!(e.contains("invalid type"), "{e}");
        let e = err(&format!("{base}[[scenario.faults]]\nkind = \"kill\"\ntarget = \"leadr\"\n"));
        assert!(e.starts_with("my.toml:1:1: scenario `x`: unknown target `leadr`"), "{e}");
        let e = err(&format!(
            "{base}[[scenario.faults]]\nkind = \"toxic\"\nlinks = \"clients\"\ntoxic = {{ type = \"packet_loss\" }}\n"
        ));
        assert!(e.contains("no packet loss at L4"), "{e}");
        let e = err(&format!("{base}[[scenario.faults]]\nkind = \"toxic\"\nlinks = \"clients\"\ntoxic = {{ type = \"latency\", latncy = 5 }}\n"));
        assert!(e.contains("`latncy` is not an attribute of latency"), "{e}");
        let e = err(&format!("{base}[[scenario.faults]]\nkind = \"toxic\"\nlinks = \"clients\"\ntoxic = {{ type = \"latency\", toxicity = 2 }}\n"));
        assert!(e.contains("toxicity must be a number between 0 and 1"), "{e}");
        let e = err(&format!("{base}[scenario.phases]\nhold = -1\n"));
        assert!(e.contains("phases.hold = -1"), "{e}");
        let e = err(&format!("{base}colour = \"red\"\n"));
        assert!(e.starts_with("my.toml:4:1:") && e.contains("unknown field `colour`"), "{e}");
        let e = err(&format!("{base}{base}"));
        assert!(e.starts_with("my.toml:4:1: scenario `x`: defined twice"), "{e}");
        assert_eq!(err("# nothing\n"), "my.toml:1:1: no [[scenario]] tables in this file");
        let slicer = |avg: i64, var: i64| {
            format!("{base}[[scenario.faults]]\nkind = \"toxic\"\nlinks = \"clients\"\ntoxic = {{ type = \"slicer\", average_size = {avg}, size_variation = {var}, delay = 10 }}\n")
        };
        for (avg, var) in [(10, 11), (0, 0), (-5, 0)] {
            let e = err(&slicer(avg, var));
            assert!(e.starts_with("my.toml:1:1: scenario `x`: slicer needs average_size > 0"), "{e}");
        }
        assert!(parse("my.toml", &slicer(10, 10)).is_ok());
        let e = err(&format!("{base}[scenario.expect]\nwrites_must_stop = true\n"));
        assert!(e.contains("expect.writes_must_stop is gone") && e.contains("remove the line"), "{e}");
    }

    #[test]
    fn clock_skews_and_full_disks_are_read_and_checked() {
        let base = "[[scenario]]\nname = \"x\"\ndescription = \"d\"\n[[scenario.faults]]\n";
        let one = |rest: &str| parse("my.toml", &format!("{base}{rest}")).map(|mut s| s.remove(0).faults);
        assert_eq!(
            one("kind = \"clock-skew\"\ntarget = \"leader\"\noffset_ms = -30000\n").unwrap(),
            vec![Fault::ClockSkew { target: Target::Leader, offset_ms: -30_000 }]
        );
        assert_eq!(
            one("kind = \"disk-full\"\ntarget = \"n2\"\nat = 1\n").unwrap(),
            vec![Fault::DiskFull(Target::Node(2))]
        );
        let e = |rest: &str| one(rest).unwrap_err().to_string();
        let missing = e("kind = \"clock-skew\"\ntarget = \"leader\"\n");
        assert!(missing.starts_with("my.toml:1:1: scenario `x`: clock-skew needs `offset_ms`"), "{missing}");
        for bad in ["0", "4999", "-1000", "400000000000"] {
            let got = e(&format!("kind = \"clock-skew\"\ntarget = \"leader\"\noffset_ms = {bad}\n"));
            assert!(
                got.starts_with(&format!("my.toml:1:1: scenario `x`: clock-skew offset_ms = {bad}: use 5000 to")),
                "{got}"
            );
        }
        let got = e("kind = \"clock-skew\"\ntarget = \"leader\"\noffset_ms = 1.5\n");
        assert!(got.starts_with("my.toml:4:1:") && got.contains("invalid type: floating point"), "{got}");
        assert!(e("kind = \"disk-full\"\ntarget = \"leadr\"\n").contains("unknown target `leadr`"));
        let extra = e("kind = \"disk-full\"\ntarget = \"leader\"\nsize = 10\n");
        assert!(extra.starts_with("my.toml:4:1:") && extra.contains("unknown field `size`"), "{extra}");
    }

    #[test]
    fn workload_kinds_and_their_settings_are_checked() {
        let base = "[[scenario]]\nname = \"x\"\ndescription = \"d\"\n[scenario.workload]\n";
        let w = |rest: &str| parse("my.toml", &format!("{base}{rest}")).map(|s| s[0].workload.clone());
        let q = w("kind = \"queue\"\ncommit = \"manual\"\nconsumers = 2\nkeys = 4\n").unwrap();
        assert_eq!((q.kind, q.consumers, q.commit, q.keys), (WorkloadKind::Queue, 2, CommitMode::Manual, Some(4)));
        assert_eq!(q.group("x").unwrap().group_id, "chaos-x");
        assert_eq!(q.group("x#3").unwrap().group_id, "chaos-x.3");
        assert_eq!(kafka_name("kill-leader~shrink2"), "chaos-kill-leader.shrink2");
        let p = w("producers = 3\n").unwrap();
        assert_eq!((p.kind, p.consumers, p.commit), (WorkloadKind::Produce, DEFAULT_CONSUMERS, CommitMode::Auto));
        assert!(p.group("x").is_none());
        let e = |rest: &str| w(rest).unwrap_err().to_string();
        assert!(e("kind = \"stream\"\n").ends_with("workload.kind `stream`: use produce, queue or transactions"));
        assert!(e("consumers = 2\n").ends_with("workload.consumers is for kind = \"queue\" (this workload is produce)"));
        assert!(e("kind = \"queue\"\ncommit = \"sometimes\"\n").ends_with("use auto or manual"));
        assert!(e("kind = \"queue\"\nconsumers = 0\n").ends_with("use 1 to 16"));
        assert!(e("producers = 3\nkeys = 2\n").contains("fewer than the 3 producers"));
        assert!(e("kind = \"transactions\"\nkeys = 4\n").contains("workload.keys is for"));
        assert!(e("kind = \"queue\"\nconsumers = 2\ncolour = 1\n").contains("unknown field `colour`"));
    }

    #[test]
    fn fault_windows_and_generated_schedules_are_read_and_checked() {
        let base = "[[scenario]]\nname = \"x\"\ndescription = \"d\"\n[scenario.phases]\nhold = 20\n";
        let kill = "[[scenario.faults]]\nkind = \"kill\"\ntarget = \"leader\"\n";
        let pause = "[[scenario.faults]]\nkind = \"pause\"\ntarget = \"n2\"\n";
        let one = |rest: &str| parse("my.toml", &format!("{base}{rest}")).map(|mut s| s.remove(0));
        // No windows: every fault for the whole hold.
        let s = one(&format!("{kill}{pause}")).unwrap();
        assert_eq!(s.timing, Timing::AllAtOnce);
        let sched = s.schedule(1).unwrap();
        assert!(sched.steps.iter().all(|st| (st.start_ms, st.end_ms) == (0, 20_000)), "{sched:?}");
        // Windows: `until` defaults to the end of the hold.
        let s = one(&format!("{kill}at = 2\nuntil = 5.5\n{pause}at = 4\n")).unwrap();
        let sched = s.schedule(1).unwrap();
        let windows: Vec<(u64, u64)> = sched.steps.iter().map(|st| (st.start_ms, st.end_ms)).collect();
        assert_eq!(windows, vec![(2_000, 5_500), (4_000, 20_000)]);
        let e = one(&format!("{kill}at = 5\nuntil = 25\n")).unwrap_err().to_string();
        assert!(e.ends_with("fault 1 has at = 5, until = 25: it needs 0 <= at < until <= phases.hold (20)"), "{e}");
        // Generated: seeded, drawn from the scenario's faults.
        let g = "[scenario.schedule]\ngenerate = 4\nfault = [1, 3]\ngap = [0, 2]\n";
        let s = one(&format!("{g}{kill}{pause}")).unwrap();
        assert_eq!(s.schedule(7).unwrap(), s.schedule(7).unwrap());
        assert_eq!(s.schedule(7).unwrap().steps.len(), 4);
        assert!(s.schedule(7).unwrap().steps.iter().all(|st| s.faults.contains(&st.fault)));
        let e = one(&format!("{g}{kill}at = 1\n")).unwrap_err().to_string();
        assert!(e.contains("picks each fault's window: remove `at`/`until`"), "{e}");
        let e = one(g).unwrap_err().to_string();
        assert!(e.contains("list at least one"), "{e}");
        let e = one(&format!("[scenario.schedule]\ngenerate = 2\nfault = [3, 1]\ngap = [0, 1]\n{kill}")).unwrap_err();
        assert!(e.to_string().contains("schedule.fault = [3, 1]"), "{e}");
        // A replay runs its own schedule, whatever the timing says.
        let mut s = one(kill).unwrap();
        s.replay = Some(crate::schedule::Schedule::default());
        assert!(s.schedule(1).unwrap().steps.is_empty());
    }

    #[test]
    fn selection_lists_valid_names() {
        let all = builtin();
        assert_eq!(select(&all, &[]).unwrap().len(), all.len());
        let picked = select(&all, &["kill-leader".into(), "baseline".into()]).unwrap();
        assert_eq!(picked.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["kill-leader", "baseline"]);
        let e = select(&all, &["nope".into()]).unwrap_err().to_string();
        assert!(e.starts_with("no scenario named `nope`; valid names: baseline, client-latency"), "{e}");
    }

    #[test]
    fn a_name_selected_twice_is_refused() {
        let all = builtin();
        let twice = ["baseline".to_string(), "kill-leader".to_string(), "baseline".to_string()];
        assert_eq!(select(&all, &twice).unwrap_err(), SelectError::Duplicate("baseline".into()));
        // Checked before the unknown name that follows it.
        let e = select(&all, &["bridge".into(), "bridge".into(), "nope".into()]).unwrap_err();
        assert_eq!(e.to_string(), "scenario `bridge` is selected more than once");
    }
}
