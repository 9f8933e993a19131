//! The transactional workload (rdkafka): asks a broker whether it advertises the transaction
//! APIs at all, runs transactional producers that each loop begin → 2..=4 writes over
//! different partitions → commit (or, every 4th transaction, abort) and record every
//! transaction with its outcome, a live `read_committed` reader, and the final
//! `read_committed` read past a closing transaction. The history goes to `checker::txn`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kafka_protocol::messages::ApiKey;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::history::txn::{
    txn_value_of, ProducerRestart, Txn, TxnFinalRead, TxnHistory, TxnOutcome, TxnRead, TxnSupport, TxnWrite,
};
use crate::history::ReaderEvent;
use crate::partition_reader::PartitionReader;

/// What the transactional workload does.
#[derive(Clone, Debug)]
pub struct TxnConfig {
    pub bootstrap: String,
    /// An existing topic (the workload does not create it).
    pub topic: String,
    pub partitions: i32,
    /// Transactional producers, numbered from 0.
    pub producers: u32,
    /// Prefix of every `transactional.id` (`<run_id>-p<producer>`, `<run_id>-closing`): unique
    /// per run, so no run fences another's producers.
    pub run_id: String,
    /// `transaction.timeout.ms` (and `message.timeout.ms`); also how long a commit or abort is
    /// retried before its outcome is recorded as indeterminate.
    pub transaction_timeout: Duration,
    /// The timeout of each `init_transactions`, `commit_transaction` and `abort_transaction`.
    pub call_timeout: Duration,
    /// Pause between one producer's transactions.
    pub pause: Duration,
    /// Extra librdkafka settings for every client.
    pub client_extra: Vec<(String, String)>,
}

impl TxnConfig {
    pub fn new(bootstrap: impl Into<String>, topic: impl Into<String>) -> TxnConfig {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
        TxnConfig {
            bootstrap: bootstrap.into(),
            topic: topic.into(),
            partitions: 3,
            producers: 2,
            run_id: format!("chronik-chaos-{}-{:x}", std::process::id(), nanos & 0xffff_ffff),
            transaction_timeout: Duration::from_secs(10),
            call_timeout: Duration::from_secs(5),
            pause: Duration::from_millis(10),
            client_extra: Vec::new(),
        }
    }

    fn client(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap).set("client.id", "chronik-chaos-txn");
        for (k, v) in &self.client_extra {
            c.set(k, v);
        }
        c
    }

    fn reader_client(&self) -> ClientConfig {
        let mut c = self.client();
        c.set("isolation.level", "read_committed");
        c
    }

    fn producer_client(&self, transactional_id: &str) -> ClientConfig {
        let mut c = self.client();
        let timeout = self.transaction_timeout.as_millis().to_string();
        c.set("transactional.id", transactional_id)
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("transaction.timeout.ms", &timeout)
            // librdkafka requires message.timeout.ms <= transaction.timeout.ms.
            .set("message.timeout.ms", &timeout)
            .set("linger.ms", "5");
        c
    }
}

/// Asks the brokers of `bootstrap` in turn for ApiVersions (v0, which every Kafka broker
/// answers) and reports the highest version of each API transactions need. `Err`: no broker
/// answered. A server without the APIs makes a transactional scenario not applicable (see
/// [`TxnSupport::supported`]), never a pass.
pub async fn transactions_supported(bootstrap: &str, timeout: Duration) -> Result<TxnSupport, String> {
    let mut errors = Vec::new();
    for addr in bootstrap.split(',').map(|a| a.trim()).filter(|a| !a.is_empty()) {
        let addr = addr.rsplit("://").next().unwrap_or(addr);
        match tokio::time::timeout(timeout, api_versions(addr)).await {
            Ok(Ok(versions)) => return Ok(support_from(addr, &versions)),
            Ok(Err(e)) => errors.push(format!("{addr}: {e}")),
            Err(_) => errors.push(format!("{addr}: no ApiVersions answer within {timeout:?}")),
        }
    }
    Err(format!(
        "no broker of {bootstrap:?} answered ApiVersions ({}); check that the cluster is up",
        errors.join("; ")
    ))
}

