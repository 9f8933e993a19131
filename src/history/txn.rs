//! The recorded history of a transactional scenario: every transaction of every transactional
//! producer (begin → writes → commit or abort, with its outcome), every record the
//! `read_committed` readers saw (live during the run, and the final read), and what the broker
//! advertised for transactions. Timestamps are monotonic microseconds since the workload
//! started. Values are unique: `t<producer>-<txn>-<index>`. `checker::txn` decides from this
//! alone.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ReaderEvent;

/// How a transaction ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum TxnOutcome {
    /// `commit_transaction` succeeded.
    Committed,
    /// The workload chose to abort (every 4th transaction) and `abort_transaction` succeeded.
    Aborted,
    /// Definitely not committed: commit was never asked for (an error before it, then an abort
    /// or an abandoned producer), or the commit failed with an abortable error and the abort
    /// that followed succeeded.
    Failed { error: String },
    /// The commit was asked for and its outcome is indeterminate (timed out, fatal error).
    Unknown { error: String },
}

/// One record written inside a transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnWrite {
    pub partition: i32,
    /// `t<producer>-<txn>-<index>`.
    pub value: String,
    /// Its place in the transaction (0-based, the order it was sent in).
    pub index: u32,
    /// The offset of its delivery report (`None`: no successful report).
    #[serde(default)]
    pub offset: Option<i64>,
}

/// One transaction of one producer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Txn {
    pub producer: u32,
    /// The producer's transaction counter (0-based; every 4th one, `txn % 4 == 3`, is aborted).
    pub txn: u64,
    /// When `begin_transaction` was called.
    pub invoked_us: u64,
    /// When commit or abort was first asked for; for a deliberate abort, after its writes were
    /// flushed to the log. No `read_committed` reader may see a value before this. `None`:
    /// never; the producer gave the transaction up and a new producer with its
    /// `transactional.id` fenced it.
    #[serde(default)]
    pub ended_us: Option<u64>,
    /// When the outcome was known (`None`: the workload stopped first).
    pub completed_us: Option<u64>,
    pub writes: Vec<TxnWrite>,
    pub outcome: TxnOutcome,
}

/// One record a `read_committed` reader saw.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnRead {
    pub partition: i32,
    pub offset: i64,
    pub value: String,
    pub at_us: u64,
}

/// The readers' isolation level (the transactional workload reads committed data only).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Isolation {
    #[default]
    ReadCommitted,
}

/// What a broker's ApiVersions answer said about the APIs transactions need: the highest
/// version of each (`None`: not advertised).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnSupport {
    /// The broker that answered (`host:port`).
    pub broker: String,
    pub find_coordinator: Option<i16>,
    pub init_producer_id: Option<i16>,
    pub add_partitions_to_txn: Option<i16>,
    pub end_txn: Option<i16>,
    /// Transactional records need Produce v3 or later.
    #[serde(default)]
    pub produce: Option<i16>,
    /// `read_committed` needs Fetch v4 or later.
    #[serde(default)]
    pub fetch: Option<i16>,
}

impl TxnSupport {
    /// The APIs (with the least version that will do) that are missing or too old.
    pub fn missing(&self) -> Vec<String> {
        // FindCoordinator finds a transaction coordinator from v1 (key type), Produce carries
        // a transactional id from v3, Fetch honours the isolation level from v4.
        let needs = [
            ("FindCoordinator", self.find_coordinator, 1),
            ("InitProducerId", self.init_producer_id, 0),
            ("AddPartitionsToTxn", self.add_partitions_to_txn, 0),
            ("EndTxn", self.end_txn, 0),
            ("Produce", self.produce, 3),
            ("Fetch", self.fetch, 4),
        ];
        needs
            .iter()
            .filter(|(_, max, least)| max.is_none_or(|m| m < *least))
            .map(|(name, max, least)| match max {
                None => format!("{name} (not advertised)"),
                Some(m) => format!("{name} v{least}+ (advertised up to v{m})"),
            })
            .collect()
    }

    /// Transactions can be tested: every API above is advertised at a usable version.
    pub fn supported(&self) -> bool {
        self.missing().is_empty()
    }
}

