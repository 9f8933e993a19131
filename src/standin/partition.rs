//! One partition's replica on this node: its log, its idempotent producers and the
//! leadership state replication moves — epoch, leader, vote (persisted in `state.json`),
//! follower progress, ISR and commit point — with the rules for appending as leader,
//! accepting a leader's entries as follower, voting, taking over and stepping down.
//!
//! The rules are Raft's, per partition, with Kafka's words: the epoch is the term, entries
//! are batches plus leader-change markers, the high watermark is the end offset of the
//! committed entries. A leader commits an entry of its own epoch once `max(min.insync.replicas,
//! majority)` replicas hold it; a follower accepts entries only after the entry before them
//! matches the leader's (same position, same epoch) and drops a conflicting tail; a vote goes
//! only to a candidate whose log is at least as up to date, once per epoch, and never while
//! the voter still hears its leader.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::batch::{self, Header};
use super::idempotence::Producers;
use super::log::{Entry, LogOptions, PartitionLog, Payload};
use super::replication::{AppendReply, AppendReq, VoteReply, VoteReq, WireEntry};

/// A follower that has not caught up with the leader's log end for this long leaves the ISR.
pub const ISR_LAG: Duration = Duration::from_secs(2);
/// A follower that has not heard its leader for this long may stand for election (plus a
/// stagger by its place among the replicas), and a voter that has heard it refuses.
pub const ELECTION_TIMEOUT: Duration = Duration::from_secs(2);
/// Bytes of entries per replication message (at least one entry).
pub const APPEND_MAX_BYTES: usize = 1 << 20;

/// The state that must survive a restart.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Durable {
    /// The highest leader epoch this replica has followed or led.
    pub epoch: i32,
    pub leader: Option<u64>,
    /// The last vote given: (epoch, candidate).
    pub voted: Option<(i32, u64)>,
}

/// A leader's view of one follower.
#[derive(Clone, Debug, Default)]
pub struct Progress {
    /// Entries to send from.
    pub next: usize,
    /// Entries the follower is known to hold as the leader does.
    pub matched: usize,
    /// When the follower last held everything the leader had at that moment.
    pub caught_up_at: Option<Instant>,
    pub last_sent: Option<Instant>,
}

#[derive(Clone, Debug)]
pub enum Role {
    Leader { progress: BTreeMap<u64, Progress> },
    Follower,
}

/// What a leader sent one follower, to judge the answer by.
#[derive(Clone, Copy, Debug)]
pub struct Sent {
    pub epoch: i32,
    pub prev_len: usize,
    pub count: usize,
    pub leader_len: usize,
    pub at: Instant,
}

/// Where a partition lives and how it is replicated.
#[derive(Clone, Debug)]
pub struct PartitionSpec {
    pub topic: String,
    pub index: i32,
    pub me: u64,
    /// Preferred leader first.
    pub replicas: Vec<u64>,
    pub min_isr: usize,
    pub dir: PathBuf,
    pub log: LogOptions,
}

/// A partition as reported by Metadata and the admin API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct View {
    pub topic: String,
    pub partition: i32,
    pub leader: Option<u64>,
    pub epoch: i32,
    pub replicas: Vec<u64>,
    pub isr: Vec<u64>,
    pub high_watermark: i64,
    pub log_end: i64,
}

#[derive(Debug)]
pub struct Partition {
    pub spec: PartitionSpec,
    pub log: PartitionLog,
    pub producers: Producers,
    pub durable: Durable,
    pub role: Role,
    /// Entries known committed.
    pub commit: usize,
    /// When this replica last heard its leader (or started, or began following one).
    pub heard_at: Instant,
    /// When it last voted or stood: the election timer runs from the later of the two.
    pub voted_at: Instant,
    /// The ISR as the leader last told this follower.
    told_isr: Vec<u64>,
    /// Batches the `lose-unflushed-tail` bug dropped on open.
    pub dropped_on_open: usize,
}

