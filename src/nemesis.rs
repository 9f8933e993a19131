//! The nemesis: runs a [`Schedule`] against a cluster while the workload goes on. Steps that
//! start together have their roles resolved together (from what the cluster reports at that
//! moment, or pinned by a replay) and are injected together; each step's effect is measured
//! while it holds (probes, the kernel's socket counters, OS state) and each is healed at its
//! end. Every inject and heal is a [`NemesisEvent`] in the history; the proof is [`Fidelity`].

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::cluster::supervisor::{NodeExit, NodeState};
use crate::cluster::Cluster;
use crate::fault::{self, Action};
use crate::history::{Effect, NemesisEvent, NemesisOp};
use crate::observer::Observer;
use crate::os;
use crate::proof;
use crate::scenario::Target;
use crate::schedule::{Schedule, Step};
use crate::sock_diag::{self, SockCounters};
use crate::toxiproxy::ToxicKind;
use crate::verdict::Fidelity;
use crate::workload::{self, Recorder, WorkloadConfig};

/// What running a schedule did.
#[derive(Debug, Default)]
pub struct NemesisRun {
    pub events: Vec<NemesisEvent>,
    pub fidelity: Fidelity,
    /// The schedule as it ran: each step with the nodes its roles were resolved to.
    pub ran: Schedule,
    /// `proxy: toxic` for every toxic placed.
    pub toxics: Vec<String>,
    /// When the first step was injected and the last healed (µs since the workload started).
    pub first_inject_us: Option<u64>,
    pub last_heal_us: Option<u64>,
    /// Nodes that exited on their own while steps held.
    pub exits: Vec<NodeExit>,
    /// The cluster's failures the schedule met, each a HANG: not ready again after a graceful
    /// restart; no target named (no Raft leader, no partition leader) when a step was due.
    pub cluster_failures: Vec<String>,
    /// What happened when, for the scenario's timeline (µs since the workload started).
    pub notes: Vec<(u64, String)>,
}

/// One step in flight.
struct Live {
    index: usize,
    action: Action,
    injected: bool,
    measured: bool,
    sockets_before: Result<Vec<SockCounters>, String>,
    /// Black-holed client proxies into which a probe request got no answer during the hold.
    probed_silent: BTreeSet<String>,
    /// An IP-layer fault: the nodes' namespaces after it settled.
    ip_before: proof::IpSnapshot,
    /// An IP-layer bandwidth limit: its tbf qdiscs with their counters, read right after inject.
    shaping_at_inject: Vec<crate::cluster::net::ShapingReading>,
}

/// What the executor needs from the scenario around it.
pub struct Context<'a> {
    pub workload: &'a WorkloadConfig,
    pub observer: &'a Observer,
    pub rec: &'a Recorder,
    pub say: &'a dyn Fn(&str),
}

/// Why the roles of a step could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RoleError {
    /// The scenario asks for what this cluster cannot have (a node it lacks): the harness's or
    /// the scenario's error.
    Impossible(String),
    /// The nodes named no such target for [`ROLE_WAIT`] (no Raft leader they agree on, no
    /// partition leader): the cluster's failure.
    NoneNamed(String),
}

