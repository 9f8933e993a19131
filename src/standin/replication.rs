//! Replication over the WAL links. Each node keeps one connection to every peer, dialled
//! through the peer's `wal` address in its own config file (its outgoing Toxiproxy proxy, so
//! faults cut it), and speaks request/answer in lock step on it: topic syncs (every second),
//! a partition leader's appends (new entries at once, an empty one as heartbeat every 100 ms,
//! carrying the commit point and the ISR), and a candidate's vote requests. An answer that does
//! not come within a second drops the connection; a new one is dialled.
//!
//! Frame: `u32` length of the rest, `u32` length of a JSON message, the JSON, then the raw
//! batch bytes the message's entries describe.

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

use super::broker::{Broker, LeaderClaim, TopicMeta};
use super::partition::entries_from_wire;

/// An idle leader sends each follower an empty append this often.
pub const HEARTBEAT: Duration = Duration::from_millis(100);
/// An answer later than this drops the connection.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(1);
/// Topics are exchanged this often on every link.
pub const SYNC_EVERY: Duration = Duration::from_secs(1);
const MAX_FRAME: usize = 256 << 20;

/// One log entry in a replication message; its bytes follow the JSON in the frame.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireEntry {
    pub base_offset: i64,
    pub epoch: i32,
    pub len: u32,
    pub marker: bool,
}

/// A leader's entries for one follower (Raft's AppendEntries).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendReq {
    pub topic: String,
    pub partition: i32,
    pub epoch: i32,
    pub leader: u64,
    /// Entries before these: the follower must hold as many, the last of `prev_epoch`.
    pub prev_len: usize,
    pub prev_epoch: i32,
    /// Entries the leader knows committed.
    pub commit: usize,
    pub isr: Vec<u64>,
    pub entries: Vec<WireEntry>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AppendReply {
    /// The follower now holds the leader's first `len` entries.
    Ok { len: usize },
    /// The entry before these does not match: the follower holds `len` entries; its
    /// conflicting epoch starts at `conflict_first`.
    Diverged { len: usize, conflict_first: Option<usize> },
    /// The follower knows a newer epoch.
    Stale { epoch: i32, leader: Option<u64> },
    /// The follower does not know the partition yet (the next sync tells it).
    UnknownPartition,
}

/// A candidate asking for a vote (Raft's RequestVote).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoteReq {
    pub topic: String,
    pub partition: i32,
    pub epoch: i32,
    pub candidate: u64,
    pub last_epoch: i32,
    pub len: usize,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoteReply {
    pub granted: bool,
    pub epoch: i32,
}

#[derive(Debug, Serialize, Deserialize)]
enum WalRequest {
    Sync {
        from: u64,
        topics: Vec<TopicMeta>,
        #[serde(default)]
        claims: Vec<LeaderClaim>,
    },
    Append(AppendReq),
    Vote(VoteReq),
}

#[derive(Debug, Serialize, Deserialize)]
enum WalReply {
    Sync {
        topics: Vec<TopicMeta>,
        #[serde(default)]
        claims: Vec<LeaderClaim>,
    },
    Append(AppendReply),
    Vote(VoteReply),
    Error(String),
}

/// A vote request for one peer, answered through `reply` (dropped when it could not be asked).
pub struct VoteCall {
    pub req: VoteReq,
    pub deadline: Instant,
    pub reply: oneshot::Sender<VoteReply>,
}

/// The way to each peer's link, for vote requests.
#[derive(Clone, Default)]
pub struct Links {
    votes: BTreeMap<u64, mpsc::Sender<VoteCall>>,
}

impl Links {
    /// Queues a vote request for `peer`; false when the link cannot take it now.
    pub fn ask(&self, peer: u64, call: VoteCall) -> bool {
        self.votes.get(&peer).is_some_and(|tx| tx.try_send(call).is_ok())
    }
}

/// Starts one link per peer.
pub fn start(broker: &Arc<Broker>) -> Links {
    let mut links = Links::default();
    for peer in broker.config.others() {
        let (tx, rx) = mpsc::channel(16);
        links.votes.insert(peer.id, tx);
        tokio::spawn(link(broker.clone(), peer.id, peer.wal.clone(), rx));
    }
    links
}

/// Serves peers' links on the WAL port.
pub async fn serve(listener: TcpListener, broker: Arc<Broker>) {
    while let Ok((s, _)) = listener.accept().await {
        let _ = s.set_nodelay(true);
        tokio::spawn(answer(s, broker.clone()));
    }
}

async fn answer(mut s: TcpStream, broker: Arc<Broker>) {
    while let Ok((req, blob)) = read_frame::<WalRequest>(&mut s).await {
        let reply = handle(&broker, req, blob);
        if write_frame(&mut s, &reply, &[]).await.is_err() {
            return;
        }
    }
}

fn handle(broker: &Broker, req: WalRequest, blob: Bytes) -> WalReply {
    let now = Instant::now();
    let mut st = broker.lock();
    let reply = match req {
        WalRequest::Sync { from, topics, claims } => {
            st.peer_topics.insert(from, topics.iter().map(|t| t.name.clone()).collect());
            if let Err(e) = broker.add_topics(&mut st, topics) {
                return WalReply::Error(format!("node {}: cannot add topics: {e}", broker.id()));
            }
            broker.hear_claims(&mut st, claims);
            WalReply::Sync { topics: st.topics.values().cloned().collect(), claims: broker.claims(&st) }
        }
        WalRequest::Append(req) => match st.partitions.get_mut(&(req.topic.clone(), req.partition)) {
            None => WalReply::Append(AppendReply::UnknownPartition),
            Some(p) => match entries_from_wire(&req.entries, &blob) {
                Err(e) => WalReply::Error(e),
                Ok(entries) => match p.on_append(&req, entries, now) {
                    Ok(r) => WalReply::Append(r),
                    Err(e) => {
                        WalReply::Error(format!("node {}: append to {}: {e}", broker.id(), p.log.path().display()))
                    }
                },
            },
        },
        WalRequest::Vote(req) => match st.partitions.get_mut(&(req.topic.clone(), req.partition)) {
            None => WalReply::Vote(VoteReply { granted: false, epoch: -1 }),
            Some(p) => match p.on_vote(&req, now) {
                Ok(r) => WalReply::Vote(r),
                Err(e) => WalReply::Error(format!("node {}: vote: {e}", broker.id())),
            },
        },
    };
    drop(st);
    broker.bump();
    reply
}

