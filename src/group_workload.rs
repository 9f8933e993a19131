//! The queue workload's consumer group: N rdkafka consumers in one group (`subscribe`, eager
//! rebalancing) that poll through the fault and commit their offsets (automatically or by hand),
//! each on its own thread, recording every poll, commit, rebalance and error into a
//! [`GroupHistory`]; and the drain after the producers stop, which lets the group consume up to
//! the final read's targets before the members leave.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::bindings as rd;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{
    BaseConsumer, CommitMode as RdCommitMode, Consumer, ConsumerContext, Rebalance as RdRebalance,
};
use rdkafka::error::KafkaResult;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use crate::history::group::{Commit, CommitMode, GroupError, GroupHistory, GroupPoll, Rebalance, RebalanceKind};
use crate::workload::WorkloadConfig;

/// How the group runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupConfig {
    pub group_id: String,
    pub members: u32,
    pub commit: CommitMode,
}

/// How often a member commits by hand (manual mode), and librdkafka's own interval (auto).
pub const COMMIT_INTERVAL: Duration = Duration::from_millis(500);

/// Where the members record, with µs since the workload's start.
#[derive(Debug)]
struct Recorder {
    start: Instant,
    history: Mutex<GroupHistory>,
}

impl Recorder {
    fn now_us(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }

    fn with<R>(&self, f: impl FnOnce(&mut GroupHistory) -> R) -> R {
        f(&mut self.history.lock().unwrap())
    }
}

/// One member's context: librdkafka calls it on the member's thread, inside `poll`.
struct Member {
    id: u32,
    commit: CommitMode,
    topic: String,
    rec: Arc<Recorder>,
    /// Assignments received so far.
    assignment: AtomicU32,
    /// Manual mode: per partition, the next offset to commit (polled and not committed yet).
    uncommitted: Mutex<BTreeMap<i32, i64>>,
}

impl ClientContext for Member {}

impl Member {
    fn record_rebalance(&self, consumer: &BaseConsumer<Member>, kind: RebalanceKind, tpl: &TopicPartitionList) {
        let assignment = match kind {
            RebalanceKind::Assign => self.assignment.fetch_add(1, Ordering::SeqCst) + 1,
            _ => self.assignment.load(Ordering::SeqCst),
        };
        let mut partitions: Vec<i32> =
            tpl.elements().iter().filter(|e| e.topic() == self.topic).map(|e| e.partition()).collect();
        partitions.sort_unstable();
        let member_id = member_id(consumer);
        let at_us = self.rec.now_us();
        self.rec.with(|h| {
            h.rebalances.push(Rebalance { consumer: self.id, at_us, kind, partitions, assignment, member_id })
        });
    }

    /// Manual mode: commits everything polled and not committed yet, synchronously (librdkafka
    /// reports an asynchronous manual commit's answer only to a C callback the crate does not
    /// set), and records it with the time it was asked and answered.
    fn commit_uncommitted(&self, consumer: &BaseConsumer<Member>) {
        let offsets: Vec<(i32, i64)> = std::mem::take(&mut *self.uncommitted.lock().unwrap()).into_iter().collect();
        if offsets.is_empty() {
            return;
        }
        let mut tpl = TopicPartitionList::new();
        for (p, o) in &offsets {
            let _ = tpl.add_partition_offset(&self.topic, *p, Offset::Offset(*o));
        }
        let invoked = self.rec.now_us();
        let error = consumer.commit(&tpl, RdCommitMode::Sync).err().map(|e| e.to_string());
        let (consumer, assignment, completed_us) = (self.id, self.assignment.load(Ordering::SeqCst), self.rec.now_us());
        self.rec.with(|h| {
            h.commits.push(Commit { consumer, assignment, invoked_us: Some(invoked), completed_us, offsets, error })
        });
    }
}

