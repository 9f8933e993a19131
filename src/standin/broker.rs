//! The node's shared state: topics (kept in `topics.json`, spread to peers over the WAL
//! links), their partitions, which peers have seen which topics, the Raft-link reachability,
//! the knobs, and the progress signal that every waiter watches (acks=all answers,
//! long-polling fetches, replication links).

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::bugs::{Bug, LOST_TAIL_BATCHES};
use super::config::{Knobs, NodeConfig};
use super::group::Coordinator;
use super::heartbeat::Reachability;
use super::idempotence::IdSource;
use super::log::LogOptions;
use super::partition::{write_atomically, Partition, PartitionSpec};

/// The topic configuration key the stand-in honours.
pub const MIN_INSYNC_REPLICAS: &str = "min.insync.replicas";

/// A topic as every node knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMeta {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: usize,
    /// Configs given at creation, stored as given.
    pub configs: BTreeMap<String, String>,
}

pub type PartitionKey = (String, i32);

/// Everything behind the one lock.
#[derive(Debug, Default)]
pub struct State {
    pub topics: BTreeMap<String, TopicMeta>,
    pub partitions: BTreeMap<PartitionKey, Partition>,
    /// Topics each peer reported in its last sync.
    pub peer_topics: BTreeMap<u64, BTreeSet<String>>,
    /// For partitions this node does not replicate: the newest leader claim heard in a sync
    /// (a leader sends one for each partition it leads), with when it was heard.
    pub claims: BTreeMap<PartitionKey, (LeaderClaim, Instant)>,
}

/// "I lead this partition in this epoch", sent with every sync.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LeaderClaim {
    pub topic: String,
    pub partition: i32,
    pub epoch: i32,
    pub leader: u64,
}

/// How long a claim names a leader without being heard again (three syncs).
pub const CLAIM_FRESH_FOR: std::time::Duration = std::time::Duration::from_secs(3);

/// One node's broker.
pub struct Broker {
    pub config: NodeConfig,
    pub knobs: Knobs,
    pub reach: Arc<Reachability>,
    pub producer_ids: IdSource,
    pub data_dir: PathBuf,
    /// Consumer groups and their committed offsets ([`super::group`]).
    pub groups: Coordinator,
    state: Mutex<State>,
    progress: watch::Sender<u64>,
}

impl Broker {
    /// Opens the data directory (the config's, or a per-process temporary one) and every
    /// topic recorded there.
    pub fn open(config: NodeConfig, knobs: Knobs) -> io::Result<Arc<Broker>> {
        // Without a configured directory (a probe's node), one is made only if a topic is.
        let data_dir = config.data_dir.clone().unwrap_or_else(|| {
            std::env::temp_dir().join(format!("chronik-stand-in-{}-{}", config.node_id, std::process::id()))
        });
        let groups = Coordinator::open(&config, &knobs.bugs, &data_dir)?;
        let broker = Arc::new(Broker {
            reach: Arc::default(),
            producer_ids: IdSource::new(config.node_id),
            data_dir,
            groups,
            state: Mutex::new(State::default()),
            progress: watch::channel(0).0,
            config,
            knobs,
        });
        let topics: Vec<TopicMeta> = match std::fs::read(broker.data_dir.join("topics.json")) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        {
            let mut st = broker.lock();
            broker.add_topics(&mut st, topics)?;
            for p in st.partitions.values().filter(|p| p.dropped_on_open > 0) {
                println!(
                    "stand-in node {}: bug lose-unflushed-tail dropped the last {} batches of {}-{}",
                    broker.id(),
                    p.dropped_on_open,
                    p.spec.topic,
                    p.spec.index
                );
            }
        }
        Ok(broker)
    }

    pub fn id(&self) -> u64 {
        self.config.node_id
    }

    pub fn has(&self, bug: Bug) -> bool {
        self.knobs.bugs.has(bug)
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Tells every waiter that something moved (an append, a commit, a leader).
    pub fn bump(&self) {
        self.progress.send_modify(|v| *v = v.wrapping_add(1));
    }

    pub fn watch(&self) -> watch::Receiver<u64> {
        self.progress.subscribe()
    }

    /// Partition `p`'s replicas: `rf` nodes from its preferred leader, node `(p % n) + 1`.
    pub fn replicas(&self, partition: i32, rf: usize) -> Vec<u64> {
        let ids = self.config.ids();
        let start = partition.rem_euclid(ids.len() as i32) as usize;
        (0..rf.min(ids.len())).map(|k| ids[(start + k) % ids.len()]).collect()
    }

    pub fn min_isr(&self, meta: &TopicMeta) -> usize {
        meta.configs
            .get(MIN_INSYNC_REPLICAS)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| self.config.default_min_insync_replicas())
            .clamp(1, meta.replication_factor.max(1))
    }

