//! The stand-in's group coordinator: FindCoordinator, JoinGroup, SyncGroup, Heartbeat,
//! LeaveGroup, OffsetCommit and OffsetFetch for Kafka's classic (eager) consumer-group protocol,
//! and the committed offsets, kept in memory and in the coordinator's `group-offsets.json`.
//!
//! Which node: the coordinator of every group is the node with the lowest id in the cluster
//! config ([`coordinator_id`]). FindCoordinator (group or transaction key) names it with the
//! Kafka address Metadata advertises for it, whichever node is asked; every other node answers
//! group requests with NOT_COORDINATOR. It never moves: while that node is down, groups wait.
//!
//! The protocol, as Kafka's classic coordinator runs it ([`Groups`] is the state machine, with
//! no I/O):
//! - states Empty → PreparingRebalance → CompletingRebalance → Stable; a JoinGroup (v4+: first
//!   with no member id, answered MEMBER_ID_REQUIRED and a new id), a LeaveGroup or an expired
//!   session starts a rebalance; joins wait until every member (and every id handed out) has
//!   rejoined, or until the longest rebalance timeout, when the missing ones are dropped;
//! - completing a join bumps the generation, picks the protocol every member supports with the
//!   most first-choice votes, keeps the leader if it rejoined, and sends the leader every
//!   member's metadata; followers' SyncGroups wait for the leader's, which carries the
//!   assignment each member then gets;
//! - Heartbeat answers REBALANCE_IN_PROGRESS while a rebalance prepares, UNKNOWN_MEMBER_ID and
//!   ILLEGAL_GENERATION where Kafka does; OffsetCommit is validated as Kafka's
//!   `ClassicGroup.validateOffsetCommit` does (a stale generation gets ILLEGAL_GENERATION,
//!   generation -1 commits only into an empty group);
//! - every accepted commit is written (atomically, fsynced) to `group-offsets.json` in the
//!   data directory before it is answered, and read back when the node starts.
//!
//! Limits: membership and generations live in memory only (after a coordinator restart the
//! offsets are back, the members get UNKNOWN_MEMBER_ID and rejoin); session timeouts must lie
//! in Kafka's default 6 s..30 min; every JoinGroup starts a rebalance, even an unchanged
//! member's; no initial rebalance delay, static membership (`group.instance.id` is ignored),
//! cooperative rebalancing, ListGroups, DescribeGroups, DeleteGroups, OffsetDelete,
//! transactional offsets or offset expiry.
//!
//! Bugs ([`super::bugs`]): `offset-fetch-ahead` adds [`FETCH_AHEAD`] to every committed offset
//! OffsetFetch answers; `duplicate-assignment` gives every member the leader's assignment.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions, OffsetFetchResponseTopic,
    OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    BrokerId, FindCoordinatorRequest, FindCoordinatorResponse, GroupId, HeartbeatRequest, HeartbeatResponse,
    JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse, OffsetCommitRequest,
    OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse, SyncGroupRequest, SyncGroupResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::broker::Broker;
use super::bugs::{Bug, Bugs, FETCH_AHEAD};
use super::config::NodeConfig;
use super::partition::write_atomically;
use super::protocol::host_port;

/// The committed offsets, in the coordinator's data directory.
pub const OFFSETS_FILE: &str = "group-offsets.json";

/// Kafka's default `group.min.session.timeout.ms` and `group.max.session.timeout.ms`.
pub const MIN_SESSION_TIMEOUT: Duration = Duration::from_secs(6);
pub const MAX_SESSION_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Kafka's default `offset.metadata.max.bytes`.
pub const MAX_OFFSET_METADATA: usize = 4096;

/// How often sessions, handed-out member ids and rebalance timeouts are checked.
pub const TICK: Duration = Duration::from_millis(100);

/// The group (and transaction) coordinator: the lowest node id in the cluster config.
pub fn coordinator_id(config: &NodeConfig) -> u64 {
    config.ids().first().copied().unwrap_or(config.node_id)
}

/// Checks sessions and rebalance timeouts until the process ends.
pub async fn run_timers(broker: Arc<Broker>) {
    loop {
        tokio::time::sleep(TICK).await;
        broker.groups.tick(Instant::now());
    }
}

/// An answer that may have to wait (a JoinGroup or SyncGroup parked until the group moves).
pub type Reply<T> = Pin<Box<dyn Future<Output = T> + Send>>;

// ---- The state machine ----

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GroupState {
    #[default]
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
}

/// A JoinGroup, as the state machine needs it.
#[derive(Clone, Debug)]
pub struct JoinArgs {
    pub group: String,
    /// Empty for a member joining for the first time.
    pub member_id: String,
    pub client_id: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocol_type: String,
    /// (name, metadata), in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+: a member without an id gets one with MEMBER_ID_REQUIRED and rejoins.
    pub require_known_member_id: bool,
}

/// A JoinGroup's answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Joined {
    pub error: Option<ResponseError>,
    pub generation: i32,
    pub protocol: String,
    pub leader: String,
    pub member_id: String,
    /// Every member's metadata for the chosen protocol, for the leader only.
    pub members: Vec<(String, Bytes)>,
}

impl Joined {
    fn error(e: ResponseError, member_id: &str) -> Joined {
        Joined {
            error: Some(e),
            generation: -1,
            protocol: String::new(),
            leader: String::new(),
            member_id: member_id.to_string(),
            members: Vec::new(),
        }
    }
}

/// A SyncGroup's answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Synced {
    pub error: Option<ResponseError>,
    pub assignment: Bytes,
}

impl Synced {
    fn error(e: ResponseError) -> Synced {
        Synced { error: Some(e), assignment: Bytes::new() }
    }
}

/// An answer now, or one that comes when the group moves on.
#[derive(Debug)]
pub enum Answer<T> {
    Now(T),
    Later(oneshot::Receiver<T>),
}

/// One committed offset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Committed {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
}

pub type TopicPartition = (String, i32);

/// OffsetFetch's answer for one group: per topic, each partition's committed offset, if any.
pub type Fetched = Vec<(String, Vec<(i32, Option<Committed>)>)>;

struct Member {
    session_timeout: Duration,
    rebalance_timeout: Duration,
    protocol_type: String,
    protocols: Vec<(String, Bytes)>,
    assignment: Bytes,
    heard: Instant,
    join: Option<oneshot::Sender<Joined>>,
    sync: Option<oneshot::Sender<Synced>>,
}