/// This node's link to `peer`: dials, runs a session until it fails, dials again.
async fn link(broker: Arc<Broker>, peer: u64, addr: String, mut votes: mpsc::Receiver<VoteCall>) {
    loop {
        if let Ok(Ok(mut s)) = tokio::time::timeout(CALL_TIMEOUT, TcpStream::connect(&addr)).await {
            let _ = s.set_nodelay(true);
            match session(&broker, peer, &mut s, &mut votes).await {
                Ok(()) => return,
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {}
                Err(_) => {}
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn call(s: &mut TcpStream, req: &WalRequest, blob: &[u8]) -> io::Result<WalReply> {
    write_frame(s, req, blob).await?;
    match tokio::time::timeout(CALL_TIMEOUT, read_frame::<WalReply>(s)).await {
        Ok(Ok((WalReply::Error(e), _))) => Err(io::Error::other(e)),
        Ok(r) => r.map(|(reply, _)| reply),
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "no answer on the WAL link")),
    }
}

/// One connection's life: sync, votes, appends, then wait for news or the next heartbeat.
/// Returns `Ok` only when the node is shutting down (the vote channel closed).
async fn session(
    broker: &Arc<Broker>,
    peer: u64,
    s: &mut TcpStream,
    votes: &mut mpsc::Receiver<VoteCall>,
) -> io::Result<()> {
    let mut progress = broker.watch();
    let mut last_sync: Option<Instant> = None;
    let mut pending: Option<VoteCall> = None;
    loop {
        progress.borrow_and_update();
        if last_sync.is_none_or(|t| t.elapsed() >= SYNC_EVERY) {
            let (topics, claims) = {
                let st = broker.lock();
                (st.topics.values().cloned().collect(), broker.claims(&st))
            };
            let sync = WalRequest::Sync { from: broker.id(), topics, claims };
            if let WalReply::Sync { topics, claims } = call(s, &sync, &[]).await? {
                let mut st = broker.lock();
                st.peer_topics.insert(peer, topics.iter().map(|t| t.name.clone()).collect());
                if let Err(e) = broker.add_topics(&mut st, topics) {
                    println!("stand-in node {}: cannot add topics from node {peer}: {e}", broker.id());
                }
                broker.hear_claims(&mut st, claims);
            }
            last_sync = Some(Instant::now());
        }
        while let Some(c) = pending.take().or_else(|| votes.try_recv().ok()) {
            if Instant::now() > c.deadline {
                continue;
            }
            if let WalReply::Vote(r) = call(s, &WalRequest::Vote(c.req.clone()), &[]).await? {
                let _ = c.reply.send(r);
            }
        }
        loop {
            let work: Vec<_> = {
                let mut st = broker.lock();
                let now = Instant::now();
                st.partitions
                    .iter_mut()
                    .filter_map(|(key, p)| p.append_request(peer, now, HEARTBEAT).map(|w| (key.clone(), w)))
                    .collect()
            };
            if work.is_empty() {
                break;
            }
            for (key, (req, blob, sent)) in work {
                let reply = call(s, &WalRequest::Append(req), &blob).await?;
                let WalReply::Append(reply) = reply else { continue };
                let mut st = broker.lock();
                if let Some(p) = st.partitions.get_mut(&key) {
                    match p.on_append_reply(peer, sent, reply, Instant::now()) {
                        Ok(true) => broker.bump(),
                        Ok(false) => {}
                        Err(e) => println!("stand-in node {}: {}-{}: {e}", broker.id(), key.0, key.1),
                    }
                }
            }
        }
        tokio::select! {
            _ = progress.changed() => {}
            c = votes.recv() => match c {
                Some(c) => pending = Some(c),
                None => return Ok(()),
            },
            _ = tokio::time::sleep(HEARTBEAT) => {}
        }
    }
}

async fn write_frame<T: Serialize>(s: &mut TcpStream, msg: &T, blob: &[u8]) -> io::Result<()> {
    let json = serde_json::to_vec(msg)?;
    let mut out = Vec::with_capacity(8 + json.len() + blob.len());
    out.extend_from_slice(&((4 + json.len() + blob.len()) as u32).to_be_bytes());
    out.extend_from_slice(&(json.len() as u32).to_be_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(blob);
    s.write_all(&out).await
}

async fn read_frame<T: DeserializeOwned>(s: &mut TcpStream) -> io::Result<(T, Bytes)> {
    let len = s.read_u32().await? as usize;
    if !(4..=MAX_FRAME).contains(&len) {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("WAL frame of {len} bytes")));
    }
    let mut buf = vec![0u8; len];
    s.read_exact(&mut buf).await?;
    let json_len = u32::from_be_bytes(buf[..4].try_into().expect("4 bytes")) as usize;
    if 4 + json_len > len {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "WAL frame shorter than its message"));
    }
    let msg = serde_json::from_slice(&buf[4..4 + json_len])?;
    let blob = Bytes::from(buf).slice(4 + json_len..);
    Ok((msg, blob))
}