    fn log_options(&self) -> LogOptions {
        if self.has(Bug::LoseUnflushedTail) {
            LogOptions { fsync: false, drop_on_open: LOST_TAIL_BATCHES }
        } else {
            LogOptions { fsync: true, drop_on_open: 0 }
        }
    }

    /// Adds the topics not known yet (the first definition wins), opens their partitions and
    /// records them in `topics.json`. Returns the names added.
    pub fn add_topics(&self, st: &mut State, metas: impl IntoIterator<Item = TopicMeta>) -> io::Result<Vec<String>> {
        let now = Instant::now();
        let mut added = Vec::new();
        for meta in metas {
            if st.topics.contains_key(&meta.name) {
                continue;
            }
            for index in 0..meta.partitions {
                let spec = PartitionSpec {
                    topic: meta.name.clone(),
                    index,
                    me: self.id(),
                    replicas: self.replicas(index, meta.replication_factor),
                    min_isr: self.min_isr(&meta),
                    dir: self.data_dir.join("partitions").join(format!("{}-{index}", meta.name)),
                    log: self.log_options(),
                };
                if spec.replicas.contains(&self.id()) {
                    st.partitions.insert((meta.name.clone(), index), Partition::open(spec, now)?);
                }
            }
            added.push(meta.name.clone());
            st.topics.insert(meta.name.clone(), meta);
        }
        if !added.is_empty() {
            std::fs::create_dir_all(&self.data_dir)?;
            let all: Vec<&TopicMeta> = st.topics.values().collect();
            write_atomically(&self.data_dir.join("topics.json"), &serde_json::to_vec_pretty(&all)?, true)?;
            self.bump();
        }
        Ok(added)
    }

    /// A claim for each partition this node leads, for its syncs.
    pub fn claims(&self, st: &State) -> Vec<LeaderClaim> {
        let now = Instant::now();
        st.partitions
            .iter()
            .filter(|(_, p)| p.is_leader())
            .map(|((topic, partition), p)| LeaderClaim {
                topic: topic.clone(),
                partition: *partition,
                epoch: p.view(now).epoch,
                leader: self.id(),
            })
            .collect()
    }

    /// Takes in the claims a peer sent: for partitions not replicated here, the newest epoch
    /// wins (a claim of the same epoch refreshes it).
    pub fn hear_claims(&self, st: &mut State, claims: Vec<LeaderClaim>) {
        let now = Instant::now();
        for c in claims {
            let key = (c.topic.clone(), c.partition);
            if st.partitions.contains_key(&key) {
                continue;
            }
            match st.claims.get(&key) {
                Some((old, _)) if old.epoch > c.epoch => {}
                _ => {
                    st.claims.insert(key, (c, now));
                }
            }
        }
    }

    /// One partition as this node names it in Metadata and the admin API. A follower that
    /// neither hears its leader over the WAL link nor reaches it over the Raft link names no
    /// leader rather than one it has lost.
    pub fn look(&self, st: &State, meta: &TopicMeta, index: i32) -> PartitionLook {
        let replicas = self.replicas(index, meta.replication_factor);
        let now = Instant::now();
        let mut look = match st.partitions.get(&(meta.name.clone(), index)) {
            Some(p) => {
                let v = p.view(now);
                let lost = |l: &u64| !p.is_leader() && !p.hears_leader(now) && !self.reach.reachable().contains(l);
                let leader = v.leader.filter(|l| !lost(l));
                let isr = if v.isr.is_empty() { leader.into_iter().collect() } else { v.isr };
                PartitionLook { leader, epoch: v.epoch, replicas, isr }
            }
            // Not a replica here (replication factor below the node count): the leader whose
            // claim it heard last (over the WAL links' syncs), while that is fresh; before any
            // claim, the preferred leader.
            None => match st.claims.get(&(meta.name.clone(), index)) {
                Some((c, at)) if now.saturating_duration_since(*at) < CLAIM_FRESH_FOR => {
                    PartitionLook { leader: Some(c.leader), epoch: c.epoch, isr: replicas.clone(), replicas }
                }
                Some((c, _)) => PartitionLook { leader: None, epoch: c.epoch, isr: Vec::new(), replicas },
                None => PartitionLook { leader: replicas.first().copied(), epoch: -1, isr: replicas.clone(), replicas },
            },
        };
        if self.has(Bug::StaleMetadata) {
            look.leader = look.replicas.first().copied();
            look.epoch = 0;
        }
        look
    }
}

/// What Metadata and the admin API say about a partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionLook {
    pub leader: Option<u64>,
    pub epoch: i32,
    pub replicas: Vec<u64>,
    pub isr: Vec<u64>,
}
