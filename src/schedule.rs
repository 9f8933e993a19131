//! Nemesis schedules as data: which fault runs from when to when (ms after the warmup), a
//! seeded generator that draws a schedule from a set of faults, and the shrinking search for a
//! smaller schedule that still fails. Pure: the runner executes a [`Schedule`]; nothing here
//! touches a cluster.

use std::collections::BTreeMap;
use std::future::Future;

use serde::{Deserialize, Serialize};

use crate::scenario::Fault;

/// One fault of a schedule and its window, in ms after the end of the warmup.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub fault: Fault,
    pub start_ms: u64,
    pub end_ms: u64,
    /// The nodes the fault's roles were resolved to when it ran (`leader` → 2). Recorded in
    /// results.json; a replay pins the roles to these nodes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub targets: BTreeMap<String, u8>,
}

/// Faults with their windows, ordered by start (then end).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    pub steps: Vec<Step>,
}

/// How to draw a schedule: `count` faults from `nemeses`, one after another, each held for a
/// duration in `[min_fault_ms, max_fault_ms]`, separated by gaps in `[min_gap_ms, max_gap_ms]`
/// (the first starts after a gap too).
#[derive(Clone, Debug, PartialEq)]
pub struct Generator {
    pub nemeses: Vec<Fault>,
    pub count: usize,
    pub min_fault_ms: u64,
    pub max_fault_ms: u64,
    pub min_gap_ms: u64,
    pub max_gap_ms: u64,
}

/// The outcome of [`shrink`]: the failing schedule it started from, the smallest schedule found
/// that still fails, and how many runs the search cost.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Shrunk {
    pub original: Schedule,
    pub smallest: Schedule,
    /// Candidate schedules run (the original is not rerun).
    pub tries: usize,
    /// The search stopped because the budget ran out, not because no candidate failed: a smaller
    /// failing schedule may exist.
    pub exhausted_budget: bool,
}

impl Schedule {
    /// A schedule of `steps`, ordered by start, then end.
    pub fn new(mut steps: Vec<Step>) -> Schedule {
        steps.sort_by_key(|s| (s.start_ms, s.end_ms));
        Schedule { steps }
    }

    /// Every fault held together from 0 to `hold_ms`: what a scenario without windows runs.
    pub fn all_at_once(faults: &[Fault], hold_ms: u64) -> Schedule {
        Schedule::new(
            faults
                .iter()
                .map(|f| Step { fault: f.clone(), start_ms: 0, end_ms: hold_ms, targets: BTreeMap::new() })
                .collect(),
        )
    }

    /// When the last fault heals, in ms after the warmup (0 for an empty schedule).
    pub fn span_ms(&self) -> u64 {
        self.steps.iter().map(|s| s.end_ms).max().unwrap_or(0)
    }

    /// Every step ends after it starts, and steps are ordered by start (then end). Errors name
    /// the step as `steps[i]` (its place in results.json) with its fault.
    pub fn validate(&self) -> Result<(), String> {
        for (i, s) in self.steps.iter().enumerate() {
            if s.end_ms <= s.start_ms {
                return Err(format!(
                    "steps[{i}] ({}) ends at {} ms, not after its start at {} ms: give it an end later than its start",
                    fault_words(&s.fault),
                    s.end_ms,
                    s.start_ms
                ));
            }
        }
        for (i, w) in self.steps.windows(2).enumerate() {
            if (w[1].start_ms, w[1].end_ms) < (w[0].start_ms, w[0].end_ms) {
                return Err(format!(
                    "steps[{}] ({}) comes before steps[{i}] ({}) in time: order steps by start (Schedule::new does)",
                    i + 1,
                    fault_words(&w[1].fault),
                    fault_words(&w[0].fault)
                ));
            }
        }
        Ok(())
    }

    /// One line per step, as [`describe`] writes it.
    pub fn describe(&self) -> Vec<String> {
        self.steps.iter().map(describe).collect()
    }
}

/// Draws a schedule: `g.count` faults from `g.nemeses` (with replacement), one after another,
/// each after a gap. The same generator and seed always give the same schedule.
pub fn generate(g: &Generator, seed: u64) -> Result<Schedule, String> {
    if g.nemeses.is_empty() {
        return Err("the generator has no nemeses to draw from: list at least one fault".into());
    }
    if g.count == 0 {
        return Err("the generator's count is 0: ask for at least one fault".into());
    }
    if g.min_fault_ms == 0 {
        return Err("min_fault_ms is 0: a fault must be held for at least 1 ms".into());
    }
    if g.min_fault_ms > g.max_fault_ms {
        return Err(format!(
            "min_fault_ms ({}) is greater than max_fault_ms ({}): swap them or make them equal",
            g.min_fault_ms, g.max_fault_ms
        ));
    }
    if g.min_gap_ms > g.max_gap_ms {
        return Err(format!(
            "min_gap_ms ({}) is greater than max_gap_ms ({}): swap them or make them equal",
            g.min_gap_ms, g.max_gap_ms
        ));
    }
    let too_long = || format!("{} faults of up to {} ms do not fit in u64 milliseconds", g.count, g.max_fault_ms);
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut t = 0u64;
    let mut steps = Vec::with_capacity(g.count);
    for _ in 0..g.count {
        let start_ms = t.checked_add(rng.u64(g.min_gap_ms..=g.max_gap_ms)).ok_or_else(too_long)?;
        let end_ms = start_ms.checked_add(rng.u64(g.min_fault_ms..=g.max_fault_ms)).ok_or_else(too_long)?;
        let fault = g.nemeses[rng.usize(..g.nemeses.len())].clone();
        steps.push(Step { fault, start_ms, end_ms, targets: BTreeMap::new() });
        t = end_ms;
    }
    Ok(Schedule::new(steps))
}