impl Partition {
    /// Opens the partition's log and state; a new one starts at epoch 0 led by its preferred
    /// leader. A restarted replica never resumes leading: it follows until told or elected.
    pub fn open(spec: PartitionSpec, now: Instant) -> io::Result<Partition> {
        let (log, dropped_on_open) = PartitionLog::open(&spec.dir, spec.log)?;
        let state = spec.dir.join("state.json");
        let (mut durable, fresh) = match std::fs::read_to_string(&state) {
            Ok(text) => {
                (serde_json::from_str(&text).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?, false)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                (Durable { epoch: 0, leader: spec.replicas.first().copied(), voted: None }, true)
            }
            Err(e) => return Err(e),
        };
        if !fresh && durable.leader == Some(spec.me) {
            durable.leader = None;
        }
        let mut p = Partition {
            producers: Producers::rebuild(log.entries()),
            log,
            durable,
            role: Role::Follower,
            commit: 0,
            heard_at: now,
            voted_at: now,
            told_isr: Vec::new(),
            dropped_on_open,
            spec,
        };
        if fresh {
            p.persist()?;
            if p.durable.leader == Some(p.spec.me) {
                p.role = Role::Leader { progress: p.fresh_progress() };
            }
        }
        Ok(p)
    }

    fn fresh_progress(&self) -> BTreeMap<u64, Progress> {
        let next = self.log.len();
        self.spec
            .replicas
            .iter()
            .filter(|r| **r != self.spec.me)
            .map(|r| (*r, Progress { next, ..Progress::default() }))
            .collect()
    }

    fn persist(&self) -> io::Result<()> {
        write_atomically(&self.spec.dir.join("state.json"), &serde_json::to_vec(&self.durable)?, self.spec.log.fsync)
    }

    pub fn is_leader(&self) -> bool {
        matches!(self.role, Role::Leader { .. })
    }

    pub fn leader(&self) -> Option<u64> {
        if self.is_leader() {
            Some(self.spec.me)
        } else {
            self.durable.leader.filter(|l| *l != self.spec.me)
        }
    }