/// Where every transaction and read is recorded, with µs since `start`.
#[derive(Debug)]
pub struct TxnRecorder {
    start: Instant,
    txns: Mutex<Vec<Txn>>,
    reads: Mutex<Vec<TxnRead>>,
    final_reads: Mutex<Vec<TxnRead>>,
    reader_events: Mutex<Vec<ReaderEvent>>,
    restarts: Mutex<Vec<ProducerRestart>>,
    /// Delivery reports: value → (partition, offset). Filled in on librdkafka's thread, joined
    /// with the transactions when the history is taken.
    delivered: Mutex<HashMap<String, (i32, i64)>>,
}

impl TxnRecorder {
    pub fn new(start: Instant) -> Arc<TxnRecorder> {
        Arc::new(TxnRecorder {
            start,
            txns: Mutex::default(),
            reads: Mutex::default(),
            final_reads: Mutex::default(),
            reader_events: Mutex::default(),
            restarts: Mutex::default(),
            delivered: Mutex::default(),
        })
    }

    pub fn now_us(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }

    /// Committed transactions so far (for progress lines).
    pub fn committed(&self) -> usize {
        self.txns.lock().unwrap().iter().filter(|t| t.outcome == TxnOutcome::Committed).count()
    }

    /// Everything recorded so far as a history (sorted by time; delivery offsets filled in).
    pub fn history(&self, producers: u32, support: TxnSupport, final_read: TxnFinalRead) -> TxnHistory {
        let mut txns = self.txns.lock().unwrap().clone();
        let delivered = self.delivered.lock().unwrap();
        for w in txns.iter_mut().flat_map(|t| t.writes.iter_mut()) {
            if let Some((p, o)) = delivered.get(&w.value) {
                if *p == w.partition {
                    w.offset = Some(*o);
                }
            }
        }
        txns.sort_by_key(|t| (t.invoked_us, t.producer, t.txn));
        let sorted = |m: &Mutex<Vec<TxnRead>>| {
            let mut v = m.lock().unwrap().clone();
            v.sort_by_key(|r| r.at_us);
            v
        };
        TxnHistory {
            producers,
            isolation: Default::default(),
            txns,
            reads: sorted(&self.reads),
            final_reads: sorted(&self.final_reads),
            final_read,
            support,
            restarts: self.restarts.lock().unwrap().clone(),
            reader_events: self.reader_events.lock().unwrap().clone(),
        }
    }

    fn txn(&self, t: Txn) {
        self.txns.lock().unwrap().push(t);
    }
}

/// Running transactional producers and the live `read_committed` reader.
pub struct TxnWorkload {
    tasks: crate::workload::Tasks,
    recorder: Arc<TxnRecorder>,
}

impl TxnWorkload {
    /// Starts `cfg.producers` transactional producers and one live reader, recording into
    /// `recorder`. The topic must exist.
    pub fn start(cfg: &TxnConfig, recorder: Arc<TxnRecorder>) -> Result<TxnWorkload, String> {
        let mut tasks = crate::workload::Tasks::default();
        let stop = tasks.token();
        for p in 0..cfg.producers {
            let producer = new_producer(cfg, p, &recorder)?;
            let (cfg, rec, stop) = (cfg.clone(), recorder.clone(), stop.clone());
            tasks.push(tokio::task::spawn_blocking(move || produce_loop(p, producer, &cfg, &rec, &stop)));
        }
        let partitions: Vec<i32> = (0..cfg.partitions).collect();
        let reader = PartitionReader::start(cfg.reader_client(), &cfg.topic, &partitions)
            .map_err(|e| format!("live read_committed reader: {e}"))?;
        tasks.push(tokio::spawn(read_loop(reader, recorder.clone(), stop.clone())));
        Ok(TxnWorkload { tasks, recorder })
    }