impl Member {
    fn supports(&self, protocol: &str) -> bool {
        self.protocols.iter().any(|(n, _)| n == protocol)
    }

    /// Answers whatever it has parked: it is no longer a member.
    fn evict(mut self, member_id: &str) {
        if let Some(tx) = self.join.take() {
            let _ = tx.send(Joined::error(ResponseError::UnknownMemberId, member_id));
        }
        if let Some(tx) = self.sync.take() {
            let _ = tx.send(Synced::error(ResponseError::UnknownMemberId));
        }
    }
}

#[derive(Default)]
struct Group {
    state: GroupState,
    generation: i32,
    protocol: Option<String>,
    leader: Option<String>,
    members: BTreeMap<String, Member>,
    /// Ids handed out with MEMBER_ID_REQUIRED, until when they may join.
    pending: BTreeMap<String, Instant>,
    rebalance_deadline: Option<Instant>,
    offsets: BTreeMap<TopicPartition, Committed>,
}

impl Group {
    /// Whether a member with these protocols may join: an empty group takes any, else the
    /// type must match and one protocol must be supported by every other member.
    fn accepts(&self, member_id: &str, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        let others: Vec<&Member> = self.members.iter().filter(|(id, _)| *id != member_id).map(|(_, m)| m).collect();
        others.iter().all(|m| m.protocol_type == protocol_type)
            && protocols.iter().any(|(n, _)| others.iter().all(|m| m.supports(n)))
    }

    /// Starts a rebalance: parked SyncGroups learn it, assignments are void.
    fn prepare(&mut self, now: Instant) {
        for m in self.members.values_mut() {
            if let Some(tx) = m.sync.take() {
                let _ = tx.send(Synced::error(ResponseError::RebalanceInProgress));
            }
            m.assignment = Bytes::new();
        }
        self.state = GroupState::PreparingRebalance;
        let wait = self.members.values().map(|m| m.rebalance_timeout).max().unwrap_or_default();
        self.rebalance_deadline = Some(now + wait);
    }

    /// A member left or was dropped.
    fn member_gone(&mut self, now: Instant) {
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => self.prepare(now),
            GroupState::PreparingRebalance | GroupState::Empty => {}
        }
        self.maybe_complete_join(now);
    }

    fn maybe_complete_join(&mut self, now: Instant) {
        let all_in = self.pending.is_empty() && self.members.values().all(|m| m.join.is_some());
        if self.state == GroupState::PreparingRebalance && all_in {
            self.complete_join(now);
        }
    }

    /// Ends the join phase: members that did not rejoin are out, the generation moves on and
    /// every parked JoinGroup is answered.
    fn complete_join(&mut self, now: Instant) {
        self.members.retain(|_, m| m.join.is_some());
        self.pending.clear();
        self.rebalance_deadline = None;
        self.generation += 1;
        if self.members.is_empty() {
            self.state = GroupState::Empty;
            self.protocol = None;
            self.leader = None;
            return;
        }
        let protocol = self.select_protocol();
        let leader = match &self.leader {
            Some(l) if self.members.contains_key(l) => l.clone(),
            _ => self.members.keys().next().cloned().unwrap_or_default(),
        };
        let all: Vec<(String, Bytes)> = self
            .members
            .iter()
            .map(|(id, m)| {
                let metadata = m.protocols.iter().find(|(n, _)| *n == protocol).map(|(_, md)| md.clone());
                (id.clone(), metadata.unwrap_or_default())
            })
            .collect();
        for (id, m) in self.members.iter_mut() {
            m.heard = now;
            if let Some(tx) = m.join.take() {
                let _ = tx.send(Joined {
                    error: None,
                    generation: self.generation,
                    protocol: protocol.clone(),
                    leader: leader.clone(),
                    member_id: id.clone(),
                    members: if *id == leader { all.clone() } else { Vec::new() },
                });
            }
        }
        self.protocol = Some(protocol);
        self.leader = Some(leader);
        self.state = GroupState::CompletingRebalance;
    }

    /// The protocol every member supports that most members name first (ties: the first
    /// member's order).
    fn select_protocol(&self) -> String {
        let members: Vec<&Member> = self.members.values().collect();
        let Some(first) = members.first() else { return String::new() };
        let candidates: Vec<&str> =
            first.protocols.iter().map(|(n, _)| n.as_str()).filter(|n| members.iter().all(|m| m.supports(n))).collect();
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in &members {
            if let Some((n, _)) = m.protocols.iter().find(|(n, _)| candidates.contains(&n.as_str())) {
                *votes.entry(n.as_str()).or_default() += 1;
            }
        }
        let mut best: Option<(&str, usize)> = None;
        for c in candidates {
            let n = votes.get(c).copied().unwrap_or(0);
            if best.is_none_or(|(_, most)| n > most) {
                best = Some((c, n));
            }
        }
        best.map(|(c, _)| c.to_string()).unwrap_or_default()
    }

    /// The leader's SyncGroup: every member gets its assignment (`duplicate`: the leader's).
    fn complete_sync(&mut self, assignments: Vec<(String, Bytes)>, duplicate: bool) {
        let mut given: BTreeMap<String, Bytes> = assignments.into_iter().collect();
        let leader = self.leader.clone().unwrap_or_default();
        let leaders_own = given.get(&leader).cloned().unwrap_or_default();
        for (id, m) in self.members.iter_mut() {
            m.assignment = if duplicate { leaders_own.clone() } else { given.remove(id).unwrap_or_default() };
            if let Some(tx) = m.sync.take() {
                let _ = tx.send(Synced { error: None, assignment: m.assignment.clone() });
            }
        }
        self.state = GroupState::Stable;
    }
}

/// Every group this node coordinates: the state machine, with no I/O. Each call takes the
/// current time; [`Groups::tick`] expires sessions and rebalance timeouts.
pub struct Groups {
    groups: BTreeMap<String, Group>,
    bugs: Bugs,
    node: u64,
    /// Makes member ids unique across restarts of this node.
    boot: u32,
    next_member: u64,
}

impl Groups {
    pub fn new(node: u64, bugs: Bugs) -> Groups {
        Groups { groups: BTreeMap::new(), bugs, node, boot: fastrand::u32(..), next_member: 0 }
    }

    /// A group's state and generation.
    pub fn state(&self, group: &str) -> Option<(GroupState, i32)> {
        self.groups.get(group).map(|g| (g.state, g.generation))
    }