    /// Whether this follower heard its leader within [`ELECTION_TIMEOUT`].
    pub fn hears_leader(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.heard_at) < ELECTION_TIMEOUT
    }

    /// How long since this follower heard its leader, voted or stood.
    pub fn silence(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.heard_at.max(self.voted_at))
    }

    pub fn epoch(&self) -> i32 {
        self.durable.epoch
    }

    pub fn high_watermark(&self) -> i64 {
        self.log.end_of(self.commit)
    }

    /// Replicas that must hold an entry before it is committed.
    pub fn required(&self) -> usize {
        let n = self.spec.replicas.len();
        self.spec.min_isr.max(n / 2 + 1).min(n)
    }

    /// The leader: itself and every follower caught up within [`ISR_LAG`]; a follower: what
    /// the leader last said.
    pub fn isr(&self, now: Instant) -> Vec<u64> {
        match &self.role {
            Role::Leader { progress } => self
                .spec
                .replicas
                .iter()
                .copied()
                .filter(|r| {
                    *r == self.spec.me
                        || progress
                            .get(r)
                            .and_then(|p| p.caught_up_at)
                            .is_some_and(|t| now.saturating_duration_since(t) < ISR_LAG)
                })
                .collect(),
            Role::Follower => self.told_isr.clone(),
        }
    }

    pub fn view(&self, now: Instant) -> View {
        View {
            topic: self.spec.topic.clone(),
            partition: self.spec.index,
            leader: self.leader(),
            epoch: self.durable.epoch,
            replicas: self.spec.replicas.clone(),
            isr: self.isr(now),
            high_watermark: self.high_watermark(),
            log_end: self.log.end_offset(),
        }
    }

    // ---- leader ----

    /// Appends a client's batch at the log end in the current epoch; returns its base and end
    /// offsets. The caller checked that this replica leads.
    pub fn append_batch(&mut self, header: Header, bytes: &[u8]) -> io::Result<(i64, i64)> {
        let base = self.log.end_offset();
        let epoch = self.durable.epoch;
        let entry = Entry {
            base_offset: base,
            epoch,
            payload: Payload::Batch { bytes: batch::stamp(bytes, base, epoch), header },
        };
        self.log.append(entry)?;
        self.producers.record(&header, base);
        self.advance_commit();
        Ok((base, base + header.offsets()))
    }

    /// Moves the commit point to the last entry of the current epoch that enough replicas
    /// hold. Returns whether it moved.
    pub fn advance_commit(&mut self) -> bool {
        let Role::Leader { progress } = &self.role else { return false };
        let required = self.required();
        for n in (self.commit + 1..=self.log.len()).rev() {
            if self.log.epoch_of(n) != self.durable.epoch {
                break;
            }
            let holders = 1 + progress.values().filter(|p| p.matched >= n).count();
            if holders >= required {
                self.commit = n;
                return true;
            }
        }
        false
    }

    /// The next message for follower `peer`: entries it lacks, or an empty one when
    /// `heartbeat` has passed since the last. `None` when there is nothing to send.
    pub fn append_request(
        &mut self,
        peer: u64,
        now: Instant,
        heartbeat: Duration,
    ) -> Option<(AppendReq, Vec<u8>, Sent)> {
        let isr = self.isr(now);
        let Role::Leader { progress } = &mut self.role else { return None };
        let p = progress.get_mut(&peer)?;
        let len = self.log.len();
        let next = p.next.min(len);
        if next == len && p.last_sent.is_some_and(|t| now.saturating_duration_since(t) < heartbeat) {
            return None;
        }
        p.last_sent = Some(now);
        let mut entries = Vec::new();
        let mut blob = Vec::new();
        for e in &self.log.entries()[next..] {
            if !entries.is_empty() && blob.len() + e.bytes().len() > APPEND_MAX_BYTES {
                break;
            }
            entries.push(WireEntry {
                base_offset: e.base_offset,
                epoch: e.epoch,
                len: e.bytes().len() as u32,
                marker: e.is_marker(),
            });
            blob.extend_from_slice(e.bytes());
        }
        let sent = Sent { epoch: self.durable.epoch, prev_len: next, count: entries.len(), leader_len: len, at: now };
        let req = AppendReq {
            topic: self.spec.topic.clone(),
            partition: self.spec.index,
            epoch: self.durable.epoch,
            leader: self.spec.me,
            prev_len: next,
            prev_epoch: self.log.epoch_of(next),
            commit: self.commit,
            isr,
            entries,
        };
        Some((req, blob, sent))
    }

    /// A follower's answer to what [`Partition::append_request`] sent. Returns whether the
    /// commit point or the leadership changed.
    pub fn on_append_reply(&mut self, peer: u64, sent: Sent, reply: AppendReply, now: Instant) -> io::Result<bool> {
        if let AppendReply::Stale { epoch, leader } = reply {
            if epoch > self.durable.epoch {
                self.follow(epoch, leader, now)?;
                return Ok(true);
            }
            return Ok(false);
        }
        if sent.epoch != self.durable.epoch {
            return Ok(false);
        }
        let Role::Leader { progress } = &mut self.role else { return Ok(false) };
        let Some(p) = progress.get_mut(&peer) else { return Ok(false) };
        match reply {
            AppendReply::Ok { len } => {
                p.matched = p.matched.max(len);
                p.next = len;
                if len >= sent.leader_len {
                    p.caught_up_at = Some(sent.at);
                }
                Ok(self.advance_commit())
            }
            AppendReply::Diverged { len, conflict_first } => {
                // Step back: to the follower's end, or to the first entry of the epoch that
                // conflicts; always before the entry that did not match.
                let back = conflict_first.unwrap_or(len).min(len);
                p.next = back.min(sent.prev_len.saturating_sub(1));
                p.matched = p.matched.min(p.next);
                p.last_sent = None;
                Ok(false)
            }
            AppendReply::Stale { .. } | AppendReply::UnknownPartition => Ok(false),
        }
    }

    /// Stops leading without naming a successor (its log cannot take writes: a full disk):
    /// the followers stop hearing it and elect another. Kept in memory only, since persisting
    /// may fail for the same reason; a restart starts as a follower anyway.
    pub fn resign(&mut self, now: Instant) {
        if self.is_leader() {
            self.role = Role::Follower;
            self.durable.leader = None;
            self.heard_at = now;
        }
    }

    /// Takes over as leader of `epoch` (won an election): persists, appends a marker of the
    /// new epoch and starts replicating from its own log end.
    pub fn become_leader(&mut self, epoch: i32) -> io::Result<()> {
        self.durable.epoch = epoch;
        self.durable.leader = Some(self.spec.me);
        self.persist()?;
        let marker = Entry { base_offset: self.log.end_offset(), epoch, payload: Payload::Marker };
        self.log.append(marker)?;
        self.role = Role::Leader { progress: self.fresh_progress() };
        self.advance_commit();
        Ok(())
    }

    /// Follows `leader` at `epoch` (stepping down if leading).
    fn follow(&mut self, epoch: i32, leader: Option<u64>, now: Instant) -> io::Result<()> {
        self.durable.epoch = epoch;
        self.durable.leader = leader.filter(|l| *l != self.spec.me);
        self.role = Role::Follower;
        self.heard_at = now;
        self.persist()
    }

    // ---- follower ----

    /// A leader's entries (the blob already split into `entries`).
    pub fn on_append(&mut self, req: &AppendReq, entries: Vec<Entry>, now: Instant) -> io::Result<AppendReply> {
        if req.epoch < self.durable.epoch || (req.epoch == self.durable.epoch && self.is_leader()) {
            return Ok(AppendReply::Stale { epoch: self.durable.epoch, leader: self.leader() });
        }
        if req.epoch > self.durable.epoch || self.durable.leader != Some(req.leader) || self.is_leader() {
            self.follow(req.epoch, Some(req.leader), now)?;
        }
        self.heard_at = now;
        self.told_isr = req.isr.clone();
        let len = self.log.len();
        if len < req.prev_len {
            return Ok(AppendReply::Diverged { len, conflict_first: None });
        }
        if req.prev_len > 0 && self.log.epoch_of(req.prev_len) != req.prev_epoch {
            let conflict = self.log.epoch_of(req.prev_len);
            let mut first = req.prev_len - 1;
            while first > 0 && self.log.epoch_of(first) == conflict {
                first -= 1;
            }
            return Ok(AppendReply::Diverged { len, conflict_first: Some(first) });
        }
        for (k, entry) in entries.into_iter().enumerate() {
            let at = req.prev_len + k;
            if at < self.log.len() {
                if self.log.entries()[at].epoch == entry.epoch {
                    continue;
                }
                self.log.truncate(at)?;
                self.producers = Producers::rebuild(self.log.entries());
            }
            if let Payload::Batch { header, .. } = &entry.payload {
                self.producers.record(header, entry.base_offset);
            }
            self.log.append(entry)?;
        }
        let matched = req.prev_len + req.entries.len();
        self.commit = self.commit.max(req.commit.min(matched)).min(self.log.len());
        Ok(AppendReply::Ok { len: matched })
    }

    // ---- elections ----

    /// Stands for election: votes for itself in a new epoch (persisted) and returns the
    /// request to send to the other replicas.
    pub fn stand(&mut self, now: Instant) -> io::Result<VoteReq> {
        let epoch = self.durable.epoch.max(self.durable.voted.map_or(0, |(e, _)| e)) + 1;
        self.durable.voted = Some((epoch, self.spec.me));
        self.persist()?;
        self.voted_at = now;
        Ok(VoteReq {
            topic: self.spec.topic.clone(),
            partition: self.spec.index,
            epoch,
            candidate: self.spec.me,
            last_epoch: self.log.last_epoch(),
            len: self.log.len(),
        })
    }

    /// A candidate's request for this replica's vote.
    pub fn on_vote(&mut self, req: &VoteReq, now: Instant) -> io::Result<VoteReply> {
        let grant = grant_vote(self, req, now);
        if grant {
            self.durable.voted = Some((req.epoch, req.candidate));
            self.persist()?;
            self.voted_at = now;
        }
        Ok(VoteReply { granted: grant, epoch: self.durable.epoch })
    }

    /// Won the votes of `epoch`: leads, unless something newer happened meanwhile.
    pub fn win(&mut self, epoch: i32) -> io::Result<bool> {
        if self.durable.epoch >= epoch || self.durable.voted != Some((epoch, self.spec.me)) {
            return Ok(false);
        }
        self.become_leader(epoch)?;
        Ok(true)
    }
}