    /// Stops after each producer's current transaction has ended (bounded by the transaction
    /// timeout) and stops the live reader. (Dropped without this, it stops at once, producers
    /// after their current transaction.)
    pub async fn stop(mut self) -> Arc<TxnRecorder> {
        self.tasks.stop().await;
        self.recorder.clone()
    }
}

/// The final read: first one closing transaction commits one record per partition (recorded
/// as producer `cfg.producers`, transaction 0); then a fresh `read_committed` reader reads
/// every partition from the beginning until it reaches the closing record (so it has passed
/// every earlier transaction, whose fate is then decided) or `deadline` passes. If the closing
/// transaction fails, the targets are the highest offsets of committed writes (`closed = false`).
pub async fn final_read(cfg: &TxnConfig, rec: &Arc<TxnRecorder>, deadline: Duration) -> Result<TxnFinalRead, String> {
    let mut errors = Vec::new();
    let closing = {
        let (cfg, rec) = (cfg.clone(), rec.clone());
        tokio::task::spawn_blocking(move || close(&cfg, &rec)).await.map_err(|e| format!("closing task: {e}"))?
    };
    let (closed, targets) = match closing {
        Ok(targets) => (true, targets),
        Err(e) => {
            errors.push(format!("closing transaction: {e}"));
            (false, highest_committed(cfg, rec))
        }
    };
    let last_stable = last_stable_offsets(cfg, cfg.call_timeout).await;
    let partitions: Vec<i32> = (0..cfg.partitions).collect();
    let reader = Arc::new(
        PartitionReader::start(cfg.reader_client(), &cfg.topic, &partitions)
            .map_err(|e| format!("final read_committed reader: {e}"))?,
    );
    let started = Instant::now();
    let mut reached: BTreeMap<i32, i64> = BTreeMap::new();
    let done =
        |reached: &BTreeMap<i32, i64>| targets.iter().all(|(p, t)| *t < 0 || reached.get(p).is_some_and(|r| r >= t));
    while !done(&reached) && started.elapsed() < deadline {
        let (r, c) = (reader.clone(), rec.clone());
        let (seen, error) = tokio::task::spawn_blocking(move || poll_batch(&r, &c, true, Duration::from_millis(200)))
            .await
            .map_err(|e| format!("final read task: {e}"))?;
        for (p, o) in seen {
            let e = reached.entry(p).or_insert(o);
            *e = (*e).max(o);
        }
        if let Some(e) = error {
            if errors.len() < 10 && !errors.contains(&e) {
                errors.push(e);
            }
        }
    }
    Ok(TxnFinalRead { complete: done(&reached), closed, targets, reached, last_stable, errors })
}

/// The last stable offset of each partition, from a `read_committed` ListOffsets (librdkafka
/// asks with the client's isolation level); `None` where the leader would not say.
pub async fn last_stable_offsets(cfg: &TxnConfig, timeout: Duration) -> BTreeMap<i32, Option<i64>> {
    let (client, topic, partitions) = (cfg.reader_client(), cfg.topic.clone(), cfg.partitions);
    tokio::task::spawn_blocking(move || {
        let consumer: Option<BaseConsumer> = client.create().ok();
        (0..partitions)
            .map(|p| (p, consumer.as_ref().and_then(|c| c.fetch_watermarks(&topic, p, timeout).ok()).map(|(_, h)| h)))
            .collect()
    })
    .await
    .unwrap_or_default()
}

// ---- producers ----

/// The producers' context: records each delivery report's offset (librdkafka's thread).
struct TxnDelivery {
    rec: Arc<TxnRecorder>,
}

impl ClientContext for TxnDelivery {}

impl ProducerContext for TxnDelivery {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Ok(m) = result {
            if let Some(Ok(value)) = m.payload_view::<str>() {
                self.rec.delivered.lock().unwrap().insert(value.to_string(), (m.partition(), m.offset()));
            }
        }
    }
}