    fn new_member_id(&mut self, client_id: &str) -> String {
        self.next_member += 1;
        let client = if client_id.is_empty() { "member" } else { client_id };
        format!("{client}-{:08x}-{}", self.boot, self.next_member)
    }

    pub fn join(&mut self, a: JoinArgs, now: Instant) -> Answer<Joined> {
        let fail = |e| Answer::Now(Joined::error(e, &a.member_id));
        if a.group.is_empty() {
            return fail(ResponseError::InvalidGroupId);
        }
        if !(MIN_SESSION_TIMEOUT..=MAX_SESSION_TIMEOUT).contains(&a.session_timeout) {
            return fail(ResponseError::InvalidSessionTimeout);
        }
        if a.protocol_type.is_empty() || a.protocols.is_empty() {
            return fail(ResponseError::InconsistentGroupProtocol);
        }
        if !a.member_id.is_empty() && !self.groups.contains_key(&a.group) {
            return fail(ResponseError::UnknownMemberId);
        }
        let fresh = if a.member_id.is_empty() { Some(self.new_member_id(&a.client_id)) } else { None };
        let node = self.node;
        let g = self.groups.entry(a.group.clone()).or_default();
        if !g.accepts(&a.member_id, &a.protocol_type, &a.protocols) {
            return fail(ResponseError::InconsistentGroupProtocol);
        }
        let id = match fresh {
            Some(id) if a.require_known_member_id => {
                g.pending.insert(id.clone(), now + a.session_timeout);
                return Answer::Now(Joined::error(ResponseError::MemberIdRequired, &id));
            }
            Some(id) => id,
            None if g.pending.remove(&a.member_id).is_some() || g.members.contains_key(&a.member_id) => {
                a.member_id.clone()
            }
            None => return fail(ResponseError::UnknownMemberId),
        };
        let (tx, rx) = oneshot::channel();
        let member = Member {
            session_timeout: a.session_timeout,
            rebalance_timeout: a.rebalance_timeout,
            protocol_type: a.protocol_type,
            protocols: a.protocols,
            assignment: Bytes::new(),
            heard: now,
            join: Some(tx),
            sync: None,
        };
        // A rejoining member's earlier JoinGroup, if any, is dropped (its reply is an error).
        g.members.insert(id, member);
        if g.state != GroupState::PreparingRebalance {
            g.prepare(now);
        }
        let before = g.generation;
        g.maybe_complete_join(now);
        if g.generation != before {
            log_generation(node, &a.group, g);
        }
        Answer::Later(rx)
    }

    pub fn sync(
        &mut self,
        group: &str,
        generation: i32,
        member_id: &str,
        assignments: Vec<(String, Bytes)>,
        now: Instant,
    ) -> Answer<Synced> {
        let fail = |e| Answer::Now(Synced::error(e));
        let duplicate = self.bugs.has(Bug::DuplicateAssignment);
        let Some(g) = self.groups.get_mut(group) else { return fail(ResponseError::UnknownMemberId) };
        let is_leader = g.leader.as_deref() == Some(member_id);
        let Some(m) = g.members.get_mut(member_id) else { return fail(ResponseError::UnknownMemberId) };
        if generation != g.generation {
            return fail(ResponseError::IllegalGeneration);
        }
        match g.state {
            GroupState::Empty => fail(ResponseError::UnknownMemberId),
            GroupState::PreparingRebalance => fail(ResponseError::RebalanceInProgress),
            GroupState::Stable => {
                m.heard = now;
                Answer::Now(Synced { error: None, assignment: m.assignment.clone() })
            }
            GroupState::CompletingRebalance => {
                m.heard = now;
                let (tx, rx) = oneshot::channel();
                m.sync = Some(tx);
                if is_leader {
                    g.complete_sync(assignments, duplicate);
                }
                Answer::Later(rx)
            }
        }
    }

    pub fn heartbeat(
        &mut self,
        group: &str,
        generation: i32,
        member_id: &str,
        now: Instant,
    ) -> Result<(), ResponseError> {
        let g = self.groups.get_mut(group).ok_or(ResponseError::UnknownMemberId)?;
        if g.state == GroupState::Empty {
            return Err(ResponseError::UnknownMemberId);
        }
        let m = g.members.get_mut(member_id).ok_or(ResponseError::UnknownMemberId)?;
        if generation != g.generation {
            return Err(ResponseError::IllegalGeneration);
        }
        m.heard = now;
        match g.state {
            GroupState::PreparingRebalance => Err(ResponseError::RebalanceInProgress),
            _ => Ok(()),
        }
    }

    pub fn leave(&mut self, group: &str, member_id: &str, now: Instant) -> Result<(), ResponseError> {
        let node = self.node;
        let g = self.groups.get_mut(group).ok_or(ResponseError::UnknownMemberId)?;
        let before = g.generation;
        if g.pending.remove(member_id).is_some() {
            g.maybe_complete_join(now);
        } else {
            g.members.remove(member_id).ok_or(ResponseError::UnknownMemberId)?.evict(member_id);
            g.member_gone(now);
        }
        if g.generation != before {
            log_generation(node, group, g);
        }
        Ok(())
    }

    /// Expires sessions (of members with nothing parked), handed-out ids and rebalance
    /// timeouts.
    pub fn tick(&mut self, now: Instant) {
        for (name, g) in self.groups.iter_mut() {
            let before = g.generation;
            let pending = g.pending.len();
            g.pending.retain(|_, until| *until > now);
            let expired: Vec<String> = g
                .members
                .iter()
                .filter(|(_, m)| {
                    m.join.is_none() && m.sync.is_none() && now.saturating_duration_since(m.heard) > m.session_timeout
                })
                .map(|(id, _)| id.clone())
                .collect();
            for id in &expired {
                println!("stand-in node {}: group {name}: member {id}'s session expired", self.node);
                if let Some(m) = g.members.remove(id) {
                    m.evict(id);
                }
            }
            if !expired.is_empty() {
                g.member_gone(now);
            } else if g.pending.len() != pending {
                g.maybe_complete_join(now);
            }
            if g.state == GroupState::PreparingRebalance && g.rebalance_deadline.is_some_and(|d| now >= d) {
                g.complete_join(now);
            }
            if g.generation != before {
                log_generation(self.node, name, g);
            }
        }
    }

