//! What a stand-in node is told: the node config file the harness writes for Chronik (read
//! with the fields the stand-in uses; others are ignored) and the test knobs from the
//! environment, resolved once into [`Knobs`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::bugs::Bugs;

/// The node config file (`src/cluster/config.rs` writes it).
#[derive(Clone, Debug, Deserialize)]
pub struct NodeConfig {
    pub node_id: u64,
    /// Where partition logs live; a per-process temporary directory when absent.
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
    /// Used when CreateTopics asks for the default (-1).
    #[serde(default)]
    pub replication_factor: Option<usize>,
    /// Used when a new topic does not set `min.insync.replicas`.
    #[serde(default)]
    pub min_insync_replicas: Option<usize>,
    pub bind: Bind,
    pub peers: Vec<Peer>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Bind {
    pub kafka: String,
    pub wal: String,
    pub raft: String,
}

/// One `[[peers]]` entry: for this node itself its advertised Kafka address and real ports,
/// for every other node the proxies this node must dial.
#[derive(Clone, Debug, Deserialize)]
pub struct Peer {
    pub id: u64,
    pub kafka: String,
    pub wal: String,
    pub raft: String,
}

impl NodeConfig {
    pub fn read(path: &Path) -> Result<NodeConfig, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let cfg: NodeConfig = toml::from_str(&text).map_err(|e| format!("bad config {}: {e}", path.display()))?;
        if !cfg.peers.iter().any(|p| p.id == cfg.node_id) {
            return Err(format!("bad config {}: no [[peers]] entry for node_id {}", path.display(), cfg.node_id));
        }
        Ok(cfg)
    }

    /// Every node id, ascending.
    pub fn ids(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self.peers.iter().map(|p| p.id).collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// The other nodes.
    pub fn others(&self) -> impl Iterator<Item = &Peer> {
        self.peers.iter().filter(move |p| p.id != self.node_id)
    }

    pub fn peer(&self, id: u64) -> Option<&Peer> {
        self.peers.iter().find(|p| p.id == id)
    }

    pub fn default_replication_factor(&self) -> usize {
        self.replication_factor.unwrap_or(3).clamp(1, self.ids().len())
    }

    pub fn default_min_insync_replicas(&self) -> usize {
        self.min_insync_replicas.unwrap_or(1).max(1)
    }
}

/// Test knobs from the environment.
#[derive(Clone, Debug)]
pub struct Knobs {
    /// `CHRONIK_CHAOS_NODE_ADMIN_PORT`, else 10000 + node id (Chronik's fixed admin port).
    pub admin_port: u16,
    /// `STAND_IN_IGNORE_SIGTERM=1`.
    pub ignore_sigterm: bool,
    /// `STAND_IN_EXIT_AFTER_MS=N`: exit with code 3 after N ms, never reporting a leader before.
    pub exit_after: Option<Duration>,
    /// `STAND_IN_BUG`.
    pub bugs: Bugs,
}

impl Knobs {
    pub fn from_env(node_id: u64) -> Result<Knobs, String> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let admin_port = match var("CHRONIK_CHAOS_NODE_ADMIN_PORT") {
            Some(v) => v.parse().map_err(|_| format!("CHRONIK_CHAOS_NODE_ADMIN_PORT={v} is not a port"))?,
            None => 10000 + node_id as u16,
        };
        let exit_after = match var("STAND_IN_EXIT_AFTER_MS") {
            Some(v) => Some(Duration::from_millis(
                v.parse().map_err(|_| format!("STAND_IN_EXIT_AFTER_MS={v} is not a number of milliseconds"))?,
            )),
            None => None,
        };
        Ok(Knobs {
            admin_port,
            ignore_sigterm: var("STAND_IN_IGNORE_SIGTERM").as_deref() == Some("1"),
            exit_after,
            bugs: Bugs::from_env()?,
        })
    }
}
