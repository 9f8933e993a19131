//! `results.json`: the suite's versioned output and the only input of the report renderers.
//! The schema is documented in docs/results.md; bump [`RESULTS_VERSION`] on any breaking change.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::checker::availability::PartitionAvailability;
use crate::checker::metadata::MetadataReport;
use crate::checker::quorum::QuorumReport;
use crate::checker::reads::PollReport;
use crate::checker::Anomalies;
use crate::history::TopicSettings;
use crate::liveness::Liveness;
use crate::verdict::{Fidelity, Verdict};

pub const RESULTS_VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Results {
    pub version: u32,
    pub tool: String,
    pub chronik: ChronikInfo,
    /// The Toxiproxy server used ("real toxiproxy-server 2.x" or "embedded ...").
    pub toxiproxy: String,
    pub seed: u64,
    pub started_at: String,
    pub finished_at: String,
    pub scenarios: Vec<ScenarioResult>,
}

/// One of `n` shards of a scenario selection (`chaos --shard K/N`), `1 <= k <= n`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Shard {
    pub k: u32,
    pub n: u32,
}

impl Shard {
    /// Whether the scenario at `index` (0-based, in selection order) belongs to this shard:
    /// scenario `i` goes to shard `(i mod n) + 1`.
    pub fn owns(self, index: usize) -> bool {
        index % self.n as usize == (self.k - 1) as usize
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.k, self.n)
    }
}

impl FromStr for Shard {
    type Err = String;

    /// `K/N` with `1 <= K <= N`, e.g. `2/4`.
    fn from_str(s: &str) -> Result<Shard, String> {
        let (k, n) = s.split_once('/').ok_or_else(|| format!("`{s}` is not K/N; write e.g. 2/4 (shard 2 of 4)"))?;
        let number = |what: &str, v: &str| {
            v.trim().parse::<u32>().map_err(|_| format!("{what} in `{s}` is not a whole number; write K/N, e.g. 2/4"))
        };
        let (k, n) = (number("K", k)?, number("N", n)?);
        if n == 0 {
            return Err(format!("N in `{s}` is 0; N is the number of shards, at least 1"));
        }
        if k == 0 || k > n {
            return Err(format!("K in `{s}` must be between 1 and {n} (shards are numbered from 1)"));
        }
        Ok(Shard { k, n })
    }
}

/// How a results file's scenarios were cut from a selection: stored beside [`Results`] in
/// `results.json` (`shard` and `selection`, both optional), read and written with
/// [`Results::read_with_sharding`] and [`Results::write_with`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sharding {
    /// The shard this run was (`chaos --shard K/N`); absent for a whole run and a merged one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<Shard>,
    /// Every selected scenario's name in run order, before sharding (absent in older files).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub selection: Vec<String>,
    /// A shard's output directory on the machine that ran it: `merge` makes the shard's paths
    /// relative to it, as a whole run's report shows them (absent for whole and merged runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_dir: Option<std::path::PathBuf>,
}

/// The shape written to disk: the results with the sharding fields after them.
#[derive(Serialize)]
struct ResultsFile<'a> {
    #[serde(flatten)]
    results: &'a Results,
    #[serde(flatten)]
    sharding: &'a Sharding,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ChronikInfo {
    pub binary: PathBuf,
    pub version: String,
}

/// One event of a scenario's timeline, in ms since its workload started.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub t_ms: f64,
    pub what: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub sends: usize,
    pub acked: usize,
    pub failed: usize,
    pub indeterminate: usize,
    pub acked_during_fault: usize,
    pub reads: usize,
    pub final_reads: usize,
}