impl ConsumerContext for Member {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Member>, rebalance: &RdRebalance<'_>) {
        match rebalance {
            RdRebalance::Revoke(tpl) => {
                if self.commit == CommitMode::Manual {
                    self.commit_uncommitted(consumer);
                }
                let kind = if consumer.assignment_lost() { RebalanceKind::Lost } else { RebalanceKind::Revoke };
                self.record_rebalance(consumer, kind, tpl);
            }
            RdRebalance::Assign(_) => {}
            RdRebalance::Error(e) => {
                let (consumer, at_us, error) = (self.id, self.rec.now_us(), format!("rebalance: {e}"));
                self.rec.with(|h| h.errors.push(GroupError { consumer, at_us, error }));
            }
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Member>, rebalance: &RdRebalance<'_>) {
        if let RdRebalance::Assign(tpl) = rebalance {
            self.uncommitted.lock().unwrap().clear();
            self.record_rebalance(consumer, RebalanceKind::Assign, tpl);
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, tpl: &TopicPartitionList) {
        // Only automatic commits are answered here (manual ones are synchronous).
        let completed_us = self.rec.now_us();
        let mut offsets = Vec::new();
        let mut errors = Vec::new();
        for e in tpl.elements().iter().filter(|e| e.topic() == self.topic) {
            if let Offset::Offset(o) = e.offset() {
                offsets.push((e.partition(), o));
            }
            if let Err(err) = e.error() {
                errors.push(format!("partition {}: {err}", e.partition()));
            }
        }
        offsets.sort_unstable();
        let error = match result {
            Err(e) => Some(e.to_string()),
            Ok(()) if !errors.is_empty() => Some(errors.join("; ")),
            Ok(()) => None,
        };
        // librdkafka reports "nothing to commit" as an error of a commit it never sent.
        if offsets.is_empty() && error.as_deref().is_some_and(|e| e.contains("No offset stored")) {
            return;
        }
        let (consumer, assignment) = (self.id, self.assignment.load(Ordering::SeqCst));
        self.rec.with(|h| {
            h.commits.push(Commit { consumer, assignment, invoked_us: None, completed_us, offsets, error });
        });
    }
}

/// The member id the coordinator gave this consumer (empty when it has none).
fn member_id(consumer: &BaseConsumer<Member>) -> String {
    // SAFETY: the pointer is the live client; librdkafka returns a string we own and must free
    // with rd_kafka_mem_free (or NULL).
    unsafe {
        let ptr = consumer.client().native_ptr();
        let id = rd::rd_kafka_memberid(ptr);
        if id.is_null() {
            return String::new();
        }
        let s = std::ffi::CStr::from_ptr(id).to_string_lossy().into_owned();
        rd::rd_kafka_mem_free(ptr, id.cast());
        s
    }
}

/// The running group.
pub struct GroupWorkload {
    stop: CancellationToken,
    threads: Vec<std::thread::JoinHandle<()>>,
    rec: Arc<Recorder>,
}

impl GroupWorkload {
    /// Starts `group.members` consumers subscribed to the workload's topic.
    pub fn start(cfg: &WorkloadConfig, group: &GroupConfig, start: Instant) -> Result<GroupWorkload, String> {
        let rec = Arc::new(Recorder {
            start,
            history: Mutex::new(GroupHistory {
                group_id: group.group_id.clone(),
                members: group.members,
                commit_mode: group.commit,
                ..GroupHistory::default()
            }),
        });
        let started_us = rec.now_us();
        rec.with(|h| h.started_us = started_us);
        let stop = CancellationToken::new();
        let mut threads = Vec::new();
        for id in 0..group.members {
            let consumer = member(cfg, group, id, rec.clone())?;
            let stop = stop.clone();
            let thread = std::thread::Builder::new()
                .name(format!("group-member-{id}"))
                .spawn(move || poll_loop(consumer, stop))
                .map_err(|e| format!("group member {id}: {e}"))?;
            threads.push(thread);
        }
        Ok(GroupWorkload { stop, threads, rec })
    }

    /// Highest offset the group has polled, per partition.
    pub fn reached(&self) -> BTreeMap<i32, i64> {
        self.rec.with(|h| {
            let mut out = BTreeMap::new();
            for p in &h.polls {
                let e = out.entry(p.partition).or_insert(p.offset);
                *e = (*e).max(p.offset);
            }
            out
        })
    }