/// How the final read ended.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnFinalRead {
    /// Every partition was read up to its target before the deadline.
    pub complete: bool,
    /// Before reading, one closing transaction (producer number `producers`, one past the
    /// workload's) committed one record per partition; its offsets are the targets, so a
    /// partition read to its target was read past every earlier transaction. `false`: the
    /// closing transaction failed and the targets are the highest offsets of committed writes.
    #[serde(default)]
    pub closed: bool,
    /// Per partition: the offset the final read had to reach (-1: nothing to reach).
    pub targets: BTreeMap<i32, i64>,
    /// Per partition: the highest offset it did reach.
    pub reached: BTreeMap<i32, i64>,
    /// Per partition: the last stable offset a `read_committed` ListOffsets reported before
    /// the read (`None`: the leader would not say). For the report; the targets decide.
    #[serde(default)]
    pub last_stable: BTreeMap<i32, Option<i64>>,
    /// Distinct errors the final reader saw (at most 10).
    #[serde(default)]
    pub errors: Vec<String>,
}

impl TxnFinalRead {
    /// The partition was read up to its target.
    pub fn partition_complete(&self, partition: i32) -> bool {
        match self.targets.get(&partition) {
            Some(t) => *t < 0 || self.reached.get(&partition).is_some_and(|r| r >= t),
            None => false,
        }
    }
}

/// A producer replaced after a fatal error (or an indeterminate commit): the new one re-inits
/// the same `transactional.id`, which fences the old one and aborts whatever it left open.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerRestart {
    pub producer: u32,
    pub at_us: u64,
    pub error: String,
}

/// Everything the transactional checker needs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnHistory {
    /// Transactional producers of the workload (numbered from 0).
    pub producers: u32,
    #[serde(default)]
    pub isolation: Isolation,
    pub txns: Vec<Txn>,
    /// What the live `read_committed` reader saw during the run.
    #[serde(default)]
    pub reads: Vec<TxnRead>,
    /// What the final `read_committed` reader saw.
    #[serde(default)]
    pub final_reads: Vec<TxnRead>,
    #[serde(default)]
    pub final_read: TxnFinalRead,
    #[serde(default)]
    pub support: TxnSupport,
    #[serde(default)]
    pub restarts: Vec<ProducerRestart>,
    /// Errors readers were given instead of records.
    #[serde(default)]
    pub reader_events: Vec<ReaderEvent>,
}

/// The unique value of a producer's `txn`-th transaction's `index`-th write.
pub fn txn_value_of(producer: u32, txn: u64, index: u32) -> String {
    format!("t{producer}-{txn}-{index}")
}

impl Txn {
    /// `t<producer>-<txn>`, the prefix of its values.
    pub fn name(&self) -> String {
        format!("t{}-{}", self.producer, self.txn)
    }
}

impl TxnHistory {
    pub fn count(&self, pred: impl Fn(&TxnOutcome) -> bool) -> usize {
        self.txns.iter().filter(|t| pred(&t.outcome)).count()
    }

    pub fn committed(&self) -> usize {
        self.count(|o| matches!(o, TxnOutcome::Committed))
    }

    pub fn aborted(&self) -> usize {
        self.count(|o| matches!(o, TxnOutcome::Aborted))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn support_needs_every_transactional_api_at_a_usable_version() {
        let full = TxnSupport {
            broker: "b:9092".into(),
            find_coordinator: Some(3),
            init_producer_id: Some(4),
            add_partitions_to_txn: Some(3),
            end_txn: Some(3),
            produce: Some(9),
            fetch: Some(12),
        };
        assert!(full.supported(), "{:?}", full.missing());
        let old = TxnSupport { find_coordinator: Some(0), end_txn: None, ..full.clone() };
        assert_eq!(old.missing(), ["FindCoordinator v1+ (advertised up to v0)", "EndTxn (not advertised)"]);
        assert!(!TxnSupport::default().supported());
    }

    #[test]
    fn a_history_without_the_optional_parts_still_reads() {
        let h: TxnHistory = serde_json::from_str(r#"{"producers": 1, "txns": []}"#).unwrap();
        assert_eq!(h.isolation, Isolation::ReadCommitted);
        let back: TxnHistory = serde_json::from_str(&serde_json::to_string(&h).unwrap()).unwrap();
        assert_eq!(back, h);
    }
}