type TxnProducer = ThreadedProducer<TxnDelivery>;

fn transactional_id(cfg: &TxnConfig, producer: u32) -> String {
    if producer == cfg.producers {
        format!("{}-closing", cfg.run_id)
    } else {
        format!("{}-p{producer}", cfg.run_id)
    }
}

fn new_producer(cfg: &TxnConfig, p: u32, rec: &Arc<TxnRecorder>) -> Result<TxnProducer, String> {
    cfg.producer_client(&transactional_id(cfg, p))
        .create_with_context(TxnDelivery { rec: rec.clone() })
        .map_err(|e| format!("transactional producer {p}: {e}"))
}

/// `init_transactions` until it succeeds, retrying retriable errors until `deadline`.
fn init(producer: &TxnProducer, cfg: &TxnConfig, deadline: Instant) -> KafkaResult<()> {
    retry(deadline, || producer.init_transactions(cfg.call_timeout))
}

/// Replaces a producer: librdkafka documents a fatal error as "the producer is unusable";
/// re-initialising the same `transactional.id` fences the old one and aborts what it left open.
fn restart(
    p: u32,
    cfg: &TxnConfig,
    rec: &Arc<TxnRecorder>,
    error: String,
    stop: &CancellationToken,
) -> Option<TxnProducer> {
    rec.restarts.lock().unwrap().push(ProducerRestart { producer: p, at_us: rec.now_us(), error });
    while !stop.is_cancelled() {
        let result = new_producer(cfg, p, rec).and_then(|producer| {
            init(&producer, cfg, Instant::now() + cfg.transaction_timeout)
                .map(|()| producer)
                .map_err(|e| format!("init_transactions: {e}"))
        });
        match result {
            Ok(producer) => return Some(producer),
            Err(error) => {
                rec.restarts.lock().unwrap().push(ProducerRestart { producer: p, at_us: rec.now_us(), error });
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    }
    None
}

/// One producer: transactions until `stop`, each of 2..=4 writes starting at a partition that
/// moves on each time; every 4th (`txn % 4 == 3`) is aborted on purpose.
fn produce_loop(p: u32, producer: TxnProducer, cfg: &TxnConfig, rec: &Arc<TxnRecorder>, stop: &CancellationToken) {
    let mut producer = match init(&producer, cfg, Instant::now() + cfg.transaction_timeout) {
        Ok(()) => Some(producer),
        Err(e) => {
            drop(producer);
            restart(p, cfg, rec, format!("init_transactions: {e}"), stop)
        }
    };
    let parts = cfg.partitions.max(1) as u64;
    let mut txn = 0u64;
    while let Some(current) = producer.take() {
        if stop.is_cancelled() {
            break;
        }
        let n = 2 + txn % 3;
        let first = (p as u64 + txn) % parts;
        let plan: Vec<i32> = (0..n).map(|i| ((first + i) % parts) as i32).collect();
        let (t, broken) = run_txn(&current, p, txn, &plan, txn % 4 == 3, cfg, rec);
        rec.txn(t);
        txn += 1;
        producer = match broken {
            None => Some(current),
            Some(error) => {
                drop(current);
                restart(p, cfg, rec, error, stop)
            }
        };
        std::thread::sleep(cfg.pause);
    }
}

/// Runs one transaction writing `txn_value_of(p, txn, i)` to `plan[i]`, then commits (or
/// aborts when `abort`). Returns it with its outcome, and `Some(error)` when the producer
/// must be replaced (fatal error, or an end whose outcome librdkafka left open).
fn run_txn(
    producer: &TxnProducer,
    p: u32,
    txn: u64,
    plan: &[i32],
    abort: bool,
    cfg: &TxnConfig,
    rec: &TxnRecorder,
) -> (Txn, Option<String>) {
    let mut t = Txn {
        producer: p,
        txn,
        invoked_us: rec.now_us(),
        ended_us: None,
        completed_us: None,
        writes: Vec::new(),
        outcome: TxnOutcome::Committed,
    };
    let finish = |mut t: Txn, outcome: TxnOutcome, broken: Option<String>| {
        t.completed_us = Some(rec.now_us());
        t.outcome = outcome;
        (t, broken)
    };
    if let Err(e) = producer.begin_transaction() {
        // Only in a wrong state or after a fatal error: nothing was written.
        let error = format!("begin_transaction: {e}");
        return finish(t, TxnOutcome::Failed { error: error.clone() }, Some(error));
    }
    let mut send_error = None;
    for (i, partition) in plan.iter().enumerate() {
        let value = txn_value_of(p, txn, i as u32);
        let record = BaseRecord::<(), str, ()>::to(&cfg.topic).partition(*partition).payload(value.as_str());
        if let Err((e, _)) = producer.send(record) {
            // Not enqueued: not part of the transaction, not recorded as a write.
            send_error = Some(format!("send {value}: {e}"));
            break;
        }
        t.writes.push(TxnWrite { partition: *partition, value, index: i as u32, offset: None });
    }
    let deadline = Instant::now() + cfg.transaction_timeout;
    t.ended_us = Some(rec.now_us());
    if let Some(error) = send_error {
        // Commit is never asked for: definitely not committed, whatever the abort does.
        if let Some((_, fatal)) = producer.client().fatal_error() {
            t.ended_us = None;
            return finish(t, TxnOutcome::Failed { error: format!("{error} (fatal: {fatal})") }, Some(fatal));
        }
        return match retry(deadline, || producer.abort_transaction(cfg.call_timeout)) {
            Ok(()) => finish(t, TxnOutcome::Failed { error }, None),
            Err(a) => finish(t, TxnOutcome::Failed { error: format!("{error}; abort: {a}") }, Some(a.to_string())),
        };
    }
    if abort {
        // Let the writes reach the log first (abort would purge them from the local queue):
        // only markers then keep them from read_committed readers, which is what is tested.
        let _ = producer.flush(cfg.call_timeout);
        t.ended_us = Some(rec.now_us());
        return match retry(deadline, || producer.abort_transaction(cfg.call_timeout)) {
            Ok(()) => finish(t, TxnOutcome::Aborted, None),
            // Never committed (commit was not asked for), but the producer's state is unknown.
            Err(e) => finish(t, TxnOutcome::Failed { error: format!("abort: {e}") }, Some(e.to_string())),
        };
    }
    // rdkafka's commit flushes first; a flush that fails has not asked the broker to commit.
    let asked = std::cell::Cell::new(false);
    let commit = retry(deadline, || {
        let r = producer.commit_transaction(cfg.call_timeout);
        if !matches!(r, Err(KafkaError::Flush(_))) {
            asked.set(true);
        }
        r
    });
    match commit {
        Ok(()) => finish(t, TxnOutcome::Committed, None),
        Err(e) if requires_abort(&e) => {
            // librdkafka: an abortable error means the transaction must be aborted; once the
            // abort succeeds it is definitely not committed.
            let error = format!("commit: {e}");
            match retry(deadline, || producer.abort_transaction(cfg.call_timeout)) {
                Ok(()) => finish(t, TxnOutcome::Failed { error }, None),
                Err(a) => finish(t, TxnOutcome::Unknown { error: format!("{error}; abort: {a}") }, Some(a.to_string())),
            }
        }
        Err(e) if !asked.get() => {
            let error = format!("commit never sent: {e}");
            finish(t, TxnOutcome::Failed { error: error.clone() }, Some(error))
        }
        Err(e) => {
            let error = format!("commit: {e}");
            finish(t, TxnOutcome::Unknown { error: error.clone() }, Some(error))
        }
    }
}

/// Calls `op` again while librdkafka calls its error retriable (a timed-out commit or abort:
/// "call it again") and `deadline` has not passed.
fn retry(deadline: Instant, op: impl Fn() -> KafkaResult<()>) -> KafkaResult<()> {
    loop {
        match op() {
            Err(e) if retriable(&e) && Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            r => return r,
        }
    }
}

fn retriable(e: &KafkaError) -> bool {
    match e {
        KafkaError::Transaction(rd) => rd.is_retriable() && !rd.is_fatal() && !rd.txn_requires_abort(),
        KafkaError::Flush(_) => true,
        _ => false,
    }
}

fn requires_abort(e: &KafkaError) -> bool {
    matches!(e, KafkaError::Transaction(rd) if rd.txn_requires_abort() && !rd.is_fatal())
}

/// The closing transaction (producer `cfg.producers`): one record per partition, committed.
/// Returns the offset of each, which is the final read's target.
fn close(cfg: &TxnConfig, rec: &Arc<TxnRecorder>) -> Result<BTreeMap<i32, i64>, String> {
    let p = cfg.producers;
    let producer = new_producer(cfg, p, rec)?;
    init(&producer, cfg, Instant::now() + cfg.transaction_timeout).map_err(|e| format!("init_transactions: {e}"))?;
    let plan: Vec<i32> = (0..cfg.partitions).collect();
    let (t, _) = run_txn(&producer, p, 0, &plan, false, cfg, rec);
    // Dropping the producer joins its polling thread: every delivery report is in.
    drop(producer);
    let outcome = t.outcome.clone();
    let values: Vec<(i32, String)> = t.writes.iter().map(|w| (w.partition, w.value.clone())).collect();
    rec.txn(t);
    if outcome != TxnOutcome::Committed {
        return Err(format!("{outcome:?}"));
    }
    let delivered = rec.delivered.lock().unwrap();
    values
        .into_iter()
        .map(|(p, v)| match delivered.get(&v) {
            Some((dp, o)) if *dp == p && *o >= 0 => Ok((p, *o)),
            _ => Err(format!("no delivery offset for {v}")),
        })
        .collect()
}

/// Per partition, the highest delivered offset of a committed write (-1: none).
fn highest_committed(cfg: &TxnConfig, rec: &TxnRecorder) -> BTreeMap<i32, i64> {
    let mut out: BTreeMap<i32, i64> = (0..cfg.partitions).map(|p| (p, -1)).collect();
    let delivered = rec.delivered.lock().unwrap();
    for t in rec.txns.lock().unwrap().iter().filter(|t| t.outcome == TxnOutcome::Committed) {
        for w in &t.writes {
            if let Some((p, o)) = delivered.get(&w.value) {
                let e = out.entry(*p).or_insert(-1);
                *e = (*e).max(*o);
            }
        }
    }
    out
}

// ---- readers ----

async fn read_loop(reader: PartitionReader, rec: Arc<TxnRecorder>, stop: CancellationToken) {
    let reader = Arc::new(reader);
    while !stop.is_cancelled() {
        let (r, c) = (reader.clone(), rec.clone());
        if tokio::task::spawn_blocking(move || poll_batch(&r, &c, false, Duration::from_millis(100))).await.is_err() {
            break;
        }
    }
}

/// Polls up to 500 records (or until `wait` passes without one) and records them; an error a
/// partition gave instead is recorded as a reader event. Returns the places read and the error.
fn poll_batch(
    reader: &PartitionReader,
    rec: &TxnRecorder,
    final_read: bool,
    wait: Duration,
) -> (Vec<(i32, i64)>, Option<String>) {
    let mut seen = Vec::new();
    for _ in 0..500 {
        match reader.poll(wait) {
            Ok(Some((partition, offset, payload))) => {
                let value = String::from_utf8_lossy(&payload).into_owned();
                let read = TxnRead { partition, offset, value, at_us: rec.now_us() };
                if final_read { &rec.final_reads } else { &rec.reads }.lock().unwrap().push(read);
                seen.push((partition, offset));
            }
            Ok(None) => break,
            Err((partition, error)) => {
                let event = ReaderEvent { at_us: rec.now_us(), final_read, partition, error: error.clone() };
                rec.reader_events.lock().unwrap().push(event);
                return (seen, Some(error));
            }
        }
    }
    (seen, None)
}

// ---- ApiVersions ----

/// Kafka responses larger than this are not an ApiVersions answer.
const MAX_API_VERSIONS_RESPONSE: usize = 1 << 20;

/// One ApiVersions v0 round trip: api key → (min, max) version.
async fn api_versions(addr: &str) -> Result<BTreeMap<i16, (i16, i16)>, String> {
    let mut conn = tokio::net::TcpStream::connect(addr).await.map_err(|e| format!("connecting: {e}"))?;
    let correlation = fastrand::i32(1..);
    conn.write_all(&api_versions_request(correlation)).await.map_err(|e| format!("sending ApiVersions: {e}"))?;
    let mut size = [0u8; 4];
    conn.read_exact(&mut size).await.map_err(|e| format!("reading the ApiVersions answer: {e}"))?;
    let size = i32::from_be_bytes(size);
    if size < 4 || size as usize > MAX_API_VERSIONS_RESPONSE {
        return Err(format!("a response of size {size} is not an ApiVersions answer; is this a Kafka port?"));
    }
    let mut body = vec![0u8; size as usize];
    conn.read_exact(&mut body).await.map_err(|e| format!("reading the ApiVersions answer: {e}"))?;
    parse_api_versions_v0(correlation, &body)
}

/// ApiVersions v0: size, key, version 0, correlation id, client id, empty body.
fn api_versions_request(correlation: i32) -> Vec<u8> {
    const CLIENT_ID: &str = "chronik-chaos-txn";
    let mut body = Vec::new();
    body.extend_from_slice(&(ApiKey::ApiVersions as i16).to_be_bytes());
    body.extend_from_slice(&0i16.to_be_bytes());
    body.extend_from_slice(&correlation.to_be_bytes());
    body.extend_from_slice(&(CLIENT_ID.len() as i16).to_be_bytes());
    body.extend_from_slice(CLIENT_ID.as_bytes());
    let mut out = (body.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(&body);
    out
}

/// An ApiVersions v0 response after its size: correlation id, error code, then
/// `[api_key, min_version, max_version]`.
fn parse_api_versions_v0(correlation: i32, body: &[u8]) -> Result<BTreeMap<i16, (i16, i16)>, String> {
    let mut at = 0usize;
    let mut take = |n: usize| -> Result<&[u8], String> {
        let s = body.get(at..at + n).ok_or_else(|| "the ApiVersions answer is cut short".to_string())?;
        at += n;
        Ok(s)
    };
    let got = i32::from_be_bytes(take(4)?.try_into().expect("4 bytes"));
    if got != correlation {
        return Err(format!("ApiVersions answered with correlation id {got}, not {correlation}"));
    }
    let error = i16::from_be_bytes(take(2)?.try_into().expect("2 bytes"));
    if error != 0 {
        return Err(format!("ApiVersions v0 answered with error code {error}"));
    }
    let n = i32::from_be_bytes(take(4)?.try_into().expect("4 bytes"));
    let mut out = BTreeMap::new();
    for _ in 0..n.max(0) {
        let e = take(6)?;
        let i = |k: usize| i16::from_be_bytes([e[k], e[k + 1]]);
        out.insert(i(0), (i(2), i(4)));
    }
    Ok(out)
}

fn support_from(broker: &str, versions: &BTreeMap<i16, (i16, i16)>) -> TxnSupport {
    let max = |k: ApiKey| versions.get(&(k as i16)).map(|(_, max)| *max);
    TxnSupport {
        broker: broker.to_string(),
        find_coordinator: max(ApiKey::FindCoordinator),
        init_producer_id: max(ApiKey::InitProducerId),
        add_partitions_to_txn: max(ApiKey::AddPartitionsToTxn),
        end_txn: max(ApiKey::EndTxn),
        produce: max(ApiKey::Produce),
        fetch: max(ApiKey::Fetch),
    }
}

/// The transactional side of a scenario, beside its plain producers: the workload on its own
/// topic (so the producers' final read never meets a transactional value), then its final read
/// and the history the checker reads.
pub struct TxnRun {
    cfg: TxnConfig,
    support: TxnSupport,
    workload: TxnWorkload,
}

impl TxnRun {
    /// Starts the transactional producers and the live reader on `cfg.topic` (which must exist).
    pub fn start(cfg: TxnConfig, support: TxnSupport, start: Instant) -> Result<TxnRun, String> {
        let workload = TxnWorkload::start(&cfg, TxnRecorder::new(start))?;
        Ok(TxnRun { cfg, support, workload })
    }

    /// Transactions committed so far (for progress lines).
    pub fn committed(&self) -> usize {
        self.workload.recorder.committed()
    }

    /// Stops the producers, reads to the closing transaction (or `deadline`), returns the
    /// history.
    pub async fn finish(self, deadline: Duration) -> Result<TxnHistory, String> {
        let TxnRun { cfg, support, workload } = self;
        let rec = workload.stop().await;
        let final_read = final_read(&cfg, &rec, deadline).await?;
        Ok(rec.history(cfg.producers, support, final_read))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{BufMut, BytesMut};
    use kafka_protocol::messages::api_versions_response::ApiVersion;
    use kafka_protocol::messages::ApiVersionsResponse;
    use kafka_protocol::protocol::Encodable;

    fn encoded(correlation: i32, keys: &[(ApiKey, i16)]) -> Vec<u8> {
        let resp = ApiVersionsResponse::default().with_api_keys(
            keys.iter().map(|(k, max)| ApiVersion::default().with_api_key(*k as i16).with_max_version(*max)).collect(),
        );
        let mut buf = BytesMut::new();
        buf.put_i32(correlation);
        resp.encode(&mut buf, 0).unwrap();
        buf.to_vec()
    }

    #[test]
    fn txn_support_is_read_from_an_api_versions_v0_answer() {
        let all = [
            (ApiKey::Produce, 9),
            (ApiKey::Fetch, 12),
            (ApiKey::FindCoordinator, 3),
            (ApiKey::InitProducerId, 4),
            (ApiKey::AddPartitionsToTxn, 3),
            (ApiKey::EndTxn, 3),
        ];
        let versions = parse_api_versions_v0(7, &encoded(7, &all)).unwrap();
        let s = support_from("b:1", &versions);
        assert!(s.supported(), "{:?}", s.missing());
        assert_eq!((s.init_producer_id, s.end_txn), (Some(4), Some(3)));
        // A server without EndTxn: not supported, and it says which.
        let versions = parse_api_versions_v0(7, &encoded(7, &all[..5])).unwrap();
        assert_eq!(support_from("b:1", &versions).missing(), ["EndTxn (not advertised)"]);
        // A wrong correlation id or a cut answer is an error, never "unsupported".
        assert!(parse_api_versions_v0(8, &encoded(7, &all)).is_err());
        assert!(parse_api_versions_v0(7, &encoded(7, &all)[..12]).is_err());
    }

    #[test]
    fn txn_producers_get_unique_transactional_ids() {
        let cfg = TxnConfig::new("b:1", "t");
        let ids: std::collections::BTreeSet<String> = (0..=cfg.producers).map(|p| transactional_id(&cfg, p)).collect();
        assert_eq!(ids.len(), cfg.producers as usize + 1);
        assert!(ids.iter().all(|id| id.starts_with(&cfg.run_id)), "{ids:?}");
    }
}
