//! `results.json`: the suite's versioned output and the only input of the report renderers.
//! The schema is documented in docs/results.md; bump [`RESULTS_VERSION`] on any breaking change.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?)?;
        std::fs::rename(tmp, path)
    }

    pub fn read(path: &Path) -> Result<Results, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let v: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| format!("{} is not JSON: {e}", path.display()))?;
        match v.get("version").and_then(|v| v.as_u64()) {
            Some(v) if v == RESULTS_VERSION as u64 => {}
            Some(v) => {
                return Err(format!(
                    "{} has results version {v}; this chronik-chaos reads version {RESULTS_VERSION}",
                    path.display()
                ))
            }
            None => return Err(format!("{} has no `version`: not a chronik-chaos results file", path.display())),
        }
        serde_json::from_value(v).map_err(|e| format!("{}: {e}", path.display()))
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
}
