//! What a consumer group did, as the queue workload records it: every record a member polled,
//! every offset commit (asked and answered), every rebalance a member was told of, and every
//! error a member was handed. Timestamps are µs since the workload started, like the rest of
//! the history. librdkafka does not expose the group's generation id, so each member counts its
//! own assignments (`assignment`) and records the member id the coordinator gave it.

use serde::{Deserialize, Serialize};

/// How members commit their offsets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CommitMode {
    /// librdkafka commits on its own (`enable.auto.commit`, every second and on revocation).
    #[default]
    Auto,
    /// The member commits what it has polled after every batch, and on revocation.
    Manual,
}

impl std::fmt::Display for CommitMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CommitMode::Auto => "auto",
            CommitMode::Manual => "manual",
        })
    }
}

/// One record a member polled.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupPoll {
    pub consumer: u32,
    /// The member's own count of assignments it had received when it polled this (1 = first).
    pub assignment: u32,
    pub partition: i32,
    pub offset: i64,
    pub value: String,
    pub at_us: u64,
}

/// One offset commit and its answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commit {
    pub consumer: u32,
    pub assignment: u32,
    /// When the member asked (`None`: an automatic commit, which librdkafka starts on its own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoked_us: Option<u64>,
    /// When the answer arrived.
    pub completed_us: u64,
    /// Per partition, the offset committed: the next record the group should read.
    pub offsets: Vec<(i32, i64)>,
    /// `None`: the coordinator accepted it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What a rebalance did to one member.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RebalanceKind {
    /// These partitions are now the member's (eager protocol: its whole assignment).
    Assign,
    /// These partitions are no longer the member's.
    Revoke,
    /// The assignment was lost without a clean revocation (session timed out, fenced).
    Lost,
}

/// One rebalance callback.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rebalance {
    pub consumer: u32,
    pub at_us: u64,
    pub kind: RebalanceKind,
    pub partitions: Vec<i32>,
    /// The member's assignment count after this event.
    pub assignment: u32,
    /// The member id the coordinator gave (empty when librdkafka had none).
    #[serde(default)]
    pub member_id: String,
}

/// An error a member was handed instead of a record (e.g. the coordinator unreachable).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupError {
    pub consumer: u32,
    pub at_us: u64,
    pub error: String,
}

/// Everything the group did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupHistory {
    pub group_id: String,
    /// How many members the workload ran (all alive until `stopped_us`).
    pub members: u32,
    pub commit_mode: CommitMode,
    pub polls: Vec<GroupPoll>,
    pub commits: Vec<Commit>,
    pub rebalances: Vec<Rebalance>,
    #[serde(default)]
    pub errors: Vec<GroupError>,
    /// When the members started, when they were told to leave (the drain's end: the
    /// revocations after it are their leaving), and when they had all left.
    pub started_us: u64,
    #[serde(default)]
    pub leaving_us: u64,
    pub stopped_us: u64,
    /// The drain after the producers stopped ended with every partition consumed up to the
    /// final read's targets.
    pub drained: bool,
}