/// Smaller schedules to try in place of `s`, the largest reduction first: `s` without one of
/// its steps (when it has more than one), then `s` with one step held half as long (never below
/// `min_fault_ms`, nor below 1 ms; the step keeps its start). Either way the steps that started
/// at or after the changed step's old end move earlier by the time saved, so no empty window is
/// left and the span shrinks too. A dropped step that overlapped no other takes the gap after
/// it along (the next step starts where it started, after the gap before it); one that
/// overlapped another saves its hold.
pub fn shrink_candidates(s: &Schedule, min_fault_ms: u64) -> Vec<Schedule> {
    let floor = min_fault_ms.max(1);
    let mut out = Vec::new();
    if s.steps.len() > 1 {
        for (i, dropped) in s.steps.iter().enumerate() {
            let alone = !s
                .steps
                .iter()
                .enumerate()
                .any(|(j, o)| j != i && o.start_ms < dropped.end_ms && o.end_ms > dropped.start_ms);
            let next = s.steps.iter().filter(|o| o.start_ms >= dropped.end_ms).map(|o| o.start_ms).min();
            let saved = match next {
                Some(next) if alone => next - dropped.start_ms,
                _ => dropped.end_ms.saturating_sub(dropped.start_ms),
            };
            let steps = s
                .steps
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, other)| pulled_in(other, dropped.end_ms, saved))
                .collect();
            out.push(Schedule::new(steps));
        }
    }
    for (i, step) in s.steps.iter().enumerate() {
        let held = step.end_ms.saturating_sub(step.start_ms);
        let shorter = (held / 2).max(floor);
        if shorter >= held {
            continue;
        }
        let saved = held - shorter;
        let steps = s
            .steps
            .iter()
            .enumerate()
            .map(|(j, other)| {
                if j == i {
                    Step { end_ms: other.start_ms + shorter, ..other.clone() }
                } else {
                    pulled_in(other, step.end_ms, saved)
                }
            })
            .collect();
        out.push(Schedule::new(steps));
    }
    out
}

/// `step` moved `saved` ms earlier when it starts at or after `freed_at` (the old end of the
/// step that was dropped or shortened); as it was otherwise.
fn pulled_in(step: &Step, freed_at: u64, saved: u64) -> Step {
    let mut step = step.clone();
    if step.start_ms >= freed_at {
        step.start_ms -= saved;
        step.end_ms -= saved;
    }
    step
}

/// Greedy search for a smaller schedule that still fails: tries [`shrink_candidates`] of the
/// current schedule in order, adopts the first for which `still_fails` says true and starts over
/// from it; stops when no candidate fails or after `budget` tries. `failing` is assumed to fail
/// and is not rerun.
pub async fn shrink<F, Fut>(failing: Schedule, min_fault_ms: u64, budget: usize, mut still_fails: F) -> Shrunk
where
    F: FnMut(Schedule) -> Fut,
    Fut: Future<Output = bool>,
{
    let mut smallest = failing.clone();
    let mut tries = 0;
    let mut exhausted_budget = false;
    'search: loop {
        for candidate in shrink_candidates(&smallest, min_fault_ms) {
            if tries == budget {
                exhausted_budget = true;
                break 'search;
            }
            tries += 1;
            if still_fails(candidate.clone()).await {
                smallest = candidate;
                continue 'search;
            }
        }
        break;
    }
    Shrunk { original: failing, smallest, tries, exhausted_budget }
}

/// One step for a report: `kill leader 5.0–12.0 s (leader = n2)`, `isolate n2 3.0–8.5 s`,
/// `latency 100 ms on clients 0.0–10.0 s`. Resolved targets follow in parentheses.
pub fn describe(step: &Step) -> String {
    let mut out = format!("{} {}–{} s", fault_words(&step.fault), seconds(step.start_ms), seconds(step.end_ms));
    if !step.targets.is_empty() {
        let targets: Vec<String> = step.targets.iter().map(|(role, n)| format!("{role} = n{n}")).collect();
        out.push_str(&format!(" ({})", targets.join(", ")));
    }
    out
}