/// Runs `schedule` (times in ms from now). `rng` resolves roles (a seed reproduces the choice).
/// When the nodes name no target for a step for [`ROLE_WAIT`], the schedule stops there: the
/// steps in place are healed, the ones not run are dropped from [`NemesisRun::ran`], and the
/// cluster's failure is a HANG in [`NemesisRun::cluster_failures`].
/// `Err`: a step asks for what the cluster cannot have (a node it does not have); the steps
/// already injected are healed first.
pub async fn run(
    cluster: &mut Cluster,
    schedule: &Schedule,
    ctx: &Context<'_>,
    rng: &mut fastrand::Rng,
) -> Result<NemesisRun, String> {
    let origin = Instant::now();
    let mut out = NemesisRun { ran: schedule.clone(), ..NemesisRun::default() };
    if schedule.steps.is_empty() {
        out.fidelity.proven = true;
        out.fidelity.evidence.push("no fault in this scenario: nothing to prove".to_string());
        return Ok(out);
    }
    let mut live: Vec<Live> = Vec::new();
    let mut all_ok = true;
    // The instants at which something starts or ends, in order.
    let mut instants: BTreeSet<u64> = BTreeSet::new();
    for s in &schedule.steps {
        instants.insert(s.start_ms);
        instants.insert(s.end_ms);
    }
    for at_ms in instants {
        let phase = if live.is_empty() { "gap" } else { "hold" };
        tick_until(origin + Duration::from_millis(at_ms), phase, ctx).await;
        // Ends first (a step that ends when another starts is healed before it).
        let ending: Vec<usize> =
            live.iter().filter(|l| schedule.steps[l.index].end_ms == at_ms).map(|l| l.index).collect();
        if !ending.is_empty() {
            out.exits.extend(cluster.supervisor.check_exits());
            let (done, still): (Vec<Live>, Vec<Live>) = live.into_iter().partition(|l| ending.contains(&l.index));
            live = still;
            all_ok &= end_steps(cluster, done, ctx, &mut out).await;
        }
        let starting: Vec<usize> =
            schedule.steps.iter().enumerate().filter(|(_, s)| s.start_ms == at_ms).map(|(i, _)| i).collect();
        if !starting.is_empty() {
            match start_steps(cluster, schedule, &starting, ctx, rng, &mut out).await {
                Ok(started) => live.extend(started),
                Err(RoleError::Impossible(e)) => {
                    end_steps(cluster, live, ctx, &mut out).await;
                    return Err(e);
                }
                // The cluster's failure only when nothing of the schedule held it back: no other
                // fault in place and no node held down. A leader the schedule's own faults leave
                // impossible (two of three nodes down, say) is the scenario's error.
                Err(RoleError::NoneNamed(why)) if live.is_empty() && held_down(cluster) == 0 => {
                    all_ok &= end_steps(cluster, live, ctx, &mut out).await;
                    out.fidelity.proven = all_ok;
                    stop_schedule(&mut out, schedule, starting[0], &why, ctx);
                    return Ok(out);
                }
                Err(RoleError::NoneNamed(why)) => {
                    let (faults, down) = (live.len(), held_down(cluster));
                    end_steps(cluster, live, ctx, &mut out).await;
                    return Err(format!(
                        "{why}, while {faults} other fault(s) of the schedule were in place and {down} node(s) were held \
                         down: the schedule leaves step {} no target",
                        starting[0] + 1
                    ));
                }
            }
        }
    }
    out.fidelity.proven = all_ok;
    Ok(out)
}

/// Nodes the harness holds down now (killed, stopped or paused; a node that exited on its own
/// is the cluster's doing, not held down).
fn held_down(cluster: &Cluster) -> usize {
    cluster.supervisor.nodes().iter().filter(|n| matches!(n.state(), NodeState::Down | NodeState::Paused)).count()
}

/// Ends a schedule at step `first_unrun` because the nodes named no target for it: the steps
/// from there on did not run and are dropped from what ran; the cluster's failure is recorded.
/// What ran stays proven or not as it was measured; a schedule of which nothing ran proved no
/// fault.
fn stop_schedule(out: &mut NemesisRun, schedule: &Schedule, first_unrun: usize, why: &str, ctx: &Context<'_>) {
    let step = &schedule.steps[first_unrun];
    let unrun = schedule.steps.len() - first_unrun;
    let failure = format!(
        "{why} when step {} of {} ({}) was due at {:.1} s of the schedule, so the schedule stopped there ({unrun} step(s) not run)",
        first_unrun + 1,
        schedule.steps.len(),
        crate::schedule::fault_words(&step.fault),
        step.start_ms as f64 / 1e3,
    );
    (ctx.say)(&failure);
    out.notes.push((ctx.rec.now_us(), format!("schedule stopped: {why}")));
    out.cluster_failures.push(failure);
    out.ran.steps.truncate(first_unrun);
    if out.ran.steps.is_empty() {
        out.fidelity.proven = false;
        out.fidelity.problems.push(format!("no fault was injected: {why} when the first step was due"));
    }
}

/// Sleeps until `until`, reporting progress each second as `phase`.
async fn tick_until(until: Instant, phase: &str, ctx: &Context<'_>) {
    let d = until.saturating_duration_since(Instant::now());
    if !d.is_zero() {
        crate::runner::tick(d, phase, ctx.rec, ctx.say).await;
    }
}