/// A metric scraped from one node before and after a scenario.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricDelta {
    pub node: u8,
    pub name: String,
    /// `None` when the node does not export the metric at all (never reported as 0).
    pub before: Option<f64>,
    pub after: Option<f64>,
    /// Expected to move during the scenario and did not.
    pub flagged_static: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScenarioResult {
    pub name: String,
    pub family: String,
    pub description: String,
    pub source: String,
    pub verdict: Verdict,
    /// Why, with numbers (empty for PASS).
    pub explanation: Vec<String>,
    pub seed: u64,
    pub duration_ms: f64,
    pub timeline: Vec<Event>,
    /// Role → node chosen at injection time.
    pub targets: BTreeMap<String, u8>,
    /// Every toxic placed, as `proxy: toxic`.
    pub toxics: Vec<String>,
    pub fidelity: Fidelity,
    pub counts: Counts,
    pub anomalies: Anomalies,
    /// The rules that read the fault timeline (absent in older results files).
    #[serde(default)]
    pub checks: Option<Checks>,
    pub liveness: Option<Liveness>,
    pub metrics: Vec<MetricDelta>,
    /// The full history of sends and reads, for anyone who wants to check the checker.
    pub history_file: Option<PathBuf>,
    pub node_logs: Vec<PathBuf>,
    /// Cluster start-ups that never became ready before this scenario ran (each a finding
    /// about Chronik's start-up, with the stuck node and its log tail).
    #[serde(default)]
    pub startup_failures: Vec<String>,
    /// How many nodes the scenario's cluster had (absent in older results files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<u8>,
    /// The fault schedule as it ran, each step with the nodes its roles resolved to (absent
    /// without a fault): `chronik-chaos chaos --replay results.json --scenario NAME` runs it again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<crate::schedule::Schedule>,
    /// A failing generated schedule and the smallest one found that still fails
    /// (`--shrink-budget`); `--replay results.json --scenario NAME~smallest` runs that one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shrunk: Option<crate::schedule::Shrunk>,
}

/// What the timeline-aware rules found, and the topic settings they used.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Checks {
    /// The scenario injected a fault.
    #[serde(default)]
    pub faulted: bool,
    pub topic: TopicSettings,
    pub quorum: QuorumReport,
    pub polls: PollReport,
    pub partitions: Vec<PartitionAvailability>,
    pub metadata: MetadataReport,
    /// The consumer group's rules and figures (queue workload only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<crate::checker::group::GroupReport>,
    /// Per-key order (keyed writes only).
    #[serde(default, skip_serializing_if = "crate::checker::keys::KeyReport::is_empty")]
    pub keys: crate::checker::keys::KeyReport,
    /// The transaction rules and figures (transactional scenarios only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub txn: Option<crate::checker::txn::TxnReport>,
}

/// Recovery after heal, as the reports show it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Recovery {
    /// No fault, or a results file without the figure.
    NotApplicable,
    /// Some partition never acknowledged a write sent after heal.
    Never,
    /// The slowest partition's time from heal to its first acknowledged write sent after heal.
    AfterMs(f64),
}

/// A scenario run more than once whose runs did not all end alike, or one that passed only
/// after a cluster start-up was retried: FLAKY, counted apart (as cargo-nextest does).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flaky {
    pub scenario: String,
    pub runs: usize,
    /// Runs that did not pass (N/A ones are not counted as runs).
    pub failed: usize,
    /// Passing runs that needed a retried start-up.
    pub retried_startups: usize,
}

impl std::fmt::Display for Flaky {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.failed == 0 {
            return write!(
                f,
                "FLAKY {}: passed only after a retried cluster start-up ({} of {} runs)",
                self.scenario, self.retried_startups, self.runs
            );
        }
        write!(
            f,
            "FLAKY {}: {} of {} runs did not pass ({:.0}%)",
            self.scenario,
            self.failed,
            self.runs,
            100.0 * self.failed as f64 / self.runs as f64
        )?;
        if self.retried_startups > 0 {
            write!(f, "; {} passed only after a retried cluster start-up", self.retried_startups)?;
        }
        Ok(())
    }
}