/// A fault in a few words: `kill leader`, `one-way partition leader → n3`, `latency 100 ms on
/// clients`.
pub fn fault_words(f: &Fault) -> String {
    use crate::scenario::{LinkSet, Shape};
    use crate::toxiproxy::{Stream, ToxicKind};
    match f {
        Fault::Kill(t) => format!("kill {t}"),
        Fault::Pause(t) => format!("pause {t}"),
        Fault::Partition(Shape::Isolate(t)) => format!("isolate {t}"),
        Fault::Partition(Shape::OneWay { from, to }) => format!("one-way partition {from} → {to}"),
        Fault::Partition(Shape::Between { a, b }) => format!("partition {a} ↔ {b}"),
        Fault::Partition(Shape::ClientCut(t)) => format!("clients cut from {t}"),
        Fault::Partition(Shape::Split { side }) => {
            format!("split {} | the rest", side.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(", "))
        }
        Fault::Partition(Shape::Ring) => "majorities ring".to_string(),
        Fault::Partition(Shape::Bridge { via }) => format!("bridge through {via}"),
        Fault::RollingRestart => "rolling restart".to_string(),
        Fault::ClockSkew { target, offset_ms } => format!("clock skew {target} {}", crate::clock::words(*offset_ms)),
        Fault::DiskFull(t) => format!("disk full {t}"),
        Fault::IpPartition(shape) => format!("{} (IP layer)", fault_words(&Fault::Partition(shape.clone()))),
        Fault::IpLoss { percent } => format!("packet loss {percent}% on inter-node links (IP layer)"),
        Fault::IpBandwidth { rate_kb_s } => format!("bandwidth {rate_kb_s} KB/s on inter-node links (IP layer)"),
        Fault::Toxic { links, streams, kind, toxicity } => {
            let mut out = match kind {
                ToxicKind::Latency { latency, jitter: 0 } => format!("latency {latency} ms"),
                ToxicKind::Latency { latency, jitter } => format!("latency {latency} ± {jitter} ms"),
                ToxicKind::Bandwidth { rate } => format!("bandwidth {rate} KB/s"),
                ToxicKind::SlowClose { delay } => format!("slow close {delay} ms"),
                ToxicKind::Timeout { timeout: 0 } => "black hole".to_string(),
                ToxicKind::Timeout { timeout } => format!("timeout {timeout} ms"),
                ToxicKind::ResetPeer { timeout } => format!("reset peer after {timeout} ms"),
                ToxicKind::Slicer { average_size, size_variation, delay } => {
                    format!("slicer {average_size} ± {size_variation} B every {delay} µs")
                }
                ToxicKind::LimitData { bytes } => format!("limit data {bytes} B"),
                ToxicKind::Unknown { type_name, attributes } => format!("{type_name} {attributes}"),
            };
            out.push_str(match links {
                LinkSet::Clients => " on clients",
                LinkSet::InterNode => " on inter-node links",
            });
            match streams.as_slice() {
                [Stream::Upstream] => out.push_str(" upstream"),
                [Stream::Downstream] => out.push_str(" downstream"),
                _ => {}
            }
            if *toxicity < 1.0 {
                out.push_str(&format!(" (toxicity {toxicity})"));
            }
            out
        }
    }
}

/// Milliseconds as seconds with at least one decimal and no rounding: `5.0`, `8.5`, `3.75`.
fn seconds(ms: u64) -> String {
    let frac = format!("{:03}", ms % 1000);
    let frac = frac.trim_end_matches('0');
    format!("{}.{}", ms / 1000, if frac.is_empty() { "0" } else { frac })
}

/// A fault as results.json holds it: the scenario file's own words (`kind`, `links`, `shape`,
/// targets as `leader`, `n2`, ...), so a schedule reads like the TOML it came from.
#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
enum FaultRecord {
    Toxic {
        links: String,
        streams: Vec<crate::toxiproxy::Stream>,
        #[serde(rename = "type")]
        type_name: String,
        #[serde(default)]
        attributes: serde_json::Value,
        toxicity: f32,
    },
    Partition {
        shape: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<String>,
        /// `split`: the targets on one side.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        side: Vec<String>,
        /// `ip` for an IP-layer partition; absent: Toxiproxy's.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        layer: Option<String>,
    },
    Kill {
        target: String,
    },
    Pause {
        target: String,
    },
    RollingRestart {},
    ClockSkew {
        target: String,
        offset_ms: i64,
    },
    DiskFull {
        target: String,
    },
    Loss {
        links: String,
        percent: u8,
        layer: String,
    },
    Bandwidth {
        links: String,
        /// KB/s, as in the scenario file.
        rate: u32,
        layer: String,
    },
}