/// Resolves the roles of the steps starting now (together), injects them, then measures what
/// can be measured while they hold.
async fn start_steps(
    cluster: &mut Cluster,
    schedule: &Schedule,
    starting: &[usize],
    ctx: &Context<'_>,
    rng: &mut fastrand::Rng,
    out: &mut NemesisRun,
) -> Result<Vec<Live>, RoleError> {
    let faults: Vec<_> = starting.iter().map(|i| schedule.steps[*i].fault.clone()).collect();
    let roles = resolve_roles(cluster, starting.iter().map(|i| &schedule.steps[*i]), &faults, ctx, rng).await?;
    let actions: Vec<(usize, Action)> = starting
        .iter()
        .map(|i| (*i, fault::plan_action(&schedule.steps[*i].fault, *i, &roles, &cluster.plan)))
        .collect();
    let just: Vec<Action> = actions.iter().map(|(_, a)| a.clone()).collect();
    let probe_baseline = proof::baseline(&cluster.plan, &just).await;
    let mut started = Vec::new();
    for (i, action) in actions {
        let needed = fault::roles(std::slice::from_ref(&schedule.steps[i].fault));
        out.ran.steps[i].targets =
            roles.iter().filter(|(t, _)| needed.contains(t)).map(|(t, n)| (t.to_string(), *n)).collect();
        if let Action::Toxics(ps) = &action {
            out.toxics.extend(ps.iter().map(|p| format!("{}: {}", p.proxy, p.toxic)));
        }
        let result = match &action {
            // Done once the restarts are: the cluster not coming back is its failure, kept apart.
            Action::RollingRestart(ns) => {
                fault::rolling_restart(cluster, ns, ctx.say).await.map(|(ev, not_rejoined)| {
                    out.cluster_failures.extend(not_rejoined);
                    ev
                })
            }
            _ => fault::inject(cluster, &action).await,
        };
        let at_us = ctx.rec.now_us();
        out.first_inject_us.get_or_insert(at_us);
        out.events.push(NemesisEvent {
            at_us,
            op: NemesisOp::Inject,
            fault: i,
            effect: fault::effect_of(&action, &cluster.plan),
            ok: result.is_ok(),
            detail: fault::describe(&action),
        });
        // A bandwidth limit's counters start here (read back at once, before the settle time).
        let shaping_at_inject = match (&action, &result, cluster.net.as_ref()) {
            (Action::IpBandwidth { index, .. }, Ok(_), Some(net)) => net.bandwidth(*index).unwrap_or_else(|e| {
                out.fidelity.problems.push(format!("reading the bandwidth limits at inject: {e}"));
                Vec::new()
            }),
            _ => Vec::new(),
        };
        let (injected, measured) = match result {
            // A kill or pause is proven by the OS view inject reads back; a clock skew by the
            // node's own clock, a full disk by the kernel's statfs (end_steps reads both again).
            Ok(ev) => {
                out.fidelity.evidence.extend(ev);
                (
                    true,
                    matches!(
                        action,
                        Action::Kill(_)
                            | Action::Pause(_)
                            | Action::RollingRestart(_)
                            | Action::ClockSkew { .. }
                            | Action::DiskFull(_)
                    ),
                )
            }
            Err(e) => {
                out.fidelity.problems.push(format!("injection failed: {e}"));
                (false, false)
            }
        };
        started.push(Live {
            index: i,
            action,
            injected,
            measured,
            sockets_before: Err(String::new()),
            probed_silent: BTreeSet::new(),
            ip_before: proof::IpSnapshot::default(),
            shaping_at_inject,
        });
    }
    let targets: Vec<String> = started
        .iter()
        .flat_map(|l| out.ran.steps[l.index].targets.iter().map(|(k, v)| format!("{k}=n{v}")))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let on = if targets.is_empty() { String::new() } else { format!(" on {}", targets.join(", ")) };
    out.notes.push((ctx.rec.now_us(), format!("inject: {} fault(s){on}", started.len())));
    (ctx.say)(&format!(
        "fault injected{}",
        if targets.is_empty() { String::new() } else { format!(" ({})", targets.join(", ")) }
    ));
    // Let the fault settle, then read what holds: the OS view, the socket counters to compare
    // at the end, and probes through every faulted proxy that is not a black hole.
    let hold_ms = starting.iter().map(|i| schedule.steps[*i].end_ms - schedule.steps[*i].start_ms).min().unwrap_or(0);
    tokio::time::sleep(Duration::from_millis(500.min(hold_ms / 2))).await;
    let sockets = sock_diag::tcp_sockets().map_err(|e| e.to_string());
    let placed: Vec<fault::Placement> = started
        .iter()
        .filter_map(|l| if let Action::Toxics(p) = &l.action { Some(p.clone()) } else { None })
        .flatten()
        .collect();
    let pid_of = |id: u8| cluster.supervisor.node(id).ok().and_then(|n| n.pid());
    out.fidelity.evidence.extend(fault::os_view(&cluster.plan, &placed, &pid_of, &os::connections_of));
    let ip_before = if started.iter().any(|l| matches!(l.action, Action::Ip { .. } | Action::IpBandwidth { .. })) {
        ip_snapshot(cluster)
    } else {
        proof::IpSnapshot::default()
    };
    for l in started.iter_mut() {
        l.sockets_before = sockets.clone();
        l.ip_before = ip_before.clone();
        if l.injected {
            l.probed_silent = probe_client_holes(cluster, &l.action, out).await;
        }
        if let (Action::Toxics(ps), true) = (&l.action, l.injected) {
            if ps.iter().any(|p| !is_black_hole(&p.toxic.kind)) {
                let m = proof::probe_toxics(&cluster.plan, ps, &probe_baseline).await;
                l.measured = m.proven;
                out.fidelity.evidence.extend(m.evidence);
                out.fidelity.problems.extend(m.problems);
            }
        }
    }
    Ok(started)
}