impl Results {
    /// The scenarios whose runs (`NAME`, `NAME#2`, ...) did not all end alike, or that passed
    /// only on a retried start-up, in the order they first ran.
    pub fn flaky(&self) -> Vec<Flaky> {
        let mut out: Vec<Flaky> = Vec::new();
        for s in self.scenarios.iter().filter(|s| s.verdict != Verdict::NotApplicable) {
            let base = s.name.split('#').next().unwrap_or(&s.name).to_string();
            let i = match out.iter().position(|f| f.scenario == base) {
                Some(i) => i,
                None => {
                    out.push(Flaky { scenario: base, runs: 0, failed: 0, retried_startups: 0 });
                    out.len() - 1
                }
            };
            out[i].runs += 1;
            if s.verdict != Verdict::Pass {
                out[i].failed += 1;
            } else if !s.startup_failures.is_empty() {
                out[i].retried_startups += 1;
            }
        }
        out.retain(|f| (f.failed > 0 || f.retried_startups > 0) && f.failed < f.runs);
        out
    }
}

impl ScenarioResult {
    /// Per partition when the file has it (the slowest partition, no floor); older files fall
    /// back to the throughput-based figure.
    pub fn recovery(&self) -> Recovery {
        match (&self.checks, &self.liveness) {
            (Some(c), _) if !c.faulted => Recovery::NotApplicable,
            (Some(c), _) => c
                .partitions
                .iter()
                .try_fold(0.0f64, |m, p| p.recovery_ms.map(|r| m.max(r)))
                .map_or(Recovery::Never, Recovery::AfterMs),
            (None, Some(l)) => l.heal_to_recovered_ms.map_or(Recovery::Never, Recovery::AfterMs),
            (None, None) => Recovery::NotApplicable,
        }
    }
}