    /// Lets the group consume until it has polled each partition up to its target (the final
    /// read's last offset) or `deadline` passes, then stops the members (they leave the group)
    /// and returns what they did.
    pub async fn drain(mut self, targets: &BTreeMap<i32, i64>, deadline: Duration) -> GroupHistory {
        let started = Instant::now();
        let done = |reached: &BTreeMap<i32, i64>| {
            targets.iter().all(|(p, t)| *t < 0 || reached.get(p).is_some_and(|r| r >= t))
        };
        let mut drained = done(&self.reached());
        while !drained && started.elapsed() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
            drained = done(&self.reached());
        }
        let leaving_us = self.rec.now_us();
        self.rec.with(|h| h.leaving_us = leaving_us);
        self.stop.cancel();
        let threads = std::mem::take(&mut self.threads);
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
        let stopped_us = self.rec.now_us();
        self.rec.with(|h| {
            h.stopped_us = stopped_us;
            h.drained = drained;
            h.polls.sort_by_key(|p| p.at_us);
            h.commits.sort_by_key(|c| c.completed_us);
            h.rebalances.sort_by_key(|r| r.at_us);
            h.errors.sort_by_key(|e| e.at_us);
            h.clone()
        })
    }
}

/// A group dropped without `drain` (a scenario that ended early) stops its members at once.
impl Drop for GroupWorkload {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn member(
    cfg: &WorkloadConfig,
    group: &GroupConfig,
    id: u32,
    rec: Arc<Recorder>,
) -> Result<BaseConsumer<Member>, String> {
    let mut c = cfg.client();
    c.set("client.id", format!("chronik-chaos-group-{id}"))
        .set("group.id", &group.group_id)
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "1000")
        // No request lives longer: the group rules count an automatic commit as asked at most
        // this long before its answer (checker::group::AUTO_COMMIT_IN_FLIGHT_US).
        .set("socket.timeout.ms", (crate::checker::group::AUTO_COMMIT_IN_FLIGHT_US / 1000).to_string())
        .set("enable.partition.eof", "false");
    match group.commit {
        CommitMode::Auto => {
            c.set("enable.auto.commit", "true").set("auto.commit.interval.ms", COMMIT_INTERVAL.as_millis().to_string())
        }
        CommitMode::Manual => c.set("enable.auto.commit", "false"),
    };
    let ctx = Member {
        id,
        commit: group.commit,
        topic: cfg.topic.clone(),
        rec,
        assignment: AtomicU32::new(0),
        uncommitted: Mutex::new(BTreeMap::new()),
    };
    let consumer: BaseConsumer<Member> = c.create_with_context(ctx).map_err(|e| format!("group member {id}: {e}"))?;
    consumer.subscribe(&[&cfg.topic]).map_err(|e| format!("group member {id} subscribing: {e}"))?;
    Ok(consumer)
}

/// Polls until stopped; records every record and error; in manual mode commits what it polled
/// every [`COMMIT_INTERVAL`]. Closing the consumer (on drop) leaves the group.
fn poll_loop(consumer: BaseConsumer<Member>, stop: CancellationToken) {
    let ctx = consumer.context().clone();
    let mut last_commit = Instant::now();
    while !stop.is_cancelled() {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let value = m.payload().map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default();
                let poll = GroupPoll {
                    consumer: ctx.id,
                    assignment: ctx.assignment.load(Ordering::SeqCst),
                    partition: m.partition(),
                    offset: m.offset(),
                    value,
                    at_us: ctx.rec.now_us(),
                };
                if ctx.commit == CommitMode::Manual {
                    ctx.uncommitted.lock().unwrap().insert(m.partition(), m.offset() + 1);
                }
                ctx.rec.with(|h| h.polls.push(poll));
            }
            Some(Err(e)) => {
                let (c, at_us, error) = (ctx.id, ctx.rec.now_us(), e.to_string());
                ctx.rec.with(|h| h.errors.push(GroupError { consumer: c, at_us, error }));
            }
            None => {}
        }
        if ctx.commit == CommitMode::Manual && last_commit.elapsed() >= COMMIT_INTERVAL {
            ctx.commit_uncommitted(&consumer);
            last_commit = Instant::now();
        }
    }
    if ctx.commit == CommitMode::Manual {
        ctx.commit_uncommitted(&consumer);
    }
}