impl Serialize for Fault {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use crate::scenario::{LinkSet, Shape, Target};
        let record = match self {
            Fault::Toxic { links, streams, kind, toxicity } => FaultRecord::Toxic {
                links: match links {
                    LinkSet::Clients => "clients",
                    LinkSet::InterNode => "inter-node",
                }
                .to_string(),
                streams: streams.clone(),
                type_name: kind.type_name().to_string(),
                attributes: kind.attributes(),
                toxicity: *toxicity,
            },
            Fault::Partition(shape) | Fault::IpPartition(shape) => {
                let (from, to): (Option<&Target>, Option<&Target>) = match shape {
                    Shape::Isolate(t) | Shape::ClientCut(t) | Shape::Bridge { via: t } => (Some(t), None),
                    Shape::OneWay { from, to } => (Some(from), Some(to)),
                    Shape::Between { a, b } => (Some(a), Some(b)),
                    Shape::Split { .. } | Shape::Ring => (None, None),
                };
                FaultRecord::Partition {
                    shape: crate::scenario::shape_name(shape).into(),
                    from: from.map(|t| t.to_string()),
                    to: to.map(|t| t.to_string()),
                    side: match shape {
                        Shape::Split { side } => side.iter().map(|t| t.to_string()).collect(),
                        _ => Vec::new(),
                    },
                    layer: matches!(self, Fault::IpPartition(_)).then(|| "ip".to_string()),
                }
            }
            Fault::Kill(t) => FaultRecord::Kill { target: t.to_string() },
            Fault::Pause(t) => FaultRecord::Pause { target: t.to_string() },
            Fault::RollingRestart => FaultRecord::RollingRestart {},
            Fault::ClockSkew { target, offset_ms } => {
                FaultRecord::ClockSkew { target: target.to_string(), offset_ms: *offset_ms }
            }
            Fault::DiskFull(t) => FaultRecord::DiskFull { target: t.to_string() },
            Fault::IpLoss { percent } => {
                FaultRecord::Loss { links: "inter-node".into(), percent: *percent, layer: "ip".into() }
            }
            Fault::IpBandwidth { rate_kb_s } => {
                FaultRecord::Bandwidth { links: "inter-node".into(), rate: *rate_kb_s, layer: "ip".into() }
            }
        };
        record.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Fault {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Fault, D::Error> {
        use crate::scenario::{LinkSet, Shape, Target};
        use serde::de::Error;
        let target = |s: &str| Target::parse(s).map_err(D::Error::custom);
        Ok(match FaultRecord::deserialize(d)? {
            FaultRecord::Toxic { links, streams, type_name, attributes, toxicity } => Fault::Toxic {
                links: match links.as_str() {
                    "clients" => LinkSet::Clients,
                    "inter-node" => LinkSet::InterNode,
                    other => return Err(D::Error::custom(format!("unknown links `{other}`"))),
                },
                streams,
                kind: crate::toxiproxy::ToxicKind::from_parts(&type_name, &attributes)
                    .map_err(D::Error::custom)?
                    .ok_or_else(|| D::Error::custom(format!("unknown toxic type `{type_name}`")))?,
                toxicity,
            },
            FaultRecord::Partition { shape, from, to, side, layer } => {
                let need = |v: &Option<String>, what: &str| {
                    target(v.as_deref().ok_or_else(|| D::Error::custom(format!("partition `{shape}` needs `{what}`")))?)
                };
                let shape = match shape.as_str() {
                    "isolate" => Shape::Isolate(need(&from, "from")?),
                    "one-way" => Shape::OneWay { from: need(&from, "from")?, to: need(&to, "to")? },
                    "between" => Shape::Between { a: need(&from, "from")?, b: need(&to, "to")? },
                    "client-cut" => Shape::ClientCut(need(&from, "from")?),
                    "bridge" => Shape::Bridge { via: need(&from, "from")? },
                    "ring" => Shape::Ring,
                    "split" if !side.is_empty() => {
                        Shape::Split { side: side.iter().map(|t| target(t)).collect::<Result<_, _>>()? }
                    }
                    "split" => return Err(D::Error::custom("partition `split` needs `side`")),
                    other => return Err(D::Error::custom(format!("unknown partition shape `{other}`"))),
                };
                match layer.as_deref() {
                    None | Some("proxy") => Fault::Partition(shape),
                    Some("ip") => Fault::IpPartition(shape),
                    Some(other) => return Err(D::Error::custom(format!("unknown layer `{other}`"))),
                }
            }
            FaultRecord::Kill { target: t } => Fault::Kill(target(&t)?),
            FaultRecord::Pause { target: t } => Fault::Pause(target(&t)?),
            FaultRecord::RollingRestart {} => Fault::RollingRestart,
            FaultRecord::ClockSkew { target: t, offset_ms } => Fault::ClockSkew { target: target(&t)?, offset_ms },
            FaultRecord::DiskFull { target: t } => Fault::DiskFull(target(&t)?),
            FaultRecord::Loss { links, percent, layer } => {
                if links != "inter-node" || layer != "ip" {
                    return Err(D::Error::custom(format!("loss on `{links}` at layer `{layer}`: only inter-node, ip")));
                }
                Fault::IpLoss { percent }
            }
            FaultRecord::Bandwidth { links, rate, layer } => {
                if links != "inter-node" || layer != "ip" {
                    return Err(D::Error::custom(format!(
                        "bandwidth on `{links}` at layer `{layer}`: only inter-node, ip"
                    )));
                }
                Fault::IpBandwidth { rate_kb_s: rate }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_fault_round_trips_through_json() {
        for s in crate::scenario::builtin() {
            for (i, f) in s.faults.iter().enumerate() {
                let json = serde_json::to_string(f).unwrap();
                let back: Fault = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{}#{i}: {e}: {json}", s.name));
                assert_eq!(&back, f, "{}#{i}: {json}", s.name);
            }
        }
        // Clock skews and full disks read like the scenario file.
        let skew = Fault::ClockSkew { target: crate::scenario::Target::Leader, offset_ms: -30_000 };
        assert_eq!(
            serde_json::to_string(&skew).unwrap(),
            r#"{"kind":"clock-skew","target":"leader","offset_ms":-30000}"#
        );
        let full: Fault = serde_json::from_str(r#"{"kind":"disk-full","target":"follower"}"#).unwrap();
        assert_eq!(full, Fault::DiskFull(crate::scenario::Target::Follower));
        // IP-layer faults name their layer; proxy partitions do not (older files read the same).
        let ip = Fault::IpPartition(crate::scenario::Shape::Isolate(crate::scenario::Target::Leader));
        let json = serde_json::to_string(&ip).unwrap();
        assert_eq!(json, r#"{"kind":"partition","shape":"isolate","from":"leader","layer":"ip"}"#);
        assert_eq!(serde_json::from_str::<Fault>(&json).unwrap(), ip);
        let loss = Fault::IpLoss { percent: 10 };
        let json = serde_json::to_string(&loss).unwrap();
        assert_eq!(json, r#"{"kind":"loss","links":"inter-node","percent":10,"layer":"ip"}"#);
        assert_eq!(serde_json::from_str::<Fault>(&json).unwrap(), loss);
        let bw = Fault::IpBandwidth { rate_kb_s: 32 };
        let json = serde_json::to_string(&bw).unwrap();
        assert_eq!(json, r#"{"kind":"bandwidth","links":"inter-node","rate":32,"layer":"ip"}"#);
        assert_eq!(serde_json::from_str::<Fault>(&json).unwrap(), bw);
        assert_eq!(fault_words(&bw), "bandwidth 32 KB/s on inter-node links (IP layer)");
        let e = serde_json::from_str::<Fault>(r#"{"kind":"bandwidth","links":"clients","rate":32,"layer":"ip"}"#)
            .unwrap_err();
        assert!(e.to_string().contains("only inter-node, ip"), "{e}");
        let proxy: Fault = serde_json::from_str(r#"{"kind":"partition","shape":"isolate","from":"n1"}"#).unwrap();
        assert_eq!(proxy, Fault::Partition(crate::scenario::Shape::Isolate(crate::scenario::Target::Node(1))));
        let kill: Fault = serde_json::from_str(r#"{"kind":"kill","target":"n2"}"#).unwrap();
        assert_eq!(kill, Fault::Kill(crate::scenario::Target::Node(2)));
        let e = serde_json::from_str::<Fault>(r#"{"kind":"partition","shape":"one-way","from":"leader"}"#).unwrap_err();
        assert!(e.to_string().contains("needs `to`"), "{e}");
    }

    use crate::scenario::{LinkSet, Shape, Target};
    use crate::toxiproxy::{Stream, ToxicKind};

    fn step(fault: Fault, start_ms: u64, end_ms: u64) -> Step {
        Step { fault, start_ms, end_ms, targets: BTreeMap::new() }
    }

    fn latency(ms: i64, jitter: i64) -> Fault {
        Fault::Toxic {
            links: LinkSet::Clients,
            streams: vec![Stream::Upstream, Stream::Downstream],
            kind: ToxicKind::Latency { latency: ms, jitter },
            toxicity: 1.0,
        }
    }

    fn nemeses() -> Vec<Fault> {
        vec![
            Fault::Kill(Target::Leader),
            Fault::Pause(Target::Follower),
            Fault::Partition(Shape::Isolate(Target::Node(2))),
            latency(100, 0),
        ]
    }

    fn generator() -> Generator {
        Generator {
            nemeses: nemeses(),
            count: 6,
            min_fault_ms: 2_000,
            max_fault_ms: 9_000,
            min_gap_ms: 500,
            max_gap_ms: 4_000,
        }
    }

    /// Steps as `(fault words, start, end)`, to compare schedules at a glance.
    fn windows(s: &Schedule) -> Vec<(String, u64, u64)> {
        s.steps.iter().map(|s| (fault_words(&s.fault), s.start_ms, s.end_ms)).collect()
    }

    fn held_ms(s: &Schedule) -> u64 {
        s.steps.iter().map(|s| s.end_ms - s.start_ms).sum()
    }

    #[test]
    fn new_orders_by_start_then_end_and_span_is_the_latest_end() {
        let s = Schedule::new(vec![
            step(Fault::Kill(Target::Leader), 5_000, 9_000),
            step(Fault::Pause(Target::Follower), 1_000, 12_000),
            step(Fault::Kill(Target::Node(3)), 1_000, 3_000),
        ]);
        assert_eq!(
            windows(&s),
            [
                ("kill n3".into(), 1_000, 3_000),
                ("pause follower".into(), 1_000, 12_000),
                ("kill leader".into(), 5_000, 9_000)
            ]
        );
        assert_eq!(s.span_ms(), 12_000);
        assert_eq!(Schedule::default().span_ms(), 0);
        assert_eq!(s.validate(), Ok(()));
    }

    #[test]
    fn all_at_once_holds_every_fault_for_the_whole_hold() {
        let faults = [Fault::Kill(Target::Leader), Fault::Kill(Target::Follower)];
        let s = Schedule::all_at_once(&faults, 10_000);
        assert_eq!(windows(&s), [("kill leader".into(), 0, 10_000), ("kill follower".into(), 0, 10_000)]);
        assert_eq!(s.span_ms(), 10_000);
        assert_eq!(s.validate(), Ok(()));
    }

    #[test]
    fn validate_names_the_step_and_its_fault() {
        let check = |steps: Vec<Step>, expected: &str| {
            assert_eq!(Schedule { steps }.validate().unwrap_err(), expected);
        };
        check(
            vec![step(latency(100, 0), 0, 1_000), step(Fault::Kill(Target::Leader), 6_000, 5_000)],
            "steps[1] (kill leader) ends at 5000 ms, not after its start at 6000 ms: give it an end later than its start",
        );
        check(
            vec![step(Fault::Partition(Shape::Isolate(Target::Node(2))), 3_000, 3_000)],
            "steps[0] (isolate n2) ends at 3000 ms, not after its start at 3000 ms: give it an end later than its start",
        );
        check(
            vec![step(Fault::Kill(Target::Leader), 5_000, 6_000), step(Fault::Pause(Target::Node(1)), 1_000, 2_000)],
            "steps[1] (pause n1) comes before steps[0] (kill leader) in time: order steps by start (Schedule::new does)",
        );
        assert!(Schedule::all_at_once(&nemeses(), 0)
            .validate()
            .unwrap_err()
            .starts_with("steps[0] (kill leader) ends"));
    }

    #[test]
    fn the_same_seed_draws_the_same_schedule() {
        let g = generator();
        for seed in [0, 1, 42, u64::MAX] {
            assert_eq!(generate(&g, seed).unwrap(), generate(&g, seed).unwrap(), "seed {seed}");
        }
    }

    #[test]
    fn different_seeds_draw_different_schedules() {
        let g = generator();
        let drawn: Vec<Schedule> = (0..50).map(|seed| generate(&g, seed).unwrap()).collect();
        let unique = drawn.iter().enumerate().filter(|(i, s)| !drawn[..*i].contains(s)).count();
        assert_eq!(unique, 50, "50 seeds drew only {unique} distinct schedules");
    }

    #[test]
    fn generated_schedules_are_sequential_and_in_range() {
        let g = generator();
        for seed in 0..200 {
            let s = generate(&g, seed).unwrap();
            assert_eq!(s.steps.len(), g.count, "seed {seed}");
            assert_eq!(s.validate(), Ok(()), "seed {seed}");
            let mut previous_end = 0;
            for (i, st) in s.steps.iter().enumerate() {
                let gap =
                    st.start_ms.checked_sub(previous_end).unwrap_or_else(|| panic!("seed {seed}: steps[{i}] overlaps"));
                assert!((g.min_gap_ms..=g.max_gap_ms).contains(&gap), "seed {seed}: steps[{i}] gap {gap}");
                let held = st.end_ms - st.start_ms;
                assert!((g.min_fault_ms..=g.max_fault_ms).contains(&held), "seed {seed}: steps[{i}] held {held}");
                assert!(g.nemeses.contains(&st.fault), "seed {seed}: steps[{i}] {:?}", st.fault);
                assert!(st.targets.is_empty());
                previous_end = st.end_ms;
            }
            assert_eq!(s.span_ms(), previous_end);
        }
        // Equal bounds give exact windows; over many seeds every nemesis is drawn.
        let fixed = Generator { min_fault_ms: 3_000, max_fault_ms: 3_000, min_gap_ms: 0, max_gap_ms: 0, ..generator() };
        let s = generate(&fixed, 7).unwrap();
        assert_eq!(
            s.steps.iter().map(|s| (s.start_ms, s.end_ms)).collect::<Vec<_>>()[..2],
            [(0, 3_000), (3_000, 6_000)]
        );
        let drawn: Vec<Fault> = (0..50).flat_map(|seed| generate(&g, seed).unwrap().steps).map(|s| s.fault).collect();
        assert!(g.nemeses.iter().all(|f| drawn.contains(f)));
    }

    #[test]
    fn impossible_generators_are_refused() {
        let check = |g: Generator, expected: &str| {
            assert_eq!(generate(&g, 1).unwrap_err(), expected);
        };
        check(
            Generator { nemeses: vec![], ..generator() },
            "the generator has no nemeses to draw from: list at least one fault",
        );
        check(Generator { count: 0, ..generator() }, "the generator's count is 0: ask for at least one fault");
        check(
            Generator { min_fault_ms: 0, max_fault_ms: 0, ..generator() },
            "min_fault_ms is 0: a fault must be held for at least 1 ms",
        );
        check(
            Generator { min_fault_ms: 5_000, max_fault_ms: 4_000, ..generator() },
            "min_fault_ms (5000) is greater than max_fault_ms (4000): swap them or make them equal",
        );
        check(
            Generator { min_gap_ms: 2, max_gap_ms: 1, ..generator() },
            "min_gap_ms (2) is greater than max_gap_ms (1): swap them or make them equal",
        );
        check(
            Generator { count: 3, min_fault_ms: u64::MAX / 2, max_fault_ms: u64::MAX / 2, ..generator() },
            &format!("3 faults of up to {} ms do not fit in u64 milliseconds", u64::MAX / 2),
        );
    }

    #[test]
    fn candidates_remove_a_step_then_halve_one_and_pull_later_steps_in_leaving_no_empty_window() {
        let kill = Fault::Kill(Target::Leader);
        let isolate = Fault::Partition(Shape::Isolate(Target::Node(2)));
        let check = |s: Schedule, floor: u64, expected: &[&[(&str, u64, u64)]]| {
            let got: Vec<Vec<(String, u64, u64)>> = shrink_candidates(&s, floor).iter().map(windows).collect();
            let expected: Vec<Vec<(String, u64, u64)>> =
                expected.iter().map(|c| c.iter().map(|(f, a, b)| (f.to_string(), *a, *b)).collect()).collect();
            assert_eq!(got, expected);
        };
        let two = Schedule::new(vec![step(kill.clone(), 1_000, 5_000), step(isolate.clone(), 6_000, 8_000)]);
        check(
            two.clone(),
            1_500,
            &[
                // The kill and the gap after it go: the isolation starts where the kill did.
                &[("isolate n2", 1_000, 3_000)],
                &[("kill leader", 1_000, 5_000)],
                &[("kill leader", 1_000, 3_000), ("isolate n2", 4_000, 6_000)],
                // Half of 2 s is below the 1.5 s floor: held for the floor.
                &[("kill leader", 1_000, 5_000), ("isolate n2", 6_000, 7_500)],
            ],
        );
        // At the floor already: nothing to shorten.
        check(two, 4_000, &[&[("isolate n2", 1_000, 3_000)], &[("kill leader", 1_000, 5_000)]]);
        // One after another: dropping the middle one pulls the last in to where it started.
        let pause = Fault::Pause(Target::Follower);
        let three = Schedule::new(vec![
            step(kill.clone(), 1_000, 3_000),
            step(isolate.clone(), 5_000, 7_000),
            step(pause.clone(), 9_000, 11_000),
        ]);
        let dropped: Vec<Vec<(String, u64, u64)>> = shrink_candidates(&three, 2_000).iter().map(windows).collect();
        assert_eq!(
            dropped[1],
            vec![("kill leader".to_string(), 1_000, 3_000), ("pause follower".to_string(), 5_000, 7_000)]
        );
        assert_eq!(dropped[0][0], ("isolate n2".to_string(), 1_000, 3_000));
        // One step: never removed. A floor of 0 still keeps 1 ms.
        check(Schedule::new(vec![step(kill.clone(), 0, 1)]), 0, &[]);
        check(Schedule::new(vec![step(kill.clone(), 10, 13)]), 0, &[&[("kill leader", 10, 11)]]);
        // Overlapping steps: only the steps that start after the shortened one's old end move.
        check(
            Schedule::new(vec![
                step(kill.clone(), 0, 8_000),
                step(isolate.clone(), 2_000, 10_000),
                step(Fault::Pause(Target::Follower), 9_000, 11_000),
            ]),
            1_000,
            &[
                &[("pause follower", 1_000, 3_000), ("isolate n2", 2_000, 10_000)],
                &[("kill leader", 0, 8_000), ("pause follower", 9_000, 11_000)],
                &[("kill leader", 0, 8_000), ("isolate n2", 2_000, 10_000)],
                &[("kill leader", 0, 4_000), ("isolate n2", 2_000, 10_000), ("pause follower", 5_000, 7_000)],
                &[("kill leader", 0, 8_000), ("isolate n2", 2_000, 6_000), ("pause follower", 9_000, 11_000)],
                &[("kill leader", 0, 8_000), ("isolate n2", 2_000, 10_000), ("pause follower", 9_000, 10_000)],
            ],
        );
    }

    /// A long generated schedule (8 faults, 2–9 s each) that holds a kill of the leader.
    fn failing() -> Schedule {
        let g = Generator { count: 8, ..generator() };
        let s = (0..)
            .map(|seed| generate(&g, seed).unwrap())
            .find(|s| s.steps.iter().filter(|st| st.fault == Fault::Kill(Target::Leader)).count() == 1);
        s.unwrap()
    }

    #[tokio::test]
    async fn shrinking_finds_the_one_step_that_matters_at_the_floor() {
        let original = failing();
        let kills_leader = |s: &Schedule| s.steps.iter().any(|st| st.fault == Fault::Kill(Target::Leader));
        let mut runs = 0;
        let shrunk = shrink(original.clone(), 1_000, 1_000, |s| {
            runs += 1;
            let fails = kills_leader(&s);
            async move { fails }
        })
        .await;
        assert_eq!(shrunk.original, original);
        assert_eq!(shrunk.smallest.steps.len(), 1, "{:?}", shrunk.smallest.describe());
        let only = &shrunk.smallest.steps[0];
        assert_eq!(only.fault, Fault::Kill(Target::Leader));
        assert_eq!(only.end_ms - only.start_ms, 1_000);
        assert_eq!((shrunk.tries, shrunk.exhausted_budget), (runs, false));
        assert!(shrunk.tries < 30, "{} tries", shrunk.tries);
    }

    #[tokio::test]
    async fn shrinking_stops_at_the_threshold_of_a_failure() {
        let original = failing();
        assert!(held_ms(&original) >= 10_000);
        let fails = |s: &Schedule| held_ms(s) >= 10_000;
        let shrunk = shrink(original.clone(), 500, 1_000, |s| {
            let f = fails(&s);
            async move { f }
        })
        .await;
        assert!(!shrunk.exhausted_budget);
        assert!(fails(&shrunk.smallest), "{:?}", shrunk.smallest.describe());
        assert!(held_ms(&shrunk.smallest) < held_ms(&original));
        // Removing a step leaves its window empty, so the span need not shrink; it never grows.
        assert!(shrunk.smallest.span_ms() <= original.span_ms());
        assert_eq!(shrunk.smallest.validate(), Ok(()));
        // A local minimum: no candidate of the result still fails.
        assert!(shrink_candidates(&shrunk.smallest, 500).iter().all(|c| !fails(c)));
    }

    #[tokio::test]
    async fn shrinking_spends_no_more_than_its_budget() {
        let original = failing();
        let mut runs = 0;
        let shrunk = shrink(original.clone(), 1_000, 3, |_| {
            runs += 1;
            async { true }
        })
        .await;
        assert_eq!((runs, shrunk.tries, shrunk.exhausted_budget), (3, 3, true));
        // Each try failed and was adopted: three steps fewer.
        assert_eq!(shrunk.smallest.steps.len(), original.steps.len() - 3);
    }

    #[tokio::test]
    async fn a_schedule_that_never_fails_again_is_kept() {
        let original = failing();
        let candidates = shrink_candidates(&original, 1_000).len();
        let shrunk = shrink(original.clone(), 1_000, 1_000, |_| async { false }).await;
        assert_eq!(shrunk.smallest, original);
        assert_eq!((shrunk.tries, shrunk.exhausted_budget), (candidates, false));
        // Budget 0: nothing tried, and the search says it was cut short.
        let shrunk = shrink(original.clone(), 1_000, 0, |_| async { true }).await;
        assert_eq!((shrunk.smallest == original, shrunk.tries, shrunk.exhausted_budget), (true, 0, true));
    }

    #[test]
    fn shrunk_round_trips_through_json() {
        let mut original = failing();
        original.steps[0].targets.insert("leader".into(), 2);
        let shrunk = Shrunk { original: original.clone(), smallest: original, tries: 4, exhausted_budget: true };
        let json = serde_json::to_string(&shrunk).unwrap();
        assert_eq!(serde_json::from_str::<Shrunk>(&json).unwrap(), shrunk);
    }

    #[test]
    fn steps_describe_themselves_for_reports() {
        let check = |st: Step, expected: &str| assert_eq!(describe(&st), expected);
        check(step(Fault::Kill(Target::Leader), 5_000, 12_000), "kill leader 5.0–12.0 s");
        check(step(Fault::Partition(Shape::Isolate(Target::Node(2))), 3_000, 8_500), "isolate n2 3.0–8.5 s");
        check(step(latency(100, 0), 0, 10_000), "latency 100 ms on clients 0.0–10.0 s");
        check(step(latency(100, 20), 250, 3_750), "latency 100 ± 20 ms on clients 0.25–3.75 s");
        let mut resolved = step(Fault::Kill(Target::Leader), 5_000, 12_001);
        resolved.targets.insert("leader".into(), 2);
        check(resolved, "kill leader 5.0–12.001 s (leader = n2)");
        let mut both = step(Fault::Partition(Shape::OneWay { from: Target::Leader, to: Target::Follower }), 0, 1_000);
        both.targets.extend([("leader".to_string(), 1), ("follower".to_string(), 3)]);
        check(both, "one-way partition leader → follower 0.0–1.0 s (follower = n3, leader = n1)");
        check(
            step(Fault::Partition(Shape::Between { a: Target::Node(1), b: Target::Node(2) }), 0, 1_000),
            "partition n1 ↔ n2 0.0–1.0 s",
        );
        check(step(Fault::Pause(Target::PartitionLeader), 0, 1_000), "pause partition-leader 0.0–1.0 s");
        check(
            step(Fault::ClockSkew { target: Target::Leader, offset_ms: -90_500 }, 0, 1_000),
            "clock skew leader -90.5 s 0.0–1.0 s",
        );
        check(step(Fault::DiskFull(Target::Follower), 0, 1_000), "disk full follower 0.0–1.0 s");
        check(
            step(
                Fault::Toxic {
                    links: LinkSet::InterNode,
                    streams: vec![Stream::Upstream],
                    kind: ToxicKind::Timeout { timeout: 0 },
                    toxicity: 0.5,
                },
                0,
                1_000,
            ),
            "black hole on inter-node links upstream (toxicity 0.5) 0.0–1.0 s",
        );
        let s = Schedule::new(vec![
            step(Fault::Kill(Target::Leader), 5_000, 12_000),
            step(Fault::Pause(Target::Follower), 1_000, 2_000),
        ]);
        assert_eq!(s.describe(), ["pause follower 1.0–2.0 s", "kill leader 5.0–12.0 s"]);
    }
}