impl Results {
    /// The worst verdict of all scenarios (PASS when there are none).
    pub fn worst(&self) -> Verdict {
        self.scenarios.iter().map(|s| s.verdict).max().unwrap_or(Verdict::Pass)
    }

    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        self.write_with(path, &Sharding::default())
    }

    /// Writes `results.json` with the sharding fields (none are written when `sharding` is empty).
    pub fn write_with(&self, path: &Path, sharding: &Sharding) -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension("json.tmp");
        let file = ResultsFile { results: self, sharding };
        std::fs::write(&tmp, serde_json::to_vec_pretty(&file).map_err(std::io::Error::other)?)?;
        std::fs::rename(tmp, path)
    }

    pub fn read(path: &Path) -> Result<Results, String> {
        Results::read_with_sharding(path).map(|(r, _)| r)
    }

    /// The results and their sharding fields (empty in files written without them).
    pub fn read_with_sharding(path: &Path) -> Result<(Results, Sharding), String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Results::parse_with_sharding(&text, &path.display().to_string())
    }

    /// [`Results::read_with_sharding`] of text already read; `name` says where it came from.
    pub fn parse_with_sharding(text: &str, name: &str) -> Result<(Results, Sharding), String> {
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("{name} is not JSON: {e}"))?;
        match v.get("version").and_then(|v| v.as_u64()) {
            Some(v) if v == RESULTS_VERSION as u64 => {}
            Some(v) => {
                return Err(format!(
                    "{name} has results version {v}; this chronik-chaos reads version {RESULTS_VERSION}"
                ))
            }
            None => return Err(format!("{name} has no `version`: not a chronik-chaos results file")),
        }
        let sharding = serde_json::from_value(v.clone()).map_err(|e| format!("{name}: {e}"))?;
        let results = serde_json::from_value(v).map_err(|e| format!("{name}: {e}"))?;
        Ok((results, sharding))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_other_versions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("results.json");
        let r = Results {
            version: RESULTS_VERSION,
            tool: "chronik-chaos 0.1.0".into(),
            chronik: ChronikInfo::default(),
            toxiproxy: "embedded".into(),
            seed: 7,
            started_at: "a".into(),
            finished_at: "b".into(),
            scenarios: vec![],
        };
        r.write(&path).unwrap();
        assert_eq!(Results::read(&path).unwrap(), r);
        assert_eq!(r.worst(), Verdict::Pass);
        std::fs::write(&path, r#"{"version": 99}"#).unwrap();
        assert!(Results::read(&path).unwrap_err().contains("results version 99"));
    }

    #[test]
    fn flaky_is_a_scenario_whose_runs_did_not_all_end_alike() {
        let r: Results = serde_json::from_str(include_str!("../tests/fixtures/results-all-pass.json")).unwrap();
        let template = r.scenarios[0].clone();
        let run = |name: &str, verdict: Verdict, retried: bool| ScenarioResult {
            name: name.into(),
            verdict,
            startup_failures: if retried { vec!["n2 never ready".into()] } else { vec![] },
            ..template.clone()
        };
        let r = Results {
            scenarios: vec![
                run("a#1", Verdict::Pass, false),
                run("a#2", Verdict::Fail, false),
                run("a#3", Verdict::Pass, false),
                run("a#4", Verdict::Pass, false),
                // Failing every time is not flaky, nor is passing every time.
                run("b#1", Verdict::Hang, false),
                run("b#2", Verdict::Fail, false),
                run("c#1", Verdict::Pass, false),
                run("c#2", Verdict::Pass, false),
                // A single run that passed only after a retried start-up is.
                run("d", Verdict::Pass, true),
                run("e", Verdict::NotApplicable, false),
            ],
            ..r
        };
        let flaky: Vec<String> = r.flaky().iter().map(|f| f.to_string()).collect();
        assert_eq!(
            flaky,
            vec![
                "FLAKY a: 1 of 4 runs did not pass (25%)",
                "FLAKY d: passed only after a retried cluster start-up (1 of 1 runs)"
            ]
        );
    }

    #[test]
    fn sharding_fields_round_trip_and_are_absent_when_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("results.json");
        let r: Results = serde_json::from_str(include_str!("../tests/fixtures/results-all-pass.json")).unwrap();
        r.write(&path).unwrap();
        let plain = std::fs::read_to_string(&path).unwrap();
        assert!(!plain.contains("\"shard\"") && !plain.contains("\"selection\""), "{plain}");
        assert_eq!(serde_json::to_string_pretty(&r).unwrap(), plain);
        assert_eq!(Results::read_with_sharding(&path).unwrap(), (r.clone(), Sharding::default()));
        let sharding = Sharding {
            shard: Some(Shard { k: 2, n: 3 }),
            selection: vec!["a".into(), "b".into(), "c".into()],
            out_dir: Some("/runner/out".into()),
        };
        r.write_with(&path, &sharding).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"shard\": {\n    \"k\": 2,\n    \"n\": 3\n  }"), "{text}");
        assert_eq!(Results::read_with_sharding(&path).unwrap(), (r.clone(), sharding));
        assert_eq!(Results::read(&path).unwrap(), r);
    }

    #[test]
    fn shard_parses_k_of_n_and_refuses_anything_else() {
        assert_eq!("2/4".parse::<Shard>(), Ok(Shard { k: 2, n: 4 }));
        assert_eq!("1/1".parse::<Shard>(), Ok(Shard { k: 1, n: 1 }));
        assert_eq!(Shard { k: 3, n: 5 }.to_string(), "3/5");
        for (bad, says) in [
            ("0/3", "must be between 1 and 3"),
            ("4/3", "must be between 1 and 3"),
            ("1/0", "is 0"),
            ("2", "is not K/N"),
            ("a/3", "K in `a/3` is not a whole number"),
            ("1/-2", "N in `1/-2` is not a whole number"),
        ] {
            let e = bad.parse::<Shard>().unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn scenario_i_goes_to_shard_i_mod_n_plus_one() {
        let owners: Vec<u32> = (0..7).map(|i| (1..=3).find(|&k| Shard { k, n: 3 }.owns(i)).unwrap()).collect();
        assert_eq!(owners, [1, 2, 3, 1, 2, 3, 1]);
        // Every index belongs to exactly one shard.
        for n in 1..6 {
            for i in 0..20 {
                assert_eq!((1..=n).filter(|&k| Shard { k, n }.owns(i)).count(), 1);
            }
        }
    }
}