    /// Whether an OffsetCommit may commit, as Kafka's `ClassicGroup.validateOffsetCommit`
    /// decides; a simple commit (generation -1) into an unknown group creates it, empty.
    pub fn validate_commit(
        &mut self,
        group: &str,
        generation: i32,
        member_id: &str,
        version: i16,
        now: Instant,
    ) -> Result<(), ResponseError> {
        if group.is_empty() {
            return Err(ResponseError::InvalidGroupId);
        }
        if !self.groups.contains_key(group) {
            if generation >= 0 {
                // OffsetCommit v9+ says so; older versions get ILLEGAL_GENERATION.
                return Err(if version >= 9 {
                    ResponseError::GroupIdNotFound
                } else {
                    ResponseError::IllegalGeneration
                });
            }
            self.groups.insert(group.to_string(), Group::default());
        }
        let g = self.groups.get_mut(group).ok_or(ResponseError::UnknownServerError)?;
        if generation < 0 && g.state == GroupState::Empty {
            return Ok(());
        }
        if generation >= 0 || !member_id.is_empty() {
            let m = g.members.get_mut(member_id).ok_or(ResponseError::UnknownMemberId)?;
            if generation != g.generation {
                return Err(ResponseError::IllegalGeneration);
            }
            m.heard = now;
        } else if g.state != GroupState::Empty {
            return Err(ResponseError::UnknownMemberId);
        }
        if g.state == GroupState::CompletingRebalance {
            return Err(ResponseError::RebalanceInProgress);
        }
        Ok(())
    }

    /// Stores offsets (after [`Groups::validate_commit`]); returns the group's offsets before,
    /// for [`Groups::restore`].
    pub fn store(
        &mut self,
        group: &str,
        offsets: Vec<(TopicPartition, Committed)>,
    ) -> BTreeMap<TopicPartition, Committed> {
        let g = self.groups.entry(group.to_string()).or_default();
        let before = g.offsets.clone();
        g.offsets.extend(offsets);
        before
    }

    /// Puts back a group's offsets (a commit that could not be persisted).
    pub fn restore(&mut self, group: &str, offsets: BTreeMap<TopicPartition, Committed>) {
        self.groups.entry(group.to_string()).or_default().offsets = offsets;
    }

    /// The committed offsets of `wanted` (`None`: every partition with one), by topic.
    /// `offset-fetch-ahead` adds [`FETCH_AHEAD`].
    pub fn fetch(&self, group: &str, wanted: Option<Vec<(String, Vec<i32>)>>) -> Fetched {
        let ahead = if self.bugs.has(Bug::OffsetFetchAhead) { FETCH_AHEAD } else { 0 };
        let empty = BTreeMap::new();
        let offsets = self.groups.get(group).map_or(&empty, |g| &g.offsets);
        let look = |key: &TopicPartition| offsets.get(key).map(|c| Committed { offset: c.offset + ahead, ..c.clone() });
        match wanted {
            Some(topics) => topics
                .into_iter()
                .map(|(t, parts)| {
                    let found = parts.into_iter().map(|p| (p, look(&(t.clone(), p)))).collect();
                    (t, found)
                })
                .collect(),
            None => {
                let mut by_topic: BTreeMap<String, Vec<(i32, Option<Committed>)>> = BTreeMap::new();
                for key in offsets.keys() {
                    by_topic.entry(key.0.clone()).or_default().push((key.1, look(key)));
                }
                by_topic.into_iter().collect()
            }
        }
    }

    /// Every committed offset, as stored on disk.
    fn stored(&self) -> Vec<StoredOffset> {
        let mut out = Vec::new();
        for (group, g) in &self.groups {
            for ((topic, partition), c) in &g.offsets {
                out.push(StoredOffset {
                    group: group.clone(),
                    topic: topic.clone(),
                    partition: *partition,
                    offset: c.offset,
                    leader_epoch: c.leader_epoch,
                    metadata: c.metadata.clone(),
                });
            }
        }
        out
    }

    /// Groups known only by their stored offsets (empty, generation 0).
    fn load(&mut self, stored: Vec<StoredOffset>) {
        for s in stored {
            let c = Committed { offset: s.offset, leader_epoch: s.leader_epoch, metadata: s.metadata };
            self.groups.entry(s.group).or_default().offsets.insert((s.topic, s.partition), c);
        }
    }
}

fn log_generation(node: u64, name: &str, g: &Group) {
    let members: Vec<&str> = g.members.keys().map(String::as_str).collect();
    println!(
        "stand-in node {node}: group {name} generation {} ({:?}): protocol {}, leader {}, members {members:?}",
        g.generation,
        g.state,
        g.protocol.as_deref().unwrap_or("-"),
        g.leader.as_deref().unwrap_or("-"),
    );
}

/// One line of `group-offsets.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct StoredOffset {
    group: String,
    topic: String,
    partition: i32,
    offset: i64,
    leader_epoch: i32,
    metadata: String,
}

// ---- The coordinator on the wire ----

/// The node's side of group coordination: the state machine when this node is the
/// coordinator, NOT_COORDINATOR otherwise.
pub struct Coordinator {
    /// The coordinator's node id and advertised Kafka address.
    pub id: u64,
    address: (String, i32),
    me: u64,
    file: PathBuf,
    groups: Mutex<Groups>,
}

