//! The state file of a detached cluster (`cluster start`), so that `cluster status` and
//! `cluster stop` work from another shell and a cluster left by a crash is detected.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::config::NodeFiles;
use crate::os;
use crate::process::{self, Termination};
use crate::topology::Plan;
use crate::toxiproxy::launcher::ServerState;

/// One detached node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub id: u8,
    pub pid: u32,
    pub start_ticks: u64,
    pub admin_port: u16,
    pub config: PathBuf,
    pub log: PathBuf,
}

impl NodeRecord {
    /// Alive and still the process we started (not a reused pid).
    pub fn alive(&self) -> bool {
        os::pid_alive(self.pid) && os::start_ticks(self.pid) == Some(self.start_ticks)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterState {
    pub nodes: u8,
    pub base_port: u16,
    pub run_dir: PathBuf,
    pub toxiproxy_api: String,
    /// The Toxiproxy server the cluster started, if it started one.
    pub toxiproxy: Option<ServerState>,
    pub members: Vec<NodeRecord>,
    pub leader_at_start: u8,
    pub started_at: String,
}

impl ClusterState {
    pub fn new(
        plan: &Plan,
        run_dir: PathBuf,
        toxiproxy_api: &str,
        toxiproxy: Option<ServerState>,
        pids: &[(u8, u32)],
        files: &[NodeFiles],
        leader: u8,
    ) -> ClusterState {
        let members = pids
            .iter()
            .map(|&(id, pid)| {
                let f = files.iter().find(|f| f.id == id);
                NodeRecord {
                    id,
                    pid,
                    start_ticks: os::start_ticks(pid).unwrap_or(0),
                    admin_port: plan.node(id).map_or(0, |n| n.admin_port),
                    config: f.map(|f| f.config.clone()).unwrap_or_default(),
                    log: f.map(|f| f.log.clone()).unwrap_or_default(),
                }
            })
            .collect();
        ClusterState {
            nodes: plan.spec.nodes,
            base_port: plan.spec.base_port,
            run_dir,
            toxiproxy_api: toxiproxy_api.to_string(),
            toxiproxy,
            members,
            leader_at_start: leader,
            started_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        }
    }

    /// Stops every recorded process that is still ours: nodes first (SIGTERM, `grace`,
    /// SIGKILL), then the Toxiproxy server. Returns one line per process.
    pub fn stop(&self, grace: Duration) -> Vec<String> {
        let mut lines = Vec::new();
        for n in &self.members {
            if !n.alive() {
                lines.push(format!("node {} (pid {}) was already gone", n.id, n.pid));
                continue;
            }
            lines.push(match process::terminate_unowned(n.pid, grace) {
                Termination::Killed { grace } => {
                    format!("node {} (pid {}) ignored SIGTERM for {grace:?} and was killed", n.id, n.pid)
                }
                Termination::Graceful { after, .. } => {
                    format!("node {} (pid {}) exited {} ms after SIGTERM", n.id, n.pid, after.as_millis())
                }
                Termination::AlreadyExited(_) => format!("node {} (pid {}) had exited", n.id, n.pid),
            });
        }
        if let Some(t) = &self.toxiproxy {
            let ours = os::pid_alive(t.pid) && os::start_ticks(t.pid) == Some(t.start_ticks);
            if ours {
                process::terminate_unowned(t.pid, Duration::from_secs(5));
                lines.push(format!("toxiproxy (pid {}) stopped", t.pid));
            } else {
                lines.push(format!("toxiproxy (pid {}) was already gone", t.pid));
            }
        }
        lines
    }
}

/// Where the cluster state lives.
#[derive(Clone, Debug)]
pub struct ClusterStateFile {
    path: PathBuf,
}

impl ClusterStateFile {
    pub fn in_dir(dir: &Path) -> ClusterStateFile {
        ClusterStateFile { path: dir.join("cluster.json") }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn load(&self) -> anyhow::Result<Option<ClusterState>> {
        match std::fs::read_to_string(&self.path) {
            Ok(text) => serde_json::from_str(&text).map(Some).with_context(|| {
                format!(
                    "{} is not a cluster state file this version understands; if no cluster of ours runs, delete it",
                    self.path.display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", self.path.display())),
        }
    }

    pub fn save(&self, state: &ClusterState) -> anyhow::Result<()> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let tmp = self.path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(state)?)?;
        std::fs::rename(&tmp, &self.path).with_context(|| format!("cannot write {}", self.path.display()))
    }

    pub fn clear(&self) -> anyhow::Result<()> {
        match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e).context("removing the cluster state file"),
            _ => Ok(()),
        }
    }
}