/// A client may stop sending into a black-holed Kafka proxy once its requests go unanswered,
/// so each black-holed client proxy gets one probe request (ApiVersions) during the hold: no
/// answer within 2 s exercises the hole; an answer is a problem.
async fn probe_client_holes(cluster: &Cluster, action: &Action, out: &mut NemesisRun) -> BTreeSet<String> {
    let mut silent = BTreeSet::new();
    let Action::Toxics(ps) = action else { return silent };
    let holes: BTreeSet<&str> = ps.iter().filter(|p| is_black_hole(&p.toxic.kind)).map(|p| p.proxy.as_str()).collect();
    for name in holes {
        let Some(proxy) = cluster.plan.proxies.iter().find(|x| x.name == name) else { continue };
        if !matches!(proxy.kind, crate::topology::LinkKind::Kafka { .. }) {
            continue;
        }
        match crate::probe::round_trip(proxy.listen, crate::probe::Protocol::Kafka, Duration::from_secs(2)).await {
            Err(crate::probe::ProbeError::Timeout { .. }) => {
                silent.insert(name.to_string());
            }
            Ok(d) => out.fidelity.problems.push(format!(
                "a probe request through black-holed {name} was answered in {:.1} ms",
                d.as_secs_f64() * 1e3
            )),
            Err(e) => out.fidelity.problems.push(format!("probing black-holed {name}: {e}")),
        }
    }
    silent
}

fn is_black_hole(kind: &ToxicKind) -> bool {
    matches!(kind, ToxicKind::Timeout { timeout: 0 })
}