/// The vote rule: a newer epoch than any this replica followed or voted in for someone else,
/// no leader of its own it still hears (nor leading itself), and a candidate log at least as
/// up to date (last epoch, then length).
pub fn grant_vote(p: &Partition, req: &VoteReq, now: Instant) -> bool {
    if req.epoch <= p.durable.epoch || p.is_leader() {
        return false;
    }
    if let Some((e, c)) = p.durable.voted {
        if e > req.epoch || (e == req.epoch && c != req.candidate) {
            return false;
        }
    }
    let hears_leader = p.durable.leader.is_some_and(|l| l != req.candidate)
        && now.saturating_duration_since(p.heard_at) < ELECTION_TIMEOUT;
    if hears_leader {
        return false;
    }
    (req.last_epoch, req.len) >= (p.log.last_epoch(), p.log.len())
}

/// Writes `path` through a temporary file and a rename, so a crash leaves the old or the new.
pub fn write_atomically(path: &Path, data: &[u8], fsync: bool) -> io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(data)?;
    if fsync {
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

/// Splits a replication blob into entries as `wire` describes them.
pub fn entries_from_wire(wire: &[WireEntry], blob: &Bytes) -> Result<Vec<Entry>, String> {
    let mut at = 0usize;
    let mut out = Vec::with_capacity(wire.len());
    for w in wire {
        if w.marker {
            out.push(Entry { base_offset: w.base_offset, epoch: w.epoch, payload: Payload::Marker });
            continue;
        }
        let end = at + w.len as usize;
        if end > blob.len() {
            return Err("replication message shorter than its entries".into());
        }
        out.push(Entry::batch(w.base_offset, w.epoch, blob.slice(at..end)).map_err(|e| e.to_string())?);
        at = end;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(dir: &Path, me: u64) -> PartitionSpec {
        PartitionSpec {
            topic: "t".into(),
            index: 0,
            me,
            replicas: vec![1, 2, 3],
            min_isr: 2,
            dir: dir.join(format!("n{me}")),
            log: LogOptions { fsync: false, drop_on_open: 0 },
        }
    }

    /// Three replicas of one partition, with node 1 leading at epoch 0.
    fn trio(dir: &Path, now: Instant) -> Vec<Partition> {
        (1..=3).map(|me| Partition::open(spec(dir, me), now).unwrap()).collect()
    }

    fn produce(p: &mut Partition, seq: i32) -> (i64, i64) {
        let b = batch::sample(1, 7, 0, seq);
        p.append_batch(batch::header(&b).unwrap(), &b).unwrap()
    }

    /// One replication round from `leader` (index) to `follower` (index).
    fn replicate(ps: &mut [Partition], leader: usize, follower: usize, now: Instant) {
        let peer = ps[follower].spec.me;
        let Some((req, blob, sent)) = ps[leader].append_request(peer, now, Duration::ZERO) else { return };
        let entries = entries_from_wire(&req.entries, &Bytes::from(blob)).unwrap();
        let reply = ps[follower].on_append(&req, entries, now).unwrap();
        ps[leader].on_append_reply(peer, sent, reply, now).unwrap();
    }

    #[test]
    fn commits_once_a_majority_holds_an_entry() {
        let dir = tempfile::tempdir().unwrap();
        let now = Instant::now();
        let mut ps = trio(dir.path(), now);
        assert!(ps[0].is_leader() && !ps[1].is_leader());
        let (_, end) = produce(&mut ps[0], 0);
        assert_eq!((end, ps[0].high_watermark()), (1, 0));
        replicate(&mut ps, 0, 1, now);
        assert_eq!(ps[0].high_watermark(), 1);
        assert_eq!(ps[0].isr(now), vec![1, 2]);
        assert_eq!(ps[0].isr(now + ISR_LAG), vec![1]);
    }

    #[test]
    fn a_new_leader_keeps_committed_entries_and_followers_drop_uncommitted_ones() {
        let dir = tempfile::tempdir().unwrap();
        let now = Instant::now();
        let mut ps = trio(dir.path(), now);
        produce(&mut ps[0], 0);
        replicate(&mut ps, 0, 1, now); // committed on 1 and 2
        produce(&mut ps[0], 1); // only on 1: never acknowledged
        let later = now + ELECTION_TIMEOUT * 2;
        // Node 3 is behind: node 2 refuses it; node 2 wins with node 3's vote.
        let req = ps[2].stand(later).unwrap();
        assert!(!ps[1].on_vote(&req, later).unwrap().granted);
        // Node 3 voted for itself in epoch 1: node 2 needs epoch 2.
        let req = ps[1].stand(later).unwrap();
        assert!(!ps[2].on_vote(&req, later).unwrap().granted);
        let req = ps[1].stand(later).unwrap();
        assert_eq!(req.epoch, 2);
        assert!(ps[2].on_vote(&req, later).unwrap().granted);
        assert!(ps[1].win(req.epoch).unwrap());
        // The old leader still leads epoch 0 until it hears of epoch 2.
        for _ in 0..2 {
            replicate(&mut ps, 1, 2, later); // the first finds node 3 behind
        }
        assert_eq!(ps[1].high_watermark(), 1, "committed entry kept");
        assert_eq!(ps[2].log.len(), 2, "the entry and the new epoch's marker");
        replicate(&mut ps, 0, 1, later); // the old leader's message is refused as stale
        assert!(!ps[0].is_leader());
        for _ in 0..3 {
            replicate(&mut ps, 1, 0, later);
        }
        assert_eq!(ps[0].log.end_offset(), 1, "the unacknowledged tail is gone");
        assert_eq!(ps[0].log.len(), ps[1].log.len());
    }
}