impl Coordinator {
    /// Reads the committed offsets stored in `data_dir`, if any.
    pub fn open(config: &NodeConfig, bugs: &Bugs, data_dir: &Path) -> io::Result<Coordinator> {
        let id = coordinator_id(config);
        let address = config.peer(id).map(|p| host_port(&p.kafka)).unwrap_or_default();
        let file = data_dir.join(OFFSETS_FILE);
        let mut groups = Groups::new(config.node_id, bugs.clone());
        match std::fs::read(&file) {
            Ok(bytes) => {
                groups.load(serde_json::from_slice(&bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        Ok(Coordinator { id, address, me: config.node_id, file, groups: Mutex::new(groups) })
    }

    pub fn is_me(&self) -> bool {
        self.id == self.me
    }

    fn lock(&self) -> MutexGuard<'_, Groups> {
        self.groups.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn tick(&self, now: Instant) {
        if self.is_me() {
            self.lock().tick(now);
        }
    }

    fn persist(&self, groups: &Groups) -> io::Result<()> {
        if let Some(dir) = self.file.parent() {
            std::fs::create_dir_all(dir)?;
        }
        write_atomically(&self.file, &serde_json::to_vec_pretty(&groups.stored())?, true)
    }

    pub fn find_coordinator(&self, req: &FindCoordinatorRequest) -> FindCoordinatorResponse {
        // 0: a group, 1: a transactional id (InitProducerId refuses those anyway).
        if !(0..=1).contains(&req.key_type) {
            return FindCoordinatorResponse::default()
                .with_error_code(ResponseError::InvalidRequest.code())
                .with_node_id(BrokerId(-1))
                .with_port(-1);
        }
        FindCoordinatorResponse::default()
            .with_node_id(BrokerId(self.id as i32))
            .with_host(text(&self.address.0))
            .with_port(self.address.1)
    }

    pub fn join_group(&self, req: &JoinGroupRequest, version: i16, client_id: &str) -> Reply<JoinGroupResponse> {
        if !self.is_me() {
            let resp = join_response(Joined::error(ResponseError::NotCoordinator, &req.member_id));
            return Box::pin(async move { resp });
        }
        let session = Duration::from_millis(req.session_timeout_ms.max(0) as u64);
        let args = JoinArgs {
            group: req.group_id.0.to_string(),
            member_id: req.member_id.to_string(),
            client_id: client_id.to_string(),
            session_timeout: session,
            rebalance_timeout: if version >= 1 {
                Duration::from_millis(req.rebalance_timeout_ms.max(0) as u64)
            } else {
                session
            },
            protocol_type: req.protocol_type.to_string(),
            protocols: req.protocols.iter().map(|p| (p.name.to_string(), p.metadata.clone())).collect(),
            require_known_member_id: version >= 4,
        };
        let member_id = args.member_id.clone();
        let answer = self.lock().join(args, Instant::now());
        Box::pin(async move {
            join_response(match answer {
                Answer::Now(j) => j,
                Answer::Later(rx) => {
                    rx.await.unwrap_or_else(|_| Joined::error(ResponseError::UnknownMemberId, &member_id))
                }
            })
        })
    }

    pub fn sync_group(&self, req: &SyncGroupRequest) -> Reply<SyncGroupResponse> {
        let answer = if self.is_me() {
            let assignments = req.assignments.iter().map(|a| (a.member_id.to_string(), a.assignment.clone())).collect();
            self.lock().sync(&req.group_id.0, req.generation_id, &req.member_id, assignments, Instant::now())
        } else {
            Answer::Now(Synced::error(ResponseError::NotCoordinator))
        };
        Box::pin(async move {
            let s = match answer {
                Answer::Now(s) => s,
                Answer::Later(rx) => rx.await.unwrap_or_else(|_| Synced::error(ResponseError::RebalanceInProgress)),
            };
            SyncGroupResponse::default().with_error_code(error_code(s.error)).with_assignment(s.assignment)
        })
    }

    pub fn heartbeat(&self, req: &HeartbeatRequest) -> HeartbeatResponse {
        let r = if self.is_me() {
            self.lock().heartbeat(&req.group_id.0, req.generation_id, &req.member_id, Instant::now())
        } else {
            Err(ResponseError::NotCoordinator)
        };
        HeartbeatResponse::default().with_error_code(error_code(r.err()))
    }

    pub fn leave_group(&self, req: &LeaveGroupRequest) -> LeaveGroupResponse {
        let r = if self.is_me() {
            self.lock().leave(&req.group_id.0, &req.member_id, Instant::now())
        } else {
            Err(ResponseError::NotCoordinator)
        };
        LeaveGroupResponse::default().with_error_code(error_code(r.err()))
    }

    pub fn offset_commit(&self, req: &OffsetCommitRequest, version: i16) -> OffsetCommitResponse {
        let group = req.group_id.0.to_string();
        let mut errors: BTreeMap<TopicPartition, ResponseError> = BTreeMap::new();
        let mut accepted = Vec::new();
        let verdict = if self.is_me() {
            let mut groups = self.lock();
            let valid = groups.validate_commit(
                &group,
                req.generation_id_or_member_epoch,
                &req.member_id,
                version,
                Instant::now(),
            );
            if valid.is_ok() {
                for t in &req.topics {
                    for p in &t.partitions {
                        let key = (t.name.0.to_string(), p.partition_index);
                        let metadata = p.committed_metadata.as_ref().map(|m| m.to_string()).unwrap_or_default();
                        if metadata.len() > MAX_OFFSET_METADATA {
                            errors.insert(key, ResponseError::OffsetMetadataTooLarge);
                        } else {
                            let leader_epoch = if version >= 6 { p.committed_leader_epoch } else { -1 };
                            accepted.push((key, Committed { offset: p.committed_offset, leader_epoch, metadata }));
                        }
                    }
                }
                let keys: Vec<TopicPartition> = accepted.iter().map(|(k, _)| k.clone()).collect();
                let before = groups.store(&group, accepted);
                if let Err(e) = self.persist(&groups) {
                    println!("stand-in node {}: cannot store committed offsets of group {group}: {e}", self.me);
                    groups.restore(&group, before);
                    for k in keys {
                        errors.insert(k, ResponseError::CoordinatorNotAvailable);
                    }
                }
            }
            valid
        } else {
            Err(ResponseError::NotCoordinator)
        };
        let topics = req
            .topics
            .iter()
            .map(|t| {
                let parts = t
                    .partitions
                    .iter()
                    .map(|p| {
                        let e =
                            verdict.err().or_else(|| errors.get(&(t.name.0.to_string(), p.partition_index)).copied());
                        OffsetCommitResponsePartition::default()
                            .with_partition_index(p.partition_index)
                            .with_error_code(error_code(e))
                    })
                    .collect();
                OffsetCommitResponseTopic::default().with_name(t.name.clone()).with_partitions(parts)
            })
            .collect();
        OffsetCommitResponse::default().with_topics(topics)
    }

    pub fn offset_fetch(&self, req: &OffsetFetchRequest, version: i16) -> OffsetFetchResponse {
        if version >= 8 {
            let groups = req
                .groups
                .iter()
                .map(|g| {
                    let wanted = g.topics.as_ref().map(|ts| {
                        ts.iter().map(|t| (t.name.0.to_string(), t.partition_indexes.clone())).collect::<Vec<_>>()
                    });
                    let (error, found) = self.fetch(&g.group_id.0, wanted);
                    let topics = found
                        .into_iter()
                        .map(|(t, parts)| {
                            let parts = parts
                                .into_iter()
                                .map(|(p, c)| {
                                    let c = c.unwrap_or_else(none_committed);
                                    OffsetFetchResponsePartitions::default()
                                        .with_partition_index(p)
                                        .with_committed_offset(c.offset)
                                        .with_committed_leader_epoch(c.leader_epoch)
                                        .with_metadata(Some(text(&c.metadata)))
                                })
                                .collect();
                            OffsetFetchResponseTopics::default().with_name(topic_name(&t)).with_partitions(parts)
                        })
                        .collect();
                    OffsetFetchResponseGroup::default()
                        .with_group_id(GroupId(text(&g.group_id.0)))
                        .with_topics(topics)
                        .with_error_code(error_code(error))
                })
                .collect();
            return OffsetFetchResponse::default().with_groups(groups);
        }
        let wanted = req
            .topics
            .as_ref()
            .map(|ts| ts.iter().map(|t| (t.name.0.to_string(), t.partition_indexes.clone())).collect::<Vec<_>>());
        let (error, found) = self.fetch(&req.group_id.0, wanted);
        let topics = found
            .into_iter()
            .map(|(t, parts)| {
                let parts = parts
                    .into_iter()
                    .map(|(p, c)| {
                        let c = c.unwrap_or_else(none_committed);
                        OffsetFetchResponsePartition::default()
                            .with_partition_index(p)
                            .with_committed_offset(c.offset)
                            .with_committed_leader_epoch(c.leader_epoch)
                            .with_metadata(Some(text(&c.metadata)))
                            .with_error_code(error_code(error))
                    })
                    .collect();
                OffsetFetchResponseTopic::default().with_name(topic_name(&t)).with_partitions(parts)
            })
            .collect();
        let resp = OffsetFetchResponse::default().with_topics(topics);
        if version >= 2 {
            resp.with_error_code(error_code(error))
        } else {
            resp
        }
    }

    /// The committed offsets of one group, or the error for all of them.
    fn fetch(&self, group: &str, wanted: Option<Vec<(String, Vec<i32>)>>) -> (Option<ResponseError>, Fetched) {
        let error = if !self.is_me() {
            Some(ResponseError::NotCoordinator)
        } else if group.is_empty() {
            Some(ResponseError::InvalidGroupId)
        } else {
            None
        };
        match (error, wanted) {
            (None, wanted) => (None, self.lock().fetch(group, wanted)),
            (Some(e), Some(w)) => {
                (Some(e), w.into_iter().map(|(t, ps)| (t, ps.into_iter().map(|p| (p, None)).collect())).collect())
            }
            (Some(e), None) => (Some(e), Vec::new()),
        }
    }
}

fn none_committed() -> Committed {
    Committed { offset: -1, leader_epoch: -1, metadata: String::new() }
}

fn join_response(j: Joined) -> JoinGroupResponse {
    let members = j
        .members
        .into_iter()
        .map(|(id, metadata)| JoinGroupResponseMember::default().with_member_id(text(&id)).with_metadata(metadata))
        .collect();
    JoinGroupResponse::default()
        .with_error_code(error_code(j.error))
        .with_generation_id(j.generation)
        .with_protocol_name(Some(text(&j.protocol)))
        .with_leader(text(&j.leader))
        .with_member_id(text(&j.member_id))
        .with_members(members)
}

fn error_code(e: Option<ResponseError>) -> i16 {
    e.map_or(0, |e| e.code())
}

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn topic_name(s: &str) -> TopicName {
    TopicName(text(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GROUP: &str = "g";

    fn args(member_id: &str, protocols: &[&str]) -> JoinArgs {
        JoinArgs {
            group: GROUP.into(),
            member_id: member_id.into(),
            client_id: "c".into(),
            session_timeout: Duration::from_secs(10),
            rebalance_timeout: Duration::from_secs(30),
            protocol_type: "consumer".into(),
            protocols: protocols.iter().map(|p| (p.to_string(), Bytes::from(format!("{member_id}:{p}")))).collect(),
            require_known_member_id: true,
        }
    }

    fn now_answer<T: std::fmt::Debug>(a: Answer<T>) -> T {
        match a {
            Answer::Now(t) => t,
            Answer::Later(_) => panic!("expected an answer now"),
        }
    }

    /// A parked answer that must have come.
    fn came<T>(rx: &mut oneshot::Receiver<T>) -> T {
        rx.try_recv().unwrap_or_else(|e| panic!("no answer yet: {e:?}"))
    }

    fn parked<T: std::fmt::Debug>(a: Answer<T>) -> oneshot::Receiver<T> {
        match a {
            Answer::Later(rx) => rx,
            Answer::Now(t) => panic!("expected to wait, got {t:?}"),
        }
    }

    /// A new member: MEMBER_ID_REQUIRED with an id, then the join with it (parked or answered).
    fn first_join(g: &mut Groups, protocols: &[&str], now: Instant) -> (String, oneshot::Receiver<Joined>) {
        let first = now_answer(g.join(args("", protocols), now));
        assert_eq!(first.error, Some(ResponseError::MemberIdRequired));
        assert!(!first.member_id.is_empty());
        let rx = parked(g.join(args(&first.member_id, protocols), now));
        (first.member_id, rx)
    }

    /// Two members in a stable generation 2: (groups, leader, follower).
    fn stable_pair(bugs: Bugs, now: Instant) -> (Groups, String, String) {
        let mut g = Groups::new(1, bugs);
        let (a, mut ja) = first_join(&mut g, &["range"], now);
        let joined = came(&mut ja);
        assert_eq!((joined.generation, joined.leader.as_str()), (1, a.as_str()));
        let mut sa = parked(g.sync(GROUP, 1, &a, vec![(a.clone(), Bytes::from("all"))], now));
        assert_eq!(came(&mut sa).assignment, "all", "the leader's SyncGroup completes the generation");
        let (b, mut jb) = first_join(&mut g, &["range"], now);
        assert!(jb.try_recv().is_err(), "b waits for a to rejoin");
        assert_eq!(g.heartbeat(GROUP, 1, &a, now), Err(ResponseError::RebalanceInProgress));
        let mut ja = parked(g.join(args(&a, &["range"]), now));
        let (ja, jb) = (came(&mut ja), came(&mut jb));
        assert_eq!((ja.generation, jb.generation), (2, 2));
        assert_eq!(ja.leader, a, "the leader that rejoined stays leader");
        assert_eq!(ja.members.len(), 2, "the leader gets every member: {ja:?}");
        assert!(jb.members.is_empty(), "a follower gets no member list");
        let mut sb = parked(g.sync(GROUP, 2, &b, Vec::new(), now));
        assert!(sb.try_recv().is_err(), "a follower's SyncGroup waits for the leader's");
        let plan = vec![(a.clone(), Bytes::from("p0")), (b.clone(), Bytes::from("p1"))];
        let mut sa = parked(g.sync(GROUP, 2, &a, plan, now));
        let (sa, sb) = (came(&mut sa), came(&mut sb));
        if g.bugs.has(Bug::DuplicateAssignment) {
            assert_eq!((sa.assignment, sb.assignment), (Bytes::from("p0"), Bytes::from("p0")));
        } else {
            assert_eq!((sa.assignment, sb.assignment), (Bytes::from("p0"), Bytes::from("p1")));
        }
        assert_eq!(g.state(GROUP), Some((GroupState::Stable, 2)));
        (g, a, b)
    }

    #[test]
    fn two_members_join_sync_and_get_their_own_assignments() {
        let now = Instant::now();
        let (mut g, a, b) = stable_pair(Bugs::default(), now);
        assert_eq!(g.heartbeat(GROUP, 2, &a, now), Ok(()));
        assert_eq!(g.heartbeat(GROUP, 2, &b, now), Ok(()));
        // A SyncGroup again in a stable group answers the member's own assignment at once.
        assert_eq!(now_answer(g.sync(GROUP, 2, &b, Vec::new(), now)).assignment, "p1");
    }

    #[test]
    fn duplicate_assignment_gives_everyone_the_leaders_share() {
        let (mut g, _, b) = stable_pair(Bugs::on(&[Bug::DuplicateAssignment]), Instant::now());
        assert_eq!(now_answer(g.sync(GROUP, 2, &b, Vec::new(), Instant::now())).assignment, "p0");
    }

    /// Data-driven: (heartbeat or commit, group, generation, member) → the answer.
    #[test]
    fn heartbeats_and_commits_answer_as_kafka_does() {
        let now = Instant::now();
        let (mut g, a, _) = stable_pair(Bugs::default(), now);
        let check = |g: &mut Groups,
                     what: &str,
                     group: &str,
                     generation: i32,
                     member: &str,
                     want: Result<(), ResponseError>| {
            let got = match what {
                "heartbeat" => g.heartbeat(group, generation, member, now),
                "commit" => g.validate_commit(group, generation, member, 8, now),
                "commit-v9" => g.validate_commit(group, generation, member, 9, now),
                _ => unreachable!(),
            };
            assert_eq!(got, want, "{what} {group} generation {generation} member {member:?}");
        };
        use ResponseError::*;
        check(&mut g, "heartbeat", GROUP, 2, &a, Ok(()));
        check(&mut g, "heartbeat", GROUP, 1, &a, Err(IllegalGeneration));
        check(&mut g, "heartbeat", GROUP, 2, "stranger", Err(UnknownMemberId));
        check(&mut g, "heartbeat", "nope", 2, &a, Err(UnknownMemberId));
        check(&mut g, "commit", GROUP, 2, &a, Ok(()));
        check(&mut g, "commit", GROUP, 1, &a, Err(IllegalGeneration));
        check(&mut g, "commit", GROUP, 2, "stranger", Err(UnknownMemberId));
        check(&mut g, "commit", GROUP, -1, "", Err(UnknownMemberId));
        check(&mut g, "commit", "fresh", 3, "x", Err(IllegalGeneration));
        check(&mut g, "commit-v9", "fresh", 3, "x", Err(GroupIdNotFound));
        check(&mut g, "commit", "simple", -1, "", Ok(()));
        check(&mut g, "commit", "", -1, "", Err(InvalidGroupId));
        assert_eq!(g.state("simple"), Some((GroupState::Empty, 0)), "a simple commit creates an empty group");
    }

    #[test]
    fn a_commit_from_a_stale_generation_is_rejected_after_a_rebalance() {
        let now = Instant::now();
        let (mut g, a, b) = stable_pair(Bugs::default(), now);
        // b leaves: a rebalance prepares; a's generation-2 commit is still accepted then.
        assert_eq!(g.leave(GROUP, &b, now), Ok(()));
        assert_eq!(g.state(GROUP), Some((GroupState::PreparingRebalance, 2)));
        assert_eq!(g.validate_commit(GROUP, 2, &a, 8, now), Ok(()));
        assert_eq!(g.heartbeat(GROUP, 2, &a, now), Err(ResponseError::RebalanceInProgress));
        let mut ja = parked(g.join(args(&a, &["range"]), now));
        assert_eq!(came(&mut ja).generation, 3);
        // Joined but not synced: commits wait for the rebalance to complete.
        assert_eq!(g.validate_commit(GROUP, 3, &a, 8, now), Err(ResponseError::RebalanceInProgress));
        assert_eq!(now_answer(g.sync(GROUP, 2, &a, Vec::new(), now)).error, Some(ResponseError::IllegalGeneration));
        let mut sa = parked(g.sync(GROUP, 3, &a, vec![(a.clone(), Bytes::from("all"))], now));
        assert_eq!(came(&mut sa).assignment, "all");
        assert_eq!(g.validate_commit(GROUP, 2, &a, 8, now), Err(ResponseError::IllegalGeneration));
        assert_eq!(g.validate_commit(GROUP, 3, &a, 8, now), Ok(()));
        assert_eq!(g.validate_commit(GROUP, 3, &b, 8, now), Err(ResponseError::UnknownMemberId));
    }

    #[test]
    fn an_expired_session_starts_a_rebalance_and_a_missing_rejoin_is_dropped() {
        let now = Instant::now();
        let (mut g, a, b) = stable_pair(Bugs::default(), now);
        // a keeps heartbeating, b goes silent past its 10 s session.
        let later = now + Duration::from_secs(8);
        assert_eq!(g.heartbeat(GROUP, 2, &a, later), Ok(()));
        g.tick(now + Duration::from_secs(11));
        assert_eq!(g.state(GROUP), Some((GroupState::PreparingRebalance, 2)));
        assert_eq!(g.heartbeat(GROUP, 2, &b, later), Err(ResponseError::UnknownMemberId));
        // A new member joins; a keeps heartbeating but never rejoins: after the rebalance
        // timeout (30 s from the expiry) it is out.
        let (_c, mut jc) = first_join(&mut g, &["range"], now + Duration::from_secs(12));
        assert!(jc.try_recv().is_err());
        let at = now + Duration::from_secs(40);
        assert_eq!(g.heartbeat(GROUP, 2, &a, at), Err(ResponseError::RebalanceInProgress));
        g.tick(at);
        assert!(jc.try_recv().is_err(), "the rebalance waits for a until its timeout");
        g.tick(now + Duration::from_secs(11 + 31));
        let jc = came(&mut jc);
        assert_eq!((jc.generation, jc.members.len()), (3, 1), "{jc:?}");
        assert_eq!(g.heartbeat(GROUP, 3, &a, now), Err(ResponseError::UnknownMemberId));
    }

    #[test]
    fn the_last_member_leaving_empties_the_group() {
        let now = Instant::now();
        let mut g = Groups::new(1, Bugs::default());
        let (a, mut ja) = first_join(&mut g, &["range", "roundrobin"], now);
        assert_eq!(came(&mut ja).protocol, "range");
        assert_eq!(g.leave(GROUP, &a, now), Ok(()));
        assert_eq!(g.state(GROUP), Some((GroupState::Empty, 2)));
        assert_eq!(g.leave(GROUP, &a, now), Err(ResponseError::UnknownMemberId));
        // Empty again: a simple commit is allowed, a join with an old id is not.
        assert_eq!(g.validate_commit(GROUP, -1, "", 8, now), Ok(()));
        assert_eq!(now_answer(g.join(args(&a, &["range"]), now)).error, Some(ResponseError::UnknownMemberId));
    }

    #[test]
    fn the_protocol_is_one_every_member_supports() {
        let now = Instant::now();
        let mut g = Groups::new(1, Bugs::default());
        let (a, _ja) = first_join(&mut g, &["range", "roundrobin"], now);
        let (b, mut jb) = first_join(&mut g, &["roundrobin"], now);
        let mut ja = parked(g.join(args(&a, &["range", "roundrobin"]), now));
        assert_eq!((came(&mut ja).protocol, came(&mut jb).protocol), ("roundrobin".into(), "roundrobin".into()));
        let other = now_answer(g.join(args("", &["sticky"]), now));
        assert_eq!(other.error, Some(ResponseError::InconsistentGroupProtocol));
        let mut short = args("", &["range"]);
        short.session_timeout = Duration::from_secs(1);
        assert_eq!(now_answer(g.join(short, now)).error, Some(ResponseError::InvalidSessionTimeout));
        let _ = b;
    }

    #[test]
    fn offset_fetch_answers_committed_offsets_and_the_bug_answers_ten_more() {
        for (bugs, ahead) in [(Bugs::default(), 0), (Bugs::on(&[Bug::OffsetFetchAhead]), FETCH_AHEAD)] {
            let mut g = Groups::new(1, bugs);
            g.validate_commit(GROUP, -1, "", 8, Instant::now()).unwrap();
            let c = Committed { offset: 40, leader_epoch: 2, metadata: "m".into() };
            g.store(GROUP, vec![(("t".into(), 1), c.clone())]);
            let got = g.fetch(GROUP, Some(vec![("t".into(), vec![0, 1])]));
            let want_1 = Committed { offset: 40 + ahead, ..c.clone() };
            assert_eq!(got, vec![("t".to_string(), vec![(0, None), (1, Some(want_1.clone()))])]);
            assert_eq!(g.fetch(GROUP, None), vec![("t".to_string(), vec![(1, Some(want_1))])]);
            assert_eq!(g.fetch("other", None), Vec::new());
        }
    }

    fn config(node: u64) -> NodeConfig {
        let peers = (1..=3)
            .map(|id| {
                format!(
                    "[[peers]]\nid = {id}\nkafka = \"127.0.0.1:{}\"\nwal = \"127.0.0.1:1\"\nraft = \"127.0.0.1:2\"\n",
                    9090 + id
                )
            })
            .collect::<String>();
        let text = format!(
            "node_id = {node}\n[bind]\nkafka = \"127.0.0.1:1\"\nwal = \"127.0.0.1:2\"\nraft = \"127.0.0.1:3\"\n{peers}"
        );
        toml::from_str(&text).unwrap()
    }

    #[test]
    fn every_node_names_the_lowest_id_at_its_advertised_address() {
        for node in 1..=3 {
            let dir = tempfile::tempdir().unwrap();
            let c = Coordinator::open(&config(node), &Bugs::default(), dir.path()).unwrap();
            let resp = c.find_coordinator(&FindCoordinatorRequest::default());
            assert_eq!((resp.node_id, resp.host.as_str(), resp.port), (BrokerId(1), "127.0.0.1", 9091));
            assert_eq!(c.is_me(), node == 1);
        }
    }

    #[test]
    fn committed_offsets_survive_a_restart_and_a_non_coordinator_refuses() {
        use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
        use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
        let dir = tempfile::tempdir().unwrap();
        let commit = OffsetCommitRequest::default()
            .with_group_id(GroupId(text(GROUP)))
            .with_generation_id_or_member_epoch(-1)
            .with_topics(vec![OffsetCommitRequestTopic::default().with_name(topic_name("t")).with_partitions(vec![
                OffsetCommitRequestPartition::default().with_partition_index(2).with_committed_offset(17),
            ])]);
        let fetch = OffsetFetchRequest::default().with_group_id(GroupId(text(GROUP))).with_topics(Some(vec![
            OffsetFetchRequestTopic::default().with_name(topic_name("t")).with_partition_indexes(vec![2]),
        ]));
        let offset = |c: &Coordinator| {
            let resp = c.offset_fetch(&fetch, 7);
            (resp.error_code, resp.topics[0].partitions[0].committed_offset)
        };
        {
            let c = Coordinator::open(&config(1), &Bugs::default(), dir.path()).unwrap();
            let resp = c.offset_commit(&commit, 8);
            assert_eq!(resp.topics[0].partitions[0].error_code, 0);
            assert_eq!(offset(&c), (0, 17));
        }
        assert!(dir.path().join(OFFSETS_FILE).is_file());
        let again = Coordinator::open(&config(1), &Bugs::default(), dir.path()).unwrap();
        assert_eq!(offset(&again), (0, 17), "a restarted coordinator keeps its committed offsets");

        let other = Coordinator::open(&config(2), &Bugs::default(), tempfile::tempdir().unwrap().path()).unwrap();
        let not = ResponseError::NotCoordinator.code();
        assert_eq!(other.offset_commit(&commit, 8).topics[0].partitions[0].error_code, not);
        assert_eq!(offset(&other), (not, -1));
        assert_eq!(other.heartbeat(&HeartbeatRequest::default()).error_code, not);
    }
}