/// The roles of the steps starting together: pinned by a replay (each step's recorded
/// targets), else picked from what the cluster reports now.
async fn resolve_roles<'s>(
    cluster: &Cluster,
    steps: impl Iterator<Item = &'s Step>,
    faults: &[crate::scenario::Fault],
    ctx: &Context<'_>,
    rng: &mut fastrand::Rng,
) -> Result<BTreeMap<Target, u8>, RoleError> {
    let mut pinned = BTreeMap::new();
    for s in steps {
        for (role, node) in &s.targets {
            pinned.insert(Target::parse(role).map_err(RoleError::Impossible)?, *node);
        }
    }
    let needed = fault::roles(faults);
    if !needed.is_empty() && needed.iter().all(|t| pinned.contains_key(t)) {
        return Ok(pinned);
    }
    let ids: Vec<u8> = cluster.plan.nodes.iter().map(|n| n.id).collect();
    // A step due while the nodes elect (after a kill of the leader, say) waits for them, up to
    // ROLE_WAIT; the wait is said and shortens that step's hold. The same seed draws the same
    // choice whenever it resolves: the draw starts from a copy of `rng` each try.
    let started = Instant::now();
    // A node the cluster does not have will not appear by waiting.
    let can_wait = !needed.iter().any(|t| matches!(t, Target::Node(n) if !ids.contains(n)));
    loop {
        let leader = cluster.supervisor.raft_leader().await;
        let mut attempt = rng.clone();
        match fault::assign_roles(&needed, &ids, leader, &partition_leaders(&ids, ctx).await, &mut attempt) {
            Ok(roles) => {
                *rng = attempt;
                let waited = started.elapsed();
                if waited >= Duration::from_secs(1) {
                    (ctx.say)(&format!(
                        "waited {:.1} s for the nodes to agree on whom to target",
                        waited.as_secs_f64()
                    ));
                }
                return Ok(roles);
            }
            Err(e) if !can_wait => return Err(RoleError::Impossible(e)),
            Err(e) if started.elapsed() >= ROLE_WAIT => {
                return Err(RoleError::NoneNamed(format!("{e} (asked for {} s)", ROLE_WAIT.as_secs())));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

/// How long a step due while the nodes cannot name its target (no agreed leader, no partition
/// leader) waits for them before the schedule stops there (a HANG: the cluster's failure).
const ROLE_WAIT: Duration = Duration::from_secs(15);

/// Partition leaders as most nodes name them now; a moment without a majority view (a node
/// between heartbeats) is asked again, for up to 5 s; Metadata through the proxies when the
/// nodes' admin API lists no partition.
async fn partition_leaders(ids: &[u8], ctx: &Context<'_>) -> BTreeMap<i32, u8> {
    let mut leaders = BTreeMap::new();
    for _ in 0..10 {
        ctx.observer.sample().await;
        leaders = ctx.observer.partition_leaders(ids);
        if leaders.len() == ctx.workload.partitions as usize {
            return leaders;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    if leaders.is_empty() {
        leaders = workload::partition_leaders(ctx.workload, Duration::from_secs(5))
            .await
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(p, l)| u8::try_from(l).ok().map(|l| (p, l)))
            .collect();
    }
    leaders
}

/// Proves the black holes of the steps ending now from the socket counters, then heals them
/// (last injected first). Whether every one was injected, measured and healed.
async fn end_steps(cluster: &mut Cluster, mut done: Vec<Live>, ctx: &Context<'_>, out: &mut NemesisRun) -> bool {
    let after = sock_diag::tcp_sockets().map_err(|e| e.to_string());
    let mut ok = true;
    for l in done.iter_mut() {
        if l.injected {
            if let Action::Toxics(ps) = &l.action {
                if ps.iter().any(|p| is_black_hole(&p.toxic.kind)) {
                    let held =
                        prove_black_holes(cluster, &l.action, ps, &l.sockets_before, &after, &l.probed_silent, out);
                    // Probed toxics on the same step must have been proven too.
                    let probed_ok = !ps.iter().any(|p| !is_black_hole(&p.toxic.kind)) || l.measured;
                    l.measured = held && probed_ok;
                }
            }
            if let Action::Ip { index, cut, .. } = &l.action {
                // Read while the rules still hold (before any heal of this round).
                let m = match cluster.net.as_ref().map(|n| n.counters(*index)) {
                    Some(Ok(counters)) => {
                        proof::ip_fault(&cluster.plan, cut, &counters, &l.ip_before, &ip_snapshot(cluster))
                    }
                    Some(Err(e)) => proof::Measured { problems: vec![e], ..Default::default() },
                    None => proof::Measured { problems: vec![fault::NEEDS_NETNS.to_string()], ..Default::default() },
                };
                l.measured = m.proven;
                out.fidelity.evidence.extend(m.evidence);
                out.fidelity.problems.extend(m.problems);
            }
            if let Action::IpBandwidth { index, limits, .. } = &l.action {
                // Read while the limits still hold (before any heal of this round).
                let rate = limits.first().map_or(0, |l| l.rate_bytes_per_sec);
                let m = match cluster.net.as_ref().map(|n| n.bandwidth(*index)) {
                    Some(Ok(at_end)) => {
                        proof::ip_bandwidth(rate, &l.shaping_at_inject, &at_end, &l.ip_before, &ip_snapshot(cluster))
                    }
                    Some(Err(e)) => proof::Measured { problems: vec![e], ..Default::default() },
                    None => proof::Measured { problems: vec![fault::NEEDS_NETNS.to_string()], ..Default::default() },
                };
                l.measured = m.proven;
                out.fidelity.evidence.extend(m.evidence);
                out.fidelity.problems.extend(m.problems);
            }
            if let Some(m) = proof::node_fault_held(cluster, &l.action).await {
                l.measured &= m.proven;
                out.fidelity.evidence.extend(m.evidence);
                out.fidelity.problems.extend(m.problems);
            }
        }
        ok &= l.injected && l.measured;
    }
    done.sort_by_key(|l| std::cmp::Reverse(l.index));
    if !done.is_empty() {
        out.notes.push((ctx.rec.now_us(), format!("heal: {} fault(s)", done.len())));
        (ctx.say)("healed");
    }
    for l in &done {
        let at_us = ctx.rec.now_us();
        let result = fault::heal(cluster, &l.action).await;
        out.events.push(NemesisEvent {
            at_us,
            op: NemesisOp::Heal,
            fault: l.index,
            effect: fault::effect_of(&l.action, &cluster.plan),
            ok: result.is_ok(),
            detail: fault::describe(&l.action),
        });
        match result {
            Ok(ev) => out.fidelity.evidence.extend(ev),
            Err(e) => {
                ok = false;
                out.fidelity.problems.push(format!("heal failed: {e}"));
            }
        }
    }
    // Recovery is measured from when the heals were done (a restart takes time).
    if !done.is_empty() {
        out.last_heal_us = Some(ctx.rec.now_us());
    }
    ok
}

/// What the kernel shows in every node's namespace now: sockets (sock_diag) and TCP
/// retransmissions. Empty without namespaces.
fn ip_snapshot(cluster: &Cluster) -> proof::IpSnapshot {
    let mut snap = proof::IpSnapshot::default();
    let Some(net) = &cluster.net else { return snap };
    for n in &cluster.plan.nodes {
        if let Ok(sockets) = net.sockets(n.id) {
            snap.sockets.insert(n.id, sockets);
        }
        if let Some(r) = net.snmp_counter(n.id, "Tcp", "RetransSegs") {
            snap.retrans.insert(n.id, r);
        }
    }
    snap
}

/// A black hole is proven by the kernel's per-socket counters: bytes went into the cut links
/// and none came back, and no bytes crossed between the cut pairs through their Kafka proxies.
fn prove_black_holes(
    cluster: &Cluster,
    action: &Action,
    ps: &[fault::Placement],
    before: &Result<Vec<SockCounters>, String>,
    after: &Result<Vec<SockCounters>, String>,
    probed_silent: &BTreeSet<String>,
    out: &mut NemesisRun,
) -> bool {
    let (b, af) = match (before, after) {
        (Ok(b), Ok(af)) => (b, af),
        (Err(e), _) | (_, Err(e)) => {
            out.fidelity.problems.push(format!("the kernel's socket counters could not be read: {e}"));
            return false;
        }
    };
    let m = proof::black_holes(&cluster.plan, ps, b, af, probed_silent);
    let mut ok = m.proven;
    out.fidelity.evidence.extend(m.evidence);
    out.fidelity.problems.extend(m.problems);
    if let Effect::Cut { pairs } = fault::effect_of(action, &cluster.plan) {
        let pid_of = |id: u8| cluster.supervisor.node(id).ok().and_then(|n| n.pid());
        let sockets = |n: u8| pid_of(n).map(os::connections_of).unwrap_or_default();
        let side = proof::kafka_side_channel(&cluster.plan, &pairs, &sockets, b, af);
        ok &= side.is_empty();
        if side.is_empty() {
            out.fidelity.evidence.push(format!(
                "no bytes crossed between the {} cut node pairs through their Kafka proxies (kernel socket counters)",
                pairs.len()
            ));
        }
        out.fidelity.problems.extend(side);
    }
    ok
}
