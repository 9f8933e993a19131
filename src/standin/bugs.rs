//! The stand-in's switchable bugs: `STAND_IN_BUG=name[,name...]` turns on deliberate faults so
//! that a test can show the harness catching each one. No variable (or an empty one) is the
//! correct broker.
//!
//! | name | what the node then does wrong |
//! | --- | --- |
//! | `ack-before-replication` | answers `acks=all` as soon as its own log has the batch, without waiting for followers and even when the ISR is below `min.insync.replicas` |
//! | `lose-unflushed-tail` | never fsyncs its logs; on a restart it drops the last [`LOST_TAIL_BATCHES`] batches of every partition log, as a crash would lose unflushed pages |
//! | `no-failover` | never starts a partition leader election: a dead leader stays leader |
//! | `ignore-sequence` | appends every idempotent batch, duplicates and gaps included |
//! | `reorder-batches` | holds every second batch of each producer and partition for [`REORDER_HOLD`] and appends it after the ones that arrive meanwhile, ignoring the sequence gap |
//! | `empty-fetch-from-follower` | a node that does not lead a partition answers Fetch for it with no records and no error (Chronik v2.10.4's finding 2) |
//! | `stale-metadata` | Metadata and the admin API keep naming each partition's first leader, dead or not, at epoch 0 |
//! | `startup-hang` | with probability one half per process, never reports a Raft leader on its admin API, so start-up never becomes ready |
//! | `offset-fetch-ahead` | OffsetFetch answers every committed offset plus [`FETCH_AHEAD`]: a consumer that takes over a partition resumes past the committed offset and skips records |
//! | `duplicate-assignment` | SyncGroup hands every member the assignment the leader computed for the *leader*: some partitions are owned by several members at once, others by none |
//! | `no-leader-after-restart` | a node started on data it already holds (a restart) never names a Raft leader on its admin API, though it serves Kafka (the shape of Chronik v2.10.4's finding 14) |

use std::collections::BTreeSet;
use std::time::Duration;

/// The environment variable that switches bugs on.
pub const ENV: &str = "STAND_IN_BUG";

/// Batches per partition log that `lose-unflushed-tail` drops on a restart.
pub const LOST_TAIL_BATCHES: usize = 5;

/// How long `reorder-batches` holds a batch back.
pub const REORDER_HOLD: Duration = Duration::from_millis(150);

/// How far past the committed offset `offset-fetch-ahead` answers.
pub const FETCH_AHEAD: i64 = 10;

/// One deliberate fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Bug {
    AckBeforeReplication,
    LoseUnflushedTail,
    NoFailover,
    IgnoreSequence,
    ReorderBatches,
    EmptyFetchFromFollower,
    StaleMetadata,
    StartupHang,
    OffsetFetchAhead,
    DuplicateAssignment,
    NoLeaderAfterRestart,
}

impl Bug {
    pub const ALL: [Bug; 11] = [
        Bug::AckBeforeReplication,
        Bug::LoseUnflushedTail,
        Bug::NoFailover,
        Bug::IgnoreSequence,
        Bug::ReorderBatches,
        Bug::EmptyFetchFromFollower,
        Bug::StaleMetadata,
        Bug::StartupHang,
        Bug::OffsetFetchAhead,
        Bug::DuplicateAssignment,
        Bug::NoLeaderAfterRestart,
    ];

    /// The name used in `STAND_IN_BUG`.
    pub fn name(self) -> &'static str {
        match self {
            Bug::AckBeforeReplication => "ack-before-replication",
            Bug::LoseUnflushedTail => "lose-unflushed-tail",
            Bug::NoFailover => "no-failover",
            Bug::IgnoreSequence => "ignore-sequence",
            Bug::ReorderBatches => "reorder-batches",
            Bug::EmptyFetchFromFollower => "empty-fetch-from-follower",
            Bug::StaleMetadata => "stale-metadata",
            Bug::StartupHang => "startup-hang",
            Bug::OffsetFetchAhead => "offset-fetch-ahead",
            Bug::DuplicateAssignment => "duplicate-assignment",
            Bug::NoLeaderAfterRestart => "no-leader-after-restart",
        }
    }
}

impl std::fmt::Display for Bug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Bug {
    type Err = String;

    fn from_str(s: &str) -> Result<Bug, String> {
        Bug::ALL.into_iter().find(|b| b.name() == s).ok_or_else(|| {
            let valid: Vec<&str> = Bug::ALL.iter().map(|b| b.name()).collect();
            format!("unknown stand-in bug `{s}` in {ENV}; valid names: {}", valid.join(", "))
        })
    }
}

/// The bugs switched on; empty is the correct broker.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Bugs(BTreeSet<Bug>);

impl Bugs {
    /// Parses `name[,name...]` (spaces and empty items ignored).
    pub fn parse(list: &str) -> Result<Bugs, String> {
        list.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::parse).collect::<Result<_, _>>().map(Bugs)
    }

    /// From `STAND_IN_BUG`; unset means none.
    pub fn from_env() -> Result<Bugs, String> {
        Bugs::parse(&std::env::var(ENV).unwrap_or_default())
    }

    pub fn on(list: &[Bug]) -> Bugs {
        Bugs(list.iter().copied().collect())
    }

    pub fn has(&self, bug: Bug) -> bool {
        self.0.contains(&bug)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Display for Bugs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.0.iter().map(|b| b.name()).collect();
        f.write_str(&names.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: Result<&[Bug], &str>) {
        let got = Bugs::parse(input);
        match expected {
            Ok(bugs) => assert_eq!(got, Ok(Bugs::on(bugs)), "{input:?}"),
            Err(part) => assert!(got.as_ref().is_err_and(|e| e.contains(part)), "{input:?} gave {got:?}"),
        }
    }

    #[test]
    fn parses_lists_of_names() {
        check("", Ok(&[]));
        check("no-failover", Ok(&[Bug::NoFailover]));
        check(" stale-metadata , ignore-sequence,", Ok(&[Bug::StaleMetadata, Bug::IgnoreSequence]));
        check("no-failover,nope", Err("unknown stand-in bug `nope`"));
        check("nope", Err("valid names: ack-before-replication, lose-unflushed-tail"));
    }

    #[test]
    fn every_name_round_trips() {
        for bug in Bug::ALL {
            assert_eq!(bug.name().parse::<Bug>(), Ok(bug));
        }
    }
}
